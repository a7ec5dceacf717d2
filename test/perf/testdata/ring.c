/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * ring: the mmap ring buffer of a perf breakpoint event. Without arguments,
 * what mmap, munmap and poll answer without hits; with "hits", the records
 * that writes to a watched word leave in the ring (PERF_RECORD_SAMPLE,
 * PERF_RECORD_LOST), the wakeups and the readiness they give. Values that
 * legitimately differ between kernels (TIDs, times, addresses) are printed
 * as relations that hold on both.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

static volatile uint64_t watched[2];
static long pg;

static const char *merr(void *p)
{
	return p == MAP_FAILED ? strerrorname_np(errno) : "ok";
}

struct opts {
	uint64_t period, sample_type, read_format;
	int disabled, inherit, watermark, sample_id_all, use_clockid;
	uint32_t wakeup;
	int cpu;
};

static int open_event(struct opts o)
{
	struct perf_event_attr a = bp_attr(&watched[0], 8, HW_BREAKPOINT_W, o.period);
	a.sample_type = o.sample_type;
	a.read_format = o.read_format;
	a.disabled = o.disabled;
	a.inherit = o.inherit;
	a.watermark = o.watermark;
	a.wakeup_events = o.wakeup;
	a.sample_id_all = o.sample_id_all;
	if (o.use_clockid) {
		a.use_clockid = 1;
		a.clockid = CLOCK_MONOTONIC;
	}
	int fd = (int)perf_event_open(&a, 0, o.cpu, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("open: %s\n", outcome(fd));
		exit(1);
	}
	return fd;
}

static short poll1(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT | POLLPRI, .revents = 0};
	int r = poll(&p, 1, 0);
	return r < 0 ? -1 : p.revents;
}

static void header(const char *name, struct perf_event_mmap_page *p)
{
	printf("%s-header: version %u compat %u lock %u index %u offset %lld te==tr %d te>0 %d cap %#llx "
	       "pmc_width %u time_shift %u time_mult %u time_offset %llu time_zero %llu size %u "
	       "time_cycles %llu time_mask %llu head %llu tail %llu data_offset %llu data_size %llu "
	       "aux %llu %llu %llu %llu\n",
	       name, p->version, p->compat_version, p->lock, p->index, p->offset,
	       p->time_enabled == p->time_running, p->time_enabled > 0, p->capabilities,
	       p->pmc_width, p->time_shift, p->time_mult, p->time_offset, p->time_zero, p->size,
	       p->time_cycles, p->time_mask, p->data_head, p->data_tail, p->data_offset,
	       p->data_size, p->aux_head, p->aux_tail, p->aux_offset, p->aux_size);
}

static struct opts sampling(void)
{
	struct opts o = {.period = 1, .disabled = 1, .cpu = -1,
			 .sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME};
	return o;
}

static void nohits(void)
{
	struct opts o = sampling();
	int fd = open_event(o);
	void *p;
	printf("poll-unmapped: %#x\n", poll1(fd));

	/* Sizes: 1 + 2^n pages, offset 0, shared. */
	int sizes[] = {0, 1, 2, 3, 4, 5, 6, 9, 17};
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p = mmap(NULL, sizes[i] * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		printf("mmap-%d-pages: %s\n", sizes[i], merr(p));
		if (p != MAP_FAILED)
			printf("munmap-%d-pages: %s\n", sizes[i], outcome(munmap(p, sizes[i] * pg)));
	}
	p = mmap(NULL, 2 * pg - 100, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-unaligned-length: %s\n", merr(p));
	if (p != MAP_FAILED)
		munmap(p, 2 * pg);
	p = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	printf("mmap-private: %s\n", merr(p));
	p = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, pg);
	printf("mmap-offset-no-ring: %s\n", merr(p));
	p = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED, fd, 0);
	printf("mmap-exec: %s\n", merr(p));
	if (p != MAP_FAILED)
		munmap(p, 3 * pg);
	p = mmap(NULL, 3 * pg, PROT_NONE, MAP_SHARED, fd, 0);
	printf("mmap-none: %s\n", merr(p));
	if (p != MAP_FAILED)
		munmap(p, 3 * pg);

	/* One ring, mapped twice; other sizes and offsets meanwhile. */
	struct perf_event_mmap_page *r1 = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-ring: %s\n", merr(r1));
	header("disabled", r1);
	printf("poll-mapped: %#x\n", poll1(fd));
	struct perf_event_mmap_page *r2 = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-again: %s same %d\n", merr(r2), r2 != MAP_FAILED && r2 != r1);
	if (r2 != MAP_FAILED) {
		r1->data_tail = 0x40;
		printf("shared-tail: %llu\n", r2->data_tail);
		r1->data_tail = 0;
	}
	p = mmap(NULL, 5 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-other-size: %s\n", merr(p));
	p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-smaller: %s\n", merr(p));
	p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 3 * pg);
	printf("mmap-aux-offset: %s\n", merr(p));
	p = mmap(NULL, 3 * pg, PROT_READ, MAP_SHARED, fd, 0);
	printf("mmap-readonly-again: %s\n", merr(p));
	if (p != MAP_FAILED)
		munmap(p, 3 * pg);
	printf("munmap-first-page: %s\n", outcome(munmap(r2, pg)));
	printf("munmap-again: %s\n", outcome(munmap(r2, 3 * pg)));
	printf("ioctl-enable: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)));
	header("enabled", r1);
	printf("ioctl-disable: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_DISABLE, 0)));
	header("disabled-again", r1);
	printf("ioctl-reset: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_RESET, 0)));
	header("reset", r1);
	printf("ioctl-pause: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PAUSE_OUTPUT, 1)));
	printf("ioctl-resume: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PAUSE_OUTPUT, 0)));
	printf("poll-mapped-again: %#x\n", poll1(fd));

	/* Redirection to and from an event with a ring. */
	int other = open_event(o);
	printf("set-output-to-ring: %s\n", outcome(ioctl(other, PERF_EVENT_IOC_SET_OUTPUT, fd)));
	printf("set-output-from-ring: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, other)));
	close(other);

	/* A child does not get the mapping (VM_DONTCOPY). */
	pid_t pid = fork();
	if (pid == 0) {
		_exit(mincore(r1, pg, (unsigned char[1]){0}) == 0 ? 0 : errno);
	}
	int status;
	waitpid(pid, &status, 0);
	printf("fork-child-mapping: %s\n", WEXITSTATUS(status) ? strerrorname_np(WEXITSTATUS(status)) : "mapped");

	printf("munmap-ring: %s\n", outcome(munmap(r1, 3 * pg)));
	printf("poll-unmapped-again: %#x\n", poll1(fd));
	p = mmap(NULL, 5 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-new-size: %s\n", merr(p));
	if (p != MAP_FAILED) {
		header("new-size", p);
		printf("mmap-after-close-fd: %s\n", outcome(close(fd)));
		header("after-close", p);
		printf("munmap-after-close: %s\n", outcome(munmap(p, 5 * pg)));
	}
	p = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-closed-fd: %s\n", merr(p));

	/* Read-only mapping: the ring overwrites; data_tail is the guest's. */
	fd = open_event(o);
	r1 = mmap(NULL, 3 * pg, PROT_READ, MAP_SHARED, fd, 0);
	printf("mmap-readonly: %s\n", merr(r1));
	if (r1 != MAP_FAILED)
		header("readonly", r1);
	printf("mprotect-write: %s\n", outcome(mprotect(r1, 3 * pg, PROT_READ | PROT_WRITE)));
	printf("mprotect-exec: %s\n", outcome(mprotect(r1, 3 * pg, PROT_READ | PROT_EXEC)));
	printf("mprotect-part: %s\n", outcome(mprotect(r1, pg, PROT_READ)));
	printf("mremap-grow: %s\n", merr(mremap(r1, 3 * pg, 5 * pg, MREMAP_MAYMOVE)));
	printf("mremap-shrink: %s\n", merr(mremap(r1, 3 * pg, 2 * pg, 0)));
	/* A ring moves only whole (perf_mmap_may_split). */
	void *dst = mmap(NULL, 3 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mremap-move-part: %s\n", merr(mremap(r1, pg, pg, MREMAP_MAYMOVE | MREMAP_FIXED, dst)));
	void *moved = mremap(r1, 3 * pg, 3 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	printf("mremap-move-whole: %s\n", moved == dst ? "moved" : merr(moved));
	if (moved == dst) {
		header("moved", dst);
		r1 = dst;
	} else {
		munmap(dst, 3 * pg);
	}
	close(fd);
	munmap(r1, 3 * pg);

	/* Counting events and inherited ones. */
	o.period = 0;
	fd = open_event(o);
	p = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-counting: %s\n", merr(p));
	if (p != MAP_FAILED) {
		header("counting", p);
		printf("poll-counting: %#x\n", poll1(fd));
		munmap(p, 3 * pg);
	}
	close(fd);
	o = sampling();
	o.inherit = 1;
	fd = open_event(o);
	p = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-inherit: %s\n", merr(p));
	close(fd);
	o.cpu = 0;
	fd = open_event(o);
	p = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-inherit-cpu: %s\n", merr(p));
	if (p != MAP_FAILED)
		munmap(p, 3 * pg);
	close(fd);
	/* A large ring needs locked memory beyond the per-user allowance. */
	o = sampling();
	fd = open_event(o);
	p = mmap(NULL, (1 + 4096) * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap-large: %s\n", merr(p));
	if (p != MAP_FAILED)
		munmap(p, (1 + 4096) * pg);
	close(fd);
}

/* store writes v to watched[i]; the label after_store is the instruction
 * after the store, where a data breakpoint traps. */
extern char after_store[];
__attribute__((noinline)) static void store(int i, uint64_t v)
{
	__asm__ volatile("movq %1, %0\n\t.globl after_store\nafter_store:" : "=m"(watched[i]) : "r"(v) : "memory");
}

static uint64_t now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct ring {
	struct perf_event_mmap_page *p;
	unsigned char *data;
	uint64_t size;
	size_t len;
};

static struct ring map_ring(int fd, int data_pages, int prot)
{
	struct ring r;
	r.len = (1 + data_pages) * pg;
	r.p = mmap(NULL, r.len, prot, MAP_SHARED, fd, 0);
	if (r.p == MAP_FAILED) {
		printf("mmap: %s\n", strerrorname_np(errno));
		exit(1);
	}
	r.data = (unsigned char *)r.p + pg;
	r.size = data_pages * pg;
	return r;
}

static uint64_t id_of(int fd)
{
	uint64_t id = 0;
	ioctl(fd, PERF_EVENT_IOC_ID, &id);
	return id;
}

/* copy copies n bytes at ring position pos. */
static void copy(struct ring *r, uint64_t pos, void *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((unsigned char *)dst)[i] = r->data[(pos + i) & (r->size - 1)];
}

struct expect {
	uint64_t sample_type, read_format, id, t0, t1, last_time;
	int sample_id_all;
	pid_t pid, tid;
};

static uint64_t take(unsigned char **b)
{
	uint64_t v;
	memcpy(&v, *b, 8);
	*b += 8;
	return v;
}

/* print_id_sample prints a sample_id trailer. */
static void print_fields(const char *name, unsigned char *b, struct expect *e, int sample)
{
	uint64_t st = e->sample_type;
	if (sample && (st & PERF_SAMPLE_IDENTIFIER))
		printf(" ident==id %d", take(&b) == e->id);
	if (sample && (st & PERF_SAMPLE_IP))
		printf(" ip-after_store %ld", (long)(take(&b) - (uint64_t)(uintptr_t)after_store));
	if (st & PERF_SAMPLE_TID) {
		uint64_t v = take(&b);
		printf(" pid==getpid %d tid==gettid %d", (pid_t)(uint32_t)v == e->pid, (pid_t)(v >> 32) == e->tid);
	}
	if (st & PERF_SAMPLE_TIME) {
		uint64_t t = take(&b);
		printf(" time-in-window %d increasing %d", e->t0 <= t && t <= e->t1, t >= e->last_time);
		e->last_time = t;
	}
	if (sample && (st & PERF_SAMPLE_ADDR))
		printf(" addr==bp_addr %d", take(&b) == (uint64_t)(uintptr_t)&watched[0]);
	if (st & PERF_SAMPLE_ID)
		printf(" id==id %d", take(&b) == e->id);
	if (st & PERF_SAMPLE_STREAM_ID)
		printf(" stream_id==id %d", take(&b) == e->id);
	if (st & PERF_SAMPLE_CPU) {
		uint64_t v = take(&b);
		printf(" cpu<ncpu %d res %u", (uint32_t)v < (uint32_t)sysconf(_SC_NPROCESSORS_CONF), (uint32_t)(v >> 32));
	}
	if (sample && (st & PERF_SAMPLE_PERIOD))
		printf(" period %llu", (unsigned long long)take(&b));
	if (sample && (st & PERF_SAMPLE_READ)) {
		printf(" read-value %llu", (unsigned long long)take(&b));
		if (e->read_format & PERF_FORMAT_ID)
			printf(" read-id==id %d", take(&b) == e->id);
		if (e->read_format & PERF_FORMAT_LOST)
			printf(" read-lost %llu", (unsigned long long)take(&b));
	}
	if (!sample && (st & PERF_SAMPLE_IDENTIFIER))
		printf(" ident==id %d", take(&b) == e->id);
	(void)name;
}

/* drain prints the records from data_tail to data_head and consumes them. */
static void drain(const char *name, struct ring *r, struct expect *e)
{
	uint64_t head = __atomic_load_n(&r->p->data_head, __ATOMIC_ACQUIRE);
	uint64_t tail = r->p->data_tail;
	printf("%s-head: %llu tail %llu\n", name, (unsigned long long)head, (unsigned long long)tail);
	int n = 0;
	while (tail < head) {
		struct perf_event_header h;
		copy(r, tail, &h, sizeof(h));
		unsigned char buf[4096];
		if (h.size < sizeof(h) || h.size > sizeof(buf)) {
			printf("%s-record-%d: bad size %u\n", name, n, h.size);
			break;
		}
		copy(r, tail, buf, h.size);
		printf("%s-record-%d: type %u misc %u size %u", name, n, h.type, h.misc, h.size);
		if (h.type == PERF_RECORD_SAMPLE) {
			print_fields(name, buf + sizeof(h), e, 1);
		} else if (h.type == PERF_RECORD_LOST) {
			unsigned char *b = buf + sizeof(h);
			printf(" id==id %d", take(&b) == e->id);
			printf(" lost %llu", (unsigned long long)take(&b));
			if (e->sample_id_all)
				print_fields(name, b, e, 0);
		}
		printf("\n");
		tail += h.size;
		n++;
	}
	__atomic_store_n(&r->p->data_tail, tail, __ATOMIC_RELEASE);
}

static void writes(int n, uint64_t *t0, uint64_t *t1)
{
	if (t0)
		*t0 = now();
	for (int i = 0; i < n; i++)
		store(0, i);
	if (t1)
		*t1 = now();
}

static void read_lost(const char *name, int fd)
{
	uint64_t v[3];
	int r = read(fd, v, sizeof(v));
	printf("%s-read: %s count %llu lost %llu\n", name, outcome(r), (unsigned long long)v[0], (unsigned long long)v[2]);
}

/* switches returns how often the calling thread has left its CPU: its
 * voluntary and involuntary context switches. */
static long switches(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_THREAD, &ru) < 0)
		exit(1);
	return ru.ru_nvcsw + ru.ru_nivcsw;
}

/* sleeps_switch is set if getrusage counts the context switch of a sleep:
 * Linux does; gVisor counts only sched_yield, so there it stays 0. */
static int sleeps_switch;

/* period_change prints the counts of the samples around
 * PERF_EVENT_IOC_PERIOD from p0 to p1: one write, the ioctl, eight writes.
 * Where they fall depends on whether the thread leaves its CPU between the
 * ioctl and the next write: when it comes back, hw_breakpoint_add re-arms
 * the period. So each path is forced, the case running again until it took
 * it: with sleep, a sleep there, which switches unless its timer expires
 * before the thread gets to sleep (seen under emulation on a loaded
 * machine); without, no switch at all, which a loaded machine may not
 * allow at once. */
static void period_change(uint64_t p0, uint64_t p1, uint64_t st, int sleep)
{
	const char *path = sleep ? "sleep" : "stay";
	for (int attempt = 1;; attempt++) {
		struct opts o = sampling();
		o.period = p0;
		o.sample_type = st | PERF_SAMPLE_READ;
		o.disabled = 0;
		int fd = open_event(o);
		struct ring r = map_ring(fd, 1, PROT_READ | PROT_WRITE);
		store(0, 1);
		long before = switches();
		long ret = ioctl(fd, PERF_EVENT_IOC_PERIOD, &p1);
		if (sleep)
			usleep(2000);
		long slept = switches() - before;
		writes(8, NULL, NULL);
		int wrong = sleep ? sleeps_switch && slept == 0 : switches() != before;
		if (wrong && attempt < 100) {
			munmap(r.p, r.len);
			close(fd);
			continue;
		}
		printf("period-%llu-%llu-%#llx-%s-ioctl: %s\n", (unsigned long long)p0, (unsigned long long)p1,
		       (unsigned long long)st, path, outcome(ret));
		printf("period-%llu-%llu-%#llx-%s:", (unsigned long long)p0, (unsigned long long)p1,
		       (unsigned long long)st, path);
		if (wrong)
			printf(" (took the other path in every attempt)");
		uint64_t head = r.p->data_head;
		for (uint64_t t = 0; t < head;) {
			struct perf_event_header h;
			uint64_t v[2];
			copy(&r, t, &h, sizeof(h));
			copy(&r, t + sizeof(h), v, sizeof(v));
			if (st & PERF_SAMPLE_PERIOD)
				printf(" period %llu value %llu", (unsigned long long)v[0], (unsigned long long)v[1]);
			else
				printf(" value %llu", (unsigned long long)v[0]);
			t += h.size;
		}
		printf("\n");
		munmap(r.p, r.len);
		close(fd);
		return;
	}
}

static void hits(void)
{
	struct expect e = {.pid = getpid(), .tid = gettid()};

	/* Samples with every field that a breakpoint gives. */
	struct opts o = sampling();
	o.sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
			PERF_SAMPLE_ADDR | PERF_SAMPLE_ID | PERF_SAMPLE_STREAM_ID | PERF_SAMPLE_CPU |
			PERF_SAMPLE_PERIOD | PERF_SAMPLE_READ;
	o.read_format = PERF_FORMAT_ID | PERF_FORMAT_LOST;
	o.use_clockid = 1;
	o.wakeup = 1;
	int fd = open_event(o);
	e.sample_type = o.sample_type;
	e.read_format = o.read_format;
	e.id = id_of(fd);
	struct ring r = map_ring(fd, 1, PROT_READ | PROT_WRITE);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ee = {.events = EPOLLIN, .data.u64 = 1};
	printf("samples-epoll-add: %s\n", outcome(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ee)));
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	printf("samples-poll-before: %#x\n", poll1(fd));
	writes(3, &e.t0, &e.t1);
	struct epoll_event got;
	int n = epoll_wait(ep, &got, 1, 0);
	printf("samples-epoll-wait: %s events %#x\n", outcome(n), n > 0 ? got.events : 0);
	printf("samples-poll-after: %#x\n", poll1(fd));
	printf("samples-poll-again: %#x\n", poll1(fd));
	drain("samples", &r, &e);
	/* A new period: every second write. */
	uint64_t period = 2;
	/* These samples have PERF_SAMPLE_PERIOD: every hit overflows, with
	 * period 1, whatever the period and the scheduling (period_change). */
	printf("samples-ioctl-period: %s\n", outcome(ioctl(fd, PERF_EVENT_IOC_PERIOD, &period)));
	writes(4, &e.t0, &e.t1);
	drain("period", &r, &e);
	close(ep);
	munmap(r.p, r.len);
	close(fd);

	/* A full ring: samples lost, then a PERF_RECORD_LOST. */
	o = sampling();
	o.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR | PERF_SAMPLE_ID |
			PERF_SAMPLE_STREAM_ID | PERF_SAMPLE_CPU | PERF_SAMPLE_PERIOD;
	o.read_format = PERF_FORMAT_ID | PERF_FORMAT_LOST;
	o.sample_id_all = 1;
	o.use_clockid = 1;
	fd = open_event(o);
	e.sample_type = o.sample_type;
	e.read_format = o.read_format;
	e.sample_id_all = 1;
	e.id = id_of(fd);
	e.last_time = 0;
	r = map_ring(fd, 1, PROT_READ | PROT_WRITE);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	writes(60, &e.t0, NULL);
	printf("lost-head: %llu\n", (unsigned long long)r.p->data_head);
	read_lost("lost", fd);
	printf("lost-poll: %#x\n", poll1(fd));
	r.p->data_tail = r.p->data_head;
	writes(1, NULL, &e.t1);
	e.last_time = 0;
	drain("lost", &r, &e);
	read_lost("lost-after", fd);
	munmap(r.p, r.len);
	close(fd);

	/* Wakeups: a byte watermark, then every few samples. */
	o = sampling();
	o.sample_type = PERF_SAMPLE_IP;
	o.watermark = 1;
	o.wakeup = 200;
	fd = open_event(o);
	r = map_ring(fd, 1, PROT_READ | PROT_WRITE);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	for (int i = 0; i < 30; i++) {
		store(0, i);
		short p = poll1(fd);
		if (p)
			printf("watermark-wakeup: after %d revents %#x head %llu\n", i + 1, p, (unsigned long long)r.p->data_head);
	}
	munmap(r.p, r.len);
	close(fd);
	o.watermark = 0;
	o.wakeup = 3;
	fd = open_event(o);
	r = map_ring(fd, 1, PROT_READ | PROT_WRITE);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	for (int i = 0; i < 7; i++) {
		store(0, i);
		short p = poll1(fd);
		if (p)
			printf("events-wakeup: after %d revents %#x\n", i + 1, p);
	}
	munmap(r.p, r.len);
	close(fd);
	o.wakeup = 0;
	fd = open_event(o);
	r = map_ring(fd, 1, PROT_READ | PROT_WRITE);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	for (int i = 0; i < 140; i++) {
		store(0, i);
		short p = poll1(fd);
		if (p)
			printf("half-wakeup: after %d revents %#x\n", i + 1, p);
	}
	munmap(r.p, r.len);
	close(fd);

	/* A read-only ring overwrites. */
	fd = open_event(o);
	r = map_ring(fd, 1, PROT_READ);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	writes(300, NULL, NULL);
	printf("overwrite-head: %llu\n", (unsigned long long)r.p->data_head);
	read_lost("overwrite", fd);
	munmap(r.p, r.len);
	close(fd);

	/* Paused output loses samples. */
	o.read_format = PERF_FORMAT_ID | PERF_FORMAT_LOST;
	fd = open_event(o);
	r = map_ring(fd, 1, PROT_READ | PROT_WRITE);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	ioctl(fd, PERF_EVENT_IOC_PAUSE_OUTPUT, 1);
	writes(2, NULL, NULL);
	ioctl(fd, PERF_EVENT_IOC_PAUSE_OUTPUT, 0);
	writes(1, NULL, NULL);
	e.sample_type = o.sample_type;
	e.sample_id_all = 0;
	e.id = id_of(fd);
	drain("paused", &r, &e);
	read_lost("paused", fd);

	/* Another event's records go to this ring (SET_OUTPUT). */
	struct opts o2 = o;
	int fd2 = open_event(o2);
	printf("output-set: %s\n", outcome(ioctl(fd2, PERF_EVENT_IOC_SET_OUTPUT, fd)));
	printf("output-mmap: %s\n", merr(mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0)));
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	ioctl(fd2, PERF_EVENT_IOC_ENABLE, 0);
	writes(2, NULL, NULL);
	e.id = id_of(fd2);
	drain("output", &r, &e);
	close(fd2);
	munmap(r.p, r.len);
	close(fd);

	/* When samples fall around PERF_EVENT_IOC_PERIOD, with and without
	 * a sleep before the next write. */
	long before = switches();
	for (int i = 0; i < 3; i++)
		usleep(2000);
	sleeps_switch = switches() != before;
	for (int sleep = 0; sleep < 2; sleep++) {
		period_change(1, 2, 0, sleep);
		period_change(3, 2, 0, sleep);
		period_change(2, 3, 0, sleep);
		period_change(3, 1, 0, sleep);
		period_change(1, 2, PERF_SAMPLE_PERIOD, sleep);
	}

	/* An event on a child that exits: its samples, then EPOLLHUP. */
	int go;
	pid_t pid = gated_fork(&go);
	if (pid == 0) {
		store(0, 1);
		_exit(0);
	}
	o = sampling();
	o.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_IP;
	o.disabled = 0;
	o.wakeup = 1;
	struct perf_event_attr a = bp_attr(&watched[0], 8, HW_BREAKPOINT_W, 1);
	a.sample_type = o.sample_type;
	a.wakeup_events = 1;
	fd = (int)perf_event_open(&a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	r = map_ring(fd, 1, PROT_READ | PROT_WRITE);
	printf("child-poll-before: %#x\n", poll1(fd));
	gate_open(go);
	waitpid(pid, NULL, 0);
	printf("child-poll-after-exit: %#x\n", poll1(fd));
	e.sample_type = o.sample_type;
	e.pid = e.tid = pid;
	drain("child", &r, &e);
	munmap(r.p, r.len);
	printf("child-poll-unmapped: %#x\n", poll1(fd));
	close(fd);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	pg = sysconf(_SC_PAGESIZE);
	if (argc > 1 && strcmp(argv[1], "hits") == 0) {
		hits();
	} else {
		if (argc > 1 && strcmp(argv[1], "nobody") == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
			printf("setuid: %s\n", strerrorname_np(errno));
			return 1;
		}
		nohits();
	}
	printf("end\n");
	return 0;
}
