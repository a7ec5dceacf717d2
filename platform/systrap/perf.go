// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/platform/hostperf"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// perf_event_attr flag bits that golang.org/x/sys/unix does not name
// (include/uapi/linux/perf_event.h).
const (
	perfBitRemoveOnExec = 1 << 36
	perfBitSigtrap      = 1 << 37
)

// trapPerf is si_code TRAP_PERF: a SIGTRAP sent by a perf event with
// sigtrap set (include/uapi/asm-generic/siginfo.h).
const trapPerf = 6

// trapPerfFlagAsync is set in si_perf_flags when SIGTRAP was blocked at the
// hit, so that the signal is not the hit's synchronous report.
const trapPerfFlagAsync = 1

// sigDataMagic marks the sig_data of hwbp's events; the low byte is the
// event's position.
const sigDataMagic = 0x6877627000 // "hwbp\0"

// entry is one breakpoint as the host's perf breakpoint PMU takes it: a
// debug register's address, type and length.
type entry struct {
	addr uint64
	rw   uint8 // DR7 R/W field: 0 exec, 1 write, 3 read/write
	ln   uint8 // DR7 LEN field
}

// key orders entries.
func (e entry) key() uint64 { return e.addr<<4 | uint64(e.rw)<<2 | uint64(e.ln) }

// entryOf returns slot's entry in img.
func entryOf(img *hwbp.Image, slot int) entry {
	return entry{addr: img.Addr[slot], rw: img.DR7.RW(slot), ln: img.DR7.Len(slot)}
}

// attr returns the perf_event_attr of the event at position pos carrying e,
// for a single thread or, with inherit, for the nursery thread whose future
// threads inherit it. Every event is opened disabled and enabled by ioctl,
// so that PERF_EVENT_IOC_MODIFY_ATTRIBUTES, which refuses any change besides
// the breakpoint's address, type and length, can move it between entries.
//
// With counting, the event only counts the hits (sample_period 0): the host
// takes them without stopping the stub thread (see count.go).
func (e entry) attr(pos int, inherit, counting bool) unix.PerfEventAttr {
	a := hostperf.Counting(e.addr, e.rw, e.ln)
	a.Bits |= perfBitRemoveOnExec
	a.Sig_data = sigDataMagic | uint64(pos)
	if !counting {
		a.Sample = 1 // sample_period: every hit signals
		a.Bits |= perfBitSigtrap
	}
	if inherit {
		// Not inherit_thread: the nursery clones stub threads without
		// CLONE_THREAD (systrap's thread.clone), and Linux's
		// inherit_task_group skips inherit_thread events for such a
		// clone, which would leave a new stub thread without events
		// until the next arm lists it.
		a.Bits |= unix.PerfBitInherit
	}
	return a
}

// perfHost is the host's perf event interface as the back end uses it. The
// back end reaches the host only through it, so that tests can inject host
// failures.
type perfHost interface {
	// open opens a breakpoint event on host thread tid.
	open(a *unix.PerfEventAttr, tid int32) (int, error)
	// modify moves the breakpoint of event fd, and of the events inherited
	// from it, to a's address, type and length.
	modify(fd int, a *unix.PerfEventAttr) error
	// enable enables or disables event fd and the events inherited from
	// it.
	enable(fd int, on bool) error
	// count reads the count of event fd and of the events inherited from
	// it.
	count(fd int) (uint64, error)
	// close closes event fd.
	close(fd int)
}

// hostPerf is the host kernel's perf_event_open(2).
type hostPerf struct{}

func (hostPerf) open(a *unix.PerfEventAttr, tid int32) (int, error) { return hostperf.Open(a, tid) }
func (hostPerf) modify(fd int, a *unix.PerfEventAttr) error         { return hostperf.Modify(fd, a) }
func (hostPerf) enable(fd int, on bool) error                       { return hostperf.Enable(fd, on) }
func (hostPerf) count(fd int) (uint64, error)                       { return hostperf.Count(fd) }
func (hostPerf) close(fd int)                                       { hostperf.Close(fd) }

// sigPerfData returns si_perf_data and si_perf_flags of a TRAP_PERF
// siginfo: they follow si_addr (8 bytes) in the fault union, whose fields
// start 16 bytes into siginfo_t; linux.SignalInfo.Fields starts there too.
func sigPerfData(fields []byte) (data uint64, flags uint32) {
	return binary.LittleEndian.Uint64(fields[8:]), binary.LittleEndian.Uint32(fields[20:])
}
