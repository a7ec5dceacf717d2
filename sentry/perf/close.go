// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

// exit removes the event from its task, which keeps its count and its
// times as they are (perf_event_exit_event): the task exited, or an exec
// removed the event (remove_on_exec).
//
// An inherited copy leaves its count and times to the event the guest
// opened (sync_child_event) and is forgotten.
func (ev *Event[K]) exit() { ev.detach(false) }

// detach is exit; with keepSlot, an event that the guest opened keeps its
// breakpoint's slot until Close (held); an inherited copy, which Linux
// frees at once, never does.
func (ev *Event[K]) detach(keepSlot bool) {
	if p := ev.parent; p != nil {
		ev.detachCopy(p)
		return
	}
	ev.mu.Lock()
	bp := ev.bp
	ev.bp = nil
	if keepSlot && bp != nil {
		ev.held = bp
		bp.Disable()
		bp = nil
	}
	ev.stopLocked()
	ev.mu.Unlock()
	if bp != nil {
		bp.Unregister()
	}
	// perf_event_exit_event: "Parent events are governed by their
	// filedesc", and woken up.
	ev.wakeup()
}

// detachCopy is detach of ev, a copy of p. Its count and times move to p
// in one step under p.mu, which value holds while it sums (Linux's
// sync_child_event under child_mutex): a read never sees them neither live
// nor left.
func (ev *Event[K]) detachCopy(p *Event[K]) {
	p.mu.Lock()
	ev.mu.Lock()
	ev.flushLocked()
	bp := ev.bp
	ev.bp = nil
	ev.stopLocked()
	count, t := ev.count.Swap(0), ev.total
	ev.total = 0
	ev.mu.Unlock()
	for i, c := range p.children {
		if c == ev {
			p.children = append(p.children[:i], p.children[i+1:]...)
			p.childCount += count
			p.childTime += t
			break
		}
	}
	p.mu.Unlock()
	if bp != nil {
		bp.Unregister()
	}
	// A copy's exit wakes up the event the guest opened, whose pending
	// overflow (not the copy's) it may report.
	p.wakeup()
}

// stopLocked stops the times of an enabled event, for good.
//
// +checklocks:ev.mu
func (ev *Event[K]) stopLocked() {
	if ev.enabled {
		ev.total += ev.now() - ev.since
		ev.enabled = false
	}
}

// Close releases the event's slot (perf_release). A group leader's siblings
// stay open, as singletons.
func (ev *Event[K]) Close() {
	// perf_release wakes nobody up; the fd's O_ASYNC is gone.
	ev.async.Store(nil)
	// _free_event: an event that wrote to another event's ring stops
	// (its own ring, mapped, would have kept its fd open).
	ev.es.ringMu.Lock()
	ev.attachRing(nil)
	ev.es.ringMu.Unlock()
	ev.exit()
	ev.mu.Lock()
	held := ev.held
	ev.held = nil
	ev.mu.Unlock()
	if held != nil {
		held.Unregister()
	}
	if ev.onTask != nil {
		ev.onTask.remove(ev)
	}
	// perf_event_release_kernel frees the inherited copies.
	ev.mu.Lock()
	children := ev.children
	ev.children = nil
	wasClosed := ev.closed
	ev.closed = true
	sideBand := ev.attr.Flags()&sideBandFlags != 0
	ev.mu.Unlock()
	if sideBand && !wasClosed && ev.parent == nil {
		ev.es.sideBand.Add(-1)
	}
	for _, c := range children {
		c.exit()
		if c.onTask != nil {
			c.onTask.remove(c)
		}
	}
	ev.leaveGroup()
}
