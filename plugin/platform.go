// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/seccomp"
	"gvisor.dev/gvisor/pkg/seccomp/precompiledseccomp"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/platform"

	kvmplatform "github.com/gvisor-hwbp/hwbp/platform/kvm"
	ptraceplatform "github.com/gvisor-hwbp/hwbp/platform/ptrace"
	systrapplatform "github.com/gvisor-hwbp/hwbp/platform/systrap"
	"github.com/gvisor-hwbp/hwbp/plugin/status"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp/backend"

	// Register gVisor's platforms first so that ours replace them.
	_ "gvisor.dev/gvisor/pkg/sentry/platform/platforms"
)

// current is the back end of the sandbox's platform, set when the platform
// is constructed, before any task runs; nil if its platform has none.
// taskContext.Switch calls a back end only while a breakpoint may be
// enabled anywhere (or a back end keeps host state armed, which it keeps
// visible with hwbp.Registry.Retain): otherwise Switch costs one atomic
// load.
var current backend.Backend

// backends are the platforms on which breakpoints fire. On the others the
// guest's debug registers are kept (sentry/ptrace) but never armed.
var backends = map[string]backend.Backend{
	"kvm":     kvmplatform.New(tasks),
	"ptrace":  ptraceplatform.New(tasks),
	"systrap": systrapplatform.New(tasks, logEvents),
}

// logEvents writes the systrap back end's opening and closing of a stub
// process's host events to the sentry's log, where tests count them.
func logEvents(opened bool, processes, fds int64) {
	msg := status.EventsClosedMessage
	if opened {
		msg = status.EventsOpenedMessage
	}
	log.Infof("%s %d%s%d", msg, processes, status.HostFDsMessage, fds)
}

// wrapPlatforms replaces the constructor of every registered platform with
// one that wraps the platform, also of those without a back end: the
// guest's debug-register state lives in the sentry whatever the platform,
// and only the wrapper's task contexts see the execve and exit at which
// Linux flushes and frees it.
func wrapPlatforms() {
	for _, name := range platform.List() {
		c, err := platform.Lookup(name)
		if err != nil {
			panic("hwbp: platform " + name + " is listed but cannot be looked up: " + err.Error())
		}
		platform.Register(name, constructor{Constructor: c, name: name, backend: backends[name]})
	}
}

// constructor wraps one of gVisor's platform constructors. Everything is
// delegated; New announces the plugin in the sentry's log and wraps the
// platform.
type constructor struct {
	platform.Constructor
	name    string
	backend backend.Backend // may be nil
}

// New implements platform.Constructor.New.
func (c constructor) New(opts platform.Options) (platform.Platform, error) {
	log.Infof("%s on platform %q", status.StartMessage, c.name)
	p, err := c.Constructor.New(opts)
	if err != nil {
		return nil, err
	}
	current = c.backend
	if c.backend != nil {
		c.backend.SetMaxUserAddress(p.MaxUserAddress())
		log.Infof("hwbp: breakpoints at or above %#x (the platform's stub) are never armed", uint64(p.MaxUserAddress()))
	}
	if f, ok := c.backend.(hwbp.Flusher); ok {
		// The back end counts some hits on the host, without a trap.
		tasks.Registry().SetFlusher(f)
	}
	return taskPlatform{Platform: p, backend: c.backend}, nil
}

// SeccompInfo implements platform.Platform.SeccompInfo: the platform's rules
// plus the back end's.
func (p taskPlatform) SeccompInfo() platform.SeccompInfo {
	inner := p.Platform.SeccompInfo()
	if p.backend == nil {
		return inner
	}
	if extra := p.backend.SeccompRules(); extra.Size() > 0 {
		return seccompInfo{SeccompInfo: inner, extra: extra}
	}
	return inner
}

// seccompInfo is a platform's seccomp information with more rules.
type seccompInfo struct {
	platform.SeccompInfo
	extra seccomp.SyscallRules
}

// ConfigKey implements platform.SeccompInfo.ConfigKey. The rules differ from
// the platform's, so no program precompiled for it may be used.
func (s seccompInfo) ConfigKey() string {
	return s.SeccompInfo.ConfigKey() + "+hwbp"
}

// SyscallFilters implements platform.SeccompInfo.SyscallFilters.
func (s seccompInfo) SyscallFilters(vars precompiledseccomp.Values) seccomp.SyscallRules {
	return s.SeccompInfo.SyscallFilters(vars).Merge(s.extra)
}

// taskPlatform gives every task a context that knows its task.
type taskPlatform struct {
	platform.Platform
	backend backend.Backend // may be nil
}

// NewContext implements platform.Platform.NewContext. The sentry calls it
// with the new task's context (kernel.TaskSet.NewTask), or at restore; what
// a new task inherits comes later (taskExtension.TaskCloned).
func (p taskPlatform) NewContext(ctx context.Context) platform.Context {
	pc := p.Platform.NewContext(ctx)
	t := kernel.TaskFromContext(ctx)
	if t == nil {
		return pc
	}
	return &taskContext{Context: pc, task: t, backend: p.backend}
}

// taskContext is a task's platform context, which the sentry tells about the
// task's execve and exit: it is created for each task and never shared, as
// Linux's per-thread debug-register state is.
type taskContext struct {
	platform.Context
	task    *kernel.Task
	backend backend.Backend // may be nil

	// local is the back end's memory of the task (backend.Local). Only
	// the task's goroutine uses it.
	local backend.Local

	// inSyscall is set when Switch returns for a system call of the task,
	// and cleared when the call's implementation returns (SyscallReturned) or
	// by the next Switch. If that finds it still set, the call returns to
	// user mode without its implementation having returned through
	// taskExtension.SyscallReturned: seccomp denied it, the tracer skipped
	// it at its entry stop or stopped it with PTRACE_SYSEMU, or it is a
	// successful execve, which returns into the new image. Linux's
	// syscall_exit_work runs on all those paths, so the single-step is
	// reported there, at the last moment before user mode (see
	// taskExtension.SyscallReturned). Only the task's goroutine uses it.
	inSyscall bool

	// perfExec is set by PrepareExecve when some perf event asks for
	// side-band records, and cleared by the FullStateChanged that
	// follows it once the task has its new image, which writes the
	// exec's records (perfExec). Only the task's goroutine uses it.
	perfExec bool

	// scheduledOut is set when the task blocks or stops (schedOut), and
	// cleared by the next Switch, which schedules the task's perf events
	// in again. Only the task's goroutine uses it.
	scheduledOut bool
}

// Switch implements platform.Context.Switch.
func (c *taskContext) Switch(ctx context.Context, mm platform.MemoryManager, ac *arch.Context64, cpu int32) (*linux.SignalInfo, hostarch.AccessType, error) {
	if c.scheduledOut {
		c.scheduledOut = false
		if events.Watching() {
			events.SchedIn(c.task, c.task.CPU(), perfClock(c.task))
		}
	}
	if c.inSyscall {
		c.inSyscall = false
		if c.task.PtraceSingleStepping() {
			// Nothing runs: the sentry forces the SIGTRAP on the
			// task, as for a trap of the application.
			return syscallStepSignal(ac), hostarch.NoAccess, platform.ErrContextSignal
		}
	}
	info, at, err := c.run(ctx, mm, ac, cpu)
	// Only a system call returns no error.
	c.inSyscall = err == nil
	return info, at, err
}

// run runs the task's code until the next system call, fault, signal or
// interrupt.
func (c *taskContext) run(ctx context.Context, mm platform.MemoryManager, ac *arch.Context64, cpu int32) (*linux.SignalInfo, hostarch.AccessType, error) {
	if c.backend != nil && tasks.Registry().Active() {
		if task := tasks.Lookup(c.task); task != nil {
			// The events bound to the CPU that the guest sees the
			// task on (getcpu) are armed.
			task.SetCPU(c.task.CPU())
		}
		return c.backend.Switch(c.task, c.Context, &c.local, ctx, mm, ac, cpu)
	}
	info, at, err := c.Context.Switch(ctx, mm, ac, cpu)
	if err != platform.ErrContextSignal || info.Signo != int32(linux.SIGTRAP) {
		return info, at, err
	}
	switch {
	case info.Code == hwbp.TrapTrace:
		// Even where no breakpoint can fire, a single-step shows in
		// the tracer's view of DR6.
		tasks.SingleStep(c.task, uint64(ac.IP()))
	case info.Code == hwbp.TrapBrkpt:
		// An icebp (INT1) resets it.
		tasks.Icebp(c.task, uint64(ac.IP()))
	case c.backend != nil && c.backend.Stale(info):
		return c.backend.Switch(c.task, c.Context, &c.local, ctx, mm, ac, cpu)
	}
	return info, at, err
}

// PrepareSleep implements platform.Context.PrepareSleep. The sentry calls
// it when the task blocks (Task.block, only when it must wait): Linux
// schedules the thread out there.
func (c *taskContext) PrepareSleep() {
	c.schedOut()
	c.Context.PrepareSleep()
}

// PrepareStop implements platform.Context.PrepareStop. The sentry calls it
// when the task enters a group or ptrace stop: Linux schedules the thread
// out there.
func (c *taskContext) PrepareStop() {
	c.schedOut()
	c.Context.PrepareStop()
}

// schedOut tells the task's perf events that it left its CPU; its next
// Switch schedules them in again (sentry/perf's sched.go says what Linux
// does there). While no perf event watches any thread, it costs a store
// and an atomic load. An event that is opened on the task while it is away
// learns it from perfEventOpen (schedOutIfAway).
func (c *taskContext) schedOut() {
	c.scheduledOut = true
	if events.Watching() {
		events.SchedOut(c.task, perfClock(c.task))
	}
}

// away reports whether t is blocked or stopped, where Linux has scheduled
// it out (schedOut).
func away(t *kernel.Task) bool {
	switch t.TaskGoroutineState() {
	case kernel.TaskGoroutineBlockedInterruptible, kernel.TaskGoroutineStopped:
		return true
	}
	return false
}

// schedOutIfAway stops the perf context clock of t, another thread than the
// caller's that a perf event now watches, if t is away from its CPU: it may
// have blocked or stopped before any event watched a thread, when schedOut
// had nothing to tell. Should t come back meanwhile, its Switch may have
// found the clock running, so the clock is started again: t is scheduled in
// at most once more.
func schedOutIfAway(t *kernel.Task) {
	if !away(t) {
		return
	}
	events.SchedOut(t, perfClock(t))
	if !away(t) {
		events.SchedIn(t, t.CPU(), perfClock(t))
	}
}

// PrepareExecve implements platform.Context.PrepareExecve: Linux flushes a
// thread's breakpoints and debug-register values at exec (flush_thread).
func (c *taskContext) PrepareExecve() {
	c.forget(true)
	c.perfExec = events.SideBand()
	// Without an exec event stop, the tracer's SIGTRAP for the exec is
	// pending when the execve returns and the step's is not queued.
	if !c.task.PtraceExecEventStops() {
		c.inSyscall = false
	}
	c.Context.PrepareExecve()
}

// FullStateChanged implements platform.Context.FullStateChanged. The sentry
// calls it at an execve right after the task switched to its new image
// (runExecveAfterSiblingExitStop), where Linux's begin_new_exec has made
// perf_event_exec (enable_on_exec, done by PrepareExecve) and
// perf_event_comm, and load_elf_binary then maps the new image.
func (c *taskContext) FullStateChanged() {
	if c.perfExec {
		c.perfExec = false
		perfExec(c.task)
	}
	c.Context.FullStateChanged()
}

// PrepareExit implements platform.Context.PrepareExit. The sentry calls it
// when the task exits, before its exit is reported to its parent or tracer
// (kernel.Task.runExitMain), so that nobody can reap the task and still find
// its state here; Linux flushes the thread's breakpoints at exit too.
func (c *taskContext) PrepareExit() {
	c.forget(false)
	c.Context.PrepareExit()
}

// Release implements platform.Context.Release, called when the task's
// goroutine ends, also for tasks that never ran: nothing of the task may
// remain. For tasks that exited, PrepareExit already forgot it.
func (c *taskContext) Release() {
	c.forget(false)
	c.Context.Release()
}

// forget flushes the task's breakpoint state at its execve, or frees it at
// its exit.
func (c *taskContext) forget(exec bool) {
	if c.backend != nil {
		c.backend.Forget(c.task)
	}
	var empty bool
	var created uint64
	if exec {
		empty, created = tasks.Exec(c.task)
	} else {
		// The perf events watching the task keep their counts, and
		// their times stop (perf_event_exit_task).
		events.Exit(c.task)
		empty, created = tasks.Exit(c.task)
	}
	if empty {
		log.Infof("%s %d", status.ReleasedMessage, created)
	}
}
