/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * fdops: what a perf breakpoint event's fd answers when nothing hits it
 * (read with every read_format, short reads, write, seek, the ioctls, the
 * fd's flags and name), and how perf events and ptrace debug registers share
 * a thread's four slots. One line per step, to compare the host kernel's
 * transcript with a sandbox's; values that differ between runs (event ids,
 * times) are printed only as relations.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

static volatile uint64_t watched[8];

static void attr_init(struct perf_event_attr *a, int n)
{
	memset(a, 0, sizeof(*a));
	a->type = PERF_TYPE_BREAKPOINT;
	a->size = sizeof(*a);
	a->bp_type = HW_BREAKPOINT_W;
	a->bp_addr = (uint64_t)(uintptr_t)&watched[n % 8];
	a->bp_len = 8;
	a->exclude_kernel = 1;
	a->exclude_hv = 1;
}

static int open_event(struct perf_event_attr *a, pid_t pid, int group)
{
	return (int)perf_event_open(a, pid, -1, group, PERF_FLAG_FD_CLOEXEC);
}

/* counting returns a new counting event at watched[n]. */
static int counting(int n, uint64_t read_format, int disabled)
{
	struct perf_event_attr a;
	attr_init(&a, n);
	a.read_format = read_format;
	a.disabled = disabled;
	int fd = open_event(&a, 0, -1);
	if (fd < 0) {
		printf("open: %s\n", outcome(fd));
		exit(1);
	}
	return fd;
}

static void reads(void)
{
	uint64_t buf[64];
	for (uint64_t rf = 0; rf < 32; rf++) {
		if (rf & PERF_FORMAT_GROUP)
			continue;
		/* Never enabled: every value is 0, times too. */
		int fd = counting(0, rf, 1);
		memset(buf, 0xff, sizeof(buf));
		long n = read(fd, buf, sizeof(buf));
		printf("read rf=%#llx: %s:", (unsigned long long)rf, outcome(n));
		int i = 0;
		printf(" value=%llu", (unsigned long long)buf[i++]);
		if (rf & PERF_FORMAT_TOTAL_TIME_ENABLED)
			printf(" enabled=%llu", (unsigned long long)buf[i++]);
		if (rf & PERF_FORMAT_TOTAL_TIME_RUNNING)
			printf(" running=%llu", (unsigned long long)buf[i++]);
		if (rf & PERF_FORMAT_ID) {
			uint64_t id = 0;
			long r = ioctl(fd, PERF_EVENT_IOC_ID, &id);
			printf(" id-matches-ioctl=%s/%d", outcome(r), buf[i++] == id);
		}
		if (rf & PERF_FORMAT_LOST)
			printf(" lost=%llu", (unsigned long long)buf[i++]);
		printf(" next-untouched=%d\n", buf[i] == ~0ULL);
		n = read(fd, buf, (size_t)(i * 8 - 1));
		printf("read rf=%#llx short: %s\n", (unsigned long long)rf, outcome(n));
		n = read(fd, buf, 0);
		printf("read rf=%#llx zero: %s\n", (unsigned long long)rf, outcome(n));
		close(fd);
	}
	/* An enabled event: its times advance together. */
	int fd = counting(0, PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING, 0);
	getppid();
	long n = read(fd, buf, sizeof(buf));
	printf("read enabled: %s value=%llu running==enabled:%d\n", outcome(n), (unsigned long long)buf[0], buf[1] == buf[2]);
	close(fd);
	n = read(fd, buf, sizeof(buf));
	printf("read closed: %s\n", outcome(n));

	/* A group of two. */
	uint64_t grf = PERF_FORMAT_GROUP | PERF_FORMAT_ID | PERF_FORMAT_LOST | PERF_FORMAT_TOTAL_TIME_ENABLED;
	int leader = counting(0, grf, 1);
	struct perf_event_attr a;
	attr_init(&a, 1);
	a.read_format = grf;
	a.disabled = 1;
	int member = open_event(&a, 0, leader);
	printf("group member: %s\n", member < 0 ? outcome(member) : "ok");
	memset(buf, 0xff, sizeof(buf));
	n = read(leader, buf, sizeof(buf));
	uint64_t lid = 0, mid = 0;
	ioctl(leader, PERF_EVENT_IOC_ID, &lid);
	ioctl(member, PERF_EVENT_IOC_ID, &mid);
	printf("group read leader: %s nr=%llu enabled=%llu v0=%llu id0=%d lost0=%llu v1=%llu id1=%d lost1=%llu\n",
	       outcome(n), (unsigned long long)buf[0], (unsigned long long)buf[1],
	       (unsigned long long)buf[2], buf[3] == lid, (unsigned long long)buf[4],
	       (unsigned long long)buf[5], buf[6] == mid, (unsigned long long)buf[7]);
	n = read(member, buf, sizeof(buf));
	printf("group read member: %s nr=%llu\n", outcome(n), (unsigned long long)buf[0]);
	n = read(leader, buf, 63);
	printf("group read short: %s\n", outcome(n));
	printf("ids differ: %d\n", lid != mid);
	close(member);
	n = read(leader, buf, sizeof(buf));
	printf("group read after member close: %s nr=%llu\n", outcome(n), (unsigned long long)buf[0]);
	close(leader);
}

static void fileops(void)
{
	char buf[64] = { 0 };
	int fd = counting(0, 0, 1);
	printf("write: %s\n", outcome(write(fd, buf, 8)));
	printf("write zero: %s\n", outcome(write(fd, buf, 0)));
	printf("pread: %s\n", outcome(pread(fd, buf, 8, 0)));
	printf("pwrite: %s\n", outcome(pwrite(fd, buf, 8, 0)));
	printf("lseek set: %s\n", outcome(lseek(fd, 0, SEEK_SET)));
	printf("lseek cur: %s\n", outcome(lseek(fd, 0, SEEK_CUR)));
	printf("fcntl getfl: %#x\n", fcntl(fd, F_GETFL));
	printf("fcntl getfd: %d\n", fcntl(fd, F_GETFD));
	char path[64], link[128];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t l = readlink(path, link, sizeof(link) - 1);
	link[l < 0 ? 0 : l] = 0;
	printf("readlink: %s\n", l < 0 ? strerrorname_np(errno) : link);
	close(fd);
}

static void ioctls(void)
{
	uint64_t v, buf[4];
	int fd = counting(0, 0, 1);
	printf("ioctl enable: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)));
	printf("ioctl enable again: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)));
	printf("ioctl disable: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_DISABLE, 0)));
	printf("ioctl disable group: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_DISABLE, PERF_IOC_FLAG_GROUP)));
	printf("ioctl enable arg 2: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_ENABLE, 2)));
	printf("ioctl reset: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_RESET, 0)));
	printf("ioctl reset group: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_RESET, PERF_IOC_FLAG_GROUP)));
	printf("ioctl id: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_ID, &v)));
	printf("ioctl id null: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_ID, NULL)));
	v = 1;
	printf("ioctl period counting: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PERIOD, &v)));
	printf("ioctl period null: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PERIOD, NULL)));
	printf("ioctl refresh counting: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_REFRESH, 1)));
	printf("ioctl unknown perf: %s\n", outcome(ioctl(fd, _IO('$', 0x7f), 0)));
	printf("ioctl unknown other: %s\n", outcome(ioctl(fd, _IO('T', 0x7f), 0)));
	printf("ioctl FIONREAD: %s\n", outcome(ioctl(fd, FIONREAD, &v)));
	printf("ioctl FIONBIO: %s\n", outcome(ioctl(fd, FIONBIO, &(int){ 1 })));
	long n = read(fd, buf, sizeof(buf));
	printf("read after ioctls: %s value=%llu\n", outcome(n), (unsigned long long)buf[0]);
	int other = counting(1, 0, 1);
	printf("ioctl set_output none: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, -1)));
	printf("ioctl set_output self: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, fd)));
	printf("ioctl set_output other: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, other)));
	printf("ioctl set_output stdin: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, 0)));
	printf("ioctl set_output bad fd: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, 1000)));
	close(other);
	printf("ioctl set_filter: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_FILTER, "filter")));
	printf("ioctl set_filter null: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_FILTER, NULL)));
	static char longstr[8192];
	memset(longstr, 'a', sizeof(longstr) - 1);
	printf("ioctl set_filter long: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_FILTER, longstr)));
	longstr[4095] = 0;
	printf("ioctl set_filter 4095 chars: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_FILTER, longstr)));
	printf("ioctl set_bpf bad fd: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_BPF, 1000)));
	printf("ioctl set_bpf stdin: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_BPF, 0)));
	printf("ioctl pause_output: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PAUSE_OUTPUT, 1)));
	close(fd);

	struct perf_event_attr a;
	attr_init(&a, 0);
	a.sample_period = 1;
	a.disabled = 1;
	fd = open_event(&a, 0, -1);
	v = 0;
	printf("ioctl period 0: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PERIOD, &v)));
	v = 1ULL << 63;
	printf("ioctl period bit 63: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PERIOD, &v)));
	v = 5;
	printf("ioctl period 5: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PERIOD, &v)));
	printf("ioctl refresh sampling: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_REFRESH, 2)));
	printf("ioctl refresh sampling 0: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_REFRESH, 0)));
	close(fd);
	a.inherit = 1;
	fd = open_event(&a, 0, -1);
	printf("ioctl refresh inherit: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_REFRESH, 1)));
	close(fd);
	a.inherit = 0;
	a.freq = 1;
	a.sample_freq = 10;
	fd = open_event(&a, 0, -1);
	v = 100001;
	printf("ioctl freq above max: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PERIOD, &v)));
	v = 1000;
	printf("ioctl freq 1000: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PERIOD, &v)));
	close(fd);
}

static void modify(void)
{
	struct perf_event_attr a, n;
	attr_init(&a, 0);
	int fd = open_event(&a, 0, -1);
	uint64_t v;
#define MOD(what, edit) do { n = a; edit; long r = ioctl(fd, PERF_EVENT_IOC_MODIFY_ATTRIBUTES, &n); \
	printf("modify %s: %s size=%u\n", what, outcome(r), n.size); } while (0)
	MOD("same", );
	MOD("addr", n.bp_addr = (uint64_t)(uintptr_t)&watched[1]);
	MOD("type rw", n.bp_type = HW_BREAKPOINT_RW);
	MOD("len 4", n.bp_len = 4);
	MOD("disabled", n.disabled = 1);
	printf("read after disabled modify: %s\n", outcome(read(fd, &v, 8)));
	MOD("enabled", n.disabled = 0);
	MOD("sample_period", n.sample_period = 1);
	MOD("exclude_user", n.exclude_user = 1);
	MOD("sig_data", n.sig_data = 9);
	MOD("type read", n.bp_type = HW_BREAKPOINT_R);
	MOD("len 3", n.bp_len = 3);
	MOD("len 16", n.bp_len = 16; n.bp_addr = (uint64_t)(uintptr_t)&watched[2] & ~15ULL);
	MOD("len 16 and period", n.bp_len = 16; n.bp_addr = (uint64_t)(uintptr_t)&watched[2] & ~15ULL; n.sample_period = 1);
	MOD("unaligned", n.bp_addr = (uint64_t)(uintptr_t)&watched[0] + 1);
	MOD("kernel addr", n.bp_addr = 0xffff800000000000ULL);
	MOD("x len 8", n.bp_type = HW_BREAKPOINT_X);
	MOD("type software", n.type = PERF_TYPE_SOFTWARE);
	MOD("size 128", n.size = 128);
	MOD("size 0", n.size = 0);
	MOD("size 1", n.size = 1);
	MOD("branch_sample_type", n.branch_sample_type = 1);
	MOD("sample_max_stack 127", n.sample_max_stack = 127);
	MOD("reserved bit", *(uint64_t *)((char *)&n + 40) |= 1ULL << 60);
	printf("modify null: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_MODIFY_ATTRIBUTES, NULL)));
	/* A failed modify enables an event that an ioctl disabled. */
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	MOD("after ioctl disable, bad", n.sample_period = 1);
	close(fd);
	/* A disabled event keeps its slot across a modify. */
	a.disabled = 1;
	fd = open_event(&a, 0, -1);
	MOD("disabled event, enable", n.disabled = 0);
	close(fd);
#undef MOD
}

static void slots_close(void)
{
	int fds[4];
	for (int i = 0; i < 4; i++)
		fds[i] = counting(i, 0, i % 2);
	struct perf_event_attr a;
	attr_init(&a, 5);
	int r = open_event(&a, 0, -1);
	printf("fifth: %s\n", outcome(r));
	close(fds[2]);
	r = open_event(&a, 0, -1);
	printf("fifth after a close: %s\n", r < 0 ? outcome(r) : "ok");
	close(r);
	for (int i = 0; i < 4; i++)
		if (i != 2)
			close(fds[i]);
}

/* Slots shared with ptrace: a traced child's debug registers and perf events
 * on it. */
static long poke(pid_t pid, int n, uint64_t v)
{
	return ptrace(PTRACE_POKEUSER, pid, DR(n), v);
}

static void with_ptrace(void)
{
	pid_t child = traced_fork();
	if (child == 0) {
		_exit(0);
	}
	int status;
	waitpid(child, &status, 0);
	uint64_t w = (uint64_t)(uintptr_t)&watched[0];
	struct perf_event_attr a;
	int fds[4];
	for (int i = 0; i < 4; i++) {
		attr_init(&a, i);
		a.disabled = i == 3;
		fds[i] = open_event(&a, child, -1);
		printf("ptrace: perf event %d on the child: %s\n", i, fds[i] < 0 ? outcome(fds[i]) : "ok");
	}
	printf("ptrace: poke DR0 with four events: %s\n", outcome(poke(child, 0, w)));
	printf("ptrace: poke DR7 with four events: %s\n", outcome(poke(child, 7, 1)));
	printf("ptrace: poke DR6 with four events: %s\n", outcome(poke(child, 6, 0)));
	close(fds[3]);
	printf("ptrace: poke DR0 after a close: %s\n", outcome(poke(child, 0, w)));
	attr_init(&a, 4);
	int r = open_event(&a, child, -1);
	printf("ptrace: perf event next to DR0: %s\n", r < 0 ? outcome(r) : "ok");
	if (r >= 0)
		close(r);
	printf("ptrace: poke DR1: %s\n", outcome(poke(child, 1, w + 8)));
	printf("ptrace: enable DR2 by DR7: %s\n", outcome(poke(child, 7, 1 << 4)));
	printf("ptrace: enable DR0 by DR7: %s\n", outcome(poke(child, 7, 1)));
	close(fds[0]);
	close(fds[1]);
	printf("ptrace: poke DR1 after two closes: %s\n", outcome(poke(child, 1, w + 8)));
	printf("ptrace: poke DR2: %s\n", outcome(poke(child, 2, w + 16)));
	r = open_event(&a, child, -1);
	printf("ptrace: perf event next to DR0-DR2: %s\n", r < 0 ? outcome(r) : "ok");
	attr_init(&a, 6);
	int r2 = open_event(&a, child, -1);
	printf("ptrace: perf event with all four used: %s\n", r2 < 0 ? outcome(r2) : "ok");
	/* The caller's own slots are its own. */
	int mine = counting(0, 0, 1);
	printf("ptrace: perf event on the tracer: %s\n", mine < 0 ? outcome(mine) : "ok");
	close(mine);
	if (r >= 0)
		close(r);
	close(fds[2]);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
}

/* sched_times: an event's times advance only while its thread is on a CPU
 * (its perf context's clock, ctx->time): not while it sleeps, nor while it
 * is stopped, also for an event opened on a thread that was stopped
 * already, nor once it has exited. The times are read twice, 100 ms apart,
 * while the watched thread is certainly away, so that neither the reader's
 * scheduling nor the machine's load counts: they must not gain a
 * millisecond. */
static uint64_t enabled_time(int fd)
{
	uint64_t v[3] = {0};
	if (read(fd, v, sizeof(v)) != sizeof(v) || v[1] != v[2])
		printf("read of times: %s enabled %llu running %llu\n", strerrorname_np(errno), (unsigned long long)v[1],
		       (unsigned long long)v[2]);
	return v[1];
}

static void print_gain(const char *what, int fd)
{
	uint64_t t0 = enabled_time(fd);
	usleep(100 * 1000);
	uint64_t t1 = enabled_time(fd);
	printf("times %s: gained under 1 ms in 100 ms %d\n", what, t1 - t0 < 1000 * 1000);
}

/* wait_asleep waits until thread tid of this process sleeps (state S),
 * then 10 ms more, in which it leaves its CPU if it has not yet. */
static void wait_asleep(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	for (int i = 0; i < 10000; i++) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = 0;
		char *end = strrchr(buf, ')');
		if (end && end[1] == ' ' && end[2] == 'S') {
			usleep(10 * 1000);
			return;
		}
		usleep(1000);
	}
	printf("thread %d never slept\n", tid);
}

static int sleeper_go[2], sleeper_wait[2];
static pid_t sleeper_tid;

/* sleeper waits for go, then blocks on wait until the main thread lets it
 * end: it leaves its CPU with its event open. */
static void *sleeper(void *arg)
{
	char c;
	__atomic_store_n(&sleeper_tid, gettid(), __ATOMIC_RELEASE);
	if (read(sleeper_go[0], &c, 1) != 1 || read(sleeper_wait[0], &c, 1) != 1)
		exit(1);
	return arg;
}

static void sched_times(void)
{
	const uint64_t rf = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
	struct perf_event_attr a;
	attr_init(&a, 1);
	a.read_format = rf;

	pthread_t th;
	if (pipe(sleeper_go) < 0 || pipe(sleeper_wait) < 0 || pthread_create(&th, NULL, sleeper, NULL) != 0)
		exit(1);
	while (!__atomic_load_n(&sleeper_tid, __ATOMIC_ACQUIRE))
		usleep(1000);
	int fd = open_event(&a, sleeper_tid, -1);
	if (write(sleeper_go[1], "g", 1) != 1)
		exit(1);
	wait_asleep(sleeper_tid);
	print_gain("of a thread that blocked with its event open", fd);
	if (write(sleeper_wait[1], "w", 1) != 1)
		exit(1);
	pthread_join(th, NULL);
	print_gain("of a thread that exited", fd);
	close(fd);

	pid_t pid = fork();
	if (pid == 0) {
		raise(SIGSTOP);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, WUNTRACED) != pid || !WIFSTOPPED(st))
		exit(1);
	fd = open_event(&a, pid, -1);
	print_gain("of a child stopped before its event opened", fd);
	kill(pid, SIGCONT);
	waitpid(pid, &st, 0);
	print_gain("of a child that exited", fd);
	close(fd);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	reads();
	fileops();
	ioctls();
	modify();
	slots_close();
	with_ptrace();
	sched_times();
	printf("end\n");
	return 0;
}
