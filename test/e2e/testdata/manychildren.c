/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * manychildren N: a tracer of N children that all live at once, each with
 * four armed write watchpoints. Every child first runs with its watchpoints
 * armed, then sleeps in read() on its own pipe until all N are set up; then
 * the children are woken one after the other, and each writes its four
 * watched words once and exits before the next is woken. Prints the number
 * of children, of watchpoint SIGTRAPs and of children that did not get
 * exactly four.
 *
 * manychildren N wake: the same, but the children do not sleep in read():
 * each loops on usleep(20000), waking 50 times a second, and polls its pipe.
 * Once all N are set up the tracer prints "ready" and waits for a line or
 * the end of its standard input (the test looks at the sandbox meanwhile)
 * before it wakes them.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

static volatile long watched[4];

/* L0-L3, each slot a write watchpoint of 8 bytes (R/W 01, LEN 10). */
#define DR7_FOUR_WRITES (dr7_slot(0, DR7_RW_WRITE, DR7_LEN_8) | dr7_slot(1, DR7_RW_WRITE, DR7_LEN_8) | \
			 dr7_slot(2, DR7_RW_WRITE, DR7_LEN_8) | dr7_slot(3, DR7_RW_WRITE, DR7_LEN_8))

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 300;
	int wake = argc > 2 && !strcmp(argv[2], "wake");
	int(*go)[2] = calloc(n, sizeof *go);
	pid_t *pids = calloc(n, sizeof *pids);
	int *hits = calloc(n, sizeof *hits);
	for (int i = 0; i < n; i++) {
		check(pipe(go[i]), "pipe");
		pid_t c = traced_fork();
		if (c == 0) {
			/* Run a little with the watchpoints armed. */
			for (volatile int k = 0; k < 100000; k++)
				;
			char b;
			if (wake) {
				check(fcntl(go[i][0], F_SETFL, O_NONBLOCK), "O_NONBLOCK");
				for (;;) {
					usleep(20000);
					ssize_t r = read(go[i][0], &b, 1);
					if (r == 1)
						break;
					if (r != -1 || errno != EAGAIN)
						_exit(2);
				}
			} else if (read(go[i][0], &b, 1) != 1)
				_exit(2);
			for (int k = 0; k < 4; k++)
				watched[k] = k + 1;
			_exit(0);
		}
		pids[i] = c;
		close(go[i][0]);
		int st;
		check(waitpid(c, &st, 0), "waitpid");
		for (int k = 0; k < 4; k++)
			check(ptrace(PTRACE_POKEUSER, c, DR(k), (long)&watched[k]), "POKE DRn");
		check(ptrace(PTRACE_POKEUSER, c, DR(7), DR7_FOUR_WRITES), "POKE DR7");
		check(ptrace(PTRACE_CONT, c, 0, 0), "CONT");
	}
	/* Let every child reach its read(), then wake them one by one. */
	usleep(200000);
	if (wake) {
		printf("ready\n");
		fflush(stdout);
		char line[16];
		(void)!fgets(line, sizeof line, stdin);
	}
	int total = 0;
	for (int i = 0; i < n; i++) {
		check(write(go[i][1], "g", 1), "write");
		for (;;) {
			int st;
			check(waitpid(pids[i], &st, 0), "waitpid");
			if (WIFEXITED(st) || WIFSIGNALED(st)) {
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
					fprintf(stderr, "child %d ended with status %#x\n", i, st);
					return 1;
				}
				break;
			}
			int sig = WSTOPSIG(st);
			if (sig == SIGTRAP) {
				hits[i]++;
				total++;
				sig = 0;
			}
			check(ptrace(PTRACE_CONT, pids[i], 0, sig), "CONT");
		}
	}
	int short_of = 0;
	for (int i = 0; i < n; i++)
		short_of += hits[i] != 4;
	printf("%d children, %d hits, %d children without four\n", n, total, short_of);
	return 0;
}
