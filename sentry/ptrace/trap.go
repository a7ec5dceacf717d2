package ptrace

import (
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

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

// trap delivers a debug exception taken in user mode to this thread, as
// Linux's exc_debug_user (arch/x86/kernel/traps.c) does:
//
//   - the virtual DR6 restarts from the BS bit of the real DR6, so that
//     tracers see single-steps in DR6 too;
//   - every event of img whose slot's B bit is set fires (hit count,
//     overflow handler); the ptrace events' handler (ptrace_triggered) sets
//     the B bit of their ptrace register number in the virtual DR6. The
//     real B bits of slots that held an event are consumed, as
//     hw_breakpoint_handler clears them;
//   - a SIGTRAP is due if BS or any B bit remains set in the real DR6
//     combined with the virtual one, with si_code TRAP_TRACE for a
//     single-step and TRAP_HWBKPT otherwise (get_si_code), and si_addr the
//     user RIP (send_sigtrap).
func (d *DebugRegs) trap(img *hwbp.Image, dr6 hwbp.DR6, ip uint64) (Signal, bool) {
	d.mu.Lock()
	d.dr6 = uint64(dr6 & hwbp.DR6BS)
	d.mu.Unlock()

	img.Fire(dr6, nil)

	cond := dr6 &^ hwbp.DR6TrapBits
	for slot := 0; slot < hwbp.Slots; slot++ {
		if dr6.Hit(slot) && img.Breakpoint(slot) == nil {
			cond |= hwbp.DR6Trap0 << slot
		}
	}
	d.mu.Lock()
	cond |= hwbp.DR6(d.dr6)
	d.mu.Unlock()

	switch {
	case cond&hwbp.DR6BS != 0:
		return Signal{Code: TrapTrace, Addr: ip}, true
	case cond&hwbp.DR6TrapBits != 0:
		return Signal{Code: TrapHWBkpt, Addr: ip}, true
	}
	return Signal{}, false
}
