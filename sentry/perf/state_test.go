// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"slices"
	"testing"
)

// restored returns a fresh sandbox (new registry and threads) whose clock
// goes on from now, as gVisor's does, with the events of states restored in
// it, groups linked as a restore does.
func restored(t *testing.T, states []EventState[thread], now uint64) (*fixture, []*Event[thread]) {
	t.Helper()
	f := newFixture()
	clock := func() uint64 { return f.clock }
	byID := map[uint64]*Event[thread]{}
	var evs []*Event[thread]
	for _, s := range states {
		f.clock = 1 << 40 // Restore must not read the clock
		ev, err := f.events.Restore(s, clock)
		f.clock = now
		if err != nil {
			t.Errorf("Restore(event %d): %v", s.ID, err)
		}
		byID[s.ID] = ev
		evs = append(evs, ev)
	}
	for i, s := range states {
		var members []*Event[thread]
		for _, id := range s.Members {
			members = append(members, byID[id])
		}
		f.events.RestoreGroup(evs[i], members)
	}
	return f, evs
}

func read(t *testing.T, ev *Event[thread]) []uint64 {
	t.Helper()
	b, err := ev.Read(1000)
	if err != nil {
		t.Fatal(err)
	}
	return u64s(b)
}

func TestSaveRestore(t *testing.T) {
	rf := uint64(FormatTotalTimeEnabled | FormatTotalTimeRunning | FormatID)
	for _, tc := range []struct {
		name string
		// setup opens events in f, some of them being the returned ones,
		// whose reads are compared before and after the restore.
		setup func(t *testing.T, f *fixture) []*Event[thread]
		// after runs on the restored sandbox with the restored events.
		after func(t *testing.T, f *fixture, evs []*Event[thread])
		// edit, if set, changes the saved states before the restore.
		edit func(states []EventState[thread])
	}{
		{"an enabled counting event keeps id, count and times, and counts on", func(t *testing.T, f *fixture) []*Event[thread] {
			ev := f.open(t, 1, func(p []byte) { set64(p, offReadFormat, rf) })
			f.open(t, 1, func(p []byte) { set64(p, offBPAddr, testAddr+8) }).Close()
			f.clock = 30
			f.hit(1)
			f.hit(1)
			return []*Event[thread]{ev}
		}, func(t *testing.T, f *fixture, evs []*Event[thread]) {
			f.clock += 5
			f.hit(1)
			if got, want := read(t, evs[0]), []uint64{3, 35, 35, evs[0].ID()}; !equal(got, want) {
				t.Errorf("after a hit and 5 ns: Read = %v, want %v", got, want)
			}
		}, nil},
		{"a disabled event stays disabled and its time stands", func(t *testing.T, f *fixture) []*Event[thread] {
			ev := f.open(t, 1, func(p []byte) { set64(p, offReadFormat, rf) })
			f.clock = 10
			f.hit(1)
			ev.Disable(false)
			f.clock = 20
			return []*Event[thread]{ev}
		}, func(t *testing.T, f *fixture, evs []*Event[thread]) {
			f.clock += 10
			f.hit(1)
			if got, want := read(t, evs[0]), []uint64{1, 10, 10, evs[0].ID()}; !equal(got, want) {
				t.Errorf("Read = %v, want %v", got, want)
			}
			if n := f.tasks.Lookup(1).SlotsInUse(); n != 1 {
				t.Errorf("the disabled event holds %d slots, want 1", n)
			}
			evs[0].Enable(false)
			f.hit(1)
			if got := read(t, evs[0])[0]; got != 2 {
				t.Errorf("enabled after the restore: count %d, want 2", got)
			}
		}, nil},
		{"sampling keeps period left, refresh limit and sig_data", func(t *testing.T, f *fixture) []*Event[thread] {
			ev := f.open(t, 1, func(p []byte) {
				setFlags(p, FlagDisabled|FlagSigtrap|FlagRemoveOnExec)
				set64(p, offSamplePeriod, 3)
				set64(p, offSigData, 0xfeed)
			})
			checkErrno(t, ev.Refresh(2), 0)
			for i := 0; i < 4; i++ { // one overflow, one hit into the next period
				f.hit(1)
			}
			return []*Event[thread]{ev}
		}, func(t *testing.T, f *fixture, evs []*Event[thread]) {
			f.hit(1)
			if len(f.signals) != 0 {
				t.Errorf("the 5th hit of period 3 overflowed: %v", f.signals)
			}
			f.hit(1)
			want := Sigtrap{Addr: testAddr, Data: 0xfeed, Type: TypeBreakpoint}
			if len(f.signals) != 1 || f.signals[0] != want {
				t.Errorf("the 6th hit sent %v, want one %v", f.signals, want)
			}
			if n := f.tasks.Registry().Enabled(); n != 0 {
				t.Errorf("the refresh limit was used up, yet %d events are enabled", n)
			}
		}, nil},
		{"a group reads in its order, and group ioctls reach its members", func(t *testing.T, f *fixture) []*Event[thread] {
			g := uint64(FormatGroup | FormatID)
			leader := f.open(t, 1, func(p []byte) { set64(p, offReadFormat, g) })
			var members []*Event[thread]
			for i := uint64(1); i <= 2; i++ {
				m, err := f.events.Open(attrOf(t, func(p []byte) { set64(p, offBPAddr, testAddr+8*i) }), f.target(1), Group[thread]{Leader: leader})
				if err != nil {
					t.Fatal(err)
				}
				members = append(members, m)
			}
			f.hit(1)
			// Restored in another order than they joined.
			return []*Event[thread]{members[1], leader, members[0]}
		}, func(t *testing.T, f *fixture, evs []*Event[thread]) {
			leader := evs[1]
			if got, want := read(t, leader), []uint64{3, 1, leader.ID(), 1, evs[2].ID(), 1, evs[0].ID()}; !equal(got, want) {
				t.Errorf("group Read = %v, want %v", got, want)
			}
			leader.Disable(true)
			if n := f.tasks.Registry().Enabled(); n != 0 {
				t.Errorf("disable of the group left %d events enabled", n)
			}
		}, nil},
		{"inherited copies on live threads and exited ones' sums", func(t *testing.T, f *fixture) []*Event[thread] {
			ev := f.open(t, 1, func(p []byte) { setFlags(p, FlagInherit); set64(p, offReadFormat, rf) })
			f.clone(1, 2)
			f.clone(1, 20)
			f.clock = 10
			f.hit(1)
			f.hit(2)
			f.hit(20)
			f.events.Exit(20)
			f.tasks.Exit(20)
			return []*Event[thread]{ev}
		}, func(t *testing.T, f *fixture, evs []*Event[thread]) {
			f.clock += 10
			f.hit(2)
			if got, want := read(t, evs[0]), []uint64{4, 50, 50, evs[0].ID()}; !equal(got, want) {
				t.Errorf("Read = %v, want %v (3 events for 10 ns, 2 live ones for 10 more)", got, want)
			}
			evs[0].Disable(false)
			if n := f.tasks.Registry().Enabled(); n != 0 {
				t.Errorf("disable reaches the restored copy: %d enabled, want 0", n)
			}
			evs[0].Close()
			if n := f.tasks.Lookup(2).SlotsInUse(); n != 0 {
				t.Errorf("close frees the restored copy: thread 2 has %d events", n)
			}
		}, nil},
		{"an event whose thread exited keeps its count and needs no thread", func(t *testing.T, f *fixture) []*Event[thread] {
			ev := f.open(t, 4, func(p []byte) { set64(p, offReadFormat, rf) })
			f.clock = 7
			f.hit(4)
			f.events.Exit(4)
			f.tasks.Exit(4)
			return []*Event[thread]{ev}
		}, func(t *testing.T, f *fixture, evs []*Event[thread]) {
			if got, want := read(t, evs[0]), []uint64{1, 7, 7, evs[0].ID()}; !equal(got, want) {
				t.Errorf("Read = %v, want %v", got, want)
			}
			if n := f.tasks.Len(); n != 0 {
				t.Errorf("%d threads got state for an event that watches none", n)
			}
		}, nil},
		{"an event that an exec removed holds its slot until it is closed", func(t *testing.T, f *fixture) []*Event[thread] {
			ev := f.open(t, 1, func(p []byte) { setFlags(p, FlagRemoveOnExec); set64(p, offReadFormat, rf) })
			f.tasks.Exec(1)
			return []*Event[thread]{ev}
		}, func(t *testing.T, f *fixture, evs []*Event[thread]) {
			if n, e := f.tasks.Lookup(1).SlotsInUse(), f.tasks.Registry().Enabled(); n != 1 || e != 0 {
				t.Errorf("thread 1 has %d events, %d enabled; want the removed one holding its slot, disabled", n, e)
			}
			evs[0].Close()
			if n := f.tasks.Lookup(1).SlotsInUse(); n != 0 {
				t.Errorf("after the close thread 1 has %d events", n)
			}
		}, nil},
		{"an overflow that no O_ASYNC notification reported yet is reported at the exit", func(t *testing.T, f *fixture) []*Event[thread] {
			ev := f.open(t, 1, func(p []byte) { set64(p, offSamplePeriod, 2); set64(p, offReadFormat, rf) })
			f.hit(1)
			f.hit(1)
			return []*Event[thread]{ev}
		}, func(t *testing.T, f *fixture, evs []*Event[thread]) {
			var got []int
			evs[0].SetAsync(func(reason int) { got = append(got, reason) })
			f.events.Exit(1)
			if want := []int{PollIn}; !slices.Equal(got, want) {
				t.Errorf("notifications at the exit %v, want %v", got, want)
			}
		}, nil},
		{"a copy on a thread that is exiting at the restore leaves its count", func(t *testing.T, f *fixture) []*Event[thread] {
			ev := f.open(t, 1, func(p []byte) { setFlags(p, FlagInherit); set64(p, offReadFormat, rf) })
			f.clone(1, 5)
			f.clock = 5
			f.hit(5)
			return []*Event[thread]{ev}
		}, func(t *testing.T, f *fixture, evs []*Event[thread]) {
			if got, want := read(t, evs[0]), []uint64{1, 10, 10, evs[0].ID()}; !equal(got, want) {
				t.Errorf("Read = %v, want %v", got, want)
			}
			if f.tasks.Lookup(3) != nil {
				t.Errorf("the exiting thread got state")
			}
		}, func(states []EventState[thread]) {
			// Thread 3 has begun to exit in the restored sandbox.
			states[0].Children[0].Task = 3
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			evs := tc.setup(t, f)
			var states []EventState[thread]
			var before [][]uint64
			for _, ev := range evs {
				states = append(states, ev.Save())
				before = append(before, read(t, ev))
			}
			if tc.edit != nil {
				tc.edit(states)
			}
			rf, revs := restored(t, states, f.clock)
			for i, ev := range revs {
				if ev.ID() != evs[i].ID() {
					t.Errorf("event %d restored with id %d", evs[i].ID(), ev.ID())
				}
				if got := read(t, ev); !equal(got, before[i]) {
					t.Errorf("event %d reads %v after the restore, %v before", ev.ID(), got, before[i])
				}
			}
			tc.after(t, rf, revs)
			// A new event gets an id that no event had before the save,
			// as if f had opened it.
			n := rf.open(t, 1, func(p []byte) { set64(p, offBPAddr, testAddr+64) })
			if want := f.events.lastID.Load() + 1; n.ID() != want {
				t.Errorf("an event opened after the restore got id %d, want %d", n.ID(), want)
			}
		})
	}
}
