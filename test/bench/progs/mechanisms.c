/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * mechanisms: on the host kernel, the cost of each mechanism that could arm
 * a task's breakpoints on a systrap stub thread, which the sentry neither
 * traces nor schedules (see platform/systrap). Prints microseconds per
 * operation:
 *
 *   perf-open     opening one perf breakpoint event (sigtrap) on another
 *                 thread: done once per stub thread and position;
 *   perf-modify   moving it (PERF_EVENT_IOC_MODIFY_ATTRIBUTES), when a
 *                 breakpoint changes;
 *   perf-hit      a hit on such an event, delivered to a SIGTRAP handler, as
 *                 the systrap stub receives it;
 *   step-signal   for comparison, a single-step trap delivered the same way;
 *   ptrace-arm    host ptrace on a running thread that the caller does not
 *                 trace: seize, interrupt, wait, write DR0 and DR7, detach.
 *                 A stub thread takes another task's context at any time, so
 *                 this would be needed before every run of a context;
 *   page-protect  one access to a protected page (SIGSEGV), unprotected and
 *                 single-stepped (SIGTRAP), then protected again: every
 *                 access to a watched page, watched word or not.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>

static volatile long word, other;
static volatile int traps;
static char *page;

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* trap_attr is a disabled write watchpoint on 8 bytes at addr that sends
 * SIGTRAP (sigtrap) at each hit. */
static struct perf_event_attr trap_attr(volatile long *addr) {
	struct perf_event_attr a = bp_attr(addr, 8, HW_BREAKPOINT_W, 1);
	a.sigtrap = 1;
	a.remove_on_exec = 1;
	a.disabled = 1;
	return a;
}

static void on_trap(int sig, siginfo_t *si, void *uc) {
	(void)sig, (void)si;
	traps++;
	((ucontext_t *)uc)->uc_mcontext.gregs[REG_EFL] &= ~0x100L; /* TF */
}

static void on_segv(int sig, siginfo_t *si, void *uc) {
	(void)sig, (void)si;
	mprotect(page, 4096, PROT_READ | PROT_WRITE);
	((ucontext_t *)uc)->uc_mcontext.gregs[REG_EFL] |= 0x100L;
}

static void on_step(int sig, siginfo_t *si, void *uc) {
	(void)sig, (void)si;
	mprotect(page, 4096, PROT_NONE);
	((ucontext_t *)uc)->uc_mcontext.gregs[REG_EFL] &= ~0x100L;
}

static void handle(int sig, void (*f)(int, siginfo_t *, void *)) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = f;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(sig, &sa, NULL) < 0)
		die("sigaction");
}

static volatile int stop;
static volatile pid_t spinner_tid;
static void *spinner(void *arg) {
	spinner_tid = (pid_t)syscall(SYS_gettid);
	while (!stop)
		other++;
	return arg;
}

int main(void) {
	const int n = 2000;
	handle(SIGTRAP, on_trap);

	/* A thread of our own stands for a stub thread. */
	pthread_t th;
	if (pthread_create(&th, NULL, spinner, NULL) != 0)
		die("pthread_create");
	while (spinner_tid == 0)
		sched_yield();
	pid_t tid = spinner_tid;
	struct perf_event_attr a = trap_attr(&word);
	double t0 = now();
	for (int i = 0; i < n; i++) {
		int fd = (int)perf_event_open(&a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0)
			die("perf_event_open");
		close(fd);
	}
	printf("perf-open %.2f\n", (now() - t0) / n * 1e6);

	int fd = (int)perf_event_open(&a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		die("perf_event_open");
	t0 = now();
	for (int i = 0; i < n; i++) {
		struct perf_event_attr m = trap_attr(i % 2 ? &word : &other);
		if (ioctl(fd, PERF_EVENT_IOC_MODIFY_ATTRIBUTES, &m) < 0)
			die("MODIFY_ATTRIBUTES");
	}
	printf("perf-modify %.2f\n", (now() - t0) / n * 1e6);
	close(fd);
	stop = 1;
	pthread_join(th, NULL);

	fd = (int)perf_event_open(&a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0 || ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) < 0)
		die("perf event on self");
	traps = 0;
	t0 = now();
	for (int i = 0; i < n; i++)
		word = i;
	printf("perf-hit %.2f\n", (now() - t0) / n * 1e6);
	close(fd);
	if (traps != n)
		fprintf(stderr, "mechanisms: %d perf hits, want %d\n", traps, n);

	t0 = now();
	for (int i = 0; i < n; i++)
		__asm__ volatile("pushf; orl $0x100, (%%rsp); popf; nop" ::: "memory", "cc");
	printf("step-signal %.2f\n", (now() - t0) / n * 1e6);

	/* ptrace arming of a running process that we do not trace. */
	pid_t c = fork();
	if (c == 0) {
		for (;;)
			other++;
	}
	t0 = now();
	for (int i = 0; i < n / 4; i++) {
		int st;
		if (ptrace(PTRACE_SEIZE, c, 0, 0) < 0 || ptrace(PTRACE_INTERRUPT, c, 0, 0) < 0)
			die("SEIZE/INTERRUPT");
		if (waitpid(c, &st, 0) != c)
			die("waitpid");
		if (ptrace(PTRACE_POKEUSER, c, DR(0), &word) < 0 ||
		    ptrace(PTRACE_POKEUSER, c, DR(7), dr7_slot(0, DR7_RW_RW, DR7_LEN_4)) < 0)
			die("POKEUSER");
		if (ptrace(PTRACE_DETACH, c, 0, 0) < 0)
			die("DETACH");
	}
	printf("ptrace-arm %.2f\n", (now() - t0) / (n / 4) * 1e6);
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);

	page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		die("mmap");
	handle(SIGSEGV, on_segv);
	handle(SIGTRAP, on_step);
	t0 = now();
	for (int i = 0; i < n; i++)
		((volatile char *)page)[64] = (char)i;
	printf("page-protect %.2f\n", (now() - t0) / n * 1e6);
	return 0;
}
