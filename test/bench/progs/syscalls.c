/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* syscalls N: N getppid system calls in a loop, no breakpoint anywhere.
 * Prints ns per call: every system call of the plugin runsc goes through
 * hwbp's hook (plugin/syscalls.go), so this against stock runsc is that
 * hook's cost. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.0f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
