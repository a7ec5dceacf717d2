// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// More sample_type bits, which a breakpoint's samples give in a fixed form.
const (
	SampleRaw         = unix.PERF_SAMPLE_RAW
	SampleDataSrc     = unix.PERF_SAMPLE_DATA_SRC
	SampleIdentifier  = unix.PERF_SAMPLE_IDENTIFIER
	SampleTransaction = unix.PERF_SAMPLE_TRANSACTION
	SampleAux         = unix.PERF_SAMPLE_AUX
	SampleCgroup      = unix.PERF_SAMPLE_CGROUP
	SampleDataPage    = unix.PERF_SAMPLE_DATA_PAGE_SIZE
	SampleCodePage    = unix.PERF_SAMPLE_CODE_PAGE_SIZE
)

// memNA is PERF_MEM_NA, the data_src of a sample whose PMU tells none
// (perf_prepare_sample): op, level, snoop, lock and TLB "not available".
const memNA = 1<<0 | 1<<5 | 1<<19 | 1<<24 | 1<<26

// Sampler gives what a sample records of the thread that hit and that only
// the sentry knows. Its methods are called from that thread's goroutine.
type Sampler[K comparable] interface {
	// IDs returns k's process and thread ids (perf_event_pid,
	// perf_event_tid).
	IDs(k K) (pid, tid uint32)
	// CPU returns the CPU that k runs on (raw_smp_processor_id).
	CPU(k K) uint32
	// Time returns the time of a sample of k, in nanoseconds
	// (perf_event_clock).
	Time(k K) uint64
	// Parent returns the process id of k's parent (real_parent), 0 if
	// it has none in k's PID namespace.
	Parent(k K) uint32
	// Frames returns k's user frame pointer (RBP) at the hit and a
	// reader of k's memory, for the call chain's frame walk.
	Frames(k K) (fp uint64, read Reader)
}

// SetSampler sets the source of the samples' thread ids, CPUs and times; a
// sandbox without one writes zeros there.
func (es *Events[K]) SetSampler(s Sampler[K]) { es.sampler = s }

// sampleData is what one sample records beyond the event's own state
// (struct perf_sample_data).
type sampleData struct {
	ip, time uint64
	pid, tid uint32
	cpu      uint32
	// chain is the call chain, for PERF_SAMPLE_CALLCHAIN.
	chain []uint64
}

// contextUser is PERF_CONTEXT_USER, the mark before a call chain's user
// entries.
const contextUser = ^uint64(512) + 1

// callchain returns the PERF_SAMPLE_CALLCHAIN entries of a hit of k at ip,
// for attribute a (perf_callchain, get_perf_callchain): none with
// exclude_callchain_user (a breakpoint hits in user mode, so there is no
// kernel part); otherwise PERF_CONTEXT_USER, ip and the return addresses
// that x86's perf_callchain_user finds walking the frame pointers from
// RBP: each frame is the next frame pointer and a return address, read
// until a frame lies outside the user address space or cannot be read, for
// sample_max_stack entries in all (ip included). Like Linux, the walk does
// not check that frames go up the stack: a loop of frames gives
// sample_max_stack entries.
func (es *Events[K]) callchain(k K, a *Attr, ip uint64) []uint64 {
	if a.Flags()&FlagExcludeCallchainUser != 0 {
		return nil
	}
	chain := []uint64{contextUser, ip}
	if es.sampler == nil {
		return chain
	}
	fp, read := es.sampler.Frames(k)
	var frame [16]byte
	for max := int(a.u16(offMaxStack)); len(chain)-1 < max; {
		// valid_user_frame: the frame lies below TASK_SIZE_MAX.
		if fp > hwbp.TaskSizeMax-uint64(len(frame)) {
			break
		}
		if read(fp, frame[:]) != nil {
			break
		}
		chain = append(chain, binary.LittleEndian.Uint64(frame[8:]))
		fp = binary.LittleEndian.Uint64(frame[:])
	}
	return chain
}

// data returns the sample data of a hit of k at ip.
func (es *Events[K]) data(k K, ip uint64) sampleData {
	d := sampleData{ip: ip}
	if s := es.sampler; s != nil {
		d.pid, d.tid = s.IDs(k)
		d.cpu = s.CPU(k)
		d.time = s.Time(k)
	}
	return d
}

// primaryID is the id that PERF_SAMPLE_ID and PERF_SAMPLE_IDENTIFIER give:
// the id of the event the guest opened (primary_event_id).
func (ev *Event[K]) primaryID() uint64 { return ev.opened().id }

// appendIDSample appends the sample_id trailer of a record other than a
// sample for sample_type st (perf_event__output_id_sample).
func (ev *Event[K]) appendIDSample(b []byte, st uint64, d sampleData) []byte {
	if st&SampleTID != 0 {
		b = binary.LittleEndian.AppendUint32(b, d.pid)
		b = binary.LittleEndian.AppendUint32(b, d.tid)
	}
	if st&SampleTime != 0 {
		b = binary.LittleEndian.AppendUint64(b, d.time)
	}
	if st&SampleID != 0 {
		b = binary.LittleEndian.AppendUint64(b, ev.primaryID())
	}
	if st&SampleStreamID != 0 {
		b = binary.LittleEndian.AppendUint64(b, ev.id)
	}
	if st&SampleCPU != 0 {
		b = binary.LittleEndian.AppendUint32(b, d.cpu)
		b = binary.LittleEndian.AppendUint32(b, 0)
	}
	if st&SampleIdentifier != 0 {
		b = binary.LittleEndian.AppendUint64(b, ev.primaryID())
	}
	return b
}

// putHeader writes a record's header: type, misc and size.
func putHeader(b []byte, typ uint32, misc uint16) {
	binary.LittleEndian.PutUint32(b, typ)
	binary.LittleEndian.PutUint16(b[4:], misc)
	binary.LittleEndian.PutUint16(b[6:], uint16(len(b)))
}

// lostRecord returns the PERF_RECORD_LOST of n records of the event whose
// ring lost them (perf_output_begin): its id, n, and the sample_id trailer
// if sample_id_all is set.
func (ev *Event[K]) lostRecord(a *Attr, d sampleData, n uint64) []byte {
	b := make([]byte, 8, 64)
	b = binary.LittleEndian.AppendUint64(b, ev.id)
	b = binary.LittleEndian.AppendUint64(b, n)
	if a.Flags()&flagSampleIDAll != 0 {
		b = ev.appendIDSample(b, a.SampleType(), d)
	}
	putHeader(b, recordLost, 0)
	return b
}

// flagSampleIDAll is the attribute's sample_id_all.
const flagSampleIDAll = 1 << 18

// flagWatermark is the attribute's watermark: wakeup_watermark counts bytes
// instead of wakeup_events samples.
const flagWatermark = 1 << 14

// sampleRecord returns the PERF_RECORD_SAMPLE of an overflow of ev with
// attribute a, data d and period period, with the fields of a's
// sample_type in perf_output_sample's order. A breakpoint in user mode
// gives no raw data, branch stack, weight, transaction, AUX data or
// cgroup; those fields get the values Linux gives for none. Not produced:
// the call chain, which gets only the user context marker and ip, and the
// user and interrupt registers and user stack, which get Linux's form for
// a sample without registers (ABI "none", size 0).
func (ev *Event[K]) sampleRecord(a *Attr, d sampleData, period uint64, read []byte) []byte {
	st := a.SampleType()
	b := make([]byte, 8, 128)
	put64 := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	put32 := func(v uint32) { b = binary.LittleEndian.AppendUint32(b, v) }
	if st&SampleIdentifier != 0 {
		put64(ev.primaryID())
	}
	if st&SampleIP != 0 {
		put64(d.ip)
	}
	if st&SampleTID != 0 {
		put32(d.pid)
		put32(d.tid)
	}
	if st&SampleTime != 0 {
		put64(d.time)
	}
	if st&SampleAddr != 0 {
		// perf_bp_event: the sample's address is bp_addr.
		put64(a.BPAddr())
	}
	if st&SampleID != 0 {
		put64(ev.primaryID())
	}
	if st&SampleStreamID != 0 {
		put64(ev.id)
	}
	if st&SampleCPU != 0 {
		put32(d.cpu)
		put32(0)
	}
	if st&SamplePeriod != 0 {
		put64(period)
	}
	if st&SampleRead != 0 {
		b = append(b, read...)
	}
	if st&SampleCallchain != 0 {
		put64(uint64(len(d.chain)))
		for _, e := range d.chain {
			put64(e)
		}
	}
	if st&SampleRaw != 0 {
		// No raw data: a u32 size of 4 and a u32 of zero.
		put32(4)
		put32(0)
	}
	if st&SampleRegsUser != 0 {
		put64(0) // PERF_SAMPLE_REGS_ABI_NONE
	}
	if st&SampleStackUser != 0 {
		put64(0)
	}
	if st&(SampleWeight|SampleWeightStruct) != 0 {
		put64(0)
	}
	if st&SampleDataSrc != 0 {
		put64(memNA)
	}
	if st&SampleTransaction != 0 {
		put64(0)
	}
	if st&SampleRegsIntr != 0 {
		put64(0)
	}
	if st&SampleAux != 0 {
		put64(0)
	}
	if st&SampleDataPage != 0 {
		put64(PageSize)
	}
	if st&SampleCodePage != 0 {
		put64(PageSize)
	}
	putHeader(b, recordSample, miscUser)
	return b
}

// output writes the sample of an overflow of ev to the ring its records go
// to, that of the event the guest opened (perf_output_begin: "For
// inherited events we send all the output towards the parent"), and wakes
// up its readers if a wakeup is due. A sample that does not fit counts as
// lost.
func (ev *Event[K]) output(a *Attr, d sampleData, period uint64) {
	o := ev.opened()
	r := o.ring.Load()
	if r == nil {
		return
	}
	var read []byte
	if a.SampleType()&SampleRead != 0 {
		read, _ = o.Read(1 << 20)
	}
	if a.SampleType()&SampleCallchain != 0 {
		d.chain = ev.es.callchain(ev.target.Task, a, d.ip)
	}
	oa := a
	if o != ev {
		at := o.Attr()
		oa = &at
	}
	rec := record{
		body: ev.sampleRecord(a, d, period, read),
		lost: func(n uint64) []byte { return o.lostRecord(oa, d, n) },
	}
	if a.Flags()&flagWatermark == 0 {
		rec.wakeupEvents = a.wakeupEvents()
	}
	res, wake := r.output(rec)
	if res == outputLost {
		o.lostSamples.Add(1)
	}
	if wake {
		// perf_output_wakeup, then perf_event_wakeup of the event
		// whose output woke: the ring's readers, and the O_ASYNC
		// owner of a pending overflow.
		r.wakeAll()
		o.wakeup()
	}
}

// wakeupEvents is wakeup_events (the union with wakeup_watermark).
func (a Attr) wakeupEvents() uint32 { return a.u32(offWakeup) }

// lockedPerCPU is sysctl_perf_event_mlock in pages: 512 KiB and one page
// per CPU, that an unprivileged user may lock for rings before
// RLIMIT_MEMLOCK counts.
const lockedPerCPU = (512*1024 + PageSize) / PageSize

// Alloc allocates the pages of a new ring: the first page and nrData data
// pages, zeroed. backing is what the caller needs to map and free them.
type Alloc func(nrData int) (user []byte, pages [][]byte, backing any, err error)

// Map is perf_mmap of the event's ring (offset 0) for a mapping of length
// bytes, a multiple of PageSize, with MAP_SHARED shared and PROT_WRITE
// writable, by a caller whose RLIMIT_MEMLOCK is memlock bytes, in Linux's
// order (kernel/events/core.c: perf_mmap, perf_mmap_rb,
// perf_mmap_calc_limits):
//
//   - an inherited event without a CPU; a private mapping: EINVAL;
//   - a size other than 1 + 2^n pages (or 1): EINVAL;
//   - an event that has a ring (its own, or one it outputs to): the same
//     number of data pages, or EINVAL; the mapping shares that ring;
//   - pages beyond sysctl_perf_event_mlock per CPU and RLIMIT_MEMLOCK:
//     EPERM, as for a caller without CAP_IPC_LOCK (see the package doc);
//     the sandbox's rings count together, as one user's do;
//   - otherwise a new ring, that alloc allocates.
//
// The caller reports the guest's mappings of the ring with Mapped and
// Unmapped. Map returns the ring and its backing.
func (ev *Event[K]) Map(length uint64, shared, writable bool, memlock uint64, alloc Alloc) (*Ring, any, error) {
	a := ev.Attr()
	if ev.target.CPU == -1 && a.Has(FlagInherit) {
		return nil, nil, errorf(unix.EINVAL, "mmap of an inherited event without a CPU")
	}
	if !shared {
		return nil, nil, errorf(unix.EINVAL, "private mapping")
	}
	pages := length / PageSize
	if pages == 0 || length%PageSize != 0 {
		return nil, nil, errorf(unix.EINVAL, "mapping of %d bytes", length)
	}
	nr := pages - 1
	if nr&(nr-1) != 0 {
		return nil, nil, errorf(unix.EINVAL, "%d data pages", nr)
	}
	es := ev.es
	es.ringMu.Lock()
	defer es.ringMu.Unlock()
	if r := ev.ring.Load(); r != nil {
		if uint64(r.NumDataPages()) != nr {
			return nil, nil, errorf(unix.EINVAL, "the ring has %d data pages, not %d", r.NumDataPages(), nr)
		}
		return r, r.backing, nil
	}
	// perf_mmap_calc_limits.
	extra := uint64(0)
	userExtra := nr + 1
	limit := uint64(lockedPerCPU * max(ev.target.NumCPU, 1))
	userLocked := min(es.lockedPages, limit) + userExtra
	if userLocked > limit {
		extra = userLocked - limit
	}
	if es.pinnedPages+extra > memlock/PageSize {
		return nil, nil, errorf(unix.EPERM, "ring of %d pages beyond the locked memory limit", nr+1)
	}
	user, data, backing, err := alloc(int(nr))
	if err != nil {
		return nil, nil, err
	}
	watermark := uint64(0)
	if a.Flags()&flagWatermark != 0 {
		watermark = uint64(a.wakeupEvents())
	}
	r := NewRing(user, data, writable, watermark)
	r.backing = backing
	r.locked, r.pinned = userExtra-extra, extra
	es.lockedPages += r.locked
	es.pinnedPages += r.pinned
	ev.attachRing(r)
	count, enabled, running := ev.value()
	r.updateUserPage(count, enabled, running)
	return r, backing, nil
}

// attachRing makes r the ring of ev's records (ring_buffer_attach), nil
// for none, and wakes up ev's readers if it had one.
func (ev *Event[K]) attachRing(r *Ring) {
	old := ev.ring.Swap(r)
	if old == r {
		return
	}
	if old != nil {
		old.detach(ev)
	}
	if r != nil {
		r.attach(ev)
	}
	if old != nil {
		ev.wakeWaiters()
	}
}

// Mapped reports that the guest mapped n more bytes of r through ev's fd
// (perf_mmap_open: mmap_count).
func (ev *Event[K]) Mapped(r *Ring, n uint64) {
	es := ev.es
	es.ringMu.Lock()
	defer es.ringMu.Unlock()
	r.mapped += n
	ev.mu.Lock()
	ev.mapped += n
	ev.mu.Unlock()
}

// Unmapped reports that the guest unmapped n bytes of r that it had mapped
// through ev's fd (perf_mmap_close): an event none of whose mappings is
// left stops writing to r, and once r has no mapping left no event writes
// to it and release is called, after which r is never written again.
func (ev *Event[K]) Unmapped(r *Ring, n uint64, release func()) {
	es := ev.es
	es.ringMu.Lock()
	defer es.ringMu.Unlock()
	ev.mu.Lock()
	ev.mapped -= min(n, ev.mapped)
	left := ev.mapped
	ev.mu.Unlock()
	if left == 0 && ev.ring.Load() == r {
		ev.attachRing(nil)
	}
	r.mapped -= min(n, r.mapped)
	if r.mapped != 0 {
		return
	}
	for _, w := range r.kill() {
		if e, ok := w.(*Event[K]); ok && e.ring.CompareAndSwap(r, nil) {
			e.wakeWaiters()
		}
	}
	es.lockedPages -= min(r.locked, es.lockedPages)
	es.pinnedPages -= min(r.pinned, es.pinnedPages)
	release()
}

// SetOutput is PERF_EVENT_IOC_SET_OUTPUT (perf_event_set_output): ev's
// records go to out's ring, or nowhere for a nil out. EINVAL for out ev
// itself, on another CPU or task, with another clock; EINVAL if ev is
// mapped, or out has no ring.
func (ev *Event[K]) SetOutput(out *Event[K]) error {
	if out != nil {
		if out == ev {
			return errorf(unix.EINVAL, "output to itself")
		}
		if err := checkOutput(out, ev.target, ev.clock(), out.clock()); err != nil {
			return err
		}
	}
	es := ev.es
	es.ringMu.Lock()
	defer es.ringMu.Unlock()
	ev.mu.Lock()
	mapped := ev.mapped != 0
	ev.mu.Unlock()
	if mapped {
		return errorf(unix.EINVAL, "the event's ring is mapped")
	}
	var r *Ring
	if out != nil {
		if r = out.ring.Load(); r == nil {
			return errorf(unix.EINVAL, "the output event has no ring")
		}
	}
	ev.attachRing(r)
	return nil
}

// checkOutput makes perf_event_set_output's checks of an output event for
// an event of target whose clock is clock: EINVAL for another CPU, for
// another task of an event without a CPU, and for another clock.
func checkOutput[K comparable](out *Event[K], target Target[K], clock, outClock int64) error {
	if out.target.CPU != target.CPU || out.target.CPU == -1 && (out.target.HasTask != target.HasTask || out.target.Task != target.Task) {
		return errorf(unix.EINVAL, "output to another CPU or task")
	}
	if outClock != clock {
		return errorf(unix.EINVAL, "output to an event with another clock")
	}
	return nil
}

// clock identifies the clock of ev's times (event->clock).
func (ev *Event[K]) clock() int64 { return clockOf(ev.Attr()) }

// clockOf identifies the clock of an event with attribute a: the default,
// or use_clockid's clockid.
func clockOf(a Attr) int64 {
	if !a.Has(FlagUseClockID) {
		return -1
	}
	return int64(a.ClockID())
}

// PauseOutput is PERF_EVENT_IOC_PAUSE_OUTPUT: EINVAL without a ring with
// data pages.
func (ev *Event[K]) PauseOutput(on bool) error {
	r := ev.ring.Load()
	if r == nil || r.NumDataPages() == 0 {
		return errorf(unix.EINVAL, "no ring to pause")
	}
	r.setPaused(on)
	return nil
}

// Ring returns the ring ev's records go to, nil if none.
func (ev *Event[K]) Ring() *Ring { return ev.ring.Load() }

// Hup reports whether a poll of ev's fd reads EPOLLHUP whatever its ring
// holds (is_event_hup): its task exited, or an exec removed it, and no
// inherited copy of it lives.
func (ev *Event[K]) Hup() bool {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.bp == nil && len(ev.children) == 0
}

// SetWaiters sets the function that wakes up the waiters of ev's fd
// (wake_up_all(&event->waitq)); nil for none.
func (ev *Event[K]) SetWaiters(fn func()) {
	if fn == nil {
		ev.waiters.Store(nil)
		return
	}
	ev.waiters.Store(&fn)
}

// wakeWaiters implements waker.wakeWaiters.
func (ev *Event[K]) wakeWaiters() {
	if fn := ev.waiters.Load(); fn != nil {
		(*fn)()
	}
}
