// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// taskKey names the perf state of a thread's hwbp.Task.
var taskKey = hwbp.NewExtensionKey("perf")

// taskEvents is the hwbp.Extension of a thread that perf events watch: the
// open events bound to it, which its execve and exit change (Linux's
// perf_event_exec, perf_event_exit_task). Events are removed from it when
// they close, so it never holds more than the thread's open events.
type taskEvents[K comparable] struct {
	mu sync.Mutex
	// +checklocks:mu
	events []*Event[K]

	// inherit are, in the clone that a new thread gets, the events of its
	// creator that it inherits. Set by Clone, used by Inherited.
	inherit []*Event[K]

	// clock is the thread's perf context clock, which stops while the
	// thread is scheduled out (sched.go).
	clock schedClock
}

// attachTaskEvents returns t's taskEvents, attaching one if needed; a
// released task gets a detached one, which nothing calls.
func attachTaskEvents[K comparable](t *hwbp.Task) *taskEvents[K] {
	if x, ok := t.Attach(taskKey, func() hwbp.Extension { return &taskEvents[K]{} }).(*taskEvents[K]); ok {
		return x
	}
	return &taskEvents[K]{}
}

// taskEventsOf returns the perf state of thread k, nil if it has none.
func (es *Events[K]) taskEventsOf(k K) *taskEvents[K] {
	t := es.tasks.Lookup(k)
	if t == nil {
		return nil
	}
	x, _ := t.Extension(taskKey).(*taskEvents[K])
	return x
}

func (x *taskEvents[K]) add(ev *Event[K]) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.events = append(x.events, ev)
	ev.es.watched.Add(1)
}

func (x *taskEvents[K]) remove(ev *Event[K]) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, e := range x.events {
		if e == ev {
			x.events = append(x.events[:i], x.events[i+1:]...)
			ev.es.watched.Add(-1)
			return
		}
	}
}

func (x *taskEvents[K]) list() []*Event[K] {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]*Event[K](nil), x.events...)
}

// Clone implements hwbp.Extension.Clone: a new thread gets a copy of each
// event of its creator with inherit (perf_event_init_task); Inherited makes
// them once the new thread has its Task.
func (x *taskEvents[K]) Clone() hwbp.Extension {
	var inherit []*Event[K]
	for _, ev := range x.list() {
		if ev.Attr().Has(FlagInherit) {
			inherit = append(inherit, ev)
		}
	}
	if len(inherit) == 0 {
		return nil
	}
	return &taskEvents[K]{inherit: inherit}
}

// Inherited implements hwbp.Inheritor: child, a thread that parent created,
// gets a copy of each event that it inherits (inherit_event), in the state
// of the event (enabled or not) and with its attribute, so that its
// enable_on_exec, sigtrap and sampling act in child; the copies count for
// the event that the guest opened. A group is copied whole or not at all,
// as its leader decides, whatever its members (Linux's inherit_task_group
// looks at the leader only, and inherit_group copies every member with
// it): with inherit_thread only a clone with CLONE_THREAD inherits, and
// with sigtrap no clone whose signal handlers are reset
// (CLONE_CLEAR_SIGHAND), where the signal would kill it.
//
// A copy always finds a free slot: the new thread starts with none taken
// and gets at most as many copies as its creator has events. (Linux fails
// the fork with ENOSPC when one does not, which takes CPU-wide breakpoints
// that leave fewer slots on some CPU; the sandbox has none.)
func (x *taskEvents[K]) Inherited(parent, child K, flags uint64, t *hwbp.Task) {
	inherit := x.inherit
	x.inherit = nil
	for _, ev := range inherit {
		es := ev.es
		a := ev.Attr()
		orig := ev
		if ev.parent != nil {
			orig = ev.parent
		}
		la := orig.groupLeader().Attr()
		if la.Has(FlagInheritThread) && flags&unix.CLONE_THREAD == 0 {
			continue
		}
		if la.Has(FlagSigtrap) && flags&unix.CLONE_CLEAR_SIGHAND != 0 {
			continue
		}
		c := &Event[K]{
			es:          es,
			id:          es.lastID.Add(1),
			target:      Target[K]{Task: child, HasTask: true, CPU: ev.target.CPU, NumCPU: ev.target.NumCPU, Clock: ev.target.Clock},
			excludeUser: ev.excludeUser,
			onTask:      x,
			parent:      orig,
			attr:        a,
		}
		bp, err := es.tasks.Registry().RegisterOnCPU(t, ev.target.CPU, hwbp.Attr{Addr: a.BPAddr(), Len: a.BPLen(), Type: hwbp.Type(a.BPType()), Disabled: true}, c.overflow)
		if err != nil {
			continue
		}
		c.setCounter(bp, a)
		ev.mu.Lock()
		enabled := ev.enabled
		ev.mu.Unlock()
		c.mu.Lock()
		c.bp = bp
		c.left = c.periodLocked()
		c.lastPeriod = c.left
		c.mu.Unlock()
		orig.mu.Lock()
		closed := orig.closed
		if !closed {
			orig.children = append(orig.children, c)
		}
		orig.mu.Unlock()
		if closed {
			// The guest closed the event meanwhile.
			bp.Unregister()
			continue
		}
		x.add(c)
		if enabled {
			c.setEnabled(true)
		}
	}
}

// Exec implements hwbp.Extension.Exec: perf_event_enable_on_exec enables
// the events with enable_on_exec and clears the flag, so it acts once;
// perf_event_remove_on_exec removes those with remove_on_exec, which keep
// their slots until they are closed.
func (x *taskEvents[K]) Exec() {
	for _, ev := range x.list() {
		ev.mu.Lock()
		a := &ev.attr
		remove, enable := a.Has(FlagRemoveOnExec), a.Has(FlagEnableOnExec)
		if enable {
			binary.LittleEndian.PutUint64(a.raw[offFlags:], a.Flags()&^FlagEnableOnExec)
		}
		ev.mu.Unlock()
		switch {
		case remove:
			// perf_event_remove_on_exec also takes the event out of
			// its group, where a task's exit keeps groups whole
			// (measured on Linux 6.18).
			ev.detach(true)
			x.remove(ev)
			ev.leaveGroup()
		case enable:
			ev.setEnabled(true)
		}
	}
}

// Exit removes the events of thread k from it at its exit, as Linux's
// perf_event_exit_task does: they keep their counts, and their times stop.
// The caller calls it before hwbp.Tasks.Exit frees k's Task.
func (es *Events[K]) Exit(k K) {
	x := es.taskEventsOf(k)
	if x == nil {
		return
	}
	es.exitRecords(k)
	for _, ev := range x.list() {
		ev.exit()
		x.remove(ev)
	}
}
