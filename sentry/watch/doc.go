// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package watch is the host's own watchpoints in a sandbox's threads, the
// consumer of the core breakpoint API (sentry/hwbp) behind "runsc watch": an
// operator on the host watches a guest address and reads every access, with
// who made it and from where, while nothing inside the sandbox can tell. It
// is to the sandbox what Linux's ksym tracer (kernel/trace/trace_ksym.c, now
// perf's mem: events) is to the kernel: a third consumer beside the guest's
// ptrace (sentry/ptrace) and perf_event_open (sentry/perf), and the back
// ends know nothing of it.
//
// A Watch registers one host-owned event (hwbp.Registry.RegisterHost) on
// each thread of the watched process, and on every thread and child that
// they create while it lasts, as perf's inherit does (the per-thread
// Extension is an hwbp.Inheritor). Each hit is described by the embedder
// (Describe: pid, tid, comm, the watched bytes after the access) and queued
// for the host, which reads the queue (Watch.Read); a reader that falls
// behind loses hits, counted as perf counts PERF_RECORD_LOST. Symbols
// resolves a symbol of the process's executable to the address to watch,
// and names the hits' addresses and instruction pointers, as perf script
// does.
//
// Invariants:
//   - A watch holds one of the four slots of every thread it watches, as a
//     pinned kernel breakpoint holds one of every task's in Linux
//     (kernel/events/hw_breakpoint.c counts it in reserve_bp_slot): the
//     guest's ptrace and perf requests that need more than what remains get
//     ENOSPC. A watch that finds no free slot in a thread fails, and changes
//     nothing.
//   - Its hits are invisible to the guest: no signal, no stop, no change to
//     the virtual DR6 (hwbp.Tasks.Trap), no change to what the guest's
//     PEEKUSR and perf reads return (their consumers see only their own
//     events).
//   - A watch that ends (Stop, its count reached, its reader gone for
//     longer than its lease) leaves nothing: every event it registered is
//     unregistered and every thread forgets it.
//   - execve drops the thread's watchpoint, as it does the guest's ptrace
//     breakpoints: the watched address belonged to the old image.
package watch
