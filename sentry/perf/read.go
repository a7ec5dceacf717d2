// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

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
