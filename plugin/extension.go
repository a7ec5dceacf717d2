package plugin

import (
	"gvisor.dev/gvisor/pkg/sentry/kernel"
)

// taskExtension is the plugin's kernel.Extension (patches/gvisor/0005 and
// 0006): gVisor tells it of each new task, as Linux's copy_process tells
// its per-task subsystems, and hands it the debug-register part of its
// tracees' struct user, as Linux's arch_ptrace does.
type taskExtension struct{}

// TaskCloned implements kernel.Extension.TaskCloned. Before child first
// runs it gets what Linux's clone gives it: its creator's virtual DR6 and
// the copies of the creator's inherited perf events, as flags decide
// (hwbp.Tasks.Clone; perf_event_init_task), and the creator's perf events
// that ask for side-band records get PERF_RECORD_FORK (perf_event_fork). A
// creator without debug-register state, almost every one, costs one lookup.
func (taskExtension) TaskCloned(parent, child *kernel.Task, flags uint64) {
	if tasks.Lookup(parent) == nil {
		return
	}
	tasks.Clone(parent, child, flags)
	if events.SideBand() {
		events.Fork(parent, child)
	}
}

// PtracePeekUser implements kernel.Extension.PtracePeekUser, as Linux's
// arch_ptrace does: the debug registers (ptrace.Threads.PeekUser), 0 for
// the other fields.
func (taskExtension) PtracePeekUser(tracee *kernel.Task, off uintptr) (uint64, error) {
	addCheckpoint(tracee.Kernel())
	v, err := threads.PeekUser(tracee, uint64(off))
	if err != nil {
		return 0, guestError(err)
	}
	return v, nil
}

// PtracePokeUser implements kernel.Extension.PtracePokeUser: the debug
// registers (ptrace.Threads.PokeUser), EIO for the other fields, as on
// Linux. The back end learns of the change while the tracee is still
// frozen in its ptrace-stop.
func (taskExtension) PtracePokeUser(tracee *kernel.Task, off uintptr, value uint64) error {
	addCheckpoint(tracee.Kernel())
	err := threads.PokeUser(tracee, uint64(off), value)
	// Even a failed DR7 write can leave breakpoints changed (Linux's
	// ptrace_write_dr7 restores the old DR7, not the old events).
	if r, ok := current.(refresher); ok {
		r.Refresh(tracee)
	}
	if err != nil {
		return guestError(err)
	}
	return nil
}
