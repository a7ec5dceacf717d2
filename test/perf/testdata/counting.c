/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * counting: perf breakpoint events that count hits (no signal, no sample):
 * writes, reads, execution, enable/disable/reset between hits, an event on
 * another process that outlives it, exclude_user, slots freed by close,
 * and inheritance into forked children and threads, of single events and
 * of groups, and events bound to one CPU.
 * One line per step with the counts read, for the host kernel's transcript
 * and a sandbox's to be compared.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

static volatile uint64_t watched[8];

static int open_event_cpu(uint32_t type, void *addr, uint64_t len, pid_t pid, int cpu, int exclude_user, int inherit);

static int open_event(uint32_t type, void *addr, uint64_t len, pid_t pid, int exclude_user)
{
	return open_event_cpu(type, addr, len, pid, -1, exclude_user, 0);
}

static int open_event_inherit(uint32_t type, void *addr, uint64_t len, pid_t pid, int exclude_user, int inherit)
{
	return open_event_cpu(type, addr, len, pid, -1, exclude_user, inherit);
}

static int open_event_cpu(uint32_t type, void *addr, uint64_t len, pid_t pid, int cpu, int exclude_user, int inherit)
{
	struct perf_event_attr a = bp_attr(addr, len, type, 0);
	a.exclude_user = exclude_user;
	a.inherit = inherit != 0;
	a.inherit_thread = inherit == 2;
	a.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
	int fd = (int)perf_event_open(&a, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("perf_event_open: %s\n", strerrorname_np(errno));
		exit(1);
	}
	return fd;
}

/* show_count prints the count of event fd (opened with open_event_cpu),
 * without its times. */
static void show_count(const char *what, int fd)
{
	uint64_t v[3];
	if (read(fd, v, sizeof(v)) != sizeof(v)) {
		printf("%s: read %s\n", what, strerrorname_np(errno));
		return;
	}
	printf("%s: count=%llu\n", what, (unsigned long long)v[0]);
}

static void show(const char *what, int fd)
{
	uint64_t v[3];
	long n = read(fd, v, sizeof(v));
	if (n != sizeof(v)) {
		printf("%s: read %ld %s\n", what, n, n < 0 ? strerrorname_np(errno) : "");
		return;
	}
	/* Not whether the time enabled is above 0: the test VM's kernel
	 * marks the TSC unstable on some boots ("TSCs unsynchronized" under
	 * QEMU TCG) and then reads 0 for windows as short as these (seen in
	 * a CI rehearsal). */
	printf("%s: count=%llu running==enabled:%d\n", what, (unsigned long long)v[0], v[1] == v[2]);
}

static void writes(int n)
{
	for (int i = 0; i < n; i++)
		watched[0] = (uint64_t)i;
}

static void *thread_writes(void *arg)
{
	writes(20);
	return arg;
}

/*
 * open_member opens a write event on addr in the group of leader (-1: a
 * new group), with inherit, and inherit_thread if thread_only, read with
 * PERF_FORMAT_GROUP.
 */
static int open_member(volatile uint64_t *addr, int thread_only, int leader)
{
	struct perf_event_attr a = bp_attr(addr, 8, HW_BREAKPOINT_W, 0);
	a.inherit = 1;
	a.inherit_thread = thread_only;
	a.read_format = PERF_FORMAT_GROUP;
	int fd = (int)perf_event_open(&a, 0, -1, leader, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("perf_event_open (group): %s\n", strerrorname_np(errno));
		exit(1);
	}
	return fd;
}

/* both_writes writes watched[0] n[0] times and watched[1] n[1] times. */
static void *both_writes(void *arg)
{
	const int *n = arg;
	for (int i = 0; i < n[0]; i++)
		watched[0] = (uint64_t)i;
	for (int i = 0; i < n[1]; i++)
		watched[1] = (uint64_t)i;
	return NULL;
}

/*
 * inherited_group: a group is inherited as a whole or not at all, as its
 * leader's inherit_thread decides (inherit_task_group checks the leader,
 * inherit_group copies every member with it), whatever the members'.
 */
static void inherited_group(const char *name, int leader_thread_only, int member_thread_only)
{
	int l = open_member(&watched[0], leader_thread_only, -1);
	int m = open_member(&watched[1], member_thread_only, l);
	int own[2] = {1, 1}, forked[2] = {5, 7}, threaded[2] = {3, 4};
	both_writes(own);
	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		both_writes(forked);
		_exit(0);
	}
	int status;
	waitpid(c, &status, 0);
	pthread_t th;
	pthread_create(&th, NULL, both_writes, threaded);
	pthread_join(th, NULL);
	uint64_t v[3];
	long n = read(l, v, sizeof(v));
	if (n != sizeof(v))
		printf("%s: read %ld %s\n", name, n, n < 0 ? strerrorname_np(errno) : "");
	else
		printf("%s: nr=%llu leader=%llu member=%llu\n", name, (unsigned long long)v[0], (unsigned long long)v[1],
		       (unsigned long long)v[2]);
	close(m);
	close(l);
}

__attribute__((noinline)) static void target_fn(void)
{
	__asm__ volatile("" ::: "memory");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);

	int fd = open_event(HW_BREAKPOINT_W, (void *)&watched[0], 8, 0, 0);
	writes(1000);
	show("1000 writes", fd);
	uint64_t sink = 0;
	for (int i = 0; i < 10; i++)
		sink += watched[0];
	show("10 reads, write watchpoint", fd);
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	writes(10);
	show("10 writes while disabled", fd);
	ioctl(fd, PERF_EVENT_IOC_RESET, 0);
	show("reset", fd);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	writes(5);
	show("5 writes after enable", fd);
	watched[1] = 1;
	show("a write next to the watched word", fd);
	close(fd);

	fd = open_event(HW_BREAKPOINT_R | HW_BREAKPOINT_W, (void *)&watched[2], 8, 0, 0);
	for (int i = 0; i < 7; i++)
		sink += watched[2];
	watched[2] = 3;
	show("7 reads and a write, rw watchpoint", fd);
	close(fd);

	fd = open_event(HW_BREAKPOINT_X, (void *)target_fn, sizeof(long), 0, 0);
	for (int i = 0; i < 3; i++)
		target_fn();
	show("3 calls, execution breakpoint", fd);
	close(fd);

	fd = open_event(HW_BREAKPOINT_W, (void *)&watched[0], 8, 0, 1);
	writes(10);
	show("10 writes, exclude_user", fd);
	close(fd);

	/* Four events at once, then the slots are free again. */
	int fds[4];
	for (int i = 0; i < 4; i++)
		fds[i] = open_event(HW_BREAKPOINT_W, (void *)&watched[4 + i], 8, 0, 0);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j <= i; j++)
			watched[4 + i] = (uint64_t)j;
	for (int i = 0; i < 4; i++) {
		char what[32];
		snprintf(what, sizeof(what), "slot %d", i);
		show(what, fds[i]);
		close(fds[i]);
	}

	/* An event on a child, which outlives it. */
	int go;
	pid_t child = gated_fork(&go);
	if (child == 0) {
		writes(100);
		_exit(0);
	}
	fd = open_event(HW_BREAKPOINT_W, (void *)&watched[0], 8, child, 0);
	writes(3); /* the parent's writes do not count */
	gate_open(go);
	int status;
	waitpid(child, &status, 0);
	show("child's 100 writes, after its exit", fd);
	close(fd);

	/* Inherited events: a forked child's and a thread's writes count
	 * for the event, with inherit_thread only the thread's. */
	for (int mode = 1; mode <= 2; mode++) {
		fd = open_event_inherit(HW_BREAKPOINT_W, (void *)&watched[0], 8, 0, 0, mode);
		writes(1);
		pid_t c = fork();
		if (c == 0) {
			writes(50);
			_exit(0);
		}
		waitpid(c, &status, 0);
		pthread_t th;
		pthread_create(&th, NULL, thread_writes, NULL);
		pthread_join(th, NULL);
		show(mode == 1 ? "inherit: 1 + 50 forked + 20 threaded" : "inherit_thread: 1 + 50 forked + 20 threaded", fd);
		close(fd);
	}

	inherited_group("group, leader inherit, member inherit_thread", 0, 1);
	inherited_group("group, leader inherit_thread, member inherit", 1, 0);

	/* Events bound to one CPU count only while the thread runs there:
	 * pinned to CPU 0, the thread's writes count for its event on CPU 0
	 * and not for the one on CPU 1. Only the counts are printed: Linux
	 * stops the time running of an event while its CPU is not the
	 * thread's, which the sandbox does not follow (docs/linux-compat.md). */
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(0, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			printf("sched_setaffinity: %s\n", strerrorname_np(errno));
		int on0 = open_event_cpu(HW_BREAKPOINT_W, (void *)&watched[0], 8, 0, 0, 0, 0);
		int on1 = open_event_cpu(HW_BREAKPOINT_W, (void *)&watched[0], 8, 0, 1, 0, 0);
		writes(30);
		show_count("pinned to CPU 0, 30 writes: event on CPU 0", on0);
		show_count("pinned to CPU 0, 30 writes: event on CPU 1", on1);
		close(on0);
		close(on1);
	}

	printf("sink %llu\nend\n", (unsigned long long)(sink * 0));
	return 0;
}
