/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * crperf: perf breakpoint events on the program itself, read before and
 * after a window in which the sandbox can be checkpointed and restored
 * ("window saved"; it lasts from that line until SIGUSR1). The events:
 *
 *   A  counting write watchpoint on w[0], enabled, leader of a group with
 *      D  counting write watchpoint on w[3], enabled;
 *   B  counting write watchpoint on w[1] with inherit, opened disabled: a
 *      child that exited before the window left it 2 hits (B was enabled
 *      meanwhile), another child lives across the window with B's copy;
 *   C  sigtrap write watchpoint on w[2], sample_period 3, sig_data 0xabc,
 *      enabled by PERF_EVENT_IOC_REFRESH 2: it disables itself at its
 *      second overflow;
 *   F  sampling write watchpoint on w[5] of the child that lives across the
 *      window, period 1, its fd with O_ASYNC, F_SETOWN this process and
 *      F_SETSIG SIGRTMIN: each of the child's writes sends this process one
 *      SIGRTMIN with si_code POLL_IN and si_fd F's fd, also after a restore.
 *
 * Around the window it prints what the host kernel would show whatever the
 * time: ids (PERF_EVENT_IOC_ID and PERF_FORMAT_ID) equal to those before,
 * counts equal, the time of the disabled event B standing and the times of
 * the enabled ones going on, enabled equal to running. Then hits that need
 * the restored breakpoints: on a host that delivers no debug-register hits
 * every count is 0, on one that does they are what the comments say. The
 * transcript must be the host kernel's, checkpoint or not.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

static volatile uint64_t w[8];
static volatile int signals, badsignals, asyncs, badasyncs;
static int ff;

/* expect ends the transcript with what failed if r, a system call's
 * result, is negative. */
static void expect(long r, const char *what)
{
	if (r < 0) {
		printf("%s: %s\n", what, errno_name(errno));
		exit(1);
	}
}

static void on_trap(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	uint64_t data;
	memcpy(&data, (const char *)si + 24, 8);
	if (si->si_code == 6 /* TRAP_PERF */ && si->si_addr == (void *)&w[2] && data == 0xabc)
		signals++;
	else
		badsignals++;
}

static void on_usr1(int sig) { (void)sig; }

static void on_async(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code == POLL_IN && si->si_fd == ff)
		asyncs++;
	else
		badasyncs++;
}

static int open_bp_on(pid_t pid, volatile uint64_t *addr, uint64_t flags, uint64_t period, uint64_t read_format,
		     int group)
{
	struct perf_event_attr a = bp_attr(addr, 8, HW_BREAKPOINT_W, period);
	a.read_format = read_format;
	a.disabled = !!(flags & 1);
	a.inherit = !!(flags & 2);
	if (flags & 4) {
		a.sigtrap = 1;
		a.remove_on_exec = 1;
		a.sig_data = 0xabc;
	}
	int fd = (int)perf_event_open(&a, pid, -1, group, PERF_FLAG_FD_CLOEXEC);
	expect(fd, "perf_event_open");
	return fd;
}

static int open_bp(volatile uint64_t *addr, uint64_t flags, uint64_t period, uint64_t read_format, int group)
{
	return open_bp_on(0, addr, flags, period, read_format, group);
}

enum { DISABLED = 1, INHERIT = 2, SIGTRAP_ = 4 };
#define TIMES (PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING)

/* One read of every event. */
struct reading {
	uint64_t a[7]; /* nr, enabled, running, count A, id A, count D, id D */
	uint64_t b[3], c[3];
	uint64_t ida, idb, idc, idd;
};

static int fa, fb, fc, fd_;

static void readall(struct reading *r)
{
	expect(read(fa, r->a, sizeof(r->a)) == sizeof(r->a) ? 0 : -1, "read A");
	expect(read(fb, r->b, sizeof(r->b)) == sizeof(r->b) ? 0 : -1, "read B");
	expect(read(fc, r->c, sizeof(r->c)) == sizeof(r->c) ? 0 : -1, "read C");
	expect(ioctl(fa, PERF_EVENT_IOC_ID, &r->ida), "ID A");
	expect(ioctl(fb, PERF_EVENT_IOC_ID, &r->idb), "ID B");
	expect(ioctl(fc, PERF_EVENT_IOC_ID, &r->idc), "ID C");
	expect(ioctl(fd_, PERF_EVENT_IOC_ID, &r->idd), "ID D");
}

static void counts(const char *when, const struct reading *r)
{
	printf("%s: A %llu D %llu B %llu C %llu signals %d bad %d\n", when, (unsigned long long)r->a[3],
	       (unsigned long long)r->a[5], (unsigned long long)r->b[0], (unsigned long long)r->c[0], signals,
	       badsignals);
}

static void times(const char *when, const struct reading *r)
{
	printf("%s: enabled==running A %d B %d C %d; group of %llu, ids in it %d\n", when, r->a[1] == r->a[2],
	       r->b[1] == r->b[2], r->c[1] == r->c[2], (unsigned long long)r->a[0],
	       r->a[4] == r->ida && r->a[6] == r->idd);
}

/* child lives with B's copy until it reads a byte from go, then writes w[1]
 * and w[5] n times each and exits. */
static pid_t child(int go, int n)
{
	fflush(stdout);
	pid_t c = fork();
	expect(c, "fork");
	if (c == 0) {
		char x;
		if (read(go, &x, 1) != 1)
			_exit(2);
		for (int i = 0; i < n; i++)
			w[1] = (uint64_t)i;
		for (int i = 0; i < n; i++) {
			w[5] = (uint64_t)i;
			syscall(SYS_getppid); /* the signal arrives before the next write */
		}
		_exit(0);
	}
	return c;
}

static void finish(pid_t c, int go)
{
	int st;
	expect(write(go, "g", 1), "write");
	expect(waitpid(c, &st, 0), "waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		printf("child ended with status %#x\n", st);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGUSR1, on_usr1);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_trap;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGTRAP, &sa, NULL);
	sa.sa_sigaction = on_async;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN, &sa, NULL);

	fa = open_bp(&w[0], 0, 0, PERF_FORMAT_GROUP | PERF_FORMAT_ID | TIMES, -1);
	fd_ = open_bp(&w[3], 0, 0, 0, fa);
	fb = open_bp(&w[1], DISABLED | INHERIT, 0, TIMES, -1);
	fc = open_bp(&w[2], DISABLED | SIGTRAP_, 3, TIMES, -1);
	expect(ioctl(fc, PERF_EVENT_IOC_REFRESH, 2), "REFRESH C");

	int go1[2], go2[2];
	expect(pipe(go1), "pipe");
	expect(pipe(go2), "pipe");
	pid_t c1 = child(go1[0], 1); /* lives across the window */
	pid_t c2 = child(go2[0], 2); /* exits before it */
	ff = open_bp_on(c1, &w[5], 0, 1, 0, -1);
	expect(fcntl(ff, F_SETOWN, getpid()), "F_SETOWN F");
	expect(fcntl(ff, F_SETSIG, SIGRTMIN), "F_SETSIG F");
	expect(fcntl(ff, F_SETFL, fcntl(ff, F_GETFL) | O_ASYNC), "O_ASYNC F");
	expect(ioctl(fb, PERF_EVENT_IOC_ENABLE, 0), "ENABLE B");
	finish(c2, go2[1]); /* B: 2 from the exited child */
	expect(ioctl(fb, PERF_EVENT_IOC_DISABLE, 0), "DISABLE B");

	w[0] = 1;
	w[0] = 2; /* A: 2 */
	w[3] = 1; /* D: 1 */
	w[1] = 1; /* B disabled: nothing */
	for (int i = 0; i < 4; i++)
		w[2] = (uint64_t)i; /* C: 4, an overflow at the 3rd, 2 left */

	struct reading before, after;
	readall(&before);
	counts("before", &before);
	times("before", &before);
	printf("hits: %s\n", before.a[3] ? "yes" : "no");

	window("saved");

	readall(&after);
	counts("after", &after);
	times("after", &after);
	printf("same ids: A %d B %d C %d D %d\n", after.ida == before.ida, after.idb == before.idb,
	       after.idc == before.idc, after.idd == before.idd);
	printf("times: A goes on %d, C goes on %d, B stands %d\n", after.a[1] > before.a[1],
	       after.c[1] > before.c[1], after.b[1] == before.b[1]);
	printf("F keeps owner %d, signal %d, O_ASYNC %d\n", fcntl(ff, F_GETOWN) == getpid(),
	       fcntl(ff, F_GETSIG) == SIGRTMIN, !!(fcntl(ff, F_GETFL) & O_ASYNC));

	/* Hits on the restored breakpoints. */
	w[0] = 3;  /* A: 3 */
	w[3] = 2;  /* D: 2 */
	w[1] = 2;  /* B disabled: nothing */
	expect(ioctl(fb, PERF_EVENT_IOC_ENABLE, 0), "ENABLE B");
	finish(c1, go1[1]); /* B: 3, through the restored copy; F: 1 signal */
	printf("F: %d signals, bad %d\n", asyncs, badasyncs);
	w[1] = 3; /* B: 4 */
	for (int i = 0; i < 3; i++)
		w[2] = (uint64_t)i; /* C: 6, its second overflow at the 6th disables it */
	w[2] = 9;                  /* C disabled: nothing */
	readall(&after);
	counts("hits after", &after);

	close(fd_); /* its slot, for E */
	int fe = open_bp(&w[4], 0, 0, 0, -1);
	uint64_t ide;
	expect(ioctl(fe, PERF_EVENT_IOC_ID, &ide), "ID E");
	/* Linux's ids only grow. */
	printf("a new event's id is above the others: %d\n",
	       ide > before.ida && ide > before.idb && ide > before.idc && ide > before.idd);
	printf("done\n");
	return 0;
}
