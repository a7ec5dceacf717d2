/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* watched idle|writes N: the program that section 10 (watch) watches from
 * the host with runsc watch, on its word "word". It prints "ready" and waits
 * for a line on stdin (meanwhile the watch is armed, or not), then runs N
 * rounds of workload.c's system calls, page faults and threads, which never
 * touch word (idle), or writes word N times (writes), and prints its elapsed
 * time in ms. It exits at the end of its input, so that the watch can read
 * every hit before the sandbox ends. */
#define main workload_main
#include "workload.c"
#undef main

#include <string.h>

volatile long word;

int main(int argc, char **argv) {
	if (argc != 3 || (strcmp(argv[1], "idle") && strcmp(argv[1], "writes"))) {
		fprintf(stderr, "usage: watched idle|writes N\n");
		return 2;
	}
	long n = atol(argv[2]);
	char line[16];
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return 2;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (!strcmp(argv[1], "idle"))
		for (long r = 0; r < n; r++)
			round_once();
	else
		for (long i = 0; i < n; i++)
			word = i;
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.3f\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
	fflush(stdout);
	while (getchar() != EOF)
		;
	return 0;
}
