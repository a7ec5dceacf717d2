/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * disarm: a traced child A hits a watchpoint and stays stopped; its tracer
 * disarms it (DR7 = 0) and, with A still stopped, arms a second traced child
 * B and lets it hit too. On systrap each child's stub process gets host perf
 * events while armed; A's must be closed by the disarm itself, not when A
 * next runs, so the sentry's log shows one process with events when B's are
 * opened. Prints what the children did.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <sys/wait.h>

static volatile long word;

/* child forks a traced child that writes word in a loop, arms it and
 * returns it stopped at its first hit. */
static pid_t child(void) {
	pid_t c = traced_fork();
	if (c == 0) {
		/* Bounded, so that a missed hit ends in a clear failure
		 * below instead of a hang. */
		for (long i = 0; i < 100000000; i++)
			word = i;
		_exit(0);
	}
	int st;
	check(waitpid(c, &st, 0), "waitpid");
	check(ptrace(PTRACE_POKEUSER, c, DR(0), (long)&word), "POKE DR0");
	check(ptrace(PTRACE_POKEUSER, c, DR(7), dr7_slot(0, DR7_RW_WRITE, DR7_LEN_4)), "POKE DR7");
	check(ptrace(PTRACE_CONT, c, 0, 0), "CONT");
	check(waitpid(c, &st, 0), "waitpid");
	if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) {
		fprintf(stderr, "disarm: child status %#x, want a SIGTRAP stop\n", st);
		exit(1);
	}
	return c;
}

int main(void) {
	pid_t a = child();
	printf("A hit\n");
	check(ptrace(PTRACE_POKEUSER, a, DR(7), 0), "POKE DR7 of A");
	pid_t b = child();
	printf("B hit while A stays stopped, disarmed\n");
	kill(a, SIGKILL);
	kill(b, SIGKILL);
	waitpid(a, NULL, 0);
	waitpid(b, NULL, 0);
	return 0;
}
