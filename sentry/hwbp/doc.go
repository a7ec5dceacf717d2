// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package hwbp is the core hardware-breakpoint API of the sentry: the
// equivalent of Linux's kernel/events/hw_breakpoint.c plus the x86 parts of
// arch/x86/kernel/hw_breakpoint.c and of exc_debug_user, without any
// knowledge of gVisor's platforms or of its consumers.
//
// Tasks maps the sandbox's threads to their Task: the breakpoint events
// bound to the thread, its virtual DR6, and the Extensions in which
// consumers keep their own per-thread state. Consumers (the guest's ptrace
// debug registers in sentry/ptrace, perf_event_open, operator tools)
// describe breakpoints with perf-like attributes (Attr), register them as
// Breakpoint events with an OverflowHandler, and share the four slots of
// each thread. Platform back ends import only the core, this package and
// its sub-package backend (their contract with gVisor's platforms, and the
// one Switch that drives them): they ask a Task for its Image, the
// DR0-DR3/DR7 values that its enabled events resolve to, load it into
// whatever debug registers they drive, and every debug exception of a
// thread reaches Tasks.Trap, which applies Linux's rules (virtual DR6
// reset, icebp, B bits consumed by events) and dispatches hits to the
// events' handlers, as perf_bp_event does.
//
// Invariants:
//   - A Task never has more events (enabled or not, whichever consumer
//     registered them) than there are debug address registers (Slots). As
//     in Linux's reserve_bp_slot, a disabled event holds its slot.
//   - Every registered Attr passed Validate: its range lies entirely inside
//     the user address space, so no back end can be asked to watch sentry or
//     host kernel memory on a guest's behalf.
//   - A failed Register or Modify changes nothing.
//   - An event that the host owns (RegisterHost) holds a slot like any
//     other, but a debug exception caused by host events alone changes
//     nothing the guest can see: no virtual DR6 bit, no signal.
//   - Registry.Active is a single atomic load and is false whenever no
//     enabled event exists, so platform hot paths cost nothing when unused;
//     Tasks.Lookup takes no mutex.
//   - No Task outlives its thread: Tasks.Get creates none for a thread that
//     has begun to exit.
//
// All methods are safe for concurrent use. Errors wrap unix.Errno values
// (errors.Is(err, unix.EINVAL) etc.) so that guest-facing consumers can
// return exactly the errno Linux returns.
package hwbp
