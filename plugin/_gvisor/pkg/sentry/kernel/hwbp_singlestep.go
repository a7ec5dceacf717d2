// This file is hwbp's addition to gVisor's kernel package, added to a
// vendored copy of gVisor at build time (see the hwbp Makefile). It only adds
// exported accessors; it changes no existing code. Proposed upstream shape:
// gVisor's runSyscallExit reporting the single-step itself, as Linux's
// syscall_exit_work does.

package kernel

import (
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/sentry/platform"
)

// PtraceSingleStepping reports whether a system call of t that returns now
// must stop t with a single-step SIGTRAP before it runs another instruction:
// t's tracer resumed it with PTRACE_SINGLESTEP, not PTRACE_SYSEMU_SINGLESTEP.
// This is Linux's report_single_step (kernel/entry/syscall-common.c):
// SYSCALL_WORK_SYSCALL_EXIT_TRAP, which PTRACE_SINGLESTEP sets
// (arch/x86/kernel/step.c, enable_single_step), without
// SYSCALL_WORK_SYSCALL_EMU. ptraceSinglestep is Linux's TIF_SINGLESTEP, which
// the exit trap shadows.
func (t *Task) PtraceSingleStepping() bool {
	if !t.hasTracer() {
		return false
	}
	t.tg.pidns.owner.mu.RLock()
	defer t.tg.pidns.owner.mu.RUnlock()
	return t.ptraceSinglestep && t.ptraceSyscallMode != ptraceSyscallEmu
}

// ForceSignal sends info to t as Linux's force_sig_fault does: if its signal
// is blocked or ignored, it is unblocked and its handler reset to the
// default. Task.run does the same for the synchronous signals of the
// platform.
func (t *Task) ForceSignal(info *linux.SignalInfo) error {
	t.forceSignal(linux.Signal(info.Signo), false /* unconditional */)
	return t.SendSignal(info)
}

// PtraceExecEventStops reports whether t's execve is reported to t's tracer
// by a PTRACE_EVENT_EXEC stop, and not by a plain SIGTRAP: t is traced, and
// its tracer set PTRACE_O_TRACEEXEC or attached with PTRACE_SEIZE (see
// Task.ptraceExec). The SIGTRAP that Linux sends otherwise is pending when
// the execve returns, so that the single-step report's SIGTRAP, a legacy
// signal, is not queued (kernel/signal.c, legacy_queue).
func (t *Task) PtraceExecEventStops() bool {
	if !t.hasTracer() {
		return false
	}
	t.tg.pidns.owner.mu.RLock()
	defer t.tg.pidns.owner.mu.RUnlock()
	return t.ptraceOpts.TraceExec || t.ptraceSeized
}

// PlatformContext returns t's platform context, which the platform's
// NewContext made for t.
//
// Preconditions: The caller must be running on the task goroutine.
func (t *Task) PlatformContext() platform.Context {
	return t.p
}
