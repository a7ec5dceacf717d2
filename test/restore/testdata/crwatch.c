/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * crwatch: a tracer whose child has a write watchpoint, with two windows in
 * which the sandbox can be checkpointed and restored: first while the child
 * runs with its watchpoint armed ("window running"), then while it is
 * stopped at its first hit ("window stopped"; only if the watchpoint
 * fires). A window lasts from its line on standard output until the tracer
 * gets SIGUSR1. Around each window the tracer prints what PTRACE_PEEKUSER
 * reads of DR0, DR6 and DR7; after it the child writes the watched word a
 * second time. The transcript must be the host kernel's, checkpoint or not.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <sys/wait.h>

static volatile long watched;

static void regs(pid_t c, const char *when) {
	printf("%s: DR0 %s DR6 %#lx DR7 %#lx\n", when,
	       ptrace(PTRACE_PEEKUSER, c, DR(0), 0) == (long)&watched ? "=&watched" : "other",
	       ptrace(PTRACE_PEEKUSER, c, DR(6), 0), ptrace(PTRACE_PEEKUSER, c, DR(7), 0));
	fflush(stdout);
}

static void on_usr1(int sig) { (void)sig; }

/* next resumes the child and describes its next stop. */
static int next(pid_t c) {
	int st;
	check(ptrace(PTRACE_CONT, c, 0, 0), "CONT");
	check(waitpid(c, &st, 0), "waitpid");
	if (WIFEXITED(st)) {
		printf("child exited %d\n", WEXITSTATUS(st));
		return 0;
	}
	printf("child stopped by signal %d\n", WSTOPSIG(st));
	return WSTOPSIG(st);
}

int main(void) {
	signal(SIGUSR1, on_usr1);
	int go[2];
	check(pipe(go), "pipe");
	pid_t c = traced_fork();
	if (c == 0) {
		char b;
		if (read(go[0], &b, 1) != 1)
			_exit(2);
		watched = 1;
		watched = 2;
		_exit(0);
	}
	int st;
	check(waitpid(c, &st, 0), "waitpid");
	check(ptrace(PTRACE_POKEUSER, c, DR(0), (long)&watched), "POKE DR0");
	check(ptrace(PTRACE_POKEUSER, c, DR(7), dr7_slot(0, DR7_RW_WRITE, DR7_LEN_4)), "POKE DR7");
	check(ptrace(PTRACE_POKEUSER, c, DR(6), 0x4), "POKE DR6");
	regs(c, "armed");
	check(ptrace(PTRACE_CONT, c, 0, 0), "CONT");
	window("running");
	check(kill(c, SIGSTOP), "kill");
	check(waitpid(c, &st, 0), "waitpid");
	regs(c, "after window running");
	check(write(go[1], "g", 1), "write");
	if (next(c) == SIGTRAP) {
		regs(c, "at first hit");
		window("stopped");
		regs(c, "after window stopped");
		if (next(c) == SIGTRAP) {
			regs(c, "at second hit");
			next(c);
		}
	}
	printf("done\n");
	return 0;
}
