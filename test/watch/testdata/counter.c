/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

// counter: the program that test/watch watches from the host. It prints
// "ready", waits for a line on stdin, then writes the global counter N
// times (argv[1]) through bump, and prints what it saw: its value and the
// SIGTRAPs it got (none, if the host's watch is invisible), and exits
// with status 7 at the end of its input.
//
// With "slots" as argv[2] it also checks, from a traced child that is
// watched too (it is created after the watch starts), that the host's
// watch holds one of the child's four debug registers: enabling four
// guest breakpoints fails with ENOSPC, and the child's DR6 and DR7, as
// PEEKUSR shows them, hold only the guest's own. After a second line on
// stdin (sent once the watch has ended) the four succeed.
//
// With "full" as argv[2] it first opens four counting perf breakpoint
// events of its own, on spare, so that the host's watch finds no free
// debug register; after its line on stdin it writes each spare word once
// and prints what the four counted.
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <sys/wait.h>

volatile long counter;
static volatile long spare[4];
static volatile sig_atomic_t sigtraps;

__attribute__((noinline)) void bump(long i) { counter = i * 3; }

static void on_sigtrap(int sig) { (void)sig; sigtraps++; }

static void wait_line(void) {
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		exit(2);
}

// slots enables four write watchpoints of the stopped tracee pid on spare
// and prints the outcome, DR6 and DR7; it disables them again.
static void slots(pid_t pid, const char *when) {
	for (int i = 0; i < 4; i++)
		if (ptrace(PTRACE_POKEUSER, pid, DR(i), &spare[i]) != 0)
			printf("%s: poke dr%d: %s\n", when, i, strerror(errno));
	unsigned long dr7 = 0;
	for (int i = 0; i < 4; i++)
		dr7 |= dr7_slot(i, DR7_RW_WRITE, DR7_LEN_4);
	errno = 0;
	long r = ptrace(PTRACE_POKEUSER, pid, DR(7), dr7);
	printf("%s: four guest watchpoints: %s\n", when, r == 0 ? "ok" : strerror(errno));
	errno = 0;
	long dr6 = ptrace(PTRACE_PEEKUSER, pid, DR(6), 0);
	long got7 = ptrace(PTRACE_PEEKUSER, pid, DR(7), 0);
	printf("%s: dr6 %#lx dr7 %#lx\n", when, dr6, got7);
	ptrace(PTRACE_POKEUSER, pid, DR(7), 0);
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 5;
	int check_slots = argc > 2 && strcmp(argv[2], "slots") == 0;
	int full = argc > 2 && strcmp(argv[2], "full") == 0;
	int fds[4];
	signal(SIGTRAP, on_sigtrap);
	for (int i = 0; full && i < 4; i++) {
		struct perf_event_attr a = bp_attr(&spare[i], 8, HW_BREAKPOINT_W, 0);
		if ((fds[i] = perf_event_open(&a, 0, -1, -1, 0)) < 0)
			die("perf_event_open");
	}
	printf("ready\n");
	fflush(stdout);
	wait_line();
	if (full) {
		printf("guest events:");
		for (int i = 0; i < 4; i++) {
			spare[i] = i;
			uint64_t n;
			if (read(fds[i], &n, sizeof n) != sizeof n)
				die("read");
			printf(" %llu", (unsigned long long)n);
		}
		printf("\n");
	}
	if (check_slots) {
		pid_t pid = traced_fork();
		if (pid == 0) {
			for (long i = 1; i <= n; i++)
				bump(i);
			_exit(sigtraps == 0 ? 0 : 1);
		}
		int status;
		waitpid(pid, &status, 0);
		slots(pid, "watched");
		ptrace(PTRACE_CONT, pid, 0, 0);
		// The child writes counter n times under the watch: it must
		// exit with no stop in between.
		waitpid(pid, &status, 0);
		if (WIFEXITED(status))
			printf("child exited %d\n", WEXITSTATUS(status));
		else if (WIFSTOPPED(status))
			printf("child stopped by signal %d\n", WSTOPSIG(status));
		else
			printf("child status %#x\n", status);
		printf("stage 2\n");
		fflush(stdout);
		wait_line();
		pid = traced_fork();
		if (pid == 0) {
			_exit(0);
		}
		waitpid(pid, &status, 0);
		slots(pid, "unwatched");
		ptrace(PTRACE_CONT, pid, 0, 0);
		waitpid(pid, &status, 0);
	}
	for (long i = 1; i <= n; i++)
		bump(i);
	printf("counter %ld, sigtraps %d\n", counter, (int)sigtraps);
	fflush(stdout);
	// Exit at the end of the input, once the watch has read every hit.
	while (getchar() != EOF)
		;
	return 7;
}
