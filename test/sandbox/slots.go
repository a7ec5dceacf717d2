// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The host's debug-register slots are shared by every process on it, and
// make test runs its test packages at the same time. A CPU-wide breakpoint
// event needs a slot that no thread anywhere has taken all four of (Linux's
// fetch_bp_busy_slots), so a test that compares CPU-wide events with the
// host kernel cannot run its host side while a sandbox of another package
// holds four slots of a stub thread for long. Such tests take the host slots
// lock exclusively (NeedFreeSlots) and the tests whose sandboxes hold four
// slots for long share it (HoldFourSlots), so that neither waits for a
// deadline that a loaded machine can miss.

// slotsLock is the lock file, the same for every test binary on the host.
var slotsLock = filepath.Join(os.TempDir(), "hwbp-host-slots.lock")

// lockSlots takes the host slots lock with how (syscall.LOCK_SH or
// LOCK_EX) until the end of t.
func lockSlots(t testing.TB, how int) {
	t.Helper()
	f, err := os.OpenFile(slotsLock, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("flock %s: %v", slotsLock, err)
	}
	t.Cleanup(func() { f.Close() })
}

// HoldFourSlots marks t as a test whose sandboxes hold all four debug
// register slots of host threads for long, until t ends.
func HoldFourSlots(t testing.TB) { lockSlots(t, syscall.LOCK_SH) }

// NeedFreeSlots waits until no test that holds four slots runs, and keeps
// them from starting until t ends.
func NeedFreeSlots(t testing.TB) { lockSlots(t, syscall.LOCK_EX) }
