// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// OverflowHandler is called when a breakpoint fires, like a perf overflow
// handler (Linux's ptrace_triggered for ptrace events). It runs on the
// goroutine of the back end that reported the hit, with no lock of this
// package held, so it may call back into the Registry.
type OverflowHandler func(bp *Breakpoint, hit Hit)

// Hit describes one firing of a breakpoint.
type Hit struct {
	// Slot is the debug register (0-3) whose B bit was set in DR6.
	Slot int
	// IP is the thread's user instruction pointer after the trap (the
	// instruction after the access for a data breakpoint), which Linux's
	// overflow handlers find in the trap's pt_regs (perf samples' IP).
	IP uint64
}

// Registry holds every breakpoint event of one sandbox and enforces the slot
// constraints between them. Its zero value is not usable; use NewRegistry.
type Registry struct {
	// active counts enabled events plus the back ends' retains. It is the
	// single atomic load of the platforms' hot path: zero means that no
	// task can have anything armed.
	active atomic.Int64

	// enabled counts enabled events.
	enabled atomic.Int64

	// hits counts the hits delivered to events (Image.fire, Image.Count).
	hits atomic.Uint64

	// counted counts the hits that back ends counted without a trap
	// (Image.Count).
	counted atomic.Uint64

	// flusher is the back end that counts hits of counting events
	// itself, if any (SetFlusher).
	flusher atomic.Pointer[Flusher]

	// noHostCounting is set once back ends must trap every hit of
	// counting events too (StopHostCounting).
	noHostCounting atomic.Bool

	// mu serializes changes to events and slot accounting. Hits do not take
	// it.
	mu sync.Mutex

	// tasks is the number of live (not yet released) tasks.
	//
	// +checklocks:mu
	tasks int

	// using[n] is the number of tasks that have n events, for n > 0:
	// Linux's tsk_pinned histogram (kernel/events/hw_breakpoint.c), which
	// answers in O(1) how many slots the busiest task holds.
	//
	// +checklocks:mu
	using [Slots + 1]int
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{}
}

// Active reports whether any enabled breakpoint exists in the sandbox, or a
// back end still holds something armed on the host (Retain). It is one
// atomic load.
func (r *Registry) Active() bool {
	return r.active.Load() != 0
}

// Retain makes Active report true until the matching Unretain. A back end
// retains the registry while the host still arms breakpoints for it (debug
// registers of a host thread, perf events) that no enabled event may need
// any more: tasks then keep taking its loaded path, which disarms them, and
// the hot path is back to one atomic load once nothing is left on the host.
func (r *Registry) Retain() { r.active.Add(1) }

// Unretain undoes one Retain.
func (r *Registry) Unretain() {
	if r.active.Add(-1) < 0 {
		panic("hwbp: Unretain without Retain")
	}
}

// Enabled returns the number of enabled events.
func (r *Registry) Enabled() int64 { return r.enabled.Load() }

// Hits returns the number of hits delivered to events since r was created.
func (r *Registry) Hits() uint64 { return r.hits.Load() }

// CountedHits returns the number of hits that a back end counted without a
// trap and delivered in batches (Image.Count), among Hits.
func (r *Registry) CountedHits() uint64 { return r.counted.Load() }

// A Flusher is a back end that counts the hits of counting events itself
// (see Breakpoint.SetCounter) rather than trapping at each: the host's
// counters hold hits that it has not delivered yet.
type Flusher interface {
	// Flush delivers (Image.Count) the hits of t's counting events that
	// the back end counted and did not deliver yet. It is called with no
	// lock of this package held, and may be called concurrently with t
	// running.
	Flush(t *Task)
}

// SetFlusher installs the back end that counts hits itself, before any task
// runs.
func (r *Registry) SetFlusher(f Flusher) { r.flusher.Store(&f) }

// StopHostCounting makes back ends trap every hit of counting events from
// now on, as they do for the others, rather than count them on the host.
// The plugin calls it when it restores a checkpoint: in the test VM, the
// host counted each write once too often in a restored sandbox on systrap
// and on ptrace alike (test/restore TestPerfCheckpointRestore), for a
// reason not found yet, while traps counted right.
func (r *Registry) StopHostCounting() { r.noHostCounting.Store(true) }

// HostCounting reports whether back ends may count the hits of counting
// events on the host (see StopHostCounting).
func (r *Registry) HostCounting() bool { return !r.noHostCounting.Load() }

// Tasks returns the number of tasks created by NewTask and not yet released.
func (r *Registry) Tasks() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tasks
}

// MaxSlotsInUse returns the largest number of slots that any one task
// holds. A breakpoint that would apply to every task, such as a CPU-wide
// perf event, fits only if it is below Slots: Linux's max_bp_pinned_slots
// counts the busiest task's breakpoints against a CPU-bound one.
func (r *Registry) MaxSlotsInUse() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n := Slots; n > 0; n-- {
		if r.using[n] != 0 {
			return n
		}
	}
	return 0
}

// countSlots records that a task went from having from events to having to.
//
// +checklocks:r.mu
func (r *Registry) countSlots(from, to int) {
	if from > 0 {
		r.using[from]--
	}
	if to > 0 {
		r.using[to]++
	}
}

// Task is the breakpoint state of one thread: the events bound to it.
type Task struct {
	r *Registry

	// gen is incremented on every change to the task's own events.
	gen atomic.Uint64

	// enabled counts the task's enabled task-bound events.
	enabled atomic.Int64

	// The fields below are guarded by r.mu, and checklocks enforces it.
	// Their trailing +checklocksignore only silences its lock inference,
	// which matches a guard by the mutex's own name ("mu") and so takes
	// r.mu for a different, unannotated lock.

	// bps holds the task-bound events in registration order: at most
	// Slots on any one CPU (see pinnedLocked), so at most Slots times the
	// CPUs that events are bound to.
	//
	// +checklocks:r.mu
	bps []*Breakpoint // +checklocksignore

	// perCPU counts the events of bps that are bound to one CPU. It is
	// written under r.mu and read without: while it is zero, the CPU the
	// task runs on does not change its image.
	perCPU atomic.Int32

	// cpu is the CPU the task runs on as last reported (SetCPU), -1
	// before: its image holds the events bound to it.
	cpu atomic.Int32

	// released is set by Release; a released task accepts no events.
	//
	// +checklocks:r.mu
	released bool // +checklocksignore

	// ext holds the consumers' own state of the thread (see Extension).
	//
	// +checklocks:r.mu
	ext []extension // +checklocksignore

	// dr6 is Linux's thread->virtual_dr6: the DR6 that the thread's
	// tracer reads, with the polarity of the reserved bits flipped so that
	// zero reads as DR6Reset. Debug exceptions reset it (Trap), overflow
	// handlers add B bits, the tracer writes it.
	dr6 atomic.Uint64
}

// NewTask returns the state of a new thread, which has no breakpoints: Linux
// does not inherit them across fork or clone.
func (r *Registry) NewTask() *Task {
	r.mu.Lock()
	r.tasks++
	r.mu.Unlock()
	t := &Task{r: r}
	t.cpu.Store(-1)
	return t
}

// Breakpoint is one breakpoint event. Its task belongs to the event's
// registry, so both paths name the same mutex.
//
// +checklocksalias:r.mu=task.r.mu
type Breakpoint struct {
	r *Registry

	// task is the task the event is bound to. Immutable.
	task *Task

	// cpu is the CPU the event is bound to, -1 for every CPU: it is in
	// its task's image only while the task runs there, and holds a slot
	// there only. Immutable.
	cpu int32

	// handler is called on every hit. Immutable; may be nil.
	handler OverflowHandler

	// host is set for an event that the host owns (RegisterHost): the
	// guest never sees its hits. Immutable.
	host bool

	// counter, if set, makes the event a counting event: the hits that
	// a back end counts itself go to it in batches (SetCounter).
	counter atomic.Pointer[func(n uint64)]

	// hits counts the times the event fired.
	hits atomic.Uint64

	// armed is registered && !attr.Disabled, readable without mu so that
	// fire can drop hits that raced with a disable or unregister.
	armed atomic.Bool

	// attr and registered are guarded by r.mu; the trailing
	// +checklocksignore is for checklocks' lock inference, as in Task.

	// +checklocks:r.mu
	attr Attr // +checklocksignore

	// +checklocks:r.mu
	registered bool // +checklocksignore
}

// Register creates an event bound to t on every CPU, with Linux's checks in
// Linux's order (register_perf_hw_breakpoint): the type check and the slot
// reservation first (EINVAL, ENOSPC), then the attribute parse
// (Attr.Validate). handler may be nil. On error nothing changes.
func (r *Registry) Register(t *Task, attr Attr, handler OverflowHandler) (*Breakpoint, error) {
	return r.RegisterOnCPU(t, -1, attr, handler)
}

// RegisterOnCPU is Register for an event of t bound to one CPU, cpu (-1: to
// every CPU), as a perf event opened with a pid and a cpu is: it fires only
// while t runs on that CPU, and holds one of t's slots on that CPU only
// (Linux's task_bp_pinned counts a task's events bound to the CPU and to
// every CPU), so that t may have up to Slots events on each CPU.
func (r *Registry) RegisterOnCPU(t *Task, cpu int32, attr Attr, handler OverflowHandler) (*Breakpoint, error) {
	return r.register(t, cpu, attr, handler, false)
}

// RegisterHost is Register for an event that the host owns, not the guest:
// an operator's watchpoint in a sandboxed thread, as Linux's ksym tracer
// (kernel/trace/trace_ksym.c, later perf's mem: events with -a) owns a
// pinned kernel breakpoint that holds a slot of every task. It takes one of
// t's slots like any event, so that the guest's own requests get ENOSPC
// when they need more than the slots that remain, as they do on Linux next
// to a pinned breakpoint (reserve_bp_slot counts every pinned one), but its
// hits are the host's alone: a debug exception that only host events caused
// leaves the thread's virtual DR6 as it was and makes no signal (Trap).
func (r *Registry) RegisterHost(t *Task, attr Attr, handler OverflowHandler) (*Breakpoint, error) {
	return r.register(t, -1, attr, handler, true)
}

func (r *Registry) register(t *Task, cpu int32, attr Attr, handler OverflowHandler, host bool) (*Breakpoint, error) {
	if t == nil || t.r != r {
		return nil, fmt.Errorf("hwbp: task of another registry: %w", unix.EINVAL)
	}
	// The same registry, reached through t: checklocks then sees that
	// r.mu guards t's fields too.
	r = t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.released {
		return nil, fmt.Errorf("hwbp: task has exited: %w", unix.ESRCH)
	}
	if err := attr.checkType(); err != nil {
		return nil, err
	}
	if cpu < -1 {
		return nil, fmt.Errorf("hwbp: cpu %d: %w", cpu, unix.EINVAL)
	}
	if n := t.pinnedLocked(cpu); n+1 > Slots {
		return nil, fmt.Errorf("hwbp: task uses all %d breakpoint slots: %w", n, unix.ENOSPC)
	}
	if err := attr.Validate(); err != nil {
		return nil, err
	}
	bp := &Breakpoint{r: r, task: t, cpu: cpu, handler: handler, host: host, attr: attr, registered: true}
	before := t.pinnedLocked(-1)
	t.bps = append(t.bps, bp)
	if cpu >= 0 {
		t.perCPU.Add(1)
	}
	r.countSlots(before, t.pinnedLocked(-1))
	if !attr.Disabled {
		bp.armed.Store(true)
		t.enabled.Add(1)
		r.enabled.Add(1)
		r.active.Add(1)
	}
	t.gen.Add(1)
	return bp, nil
}

// Task returns the task bp is bound to.
func (bp *Breakpoint) Task() *Task { return bp.task }

// Host reports whether the host owns bp (RegisterHost).
func (bp *Breakpoint) Host() bool { return bp.host }

// Hits returns how many times bp fired.
func (bp *Breakpoint) Hits() uint64 { return bp.hits.Load() }

// SetCounter makes bp a counting event, perf's !is_sampling_event: its
// consumer needs the number of its hits, not a call at each, so a back end
// may count them itself without a trap per hit (Linux lets the PMU count
// them; perf stat's events never interrupt the task). Such hits go to add,
// in batches, at the latest when bp's count is flushed (Flush); a hit that
// a back end traps still goes to the handler. Consumers call SetCounter
// once, before enabling bp.
func (bp *Breakpoint) SetCounter(add func(n uint64)) {
	bp.counter.Store(&add)
	bp.bumpGen()
}

// Counting reports whether bp is a counting event (SetCounter).
func (bp *Breakpoint) Counting() bool { return bp.counter.Load() != nil }

// Flush makes bp's count up to date: the hits that a back end counted and
// has not delivered are delivered, as Linux's perf_event_read asks the PMU
// to read the hardware counter. Consumers call it before they read a
// counting event's count; bp's own state changes (Enable, Disable, Modify,
// Unregister) call it first themselves, so that the hits before a change
// are counted under the old state. It must be called with no lock of this
// package held.
func (bp *Breakpoint) Flush() {
	if !bp.Counting() {
		return
	}
	if f := bp.r.flusher.Load(); f != nil {
		(*f).Flush(bp.task)
	}
}

// Attr returns bp's current attributes.
func (bp *Breakpoint) Attr() Attr {
	bp.r.mu.Lock()
	defer bp.r.mu.Unlock()
	return bp.attr
}

// Registered reports whether bp is still registered.
func (bp *Breakpoint) Registered() bool {
	bp.r.mu.Lock()
	defer bp.r.mu.Unlock()
	return bp.registered
}

// Modify replaces bp's attributes, enabled state included, as Linux's
// modify_user_hw_breakpoint does. It is all-or-nothing: if attr is invalid,
// bp keeps its old attributes and state. A type change never fails for lack
// of slots: on x86 every type shares the same four registers, so bp's own
// slot is always available to it.
func (bp *Breakpoint) Modify(attr Attr) error {
	bp.Flush()
	r := bp.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if !bp.registered {
		if bp.task.released {
			// The task's exit flushed bp while its consumer was
			// changing it (Release): the task is gone, as Register
			// answers for it.
			return fmt.Errorf("hwbp: task has exited: %w", unix.ESRCH)
		}
		return fmt.Errorf("hwbp: breakpoint is not registered: %w", unix.ENOENT)
	}
	if err := attr.Validate(); err != nil {
		return err
	}
	bp.attr = attr
	bp.setArmed(!attr.Disabled)
	bp.bumpGen()
	return nil
}

// Enable arms bp. It does nothing if bp is unregistered or already enabled.
func (bp *Breakpoint) Enable() { bp.setDisabled(false) }

// Disable disarms bp; it keeps its slot. It does nothing if bp is
// unregistered or already disabled.
func (bp *Breakpoint) Disable() { bp.setDisabled(true) }

func (bp *Breakpoint) setDisabled(disabled bool) {
	bp.Flush()
	r := bp.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if !bp.registered || bp.attr.Disabled == disabled {
		return
	}
	bp.attr.Disabled = disabled
	bp.setArmed(!disabled)
	bp.bumpGen()
}

// setArmed updates the armed flag and the enabled counters.
//
// +checklocks:bp.r.mu
func (bp *Breakpoint) setArmed(armed bool) {
	if bp.armed.Load() == armed {
		return
	}
	bp.armed.Store(armed)
	d := int64(-1)
	if armed {
		d = 1
	}
	bp.task.enabled.Add(d)
	bp.r.enabled.Add(d)
	bp.r.active.Add(d)
}

// bumpGen records that the image of bp's task changed.
func (bp *Breakpoint) bumpGen() {
	bp.task.gen.Add(1)
}

// Unregister removes bp and frees its slot. It does nothing if bp is already
// unregistered.
func (bp *Breakpoint) Unregister() {
	bp.Flush()
	r := bp.r
	r.mu.Lock()
	defer r.mu.Unlock()
	bp.unregisterLocked()
}

// +checklocks:bp.r.mu
func (bp *Breakpoint) unregisterLocked() {
	if !bp.registered {
		return
	}
	bp.setArmed(false)
	bp.registered = false
	t := bp.task
	// bp's task is in bp.r, whose mu is held; checklocks cannot tell.
	before := t.pinnedLocked(-1) // +checklocksignore
	if i := slices.Index(t.bps, bp); i >= 0 {
		t.bps = slices.Delete(t.bps, i, i+1)
		if bp.cpu >= 0 {
			t.perCPU.Add(-1)
		}
		bp.r.countSlots(before, t.pinnedLocked(-1)) // +checklocksignore
	}
	bp.bumpGen()
}

// Release unregisters every event bound to t and forgets t: Linux flushes a
// thread's breakpoints when it exits (flush_ptrace_hw_breakpoint). Later
// Register calls for t fail with ESRCH. Release is idempotent.
func (t *Task) Release() {
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.released {
		return
	}
	for len(t.bps) > 0 {
		// Every event of t is in t.r, whose mu is held; checklocks
		// cannot tell that of an element of t.bps.
		t.bps[len(t.bps)-1].unregisterLocked() // +checklocksignore
	}
	t.released = true
	t.ext = nil
	r.tasks--
}

// SlotsInUse returns how many of t's slots are reserved on the CPU where it
// holds the most: its events, enabled or not, bound to that CPU or to every
// CPU.
func (t *Task) SlotsInUse() int {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	return t.pinnedLocked(-1)
}

// pinnedLocked returns how many of t's slots on cpu its events hold: those
// bound to cpu and those bound to every CPU (Linux's task_bp_pinned); with
// cpu -1, the most that they hold on any one CPU.
//
// +checklocks:t.r.mu
func (t *Task) pinnedLocked(cpu int32) int {
	n, most := 0, 0
	var per map[int32]int
	for _, bp := range t.bps {
		switch {
		case bp.cpu < 0:
			n++
		case cpu >= 0:
			if bp.cpu == cpu {
				n++
			}
		default:
			if per == nil {
				per = make(map[int32]int)
			}
			per[bp.cpu]++
			most = max(most, per[bp.cpu])
		}
	}
	return n + most
}

// SetCPU records that t runs on cpu, as getcpu(2) tells the guest: the
// events bound to that CPU join its image, and those bound to another leave
// it. Back ends report it before they arm t; it costs an atomic load while
// it does not change.
func (t *Task) SetCPU(cpu int32) {
	if t.cpu.Load() == cpu {
		return
	}
	t.cpu.Store(cpu)
	if t.perCPU.Load() != 0 {
		t.gen.Add(1)
	}
}

// HasBreakpoints reports whether t has any enabled event. When no enabled
// event exists in the whole sandbox it costs one atomic load.
func (t *Task) HasBreakpoints() bool {
	return t.r.active.Load() != 0 && t.enabled.Load() != 0
}

// Generation returns a number that changes whenever t's Image may have
// changed. Back ends compare it with Image.Generation of the image they
// loaded to skip reloading an unchanged one.
func (t *Task) Generation() uint64 {
	return t.gen.Load()
}

// Image is the debug register contents that a task's enabled events resolve
// to: the x86 breakpoint PMU's scheduling (Linux's arch_install_hw_breakpoint
// places each event into the first free slot).
type Image struct {
	// Generation is Task.Generation at the time the image was taken.
	Generation uint64
	// Addr holds DR0-DR3.
	Addr [Slots]uint64
	// DR7 arms the used slots with their global enable bit, plus GE, as
	// Linux's encode_dr7 does. It is zero when nothing is armed.
	DR7 DR7

	bps [Slots]*Breakpoint
}

// Empty reports whether the image arms no slot.
func (img Image) Empty() bool { return img.DR7 == 0 }

// Below returns img without the slots whose range does not end at or below
// limit: a platform's application address space ends below the host
// address space its stub uses (platform.Platform.MaxUserAddress), and
// Linux's own limit (TASK_SIZE, which Attr.Validate applies) lets a guest
// name addresses of the stub. Arming those on the host would trap the
// stub's code or data, so back ends arm only img.Below(limit); nothing of
// the guest's can be there anyway. Execution breakpoints cover one byte.
func (img Image) Below(limit uint64) Image {
	for slot := 0; slot < Slots; slot++ {
		if !img.DR7.Enabled(slot) {
			continue
		}
		n := uint64(1)
		if img.DR7.RW(slot) != RWExecute {
			n = [4]uint64{1, 2, 8, 4}[img.DR7.Len(slot)]
		}
		if a := img.Addr[slot]; a < limit && limit-a >= n {
			continue
		}
		img.DR7 &^= SlotMask(slot)
		img.Addr[slot] = 0
		img.bps[slot] = nil
	}
	if img.DR7&^(DR7LocalSlowdown|DR7GlobalSlowdown) == 0 {
		img.DR7 = 0
	}
	return img
}

// Breakpoint returns the event loaded in slot, or nil.
func (img *Image) Breakpoint(slot int) *Breakpoint {
	if slot < 0 || slot >= Slots {
		return nil
	}
	return img.bps[slot]
}

// Image returns t's current image on the CPU it runs on (SetCPU): its
// events bound to every CPU or to that one take the first slots in
// registration order; disabled events take none.
func (t *Task) Image() Image {
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	img := Image{Generation: t.Generation()}
	cpu := t.cpu.Load()
	slot := 0
	// The events of t are all in t.r, whose mu is held; checklocks
	// cannot tell that of an element of t.bps.
	for _, bp := range t.bps {
		if bp.cpu >= 0 && bp.cpu != cpu {
			continue
		}
		if slot == Slots {
			break // cannot happen: pinnedLocked bounds them
		}
		slot = img.place(slot, bp) // +checklocksignore
	}
	if slot > 0 {
		img.DR7 |= DR7GlobalSlowdown
	}
	return img
}

// place puts bp in slot of img unless bp is disabled, and returns the next
// free slot.
//
// +checklocks:bp.r.mu
func (img *Image) place(slot int, bp *Breakpoint) int {
	if bp.attr.Disabled {
		return slot
	}
	rw, ln, _ := bp.attr.Fields() // validated: always ok
	img.Addr[slot] = bp.attr.Addr
	img.DR7 |= EncodeSlot(slot, rw, ln)
	img.bps[slot] = bp
	return slot + 1
}

// fire delivers a hit on slot, at user instruction pointer ip, to the
// event img holds there, as Linux's hw_breakpoint_handler does with
// perf_bp_event: its hit count is incremented and its handler called. A hit on an event that was disabled
// or unregistered since img was taken is dropped. fire reports whether the
// event was notified.
func (img *Image) fire(slot int, ip uint64) bool {
	bp := img.bps[slot]
	if bp == nil || !bp.armed.Load() {
		return false
	}
	bp.hits.Add(1)
	bp.r.hits.Add(1)
	if bp.handler != nil {
		bp.handler(bp, Hit{Slot: slot, IP: ip})
	}
	return true
}

// Counting reports whether the event in slot is a counting event
// (Breakpoint.SetCounter), whose hits a back end may count itself.
func (img *Image) Counting(slot int) bool {
	bp := img.Breakpoint(slot)
	return bp != nil && bp.Counting()
}

// Count delivers n hits on slot that a back end counted itself, while img
// was loaded, to the counting event img holds there: its hit count grows by
// n and its counter is told. As with fire, they are dropped if the event was
// disabled or unregistered since img was taken (its Flush delivered those
// from before). Count does nothing for a slot without a counting event.
func (img *Image) Count(slot int, n uint64) {
	bp := img.Breakpoint(slot)
	if bp == nil || n == 0 || !bp.armed.Load() {
		return
	}
	add := bp.counter.Load()
	if add == nil {
		return
	}
	bp.hits.Add(n)
	bp.r.hits.Add(n)
	bp.r.counted.Add(n)
	(*add)(n)
}
