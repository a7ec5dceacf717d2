// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"fmt"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

const testAddr = 0x601000

func watch(addr uint64) Attr { return Attr{Addr: addr, Len: 8, Type: TypeW} }

func mustRegister(t *testing.T, r *Registry, task *Task, a Attr) *Breakpoint {
	t.Helper()
	bp, err := r.Register(task, a, nil)
	if err != nil {
		t.Fatalf("Register(%v): %v", a, err)
	}
	return bp
}

func mustRegisterOn(t *testing.T, r *Registry, task *Task, cpu int32, a Attr) *Breakpoint {
	t.Helper()
	bp, err := r.RegisterOnCPU(task, cpu, a, nil)
	if err != nil {
		t.Fatalf("RegisterOnCPU(%d, %v): %v", cpu, a, err)
	}
	return bp
}

// TestImageOnCPU checks that a task's image holds its events bound to every
// CPU and those bound to the CPU it runs on, and that moving to another CPU
// changes its generation only while it has events bound to one CPU.
func TestImageOnCPU(t *testing.T) {
	r := NewRegistry()
	task := r.NewTask()
	mustRegister(t, r, task, watch(testAddr))
	gen := task.Generation()
	task.SetCPU(1)
	if task.Generation() != gen {
		t.Error("a CPU change without events bound to a CPU changed the generation")
	}
	for i := 0; i < 3; i++ {
		mustRegisterOn(t, r, task, 0, watch(testAddr+8+8*uint64(i)))
	}
	mustRegisterOn(t, r, task, 1, watch(testAddr+64))
	for _, tc := range []struct {
		cpu   int32
		addrs []uint64
	}{
		{0, []uint64{testAddr, testAddr + 8, testAddr + 16, testAddr + 24}},
		{1, []uint64{testAddr, testAddr + 64}},
		{5, []uint64{testAddr}},
	} {
		gen := task.Generation()
		task.SetCPU(tc.cpu)
		if task.Generation() == gen {
			t.Errorf("moving to CPU %d did not change the generation", tc.cpu)
		}
		img := task.Image()
		var got []uint64
		for slot := 0; slot < Slots; slot++ {
			if img.DR7.Enabled(slot) {
				got = append(got, img.Addr[slot])
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.addrs) {
			t.Errorf("on CPU %d the image arms %#x, want %#x", tc.cpu, got, tc.addrs)
		}
	}
	if n := task.SlotsInUse(); n != 4 {
		t.Errorf("SlotsInUse %d, want 4 (on CPU 0)", n)
	}
}

func TestSlotConstraints(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, r *Registry, a, b *Task) error
		want unix.Errno
	}{
		{"four task-bound events fit", func(t *testing.T, r *Registry, a, b *Task) error {
			for i := 0; i < 3; i++ {
				mustRegister(t, r, a, watch(testAddr+8*uint64(i)))
			}
			_, err := r.Register(a, watch(testAddr+24), nil)
			return err
		}, 0},
		{"a fifth task-bound event is ENOSPC", func(t *testing.T, r *Registry, a, b *Task) error {
			for i := 0; i < 4; i++ {
				mustRegister(t, r, a, watch(testAddr+8*uint64(i)))
			}
			_, err := r.Register(a, watch(testAddr+32), nil)
			return err
		}, unix.ENOSPC},
		{"disabled events hold their slot", func(t *testing.T, r *Registry, a, b *Task) error {
			for i := 0; i < 4; i++ {
				d := watch(testAddr + 8*uint64(i))
				d.Disabled = true
				mustRegister(t, r, a, d)
			}
			_, err := r.Register(a, watch(testAddr+32), nil)
			return err
		}, unix.ENOSPC},
		{"tasks do not share slots", func(t *testing.T, r *Registry, a, b *Task) error {
			for i := 0; i < 4; i++ {
				mustRegister(t, r, a, watch(testAddr+8*uint64(i)))
			}
			_, err := r.Register(b, watch(testAddr), nil)
			return err
		}, 0},
		{"unregister frees the slot", func(t *testing.T, r *Registry, a, b *Task) error {
			var bps []*Breakpoint
			for i := 0; i < 4; i++ {
				bps = append(bps, mustRegister(t, r, a, watch(testAddr+8*uint64(i))))
			}
			bps[1].Unregister()
			_, err := r.Register(a, watch(testAddr+32), nil)
			return err
		}, 0},
		{"type check comes before the slot check", func(t *testing.T, r *Registry, a, b *Task) error {
			for i := 0; i < 4; i++ {
				mustRegister(t, r, a, watch(testAddr+8*uint64(i)))
			}
			_, err := r.Register(a, Attr{Addr: testAddr, Len: 8, Type: TypeEmpty}, nil)
			return err
		}, unix.EINVAL},
		{"slot check comes before the attribute parse", func(t *testing.T, r *Registry, a, b *Task) error {
			for i := 0; i < 4; i++ {
				mustRegister(t, r, a, watch(testAddr+8*uint64(i)))
			}
			_, err := r.Register(a, Attr{Addr: testAddr + 1, Len: 8, Type: TypeW}, nil)
			return err
		}, unix.ENOSPC},
		{"released tasks accept no events", func(t *testing.T, r *Registry, a, b *Task) error {
			a.Release()
			_, err := r.Register(a, watch(testAddr), nil)
			return err
		}, unix.ESRCH},
		{"events bound to other CPUs hold slots there only", func(t *testing.T, r *Registry, a, b *Task) error {
			// Linux 6.18: four events on CPU 0, then one on CPU 1.
			for i := 0; i < 4; i++ {
				mustRegisterOn(t, r, a, 0, watch(testAddr+8*uint64(i)))
			}
			_, err := r.RegisterOnCPU(a, 1, watch(testAddr+32), nil)
			return err
		}, 0},
		{"a fifth event on one CPU is ENOSPC", func(t *testing.T, r *Registry, a, b *Task) error {
			for i := 0; i < 4; i++ {
				mustRegisterOn(t, r, a, 1, watch(testAddr+8*uint64(i)))
			}
			_, err := r.RegisterOnCPU(a, 1, watch(testAddr+32), nil)
			return err
		}, unix.ENOSPC},
		{"an event on every CPU holds a slot on each", func(t *testing.T, r *Registry, a, b *Task) error {
			mustRegister(t, r, a, watch(testAddr))
			for i := 1; i < 4; i++ {
				mustRegisterOn(t, r, a, 2, watch(testAddr+8*uint64(i)))
			}
			_, err := r.RegisterOnCPU(a, 2, watch(testAddr+32), nil)
			return err
		}, unix.ENOSPC},
		{"an event on every CPU needs a slot on the busiest", func(t *testing.T, r *Registry, a, b *Task) error {
			mustRegisterOn(t, r, a, 0, watch(testAddr))
			for i := 1; i < 5; i++ {
				mustRegisterOn(t, r, a, 1, watch(testAddr+8*uint64(i)))
			}
			_, err := r.Register(a, watch(testAddr+40), nil)
			return err
		}, unix.ENOSPC},
		{"tasks of another registry are refused", func(t *testing.T, r *Registry, a, b *Task) error {
			_, err := NewRegistry().Register(a, watch(testAddr), nil)
			return err
		}, unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			if got := errnoOf(t, tc.run(t, r, r.NewTask(), r.NewTask())); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestModifyOfAFlushedBreakpoint checks what a consumer that changes one of
// its breakpoints gets once that breakpoint is gone: ENOENT after its own
// Unregister, ESRCH after its task's exit flushed it (Release), as Register
// answers for an exited task; so that a ptrace write racing with the
// tracee's exit can tell the exit apart from a bug of its own.
func TestModifyOfAFlushedBreakpoint(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flush func(*Task, *Breakpoint)
		want  unix.Errno
	}{
		{"unregistered by its consumer is ENOENT", func(_ *Task, bp *Breakpoint) { bp.Unregister() }, unix.ENOENT},
		{"flushed by its task's exit is ESRCH", func(task *Task, _ *Breakpoint) { task.Release() }, unix.ESRCH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			task := r.NewTask()
			bp := mustRegister(t, r, task, watch(testAddr))
			tc.flush(task, bp)
			if got := errnoOf(t, bp.Modify(watch(testAddr+8))); got != tc.want {
				t.Fatalf("Modify = %v, want %v", got, tc.want)
			}
			if r.Active() || task.HasBreakpoints() {
				t.Errorf("a flushed breakpoint is armed again")
			}
		})
	}
}

func TestModifyIsAllOrNothing(t *testing.T) {
	r := NewRegistry()
	task := r.NewTask()
	bp := mustRegister(t, r, task, watch(testAddr))
	before := task.Image()
	gen := task.Generation()
	for _, tc := range []struct {
		name string
		attr Attr
		want unix.Errno
	}{
		{"misaligned address", Attr{Addr: testAddr + 4, Len: 8, Type: TypeW}, unix.EINVAL},
		{"kernel address", Attr{Addr: 0xffffffff81000000, Len: 8, Type: TypeW}, unix.EINVAL},
		{"empty type", Attr{Addr: testAddr, Len: 8}, unix.EINVAL},
		{"io-like type", Attr{Addr: testAddr, Len: 8, Type: TypeR}, unix.EINVAL},
		{"range length", Attr{Addr: testAddr, Len: 64, Type: TypeW}, unix.EOPNOTSUPP},
		{"disabling with a bad address", Attr{Addr: 0x800000000000, Len: 8, Type: TypeW, Disabled: true}, unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errnoOf(t, bp.Modify(tc.attr)); got != tc.want {
				t.Fatalf("Modify(%v) = %v, want %v", tc.attr, got, tc.want)
			}
			if got := bp.Attr(); got != watch(testAddr) {
				t.Errorf("attributes changed to %v", got)
			}
			if img := task.Image(); img.Addr != before.Addr || img.DR7 != before.DR7 || task.Generation() != gen {
				t.Errorf("image changed: %+v, want %+v", img, before)
			}
			if !task.HasBreakpoints() || !r.Active() {
				t.Errorf("breakpoint no longer armed")
			}
		})
	}
	if err := bp.Modify(Attr{Addr: testAddr + 0x10, Len: 1, Type: TypeW}); err != nil {
		t.Fatalf("valid Modify: %v", err)
	}
	if img := task.Image(); img.Addr[0] != testAddr+0x10 || img.DR7 != EncodeSlot(0, RWWrite, Len1)|DR7GlobalSlowdown {
		t.Errorf("image after Modify: %+v", img)
	}
	bp.Unregister()
	if got := errnoOf(t, bp.Modify(watch(testAddr))); got != unix.ENOENT {
		t.Errorf("Modify after Unregister = %v, want ENOENT", got)
	}
}

// fireAll fires the slots of img whose B bits dr6 sets and returns how many
// events were notified.
func fireAll(img *Image, dr6 DR6) int {
	n := 0
	for slot := 0; slot < Slots; slot++ {
		if dr6.Hit(slot) && img.fire(slot, 0) {
			n++
		}
	}
	return n
}

func TestImageAndFire(t *testing.T) {
	r := NewRegistry()
	a, b := r.NewTask(), r.NewTask()
	if a.HasBreakpoints() || r.Active() || !a.Image().Empty() {
		t.Fatal("new registry has breakpoints")
	}
	var mu sync.Mutex
	var got []Hit
	handler := func(bp *Breakpoint, h Hit) {
		mu.Lock()
		got = append(got, h)
		mu.Unlock()
	}
	off, err := r.Register(a, Attr{Addr: testAddr, Len: 4, Type: TypeRW, Disabled: true}, handler)
	if err != nil {
		t.Fatal(err)
	}
	x, err := r.Register(a, Attr{Addr: testAddr + 0x40, Len: 8, Type: TypeX}, handler)
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.Register(a, Attr{Addr: testAddr + 0x80, Len: 2, Type: TypeW}, handler)
	if err != nil {
		t.Fatal(err)
	}
	img := a.Image()
	wantDR7 := EncodeSlot(0, RWExecute, Len1) | EncodeSlot(1, RWWrite, Len2) | DR7GlobalSlowdown
	if img.DR7 != wantDR7 || img.Addr[0] != testAddr+0x40 || img.Addr[1] != testAddr+0x80 {
		t.Fatalf("image of a: %+v, want DR7 %#x", img, uint64(wantDR7))
	}
	if img.Breakpoint(0) != x || img.Breakpoint(1) != w || img.Breakpoint(2) != nil || img.Breakpoint(-1) != nil {
		t.Fatalf("slots hold the wrong events")
	}
	if bimg := b.Image(); !bimg.Empty() || b.HasBreakpoints() {
		t.Fatalf("a's events show in b: %+v", bimg)
	}
	if n := fireAll(&img, DR6Reset|DR6Trap0<<1|DR6BS); n != 1 || w.Hits() != 1 || x.Hits() != 0 {
		t.Fatalf("fire notified %d, hits w=%d x=%d", n, w.Hits(), x.Hits())
	}
	if r.Hits() != 1 || r.Enabled() != 2 {
		t.Fatalf("registry counts %d hits, %d enabled events; want 1, 2", r.Hits(), r.Enabled())
	}
	if len(got) != 1 || got[0] != (Hit{Slot: 1}) {
		t.Fatalf("handler saw %+v", got)
	}
	gen := a.Generation()
	off.Enable()
	if a.Generation() == gen {
		t.Errorf("enabling did not change the generation")
	}
	x.Disable()
	if n := fireAll(&img, DR6Trap0); n != 0 {
		t.Errorf("stale image fired a disabled event")
	}
	w.Unregister()
	if n := fireAll(&img, DR6Trap0<<1); n != 0 {
		t.Errorf("stale image fired an unregistered event")
	}
	if img := a.Image(); img.DR7 != EncodeSlot(0, RWAccess, Len4)|DR7GlobalSlowdown || img.Addr[0] != testAddr {
		t.Errorf("image after changes: %+v", img)
	}
	a.Release()
	if r.Active() || a.HasBreakpoints() || r.Tasks() != 1 {
		t.Errorf("state left after Release: active %v, tasks %d", r.Active(), r.Tasks())
	}
}

func TestConcurrentUse(t *testing.T) {
	r := NewRegistry()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			task := r.NewTask()
			for i := 0; i < 500; i++ {
				bp, err := r.Register(task, watch(testAddr+8*uint64(i%4)), func(*Breakpoint, Hit) {})
				if err != nil {
					t.Errorf("Register: %v", err)
					return
				}
				img := task.Image()
				fireAll(&img, DR6Trap0)
				bp.Disable()
				_ = task.HasBreakpoints()
				bp.Unregister()
			}
			task.Release()
		}(g)
	}
	wg.Wait()
	if r.Active() || r.Tasks() != 0 {
		t.Errorf("state left: active %v, tasks %d", r.Active(), r.Tasks())
	}
}

// TestRetain checks that a back end's retain keeps the hot path's Active
// true without giving any task a breakpoint, and that it balances.
func TestRetain(t *testing.T) {
	r := NewRegistry()
	task := r.NewTask()
	r.Retain()
	if !r.Active() {
		t.Errorf("Active() = false while retained")
	}
	if task.HasBreakpoints() {
		t.Errorf("HasBreakpoints() = true for a task without events while retained")
	}
	bp, err := r.Register(task, Attr{Addr: 0x1000, Len: 4, Type: TypeW}, nil)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	bp.Unregister()
	if !r.Active() {
		t.Errorf("Active() = false after the last event went while retained")
	}
	r.Unretain()
	if r.Active() {
		t.Errorf("Active() = true after Unretain")
	}
	defer func() {
		if recover() == nil {
			t.Errorf("Unretain without Retain did not panic")
		}
	}()
	r.Unretain()
}

// TestImageBelow checks that Image.Below keeps exactly the slots whose whole
// range lies below the limit.
func TestImageBelow(t *testing.T) {
	const limit = 0x7f0000000000
	tests := []struct {
		name string
		addr uint64
		rw   uint8
		ln   uint8
		keep bool
	}{
		{name: "data range ending at the limit is kept", addr: limit - 8, rw: RWWrite, ln: Len8, keep: true},
		{name: "data range crossing the limit is dropped", addr: limit - 4, rw: RWAccess, ln: Len8, keep: false},
		{name: "data at the limit is dropped", addr: limit, rw: RWWrite, ln: Len1, keep: false},
		{name: "execution just below the limit is kept", addr: limit - 1, rw: RWExecute, ln: Len1, keep: true},
		{name: "execution at the limit is dropped", addr: limit, rw: RWExecute, ln: Len1, keep: false},
		{name: "address far above the limit is dropped", addr: ^uint64(0) &^ 7, rw: RWWrite, ln: Len8, keep: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var img Image
			img.Addr[1] = tc.addr
			img.DR7 = EncodeSlot(1, tc.rw, tc.ln) | DR7GlobalSlowdown
			// Slot 3 is always kept.
			img.Addr[3] = 0x1000
			img.DR7 |= EncodeSlot(3, RWWrite, Len4)
			got := img.Below(limit)
			if got.DR7.Enabled(1) != tc.keep {
				t.Errorf("slot 1 enabled = %t, want %t (DR7 %#x)", got.DR7.Enabled(1), tc.keep, uint64(got.DR7))
			}
			if !got.DR7.Enabled(3) || got.Addr[3] != 0x1000 {
				t.Errorf("slot 3 lost: DR7 %#x addr %#x", uint64(got.DR7), got.Addr[3])
			}
			if !tc.keep && (got.DR7&SlotMask(1) != 0 || got.Addr[1] != 0) {
				t.Errorf("slot 1 not cleared: DR7 %#x addr %#x", uint64(got.DR7), got.Addr[1])
			}
		})
	}
	t.Run("an image with nothing left is empty", func(t *testing.T) {
		var img Image
		img.Addr[0] = limit
		img.DR7 = EncodeSlot(0, RWWrite, Len1) | DR7GlobalSlowdown
		if got := img.Below(limit); !got.Empty() {
			t.Errorf("Below = DR7 %#x, want empty", uint64(got.DR7))
		}
	})
}

func TestMaxSlotsInUse(t *testing.T) {
	r := NewRegistry()
	a, b := r.NewTask(), r.NewTask()
	if got := r.MaxSlotsInUse(); got != 0 {
		t.Fatalf("no events: MaxSlotsInUse = %d, want 0", got)
	}
	var bps []*Breakpoint
	for i := 0; i < Slots; i++ {
		d := watch(testAddr + 8*uint64(i))
		d.Disabled = i%2 == 0 // disabled events hold slots too
		bps = append(bps, mustRegister(t, r, a, d))
	}
	mustRegister(t, r, b, watch(testAddr))
	if got := r.MaxSlotsInUse(); got != Slots {
		t.Fatalf("a task with %d events: MaxSlotsInUse = %d", Slots, got)
	}
	bps[1].Unregister()
	bps[1].Unregister() // idempotent: counted once
	if got := r.MaxSlotsInUse(); got != Slots-1 {
		t.Fatalf("after one unregister: MaxSlotsInUse = %d, want %d", got, Slots-1)
	}
	a.Release()
	if got := r.MaxSlotsInUse(); got != 1 {
		t.Fatalf("after the busiest task's release: MaxSlotsInUse = %d, want 1", got)
	}
	b.Release()
	if got := r.MaxSlotsInUse(); got != 0 {
		t.Fatalf("after every release: MaxSlotsInUse = %d, want 0", got)
	}
}
