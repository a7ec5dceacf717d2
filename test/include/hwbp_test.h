/*
 * hwbp_test.h: what the C programs of hwbp's tests share. Each program is
 * run on a Linux kernel and in the sandbox and prints a transcript, so these
 * helpers print nothing that differs from run to run.
 *
 * Include it first, after defining _GNU_SOURCE. sandbox.BuildC, the Makefile
 * and test/bench/bench.sh pass -I test/include.
 */
#ifndef HWBP_TEST_H
#define HWBP_TEST_H

#include <errno.h>
#include <linux/hw_breakpoint.h>
#include <linux/perf_event.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/user.h>
#include <unistd.h>

/* DR(n) is the offset of debug register n in struct user, the address of
 * PTRACE_PEEKUSER and PTRACE_POKEUSER (848 + 8n on x86-64). */
#define DR(n) (offsetof(struct user, u_debugreg) + 8 * (n))

/*
 * DR7's fields (Intel SDM vol. 3, 18.2.4; Linux's asm/debugreg.h): the local
 * enable bit of slot n, and its R/W and LEN fields.
 */
#define DR7_L(n) (1UL << (2 * (n)))
#define DR7_RW_EXEC 0UL
#define DR7_RW_WRITE 1UL
#define DR7_RW_RW 3UL
#define DR7_LEN_1 0UL
#define DR7_LEN_2 1UL
#define DR7_LEN_8 2UL
#define DR7_LEN_4 3UL
#define DR7_RW_LEN(n, rw, len) (((rw) | (len) << 2) << (16 + 4 * (n)))

/* dr7_slot is DR7 with slot n enabled for accesses rw of length len. */
static inline unsigned long dr7_slot(int n, unsigned long rw, unsigned long len)
{
	return DR7_L(n) | DR7_RW_LEN(n, rw, len);
}

/* perf_event_open is the system call, which glibc does not wrap. */
static inline long perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group_fd,
				   unsigned long flags)
{
	return syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, flags);
}

/* bp_attr is the attribute of a user-mode breakpoint event on len bytes at
 * addr, of type (HW_BREAKPOINT_W, _RW or _X), that overflows every period
 * hits (0: counting); every other field is zero. */
static inline struct perf_event_attr bp_attr(const volatile void *addr, uint64_t len, uint32_t type,
					     uint64_t period)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_BREAKPOINT;
	a.size = sizeof(a);
	a.bp_type = type;
	a.bp_addr = (uint64_t)(uintptr_t)addr;
	a.bp_len = len;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	a.sample_period = period;
	return a;
}

/* errno_name is Linux's name of errno value e ("EINVAL"), or "errno N". */
static inline const char *errno_name(int e)
{
	static char buf[32];
	const char *n = strerrorname_np(e);
	if (n)
		return n;
	snprintf(buf, sizeof(buf), "errno %d", e);
	return buf;
}

/* outcome is what a system call returned: r itself, or errno's name when r
 * is negative. The string lasts until the next call. */
static inline const char *outcome(long r)
{
	static char buf[32];
	if (r < 0)
		return errno_name(errno);
	snprintf(buf, sizeof(buf), "%ld", r);
	return buf;
}

/* die reports that what failed, with errno, on standard error, and exits
 * with status 2: the test's own machinery failed, not the behaviour under
 * test. */
static inline __attribute__((noreturn)) void die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
	exit(2);
}

/* check dies with what if r, a system call's result, is negative. */
static inline void check(long r, const char *what)
{
	if (r < 0)
		die(what);
}

#endif /* HWBP_TEST_H */
