/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

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
#include <signal.h>
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

/* A namer writes a name for the value v of a debug register into out: the
 * symbol of an address of the program, say, which stays the same between
 * runs where the address may not. */
typedef void (*namer)(char *out, size_t n, unsigned long v);

/* A symbol is a named range of the program's addresses, for name_of. */
struct symbol {
	const char *name;
	unsigned long addr, size;
};

/* name_of writes the name of v into out: NAME for the start of one of
 * syms (ended by one without a name), NAME+OFF inside it, else v in hex. */
static inline void name_of(char *out, size_t n, unsigned long v, const struct symbol *syms)
{
	for (; syms->name; syms++) {
		if (v == syms->addr)
			snprintf(out, n, "%s", syms->name);
		else if (v > syms->addr && v < syms->addr + syms->size)
			snprintf(out, n, "%s+%lu", syms->name, v - syms->addr);
		else
			continue;
		return;
	}
	snprintf(out, n, "0x%lx", v);
}

/* poke_dr writes v to debug register n of the stopped tracee pid and prints
 * "poke DRn NAME -> RESULT ERROR". */
static inline void poke_dr(pid_t pid, int n, unsigned long v, namer name)
{
	char w[64];
	name(w, sizeof(w), v);
	long r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(n), (void *)v);
	printf("poke DR%d %s -> %ld %s\n", n, w, r, r ? strerror(errno) : "OK");
}

/* peek_dr reads debug register n of the stopped tracee pid and prints
 * "peek DRn -> NAME", or its error. */
static inline void peek_dr(pid_t pid, int n, namer name)
{
	char w[64];
	errno = 0;
	long v = ptrace(PTRACE_PEEKUSER, pid, (void *)DR(n), 0);
	if (errno) {
		printf("peek DR%d -> -1 %s\n", n, strerror(errno));
		return;
	}
	name(w, sizeof(w), (unsigned long)v);
	printf("peek DR%d -> %s\n", n, w);
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

/* window prints "window NAME" and waits for SIGUSR1, which the program
 * must catch: test/restore checkpoints and restores the sandbox at each
 * window, then sends it. SIGUSR1 is blocked until the line is out, so
 * that it cannot be missed. */
static inline void window(const char *name)
{
	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	printf("window %s\n", name);
	fflush(stdout);
	sigset_t wait = old;
	sigdelset(&wait, SIGUSR1);
	sigsuspend(&wait);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* gated_fork forks a child that waits at a gate until its parent opens it
 * with gate_open, so that the parent can open events on the child before
 * the child runs on. It returns 0 in the child, once the gate is open, and
 * the child's pid in the parent, with the gate in *gate. A child whose
 * parent closes the gate without opening it exits with status 1. */
static inline pid_t gated_fork(int *gate)
{
	int p[2];
	if (pipe(p) < 0)
		die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char c;
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(1);
		close(p[0]);
		return 0;
	}
	close(p[0]);
	*gate = p[1];
	return pid;
}

/* gate_open lets the child of gated_fork run on. */
static inline void gate_open(int gate)
{
	if (write(gate, "g", 1) != 1)
		die("gate");
	close(gate);
}

/* traced_fork forks a child that asks to be traced (PTRACE_TRACEME) and
 * stops with SIGSTOP. It returns 0 in the child, once it is resumed, and
 * the child's pid in the parent, which still has to wait for the stop. */
static inline pid_t traced_fork(void)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
			die("PTRACE_TRACEME");
		raise(SIGSTOP);
	}
	return pid;
}

/* open_script opens the script of steps that a driver program is given as
 * its only argument, or exits with status 2 and its usage. Standard output
 * becomes line-buffered, so that a transcript ends at the step it got to. */
static inline FILE *open_script(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SCRIPT\n", program_invocation_short_name);
		exit(2);
	}
	FILE *script = fopen(argv[1], "r");
	if (!script)
		die(argv[1]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return script;
}

#endif /* HWBP_TEST_H */
