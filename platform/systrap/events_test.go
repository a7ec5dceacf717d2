// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/sentry/kernel"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// fakeHost is a host whose perf_event_open fails with err from the failAt-th
// call on (counting from 1; 0 never fails), failN times (0: for ever), and
// which tracks open fds.
type fakeHost struct {
	err    unix.Errno
	failAt int
	failN  int
	calls  int
	next   int
	fds    map[int]bool
	// attrs is each open fd's attribute, counts its count.
	attrs  map[int]unix.PerfEventAttr
	counts map[int]uint64
}

func newFakeHost(err unix.Errno, failAt int) *fakeHost {
	return &fakeHost{err: err, failAt: failAt, next: 100, fds: map[int]bool{}, attrs: map[int]unix.PerfEventAttr{}, counts: map[int]uint64{}}
}

func (h *fakeHost) open(a *unix.PerfEventAttr, tid int32) (int, error) {
	h.calls++
	if h.failAt != 0 && h.calls >= h.failAt && (h.failN == 0 || h.calls < h.failAt+h.failN) {
		return -1, h.err
	}
	h.next++
	h.fds[h.next] = true
	h.attrs[h.next] = *a
	return h.next, nil
}

func (h *fakeHost) modify(fd int, a *unix.PerfEventAttr) error { return h.check(fd) }
func (h *fakeHost) enable(fd int, on bool) error               { return h.check(fd) }
func (h *fakeHost) count(fd int) (uint64, error)               { return h.counts[fd], h.check(fd) }
func (h *fakeHost) close(fd int) {
	if !h.fds[fd] {
		panic(fmt.Sprintf("close of fd %d, which is not open", fd))
	}
	delete(h.fds, fd)
	delete(h.attrs, fd)
	delete(h.counts, fd)
}

func (h *fakeHost) check(fd int) error {
	if !h.fds[fd] {
		return fmt.Errorf("fd %d is not open", fd)
	}
	return nil
}

// threads returns a lister of a stub process whose nursery and stub threads
// are the given host TIDs.
func threads(nursery int32, tids ...int32) func() (int32, []int32) {
	return func() (int32, []int32) { return nursery, tids }
}

// backendWithMember returns a back end on host h and a space with one member
// task that has a write watchpoint.
func backendWithMember(t *testing.T, h perfHost) (*Backend, *space, *kernel.Task) {
	t.Helper()
	r := hwbp.NewRegistry()
	tasks := hwbp.NewTasks[*kernel.Task](r, nil)
	b := New(tasks, nil)
	b.host = h
	k := &kernel.Task{}
	task, err := tasks.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(task, hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW}, nil); err != nil {
		t.Fatal(err)
	}
	sp := b.newSpace()
	sp.mu.Lock()
	b.setMember(sp, k, task)
	sp.mu.Unlock()
	return b, sp, k
}

// TestHostRefusals injects the host's refusals of perf_event_open and
// checks that the back end carries on: it warns, holds exactly the fds that
// were opened, and leaves nothing open or retained once the space's last
// member leaves.
func TestHostRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    unix.Errno
		failAt int
		// wantFDs is how many fds stay open, of the nursery's four and
		// the four of each of the two stub threads.
		wantFDs  int
		wantWarn bool
	}{
		{"a host that allows perf events arms every thread", 0, 0, 12, false},
		{"EMFILE at the first event opens nothing", unix.EMFILE, 1, 0, true},
		{"EACCES (perf_event_paranoid) opens nothing", unix.EACCES, 1, 0, true},
		{"ENODEV (no breakpoint PMU) opens nothing", unix.ENODEV, 1, 0, true},
		{"EMFILE half way keeps what was opened", unix.EMFILE, 6, 5, true},
		{"ENOSPC on a thread's first event means it inherited the nursery's", unix.ENOSPC, 5, 8, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(tc.err, tc.failAt)
			if tc.err == unix.ENOSPC {
				h.failN = 1 // the host refuses one thread, which holds the nursery's events
			}
			b, sp, k := backendWithMember(t, h)
			sp.mu.Lock()
			b.apply(sp, threads(10, 11, 12), false)
			open := sp.events.open
			sp.mu.Unlock()
			if !open {
				t.Fatal("the space's events are not open")
			}
			if len(h.fds) != tc.wantFDs || b.fds.Load() != int64(tc.wantFDs) {
				t.Errorf("%d fds open (counted %d), want %d", len(h.fds), b.fds.Load(), tc.wantFDs)
			}
			if warned := b.failures.Load() != 0; warned != tc.wantWarn {
				t.Errorf("warned %v, want %v", warned, tc.wantWarn)
			}
			if !b.tasks.Registry().Active() {
				t.Error("the registry is not active while the space is open")
			}
			b.leave(k, sp)
			if len(h.fds) != 0 || b.fds.Load() != 0 || b.opened.Load() != 0 {
				t.Errorf("after the last member left: %d fds open (counted %d), %d spaces open", len(h.fds), b.fds.Load(), b.opened.Load())
			}
			b.tasks.Exit(k)
			if b.tasks.Registry().Active() {
				t.Error("the registry stays active")
			}
		})
	}
}

// TestIdleEventsAreBounded opens the events of more spaces than openLimit
// and checks that only openLimit stay open, that a space whose task runs is
// never closed, and that a closed space reopens at its next apply.
func TestIdleEventsAreBounded(t *testing.T) {
	h := newFakeHost(0, 0)
	r := hwbp.NewRegistry()
	tasks := hwbp.NewTasks[*kernel.Task](r, nil)
	b := New(tasks, nil)
	b.host = h
	var spaces []*space
	for i := 0; i < openLimit+8; i++ {
		k := &kernel.Task{}
		task, _ := tasks.Get(k)
		if _, err := r.Register(task, hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW}, nil); err != nil {
			t.Fatal(err)
		}
		sp := b.newSpace()
		sp.mu.Lock()
		b.setMember(sp, k, task)
		sp.lastArm.Store(b.clock.Add(1))
		if i == 0 {
			sp.running.Add(1) // the first space's task runs throughout
		}
		b.apply(sp, threads(int32(1000+i)), false)
		sp.mu.Unlock()
		spaces = append(spaces, sp)
	}
	if got := b.opened.Load(); got != openLimit {
		t.Errorf("%d spaces have events open, want %d", got, openLimit)
	}
	if got := len(h.fds); got != 4*openLimit {
		t.Errorf("%d host fds open, want %d", got, 4*openLimit)
	}
	sp0 := spaces[0]
	sp0.mu.Lock()
	if !sp0.events.open {
		t.Error("the space whose task runs was closed")
	}
	sp0.mu.Unlock()
	sp1 := spaces[1]
	sp1.mu.Lock()
	if sp1.events.open || !sp1.events.evicted {
		t.Errorf("the least recently run idle space: open %v, evicted %v", sp1.events.open, sp1.events.evicted)
	}
	b.apply(sp1, threads(2000), false)
	if !sp1.events.open || sp1.events.evicted {
		t.Errorf("after its next apply: open %v, evicted %v", sp1.events.open, sp1.events.evicted)
	}
	sp1.mu.Unlock()
	if got := b.opened.Load(); got != openLimit {
		t.Errorf("after a reopening %d spaces have events open, want %d", got, openLimit)
	}
}

// openRunning opens, in b, the events of a new space with one task and one
// breakpoint on the stub thread 1000+i, as arm does for a task that then
// runs (if running) or has just run; t fails if the breakpoint cannot be
// registered.
func openRunning(t *testing.T, b *Backend, tasks *hwbp.Tasks[*kernel.Task], i int, running bool) *space {
	k := &kernel.Task{}
	task, _ := tasks.Get(k)
	if _, err := tasks.Registry().Register(task, hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW}, nil); err != nil {
		t.Error(err)
	}
	sp := b.newSpace()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	b.setMember(sp, k, task)
	sp.lastArm.Store(b.clock.Add(1))
	if running {
		sp.running.Add(1)
		sp.runners[k] = false
	}
	b.apply(sp, threads(int32(1000+i)), false)
	return sp
}

// TestEvictionCatchesUp opens the events of more spaces than openLimit while
// all their tasks run, so that none can be closed, then lets them go idle
// and opens one more: every idle space above the limit is closed then, not
// one (with one per open, processes that run at once leave the count above
// the limit for good, and a tracer of children that wake often ratchets it
// up to about 1,160 host fds).
func TestEvictionCatchesUp(t *testing.T) {
	h := newFakeHost(0, 0)
	r := hwbp.NewRegistry()
	tasks := hwbp.NewTasks[*kernel.Task](r, nil)
	b := New(tasks, nil)
	b.host = h
	open := func(i int, running bool) *space { return openRunning(t, b, tasks, i, running) }
	const busy = openLimit + 8
	var spaces []*space
	for i := range busy {
		spaces = append(spaces, open(i, true))
	}
	if got := b.opened.Load(); got != busy {
		t.Fatalf("%d spaces have events open while all their tasks run, want %d", got, busy)
	}
	for _, sp := range spaces {
		sp.running.Add(-1)
	}
	open(busy, false)
	if got := b.opened.Load(); got != openLimit {
		t.Errorf("%d spaces have events open after the next open, want %d", got, openLimit)
	}
	if got := len(h.fds); got != 4*openLimit {
		t.Errorf("%d host fds open, want %d", got, 4*openLimit)
	}
}

// TestHostFDsCapped opens the events of spaces all of whose tasks run until
// their fds reach maxFDs: the next space's events wait, not opened, until
// one of the others goes idle, and are then opened in its place. Under
// load, many processes have a task queued for a stub thread at any moment,
// so that a bound on idle processes alone let a tracer of 300 children
// that wake 50 times a second hold over 1,000 host fds.
func TestHostFDsCapped(t *testing.T) {
	defer func(q time.Duration) { quantum = q }(quantum)
	quantum = time.Hour // no preemption here
	h := newFakeHost(0, 0)
	r := hwbp.NewRegistry()
	tasks := hwbp.NewTasks[*kernel.Task](r, nil)
	b := New(tasks, nil)
	b.host = h
	b.interrupt = func(*kernel.Task) { t.Error("a task was interrupted before its space had been open a quantum") }
	open := func(i int) *space { return openRunning(t, b, tasks, i, true) }
	// A space here holds the events of its nursery alone.
	const running = maxFDs / hwbp.Slots
	var spaces []*space
	for i := range running {
		spaces = append(spaces, open(i))
	}
	if got := b.fds.Load(); got != maxFDs {
		t.Fatalf("%d host fds open, want %d", got, maxFDs)
	}
	opened := make(chan *space)
	go func() { opened <- open(running) }()
	select {
	case <-opened:
		t.Fatalf("a space was opened over the %d host fds of spaces whose tasks run", maxFDs)
	case <-time.After(50 * time.Millisecond):
	}
	idle := spaces[0]
	idle.mu.Lock()
	idle.running.Add(-1)
	clear(idle.runners)
	idle.mu.Unlock()
	select {
	case sp := <-opened:
		sp.mu.Lock()
		if !sp.events.open {
			t.Error("the waiting space's events are not open")
		}
		sp.mu.Unlock()
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting space was not opened when another went idle")
	}
	if got, open := b.fds.Load(), len(h.fds); got != maxFDs || open != maxFDs {
		t.Errorf("%d host fds counted, %d open, want %d", got, open, maxFDs)
	}
}

// TestPreemptMakesRoom fills maxFDs with the events of spaces whose tasks
// run and never come back by themselves (they compute without entering the
// sentry): a space that needs room then waits until they have been open a
// quantum, interrupts the tasks of those open longest, and is opened once
// their spaces are closed, the host fds never over maxFDs. Without
// preemption it would wait for ever, or open over the cap.
func TestPreemptMakesRoom(t *testing.T) {
	defer func(q time.Duration) { quantum = q }(quantum)
	quantum = 20 * time.Millisecond
	h := newFakeHost(0, 0)
	r := hwbp.NewRegistry()
	tasks := hwbp.NewTasks[*kernel.Task](r, nil)
	b := New(tasks, nil)
	b.host = h
	var interrupted []*kernel.Task
	b.interrupt = func(k *kernel.Task) {
		// The interrupted task leaves its Switch: its run ends.
		interrupted = append(interrupted, k)
		go b.spaceOf(k).done(k)
	}
	const running = maxFDs / hwbp.Slots
	var first *space
	start := time.Now()
	for i := range running {
		sp := openRunning(t, b, tasks, i, true)
		if i == 0 {
			first = sp
		}
	}
	sp := openRunning(t, b, tasks, running, true)
	if waited := time.Since(start); waited < quantum {
		t.Errorf("the space was opened %v after the first, before that had been open a quantum (%v)", waited, quantum)
	}
	sp.mu.Lock()
	if !sp.events.open {
		t.Error("the waiting space's events are not open")
	}
	sp.mu.Unlock()
	// The space opened first needs the same fds: it alone is preempted.
	first.mu.Lock()
	if first.events.open || !first.events.evicted {
		t.Errorf("the space open longest: open %v, evicted %v; want closed, to be reopened", first.events.open, first.events.evicted)
	}
	first.mu.Unlock()
	if len(interrupted) != 1 {
		t.Errorf("%d tasks interrupted, want the one of the space open longest", len(interrupted))
	}
	if got, open := b.fds.Load(), len(h.fds); got != maxFDs || open != maxFDs {
		t.Errorf("%d host fds counted, %d open, want %d", got, open, maxFDs)
	}
	if got := b.admission.preemptions.Load(); got != 1 {
		t.Errorf("%d preemptions counted, want 1", got)
	}
}

// TestArmedPathDoesNotAllocate checks that placing a process's breakpoints
// and applying an unchanged placement, which every Switch of a task of a
// process with events does, allocate nothing.
func TestArmedPathDoesNotAllocate(t *testing.T) {
	h := newFakeHost(0, 0)
	b, sp, _ := backendWithMember(t, h)
	list := threads(10, 11, 12)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	b.apply(sp, list, false)
	reapply := func() {
		// AllocsPerRun calls this before it returns, with sp.mu held;
		// checklocks cannot tell.
		b.apply(sp, list, false) // +checklocksignore
	}
	if n := testing.AllocsPerRun(100, reapply); n != 0 {
		t.Errorf("apply of an unchanged placement: %v allocations", n)
	}
}
