// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/sentry/platform"
	gvsystrap "gvisor.dev/gvisor/pkg/sentry/platform/systrap"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp/backend"
)

// This file: which breakpoints a SIGTRAP of a stub thread reports, and
// whose they are.

// Exception implements backend.Arming.Exception: a single-step (step), an
// icebp, or a TRAP_PERF of one of the events of r.sp (perfTrap). The host's
// exc_debug_user already set RF where Linux does.
func (b *Backend) Exception(rn backend.Run, r run, info *linux.SignalInfo) backend.Exception {
	switch info.Code {
	case hwbp.TrapTrace:
		return r.step(rn.Context)
	case hwbp.TrapBrkpt:
		// An icebp (INT1): the host found no reason in DR6. Linux
		// resets the virtual DR6 for it too.
		return backend.Exception{Kind: backend.Seen, DR6: hwbp.DR6Reset}
	case trapPerf:
		return r.perfTrap(rn.Context, info)
	}
	return backend.Exception{}
}

// perfTrap reads a TRAP_PERF SIGTRAP of one of the events of r.sp, given the
// task's platform context inner. A hit on a breakpoint that the task does
// not own stays invisible (Spurious); the guest's SIGTRAP for one it owns
// carries no perf data (Plain), as Linux's exc_debug_user sends a plain
// fault siginfo.
func (r run) perfTrap(inner platform.Context, info *linux.SignalInfo) backend.Exception {
	data, flags := sigPerfData(info.Fields[:])
	if data&^0xff != sigDataMagic || data&0xff >= hwbp.Slots {
		return backend.Exception{} // not one of ours: the guest sees it as it is
	}
	sp := r.sp
	if flags&trapPerfFlagAsync != 0 || sp == nil {
		// Not a synchronous report of a hit on the task's.
		return backend.Exception{Kind: backend.Spurious}
	}
	pos := int(data & 0xff)
	sp.mu.Lock()
	hit := sp.hits(inner, r.epoch)
	e, used := sp.placement.armed[pos], sp.placement.used[pos]
	dr6 := sp.dr6(&r.img, hit)
	sp.mu.Unlock()
	// The signalling event fired even if its count was not readable. It
	// reports its breakpoint address in si_addr, which differs from what
	// the position holds now if it was moved since the hit.
	if used && e.addr == info.Addr() {
		dr6 |= slotsOf(&r.img, e)
	}
	if dr6.Hits() == 0 {
		// Another task's breakpoint, or a stale one.
		return backend.Exception{Kind: backend.Spurious}
	}
	return backend.Exception{Kind: backend.Debug, DR6: dr6, Image: r.img, Plain: true}
}

// step reads a single-step trap (TRAP_TRACE) of the task, given its platform
// context inner. A breakpoint that the same instruction hit shows in DR6
// beside BS, as on Linux, where one debug exception reports both; the
// host's SIGTRAP for the hit is merged into the single-step's, so only the
// events' counts tell. Without such a hit the host's SIGTRAP is already
// Linux's (Seen).
func (r run) step(inner platform.Context) backend.Exception {
	var dr6 hwbp.DR6
	if r.sp != nil {
		r.sp.mu.Lock()
		dr6 = r.sp.dr6(&r.img, r.sp.hits(inner, r.epoch))
		r.sp.mu.Unlock()
	}
	if dr6.Hits() == 0 {
		return backend.Exception{Kind: backend.Seen, DR6: hwbp.DR6Reset | hwbp.DR6BS}
	}
	return backend.Exception{Kind: backend.Debug, DR6: dr6 | hwbp.DR6BS, Image: r.img}
}

// hits returns the positions whose events fired in the debug exception that
// the stub thread which ran inner just reported. The host sends one SIGTRAP
// per exception however many events fired (a second one is merged into the
// pending first), so the events' counts are compared with those last read.
// That is exact only if no other task of the process ran since the caller's
// arm (epoch): the stub thread may have run another task's context, and
// taken another exception, before the caller got here. Otherwise, and for a
// thread whose counts are not its own alone (it inherited the nursery's
// events and is not the only one that did), hits returns no position and the
// caller relies on the signal's. The counts are read in every case, so that
// the next comparison starts from them.
//
// +checklocks:sp.mu
func (sp *space) hits(inner platform.Context, epoch uint64) (hit [hwbp.Slots]bool) {
	if !sp.events.open {
		return hit
	}
	tid, ok := gvsystrap.ContextStubThread(inner)
	if !ok {
		return hit
	}
	fds, last := sp.events.own[tid], sp.events.ownCounts[tid]
	if fds == nil {
		inherited := 0
		for _, f := range sp.events.own {
			if f == nil {
				inherited++
			}
		}
		if _, known := sp.events.own[tid]; !known {
			// Born after the nursery's events were opened, and
			// not yet seen by arm.
			inherited++
		}
		if inherited != 1 {
			return hit
		}
		fds, last = &sp.events.nursery, &sp.events.nurseryCounts
	}
	alone := epoch == sp.epoch && sp.running.Load() == 1
	for pos, fd := range fds {
		if fd < 0 || !sp.placement.used[pos] || sp.count.positions[pos] {
			continue // counting positions never signal
		}
		n, err := sp.env.host.count(fd)
		if err != nil {
			continue
		}
		if n != last[pos] {
			hit[pos] = alone
			last[pos] = n
		}
	}
	return hit
}

// dr6 returns the DR6 B bits of img's slots that hold the entries at the
// positions in hit.
//
// +checklocks:sp.mu
func (sp *space) dr6(img *hwbp.Image, hit [hwbp.Slots]bool) hwbp.DR6 {
	dr6 := hwbp.DR6Reset
	for pos := range hit {
		if hit[pos] && sp.placement.used[pos] {
			dr6 |= slotsOf(img, sp.placement.armed[pos])
		}
	}
	return dr6
}

// slotsOf returns the DR6 B bits of img's enabled slots that hold e.
func slotsOf(img *hwbp.Image, e entry) hwbp.DR6 {
	var bits hwbp.DR6
	for slot := 0; slot < hwbp.Slots; slot++ {
		if img.DR7.Enabled(slot) && entryOf(img, slot) == e {
			bits |= hwbp.DR6Trap0 << slot
		}
	}
	return bits
}
