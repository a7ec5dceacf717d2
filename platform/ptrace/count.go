// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package ptrace

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/platform/hostperf"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// This file: slots whose hits the host counts instead of trapping.
//
// A counting event (hwbp.Breakpoint.SetCounter: a perf event that does not
// sample, as perf stat's) needs the number of its hits, not a trap at each.
// A debug register that PTRACE_POKEUSER arms makes the host stop the stub
// thread at every hit; a host perf breakpoint event without sampling counts
// them without stopping it. A stub thread runs one task at a time, armed
// for it before each Switch, so the counts of events that are enabled only
// while the stub thread is armed for a task are that task's alone: a
// task's counting slots get such events (stubCounters) instead of debug
// registers, while its virtual DR6 is clean (Linux's exc_debug_user resets
// it at every hit, which a hit that does not reach the sentry cannot do).
//
// A host thread has four breakpoint slots, and a debug register that
// POKEUSER ever gave an address holds one for the thread's life (Linux's
// ptrace_register_bp), so a stub thread that armed debug registers before
// may have no slot left for an event: the slot is then armed as a debug
// register and traps, as before. The counts are read back (settle) when the
// stub thread is armed for another image and when a consumer reads the
// events (Backend.Flush).

// counterLimit bounds the host events that all stub threads hold for
// counting slots: beyond it, counting slots trap like the others, so that
// the host fds stay bounded however many stub threads run counting tasks.
const counterLimit = 256

// perfHost is the host's perf events as the counters use them; tests
// replace it.
type perfHost interface {
	open(a *unix.PerfEventAttr, tid int32) (int, error)
	enable(fd int, on bool) error
	count(fd int) (uint64, error)
	close(fd int)
}

// hostPerf is the host kernel's perf_event_open(2).
type hostPerf struct{}

func (hostPerf) open(a *unix.PerfEventAttr, tid int32) (int, error) { return hostperf.Open(a, tid) }
func (hostPerf) enable(fd int, on bool) error                       { return hostperf.Enable(fd, on) }
func (hostPerf) count(fd int) (uint64, error)                       { return hostperf.Count(fd) }
func (hostPerf) close(fd int)                                       { hostperf.Close(fd) }

// stubCounters are the host events that count the hits of one stub
// thread's counting slots for the task it was last armed for.
type stubCounters struct {
	// tid is the stub thread. Immutable; it happens to be read under mu
	// only, which checklocks' lock inference would take for a guard.
	tid int32 // +checklocksignore

	mu sync.Mutex

	// task is the task whose hits the events count, and img its image
	// as armed; fds holds the event of each counting slot of img, -1
	// elsewhere, and base the event's count as last read.
	//
	// +checklocks:mu
	task *hwbp.Task
	// +checklocks:mu
	img hwbp.Image
	// +checklocks:mu
	fds [hwbp.Slots]int
	// +checklocks:mu
	base [hwbp.Slots]uint64
}

// newStubCounters returns the counters of stub thread tid, which hold no
// events.
func newStubCounters(tid int32) *stubCounters {
	sc := &stubCounters{tid: tid}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for slot := range sc.fds {
		sc.fds[slot] = -1
	}
	return sc
}

// settleLocked delivers the hits that the events counted since they were
// last read to the task's events (hwbp.Image.Count).
//
// +checklocks:sc.mu
func (sc *stubCounters) settleLocked(host perfHost) {
	for slot, fd := range sc.fds {
		if fd < 0 {
			continue
		}
		n, err := host.count(fd)
		if err != nil || n < sc.base[slot] {
			continue
		}
		d := n - sc.base[slot]
		sc.base[slot] = n
		sc.img.Count(slot, d)
	}
}

// countable returns which of img's slots task may count on the host rather
// than trap: its counting events', while its virtual DR6 is clean and r
// lets back ends count on the host.
func countable(r *hwbp.Registry, task *hwbp.Task, img *hwbp.Image) (slots [hwbp.Slots]bool, any bool) {
	if task == nil || task.VirtualDR6() != hwbp.DR6Reset || !r.HostCounting() {
		return slots, false
	}
	for slot := 0; slot < hwbp.Slots; slot++ {
		if img.DR7.Enabled(slot) && img.Counting(slot) {
			slots[slot], any = true, true
		}
	}
	return slots, any
}

// withoutSlots returns img without the given slots: the debug registers
// that the stub thread is to hold.
func withoutSlots(img hwbp.Image, slots [hwbp.Slots]bool) hwbp.Image {
	for slot, drop := range slots {
		if drop {
			img.DR7 &^= hwbp.SlotMask(slot)
			img.Addr[slot] = 0
		}
	}
	if img.DR7&^(hwbp.DR7LocalSlowdown|hwbp.DR7GlobalSlowdown) == 0 {
		img.DR7 = 0
	}
	return img
}

// releaseCounters settles and closes the events of sc, if any, and forgets
// whose they were: the stub thread is about to be armed for another image.
// Their slots are free for debug registers afterwards.
func (b *Backend) releaseCounters(sc *stubCounters) {
	if sc == nil {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.task == nil {
		return
	}
	sc.settleLocked(b.perf)
	for slot, fd := range sc.fds {
		if fd >= 0 {
			b.perf.close(fd)
			b.counterFDs.Add(-1)
			sc.fds[slot] = -1
		}
	}
	b.uncount(sc.task, sc)
	sc.task, sc.img = nil, hwbp.Image{}
}

// openCounters gives the stub thread of sc events that count the slots of
// img that task may count (countable) and returns the slots it could give
// one: the others are armed as debug registers. The stub thread's debug
// registers for the other slots must be written already, and sc must hold
// no events.
func (b *Backend) openCounters(sc *stubCounters, task *hwbp.Task, img *hwbp.Image, slots [hwbp.Slots]bool) (counted [hwbp.Slots]bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for slot, want := range slots {
		if !want {
			continue
		}
		if b.counterFDs.Add(1) > counterLimit {
			b.counterFDs.Add(-1)
			continue
		}
		a := hostperf.Counting(img.Addr[slot], img.DR7.RW(slot), img.DR7.Len(slot))
		fd, err := b.perf.open(&a, sc.tid)
		if err == nil {
			if err = b.perf.enable(fd, true); err != nil {
				b.perf.close(fd)
			}
		}
		if err != nil {
			b.counterFDs.Add(-1)
			if !errors.Is(err, unix.ENOSPC) {
				// ENOSPC: the stub thread's slots are held by
				// its debug registers; the slot traps instead.
				warnings.Warningf("hwbp: counting hits on stub thread %d: %v; the hits trap", sc.tid, err)
			}
			continue
		}
		sc.fds[slot], sc.base[slot] = fd, 0
		counted[slot] = true
	}
	for _, c := range counted {
		if c {
			sc.task, sc.img = task, *img
			b.count(task, sc)
			break
		}
	}
	return counted
}

// count records that sc counts hits for task, for Flush.
func (b *Backend) count(task *hwbp.Task, sc *stubCounters) {
	b.countersMu.Lock()
	defer b.countersMu.Unlock()
	if b.counters == nil {
		b.counters = make(map[*hwbp.Task]map[*stubCounters]struct{})
	}
	m := b.counters[task]
	if m == nil {
		m = make(map[*stubCounters]struct{})
		b.counters[task] = m
	}
	m[sc] = struct{}{}
}

// uncount undoes count.
func (b *Backend) uncount(task *hwbp.Task, sc *stubCounters) {
	b.countersMu.Lock()
	defer b.countersMu.Unlock()
	if m := b.counters[task]; m != nil {
		delete(m, sc)
		if len(m) == 0 {
			delete(b.counters, task)
		}
	}
}

// Flush implements hwbp.Flusher: the hits of t's counting events that the
// stub threads armed for t counted are delivered now.
func (b *Backend) Flush(t *hwbp.Task) {
	b.countersMu.Lock()
	scs := make([]*stubCounters, 0, len(b.counters[t]))
	for sc := range b.counters[t] {
		scs = append(scs, sc)
	}
	b.countersMu.Unlock()
	for _, sc := range scs {
		sc.mu.Lock()
		if sc.task == t {
			sc.settleLocked(b.perf)
		}
		sc.mu.Unlock()
	}
}
