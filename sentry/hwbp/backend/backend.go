// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package backend

import (
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/seccomp"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/platform"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// Backend is a platform's back end as the sentry drives it. Loop gives
// Switch and SetMaxUserAddress, and defaults for the methods that concern
// state a back end may not have (Forget, Refresh, SeccompRules, HostFDs,
// Refusals). A back end that counts hits on the host also implements
// hwbp.Flusher, which the sentry installs in the registry
// (hwbp.Registry.SetFlusher): that one stays optional, since installing it
// is what lets counting events count without traps.
type Backend interface {
	// Switch runs inner.Switch for task t with t's breakpoints armed, and
	// turns the debug exceptions that they cause into the guest's. local
	// is the back end's memory of t, kept with inner (nil: none).
	Switch(t *kernel.Task, inner platform.Context, local *Local, ctx context.Context, mm platform.MemoryManager, ac *arch.Context64, cpu int32) (*linux.SignalInfo, hostarch.AccessType, error)

	// SetMaxUserAddress tells the back end where the platform's
	// application address space ends (platform.Platform.MaxUserAddress),
	// before any task runs.
	SetMaxUserAddress(hostarch.Addr)

	// Stale reports whether a SIGTRAP that a Switch made without the back
	// end (while no breakpoint was enabled) comes from host state armed
	// before the last breakpoint went. Such a trap is not the guest's: the
	// task is resumed through Switch, which disarms what is left.
	Stale(info *linux.SignalInfo) bool

	// Forget drops what the back end holds for t beyond a Switch, at t's
	// execve or exit.
	Forget(t *kernel.Task)

	// Refresh takes t's current breakpoints into account at once, for a
	// back end that holds tasks' breakpoints beyond their own Switch. It
	// is called while t runs no application code: from t's tracer's
	// goroutine while t is stopped, or for a host watch that ended while
	// t blocks (t may then wake and Switch concurrently).
	Refresh(t *kernel.Task)

	// SeccompRules returns the host system calls that the back end makes
	// from the sentry beyond those the platform's own seccomp rules allow;
	// none (Size 0) leaves the platform's filter as it is.
	SeccompRules() seccomp.SyscallRules

	// HostFDs returns the number of host fds that the back end holds to
	// arm breakpoints, for the sentry's metrics.
	HostFDs() int64

	// Refusals returns how many times the host refused to arm
	// breakpoints, for the sentry's metrics.
	Refusals() int64
}

// Arming is what a back end implements for Loop: the platform's half of one
// Switch of a task. R is what a run needs from Arm to Done (the image armed,
// the host thread it was armed on, ...); it is passed by value, so that a
// Switch allocates nothing for it.
type Arming[R any] interface {
	// Arm arms the breakpoints of run.Task for the next Switch of
	// run.Context, as far as the platform can, and returns the run. An
	// error ends the Switch with that error, and then the run was not
	// begun: Done is not called.
	Arm(run Run) (R, error)

	// Exception reads the SIGTRAP info that ended r's Switch; it leaves
	// info as it is (Loop rewrites it).
	Exception(run Run, r R, info *linux.SignalInfo) Exception

	// Done ends r, once its exception, if any, went through the core.
	Done(run Run, r R)
}

// Run is one Switch of a task, as Loop asks a back end to arm it.
type Run struct {
	// Task is the task that runs, and State its breakpoint state in the
	// core, nil if it has none.
	Task  *kernel.Task
	State *hwbp.Task

	// Context is the platform's own context of the task, which Loop
	// switches to, and MM the address space it runs in.
	Context platform.Context
	MM      platform.MemoryManager

	// Local is the back end's memory of the task, or nil.
	Local *Local
}

// Local is what a back end remembers of one task from one Switch to the
// next, kept by whoever keeps the task's platform context (the plugin's
// taskContext): only the task's own Switch uses it, so it needs no lock,
// and it goes with the context. A back end uses it to skip lookups in
// shared maps on the Switches of tasks that breakpoints do not concern,
// which every task of the sandbox makes while any breakpoint is enabled.
type Local struct {
	// Value is the back end's, nil at first.
	Value any
}

// Kind says what a SIGTRAP that ended a Switch is to the guest.
type Kind int

const (
	// Foreign is a SIGTRAP that is no debug exception of the task's
	// breakpoints (an int3, a SIGTRAP that a process sent, one that the
	// back end cannot attribute): the guest gets it as it is.
	Foreign Kind = iota

	// Spurious is a hit of breakpoints that the task does not own
	// (another task's, or stale ones): the guest never sees it, and the
	// task runs again.
	Spurious

	// Debug is a debug exception of the task: the core decides what the
	// guest sees (hwbp.Tasks.Trap), and Loop rewrites the SIGTRAP.
	Debug

	// Seen is a debug exception that the host kernel already reported as
	// Linux does (an icebp, or a single-step that hit no breakpoint): the
	// core records it (the virtual DR6), and the SIGTRAP goes unchanged.
	Seen
)

// Exception is a back end's reading of the SIGTRAP that ended a Switch. The
// zero value is Foreign.
type Exception struct {
	Kind Kind

	// DR6 is the exception's DR6, in hardware polarity, and Image the
	// image the task ran with, whose slots DR6's B bits name (Debug and
	// Seen).
	DR6   hwbp.DR6
	Image hwbp.Image

	// FromCPU is set when DR6 is the #DB's own (the KVM platform's vCPU)
	// rather than a host kernel's report: Loop then sets EFLAGS.RF where
	// Linux's hw_breakpoint_handler does, as the host kernel's
	// exc_debug_user already did for the others.
	FromCPU bool

	// Plain is set when the SIGTRAP carries fields that Linux's has not
	// (a host perf event's sig_data): Loop clears them when it rewrites
	// the signal, which Linux's send_sigtrap makes a plain fault siginfo.
	Plain bool
}
