// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package perf gives guests perf_event_open(PERF_TYPE_BREAKPOINT): hardware
// breakpoint events that count, with the semantics of Linux's
// kernel/events/core.c and kernel/events/hw_breakpoint.c. It is the second
// consumer of the core breakpoint API in sentry/hwbp, next to the guest's
// ptrace debug registers (sentry/ptrace), as Linux's perf syscall is one
// user of its breakpoint layer: an event is a hwbp.Breakpoint of the
// watched thread, whose overflow handler counts the hit, and it shares the
// thread's four slots with the ptrace registers (a disabled event holds its
// slot too). The platform back ends know nothing of this package.
//
// CopyAttr and Attr.CheckOpen make the attribute checks of perf_copy_attr
// and perf_event_open, Events.Open the rest of perf_event_open's, each in
// Linux's order; Event is what the guest's fd reaches (read, ioctls, close).
//
// Ring is an event's mmap ring buffer (kernel/events/ring_buffer.c): pages
// that the caller allocates and maps into the guest (Event.Map, Mapped,
// Unmapped), into which the overflows of sampling events write
// PERF_RECORD_SAMPLE and PERF_RECORD_LOST records, and whose wakeups make
// the fd readable. The pages are shared with the guest, which may write
// anything there at any time: the sentry reads nothing back but data_tail,
// which can only make records lost, and every write stays inside the data
// pages. Events.Comm, Mmap and Fork (and Exit) write the side-band records
// of events that ask for them (comm, mmap, mmap2, mmap_data, task); the
// caller describes the mappings (Mapping), so this package knows nothing of
// gVisor's memory manager or file systems, and while no open event asks
// for side-band records each costs an atomic load (Events.SideBand).
//
// Privileges: the sandbox answers like Linux answers a caller that is not
// perfmon_capable() on a host with kernel.perf_event_paranoid 2 (the
// upstream default), whatever the caller's capabilities inside the sandbox,
// as Linux treats root in a user namespace: events that count in the kernel
// (exclude_kernel clear), namespace events, physical address samples and
// CPU-wide events are EACCES, and access to another thread is decided by
// ptrace's rules. So nothing a guest asks for can watch the sentry or the
// host kernel, and every breakpoint lies inside the guest's user address
// space (hwbp.Attr.Validate).
//
// Invariants: a failed Open leaves nothing registered; a closed event holds
// no slot; hits reach an event only while it is enabled (the core drops
// the others); nothing here panics on guest input.
package perf
