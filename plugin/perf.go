package plugin

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/errors/linuxerr"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/marshal/primitive"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/kernel/auth"
	"gvisor.dev/gvisor/pkg/sentry/vfs"
	"gvisor.dev/gvisor/pkg/usermem"

	"github.com/gvisor-hwbp/hwbp/sentry/perf"
)

// sysPerfEventOpen is perf_event_open's x86_64 number.
const sysPerfEventOpen = 298

// perf_event_open's flags (include/uapi/linux/perf_event.h).
const (
	perfFlagFDNoGroup = 1 << 0
	perfFlagFDOutput  = 1 << 1
	perfFlagPIDCgroup = 1 << 2
	perfFlagFDCloexec = 1 << 3
	perfFlagAll       = perfFlagFDNoGroup | perfFlagFDOutput | perfFlagPIDCgroup | perfFlagFDCloexec
)

// The perf ioctls (include/uapi/linux/perf_event.h), with their x86_64
// encodings.
const (
	perfIocEnable     = 0x2400
	perfIocDisable    = 0x2401
	perfIocRefresh    = 0x2402
	perfIocReset      = 0x2403
	perfIocPeriod     = 0x40082404
	perfIocID         = 0x80082407
	perfIocModify     = 0x4008240b
	perfIocSetOutput  = 0x2405
	perfIocSetFilter  = 0x40082406
	perfIocSetBPF     = 0x40042408
	perfIocPause      = 0x40042409
	perfIocQueryBPF   = 0xc008240a
	perfIocFlagGroup  = 1
	perfEventFDPrefix = "[perf_event]"
)

// events is the guest's perf_event_open view of the breakpoints, the
// core's second consumer.
var events = perf.NewEvents(tasks, sendSigtrap, sameProcess)

// sameProcess reports whether a and b are threads of one process, for
// inherit_thread.
func sameProcess(a, b *kernel.Task) bool { return a.ThreadGroup() == b.ThreadGroup() }

// trapPerfCode is si_code TRAP_PERF.
const trapPerfCode = 6

// trapPerfFlagAsync is TRAP_PERF_FLAG_ASYNC, si_perf_flags of a SIGTRAP
// that the thread blocks.
const trapPerfFlagAsync = 1

// sendSigtrap sends the SIGTRAP of a sigtrap event's overflow to t, the
// thread that hit, from t's goroutine inside its platform Switch: Linux's
// send_sig_perf (kernel/signal.c), an ordinary send_sig_info, with si_addr,
// si_perf_data (offset 24 of siginfo_t), si_perf_type (32) and
// si_perf_flags (36), which says whether t blocks SIGTRAP. Queuing it
// interrupts t's platform context, so that t takes it before it runs
// another instruction, as Linux delivers it from task work at the return to
// user mode. A thread that is exiting gets none (perf_sigtrap).
func sendSigtrap(t *kernel.Task, s perf.Sigtrap) {
	if exited(t) {
		return
	}
	info := &linux.SignalInfo{Signo: int32(linux.SIGTRAP), Code: trapPerfCode}
	info.SetAddr(s.Addr)
	binary.LittleEndian.PutUint64(info.Fields[8:], s.Data)
	binary.LittleEndian.PutUint32(info.Fields[16:], s.Type)
	if t.SignalMask()&linux.SignalSetOf(linux.SIGTRAP) != 0 {
		binary.LittleEndian.PutUint32(info.Fields[20:], trapPerfFlagAsync)
	}
	t.SendSignal(info)
}

// perfEventOpenHook gives the guest perf_event_open for PERF_TYPE_BREAKPOINT
// (sentry/perf), with Linux's checks in Linux's order; every other event
// type keeps gVisor's answer (ENODEV). The type is read first, as far as the
// attribute can be read; an unreadable attribute gets Linux's answer
// (EINVAL for bad flags, else EFAULT).
func perfEventOpenHook(orig kernel.SyscallFn) kernel.SyscallFn {
	return func(t *kernel.Task, sysno uintptr, args arch.SyscallArguments) (uintptr, *kernel.SyscallControl, error) {
		addr := args[0].Uint64()
		var typ [4]byte
		if _, err := t.CopyInBytes(hostarch.Addr(addr), typ[:]); err == nil && binary.LittleEndian.Uint32(typ[:]) != perf.TypeBreakpoint {
			return orig(t, sysno, args)
		}
		fd, err := perfEventOpen(t, addr, args[1].Int(), args[2].Int(), args[3].Int(), args[4].Uint64())
		if err != nil {
			return 0, nil, err
		}
		return uintptr(fd), nil, nil
	}
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
	if flags&perfFlagPIDCgroup != 0 && (pid == -1 || cpu == -1) {
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
		if flags&perfFlagFDOutput != 0 {
			group.Output = pf.ev
		}
		if flags&perfFlagFDNoGroup == 0 {
			group.Leader = pf.ev
		}
	}

	target := perf.Target[*kernel.Task]{CPU: cpu, NumCPU: int(t.Kernel().ApplicationCores())}
	if pid != -1 && flags&perfFlagPIDCgroup == 0 {
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
		// or the task's exit.
		clock := t.Kernel().MonotonicClock()
		target.Clock = func() uint64 { return uint64(clock.Now().Nanoseconds()) }
	}
	// With PERF_FLAG_PID_CGROUP, pid is a cgroup's fd and the event is
	// CPU-wide: Open refuses it as for any CPU-wide event.

	ev, err := events.Open(attr, target, group)
	if err != nil {
		return 0, guestError(err)
	}
	file, err := newPerfFD(t, ev)
	if err != nil {
		ev.Close()
		return 0, err
	}
	defer file.DecRef(t)
	fd, err := t.NewFDFrom(0, file, kernel.FDFlags{CloseOnExec: flags&perfFlagFDCloexec != 0})
	if err != nil {
		return 0, err
	}
	return fd, nil
}

// perfFD is the file of a guest's perf event: Linux's perf_fops on an
// anonymous inode named "[perf_event]".
type perfFD struct {
	vfsfd vfs.FileDescription
	vfs.FileDescriptionDefaultImpl
	vfs.DentryMetadataFileDescriptionImpl
	vfs.NoLockFD

	ev *perf.Event[*kernel.Task]
}

var _ vfs.FileDescriptionImpl = (*perfFD)(nil)

// newPerfFD returns a new file for ev, opened O_RDWR as Linux's
// anon_inode_getfile does for perf events.
func newPerfFD(t *kernel.Task, ev *perf.Event[*kernel.Task]) (*vfs.FileDescription, error) {
	vd := t.Kernel().VFS().NewAnonVirtualDentry(perfEventFDPrefix)
	defer vd.DecRef(t)
	pf := &perfFD{ev: ev}
	if err := pf.vfsfd.Init(pf, linuxOpenReadWrite, auth.CredentialsFromContext(t), vd.Mount(), vd.Dentry(), &vfs.FileDescriptionOptions{
		UseDentryMetadata: true,
		DenyPRead:         true,
		DenyPWrite:        true,
	}); err != nil {
		return nil, err
	}
	return &pf.vfsfd, nil
}

// linuxOpenReadWrite is O_RDWR.
const linuxOpenReadWrite = 2

// Release implements vfs.FileDescriptionImpl.Release: the last close of the
// fd frees the event and its slot (perf_release).
func (pf *perfFD) Release(context.Context) {
	pf.ev.Close()
}

// Read implements vfs.FileDescriptionImpl.Read (perf_read).
func (pf *perfFD) Read(ctx context.Context, dst usermem.IOSequence, _ vfs.ReadOptions) (int64, error) {
	b, err := pf.ev.Read(int(min(dst.NumBytes(), 1<<30)))
	if err != nil {
		return 0, guestError(err)
	}
	n, err := dst.CopyOut(ctx, b)
	return int64(n), err
}

// Ioctl implements vfs.FileDescriptionImpl.Ioctl (perf_ioctl): unknown
// requests are ENOTTY.
func (pf *perfFD) Ioctl(ctx context.Context, uio usermem.IO, sysno uintptr, args arch.SyscallArguments) (uintptr, error) {
	arg := args[2]
	group := arg.Uint64()&perfIocFlagGroup != 0
	switch args[1].Uint() {
	case perfIocEnable:
		pf.ev.Enable(group)
	case perfIocDisable:
		pf.ev.Disable(group)
	case perfIocReset:
		pf.ev.Reset(group)
	case perfIocRefresh:
		if err := pf.ev.Refresh(arg.Int()); err != nil {
			return 0, guestError(err)
		}
	case perfIocPeriod:
		var v primitive.Uint64
		if _, err := v.CopyIn(kernel.TaskFromContext(ctx), arg.Pointer()); err != nil {
			return 0, linuxerr.EFAULT
		}
		if err := pf.ev.SetPeriod(uint64(v)); err != nil {
			return 0, guestError(err)
		}
	case perfIocID:
		v := primitive.Uint64(pf.ev.ID())
		if _, err := v.CopyOut(kernel.TaskFromContext(ctx), arg.Pointer()); err != nil {
			return 0, linuxerr.EFAULT
		}
	case perfIocSetOutput:
		// perf_event_set_output: no event has a ring buffer (mmap is
		// not implemented), so only "no output" (-1) succeeds.
		// The argument is an unsigned long: only all ones is -1.
		if arg.Uint64() == ^uint64(0) {
			return 0, nil
		}
		f := kernel.TaskFromContext(ctx).GetFile(arg.Int())
		if f == nil {
			return 0, linuxerr.EBADF
		}
		defer f.DecRef(ctx)
		if _, ok := f.Impl().(*perfFD); !ok {
			return 0, linuxerr.EBADF
		}
		return 0, linuxerr.EINVAL
	case perfIocSetFilter:
		// perf_event_set_filter copies the string (strndup_user:
		// EFAULT, EINVAL past a page); filters are for tracepoints and
		// address filters of AUX PMUs only.
		if _, err := kernel.TaskFromContext(ctx).CopyInString(arg.Pointer(), hostarch.PageSize); err != nil {
			if linuxerr.Equals(linuxerr.ENAMETOOLONG, err) {
				return 0, linuxerr.EINVAL
			}
			return 0, linuxerr.EFAULT
		}
		return 0, linuxerr.EINVAL
	case perfIocSetBPF:
		// bpf_prog_get: no fd of the sandbox is a BPF program.
		f := kernel.TaskFromContext(ctx).GetFile(arg.Int())
		if f == nil {
			return 0, linuxerr.EBADF
		}
		f.DecRef(ctx)
		return 0, linuxerr.EINVAL
	case perfIocPause:
		// No ring buffer to pause.
		return 0, linuxerr.EINVAL
	case perfIocQueryBPF:
		// perf_event_query_prog_array: perfmon_capable() first, which
		// no caller in the sandbox is (see sentry/perf).
		return 0, linuxerr.EPERM
	case perfIocModify:
		t := kernel.TaskFromContext(ctx)
		attr, err := copyAttr(t, arg.Uint64())
		if err != nil {
			return 0, err
		}
		if err := pf.ev.Modify(attr); err != nil {
			return 0, guestError(err)
		}
	default:
		return 0, linuxerr.ENOTTY
	}
	return 0, nil
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
