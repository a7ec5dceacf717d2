// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import "github.com/gvisor-hwbp/hwbp/sentry/hwbp"

// overflow is the event's hwbp.OverflowHandler: perf_bp_event counts the
// hit, unless the event excludes user mode (perf_exclude_event), where every
// hit of a guest happens. A sampling event overflows once every
// sample_period hits (perf_swevent_event, with period_left and last_period
// as Linux keeps them), or at every hit if it samples PERF_SAMPLE_PERIOD
// without freq; an overflow of a sigtrap event
// sends the SIGTRAP (__perf_event_overflow, perf_sigtrap), and every
// overflow notifies the fd's O_ASYNC owner if it has one: POLL_IN, or
// POLL_HUP for the overflow that uses up a PERF_EVENT_IOC_REFRESH limit
// (__perf_event_overflow sets pending_kill and queues perf_event_wakeup
// when the event has a fasync entry). Between the two, the overflow writes
// a PERF_RECORD_SAMPLE to the event's ring if it has one.
func (ev *Event[K]) overflow(_ *hwbp.Breakpoint, hit hwbp.Hit) {
	if ev.excludeUser {
		return
	}
	ev.count.Add(1)
	ev.mu.Lock()
	a := &ev.attr
	if !a.Sampling() || ev.bp == nil {
		ev.mu.Unlock()
		return
	}
	// perf_swevent_event, for the one hit (nr 1) of a breakpoint. The
	// sample's period is last_period as the hit finds it.
	period, n := ev.lastPeriod, uint64(1)
	switch {
	case a.SampleType()&SamplePeriod != 0 && !a.Has(FlagFreq):
		// Every hit of an event that samples PERF_SAMPLE_PERIOD
		// (without freq) is an overflow of period nr, 1, whatever
		// sample_period says; period_left is left alone (measured
		// on 6.1: after PERF_EVENT_IOC_PERIOD 2, each write still
		// gives a sample of period 1).
		period = 1
	case a.SamplePeriod() == 1 && !a.Has(FlagFreq):
		// A period of 1 overflows at every hit, period_left alone.
	case ev.left > 1:
		// period_left stays negative.
		ev.left--
		ev.mu.Unlock()
		return
	default:
		// perf_swevent_overflow and perf_swevent_set_period: as
		// many overflows as periods of last_period fit in what the
		// hit made of period_left, which goes back below zero by
		// the new period. period_left is 0 after
		// PERF_EVENT_IOC_PERIOD, so that the first hit after it
		// overflows, twice if last_period was 1 (measured on 6.1).
		val := 1 - ev.left
		last := max(ev.lastPeriod, 1)
		ev.lastPeriod = ev.periodLocked()
		n = (last + val) / last
		ev.left = n*last - val
	}
	ev.mu.Unlock()
	for ; n > 0; n-- {
		if ev.overflowOnce(period, hit) {
			break
		}
	}
}

// setCounter makes bp, ev's new breakpoint, a counting event if ev, whose
// attribute is a, does not sample: hits that a back end counts without trapping then add to ev's
// count as the overflow handler's would (a counting event's overflow
// handler only counts).
func (ev *Event[K]) setCounter(bp *hwbp.Breakpoint, a Attr) {
	if a.Sampling() {
		return
	}
	bp.SetCounter(func(n uint64) {
		if !ev.excludeUser {
			ev.count.Add(n)
		}
	})
}

// overflowOnce is __perf_event_overflow: the signals, the sample and the
// O_ASYNC notification of one overflow of period period. It reports
// whether the overflow used up a PERF_EVENT_IOC_REFRESH limit, after which
// perf_swevent_overflow makes no more overflows of the hit.
func (ev *Event[K]) overflowOnce(period uint64, hit hwbp.Hit) bool {
	ev.mu.Lock()
	a := &ev.attr
	ev.pendingKill = PollIn
	// The overflow that uses up a PERF_EVENT_IOC_REFRESH limit disables
	// the event; it still signals.
	limited := false
	if ev.limit != 0 {
		if ev.limit--; ev.limit == 0 {
			ev.setEnabledLocked(false)
			ev.pendingKill = PollHUp
			limited = true
		}
	}
	sig := a.Has(FlagSigtrap)
	s := Sigtrap{Addr: a.BPAddr(), Data: a.SigData(), Type: a.Type()}
	notify, reason := ev.takePendingLocked()
	attr := *a
	ev.mu.Unlock()
	if sig && ev.es.signal != nil {
		ev.es.signal(ev.target.Task, s)
	}
	// The overflow handler, perf_event_output_forward: a sample in the
	// ring, if there is one.
	if ev.opened().ring.Load() != nil {
		ev.output(&attr, ev.es.data(ev.target.Task, hit.IP), period)
	}
	if notify != nil {
		notify(reason)
	}
	return limited
}

// opened returns the event that the guest opened: ev, or the event that ev
// is a copy of.
func (ev *Event[K]) opened() *Event[K] {
	if ev.parent != nil {
		return ev.parent
	}
	return ev
}

// takePendingLocked returns the O_ASYNC notification that ev's pending
// reason calls for, and clears the reason, if the fd has O_ASYNC set and a
// reason is pending (perf_event_wakeup); otherwise nil.
//
// +checklocks:ev.mu
func (ev *Event[K]) takePendingLocked() (AsyncFunc, int) {
	if ev.pendingKill == 0 {
		return nil, 0
	}
	fn := ev.opened().async.Load()
	if fn == nil {
		return nil, 0
	}
	reason := ev.pendingKill
	ev.pendingKill = 0
	return *fn, reason
}

// wakeup is perf_event_wakeup: the waiters of the fds of the events whose
// records go to ev's ring, if it has one (ring_buffer_wakeup), and the
// O_ASYNC notification of a pending overflow, if the fd has O_ASYNC set.
func (ev *Event[K]) wakeup() {
	if r := ev.ring.Load(); r != nil {
		r.wakeAll()
	}
	ev.mu.Lock()
	notify, reason := ev.takePendingLocked()
	ev.mu.Unlock()
	if notify != nil {
		notify(reason)
	}
}

// SetAsync sets the notification of the fd's O_ASYNC owner (fasync_helper
// through perf_fasync): fn while O_ASYNC is set, nil when it is cleared.
func (ev *Event[K]) SetAsync(fn AsyncFunc) {
	if fn == nil {
		ev.async.Store(nil)
		return
	}
	ev.async.Store(&fn)
}

// periodLocked is the number of hits between overflows: sample_period, or
// 1 for a frequency event, whose period Linux adapts from 1 at every tick.
//
// +checklocks:ev.mu
func (ev *Event[K]) periodLocked() uint64 {
	if ev.attr.Has(FlagFreq) {
		return 1
	}
	return ev.attr.SamplePeriod()
}
