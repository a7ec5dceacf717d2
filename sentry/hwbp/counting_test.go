// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import "testing"

// fakeFlusher is a back end that counted pending hits of one slot of an
// image while it was loaded, and delivers them at Flush.
type fakeFlusher struct {
	img     Image
	slot    int
	pending uint64
	flushes int
}

func (f *fakeFlusher) Flush(t *Task) {
	f.flushes++
	f.img.Count(f.slot, f.pending)
	f.pending = 0
}

func TestCountingEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		// act runs with bp enabled, loaded in f.img at slot 0, and 5
		// hits pending; it returns what bp's counter must have got.
		act     func(bp *Breakpoint, f *fakeFlusher) uint64
		flushes int
	}{
		{"Flush delivers the pending hits", func(bp *Breakpoint, f *fakeFlusher) uint64 {
			bp.Flush()
			return 5
		}, 1},
		{"Disable delivers the hits before it", func(bp *Breakpoint, f *fakeFlusher) uint64 {
			bp.Disable()
			return 5
		}, 1},
		{"hits counted after a disable are dropped", func(bp *Breakpoint, f *fakeFlusher) uint64 {
			bp.Disable()
			f.pending = 7
			bp.Flush()
			return 5
		}, 2},
		{"hits counted while disabled are dropped at enable", func(bp *Breakpoint, f *fakeFlusher) uint64 {
			bp.Disable()
			f.pending = 7
			bp.Enable()
			return 5
		}, 2},
		{"Modify delivers the hits before it", func(bp *Breakpoint, f *fakeFlusher) uint64 {
			if err := bp.Modify(watch(testAddr + 8)); err != nil {
				panic(err)
			}
			return 5
		}, 1},
		{"Unregister delivers the hits before it", func(bp *Breakpoint, f *fakeFlusher) uint64 {
			bp.Unregister()
			f.pending = 7
			bp.Flush()
			return 5
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			f := &fakeFlusher{}
			r.SetFlusher(f)
			task := r.NewTask()
			var handled int
			bp, err := r.Register(task, watch(testAddr), func(*Breakpoint, Hit) { handled++ })
			if err != nil {
				t.Fatal(err)
			}
			var counted uint64
			bp.SetCounter(func(n uint64) { counted += n })
			f.img = task.Image()
			f.pending = 5
			want := tc.act(bp, f)
			if counted != want || bp.Hits() != want || r.CountedHits() != want || r.Hits() != want {
				t.Errorf("counted %d, Hits %d, registry's counted %d and hits %d; want all %d", counted, bp.Hits(), r.CountedHits(), r.Hits(), want)
			}
			if handled != 0 {
				t.Errorf("the overflow handler got %d calls for counted hits, want none", handled)
			}
			if f.flushes != tc.flushes {
				t.Errorf("%d flushes, want %d", f.flushes, tc.flushes)
			}
		})
	}
}

func TestCountOnlyReachesCountingEvents(t *testing.T) {
	r := NewRegistry()
	task := r.NewTask()
	sampling := mustRegister(t, r, task, watch(testAddr))
	counting := mustRegister(t, r, task, watch(testAddr+8))
	var counted uint64
	counting.SetCounter(func(n uint64) { counted += n })
	img := task.Image()
	if img.Counting(0) || !img.Counting(1) || img.Counting(2) {
		t.Fatalf("Counting(0..2) = %t %t %t, want false true false", img.Counting(0), img.Counting(1), img.Counting(2))
	}
	img.Count(0, 3)
	img.Count(1, 4)
	img.Count(2, 5)
	if sampling.Hits() != 0 || counting.Hits() != 4 || counted != 4 {
		t.Errorf("hits %d and %d, counted %d; want 0, 4, 4", sampling.Hits(), counting.Hits(), counted)
	}
	// A flush without a back end that counts does nothing.
	counting.Flush()
}
