package plugin

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi"
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/errors/linuxerr"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"

	// Registers the Linux syscall table that installSyscalls patches.
	_ "gvisor.dev/gvisor/pkg/sentry/syscalls/linux"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
const (
	sysIoctl    = 16
	sysExecve   = 59
	sysFcntl    = 72
	sysPrctl    = 157
	sysExecveat = 322
)

// installSyscalls wraps the guest's perf_event_open, fcntl, ioctl,
// mmap, munmap, mprotect and mremap system calls, and then every system
// call for the single-step at its exit.
func installSyscalls() {
	table, ok := kernel.LookupSyscallTable(abi.Linux, arch.AMD64)
	if !ok {
		panic("hwbp: gVisor has no linux/amd64 syscall table")
	}
	wrap := func(sysno uintptr, hook func(kernel.SyscallFn) kernel.SyscallFn) {
		sc, ok := table.Table[sysno]
		if !ok || sc.Fn == nil {
			panic(fmt.Sprintf("hwbp: gVisor does not implement syscall %d", sysno))
		}
		sc.Fn = hook(sc.Fn)
		table.Table[sysno] = sc
	}
	wrap(unix.SYS_PERF_EVENT_OPEN, perfEventOpenHook)
	wrap(sysFcntl, fcntlHook)
	wrap(sysIoctl, ioctlHook)
	wrap(sysMmap, mmapHook)
	wrap(sysMunmap, munmapHook)
	wrap(sysMprotect, mprotectHook)
	wrap(sysMremap, mremapHook)
	wrap(sysMmap, perfMmapHook)
	wrap(sysMprotect, perfMprotectHook)
	wrap(sysPrctl, perfPrctlHook)
	// Outermost, so that it sees each system call's final registers.
	for sysno, sc := range table.Table {
		if sc.Fn != nil {
			sc.Fn = stepHook(sysno, sc.Fn)
			table.Table[sysno] = sc
		}
	}
	table.Missing = stepMissingHook(table.Missing)
	// Rebuild the table's fast-lookup arrays from Table.
	table.Init()
}

// guestError turns an error of sentry/hwbp or sentry/ptrace into the errno
// the guest sees.
func guestError(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return linuxerr.ErrorFromUnix(errno)
	}
	// Every error of those packages wraps an errno; this would be a bug.
	return linuxerr.EINVAL
}

// stepHook stops a task that its tracer single-steps over a system call
// instruction right after the system call, before it runs another
// instruction, as Linux does: PTRACE_SINGLESTEP sets
// SYSCALL_WORK_SYSCALL_EXIT_TRAP (arch/x86/kernel/step.c,
// enable_single_step), and at every system call's exit syscall_exit_work
// (kernel/entry/syscall-common.c) then calls ptrace_report_syscall_exit,
// whose user_single_step_report is, on x86, send_sigtrap(regs, 0,
// TRAP_BRKPT) (arch/x86/kernel/ptrace.c): a forced SIGTRAP with si_code
// TRAP_BRKPT and si_addr the user rip at exit, with no debug exception, so
// DR6 stays as it was. gVisor instead returns to the application with TF set,
// which runs one more instruction and traps with TRAP_TRACE.
//
// The SIGTRAP is queued when the system call's implementation returns, which
// is where gVisor's system call exit (runSyscallExit) follows at once unless
// the call continues in another run state. Linux queues it there too, before
// exit_to_user_mode_loop delivers the signals that are pending, among them
// those the call itself caused (kill of itself); a ptrace event stop that
// the call makes (PTRACE_EVENT_FORK) comes first on both. Its si_addr is
// rip after the call, which rt_sigreturn has already restored. Exceptions:
//   - exit and exit_group (kernel.CtrlDoExit) never return;
//   - a successful execve or execveat returns into the new image, later,
//     after its PTRACE_EVENT_EXEC stop: taskContext.Switch reports it there,
//     as it does for the system calls whose implementation never runs (see
//     taskContext.inSyscall).
func stepHook(sysno uintptr, orig kernel.SyscallFn) kernel.SyscallFn {
	exec := sysno == sysExecve || sysno == sysExecveat
	return func(t *kernel.Task, sysno uintptr, args arch.SyscallArguments) (uintptr, *kernel.SyscallControl, error) {
		rv, ctl, err := orig(t, sysno, args)
		if ctl == kernel.CtrlDoExit || exec && ctl != nil {
			return rv, ctl, err
		}
		syscallExit(t)
		return rv, ctl, err
	}
}

// stepMissingHook is stepHook for system calls that gVisor does not
// implement: Linux's ENOSYS returns through syscall_exit_work too.
func stepMissingHook(orig kernel.MissingFn) kernel.MissingFn {
	return func(t *kernel.Task, sysno uintptr, args arch.SyscallArguments) (uintptr, error) {
		rv, err := orig(t, sysno, args)
		syscallExit(t)
		return rv, err
	}
}

// syscallExit runs when the implementation of t's system call returns,
// which is t's system call exit (see stepHook): taskContext.Switch need not
// report the call, and Linux's report_single_step and
// user_single_step_report (x86) happen here.
func syscallExit(t *kernel.Task) {
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
