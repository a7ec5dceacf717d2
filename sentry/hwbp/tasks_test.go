// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// note is a test consumer's Extension: a value that clones carry on, and a
// record of execs.
type note struct {
	v     int
	execs int
}

func (n *note) Clone() Extension {
	if n.v == 0 {
		return nil
	}
	return &note{v: n.v}
}

func (n *note) Exec() { n.execs++ }

var noteKey = NewExtensionKey("note")

func attachNote(t *Task, v int) *note {
	n := t.Attach(noteKey, func() Extension { return &note{} }).(*note)
	n.v = v
	return n
}

func mustGet(t *testing.T, ts *Tasks[int], k int) *Task {
	t.Helper()
	task, err := ts.Get(k)
	if err != nil {
		t.Fatalf("Get(%d): %v", k, err)
	}
	return task
}

func TestTasksLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, ts *Tasks[int])
	}{
		{"a thread without state has no Task", func(t *testing.T, ts *Tasks[int]) {
			if ts.Lookup(1) != nil || ts.Len() != 0 {
				t.Fatal("Lookup found a Task nobody created")
			}
		}},
		{"Get creates once", func(t *testing.T, ts *Tasks[int]) {
			if a, b := mustGet(t, ts, 1), mustGet(t, ts, 1); a != b || ts.Lookup(1) != a || ts.Len() != 1 {
				t.Fatal("Get made two Tasks for one thread")
			}
		}},
		{"an exited thread gets no Task", func(t *testing.T, ts *Tasks[int]) {
			if _, err := ts.Get(-1); errnoOf(t, err) != unix.ESRCH || ts.Lookup(-1) != nil || ts.Len() != 0 {
				t.Fatalf("Get of an exited thread = %v", err)
			}
		}},
		{"clone copies the virtual DR6 and the extensions' clones, no event", func(t *testing.T, ts *Tasks[int]) {
			p := mustGet(t, ts, 1)
			p.SetVirtualDR6(DR6Reset | 0x5)
			attachNote(p, 7)
			mustRegister(t, ts.Registry(), p, watch(testAddr))
			ts.Clone(1, 2, 0)
			c := ts.Lookup(2)
			if c == nil || c.VirtualDR6() != DR6Reset|0x5 || c.SlotsInUse() != 0 || c.Extension(noteKey).(*note).v != 7 {
				t.Fatalf("child state wrong: %+v", c)
			}
		}},
		{"clone of a default thread makes nothing", func(t *testing.T, ts *Tasks[int]) {
			p := mustGet(t, ts, 1)
			attachNote(p, 0)
			mustRegister(t, ts.Registry(), p, watch(testAddr))
			ts.Clone(1, 2, 0)
			ts.Clone(3, 4, 0)
			if ts.Lookup(2) != nil || ts.Lookup(4) != nil {
				t.Fatal("a default thread's child got a Task")
			}
		}},
		{"clone into an exited child makes nothing", func(t *testing.T, ts *Tasks[int]) {
			mustGet(t, ts, 1).SetVirtualDR6(DR6Reset | DR6BS)
			ts.Clone(1, -2, 0)
			if ts.Lookup(-2) != nil {
				t.Fatal("an exited child got a Task")
			}
		}},
		{"exec flushes extensions and DR6 and frees a Task without events", func(t *testing.T, ts *Tasks[int]) {
			task := mustGet(t, ts, 1)
			task.SetVirtualDR6(DR6Reset | 0x3)
			n := attachNote(task, 1)
			if empty, _ := ts.Exec(1); !empty || n.execs != 1 || ts.Lookup(1) != nil || ts.Registry().Tasks() != 0 {
				t.Fatalf("after exec: empty %v, execs %d, Task %v", empty, n.execs, ts.Lookup(1))
			}
		}},
		{"exec keeps a Task whose events survive it", func(t *testing.T, ts *Tasks[int]) {
			task := mustGet(t, ts, 1)
			task.SetVirtualDR6(DR6Reset | 0x3)
			mustRegister(t, ts.Registry(), task, watch(testAddr))
			if empty, _ := ts.Exec(1); empty || ts.Lookup(1) != task || task.VirtualDR6() != DR6Reset {
				t.Fatalf("after exec: empty %v, DR6 %#x", empty, uint64(task.VirtualDR6()))
			}
		}},
		{"exit frees everything", func(t *testing.T, ts *Tasks[int]) {
			task := mustGet(t, ts, 1)
			mustRegister(t, ts.Registry(), task, watch(testAddr))
			mustGet(t, ts, 2)
			if empty, created := ts.Exit(1); empty || created != 2 {
				t.Fatalf("Exit(1) = %v, %d", empty, created)
			}
			if empty, created := ts.Exit(2); !empty || created != 2 || ts.Registry().Active() || ts.Registry().Tasks() != 0 {
				t.Fatalf("Exit(2) = %v, %d; active %v", empty, created, ts.Registry().Active())
			}
			if task.Attach(noteKey, func() Extension { return &note{} }) != nil {
				t.Fatal("a released Task took an extension")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, NewTasks(NewRegistry(), func(k int) bool { return k < 0 }))
		})
	}
}

// TestTrapRules checks Tasks.Trap against Linux's exc_debug_user and
// hw_breakpoint_handler for a thread with a write watchpoint in slot 0, an
// execution breakpoint in slot 1 and a virtual DR6 of B2.
func TestTrapRules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dr6      DR6
		wantSig  bool
		wantCode int32
		wantDR6  DR6
		wantHits [2]uint64
		wantRF   bool
	}{
		{"hit fires the event and signals TRAP_HWBKPT", DR6Reset | 1, true, TrapHWBkpt, DR6Reset | 1, [2]uint64{1, 0}, false},
		{"single-step shows BS alone", DR6Reset | DR6BS, true, TrapTrace, DR6Reset | DR6BS, [2]uint64{0, 0}, false},
		{"single-step beats a hit for si_code", DR6Reset | DR6BS | 1, true, TrapTrace, DR6Reset | DR6BS | 1, [2]uint64{1, 0}, false},
		{"B bit of an empty slot signals without an event", DR6Reset | 8, true, TrapHWBkpt, DR6Reset, [2]uint64{0, 0}, false},
		{"icebp signals TRAP_BRKPT and resets DR6", DR6Reset, true, TrapBrkpt, DR6Reset, [2]uint64{0, 0}, false},
		{"BD alone resets DR6 without a signal", DR6Reset | DR6BD, false, 0, DR6Reset, [2]uint64{0, 0}, false},
		{"an execution breakpoint fires and asks for RF", DR6Reset | 2, true, TrapHWBkpt, DR6Reset | 2, [2]uint64{0, 1}, true},
		{"an execution breakpoint waits while BS is set", DR6Reset | DR6BS | 2, true, TrapTrace, DR6Reset | DR6BS, [2]uint64{0, 0}, false},
		{"a data hit fires beside a deferred execution breakpoint", DR6Reset | DR6BS | 3, true, TrapTrace, DR6Reset | DR6BS | 1, [2]uint64{1, 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := NewTasks[int](NewRegistry(), nil)
			task := mustGet(t, ts, 1)
			handler := func(bp *Breakpoint, h Hit) {
				bp.Task().AddVirtualDR6(DR6Trap0 << h.Slot)
			}
			w, err := ts.Registry().Register(task, watch(testAddr), handler)
			if err != nil {
				t.Fatal(err)
			}
			x, err := ts.Registry().Register(task, Attr{Addr: testAddr + 0x40, Len: 8, Type: TypeX}, handler)
			if err != nil {
				t.Fatal(err)
			}
			task.SetVirtualDR6(DR6Reset | 4)
			img := task.Image()
			out := ts.Trap(1, &img, tc.dr6, 0x401000)
			if out.Deliver != tc.wantSig || out.Signal.Code != tc.wantCode || out.Deliver && out.Signal.Addr != 0x401000 || out.ResumeRF != tc.wantRF {
				t.Errorf("Trap = %+v; want code %d, deliver %v, RF %v", out, tc.wantCode, tc.wantSig, tc.wantRF)
			}
			if got := task.VirtualDR6(); got != tc.wantDR6 {
				t.Errorf("virtual DR6 %#x, want %#x", uint64(got), uint64(tc.wantDR6))
			}
			if got := [2]uint64{w.Hits(), x.Hits()}; got != tc.wantHits {
				t.Errorf("hits %v, want %v", got, tc.wantHits)
			}
		})
	}
	t.Run("a single-step gives a thread without state a Task", func(t *testing.T) {
		ts := NewTasks[int](NewRegistry(), nil)
		if out := ts.SingleStep(1, 0x401000); !out.Deliver || out.Signal.Code != TrapTrace {
			t.Fatalf("SingleStep = %+v", out)
		}
		if task := ts.Lookup(1); task == nil || task.VirtualDR6() != DR6Reset|DR6BS {
			t.Fatal("the single-step does not show in DR6")
		}
	})
	t.Run("an icebp gives a thread without state none", func(t *testing.T) {
		ts := NewTasks[int](NewRegistry(), nil)
		if out := ts.Icebp(1, 0x401000); !out.Deliver || out.Signal.Code != TrapBrkpt {
			t.Fatalf("Icebp = %+v", out)
		}
		if ts.Lookup(1) != nil {
			t.Fatal("an icebp created state")
		}
	})
}

// heir is an Inheritor that registers a breakpoint on the new thread.
type heir struct {
	r       *Registry
	parents []int
	bps     []*Breakpoint
}

func (h *heir) Clone() Extension { return &heir{r: h.r} }
func (h *heir) Exec()            {}
func (h *heir) Inherited(parent, child int, _ uint64, t *Task) {
	h.parents = append(h.parents, parent)
	bp, err := h.r.Register(t, Attr{Addr: testAddr, Len: 8, Type: TypeW}, nil)
	if err == nil {
		h.bps = append(h.bps, bp)
	}
}

var heirKey = NewExtensionKey("heir")

func TestInheritorRegistersOnTheChild(t *testing.T) {
	r := NewRegistry()
	ts := NewTasks(r, func(int) bool { return false })
	p := mustGet(t, ts, 1)
	p.Attach(heirKey, func() Extension { return &heir{r: r} })
	ts.Clone(1, 2, 0)
	c := ts.Lookup(2)
	if c == nil {
		t.Fatal("the child has no Task")
	}
	h, ok := c.Extension(heirKey).(*heir)
	if !ok {
		t.Fatal("the child has no clone of the extension")
	}
	if len(h.parents) != 1 || h.parents[0] != 1 || len(h.bps) != 1 {
		t.Fatalf("Inherited was called with parents %v and registered %d events, want [1] and 1", h.parents, len(h.bps))
	}
	if n := c.SlotsInUse(); n != 1 {
		t.Errorf("the child uses %d slots, want 1", n)
	}
	if n := p.SlotsInUse(); n != 0 {
		t.Errorf("the parent uses %d slots, want 0", n)
	}
}

func TestHostEventsAreInvisible(t *testing.T) {
	ts := NewTasks[int](NewRegistry(), nil)
	task := mustGet(t, ts, 1)
	var hostHits []Hit
	host, err := ts.Registry().RegisterHost(task, watch(testAddr), func(_ *Breakpoint, h Hit) { hostHits = append(hostHits, h) })
	if err != nil {
		t.Fatal(err)
	}
	if !host.Host() {
		t.Fatal("RegisterHost's event is not the host's")
	}
	guest, err := ts.Registry().Register(task, watch(testAddr+8), func(bp *Breakpoint, h Hit) {
		bp.Task().AddVirtualDR6(DR6Trap0 << h.Slot)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The guest's tracer left B2 in the virtual DR6.
	task.SetVirtualDR6(DR6Reset | 4)
	img := task.Image()

	if out := ts.Trap(1, &img, DR6Reset|1, 0x401000); out.Deliver || out.ResumeRF {
		t.Errorf("a host hit: Trap = %+v, want nothing for the guest", out)
	}
	if got := task.VirtualDR6(); got != DR6Reset|4 {
		t.Errorf("a host hit changed the virtual DR6 to %#x", uint64(got))
	}
	if len(hostHits) != 1 || hostHits[0].Slot != 0 || hostHits[0].IP != 0x401000 || host.Hits() != 1 {
		t.Errorf("host hits %+v (count %d), want one on slot 0", hostHits, host.Hits())
	}

	// A hit of both: the guest sees its own alone.
	out := ts.Trap(1, &img, DR6Reset|3, 0x401004)
	if !out.Deliver || out.Signal.Code != TrapHWBkpt {
		t.Errorf("a hit of both: Trap = %+v, want the guest's SIGTRAP", out)
	}
	if got := task.VirtualDR6(); got != DR6Reset|2 {
		t.Errorf("a hit of both: virtual DR6 %#x, want only the guest's B1", uint64(got))
	}
	if host.Hits() != 2 || guest.Hits() != 1 {
		t.Errorf("hits: host %d, guest %d; want 2 and 1", host.Hits(), guest.Hits())
	}

	// A single-step with a host hit is the guest's step.
	if out := ts.Trap(1, &img, DR6Reset|DR6BS|1, 0x401008); !out.Deliver || out.Signal.Code != TrapTrace {
		t.Errorf("a step with a host hit: Trap = %+v, want TRAP_TRACE", out)
	}
	if got := task.VirtualDR6(); got != DR6Reset|DR6BS {
		t.Errorf("a step with a host hit: virtual DR6 %#x, want BS alone", uint64(got))
	}
}

func TestHostEventHoldsASlot(t *testing.T) {
	r := NewRegistry()
	ts := NewTasks[int](r, nil)
	task := mustGet(t, ts, 1)
	host, err := r.RegisterHost(task, watch(testAddr), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < Slots-1; i++ {
		if _, err := r.Register(task, watch(testAddr+8*uint64(i+1)), nil); err != nil {
			t.Fatalf("guest event %d: %v", i, err)
		}
	}
	if _, err := r.Register(task, watch(testAddr+0x100), nil); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("a 4th guest event beside a host one: %v, want ENOSPC", err)
	}
	host.Unregister()
	if _, err := r.Register(task, watch(testAddr+0x100), nil); err != nil {
		t.Fatalf("a 4th guest event once the host's is gone: %v", err)
	}
}
