// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/log"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// This file: the host perf breakpoint events that arm a stub process's
// breakpoints on every one of its threads.

// hostEvents is a space's host events: on each stub thread that existed
// before the nursery's were opened, and on the nursery, whose clones
// inherit them.
type hostEvents struct {
	// open is whether the events exist.
	open bool

	// evicted is set when the events were closed to bound the host fds
	// (Backend.evict) while the space still had members: the next arm
	// reopens them.
	evicted bool

	// tids is the buffer of space.stubThreads.
	tids []int32

	// nursery are the events, by position, on the thread that clones new
	// stub threads, nurseryTID; they are inherited by those threads.
	nursery    [hwbp.Slots]int
	nurseryTID int32

	// own are the events of each stub thread that existed before nursery
	// was opened, by host TID; a nil value marks a thread that inherited
	// nursery's.
	own map[int32]*[hwbp.Slots]int

	// ownCounts are the counts of each own thread's events as last read,
	// and nurseryCounts those of the nursery's events, which sum the
	// counts of every thread that inherited them: comparing them with new
	// counts tells which events fired in a trap (see space.hits).
	ownCounts     map[int32]*[hwbp.Slots]uint64
	nurseryCounts [hwbp.Slots]uint64
}

// apply makes sp's events hold sp.want(), on the stub threads that threads
// lists (plus those already known), or only on the threads already known if
// threads is nil. Host failures are logged: the breakpoints concerned then
// do not fire.
//
// No host fd is opened while gVisor's stub locks are held: threads takes
// them only to list the threads. A stub thread that its process clones in
// the meantime is found by the next listing: if it was cloned after the
// nursery's events were opened it carries them, and openOwn learns so from
// the host's ENOSPC; otherwise it gets events of its own.
//
// With solo, the positions that countable allows count hits rather than
// signal each (count.go); this needs threads, since the events of every
// stub thread are reopened.
//
// +checklocks:sp.mu
func (b *Backend) apply(sp *space, threads func() (nursery int32, tids []int32), solo bool) {
	var nursery int32
	var tids []int32
	if threads != nil {
		nursery, tids = threads()
	}
	want, use, dropped := sp.want()
	if dropped > sp.placement.dropped {
		warnings.Warningf("hwbp: the tasks of one address space that run at the same time use more distinct breakpoints than the host's %d debug registers; %d do not fire while they do", hwbp.Slots, dropped)
	}
	sp.placement.dropped = dropped
	if !slices.Contains(use[:], true) {
		sp.closeAll()
		return
	}
	if !sp.events.open {
		if nursery == 0 {
			return // no threads to look at; the next Switch opens them
		}
		sp.placement.armed, sp.placement.used = want, use
		if sp.running.Load() == 1 {
			// No other task runs: nothing is inherited yet.
			sp.count.positions = sp.countable(want, use, solo)
		}
		sp.events.open = true
		sp.events.evicted = false
		sp.env.r.Retain()
		// One event per position on each stub thread and on the
		// nursery.
		need := int64(hwbp.Slots * (len(tids) + 1))
		b.admit(sp, need, func() {
			// admit calls this before it returns, with sp.mu still
			// held; checklocks cannot tell.
			b.openEvents(sp, nursery, tids, threads) // +checklocksignore
		})
		sp.openedAt.Store(nanotime())
		sp.setCounted()
		sp.report(true)
		return
	}
	for pos := range want {
		if want[pos] == sp.placement.armed[pos] && use[pos] == sp.placement.used[pos] {
			continue
		}
		e := want[pos]
		if !use[pos] {
			e = sp.placement.armed[pos]
		}
		counting := sp.count.positions[pos]
		sp.forEachFD(pos, func(fd int, inherit bool) {
			// The events inherited from the nursery's take the
			// change too.
			a := e.attr(pos, inherit, counting)
			if err := sp.env.host.modify(fd, &a); err != nil {
				b.warn(err)
			}
			if err := sp.env.host.enable(fd, use[pos]); err != nil {
				b.warn(err)
			}
		})
		sp.placement.armed[pos], sp.placement.used[pos] = e, use[pos]
	}
	for _, tid := range tids {
		if _, ok := sp.events.own[tid]; !ok {
			b.openOwn(sp, tid)
		}
	}
	if nursery != 0 && sp.running.Load() == 1 {
		// Only the caller's task is between arm and its trap
		// handling, and it is not running: no event can fire now.
		if b.adopt(sp, nursery) {
			b.openNew(sp, threads)
		}
		b.setCounting(sp, sp.countable(want, use, solo), threads)
	}
	sp.setCounted()
}

// openEvents opens the events of every position on the stub threads tids
// and on the nursery, whose later clones inherit them, then on the threads
// that were cloned meanwhile (threads lists them again); sp holds no event
// before.
//
// +checklocks:sp.mu
func (b *Backend) openEvents(sp *space, nursery int32, tids []int32, threads func() (int32, []int32)) {
	for i := range sp.events.nursery {
		sp.events.nursery[i] = -1
	}
	for _, tid := range tids {
		b.openOwn(sp, tid)
	}
	// Threads cloned from now on inherit these.
	sp.events.nurseryTID = nursery
	if err := sp.openSet(&sp.events.nursery, nursery, true); err != nil {
		b.warn(fmt.Errorf("opening the events of stub thread creator %d: %w", nursery, err))
	}
	b.openNew(sp, threads)
	sp.rebase()
}

// openNew opens events on the stub threads that threads lists and sp does
// not know yet: threads cloned since the last listing.
//
// +checklocks:sp.mu
func (b *Backend) openNew(sp *space, threads func() (int32, []int32)) {
	_, tids := threads()
	for _, tid := range tids {
		if _, ok := sp.events.own[tid]; !ok {
			b.openOwn(sp, tid)
		}
	}
}

// adopt gives each stub thread that inherited the nursery's events events of
// its own, whose counts tell which ones fired on that thread alone (see
// hits): closing the nursery's events removes the inherited ones, and new
// nursery events are opened for the threads cloned later.
//
// adopt reports whether it changed anything.
//
// Precondition: no event of sp can fire (no task of its process runs), so
// no stub thread is being cloned either (the sentry clones one for a task
// that runs).
//
// +checklocks:sp.mu
func (b *Backend) adopt(sp *space, nursery int32) bool {
	var inherited []int32
	for tid, fds := range sp.events.own {
		if fds == nil {
			inherited = append(inherited, tid)
		}
	}
	if len(inherited) == 0 {
		return false
	}
	// The inherited events' counts go with the nursery's.
	sp.settle()
	defer sp.rebase()
	for pos, fd := range sp.events.nursery {
		if fd >= 0 {
			sp.closeFD(fd)
			sp.events.nursery[pos] = -1
		}
	}
	sp.events.nurseryCounts = [hwbp.Slots]uint64{}
	for _, tid := range inherited {
		delete(sp.events.own, tid)
		b.openOwn(sp, tid)
	}
	sp.events.nurseryTID = nursery
	if err := sp.openSet(&sp.events.nursery, nursery, true); err != nil {
		b.warn(fmt.Errorf("opening the events of stub thread creator %d: %w", nursery, err))
	}
	return true
}

// openOwn opens events at every position on stub thread tid, or records
// that it inherited the nursery's: a thread that carries them has no debug
// register left, so the host refuses the first event with ENOSPC.
//
// +checklocks:sp.mu
func (b *Backend) openOwn(sp *space, tid int32) {
	fds := new([hwbp.Slots]int)
	for i := range fds {
		fds[i] = -1
	}
	err := sp.openSet(fds, tid, false)
	switch {
	case err == nil:
		sp.events.own[tid] = fds
		sp.events.ownCounts[tid] = new([hwbp.Slots]uint64)
	case errors.Is(err, unix.ENOSPC) && fds[0] == -1:
		sp.events.own[tid] = nil
	default:
		b.warn(fmt.Errorf("opening the events of stub thread %d: %w", tid, err))
		sp.events.own[tid] = fds // what could be opened
		sp.events.ownCounts[tid] = new([hwbp.Slots]uint64)
	}
}

// openSet opens the events of every position on thread tid into fds. Unused
// positions get a disabled event, so that each thread always holds all its
// debug registers and later changes are in-place modifications.
//
// +checklocks:sp.mu
func (sp *space) openSet(fds *[hwbp.Slots]int, tid int32, inherit bool) error {
	for pos := range fds {
		e := sp.placement.armed[pos]
		if !sp.placement.used[pos] {
			e = entry{rw: 1} // any valid breakpoint: it stays disabled
		}
		a := e.attr(pos, inherit, sp.count.positions[pos])
		fd, err := sp.openFD(&a, tid)
		if err != nil {
			return err
		}
		fds[pos] = fd
		if sp.placement.used[pos] {
			if err := sp.env.host.enable(fd, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// forEachFD calls f with every event fd at pos, and whether it is the
// nursery's.
//
// +checklocks:sp.mu
func (sp *space) forEachFD(pos int, f func(fd int, inherit bool)) {
	if sp.events.nursery[pos] >= 0 {
		f(sp.events.nursery[pos], true)
	}
	for _, fds := range sp.events.own {
		if fds != nil && fds[pos] >= 0 {
			f(fds[pos], false)
		}
	}
}

// closeFDs delivers what the counting positions counted, then closes every
// event fd of sp (closing the nursery's removes the inherited ones too) and
// forgets the threads and counts they had.
//
// +checklocks:sp.mu
func (sp *space) closeFDs() {
	sp.settle()
	for pos := range sp.events.nursery {
		// forEachFD calls this before it returns, with sp.mu still
		// held; checklocks cannot tell.
		sp.forEachFD(pos, func(fd int, _ bool) { sp.closeFD(fd) }) // +checklocksignore
	}
	clear(sp.events.own)
	clear(sp.events.ownCounts)
	sp.events.nurseryCounts = [hwbp.Slots]uint64{}
}

// closeAll closes every event of sp; closing the nursery's removes the
// inherited ones too.
//
// +checklocks:sp.mu
func (sp *space) closeAll() {
	if !sp.events.open {
		return
	}
	sp.closeFDs()
	sp.placement.used = [hwbp.Slots]bool{}
	sp.count.positions = [hwbp.Slots]bool{}
	sp.count.base = [hwbp.Slots]uint64{}
	if sp.count.task != nil {
		sp.env.counters.CompareAndDelete(sp.count.task, sp)
		sp.count.task, sp.count.img = nil, hwbp.Image{}
	}
	sp.events.open = false
	sp.preempted = false
	sp.env.r.Unretain()
	sp.report(false)
}

// hostFDs returns the number of host event fds that sp holds.
//
// +checklocks:sp.mu
func (sp *space) hostFDs() (n int64) {
	for pos := range sp.events.nursery {
		// forEachFD calls this before it returns, with sp.mu still
		// held; checklocks cannot tell.
		sp.forEachFD(pos, func(int, bool) { n++ }) // +checklocksignore
	}
	return n
}

// warn logs a host failure to arm breakpoints, the first time.
func (b *Backend) warn(err error) {
	b.failures.Add(1)
	b.warnOnce.Do(func() {
		log.Warningf("hwbp: host perf breakpoint events failed, breakpoints may not fire (needs Linux 5.13+ and perf_event_paranoid <= 2): %v", err)
	})
}

// openFD opens an event through sp's host and counts its fd.
//
// +checklocks:sp.mu
func (sp *space) openFD(a *unix.PerfEventAttr, tid int32) (int, error) {
	fd, err := sp.env.host.open(a, tid)
	if err == nil {
		sp.env.fds.Add(1)
	}
	return fd, err
}

// closeFD closes an event fd that openFD opened.
//
// +checklocks:sp.mu
func (sp *space) closeFD(fd int) {
	sp.env.host.close(fd)
	sp.env.fds.Add(-1)
}
