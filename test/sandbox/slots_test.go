// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestNeedFreeSlotsWaits checks that NeedFreeSlots waits while a test holds
// four slots, and goes on once it is done.
func TestNeedFreeSlotsWaits(t *testing.T) {
	slotsLock = filepath.Join(t.TempDir(), "slots.lock")
	holder, err := os.OpenFile(slotsLock, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	taken := make(chan struct{})
	go func() {
		NeedFreeSlots(t)
		close(taken)
	}()
	select {
	case <-taken:
		t.Fatal("NeedFreeSlots went on while a test held four slots")
	case <-time.After(200 * time.Millisecond):
	}
	holder.Close()
	select {
	case <-taken:
	case <-time.After(time.Minute):
		t.Fatal("NeedFreeSlots still waits after the holder is done")
	}
}
