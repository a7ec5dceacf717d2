// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"golang.org/x/sys/unix"

	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/errors/linuxerr"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/marshal/primitive"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/kernel/auth"
	"gvisor.dev/gvisor/pkg/sentry/vfs"
	"gvisor.dev/gvisor/pkg/usermem"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/gvisor-hwbp/hwbp/sentry/perf"
)

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

	// queue is the fd's wait queue (event->waitq), which a wakeup of the
	// ring its records go to, and the exit of its task, notify.
	queue waiter.Queue
}

var _ vfs.FileDescriptionImpl = (*perfFD)(nil)

// newPerfFD returns a new file for ev, opened O_RDWR as Linux's
// anon_inode_getfile does for perf events.
func newPerfFD(t *kernel.Task, ev *perf.Event[*kernel.Task]) (*vfs.FileDescription, error) {
	vd := t.Kernel().VFS().NewAnonVirtualDentry(perfEventFDPrefix)
	defer vd.DecRef(t)
	pf := &perfFD{ev: ev, k: t.Kernel()}
	ev.SetWaiters(pf.notify)
	if err := pf.vfsfd.Init(pf, unix.O_RDWR, auth.CredentialsFromContext(t), vd.Mount(), vd.Dentry(), &vfs.FileDescriptionOptions{
		UseDentryMetadata: true,
		DenyPRead:         true,
		DenyPWrite:        true,
	}); err != nil {
		return nil, err
	}
	return &pf.vfsfd, nil
}

// Release implements vfs.FileDescriptionImpl.Release: the last close of the
// fd frees the event and its slot (perf_release).
func (pf *perfFD) Release(context.Context) {
	pf.ev.Close()
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
	group := arg.Uint64()&unix.PERF_IOC_FLAG_GROUP != 0
	switch args[1].Uint() {
	case unix.PERF_EVENT_IOC_ENABLE:
		pf.ev.Enable(group)
	case unix.PERF_EVENT_IOC_DISABLE:
		pf.ev.Disable(group)
	case unix.PERF_EVENT_IOC_RESET:
		pf.ev.Reset(group)
	case unix.PERF_EVENT_IOC_REFRESH:
		if err := pf.ev.Refresh(arg.Int()); err != nil {
			return 0, guestError(err)
		}
	case unix.PERF_EVENT_IOC_PERIOD:
		var v primitive.Uint64
		if _, err := v.CopyIn(kernel.TaskFromContext(ctx), arg.Pointer()); err != nil {
			return 0, linuxerr.EFAULT
		}
		if err := pf.ev.SetPeriod(uint64(v)); err != nil {
			return 0, guestError(err)
		}
	case unix.PERF_EVENT_IOC_ID:
		v := primitive.Uint64(pf.ev.ID())
		if _, err := v.CopyOut(kernel.TaskFromContext(ctx), arg.Pointer()); err != nil {
			return 0, linuxerr.EFAULT
		}
	case unix.PERF_EVENT_IOC_SET_OUTPUT:
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
	case unix.PERF_EVENT_IOC_SET_FILTER:
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
	case unix.PERF_EVENT_IOC_SET_BPF:
		// bpf_prog_get: no fd of the sandbox is a BPF program.
		f := kernel.TaskFromContext(ctx).GetFile(arg.Int())
		if f == nil {
			return 0, linuxerr.EBADF
		}
		f.DecRef(ctx)
		return 0, linuxerr.EINVAL
	case unix.PERF_EVENT_IOC_PAUSE_OUTPUT:
		if err := pf.ev.PauseOutput(arg.Uint64() != 0); err != nil {
			return 0, guestError(err)
		}
	case unix.PERF_EVENT_IOC_QUERY_BPF:
		// perf_event_query_prog_array: perfmon_capable() first, which
		// no caller in the sandbox is (see sentry/perf).
		return 0, linuxerr.EPERM
	case unix.PERF_EVENT_IOC_MODIFY_ATTRIBUTES:
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
