// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package backend is the contract between the core (sentry/hwbp) and the
// back ends that arm breakpoints on gVisor's platforms (platform/kvm,
// platform/ptrace, platform/systrap), and the one Switch that drives them:
// the gVisor-typed half of the core, which sentry/hwbp itself, generic over
// the thread type, leaves out.
//
// A back end implements Arming: it arms a task's breakpoints for the next
// Switch of the platform's own context (Arm), reads the debug exception
// that ended it (Exception: the DR6 that the CPU or the host kernel
// reported, or why the SIGTRAP is not one), and releases what the run held
// (Done). Loop, which every back end embeds, does the rest once for all of
// them, as Linux's exc_debug_user (arch/x86/kernel/traps.c) does for every
// x86 CPU: it looks the task up in the core, runs the platform's Switch,
// hands the exception to hwbp.Tasks.Trap, sets EFLAGS.RF where
// hw_breakpoint_handler (arch/x86/kernel/hw_breakpoint.c) does and no host
// kernel did already, runs the task again after an exception that the guest
// must not see, and rewrites the SIGTRAP into the guest's. Backend is what
// the sentry (the plugin) holds of a back end.
//
// Invariants:
//   - Loop.Switch is called only while a breakpoint may be enabled in the
//     sandbox (or a back end keeps host state armed, hwbp.Registry.Retain);
//     otherwise the caller's Switch costs one atomic load
//     (hwbp.Registry.Active) more than the platform's own.
//   - The end of the application's address space is kept in one place, the
//     Loop (SetMaxUserAddress), and no back end arms anything at or above it
//     (Loop.Image): the guest cannot trap the platform's stub.
//   - Every run that Arm began is ended by Done exactly once, after its
//     exception, if any, went through the core.
//   - The guest's SIGTRAP is rewritten in one place (Loop), only for an
//     exception that the core delivers; any other SIGTRAP reaches the guest
//     as the platform reported it.
package backend
