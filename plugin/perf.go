// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"gvisor.dev/gvisor/pkg/errors/linuxerr"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"

	"github.com/gvisor-hwbp/hwbp/sentry/perf"
)

// perfFlagAll are perf_event_open's flags (include/uapi/linux/perf_event.h).
const perfFlagAll = unix.PERF_FLAG_FD_NO_GROUP | unix.PERF_FLAG_FD_OUTPUT | unix.PERF_FLAG_PID_CGROUP | unix.PERF_FLAG_FD_CLOEXEC

// perfEventFDPrefix is the name of a perf event's anonymous inode.
const perfEventFDPrefix = "[perf_event]"

// events is the guest's perf_event_open view of the breakpoints, the
// core's second consumer.
var events = func() *perf.Events[*kernel.Task] {
	es := perf.NewEvents(tasks, sendSigtrap)
	es.SetSampler(sampler{})
	return es
}()

// gvisorPerfEventOpen is gVisor's perf_event_open, which answers ENODEV.
var gvisorPerfEventOpen kernel.SyscallFn

// sysPerfEventOpen is the guest's perf_event_open for PERF_TYPE_BREAKPOINT
// (sentry/perf), with Linux's checks in Linux's order; every other event
// type keeps gVisor's answer. The type is read first, as far as the
// attribute can be read; an unreadable attribute gets Linux's answer
// (EINVAL for bad flags, else EFAULT).
func sysPerfEventOpen(t *kernel.Task, sysno uintptr, args arch.SyscallArguments) (uintptr, *kernel.SyscallControl, error) {
	addr := args[0].Uint64()
	var typ [4]byte
	if _, err := t.CopyInBytes(hostarch.Addr(addr), typ[:]); err == nil && binary.LittleEndian.Uint32(typ[:]) != perf.TypeBreakpoint {
		return gvisorPerfEventOpen(t, sysno, args)
	}
	fd, err := perfEventOpen(t, addr, args[1].Int(), args[2].Int(), args[3].Int(), args[4].Uint64())
	if err != nil {
		return 0, nil, err
	}
	return uintptr(fd), nil, nil
}

// perfEventOpen is perf_event_open of a breakpoint event.
func perfEventOpen(t *kernel.Task, addr uint64, pid, cpu, groupFD int32, flags uint64) (int32, error) {
	if flags&^perfFlagAll != 0 {
		return 0, linuxerr.EINVAL
	}
	attr, err := copyAttr(t, addr)
	if err != nil {
		return 0, err
	}
	if err := attr.CheckOpen(); err != nil {
		return 0, guestError(err)
	}
	if flags&unix.PERF_FLAG_PID_CGROUP != 0 && (pid == -1 || cpu == -1) {
		return 0, linuxerr.EINVAL
	}

	var group perf.Group[*kernel.Task]
	if groupFD != -1 {
		f := t.GetFile(groupFD)
		if f == nil {
			return 0, linuxerr.EBADF
		}
		defer f.DecRef(t)
		pf, ok := f.Impl().(*perfFD)
		if !ok {
			return 0, linuxerr.EBADF
		}
		if pf.ev.Defunct() {
			return 0, linuxerr.ENODEV
		}
		if flags&unix.PERF_FLAG_FD_OUTPUT != 0 {
			group.Output = pf.ev
		}
		if flags&unix.PERF_FLAG_FD_NO_GROUP == 0 {
			group.Leader = pf.ev
		}
	}

	target := perf.Target[*kernel.Task]{CPU: cpu, NumCPU: int(t.Kernel().ApplicationCores())}
	if pid != -1 && flags&unix.PERF_FLAG_PID_CGROUP == 0 {
		tt := t
		if pid != 0 {
			tt = t.PIDNamespace().TaskWithID(kernel.ThreadID(pid))
			if tt == nil {
				return 0, linuxerr.ESRCH
			}
		}
		target.Task, target.HasTask = tt, true
		target.MayAccess = func(attach bool) bool { return t.CanTrace(tt, attach) }
		target.Exited = func() bool { return exited(tt) }
		// Linux's times advance while the task runs, at nanosecond
		// resolution; gVisor's task CPU clocks advance by scheduler
		// ticks, which would leave a short program's event with a
		// running time of 0 ("<not counted>" in perf stat). The times
		// follow the monotonic clock instead, from enable to disable
		// or the task's exit, less the time the task is blocked or
		// stopped (sentry/perf's sched.go).
		target.Clock = func() uint64 { return perfClock(tt) }
	}
	// With PERF_FLAG_PID_CGROUP, pid is a cgroup's fd and the event is
	// CPU-wide: Open refuses it as for any CPU-wide event.

	ev, err := events.Open(attr, target, group)
	if err != nil {
		return 0, guestError(err)
	}
	if target.HasTask && target.Task != t {
		schedOutIfAway(target.Task)
	}
	file, err := newPerfFD(t, ev)
	if err != nil {
		ev.Close()
		return 0, err
	}
	defer file.DecRef(t)
	fd, err := t.NewFDFrom(0, file, kernel.FDFlags{CloseOnExec: flags&unix.PERF_FLAG_FD_CLOEXEC != 0})
	if err != nil {
		return 0, err
	}
	return fd, nil
}

// copyAttr is perf_copy_attr of the guest's attribute at addr: on E2BIG
// the kernel's size is written back, and a fault doing so is ignored.
func copyAttr(t *kernel.Task, addr uint64) (perf.Attr, error) {
	attr, err := perf.CopyAttr(func(a uint64, dst []byte) error {
		if _, err := t.CopyInBytes(hostarch.Addr(a), dst); err != nil {
			// An errno that guestError passes on.
			return unix.EFAULT
		}
		return nil
	}, addr)
	if perf.IsE2BIG(err) {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], perf.AttrSize)
		t.CopyOutBytes(hostarch.Addr(addr+4), b[:])
	}
	if err != nil {
		return attr, guestError(err)
	}
	return attr, nil
}
