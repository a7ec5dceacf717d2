// Package plugin links hwbp into a runsc binary. A main package imports it
// for its side effects (see cmd/runsc); its init installs hwbp's hooks into
// gVisor's registries before runsc parses its flags:
//
//   - the guest's ptrace(2) gets the debug registers (sentry/ptrace), and the
//     clone family passes a thread's DR6/DR7 values on to its children;
//   - every system call is wrapped for the single-step at its exit;
//   - every supported platform is wrapped so that each task's platform
//     context reports its task's execve and exit, where Linux flushes the
//     task's breakpoints;
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
}
