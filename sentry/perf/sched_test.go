// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import "testing"

// TestSchedOutStopsTimes checks that an event's times stand still while its
// thread is scheduled out, and that an event enabled meanwhile starts
// counting time only when the thread is back.
func TestSchedOutStopsTimes(t *testing.T) {
	f := newFixture()
	rf := uint64(FormatTotalTimeEnabled | FormatTotalTimeRunning)
	ev := f.open(t, 1, func(p []byte) { set64(p, offReadFormat, rf) })
	late := f.open(t, 1, func(p []byte) {
		set64(p, offReadFormat, rf)
		set64(p, offBPAddr, testAddr+8)
		setFlags(p, FlagDisabled)
	})
	other := f.open(t, 2, func(p []byte) { set64(p, offReadFormat, rf) })
	read := func(ev *Event[thread]) []uint64 {
		b, err := ev.Read(24)
		if err != nil {
			t.Fatal(err)
		}
		return u64s(b)[1:]
	}
	f.clock = 10
	f.events.SchedOut(1, f.clock)
	f.clock = 40
	late.Enable(false)
	if got, want := read(ev), []uint64{10, 10}; !equal(got, want) {
		t.Errorf("while scheduled out: times %v, want %v", got, want)
	}
	f.clock = 50
	f.events.SchedIn(1, 0, f.clock)
	f.clock = 55
	if got, want := read(ev), []uint64{15, 15}; !equal(got, want) {
		t.Errorf("back on a CPU: times %v, want %v", got, want)
	}
	if got, want := read(late), []uint64{5, 5}; !equal(got, want) {
		t.Errorf("enabled while scheduled out: times %v, want %v", got, want)
	}
	if got, want := read(other), []uint64{55, 55}; !equal(got, want) {
		t.Errorf("another thread's event: times %v, want %v", got, want)
	}
	if !f.events.Watching() {
		t.Error("Watching is false with three events open")
	}
	for _, e := range []*Event[thread]{ev, late, other} {
		e.Close()
	}
	if f.events.Watching() {
		t.Error("Watching is true after every event closed")
	}
}
