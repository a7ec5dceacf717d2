package ptrace

import (
	"errors"
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

func TestSingleStepShowsInDR6(t *testing.T) {
	ts := NewThreads[int](hwbp.NewRegistry())
	ts.SingleStep(1, 0x401000)
	run(t, ts.Lookup(1), []step{peek(6, 0xffff4ff0)})
	run(t, ts.Get(1), []step{poke(6, 0x5, 0)})
	ts.SingleStep(1, 0x401001)
	run(t, ts.Lookup(1), []step{peek(6, 0xffff4ff0)})
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
		r := hwbp.NewRegistry()
		ts := NewThreads[int](r)
		for ; len(data) >= 10; data = data[10:] {
			off := uint64(data[0]) | uint64(data[1])<<8
			v := uint64(0)
			for i := 0; i < 8; i++ {
				v |= uint64(data[2+i]) << (8 * i)
			}
			var before [8]uint64
			for i := range before {
				before[i] = ts.Lookup(1).Get(i)
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
			if d := ts.Lookup(1); d != nil {
				img := d.Task().Image()
				dr7 := hwbp.DR7(d.Get(7))
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
		ts.Remove(1)
		if r.Tasks() != 0 || r.Active() {
			t.Fatal("state left after Remove")
		}
	})
}
