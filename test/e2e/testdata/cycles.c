/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * cycles N: N times, trace a child, give it a watchpoint and a DR6 value,
 * let it fork a grandchild (which inherits the DR6/DR7 values) that exits,
 * and exec /bin/true, which flushes the child's state before it exits.
 * Prints the number of cycles done.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <signal.h>
#include <sys/wait.h>

static long untouched[8];

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	for (int i = 0; i < n; i++) {
		pid_t c = traced_fork();
		if (c == 0) {
			if (fork() == 0)
				_exit(0);
			execl("/bin/true", "true", (char *)NULL);
			_exit(1);
		}
		int st;
		check(waitpid(c, &st, 0), "waitpid");
		check(ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_TRACEFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL), "SETOPTIONS");
		check(ptrace(PTRACE_POKEUSER, c, DR(0), (long)&untouched[0]), "POKE DR0");
		check(ptrace(PTRACE_POKEUSER, c, DR(7), dr7_slot(0, DR7_RW_WRITE, DR7_LEN_4)), "POKE DR7");
		check(ptrace(PTRACE_POKEUSER, c, DR(6), 0x5), "POKE DR6");
		check(ptrace(PTRACE_CONT, c, 0, 0), "CONT");
		/*
		 * Resume every stop until the child and the grandchild are both
		 * gone. Exits are matched by pid: inside a sandbox this program is
		 * PID 1, so an orphaned grandchild is reparented to it and its exit
		 * is reported twice, once to the tracer and once to the parent.
		 */
		pid_t gc = 0, exited[8];
		int nexited = 0;
		for (;;) {
			int child_done = 0, gc_done = 0;
			for (int j = 0; j < nexited; j++) {
				child_done |= exited[j] == c;
				gc_done |= gc != 0 && exited[j] == gc;
			}
			if (child_done && gc_done)
				break;
			pid_t p = waitpid(-1, &st, __WALL);
			check(p, "waitpid");
			if (WIFEXITED(st) || WIFSIGNALED(st)) {
				/* The grandchild may exit before its FORK event is seen. */
				if (nexited < 8)
					exited[nexited++] = p;
				continue;
			}
			if (p == c && (st >> 16) == PTRACE_EVENT_FORK) {
				unsigned long msg;
				check(ptrace(PTRACE_GETEVENTMSG, c, 0, &msg), "GETEVENTMSG");
				gc = (pid_t)msg;
			}
			int sig = (st >> 16) == 0 && WSTOPSIG(st) != SIGSTOP && WSTOPSIG(st) != SIGTRAP ? WSTOPSIG(st) : 0;
			check(ptrace(PTRACE_CONT, p, 0, sig), "CONT");
		}
	}
	printf("%d cycles\n", n);
	return 0;
}
