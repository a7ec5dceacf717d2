/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * mthits: hits in threads that run at the same time. The tracee creates
 * NTHREADS threads which, once all exist, each write the same word NWRITES
 * times, computing between writes. As each thread is created the tracer arms
 * the even-numbered ones with a write watchpoint on that word in DR1; the
 * odd-numbered ones and the main thread have none. Prints, per thread, how
 * many SIGTRAPs it took and how many of those were not a TRAP_HWBKPT with
 * exactly B1 in DR6.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define NTHREADS 4
#define NWRITES 50

static volatile uint64_t word __attribute__((aligned(8)));
static pthread_barrier_t start;

static void *writer(void *arg) {
	pthread_barrier_wait(&start);
	for (long i = 0; i < NWRITES; i++) {
		for (volatile long spin = 0; spin < 20000; spin++)
			;
		word = (uint64_t)i;
	}
	return arg;
}

static void tracee(void) {
	ptrace(PTRACE_TRACEME, 0, 0, 0);
	raise(SIGSTOP);
	pthread_t th[NTHREADS];
	pthread_barrier_init(&start, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, writer, NULL);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	_exit(0);
}

static int thread_index(const pid_t *tids, int n, pid_t p) {
	for (int i = 0; i < n; i++)
		if (tids[i] == p)
			return i;
	return -1;
}

/* start_thread arms thread number k (tid p) if it is even and resumes it
 * from its first stop. */
static void start_thread(pid_t p, int k) {
	if (k % 2 == 0 &&
	    (ptrace(PTRACE_POKEUSER, p, DR(1), &word) < 0 ||
	     ptrace(PTRACE_POKEUSER, p, DR(7), dr7_slot(1, DR7_RW_WRITE, DR7_LEN_4)) < 0))
		die("POKEUSER");
	if (ptrace(PTRACE_CONT, p, 0, 0) < 0)
		die("CONT");
}

int main(void) {
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0)
		tracee();
	int st;
	if (waitpid(child, &st, 0) != child)
		die("waitpid");
	if (ptrace(PTRACE_SETOPTIONS, child, 0, PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL) < 0)
		die("SETOPTIONS");
	if (ptrace(PTRACE_CONT, child, 0, 0) < 0)
		die("CONT");

	pid_t tids[NTHREADS], pending[NTHREADS];
	int created = 0, npending = 0, hits[NTHREADS] = {0}, bad[NTHREADS] = {0}, main_traps = 0;
	for (;;) {
		pid_t p = waitpid(-1, &st, __WALL);
		if (p < 0)
			die("waitpid");
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			if (p == child)
				break;
			continue;
		}
		int sig = WSTOPSIG(st);
		if (st >> 16 == PTRACE_EVENT_CLONE) {
			unsigned long tid;
			if (ptrace(PTRACE_GETEVENTMSG, p, 0, &tid) < 0)
				die("GETEVENTMSG");
			if (created < NTHREADS)
				tids[created++] = (pid_t)tid;
			for (int i = 0; i < npending; i++) {
				if (pending[i] == (pid_t)tid) {
					pending[i] = pending[--npending];
					start_thread((pid_t)tid, created - 1);
					break;
				}
			}
			sig = 0;
		} else if (sig == SIGSTOP) {
			/* A new thread's first stop, which may come before its
			 * creator's clone event: it waits for that. */
			int k = thread_index(tids, created, p);
			if (k < 0) {
				if (npending < NTHREADS)
					pending[npending++] = p;
				continue;
			}
			start_thread(p, k);
			continue;
		} else if (sig == SIGTRAP) {
			siginfo_t si;
			if (ptrace(PTRACE_GETSIGINFO, p, 0, &si) < 0)
				die("GETSIGINFO");
			long dr6 = ptrace(PTRACE_PEEKUSER, p, DR(6), 0);
			int k = thread_index(tids, created, p);
			if (k < 0) {
				main_traps++;
			} else {
				hits[k]++;
				if (si.si_code != 4 || (dr6 & 0xf) != 2)
					bad[k]++;
			}
			sig = 0;
		}
		if (ptrace(PTRACE_CONT, p, 0, sig) < 0)
			die("CONT");
	}
	printf("main thread: %d traps\n", main_traps);
	for (int i = 0; i < NTHREADS; i++)
		printf("thread %d (%s): %d traps, %d not TRAP_HWBKPT with DR6 B1\n", i, i % 2 ? "unarmed" : "armed", hits[i], bad[i]);
	return 0;
}
