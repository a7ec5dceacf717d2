// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

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
