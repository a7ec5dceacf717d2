/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * dockerwatch N: a tracer that sets a 4-byte write watchpoint on a word of
 * its child with PTRACE_POKEUSER and lets the child write that word N
 * times, printing a transcript that TestDocker compares between the host
 * kernel and containers run by Docker with this repository's runsc.
 *
 * The transcript has two parts. The first needs no hits: what
 * PTRACE_PEEKUSER reads back of DR0-DR3, DR6 and DR7 after the pokes, and
 * that a DR7 value Linux refuses (an I/O breakpoint, RW=10: x86's
 * arch_build_bp_info returns EINVAL) fails with EINVAL and leaves DR7 as
 * it was. The second is every stop of the child as it writes: the wait
 * status, the siginfo of a SIGTRAP (si_code, and si_addr as an offset into
 * the writing function) and DR6 as PEEKUSER reads it there. With N = 0 the
 * child runs to its exit with the watchpoint armed, which also needs no
 * hits.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <sys/wait.h>

static volatile int watched;
static volatile int other;

/* writer is the child's only code that touches watched: si_addr of a hit
 * is printed as an offset into it. */
__attribute__((noinline)) static void writer(int n) {
	for (int i = 0; i < n; i++)
		watched = i + 1;
}

/* name describes an address of the child for the transcript. */
static void name(char *out, size_t n, unsigned long v) {
	const struct symbol syms[] = {
		{"&watched", (unsigned long)&watched, 1},
		{"&other", (unsigned long)&other, 1},
		{"writer", (unsigned long)writer, 256},
		{NULL, 0, 0},
	};
	name_of(out, n, v, syms);
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: dockerwatch N\n");
		return 2;
	}
	int n = atoi(argv[1]);
	pid_t pid = traced_fork();
	if (pid == 0) {
		writer(n);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
		die("waitpid");

	poke_dr(pid, 0, (unsigned long)&watched, name);
	poke_dr(pid, 1, (unsigned long)&other, name);
	poke_dr(pid, 7, dr7_slot(0, DR7_RW_WRITE, DR7_LEN_4), name); /* DR1 stays disabled */
	poke_dr(pid, 7, 0x000e0001, name); /* L0 as an I/O breakpoint: EINVAL */
	for (int i = 0; i < 4; i++)
		peek_dr(pid, i, name);
	peek_dr(pid, 6, name);
	peek_dr(pid, 7, name);

	/* N writes give at most N stops before the exit; more would be a bug. */
	for (int stops = 0; stops <= n + 1; stops++) {
		if (ptrace(PTRACE_CONT, pid, 0, 0))
			die("PTRACE_CONT");
		if (waitpid(pid, &st, 0) != pid)
			die("waitpid");
		if (WIFEXITED(st)) {
			printf("exited %d\n", WEXITSTATUS(st));
			return 0;
		}
		if (!WIFSTOPPED(st)) {
			printf("status %#x\n", st);
			return 1;
		}
		printf("stopped by signal %d", WSTOPSIG(st));
		siginfo_t si;
		if (ptrace(PTRACE_GETSIGINFO, pid, 0, &si))
			die("PTRACE_GETSIGINFO");
		char w[64];
		name(w, sizeof w, (unsigned long)si.si_addr);
		errno = 0;
		long v = ptrace(PTRACE_PEEKDATA, pid, (void *)&watched, 0);
		if (errno)
			die("PTRACE_PEEKDATA");
		printf(": si_code %d si_addr %s watched %d", si.si_code, w, (int)v);
		errno = 0;
		long dr6 = ptrace(PTRACE_PEEKUSER, pid, (void *)DR(6), 0);
		printf(" DR6 %#lx%s\n", dr6, errno ? " (error)" : "");
	}
	printf("more stops than writes\n");
	kill(pid, SIGKILL);
	return 1;
}
