// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package watch

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

const addr = 0x601000

var attr = hwbp.Attr{Addr: addr, Len: 8, Type: hwbp.TypeW}

// sandbox is a fake sandbox: threads are ints, thread k of process k/100.
type sandbox struct {
	tasks   *hwbp.Tasks[int]
	watches *Watches[int]
}

func newSandbox(lease time.Duration) *sandbox {
	ts := hwbp.NewTasks[int](hwbp.NewRegistry(), nil)
	describe := func(k int, a, n, ip uint64) Hit {
		return Hit{PID: int32(k / 100), TID: int32(k), Comm: "prog", Addr: a, Len: n, Value: []byte{byte(k)}, IP: ip}
	}
	return &sandbox{tasks: ts, watches: New(ts, describe, nil, lease)}
}

func threads(ks ...int) func() []int { return func() []int { return ks } }

func name(k int) string { return fmt.Sprint(k) }

// hit makes thread k take a debug exception on the slot that holds the
// watch, as a back end would, and returns what the guest sees.
func (s *sandbox) hit(t *testing.T, k int, ip uint64) hwbp.Outcome {
	t.Helper()
	task := s.tasks.Lookup(k)
	if task == nil {
		t.Fatalf("thread %d has no Task", k)
	}
	img := task.Image()
	for slot := 0; slot < hwbp.Slots; slot++ {
		if bp := img.Breakpoint(slot); bp != nil && bp.Host() {
			return s.tasks.Trap(k, &img, hwbp.DR6Reset|hwbp.DR6(1)<<slot, ip)
		}
	}
	t.Fatalf("thread %d holds no host event", k)
	return hwbp.Outcome{}
}

func TestHitsAreQueuedAndInvisible(t *testing.T) {
	s := newSandbox(time.Minute)
	w, err := s.watches.Start(threads(100, 101), name, attr, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w.Threads() != 2 {
		t.Fatalf("watching %d threads, want 2", w.Threads())
	}
	s.tasks.Lookup(101).SetVirtualDR6(hwbp.DR6Reset | 2)
	for i, k := range []int{100, 101, 100} {
		if out := s.hit(t, k, uint64(0x401000+i)); out.Deliver {
			t.Fatalf("hit %d: the guest gets %+v", i, out)
		}
	}
	if got := s.tasks.Lookup(101).VirtualDR6(); got != hwbp.DR6Reset|2 {
		t.Errorf("a watch hit changed the guest's DR6 to %#x", uint64(got))
	}
	res := w.Read(time.Second)
	if len(res.Hits) != 3 || res.Ended != "" || res.Lost != 0 {
		t.Fatalf("Read = %+v, want 3 hits", res)
	}
	for i, h := range res.Hits {
		if want := []int32{100, 101, 100}[i]; h.TID != want || h.PID != 1 || h.IP != uint64(0x401000+i) || h.Addr != addr || h.Len != 8 || h.Time == 0 {
			t.Errorf("hit %d = %+v, want tid %d", i, h, want)
		}
	}
	if !s.watches.Stop(w.ID(), "stopped") {
		t.Fatal("Stop found no watch")
	}
	for _, k := range []int{100, 101} {
		if n := s.tasks.Lookup(k).SlotsInUse(); n != 0 {
			t.Errorf("thread %d holds %d slots after Stop", k, n)
		}
	}
	if s.watches.Len() != 0 || s.tasks.Registry().Enabled() != 0 {
		t.Errorf("after Stop: %d watches, %d enabled events", s.watches.Len(), s.tasks.Registry().Enabled())
	}
}

func TestNoFreeSlot(t *testing.T) {
	s := newSandbox(time.Minute)
	r := s.tasks.Registry()
	busy, _ := s.tasks.Get(101)
	for i := 0; i < hwbp.Slots; i++ {
		if _, err := r.Register(busy, hwbp.Attr{Addr: addr + 8*uint64(i), Len: 8, Type: hwbp.TypeW}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.watches.Start(threads(100, 101), name, attr, 0, nil)
	if !errors.Is(err, ErrNoSlot) || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Start on a thread with 4 guest events: %v, want ErrNoSlot", err)
	}
	t.Log(err)
	if task := s.tasks.Lookup(100); task != nil && task.SlotsInUse() != 0 {
		t.Errorf("a failed Start left %d slots held in thread 100", task.SlotsInUse())
	}
	if s.watches.Len() != 0 || r.Enabled() != hwbp.Slots {
		t.Errorf("a failed Start left %d watches, %d enabled events", s.watches.Len(), r.Enabled())
	}
}

func TestGuestGetsENOSPCBesideAWatch(t *testing.T) {
	s := newSandbox(time.Minute)
	r := s.tasks.Registry()
	w, err := s.watches.Start(threads(100), name, attr, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	task := s.tasks.Lookup(100)
	var guest []*hwbp.Breakpoint
	for i := 0; i < hwbp.Slots; i++ {
		bp, err := r.Register(task, hwbp.Attr{Addr: addr + 8*uint64(i+1), Len: 8, Type: hwbp.TypeW}, nil)
		if i == hwbp.Slots-1 {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("the guest's 4th event beside a watch: %v, want ENOSPC", err)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		guest = append(guest, bp)
	}
	s.watches.Stop(w.ID(), "stopped")
	if _, err := r.Register(task, hwbp.Attr{Addr: addr + 0x100, Len: 8, Type: hwbp.TypeW}, nil); err != nil {
		t.Fatalf("the guest's 4th event after the watch: %v", err)
	}
}

func TestClonesAreWatchedAndExecDrops(t *testing.T) {
	s := newSandbox(time.Minute)
	w, err := s.watches.Start(threads(100), name, attr, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.tasks.Clone(100, 101, unix.CLONE_THREAD)
	s.tasks.Clone(101, 200, 0) // a fork by the new thread
	if w.Threads() != 3 {
		t.Fatalf("watching %d threads after two clones, want 3", w.Threads())
	}
	s.hit(t, 200, 0x401000)
	if res := w.Read(time.Second); len(res.Hits) != 1 || res.Hits[0].PID != 2 {
		t.Fatalf("Read = %+v, want the child's hit", res)
	}
	s.tasks.Exec(200)
	if task := s.tasks.Lookup(200); task != nil && task.SlotsInUse() != 0 {
		t.Fatal("execve kept the watch")
	}
	s.tasks.Exit(100)
	s.tasks.Exit(101)
	res := w.Read(time.Second)
	if res.Ended == "" || res.PerPID[2] != 1 {
		t.Fatalf("Read after every thread left = %+v, want the end", res)
	}
	if s.watches.Len() != 0 {
		t.Fatal("an ended watch is still listed after its end was read")
	}
}

func TestCountEndsTheWatch(t *testing.T) {
	s := newSandbox(time.Minute)
	w, err := s.watches.Start(threads(100), name, attr, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The image the back end loaded: the third hit races with the end.
	img := s.tasks.Lookup(100).Image()
	for i := 0; i < 3; i++ {
		if out := s.tasks.Trap(100, &img, hwbp.DR6Reset|1, 0x401000); out.Deliver {
			t.Fatalf("hit %d: the guest gets %+v", i, out)
		}
	}
	res := w.Read(time.Second)
	if len(res.Hits) != 2 || res.Ended == "" || res.PerPID[1] != 2 {
		t.Fatalf("Read = %+v, want 2 hits and the end", res)
	}
	if n := s.tasks.Lookup(100).SlotsInUse(); n != 0 {
		t.Fatalf("the count's end left %d slots held", n)
	}
}

func TestLeaseEndsAWatchWithoutReader(t *testing.T) {
	s := newSandbox(50 * time.Millisecond)
	if _, err := s.watches.Start(threads(100), name, attr, 0, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.watches.Len() != 0 || s.tasks.Lookup(100).SlotsInUse() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a watch without a reader outlived its lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInvalidAttrChangesNothing(t *testing.T) {
	s := newSandbox(time.Minute)
	for _, a := range []hwbp.Attr{
		{Addr: addr + 4, Len: 8, Type: hwbp.TypeW},
		{Addr: addr, Len: 3, Type: hwbp.TypeW},
		{Addr: hwbp.TaskSizeMax, Len: 1, Type: hwbp.TypeW},
	} {
		if _, err := s.watches.Start(threads(100), name, a, 0, nil); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Start(%v): %v, want EINVAL", a, err)
		}
	}
	if s.tasks.Len() != 0 || s.watches.Len() != 0 {
		t.Error("an invalid watch left state")
	}
}

func TestEndKeepsTheQueueForTheReader(t *testing.T) {
	s := newSandbox(time.Minute)
	w, err := s.watches.Start(threads(100), name, attr, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.hit(t, 100, 0x401000)
	if !s.watches.End(w.ID(), "stopped") {
		t.Fatal("End found no watch")
	}
	if n := s.tasks.Lookup(100).SlotsInUse(); n != 0 {
		t.Fatalf("End left %d slots held", n)
	}
	res := w.Read(time.Second)
	if len(res.Hits) != 1 || res.Ended != "stopped" {
		t.Fatalf("Read after End = %+v, want the queued hit and the end", res)
	}
	if s.watches.Len() != 0 {
		t.Fatal("the watch is still listed after its end was read")
	}
}
