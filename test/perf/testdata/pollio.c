/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * pollio: readiness of a perf breakpoint event's fd (poll, select, epoll)
 * and its O_ASYNC/F_SETOWN/F_SETSIG state, then, with the argument "hits",
 * the signals that overflows send to the fd's owner. One line per step, to
 * compare the host kernel's transcript with a sandbox's.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/wait.h>

static volatile uint64_t watched[4];

static int open_event(pid_t pid, uint64_t period, int disabled, int inherit)
{
	struct perf_event_attr a = bp_attr(&watched[0], 8, HW_BREAKPOINT_W, period);
	a.disabled = disabled;
	a.inherit = inherit;
	int fd = (int)perf_event_open(&a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("open: %s\n", outcome(fd));
		exit(1);
	}
	return fd;
}

/* readiness prints what poll, select and epoll report for fd. */
static void readiness(const char *name, int fd)
{
	short masks[] = {POLLIN | POLLOUT | POLLPRI | POLLRDHUP, POLLIN, POLLOUT, 0};
	for (unsigned i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		struct pollfd p = {.fd = fd, .events = masks[i], .revents = 0x7fff};
		int r = poll(&p, 1, 0);
		printf("%s-poll-%#x: %s revents %#x\n", name, masks[i], outcome(r), r >= 0 ? p.revents : 0);
	}
	fd_set rd, wr, ex;
	FD_ZERO(&rd);
	FD_ZERO(&wr);
	FD_ZERO(&ex);
	FD_SET(fd, &rd);
	FD_SET(fd, &wr);
	FD_SET(fd, &ex);
	struct timeval tv = {0, 0};
	int r = select(fd + 1, &rd, &wr, &ex, &tv);
	printf("%s-select: %s r%d w%d x%d\n", name, outcome(r), FD_ISSET(fd, &rd), FD_ISSET(fd, &wr), FD_ISSET(fd, &ex));

	uint32_t emasks[] = {EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP, EPOLLIN, 0, EPOLLIN | EPOLLET};
	for (unsigned i = 0; i < sizeof(emasks) / sizeof(emasks[0]); i++) {
		int ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event e = {.events = emasks[i], .data.u64 = 7};
		r = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
		printf("%s-epoll-%#x-add: %s\n", name, emasks[i], outcome(r));
		for (int n = 0; n < 2; n++) {
			struct epoll_event got[2];
			memset(got, 0, sizeof(got));
			r = epoll_wait(ep, got, 2, 0);
			printf("%s-epoll-%#x-wait%d: %s events %#x data %llu\n", name, emasks[i], n, outcome(r),
			       r > 0 ? got[0].events : 0, r > 0 ? (unsigned long long)got[0].data.u64 : 0ULL);
		}
		close(ep);
	}
}

static void flags(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	printf("getfl: %#x\n", fl);
	printf("getown: %s\n", outcome(fcntl(fd, F_GETOWN)));
	printf("getsig: %s\n", outcome(fcntl(fd, F_GETSIG)));
	printf("setfl-async: %s\n", outcome(fcntl(fd, F_SETFL, fl | O_ASYNC)));
	printf("getfl-async: %#x\n", fcntl(fd, F_GETFL));
	printf("setown: %s\n", outcome(fcntl(fd, F_SETOWN, getpid())));
	printf("getown-self: %d\n", fcntl(fd, F_GETOWN) == getpid());
	printf("setsig-bad: %s\n", outcome(fcntl(fd, F_SETSIG, 65)));
	printf("setsig: %s\n", outcome(fcntl(fd, F_SETSIG, SIGRTMIN)));
	printf("getsig-rt: %d\n", fcntl(fd, F_GETSIG) == SIGRTMIN);
	int off = 0;
	printf("fioasync-off: %s\n", outcome(ioctl(fd, FIOASYNC, &off)));
	printf("getfl-off: %#x\n", fcntl(fd, F_GETFL));
	readiness("async", fd);
}

static void nohits(void)
{
	int fd = open_event(0, 0, 1, 0);
	readiness("counting-disabled", fd);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	readiness("counting-enabled", fd);
	close(fd);

	fd = open_event(0, 1, 0, 0);
	readiness("sampling", fd);
	flags(fd);
	close(fd);

	/* An event on a child, before and after its exit. */
	int gate;
	pid_t pid = gated_fork(&gate);
	if (pid == 0)
		_exit(0);
	fd = open_event(pid, 0, 0, 0);
	readiness("child-live", fd);
	gate_open(gate);
	waitpid(pid, NULL, 0);
	readiness("child-exited", fd);
	close(fd);

	/*
	 * An inherited event whose grandchild outlives the child it watches:
	 * Linux's is_event_hup waits for the copies.
	 */
	int go[2];
	if (pipe(go) < 0)
		exit(1);
	int ready[2];
	if (pipe(ready) < 0)
		exit(1);
	pid = fork();
	if (pid == 0) {
		char c;
		close(go[1]);
		read(go[0], &c, 1);
		if (fork() == 0) {
			read(go[0], &c, 1);
			_exit(0);
		}
		_exit(0);
	}
	close(go[0]);
	fd = open_event(pid, 0, 0, 1);
	write(go[1], "x", 1);
	waitpid(pid, NULL, 0);
	readiness("inherit-child-exited", fd);
	close(go[1]);
	close(fd);
}

/* What the handler saw of each signal: at is watched[0] then. */
static struct {
	int signo, code, fd;
	long band;
	uint64_t at;
} got[16];
static volatile int ngot;

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (ngot < 16) {
		got[ngot].signo = sig;
		got[ngot].code = si->si_code;
		got[ngot].band = si->si_band;
		got[ngot].fd = si->si_fd;
		got[ngot].at = watched[0];
	}
	ngot++;
}

/*
 * writes makes n writes to watched[0], 1 to n, each followed by a system
 * call, at whose end a signal that the write caused has arrived however
 * late the kernel sends it; then disables the event evfd (unless it is -1)
 * and prints and forgets what arrived. fd is the expected si_fd.
 */
static void writes(const char *name, int n, int evfd, int fd)
{
	for (int i = 1; i <= n; i++) {
		watched[0] = i;
		syscall(SYS_getppid);
	}
	if (evfd >= 0)
		ioctl(evfd, PERF_EVENT_IOC_DISABLE, 0);
	printf("%s: %d signals", name, ngot);
	for (int i = 0; i < ngot && i < 16; i++) {
		int sig = got[i].signo;
		char name[16];
		if (sig >= SIGRTMIN)
			snprintf(name, sizeof(name), "RTMIN+%d", sig - SIGRTMIN);
		else
			snprintf(name, sizeof(name), "%s", sigabbrev_np(sig));
		printf(" [%s code %d band %#lx fd%s at %llu]", name, got[i].code, got[i].band,
		       got[i].fd == fd ? "=" : got[i].fd == 0 ? "0" : "?", (unsigned long long)got[i].at);
	}
	printf("\n");
	ngot = 0;
	watched[0] = 0;
}

/* async opens a sampling event on this thread with O_ASYNC set as setup says. */
static void async(const char *name, int sig, int how)
{
	int fd = open_event(0, how == 3 ? 0 : 1, how == 4, 0);
	int afd = fd;
	if (how != 2 && how != 8)
		fcntl(fd, F_SETOWN, getpid());
	if (sig && how != 8)
		fcntl(fd, F_SETSIG, sig);
	switch (how) {
	case 8: {
		/*
		 * O_ASYNC set through a dup before any owner or signal:
		 * si_fd is still the dup's (fa_fd of the setfl).
		 */
		afd = dup(fd);
		fcntl(afd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
		fcntl(fd, F_SETSIG, sig);
		fcntl(fd, F_SETOWN, getpid());
		break;
	}
	case 5: {
		/* O_ASYNC set through a dup: si_fd is the dup's. */
		afd = dup(fd);
		fcntl(afd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
		break;
	}
	case 6: {
		int on = 1;
		ioctl(fd, FIOASYNC, &on);
		break;
	}
	case 7: {
		struct f_owner_ex o = {.type = F_OWNER_TID, .pid = gettid()};
		fcntl(fd, F_SETOWN_EX, &o);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
		break;
	}
	default:
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
	}
	if (how == 4)
		printf("%s-refresh: %s\n", name, outcome(ioctl(fd, PERF_EVENT_IOC_REFRESH, 2)));
	writes(name, 3, fd, afd);
	if (afd != fd)
		close(afd);
	close(fd);
}

/*
 * pendingAtExit: an overflow in a child before O_ASYNC is set is reported
 * when the child exits (perf_event_exit_event wakes the event up).
 */
static void pending_at_exit(void)
{
	int go[2], done[2];
	if (pipe(go) < 0 || pipe(done) < 0)
		exit(1);
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		read(go[0], &c, 1);
		watched[0] = 7;
		write(done[1], "x", 1);
		read(go[0], &c, 1);
		_exit(0);
	}
	int fd = open_event(pid, 1, 0, 0);
	char c;
	write(go[1], "x", 1);
	read(done[0], &c, 1);
	fcntl(fd, F_SETOWN, getpid());
	fcntl(fd, F_SETSIG, SIGRTMIN);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
	printf("pending-before-exit: %d signals\n", ngot);
	ngot = 0;
	write(go[1], "x", 1);
	waitpid(pid, NULL, 0);
	writes("pending-at-exit", 0, -1, fd);
	close(fd);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
}

/*
 * pgrp_owner: a process group owner (F_SETOWN with -pgrp) gets the signal in
 * every process of the group; the other process blocks it and finds it
 * pending.
 */
static void pgrp_owner(void)
{
	int check[2], result[2];
	if (pipe(check) < 0 || pipe(result) < 0)
		exit(1);
	pid_t c = fork();
	if (c == 0) {
		char ch;
		setpgid(0, 0);
		pid_t g = fork();
		if (g == 0) {
			sigset_t set, pend;
			sigemptyset(&set);
			sigaddset(&set, SIGRTMIN);
			sigprocmask(SIG_BLOCK, &set, NULL);
			write(result[1], "r", 1);
			read(check[0], &ch, 1);
			sigpending(&pend);
			ch = sigismember(&pend, SIGRTMIN) ? 'y' : 'n';
			write(result[1], &ch, 1);
			_exit(0);
		}
		read(result[0], &ch, 1);
		int fd = open_event(0, 1, 0, 0);
		fcntl(fd, F_SETOWN, -getpgrp());
		fcntl(fd, F_SETSIG, SIGRTMIN);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
		printf("pgrp-getown: %d\n", fcntl(fd, F_GETOWN) == -getpgrp());
		writes("pgrp", 1, fd, fd);
		write(check[1], "c", 1);
		read(result[0], &ch, 1);
		printf("pgrp-other-process-pending: %c\n", ch);
		waitpid(g, NULL, 0);
		_exit(0);
	}
	waitpid(c, NULL, 0);
	close(check[0]);
	close(check[1]);
	close(result[0]);
	close(result[1]);
}

static void hits(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGIO, &sa, NULL);
	sigaction(SIGRTMIN, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTRAP, &sa, NULL);

	async("plain-sigio", 0, 0);
	async("setsig-rtmin", SIGRTMIN, 0);
	async("setsig-sigio", SIGIO, 0);
	async("setsig-usr1", SIGUSR1, 0);
	async("setsig-trap", SIGTRAP, 0);
	async("no-owner", SIGRTMIN, 2);
	async("counting", SIGRTMIN, 3);
	async("limit", SIGRTMIN, 4);
	async("dup", SIGRTMIN, 5);
	async("fioasync", SIGRTMIN, 6);
	async("owner-tid", SIGRTMIN, 7);
	async("dup-first", SIGRTMIN, 8);
	pending_at_exit();
	pgrp_owner();
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 1 && strcmp(argv[1], "hits") == 0) {
		hits();
		printf("end\n");
		return 0;
	}
	nohits();
	printf("end\n");
	return 0;
}
