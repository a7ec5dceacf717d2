/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * perthread: each thread has its own four debug registers. The main thread
 * of a traced child watches words 0-3, and a thread it creates (while the
 * main thread waits for it) words 4-7: eight distinct watchpoints in one
 * address space, more than one host thread's registers hold. Each thread
 * writes all eight words in turn. Prints, per thread, the DR6 B bits of each
 * trap it took, in order.
 *
 * The thread is let run only once the main thread sleeps in pthread_join:
 * on systrap the threads of a process share the host registers of its stub
 * threads, so a thread that starts while the main thread still runs would
 * find them taken (a difference docs/linux-compat.md names), and whether it does
 * would depend on the host's scheduling.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

static volatile long words[8];

static void write_all(void) {
	for (int i = 0; i < 8; i++)
		words[i] = i;
}

static void *thread_main(void *arg) {
	raise(SIGUSR2); /* the tracer arms this thread here */
	write_all();
	return arg;
}

/* wait_asleep waits until thread tid of process pid sleeps (state S). */
static void wait_asleep(pid_t pid, pid_t tid) {
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
	for (int i = 0; i < 20000; i++) {
		FILE *f = fopen(path, "r");
		if (!f)
			die(path);
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = 0;
		char *end = strrchr(buf, ')');
		if (end && end[1] == ' ' && end[2] == 'S')
			return;
		usleep(1000);
	}
	fprintf(stderr, "thread %d never slept\n", tid);
	exit(2);
}

/* arm gives thread p write watchpoints on words first..first+3. */
static void arm(pid_t p, int first) {
	for (int i = 0; i < 4; i++)
		if (ptrace(PTRACE_POKEUSER, p, DR(i), &words[first + i]) < 0)
			die("POKEUSER DR0-3");
	if (ptrace(PTRACE_POKEUSER, p, DR(7),
		   dr7_slot(0, DR7_RW_WRITE, DR7_LEN_4) | dr7_slot(1, DR7_RW_WRITE, DR7_LEN_4) |
			   dr7_slot(2, DR7_RW_WRITE, DR7_LEN_4) | dr7_slot(3, DR7_RW_WRITE, DR7_LEN_4)) < 0)
		die("POKEUSER DR7");
}

int main(void) {
	pid_t c = traced_fork();
	if (c == 0) {
		pthread_t th;
		pthread_create(&th, NULL, thread_main, NULL);
		pthread_join(th, NULL);
		write_all();
		_exit(0);
	}
	int st;
	if (waitpid(c, &st, 0) != c)
		die("waitpid");
	if (ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_TRACECLONE) < 0)
		die("SETOPTIONS");
	arm(c, 0);
	if (ptrace(PTRACE_CONT, c, 0, 0) < 0)
		die("CONT");
	char seen[2][128] = {"", ""};
	for (;;) {
		pid_t p = waitpid(-1, &st, __WALL);
		if (p < 0)
			die("waitpid");
		if (!WIFSTOPPED(st)) {
			if (p == c)
				break;
			continue;
		}
		int sig = WSTOPSIG(st);
		if (st >> 16 || sig == SIGSTOP) {
			sig = 0; /* clone event, new thread's first stop */
		} else if (sig == SIGUSR2) {
			wait_asleep(c, c);
			arm(p, 4);
			sig = 0;
		} else if (sig == SIGTRAP) {
			long dr6 = ptrace(PTRACE_PEEKUSER, p, DR(6), 0);
			char b[16];
			snprintf(b, sizeof b, " %lx", dr6 & 0xf);
			strncat(seen[p != c], b, sizeof seen[0] - strlen(seen[p != c]) - 1);
			sig = 0;
		}
		if (ptrace(PTRACE_CONT, p, 0, sig) < 0)
			die("CONT");
	}
	printf("thread's traps, DR6 B bits:%s\n", seen[1]);
	printf("main thread's traps, DR6 B bits:%s\n", seen[0]);
	return 0;
}
