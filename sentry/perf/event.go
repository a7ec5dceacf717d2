// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// Event is one breakpoint event that perf_event_open created.
type Event[K comparable] struct {
	es     *Events[K]
	id     uint64
	target Target[K]

	// excludeUser is the attribute's exclude_user.
	excludeUser bool

	// onTask is the list of the target task's events, which its execve
	// and exit change; nil for an event without a task.
	onTask *taskEvents[K]

	// parent is the event that the guest opened, for a copy that a new
	// thread inherited (inherit); nil for that event itself. Immutable.
	parent *Event[K]

	// count is the event's count (hits since the last reset). The
	// overflow handler adds to it without any lock; a copy's exit moves
	// it to its opened event under both events' mu (detachCopy).
	count atomic.Uint64 // +checklocksignore

	// async is the notification of the fd's O_ASYNC owner while O_ASYNC
	// is set (Linux's event->fasync), nil otherwise; set on the event
	// that the guest opened only, which its copies use
	// (perf_event_fasync).
	async atomic.Pointer[AsyncFunc]

	// ring is the ring the event's records go to (event->rb): one mapped
	// through its fd, or another event's (PERF_EVENT_IOC_SET_OUTPUT);
	// nil for none. Events.ringMu serializes its changes; the overflow
	// handler loads it.
	ring atomic.Pointer[Ring]

	// lostSamples counts the samples that found no room in the ring
	// (event->lost_samples, PERF_FORMAT_LOST).
	lostSamples atomic.Uint64

	// waiters wakes up the waiters of the event's fd, nil if none.
	waiters atomic.Pointer[func()]

	mu sync.Mutex

	// mapped is the number of bytes of the guest's mappings of the ring
	// made through the event's fd (event->mmap_count, in bytes).
	//
	// +checklocks:mu
	mapped uint64

	// attr is the attribute the event was opened with, with the period
	// that PERF_EVENT_IOC_PERIOD set.
	//
	// +checklocks:mu
	attr Attr

	// bp is the core's event; nil for a closed event.
	//
	// +checklocks:mu
	bp *hwbp.Breakpoint

	// held is the core's event, disabled, of an opened event that an exec
	// removed (remove_on_exec): it keeps its slot until Close, as Linux
	// releases a breakpoint's slot only when it frees the event
	// (bp_perf_event_destroy from _free_event, at the last close), not
	// when perf_event_remove_on_exec detaches it.
	//
	// +checklocks:mu
	held *hwbp.Breakpoint

	// children are the live copies of an opened event in the threads that
	// inherited it.
	//
	// +checklocks:mu
	children []*Event[K]

	// childCount and childTime are the counts and times of the copies
	// that exited (Linux's child_count, child_total_time_enabled and
	// _running, which are equal for breakpoints).
	//
	// +checklocks:mu
	childCount uint64
	// +checklocks:mu
	childTime uint64

	// closed is set when the guest closed the event: no copy of it may
	// be made any more.
	//
	// +checklocks:mu
	closed bool

	// enabled is the event's state as the guest set it.
	//
	// +checklocks:mu
	enabled bool

	// left is the number of hits until the next overflow of a sampling
	// event (Linux's period_left, negated): 0 after
	// PERF_EVENT_IOC_PERIOD, which sets period_left to 0.
	//
	// +checklocks:mu
	left uint64

	// lastPeriod is the period of the last overflow (hw.last_period),
	// which the next overflow's count and sample use before it takes the
	// current period.
	//
	// +checklocks:mu
	lastPeriod uint64

	// limit is the number of overflows after which the event disables
	// itself, 0 for none (Linux's event_limit, which
	// PERF_EVENT_IOC_REFRESH adds to).
	//
	// +checklocks:mu
	limit int32

	// pendingKill is the reason of the last overflow that no O_ASYNC
	// notification has reported yet, 0 for none (Linux's pending_kill):
	// an overflow sets it, a notification clears it, and one is made at
	// the overflow if O_ASYNC is set, else when the watched thread
	// exits (perf_event_exit_event's perf_event_wakeup) if O_ASYNC is
	// set by then.
	//
	// +checklocks:mu
	pendingKill int

	// since is Target.Clock when the event was last enabled; total is the
	// time it was enabled before that.
	//
	// +checklocks:mu
	since uint64
	// +checklocks:mu
	total uint64
}

// errorf wraps errno with a message.
func errorf(errno unix.Errno, format string, args ...any) error {
	return fmt.Errorf("perf: "+format+": %w", append(args, errno)...)
}

// errExited is register's error for a thread that has begun to exit.
var errExited = errorf(unix.ESRCH, "the task has exited")

// ID is the event's id (PERF_EVENT_IOC_ID, PERF_FORMAT_ID).
func (ev *Event[K]) ID() uint64 { return ev.id }

// Defunct reports whether the event is gone from its task: the task exited
// or an exec removed the event (remove_on_exec); both are Linux's
// perf_event_exit_event. perf_event_open refuses such an event as group_fd
// with ENODEV, right after looking up group_fd (kernel/events/core.c, the
// check of the leader's state that came with PMU revocation in 6.15;
// measured on 6.18: also before ESRCH and before the attribute's breakpoint
// checks, and with PERF_FLAG_FD_NO_GROUP or PERF_FLAG_FD_OUTPUT).
func (ev *Event[K]) Defunct() bool {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.bp == nil
}

// Attr returns the event's attribute.
func (ev *Event[K]) Attr() Attr {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.attr
}

// now returns the time of the event's context, which the event's times
// follow: its thread's context clock (schedClock) for an event that
// watches a thread, else the target's clock.
func (ev *Event[K]) now() uint64 {
	now := ev.rawNow()
	if ev.onTask != nil {
		return ev.onTask.clock.at(now)
	}
	return now
}

// rawNow returns the target's clock.
func (ev *Event[K]) rawNow() uint64 {
	if ev.target.Clock == nil {
		return 0
	}
	return ev.target.Clock()
}
