// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import "sync"

// Linux schedules a thread's perf events out when the thread leaves its CPU
// and in when it comes back (perf_event_task_sched_out and _in,
// kernel/events/core.c). Two things of a breakpoint event change there, and
// the sandbox mirrors both at the points where a sandboxed thread leaves
// and regains its CPU for certain: when it blocks in the sentry (a sleep, a
// wait, a read that must wait) or stops (a group or ptrace stop), and when
// it next runs its code.
//
//   - The times: a thread's events are enabled and running only while their
//     context's clock runs (ctx->time, perf_event_time), and that clock runs
//     only while the thread is on a CPU. An event's time enabled and time
//     running therefore do not advance while its thread sleeps or is
//     stopped.
//   - The period of a sampling event: event_sched_in calls the PMU's add,
//     hw_breakpoint_add (kernel/events/hw_breakpoint.c), which sets
//     last_period to sample_period and calls perf_swevent_set_period. That
//     starts a new period when period_left is 0, as PERF_EVENT_IOC_PERIOD
//     leaves it until the next hit (__perf_event_period). So after the
//     ioctl, the next samples fall where the new period says if the thread
//     was scheduled out and in before its next hit, and one hit later (one
//     overflow of the old last_period, two if that was 1) if it was not.
//
// A thread that Linux preempts is scheduled out too, but when that happens
// depends on the host's load and is not mirrored: a sandboxed thread that
// its host thread's preemption delays counts as running, and its periods
// are not re-armed. Neither is a sched_yield (Linux switches only when
// another thread is runnable there) nor an uninterruptible wait in the
// sentry (which stands mostly for I/O that Linux serves from its page cache
// without sleeping). Linux also skips both when it switches between a
// thread and one with an equivalent inherited context
// (perf_event_context_sched_out's swap of context_equiv contexts); the
// sandbox does not.

// schedClock is the clock of a thread's perf context: Target.Clock with the
// time the thread was scheduled out taken away (Linux's ctx->time).
type schedClock struct {
	mu sync.Mutex

	// outSince is Target.Clock when the thread was scheduled out, 0
	// while it runs.
	//
	// +checklocks:mu
	outSince uint64

	// out is the time the thread was scheduled out before outSince.
	//
	// +checklocks:mu
	out uint64
}

// at returns the context's time when Target.Clock says now.
func (c *schedClock) at(now uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.outSince != 0 {
		now = c.outSince
	}
	return now - c.out
}

// stop stops the context's clock at now, if it runs.
func (c *schedClock) stop(now uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.outSince == 0 {
		c.outSince = max(now, 1)
	}
}

// start starts the context's clock at now, if it was stopped.
func (c *schedClock) start(now uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.outSince != 0 {
		c.out += max(now, c.outSince) - c.outSince
		c.outSince = 0
	}
}

// Watching reports whether some event watches a thread: while none does,
// SchedOut and SchedIn have nothing to do. It is one atomic load, for the
// sentry's paths that block and switch.
func (es *Events[K]) Watching() bool { return es.watched.Load() > 0 }

// SchedOut tells the events of thread k that it left its CPU at now
// (Target.Clock's time): it blocked or stopped. Their times stop.
func (es *Events[K]) SchedOut(k K, now uint64) {
	if x := es.taskEventsOf(k); x != nil {
		x.clock.stop(now)
	}
}

// SchedIn tells the events of thread k that it is back on a CPU, the CPU
// cpu, at now, before it runs its code: their times go on, and each enabled
// event that may count on cpu is added as hw_breakpoint_add adds it (see
// schedIn).
func (es *Events[K]) SchedIn(k K, cpu int32, now uint64) {
	x := es.taskEventsOf(k)
	if x == nil {
		return
	}
	x.clock.start(now)
	for _, ev := range x.list() {
		ev.schedIn(cpu)
	}
}

// schedIn re-arms the event's period as event_sched_in does, if it is
// enabled and counts on cpu (event_filter_match).
func (ev *Event[K]) schedIn(cpu int32) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.bp == nil || !ev.enabled || (ev.target.CPU >= 0 && ev.target.CPU != cpu) {
		return
	}
	ev.addLocked()
}

// addLocked is what hw_breakpoint_add does to a sampling event's period
// when the event is enabled or scheduled in: last_period becomes the period,
// and perf_swevent_set_period starts a new period if period_left is 0 (left
// is never more than 0 in Linux's terms, so it changes nothing else).
//
// +checklocks:ev.mu
func (ev *Event[K]) addLocked() {
	ev.lastPeriod = ev.periodLocked()
	if ev.left == 0 {
		ev.left = ev.lastPeriod
	}
}
