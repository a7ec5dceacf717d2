// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"testing"

	"gvisor.dev/gvisor/pkg/sentry/kernel"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// countingSpace returns a back end on h and a space whose one member has a
// write watchpoint at 0x10000 that counts into *counted if counting is set,
// and a second one at 0x10008 with a handler only if sampling is set.
func countingSpace(t *testing.T, h *fakeHost, counting, sampling bool) (*Backend, *space, *hwbp.Task, *uint64) {
	t.Helper()
	r := hwbp.NewRegistry()
	tasks := hwbp.NewTasks[*kernel.Task](r, nil)
	b := New(tasks, nil)
	b.host = h
	r.SetFlusher(b)
	k := &kernel.Task{}
	task, err := tasks.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	counted := new(uint64)
	bp, err := r.Register(task, hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if counting {
		bp.SetCounter(func(n uint64) { *counted += n })
	}
	if sampling {
		if _, err := r.Register(task, hwbp.Attr{Addr: 0x10008, Len: 8, Type: hwbp.TypeW}, func(*hwbp.Breakpoint, hwbp.Hit) {}); err != nil {
			t.Fatal(err)
		}
	}
	sp := b.newSpace()
	sp.mu.Lock()
	b.setMember(sp, k, task)
	sp.running.Add(1) // the member's arm
	sp.mu.Unlock()
	return b, sp, task, counted
}

// signals reports whether the events at pos of every thread and of the
// nursery signal each hit (sigtrap, sample_period 1), or all count.
func signals(t *testing.T, h *fakeHost, sp *space, pos int) bool {
	t.Helper()
	var sig, cnt int
	sp.forEachFD(pos, func(fd int, _ bool) { // +checklocksignore
		a := h.attrs[fd]
		if a.Bits&perfBitSigtrap != 0 && a.Sample == 1 {
			sig++
		} else if a.Bits&perfBitSigtrap == 0 && a.Sample == 0 {
			cnt++
		}
	})
	if sig != 0 && cnt != 0 || sig+cnt == 0 {
		t.Fatalf("position %d: %d events signal, %d count", pos, sig, cnt)
	}
	return sig != 0
}

// TestCountingPositions checks which positions count on the host, and that
// what they count reaches the member's counting event exactly once.
func TestCountingPositions(t *testing.T) {
	for _, tc := range []struct {
		name               string
		counting, sampling bool
		solo               bool
		wantCounting       bool
	}{
		{"a counting event of the only user counts on the host", true, false, true, true},
		{"an event that samples signals each hit", false, false, true, false},
		{"a counting event of a task that is not alone signals", true, false, false, false},
		{"a counting event beside a sampling one counts", true, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(0, 0)
			b, sp, task, counted := countingSpace(t, h, tc.counting, tc.sampling)
			sp.mu.Lock()
			b.apply(sp, threads(10, 11, 12), tc.solo)
			pos0 := signals(t, h, sp, 0)
			if tc.sampling && !signals(t, h, sp, 1) {
				t.Error("the sampling event's position counts")
			}
			sp.mu.Unlock()
			if pos0 == tc.wantCounting {
				t.Fatalf("position 0 signals: %v, want %v", pos0, !tc.wantCounting)
			}
			if !tc.wantCounting {
				return
			}
			// The host counted 3 hits on one thread and 4 on
			// another: a flush delivers them, a second one nothing.
			sp.mu.Lock()
			h.counts[sp.events.own[11][0]] = 3
			h.counts[sp.events.nursery[0]] = 4
			sp.mu.Unlock()
			b.Flush(task)
			b.Flush(task)
			if *counted != 7 {
				t.Fatalf("counted %d after a flush, want 7", *counted)
			}
			// The task stops being alone: what was counted since is
			// delivered, and the position signals from then on.
			sp.mu.Lock()
			h.counts[sp.events.own[12][0]] = 5
			b.apply(sp, threads(10, 11, 12), false)
			if signals(t, h, sp, 0) != true {
				t.Error("position 0 still counts after the task stopped being alone")
			}
			sp.mu.Unlock()
			b.Flush(task)
			if *counted != 12 {
				t.Errorf("counted %d after the switch to signals, want 12", *counted)
			}
			// Back alone, it counts again from zero.
			sp.mu.Lock()
			b.apply(sp, threads(10, 11, 12), true)
			if signals(t, h, sp, 0) {
				t.Error("position 0 signals once the task is alone again")
			}
			h.counts[sp.events.own[11][0]] = 2
			sp.mu.Unlock()
			b.Flush(task)
			if *counted != 14 {
				t.Errorf("counted %d, want 14", *counted)
			}
			// The last member leaves: counts are settled, every fd
			// is closed and nothing is left to flush.
			sp.mu.Lock()
			h.counts[sp.events.own[11][0]] = 3
			sp.running.Add(-1)
			var members []*kernel.Task
			for k := range sp.members {
				members = append(members, k)
			}
			sp.mu.Unlock()
			for _, k := range members {
				b.leave(k, sp)
			}
			if *counted != 15 || len(h.fds) != 0 {
				t.Errorf("after the member left: counted %d, %d fds open; want 15, 0", *counted, len(h.fds))
			}
			if _, ok := b.counters.Load(task); ok {
				t.Error("the task is still counted")
			}
		})
	}
}
