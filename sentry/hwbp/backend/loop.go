// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package backend

import (
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/seccomp"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/platform"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// eflagsRF is EFLAGS.RF, the resume flag (gVisor's arch package keeps its
// own unexported).
const eflagsRF = 1 << 16

// Loop is the Switch of every back end, embedded in it and set up with Init:
// it arms the task through the back end's Arming, runs the platform's
// Switch, and takes the debug exceptions through the core.
type Loop[R any] struct {
	tasks  *hwbp.Tasks[*kernel.Task]
	arming Arming[R]

	// maxUser is the end of the application's address space.
	maxUser atomic.Uint64
}

// Init sets l up for the breakpoints of tasks, armed by a, before any task
// runs.
func (l *Loop[R]) Init(tasks *hwbp.Tasks[*kernel.Task], a Arming[R]) {
	l.tasks, l.arming = tasks, a
	l.maxUser.Store(^uint64(0))
}

// SetMaxUserAddress implements Backend.SetMaxUserAddress.
func (l *Loop[R]) SetMaxUserAddress(a hostarch.Addr) {
	l.maxUser.Store(uint64(a))
}

// Limit returns the end of the application's address space: no back end
// arms anything at or above it (hwbp.Image.Below).
func (l *Loop[R]) Limit() uint64 { return l.maxUser.Load() }

// Image returns what a back end may arm of task's breakpoints: its image
// (hwbp.Task.Image) without the slots at or above Limit. A nil task has an
// empty one.
func (l *Loop[R]) Image(task *hwbp.Task) hwbp.Image {
	if task == nil {
		return hwbp.Image{}
	}
	return task.Image().Below(l.Limit())
}

// Switch implements Backend.Switch.
func (l *Loop[R]) Switch(t *kernel.Task, inner platform.Context, local *Local, ctx context.Context, mm platform.MemoryManager, ac *arch.Context64, cpu int32) (*linux.SignalInfo, hostarch.AccessType, error) {
	for {
		run := Run{Task: t, State: l.tasks.Lookup(t), Context: inner, MM: mm, Local: local}
		r, err := l.arming.Arm(run)
		if err != nil {
			return nil, hostarch.NoAccess, err
		}
		info, at, err := inner.Switch(ctx, mm, ac, cpu)
		again := false
		if err == platform.ErrContextSignal && info.Signo == int32(linux.SIGTRAP) {
			again = l.trap(run, r, ac, info)
		}
		l.arming.Done(run, r)
		if !again {
			return info, at, err
		}
	}
}

// trap takes the SIGTRAP info that ended r's Switch through the core, and
// reports whether the guest must not see it: the task runs again.
func (l *Loop[R]) trap(run Run, r R, ac *arch.Context64, info *linux.SignalInfo) (again bool) {
	ex := l.arming.Exception(run, r, info)
	switch ex.Kind {
	case Foreign:
		return false
	case Spurious:
		return true
	}
	out := l.tasks.Trap(run.Task, &ex.Image, ex.DR6, uint64(ac.IP()))
	if ex.Kind == Seen {
		return false
	}
	if out.ResumeRF && ex.FromCPU {
		// The execution breakpoint, a fault, fired before its
		// instruction ran: hw_breakpoint_handler sets RF so that the
		// instruction runs when the thread resumes, and the tracer
		// sees it in EFLAGS.
		ac.StateData().Regs.Eflags |= eflagsRF
	}
	if !out.Deliver {
		// Only events that do not signal the task fired: it goes on,
		// invisibly. (Never for a single-step, which always signals.)
		return true
	}
	if ex.Plain {
		info.Fields = [len(info.Fields)]byte{}
	}
	info.Code = out.Signal.Code
	info.SetAddr(out.Signal.Addr)
	return false
}

// Forget implements Backend.Forget for back ends without per-task state
// beyond a Switch: nothing to drop.
func (*Loop[R]) Forget(*kernel.Task) {}

// Refresh implements Backend.Refresh for back ends that arm a task's
// breakpoints only for its own Switch: nothing to bring up to date.
func (*Loop[R]) Refresh(*kernel.Task) {}

// SeccompRules implements Backend.SeccompRules for back ends that make no
// host system call of their own.
func (*Loop[R]) SeccompRules() seccomp.SyscallRules { return seccomp.NewSyscallRules() }

// HostFDs implements Backend.HostFDs for back ends that hold no host fd.
func (*Loop[R]) HostFDs() int64 { return 0 }

// Refusals implements Backend.Refusals for back ends whose host never
// refuses.
func (*Loop[R]) Refusals() int64 { return 0 }
