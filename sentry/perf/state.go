// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"errors"
	"fmt"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// EventState is everything the guest can observe of one event, as a
// checkpoint of the sandbox keeps it: Event.Save takes it while the sandbox
// is paused, and Events.Restore makes the same event again in the restored
// sandbox, where the guest's fd then reaches it. The live inherited copies
// of an opened event are part of its state, as is its place in a group.
type EventState[K comparable] struct {
	// ID is the event's id (PERF_EVENT_IOC_ID), kept across the restore;
	// LastID the last id the sandbox had handed out at the save, after
	// which the restored sandbox goes on (ids are never reused, as Linux's
	// perf_event_id).
	ID, LastID uint64
	// Attr is the attribute with every change the guest made since the
	// open (PERF_EVENT_IOC_PERIOD, MODIFY_ATTRIBUTES, the enable_on_exec
	// that an execve used up).
	Attr Attr

	// Task is the watched thread, if Live or Held. An event whose thread
	// exited, or that an execve removed (remove_on_exec), keeps its count
	// and times and watches nothing: it needs no thread after the
	// restore, except to hold its slot (Held: an event that an execve
	// removed keeps its breakpoint's slot until it is closed).
	Task K
	Live bool
	Held bool
	// CPU and NumCPU are the Target's.
	CPU    int32
	NumCPU int

	// Enabled is the state the guest set.
	Enabled bool
	// Count is the event's own count; Time its own enabled (and running)
	// time up to the save, when the target's clock read Now.
	Count, Time, Now uint64
	// Left and Limit are the sampling state: hits until the next
	// overflow (period_left) and the PERF_EVENT_IOC_REFRESH limit.
	Left  uint64
	Limit int32
	// PendingKill is the reason of an overflow that no O_ASYNC
	// notification has reported yet (pending_kill), 0 for none.
	PendingKill int

	// ChildCount and ChildTime are what the exited inherited copies left;
	// Children the live copies (their own Children and group fields are
	// unused: a copy has neither).
	ChildCount, ChildTime uint64
	Children              []EventState[K]

	// Leader is the id of the group leader of an event that joined a
	// group, 0 otherwise; Members are, for a leader, the ids of its
	// group's other members, in the order they joined (the order of a
	// PERF_FORMAT_GROUP read).
	Leader  uint64
	Members []uint64
}

// Save returns ev's state. The caller makes sure that nothing changes ev
// meanwhile (the sandbox is paused), so that an event and its copies are
// saved at one instant.
func (ev *Event[K]) Save() EventState[K] {
	s, children := ev.saveOwn()
	s.LastID = ev.es.lastID.Load()
	for _, c := range children {
		cs, _ := c.saveOwn()
		s.Children = append(s.Children, cs)
	}
	es := ev.es
	es.groupMu.Lock()
	if l, ok := es.leaders[ev]; ok {
		s.Leader = l.id
	}
	for _, m := range es.siblings[ev] {
		s.Members = append(s.Members, m.id)
	}
	es.groupMu.Unlock()
	return s
}

// saveOwn returns ev's own state and its live copies.
func (ev *Event[K]) saveOwn() (EventState[K], []*Event[K]) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.flushLocked()
	s := EventState[K]{
		ID:          ev.id,
		Attr:        ev.attr,
		Live:        ev.bp != nil,
		CPU:         ev.target.CPU,
		NumCPU:      ev.target.NumCPU,
		Enabled:     ev.enabled,
		Count:       ev.count.Load(),
		Time:        ev.ownTimeLocked(),
		Now:         ev.rawNow(),
		Left:        ev.left,
		Limit:       ev.limit,
		PendingKill: ev.pendingKill,
		Held:        ev.held != nil,
		ChildCount:  ev.childCount,
		ChildTime:   ev.childTime,
	}
	if s.Live || s.Held {
		s.Task = ev.target.Task
	}
	return s, append([]*Event[K](nil), ev.children...)
}

// Restore makes the event that s describes in a restored sandbox, with its
// id, attribute, counts, times, sampling state and its live copies, each
// registered again as a breakpoint of its thread (sharing the thread's
// slots with the ptrace registers as before), enabled as it was. clock is
// Target.Clock for the event and its copies. Restore never reads it (a
// restored sandbox's clocks are set only once every object is loaded):
// an enabled event's time goes on from the clock's reading at the save, so
// that it keeps following the sandbox's clock, which gVisor carries on
// from that reading (advanced by the real time the sandbox spent saved).
//
// A thread that has begun to exit gets no breakpoint, as it would have
// lost it a moment later: the event keeps its count and times, and a copy
// leaves them to the event, as at an exit. Any other failure to register a
// breakpoint (there should be none: the same breakpoints fitted before the
// save) is treated alike and returned, joined, with the event; the event
// is usable either way. The group is not restored here: see RestoreGroup.
func (es *Events[K]) Restore(s EventState[K], clock func() uint64) (*Event[K], error) {
	es.idAtLeast(s.LastID)
	ev, err := es.restoreOne(s, nil, clock)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, cs := range s.Children {
		c, err := es.restoreOne(cs, ev, clock)
		if err != nil {
			errs = append(errs, err)
		}
		c.mu.Lock()
		live := c.bp != nil
		c.mu.Unlock()
		ev.mu.Lock()
		if live {
			ev.children = append(ev.children, c)
		} else {
			// sync_child_event, as if the copy's thread had exited.
			ev.childCount += cs.Count
			ev.childTime += cs.Time
		}
		ev.mu.Unlock()
	}
	return ev, errors.Join(errs...)
}

// restoreOne makes one event of s, a copy of parent if parent is not nil.
func (es *Events[K]) restoreOne(s EventState[K], parent *Event[K], clock func() uint64) (*Event[K], error) {
	es.idAtLeast(s.ID)
	ev := &Event[K]{
		es:          es,
		id:          s.ID,
		target:      Target[K]{Task: s.Task, HasTask: true, CPU: s.CPU, NumCPU: s.NumCPU, Clock: clock},
		excludeUser: s.Attr.Has(FlagExcludeUser),
		parent:      parent,
	}
	ev.count.Store(s.Count)
	var err error
	var bp, held *hwbp.Breakpoint
	if s.Live || s.Held {
		a := s.Attr
		bpAttr := hwbp.Attr{Addr: a.BPAddr(), Len: a.BPLen(), Type: hwbp.Type(a.BPType()), Disabled: true}
		var b *hwbp.Breakpoint
		b, err = es.register(s.Task, s.CPU, bpAttr, ev.overflow)
		if err == nil {
			ev.setCounter(b, s.Attr)
		}
		if errors.Is(err, errExited) {
			err = nil
		} else if err != nil {
			err = fmt.Errorf("event %d: %w", s.ID, err)
		}
		if s.Live {
			bp = b
		} else {
			held = b
		}
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.attr = s.Attr
	ev.bp = bp
	ev.total = s.Time
	ev.held = held
	ev.left = s.Left
	ev.lastPeriod = ev.periodLocked()
	ev.limit = s.Limit
	ev.pendingKill = s.PendingKill
	ev.childCount = s.ChildCount
	ev.childTime = s.ChildTime
	if bp != nil {
		ev.onTask = attachTaskEvents[K](bp.Task())
		ev.onTask.add(ev)
		if s.Enabled {
			// setEnabledLocked, with the time of the save: the
			// restored thread's context clock starts as the
			// target's clock, which goes on from the save.
			ev.enabled = true
			ev.since = s.Now
			bp.Enable()
		}
	}
	return ev, err
}

// idAtLeast makes the last id handed out at least id.
func (es *Events[K]) idAtLeast(id uint64) {
	for {
		last := es.lastID.Load()
		if last >= id || es.lastID.CompareAndSwap(last, id) {
			return
		}
	}
}

// RestoreGroup makes the restored members of leader's group its members
// again, in the order given (EventState.Members).
func (es *Events[K]) RestoreGroup(leader *Event[K], members []*Event[K]) {
	if len(members) == 0 {
		return
	}
	es.groupMu.Lock()
	defer es.groupMu.Unlock()
	for _, m := range members {
		es.leaders[m] = leader
	}
	es.siblings[leader] = append([]*Event[K](nil), members...)
}

// Bytes returns the attribute as the kernel holds it (AttrSize bytes), for
// a checkpoint.
func (a Attr) Bytes() [AttrSize]byte { return a.raw }

// AttrFromBytes returns the attribute whose Bytes are b: one that a
// checkpoint kept, which passed CopyAttr when the guest gave it.
func AttrFromBytes(b [AttrSize]byte) Attr { return Attr{raw: b} }
