// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"gvisor.dev/gvisor/pkg/sentry/platform"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// This file: positions whose host events count hits instead of signalling
// each one.
//
// A counting event (hwbp.Breakpoint.SetCounter: a perf event that does not
// sample, as perf stat's) needs the number of its hits, not a trap at each:
// a stub thread that stops for every hit makes a loop of writes to a watched
// word run at the speed of the sentry's round trips. The host's own perf
// breakpoint events can count without stopping anyone, but they count the
// hits of whichever task a stub thread runs, and the stub threads take
// contexts from a shared queue. So a position counts (space.count) only
// while its hits can belong to one task alone: the space has a single
// member, that member is the only user of the address space (so no other
// task can run in the stub process: a new user appears only by a clone of
// the member, made while the member is in the sentry, and the first arm
// after it, before anyone runs again, turns counting off), every event
// that the member has at the position's entry is a counting event, and the
// member's virtual DR6 is clean (Linux's exc_debug_user resets it at every
// hit, which a hit that does not reach the sentry cannot do). Everything
// else keeps a trap per hit.
//
// The counts are read back (settle) whenever they may stop being the
// member's alone or its events change: at every arm before the members are
// updated, before events are reopened or closed, and when a consumer reads
// an event (Backend.Flush, through hwbp.Breakpoint.Flush).

// users is the part of gVisor's mm.MemoryManager that tells how many tasks
// use an address space (the hwbp accessor added to gVisor's mm package).
type users interface {
	Users() int32
}

// hostCounting is which of a space's positions count hits rather than signal
// each, and whose hits they are.
type hostCounting struct {
	// positions marks the positions whose events count; base is the sum
	// of their counts as last read.
	positions [hwbp.Slots]bool
	base      [hwbp.Slots]uint64

	// task is the member whose hits they are, and img its image as they
	// were armed from it.
	task *hwbp.Task
	img  hwbp.Image
}

// soleUser reports whether mm's address space has a single user.
func soleUser(mm platform.MemoryManager) bool {
	u, ok := mm.(users)
	return ok && u.Users() == 1
}

// countable returns which positions may count rather than signal, given
// the placement want/use, if solo: sp's only member is the only task that
// can run in its process (see above). It allocates nothing.
//
// +checklocks:sp.mu
func (sp *space) countable(want [hwbp.Slots]entry, use [hwbp.Slots]bool, solo bool) (counting [hwbp.Slots]bool) {
	if !solo || len(sp.members) != 1 || !sp.env.r.HostCounting() {
		return counting
	}
	for _, m := range sp.members {
		img := m.img.Below(sp.placement.limit)
		for pos := range want {
			if !use[pos] {
				continue
			}
			n, all := 0, true
			for slot := 0; slot < hwbp.Slots; slot++ {
				if img.DR7.Enabled(slot) && entryOf(&img, slot) == want[pos] {
					n++
					all = all && img.Counting(slot)
				}
			}
			counting[pos] = n > 0 && all
		}
	}
	return counting
}

// setCounted records whose events the counting positions count, with the
// image they are armed from, so that settle and Backend.Flush find them.
//
// +checklocks:sp.mu
func (sp *space) setCounted() {
	var counted *hwbp.Task
	if sp.anyCounting() && len(sp.members) == 1 {
		for _, m := range sp.members {
			counted, sp.count.img = m.task, m.img.Below(sp.placement.limit)
		}
	}
	if sp.count.task != nil && sp.count.task != counted {
		sp.env.counters.CompareAndDelete(sp.count.task, sp)
	}
	if counted != nil && sp.count.task != counted {
		sp.env.counters.Store(counted, sp)
	}
	sp.count.task = counted
	if counted == nil {
		sp.count.img = hwbp.Image{}
	}
}

// anyCounting reports whether a position of sp counts.
//
// +checklocks:sp.mu
func (sp *space) anyCounting() bool {
	for pos, c := range sp.count.positions {
		if c && sp.placement.used[pos] {
			return true
		}
	}
	return false
}

// total returns the sum of the counts of the events at pos: the nursery's
// includes those of the threads that inherited it, live or exited.
//
// +checklocks:sp.mu
func (sp *space) total(pos int) uint64 {
	var sum uint64
	// forEachFD calls this before it returns, with sp.mu still held;
	// checklocks cannot tell.
	sp.forEachFD(pos, func(fd int, _ bool) {
		if n, err := sp.env.host.count(fd); err == nil {
			sum += n
		}
	})
	return sum
}

// settle delivers to the counted member's events the hits that the counting
// positions took since they were last read, under the image they were
// armed from (sp.count.img).
//
// +checklocks:sp.mu
func (sp *space) settle() {
	if !sp.events.open || sp.count.task == nil {
		return
	}
	for pos := range sp.count.positions {
		if !sp.count.positions[pos] || !sp.placement.used[pos] {
			continue
		}
		total := sp.total(pos)
		n := total - sp.count.base[pos]
		sp.count.base[pos] = total
		if n == 0 || total < n {
			continue // nothing new, or a count went back (a read failed)
		}
		for slot := 0; slot < hwbp.Slots; slot++ {
			if sp.count.img.DR7.Enabled(slot) && entryOf(&sp.count.img, slot) == sp.placement.armed[pos] {
				sp.count.img.Count(slot, n)
			}
		}
	}
}

// rebase makes the counting positions' current counts the starting point
// of the next settle, after some of their events were replaced. A counting
// position that is not used now keeps its events and their counts (it may
// be used again, by an in-place change), so its base is its total too.
//
// +checklocks:sp.mu
func (sp *space) rebase() {
	for pos := range sp.count.positions {
		sp.count.base[pos] = 0
		if sp.count.positions[pos] {
			sp.count.base[pos] = sp.total(pos)
		}
	}
}

// setCounting makes the events at each position count or signal as
// counting says. The events of every position are replaced on every stub
// thread and on the nursery, as when they were first opened: a change of
// one position's events alone could leave a thread with an inherited event
// and one of its own that both count its hits. Nothing may run (the
// caller's task is the only one between arm and its trap handling, and is
// not running), so that no hit is lost meanwhile.
//
// +checklocks:sp.mu
func (b *Backend) setCounting(sp *space, counting [hwbp.Slots]bool, threads func() (int32, []int32)) {
	if counting == sp.count.positions {
		return
	}
	sp.closeFDs()
	sp.count.positions = counting
	nursery, tids := threads()
	b.openEvents(sp, nursery, tids, threads)
}

// Flush implements hwbp.Flusher: the hits of t's counting events that the
// host counted and the back end did not deliver yet are delivered now.
func (b *Backend) Flush(t *hwbp.Task) {
	v, ok := b.counters.Load(t)
	if !ok {
		return
	}
	sp := v.(*space)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.count.task == t {
		sp.settle()
	}
}
