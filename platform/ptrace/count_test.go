// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package ptrace

import (
	"testing"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	gvptrace "gvisor.dev/gvisor/pkg/sentry/platform/ptrace"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// fakePerf is a host whose perf_event_open fails with refuse while it is
// set, and whose events' counts the test sets.
type fakePerf struct {
	refuse unix.Errno
	next   int
	open_  map[int]int32 // fd: thread
	counts map[int]uint64
}

func (f *fakePerf) open(a *unix.PerfEventAttr, tid int32) (int, error) {
	if f.refuse != 0 {
		return -1, f.refuse
	}
	if a.Sample != 0 || a.Bits&unix.PerfBitDisabled == 0 {
		panic("a counting event must not sample and must start disabled")
	}
	f.next++
	f.open_[f.next] = tid
	return f.next, nil
}
func (f *fakePerf) enable(fd int, on bool) error { return nil }
func (f *fakePerf) count(fd int) (uint64, error) { return f.counts[fd], nil }
func (f *fakePerf) close(fd int)                 { delete(f.open_, fd) }

// TestCountingSlots checks that a task's counting events are given host
// events that count instead of debug registers, that their counts reach
// the events once (Flush, and when the stub thread is armed for another
// task), and that a slot traps where the host has no room for an event or
// the task's virtual DR6 is not clean.
func TestCountingSlots(t *testing.T) {
	for _, tc := range []struct {
		name     string
		refuse   unix.Errno
		dirtyDR6 bool
		// wantCounted is whether slot 0 counts on the host.
		wantCounted bool
	}{
		{"a counting event counts on the host", 0, false, true},
		{"without a free host slot it traps", unix.ENOSPC, false, false},
		{"with a dirty virtual DR6 it traps", 0, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := hwbp.NewRegistry()
			tasks := hwbp.NewTasks[*kernel.Task](r, nil)
			b := New(tasks)
			regs := &fakeRegs{}
			perf := &fakePerf{refuse: tc.refuse, open_: map[int]int32{}, counts: map[int]uint64{}}
			b.host, b.perf = regs, perf
			r.SetFlusher(b)
			task, _ := tasks.Get(&kernel.Task{})
			var counted uint64
			bp, err := r.Register(task, hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW}, nil)
			if err != nil {
				t.Fatal(err)
			}
			bp.SetCounter(func(n uint64) { counted += n })
			if _, err := r.Register(task, hwbp.Attr{Addr: 0x10008, Len: 8, Type: hwbp.TypeW}, nil); err != nil {
				t.Fatal(err)
			}
			if tc.dirtyDR6 {
				task.SetVirtualDR6(hwbp.DR6Reset | hwbp.DR6Trap0)
			}
			stub := gvptrace.StubThread{TID: 42}
			st := b.arm(stub, task)
			dr7 := hwbp.DR7(regs.regs[7])
			if dr7.Enabled(0) == tc.wantCounted || !dr7.Enabled(1) {
				t.Fatalf("DR7 %#x: slot 0 armed %v, slot 1 armed %v; want slot 0 armed %v, slot 1 armed", uint64(dr7), dr7.Enabled(0), dr7.Enabled(1), !tc.wantCounted)
			}
			if got := len(perf.open_) == 1; got != tc.wantCounted {
				t.Fatalf("%d host events open, want counting %v", len(perf.open_), tc.wantCounted)
			}
			if !tc.wantCounted {
				return
			}
			for fd, tid := range perf.open_ {
				if tid != 42 {
					t.Errorf("event on thread %d, want the stub thread 42", tid)
				}
				perf.counts[fd] = 5
			}
			// An unchanged Switch reads nothing; a flush delivers.
			if b.arm(stub, task) != st {
				t.Error("an unchanged image was armed again")
			}
			b.Flush(task)
			b.Flush(task)
			if counted != 5 {
				t.Fatalf("counted %d after a flush, want 5", counted)
			}
			for fd := range perf.open_ {
				perf.counts[fd] = 7
			}
			// Another task takes the stub thread: the counts so far
			// are delivered and the event closed.
			b.arm(stub, nil)
			if counted != 7 || len(perf.open_) != 0 || b.counterFDs.Load() != 0 {
				t.Errorf("after another task: counted %d, %d events open (%d counted); want 7, 0, 0", counted, len(perf.open_), b.counterFDs.Load())
			}
			b.Flush(task)
			if counted != 7 {
				t.Errorf("counted %d after the stub thread went to another task, want 7", counted)
			}
		})
	}
}
