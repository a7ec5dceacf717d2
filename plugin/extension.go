// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// taskExtension is the plugin's kernel.Extension (patches/gvisor/0005,
// 0006, 0011 and 0014): gVisor tells it of each new task, as Linux's
// copy_process tells its per-task subsystems, hands it the debug-register
// part of its tracees' struct user, as Linux's arch_ptrace does, tells it
// of each system call's return, where Linux's syscall_exit_work runs, and
// of the mmaps, mprotects and renames that perf's side-band records report
// (perf_sideband.go).
type taskExtension struct{}

// TaskCloned implements kernel.Extension.TaskCloned. Before child first
// runs it gets what Linux's clone gives it: its creator's virtual DR6 and
// the copies of the creator's inherited perf events, as flags decide
// (hwbp.Tasks.Clone; perf_event_init_task), and the creator's perf events
// that ask for side-band records get PERF_RECORD_FORK (perf_event_fork). A
// creator without debug-register state, almost every one, costs one lookup.
func (taskExtension) TaskCloned(parent, child *kernel.Task, flags uint64) {
	if tasks.Lookup(parent) == nil {
		return
	}
	tasks.Clone(parent, child, flags)
	if events.SideBand() {
		events.Fork(parent, child)
	}
}

// PtracePeekUser implements kernel.Extension.PtracePeekUser, as Linux's
// arch_ptrace does: the debug registers (ptrace.Threads.PeekUser), 0 for
// the other fields.
func (taskExtension) PtracePeekUser(tracee *kernel.Task, off uintptr) (uint64, error) {
	addCheckpoint(tracee.Kernel())
	v, err := threads.PeekUser(tracee, uint64(off))
	if err != nil {
		return 0, guestError(err)
	}
	return v, nil
}

// PtracePokeUser implements kernel.Extension.PtracePokeUser: the debug
// registers (ptrace.Threads.PokeUser), EIO for the other fields, as on
// Linux. The back end learns of the change while the tracee is still
// frozen in its ptrace-stop.
func (taskExtension) PtracePokeUser(tracee *kernel.Task, off uintptr, value uint64) error {
	addCheckpoint(tracee.Kernel())
	err := threads.PokeUser(tracee, uint64(off), value)
	// Even a failed DR7 write can leave breakpoints changed (Linux's
	// ptrace_write_dr7 restores the old DR7, not the old events).
	if current != nil {
		current.Refresh(tracee)
	}
	if err != nil {
		return guestError(err)
	}
	return nil
}

// SyscallReturned implements kernel.Extension.SyscallReturned: it stops a
// task that its tracer single-steps over a system call instruction right
// after the system call, before it runs another instruction, as Linux
// does: PTRACE_SINGLESTEP sets SYSCALL_WORK_SYSCALL_EXIT_TRAP
// (arch/x86/kernel/step.c, enable_single_step), and at every system call's
// exit syscall_exit_work (kernel/entry/syscall-common.c) then calls
// ptrace_report_syscall_exit, whose user_single_step_report is, on x86,
// send_sigtrap(regs, 0, TRAP_BRKPT) (arch/x86/kernel/ptrace.c): a forced
// SIGTRAP with si_code TRAP_BRKPT and si_addr the user rip at exit, with no
// debug exception, so DR6 stays as it was. gVisor instead returns to the
// application with TF set, which runs one more instruction and traps with
// TRAP_TRACE.
//
// The SIGTRAP is queued when the system call's implementation returns,
// which is where gVisor's system call exit (runSyscallExit) follows at once
// unless the call continues in another run state. Linux queues it there
// too, before exit_to_user_mode_loop delivers the signals that are pending,
// among them those the call itself caused (kill of itself); a ptrace event
// stop that the call makes (PTRACE_EVENT_FORK) comes first on both. Its
// si_addr is rip after the call, which rt_sigreturn has already restored.
// Exceptions:
//   - exit and exit_group (kernel.CtrlDoExit) never return;
//   - a successful execve or execveat returns into the new image, later,
//     after its PTRACE_EVENT_EXEC stop: taskContext.Switch reports it there,
//     as it does for the system calls whose implementation never runs (see
//     taskContext.inSyscall).
//
// Whatever it reports, the call returned through here, so
// taskContext.Switch need not report it (inSyscall).
func (taskExtension) SyscallReturned(t *kernel.Task, sysno uintptr, ctrl *kernel.SyscallControl) {
	if ctrl == kernel.CtrlDoExit || (sysno == unix.SYS_EXECVE || sysno == unix.SYS_EXECVEAT) && ctrl != nil {
		return
	}
	if c, ok := t.PlatformContext().(*taskContext); ok {
		c.inSyscall = false
	}
	if !t.PtraceSingleStepping() {
		return
	}
	t.ForceSignal(syscallStepSignal(t.Arch()))
}

// syscallStepSignal is the SIGTRAP of a single-step reported at system call
// exit (send_sigtrap(regs, 0, TRAP_BRKPT)).
func syscallStepSignal(ac *arch.Context64) *linux.SignalInfo {
	info := &linux.SignalInfo{Signo: int32(linux.SIGTRAP), Code: hwbp.TrapBrkpt}
	info.SetAddr(uint64(ac.IP()))
	return info
}
