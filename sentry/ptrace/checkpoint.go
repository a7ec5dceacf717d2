// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package ptrace

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// ThreadState is everything a tracer can observe of one thread's debug
// registers, as a checkpoint of the sandbox keeps it: the events behind
// DR0-DR3 with their attributes, the DR7 and DR6 values that reads return.
type ThreadState struct {
	// DR6 is the virtual DR6 as PTRACE_PEEKUSR reads it.
	DR6 uint64
	// DR7 is ptrace_dr7, the last DR7 written successfully.
	DR7 uint64
	// Used[n] tells whether DRn has an event, whose attributes are
	// Attr[n].
	Used [hwbp.Slots]bool
	Attr [hwbp.Slots]hwbp.Attr
}

// Save returns k's state, or false if k reads like a fresh thread (nothing
// to keep).
func (ts *Threads[K]) Save(k K) (ThreadState, bool) {
	t, d := ts.lookup(k)
	if t == nil {
		return ThreadState{}, false
	}
	st := ThreadState{DR6: uint64(t.VirtualDR6())}
	if d != nil {
		d.mu.Lock()
		st.DR7 = d.dr7
		for n, bp := range d.bps {
			if bp != nil {
				st.Used[n], st.Attr[n] = true, bp.Attr()
			}
		}
		d.mu.Unlock()
	}
	if st == (ThreadState{DR6: uint64(hwbp.DR6Reset)}) {
		return ThreadState{}, false
	}
	return st, true
}

// Restore gives k, a thread without state (restored from a checkpoint),
// the state st that Save returned. The events are registered anew with
// their saved attributes, so that they fire again.
func (ts *Threads[K]) Restore(k K, st ThreadState) error {
	t, d, err := ts.get(k)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for n, bp := range d.bps {
		if bp != nil {
			return fmt.Errorf("ptrace: restoring DR%d of a thread that has it: %w", n, unix.EEXIST)
		}
	}
	for n := range st.Used {
		if !st.Used[n] {
			continue
		}
		bp, err := ts.tasks.Registry().Register(t, st.Attr[n], triggered(n))
		if err != nil {
			return fmt.Errorf("ptrace: restoring DR%d %v: %w", n, st.Attr[n], err)
		}
		d.bps[n] = bp
	}
	d.dr7 = st.DR7
	t.SetVirtualDR6(hwbp.DR6(st.DR6))
	return nil
}
