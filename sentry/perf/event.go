package perf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// Sigtrap is the SIGTRAP that an overflow of a sigtrap event sends to the
// thread that hit (Linux's send_sig_perf): si_code TRAP_PERF, si_addr Addr
// (bp_addr), si_perf_data Data (sig_data), si_perf_type Type (the event's
// type).
type Sigtrap struct {
	Addr uint64
	Data uint64
	Type uint32
}

// Reasons of an overflow notification (the si_code that Linux's kill_fasync
// passes on): Linux's event->pending_kill.
const (
	// PollIn is an overflow (POLL_IN).
	PollIn = 1
	// PollHUp is the overflow that used up a PERF_EVENT_IOC_REFRESH
	// limit (POLL_HUP).
	PollHUp = 6
)

// AsyncFunc notifies the owner of an event's fd, whose O_ASYNC is set, of
// reason (PollIn or PollHUp): Linux's kill_fasync(perf_event_fasync(event),
// SIGIO, reason). It is called from the goroutine of the thread that hit, or
// of the thread that exits, with no lock of this package held.
type AsyncFunc func(reason int)

// SignalFunc sends s to thread k, which is running the instruction that
// hit, from its own goroutine; the SIGTRAP must reach it before it runs
// another instruction, as Linux's task work does at the return to user mode.
type SignalFunc[K comparable] func(k K, s Sigtrap)

// Events is the perf_event_open consumer of the breakpoints of a sandbox's
// threads, identified by K as in hwbp.Tasks.
type Events[K comparable] struct {
	tasks *hwbp.Tasks[K]

	// signal sends sigtrap events' signals; nil sends none.
	signal SignalFunc[K]

	// sameProcess reports whether two threads belong to one process
	// (inherit_thread: only threads inherit); nil means never.
	sameProcess func(a, b K) bool

	// clearsSighand reports whether the thread that parent is creating
	// starts with its signal handlers reset (clone3's
	// CLONE_CLEAR_SIGHAND); nil means never. Set before the first event
	// opens.
	clearsSighand func(parent K) bool

	// lastID is the last event id handed out (Linux's perf_event_id).
	lastID atomic.Uint64

	// sideBand is the number of open events (the guest's, not their
	// inherited copies) that ask for side-band records: see SideBand.
	sideBand atomic.Int64

	// watched is the number of events, opened and inherited, that watch
	// a thread (are in its taskEvents): see Watching.
	watched atomic.Int64

	// groupMu guards the events' group membership (Linux's
	// ctx->mutex for the group lists).
	groupMu sync.Mutex

	// leaders maps each event that joined a group to its leader; a
	// leader, and an event alone, has no entry.
	//
	// +checklocks:groupMu
	leaders map[*Event[K]]*Event[K]

	// siblings maps each leader to the other members of its group, in the
	// order they joined.
	//
	// +checklocks:groupMu
	siblings map[*Event[K]][]*Event[K]

	// sampler gives the samples' thread ids, CPUs and times; nil gives
	// zeros. Set before the first event opens.
	sampler Sampler[K]

	// ringMu serializes the mapping, unmapping and redirection of rings
	// (Linux's mmap_mutex), and guards the rings' mapped counts.
	ringMu sync.Mutex

	// lockedPages and pinnedPages are the pages that mapped rings count
	// against the per-CPU allowance (user->locked_vm) and RLIMIT_MEMLOCK
	// (mm->pinned_vm): the sandbox's rings count as one user's.
	//
	// +checklocks:ringMu
	lockedPages uint64
	// +checklocks:ringMu
	pinnedPages uint64
}

// NewEvents returns the perf view of tasks, whose sigtrap events signal
// through signal; sameProcess tells the threads of one process.
func NewEvents[K comparable](tasks *hwbp.Tasks[K], signal SignalFunc[K], sameProcess func(a, b K) bool) *Events[K] {
	return &Events[K]{
		tasks:       tasks,
		signal:      signal,
		sameProcess: sameProcess,
		leaders:     make(map[*Event[K]]*Event[K]),
		siblings:    make(map[*Event[K]][]*Event[K]),
	}
}

// SetClearsSighand sets how the events learn whether a thread that parent
// is creating starts with its signal handlers reset (clone3's
// CLONE_CLEAR_SIGHAND), which no sigtrap event is inherited into. Call it
// before the first event opens.
func (es *Events[K]) SetClearsSighand(f func(parent K) bool) { es.clearsSighand = f }

// Target is what perf_event_open's pid and cpu arguments name.
type Target[K comparable] struct {
	// Task is the thread to watch, if HasTask; otherwise the event is
	// CPU-wide.
	Task    K
	HasTask bool

	// CPU is the cpu argument: -1 for any, else the CPU the event counts
	// on. NumCPU is the number of CPUs of the sandbox (nr_cpu_ids).
	CPU    int32
	NumCPU int

	// MayAccess is the caller's ptrace access check of Task
	// (ptrace_may_access with PTRACE_MODE_READ_REALCREDS, or
	// PTRACE_MODE_ATTACH_REALCREDS if attach).
	MayAccess func(attach bool) bool

	// Exited reports whether Task has exited (perf_event_exit_task ran:
	// Linux's TASK_TOMBSTONE context).
	Exited func() bool

	// Clock returns the time, in nanoseconds, that the event's times
	// (enabled, running) follow while it is enabled and its task lives.
	Clock func() uint64
}

// Group is what perf_event_open's group_fd names.
type Group[K comparable] struct {
	// Leader is group_fd's event, nil if group_fd is -1 or
	// PERF_FLAG_FD_NO_GROUP was given.
	Leader *Event[K]
	// Output is set by PERF_FLAG_FD_OUTPUT with a group_fd.
	Output *Event[K]
}

// Event is one breakpoint event that perf_event_open created.
type Event[K comparable] struct {
	es     *Events[K]
	id     uint64
	target Target[K]

	// excludeUser is the attribute's exclude_user.
	excludeUser bool

	// onTask is the list of the target task's events, which its execve
	// and exit change; nil for an event without a task.
	onTask *taskEvents[K]

	// parent is the event that the guest opened, for a copy that a new
	// thread inherited (inherit); nil for that event itself. Immutable.
	parent *Event[K]

	// count is the event's count (hits since the last reset). The
	// overflow handler adds to it without any lock; a copy's exit moves
	// it to its opened event under both events' mu (detachCopy).
	count atomic.Uint64 // +checklocksignore

	// async is the notification of the fd's O_ASYNC owner while O_ASYNC
	// is set (Linux's event->fasync), nil otherwise; set on the event
	// that the guest opened only, which its copies use
	// (perf_event_fasync).
	async atomic.Pointer[AsyncFunc]

	// ring is the ring the event's records go to (event->rb): one mapped
	// through its fd, or another event's (PERF_EVENT_IOC_SET_OUTPUT);
	// nil for none. Events.ringMu serializes its changes; the overflow
	// handler loads it.
	ring atomic.Pointer[Ring]

	// lostSamples counts the samples that found no room in the ring
	// (event->lost_samples, PERF_FORMAT_LOST).
	lostSamples atomic.Uint64

	// waiters wakes up the waiters of the event's fd, nil if none.
	waiters atomic.Pointer[func()]

	mu sync.Mutex

	// mapped is the number of bytes of the guest's mappings of the ring
	// made through the event's fd (event->mmap_count, in bytes).
	//
	// +checklocks:mu
	mapped uint64

	// attr is the attribute the event was opened with, with the period
	// that PERF_EVENT_IOC_PERIOD set.
	//
	// +checklocks:mu
	attr Attr

	// bp is the core's event; nil for a closed event.
	//
	// +checklocks:mu
	bp *hwbp.Breakpoint

	// held is the core's event, disabled, of an opened event that an exec
	// removed (remove_on_exec): it keeps its slot until Close, as Linux
	// releases a breakpoint's slot only when it frees the event
	// (bp_perf_event_destroy from _free_event, at the last close), not
	// when perf_event_remove_on_exec detaches it.
	//
	// +checklocks:mu
	held *hwbp.Breakpoint

	// children are the live copies of an opened event in the threads that
	// inherited it.
	//
	// +checklocks:mu
	children []*Event[K]

	// childCount and childTime are the counts and times of the copies
	// that exited (Linux's child_count, child_total_time_enabled and
	// _running, which are equal for breakpoints).
	//
	// +checklocks:mu
	childCount uint64
	// +checklocks:mu
	childTime uint64

	// closed is set when the guest closed the event: no copy of it may
	// be made any more.
	//
	// +checklocks:mu
	closed bool

	// enabled is the event's state as the guest set it.
	//
	// +checklocks:mu
	enabled bool

	// left is the number of hits until the next overflow of a sampling
	// event (Linux's period_left, negated): 0 after
	// PERF_EVENT_IOC_PERIOD, which sets period_left to 0.
	//
	// +checklocks:mu
	left uint64

	// lastPeriod is the period of the last overflow (hw.last_period),
	// which the next overflow's count and sample use before it takes the
	// current period.
	//
	// +checklocks:mu
	lastPeriod uint64

	// limit is the number of overflows after which the event disables
	// itself, 0 for none (Linux's event_limit, which
	// PERF_EVENT_IOC_REFRESH adds to).
	//
	// +checklocks:mu
	limit int32

	// pendingKill is the reason of the last overflow that no O_ASYNC
	// notification has reported yet, 0 for none (Linux's pending_kill):
	// an overflow sets it, a notification clears it, and one is made at
	// the overflow if O_ASYNC is set, else when the watched thread
	// exits (perf_event_exit_event's perf_event_wakeup) if O_ASYNC is
	// set by then.
	//
	// +checklocks:mu
	pendingKill int

	// since is Target.Clock when the event was last enabled; total is the
	// time it was enabled before that.
	//
	// +checklocks:mu
	since uint64
	// +checklocks:mu
	total uint64
}

// errorf wraps errno with a message.
func errorf(errno unix.Errno, format string, args ...any) error {
	return fmt.Errorf("perf: "+format+": %w", append(args, errno)...)
}

// Open creates the breakpoint event a (which passed CopyAttr and CheckOpen)
// for target in group, with the checks of Linux's perf_event_open that
// follow the lookup of group_fd and pid, in Linux's order
// (kernel/events/core.c: perf_event_open, perf_event_alloc,
// hw_breakpoint_event_init, perf_try_init_event, find_get_context):
//
//   - inherit differing from the group leader's: EINVAL;
//   - a cpu past the sandbox's CPUs, other than -1 for a task: EINVAL;
//   - sigtrap without a task; inherit with PERF_SAMPLE_READ and without
//     PERF_SAMPLE_TID: EINVAL;
//   - branch stack sampling: EOPNOTSUPP;
//   - the slot reservation and the breakpoint's own checks (hwbp.Registry.
//     Register: EINVAL for the type, ENOSPC, then hwbp.Attr.Validate); a
//     CPU-wide event needs a slot next to the busiest task's;
//   - XMM registers sampled: EOPNOTSUPP; AUX controls: EOPNOTSUPP or EINVAL;
//     a clock other than an NMI-safe one: EINVAL;
//   - a task the caller may not trace (attach mode for sigtrap): EACCES;
//     a CPU-wide event: EACCES, as for an unprivileged caller under
//     perf_event_paranoid 2 (see the package doc);
//   - a task that has exited: ESRCH;
//   - a group leader on another CPU or task, a pinned or exclusive member,
//     an output event (PERF_FLAG_FD_OUTPUT) on another CPU or task, with
//     another clock or without a ring, AUX sampling: EINVAL.
//
// On error nothing stays registered.
func (es *Events[K]) Open(a Attr, target Target[K], group Group[K]) (*Event[K], error) {
	leader := group.Leader
	if leader != nil && target.HasTask && leader.Attr().Has(FlagInherit) != a.Has(FlagInherit) {
		return nil, errorf(unix.EINVAL, "inherit differs from the group leader's")
	}
	if target.CPU < 0 || int(target.CPU) >= target.NumCPU {
		if !target.HasTask || target.CPU != -1 {
			return nil, errorf(unix.EINVAL, "cpu %d", target.CPU)
		}
	}
	if a.Has(FlagSigtrap) && !target.HasTask {
		return nil, errorf(unix.EINVAL, "sigtrap needs a task")
	}
	if a.Has(FlagInherit) && a.SampleType()&SampleRead != 0 && a.SampleType()&SampleTID == 0 {
		return nil, errorf(unix.EINVAL, "inherit with PERF_SAMPLE_READ needs PERF_SAMPLE_TID")
	}
	if a.SampleType()&SampleBranchStack != 0 {
		return nil, errorf(unix.EOPNOTSUPP, "no branch sampling for breakpoints")
	}

	ev := &Event[K]{es: es, target: target, attr: a.normalized(), excludeUser: a.Has(FlagExcludeUser)}
	bpAttr := hwbp.Attr{Addr: a.BPAddr(), Len: a.BPLen(), Type: hwbp.Type(a.BPType()), Disabled: true}
	var bp *hwbp.Breakpoint
	exited := false
	if target.HasTask {
		var err error
		bp, err = es.register(target.Task, target.CPU, bpAttr, ev.overflow)
		if err == nil {
			ev.setCounter(bp, a.normalized())
		}
		switch {
		case errors.Is(err, errExited):
			exited = true
		case err != nil:
			return nil, err
		}
	} else if err := es.reserveCPUWide(bpAttr); err != nil {
		return nil, err
	}
	fail := func(err error) (*Event[K], error) {
		if bp != nil {
			bp.Unregister()
		}
		return nil, err
	}

	if (a.u64(offRegsUser)|a.u64(offRegsIntr))&regExtended != 0 {
		return fail(errorf(unix.EOPNOTSUPP, "no XMM register sampling for breakpoints"))
	}
	aux := a.u32(offAuxAction)
	if a.Has(FlagAuxOutput) {
		return fail(errorf(unix.EOPNOTSUPP, "aux_output"))
	}
	if aux&auxPause != 0 && aux&auxResume != 0 {
		return fail(errorf(unix.EINVAL, "aux_pause with aux_resume"))
	}
	if aux&auxStartPaused != 0 {
		return fail(errorf(unix.EOPNOTSUPP, "aux_start_paused"))
	}
	if a.SampleType()&SampleCallchain != 0 && a.u16(offMaxStack) > defaultMaxStack {
		// get_callchain_buffers: deeper than
		// kernel.perf_event_max_stack.
		return fail(errorf(unix.EOVERFLOW, "sample_max_stack %d", a.u16(offMaxStack)))
	}
	if a.Has(FlagUseClockID) {
		if c := a.ClockID(); c != clockMonotonic && c != clockMonotonicRaw {
			return fail(errorf(unix.EINVAL, "clock %d", c))
		}
	}
	if target.HasTask {
		if !target.MayAccess(a.Has(FlagSigtrap)) {
			return fail(errorf(unix.EACCES, "may not trace the task"))
		}
	} else {
		return fail(errorf(unix.EACCES, "CPU-wide events need CAP_PERFMON"))
	}
	if exited || target.Exited != nil && target.Exited() {
		return fail(errorf(unix.ESRCH, "the task has exited"))
	}
	if leader != nil {
		if leader.groupLeader() != leader {
			return fail(errorf(unix.EINVAL, "group_fd is not a group leader"))
		}
		if leader.target.CPU != target.CPU || leader.target.HasTask != target.HasTask || leader.target.Task != target.Task {
			return fail(errorf(unix.EINVAL, "group leader on another CPU or task"))
		}
		if a.Has(FlagPinned) || a.Has(FlagExclusive) {
			return fail(errorf(unix.EINVAL, "only a group leader may be pinned or exclusive"))
		}
	}
	if out := group.Output; out != nil {
		// perf_event_set_output, as SetOutput checks it.
		if err := checkOutput(out, target, clockOf(a), out.clock()); err != nil {
			return fail(err)
		}
		if out.ring.Load() == nil {
			return fail(errorf(unix.EINVAL, "the output event has no ring"))
		}
	}
	if a.u32(offAuxSample) != 0 || aux&(auxPause|auxResume) != 0 {
		// perf_get_aux_event: no AUX event leads the group.
		return fail(errorf(unix.EINVAL, "AUX sampling without an AUX group leader"))
	}

	ev.id = es.lastID.Add(1)
	ev.mu.Lock()
	ev.bp = bp
	ev.left = ev.periodLocked()
	ev.lastPeriod = ev.left
	ev.mu.Unlock()
	if bp != nil {
		ev.onTask = attachTaskEvents[K](bp.Task())
		ev.onTask.add(ev)
	}
	if out := group.Output; out != nil {
		es.ringMu.Lock()
		if r := out.ring.Load(); r != nil {
			ev.attachRing(r)
		}
		es.ringMu.Unlock()
	}
	if leader != nil {
		es.groupMu.Lock()
		es.leaders[ev] = leader
		es.siblings[leader] = append(es.siblings[leader], ev)
		es.groupMu.Unlock()
	}
	if a.Flags()&sideBandFlags != 0 {
		es.sideBand.Add(1)
	}
	if !a.Has(FlagDisabled) {
		ev.setEnabled(true)
	}
	return ev, nil
}

// errExited is register's error for a thread that has begun to exit.
var errExited = errorf(unix.ESRCH, "the task has exited")

// register reserves a slot of k for a, as register_perf_hw_breakpoint does.
// A thread that has begun to exit gets no new state: Linux finds it still
// there, makes every check, and fails with ESRCH only once it finds its perf
// context gone, so register then makes the attribute's own checks and
// returns errExited, and Open goes on with its checks.
func (es *Events[K]) register(k K, cpu int32, a hwbp.Attr, handler hwbp.OverflowHandler) (*hwbp.Breakpoint, error) {
	t, err := es.tasks.Get(k)
	if err == nil {
		var bp *hwbp.Breakpoint
		bp, err = es.tasks.Registry().RegisterOnCPU(t, cpu, a, handler)
		if err == nil {
			return bp, nil
		}
	}
	if !errors.Is(err, unix.ESRCH) {
		return nil, err
	}
	if verr := checkBreakpoint(a, true); verr != nil {
		return nil, verr
	}
	return nil, errExited
}

// checkBreakpoint is Register's checks of a, without a task. excludeKernel
// is the attribute's exclude_kernel: hw_breakpoint_parse refuses a data
// breakpoint in kernel space with EINVAL if it is set, else with EPERM for a
// caller without CAP_SYS_ADMIN, which no guest has (see the package doc).
// Only PERF_EVENT_IOC_MODIFY_ATTRIBUTES gets there with it clear:
// perf_event_open refuses that first (EACCES). An execution breakpoint in
// kernel space stays EINVAL: arch_build_bp_info refuses it first when the
// address is in kprobes' blacklist, which is every address on a kernel
// without CONFIG_KPROBES (within_kprobe_blacklist's stub; measured on a
// 6.18 host), and the sentry offers no kernel breakpoints at all.
func checkBreakpoint(a hwbp.Attr, excludeKernel bool) error {
	if a.Type == hwbp.TypeEmpty || a.Type == hwbp.TypeRW|hwbp.TypeX {
		return errorf(unix.EINVAL, "breakpoint type %v", a.Type)
	}
	err := a.Validate()
	if !excludeKernel && a.Type != hwbp.TypeX && errors.Is(err, hwbp.ErrKernelSpace) {
		return errorf(unix.EPERM, "a breakpoint in kernel space without CAP_SYS_ADMIN")
	}
	return err
}

// reserveCPUWide is the slot reservation of a CPU-wide event: no task may
// hold every slot (max_bp_pinned_slots). The event is never created (see
// Open), so nothing is reserved.
func (es *Events[K]) reserveCPUWide(a hwbp.Attr) error {
	if a.Type == hwbp.TypeEmpty || a.Type == hwbp.TypeRW|hwbp.TypeX {
		return errorf(unix.EINVAL, "breakpoint type %v", a.Type)
	}
	if es.tasks.Registry().MaxSlotsInUse() >= hwbp.Slots {
		return errorf(unix.ENOSPC, "a task uses every breakpoint slot")
	}
	return a.Validate()
}

// overflow is the event's hwbp.OverflowHandler: perf_bp_event counts the
// hit, unless the event excludes user mode (perf_exclude_event), where every
// hit of a guest happens. A sampling event overflows once every
// sample_period hits (perf_swevent_event, with period_left and last_period
// as Linux keeps them), or at every hit if it samples PERF_SAMPLE_PERIOD
// without freq; an overflow of a sigtrap event
// sends the SIGTRAP (__perf_event_overflow, perf_sigtrap), and every
// overflow notifies the fd's O_ASYNC owner if it has one: POLL_IN, or
// POLL_HUP for the overflow that uses up a PERF_EVENT_IOC_REFRESH limit
// (__perf_event_overflow sets pending_kill and queues perf_event_wakeup
// when the event has a fasync entry). Between the two, the overflow writes
// a PERF_RECORD_SAMPLE to the event's ring if it has one.
func (ev *Event[K]) overflow(_ *hwbp.Breakpoint, hit hwbp.Hit) {
	if ev.excludeUser {
		return
	}
	ev.count.Add(1)
	ev.mu.Lock()
	a := &ev.attr
	if !a.Sampling() || ev.bp == nil {
		ev.mu.Unlock()
		return
	}
	// perf_swevent_event, for the one hit (nr 1) of a breakpoint. The
	// sample's period is last_period as the hit finds it.
	period, n := ev.lastPeriod, uint64(1)
	switch {
	case a.SampleType()&SamplePeriod != 0 && !a.Has(FlagFreq):
		// Every hit of an event that samples PERF_SAMPLE_PERIOD
		// (without freq) is an overflow of period nr, 1, whatever
		// sample_period says; period_left is left alone (measured
		// on 6.1: after PERF_EVENT_IOC_PERIOD 2, each write still
		// gives a sample of period 1).
		period = 1
	case a.SamplePeriod() == 1 && !a.Has(FlagFreq):
		// A period of 1 overflows at every hit, period_left alone.
	case ev.left > 1:
		// period_left stays negative.
		ev.left--
		ev.mu.Unlock()
		return
	default:
		// perf_swevent_overflow and perf_swevent_set_period: as
		// many overflows as periods of last_period fit in what the
		// hit made of period_left, which goes back below zero by
		// the new period. period_left is 0 after
		// PERF_EVENT_IOC_PERIOD, so that the first hit after it
		// overflows, twice if last_period was 1 (measured on 6.1).
		val := 1 - ev.left
		last := max(ev.lastPeriod, 1)
		ev.lastPeriod = ev.periodLocked()
		n = (last + val) / last
		ev.left = n*last - val
	}
	ev.mu.Unlock()
	for ; n > 0; n-- {
		if ev.overflowOnce(period, hit) {
			break
		}
	}
}

// setCounter makes bp, ev's new breakpoint, a counting event if ev, whose
// attribute is a, does not sample: hits that a back end counts without trapping then add to ev's
// count as the overflow handler's would (a counting event's overflow
// handler only counts).
func (ev *Event[K]) setCounter(bp *hwbp.Breakpoint, a Attr) {
	if a.Sampling() {
		return
	}
	bp.SetCounter(func(n uint64) {
		if !ev.excludeUser {
			ev.count.Add(n)
		}
	})
}

// overflowOnce is __perf_event_overflow: the signals, the sample and the
// O_ASYNC notification of one overflow of period period. It reports
// whether the overflow used up a PERF_EVENT_IOC_REFRESH limit, after which
// perf_swevent_overflow makes no more overflows of the hit.
func (ev *Event[K]) overflowOnce(period uint64, hit hwbp.Hit) bool {
	ev.mu.Lock()
	a := &ev.attr
	ev.pendingKill = PollIn
	// The overflow that uses up a PERF_EVENT_IOC_REFRESH limit disables
	// the event; it still signals.
	limited := false
	if ev.limit != 0 {
		if ev.limit--; ev.limit == 0 {
			ev.setEnabledLocked(false)
			ev.pendingKill = PollHUp
			limited = true
		}
	}
	sig := a.Has(FlagSigtrap)
	s := Sigtrap{Addr: a.BPAddr(), Data: a.SigData(), Type: a.Type()}
	notify, reason := ev.takePendingLocked()
	attr := *a
	ev.mu.Unlock()
	if sig && ev.es.signal != nil {
		ev.es.signal(ev.target.Task, s)
	}
	// The overflow handler, perf_event_output_forward: a sample in the
	// ring, if there is one.
	if ev.opened().ring.Load() != nil {
		ev.output(&attr, ev.es.data(ev.target.Task, hit.IP), period)
	}
	if notify != nil {
		notify(reason)
	}
	return limited
}

// opened returns the event that the guest opened: ev, or the event that ev
// is a copy of.
func (ev *Event[K]) opened() *Event[K] {
	if ev.parent != nil {
		return ev.parent
	}
	return ev
}

// takePendingLocked returns the O_ASYNC notification that ev's pending
// reason calls for, and clears the reason, if the fd has O_ASYNC set and a
// reason is pending (perf_event_wakeup); otherwise nil.
//
// +checklocks:ev.mu
func (ev *Event[K]) takePendingLocked() (AsyncFunc, int) {
	if ev.pendingKill == 0 {
		return nil, 0
	}
	fn := ev.opened().async.Load()
	if fn == nil {
		return nil, 0
	}
	reason := ev.pendingKill
	ev.pendingKill = 0
	return *fn, reason
}

// wakeup is perf_event_wakeup: the waiters of the fds of the events whose
// records go to ev's ring, if it has one (ring_buffer_wakeup), and the
// O_ASYNC notification of a pending overflow, if the fd has O_ASYNC set.
func (ev *Event[K]) wakeup() {
	if r := ev.ring.Load(); r != nil {
		r.wakeAll()
	}
	ev.mu.Lock()
	notify, reason := ev.takePendingLocked()
	ev.mu.Unlock()
	if notify != nil {
		notify(reason)
	}
}

// SetAsync sets the notification of the fd's O_ASYNC owner (fasync_helper
// through perf_fasync): fn while O_ASYNC is set, nil when it is cleared.
func (ev *Event[K]) SetAsync(fn AsyncFunc) {
	if fn == nil {
		ev.async.Store(nil)
		return
	}
	ev.async.Store(&fn)
}

// periodLocked is the number of hits between overflows: sample_period, or
// 1 for a frequency event, whose period Linux adapts from 1 at every tick.
//
// +checklocks:ev.mu
func (ev *Event[K]) periodLocked() uint64 {
	if ev.attr.Has(FlagFreq) {
		return 1
	}
	return ev.attr.SamplePeriod()
}

// ID is the event's id (PERF_EVENT_IOC_ID, PERF_FORMAT_ID).
func (ev *Event[K]) ID() uint64 { return ev.id }

// Defunct reports whether the event is gone from its task: the task exited
// or an exec removed the event (remove_on_exec); both are Linux's
// perf_event_exit_event. perf_event_open refuses such an event as group_fd
// with ENODEV, right after looking up group_fd (kernel/events/core.c, the
// check of the leader's state that came with PMU revocation in 6.15;
// measured on 6.18: also before ESRCH and before the attribute's breakpoint
// checks, and with PERF_FLAG_FD_NO_GROUP or PERF_FLAG_FD_OUTPUT).
func (ev *Event[K]) Defunct() bool {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.bp == nil
}

// Attr returns the event's attribute.
func (ev *Event[K]) Attr() Attr {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.attr
}

// setEnabled enables or disables the event, accounting its enabled time.
func (ev *Event[K]) setEnabled(on bool) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.setEnabledLocked(on)
}

// +checklocks:ev.mu
func (ev *Event[K]) setEnabledLocked(on bool) {
	if ev.bp == nil || ev.enabled == on {
		return
	}
	now := ev.now()
	if on {
		ev.since = now
		ev.addLocked()
		ev.bp.Enable()
	} else {
		ev.total += now - ev.since
		ev.bp.Disable()
	}
	ev.enabled = on
}

// now returns the time of the event's context, which the event's times
// follow: its thread's context clock (schedClock) for an event that
// watches a thread, else the target's clock.
func (ev *Event[K]) now() uint64 {
	now := ev.rawNow()
	if ev.onTask != nil {
		return ev.onTask.clock.at(now)
	}
	return now
}

// rawNow returns the target's clock.
func (ev *Event[K]) rawNow() uint64 {
	if ev.target.Clock == nil {
		return 0
	}
	return ev.target.Clock()
}

// members returns the events an ioctl with PERF_IOC_FLAG_GROUP reaches:
// ev's whole group (perf_event_for_each), or ev alone.
func (ev *Event[K]) members(group bool) []*Event[K] {
	if !group {
		return []*Event[K]{ev}
	}
	es := ev.es
	es.groupMu.Lock()
	defer es.groupMu.Unlock()
	l := ev
	if leader, ok := es.leaders[ev]; ok {
		l = leader
	}
	return append([]*Event[K]{l}, es.siblings[l]...)
}

// groupLeader returns ev's group leader.
func (ev *Event[K]) groupLeader() *Event[K] {
	es := ev.es
	es.groupMu.Lock()
	defer es.groupMu.Unlock()
	if l, ok := es.leaders[ev]; ok {
		return l
	}
	return ev
}

// withChildren returns e and its live inherited copies: an ioctl reaches
// them all (perf_event_for_each_child).
func (ev *Event[K]) withChildren() []*Event[K] {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return append([]*Event[K]{ev}, ev.children...)
}

// Enable is PERF_EVENT_IOC_ENABLE; group is PERF_IOC_FLAG_GROUP.
func (ev *Event[K]) Enable(group bool) {
	for _, m := range ev.members(group) {
		for _, e := range m.withChildren() {
			e.setEnabled(true)
		}
	}
}

// Disable is PERF_EVENT_IOC_DISABLE.
func (ev *Event[K]) Disable(group bool) {
	for _, m := range ev.members(group) {
		for _, e := range m.withChildren() {
			e.setEnabled(false)
		}
	}
}

// Reset is PERF_EVENT_IOC_RESET: the counts of the event and its live
// copies go back to zero; the times do not, nor do the counts that exited
// copies left (perf_event_reset clears event->count only).
func (ev *Event[K]) Reset(group bool) {
	for _, m := range ev.members(group) {
		for _, e := range m.withChildren() {
			e.mu.Lock()
			e.flushLocked()
			e.mu.Unlock()
			e.count.Store(0)
			// _perf_event_reset updates the ring's first page.
			if r := e.ring.Load(); r != nil {
				r.updateUserPage(e.value())
			}
		}
	}
}

// SetPeriod is PERF_EVENT_IOC_PERIOD (_perf_event_period): EINVAL for an
// event that does not sample, for 0, for a frequency above MaxSampleRate,
// and for a period with bit 63 set.
func (ev *Event[K]) SetPeriod(v uint64) error {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if !ev.attr.Sampling() {
		return errorf(unix.EINVAL, "the event does not sample")
	}
	if v == 0 {
		return errorf(unix.EINVAL, "period 0")
	}
	if ev.attr.Has(FlagFreq) {
		if v > MaxSampleRate {
			return errorf(unix.EINVAL, "frequency %d", v)
		}
	} else if v&(1<<63) != 0 {
		return errorf(unix.EINVAL, "period %#x", v)
	}
	binary.LittleEndian.PutUint64(ev.attr.raw[offSamplePeriod:], v)
	// __perf_event_period sets period_left to 0: the next hit overflows
	// (see overflow), unless an enable comes first.
	ev.left = 0
	return nil
}

// Modify is PERF_EVENT_IOC_MODIFY_ATTRIBUTES with n, which passed CopyAttr
// (perf_event_modify_attr, perf_event_modify_breakpoint,
// modify_user_hw_breakpoint_check): EINVAL for another type; sig_data is
// taken first whatever happens next; the event is disabled, n's breakpoint
// is checked (EINVAL, EOPNOTSUPP), and n must equal the event's attribute
// but for bp_addr, bp_type, bp_len and disabled (EINVAL), which it then
// sets; at the end the event is enabled unless its attribute says disabled,
// also after an error, as on Linux (so a modify that fails enables an event
// that PERF_EVENT_IOC_DISABLE had disabled).
func (ev *Event[K]) Modify(n Attr) error {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	a := &ev.attr
	if n.Type() != a.Type() {
		return errorf(unix.EINVAL, "type %d, the event's is %d", n.Type(), a.Type())
	}
	binary.LittleEndian.PutUint64(a.raw[offSigData:], n.SigData())
	ev.setEnabledLocked(false)
	err := ev.modifyLocked(n)
	if !a.Has(FlagDisabled) {
		ev.setEnabledLocked(true)
	}
	return err
}

// +checklocks:ev.mu
func (ev *Event[K]) modifyLocked(n Attr) error {
	bpAttr := hwbp.Attr{Addr: n.BPAddr(), Len: n.BPLen(), Type: hwbp.Type(n.BPType()), Disabled: true}
	if err := checkBreakpoint(bpAttr, n.Has(FlagExcludeKernel)); err != nil {
		return err
	}
	want := ev.attr
	want.copyBreakpoint(n)
	if want != n {
		return errorf(unix.EINVAL, "only bp_addr, bp_type, bp_len and disabled may change")
	}
	if ev.bp != nil {
		if err := ev.bp.Modify(bpAttr); err != nil {
			return err
		}
	}
	ev.attr = want
	return nil
}

// Refresh is PERF_EVENT_IOC_REFRESH (_perf_event_refresh): EINVAL for an
// inherited event or one that does not sample; otherwise the event is
// enabled and disables itself at its n-th overflow from now.
func (ev *Event[K]) Refresh(n int32) error {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if a := &ev.attr; a.Has(FlagInherit) || !a.Sampling() {
		return errorf(unix.EINVAL, "refresh of an inherited or counting event")
	}
	// _perf_event_refresh adds n to the limit, whatever its sign, and
	// enables the event.
	ev.limit += n
	ev.setEnabledLocked(true)
	return nil
}

// ownTime is the time the event itself has been enabled. A breakpoint
// always has its slot, so it runs whenever it is enabled.
//
// +checklocks:ev.mu
func (ev *Event[K]) ownTimeLocked() uint64 {
	t := ev.total
	if ev.enabled {
		t += ev.now() - ev.since
	}
	return t
}

// value returns what read reports of the event (perf_event_read_value):
// its count and its enabled and running times, each summed with those of
// its inherited copies, live and exited.
//
// ev.mu is held throughout, as Linux holds child_mutex, so that a copy that
// exits meanwhile (detach) is counted once: live, or in childCount. Lock
// order: an opened event's mu before its copies'.
func (ev *Event[K]) value() (count, enabled, running uint64) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.flushLocked()
	count = ev.count.Load() + ev.childCount
	t := ev.ownTimeLocked() + ev.childTime
	for _, c := range ev.children {
		c.mu.Lock()
		c.flushLocked()
		count += c.count.Load()
		t += c.ownTimeLocked()
		c.mu.Unlock()
	}
	return count, t, t
}

// flushLocked brings ev's count up to date with the hits that the back end
// counted and did not deliver yet (hwbp.Breakpoint.Flush: the counter it
// calls takes no lock of ev's).
//
// +checklocks:ev.mu
func (ev *Event[K]) flushLocked() {
	if ev.bp != nil {
		ev.bp.Flush()
	}
}

// readSize is perf_event__read_size for a group of nr events.
func readSize(rf uint64, nr int) int {
	entry, size := 8, 0
	if rf&FormatTotalTimeEnabled != 0 {
		size += 8
	}
	if rf&FormatTotalTimeRunning != 0 {
		size += 8
	}
	if rf&FormatID != 0 {
		entry += 8
	}
	if rf&FormatLost != 0 {
		entry += 8
	}
	if rf&FormatGroup != 0 {
		size += 8 // nr
	} else {
		nr = 1
	}
	return size + entry*nr
}

// Read returns what read(2) of the event's fd gives for a buffer of n bytes
// (perf_read): ENOSPC if n is below the record's size, else the record of
// read_format: the value, the times, the id and the lost count requested,
// or with PERF_FORMAT_GROUP the number of events of the group, the times of
// its leader (perf_read_group) and each event's value, id and lost count.
func (ev *Event[K]) Read(n int) ([]byte, error) {
	rf := ev.Attr().ReadFormat()
	group := rf&FormatGroup != 0
	members := ev.members(group)
	size := readSize(rf, len(members))
	if n < size {
		return nil, errorf(unix.ENOSPC, "read buffer of %d bytes, need %d", n, size)
	}
	b := make([]byte, 0, size)
	put := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	count, enabled, running := members[0].value()
	if group {
		put(uint64(len(members)))
	} else {
		put(count)
	}
	if rf&FormatTotalTimeEnabled != 0 {
		put(enabled)
	}
	if rf&FormatTotalTimeRunning != 0 {
		put(running)
	}
	for i, e := range members {
		if group {
			if i > 0 {
				count, _, _ = e.value()
			}
			put(count)
		}
		if rf&FormatID != 0 {
			put(e.id)
		}
		if rf&FormatLost != 0 {
			put(e.lostSamples.Load())
		}
	}
	return b, nil
}

// exit removes the event from its task, which keeps its count and its
// times as they are (perf_event_exit_event): the task exited, or an exec
// removed the event (remove_on_exec).
//
// An inherited copy leaves its count and times to the event the guest
// opened (sync_child_event) and is forgotten.
func (ev *Event[K]) exit() { ev.detach(false) }

// detach is exit; with keepSlot, an event that the guest opened keeps its
// breakpoint's slot until Close (held); an inherited copy, which Linux
// frees at once, never does.
func (ev *Event[K]) detach(keepSlot bool) {
	if p := ev.parent; p != nil {
		ev.detachCopy(p)
		return
	}
	ev.mu.Lock()
	bp := ev.bp
	ev.bp = nil
	if keepSlot && bp != nil {
		ev.held = bp
		bp.Disable()
		bp = nil
	}
	ev.stopLocked()
	ev.mu.Unlock()
	if bp != nil {
		bp.Unregister()
	}
	// perf_event_exit_event: "Parent events are governed by their
	// filedesc", and woken up.
	ev.wakeup()
}

// detachCopy is detach of ev, a copy of p. Its count and times move to p
// in one step under p.mu, which value holds while it sums (Linux's
// sync_child_event under child_mutex): a read never sees them neither live
// nor left.
func (ev *Event[K]) detachCopy(p *Event[K]) {
	p.mu.Lock()
	ev.mu.Lock()
	ev.flushLocked()
	bp := ev.bp
	ev.bp = nil
	ev.stopLocked()
	count, t := ev.count.Swap(0), ev.total
	ev.total = 0
	ev.mu.Unlock()
	for i, c := range p.children {
		if c == ev {
			p.children = append(p.children[:i], p.children[i+1:]...)
			p.childCount += count
			p.childTime += t
			break
		}
	}
	p.mu.Unlock()
	if bp != nil {
		bp.Unregister()
	}
	// A copy's exit wakes up the event the guest opened, whose pending
	// overflow (not the copy's) it may report.
	p.wakeup()
}

// stopLocked stops the times of an enabled event, for good.
//
// +checklocks:ev.mu
func (ev *Event[K]) stopLocked() {
	if ev.enabled {
		ev.total += ev.now() - ev.since
		ev.enabled = false
	}
}

// Close releases the event's slot (perf_release). A group leader's siblings
// stay open, as singletons.
func (ev *Event[K]) Close() {
	// perf_release wakes nobody up; the fd's O_ASYNC is gone.
	ev.async.Store(nil)
	// _free_event: an event that wrote to another event's ring stops
	// (its own ring, mapped, would have kept its fd open).
	ev.es.ringMu.Lock()
	ev.attachRing(nil)
	ev.es.ringMu.Unlock()
	ev.exit()
	ev.mu.Lock()
	held := ev.held
	ev.held = nil
	ev.mu.Unlock()
	if held != nil {
		held.Unregister()
	}
	if ev.onTask != nil {
		ev.onTask.remove(ev)
	}
	// perf_event_release_kernel frees the inherited copies.
	ev.mu.Lock()
	children := ev.children
	ev.children = nil
	wasClosed := ev.closed
	ev.closed = true
	sideBand := ev.attr.Flags()&sideBandFlags != 0
	ev.mu.Unlock()
	if sideBand && !wasClosed && ev.parent == nil {
		ev.es.sideBand.Add(-1)
	}
	for _, c := range children {
		c.exit()
		if c.onTask != nil {
			c.onTask.remove(c)
		}
	}
	ev.leaveGroup()
}

// leaveGroup is perf_group_detach: a member leaves its group; a leader's
// members become singletons.
func (ev *Event[K]) leaveGroup() {
	es := ev.es
	es.groupMu.Lock()
	defer es.groupMu.Unlock()
	if l, ok := es.leaders[ev]; ok {
		sib := es.siblings[l]
		for i, s := range sib {
			if s == ev {
				sib = append(sib[:i:i], sib[i+1:]...)
				break
			}
		}
		if len(sib) == 0 {
			delete(es.siblings, l)
		} else {
			es.siblings[l] = sib
		}
		delete(es.leaders, ev)
		return
	}
	for _, s := range es.siblings[ev] {
		delete(es.leaders, s)
	}
	delete(es.siblings, ev)
}

// taskKey names the perf state of a thread's hwbp.Task.
var taskKey = hwbp.NewExtensionKey("perf")

// taskEvents is the hwbp.Extension of a thread that perf events watch: the
// open events bound to it, which its execve and exit change (Linux's
// perf_event_exec, perf_event_exit_task). Events are removed from it when
// they close, so it never holds more than the thread's open events.
type taskEvents[K comparable] struct {
	mu sync.Mutex
	// +checklocks:mu
	events []*Event[K]

	// inherit are, in the clone that a new thread gets, the events of its
	// creator that it inherits. Set by Clone, used by Inherited.
	inherit []*Event[K]

	// clock is the thread's perf context clock, which stops while the
	// thread is scheduled out (sched.go).
	clock schedClock
}

// attachTaskEvents returns t's taskEvents, attaching one if needed; a
// released task gets a detached one, which nothing calls.
func attachTaskEvents[K comparable](t *hwbp.Task) *taskEvents[K] {
	if x, ok := t.Attach(taskKey, func() hwbp.Extension { return &taskEvents[K]{} }).(*taskEvents[K]); ok {
		return x
	}
	return &taskEvents[K]{}
}

func (x *taskEvents[K]) add(ev *Event[K]) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.events = append(x.events, ev)
	ev.es.watched.Add(1)
}

func (x *taskEvents[K]) remove(ev *Event[K]) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, e := range x.events {
		if e == ev {
			x.events = append(x.events[:i], x.events[i+1:]...)
			ev.es.watched.Add(-1)
			return
		}
	}
}

func (x *taskEvents[K]) list() []*Event[K] {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]*Event[K](nil), x.events...)
}

// Clone implements hwbp.Extension.Clone: a new thread gets a copy of each
// event of its creator with inherit (perf_event_init_task); Inherited makes
// them once the new thread has its Task.
func (x *taskEvents[K]) Clone() hwbp.Extension {
	var inherit []*Event[K]
	for _, ev := range x.list() {
		if ev.Attr().Has(FlagInherit) {
			inherit = append(inherit, ev)
		}
	}
	if len(inherit) == 0 {
		return nil
	}
	return &taskEvents[K]{inherit: inherit}
}

// Inherited implements hwbp.Inheritor: child, a thread that parent created,
// gets a copy of each event that it inherits (inherit_event), in the state
// of the event (enabled or not) and with its attribute, so that its
// enable_on_exec, sigtrap and sampling act in child; the copies count for
// the event that the guest opened. A group is copied whole or not at all,
// as its leader decides, whatever its members (Linux's inherit_task_group
// looks at the leader only, and inherit_group copies every member with
// it): with inherit_thread only threads of the same process inherit, and
// with sigtrap no thread whose signal handlers were reset
// (CLONE_CLEAR_SIGHAND), where the signal would kill it.
//
// A copy always finds a free slot: the new thread starts with none taken
// and gets at most as many copies as its creator has events. (Linux fails
// the fork with ENOSPC when one does not, which takes CPU-wide breakpoints
// that leave fewer slots on some CPU; the sandbox has none.)
func (x *taskEvents[K]) Inherited(parent, child K, t *hwbp.Task) {
	inherit := x.inherit
	x.inherit = nil
	for _, ev := range inherit {
		es := ev.es
		a := ev.Attr()
		orig := ev
		if ev.parent != nil {
			orig = ev.parent
		}
		la := orig.groupLeader().Attr()
		if la.Has(FlagInheritThread) && (es.sameProcess == nil || !es.sameProcess(parent, child)) {
			continue
		}
		if la.Has(FlagSigtrap) && es.clearsSighand != nil && es.clearsSighand(parent) {
			continue
		}
		c := &Event[K]{
			es:          es,
			id:          es.lastID.Add(1),
			target:      Target[K]{Task: child, HasTask: true, CPU: ev.target.CPU, NumCPU: ev.target.NumCPU, Clock: ev.target.Clock},
			excludeUser: ev.excludeUser,
			onTask:      x,
			parent:      orig,
			attr:        a,
		}
		bp, err := es.tasks.Registry().RegisterOnCPU(t, ev.target.CPU, hwbp.Attr{Addr: a.BPAddr(), Len: a.BPLen(), Type: hwbp.Type(a.BPType()), Disabled: true}, c.overflow)
		if err != nil {
			continue
		}
		c.setCounter(bp, a)
		ev.mu.Lock()
		enabled := ev.enabled
		ev.mu.Unlock()
		c.mu.Lock()
		c.bp = bp
		c.left = c.periodLocked()
		c.lastPeriod = c.left
		c.mu.Unlock()
		orig.mu.Lock()
		closed := orig.closed
		if !closed {
			orig.children = append(orig.children, c)
		}
		orig.mu.Unlock()
		if closed {
			// The guest closed the event meanwhile.
			bp.Unregister()
			continue
		}
		x.add(c)
		if enabled {
			c.setEnabled(true)
		}
	}
}

// Exec implements hwbp.Extension.Exec: perf_event_enable_on_exec enables
// the events with enable_on_exec and clears the flag, so it acts once;
// perf_event_remove_on_exec removes those with remove_on_exec, which keep
// their slots until they are closed.
func (x *taskEvents[K]) Exec() {
	for _, ev := range x.list() {
		ev.mu.Lock()
		a := &ev.attr
		remove, enable := a.Has(FlagRemoveOnExec), a.Has(FlagEnableOnExec)
		if enable {
			binary.LittleEndian.PutUint64(a.raw[offFlags:], a.Flags()&^FlagEnableOnExec)
		}
		ev.mu.Unlock()
		switch {
		case remove:
			// perf_event_remove_on_exec also takes the event out of
			// its group, where a task's exit keeps groups whole
			// (measured on Linux 6.18).
			ev.detach(true)
			x.remove(ev)
			ev.leaveGroup()
		case enable:
			ev.setEnabled(true)
		}
	}
}

// Exit removes the events of thread k from it at its exit, as Linux's
// perf_event_exit_task does: they keep their counts, and their times stop.
// The caller calls it before hwbp.Tasks.Exit frees k's Task.
func (es *Events[K]) Exit(k K) {
	t := es.tasks.Lookup(k)
	if t == nil {
		return
	}
	x, ok := t.Extension(taskKey).(*taskEvents[K])
	if !ok {
		return
	}
	es.exitRecords(k)
	for _, ev := range x.list() {
		ev.exit()
		x.remove(ev)
	}
}
