/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * debugregs: what a tracer sees of a stopped child's debug registers and of
 * a single-step over a system call, in canonical lines that TestHwbpFlag
 * compares between the host kernel, gVisor's own runsc and this
 * repository's runsc with and without --hwbp.
 *
 * The tracer writes DR0 (the address of a word of the child) and DR7 (an
 * enabled 4-byte write watchpoint on it) with PTRACE_POKEUSER and reads them
 * back with PTRACE_PEEKUSER: Linux reads back what was written, stock
 * gVisor reads 0. It then single-steps the child up to the syscall
 * instruction of a getpid, and once more over it: Linux stops right after
 * that instruction (si_code TRAP_BRKPT) with DR6's BS bit set, stock gVisor
 * one instruction later (TRAP_TRACE) and reads DR6 as 0.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <sys/wait.h>

static volatile int watched;

extern char sc_getpid[], sc_syscall[];
__asm__(".text\n"
	"sc_getpid:\n"
	"	mov $39, %eax\n" /* getpid */
	"sc_syscall:\n"
	"	syscall\n"
	"	nop\n"
	"	nop\n"
	"	ret\n");

/* where names an address of the child for the transcript. */
static void where(char *out, size_t n, unsigned long v) {
	const struct symbol syms[] = {
		{"watched", (unsigned long)&watched, 1},
		{"sc_getpid", (unsigned long)sc_getpid, 16},
		{NULL, 0, 0},
	};
	name_of(out, n, v, syms);
}

/* step single-steps pid once and returns its instruction pointer. */
static unsigned long step(pid_t pid, siginfo_t *si) {
	int st;
	if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0))
		die("PTRACE_SINGLESTEP");
	if (waitpid(pid, &st, 0) != pid)
		die("waitpid");
	if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) {
		fprintf(stderr, "debugregs: step: status 0x%x\n", st);
		exit(2);
	}
	if (ptrace(PTRACE_GETSIGINFO, pid, 0, si))
		die("PTRACE_GETSIGINFO");
	struct user_regs_struct regs;
	if (ptrace(PTRACE_GETREGS, pid, 0, &regs))
		die("PTRACE_GETREGS");
	return regs.rip;
}

int main(void) {
	setvbuf(stdout, NULL, _IONBF, 0);
	pid_t pid = traced_fork();
	if (pid == 0) {
		((void (*)(void))sc_getpid)();
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
		die("waitpid");

	poke_dr(pid, 0, (unsigned long)&watched, where);
	poke_dr(pid, 7, dr7_slot(0, DR7_RW_WRITE, DR7_LEN_4), where);
	peek_dr(pid, 0, where);
	peek_dr(pid, 7, where);

	siginfo_t si;
	unsigned long ip = 0;
	for (int i = 0; ip != (unsigned long)sc_syscall; i++) {
		if (i == 100000) {
			fprintf(stderr, "debugregs: the child never reached the syscall instruction\n");
			return 2;
		}
		ip = step(pid, &si);
	}
	char w[64];
	ip = step(pid, &si);
	where(w, sizeof w, ip);
	printf("step over syscall -> code %d ip %s\n", si.si_code, w);
	peek_dr(pid, 6, where);

	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	printf("end\n");
	return 0;
}
