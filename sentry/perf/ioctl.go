// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

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
