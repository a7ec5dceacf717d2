/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * sigtrap: a program that watches its own memory with a perf breakpoint
 * event with sigtrap (as GWPSan does): every overflow sends the thread that
 * hit a SIGTRAP with si_code TRAP_PERF, si_addr the watched address,
 * si_perf_data the event's sig_data, si_perf_type PERF_TYPE_BREAKPOINT and
 * si_perf_flags telling whether SIGTRAP was blocked. Prints one line per
 * signal and per step, for the host kernel's transcript and a sandbox's.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <sys/ioctl.h>
#include <linux/sched.h>
#include <sys/wait.h>
#include <ucontext.h>

static volatile uint64_t watched[2];
static volatile int signals;

/* write_watched stores v to watched[0]; the label after the store is where
 * a data breakpoint's trap leaves the thread. */
extern char after_store[];
__attribute__((noinline)) static void write_watched(uint64_t v)
{
	__asm__ volatile("movq %1, %0\n"
			 ".globl after_store\n"
			 "after_store:\n"
			 : "=m"(watched[0])
			 : "r"(v)
			 : "memory");
}

static void handler(int sig, siginfo_t *si, void *uc)
{
	const unsigned char *raw = (const unsigned char *)si;
	uint64_t data;
	uint32_t type, flags;
	memcpy(&data, raw + 24, 8);
	memcpy(&type, raw + 32, 4);
	memcpy(&flags, raw + 36, 4);
	uintptr_t rip = (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
	char buf[256];
	int n = snprintf(buf, sizeof(buf),
			 "signal %d code=%d addr-is-watched=%d perf_data=%#llx perf_type=%u perf_flags=%u rip-after-store=%d\n",
			 sig, si->si_code, si->si_addr == (void *)&watched[0], (unsigned long long)data, type, flags,
			 rip == (uintptr_t)after_store);
	if (write(1, buf, (size_t)n) < 0)
		_exit(3);
	signals++;
}

static int open_sigtrap(uint64_t period, uint64_t sig_data)
{
	struct perf_event_attr a = bp_attr(&watched[0], 8, HW_BREAKPOINT_W, period);
	a.sigtrap = 1;
	a.remove_on_exec = 1;
	a.sig_data = sig_data;
	int fd = (int)perf_event_open(&a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("perf_event_open: %s\n", strerrorname_np(errno));
		exit(1);
	}
	return fd;
}

static void count(const char *what, int fd)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		printf("%s: read %s\n", what, strerrorname_np(errno));
	else
		printf("%s: count=%llu signals=%d\n", what, (unsigned long long)v, signals);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGTRAP, &sa, NULL);

	int fd = open_sigtrap(1, 0x1234);
	for (int i = 0; i < 3; i++)
		write_watched((uint64_t)i);
	count("period 1, 3 writes", fd);
	watched[1] = 1;
	count("a write next to it", fd);
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	write_watched(9);
	count("disabled", fd);
	close(fd);

	signals = 0;
	fd = open_sigtrap(2, 0xfeedfacecafe);
	for (int i = 0; i < 5; i++)
		write_watched((uint64_t)i);
	count("period 2, 5 writes", fd);
	uint64_t p = 1;
	ioctl(fd, PERF_EVENT_IOC_PERIOD, &p);
	write_watched(1);
	count("period set to 1, 1 write", fd);
	close(fd);

	/* SIGTRAP blocked: the signal waits, marked asynchronous. */
	signals = 0;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTRAP);
	fd = open_sigtrap(1, 7);
	sigprocmask(SIG_BLOCK, &set, NULL);
	write_watched(1);
	printf("blocked, signals=%d\n", signals);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	count("unblocked", fd);
	close(fd);

	/* SIGTRAP ignored: nothing arrives, the event still counts. */
	signal(SIGTRAP, SIG_IGN);
	signals = 0;
	fd = open_sigtrap(1, 8);
	write_watched(2);
	count("ignored", fd);
	close(fd);
	/* An inherited sigtrap event: a child made by clone3 gets a copy,
	 * whose hit signals it, unless CLONE_CLEAR_SIGHAND reset its
	 * handlers (inherit_task_group), where the signal would kill it. */
	sigaction(SIGTRAP, &sa, NULL);
	for (int clear = 0; clear <= 1; clear++) {
		signals = 0;
		struct perf_event_attr a = bp_attr(&watched[0], 8, HW_BREAKPOINT_W, 1);
		a.inherit = 1;
		a.sigtrap = 1;
		a.remove_on_exec = 1;
		a.sig_data = 9;
		fd = (int)perf_event_open(&a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			printf("perf_event_open (inherit): %s\n", strerrorname_np(errno));
			exit(1);
		}
		struct clone_args ca;
		memset(&ca, 0, sizeof(ca));
		ca.flags = clear ? CLONE_CLEAR_SIGHAND : 0;
		ca.exit_signal = SIGCHLD;
		fflush(stdout);
		long pid = syscall(SYS_clone3, &ca, sizeof(ca));
		if (pid == 0) {
			write_watched(5);
			_exit(signals == 1 ? 0 : 1);
		}
		int status = 0;
		waitpid((pid_t)pid, &status, 0);
		printf("clone3 %s: child exited %d, killed by %d\n", clear ? "with CLONE_CLEAR_SIGHAND" : "plain",
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		count(clear ? "clone3 with CLONE_CLEAR_SIGHAND" : "clone3 plain", fd);
		close(fd);
	}
	printf("end\n");
	return 0;
}
