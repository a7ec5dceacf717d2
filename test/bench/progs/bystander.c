/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* bystander [-p] armed|none PROG [ARGS...]: runs PROG next to a traced
 * process that never touches the watched word. The tracee wakes every
 * millisecond (so it is switched in and out all the time), or with -p
 * sleeps in pause(), and writes nothing else; with "armed" its tracer has
 * poked a write watchpoint on "word" into DR0 and DR7 first, as gdb does,
 * so that a breakpoint is enabled in the sandbox but never hit; with "none"
 * nothing is armed. PROG's output is passed through; the exit status is
 * PROG's. */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <time.h>
#include <sys/wait.h>

static volatile long word;

/* DR7: slot 0 locally enabled, break on writes, 8 bytes. */
#define DR7 dr7_slot(0, DR7_RW_WRITE, DR7_LEN_4)

int main(int argc, char **argv) {
	int sleeper = argc > 1 && !strcmp(argv[1], "-p");
	argc -= sleeper;
	argv += sleeper;
	if (argc < 3 || (strcmp(argv[1], "armed") && strcmp(argv[1], "none"))) {
		fprintf(stderr, "usage: bystander [-p] armed|none PROG [ARGS...]\n");
		return 2;
	}
	int armed = !strcmp(argv[1], "armed");
	pid_t c = traced_fork();
	if (c == 0) {
		struct timespec ms = {0, 1000000};
		for (;;)
			if (sleeper)
				pause();
			else
				nanosleep(&ms, NULL);
	}
	int st;
	if (waitpid(c, &st, 0) != c || !WIFSTOPPED(st))
		die("waitpid");
	if (armed) {
		if (ptrace(PTRACE_POKEUSER, c, DR(0), &word) < 0)
			die("PTRACE_POKEUSER DR0");
		if (ptrace(PTRACE_POKEUSER, c, DR(7), DR7) < 0)
			die("PTRACE_POKEUSER DR7");
		/* Stock gVisor accepts the writes and reads 0 back. */
		if ((unsigned long)ptrace(PTRACE_PEEKUSER, c, DR(7), 0) != DR7) {
			fprintf(stderr, "bystander: DR7 does not read back: no hwbp here\n");
			return 2;
		}
	}
	if (ptrace(PTRACE_CONT, c, 0, 0) < 0)
		die("PTRACE_CONT");
	pid_t w = fork();
	if (w < 0)
		die("fork");
	if (w == 0) {
		execv(argv[2], argv + 2);
		die(argv[2]);
	}
	if (waitpid(w, &st, 0) != w)
		die("waitpid");
	/* A hit would have stopped the tracee: it must still be running. */
	int cst;
	if (waitpid(c, &cst, WNOHANG) != 0) {
		fprintf(stderr, "bystander: the tracee stopped or died (status %#x)\n", cst);
		return 2;
	}
	kill(c, SIGKILL);
	waitpid(c, &cst, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
}
