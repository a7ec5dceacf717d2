// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/platform"
	gvsystrap "gvisor.dev/gvisor/pkg/sentry/platform/systrap"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp/backend"
)

// This file: which tasks of a stub process have breakpoints (a space's
// members), kept up to date as tasks run, change, leave and exit.

// space is one stub process's breakpoints and the host events that arm them.
// Its state is in parts, each kept by one file and all guarded by mu: which
// tasks are members and run (here), where their breakpoints are placed
// (placement.go), the host events that hold them (events.go), and which of
// those count hits rather than signal each (count.go).
type space struct {
	// env is the back end's: immutable, and safe for concurrent use.
	env *env

	mu sync.Mutex

	// members are the tasks of the process with a non-empty image, and
	// that image.
	//
	// +checklocks:mu
	members map[*kernel.Task]member

	// running counts the tasks between arm and the end of their trap
	// handling: while none is, no event can fire unseen, and the events
	// of stub threads can be replaced (adopt). It changes under mu only,
	// and is atomic so that Switch and evict can read it without mu;
	// checklocks' lock inference would take mu for its guard.
	running atomic.Int32 // +checklocksignore

	// runners are the tasks between arm and the end of their trap
	// handling (running counts them), and whether preempt interrupted
	// each.
	//
	// +checklocks:mu
	runners map[*kernel.Task]bool

	// preempted is set when preempt interrupted the running tasks to
	// make room for another space's events: they are closed when the
	// last is done.
	//
	// +checklocks:mu
	preempted bool

	// openedAt is the time (nanotime) the events were last opened:
	// preempt takes the spaces open longest first, and none before a
	// quantum.
	openedAt atomic.Int64

	// epoch counts arms: a task that finds it unchanged at its trap knows
	// that no other task ran in the process since its own arm.
	//
	// +checklocks:mu
	epoch uint64

	// lastArm is the back end's clock at the last arm of one of the
	// space's tasks: evict closes the events of the least recent first.
	lastArm atomic.Uint64

	// +checklocks:mu
	placement placement

	// +checklocks:mu
	events hostEvents

	// +checklocks:mu
	count hostCounting
}

// member is a task of a space and the image its breakpoints are armed from.
type member struct {
	task *hwbp.Task
	img  hwbp.Image
	// running is whether the task is between its arm and the end of its
	// trap handling.
	running bool
}

// quiet is what a task remembers (backend.Local) from a Switch that found
// neither its stub process, as, with a space nor itself a member of one:
// while the back end's spacesGen stays gen and its address space as, that
// still holds, unless the task gets breakpoints of its own (it can join a
// space only through its own arm).
type quiet struct {
	as  platform.AddressSpace
	gen uint64
}

// arm brings the events of t's stub process up to date with its tasks'
// breakpoints, t's current ones (task, nil if t has no breakpoint state)
// included, and returns what t runs with. local, if not nil, is t's memory
// of its last arm.
func (b *Backend) arm(t *kernel.Task, task *hwbp.Task, mm platform.MemoryManager, local *backend.Local) run {
	wants := task != nil && task.HasBreakpoints()
	// The common case, every Switch of the tasks of other processes while
	// one has breakpoints: two loads and two compares, without the map
	// lookups below.
	gen := b.spacesGen.Load()
	if !wants && local != nil {
		if q, ok := local.Value.(*quiet); ok && q.gen == gen && q.as == mm.AddressSpace() {
			return run{}
		}
	}
	p, ok := gvsystrap.CurrentStubProcess(mm)
	if !ok {
		return run{}
	}
	sp := b.space(p)
	prev := b.spaceOf(t)
	if sp == nil && prev == nil && !wants {
		if local != nil {
			rememberQuiet(local, mm.AddressSpace(), gen)
		}
		return run{} // no breakpoints in the process
	}
	var dead []*space
	if sp == nil && wants {
		b.mu.Lock()
		if sp = b.space(p); sp == nil {
			sp = b.newSpace()
			dead = b.pruneLocked()
			b.spaces.Store(p, sp)
			b.spacesGen.Add(1)
		}
		b.mu.Unlock()
	}
	for _, d := range dead {
		d.mu.Lock()
		d.closeAll()
		d.mu.Unlock()
	}
	if prev != nil && prev != sp {
		b.leave(t, prev) // t's address space changed
	}
	if sp == nil {
		return run{}
	}

	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.running.Add(1)
	sp.runners[t] = false
	sp.epoch++
	sp.lastArm.Store(b.clock.Add(1))
	// The hits counted so far are those of the members as they were:
	// they are settled before a member changes (and only then, so that
	// an unchanged Switch reads no count).
	changed := false
	if m, ok := sp.members[t]; task != nil && (!ok || m.img.Generation != task.Generation()) || task == nil && ok {
		changed = true
		sp.settle()
		b.setMember(sp, t, task)
	}
	for k, m := range sp.members {
		if k != t && m.img.Generation != m.task.Generation() {
			changed = true
			sp.settle()
			b.setMember(sp, k, m.task)
		}
	}
	if m, ok := sp.members[t]; ok {
		m.running = true
		sp.members[t] = m
	}
	// t alone may count without traps (count.go): it is the only member
	// and the only user of the address space, nobody else is between arm
	// and trap handling, and its virtual DR6 is clean.
	_, member := sp.members[t]
	solo := member && len(sp.members) == 1 && sp.running.Load() == 1 && soleUser(mm) && task.VirtualDR6() == hwbp.DR6Reset
	if changed || sp.events.open || sp.events.evicted {
		b.apply(sp, func() (int32, []int32) {
			// apply calls this before it returns, with sp.mu still
			// held; checklocks cannot tell.
			return sp.stubThreads(mm) // +checklocksignore
		}, solo)
	}
	return run{sp: sp, img: sp.members[t].img, epoch: sp.epoch}
}

// rememberQuiet records in local that t's address space as had no space and
// t was no member at spacesGen gen, reusing local's quiet.
func rememberQuiet(local *backend.Local, as platform.AddressSpace, gen uint64) {
	q, _ := local.Value.(*quiet)
	if q == nil {
		q = new(quiet)
		local.Value = q
	}
	q.as, q.gen = as, gen
}

// stubThreads lists the thread that clones stub threads (the nursery) and
// the stub threads of mm's process, sp's. The list is sp's, reused by the
// next call.
//
// +checklocks:sp.mu
func (sp *space) stubThreads(mm platform.MemoryManager) (nursery int32, tids []int32) {
	nursery, sp.events.tids, _ = gvsystrap.StubThreads(mm, sp.events.tids[:0])
	return nursery, sp.events.tids
}

// newSpace returns the state of a stub process that has no events yet.
func (b *Backend) newSpace() *space {
	return &space{
		env:       &b.env,
		members:   make(map[*kernel.Task]member),
		runners:   make(map[*kernel.Task]bool),
		placement: placement{limit: b.Limit()},
		events: hostEvents{
			own:       make(map[int32]*[hwbp.Slots]int),
			ownCounts: make(map[int32]*[hwbp.Slots]uint64),
		},
	}
}

// setMember records task's current image as k's in sp.
//
// +checklocks:sp.mu
func (b *Backend) setMember(sp *space, k *kernel.Task, task *hwbp.Task) {
	var img hwbp.Image
	if task != nil {
		img = task.Image()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if img.Empty() {
		delete(sp.members, k)
		b.memberOf.CompareAndDelete(k, sp)
		return
	}
	sp.members[k] = member{task: task, img: img, running: sp.members[k].running}
	b.memberOf.Store(k, sp)
}

// space returns the space of stub process p, or nil.
func (b *Backend) space(p gvsystrap.StubProcess) *space {
	if v, ok := b.spaces.Load(p); ok {
		return v.(*space)
	}
	return nil
}

// spaceOf returns the space t is a member of, or nil.
func (b *Backend) spaceOf(t *kernel.Task) *space {
	if v, ok := b.memberOf.Load(t); ok {
		return v.(*space)
	}
	return nil
}

// pruneLocked drops the spaces of stub processes that no longer exist and
// returns them, for the caller to close once b.mu is released.
//
// +checklocks:b.mu
func (b *Backend) pruneLocked() (dead []*space) {
	b.spaces.Range(func(p, sp any) bool {
		if p.(gvsystrap.StubProcess).Value() == nil {
			b.spaces.Delete(p)
			dead = append(dead, sp.(*space))
		}
		return true
	})
	return dead
}

// Refresh implements backend.Backend.Refresh: t's breakpoints changed while
// t runs no application code (its tracer changed them while t is stopped,
// or a host watch ended while t blocks; sp.mu orders this with a Switch of
// t that may begin meanwhile). If t's process carries events for t, they
// are brought up to date now, so that disarming closes them without waiting
// for a task of the process to run (meanwhile the registry stays retained
// and every task of the sandbox takes the armed path). New breakpoints are
// armed at t's next Switch, which also finds the process's threads.
func (b *Backend) Refresh(t *kernel.Task) {
	sp := b.spaceOf(t)
	if sp == nil {
		return
	}
	task := b.tasks.Lookup(t)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	m, ok := sp.members[t]
	if !ok || task != nil && m.img.Generation == task.Generation() {
		return
	}
	sp.settle()
	b.setMember(sp, t, task)
	b.apply(sp, nil, false)
}

// Forget implements backend.Backend.Forget: t's breakpoints leave its stub
// process, at t's exec or exit.
func (b *Backend) Forget(t *kernel.Task) {
	b.mu.Lock()
	v, _ := b.memberOf.LoadAndDelete(t)
	b.mu.Unlock()
	if sp, _ := v.(*space); sp != nil {
		b.leave(t, sp)
	}
}

// leave removes t from sp and disarms what only t needed.
func (b *Backend) leave(t *kernel.Task, sp *space) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if _, ok := sp.members[t]; !ok {
		return
	}
	sp.settle()
	delete(sp.members, t)
	// No stub thread can have appeared that the events do not cover
	// (they are inherited), so the known threads are enough.
	b.apply(sp, nil, false)
}

// done ends t's run: from now on its breakpoints need not be armed. The last
// task of a preempted space to be done closes its events.
func (sp *space) done(t *kernel.Task) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if m, ok := sp.members[t]; ok {
		m.running = false
		sp.members[t] = m
	}
	delete(sp.runners, t)
	if sp.running.Add(-1) == 0 && sp.preempted {
		sp.closeIfIdle()
	}
}

// report tells the back end's events hook that sp's events were opened or
// closed.
//
// +checklocks:sp.mu
func (sp *space) report(opened bool) {
	d := int64(-1)
	if opened {
		d = 1
	}
	n := sp.env.opened.Add(d)
	sp.env.live.set(sp, opened)
	if sp.env.notify != nil {
		sp.env.notify(opened, n, sp.env.fds.Load())
	}
}

// liveSpaces is the set of spaces whose events are open, from which evict
// picks.
type liveSpaces struct {
	mu sync.Mutex

	// +checklocks:mu
	m map[*space]struct{}
}

// set adds sp to the set or removes it.
func (l *liveSpaces) set(sp *space, open bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !open {
		delete(l.m, sp)
		return
	}
	if l.m == nil {
		l.m = make(map[*space]struct{})
	}
	l.m[sp] = struct{}{}
}

// list returns the spaces of the set, but except.
func (l *liveSpaces) list(except *space) []*space {
	l.mu.Lock()
	defer l.mu.Unlock()
	spaces := make([]*space, 0, len(l.m))
	for sp := range l.m {
		if sp != except {
			spaces = append(spaces, sp)
		}
	}
	return spaces
}
