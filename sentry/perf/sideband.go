// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// Attribute bits that ask for side-band records (include/uapi/linux/
// perf_event.h), which an event's ring gets next to its samples so that a
// reader can tell which program and which mappings its samples' ips lie in.
const (
	FlagMmap     = 1 << 8
	FlagComm     = 1 << 9
	FlagTask     = 1 << 13
	FlagMmapData = 1 << 17
	FlagMmap2    = 1 << 23

	sideBandFlags = FlagMmap | FlagComm | FlagTask | FlagMmapData | FlagMmap2
)

// Side-band record types and header bits.
const (
	recordMmap  = unix.PERF_RECORD_MMAP
	recordComm  = unix.PERF_RECORD_COMM
	recordExit  = unix.PERF_RECORD_EXIT
	recordFork  = unix.PERF_RECORD_FORK
	recordMmap2 = unix.PERF_RECORD_MMAP2
	// miscCommExec (PERF_RECORD_MISC_COMM_EXEC) marks the COMM of an
	// exec; miscMmapData (PERF_RECORD_MISC_MMAP_DATA) the MMAP of a
	// mapping that is not executable. They are the same bit.
	miscCommExec = unix.PERF_RECORD_MISC_COMM_EXEC
	miscMmapData = unix.PERF_RECORD_MISC_MMAP_DATA
)

// taskCommLen is TASK_COMM_LEN: a COMM record holds at most 15 bytes of the
// name and its NUL.
const taskCommLen = 16

// pathMax is PATH_MAX: perf_event_mmap_event copies a mapping's name into a
// buffer of that size, so a record's name is at most pathMax-1 bytes.
const pathMax = 4096

// Mapping describes a mapping of the guest for a PERF_RECORD_MMAP or MMAP2
// record (perf_event_mmap_event): what Linux reads from the vma and the
// inode of its file.
type Mapping struct {
	// Start and Len are the mapping's range (vm_start, vm_end-vm_start).
	Start uint64
	Len   uint64
	// PgOff is vm_pgoff in bytes: the offset into the file of a file
	// mapping, start>>PAGE_SHIFT in bytes (the start) for a private
	// anonymous one.
	PgOff uint64
	// Major, Minor, Ino and InoGeneration identify the file (the device
	// of its superblock, i_ino, i_generation); zero for none.
	Major         uint32
	Minor         uint32
	Ino           uint64
	InoGeneration uint64
	// Prot is PROT_READ|PROT_WRITE|PROT_EXEC as the mapping allows,
	// Flags MAP_SHARED or MAP_PRIVATE (and MAP_LOCKED, MAP_HUGETLB).
	Prot  uint32
	Flags uint32
	// Name is the file's path as the guest sees it, or Linux's name of
	// a special mapping ("[vdso]", "[heap]", "[stack]", "//anon").
	Name string
}

// Executable reports whether m is VM_EXEC.
func (m *Mapping) Executable() bool { return m.Prot&unix.PROT_EXEC != 0 }

// SideBand reports whether some open event asks for side-band records
// (comm, mmap, mmap2, mmap_data or task): the callers of Comm and Mmap look
// at it first, so that side-band costs an atomic load while none does
// (Linux's nr_comm_events, nr_mmap_events and nr_task_events).
func (es *Events[K]) SideBand() bool { return es.sideBand.Load() != 0 }

// sideBandEvents returns the events of thread k that are in the state
// perf_iterate_ctx hands to a side-band record's match function: enabled
// (state INACTIVE or ACTIVE) and not removed. A disabled event gets no
// side-band records (measured: an event disabled until enable_on_exec gets
// the COMM of the exec, which perf_event_exec enables it for first).
func (es *Events[K]) sideBandEvents(k K) []*Event[K] {
	x := es.taskEventsOf(k)
	if x == nil {
		return nil
	}
	evs := x.list()
	n := 0
	for _, ev := range evs {
		ev.mu.Lock()
		live := ev.enabled && ev.bp != nil && ev.attr.Flags()&sideBandFlags != 0
		ev.mu.Unlock()
		if live {
			evs[n] = ev
			n++
		}
	}
	return evs[:n]
}

// Comm writes the PERF_RECORD_COMM of thread k's name comm to the ring of
// each event of k with attr.comm (perf_event_comm; exec marks the name an
// exec gave, PERF_RECORD_MISC_COMM_EXEC). The caller calls it at an exec
// after Exec (perf_event_exec enables enable_on_exec events before the
// COMM: begin_new_exec) and before the new image's Mmap records, and
// when the thread renames itself (prctl PR_SET_NAME).
func (es *Events[K]) Comm(k K, comm string, exec bool) {
	es.emitSideBand(k, func(ev *Event[K], a *Attr, d sampleData) []byte {
		if !a.Has(FlagComm) {
			return nil
		}
		return ev.commRecord(a, d, comm, exec)
	})
}

// Mmap writes the PERF_RECORD_MMAP or MMAP2 of mapping m of thread k to the
// ring of each event of k that asks for it (perf_event_mmap_match): mmap or
// mmap2 for an executable mapping, mmap_data for another; MMAP2 for events
// with mmap2. The caller calls it for each mapping that an exec's loader
// made, in the loader's order, and after each mmap, mprotect and brk of k
// that succeeded, with the mapping as it is then.
func (es *Events[K]) Mmap(k K, m *Mapping) {
	exec := m.Executable()
	es.emitSideBand(k, func(ev *Event[K], a *Attr, d sampleData) []byte {
		if exec && !a.Has(FlagMmap) && !a.Has(FlagMmap2) || !exec && !a.Has(FlagMmapData) {
			return nil
		}
		return ev.mmapRecord(a, d, m)
	})
}

// Fork writes the PERF_RECORD_FORK of thread child, which thread parent
// created, to the ring of each event of parent that asks for side-band
// records (perf_event_fork, whose perf_event_task_match takes comm, mmap,
// mmap2, mmap_data and task alike): it runs in parent, so parent's events
// get it, and the child's inherited copies do not. The caller calls it
// after the clone succeeded.
func (es *Events[K]) Fork(parent, child K) {
	if !es.SideBand() {
		return
	}
	var c sampleData
	if s := es.sampler; s != nil {
		c.pid, c.tid = s.IDs(child)
	}
	es.emitSideBand(parent, func(ev *Event[K], a *Attr, d sampleData) []byte {
		return ev.taskRecord(a, d, recordFork, c.pid, c.tid, d.pid, d.tid)
	})
}

// exitRecords writes the PERF_RECORD_EXIT of thread k, which is exiting, to
// the ring of each of its events that asks for side-band records
// (perf_event_exit_task_context's perf_event_task): ppid and ptid are
// both the parent's process id, as perf_event_task_output gives them.
func (es *Events[K]) exitRecords(k K) {
	if !es.SideBand() {
		return
	}
	var ppid uint32
	if s := es.sampler; s != nil {
		ppid = s.Parent(k)
	}
	es.emitSideBand(k, func(ev *Event[K], a *Attr, d sampleData) []byte {
		return ev.taskRecord(a, d, recordExit, d.pid, d.tid, ppid, ppid)
	})
}

// emitSideBand writes, to the ring of each event of thread k that asks for
// side-band records, the record that rec makes for it (nil: none), with
// k's sample data of the moment (pid, tid, time, CPU).
func (es *Events[K]) emitSideBand(k K, rec func(ev *Event[K], a *Attr, d sampleData) []byte) {
	if !es.SideBand() {
		return
	}
	evs := es.sideBandEvents(k)
	if len(evs) == 0 {
		return
	}
	d := es.data(k, 0)
	for _, ev := range evs {
		a := ev.Attr()
		if b := rec(ev, &a, d); b != nil {
			ev.emit(b, d)
		}
	}
}

// taskRecord returns a PERF_RECORD_FORK or EXIT (perf_event_task_output):
// pid, ppid, tid, ptid, time, and the sample_id trailer with
// sample_id_all.
func (ev *Event[K]) taskRecord(a *Attr, d sampleData, typ, pid, tid, ppid, ptid uint32) []byte {
	b := make([]byte, 8, 64)
	b = binary.LittleEndian.AppendUint32(b, pid)
	b = binary.LittleEndian.AppendUint32(b, ppid)
	b = binary.LittleEndian.AppendUint32(b, tid)
	b = binary.LittleEndian.AppendUint32(b, ptid)
	b = binary.LittleEndian.AppendUint64(b, d.time)
	if a.Flags()&flagSampleIDAll != 0 {
		b = ev.appendIDSample(b, a.SampleType(), d)
	}
	putHeader(b, typ, 0)
	return b
}

// appendName appends s, truncated to max-1 bytes, with the NUL bytes that
// end it and pad it to a multiple of 8 bytes (perf_event_comm_event and
// perf_event_mmap_event: "we must guarantee the tail end is zero'd out").
func appendName(b []byte, s string, max int) []byte {
	if len(s) > max-1 {
		s = s[:max-1]
	}
	b = append(b, s...)
	pad := 8 - len(s)%8
	for ; pad > 0; pad-- {
		b = append(b, 0)
	}
	return b
}

// commRecord returns the PERF_RECORD_COMM of name comm (perf_event_comm_output):
// pid, tid, the name, and the sample_id trailer with sample_id_all.
func (ev *Event[K]) commRecord(a *Attr, d sampleData, comm string, exec bool) []byte {
	b := make([]byte, 8, 64)
	b = binary.LittleEndian.AppendUint32(b, d.pid)
	b = binary.LittleEndian.AppendUint32(b, d.tid)
	b = appendName(b, comm, taskCommLen)
	if a.Flags()&flagSampleIDAll != 0 {
		b = ev.appendIDSample(b, a.SampleType(), d)
	}
	misc := uint16(0)
	if exec {
		misc = miscCommExec
	}
	putHeader(b, recordComm, misc)
	return b
}

// mmapRecord returns the PERF_RECORD_MMAP, or MMAP2 for an event with mmap2,
// of m (perf_event_mmap_output): pid, tid, start, len, pgoff, for MMAP2
// the device, inode, generation, prot and flags, then the name, and the
// sample_id trailer with sample_id_all. The header's misc is
// PERF_RECORD_MISC_USER, with PERF_RECORD_MISC_MMAP_DATA for a mapping that
// is not executable. (attr.build_id, which replaces the inode fields by the
// file's build id, is not given: the fields stay the inode's.)
func (ev *Event[K]) mmapRecord(a *Attr, d sampleData, m *Mapping) []byte {
	b := make([]byte, 8, 128+len(m.Name))
	put64 := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	put32 := func(v uint32) { b = binary.LittleEndian.AppendUint32(b, v) }
	put32(d.pid)
	put32(d.tid)
	put64(m.Start)
	put64(m.Len)
	put64(m.PgOff)
	typ := uint32(recordMmap)
	if a.Has(FlagMmap2) {
		typ = recordMmap2
		put32(m.Major)
		put32(m.Minor)
		put64(m.Ino)
		put64(m.InoGeneration)
		put32(m.Prot)
		put32(m.Flags)
	}
	b = appendName(b, m.Name, pathMax)
	if a.Flags()&flagSampleIDAll != 0 {
		b = ev.appendIDSample(b, a.SampleType(), d)
	}
	misc := uint16(miscUser)
	if !m.Executable() {
		misc |= miscMmapData
	}
	putHeader(b, typ, misc)
	return b
}

// emit writes a side-band record to the ring ev's records go to, that of
// the event the guest opened (perf_output_begin), as perf_output_begin and
// perf_output_end do for a record other than a sample: a record that does
// not fit counts as lost, and it counts for no wakeup_events (only
// perf_output_sample does); the watermark may wake the readers.
func (ev *Event[K]) emit(body []byte, d sampleData) {
	if len(body) > 0xffff {
		// A header's size is 16 bits; perf_event_mmap_event's PATH_MAX
		// bound keeps every record below it.
		return
	}
	o := ev.opened()
	r := o.ring.Load()
	if r == nil {
		return
	}
	oa := o.Attr()
	res, wake := r.output(record{
		body: body,
		lost: func(n uint64) []byte { return o.lostRecord(&oa, d, n) },
	})
	if res == outputLost {
		o.lostSamples.Add(1)
	}
	if wake {
		r.wakeAll()
		o.wakeup()
	}
}
