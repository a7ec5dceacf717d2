// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package ptrace

import (
	"errors"
	"maps"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

const user = 0x601000

func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if err == nil || !errors.As(err, &e) {
		return 0
	}
	return e
}

// step is one POKE (set) or PEEK of a debug register and what Linux answers.
type step struct {
	n    int
	set  bool
	v    uint64
	want unix.Errno // for sets
	read uint64     // for peeks
}

func poke(n int, v uint64, want unix.Errno) step { return step{n: n, set: true, v: v, want: want} }
func peek(n int, read uint64) step               { return step{n: n, read: read} }

// newThreads returns the ptrace view of a fresh registry's threads, of
// which none has exited.
func newThreads() (*hwbp.Registry, *Threads[int]) {
	r := hwbp.NewRegistry()
	return r, NewThreads(hwbp.NewTasks[int](r, nil))
}

// run applies steps to thread k through PokeUser and PeekUser.
func run(t *testing.T, ts *Threads[int], k int, steps []step) {
	t.Helper()
	for i, s := range steps {
		off := DebugRegOffset + 8*uint64(s.n)
		if s.set {
			if got := errnoOf(ts.PokeUser(k, off, s.v)); got != s.want {
				t.Fatalf("step %d: POKE DR%d %#x = %v, want %v", i, s.n, s.v, got, s.want)
			}
			continue
		}
		got, err := ts.PeekUser(k, off)
		if err != nil || got != s.read {
			t.Fatalf("step %d: PEEK DR%d = %#x, %v; want %#x", i, s.n, got, err, s.read)
		}
	}
}

// task returns k's core state, which must exist.
func task(t *testing.T, ts *Threads[int], k int) *hwbp.Task {
	t.Helper()
	task := ts.Tasks().Lookup(k)
	if task == nil {
		t.Fatalf("thread %d has no state", k)
	}
	return task
}

func TestDebugRegs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"fresh thread reads zeros and DR6 reset", []step{peek(0, 0), peek(3, 0), peek(4, 0), peek(5, 0), peek(6, 0xffff0ff0), peek(7, 0)}},
		{"disabled slot takes any user address", []step{poke(0, user+3, 0), peek(0, user+3), poke(1, 0, 0), peek(1, 0)}},
		{"kernel address is EINVAL and keeps the old value", []step{poke(2, user, 0), poke(2, 0xffffffff81000000, unix.EINVAL), peek(2, user)}},
		{"non-canonical address is EINVAL", []step{poke(0, 0x800000000000, unix.EINVAL), peek(0, 0)}},
		{"all ones is EINVAL", []step{poke(0, ^uint64(0), unix.EINVAL), peek(0, 0)}},
		{"last word below the 47-bit top is EINVAL", []step{poke(0, 0x7ffffffffff8, unix.EINVAL)}},
		{"DR4 and DR5 writes are EIO and read zero", []step{poke(4, 1, unix.EIO), poke(5, 1, unix.EIO), peek(4, 0), peek(5, 0)}},
		{"DR6 reads back what was written", []step{poke(6, 0xf, 0), peek(6, 0xf), poke(6, 0, 0), peek(6, 0), poke(6, ^uint64(0), 0), peek(6, ^uint64(0))}},
		{"DR7 enables a write watchpoint", []step{poke(0, user, 0), poke(7, 0x000d0001, 0), peek(7, 0x000d0001)}},
		{"DR7 reads back reserved and high bits", []step{poke(7, 0xffffffff00002700, 0), peek(7, 0xffffffff00002700)}},
		{"DR7 io type is EINVAL and keeps the old DR7", []step{poke(0, user, 0), poke(7, 0x1, 0), poke(7, 0x00020001, unix.EINVAL), peek(7, 0x1)}},
		{"DR7 execute with a length is EINVAL", []step{poke(7, 0x00040001, unix.EINVAL), peek(7, 0)}},
		{"DR7 enabling a slot without address watches zero", []step{poke(7, 0x000d0002, 0), peek(0, 0), peek(7, 0x000d0002)}},
		{"enabling a misaligned address is EINVAL", []step{poke(1, user+2, 0), poke(7, 0x00b00004, unix.EINVAL), peek(7, 0), peek(1, user+2)}},
		{"moving an enabled slot to a misaligned address is EINVAL", []step{poke(0, user, 0), poke(7, 0x000b0001, 0), poke(0, user+4, unix.EINVAL), peek(0, user), poke(0, user+8, 0), peek(0, user+8)}},
		{"a disabled slot keeps its length", []step{poke(0, user, 0), poke(7, 0x000b0001, 0), poke(7, 0x000b0000, 0), poke(0, user+4, unix.EINVAL), peek(0, user)}},
		{"disabling with zero fields makes it an execute slot", []step{poke(0, user, 0), poke(7, 0x000b0001, 0), poke(7, 0, 0), poke(0, user+3, 0), peek(0, user+3)}},
		{"failed DR7 retypes disabled slots as execute", []step{
			poke(0, user, 0), poke(1, user, 0), poke(7, 0x00b00004, 0), // DR1 write len 8, DR0 disabled placeholder (write len 1)
			poke(7, 0x00b20004, unix.EINVAL), // slot 0 io: fails, restore
			poke(0, user+5, 0),               // DR0 is execute now: any alignment
			peek(7, 0x00b00004),
		}},
		{"DR7 enables all four slots", []step{
			poke(0, user, 0), poke(1, user+8, 0), poke(2, user+16, 0), poke(3, user+24, 0),
			poke(7, 0xbbbb00ff, 0), peek(7, 0xbbbb00ff),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := newThreads()
			run(t, ts, 1, tc.steps)
		})
	}
}

func TestFailedDR7RestoresEvents(t *testing.T) {
	_, ts := newThreads()
	run(t, ts, 1, []step{poke(0, user, 0), poke(1, user+8, 0), poke(7, 0x00d00004, 0)}) // DR1 write len 4 enabled
	before := task(t, ts, 1).Image()
	// Slot 0 becomes valid, slot 1 gets an io type: everything rolls back.
	run(t, ts, 1, []step{poke(7, 0x00200005, unix.EINVAL)})
	if after := task(t, ts, 1).Image(); after.Addr != before.Addr || after.DR7 != before.DR7 {
		t.Fatalf("image changed: %+v -> %+v", before, after)
	}
	// A slot registered by a failed first pass stays registered, disabled.
	run(t, ts, 2, []step{poke(7, 0x02000011, unix.EINVAL), peek(7, 0)}) // slot 0 ok, slot 2... L2 with io
	if got := task(t, ts, 2).SlotsInUse(); got != 1 {
		t.Fatalf("slots in use after failed DR7: %d, want 1 (Linux keeps the event)", got)
	}
	if task(t, ts, 2).HasBreakpoints() {
		t.Fatalf("the kept event is armed")
	}
}

// TestTrap checks the ptrace side of the core's debug exception handling:
// the overflow handler (ptrace_triggered) and what the tracer reads in DR6.
func TestTrap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    []step
		dr6      hwbp.DR6
		wantSig  bool
		wantCode int32
		wantDR6  uint64
	}{
		{"hit sets the ptrace register's B bit", []step{poke(1, user, 0), poke(7, 0x00d00004, 0)}, hwbp.DR6Reset | 1, true, hwbp.TrapHWBkpt, 0xffff0ff2},
		{"hit replaces a DR6 the tracer wrote", []step{poke(6, 0x5, 0), poke(2, user, 0), poke(7, 0x0d000010, 0)}, hwbp.DR6Reset | 1, true, hwbp.TrapHWBkpt, 0xffff0ff4},
		{"single-step is TRAP_TRACE and shows BS", nil, hwbp.DR6Reset | hwbp.DR6BS, true, hwbp.TrapTrace, 0xffff4ff0},
		{"single-step and hit together", []step{poke(0, user, 0), poke(7, 0x000d0001, 0)}, hwbp.DR6Reset | hwbp.DR6BS | 1, true, hwbp.TrapTrace, 0xffff4ff1},
		{"B bit of an empty slot still traps", nil, hwbp.DR6Reset | 4, true, hwbp.TrapHWBkpt, 0xffff0ff0},
		{"icebp is TRAP_BRKPT and resets DR6", []step{poke(6, 0x5, 0)}, hwbp.DR6Reset, true, hwbp.TrapBrkpt, 0xffff0ff0},
		{"icebp after a hit clears its B bit", []step{poke(0, user, 0), poke(7, 0x000d0001, 0), poke(6, 0xffff0ff1, 0)}, hwbp.DR6Reset, true, hwbp.TrapBrkpt, 0xffff0ff0},
		{"BD alone resets DR6 and does not signal", []step{poke(6, 0x5, 0)}, hwbp.DR6Reset | hwbp.DR6BD, false, 0, 0xffff0ff0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := newThreads()
			run(t, ts, 1, tc.setup)
			var img hwbp.Image
			if task := ts.Tasks().Lookup(1); task != nil {
				img = task.Image()
			}
			out := ts.Tasks().Trap(1, &img, tc.dr6, 0x401234)
			if out.Deliver != tc.wantSig || out.Deliver && (out.Signal.Code != tc.wantCode || out.Signal.Addr != 0x401234) {
				t.Fatalf("Trap = %+v; want code %d, %v", out, tc.wantCode, tc.wantSig)
			}
			run(t, ts, 1, []step{peek(6, tc.wantDR6)})
		})
	}
}

func TestSingleStepShowsInDR6(t *testing.T) {
	_, ts := newThreads()
	ts.Tasks().SingleStep(1, 0x401000)
	run(t, ts, 1, []step{peek(6, 0xffff4ff0), poke(6, 0x5, 0)})
	ts.Tasks().SingleStep(1, 0x401001)
	run(t, ts, 1, []step{peek(6, 0xffff4ff0)})
}

func TestTrapCountsHits(t *testing.T) {
	_, ts := newThreads()
	run(t, ts, 1, []step{poke(3, user, 0), poke(7, 0xd0000040, 0)})
	img := task(t, ts, 1).Image()
	for i := 0; i < 3; i++ {
		ts.Tasks().Trap(1, &img, hwbp.DR6Reset|1, 0)
	}
	if got := img.Breakpoint(0).Hits(); got != 3 {
		t.Fatalf("hits %d, want 3", got)
	}
}

func TestLifecycle(t *testing.T) {
	r, ts := newThreads()
	tasks := ts.Tasks()
	run(t, ts, 1, []step{poke(6, 0x5, 0), poke(0, user, 0), poke(7, 0x401, 0)})
	// A new thread inherits DR6 and DR7 read-back values, no breakpoint.
	tasks.Clone(1, 2, 0)
	run(t, ts, 2, []step{peek(6, 0x5), peek(7, 0x401), peek(0, 0)})
	if task(t, ts, 2).HasBreakpoints() {
		t.Fatal("child inherited an armed breakpoint")
	}
	// Children of threads with default values get no state at all.
	tasks.Clone(3, 4, 0)
	run(t, ts, 0, []step{poke(0, user, 0)})
	tasks.Clone(0, 5, 0)
	if tasks.Lookup(4) != nil || tasks.Lookup(5) != nil {
		t.Fatal("state created for a default child")
	}
	tasks.Exit(0)
	// Exec flushes.
	tasks.Exec(1)
	run(t, ts, 1, []step{peek(0, 0), peek(6, 0xffff0ff0), peek(7, 0)})
	// Many fork/exec/exit cycles leave nothing behind.
	for i := 10; i < 10010; i++ {
		run(t, ts, i, []step{poke(0, user, 0), poke(7, 0x000d0001, 0)})
		tasks.Clone(i, -i, 0)
		tasks.Exit(-i)
		tasks.Exit(i)
	}
	empty, created := tasks.Exit(2)
	if !empty || tasks.Len() != 0 || r.Tasks() != 0 || r.Active() {
		t.Fatalf("state left: %d threads, %d core tasks, active %v", tasks.Len(), r.Tasks(), r.Active())
	}
	if created != 3+2*10000 {
		t.Fatalf("created %d entries", created)
	}
}

// TestWriteRacingWithExit injects the race of a tracer's POKEUSER with the
// tracee's death: gVisor's ptrace finds the tracee stopped and returns, a
// SIGKILL makes the tracee exit (its state is flushed), and only then does
// the debug-register write land. It must succeed, as on Linux, and leave
// nothing behind: no Task, no armed event, the registry inactive.
func TestWriteRacingWithExit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"address write after exit keeps nothing", []step{poke(0, user, 0)}},
		{"DR7 write after exit arms nothing", []step{poke(7, 0x000d0001, 0)}},
		{"DR6 write after exit keeps nothing", []step{poke(6, 0x5, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := hwbp.NewRegistry()
			exited := map[int]bool{}
			tasks := hwbp.NewTasks(r, func(k int) bool { return exited[k] })
			ts := NewThreads(tasks)
			run(t, ts, 1, []step{poke(1, user, 0), poke(7, 0x4, 0)})
			// The tracee exits between the tracer's check and its
			// write: the exit state is set before the flush, as
			// gVisor's exitThreadGroup does before PrepareExit.
			exited[1] = true
			tasks.Exit(1)
			run(t, ts, 1, tc.steps)
			if tasks.Lookup(1) != nil || tasks.Len() != 0 || r.Tasks() != 0 || r.Active() {
				t.Fatalf("state left: %d threads, %d core tasks, active %v", tasks.Len(), r.Tasks(), r.Active())
			}
		})
	}
	t.Run("write racing with the flush itself keeps nothing", func(t *testing.T) {
		// Many rounds of a concurrent write and exit: whichever comes
		// first, nothing may survive.
		for i := 0; i < 2000; i++ {
			r := hwbp.NewRegistry()
			var exited atomic.Bool
			tasks := hwbp.NewTasks(r, func(int) bool { return exited.Load() })
			ts := NewThreads(tasks)
			done := make(chan error)
			go func() {
				err := ts.PokeUser(1, DebugRegOffset, user)
				if err == nil {
					err = ts.PokeUser(1, DebugRegOffset+7*8, 0x1)
				}
				done <- err
			}()
			exited.Store(true)
			tasks.Exit(1)
			if err := <-done; err != nil {
				t.Fatalf("round %d: write = %v, want success", i, err)
			}
			if tasks.Len() != 0 || r.Tasks() != 0 || r.Active() {
				t.Fatalf("round %d: state left: %d threads, %d core tasks, active %v", i, tasks.Len(), r.Tasks(), r.Active())
			}
		}
	})
}

// FuzzPokeUser feeds arbitrary (offset, value) writes to one thread through
// PokeUser and checks after every write that nothing panicked, that errors
// carry an errno, that a failed write changed no register, that a write to
// DR0-3, DR6 or DR7 that succeeded reads back, and that the core image arms
// exactly the slots DR7 enables.
func FuzzPokeUser(f *testing.F) {
	f.Add([]byte{0x50, 0x03, 0x00, 0x10, 0x60, 0, 0, 0, 0, 0, 0x88, 0x03, 0x01, 0x00, 0x0d, 0, 0, 0, 0, 0})
	f.Add([]byte{0x88, 0x03, 0x55, 0x55, 0xff, 0xff, 0, 0, 0, 0, 0x68, 0x03, 0xf8, 0xef, 0xff, 0xff, 0xff, 0x7f, 0, 0})
	f.Add([]byte{0x51, 0x03, 1, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0x03, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, ts := newThreads()
		for ; len(data) >= 10; data = data[10:] {
			off := uint64(data[0]) | uint64(data[1])<<8
			v := uint64(0)
			for i := 0; i < 8; i++ {
				v |= uint64(data[2+i]) << (8 * i)
			}
			var before [8]uint64
			for i := range before {
				before[i], _ = ts.PeekUser(1, DebugRegOffset+8*uint64(i))
			}
			err := ts.PokeUser(1, off, v)
			if err != nil && errnoOf(err) == 0 {
				t.Fatalf("error without errno: %v", err)
			}
			aligned := off%8 == 0 && off >= RegsSize && off < UserSize
			n := int(off-DebugRegOffset) / 8
			isDR := aligned && off >= DebugRegOffset && off <= DebugRegEnd
			if got := errnoOf(err); (!aligned || !isDR || n == 4 || n == 5) && got != unix.EIO {
				t.Fatalf("PokeUser(%d, %#x) = %v, want EIO", off, v, err)
			}
			for i := range before {
				got, perr := ts.PeekUser(1, DebugRegOffset+8*uint64(i))
				if perr != nil {
					t.Fatalf("PeekUser DR%d: %v", i, perr)
				}
				switch {
				case err == nil && isDR && i == n:
					if got != v {
						t.Fatalf("DR%d = %#x after writing %#x", i, got, v)
					}
				case got != before[i]:
					t.Fatalf("DR%d changed %#x -> %#x by write at %d of %#x (err %v)", i, before[i], got, off, v, err)
				}
			}
			if off < UserSize && off%8 == 0 && off >= RegsSize && !isDR {
				if got, err := ts.PeekUser(1, off); got != 0 || err != nil {
					t.Fatalf("PeekUser(%d) = %#x, %v; want 0", off, got, err)
				}
			}
			if task, d := ts.lookup(1); d != nil {
				img := task.Image()
				dr7 := hwbp.DR7(d.get(7))
				d.mu.Lock()
				bps := d.bps
				d.mu.Unlock()
				for i := 0; i < hwbp.Slots; i++ {
					armed := 0
					if dr7.Enabled(i) {
						armed = 1
					}
					n := 0
					for s := 0; s < hwbp.Slots; s++ {
						if bp := img.Breakpoint(s); bp != nil && bp == bps[i] {
							n++
						}
					}
					if n != armed {
						t.Fatalf("DR7 %#x: slot %d armed %d times in the image", uint64(dr7), i, n)
					}
				}
			}
		}
		ts.Tasks().Exit(1)
		if r.Tasks() != 0 || r.Active() {
			t.Fatal("state left after Exit")
		}
	})
}

// TestSaveRestore checks that a thread's state survives Save and Restore
// into another map of threads (a sandbox restored from a checkpoint): every
// register reads back the same, the same slots are armed, and hits show in
// DR6 under the same register numbers.
func TestSaveRestore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"fresh thread keeps nothing", nil},
		{"disabled placeholder and DR6", []step{poke(1, user+8, 0), poke(6, 0x5, 0)}},
		{"enabled watchpoints in every slot", []step{poke(0, user, 0), poke(1, user+8, 0), poke(2, user+16, 0), poke(3, user+24, 0), poke(7, 0xbbbb00ff, 0)}},
		{"DR7 read-back with reserved bits", []step{poke(7, 0xffffffff00002700, 0)}},
		{"slots registered out of order", []step{poke(3, user+24, 0), poke(0, user, 0), poke(7, 0x50000041, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rBefore, before := newThreads()
			run(t, before, 1, tc.steps)
			st, ok := before.Save(1)
			if ok != (len(tc.steps) > 0) {
				t.Fatalf("Save = %+v, %v", st, ok)
			}
			r, after := newThreads()
			if ok {
				if err := after.Restore(1, st); err != nil {
					t.Fatalf("Restore: %v", err)
				}
			}
			for n := 0; n < 8; n++ {
				want, _ := before.PeekUser(1, DebugRegOffset+8*uint64(n))
				run(t, after, 1, []step{peek(n, want)})
			}
			var wantImg, gotImg hwbp.Image
			if task := before.Tasks().Lookup(1); task != nil {
				wantImg = task.Image()
			}
			if task := after.Tasks().Lookup(1); task != nil {
				gotImg = task.Image()
			}
			// Which hardware slot an event takes is not visible to the
			// guest (hits are reported under the ptrace register
			// number); the same breakpoints must be armed.
			if got, want := armedSet(gotImg), armedSet(wantImg); !maps.Equal(got, want) {
				t.Fatalf("restored image arms %v, want %v", got, want)
			}
			if r.Enabled() != rBefore.Enabled() {
				t.Fatalf("restored registry has %d enabled events, want %d", r.Enabled(), rBefore.Enabled())
			}
		})
	}
}

// armedSet returns the breakpoints img arms, by address, R/W and LEN
// fields, with their number of slots.
func armedSet(img hwbp.Image) map[[3]uint64]int {
	set := map[[3]uint64]int{}
	for slot := 0; slot < hwbp.Slots; slot++ {
		if img.DR7.Enabled(slot) {
			set[[3]uint64{img.Addr[slot], uint64(img.DR7.RW(slot)), uint64(img.DR7.Len(slot))}]++
		}
	}
	return set
}
