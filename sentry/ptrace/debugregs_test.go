package ptrace

import (
	"errors"
	"fmt"
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

func run(t *testing.T, d *DebugRegs, steps []step) {
	t.Helper()
	for i, s := range steps {
		if s.set {
			if got := errnoOf(d.Set(s.n, s.v)); got != s.want {
				t.Fatalf("step %d: POKE DR%d %#x = %v, want %v", i, s.n, s.v, got, s.want)
			}
		} else if got := d.Get(s.n); got != s.read {
			t.Fatalf("step %d: PEEK DR%d = %#x, want %#x", i, s.n, got, s.read)
		}
	}
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
			run(t, NewThreads[int](hwbp.NewRegistry()).Get(1), tc.steps)
		})
	}
}

func TestFailedDR7RestoresEvents(t *testing.T) {
	r := hwbp.NewRegistry()
	d := NewThreads[int](r).Get(1)
	run(t, d, []step{poke(0, user, 0), poke(1, user+8, 0), poke(7, 0x00d00004, 0)}) // DR1 write len 4 enabled
	task := d.Task()
	before := task.Image()
	// Slot 0 becomes valid, slot 1 gets an io type: everything rolls back.
	run(t, d, []step{poke(7, 0x00200005, unix.EINVAL)})
	if after := task.Image(); after.Addr != before.Addr || after.DR7 != before.DR7 {
		t.Fatalf("image changed: %+v -> %+v", before, after)
	}
	// A slot registered by a failed first pass stays registered, disabled.
	d2 := NewThreads[int](r).Get(2)
	run(t, d2, []step{poke(7, 0x02000011, unix.EINVAL), peek(7, 0)}) // slot 0 ok, slot 2... L2 with io
	if got := d2.Task().SlotsInUse(); got != 1 {
		t.Fatalf("slots in use after failed DR7: %d, want 1 (Linux keeps the event)", got)
	}
	if d2.Task().HasBreakpoints() {
		t.Fatalf("the kept event is armed")
	}
}

func TestTrap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    []step
		dr6      hwbp.DR6
		wantSig  bool
		wantCode int32
		wantDR6  uint64
	}{
		{"hit sets the ptrace register's B bit", []step{poke(1, user, 0), poke(7, 0x00d00004, 0)}, hwbp.DR6Reset | 1, true, TrapHWBkpt, 0xffff0ff2},
		{"hit replaces a DR6 the tracer wrote", []step{poke(6, 0x5, 0), poke(2, user, 0), poke(7, 0x0d000010, 0)}, hwbp.DR6Reset | 1, true, TrapHWBkpt, 0xffff0ff4},
		{"single-step is TRAP_TRACE and shows BS", nil, hwbp.DR6Reset | hwbp.DR6BS, true, TrapTrace, 0xffff4ff0},
		{"single-step and hit together", []step{poke(0, user, 0), poke(7, 0x000d0001, 0)}, hwbp.DR6Reset | hwbp.DR6BS | 1, true, TrapTrace, 0xffff4ff1},
		{"B bit of an empty slot still traps", nil, hwbp.DR6Reset | 4, true, TrapHWBkpt, 0xffff0ff0},
		{"no condition no signal", []step{poke(6, 0x5, 0)}, hwbp.DR6Reset, false, 0, 0xffff0ff0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := hwbp.NewRegistry()
			ts := NewThreads[int](r)
			run(t, ts.Get(1), tc.setup)
			img := ts.Get(1).Task().Image()
			sig, ok := ts.Trap(1, &img, tc.dr6, 0x401234)
			if ok != tc.wantSig || ok && (sig.Code != tc.wantCode || sig.Addr != 0x401234) {
				t.Fatalf("Trap = %+v, %v; want code %d, %v", sig, ok, tc.wantCode, tc.wantSig)
			}
			if got := ts.Get(1).Get(6); got != tc.wantDR6 {
				t.Fatalf("DR6 after trap = %#x, want %#x", got, tc.wantDR6)
			}
		})
	}
}

func TestTrapCountsHits(t *testing.T) {
	r := hwbp.NewRegistry()
	ts := NewThreads[int](r)
	d := ts.Get(1)
	run(t, d, []step{poke(3, user, 0), poke(7, 0xd0000040, 0)})
	img := d.Task().Image()
	for i := 0; i < 3; i++ {
		ts.Trap(1, &img, hwbp.DR6Reset|1, 0)
	}
	if got := img.Breakpoint(0).Hits(); got != 3 {
		t.Fatalf("hits %d, want 3", got)
	}
}

func TestLifecycle(t *testing.T) {
	r := hwbp.NewRegistry()
	ts := NewThreads[int](r)
	run(t, ts.Get(1), []step{poke(6, 0x5, 0), poke(0, user, 0), poke(7, 0x401, 0)})

	// A new thread inherits DR6 and DR7 read-back values, no breakpoint.
	ts.Inherit(1, 2)
	run(t, ts.Lookup(2), []step{peek(6, 0x5), peek(7, 0x401), peek(0, 0)})
	if ts.Lookup(2).Task().HasBreakpoints() {
		t.Fatal("child inherited an armed breakpoint")
	}
	// Children of threads with default values get no state at all.
	ts.Inherit(3, 4)
	if ts.Lookup(4) != nil {
		t.Fatal("state created for a default child")
	}
	// Exec flushes.
	ts.Remove(1)
	run(t, ts.Lookup(1), []step{peek(0, 0), peek(6, 0xffff0ff0), peek(7, 0)})

	// Many fork/exec/exit cycles leave nothing behind.
	for i := 10; i < 10010; i++ {
		d := ts.Get(i)
		run(t, d, []step{poke(0, user, 0), poke(7, 0x000d0001, 0)})
		ts.Inherit(i, -i)
		ts.Remove(-i)
		ts.Remove(i)
	}
	empty, created := ts.Remove(2)
	if !empty || ts.Len() != 0 || r.Tasks() != 0 || r.Active() {
		t.Fatalf("state left: %d threads, %d core tasks, active %v", ts.Len(), r.Tasks(), r.Active())
	}
	if created != 2+2*10000 {
		t.Fatalf("created %d entries", created)
	}
}

// FuzzDebugRegs feeds arbitrary register writes to one thread and checks
// that nothing panics and that the invariants hold after every write: a
// failed write changes nothing, DR7 and DR6 read back what was written last,
// and the core image arms exactly the slots DR7 enables.
func FuzzDebugRegs(f *testing.F) {
	f.Add([]byte{0, 0x10, 0x60, 7, 0x01, 0x00, 0x0d})
	f.Add([]byte{7, 0x55, 0x55, 0xff, 0xff, 3, 0xf8, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := hwbp.NewRegistry()
		ts := NewThreads[int](r)
		d := ts.Get(1)
		for len(data) >= 2 {
			n := int(data[0] % 8)
			var v uint64
			k := 1 + int(data[1]%8)
			for i := 0; i < k && 2+i < len(data); i++ {
				v |= uint64(data[2+i]) << (8 * i)
			}
			if data[1]&0x80 != 0 {
				v |= 0x7fff_0000_0000 // reach the top of the user space
			}
			data = data[min(len(data), 2+k):]

			var before [8]uint64
			for i := range before {
				before[i] = d.Get(i)
			}
			err := d.Set(n, v)
			for i := range before {
				got := d.Get(i)
				switch {
				case err == nil && i == n && n != 4 && n != 5:
					if got != v {
						t.Fatalf("DR%d = %#x after writing %#x", i, got, v)
					}
				case got != before[i]:
					t.Fatalf("DR%d changed %#x -> %#x by write DR%d %#x (err %v)", i, before[i], got, n, v, err)
				}
			}
			if err != nil && errnoOf(err) == 0 {
				t.Fatalf("error without errno: %v", err)
			}
			img := d.Task().Image()
			armed := 0
			dr7 := hwbp.DR7(d.Get(7))
			for i := 0; i < hwbp.Slots; i++ {
				if dr7.Enabled(i) {
					armed++
				}
			}
			got := 0
			for i := 0; i < hwbp.Slots; i++ {
				if img.Breakpoint(i) != nil {
					got++
				}
			}
			if got != armed {
				t.Fatalf("DR7 %#x enables %d slots, image arms %d", uint64(dr7), armed, got)
			}
		}
		ts.Remove(1)
		if r.Tasks() != 0 || r.Active() {
			t.Fatal(fmt.Sprint("state left after Remove"))
		}
	})
}
