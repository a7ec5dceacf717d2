/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * attachwait: a ptrace request made right after the attach, with no waitpid
 * in between. Linux's ptrace_attach (kernel/ptrace.c) kicks a group-stopped
 * tracee towards its ptrace-stop (JOBCTL_TRAP_STOP | JOBCTL_TRAPPING) and
 * returns only once it is there, or has exited (wait_on_bit on
 * JOBCTL_TRAPPING_BIT, TASK_KILLABLE), for PTRACE_ATTACH and PTRACE_SEIZE
 * alike; so the request that follows finds a ptrace-stopped tracee.
 *
 * Each case forks a fresh child ITERATIONS times (100, or argv[1]) and
 * prints how many iterations gave each outcome, so that a single deviation
 * shows: "stopped attach peek: 100/100 ok".
 *
 * Targets:
 *   stopped  the child stops itself with SIGSTOP and the parent sees it
 *            with waitpid(WUNTRACED) before attaching.
 *   running  the child is not stopped: it waits in pause(). (A first
 *            version spun without system calls; on kvm in the test VM the
 *            guest kernel then stalled, an RCU stall on one vCPU, at about
 *            the time this case would have started.) Linux does not wait
 *            here: PTRACE_ATTACH only sends SIGSTOP, and PTRACE_INTERRUPT
 *            only schedules a trap (ptrace_request: task_set_jobctl_pending
 *            and ptrace_signal_wake_up, no wait), so an immediate request
 *            races the tracee on Linux too. The program therefore waits for
 *            the stop with waitpid before the request, on both sides, and
 *            checks what that stop was.
 *   exited   the stopped child is sent SIGKILL before the attach: on Linux
 *            the kill clears JOBCTL_STOPPED and a fatal signal refuses
 *            JOBCTL_TRAP_STOP (task_set_jobctl_pending), so nothing is
 *            waited for and the request fails with ESRCH. Whether the
 *            attach itself finds a zombie (EPERM) or a dying task (0)
 *            depends on scheduling: either is accepted, and only a result
 *            outside those two is printed.
 *   killed   the stopped child is sent SIGKILL by another thread at the
 *            moment of the attach: before, while or after the attach
 *            waits. What the request then finds depends on the order (ok
 *            or ESRCH, printed as "ok|ESRCH"); the attach must return and
 *            the child must die of the SIGKILL.
 *
 * Attach: "attach" is PTRACE_ATTACH; "seize+interrupt" is PTRACE_SEIZE then
 * PTRACE_INTERRUPT (on a stopped child the SEIZE waits, as ATTACH does;
 * the INTERRUPT of a tracee already in its ptrace-stop leaves it there).
 *
 * Requests: "poke" is PTRACE_POKEUSER of DR0 (ok if it succeeds and
 * PTRACE_PEEKUSER reads the value back), "peek" PTRACE_PEEKUSER of DR0 (ok
 * if it succeeds and reads 0, a fresh process's DR0), "getregs"
 * PTRACE_GETREGS.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

enum target { STOPPED, RUNNING, EXITED, KILLED, NTARGETS };
enum how { ATTACH, SEIZE, NHOWS };
enum req { POKE, PEEK, GETREGS, NREQS };

static const char *target_names[] = {"stopped", "running", "exited", "killed"};
static const char *how_names[] = {"attach", "seize+interrupt"};
static const char *req_names[] = {"poke", "peek", "getregs"};

/* DR0's value in the poke case: an address in the tracee (fork keeps it). */
static volatile long watched;

/* errname is Linux's name of errno value e, "ok" for none. */
static const char *errname(int e) {
	return e ? errno_name(e) : "ok";
}

static void child(enum target tg) {
	if (tg == RUNNING)
		for (;;)
			pause();
	kill(getpid(), SIGSTOP);
	/* Never continued: every case ends with SIGKILL. */
	_exit(3);
}

/* The killer thread of the killed case sends SIGKILL once it reads a byte
 * from the pipe go (it blocks rather than spins: see running above). */
static pid_t victim;
static int go[2];

static void *killer(void *arg) {
	char b;
	if (read(go[0], &b, 1) != 1)
		die("read");
	kill(victim, SIGKILL);
	return arg;
}

/* do_attach returns 0 or the errno of the first request that failed; for
 * seize+interrupt, *interrupt_err is the INTERRUPT's result. */
static int do_attach(enum how how, pid_t c, int *interrupt_err) {
	*interrupt_err = -1;
	if (how == ATTACH)
		return ptrace(PTRACE_ATTACH, c, 0, 0) < 0 ? errno : 0;
	int err = ptrace(PTRACE_SEIZE, c, 0, 0) < 0 ? errno : 0;
	*interrupt_err = ptrace(PTRACE_INTERRUPT, c, 0, 0) < 0 ? errno : 0;
	return err;
}

/* do_request returns "ok", the request's errno, or what was wrong. */
static const char *do_request(enum req rq, pid_t c) {
	static char b[64];
	long v;
	switch (rq) {
	case POKE:
		if (ptrace(PTRACE_POKEUSER, c, DR(0), &watched) < 0)
			return errname(errno);
		errno = 0;
		v = ptrace(PTRACE_PEEKUSER, c, DR(0), 0);
		if (errno)
			return errname(errno);
		if (v != (long)&watched)
			return "wrong DR0 read back";
		return "ok";
	case PEEK:
		errno = 0;
		v = ptrace(PTRACE_PEEKUSER, c, DR(0), 0);
		if (errno)
			return errname(errno);
		if (v != 0) {
			snprintf(b, sizeof b, "DR0 %#lx", v);
			return b;
		}
		return "ok";
	case GETREGS: {
		struct user_regs_struct regs;
		if (ptrace(PTRACE_GETREGS, c, 0, &regs) < 0)
			return errname(errno);
		return "ok";
	}
	default:
		abort();
	}
}

/* reap kills c and waits for its end, passing over the stops reported
 * before it, and returns its status. */
static int reap(pid_t c) {
	int st;
	kill(c, SIGKILL);
	for (;;) {
		if (waitpid(c, &st, __WALL) != c)
			die("waitpid (reap)");
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return st;
	}
}

/* one runs one iteration and writes its outcome to out. */
static void one(enum target tg, enum how how, enum req rq, char *out, size_t n) {
	int st;
	pthread_t th;
	pid_t c = fork();
	if (c < 0)
		die("fork");
	if (c == 0)
		child(tg);
	if (tg != RUNNING) {
		if (waitpid(c, &st, WUNTRACED) != c)
			die("waitpid (WUNTRACED)");
		if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGSTOP) {
			fprintf(stderr, "child status %#x, not stopped by SIGSTOP\n", st);
			exit(2);
		}
	}
	if (tg == EXITED)
		kill(c, SIGKILL);
	if (tg == KILLED) {
		victim = c;
		if (pthread_create(&th, NULL, killer, NULL))
			die("pthread_create");
		if (write(go[1], "k", 1) != 1)
			die("write");
	}

	int ierr, aerr = do_attach(how, c, &ierr);
	const char *res = NULL;
	char b[64];

	/* The attach's result: 0, or for exited and killed also EPERM (a
	 * zombie already); PTRACE_INTERRUPT then succeeds after a successful
	 * seize and fails with ESRCH after a failed one. */
	int attach_ok = aerr == 0 || (aerr == EPERM && (tg == EXITED || tg == KILLED));
	if (how == SEIZE && ierr != (aerr == 0 ? 0 : ESRCH))
		attach_ok = 0;
	if (!attach_ok) {
		if (how == SEIZE)
			snprintf(b, sizeof b, "seize %s interrupt %s", errname(aerr), errname(ierr));
		else
			snprintf(b, sizeof b, "attach %s", errname(aerr));
		res = b;
	}

	if (!res && tg == RUNNING) {
		/* Linux's answer to an immediate request depends on scheduling
		 * here: wait for the stop first (see the top of the file). */
		if (waitpid(c, &st, __WALL) != c)
			die("waitpid (running)");
		int want = how == ATTACH ? (SIGSTOP << 8 | 0x7f) : ((SIGTRAP | PTRACE_EVENT_STOP << 8) << 8 | 0x7f);
		if (st != want) {
			snprintf(b, sizeof b, "stop %#x", st);
			res = b;
		}
	}

	if (!res) {
		res = do_request(rq, c);
		if (tg == KILLED && (!strcmp(res, "ok") || !strcmp(res, "ESRCH")))
			res = "ok|ESRCH";
	}

	if (tg == KILLED)
		pthread_join(th, NULL);
	st = reap(c);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		snprintf(out, n, "%s, then status %#x", res, st);
	else
		snprintf(out, n, "%s", res);
}

#define MAXOUTCOMES 8

int main(int argc, char **argv) {
	int iterations = argc > 1 ? atoi(argv[1]) : 100;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pipe(go) < 0)
		die("pipe");
	for (int tg = 0; tg < NTARGETS; tg++) {
		for (int how = 0; how < NHOWS; how++) {
			for (int rq = 0; rq < NREQS; rq++) {
				char outcomes[MAXOUTCOMES][128];
				int counts[MAXOUTCOMES], n = 0;
				for (int i = 0; i < iterations; i++) {
					char o[128];
					one(tg, how, rq, o, sizeof o);
					int k;
					for (k = 0; k < n && strcmp(outcomes[k], o); k++)
						;
					if (k == n && n == MAXOUTCOMES) {
						/* The last slot takes the rest. */
						k = n - 1;
						snprintf(outcomes[k], sizeof outcomes[k], "other outcomes");
					} else if (k == n) {
						snprintf(outcomes[k], sizeof outcomes[k], "%s", o);
						counts[n++] = 0;
					}
					counts[k]++;
				}
				printf("%s %s %s:", target_names[tg], how_names[how], req_names[rq]);
				for (int k = 0; k < n; k++)
					printf("%s %d/%d %s", k ? "," : "", counts[k], iterations, outcomes[k]);
				printf("\n");
			}
		}
	}
	printf("end\n");
	return 0;
}
