package plugin

import (
	"gvisor.dev/gvisor/pkg/sentry/kernel"
)

// taskExtension is the plugin's kernel.Extension: gVisor tells it of each
// new task, as Linux's copy_process tells its per-task subsystems.
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
