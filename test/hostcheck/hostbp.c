/*
 * hostbp: does the host kernel on this machine deliver hardware watchpoint
 * hits at all? Everything hwbp does on the ptrace and systrap platforms ends
 * in the host's debug registers, and the differential hit tests compare the
 * sandbox with the host kernel; on a CPU or hypervisor that never raises a
 * debug exception (seen on PVM guests) both sides would agree on "no trap"
 * and prove nothing.
 *
 * A traced child writes a word in a loop; its parent arms a write watchpoint
 * on the word with PTRACE_POKEUSER, as gdb does. Exit status 0: the child
 * stopped with SIGTRAP at its first write. 1: it ran all its writes without
 * a trap (the message says so). 2: something else failed.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define WRITES 1000000

static volatile long word;

#define DR(n) (offsetof(struct user, u_debugreg) + 8 * (n))

static void fail(const char *what) {
	perror(what);
	exit(2);
}

int main(void) {
	pid_t c = fork();
	if (c < 0)
		fail("fork");
	if (c == 0) {
		if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
			_exit(2);
		raise(SIGSTOP);
		for (long i = 0; i < WRITES; i++)
			word = i;
		_exit(0);
	}
	int st;
	if (waitpid(c, &st, 0) != c)
		fail("waitpid");
	/* DR7 0x000d0001: slot 0 locally enabled, break on writes, 4 bytes. */
	if (ptrace(PTRACE_POKEUSER, c, DR(0), (long)&word) < 0)
		fail("PTRACE_POKEUSER DR0");
	if (ptrace(PTRACE_POKEUSER, c, DR(7), 0x000d0001L) < 0)
		fail("PTRACE_POKEUSER DR7");
	if (ptrace(PTRACE_CONT, c, 0, 0) < 0)
		fail("PTRACE_CONT");
	if (waitpid(c, &st, 0) != c)
		fail("waitpid");
	if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP) {
		kill(c, SIGKILL);
		waitpid(c, &st, 0);
		printf("hostbp: the host kernel delivers hardware watchpoint hits\n");
		return 0;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		printf("hostbp: the host kernel delivered no hit in %d writes to a word "
		       "under an armed write watchpoint: this machine's CPU or hypervisor "
		       "does not raise debug-register traps\n", WRITES);
		return 1;
	}
	fprintf(stderr, "hostbp: unexpected child status %#x\n", st);
	kill(c, SIGKILL);
	return 2;
}
