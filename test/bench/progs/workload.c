/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* workload [N]: system calls, page faults and threads, no breakpoint, N
 * rounds (default 1). Prints its own elapsed time in ms, so that sandbox
 * start-up is not measured. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void *thread_main(void *arg) { return arg; }

static void round_once(void) {
	for (int i = 0; i < 100000; i++)
		getppid();
	for (int i = 0; i < 50; i++) {
		char *p = mmap(NULL, 256 << 12, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		for (int j = 0; j < 256; j++)
			p[j << 12] = 1;
		munmap(p, 256 << 12);
	}
	for (int i = 0; i < 200; i++) {
		pthread_t th;
		pthread_create(&th, NULL, thread_main, NULL);
		pthread_join(th, NULL);
	}
}

int main(int argc, char **argv) {
	int rounds = argc > 1 ? atoi(argv[1]) : 1;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int r = 0; r < rounds; r++)
		round_once();
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.3f\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
	return 0;
}
