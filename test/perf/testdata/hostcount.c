/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * hostcount: a counting perf breakpoint event (no sampling, no signal) on
 * the program's own thread, over writes made while the thread is alone in
 * its address space, while a second thread writes the same word (whose
 * writes the event must not count: it is not inherited), and alone again.
 * Prints the count after each phase, then "ready", and waits for its
 * standard input to end, so that a test can read the sandbox's metrics
 * while it still runs, then "end".
 *
 * usage: hostcount WRITES
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <pthread.h>

static volatile uint64_t watched;

static void writes(long n)
{
	for (long i = 0; i < n; i++)
		watched = (uint64_t)i;
}

static void *other_thread(void *arg)
{
	writes(100);
	return arg;
}

static void show(const char *phase, int fd)
{
	uint64_t count;
	if (read(fd, &count, sizeof(count)) != sizeof(count)) {
		printf("%s: read: %s\n", phase, strerrorname_np(errno));
		exit(1);
	}
	printf("%s: count=%llu\n", phase, (unsigned long long)count);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	struct perf_event_attr a = bp_attr(&watched, HW_BREAKPOINT_LEN_8, HW_BREAKPOINT_W, 0);
	int fd = (int)perf_event_open(&a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("perf_event_open: %s\n", strerrorname_np(errno));
		return 1;
	}
	writes(n);
	show("alone", fd);
	pthread_t th;
	if (pthread_create(&th, NULL, other_thread, NULL) != 0 || pthread_join(th, NULL) != 0) {
		printf("pthread failed\n");
		return 1;
	}
	show("after another thread wrote", fd);
	writes(n);
	show("alone again", fd);
	printf("ready\n");
	fflush(stdout);
	while (getchar() != EOF)
		;
	printf("end\n");
	return 0;
}
