package ptrace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// UserSize is sizeof(struct user) in the x86_64 kernel (glibc's sys/user.h
// declares a shorter one).
const UserSize = 928

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
// general registers: the debug registers, and zero for every other field of
// struct user.
func (ts *Threads[K]) PeekUser(k K, off uint64) (uint64, error) {
	if err := checkUserOffset(off); err != nil {
		return 0, err
	}
	if off < DebugRegOffset || off > DebugRegEnd {
		return 0, nil
	}
	return ts.Lookup(k).Get(int(off-DebugRegOffset) / 8), nil
}

// PokeUser is PTRACE_POKEUSR of k at offset off, for offsets past the
// general registers: arch_ptrace writes only the debug registers there and
// fails with EIO for every other field of struct user.
func (ts *Threads[K]) PokeUser(k K, off, v uint64) error {
	if err := checkUserOffset(off); err != nil {
		return err
	}
	if off < DebugRegOffset || off > DebugRegEnd {
		return fmt.Errorf("ptrace: struct user offset %#x is not writable: %w", off, unix.EIO)
	}
	n := int(off-DebugRegOffset) / 8
	if n == 4 || n == 5 {
		// Answered before Get so as not to create state for a write
		// that Linux refuses ("There are no DR4 or DR5 registers").
		return fmt.Errorf("ptrace: write to DR%d: %w", n, unix.EIO)
	}
	return ts.Get(k).Set(n, v)
}
