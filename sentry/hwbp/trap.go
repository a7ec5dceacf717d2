// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

// si_code values of SIGTRAP (include/uapi/asm-generic/siginfo.h).
const (
	TrapBrkpt  = 1 // TRAP_BRKPT
	TrapTrace  = 2 // TRAP_TRACE
	TrapHWBkpt = 4 // TRAP_HWBKPT
)

// Signal is the SIGTRAP that a debug exception turns into.
type Signal struct {
	// Code is si_code.
	Code int32
	// Addr is si_addr: the user instruction pointer after the trap.
	Addr uint64
}

// VirtualDR6 returns t's virtual DR6 as the thread's tracer reads it
// (Linux's ptrace_get_debugreg(6)).
func (t *Task) VirtualDR6() DR6 {
	return DR6(t.dr6.Load()) ^ DR6Reset
}

// SetVirtualDR6 sets t's virtual DR6 to what a tracer wrote (Linux's
// ptrace_set_debugreg(6)).
func (t *Task) SetVirtualDR6(v DR6) {
	t.dr6.Store(uint64(v ^ DR6Reset))
}

// AddVirtualDR6 sets bits of t's virtual DR6: an overflow handler records
// the B bit of its register there (Linux's ptrace_triggered).
func (t *Task) AddVirtualDR6(bits DR6) {
	t.dr6.Or(uint64(bits &^ DR6Reset))
}

// Outcome is what a debug exception makes of the thread that took it.
type Outcome struct {
	// Signal is the SIGTRAP the thread must get, if Deliver.
	Signal  Signal
	Deliver bool

	// ResumeRF is set when an execution breakpoint fired: the thread
	// must resume with EFLAGS.RF set, so that the breakpoint, a fault on
	// the instruction that is about to run, does not fire again before it
	// runs (Linux's hw_breakpoint_handler sets X86_EFLAGS_RF). Where a host
	// kernel took the exception first, it has set RF already; the back
	// end's loop sets it otherwise (backend.Exception.FromCPU).
	ResumeRF bool
}

// Trap delivers a debug exception that thread k took in user mode, with
// real DR6 dr6 and user RIP ip after the trap, while the back end had img
// loaded for it, and returns what becomes of k. It is the single entry point
// for debug exceptions (backend.Loop calls it for every back end), Linux's exc_debug_user
// (arch/x86/kernel/traps.c) with hw_breakpoint_handler
// (arch/x86/kernel/hw_breakpoint.c):
//
//   - the virtual DR6 restarts from the BS bit of the real DR6, so that
//     tracers see single-steps in DR6 too;
//   - a DR6 that gives no reason at all is an icebp (INT1, 0xf1): it still
//     makes a SIGTRAP;
//   - every event of img whose slot's B bit is set fires (hit count,
//     overflow handler), and its B bit is consumed, except an execution
//     breakpoint reported together with a single-step: the step, a trap,
//     takes precedence, and the breakpoint, a fault, is left to fire at
//     the next exception (its B bit is not consumed, nor is RF set). An
//     execution breakpoint that fires asks for RF on resume (ResumeRF);
//   - a B bit of a slot without an event is not consumed;
//   - a debug exception that reports nothing but hits of host events
//     (Registry.RegisterHost) fires them and is invisible to the guest: the
//     virtual DR6 keeps its value and no SIGTRAP is due;
//   - a SIGTRAP is due if BS or any B bit remains set in the real DR6
//     combined with the virtual one, or for an icebp, with si_code
//     TRAP_TRACE for a single-step, TRAP_HWBKPT for a breakpoint and
//     TRAP_BRKPT otherwise (get_si_code), and si_addr the user RIP
//     (send_sigtrap).
//
// A back end that has no image (a trap with nothing armed) passes an empty
// one.
func (ts *Tasks[K]) Trap(k K, img *Image, dr6 DR6, ip uint64) Outcome {
	if img.hostOnly(dr6) {
		// Only events of the host fired: the guest sees nothing of
		// it, neither in its virtual DR6 nor as a signal.
		var out Outcome
		for slot := 0; slot < Slots; slot++ {
			if dr6.Hit(slot) {
				img.fire(slot, ip)
				out.ResumeRF = out.ResumeRF || img.DR7.RW(slot) == RWExecute
			}
		}
		return out
	}
	t := ts.Lookup(k)
	if t == nil && dr6&DR6BS != 0 {
		// The virtual DR6 must show the single-step. If k is exiting,
		// there is no tracer left to read it.
		t, _ = ts.Get(k)
	}
	if t != nil {
		t.dr6.Store(uint64(dr6 & DR6BS))
	}
	icebp := dr6 == DR6Reset

	var out Outcome
	cond := dr6 &^ DR6Reset
	for slot := 0; slot < Slots; slot++ {
		if !dr6.Hit(slot) || img.Breakpoint(slot) == nil {
			continue
		}
		exec := img.DR7.RW(slot) == RWExecute
		if exec && dr6&DR6BS != 0 {
			continue
		}
		cond &^= DR6Trap0 << slot
		img.fire(slot, ip)
		out.ResumeRF = out.ResumeRF || exec
	}
	if t != nil {
		cond |= DR6(t.dr6.Load())
	}
	switch {
	case cond&DR6BS != 0:
		out.Signal, out.Deliver = Signal{Code: TrapTrace, Addr: ip}, true
	case cond&DR6TrapBits != 0:
		out.Signal, out.Deliver = Signal{Code: TrapHWBkpt, Addr: ip}, true
	case icebp:
		out.Signal, out.Deliver = Signal{Code: TrapBrkpt, Addr: ip}, true
	}
	return out
}

// hostOnly reports whether the debug exception dr6 reports hits of host
// events (Registry.RegisterHost) of img and nothing else: no single-step, no
// other reason, no B bit of a guest event or of a slot without an event.
func (img *Image) hostOnly(dr6 DR6) bool {
	if dr6&^(DR6Reset|DR6TrapBits) != 0 || dr6&DR6TrapBits == 0 {
		return false
	}
	for slot := 0; slot < Slots; slot++ {
		if !dr6.Hit(slot) {
			continue
		}
		if bp := img.Breakpoint(slot); bp == nil || !bp.host {
			return false
		}
	}
	return true
}

// SingleStep is Trap for a single-step trap that thread k took with no
// image loaded.
func (ts *Tasks[K]) SingleStep(k K, ip uint64) Outcome {
	return ts.Trap(k, &Image{}, DR6Reset|DR6BS, ip)
}

// Icebp is Trap for an icebp (INT1) that thread k executed with no image
// loaded.
func (ts *Tasks[K]) Icebp(k K, ip uint64) Outcome {
	return ts.Trap(k, &Image{}, DR6Reset, ip)
}
