/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * callchain: the PERF_SAMPLE_CALLCHAIN of a breakpoint's samples, taken
 * through frame pointers (build with -fno-omit-frame-pointer -rdynamic):
 * main calls outer, which calls middle, which calls inner, which writes a
 * watched word. Each entry is printed as symbol+offset (dladdr), so that
 * the executable's and the C library's load addresses do not matter, up to
 * the first return into the C library, whose own frames are not built with
 * frame pointers (what the walk finds beyond them depends on stale
 * register values). Also with sample_max_stack 3 and with
 * exclude_callchain_user.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <dlfcn.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

static volatile uint64_t watched;

__attribute__((noinline)) void inner(int n)
{
	watched = (uint64_t)n;
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void middle(int n)
{
	inner(n);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void outer(int n)
{
	middle(n);
	__asm__ volatile("" ::: "memory");
}

void where(uint64_t ip, char *buf, size_t len)
{
	Dl_info info;
	if (ip >= (uint64_t)-4096) {
		snprintf(buf, len, "context %#llx", (unsigned long long)ip);
		return;
	}
	if (!dladdr((void *)(uintptr_t)ip, &info)) {
		snprintf(buf, len, "?");
		return;
	}
	const char *lib = info.dli_fname && strstr(info.dli_fname, "libc") ? " (libc)" : "";
	if (info.dli_sname)
		snprintf(buf, len, "%s+%#llx%s", info.dli_sname, (unsigned long long)(ip - (uint64_t)(uintptr_t)info.dli_saddr), lib);
	else
		snprintf(buf, len, "%s+%#llx%s", strrchr(info.dli_fname, '/') ? strrchr(info.dli_fname, '/') + 1 : info.dli_fname,
			 (unsigned long long)(ip - (uint64_t)(uintptr_t)info.dli_fbase), lib);
}

void run(const char *name, uint16_t max_stack, int exclude_user)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct perf_event_attr a = bp_attr(&watched, 8, HW_BREAKPOINT_W, 1);
	a.sample_type = PERF_SAMPLE_CALLCHAIN;
	a.sample_max_stack = max_stack;
	a.exclude_callchain_user = exclude_user;
	a.disabled = 1;
	int fd = (int)perf_event_open(&a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("%s: perf_event_open: %s\n", name, strerrorname_np(errno));
		return;
	}
	void *ring = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ring == MAP_FAILED) {
		printf("%s: mmap: %s\n", name, strerrorname_np(errno));
		close(fd);
		return;
	}
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	outer(1);
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	struct perf_event_mmap_page *up = ring;
	uint64_t head = __atomic_load_n(&up->data_head, __ATOMIC_ACQUIRE);
	char *data = (char *)ring + pg;
	uint64_t off = 0;
	int samples = 0;
	while (off < head) {
		struct perf_event_header *h = (void *)(data + off % (2 * pg));
		if (h->type == PERF_RECORD_SAMPLE) {
			uint64_t *p = (uint64_t *)(h + 1);
			uint64_t nr = p[0];
			printf("%s: sample %d: nr %s\n", name, samples, nr == 0 ? "0" : nr > 200 ? "too many" : "> 0");
			for (uint64_t i = 0; i < nr && i < 200; i++) {
				char buf[256];
				where(p[1 + i], buf, sizeof(buf));
				printf("%s: sample %d: [%llu] %s\n", name, samples, (unsigned long long)i, buf);
				if (strstr(buf, "(libc)"))
					break;
			}
			samples++;
		}
		off += h->size;
	}
	printf("%s: %d samples\n", name, samples);
	munmap(ring, 3 * pg);
	close(fd);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	run("walk", 0, 0);
	run("max_stack 3", 3, 0);
	run("max_stack 1", 1, 0);
	run("exclude_callchain_user", 0, 1);
	printf("end\n");
	return 0;
}
