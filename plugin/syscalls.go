package plugin

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi"
	"gvisor.dev/gvisor/pkg/errors/linuxerr"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"

	// Registers the Linux syscall table that installSyscalls patches.
	_ "gvisor.dev/gvisor/pkg/sentry/syscalls/linux"
)

// x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
const (
	sysIoctl    = 16
	sysExecve   = 59
	sysFcntl    = 72
	sysExecveat = 322
)

// installSyscalls wraps the guest's perf_event_open, fcntl and ioctl
// system calls.
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
