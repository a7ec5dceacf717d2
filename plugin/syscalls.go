// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"errors"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi"
	"gvisor.dev/gvisor/pkg/errors/linuxerr"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"

	// Registers the Linux syscall table in which installSyscalls
	// implements perf_event_open.
	_ "gvisor.dev/gvisor/pkg/sentry/syscalls/linux"
)

// installSyscalls implements the guest's perf_event_open
// (patches/gvisor/0016), for breakpoint events; the other types keep
// gVisor's answer.
func installSyscalls() {
	table, ok := kernel.LookupSyscallTable(abi.Linux, arch.AMD64)
	if !ok {
		panic("hwbp: gVisor has no linux/amd64 syscall table")
	}
	old, err := table.Implement(unix.SYS_PERF_EVENT_OPEN, kernel.Syscall{
		Name:         "perf_event_open",
		Fn:           sysPerfEventOpen,
		SupportLevel: kernel.SupportPartial,
		Note:         "PERF_TYPE_BREAKPOINT events (hwbp); the other types return ENODEV.",
	})
	if err != nil {
		panic("hwbp: " + err.Error())
	}
	gvisorPerfEventOpen = old.Fn
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
