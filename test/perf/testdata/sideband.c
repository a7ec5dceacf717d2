/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * sideband [data]: the side-band records that a perf breakpoint event on a
 * child gets across the child's exec and life (comm, mmap, mmap2, task,
 * sample_id_all, enable_on_exec, as perf record opens its event on the
 * workload; with "data" also mmap_data). The child execs this program
 * ("child"), which maps part of its own file executable and not, makes an
 * anonymous page executable with mprotect (twice: the second changes
 * nothing), takes it back, renames itself with PR_SET_NAME and through
 * /proc/self/task/TID/comm (both are __set_task_comm) and exits. The
 * parent prints the records its ring holds, with what differs between
 * kernels (pids, addresses the loader chose, device numbers) printed as
 * relations that hold on both. The stack's size and the vvar pages are the
 * kernel's own layout: only the stack record's place is compared, and vvar
 * records are left out.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

static volatile uint64_t watched;
static long pg;
static char self[4096];

static int child(void)
{
	int fd = open(self, O_RDONLY);
	if (fd < 0)
		return 1;
	mmap(NULL, pg, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 0);
	char *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(p, pg, PROT_READ | PROT_EXEC);
	mprotect(p, pg, PROT_READ | PROT_EXEC);
	mprotect(p, pg, PROT_READ);
	prctl(PR_SET_NAME, "renamed");
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)gettid());
	/* No stdio: its buffer would be the first malloc, a heap record. */
	int comm = open(path, O_WRONLY);
	if (comm < 0 || write(comm, "renamed-again", 13) != 13 || close(comm) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}

/*
 * same says how the device and inode of a record relate to name's: the
 * inode number is stat's, the device is set. (stat's device may differ
 * where the file lies on an overlay, whose mappings are of the file
 * below.)
 */
static const char *same(const char *name, uint32_t maj, uint32_t min, uint64_t ino)
{
	struct stat st;
	if (name[0] != '/' || stat(name, &st) != 0)
		return "nostat";
	if (st.st_ino != ino)
		return "ino-differs";
	return maj || min ? "ino-stat" : "ino-stat-nodev";
}

static const char *who(uint32_t v, pid_t pid)
{
	static char buf[4][32];
	static int i;
	i = (i + 1) % 4;
	if (v == (uint32_t)pid)
		return "child";
	if (v == (uint32_t)getpid())
		return "parent";
	snprintf(buf[i], sizeof(buf[i]), "%u", v);
	return buf[i];
}

int main(int argc, char **argv)
{
	pg = sysconf(_SC_PAGESIZE);
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return 1;
	self[n] = 0;
	if (argc > 1 && strcmp(argv[1], "child") == 0)
		return child();
	int data = argc > 1 && strcmp(argv[1], "data") == 0;

	int go;
	pid_t pid = gated_fork(&go);
	if (pid == 0) {
		execl(self, self, "child", (char *)NULL);
		_exit(127);
	}

	struct perf_event_attr a = bp_attr(&watched, 8, HW_BREAKPOINT_W, 1);
	a.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID;
	a.disabled = 1;
	a.enable_on_exec = 1;
	a.comm = 1;
	a.mmap = 1;
	a.mmap2 = 1;
	a.task = 1;
	a.sample_id_all = 1;
	a.mmap_data = data;
	int fd = (int)perf_event_open(&a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("open: %s\n", strerrorname_np(errno));
		return 1;
	}
	size_t nr = 16;
	unsigned char *ring = mmap(NULL, (nr + 1) * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ring == MAP_FAILED) {
		printf("mmap: %s\n", strerrorname_np(errno));
		return 1;
	}
	gate_open(go);
	int status;
	waitpid(pid, &status, 0);
	printf("child: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

	struct perf_event_mmap_page *up = (void *)ring;
	uint64_t head = __atomic_load_n(&up->data_head, __ATOMIC_ACQUIRE);
	unsigned char *d = ring + up->data_offset;
	uint64_t size = up->data_size;
	int i = 0;
	for (uint64_t off = up->data_tail; off < head;) {
		unsigned char rec[8192];
		struct perf_event_header h;
		for (size_t k = 0; k < sizeof(h); k++)
			((unsigned char *)&h)[k] = d[(off + k) % size];
		if (h.size < sizeof(h) || h.size > sizeof(rec)) {
			printf("record-%d: bad size %u\n", i++, h.size);
			break;
		}
		for (size_t k = 0; k < h.size; k++)
			rec[k] = d[(off + k) % size];
		off += h.size;
		unsigned char *b = rec + sizeof(h);
		uint32_t *w = (uint32_t *)b;
		/* The sample_id trailer of PERF_SAMPLE_TID: the last 8 bytes. */
		uint32_t *id = (uint32_t *)(rec + h.size - 8);
		char line[8400];
		switch (h.type) {
		case PERF_RECORD_COMM:
			snprintf(line, sizeof(line), "COMM misc=%#x pid=%s tid=%s comm=%s", h.misc, who(w[0], pid), who(w[1], pid), (char *)(b + 8));
			break;
		case PERF_RECORD_MMAP2: {
			uint64_t *q = (uint64_t *)(b + 8);
			uint32_t maj = *(uint32_t *)(b + 32), min = *(uint32_t *)(b + 36);
			uint64_t ino = *(uint64_t *)(b + 40);
			uint32_t prot = *(uint32_t *)(b + 56), flags = *(uint32_t *)(b + 60);
			const char *name = (char *)(b + 64);
			const char *shown = strcmp(name, self) == 0 ? "SELF" : name;
			char dev[64];
			if (name[0] == '/')
				snprintf(dev, sizeof(dev), "%s", same(name, maj, min, ino));
			else
				snprintf(dev, sizeof(dev), "%x:%x:%lu", maj, min, (unsigned long)ino);
			if (strncmp(name, "[vvar", 5) == 0)
				continue; /* the kernel's own vvar layout */
			char pgoff[32];
			if (strcmp(name, "[stack]") == 0) {
				/* Linux's stack starts at 132 KiB and its vm_pgoff
				 * is where it was set up; the sandbox's is 8 MiB. */
				q[1] = 0;
				snprintf(pgoff, sizeof(pgoff), "?");
			} else if (q[2] == q[0] && q[2] != 0)
				snprintf(pgoff, sizeof(pgoff), "start");
			else
				snprintf(pgoff, sizeof(pgoff), "%#lx", (unsigned long)q[2]);
			snprintf(line, sizeof(line), "MMAP2 misc=%#x pid=%s tid=%s len=%#lx pgoff=%s dev=%s prot=%#x flags=%#x name=%s",
				 h.misc, who(w[0], pid), who(w[1], pid), (unsigned long)q[1], pgoff, dev, prot, flags, shown);
			break;
		}
		case PERF_RECORD_EXIT:
		case PERF_RECORD_FORK: {
			uint64_t time = *(uint64_t *)(b + 16);
			snprintf(line, sizeof(line), "%s misc=%#x pid=%s ppid=%s tid=%s ptid=%s time=%s", h.type == PERF_RECORD_EXIT ? "EXIT" : "FORK",
				 h.misc, who(w[0], pid), who(w[1], pid), who(w[2], pid), who(w[3], pid), time ? "set" : "0");
			break;
		}
		default:
			snprintf(line, sizeof(line), "type %u misc=%#x", h.type, h.misc);
		}
		printf("record-%d: %s size=%u id=%s/%s\n", i++, line, h.size, who(id[0], pid), who(id[1], pid));
	}
	printf("records: %d\n", i);
	printf("end\n");
	return 0;
}
