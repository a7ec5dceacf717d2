// Package ptrace gives guest tracers the x86 debug registers through
// PTRACE_PEEKUSR and PTRACE_POKEUSR at offsetof(struct user, u_debugreg),
// with the semantics of Linux's arch/x86/kernel/ptrace.c, on top of the core
// breakpoint API in sentry/hwbp.
//
// DebugRegs is one thread's state, Linux's thread_struct fields ptrace_bps,
// virtual_dr6 and ptrace_dr7: DR0-DR3 writes create or move a disabled
// placeholder event, a DR7 write enables, disables and retypes every slot
// and restores the previous state if any slot fails, DR6 is virtual. Threads
// maps the sandbox's threads to their DebugRegs and implements the lifecycle
// rules: a new thread inherits its creator's DR6 and DR7 read-back values
// but no breakpoint, execve flushes everything, exit frees everything.
//
// Invariants: a thread with no entry in Threads reads exactly like a fresh
// Linux thread (DR0-DR5 and DR7 zero, DR6 0xffff0ff0); a failed write leaves
// every register and every event as it was; nothing is kept for a thread
// after it exits.
package ptrace
