/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * armed: traces a child and gives it four write watchpoints (DR0-DR3 on
 * words it never writes, DR7 enabling them), lets it run into a pause(),
 * prints "ready" and waits until its standard input is closed; then kills
 * the child and exits.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <sys/wait.h>

static long untouched[4];

int main(void) {
	pid_t c = traced_fork();
	if (c == 0) {
		for (;;)
			pause();
	}
	int st;
	check(waitpid(c, &st, 0), "waitpid");
	for (int k = 0; k < 4; k++)
		check(ptrace(PTRACE_POKEUSER, c, DR(k), (long)&untouched[k]), "POKE DRn");
	check(ptrace(PTRACE_POKEUSER, c, DR(7),
		     dr7_slot(0, DR7_RW_WRITE, DR7_LEN_8) | dr7_slot(1, DR7_RW_WRITE, DR7_LEN_8) |
			     dr7_slot(2, DR7_RW_WRITE, DR7_LEN_8) | dr7_slot(3, DR7_RW_WRITE, DR7_LEN_8)), "POKE DR7");
	check(ptrace(PTRACE_CONT, c, 0, 0), "CONT");
	/* Let the child run into its pause() with the watchpoints armed. */
	usleep(300000);
	printf("ready\n");
	fflush(stdout);
	char b;
	while (read(0, &b, 1) > 0)
		;
	kill(c, SIGKILL);
	waitpid(c, &st, 0);
	return 0;
}
