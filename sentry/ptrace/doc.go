// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package ptrace gives guest tracers the x86 debug registers through
// PTRACE_PEEKUSR and PTRACE_POKEUSR at offsetof(struct user, u_debugreg),
// with the semantics of Linux's arch/x86/kernel/ptrace.c. It is one consumer
// of the core breakpoint API in sentry/hwbp, as Linux's ptrace is one user
// of its breakpoint layer: it registers events, installs their overflow
// handler (ptrace_triggered) and keeps per-thread state; the core owns the
// threads, their virtual DR6 and the debug exception rules, and the platform
// back ends know nothing of this package.
//
// DebugRegs is one thread's state, Linux's thread_struct fields ptrace_bps
// and ptrace_dr7, attached to the thread's hwbp.Task: DR0-DR3 writes create
// or move a disabled placeholder event, a DR7 write enables, disables and
// retypes every slot and restores the previous state if any slot fails, DR6
// is the core's virtual DR6. A new thread inherits its creator's DR6 and DR7
// read-back values but no breakpoint, execve flushes everything, exit frees
// everything (hwbp.Tasks).
//
// Invariants: a thread with no state reads exactly like a fresh Linux thread
// (DR0-DR5 and DR7 zero, DR6 0xffff0ff0); a failed write leaves every
// register and every event as it was; nothing is kept for a thread after it
// exits, even if a write races with its death.
package ptrace
