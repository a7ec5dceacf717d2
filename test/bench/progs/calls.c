/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* calls N M: the phases whose host perf calls bench.sh counts through the
 * sandbox's metrics. A tracer arms a write watchpoint on a word of its
 * tracee (POKEUSER), waits for the tracee to run with it (and so for the
 * back end to arm it), and prints "armed"; after each line on its standard
 * input it runs the next phase and prints its name when it is over:
 *
 *   hits      the tracee writes the word N times: N hits, each a SIGTRAP
 *             that the tracer sees and continues;
 *   switches  the tracee sleeps and wakes M times (usleep(100)), with the
 *             watchpoint armed and unchanged: M context switches at least.
 *
 * Then it exits. */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <sys/wait.h>

static volatile long word;

static void next(const char *done) {
	char line[16];
	if (done) {
		printf("%s\n", done);
		fflush(stdout);
	}
	(void)!fgets(line, sizeof line, stdin);
}

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	int m = argc > 2 ? atoi(argv[2]) : 1000;
	int go[2], ready[2];
	if (pipe(go) || pipe(ready))
		return 1;
	pid_t c = fork();
	if (c == 0) {
		char b;
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &b, 1) != 1)
			_exit(2);
		for (long i = 0; i < n; i++)
			word = i;
		if (read(go[0], &b, 1) != 1)
			_exit(2);
		for (int i = 0; i < m; i++)
			usleep(100);
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	ptrace(PTRACE_POKEUSER, c, DR(0), &word);
	ptrace(PTRACE_POKEUSER, c, DR(7), dr7_slot(0, DR7_RW_RW, DR7_LEN_4));
	ptrace(PTRACE_CONT, c, 0, 0);
	char b;
	if (read(ready[0], &b, 1) != 1)
		return 1;
	next("armed");
	if (write(go[1], "g", 1) != 1)
		return 1;
	for (int hits = 0; hits < n; hits++) {
		waitpid(c, &st, 0);
		if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) {
			fprintf(stderr, "calls: %d hits, want %d\n", hits, n);
			return 1;
		}
		ptrace(PTRACE_CONT, c, 0, 0);
	}
	next("hits");
	if (write(go[1], "g", 1) != 1)
		return 1;
	waitpid(c, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "calls: tracee ended with status %#x\n", st);
		return 1;
	}
	next("switches");
	return 0;
}
