// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package backend

import (
	"errors"
	"testing"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/platform"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

const (
	ip = 0x401000
	// hostAddr is the si_addr of the platform's SIGTRAPs, distinct from
	// ip so that a rewrite shows.
	hostAddr = 0x1234
	// perfData stands for a host perf event's fields in the siginfo.
	perfData = 0x5a
)

// fakeArming reads each Switch's SIGTRAP as the next of its exceptions, and
// records its calls.
type fakeArming struct {
	armErr     error
	exceptions []Exception
	arms       int
	dones      int
}

func (f *fakeArming) Arm(run Run) (int, error) {
	if f.armErr != nil {
		return 0, f.armErr
	}
	f.arms++
	return f.arms, nil
}

func (f *fakeArming) Exception(run Run, r int, info *linux.SignalInfo) Exception {
	ex := f.exceptions[0]
	f.exceptions = f.exceptions[1:]
	return ex
}

func (f *fakeArming) Done(run Run, r int) {
	if r != f.arms {
		panic("Done of another run than the last armed")
	}
	f.dones++
}

// trapContext is a platform context whose Switches end with a SIGTRAP as
// long as traps remains, then with a system call.
type trapContext struct {
	platform.Context // only Switch is called

	traps    int
	switches int
	info     linux.SignalInfo
}

func (c *trapContext) Switch(context.Context, platform.MemoryManager, *arch.Context64, int32) (*linux.SignalInfo, hostarch.AccessType, error) {
	c.switches++
	if c.traps == 0 {
		return nil, hostarch.NoAccess, nil
	}
	c.traps--
	c.info = linux.SignalInfo{Signo: int32(linux.SIGTRAP), Code: linux.SI_KERNEL}
	c.info.Fields[len(c.info.Fields)-1] = perfData
	c.info.SetAddr(hostAddr)
	return &c.info, hostarch.NoAccess, platform.ErrContextSignal
}

// TestLoop checks what Loop.Switch makes of each kind of exception.
func TestLoop(t *testing.T) {
	hit := Exception{Kind: Debug, DR6: hwbp.DR6Reset | hwbp.DR6Trap0}
	for _, tc := range []struct {
		name string
		// attr is the task's breakpoint in slot 0 (its image goes into
		// every exception), signalling if signal.
		attr   hwbp.Attr
		signal bool
		ex     []Exception
		// want: the Switches run, the SIGTRAP's code (0: the system
		// call after the traps), whether its address is the task's
		// ip and its perf data cleared, and EFLAGS.RF.
		switches  int
		code      int32
		rewritten bool
		plain     bool
		rf        bool
	}{
		{
			name:     "a foreign SIGTRAP reaches the guest as the platform reported it",
			ex:       []Exception{{}},
			switches: 1,
			code:     linux.SI_KERNEL,
		},
		{
			name:     "a spurious one is invisible: the task runs again",
			ex:       []Exception{{Kind: Spurious}},
			switches: 2,
		},
		{
			name:     "a seen one is recorded and reaches the guest unchanged",
			ex:       []Exception{{Kind: Seen, DR6: hwbp.DR6Reset}},
			switches: 1,
			code:     linux.SI_KERNEL,
		},
		{
			name:      "a hit of a signalling breakpoint is rewritten into TRAP_HWBKPT at ip",
			attr:      hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW},
			signal:    true,
			ex:        []Exception{hit},
			switches:  1,
			code:      linux.TRAP_HWBKPT,
			rewritten: true,
		},
		{
			name:      "a plain one loses the host's perf data",
			attr:      hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW},
			signal:    true,
			ex:        []Exception{{Kind: Debug, DR6: hit.DR6, Plain: true}},
			switches:  1,
			code:      linux.TRAP_HWBKPT,
			rewritten: true,
			plain:     true,
		},
		{
			name:     "a hit of a breakpoint that does not signal is invisible",
			attr:     hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW},
			ex:       []Exception{hit},
			switches: 2,
		},
		{
			name:      "an execution breakpoint from the CPU resumes with RF set",
			attr:      hwbp.Attr{Addr: ip, Len: 8, Type: hwbp.TypeX},
			signal:    true,
			ex:        []Exception{{Kind: Debug, DR6: hit.DR6, FromCPU: true}},
			switches:  1,
			code:      linux.TRAP_HWBKPT,
			rewritten: true,
			rf:        true,
		},
		{
			name:      "one that a host kernel reported has RF set by it already",
			attr:      hwbp.Attr{Addr: ip, Len: 8, Type: hwbp.TypeX},
			signal:    true,
			ex:        []Exception{hit},
			switches:  1,
			code:      linux.TRAP_HWBKPT,
			rewritten: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := hwbp.NewRegistry()
			tasks := hwbp.NewTasks[*kernel.Task](r, nil)
			k := &kernel.Task{}
			var img hwbp.Image
			if tc.attr.Len != 0 {
				task, err := tasks.Get(k)
				if err != nil {
					t.Fatal(err)
				}
				var handler hwbp.OverflowHandler
				if tc.signal {
					handler = func(bp *hwbp.Breakpoint, hit hwbp.Hit) {
						bp.Task().AddVirtualDR6(hwbp.DR6Trap0 << hit.Slot)
					}
				}
				if _, err := r.Register(task, tc.attr, handler); err != nil {
					t.Fatal(err)
				}
				img = task.Image()
			}
			for i := range tc.ex {
				tc.ex[i].Image = img
			}
			a := &fakeArming{exceptions: tc.ex}
			var l Loop[int]
			l.Init(tasks, a)
			ac := &arch.Context64{} // registers only: no FPU state is needed
			ac.SetIP(ip)
			inner := &trapContext{traps: len(tc.ex)}

			info, _, err := l.Switch(k, inner, nil, nil, nil, ac, -1)
			if inner.switches != tc.switches || a.arms != tc.switches || a.dones != tc.switches {
				t.Errorf("%d Switches, %d arms, %d dones; want %d of each", inner.switches, a.arms, a.dones, tc.switches)
			}
			if tc.code == 0 {
				if err != nil {
					t.Errorf("Switch: %v, want the system call", err)
				}
				return
			}
			if err != platform.ErrContextSignal || info.Code != tc.code {
				t.Fatalf("Switch: %v, %+v; want SIGTRAP code %d", err, info, tc.code)
			}
			if wantAddr := map[bool]uint64{false: hostAddr, true: ip}[tc.rewritten]; info.Addr() != wantAddr {
				t.Errorf("si_addr %#x, want %#x", info.Addr(), wantAddr)
			}
			if plain := info.Fields[len(info.Fields)-1] == 0; plain != tc.plain {
				t.Errorf("perf data cleared: %v, want %v", plain, tc.plain)
			}
			if rf := ac.StateData().Regs.Eflags&eflagsRF != 0; rf != tc.rf {
				t.Errorf("EFLAGS.RF %v, want %v", rf, tc.rf)
			}
		})
	}
}

// TestSeenRecordsDR6 checks that a seen single-step reaches the core: the
// tracer's view of DR6 shows it.
func TestSeenRecordsDR6(t *testing.T) {
	tasks := hwbp.NewTasks[*kernel.Task](hwbp.NewRegistry(), nil)
	k := &kernel.Task{}
	a := &fakeArming{exceptions: []Exception{{Kind: Seen, DR6: hwbp.DR6Reset | hwbp.DR6BS}}}
	var l Loop[int]
	l.Init(tasks, a)
	if _, _, err := l.Switch(k, &trapContext{traps: 1}, nil, nil, nil, &arch.Context64{}, -1); err != platform.ErrContextSignal {
		t.Fatalf("Switch: %v, want the SIGTRAP", err)
	}
	task := tasks.Lookup(k)
	if task == nil || task.VirtualDR6()&hwbp.DR6BS == 0 {
		t.Errorf("virtual DR6 does not show the single-step")
	}
}

// TestArmError checks that a back end that cannot arm ends the Switch with
// its error, before the platform's Switch and without a Done.
func TestArmError(t *testing.T) {
	want := errors.New("not the platform's address space")
	a := &fakeArming{armErr: want}
	var l Loop[int]
	l.Init(hwbp.NewTasks[*kernel.Task](hwbp.NewRegistry(), nil), a)
	inner := &trapContext{}
	if _, _, err := l.Switch(&kernel.Task{}, inner, nil, nil, nil, &arch.Context64{}, -1); err != want || inner.switches != 0 || a.dones != 0 {
		t.Errorf("Switch: %v after %d Switches and %d dones, want %v after none", err, inner.switches, a.dones, want)
	}
}

// TestImageBelowLimit checks that what a back end may arm stops at the end
// of the application's address space.
func TestImageBelowLimit(t *testing.T) {
	r := hwbp.NewRegistry()
	tasks := hwbp.NewTasks[*kernel.Task](r, nil)
	task, err := tasks.Get(&kernel.Task{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(task, hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW}, nil); err != nil {
		t.Fatal(err)
	}
	var l Loop[int]
	l.Init(tasks, &fakeArming{})
	if l.Image(task).Empty() {
		t.Errorf("nothing to arm without a limit")
	}
	l.SetMaxUserAddress(0x10004)
	if img := l.Image(task); !img.Empty() {
		t.Errorf("a breakpoint across the limit is armed: %+v", img)
	}
	if !l.Image(nil).Empty() {
		t.Errorf("a task without state has something to arm")
	}
}

// TestSwitchDoesNotAllocate checks that a Switch through the loop allocates
// nothing of its own.
func TestSwitchDoesNotAllocate(t *testing.T) {
	var l Loop[int]
	l.Init(hwbp.NewTasks[*kernel.Task](hwbp.NewRegistry(), nil), &fakeArming{})
	k, inner, ac := &kernel.Task{}, &trapContext{}, &arch.Context64{}
	if n := testing.AllocsPerRun(100, func() { l.Switch(k, inner, nil, nil, nil, ac, -1) }); n != 0 {
		t.Errorf("%v allocations per Switch", n)
	}
}
