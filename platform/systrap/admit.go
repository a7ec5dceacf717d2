// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/sentry/kernel"
)

// This file: the bound on the host event fds of all spaces together. A
// space's events are opened only when they fit (admit); idle spaces are
// closed to make room (evict), and when the spaces whose tasks run leave no
// room, the tasks that have run longest are sent back through the sentry
// (preempt) so that their spaces go idle too.

// openLimit is the number of stub processes whose events stay open while
// none of their tasks runs. A guest can give breakpoints to any number of
// processes (a tracer of many sleeping children), and each process with
// events holds hwbp.Slots host fds per stub thread, plus those of its
// nursery: beyond openLimit processes, opening one process's events closes
// those of the processes whose tasks ran least recently, and they are
// reopened when one of their tasks runs again.
const openLimit = 32

// maxFDs bounds the host event fds of all spaces together, whatever the
// guest's wake-up pattern. openLimit alone does not bound them, since the
// events of a process one of whose tasks runs (between arm and the end of
// its trap handling, which includes waiting for a stub thread) cannot be
// closed, and under load many do: 300 processes with four watchpoints each
// that wake 50 times a second kept up to 1,600 fds open with openLimit
// alone. 352 is openLimit idle processes of one stub thread (eight fds with
// the nursery's) and room for 12 more that run.
//
// What admit does not see: a process whose events are open gets events for
// the stub threads it clones later that did not inherit the nursery's
// (openOwn), and adopt replaces inherited events by per-thread ones; each
// adds hwbp.Slots fds over the cap until the process goes idle.
const maxFDs = 352

// quantum is how long a space's events stay open, at least, before a task
// that waits for room interrupts the space's running tasks (preempt): a
// scheduler's time slice, so that processes that run at once beyond the cap
// take turns rather than undo each other's opens.
var quantum = 10 * time.Millisecond

// admission is the queue of the tasks that wait for their space's events
// to fit under maxFDs: they are admitted in the order they came, so that a
// task whose process needs many fds is not passed for ever by those that
// need few, nor a preempted task by the one that preempted it.
type admission struct {
	mu sync.Mutex

	// next is the ticket of the next task to wait.
	//
	// +checklocks:mu
	next uint64

	// serving is the ticket of the task whose turn it is.
	//
	// +checklocks:mu
	serving uint64

	// preemptions counts the spaces that preempt closed. It is atomic:
	// checklocks' lock inference, which sees it changed under spaces'
	// mu, would take one for its guard.
	preemptions atomic.Int64 // +checklocksignore
}

// admit makes room for the need host fds of except's events under maxFDs
// and calls open, which opens them, once it is the caller's turn. While no
// room is left, it closes idle spaces (evict) and preempts spaces that have
// been open for a quantum, polling (the caller's task is about to run, its
// own space's lock held, and a space goes idle without telling anyone). A
// space that would be alone to hold fds is admitted however many it needs.
//
// It never opens over maxFDs, and returns: every space whose events are
// open goes idle once its running tasks are interrupted.
func (b *Backend) admit(except *space, need int64, open func()) {
	q := &b.admission
	q.mu.Lock()
	ticket := q.next
	q.next++
	q.mu.Unlock()
	for {
		q.mu.Lock()
		if q.serving == ticket {
			if b.opened.Load() >= openLimit || b.fds.Load()+need > maxFDs {
				b.evict(except, need)
			}
			if fds := b.fds.Load(); fds+need <= maxFDs || fds == 0 {
				open()
				q.serving++
				q.mu.Unlock()
				return
			}
			b.preempt(except, need)
		}
		q.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
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

// preempt marks the spaces other than except that have been open longest,
// for at least a quantum, until closing them would leave room for need
// fds, and interrupts their running tasks: each such task leaves its
// Switch through the sentry, invisibly to the guest (gVisor allows
// spurious interrupts), its space's events are closed when the last one is
// done (space.done), and its next Switch waits for its turn in admit.
// A task that was interrupted once is not again while its space stays
// marked.
func (b *Backend) preempt(except *space, need int64) {
	now := nanotime()
	candidates := b.live.list(except)
	slices.SortFunc(candidates, func(x, y *space) int { return cmp.Compare(x.openedAt.Load(), y.openedAt.Load()) })
	var freed int64
	var interrupt []*kernel.Task
	for _, sp := range candidates {
		if b.fds.Load()-freed+need <= maxFDs {
			break
		}
		if now-sp.openedAt.Load() < int64(quantum) || !sp.mu.TryLock() {
			continue
		}
		// checklocks does not follow TryLock: sp.mu is held here.
		interrupt = sp.markPreempted(interrupt) // +checklocksignore
		freed += sp.hostFDs()                   // +checklocksignore
		sp.mu.Unlock()                          // +checklocksignore
	}
	if len(interrupt) != 0 {
		warnings.Infof("hwbp: the processes with breakpoints whose tasks run at once hold the %d host perf event fds that the sandbox allows; the tasks that ran longest are interrupted so that the others run in turn", maxFDs)
	}
	// Outside the spaces' locks: Interrupt kicks the stub thread that
	// runs the task.
	for _, t := range interrupt {
		b.interrupt(t)
	}
}

// markPreempted marks sp, if its events are open and a task runs, to be
// closed when its tasks are done, and appends the running tasks that were
// not interrupted yet to interrupt.
//
// +checklocks:sp.mu
func (sp *space) markPreempted(interrupt []*kernel.Task) []*kernel.Task {
	if !sp.events.open || sp.running.Load() == 0 {
		return interrupt
	}
	sp.preempted = true
	for t, interrupted := range sp.runners {
		if !interrupted {
			sp.runners[t] = true
			interrupt = append(interrupt, t)
		}
	}
	return interrupt
}

// closeIfIdle closes sp's events if they are open and none of sp's tasks
// runs. Under sp.mu nobody can start running a task of sp (arm increments
// running under it), so a zero running stays zero.
//
// +checklocks:sp.mu
func (sp *space) closeIfIdle() {
	if !sp.events.open || sp.running.Load() != 0 {
		return
	}
	if sp.preempted {
		sp.env.admission.preemptions.Add(1)
	}
	sp.closeAll()
	sp.events.evicted = true
}

// clockStart is the origin of nanotime.
var clockStart = time.Now()

// nanotime returns the monotonic time in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockStart)) }
