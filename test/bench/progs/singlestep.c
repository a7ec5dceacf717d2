/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* singlestep N: a tracer single-steps its tracee N times and times
 * PTRACE_SINGLESTEP -> SIGTRAP -> waitpid. Prints ns per step: the cost of
 * any trap round trip, whatever caused it. */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <time.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	pid_t c = traced_fork();
	if (c == 0) {
		for (volatile long i = 0;; i++)
			;
	}
	int st;
	waitpid(c, &st, 0);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++) {
		ptrace(PTRACE_SINGLESTEP, c, 0, 0);
		waitpid(c, &st, 0);
		if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) {
			fprintf(stderr, "singlestep: unexpected status %#x\n", st);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	kill(c, SIGKILL);
	printf("%.0f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
