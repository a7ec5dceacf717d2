// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package kvm

import (
	"testing"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/platform"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// exit is how one Switch of a fakeContext ends.
type exit struct {
	// trap ends it with a SIGTRAP of code code; a debug exception if
	// debug, with DR6 dr6 (hardware polarity).
	trap  bool
	code  int32
	debug bool
	dr6   hwbp.DR6
}

// armed is what a Switch ran user code with.
type armed struct {
	addr [4]uint64
	dr7  uint64
}

// fakeContext is the KVM platform's task context as the back end sees it:
// debug registers for the next Switch only, and DR6 of the exception that
// ended the last one.
type fakeContext struct {
	platform.Context // only Switch is called

	exits []exit  // how the Switches end, in order
	ran   []armed // what each Switch ran with
	next  armed
	dr6   uint64
	debug bool
	info  linux.SignalInfo
}

func (f *fakeContext) SetDebugRegisters(addr [4]uint64, dr7 uint64) {
	f.next = armed{addr, dr7}
}

func (f *fakeContext) DebugStatus() (uint64, bool) { return f.dr6, f.debug }

func (f *fakeContext) Switch(_ context.Context, _ platform.MemoryManager, ac *arch.Context64, _ int32) (*linux.SignalInfo, hostarch.AccessType, error) {
	f.ran = append(f.ran, f.next)
	f.next = armed{}
	e := exit{}
	if len(f.exits) > 0 {
		e, f.exits = f.exits[0], f.exits[1:]
	}
	f.dr6, f.debug = uint64(e.dr6), e.debug
	if !e.trap {
		return nil, hostarch.NoAccess, nil // a system call
	}
	f.info = linux.SignalInfo{Signo: int32(linux.SIGTRAP), Code: e.code}
	f.info.SetAddr(uint64(ac.IP())) // as the platform does
	return &f.info, hostarch.NoAccess, platform.ErrContextSignal
}

// hwbkpt is the debug exception of a hit of slot 0.
var hwbkpt = exit{trap: true, code: linux.TRAP_HWBKPT, debug: true, dr6: hwbp.DR6Reset | hwbp.DR6Trap0}

const ip = 0x401000

// eflagsRF is EFLAGS.RF, the resume flag.
const eflagsRF = 1 << 16

// TestSwitch checks what the back end arms for a task's Switch and what it
// makes of the debug exceptions that end it.
func TestSwitch(t *testing.T) {
	for _, tc := range []struct {
		name string
		// attr is the task's breakpoint in slot 0, if any; signal makes
		// its hits signal the task, as ptrace's do.
		attr    *hwbp.Attr
		signal  bool
		maxUser uint64
		exits   []exit
		// want: whether each Switch ran with the task's image (or
		// with nothing armed), the signal's code (0: a system call) and
		// whether EFLAGS.RF is set afterwards.
		ran  []bool
		code int32
		rf   bool
	}{
		{
			name: "a task without breakpoints runs with nothing armed",
			ran:  []bool{false},
		},
		{
			name: "a task's enabled breakpoint is armed for its Switch",
			attr: &hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW},
			ran:  []bool{true},
		},
		{
			name: "a disabled breakpoint arms nothing",
			attr: &hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW, Disabled: true},
			ran:  []bool{false},
		},
		{
			name:    "a breakpoint past the end of the address space is not armed",
			attr:    &hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW},
			maxUser: 0x10000,
			ran:     []bool{false},
		},
		{
			name:   "a hit that signals the task is TRAP_HWBKPT",
			attr:   &hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW},
			signal: true,
			exits:  []exit{hwbkpt},
			ran:    []bool{true},
			code:   linux.TRAP_HWBKPT,
		},
		{
			name:   "an execution breakpoint resumes with RF set",
			attr:   &hwbp.Attr{Addr: ip, Len: 8, Type: hwbp.TypeX},
			signal: true,
			exits:  []exit{hwbkpt},
			ran:    []bool{true},
			code:   linux.TRAP_HWBKPT,
			rf:     true,
		},
		{
			name:  "a hit of an event that does not signal is invisible: the task goes on",
			attr:  &hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW},
			exits: []exit{hwbkpt, {}},
			ran:   []bool{true, true},
		},
		{
			name:  "a single-step is TRAP_TRACE",
			attr:  &hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW},
			exits: []exit{{trap: true, code: linux.TRAP_TRACE, debug: true, dr6: hwbp.DR6Reset | hwbp.DR6BS}},
			ran:   []bool{true},
			code:  linux.TRAP_TRACE,
		},
		{
			name:  "an icebp, a debug exception with no reason in DR6, is TRAP_BRKPT",
			attr:  &hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW},
			exits: []exit{{trap: true, code: linux.TRAP_BRKPT, debug: true, dr6: hwbp.DR6Reset}},
			ran:   []bool{true},
			code:  linux.TRAP_BRKPT,
		},
		{
			name:  "a SIGTRAP that is no debug exception (int3) passes unchanged",
			attr:  &hwbp.Attr{Addr: 0x10000, Len: 8, Type: hwbp.TypeW},
			exits: []exit{{trap: true, code: linux.SI_KERNEL}},
			ran:   []bool{true},
			code:  linux.SI_KERNEL,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := hwbp.NewRegistry()
			tasks := hwbp.NewTasks[*kernel.Task](r, nil)
			b := New(tasks)
			if tc.maxUser != 0 {
				b.SetMaxUserAddress(hostarch.Addr(tc.maxUser))
			}
			k := &kernel.Task{}
			var img armed
			if tc.attr != nil {
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
				if _, err := r.Register(task, *tc.attr, handler); err != nil {
					t.Fatal(err)
				}
				i := task.Image()
				img = armed{i.Addr, uint64(i.DR7)}
			}
			ac := &arch.Context64{} // registers only: no FPU state is needed
			ac.SetIP(ip)
			f := &fakeContext{exits: tc.exits}
			info, _, err := b.Switch(k, f, nil, nil, nil, ac, -1)

			if len(f.ran) != len(tc.ran) {
				t.Fatalf("%d Switches ran (%+v), want %d (%+v)", len(f.ran), f.ran, len(tc.ran), tc.ran)
			}
			for i, withImage := range tc.ran {
				want := armed{}
				if withImage {
					want = img
				}
				if f.ran[i] != want {
					t.Errorf("Switch %d ran with %+v, want %+v", i, f.ran[i], want)
				}
			}
			switch {
			case tc.code == 0 && err != nil:
				t.Errorf("Switch: %v, want a system call", err)
			case tc.code != 0 && (err != platform.ErrContextSignal || info.Code != tc.code || info.Addr() != ip):
				t.Errorf("Switch: %v, code %d, addr %#x; want SIGTRAP code %d at %#x", err, info.Code, info.Addr(), tc.code, ip)
			}
			if rf := ac.StateData().Regs.Eflags&eflagsRF != 0; rf != tc.rf {
				t.Errorf("EFLAGS.RF %v, want %v", rf, tc.rf)
			}
		})
	}
}

// TestForeignContext checks that a context without debug registers (a
// platform without hwbp's patches) runs the task, unarmed.
func TestForeignContext(t *testing.T) {
	tasks := hwbp.NewTasks[*kernel.Task](hwbp.NewRegistry(), nil)
	b := New(tasks)
	inner := &plainContext{}
	if _, _, err := b.Switch(&kernel.Task{}, inner, nil, nil, nil, &arch.Context64{}, -1); err != nil || inner.switches != 1 {
		t.Errorf("Switch: %v after %d switches of the platform's context, want one system call", err, inner.switches)
	}
}

// plainContext is a task context without debug registers.
type plainContext struct {
	platform.Context
	switches int
}

func (p *plainContext) Switch(context.Context, platform.MemoryManager, *arch.Context64, int32) (*linux.SignalInfo, hostarch.AccessType, error) {
	p.switches++
	return nil, hostarch.NoAccess, nil
}
