/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * loop [N]: writes a global N times (1,000,000 by default), for perf stat -e
 * mem:ADDR:wu. Built without PIE, so that the global's address is the same
 * on the host and in the sandbox; "loop addr" prints it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile long counter;

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "addr") == 0) {
		printf("%p\n", (void *)&counter);
		return 0;
	}
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	for (long i = 0; i < n; i++)
		counter = i;
	return 0;
}
