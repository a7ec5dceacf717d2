// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"context"
	"sync"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/state"

	"github.com/gvisor-hwbp/hwbp/sentry/perf"
)

// A guest's perf event fd is part of a checkpoint as any other file of the
// sandbox is: gVisor saves the perfFD with the file table that holds it,
// and the methods below, as the stateify tool would generate them, save
// the event behind it as a perf.EventState (taken while the kernel is
// paused) and make it again at restore, once the threads it watches are
// restored (their afterLoad makes their platform contexts). The back ends
// then arm the breakpoints at each thread's next Switch, as after any
// change. A group is linked again once its leader and every member are
// restored (restoredGroups).

// savedPerfEvent is perf.EventState in a form that gVisor's state package
// saves.
type savedPerfEvent struct {
	ID, LastID            uint64
	Attr                  [perf.AttrSize]byte
	Task                  *kernel.Task
	Live, Held            bool
	CPU                   int32
	NumCPU                int
	Enabled               bool
	Count, Time, Now      uint64
	Left                  uint64
	Limit                 int32
	PendingKill           int
	ChildCount, ChildTime uint64
	Children              []savedPerfEvent
	Leader                uint64
	Members               []uint64
}

func savePerfEvent(s perf.EventState[*kernel.Task]) savedPerfEvent {
	v := savedPerfEvent{
		ID: s.ID, LastID: s.LastID, Attr: s.Attr.Bytes(), Task: s.Task, Live: s.Live, Held: s.Held,
		CPU: s.CPU, NumCPU: s.NumCPU, Enabled: s.Enabled,
		Count: s.Count, Time: s.Time, Now: s.Now, Left: s.Left, Limit: s.Limit, PendingKill: s.PendingKill,
		ChildCount: s.ChildCount, ChildTime: s.ChildTime,
		Leader: s.Leader, Members: s.Members,
	}
	for _, c := range s.Children {
		v.Children = append(v.Children, savePerfEvent(c))
	}
	return v
}

func (v *savedPerfEvent) eventState() perf.EventState[*kernel.Task] {
	s := perf.EventState[*kernel.Task]{
		ID: v.ID, LastID: v.LastID, Attr: perf.AttrFromBytes(v.Attr), Task: v.Task, Live: v.Live, Held: v.Held,
		CPU: v.CPU, NumCPU: v.NumCPU, Enabled: v.Enabled,
		Count: v.Count, Time: v.Time, Now: v.Now, Left: v.Left, Limit: v.Limit, PendingKill: v.PendingKill,
		ChildCount: v.ChildCount, ChildTime: v.ChildTime,
		Leader: v.Leader, Members: v.Members,
	}
	for i := range v.Children {
		s.Children = append(s.Children, v.Children[i].eventState())
	}
	return s
}

// task returns a thread that the event or one of its copies watches, nil
// if none does.
func (v *savedPerfEvent) task() *kernel.Task {
	if v.Live && v.Task != nil {
		return v.Task
	}
	for i := range v.Children {
		if t := v.Children[i].task(); t != nil {
			return t
		}
	}
	return nil
}

// restore makes pf's event again from v.
func (pf *perfFD) restore(v *savedPerfEvent) {
	// The clock that perfEventOpen gives an event. It is not read here:
	// the restored kernel's clocks are set once everything is loaded.
	// An event that watches no thread any more never reads it.
	var clock func() uint64
	if t := v.task(); t != nil {
		clock = func() uint64 { return perfClock(t) }
	}
	s := v.eventState()
	ev, err := events.Restore(s, clock)
	if err != nil {
		// The event is there, but a breakpoint of it or of a copy
		// could not be registered: it counts no more hits there.
		log.Warningf("hwbp: perf event %d lost breakpoints at restore and counts no more hits on their threads: %v", s.ID, err)
	}
	pf.ev = ev
	ev.SetWaiters(pf.notify)
	// The fd is open again: Release counts it out.
	// O_ASYNC's handler was registered on the fd (RegisterFileAsyncHandler),
	// which the state package restores without calling it again.
	if pf.vfsfd.StatusFlags()&linux.O_ASYNC != 0 && pf.vfsfd.AsyncHandler() != nil {
		ev.SetAsync(pf.sigio)
	}
	restoredGroups.add(ev, s.Leader, s.Members)
}

// restoredGroups links the restored events of a group again once its
// leader and all its members are restored, whatever their order: each is
// a perfFD of its own, restored on its own.
var restoredGroups = groupLinker{
	events:  make(map[uint64]*perf.Event[*kernel.Task]),
	members: make(map[uint64][]uint64),
}

type groupLinker struct {
	mu sync.Mutex

	// events are the restored events of incomplete groups, by id.
	//
	// +checklocks:mu
	events map[uint64]*perf.Event[*kernel.Task]

	// members are the saved members of the leaders in events.
	//
	// +checklocks:mu
	members map[uint64][]uint64
}

// add notes ev, which was restored as the member of leader's group if
// leader is not 0, or as the leader of members; it links the group if
// that completes it.
func (g *groupLinker) add(ev *perf.Event[*kernel.Task], leader uint64, members []uint64) {
	if leader == 0 && len(members) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.events[ev.ID()] = ev
	if leader == 0 {
		leader = ev.ID()
		g.members[leader] = members
	}
	ids, ok := g.members[leader]
	if !ok {
		return // the leader comes later
	}
	l, ok := g.events[leader]
	if !ok {
		return
	}
	evs := make([]*perf.Event[*kernel.Task], 0, len(ids))
	for _, id := range ids {
		m, ok := g.events[id]
		if !ok {
			return // a member comes later
		}
		evs = append(evs, m)
	}
	events.RestoreGroup(l, evs)
	delete(g.events, leader)
	delete(g.members, leader)
	for _, id := range ids {
		delete(g.events, id)
	}
}

// The methods below make perfFD and savedPerfEvent savable by gVisor's
// state package, as the stateify tool would generate them. perfFD's
// embedded implementations are empty.

func (pf *perfFD) StateTypeName() string { return "hwbp/plugin.perfFD" }

func (pf *perfFD) StateFields() []string {
	return []string{"vfsfd", "ev", "k"}
}

func (pf *perfFD) StateSave(sink state.Sink) {
	// The kernel is paused: no thread hits, no ioctl runs.
	v := savePerfEvent(pf.ev.Save())
	sink.Save(0, &pf.vfsfd)
	sink.Save(1, &v)
	sink.Save(2, &pf.k)
}

func (pf *perfFD) StateLoad(_ context.Context, source state.Source) {
	source.Load(0, &pf.vfsfd)
	source.Load(2, &pf.k)
	// Counting events trap every hit in a restored sandbox (see
	// hwbp.Registry.StopHostCounting).
	tasks.Registry().StopHostCounting()
	// The threads the event watches must be restored first.
	v := new(savedPerfEvent)
	source.LoadWait(1, v)
	source.AfterLoad(func() { pf.restore(v) })
}

func (v *savedPerfEvent) StateTypeName() string { return "hwbp/plugin.savedPerfEvent" }

func (v *savedPerfEvent) StateFields() []string {
	return []string{"ID", "LastID", "Attr", "Task", "Live", "CPU", "NumCPU", "Enabled", "Count", "Time", "Now",
		"Left", "Limit", "ChildCount", "ChildTime", "Children", "Leader", "Members", "Held", "PendingKill"}
}

func (v *savedPerfEvent) StateSave(sink state.Sink) {
	sink.Save(0, &v.ID)
	sink.Save(1, &v.LastID)
	sink.Save(2, &v.Attr)
	sink.Save(3, &v.Task)
	sink.Save(4, &v.Live)
	sink.Save(5, &v.CPU)
	sink.Save(6, &v.NumCPU)
	sink.Save(7, &v.Enabled)
	sink.Save(8, &v.Count)
	sink.Save(9, &v.Time)
	sink.Save(10, &v.Now)
	sink.Save(11, &v.Left)
	sink.Save(12, &v.Limit)
	sink.Save(13, &v.ChildCount)
	sink.Save(14, &v.ChildTime)
	sink.Save(15, &v.Children)
	sink.Save(16, &v.Leader)
	sink.Save(17, &v.Members)
	sink.Save(18, &v.Held)
	sink.Save(19, &v.PendingKill)
}

func (v *savedPerfEvent) StateLoad(_ context.Context, source state.Source) {
	source.Load(0, &v.ID)
	source.Load(1, &v.LastID)
	source.Load(2, &v.Attr)
	// The event's restore waits for its thread's and its copies'.
	source.LoadWait(3, &v.Task)
	source.Load(4, &v.Live)
	source.Load(5, &v.CPU)
	source.Load(6, &v.NumCPU)
	source.Load(7, &v.Enabled)
	source.Load(8, &v.Count)
	source.Load(9, &v.Time)
	source.Load(10, &v.Now)
	source.Load(11, &v.Left)
	source.Load(12, &v.Limit)
	source.Load(13, &v.ChildCount)
	source.Load(14, &v.ChildTime)
	source.LoadWait(15, &v.Children)
	source.Load(16, &v.Leader)
	source.Load(17, &v.Members)
	source.Load(18, &v.Held)
	source.Load(19, &v.PendingKill)
}

func init() {
	state.Register((*perfFD)(nil))
	state.Register((*savedPerfEvent)(nil))
}
