// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package ptrace

import (
	"testing"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	gvptrace "gvisor.dev/gvisor/pkg/sentry/platform/ptrace"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp/backend"
)

// fakeRegs is a host thread's debug registers whose writes to DR7 with
// anything enabled fail with refuse (the host's own breakpoints hold the
// debug registers) while refuse is set.
type fakeRegs struct {
	refuse unix.Errno
	regs   [8]uint64
	writes int
}

func (f *fakeRegs) peek(tid int32, off uint64) (uint64, error) {
	return f.regs[(off-debugRegOffset)/8], nil
}

func (f *fakeRegs) poke(tid int32, off, v uint64) error {
	f.writes++
	if off == dr7Offset && v != 0 && f.refuse != 0 {
		return f.refuse
	}
	f.regs[(off-debugRegOffset)/8] = v
	return nil
}

// TestHostRefusalDoesNotKill checks that a host that refuses to arm a stub
// thread's debug registers costs the task its breakpoints, not its life:
// arm returns a state (Switch then runs the task) that attributes no hit to
// the task, counts the refusal, and arms everything once the host accepts.
func TestHostRefusalDoesNotKill(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse unix.Errno
	}{
		{"ENOSPC from the host's pinned breakpoints", unix.ENOSPC},
		{"EIO from a host thread that went away", unix.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := hwbp.NewRegistry()
			tasks := hwbp.NewTasks[*kernel.Task](r, nil)
			b := New(tasks)
			host := &fakeRegs{refuse: tc.refuse}
			b.host = host
			k := &kernel.Task{}
			task, _ := tasks.Get(k)
			if _, err := r.Register(task, hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW}, nil); err != nil {
				t.Fatal(err)
			}
			stub := gvptrace.StubThread{TID: 42}
			st := b.arm(stub, task)
			if st.task != nil || b.failures.Load() != 1 {
				t.Fatalf("after a refusal: state owned by %v, %d failures counted", st.task, b.failures.Load())
			}
			if host.regs[7] != 0 {
				t.Fatalf("DR7 %#x armed although the host refused", host.regs[7])
			}
			// Refused again at the next Switch, until the host accepts.
			b.arm(stub, task)
			host.refuse = 0
			st = b.arm(stub, task)
			if st.task != task || hwbp.DR7(host.regs[7]) != st.img.DR7 || host.regs[0] != 0x10000 {
				t.Fatalf("once the host accepts: owner %v, DR7 %#x DR0 %#x", st.task, host.regs[7], host.regs[0])
			}
			// An unchanged image is not written again.
			n := host.writes
			b.arm(stub, task)
			if host.writes != n {
				t.Errorf("an unchanged image was written again")
			}
			// Another task without breakpoints disarms the stub thread.
			if st := b.arm(stub, nil); st.task != nil || host.regs[7] != 0 {
				t.Errorf("a task without breakpoints ran with DR7 %#x", host.regs[7])
			}
		})
	}
}

// TestArmedPathDoesNotAllocate checks that a Switch of a task whose image
// the stub thread holds already, or of a task without breakpoints on a clean
// stub thread, allocates nothing and writes nothing.
func TestArmedPathDoesNotAllocate(t *testing.T) {
	r := hwbp.NewRegistry()
	tasks := hwbp.NewTasks[*kernel.Task](r, nil)
	b := New(tasks)
	host := &fakeRegs{}
	b.host = host
	task, _ := tasks.Get(&kernel.Task{})
	if _, err := r.Register(task, hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW}, nil); err != nil {
		t.Fatal(err)
	}
	armed, clean := gvptrace.StubThread{TID: 1}, gvptrace.StubThread{TID: 2}
	b.arm(armed, task)
	writes := host.writes
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"task whose image is loaded", func() { b.arm(armed, task) }},
		{"task without breakpoints on a clean stub thread", func() { b.arm(clean, nil) }},
	} {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocations", tc.name, n)
		}
	}
	if host.writes != writes {
		t.Errorf("%d host writes on the unchanged path", host.writes-writes)
	}
}

// TestException checks how a host SIGTRAP of a stub thread is read: which
// ones are the task's debug exceptions, with what DR6, and which are not.
func TestException(t *testing.T) {
	b0 := uint64(hwbp.DR6Reset | hwbp.DR6Trap0)
	for _, tc := range []struct {
		name string
		// armed: whether the stub thread holds the task's image; dr6 is
		// what the host's DR6 reads.
		armed bool
		code  int32
		dr6   uint64
		want  backend.Kind
		// wantDR6 is the exception's DR6, for Debug and Seen.
		wantDR6 hwbp.DR6
	}{
		{"an icebp is seen by the host already", true, linux.TRAP_BRKPT, b0, backend.Seen, hwbp.DR6Reset},
		{"an int3 is foreign", true, linux.SI_KERNEL, b0, backend.Foreign, 0},
		{"a hit of the task's image is its debug exception", true, linux.TRAP_HWBKPT, b0, backend.Debug, hwbp.DR6(b0)},
		{"a hit with nothing of the task's armed is spurious", false, linux.TRAP_HWBKPT, b0, backend.Spurious, 0},
		{"a single-step on a disarmed stub thread reads no DR6", false, linux.TRAP_TRACE, b0, backend.Debug, hwbp.DR6Reset | hwbp.DR6BS},
		{"a DR6 that gives no reason is foreign", true, linux.TRAP_HWBKPT, uint64(hwbp.DR6Reset), backend.Foreign, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := hwbp.NewRegistry()
			tasks := hwbp.NewTasks[*kernel.Task](r, nil)
			b := New(tasks)
			host := &fakeRegs{}
			b.host = host
			k := &kernel.Task{}
			task, _ := tasks.Get(k)
			if _, err := r.Register(task, hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW}, nil); err != nil {
				t.Fatal(err)
			}
			stub := gvptrace.StubThread{TID: 42}
			var st stubState
			if tc.armed {
				st = b.arm(stub, task)
			}
			host.regs[6] = tc.dr6
			info := linux.SignalInfo{Signo: int32(linux.SIGTRAP), Code: tc.code}
			ex := b.Exception(backend.Run{Task: k, State: task}, stubRun{stub: stub, st: st}, &info)
			if ex.Kind != tc.want {
				t.Fatalf("kind %d, want %d", ex.Kind, tc.want)
			}
			if tc.want != backend.Debug && tc.want != backend.Seen {
				return
			}
			if ex.DR6 != tc.wantDR6 || ex.FromCPU || ex.Plain {
				t.Errorf("DR6 %#x FromCPU %v Plain %v, want DR6 %#x from the host", uint64(ex.DR6), ex.FromCPU, ex.Plain, uint64(tc.wantDR6))
			}
			if tc.want == backend.Debug && ex.Image.DR7 != st.img.DR7 {
				t.Errorf("image DR7 %#x, want the stub thread's %#x", uint64(ex.Image.DR7), uint64(st.img.DR7))
			}
			if tc.want == backend.Debug && tc.armed && host.regs[6] != uint64(hwbp.DR6Reset) {
				t.Errorf("host DR6 %#x left after the exception, want it reset", host.regs[6])
			}
		})
	}
}
