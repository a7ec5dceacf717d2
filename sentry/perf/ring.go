// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// PageSize is the size of a ring's pages (PAGE_SIZE on x86_64).
const PageSize = 4096

// Record types and header bits (include/uapi/linux/perf_event.h).
const (
	recordLost   = unix.PERF_RECORD_LOST
	recordSample = unix.PERF_RECORD_SAMPLE
	// miscUser is PERF_RECORD_MISC_USER: every guest sample is taken in
	// user mode.
	miscUser = unix.PERF_RECORD_MISC_USER
)

// Offsets of the fields of struct perf_event_mmap_page that the sentry
// writes or reads.
const (
	upLock         = 8
	upIndex        = 12
	upOffset       = 16
	upTimeEnabled  = 24
	upTimeRunning  = 32
	upCapabilities = 40
	upSize         = 72
	upDataHead     = 1024
	upDataTail     = 1032
	upDataOffset   = 1040
	upDataSize     = 1048
	// upSizeValue is offsetof(struct perf_event_mmap_page, __reserved),
	// which perf_event_init_userpage writes to size.
	upSizeValue = 96
	// capBit0IsDeprecated is the only capability bit a breakpoint event
	// has for a caller without rdpmc, on a host whose sched_clock is not
	// the TSC's (measured on 6.18: capabilities 0x2).
	capBit0IsDeprecated = 1 << 1
)

// pollIn is EPOLLIN, the readiness a wakeup of a ring gives.
const pollIn = unix.EPOLLIN

// waker is an event attached to a ring, whose waiters a wakeup of the ring
// wakes (ring_buffer_wakeup walks rb->event_list).
type waker interface {
	wakeWaiters()
}

// Ring is a ring buffer that the guest mapped through an event's fd,
// Linux's struct perf_buffer (kernel/events/ring_buffer.c): the first page
// is struct perf_event_mmap_page, the data pages a ring of records that
// the sentry appends at data_head and the guest consumes up to data_tail.
// Its pages are shared with the guest, who may write anything into them at
// any time: the sentry reads nothing from them but data_tail, and trusts no
// value of it (a bad tail makes records lost, never a write outside the
// data pages).
//
// A ring mapped read-only overwrites its oldest records (Linux's overwrite
// mode, !RING_BUFFER_WRITABLE); a writable one keeps records the guest has
// not consumed and counts the ones that do not fit, which a
// PERF_RECORD_LOST reports before the next record that fits.
type Ring struct {
	// user is the first page; pages are the data pages, each PageSize
	// bytes (rb->data_pages). Immutable.
	user  []byte
	pages [][]byte

	// dataSize is len(pages)*PageSize; overwrite is set for a read-only
	// mapping; watermark is the number of bytes after which a wakeup is
	// due (rb->watermark). Immutable.
	dataSize  uint64
	overwrite bool   // +checklocksignore
	watermark uint64 // +checklocksignore

	// poll is the readiness that the last wakeup set and that the next
	// poll takes (rb->poll, which perf_poll exchanges with 0).
	poll atomic.Uint32

	// locked and pinned are the pages this ring counts against the
	// sandbox's per-CPU allowance and RLIMIT_MEMLOCK (rb->mmap_locked,
	// the extra pinned_vm). Immutable once mapped. (One field a line:
	// checklocks misplaces the annotations after a multi-name field.)
	locked uint64
	pinned uint64

	// backing is what the caller allocated the pages with. Immutable.
	backing any

	// mapped is the number of bytes of the guest's mappings of the ring
	// (rb->mmap_count, in bytes); Events.ringMu guards it.
	mapped uint64

	mu sync.Mutex

	// head is the write position (rb->head), wakeup the position of the
	// last wakeup (rb->wakeup), lost the number of records lost since the
	// last PERF_RECORD_LOST (rb->lost), events the samples since the
	// last wakeup_events wakeup (rb->events).
	//
	// +checklocks:mu
	head uint64
	// +checklocks:mu
	wakeup uint64
	// +checklocks:mu
	lost uint64
	// +checklocks:mu
	events uint32

	// paused is set by PERF_EVENT_IOC_PAUSE_OUTPUT (rb->paused).
	//
	// +checklocks:mu
	paused bool

	// dead is set once the ring is unmapped: its pages may be freed, and
	// nothing is written any more.
	//
	// +checklocks:mu
	dead bool

	// attached are the events whose records go to the ring
	// (rb->event_list).
	//
	// +checklocks:mu
	attached map[waker]struct{}
}

// NewRing returns the ring in user (one page) and pages (data pages of
// PageSize bytes each, a power of two of them, or none), zeroed, as
// rb_alloc and perf_event_init_userpage make it. writable is the
// mapping's PROT_WRITE (the ring overwrites if it is clear); watermark is
// wakeup_watermark if the attribute has watermark set, else 0 (half the
// data pages).
func NewRing(user []byte, pages [][]byte, writable bool, watermark uint64) *Ring {
	r := &Ring{
		user:      user[:PageSize],
		pages:     pages,
		dataSize:  uint64(len(pages)) * PageSize,
		overwrite: !writable,
		attached:  make(map[waker]struct{}),
	}
	// ring_buffer_init.
	if watermark != 0 {
		r.watermark = min(r.dataSize, watermark)
	}
	if r.watermark == 0 {
		r.watermark = r.dataSize / 2
	}
	binary.LittleEndian.PutUint64(r.user[upCapabilities:], capBit0IsDeprecated)
	binary.LittleEndian.PutUint32(r.user[upSize:], upSizeValue)
	binary.LittleEndian.PutUint64(r.user[upDataOffset:], PageSize)
	binary.LittleEndian.PutUint64(r.user[upDataSize:], r.dataSize)
	return r
}

// NumDataPages is the number of the ring's data pages.
func (r *Ring) NumDataPages() int { return len(r.pages) }

// updateUserPage is perf_event_update_userpage: under the page's seqlock
// (lock, odd while the fields change), index 0 (a breakpoint has no
// counter that rdpmc reads), offset the count, and the times.
func (r *Ring) updateUserPage(count, enabled, running uint64) {
	lock := r.word32(upLock)
	lock.Add(1)
	binary.LittleEndian.PutUint32(r.user[upIndex:], 0)
	r.word64(upOffset).Store(count)
	r.word64(upTimeEnabled).Store(enabled)
	r.word64(upTimeRunning).Store(running)
	lock.Add(1)
}

// TakePoll returns the readiness that the last wakeup set, and clears it,
// as perf_poll does (atomic_xchg(&rb->poll, 0)).
func (r *Ring) TakePoll() uint32 { return r.poll.Swap(0) }

// attach adds w to the events whose records go to r.
func (r *Ring) attach(w waker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attached[w] = struct{}{}
}

// detach removes w from them.
func (r *Ring) detach(w waker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.attached, w)
}

// kill marks r unmapped and returns the events that were attached to it.
func (r *Ring) kill() []waker {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead = true
	var ws []waker
	for w := range r.attached {
		ws = append(ws, w)
	}
	clear(r.attached)
	return ws
}

// wakeAll wakes the waiters of every event attached to r
// (ring_buffer_wakeup).
func (r *Ring) wakeAll() {
	r.mu.Lock()
	ws := make([]waker, 0, len(r.attached))
	for w := range r.attached {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	for _, w := range ws {
		w.wakeWaiters()
	}
}

// setPaused is PERF_EVENT_IOC_PAUSE_OUTPUT (rb_toggle_paused).
func (r *Ring) setPaused(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused = on
}

// record is one record that an event writes, with what its output needs to
// know of the event.
type record struct {
	// body is the record, its header included.
	body []byte
	// lost is the PERF_RECORD_LOST that precedes it if records were lost:
	// the record for a count, header included.
	lost func(n uint64) []byte
	// wakeupEvents is wakeup_events, or 0 if the attribute has watermark
	// set or wakeup_events is 0: every so many samples wake up the
	// readers.
	wakeupEvents uint32
}

// Output results.
const (
	outputDone = iota
	// outputLost: the record did not fit, or the ring is paused; it
	// counts as lost (event->lost_samples).
	outputLost
	// outputNone: the ring has no data pages, or is gone.
	outputNone
)

// output appends rec to the ring, as perf_output_begin, perf_output_sample's
// wakeup_events accounting and perf_output_end do, and returns the outcome
// and whether a wakeup is due (perf_output_wakeup: the ring then reads
// EPOLLIN, and the caller wakes up the readers).
func (r *Ring) output(rec record) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead || len(r.pages) == 0 {
		return outputNone, false
	}
	if r.paused {
		r.lost++
		return outputLost, false
	}
	var lostRec []byte
	size := uint64(len(rec.body))
	if r.lost != 0 {
		lostRec = rec.lost(r.lost)
		size += uint64(len(lostRec))
	}
	head := r.head
	if !r.overwrite {
		// CIRC_SPACE: the ring holds at most dataSize-1 bytes. The
		// guest's tail is trusted for nothing but this comparison.
		tail := r.word64(upDataTail).Load()
		if (tail-(head+1))&(r.dataSize-1) < size {
			r.lost++
			return outputLost, false
		}
	}
	wakeup := r.wakeup
	r.head = head + size
	if r.head-r.wakeup > r.watermark {
		r.wakeup += r.watermark
	}
	off := head
	if lostRec != nil {
		r.copyIn(off, lostRec)
		off += uint64(len(lostRec))
		r.lost = 0
	}
	r.copyIn(off, rec.body)
	if rec.wakeupEvents != 0 {
		r.events++
		if r.events >= rec.wakeupEvents {
			r.events -= rec.wakeupEvents
			r.wakeup++
		}
	}
	// perf_output_put_handle: data_head after the data (the atomic
	// store orders them for the guest).
	r.word64(upDataHead).Store(r.head)
	if wakeup != r.wakeup {
		r.poll.Store(pollIn)
		return outputDone, true
	}
	return outputDone, false
}

// copyIn writes b at ring position off, wrapping around the data pages.
//
// +checklocks:r.mu
func (r *Ring) copyIn(off uint64, b []byte) {
	for len(b) > 0 {
		off &= r.dataSize - 1
		page, in := off/PageSize, off%PageSize
		n := copy(r.pages[page][in:], b)
		b = b[n:]
		off += uint64(n)
	}
}
