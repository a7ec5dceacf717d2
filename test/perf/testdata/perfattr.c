/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * perfattr: opens a table of perf_event_open(PERF_TYPE_BREAKPOINT) events
 * and prints one line per case: "ok" or the errno's name, and for E2BIG the
 * size that the kernel wrote back. No breakpoint needs to fire, so the host
 * transcript is the oracle on any machine.
 *
 * Usage: perfattr [-p] [UID]
 *   UID  drop to that user (and group) before the cases: the host runs as
 *        an unprivileged caller, which the sandbox's root must look like.
 *   -p   leave out the cases that need a dropped caller (another user's
 *        process as the target), for a run as the sandbox's root.
 *
 * The attribute is built byte by byte at the offsets of the kernel's struct
 * perf_event_attr (include/uapi/linux/perf_event.h), so that fields newer
 * than the C library's headers can be set too.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/* Offsets in struct perf_event_attr. */
enum {
	OFF_TYPE = 0,
	OFF_SIZE = 4,
	OFF_CONFIG = 8,
	OFF_PERIOD = 16,
	OFF_SAMPLE_TYPE = 24,
	OFF_READ_FORMAT = 32,
	OFF_FLAGS = 40,
	OFF_WAKEUP = 48,
	OFF_BP_TYPE = 52,
	OFF_BP_ADDR = 56,
	OFF_BP_LEN = 64,
	OFF_BRANCH = 72,
	OFF_REGS_USER = 80,
	OFF_STACK_USER = 88,
	OFF_CLOCKID = 92,
	OFF_REGS_INTR = 96,
	OFF_AUX_WATERMARK = 104,
	OFF_MAX_STACK = 108,
	OFF_RESERVED2 = 110,
	OFF_AUX_SAMPLE = 112,
	OFF_AUX_ACTION = 116,
	OFF_SIG_DATA = 120,
	OFF_CONFIG3 = 128,
};

/* Bits of the flags word. */
enum {
	F_DISABLED = 0,
	F_INHERIT = 1,
	F_EXCLUDE_KERNEL = 5,
	F_EXCLUDE_HV = 6,
	F_FREQ = 10,
	F_ENABLE_ON_EXEC = 12,
	F_INHERIT_THREAD = 35,
	F_REMOVE_ON_EXEC = 36,
	F_SIGTRAP = 37,
};

#define BP_R 1
#define BP_W 2
#define BP_X 4

#define TASK_SIZE_MAX ((1ULL << 47) - 4096)

#define SAMPLE_TID (1ULL << 1)
#define SAMPLE_READ (1ULL << 4)

/* The attribute lives in a page followed by an unmapped one. */
static unsigned char *page;
static unsigned char *attr;
static volatile uint64_t watched[4];
static pid_t self_child, zombie, reaped, other_user;
static int ncpus;
static int dropped;

static void set32(int off, uint32_t v) { memcpy(attr + off, &v, 4); }
static void set16(int off, uint16_t v) { memcpy(attr + off, &v, 2); }
static void set64(int off, uint64_t v) { memcpy(attr + off, &v, 8); }
static uint64_t get64(int off) { uint64_t v; memcpy(&v, attr + off, 8); return v; }
static uint32_t get32(int off) { uint32_t v; memcpy(&v, attr + off, 4); return v; }
static void flag(int bit, int on)
{
	uint64_t f = get64(OFF_FLAGS);
	f = on ? f | 1ULL << bit : f & ~(1ULL << bit);
	set64(OFF_FLAGS, f);
}

/* base resets the attribute to a valid 4-byte write watchpoint of user mode,
 * with the C library's size (PERF_ATTR_SIZE_VER7). */
static void base(void)
{
	attr = page;
	memset(page, 0, 4096);
	set32(OFF_TYPE, 5); /* PERF_TYPE_BREAKPOINT */
	set32(OFF_SIZE, 128);
	set32(OFF_BP_TYPE, BP_W);
	set64(OFF_BP_ADDR, (uint64_t)(uintptr_t)&watched[0]);
	set64(OFF_BP_LEN, 4);
	flag(F_EXCLUDE_KERNEL, 1);
	flag(F_EXCLUDE_HV, 1);
}

static long open_event(pid_t pid, int cpu, int group, unsigned long flags)
{
	return perf_event_open((struct perf_event_attr *)attr, pid, cpu, group, flags);
}

/* report prints the outcome of one open and closes what it opened. */
static void report(const char *name, long fd)
{
	if (fd >= 0) {
		printf("%s: ok\n", name);
		close(fd);
		return;
	}
	int e = errno;
	if (e == E2BIG && attr != NULL && attr >= page && attr < page + 4096)
		printf("%s: %s size %u\n", name, strerrorname_np(e), get32(OFF_SIZE));
	else
		printf("%s: %s\n", name, strerrorname_np(e));
}

static void try(const char *name, pid_t pid, int cpu, int group, unsigned long flags)
{
	report(name, open_event(pid, cpu, group, flags));
}

#define CASE(name, setup) do { base(); setup; try(name, 0, -1, -1, 0); } while (0)

static void sizes(void)
{
	CASE("size-ver7", );
	CASE("size-0-is-ver0-without-bp_len", set32(OFF_SIZE, 0));
	CASE("size-64-without-bp_len", set32(OFF_SIZE, 64));
	CASE("size-72", set32(OFF_SIZE, 72));
	CASE("size-73-odd", set32(OFF_SIZE, 73));
	CASE("size-1", set32(OFF_SIZE, 1));
	CASE("size-63", set32(OFF_SIZE, 63));
	CASE("size-4096-zero-tail", set32(OFF_SIZE, 4096));
	CASE("size-4097", set32(OFF_SIZE, 4097));
	CASE("size-max", set32(OFF_SIZE, 0xffffffff));
	CASE("size-200-zero-tail", set32(OFF_SIZE, 200));
	CASE("size-200-byte-135", set32(OFF_SIZE, 200); attr[135] = 1);
	CASE("size-200-byte-136", set32(OFF_SIZE, 200); attr[136] = 1);
	CASE("size-200-byte-150", set32(OFF_SIZE, 200); attr[150] = 1);
	CASE("size-200-byte-199", set32(OFF_SIZE, 200); attr[199] = 1);
	CASE("size-4096-byte-4095", set32(OFF_SIZE, 4096); attr[4095] = 1);
	CASE("size-100-sig_data-ignored", set32(OFF_SIZE, 100); set64(OFF_SIG_DATA, 7));
	CASE("size-120-garbage-past-size", set32(OFF_SIZE, 120); set64(OFF_SIG_DATA, 7); attr[200] = 1);
	CASE("size-136-config3", set32(OFF_SIZE, 136); set64(OFF_CONFIG3, 1));
}

static void types(void)
{
	static const struct { const char *name; uint32_t type; uint64_t len; } t[] = {
		{ "bp_type-empty", 0, 4 },
		{ "bp_type-r", BP_R, 4 },
		{ "bp_type-w", BP_W, 4 },
		{ "bp_type-rw", BP_R | BP_W, 4 },
		{ "bp_type-x-len8", BP_X, 8 },
		{ "bp_type-x-len4", BP_X, 4 },
		{ "bp_type-x-len1", BP_X, 1 },
		{ "bp_type-r-x", BP_R | BP_X, 8 },
		{ "bp_type-w-x", BP_W | BP_X, 8 },
		{ "bp_type-rw-x", BP_R | BP_W | BP_X, 8 },
		{ "bp_type-8", 8, 4 },
		{ "bp_type-w-8", BP_W | 8, 4 },
		{ "bp_type-max", 0xffffffff, 4 },
	};
	for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CASE(t[i].name, set32(OFF_BP_TYPE, t[i].type); set64(OFF_BP_LEN, t[i].len));
	CASE("config-ignored", set64(OFF_CONFIG, 0x1234));
	CASE("type-raw-config", set32(OFF_TYPE, 4));
	CASE("type-software", set32(OFF_TYPE, 1));
	CASE("type-hardware", set32(OFF_TYPE, 0));
	CASE("type-unknown", set32(OFF_TYPE, 0x7fff));
}

static void lengths(void)
{
	static const uint64_t lens[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 32, 64, 4096, 1ULL << 40, ~0ULL };
	for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char name[64];
		snprintf(name, sizeof(name), "bp_len-%llu", (unsigned long long)lens[i]);
		/* An address aligned to anything below 4096. */
		CASE(name, set64(OFF_BP_LEN, lens[i]); set64(OFF_BP_ADDR, (uint64_t)(uintptr_t)page));
	}
	CASE("bp_len-16-unaligned", set64(OFF_BP_LEN, 16); set64(OFF_BP_ADDR, (uint64_t)(uintptr_t)page + 8));
	for (int len = 1; len <= 8; len *= 2) {
		for (int off = 0; off < 8; off++) {
			char name[64];
			snprintf(name, sizeof(name), "align-len%d-off%d", len, off);
			CASE(name, set64(OFF_BP_LEN, len); set64(OFF_BP_ADDR, (uint64_t)(uintptr_t)page + off));
		}
	}
	for (int off = 0; off < 8; off++) {
		char name[64];
		snprintf(name, sizeof(name), "align-x-off%d", off);
		CASE(name, set32(OFF_BP_TYPE, BP_X); set64(OFF_BP_LEN, 8); set64(OFF_BP_ADDR, (uint64_t)(uintptr_t)page + off));
	}
}

static void addresses(void)
{
	static const struct { const char *name; uint64_t addr; } a[] = {
		{ "addr-0", 0 },
		{ "addr-top-minus-8", TASK_SIZE_MAX - 8 },
		{ "addr-top-minus-4", TASK_SIZE_MAX - 4 },
		{ "addr-top", TASK_SIZE_MAX },
		{ "addr-top-plus-8", TASK_SIZE_MAX + 8 },
		{ "addr-47bit", 1ULL << 47 },
		{ "addr-noncanonical", 1ULL << 60 },
		{ "addr-kernel", 0xffff800000000000ULL },
		{ "addr-kernel-text", 0xffffffff81000000ULL },
		{ "addr-last-word", 0xfffffffffffffff8ULL },
	};
	for (unsigned i = 0; i < sizeof(a) / sizeof(a[0]); i++) {
		char name[64];
		CASE(a[i].name, set64(OFF_BP_ADDR, a[i].addr); set64(OFF_BP_LEN, 8));
		snprintf(name, sizeof(name), "%s-disabled", a[i].name);
		CASE(name, set64(OFF_BP_ADDR, a[i].addr); set64(OFF_BP_LEN, 8); flag(F_DISABLED, 1));
		snprintf(name, sizeof(name), "%s-x", a[i].name);
		CASE(name, set64(OFF_BP_ADDR, a[i].addr); set64(OFF_BP_LEN, 8); set32(OFF_BP_TYPE, BP_X));
		snprintf(name, sizeof(name), "%s-with-kernel", a[i].name);
		CASE(name, set64(OFF_BP_ADDR, a[i].addr); set64(OFF_BP_LEN, 8); flag(F_EXCLUDE_KERNEL, 0));
	}
	CASE("addr-max-len1", set64(OFF_BP_ADDR, ~0ULL); set64(OFF_BP_LEN, 1));
	CASE("addr-wraps", set64(OFF_BP_ADDR, ~0ULL - 1); set64(OFF_BP_LEN, 4));
	CASE("addr-top-minus-1-x", set64(OFF_BP_ADDR, TASK_SIZE_MAX - 1); set32(OFF_BP_TYPE, BP_X); set64(OFF_BP_LEN, 8));
}

static void flag_bits(void)
{
	for (int bit = 0; bit < 64; bit++) {
		char name[64];
		snprintf(name, sizeof(name), "flag-bit-%d", bit);
		CASE(name, flag(bit, bit == F_EXCLUDE_KERNEL ? 0 : 1));
	}
	CASE("sigtrap-remove_on_exec", flag(F_SIGTRAP, 1); flag(F_REMOVE_ON_EXEC, 1));
	CASE("sigtrap-remove_on_exec-sig_data", flag(F_SIGTRAP, 1); flag(F_REMOVE_ON_EXEC, 1); set64(OFF_SIG_DATA, 42));
	CASE("remove_on_exec-enable_on_exec", flag(F_REMOVE_ON_EXEC, 1); flag(F_ENABLE_ON_EXEC, 1); flag(F_DISABLED, 1));
	CASE("inherit-inherit_thread", flag(F_INHERIT, 1); flag(F_INHERIT_THREAD, 1));
	CASE("inherit-sample_read", flag(F_INHERIT, 1); set64(OFF_SAMPLE_TYPE, SAMPLE_READ));
	CASE("inherit-sample_read-tid", flag(F_INHERIT, 1); set64(OFF_SAMPLE_TYPE, SAMPLE_READ | SAMPLE_TID));
	CASE("sample_read", set64(OFF_SAMPLE_TYPE, SAMPLE_READ));
	CASE("perf-stat-attr", flag(F_INHERIT, 1); flag(F_DISABLED, 1); flag(F_ENABLE_ON_EXEC, 1); set64(OFF_READ_FORMAT, 3));
	CASE("period-1", set64(OFF_PERIOD, 1));
	CASE("period-bit62", set64(OFF_PERIOD, 1ULL << 62));
	CASE("period-bit63", set64(OFF_PERIOD, 1ULL << 63));
	CASE("freq-1", flag(F_FREQ, 1); set64(OFF_PERIOD, 1));
	CASE("freq-bit63", flag(F_FREQ, 1); set64(OFF_PERIOD, 1ULL << 63));
	CASE("freq-huge", flag(F_FREQ, 1); set64(OFF_PERIOD, 1ULL << 40));
	for (int bit = 0; bit < 64; bit++) {
		char name[64];
		snprintf(name, sizeof(name), "sample_type-bit-%d", bit);
		CASE(name, set64(OFF_SAMPLE_TYPE, 1ULL << bit); set64(OFF_PERIOD, 1));
	}
	for (int bit = 0; bit < 64; bit++) {
		char name[64];
		snprintf(name, sizeof(name), "read_format-bit-%d", bit);
		CASE(name, set64(OFF_READ_FORMAT, 1ULL << bit));
	}
	CASE("reserved_2", attr[OFF_RESERVED2] = 1);
	for (int bit = 0; bit < 32; bit++) {
		char name[64];
		snprintf(name, sizeof(name), "aux_action-bit-%d", bit);
		CASE(name, set32(OFF_AUX_ACTION, 1U << bit));
	}
	CASE("branch_sample_type-no-branch-stack", set64(OFF_BRANCH, 1));
	CASE("regs_user-no-sample", set64(OFF_REGS_USER, ~0ULL));
	CASE("clockid-no-use", set32(OFF_CLOCKID, 12345));
	CASE("use_clockid-monotonic", flag(25, 1); set32(OFF_CLOCKID, 1));
	CASE("use_clockid-bad", flag(25, 1); set32(OFF_CLOCKID, 12345));
	CASE("wakeup-watermark", set32(OFF_WAKEUP, 100));
	CASE("aux_watermark", set32(OFF_AUX_WATERMARK, 100));
	CASE("aux_sample_size", set32(OFF_AUX_SAMPLE, 100));
	CASE("sample_max_stack", attr[OFF_MAX_STACK] = 10);
	/* A call chain deeper than kernel.perf_event_max_stack (127) is
	 * EOVERFLOW (get_callchain_buffers), after the aux checks and before
	 * the clock's. */
	CASE("callchain-max_stack-127", set64(OFF_SAMPLE_TYPE, 1 << 5); set64(OFF_PERIOD, 1); set16(OFF_MAX_STACK, 127));
	CASE("callchain-max_stack-128", set64(OFF_SAMPLE_TYPE, 1 << 5); set64(OFF_PERIOD, 1); set16(OFF_MAX_STACK, 128));
	CASE("callchain-max_stack-65535-counting", set64(OFF_SAMPLE_TYPE, 1 << 5); set16(OFF_MAX_STACK, 65535));
	CASE("max_stack-128-no-callchain", set64(OFF_PERIOD, 1); set16(OFF_MAX_STACK, 128));
	CASE("callchain-max_stack-128-aux_output", set64(OFF_SAMPLE_TYPE, 1 << 5); set16(OFF_MAX_STACK, 128); flag(31, 1));
	CASE("callchain-max_stack-128-bad-clock", set64(OFF_SAMPLE_TYPE, 1 << 5); set16(OFF_MAX_STACK, 128); flag(25, 1); set32(OFF_CLOCKID, 12345));
}

static void pids_and_cpus(void)
{
	char name[64];
	base(); try("pid-self-cpu-any", 0, -1, -1, 0);
	base(); try("pid-getpid", getpid(), -1, -1, 0);
	base(); try("pid-any-cpu-any", -1, -1, -1, 0);
	/* A CPU-wide event: the slots it needs are checked first against
	 * every task of the system (the "cpuwide" lines may read ENOSPC
	 * while another process holds four breakpoints). */
	base(); try("cpuwide-pid-any-cpu-0", -1, 0, -1, 0);
	base(); set32(OFF_BP_TYPE, 0); try("pid-any-cpu-0-empty-type", -1, 0, -1, 0);
	base(); set32(OFF_BP_TYPE, BP_R); try("cpuwide-pid-any-cpu-0-r", -1, 0, -1, 0);
	base(); flag(F_SIGTRAP, 1); flag(F_REMOVE_ON_EXEC, 1); try("pid-any-cpu-0-sigtrap", -1, 0, -1, 0);
	base(); flag(F_EXCLUDE_KERNEL, 0); try("pid-any-cpu-0-with-kernel", -1, 0, -1, 0);
	base(); flag(F_INHERIT, 1); try("cpuwide-pid-any-cpu-0-inherit", -1, 0, -1, 0);
	base(); try("pid-any-cpu-minus-2", -1, -2, -1, 0);
	base(); try("pid-self-cpu-0", 0, 0, -1, 0);
	base(); try("pid-self-cpu-last", 0, ncpus - 1, -1, 0);
	base(); try("pid-self-cpu-ncpus", 0, ncpus, -1, 0);
	base(); try("pid-any-cpu-ncpus", -1, ncpus, -1, 0);
	base(); try("pid-self-cpu-minus-2", 0, -2, -1, 0);
	base(); try("pid-self-cpu-huge", 0, 1 << 30, -1, 0);
	base(); try("pid-minus-2", -2, -1, -1, 0);
	base(); try("pid-missing", 0x3ffffff0, -1, -1, 0);
	base(); try("pid-child", self_child, -1, -1, 0);
	base(); flag(F_SIGTRAP, 1); flag(F_REMOVE_ON_EXEC, 1); try("pid-child-sigtrap", self_child, -1, -1, 0);
	base(); try("pid-zombie", zombie, -1, -1, 0);
	base(); try("pid-reaped", reaped, -1, -1, 0);
	if (other_user > 0) {
		base(); try("pid-other-user", other_user, -1, -1, 0);
		base(); flag(F_SIGTRAP, 1); flag(F_REMOVE_ON_EXEC, 1); try("pid-other-user-sigtrap", other_user, -1, -1, 0);
		base(); set32(OFF_BP_TYPE, BP_R); try("pid-other-user-bad-type", other_user, -1, -1, 0);
	}
	base(); set32(OFF_BP_TYPE, BP_R); try("pid-missing-bad-type", 0x3ffffff0, -1, -1, 0);
	base(); set32(OFF_SIZE, 1); try("pid-missing-bad-size", 0x3ffffff0, -1, -1, 0);
	base(); try("pid-any-cpu-any-bad-size", -1, -1, -1, 0);
	for (int bit = 0; bit < 8; bit++) {
		snprintf(name, sizeof(name), "flags-bit-%d", bit);
		base(); try(name, 0, -1, -1, 1UL << bit);
	}
	base(); try("flags-bit-63", 0, -1, -1, 1UL << 63);
	base(); set32(OFF_BP_TYPE, BP_R); try("flags-bad-and-bad-type", 0, -1, -1, 1UL << 4);
	base(); set32(OFF_SIZE, 1); try("flags-bad-and-bad-size", 0, -1, -1, 1UL << 4);
	base(); try("group-bad-fd", 0, -1, 1000, 0);
	base(); try("group-not-perf", 0, -1, 0, 0);
	base(); try("group-minus-2", 0, -1, -2, 0);

	base();
	long leader = open_event(0, -1, -1, 0);
	report("group-leader", leader >= 0 ? dup((int)leader) : leader);
	if (leader >= 0) {
		base(); try("group-member", 0, -1, (int)leader, 0);
		base(); flag(F_INHERIT, 1); try("group-member-inherit-mismatch", 0, -1, (int)leader, 0);
		base(); try("group-member-no-group-flag", 0, -1, (int)leader, 1);
		base(); try("group-member-output-flag", 0, -1, (int)leader, 2);
		base(); set32(OFF_BP_TYPE, BP_R); try("group-member-bad-type", 0, -1, (int)leader, 0);
		base(); try("group-member-other-task", self_child, -1, (int)leader, 0);
		base(); try("group-member-cpu-0", 0, 0, (int)leader, 0);
		close((int)leader);
	}
}

static void faults(void)
{
	base();
	attr = NULL;
	try("attr-null", 0, -1, -1, 0);
	attr = (unsigned char *)1;
	try("attr-one", 0, -1, -1, 0);
	attr = (unsigned char *)0xffff800000000000ULL;
	try("attr-kernel", 0, -1, -1, 0);
	/* The struct straddles the end of the mapping. */
	base();
	attr = page + 4096 - 64;
	memset(attr, 0, 64);
	set32(OFF_TYPE, 5);
	set32(OFF_SIZE, 128);
	try("attr-straddles-end", 0, -1, -1, 0);
	set32(OFF_SIZE, 64);
	try("attr-fits-64", 0, -1, -1, 0);
	set32(OFF_SIZE, 72);
	try("attr-past-end-72", 0, -1, -1, 0);
	attr = page + 4096 - 2;
	try("attr-size-field-unmapped", 0, -1, -1, 0);
}

static void slots(void)
{
	long fds[6];
	for (int n = 0; n < 6; n++) {
		char name[64];
		base();
		flag(F_DISABLED, n % 2);
		set64(OFF_BP_ADDR, (uint64_t)(uintptr_t)&watched[n % 4]);
		fds[n] = open_event(0, -1, -1, 0);
		snprintf(name, sizeof(name), "slot-%d", n);
		printf("%s: %s\n", name, fds[n] >= 0 ? "ok" : strerrorname_np(errno));
	}
	base(); set32(OFF_BP_TYPE, BP_R); try("slot-full-bad-type", 0, -1, -1, 0);
	base(); set64(OFF_BP_LEN, 3); try("slot-full-bad-len", 0, -1, -1, 0);
	base(); set64(OFF_BP_ADDR, TASK_SIZE_MAX); try("slot-full-bad-addr", 0, -1, -1, 0);
	base(); try("slot-full-other-task", self_child, -1, -1, 0);
	base(); flag(F_INHERIT, 1); try("slot-full-cpu-0", 0, 0, -1, 0);
	close((int)fds[1]);
	base(); try("slot-after-close", 0, -1, -1, 0);
	for (int n = 0; n < 6; n++)
		if (n != 1 && fds[n] >= 0)
			close((int)fds[n]);
	base(); try("slot-all-closed", 0, -1, -1, 0);

	/* An event bound to one CPU holds a slot on that CPU only, beside
	 * the task's events on every CPU (task_bp_pinned). */
	long on0[4];
	for (int n = 0; n < 4; n++) {
		char name[64];
		base();
		set64(OFF_BP_ADDR, (uint64_t)(uintptr_t)&watched[n]);
		on0[n] = open_event(0, 0, -1, 0);
		snprintf(name, sizeof(name), "slot-cpu0-%d", n);
		printf("%s: %s\n", name, on0[n] >= 0 ? "ok" : strerrorname_np(errno));
	}
	base(); try("slot-cpu0-fifth", 0, 0, -1, 0);
	base(); try("slot-every-cpu-beside-four-on-cpu0", 0, -1, -1, 0);
	if (ncpus > 1) {
		base(); try("slot-cpu1-beside-four-on-cpu0", 0, 1, -1, 0);
	}
	close((int)on0[0]);
	base(); try("slot-every-cpu-beside-three-on-cpu0", 0, -1, -1, 0);
	for (int n = 1; n < 4; n++)
		if (on0[n] >= 0)
			close((int)on0[n]);
}

/* spawn forks a process that runs as uid (0: unchanged) until this one
 * exits: it waits for the end of a pipe whose write side only this process
 * holds, so that it goes away even if this process may not kill it. */
static pid_t spawn(uid_t uid)
{
	int p[2];
	if (pipe(p))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(p[1]);
		if (uid && (setgid(uid) || setuid(uid)))
			_exit(1);
		while (read(p[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(p[0]);
	return pid;
}

int main(int argc, char **argv)
{
	int priv_run = 0;
	uid_t uid = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-p") == 0)
			priv_run = 1;
		else
			uid = (uid_t)strtoul(argv[i], NULL, 10);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED || munmap(page + 4096, 4096)) {
		perror("mmap");
		return 2;
	}
	ncpus = (int)sysconf(_SC_NPROCESSORS_CONF);
	if (!priv_run && uid) {
		/* A process of another user, which the dropped caller may not
		 * watch (ptrace_may_access). */
		other_user = spawn(uid + 1);
	}
	if (uid && (setgid(uid) || setuid(uid))) {
		perror("setuid");
		return 2;
	}
	dropped = uid != 0;
	/* setuid made this process undumpable, which would keep it from
	 * watching its own children (ptrace_may_access). */
	prctl(PR_SET_DUMPABLE, 1);
	self_child = spawn(0);
	zombie = fork();
	if (zombie == 0)
		_exit(0);
	reaped = fork();
	if (reaped == 0)
		_exit(0);
	waitpid(reaped, NULL, 0);
	/* Wait until the zombie is one, without reaping it. */
	siginfo_t si;
	waitid(P_PID, zombie, &si, WEXITED | WNOWAIT);

	sizes();
	types();
	lengths();
	addresses();
	flag_bits();
	pids_and_cpus();
	faults();
	slots();

	kill(self_child, SIGKILL);
	waitpid(self_child, NULL, 0);
	waitpid(zombie, NULL, 0);
	printf("end\n");
	return 0;
}
