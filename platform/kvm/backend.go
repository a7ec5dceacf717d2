// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package kvm is hwbp's back end for gVisor's KVM platform. There a task's
// code runs in guest ring 3 of a vCPU whose ring 0 is the sentry's own
// (pkg/ring0), so a task's breakpoints go into the vCPU's real DR0-DR3 and
// DR7, written with in-guest MOV DR (KVM then hands the registers to the
// guest until its next exit: no ioctl, no new host system call). The vCPU's
// kernel half runs in the application's linear address space, where the
// sentry's own memory may sit at the very addresses that the application
// watches: gVisor's ring 0 (patches/gvisor/0002) loads DR7 on the last
// instructions before it returns to user mode and clears it on the first
// ones of every entry, and reloads DR0-DR3 only when the vCPU last ran
// another set of them; its KVM platform (patches/gvisor/0003) takes the
// registers for a context's next Switch and reports DR6 of the debug
// exception that ended it. This package decides what those registers hold
// and reads their exceptions, and backend.Loop, the Switch of every back
// end, makes them the guest's through the core (hwbp.Tasks.Trap), as for
// the ptrace and systrap back ends with the host's debug registers. Like every back end
// it knows only the core (sentry/hwbp), not who registered the breakpoints.
//
// Why in-guest MOV DR rather than KVM_SET_DEBUGREGS or KVM_SET_GUEST_DEBUG:
// when the sentry switches to user code its thread is already in guest
// mode, and those ioctls need the vCPU out of it, which would cost a VM
// exit and a host system call at every switch of a task with breakpoints
// (and new ioctls in the sentry's seccomp filter), against a register
// write that KVM stops intercepting after the first one following each VM
// exit. DR0-DR3 are rewritten only when the vCPU last ran another set (a
// generation number), so a task that keeps its vCPU pays one MOV DR7 per
// entry and one per exit, and a sandbox without breakpoints executes no
// MOV DR at all: ring 0 skips both on a compare of a per-CPU word.
//
// Invariants:
//   - Switch is called only while a breakpoint may be enabled in the
//     sandbox; otherwise the plugin's Switch costs one atomic load more than
//     the platform's own, and ring 0 one compare of a per-CPU word at each
//     entry and exit.
//   - The registers are set for one Switch at a time (the platform's
//     SetDebugRegisters applies to the next Switch only): a task runs with
//     nothing armed unless this back end armed its own image for that very
//     Switch, so no image outlives the breakpoints it came from, and there
//     is nothing to undo when the last breakpoint goes.
//   - No debug register holds an address at or above the end of the
//     application's address space (backend.Loop.Image).
//   - No per-task state: nothing to free at exit, nothing held in
//     proportion to the guest's threads.
package kvm

import (
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/sentry/kernel"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp/backend"
)

// DebugContext is what the KVM platform's task contexts offer for debug
// registers (patches/gvisor/0003-kvm-debug-registers.patch).
type DebugContext interface {
	// SetDebugRegisters sets DR0-DR3 and DR7 for the next Switch only.
	SetDebugRegisters(addr [4]uint64, dr7 uint64)

	// DebugStatus returns DR6 of the debug exception that ended the
	// last Switch, in hardware polarity, or false if none did.
	DebugStatus() (uint64, bool)
}

// Backend arms tasks' breakpoints in the vCPUs of the KVM platform. Its
// Switch is backend.Loop's; a run is the image armed for it.
type Backend struct {
	backend.Loop[hwbp.Image]

	// foreign is set once a context that is not the KVM platform's was
	// met (and logged).
	foreign atomic.Bool
}

var (
	_ backend.Backend            = (*Backend)(nil)
	_ backend.Arming[hwbp.Image] = (*Backend)(nil)
)

// New returns a back end for the breakpoints of tasks.
func New(tasks *hwbp.Tasks[*kernel.Task]) *Backend {
	b := &Backend{}
	b.Init(tasks, b)
	return b
}

// Stale implements backend.Backend.Stale: a context's registers are set for
// one Switch only, so no trap can come from an image of the past.
func (b *Backend) Stale(*linux.SignalInfo) bool { return false }

// Arm implements backend.Arming.Arm: the vCPU's debug registers hold the
// task's image for the coming Switch.
func (b *Backend) Arm(run backend.Run) (hwbp.Image, error) {
	dc, ok := run.Context.(DebugContext)
	if !ok {
		if !b.foreign.Swap(true) {
			log.Warningf("hwbp: task context %T has no debug registers (not gVisor's KVM platform with hwbp's patches?): breakpoints do not fire", run.Context)
		}
		return hwbp.Image{}, nil
	}
	img := b.Image(run.State)
	if !img.Empty() {
		dc.SetDebugRegisters(img.Addr, uint64(img.DR7))
	}
	return img, nil
}

// Exception implements backend.Arming.Exception: the platform reports DR6 of
// the #DB that ended the Switch, if one did; the exception then came from
// the vCPU itself, with no host kernel to set RF (the platform returns with
// IRET after it, which restores RF: arch.Context64.FullRestore).
func (b *Backend) Exception(run backend.Run, img hwbp.Image, _ *linux.SignalInfo) backend.Exception {
	dc, ok := run.Context.(DebugContext)
	if !ok {
		return backend.Exception{}
	}
	dr6, ok := dc.DebugStatus()
	if !ok {
		return backend.Exception{} // int3, or a SIGTRAP of another fault
	}
	return backend.Exception{Kind: backend.Debug, DR6: hwbp.DR6(dr6), Image: img, FromCPU: true}
}

// Done implements backend.Arming.Done: the registers were set for that
// Switch only, nothing remains to release.
func (*Backend) Done(backend.Run, hwbp.Image) {}
