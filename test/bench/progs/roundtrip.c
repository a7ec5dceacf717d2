/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* roundtrip N: a tracer sets a write watchpoint on a word its tracee writes
 * N times, and times PTRACE_CONT -> SIGTRAP -> waitpid. Prints ns per hit. */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <time.h>
#include <sys/wait.h>

static volatile long word;

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	pid_t c = traced_fork();
	if (c == 0) {
		for (long i = 0; i < n; i++)
			word = i;
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	ptrace(PTRACE_POKEUSER, c, DR(0), &word);
	ptrace(PTRACE_POKEUSER, c, DR(7), dr7_slot(0, DR7_RW_RW, DR7_LEN_4));
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	int hits = 0;
	for (;;) {
		ptrace(PTRACE_CONT, c, 0, 0);
		waitpid(c, &st, 0);
		if (!WIFSTOPPED(st))
			break;
		hits++;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (hits != n) {
		fprintf(stderr, "roundtrip: %d hits, want %d\n", hits, n);
		return 1;
	}
	printf("%.0f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
