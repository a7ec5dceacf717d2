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
// and what their exceptions mean (hwbp.Tasks.Trap), as the ptrace and
// systrap back ends do with the host's debug registers. Like every back end
// it knows only the core (sentry/hwbp), not who registered the breakpoints.
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
//     application's address space (SetMaxUserAddress).
//   - No per-task state: nothing to free at exit, nothing held in
//     proportion to the guest's threads.
package kvm

import (
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/platform"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// eflagsRF is EFLAGS.RF, the resume flag.
const eflagsRF = 1 << 16

// DebugContext is what the KVM platform's task contexts offer for debug
// registers (patches/gvisor/0003-kvm-debug-registers.patch).
type DebugContext interface {
	// SetDebugRegisters sets DR0-DR3 and DR7 for the next Switch only.
	SetDebugRegisters(addr [4]uint64, dr7 uint64)

	// DebugStatus returns DR6 of the debug exception that ended the
	// last Switch, in hardware polarity, or false if none did.
	DebugStatus() (uint64, bool)
}

// Backend arms tasks' breakpoints in the vCPUs of the KVM platform.
type Backend struct {
	tasks *hwbp.Tasks[*kernel.Task]

	// maxUser is the end of the application's address space.
	maxUser atomic.Uint64

	// foreign is set once a context that is not the KVM platform's was
	// met (and logged).
	foreign atomic.Bool
}

// New returns a back end for the breakpoints of tasks.
func New(tasks *hwbp.Tasks[*kernel.Task]) *Backend {
	b := &Backend{tasks: tasks}
	b.maxUser.Store(^uint64(0))
	return b
}

// SetMaxUserAddress tells the back end where the platform's application
// address space ends (platform.Platform.MaxUserAddress): breakpoints at or
// above it are not armed (hwbp.Image.Below).
func (b *Backend) SetMaxUserAddress(a hostarch.Addr) {
	b.maxUser.Store(uint64(a))
}

// Stale implements the plugin's backend.Stale: a context's registers are
// set for one Switch only, so no trap can come from an image of the past.
func (b *Backend) Stale(*linux.SignalInfo) bool { return false }

// Switch runs inner.Switch for task t with the vCPU's debug registers set to
// t's image, and turns the debug exceptions that they cause into the
// guest's.
func (b *Backend) Switch(t *kernel.Task, inner platform.Context, ctx context.Context, mm platform.MemoryManager, ac *arch.Context64, cpu int32) (*linux.SignalInfo, hostarch.AccessType, error) {
	dc, ok := inner.(DebugContext)
	if !ok {
		if !b.foreign.Swap(true) {
			log.Warningf("hwbp: task context %T has no debug registers (not gVisor's KVM platform with hwbp's patches?): breakpoints do not fire", inner)
		}
		return inner.Switch(ctx, mm, ac, cpu)
	}
	for {
		var img hwbp.Image
		if task := b.tasks.Lookup(t); task != nil {
			img = task.Image().Below(b.maxUser.Load())
		}
		if !img.Empty() {
			dc.SetDebugRegisters(img.Addr, uint64(img.DR7))
		}
		info, at, err := inner.Switch(ctx, mm, ac, cpu)
		if err != platform.ErrContextSignal || info.Signo != int32(linux.SIGTRAP) {
			return info, at, err
		}
		dr6, ok := dc.DebugStatus()
		if !ok {
			return info, at, err // int3, or a SIGTRAP of another fault
		}
		out := b.tasks.Trap(t, &img, hwbp.DR6(dr6), uint64(ac.IP()))
		if out.ResumeRF {
			// The execution breakpoint, a fault, fired before its
			// instruction ran: Linux's hw_breakpoint_handler sets
			// RF so that the instruction runs when the thread
			// resumes, and the tracer sees it in EFLAGS. With RF
			// set, the platform returns with IRET, which restores
			// it (arch.Context64.FullRestore).
			ac.StateData().Regs.Eflags |= eflagsRF
		}
		if !out.Deliver {
			// Only events that do not signal the task fired: it
			// goes on, invisibly.
			continue
		}
		info.Code = out.Signal.Code
		info.SetAddr(out.Signal.Addr)
		return info, at, err
	}
}
