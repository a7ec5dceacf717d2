// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/log"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// This file: the host perf breakpoint events that arm a stub process's
// breakpoints on every one of its threads.

// openLimit is the number of stub processes whose events stay open while
// none of their tasks runs. A guest can give breakpoints to any number of
// processes (a tracer of many sleeping children), and each process with
// events holds hwbp.Slots host fds per stub thread, plus those of its
// nursery: beyond openLimit processes, opening one process's events closes
// those of the processes whose tasks ran least recently (evict), and they
// are reopened when one of their tasks runs again.
const openLimit = 32

// maxFDs bounds the host event fds of all spaces together, whatever the
// guest's wake-up pattern: a process's events are opened only when its
// fds fit (admit). openLimit alone does not bound them, since the events of
// a process one of whose tasks runs (between arm and the end of its trap
// handling, which includes waiting for a stub thread) cannot be closed, and
// under load many do: 300 processes with four watchpoints each that wake
// 50 times a second kept up to 1,600 fds open with openLimit alone. 352 is
// openLimit idle processes of one stub thread (eight fds with the
// nursery's) and room for 12 more that run. The events of stub threads
// that a process with open events clones later are opened without admit
// (its task is running already), so the fds may pass maxFDs by those, and
// by a give-up after admitWait: one run of that workload reached 400 with
// a cap of 384, by one or the other.
const maxFDs = 352

// admitWait is how long a task waits for the fds of its process's events to
// fit under maxFDs before they are opened over it (with a warning), so
// that processes whose tasks compute without ever entering the sentry, and
// so never go idle, cannot stop the others for good. With 100ms, tasks of
// the workload above on two CPUs queued longer than that for stub threads,
// and every such wait added a process over the cap.
var admitWait = time.Second

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

// evict closes the events of the spaces other than except that are open and
// none of whose tasks runs, least recently armed first, until fewer than
// openLimit spaces have events open and need more host fds fit under
// maxFDs, or no such space is left. It closes all the idle spaces it
// needs to, not one per call: a space whose tasks ran at an earlier evict
// and that went idle since is closed at the next one.
//
// It never waits for a space's lock (except's is held, and another evict
// may hold others'): a space that is busy is not idle anyway, and the next
// evict will look at it again.
func (b *Backend) evict(except *space, need int64) {
	candidates := b.live.list(except)
	slices.SortFunc(candidates, func(x, y *space) int { return cmp.Compare(x.lastArm.Load(), y.lastArm.Load()) })
	for _, sp := range candidates {
		if b.opened.Load() < openLimit && b.fds.Load()+need <= maxFDs {
			return
		}
		if !sp.mu.TryLock() {
			continue
		}
		// checklocks does not follow TryLock: sp.mu is held here.
		sp.closeIfIdle() // +checklocksignore
		sp.mu.Unlock()   // +checklocksignore
	}
}

// admit makes room for the need host fds of except's events under maxFDs
// and calls open, which opens them, while no other space is admitted: the
// fds counted are those open. If the fds of the spaces whose tasks run
// leave no room, it waits for one to go idle, polling (the caller's task
// is about to run, its own space's lock held, and a space goes idle
// without telling anyone), for at most admitWait. A space that would be
// alone to hold fds is admitted however many it needs.
//
// It reports whether it gave up waiting.
func (b *Backend) admit(except *space, need int64, open func()) (over bool) {
	deadline := time.Now().Add(admitWait)
	for {
		b.admitting.Lock()
		if b.opened.Load() >= openLimit || b.fds.Load()+need > maxFDs {
			b.evict(except, need)
		}
		fds := b.fds.Load()
		if fds+need <= maxFDs || fds == 0 || !time.Now().Before(deadline) {
			over = fds+need > maxFDs && fds != 0
			open()
			b.admitting.Unlock()
			return over
		}
		b.admitting.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// closeIfIdle closes sp's events if they are open and none of sp's tasks
// runs. Under sp.mu nobody can start running a
// task of sp (arm increments running under it), so a zero running stays
// zero.
//
// +checklocks:sp.mu
func (sp *space) closeIfIdle() {
	if !sp.events.open || sp.running.Load() != 0 {
		return
	}
	sp.closeAll()
	sp.events.evicted = true
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
		over := b.admit(sp, need, func() {
			// admit calls this before it returns, with sp.mu still
			// held; checklocks cannot tell.
			b.openEvents(sp, nursery, tids, threads) // +checklocksignore
		})
		if over {
			warnings.Warningf("hwbp: the processes with breakpoints whose tasks run hold %d host perf event fds, more than %d; opened more after waiting %v for one to go idle", sp.env.fds.Load(), maxFDs, admitWait)
		}
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
	sp.env.r.Unretain()
	sp.report(false)
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
