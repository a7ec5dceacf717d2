/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/*
 * drdriver: runs a script of ptrace debug-register requests against a traced
 * child and prints one canonical line per request, so that the transcripts
 * of the host kernel and of a sandbox can be compared byte for byte.
 *
 * Usage: drdriver SCRIPT. Script lines (# starts a comment):
 *   poke N VALUE      PTRACE_POKEUSER u_debugreg[N], then read DR N back
 *   peek N            PTRACE_PEEKUSER u_debugreg[N]
 *   pokeoff OFF VALUE PTRACE_POKEUSER at a raw offset of struct user
 *   peekoff OFF       PTRACE_PEEKUSER at a raw offset (values of the
 *                     general registers, below sizeof(user_regs_struct), are
 *                     not printed: they differ between runs)
 *   fork | clone      the target forks a process or creates a thread, seen
 *                     through PTRACE_O_TRACEFORK/TRACECLONE; the new task
 *                     becomes the target
 *   exec              the target calls execve, seen through TRACEEXEC
 *   cont              the target runs one turn of its loop and stops again
 *   step              PTRACE_SINGLESTEP the target once; prints si_code, DR6
 *   goto CASE         the target runs code case CASE (sc_CASE below: getpid,
 *                     nosys, kill, execve, fork, denied, trapped, icebp), single-stepped from its stop until it is
 *                     at the case's first instruction (the number of steps is
 *                     not printed: it depends on the C library)
 *   stepi [SIG]       PTRACE_SINGLESTEP the target once, with signal SIG;
 *                     prints the stop's signal, si_code, si_addr (for si_code
 *                     TRAP_*), the instruction pointer and DR6
 *   contsig SIG       PTRACE_CONT the target with signal SIG; prints the next
 *                     stop as stepi does
 *   syscall | sysemu | sysemustep  PTRACE_SYSCALL, PTRACE_SYSEMU or
 *                     PTRACE_SYSEMU_SINGLESTEP the target; prints the next
 *                     stop as stepi does
 *   options exec|noexec  PTRACE_SETOPTIONS of the target with or without
 *                     PTRACE_O_TRACEEXEC (the others stay set)
 *   stepwrite A N     the target writes N bytes at A, single-stepped from its
 *                     stop until a step reports a breakpoint in DR6; prints
 *                     that step's si_code and DR6 (the number of steps is
 *                     not printed: it depends on the C library)
 *   target main       the first tracee becomes the target again
 *   running           PEEK and POKE DR7 while the target is not stopped
 *   untraced          PEEK and POKE DR7 of a child that is not traced
 * VALUE is a number (strtoull base 0), "buf+N" for an address N bytes into
 * the tracee's watch buffer, or "~0".
 *
 * The tracee maps its control page and watch buffer at fixed addresses, so
 * that addresses are the same in every run, before and after execve.
 */
#define _GNU_SOURCE
#include "hwbp_test.h"
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/auxv.h>
#include <sys/wait.h>
#include <time.h>

#define CONTROL_ADDR 0x10000000UL
#define BUF_ADDR (CONTROL_ADDR + 0x1000)
#define BUF_SIZE 0x1000

enum action { ACT_NONE, ACT_FORK, ACT_CLONE, ACT_EXEC, ACT_SLEEP, ACT_ACCESS, ACT_THREAD_WRITE, ACT_SYSCALL_READ, ACT_CASE };

/* The kinds of ACT_ACCESS, in control[1]; control[2] is the address and
 * control[3] the size (or the function number for ACCESS_EXEC). */
enum access { ACCESS_READ, ACCESS_WRITE, ACCESS_EXEC };

/* Functions for execution breakpoints. */
__attribute__((noinline)) void fn0(void) { __asm__ volatile(""); }
__attribute__((noinline)) void fn1(void) { __asm__ volatile(""); }
__attribute__((noinline)) void fn2(void) { __asm__ volatile(""); }
__attribute__((noinline)) void fn3(void) { __asm__ volatile(""); }
static void (*const fns[4])(void) = {fn0, fn1, fn2, fn3};

static volatile long *control = (volatile long *)CONTROL_ADDR;

/*
 * Code cases for stepping over system call instructions, at labels that the
 * tracer names in its transcript (code_label). Each case is called and
 * returns.
 *   getpid: a system call that changes nothing but rax.
 *   nosys: a system call number no kernel implements (ENOSYS).
 *   kill: the task sends itself SIGUSR1, whose handler (sc_handler, with
 *     sc_restorer as its SA_RESTORER) stops the task with SIGSTOP and
 *     returns through rt_sigreturn, a system call that changes rip.
 *   execve: execve(arguments 1 to 3 of the call), into the tracee loop of a
 *     new image.
 *   fork: a system call that makes a ptrace event stop (PTRACE_EVENT_FORK);
 *     the child returns too and goes on looping.
 *   denied: getppid, which a seccomp filter that the tracee installs before
 *     its first run of this case or the next makes fail with EPERM.
 *   trapped: syslog, which that filter turns into a SIGSYS.
 *   icebp: an icebp (INT1, opcode 0xf1): a debug exception whose DR6 gives
 *     no reason, which Linux turns into SIGTRAP with si_code TRAP_BRKPT.
 */
extern char sc_getpid[], sc_nosys[], sc_kill[], sc_execve[], sc_fork[], sc_denied[], sc_trapped[], sc_icebp[],
    sc_handler[], sc_restorer[], sc_end[];
__asm__(".text\n"
	"sc_getpid:\n"
	"	mov $39, %eax\n" /* getpid */
	"	syscall\n"
	"	nop\n"
	"	nop\n"
	"	ret\n"
	"sc_nosys:\n"
	"	mov $100000, %eax\n"
	"	syscall\n"
	"	nop\n"
	"	ret\n"
	"sc_kill:\n"
	"	mov $39, %eax\n" /* getpid */
	"	syscall\n"
	"	mov %eax, %edi\n"
	"	mov $10, %esi\n" /* SIGUSR1 */
	"	mov $62, %eax\n" /* kill */
	"	syscall\n"
	"	nop\n"
	"	ret\n"
	"sc_execve:\n"
	"	mov $59, %eax\n" /* execve */
	"	syscall\n"
	"	ret\n"
	"sc_fork:\n"
	"	mov $57, %eax\n" /* fork */
	"	syscall\n"
	"	nop\n"
	"	ret\n"
	"sc_denied:\n"
	"	mov $110, %eax\n" /* getppid */
	"	syscall\n"
	"	nop\n"
	"	ret\n"
	"sc_trapped:\n"
	"	mov $103, %eax\n" /* syslog */
	"	syscall\n"
	"	nop\n"
	"	ret\n"
	"sc_icebp:\n"
	"	.byte 0xf1\n" /* icebp */
	"	nop\n"
	"	ret\n"
	"sc_handler:\n"
	"	mov $39, %eax\n" /* getpid */
	"	syscall\n"
	"	mov %eax, %edi\n"
	"	mov $19, %esi\n" /* SIGSTOP */
	"	mov $62, %eax\n" /* kill */
	"	syscall\n"
	"	ret\n"
	"sc_restorer:\n"
	"	mov $15, %eax\n" /* rt_sigreturn */
	"	syscall\n"
	"sc_end:\n"
	"	nop\n");

static const struct {
	const char *name;
	char *addr;
} code_cases[] = {
	{"getpid", sc_getpid}, {"nosys", sc_nosys}, {"kill", sc_kill}, {"execve", sc_execve},
	{"fork", sc_fork}, {"denied", sc_denied}, {"trapped", sc_trapped}, {"icebp", sc_icebp},
	{"handler", sc_handler}, {"restorer", sc_restorer}, {"end", sc_end},
};
#define NCASES 8 /* the first NCASES entries are cases for goto */

/* The kernel's struct sigaction for rt_sigaction (no glibc restorer). */
struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	unsigned long mask;
};
#define KSA_RESTORER 0x04000000

static void map_fixed(void) {
	void *p = mmap((void *)CONTROL_ADDR, 0x1000 + BUF_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p != (void *)CONTROL_ADDR)
		die("mmap");
}

static void do_access(long kind, unsigned long addr, long size) {
	switch (kind) {
	case ACCESS_READ:
		switch (size) {
		case 1: (void)*(volatile uint8_t *)addr; break;
		case 2: (void)*(volatile uint16_t *)addr; break;
		case 4: (void)*(volatile uint32_t *)addr; break;
		default: (void)*(volatile uint64_t *)addr; break;
		}
		break;
	case ACCESS_WRITE:
		switch (size) {
		case 1: *(volatile uint8_t *)addr = 1; break;
		case 2: *(volatile uint16_t *)addr = 1; break;
		case 4: *(volatile uint32_t *)addr = 1; break;
		default: *(volatile uint64_t *)addr = 1; break;
		}
		break;
	case ACCESS_EXEC:
		fns[size & 3]();
		break;
	}
}

static void *writer_main(void *arg) {
	do_access(ACCESS_WRITE, BUF_ADDR, 8);
	return arg;
}

static void *thread_main(void *arg) {
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv);

/* install_filter makes getppid fail with EPERM and syslog raise SIGSYS
 * (neither is called otherwise), once. */
static void install_filter(void) {
	static int done;
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_syslog, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof f / sizeof f[0], f};
	if (done++)
		return;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		die("seccomp");
}

/* The tracee: stop, do what the tracer put in *control, repeat. */
static void tracee_loop(const char *self) {
	/* Where this image's main is, for the tracer's labels: after execve
	 * the image is loaded at another random base. */
	control[7] = (long)main;
	struct ksigaction ksa = {sc_handler, KSA_RESTORER, sc_restorer, 0};
	if (syscall(SYS_rt_sigaction, SIGUSR1, &ksa, NULL, 8) < 0)
		die("rt_sigaction");
	for (;;) {
		raise(SIGSTOP);
		long act = *control;
		*control = ACT_NONE;
		switch (act) {
		case ACT_FORK:
			fork(); /* parent and child both go on looping */
			break;
		case ACT_CLONE: {
			pthread_t th;
			pthread_create(&th, NULL, thread_main, NULL);
			break;
		}
		case ACT_EXEC:
			execl(self, self, "--tracee", (char *)NULL);
			_exit(3);
		case ACT_ACCESS:
			do_access(control[1], control[2], control[3]);
			break;
		case ACT_THREAD_WRITE: {
			/* Another thread writes the buffer, then this one. */
			pthread_t th;
			pthread_create(&th, NULL, writer_main, NULL);
			pthread_join(th, NULL);
			do_access(ACCESS_WRITE, BUF_ADDR, 8);
			break;
		}
		case ACT_SYSCALL_READ: {
			/* The kernel writes the buffer on the task's behalf. */
			int fd = open("/dev/zero", O_RDONLY);
			if (read(fd, (void *)BUF_ADDR, 64) != 64)
				_exit(4);
			close(fd);
			break;
		}
		case ACT_CASE: {
			if (code_cases[control[1]].addr == sc_denied || code_cases[control[1]].addr == sc_trapped)
				install_filter();
			char *const av[] = {(char *)self, "--tracee", NULL};
			((void (*)(const char *, char *const *, char *const *))code_cases[control[1]].addr)(self, av, environ);
			break;
		}
		case ACT_SLEEP: {
			struct timespec ts = {0, 300 * 1000 * 1000};
			nanosleep(&ts, NULL);
			break;
		}
		}
	}
}

/* errname is Linux's name of errno value e, "OK" for none. */
static const char *errname(int e) {
	return e ? errno_name(e) : "OK";
}

/* The address of main in the image of the task whose addresses are being
 * labelled (control[7] of the tracee), or 0 for the tracer's own. */
static unsigned long label_main;

static void label(char *out, size_t n, unsigned long v) {
	unsigned long code = label_main ? label_main : (unsigned long)main;
	if (v >= BUF_ADDR && v < BUF_ADDR + BUF_SIZE)
		snprintf(out, n, "buf+0x%lx", v - BUF_ADDR);
	else if (v - code + (1UL << 20) < (2UL << 20))
		snprintf(out, n, "main%+ld", (long)(v - code));
	else
		snprintf(out, n, "0x%lx", v);
}

/* interp_base returns where pid's dynamic loader is mapped (AT_BASE), or
 * 0. */
static unsigned long interp_base(pid_t pid) {
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/auxv", pid);
	FILE *f = fopen(path, "r");
	unsigned long kv[2], base = 0;
	if (!f)
		return 0;
	while (fread(kv, sizeof kv, 1, f) == 1 && kv[0] != AT_NULL)
		if (kv[0] == AT_BASE)
			base = kv[1];
	fclose(f);
	return base;
}

/* code_label names v, an address in pid whose main is at m (0 if not known
 * yet, right after execve): relative to the code case it is in, or to the
 * dynamic loader (whose entry point the first instruction after execve is),
 * or as label does. */
static void code_label(char *out, size_t n, unsigned long v, unsigned long m, pid_t pid) {
	unsigned long ld = interp_base(pid);
	if (ld && v - ld < (1UL << 20)) {
		snprintf(out, n, "ld.so+0x%lx", v - ld);
		return;
	}
	for (int i = 0; m && i + 1 < (int)(sizeof code_cases / sizeof code_cases[0]); i++) {
		unsigned long lo = m + (code_cases[i].addr - (char *)main);
		unsigned long hi = m + (code_cases[i + 1].addr - (char *)main);
		if (v >= lo && v < hi) {
			snprintf(out, n, "%s+%lu", code_cases[i].name, v - lo);
			return;
		}
	}
	label_main = m;
	label(out, n, v);
	label_main = 0;
}

static unsigned long parse_value(const char *s) {
	if (strncmp(s, "fn", 2) == 0)
		return (unsigned long)fns[(s[2] - '0') & 3];
	if (strncmp(s, "buf+", 4) == 0)
		return BUF_ADDR + strtoull(s + 4, NULL, 0);
	if (strcmp(s, "~0") == 0)
		return ~0UL;
	return strtoull(s, NULL, 0);
}

/* peek prints "<result> <errno>" and the value if it succeeded. */
static void do_peek(pid_t pid, unsigned long off, int show) {
	errno = 0;
	long v = ptrace(PTRACE_PEEKUSER, pid, off, 0);
	int e = errno;
	char l[64];
	if (e) {
		printf("-> -1 %s\n", errname(e));
		return;
	}
	if (!show) {
		printf("-> OK\n");
		return;
	}
	label(l, sizeof l, (unsigned long)v);
	printf("-> %s\n", l);
}

static void do_poke(pid_t pid, unsigned long off, unsigned long v, long readback) {
	errno = 0;
	long r = ptrace(PTRACE_POKEUSER, pid, off, v);
	int e = errno;
	printf("-> %ld %s", r, errname(r ? e : 0));
	if (readback >= 0) {
		errno = 0;
		long rb = ptrace(PTRACE_PEEKUSER, pid, DR(readback), 0);
		char l[64];
		label(l, sizeof l, (unsigned long)rb);
		if (errno)
			printf(" ; DR%ld unreadable %s", readback, errname(errno));
		else
			printf(" ; DR%ld = %s", readback, l);
	}
	printf("\n");
}

/* wait_stop waits for pid's next stop and describes it. */
static void wait_stop(pid_t pid, char *desc, size_t n) {
	int st;
	if (waitpid(pid, &st, __WALL) != pid)
		die("waitpid");
	if (!WIFSTOPPED(st)) {
		snprintf(desc, n, "not stopped (status 0x%x)", st);
		return;
	}
	switch (st >> 16) {
	case PTRACE_EVENT_FORK: snprintf(desc, n, "event FORK"); break;
	case PTRACE_EVENT_CLONE: snprintf(desc, n, "event CLONE"); break;
	case PTRACE_EVENT_EXEC: snprintf(desc, n, "event EXEC"); break;
	case 0: snprintf(desc, n, "signal %s", strsignal(WSTOPSIG(st))); break;
	default: snprintf(desc, n, "event %d", st >> 16); break;
	}
}

#define MAX_TASKS 64

static void poke_control(pid_t pid, int word, long v) {
	if (ptrace(PTRACE_POKEDATA, pid, CONTROL_ADDR + 8 * word, v) < 0)
		die("POKEDATA control");
}

/*
 * A task that reported a ptrace event (or a new task at its first stop) is
 * not yet at the SIGSTOP of its loop; settled says which ones are.
 */
static pid_t tasks[MAX_TASKS];
static int settled[MAX_TASKS];
static int ntasks;

static int task_index(pid_t pid) {
	for (int i = 0; i < ntasks; i++)
		if (tasks[i] == pid)
			return i;
	if (ntasks == MAX_TASKS) {
		fprintf(stderr, "drdriver: too many tasks\n");
		exit(2);
	}
	tasks[ntasks] = pid;
	settled[ntasks] = 0;
	return ntasks++;
}

/* settle lets pid run until it stops at the SIGSTOP of its loop. */
static void settle(pid_t pid) {
	int i = task_index(pid);
	char desc[128];
	if (settled[i])
		return;
	if (ptrace(PTRACE_CONT, pid, 0, 0) < 0)
		die("CONT to settle");
	wait_stop(pid, desc, sizeof desc);
	if (strcmp(desc, "signal Stopped (signal)") != 0) {
		fprintf(stderr, "drdriver: settling %d: %s\n", pid, desc);
		exit(2);
	}
	settled[i] = 1;
}

static void set_action(pid_t pid, long act) {
	settle(pid);
	if (ptrace(PTRACE_POKEDATA, pid, CONTROL_ADDR, act) < 0)
		die("POKEDATA control");
}

/*
 * run_target resumes target until it is back at the SIGSTOP of its loop,
 * resuming every other task that stops meanwhile (threads it creates), and
 * prints each SIGTRAP with its si_code, si_addr and DR6, and which task took
 * it.
 */
static void run_target(pid_t target) {
	if (ptrace(PTRACE_CONT, target, 0, 0) < 0)
		die("CONT");
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, __WALL);
		if (p < 0)
			die("waitpid");
		if (!WIFSTOPPED(st))
			continue; /* a thread of the target exited */
		int sig = WSTOPSIG(st);
		if (st >> 16) {
			ptrace(PTRACE_CONT, p, 0, 0); /* clone event */
			continue;
		}
		if (sig == SIGSTOP && p == target) {
			printf(" -> stopped\n");
			return;
		}
		if (sig == SIGTRAP) {
			siginfo_t si;
			if (ptrace(PTRACE_GETSIGINFO, p, 0, &si) < 0)
				die("GETSIGINFO");
			errno = 0;
			long dr6 = ptrace(PTRACE_PEEKUSER, p, DR(6), 0);
			char l[64];
			errno = 0;
			long m = ptrace(PTRACE_PEEKDATA, p, CONTROL_ADDR + 7 * sizeof(long), 0);
			label_main = errno == 0 ? (unsigned long)m : 0;
			label(l, sizeof l, (unsigned long)si.si_addr);
			label_main = 0;
			printf(" -> %s SIGTRAP code %d addr %s dr6 0x%lx", p == target ? "target" : "other", si.si_code, l, dr6);
			sig = 0;
		} else if (sig == SIGSTOP) {
			sig = 0; /* a new thread's first stop */
		}
		if (ptrace(PTRACE_CONT, p, 0, sig) < 0)
			die("CONT");
	}
}

/* tracee_main returns where main is in pid's image (control[7]), or 0
 * right after execve, before the new image has mapped its control page. */
static unsigned long tracee_main(pid_t pid) {
	errno = 0;
	long m = ptrace(PTRACE_PEEKDATA, pid, CONTROL_ADDR + 7 * sizeof(long), 0);
	return errno ? 0 : (unsigned long)m;
}

static unsigned long tracee_ip(pid_t pid) {
	errno = 0;
	long ip = ptrace(PTRACE_PEEKUSER, pid, offsetof(struct user, regs.rip), 0);
	if (errno)
		die("PEEKUSER rip");
	return (unsigned long)ip;
}

/* print_stop waits for pid's next stop and prints it: the signal, and for
 * a SIGTRAP its si_code and, for the si_codes of debug traps (whose si_addr
 * is an address), si_addr; then where pid is and its DR6. */
static void print_stop(pid_t pid) {
	int st;
	if (waitpid(pid, &st, __WALL) != pid)
		die("waitpid");
	if (!WIFSTOPPED(st)) {
		printf(" -> not stopped (status 0x%x)\n", st);
		exit(2);
	}
	siginfo_t si;
	if (ptrace(PTRACE_GETSIGINFO, pid, 0, &si) < 0)
		die("GETSIGINFO");
	unsigned long m = tracee_main(pid);
	char a[64] = "-", ip[64];
	if (WSTOPSIG(st) == SIGTRAP && si.si_code >= 1 && si.si_code <= 4)
		code_label(a, sizeof a, (unsigned long)si.si_addr, m, pid);
	code_label(ip, sizeof ip, tracee_ip(pid), m, pid);
	errno = 0;
	long dr6 = ptrace(PTRACE_PEEKUSER, pid, DR(6), 0);
	printf(" -> signal %d code %d addr %s ip %s dr6 0x%lx\n", WSTOPSIG(st), si.si_code, a, ip, dr6);
	if ((st >> 16) == PTRACE_EVENT_FORK || (st >> 16) == PTRACE_EVENT_CLONE) {
		/* The new task stays stopped until the end, which kills it. */
		unsigned long child;
		if (ptrace(PTRACE_GETEVENTMSG, pid, 0, &child) < 0)
			die("GETEVENTMSG");
		task_index((pid_t)child);
	}
}

int main(int argc, char **argv) {
	if (argc == 2 && strcmp(argv[1], "--tracee") == 0) {
		map_fixed();
		tracee_loop(argv[0]);
	}
	FILE *script = open_script(argc, argv);

	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0)
		die("readlink /proc/self/exe");
	self[n] = 0;

	pid_t main_pid = fork();
	if (main_pid == 0) {
		map_fixed();
		if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
			die("TRACEME");
		tracee_loop(self);
	}
	char desc[128];
	wait_stop(main_pid, desc, sizeof desc);
	settled[task_index(main_pid)] = 1;
	const long options = PTRACE_O_TRACEFORK | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL;
	if (ptrace(PTRACE_SETOPTIONS, main_pid, 0, options | PTRACE_O_TRACEEXEC) < 0)
		die("SETOPTIONS");
	pid_t target = main_pid;

	char line[512];
	int lineno = 0;
	while (fgets(line, sizeof line, script)) {
		lineno++;
		char op[32], a[128], b[128];
		int k = sscanf(line, "%31s %127s %127s", op, a, b);
		if (k <= 0 || op[0] == '#')
			continue;
		if (strcmp(op, "poke") == 0 && k == 3) {
			long r = strtol(a, NULL, 0);
			printf("%d poke DR%ld %s ", lineno, r, b);
			do_poke(target, DR(r), parse_value(b), r);
		} else if (strcmp(op, "peek") == 0 && k == 2) {
			long r = strtol(a, NULL, 0);
			printf("%d peek DR%ld ", lineno, r);
			do_peek(target, DR(r), 1);
		} else if (strcmp(op, "pokeoff") == 0 && k == 3) {
			long off = strtol(a, NULL, 0);
			printf("%d pokeoff %ld %s ", lineno, off, b);
			do_poke(target, (unsigned long)off, parse_value(b), -1);
		} else if (strcmp(op, "peekoff") == 0 && k == 2) {
			long off = strtol(a, NULL, 0);
			printf("%d peekoff %ld ", lineno, off);
			do_peek(target, (unsigned long)off, off < 0 || off >= (long)sizeof(struct user_regs_struct));
		} else if (strcmp(op, "fork") == 0 || strcmp(op, "clone") == 0 || strcmp(op, "exec") == 0) {
			long act = op[0] == 'f' ? ACT_FORK : op[0] == 'c' ? ACT_CLONE : ACT_EXEC;
			set_action(target, act);
			if (ptrace(PTRACE_CONT, target, 0, 0) < 0)
				die("CONT");
			wait_stop(target, desc, sizeof desc);
			settled[task_index(target)] = 0;
			printf("%d %s -> %s", lineno, op, desc);
			if (act != ACT_EXEC) {
				unsigned long child;
				if (ptrace(PTRACE_GETEVENTMSG, target, 0, &child) < 0)
					die("GETEVENTMSG");
				wait_stop((pid_t)child, desc, sizeof desc);
				printf(", new task stops with %s", desc);
				task_index((pid_t)child);
				target = (pid_t)child;
			}
			printf("\n");
		} else if ((strcmp(op, "write") == 0 || strcmp(op, "read") == 0) && k == 3) {
			set_action(target, ACT_ACCESS);
			poke_control(target, 1, op[0] == 'w' ? ACCESS_WRITE : ACCESS_READ);
			poke_control(target, 2, (long)parse_value(a));
			poke_control(target, 3, strtol(b, NULL, 0));
			printf("%d %s %s %s", lineno, op, a, b);
			run_target(target);
		} else if (strcmp(op, "call") == 0 && k == 2) {
			set_action(target, ACT_ACCESS);
			poke_control(target, 1, ACCESS_EXEC);
			poke_control(target, 3, strtol(a + 2, NULL, 0));
			printf("%d call %s", lineno, a);
			run_target(target);
		} else if (strcmp(op, "threadwrite") == 0 || strcmp(op, "sysread") == 0) {
			set_action(target, op[0] == 't' ? ACT_THREAD_WRITE : ACT_SYSCALL_READ);
			printf("%d %s", lineno, op);
			run_target(target);
		} else if (strcmp(op, "step") == 0) {
			/* One PTRACE_SINGLESTEP of the target, from its loop. */
			settle(target);
			if (ptrace(PTRACE_SINGLESTEP, target, 0, 0) < 0)
				die("SINGLESTEP");
			int st;
			if (waitpid(target, &st, __WALL) != target)
				die("waitpid");
			siginfo_t si;
			if (ptrace(PTRACE_GETSIGINFO, target, 0, &si) < 0)
				die("GETSIGINFO");
			errno = 0;
			long dr6 = ptrace(PTRACE_PEEKUSER, target, DR(6), 0);
			printf("%d step -> signal %d code %d dr6 0x%lx\n", lineno, WSTOPSIG(st), si.si_code, dr6);
			/* The target is inside its loop now, not at its SIGSTOP. */
			settled[task_index(target)] = 0;
		} else if (strcmp(op, "stepwrite") == 0 && k == 3) {
			set_action(target, ACT_ACCESS);
			poke_control(target, 1, ACCESS_WRITE);
			poke_control(target, 2, (long)parse_value(a));
			poke_control(target, 3, strtol(b, NULL, 0));
			printf("%d stepwrite %s %s", lineno, a, b);
			int st = 0;
			siginfo_t si = {0};
			long dr6 = 0;
			for (int n = 0; n < 100000; n++) {
				if (ptrace(PTRACE_SINGLESTEP, target, 0, 0) < 0)
					die("SINGLESTEP");
				if (waitpid(target, &st, __WALL) != target)
					die("waitpid");
				if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP)
					break;
				if (ptrace(PTRACE_GETSIGINFO, target, 0, &si) < 0)
					die("GETSIGINFO");
				dr6 = ptrace(PTRACE_PEEKUSER, target, DR(6), 0);
				if (dr6 & 0xf)
					break;
			}
			printf(" -> signal %d code %d dr6 0x%lx\n", WIFSTOPPED(st) ? WSTOPSIG(st) : -1, si.si_code, dr6);
			settled[task_index(target)] = 0;
		} else if (strcmp(op, "goto") == 0 && k == 2) {
			int c = 0;
			while (c < NCASES && strcmp(code_cases[c].name, a) != 0)
				c++;
			if (c == NCASES) {
				fprintf(stderr, "drdriver: %s:%d: no case %s\n", argv[1], lineno, a);
				return 2;
			}
			set_action(target, ACT_CASE);
			poke_control(target, 1, c);
			unsigned long want = tracee_main(target) + (code_cases[c].addr - (char *)main);
			int n, st;
			for (n = 0; n < 100000 && tracee_ip(target) != want; n++) {
				if (ptrace(PTRACE_SINGLESTEP, target, 0, 0) < 0)
					die("SINGLESTEP");
				if (waitpid(target, &st, __WALL) != target)
					die("waitpid");
				if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) {
					fprintf(stderr, "drdriver: goto %s: status 0x%x\n", a, st);
					exit(2);
				}
			}
			settled[task_index(target)] = 0;
			char l[64];
			code_label(l, sizeof l, tracee_ip(target), tracee_main(target), target);
			printf("%d goto %s -> ip %s\n", lineno, a, l);
		} else if (strcmp(op, "stepi") == 0 || (strcmp(op, "contsig") == 0 && k == 2) || strcmp(op, "syscall") == 0 ||
			   strcmp(op, "sysemu") == 0 || strcmp(op, "sysemustep") == 0) {
			long sig = k >= 2 ? strtol(a, NULL, 0) : 0;
			enum __ptrace_request req = op[0] == 'c'                   ? PTRACE_CONT
						    : op[1] == 't'                 ? PTRACE_SINGLESTEP
						    : strcmp(op, "syscall") == 0   ? PTRACE_SYSCALL
						    : strcmp(op, "sysemu") == 0    ? PTRACE_SYSEMU
										   : PTRACE_SYSEMU_SINGLESTEP;
			if (ptrace(req, target, 0, sig) < 0)
				die(op);
			printf("%d %s", lineno, op);
			if (k >= 2)
				printf(" %ld", sig);
			print_stop(target);
			settled[task_index(target)] = 0;
		} else if (strcmp(op, "options") == 0 && k == 2) {
			long o = options | (strcmp(a, "exec") == 0 ? PTRACE_O_TRACEEXEC : 0);
			if (ptrace(PTRACE_SETOPTIONS, target, 0, o) < 0)
				die("SETOPTIONS");
			printf("%d options %s\n", lineno, a);
		} else if (strcmp(op, "cont") == 0) {
			settle(target);
			if (ptrace(PTRACE_CONT, target, 0, 0) < 0)
				die("CONT");
			wait_stop(target, desc, sizeof desc);
			printf("%d cont -> %s\n", lineno, desc);
		} else if (strcmp(op, "target") == 0) {
			target = main_pid;
			printf("%d target main\n", lineno);
		} else if (strcmp(op, "running") == 0) {
			set_action(target, ACT_SLEEP);
			if (ptrace(PTRACE_CONT, target, 0, 0) < 0)
				die("CONT");
			printf("%d running peek DR7 ", lineno);
			do_peek(target, DR(7), 1);
			printf("%d running poke DR7 0x1 ", lineno);
			do_poke(target, DR(7), 1, -1);
			wait_stop(target, desc, sizeof desc);
			printf("%d running -> %s\n", lineno, desc);
		} else if (strcmp(op, "untraced") == 0) {
			pid_t c = fork();
			if (c == 0) {
				pause();
				_exit(0);
			}
			printf("%d untraced peek DR7 ", lineno);
			do_peek(c, DR(7), 1);
			printf("%d untraced poke DR7 0x1 ", lineno);
			do_poke(c, DR(7), 1, -1);
			kill(c, SIGKILL);
			waitpid(c, NULL, 0);
		} else {
			fprintf(stderr, "drdriver: %s:%d: bad line: %s", argv[1], lineno, line);
			return 2;
		}
	}
	for (int i = ntasks - 1; i >= 0; i--)
		kill(tasks[i], SIGKILL);
	while (waitpid(-1, NULL, __WALL) > 0)
		;
	printf("end\n");
	return 0;
}
