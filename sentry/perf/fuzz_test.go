// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"testing"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// FuzzOpen feeds arbitrary attributes, cpus and read sizes through
// CopyAttr, CheckOpen, Open, the ioctls and Read: nothing may panic, every
// registered breakpoint lies in the user address space, and closing the
// event frees its slot.
func FuzzOpen(f *testing.F) {
	f.Add(watchpoint(), int32(-1), true, 100)
	f.Add(make([]byte, 8), int32(0), false, 0)
	f.Fuzz(func(t *testing.T, raw []byte, cpu int32, hasTask bool, n int) {
		var m memory
		copy(m.page[:], raw)
		a, err := CopyAttr(m.read, testAddr)
		if err != nil {
			return
		}
		if err := a.CheckOpen(); err != nil {
			return
		}
		fx := newFixture()
		target := fx.target(1)
		target.CPU, target.HasTask = cpu, hasTask
		ev, err := fx.events.Open(a, target, Group[thread]{})
		if err != nil {
			if task := fx.tasks.Lookup(1); task != nil && task.SlotsInUse() != 0 {
				t.Fatalf("a failed Open left %d slots in use", task.SlotsInUse())
			}
			return
		}
		task := fx.tasks.Lookup(1)
		img := task.Image()
		for slot := 0; slot < hwbp.Slots; slot++ {
			if img.DR7.Enabled(slot) && img.Addr[slot] >= hwbp.TaskSizeMax {
				t.Fatalf("slot %d armed at %#x", slot, img.Addr[slot])
			}
		}
		ev.Enable(true)
		ev.Reset(false)
		_ = ev.SetPeriod(uint64(n))
		_, _ = ev.Read(n)
		ev.Close()
		if task.SlotsInUse() != 0 {
			t.Fatalf("Close left %d slots in use", task.SlotsInUse())
		}
	})
}
