package plugin

import (
	"encoding/binary"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/errors/linuxerr"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/marshal/primitive"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/kernel/auth"
	"gvisor.dev/gvisor/pkg/sentry/kernel/fasync"
	"gvisor.dev/gvisor/pkg/sentry/vfs"
	"gvisor.dev/gvisor/pkg/usermem"
	"gvisor.dev/gvisor/pkg/waiter"

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
var events = func() *perf.Events[*kernel.Task] {
	es := perf.NewEvents(tasks, sendSigtrap, sameProcess)
	es.SetSampler(sampler{})
	es.SetClearsSighand(clearsSighand)
	return es
}()

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

	// k is the sandbox's kernel.
	k *kernel.Kernel

	// asyncFD is the fd number given to the fcntl(F_SETFL) or
	// ioctl(FIOASYNC) that last set O_ASYNC (Linux's fa_fd, si_fd of the
	// signals), which fcntlHook and ioctlHook note.
	asyncFD atomic.Int32

	// owner is the credentials of the caller of the last F_SETOWN or
	// F_SETOWN_EX (Linux's f_owner uid and euid, which sigio_perm
	// checks), nil before one; fcntlHook notes it.
	owner atomic.Pointer[auth.Credentials]

	// queue is the fd's wait queue (event->waitq), which a wakeup of the
	// ring its records go to, and the exit of its task, notify.
	queue waiter.Queue
}

var _ vfs.FileDescriptionImpl = (*perfFD)(nil)

// openPerfFDs counts the guest's perf fds: the fcntl and ioctl hooks look no
// further than it while it is 0.
var openPerfFDs atomic.Int64

// newPerfFD returns a new file for ev, opened O_RDWR as Linux's
// anon_inode_getfile does for perf events.
func newPerfFD(t *kernel.Task, ev *perf.Event[*kernel.Task]) (*vfs.FileDescription, error) {
	vd := t.Kernel().VFS().NewAnonVirtualDentry(perfEventFDPrefix)
	defer vd.DecRef(t)
	pf := &perfFD{ev: ev, k: t.Kernel()}
	pf.asyncFD.Store(-1)
	ev.SetWaiters(pf.notify)
	if err := pf.vfsfd.Init(pf, linuxOpenReadWrite, auth.CredentialsFromContext(t), vd.Mount(), vd.Dentry(), &vfs.FileDescriptionOptions{
		UseDentryMetadata: true,
		DenyPRead:         true,
		DenyPWrite:        true,
	}); err != nil {
		return nil, err
	}
	openPerfFDs.Add(1)
	return &pf.vfsfd, nil
}

// linuxOpenReadWrite is O_RDWR.
const linuxOpenReadWrite = 2

// Release implements vfs.FileDescriptionImpl.Release: the last close of the
// fd frees the event and its slot (perf_release).
func (pf *perfFD) Release(context.Context) {
	pf.ev.Close()
	openPerfFDs.Add(-1)
}

// Readiness implements waiter.Waitable.Readiness as Linux's perf_poll
// answers: EPOLLHUP for an event whose task exited (or that an exec
// removed) and that has no live inherited copy, and for an event without a
// ring buffer, whatever its state; otherwise the readiness that the ring's
// last wakeup set (EPOLLIN), which the call takes: the next one reads
// nothing until another wakeup (perf_poll's atomic_xchg(&rb->poll, 0)), also
// if the caller did not ask for EPOLLIN. poll, select (readable) and epoll
// report EPOLLHUP even when the caller asked for nothing.
func (pf *perfFD) Readiness(mask waiter.EventMask) waiter.EventMask {
	if pf.ev.Hup() {
		return waiter.EventHUp & mask
	}
	r := pf.ev.Ring()
	if r == nil {
		return waiter.EventHUp & mask
	}
	return waiter.EventMask(r.TakePoll()) & mask
}

// notify wakes up the fd's waiters (wake_up_all(&event->waitq)).
func (pf *perfFD) notify() {
	pf.queue.Notify(waiter.EventIn | waiter.EventHUp)
}

// EventRegister implements waiter.Waitable.EventRegister.
func (pf *perfFD) EventRegister(e *waiter.Entry) error {
	pf.queue.EventRegister(e)
	return nil
}

// EventUnregister implements waiter.Waitable.EventUnregister.
func (pf *perfFD) EventUnregister(e *waiter.Entry) {
	pf.queue.EventUnregister(e)
}

// Epollable implements vfs.FileDescriptionImpl.Epollable: perf_fops has a
// poll method.
func (pf *perfFD) Epollable() bool { return true }

// RegisterFileAsyncHandler implements
// vfs.FileDescriptionImpl.RegisterFileAsyncHandler: O_ASYNC is set (and an
// owner may be set), so overflows notify the owner (perf_fasync). The event
// signals itself, as Linux's perf_event_wakeup calls kill_fasync, instead of
// gVisor's fasync, which signals on readiness changes and sends its signal
// with si_code SI_KERNEL.
func (pf *perfFD) RegisterFileAsyncHandler(*vfs.FileDescription) error {
	pf.ev.SetAsync(pf.sigio)
	return nil
}

// UnregisterFileAsyncHandler implements
// vfs.FileDescriptionImpl.UnregisterFileAsyncHandler.
func (pf *perfFD) UnregisterFileAsyncHandler(*vfs.FileDescription) {
	pf.ev.SetAsync(nil)
}

// sigio sends the fd's owner the signal of an overflow for reason
// (perf.PollIn or perf.PollHUp), as Linux's kill_fasync and send_sigio do
// (fs/fcntl.c): nothing without an owner; to each recipient that
// sigio_perm allows, the F_SETSIG signal with si_code reason (SI_SIGIO for
// a signal other than SIGIO that has codes of its own), si_band from
// band_table and si_fd the fd that set O_ASYNC, or, if F_SETSIG is 0 or the
// queued signal cannot be sent, a plain SIGIO (SEND_SIG_PRIV: SI_KERNEL).
// A thread owner (F_OWNER_TID) gets a thread signal, a process or each
// process of a process group a process signal.
func (pf *perfFD) sigio(reason int) {
	a, ok := pf.vfsfd.AsyncHandler().(*fasync.FileAsync)
	if !ok {
		return
	}
	owner := pf.owner.Load()
	ot, otg, opg := a.Owner()
	if owner == nil || ot == nil && otg == nil && opg == nil {
		return
	}
	signo := a.Signal()
	sendTo := func(t *kernel.Task, group bool) {
		if t == nil || !sigioPerm(owner, t.Credentials()) {
			return
		}
		send := t.SendSignal
		if group {
			send = t.SendGroupSignal
		}
		if signo != 0 {
			info := &linux.SignalInfo{Signo: int32(signo), Code: int32(reason)}
			if signo != linux.SIGIO && sigSpecificCodes(signo) {
				info.Code = linux.SI_SIGIO
			}
			info.SetBand(bandTable[reason])
			info.SetFD(uint32(pf.asyncFD.Load()))
			if send(info) == nil {
				return
			}
		}
		send(&linux.SignalInfo{Signo: int32(linux.SIGIO), Code: linux.SI_KERNEL})
	}
	switch {
	case ot != nil:
		sendTo(ot, false)
	case otg != nil:
		sendTo(otg.Leader(), true)
	default:
		for _, tg := range pf.k.TaskSet().Root.ThreadGroups() {
			if tg.ProcessGroup() == opg {
				sendTo(tg.Leader(), true)
			}
		}
	}
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
		// perf_event_set_output: the argument is an unsigned long, of
		// which only all ones is -1 ("no output").
		var out *perf.Event[*kernel.Task]
		if arg.Uint64() != ^uint64(0) {
			f := kernel.TaskFromContext(ctx).GetFile(arg.Int())
			if f == nil {
				return 0, linuxerr.EBADF
			}
			defer f.DecRef(ctx)
			opf, ok := f.Impl().(*perfFD)
			if !ok {
				return 0, linuxerr.EBADF
			}
			out = opf.ev
		}
		if err := pf.ev.SetOutput(out); err != nil {
			return 0, guestError(err)
		}
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
		if err := pf.ev.PauseOutput(arg.Uint64() != 0); err != nil {
			return 0, guestError(err)
		}
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

// bandTable is si_band for each reason (fs/fcntl.c, band_table).
var bandTable = map[int]int64{
	perf.PollIn:  linux.EPOLLIN | linux.EPOLLRDNORM,
	perf.PollHUp: linux.EPOLLHUP | linux.EPOLLERR,
}

// sigioPerm is Linux's sigio_perm: the owner's real or effective user
// (which F_SETOWN recorded) is root or the recipient's real or saved user.
func sigioPerm(owner, to *auth.Credentials) bool {
	return owner.EffectiveKUID == auth.RootKUID ||
		owner.EffectiveKUID == to.SavedKUID || owner.EffectiveKUID == to.RealKUID ||
		owner.RealKUID == to.SavedKUID || owner.RealKUID == to.RealKUID
}

// sigSpecificCodes reports whether sig has si_codes of its own, which
// POLL_IN and the like would be confused with (Linux's
// SIG_SPECIFIC_SICODES_MASK).
func sigSpecificCodes(sig linux.Signal) bool {
	switch sig {
	case linux.SIGILL, linux.SIGFPE, linux.SIGSEGV, linux.SIGBUS, linux.SIGTRAP, linux.SIGCHLD, linux.SIGPOLL, linux.SIGSYS:
		return true
	}
	return false
}

// perfFileOf returns the perf fd that fd names in t, if it is one.
func perfFileOf(t *kernel.Task, fd int32) (*vfs.FileDescription, *perfFD) {
	f := t.GetFile(fd)
	if f == nil {
		return nil, nil
	}
	pf, ok := f.Impl().(*perfFD)
	if !ok {
		f.DecRef(t)
		return nil, nil
	}
	return f, pf
}

// fcntlHook notes, for a perf fd, what Linux keeps of fcntl and gVisor's
// fasync does not let the sentry read: the fd of the F_SETFL that sets
// O_ASYNC (fa_fd, si_fd) and the credentials of the caller of F_SETOWN or
// F_SETOWN_EX (for sigio_perm). gVisor's fcntl does the rest. Without an
// open perf fd it costs an atomic load.
func fcntlHook(orig kernel.SyscallFn) kernel.SyscallFn {
	return func(t *kernel.Task, sysno uintptr, args arch.SyscallArguments) (uintptr, *kernel.SyscallControl, error) {
		cmd := args[1].Int()
		if openPerfFDs.Load() == 0 || cmd != linux.F_SETFL && cmd != linux.F_SETOWN && cmd != linux.F_SETOWN_EX {
			return orig(t, sysno, args)
		}
		fd := args[0].Int()
		f, pf := perfFileOf(t, fd)
		if pf == nil {
			return orig(t, sysno, args)
		}
		defer f.DecRef(t)
		if cmd == linux.F_SETFL {
			// setfl calls perf_fasync, which records fd, only when
			// O_ASYNC changes.
			if args[2].Uint()&linux.O_ASYNC != 0 && f.StatusFlags()&linux.O_ASYNC == 0 {
				pf.asyncFD.Store(fd)
			}
			return orig(t, sysno, args)
		}
		rv, ctl, err := orig(t, sysno, args)
		if err == nil {
			pf.owner.Store(t.Credentials())
		}
		return rv, ctl, err
	}
}

// ioctlHook notes the fd of an ioctl(FIOASYNC) that sets O_ASYNC on a perf
// fd, as fcntlHook does for F_SETFL (Linux's ioctl_fioasync is setfl).
// Without an open perf fd it costs an atomic load.
func ioctlHook(orig kernel.SyscallFn) kernel.SyscallFn {
	return func(t *kernel.Task, sysno uintptr, args arch.SyscallArguments) (uintptr, *kernel.SyscallControl, error) {
		if openPerfFDs.Load() == 0 || args[1].Uint() != linux.FIOASYNC {
			return orig(t, sysno, args)
		}
		fd := args[0].Int()
		f, pf := perfFileOf(t, fd)
		if pf == nil {
			return orig(t, sysno, args)
		}
		defer f.DecRef(t)
		var on primitive.Int32
		if _, err := on.CopyIn(t, args[2].Pointer()); err == nil && on != 0 && f.StatusFlags()&linux.O_ASYNC == 0 {
			pf.asyncFD.Store(fd)
		}
		return orig(t, sysno, args)
	}
}
