// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package systrap is hwbp's back end for gVisor's systrap platform. There an
// address space is a host "stub process" whose threads take task contexts
// from a shared queue and run them, so the sentry does not know in advance
// which host thread will run a task and cannot program that thread's debug
// registers before a Switch. Instead every stub thread of the process
// carries host perf breakpoint events (PERF_TYPE_BREAKPOINT, Linux 5.13+)
// for the breakpoints of all the process's tasks: each hit makes the host
// send the stub thread a SIGTRAP (sigtrap, with sig_data naming the event)
// that the stub reports as the context's fault, and Switch turns it into the
// guest's debug trap if the task that ran owns the breakpoint, and resumes
// the task invisibly otherwise.
//
// Events are opened on the stub threads that exist, and on the thread that
// clones new ones with inherit set, so a stub thread created later carries
// them from its first instruction. A process holds at most hwbp.Slots
// events per thread, the host's debug registers: its tasks' breakpoints are
// merged into distinct entries (address, type, length), and if there are
// more than that, the entries of the tasks that run at the moment are armed.
//
// One debug exception makes one SIGTRAP however many events fired, so the
// guest's DR6 B bits come from the events' counts (see space.hits).
//
// The hits of counting events (perf events that do not sample) of a task
// that is alone in its address space are counted by the host without a
// SIGTRAP, and read back when the guest reads them (count.go).
//
// Host fds are bounded (admit.go, maxFDs): each process with events holds
// hwbp.Slots fds per stub thread and as many for its nursery, so a guest that
// gives breakpoints to many processes (a tracer of hundreds of children)
// would hold thousands. The events of the processes whose tasks ran least
// recently are closed once more than openLimit processes have events, and
// reopened when one of their tasks runs again; and a process's events are
// opened only when they fit under maxFDs, the task waiting its turn until
// enough other processes go idle to be closed. If the processes whose
// tasks run hold every fd, the tasks that ran longest are interrupted
// (preempt), so that their processes go idle: the processes take turns. The
// cap, rather than a bound on idle processes alone, is what holds for any
// wake-up pattern: a process whose task waits for a stub thread cannot be
// closed, and under load hundreds do. Refusing to arm
// (Linux's ENOSPC) was not chosen: the fds are needed only while a task
// runs, and a tracer's POKEUSER cannot know how many other processes will
// run at once. Closing rather than disabling is what frees fds; the price
// is host perf_event_open calls at each wake-up of a process beyond
// openLimit, which the /hwbp/host_perf_opens metric shows (12,000 to 24,000 a
// second for 300 processes that wake 50 times a second each, on two CPUs).
//
// Invariants:
//   - Switch is called only while a breakpoint may be enabled or a stub
//     process carries events; otherwise the plugin's Switch costs one
//     atomic load more than the platform's own. While a process carries
//     events, the registry is retained (hwbp.Registry.Retain); they are
//     closed when a tracer disarms the last breakpoint (Refresh), or at the
//     first Switch of any of the process's tasks after it went.
//   - A task never sees a hit on a breakpoint it does not own, nor is a
//     hit that the host counted without a trap given to another task's
//     events: a position counts only while a single task can run in the
//     stub process.
//   - No event covers an address at or above the end of the application's
//     address space, where the stub's code and data are
//     (SetMaxUserAddress): the guest cannot trap the stub.
package systrap

import (
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/seccomp"
	"gvisor.dev/gvisor/pkg/sentry/kernel"

	"github.com/gvisor-hwbp/hwbp/platform/hostperf"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp/backend"
)

// Backend arms tasks' breakpoints on the systrap platform's stub threads.
type Backend struct {
	backend.Loop[run]

	// env is what the back end's spaces share with it (space.env).
	env

	tasks *hwbp.Tasks[*kernel.Task]

	// clock orders the arms of tasks (space.lastArm).
	clock atomic.Uint64

	// warnOnce limits the warning about a host that refuses perf events.
	warnOnce sync.Once

	// failures counts the host's refusals.
	failures atomic.Int64

	// spaces maps each gvsystrap.StubProcess whose tasks have had
	// breakpoints to its *space, and memberOf each *kernel.Task with
	// breakpoints to the space it is a member of. Switch reads them
	// without a lock, so that a task of a process without breakpoints
	// takes no mutex of the back end; mu serializes changes.
	spaces, memberOf sync.Map

	// spacesGen counts the spaces stored in spaces: a task whose
	// process had none at a count (backend.Local, quiet) knows that it
	// still has none while the count stays.
	spacesGen atomic.Uint64

	// mu serializes changes to spaces and memberOf. It is never held
	// while a space's mu is taken; the reverse order is allowed.
	mu sync.Mutex
}

// env is the part of a back end that its spaces use too: set by New, and
// safe for concurrent use.
type env struct {
	// r is the registry of the back end's tasks, retained while a space's
	// events are open.
	r *hwbp.Registry

	// notify, if set, is told each time a stub process's events are
	// opened or closed, with the number of processes that carry events
	// and of host event fds afterwards.
	notify func(opened bool, processes, fds int64)

	// host is the host's perf events; tests replace it.
	host perfHost

	// fds counts the open host event fds of every space.
	fds atomic.Int64

	// opened counts the spaces whose events are open.
	opened atomic.Int64

	// live is the set of spaces whose events are open.
	live liveSpaces

	// counters maps each *hwbp.Task whose hits a space counts without
	// traps to that *space (count.go), for Flush.
	counters sync.Map

	// admission orders the openings of spaces' events that admit bounds
	// by maxFDs. Its mu is taken under a space's mu, and other spaces'
	// are only tried under it (evict, preempt).
	admission admission

	// interrupt sends a running task back through the sentry (preempt);
	// tests replace it.
	interrupt func(*kernel.Task)
}

// New returns a back end for the breakpoints of tasks. If events is not nil,
// it is told each time a stub process's host events are opened or closed,
// with the number of processes that carry events and the number of host
// event fds afterwards.
func New(tasks *hwbp.Tasks[*kernel.Task], events func(opened bool, processes, fds int64)) *Backend {
	b := &Backend{
		env:   env{r: tasks.Registry(), notify: events, host: hostPerf{}, interrupt: (*kernel.Task).Interrupt},
		tasks: tasks,
	}
	b.Init(tasks, b)
	return b
}

var (
	_ backend.Backend     = (*Backend)(nil)
	_ backend.Arming[run] = (*Backend)(nil)
)

// HostFDs returns the number of host perf event fds that the back end holds.
func (b *Backend) HostFDs() int64 { return b.fds.Load() }

// Refusals returns how many times the host refused to open or change an
// event.
func (b *Backend) Refusals() int64 { return b.failures.Load() }

// warnings limits the back end's warnings that a guest can repeat. It is
// safe for concurrent use; its only user happens to run under a space's mu,
// which checklocks' lock inference would take for a guard.
var warnings = log.BasicRateLimitedLogger(time.Minute) // +checklocksignore

// SeccompRules returns the host system calls that the back end makes from
// the sentry, beyond what the platform itself needs.
func (b *Backend) SeccompRules() seccomp.SyscallRules {
	return hostperf.SeccompRules()
}

// Stale implements backend.Backend.Stale: with nothing enabled and no
// event open any more (the registry is retained while any is), a TRAP_PERF of
// ours is a hit that came before its event was closed.
func (b *Backend) Stale(info *linux.SignalInfo) bool {
	if info.Code != trapPerf {
		return false
	}
	data, _ := sigPerfData(info.Fields[:])
	return data&^0xff == sigDataMagic
}

// Arm implements backend.Arming.Arm: the events of the task's stub process
// are brought up to date with its tasks' breakpoints (space.go).
func (b *Backend) Arm(r backend.Run) (run, error) {
	return b.arm(r.Task, r.State, r.MM, r.Local), nil // r.sp.running is incremented
}

// Done implements backend.Arming.Done: the task's breakpoints need not be
// armed any more.
func (b *Backend) Done(rn backend.Run, r run) {
	if r.sp != nil {
		r.sp.done(rn.Task)
	}
}

// run is what a task runs with between arm and the end of its trap handling.
type run struct {
	// sp is the space of the task's stub process, nil if it never had
	// breakpoints.
	sp *space
	// img is the task's image as armed.
	img hwbp.Image
	// epoch is sp.epoch after arm.
	epoch uint64
}
