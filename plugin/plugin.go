// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package plugin links hwbp into a runsc binary. A main package imports it
// for its side effects (see cmd/runsc); its init registers hwbp with gVisor
// before runsc parses its flags, only through what gVisor offers for it
// (patches/gvisor):
//
//   - a kernel.Extension (extension.go): the debug-register part of the
//     guest's PTRACE_PEEKUSR/POKEUSR (sentry/ptrace), a new thread's DR6
//     and inherited perf events, the single-step over a system call, and
//     the mmaps, mprotects and renames of perf's side-band records;
//   - perf_event_open for breakpoint events (SyscallTable.Implement), whose
//     fd is a vfs.FileDescriptionImpl (perf_fd.go);
//   - every supported platform is wrapped so that each task's platform
//     context runs the back end's Switch and reports its task's execve and
//     exit, where Linux flushes the task's breakpoints (platform.go);
//   - hwbp's counters become gVisor metrics (/hwbp/...).
//
// Where the operator turned hwbp off with runsc's --hwbp=false (see
// plugin/operator), init installs nothing: the process, and in it the
// sandbox's sentry, is stock gVisor's.
//
// The same binary runs every runsc subcommand, so init only registers hooks:
// anything that belongs to the sentry happens when the sentry calls into a
// hook (for example when it constructs its platform in "runsc boot").
package plugin

import (
	"gvisor.dev/gvisor/pkg/sentry/kernel"

	"github.com/gvisor-hwbp/hwbp/plugin/operator"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/ptrace"
)

var (
	// tasks holds the breakpoint state of the sandbox's threads, in one
	// registry: one sentry process runs one sandbox.
	tasks = hwbp.NewTasks(hwbp.NewRegistry(), exited)

	// threads is the guest's ptrace view of the debug registers, one
	// consumer of tasks' breakpoints.
	threads = ptrace.NewThreads(tasks)
)

// exited reports whether t has begun to exit. gVisor sets the exit state
// (exitThreadGroup) before it tells the platform context (PrepareExit),
// which then frees t's breakpoint state: hwbp.Tasks.Get creates none after
// that point.
func exited(t *kernel.Task) bool {
	return t.ExitState() != kernel.TaskExitNone
}

func init() {
	if !operator.Enabled() {
		return
	}
	installSyscalls()
	kernel.RegisterExtension(taskExtension{})
	wrapPlatforms()
	registerMetrics()
	registerWatch()
}
