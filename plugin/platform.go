package plugin

import (
	"gvisor.dev/gvisor/pkg/context"

	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/platform"

	// Register gVisor's platforms first so that ours replace them.
	_ "gvisor.dev/gvisor/pkg/sentry/platform/platforms"
)

// wrappedPlatforms are the platforms whose tasks hwbp follows.
var wrappedPlatforms = []string{"ptrace", "systrap"}

// wrapPlatforms replaces the constructors of wrappedPlatforms with ones that
// wrap each platform.
func wrapPlatforms() {
	for _, name := range wrappedPlatforms {
		c, err := platform.Lookup(name)
		if err != nil {
			panic("hwbp: gVisor has no platform " + name + ": " + err.Error())
		}
		platform.Register(name, constructor{Constructor: c, name: name})
	}
}

// constructor wraps one of gVisor's platform constructors. Everything is
// delegated; New announces the plugin in the sentry's log and wraps the
// platform.
type constructor struct {
	platform.Constructor
	name string
}

// New implements platform.Constructor.New.
func (c constructor) New(opts platform.Options) (platform.Platform, error) {
	log.Infof("%s on platform %q", StartMessage, c.name)
	p, err := c.Constructor.New(opts)
	if err != nil {
		return nil, err
	}
	return taskPlatform{p}, nil
}

// taskPlatform gives every task a context that knows its task.
type taskPlatform struct {
	platform.Platform
}

// NewContext implements platform.Platform.NewContext. The sentry calls it
// with the new task's context, on the goroutine of the task that creates it
// (kernel.TaskSet.NewTask), or at restore.
func (p taskPlatform) NewContext(ctx context.Context) platform.Context {
	pc := p.Platform.NewContext(ctx)
	t := kernel.TaskFromContext(ctx)
	if t == nil {
		return pc
	}
	if parent := creator(); parent != nil {
		threads.Inherit(parent, t)
	}
	return &taskContext{Context: pc, task: t}
}

// taskContext is a task's platform context, which the sentry tells about the
// task's execve and exit: it is created for each task and never shared, as
// Linux's per-thread debug-register state is.
type taskContext struct {
	platform.Context
	task *kernel.Task
}

// PrepareExecve implements platform.Context.PrepareExecve: Linux flushes a
// thread's breakpoints and debug-register values at exec (flush_thread).
func (c *taskContext) PrepareExecve() {
	forget(c.task)
	c.Context.PrepareExecve()
}

// Release implements platform.Context.Release, called when the task's
// goroutine ends: nothing of the task may remain.
func (c *taskContext) Release() {
	forget(c.task)
	c.Context.Release()
}

func forget(t *kernel.Task) {
	if empty, created := threads.Remove(t); empty {
		log.Infof("%s %d", ReleasedMessage, created)
	}
}
