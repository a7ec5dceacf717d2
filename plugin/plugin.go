// Package plugin links hwbp into a runsc binary. A main package imports it
// for its side effects (see cmd/runsc); its init installs hwbp's hooks into
// gVisor's registries before runsc parses its flags:
//
//   - the guest's ptrace(2) gets the debug registers (sentry/ptrace), and the
//     clone family passes a thread's DR6/DR7 values on to its children;
//   - every supported platform is wrapped so that each task's platform
//     context reports its task's execve and exit, where Linux flushes the
//     task's breakpoints.
//
// The same binary runs every runsc subcommand, so init only registers hooks:
// anything that belongs to the sentry happens when the sentry calls into a
// hook (for example when it constructs its platform in "runsc boot").
package plugin

import (
	"gvisor.dev/gvisor/pkg/sentry/kernel"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/ptrace"
)

var (
	// registry holds every breakpoint event of this sandbox: one sentry
	// process runs one sandbox.
	registry = hwbp.NewRegistry()

	// threads is the guest-visible ptrace debug-register state of the
	// sandbox's threads.
	threads = ptrace.NewThreads[*kernel.Task](registry)
)

func init() {
	installSyscalls()
	wrapPlatforms()
}
