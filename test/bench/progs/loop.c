/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* loop N: N iterations of arithmetic, then one write of "target". Prints
 * the loop's own time in ns per iteration ("loop-ns X"), so that gdb's and
 * the sandbox's start-up are not measured. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

volatile long target;

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 20000, sum = 0;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		sum += i * i;
	clock_gettime(CLOCK_MONOTONIC, &b);
	target = sum;
	printf("loop-ns %.4g\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
