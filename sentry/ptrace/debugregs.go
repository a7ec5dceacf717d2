package ptrace

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// Offsets in struct user on x86_64 (arch/x86/include/asm/user_64.h).
const (
	// RegsSize is sizeof(struct user_regs_struct), the general registers
	// at the start of struct user.
	RegsSize = 27 * 8

	// DebugRegOffset is offsetof(struct user, u_debugreg[0]).
	DebugRegOffset = 848
	// DebugRegEnd is offsetof(struct user, u_debugreg[7]), the last
	// register of the area.
	DebugRegEnd = DebugRegOffset + 7*8
)

// DebugRegs is the ptrace view of one thread's debug registers. The zero
// value is not usable; Threads creates them.
type DebugRegs struct {
	// r is immutable. Every use of it happens to be under mu, which
	// checklocks' lock inference would take for a guard.
	r *hwbp.Registry // +checklocksignore

	mu sync.Mutex

	// task holds the thread's events in the core registry.
	//
	// +checklocks:mu
	task *hwbp.Task

	// bps are the events behind DR0-DR3 (Linux's thread->ptrace_bps);
	// nil until the register is first written.
	//
	// +checklocks:mu
	bps [hwbp.Slots]*hwbp.Breakpoint

	// dr6 is Linux's thread->virtual_dr6: DR6 with the polarity of its
	// reserved bits flipped, so that zero reads back as DR6_RESERVED.
	//
	// +checklocks:mu
	dr6 uint64

	// dr7 is Linux's thread->ptrace_dr7: the last value a tracer wrote to
	// DR7 successfully, returned as is by reads.
	//
	// +checklocks:mu
	dr7 uint64
}

func newDebugRegs(r *hwbp.Registry) *DebugRegs {
	return &DebugRegs{r: r, task: r.NewTask()}
}

// Task returns the thread's events in the core registry, whose Image the
// platform back ends load.
func (d *DebugRegs) Task() *hwbp.Task {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.task
}

// Get returns debug register n (0-7) as PTRACE_PEEKUSR reads it (Linux's
// ptrace_get_debugreg).
func (d *DebugRegs) Get(n int) uint64 {
	if d == nil {
		return fresh(n)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case n < hwbp.Slots:
		if bp := d.bps[n]; bp != nil {
			return bp.Attr().Addr
		}
		return 0
	case n == 6:
		return d.dr6 ^ uint64(hwbp.DR6Reset)
	case n == 7:
		return d.dr7
	}
	return 0 // DR4, DR5
}

// fresh returns what register n reads as on a thread that never had any
// debug register state.
func fresh(n int) uint64 {
	if n == 6 {
		return uint64(hwbp.DR6Reset)
	}
	return 0
}

// Set writes v to debug register n (0-7) as PTRACE_POKEUSR does (Linux's
// ptrace_set_debugreg). Errors wrap the errno Linux returns; on error
// nothing changes.
func (d *DebugRegs) Set(n int, v uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case n < hwbp.Slots:
		return d.setAddrLocked(n, v)
	case n == 6:
		d.dr6 = v ^ uint64(hwbp.DR6Reset)
		return nil
	case n == 7:
		if err := d.writeDR7Locked(v); err != nil {
			return err
		}
		d.dr7 = v
		return nil
	}
	// Linux: "There are no DR4 or DR5 registers".
	return fmt.Errorf("ptrace: write to DR%d: %w", n, unix.EIO)
}

// setAddrLocked is Linux's ptrace_set_breakpoint_addr: the first write to
// DRn registers a disabled one-byte write breakpoint at addr, later writes
// move the existing event, keeping its type, length and state (so a
// misaligned address for its length is EINVAL even while it is disabled).
//
// +checklocks:d.mu
func (d *DebugRegs) setAddrLocked(n int, addr uint64) error {
	bp := d.bps[n]
	if bp == nil {
		bp, err := d.r.Register(d.task, hwbp.Attr{Addr: addr, Len: 1, Type: hwbp.TypeW, Disabled: true}, d.triggered(n))
		if err != nil {
			return err
		}
		d.bps[n] = bp
		return nil
	}
	a := bp.Attr()
	a.Addr = addr
	return bp.Modify(a)
}

// triggered returns the overflow handler of the event behind DRn: Linux's
// ptrace_triggered records the hit in the virtual DR6 under the ptrace
// register number, whichever hardware slot the event occupied.
func (d *DebugRegs) triggered(n int) hwbp.OverflowHandler {
	return func(*hwbp.Breakpoint, hwbp.Hit) {
		d.mu.Lock()
		d.dr6 |= uint64(hwbp.DR6Trap0) << n
		d.mu.Unlock()
	}
}

// eventsDR7Locked is Linux's ptrace_get_dr7: DR7 rebuilt from the enabled
// events (global enables only), which is what a failed DR7 write restores.
//
// +checklocks:d.mu
func (d *DebugRegs) eventsDR7Locked() uint64 {
	var dr7 hwbp.DR7
	for i, bp := range d.bps {
		if bp == nil {
			continue
		}
		a := bp.Attr()
		if a.Disabled {
			continue
		}
		rw, ln, _ := a.Fields()
		dr7 |= hwbp.EncodeSlot(i, rw, ln) | hwbp.DR7GlobalSlowdown
	}
	return uint64(dr7)
}

// writeDR7Locked is Linux's ptrace_write_dr7. Slots are processed in order;
// each one's R/W and LEN fields are converted (EINVAL for I/O, or for an
// execution breakpoint with a length) even when it is disabled, as long as
// it has an event. A slot enabled for the first time registers an event at
// address 0. If any slot fails, a second pass applies the DR7 rebuilt from
// the events as they were, and the first error is returned. Like Linux, the
// second pass leaves previously disabled events retyped as execution
// breakpoints (DR7 fields 0) and keeps events the first pass registered.
//
// +checklocks:d.mu
func (d *DebugRegs) writeDR7Locked(v uint64) error {
	old := d.eventsDR7Locked()
	err := d.applyDR7Locked(v)
	if err != nil {
		if restoreErr := d.applyDR7Locked(old); restoreErr != nil {
			// Linux WARNs here; it cannot happen, since every event
			// was valid with these fields a moment ago.
			return fmt.Errorf("%w (restoring DR7 %#x: %v)", err, old, restoreErr)
		}
	}
	return err
}

// +checklocks:d.mu
func (d *DebugRegs) applyDR7Locked(v uint64) error {
	dr7 := hwbp.DR7(v)
	for i := 0; i < hwbp.Slots; i++ {
		disabled := !dr7.Enabled(i)
		bp := d.bps[i]
		if bp == nil && disabled {
			continue
		}
		typ, length, err := hwbp.AttrFields(dr7.RW(i), dr7.Len(i))
		if err != nil {
			return err
		}
		if bp == nil {
			bp, err := d.r.Register(d.task, hwbp.Attr{Addr: 0, Len: length, Type: typ}, d.triggered(i))
			if err != nil {
				return err
			}
			d.bps[i] = bp
			continue
		}
		a := bp.Attr()
		a.Type, a.Len, a.Disabled = typ, length, disabled
		if err := bp.Modify(a); err != nil {
			return err
		}
	}
	return nil
}

// inheritable returns the values a new thread copies from its creator: Linux
// copies thread_struct whole at clone (arch_dup_task_struct) and then clears
// only ptrace_bps, so virtual_dr6 and ptrace_dr7 come along, no breakpoint
// does.
func (d *DebugRegs) inheritable() (dr6, dr7 uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dr6, d.dr7
}

// release unregisters every event and frees the thread's core state, as
// Linux's flush_ptrace_hw_breakpoint does at exec and exit.
func (d *DebugRegs) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.task.Release()
	d.bps = [hwbp.Slots]*hwbp.Breakpoint{}
	d.dr6, d.dr7 = 0, 0
}
