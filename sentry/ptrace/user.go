// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package ptrace

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// errExited is the error of a write to a thread that began to exit while
// the write was under way.
var errExited = fmt.Errorf("ptrace: thread has exited: %w", unix.ESRCH)

// checkUserOffset makes arch_ptrace's offset check for PEEKUSR and POKEUSR
// (arch/x86/kernel/ptrace.c): the offset is word-aligned and inside struct
// user (it is unsigned, so "negative" offsets are huge). Offsets of the
// general registers are not this package's business.
func checkUserOffset(off uint64) error {
	if off%8 != 0 || off >= UserSize {
		return fmt.Errorf("ptrace: offset %#x of struct user: %w", off, unix.EIO)
	}
	if off < RegsSize {
		return fmt.Errorf("ptrace: offset %#x is a general register: %w", off, unix.EIO)
	}
	return nil
}

// PeekUser is PTRACE_PEEKUSR of k at offset off, for offsets past the
// general registers: the debug registers (Linux's ptrace_get_debugreg), and
// zero for every other field of struct user. A thread without state reads
// like a fresh Linux thread.
func (ts *Threads[K]) PeekUser(k K, off uint64) (uint64, error) {
	if err := checkUserOffset(off); err != nil {
		return 0, err
	}
	if off < DebugRegOffset || off > DebugRegEnd {
		return 0, nil
	}
	t, d := ts.lookup(k)
	switch n := int(off-DebugRegOffset) / 8; n {
	case 4, 5:
		return 0, nil
	case 6:
		if t == nil {
			return uint64(hwbp.DR6Reset), nil
		}
		return uint64(t.VirtualDR6()), nil
	default:
		return d.get(n), nil
	}
}

// PokeUser is PTRACE_POKEUSR of k at offset off, for offsets past the
// general registers: arch_ptrace writes only the debug registers there
// (Linux's ptrace_set_debugreg) and fails with EIO for every other field of
// struct user. Errors wrap the errno Linux returns; on error nothing
// changes.
//
// A write to a thread that began to exit since the caller found it stopped
// (a SIGKILL woke it) succeeds and keeps nothing: on Linux the write lands
// while the thread is still frozen in its stop, and its exit then flushes
// it.
func (ts *Threads[K]) PokeUser(k K, off, v uint64) error {
	if err := checkUserOffset(off); err != nil {
		return err
	}
	if off < DebugRegOffset || off > DebugRegEnd {
		return fmt.Errorf("ptrace: struct user offset %#x is not writable: %w", off, unix.EIO)
	}
	n := int(off-DebugRegOffset) / 8
	if n == 4 || n == 5 {
		// Answered before get so as not to create state for a write
		// that Linux refuses ("There are no DR4 or DR5 registers").
		return fmt.Errorf("ptrace: write to DR%d: %w", n, unix.EIO)
	}
	t, d, err := ts.get(k)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return err
	}
	if n == 6 {
		t.SetVirtualDR6(hwbp.DR6(v))
		return nil
	}
	err = d.set(ts.tasks.Registry(), t, n, v)
	if errors.Is(err, unix.ESRCH) {
		return nil // t was released by k's exit meanwhile
	}
	return err
}
