// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package ptrace

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// extensionKey names the ptrace state of a thread's hwbp.Task.
var extensionKey = hwbp.NewExtensionKey("ptrace")

// DebugRegs is the ptrace view of one thread's debug registers beyond the
// virtual DR6, which the core keeps: Linux's thread_struct fields
// ptrace_bps and ptrace_dr7. It is the hwbp.Extension of the thread's Task.
type DebugRegs struct {
	mu sync.Mutex

	// bps are the events behind DR0-DR3 (Linux's thread->ptrace_bps);
	// nil until the register is first written.
	//
	// +checklocks:mu
	bps [hwbp.Slots]*hwbp.Breakpoint

	// dr7 is Linux's thread->ptrace_dr7: the last value a tracer wrote to
	// DR7 successfully, returned as is by reads.
	//
	// +checklocks:mu
	dr7 uint64
}

// Clone implements hwbp.Extension.Clone: Linux copies ptrace_dr7 with the
// rest of thread_struct at clone and then clears ptrace_bps.
func (d *DebugRegs) Clone() hwbp.Extension {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dr7 == 0 {
		return nil
	}
	return &DebugRegs{dr7: d.dr7}
}

// Exec implements hwbp.Extension.Exec: Linux's flush_ptrace_hw_breakpoint
// unregisters the ptrace breakpoints and clears ptrace_dr7 (the core resets
// the virtual DR6).
func (d *DebugRegs) Exec() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, bp := range d.bps {
		if bp != nil {
			bp.Unregister()
			d.bps[i] = nil
		}
	}
	d.dr7 = 0
}

// get returns debug register n (0-3 or 7) as PTRACE_PEEKUSR reads it
// (Linux's ptrace_get_debugreg). A nil d reads like a fresh thread.
func (d *DebugRegs) get(n int) uint64 {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case n < hwbp.Slots:
		if bp := d.bps[n]; bp != nil {
			return bp.Attr().Addr
		}
	case n == 7:
		return d.dr7
	}
	return 0
}

// set writes v to debug register n (0-3 or 7) of the thread whose Task is t,
// in registry r, as PTRACE_POKEUSR does (Linux's ptrace_set_debugreg).
// Errors wrap the errno Linux returns; on error nothing changes.
func (d *DebugRegs) set(r *hwbp.Registry, t *hwbp.Task, n int, v uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case n < hwbp.Slots:
		return d.setAddrLocked(r, t, n, v)
	case n == 7:
		if err := d.writeDR7Locked(r, t, v); err != nil {
			return err
		}
		d.dr7 = v
		return nil
	}
	return fmt.Errorf("ptrace: write to DR%d: %w", n, unix.EIO)
}

// setAddrLocked is Linux's ptrace_set_breakpoint_addr: the first write to
// DRn registers a disabled one-byte write breakpoint at addr, later writes
// move the existing event, keeping its type, length and state (so a
// misaligned address for its length is EINVAL even while it is disabled).
//
// +checklocks:d.mu
func (d *DebugRegs) setAddrLocked(r *hwbp.Registry, t *hwbp.Task, n int, addr uint64) error {
	bp := d.bps[n]
	if bp == nil {
		bp, err := r.Register(t, hwbp.Attr{Addr: addr, Len: 1, Type: hwbp.TypeW, Disabled: true}, triggered(n))
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
func triggered(n int) hwbp.OverflowHandler {
	return func(bp *hwbp.Breakpoint, _ hwbp.Hit) {
		bp.Task().AddVirtualDR6(hwbp.DR6Trap0 << n)
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
func (d *DebugRegs) writeDR7Locked(r *hwbp.Registry, t *hwbp.Task, v uint64) error {
	old := d.eventsDR7Locked()
	err := d.applyDR7Locked(r, t, v)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		// (ESRCH: t's exit flushed its events meanwhile; there is
		// nothing left to restore.)
		if restoreErr := d.applyDR7Locked(r, t, old); restoreErr != nil {
			// Linux WARNs here; it cannot happen, since every event
			// was valid with these fields a moment ago.
			return fmt.Errorf("%w (restoring DR7 %#x: %v)", err, old, restoreErr)
		}
	}
	return err
}

// +checklocks:d.mu
func (d *DebugRegs) applyDR7Locked(r *hwbp.Registry, t *hwbp.Task, v uint64) error {
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
			bp, err := r.Register(t, hwbp.Attr{Addr: 0, Len: length, Type: typ}, triggered(i))
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
