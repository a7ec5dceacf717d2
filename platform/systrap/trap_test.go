// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/abi/linux"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp/backend"
)

// perfSignal returns the SIGTRAP that a host event sends with sig_data data
// and si_perf_flags flags for a hit at addr.
func perfSignal(addr, data uint64, flags uint32) linux.SignalInfo {
	info := linux.SignalInfo{Signo: int32(linux.SIGTRAP), Code: trapPerf}
	info.SetAddr(addr)
	binary.LittleEndian.PutUint64(info.Fields[8:], data)
	binary.LittleEndian.PutUint32(info.Fields[20:], flags)
	return info
}

// TestException checks how a SIGTRAP of a stub thread is read: which ones are
// the task's debug exceptions, with what DR6, and which are not. The task's
// watchpoint at 0x10000 is in slot 0 and at position 0 of the space's events;
// no stub thread is known, so only the signal tells which event fired.
func TestException(t *testing.T) {
	b0 := hwbp.DR6Reset | hwbp.DR6Trap0
	for _, tc := range []struct {
		name    string
		info    linux.SignalInfo
		noSpace bool
		want    backend.Kind
		wantDR6 hwbp.DR6
		plain   bool
	}{
		{"a hit of the task's watchpoint is its debug exception, without perf data", perfSignal(0x10000, sigDataMagic, 0), false, backend.Debug, b0, true},
		{"a hit of what the position held before is spurious", perfSignal(0x20000, sigDataMagic, 0), false, backend.Spurious, 0, false},
		{"an asynchronous report is spurious", perfSignal(0x10000, sigDataMagic, trapPerfFlagAsync), false, backend.Spurious, 0, false},
		{"a hit in a process without events is spurious", perfSignal(0x10000, sigDataMagic, 0), true, backend.Spurious, 0, false},
		{"another perf event's SIGTRAP is foreign", perfSignal(0x10000, 0x1234, 0), false, backend.Foreign, 0, false},
		{"a position past the slots is foreign", perfSignal(0x10000, sigDataMagic|hwbp.Slots, 0), false, backend.Foreign, 0, false},
		{"a single-step with no event's count changed is seen", linux.SignalInfo{Signo: int32(linux.SIGTRAP), Code: linux.TRAP_TRACE}, false, backend.Seen, hwbp.DR6Reset | hwbp.DR6BS, false},
		{"an icebp is seen", linux.SignalInfo{Signo: int32(linux.SIGTRAP), Code: linux.TRAP_BRKPT}, false, backend.Seen, hwbp.DR6Reset, false},
		{"an int3 is foreign", linux.SignalInfo{Signo: int32(linux.SIGTRAP), Code: linux.SI_KERNEL}, false, backend.Foreign, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(0, 0)
			b, sp, k := backendWithMember(t, h)
			sp.mu.Lock()
			b.apply(sp, threads(10, 11), false)
			r := run{sp: sp, img: sp.members[k].img, epoch: sp.epoch}
			sp.mu.Unlock()
			if tc.noSpace {
				r = run{}
			}
			ex := b.Exception(backend.Run{Task: k}, r, &tc.info)
			if ex.Kind != tc.want {
				t.Fatalf("kind %d, want %d", ex.Kind, tc.want)
			}
			if ex.DR6 != tc.wantDR6 || ex.Plain != tc.plain || ex.FromCPU {
				t.Errorf("DR6 %#x Plain %v FromCPU %v, want DR6 %#x Plain %v from the host", uint64(ex.DR6), ex.Plain, ex.FromCPU, uint64(tc.wantDR6), tc.plain)
			}
			if tc.want == backend.Debug && ex.Image.DR7 != r.img.DR7 {
				t.Errorf("image DR7 %#x, want the task's %#x", uint64(ex.Image.DR7), uint64(r.img.DR7))
			}
		})
	}
}
