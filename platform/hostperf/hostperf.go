// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package hostperf drives the host kernel's perf breakpoint events
// (perf_event_open(2) with PERF_TYPE_BREAKPOINT, Linux 5.13+ for sigtrap)
// on host threads, for the platform back ends that arm the guest's
// breakpoints with them or count their hits there, and gives the sentry's
// seccomp rules that these host calls need. It knows nothing of the guest:
// a breakpoint is a debug register's address and DR7 R/W and LEN fields.
package hostperf

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/seccomp"
)

// bp_type values (include/uapi/linux/hw_breakpoint.h).
const (
	breakpointW  = 2
	breakpointRW = 3
	breakpointX  = 4
)

// Counting returns the attribute of a host event that counts the user-mode
// hits of the breakpoint at addr with DR7 fields rw (0 execute, 1 write, 3
// read/write) and ln: disabled, without sampling, so that the host takes
// the hits without stopping the thread. Back ends that want a signal per
// hit set sample_period and sigtrap on it.
func Counting(addr uint64, rw, ln uint8) unix.PerfEventAttr {
	a := unix.PerfEventAttr{
		Type: unix.PERF_TYPE_BREAKPOINT,
		Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Bits: unix.PerfBitDisabled | unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv,
		Ext1: addr,
	}
	switch rw {
	case 0:
		// Linux arch/x86/kernel/hw_breakpoint.c: arch_build_bp_info
		// takes instruction breakpoints only with bp_len
		// sizeof(long).
		a.Bp_type, a.Ext2 = breakpointX, 8
	case 1:
		a.Bp_type = breakpointW
	default:
		a.Bp_type = breakpointRW
	}
	if rw != 0 {
		// DR7 LEN: 0, 1, 3, 2 mean 1, 2, 4, 8 bytes.
		a.Ext2 = [4]uint64{1, 2, 8, 4}[ln&3]
	}
	return a
}

// Open opens a breakpoint event on host thread tid, on any CPU, close-on-exec.
func Open(a *unix.PerfEventAttr, tid int32) (int, error) {
	fd, _, errno := unix.RawSyscall6(unix.SYS_PERF_EVENT_OPEN, uintptr(unsafe.Pointer(a)), uintptr(tid), ^uintptr(0) /* cpu -1 */, ^uintptr(0) /* no group */, unix.PERF_FLAG_FD_CLOEXEC, 0)
	calls.open.Add(1)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// Close closes event fd.
func Close(fd int) {
	calls.close.Add(1)
	unix.Close(fd)
}

// Modify moves the breakpoint of event fd, and of the events inherited from
// it, to a's address, type and length; the rest of a must be the event's.
func Modify(fd int, a *unix.PerfEventAttr) error {
	calls.ioctl.Add(1)
	_, _, errno := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), unix.PERF_EVENT_IOC_MODIFY_ATTRIBUTES, uintptr(unsafe.Pointer(a)))
	if errno != 0 {
		return fmt.Errorf("PERF_EVENT_IOC_MODIFY_ATTRIBUTES: %w", errno)
	}
	return nil
}

// Enable enables or disables event fd and the events inherited from it.
func Enable(fd int, enable bool) error {
	req := uintptr(unix.PERF_EVENT_IOC_DISABLE)
	if enable {
		req = unix.PERF_EVENT_IOC_ENABLE
	}
	calls.ioctl.Add(1)
	_, _, errno := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), req, 0)
	if errno != 0 {
		return fmt.Errorf("perf event enable=%t: %w", enable, errno)
	}
	return nil
}

// Count reads the count of event fd (and of the events inherited from it):
// how many times its breakpoint was hit.
func Count(fd int) (uint64, error) {
	var b [8]byte
	calls.read.Add(1)
	n, err := unix.Read(fd, b[:])
	if err != nil {
		return 0, err
	}
	if n != len(b) {
		return 0, fmt.Errorf("short read of perf event count: %d bytes", n)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// calls counts the host system calls of this package, every back end's
// together: an atomic add per call, which costs nothing beside the call.
var calls struct {
	open, close, read, ioctl atomic.Uint64
}

// Calls are the numbers of host system calls that the package made since
// the sentry started, by kind.
type Calls struct {
	// Open counts perf_event_open(2), Close close(2) of an event, Read
	// read(2) of a count, and Ioctl the PERF_EVENT_IOC_* requests.
	Open, Close, Read, Ioctl uint64
}

// CallCounts returns the numbers of host system calls made so far.
func CallCounts() Calls {
	return Calls{
		Open:  calls.open.Load(),
		Close: calls.close.Load(),
		Read:  calls.read.Load(),
		Ioctl: calls.ioctl.Load(),
	}
}

// SeccompRules returns the host system calls that Open, Modify and Enable
// make from the sentry, beyond what gVisor's platforms need themselves
// (Count's read and the fds' close are allowed to the sentry anyway).
func SeccompRules() seccomp.SyscallRules {
	return seccomp.MakeSyscallRules(map[uintptr]seccomp.SyscallRule{
		unix.SYS_PERF_EVENT_OPEN: seccomp.PerArg{
			seccomp.AnyValue{},
			seccomp.AnyValue{},
			seccomp.EqualTo(^uintptr(0)),
			seccomp.EqualTo(^uintptr(0)),
			seccomp.EqualTo(unix.PERF_FLAG_FD_CLOEXEC),
		},
		unix.SYS_IOCTL: seccomp.Or{
			seccomp.PerArg{seccomp.NonNegativeFD{}, seccomp.EqualTo(unix.PERF_EVENT_IOC_ENABLE), seccomp.EqualTo(0)},
			seccomp.PerArg{seccomp.NonNegativeFD{}, seccomp.EqualTo(unix.PERF_EVENT_IOC_DISABLE), seccomp.EqualTo(0)},
			seccomp.PerArg{seccomp.NonNegativeFD{}, seccomp.EqualTo(unix.PERF_EVENT_IOC_MODIFY_ATTRIBUTES)},
		},
		unix.SYS_CLOSE: seccomp.MatchAll{},
	})
}
