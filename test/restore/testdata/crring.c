/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * crring: a perf breakpoint event whose ring buffer is mapped across one
 * window ("window mapped") and unmapped across the next ("window
 * unmapped"); each lasts until SIGUSR1. Rings are not carried across a
 * checkpoint, so one of the first window must be refused, and one of the
 * second, with the event's fd still open, must succeed.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <sys/ioctl.h>
#include <sys/mman.h>

static volatile uint64_t w;

static void on_usr1(int sig) { (void)sig; }

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGUSR1, on_usr1);
	struct perf_event_attr a = bp_attr(&w, 8, HW_BREAKPOINT_W, 1);
	a.sample_type = PERF_SAMPLE_IP;
	int fd = (int)perf_event_open(&a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("perf_event_open: %s\n", strerrorname_np(errno));
		return 1;
	}
	long page = sysconf(_SC_PAGESIZE);
	void *ring = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ring == MAP_FAILED) {
		printf("mmap: %s\n", strerrorname_np(errno));
		return 1;
	}
	window("mapped");
	struct perf_event_mmap_page *up = ring;
	printf("data_size after the window: %llu\n", (unsigned long long)up->data_size);
	munmap(ring, 2 * page);
	window("unmapped");
	uint64_t id;
	printf("the fd is an event after the window: %d\n", ioctl(fd, PERF_EVENT_IOC_ID, &id) == 0);
	printf("done\n");
	return 0;
}
