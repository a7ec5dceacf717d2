/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * perfdriver: runs a script that mixes perf_event_open breakpoint events on
 * a traced child with ptrace writes of that child's debug registers, and
 * prints one canonical line per script line, so that the transcripts of the
 * host kernel and of a sandbox can be compared byte for byte. The child
 * stays stopped (or runs a loop that touches nothing watched), so no event
 * ever counts a hit: every count is 0 on any machine.
 *
 * Usage: perfdriver SCRIPT. Run as root, it drops to uid 65534 first, so
 * that the host answers an unprivileged caller, as the sandbox answers
 * everyone. Script lines (# starts a comment); K is an event slot 0-7 of
 * the driver (an fd it holds), N a debug register:
 *   poke N VALUE   PTRACE_POKEUSER u_debugreg[N], then read DR N back
 *   peek N         PTRACE_PEEKUSER u_debugreg[N]
 *   open K F=V...  perf_event_open of a breakpoint event on the child into
 *                  slot K (an event already there is closed first, silently).
 *                  Fields, each optional: t bp_type, l bp_len, a bp_addr,
 *                  d disabled, i inherit, k exclude_kernel (default 1),
 *                  u exclude_user, rf read_format, p sample_period, s
 *                  sigtrap, r remove_on_exec, g the slot of the group
 *                  leader (its fd as group_fd; -1 if that slot is empty),
 *                  f perf_event_open's flags (PERF_FLAG_FD_CLOEXEC is
 *                  always added)
 *   modify K F=V...  PERF_EVENT_IOC_MODIFY_ATTRIBUTES with the slot's
 *                  attribute (as last opened or modified successfully) with
 *                  the fields changed; also ty type, sz size, sd sig_data
 *   ioctl K OP [ARG]  OP is enable, disable, reset (with "g" after it:
 *                  PERF_IOC_FLAG_GROUP), id, period ARG, refresh ARG
 *   read K SIZE    read(2) of SIZE bytes; prints the values of read_format,
 *                  ids as #n (the n-th distinct id the transcript shows),
 *                  and of the times only whether enabled equals running
 *   close K        close the slot's fd
 *   cont           the child runs one turn of its loop and stops again
 *   exec           the child execs this program again, which maps its pages
 *                  at the same addresses and stops (remove_on_exec removes
 *                  events, the ptrace breakpoints are flushed)
 *   respawn        SIGKILL the child, reap it, and trace a new one: the
 *                  events on the old one see their task exit
 * VALUE is a number (strtoull base 0), "buf+N" for an address N bytes into
 * the child's buffer (mapped at a fixed address), or "~0". Errors print as
 * errno names; fd numbers and pointers are never printed.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/* The child's control page, which no breakpoint watches, and its buffer. */
#define CONTROL_ADDR 0x10000000UL
#define BUF_ADDR (CONTROL_ADDR + 0x1000)
#define BUF_SIZE 0x1000
#define NSLOTS 8

struct slot {
	int fd; /* -1 if empty */
	struct perf_event_attr attr;
};

static struct slot slots[NSLOTS];
static pid_t child;

/* self is this program, opened before the driver dropped its privileges
 * (the directory it is in may be closed to the dropped user) and kept open
 * across the child's execs: the child's argv names the fd. */
static int self = -1;

/* child_main is the child: it maps its pages, then stops and, when
 * resumed, execs this program again if the tracer asked for it in its
 * control page or else stops again, touching nothing watched. */
static void child_main(void)
{
	if (mmap((void *)CONTROL_ADDR, 0x1000 + BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) != (void *)CONTROL_ADDR)
		_exit(3);
	volatile long *control = (volatile long *)CONTROL_ADDR;
	for (;;) {
		raise(SIGSTOP);
		if (*control) {
			char fd[16];
			snprintf(fd, sizeof fd, "%d", self);
			char *const argv[] = {"perfdriver", "--child", fd, NULL};
			syscall(SYS_execveat, self, "", argv, environ, AT_EMPTY_PATH);
			_exit(4);
		}
	}
}

/* spawn forks a traced child (child_main) and waits for its first stop. */
static pid_t spawn(void)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* The child holds no event of the driver's. */
		for (int k = 0; k < NSLOTS; k++)
			if (slots[k].fd >= 0)
				close(slots[k].fd);
		if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
			_exit(4);
		child_main();
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
		die("waitpid for the new child");
	if (ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_EXITKILL | PTRACE_O_TRACEEXEC) < 0)
		die("SETOPTIONS");
	return pid;
}

static unsigned long parse_value(const char *s)
{
	if (strncmp(s, "buf+", 4) == 0)
		return BUF_ADDR + strtoull(s + 4, NULL, 0);
	if (strcmp(s, "~0") == 0)
		return ~0UL;
	return strtoull(s, NULL, 0);
}

static void label(char *out, size_t n, unsigned long v)
{
	if (v >= BUF_ADDR && v < BUF_ADDR + BUF_SIZE)
		snprintf(out, n, "buf+0x%lx", v - BUF_ADDR);
	else
		snprintf(out, n, "0x%lx", v);
}

static void peek(long n)
{
	errno = 0;
	long v = ptrace(PTRACE_PEEKUSER, child, DR(n), 0);
	if (errno) {
		printf("-> %s\n", errno_name(errno));
		return;
	}
	char l[64];
	label(l, sizeof l, (unsigned long)v);
	printf("-> %s\n", l);
}

static void poke(long n, unsigned long v)
{
	long r = ptrace(PTRACE_POKEUSER, child, DR(n), v);
	printf("-> %s ; ", r < 0 ? errno_name(errno) : "OK");
	peek(n);
}

/* Event ids differ between runs; the transcript numbers them in the order
 * it first shows them. */
static uint64_t ids[4096];
static int nids;

static int id_number(uint64_t id)
{
	for (int i = 0; i < nids; i++)
		if (ids[i] == id)
			return i;
	if (nids == (int)(sizeof ids / sizeof ids[0])) {
		fprintf(stderr, "perfdriver: too many ids\n");
		exit(2);
	}
	ids[nids] = id;
	return nids++;
}

/* set_field sets the attribute field named key; it returns 0 for an
 * unknown key. */
static int set_field(struct perf_event_attr *a, const char *key, const char *val, int *group, unsigned long *flags)
{
	unsigned long v = parse_value(val);
	if (strcmp(key, "t") == 0)
		a->bp_type = (uint32_t)v;
	else if (strcmp(key, "l") == 0)
		a->bp_len = v;
	else if (strcmp(key, "a") == 0)
		a->bp_addr = v;
	else if (strcmp(key, "d") == 0)
		a->disabled = v & 1;
	else if (strcmp(key, "i") == 0)
		a->inherit = v & 1;
	else if (strcmp(key, "k") == 0)
		a->exclude_kernel = v & 1;
	else if (strcmp(key, "u") == 0)
		a->exclude_user = v & 1;
	else if (strcmp(key, "s") == 0)
		a->sigtrap = v & 1;
	else if (strcmp(key, "r") == 0)
		a->remove_on_exec = v & 1;
	else if (strcmp(key, "rf") == 0)
		a->read_format = v;
	else if (strcmp(key, "p") == 0)
		a->sample_period = v;
	else if (strcmp(key, "ty") == 0)
		a->type = (uint32_t)v;
	else if (strcmp(key, "sz") == 0)
		a->size = (uint32_t)v;
	else if (strcmp(key, "sd") == 0)
		a->sig_data = v;
	else if (strcmp(key, "g") == 0 && group)
		*group = (int)strtol(val, NULL, 0);
	else if (strcmp(key, "f") == 0 && flags)
		*flags = v;
	else
		return 0;
	return 1;
}

/* parse_fields applies the F=V words of rest to a. */
static int parse_fields(struct perf_event_attr *a, char *rest, int *group, unsigned long *flags)
{
	for (char *w = strtok(rest, " \t\n"); w; w = strtok(NULL, " \t\n")) {
		char *eq = strchr(w, '=');
		if (!eq)
			return 0;
		*eq = 0;
		if (!set_field(a, w, eq + 1, group, flags))
			return 0;
	}
	return 1;
}

static void do_open(int k, char *rest)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof a);
	a.type = PERF_TYPE_BREAKPOINT;
	a.size = sizeof a;
	a.bp_type = HW_BREAKPOINT_W;
	a.bp_addr = BUF_ADDR;
	a.bp_len = HW_BREAKPOINT_LEN_8;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	int g = -1;
	unsigned long flags = 0;
	if (!parse_fields(&a, rest, &g, &flags)) {
		fprintf(stderr, "perfdriver: bad open fields\n");
		exit(2);
	}
	if (slots[k].fd >= 0) {
		close(slots[k].fd);
		slots[k].fd = -1;
	}
	int gfd = g >= 0 && g < NSLOTS ? slots[g].fd : -1;
	if (g >= 0 && g < NSLOTS && g == k)
		gfd = -1; /* its own slot was just emptied */
	int fd = (int)perf_event_open(&a, child, -1, gfd, flags | PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("-> %s\n", errno_name(errno));
		return;
	}
	slots[k].fd = fd;
	slots[k].attr = a;
	printf("-> OK\n");
}

static void do_modify(int k, char *rest)
{
	struct perf_event_attr a = slots[k].attr;
	if (!parse_fields(&a, rest, NULL, NULL)) {
		fprintf(stderr, "perfdriver: bad modify fields\n");
		exit(2);
	}
	if (slots[k].fd < 0) {
		printf("-> empty\n");
		return;
	}
	struct perf_event_attr sent = a;
	int r = ioctl(slots[k].fd, PERF_EVENT_IOC_MODIFY_ATTRIBUTES, &sent);
	if (r < 0) {
		/* perf_copy_attr writes the size it knows back on E2BIG. */
		printf("-> %s size %u\n", errno_name(errno), sent.size);
		return;
	}
	slots[k].attr = a;
	printf("-> OK\n");
}

static void do_ioctl(int k, const char *op, const char *arg)
{
	if (slots[k].fd < 0) {
		printf("-> empty\n");
		return;
	}
	int fd = slots[k].fd, r;
	unsigned long flag = arg && strcmp(arg, "g") == 0 ? PERF_IOC_FLAG_GROUP : 0;
	if (strcmp(op, "enable") == 0)
		r = ioctl(fd, PERF_EVENT_IOC_ENABLE, flag);
	else if (strcmp(op, "disable") == 0)
		r = ioctl(fd, PERF_EVENT_IOC_DISABLE, flag);
	else if (strcmp(op, "reset") == 0)
		r = ioctl(fd, PERF_EVENT_IOC_RESET, flag);
	else if (strcmp(op, "id") == 0) {
		uint64_t id = 0;
		r = ioctl(fd, PERF_EVENT_IOC_ID, &id);
		if (r == 0) {
			printf("-> OK #%d\n", id_number(id));
			return;
		}
	} else if (strcmp(op, "period") == 0 && arg) {
		uint64_t v = parse_value(arg);
		r = ioctl(fd, PERF_EVENT_IOC_PERIOD, &v);
	} else if (strcmp(op, "refresh") == 0 && arg) {
		r = ioctl(fd, PERF_EVENT_IOC_REFRESH, strtol(arg, NULL, 0));
	} else {
		fprintf(stderr, "perfdriver: bad ioctl %s\n", op);
		exit(2);
	}
	printf("-> %s\n", r < 0 ? errno_name(errno) : "OK");
}

static void do_read(int k, long size)
{
	if (slots[k].fd < 0) {
		printf("-> empty\n");
		return;
	}
	uint64_t buf[64];
	memset(buf, 0xff, sizeof buf);
	if (size < 0 || size > (long)sizeof buf)
		size = sizeof buf;
	long n = read(slots[k].fd, buf, (size_t)size);
	if (n < 0) {
		printf("-> %s\n", errno_name(errno));
		return;
	}
	uint64_t rf = slots[k].attr.read_format;
	printf("-> %ld:", n);
	int i = 0, words = (int)(n / 8);
	uint64_t nr = 1;
	if (rf & PERF_FORMAT_GROUP) {
		nr = buf[i++];
		printf(" nr=%llu", (unsigned long long)nr);
	} else {
		printf(" value=%llu", (unsigned long long)buf[i++]);
	}
	if ((rf & PERF_FORMAT_TOTAL_TIME_ENABLED) && (rf & PERF_FORMAT_TOTAL_TIME_RUNNING)) {
		printf(" enabled==running:%d", buf[i] == buf[i + 1]);
		i += 2;
	} else if (rf & (PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING)) {
		printf(" time");
		i++;
	}
	for (uint64_t m = 0; m < nr && i < words; m++) {
		if (rf & PERF_FORMAT_GROUP)
			printf(" [value=%llu", (unsigned long long)buf[i++]);
		if ((rf & PERF_FORMAT_ID) && i < words)
			printf(" id=#%d", id_number(buf[i++]));
		if ((rf & PERF_FORMAT_LOST) && i < words)
			printf(" lost=%llu", (unsigned long long)buf[i++]);
		if (rf & PERF_FORMAT_GROUP)
			printf("]");
	}
	printf(" words=%d/%d\n", i, words);
}

/* wait_stop waits for the child's next stop and describes it. */
static void wait_stop(char *desc, size_t n)
{
	int st;
	if (waitpid(child, &st, 0) != child)
		die("waitpid");
	if (!WIFSTOPPED(st))
		snprintf(desc, n, "status 0x%x", st);
	else if (st >> 16 == PTRACE_EVENT_EXEC)
		snprintf(desc, n, "event EXEC");
	else
		snprintf(desc, n, "signal %d", WSTOPSIG(st));
}

static void cont(void)
{
	char desc[64];
	if (ptrace(PTRACE_CONT, child, 0, 0) < 0)
		die("CONT");
	wait_stop(desc, sizeof desc);
	printf("-> %s\n", desc);
}

static void do_exec(void)
{
	char desc[64];
	if (ptrace(PTRACE_POKEDATA, child, CONTROL_ADDR, 1) < 0)
		die("POKEDATA");
	if (ptrace(PTRACE_CONT, child, 0, 0) < 0)
		die("CONT");
	wait_stop(desc, sizeof desc);
	printf("-> %s", desc);
	/* On to the new image's first stop. */
	if (ptrace(PTRACE_CONT, child, 0, 0) < 0)
		die("CONT");
	wait_stop(desc, sizeof desc);
	printf(", %s\n", desc);
}

static void respawn(void)
{
	kill(child, SIGKILL);
	int st;
	if (waitpid(child, &st, 0) != child)
		die("waitpid for the killed child");
	child = spawn();
	printf("-> OK\n");
}

static int slot_arg(const char *s)
{
	int k = (int)strtol(s, NULL, 0);
	if (k < 0 || k >= NSLOTS) {
		fprintf(stderr, "perfdriver: bad slot %s\n", s);
		exit(2);
	}
	return k;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--child") == 0) {
		self = atoi(argv[2]);
		child_main();
	}
	FILE *script = open_script(argc, argv);
	self = open("/proc/self/exe", O_RDONLY);
	if (self < 0)
		die("/proc/self/exe");
	if (getuid() == 0) {
		if (setgid(65534) || setuid(65534))
			die("setuid");
		/* setuid made this process undumpable, which would keep it
		 * from watching its children (ptrace_may_access). */
		prctl(PR_SET_DUMPABLE, 1);
	}
	for (int k = 0; k < NSLOTS; k++)
		slots[k].fd = -1;
	child = spawn();

	char line[512];
	int lineno = 0;
	while (fgets(line, sizeof line, script)) {
		lineno++;
		line[strcspn(line, "\n")] = 0;
		char op[32], a[128], b[128];
		int n = 0;
		int k = sscanf(line, "%31s%n", op, &n);
		if (k <= 0 || op[0] == '#')
			continue;
		char *rest = line + n;
		printf("%d %s ", lineno, line);
		if (strcmp(op, "poke") == 0 && sscanf(rest, "%127s %127s", a, b) == 2) {
			poke(strtol(a, NULL, 0), parse_value(b));
		} else if (strcmp(op, "peek") == 0 && sscanf(rest, "%127s", a) == 1) {
			peek(strtol(a, NULL, 0));
		} else if (strcmp(op, "open") == 0 && sscanf(rest, "%127s%n", a, &n) == 1) {
			char fields[512];
			snprintf(fields, sizeof fields, "%s", rest + n);
			do_open(slot_arg(a), fields);
		} else if (strcmp(op, "modify") == 0 && sscanf(rest, "%127s%n", a, &n) == 1) {
			char fields[512];
			snprintf(fields, sizeof fields, "%s", rest + n);
			do_modify(slot_arg(a), fields);
		} else if (strcmp(op, "ioctl") == 0 && (k = sscanf(rest, "%127s %31s %127s", a, op, b)) >= 2) {
			do_ioctl(slot_arg(a), op, k == 3 ? b : NULL);
		} else if (strcmp(op, "read") == 0 && sscanf(rest, "%127s %127s", a, b) == 2) {
			do_read(slot_arg(a), strtol(b, NULL, 0));
		} else if (strcmp(op, "close") == 0 && sscanf(rest, "%127s", a) == 1) {
			int s = slot_arg(a);
			if (slots[s].fd < 0) {
				printf("-> empty\n");
			} else {
				printf("-> %s\n", close(slots[s].fd) < 0 ? errno_name(errno) : "OK");
				slots[s].fd = -1;
			}
		} else if (strcmp(op, "cont") == 0) {
			cont();
		} else if (strcmp(op, "exec") == 0) {
			do_exec();
		} else if (strcmp(op, "respawn") == 0) {
			respawn();
		} else {
			fprintf(stderr, "perfdriver: %s:%d: bad line: %s\n", argv[1], lineno, line);
			return 2;
		}
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	printf("end\n");
	return 0;
}
