// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"sync"
	"sync/atomic"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// Sigtrap is the SIGTRAP that an overflow of a sigtrap event sends to the
// thread that hit (Linux's send_sig_perf): si_code TRAP_PERF, si_addr Addr
// (bp_addr), si_perf_data Data (sig_data), si_perf_type Type (the event's
// type).
type Sigtrap struct {
	Addr uint64
	Data uint64
	Type uint32
}

// Reasons of an overflow notification (the si_code that Linux's kill_fasync
// passes on): Linux's event->pending_kill.
const (
	// PollIn is an overflow (POLL_IN).
	PollIn = 1
	// PollHUp is the overflow that used up a PERF_EVENT_IOC_REFRESH
	// limit (POLL_HUP).
	PollHUp = 6
)

// AsyncFunc notifies the owner of an event's fd, whose O_ASYNC is set, of
// reason (PollIn or PollHUp): Linux's kill_fasync(perf_event_fasync(event),
// SIGIO, reason). It is called from the goroutine of the thread that hit, or
// of the thread that exits, with no lock of this package held.
type AsyncFunc func(reason int)

// SignalFunc sends s to thread k, which is running the instruction that
// hit, from its own goroutine; the SIGTRAP must reach it before it runs
// another instruction, as Linux's task work does at the return to user mode.
type SignalFunc[K comparable] func(k K, s Sigtrap)

// Events is the perf_event_open consumer of the breakpoints of a sandbox's
// threads, identified by K as in hwbp.Tasks.
type Events[K comparable] struct {
	tasks *hwbp.Tasks[K]

	// signal sends sigtrap events' signals; nil sends none.
	signal SignalFunc[K]

	// lastID is the last event id handed out (Linux's perf_event_id).
	lastID atomic.Uint64

	// sideBand is the number of open events (the guest's, not their
	// inherited copies) that ask for side-band records: see SideBand.
	sideBand atomic.Int64

	// watched is the number of events, opened and inherited, that watch
	// a thread (are in its taskEvents): see Watching.
	watched atomic.Int64

	// groupMu guards the events' group membership (Linux's
	// ctx->mutex for the group lists).
	groupMu sync.Mutex

	// leaders maps each event that joined a group to its leader; a
	// leader, and an event alone, has no entry.
	//
	// +checklocks:groupMu
	leaders map[*Event[K]]*Event[K]

	// siblings maps each leader to the other members of its group, in the
	// order they joined.
	//
	// +checklocks:groupMu
	siblings map[*Event[K]][]*Event[K]

	// sampler gives the samples' thread ids, CPUs and times; nil gives
	// zeros. Set before the first event opens.
	sampler Sampler[K]

	// ringMu serializes the mapping, unmapping and redirection of rings
	// (Linux's mmap_mutex), and guards the rings' mapped counts.
	ringMu sync.Mutex

	// lockedPages and pinnedPages are the pages that mapped rings count
	// against the per-CPU allowance (user->locked_vm) and RLIMIT_MEMLOCK
	// (mm->pinned_vm): the sandbox's rings count as one user's.
	//
	// +checklocks:ringMu
	lockedPages uint64
	// +checklocks:ringMu
	pinnedPages uint64
}

// NewEvents returns the perf view of tasks, whose sigtrap events signal
// through signal.
func NewEvents[K comparable](tasks *hwbp.Tasks[K], signal SignalFunc[K]) *Events[K] {
	return &Events[K]{
		tasks:    tasks,
		signal:   signal,
		leaders:  make(map[*Event[K]]*Event[K]),
		siblings: make(map[*Event[K]][]*Event[K]),
	}
}

// Target is what perf_event_open's pid and cpu arguments name.
type Target[K comparable] struct {
	// Task is the thread to watch, if HasTask; otherwise the event is
	// CPU-wide.
	Task    K
	HasTask bool

	// CPU is the cpu argument: -1 for any, else the CPU the event counts
	// on. NumCPU is the number of CPUs of the sandbox (nr_cpu_ids).
	CPU    int32
	NumCPU int

	// MayAccess is the caller's ptrace access check of Task
	// (ptrace_may_access with PTRACE_MODE_READ_REALCREDS, or
	// PTRACE_MODE_ATTACH_REALCREDS if attach).
	MayAccess func(attach bool) bool

	// Exited reports whether Task has exited (perf_event_exit_task ran:
	// Linux's TASK_TOMBSTONE context).
	Exited func() bool

	// Clock returns the time, in nanoseconds, that the event's times
	// (enabled, running) follow while it is enabled and its task lives.
	Clock func() uint64
}

// Group is what perf_event_open's group_fd names.
type Group[K comparable] struct {
	// Leader is group_fd's event, nil if group_fd is -1 or
	// PERF_FLAG_FD_NO_GROUP was given.
	Leader *Event[K]
	// Output is set by PERF_FLAG_FD_OUTPUT with a group_fd.
	Output *Event[K]
}
