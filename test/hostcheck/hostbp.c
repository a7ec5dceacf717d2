/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

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
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <sys/wait.h>

#define WRITES 1000000

static volatile long word;

int main(void) {
	pid_t c = fork();
	if (c < 0)
		die("fork");
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
		die("waitpid");
	if (ptrace(PTRACE_POKEUSER, c, DR(0), (long)&word) < 0)
		die("PTRACE_POKEUSER DR0");
	if (ptrace(PTRACE_POKEUSER, c, DR(7), dr7_slot(0, DR7_RW_WRITE, DR7_LEN_4)) < 0)
		die("PTRACE_POKEUSER DR7");
	if (ptrace(PTRACE_CONT, c, 0, 0) < 0)
		die("PTRACE_CONT");
	if (waitpid(c, &st, 0) != c)
		die("waitpid");
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
