// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/kernel/auth"
	"gvisor.dev/gvisor/pkg/sentry/kernel/fasync"
	"gvisor.dev/gvisor/pkg/sentry/vfs"

	"github.com/gvisor-hwbp/hwbp/sentry/perf"
)

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
	// F_SETOWN recorded its caller's credentials (Linux's f_owner uid
	// and euid) and the handler the fd that turned O_ASYNC on (fa_fd):
	// patches/gvisor/0015.
	owner := a.Requester()
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
			info.SetFD(uint32(a.FD()))
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
