// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package watch

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// MaxQueued is the number of hits a watch keeps for its reader; more are
// lost (ReadResult.Lost) until the reader catches up.
const MaxQueued = 1 << 16

// exitPoll is how often a waiting Read checks whether the watched threads
// are gone, so that the reader learns of their end before their sandbox
// may end with them.
const exitPoll = 20 * time.Millisecond

// Describe returns the hit of thread k on the watched range [addr,
// addr+length) at user instruction pointer ip, with everything but Time
// filled: pid, tid, comm, the watched bytes. It is called on the goroutine
// that reported the hit, before the thread runs again, with no lock of this
// package or of the core held.
type Describe[K comparable] func(k K, addr, length, ip uint64) Hit

// Watches holds the host's watches of one sandbox, whose threads are the
// keys of tasks.
type Watches[K comparable] struct {
	tasks    *hwbp.Tasks[K]
	describe Describe[K]
	// changed tells the back end that thread k's breakpoints changed
	// while it may run (a watch ended): it must not keep them armed.
	changed func(k K)
	// lease is how long a watch lives without a Read: its reader is
	// then taken for gone (killed, or its connection lost), and the watch
	// ends.
	lease time.Duration

	mu sync.Mutex
	// +checklocks:mu
	next uint64
	// +checklocks:mu
	watches map[uint64]*Watch[K]
}

// New returns the watches of the threads of tasks, whose hits describe
// describes; a watch without a Read for lease ends. changed, if not nil,
// is called for each thread whose event a watch unregistered when it
// ended, before its reader learns of the end, on the goroutine that ended
// it: Stop's or End's caller, the lease's timer, or, at the count's last
// hit, the thread that hit, between its debug exception and its return to
// user mode (no lock of this package or of the core is held).
func New[K comparable](tasks *hwbp.Tasks[K], describe Describe[K], changed func(k K), lease time.Duration) *Watches[K] {
	return &Watches[K]{tasks: tasks, describe: describe, changed: changed, lease: lease, watches: make(map[uint64]*Watch[K])}
}

// Watch is one watch: one host-owned event in each thread it watches.
type Watch[K comparable] struct {
	ws    *Watches[K]
	id    uint64
	attr  hwbp.Attr
	count uint64
	// syms names the addresses of hits; may be nil. Immutable.
	syms  *Symbols
	lease *time.Timer
	// notify wakes a Read when a hit is queued or the watch ends.
	notify chan struct{}

	mu sync.Mutex
	// bps holds the watch's event in each thread it watches.
	//
	// +checklocks:mu
	bps map[K]*hwbp.Breakpoint
	// +checklocks:mu
	queue []Hit
	// hits counts the hits, lost ones included; lost those dropped since
	// the last Read; missed the threads it could not follow.
	//
	// +checklocks:mu
	hits uint64
	// +checklocks:mu
	lost uint64
	// +checklocks:mu
	missed uint64
	// +checklocks:mu
	perPID map[int32]uint64
	// ended says why the watch ended, empty while it lasts.
	//
	// +checklocks:mu
	ended string
	// closed is set once the end is complete: every event unregistered
	// and the back end told (Watches.changed). Read reports the end only
	// then, so that its reader finds nothing of the watch left.
	//
	// +checklocks:mu
	closed bool
}

// ErrNoSlot marks Start's error for a thread whose four slots are taken.
var ErrNoSlot = errors.New("no free debug register")

// Start watches attr in the threads that list returns, and in the threads
// and children that they create from now on; with count not zero, it ends
// after count hits. syms, if not nil, names the hits' addresses and
// instruction pointers (Hit.Symbol, Hit.IPSymbol). list is called until it names no thread that the watch
// does not hold yet, so that a thread created while Start registered the
// others is not missed. attr must be a data breakpoint that the core
// accepts; Start fails, changing nothing, if it is not, if list names no
// live thread, or if one of them has no free slot (ErrNoSlot, wrapping
// ENOSPC, in an error that says who holds the slots, and naming the thread
// with name).
func (ws *Watches[K]) Start(list func() []K, name func(K) string, attr hwbp.Attr, count uint64, syms *Symbols) (*Watch[K], error) {
	if err := attr.Validate(); err != nil {
		return nil, err
	}
	w := &Watch[K]{
		ws:     ws,
		attr:   attr,
		count:  count,
		syms:   syms,
		notify: make(chan struct{}, 1),
		bps:    make(map[K]*hwbp.Breakpoint),
		perPID: make(map[int32]uint64),
	}
	for round := 0; ; round++ {
		added := 0
		for _, k := range list() {
			w.mu.Lock()
			_, ok := w.bps[k]
			w.mu.Unlock()
			if ok {
				continue
			}
			t, err := ws.tasks.Get(k)
			if errors.Is(err, unix.ESRCH) {
				continue // exiting: nothing to watch
			}
			if err == nil {
				err = w.follow(k, t)
			}
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			if err != nil {
				w.end("failed to start")
				return nil, fmt.Errorf("thread %s: %w", name(k), err)
			}
			added++
		}
		if added == 0 {
			break
		}
	}
	if w.Threads() == 0 {
		return nil, fmt.Errorf("no live thread to watch: %w", unix.ESRCH)
	}
	ws.mu.Lock()
	ws.next++
	w.id = ws.next
	ws.watches[w.id] = w
	ws.mu.Unlock()
	w.lease = time.AfterFunc(ws.lease, func() { ws.Stop(w.id, "its reader is gone") })
	return w, nil
}

// Get returns watch id, or nil.
func (ws *Watches[K]) Get(id uint64) *Watch[K] {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.watches[id]
}

// Len returns the number of watches, ended ones whose end was not read yet
// included.
func (ws *Watches[K]) Len() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.watches)
}

// Stop ends watch id, for reason, and forgets it. It reports whether the
// watch existed.
func (ws *Watches[K]) Stop(id uint64, reason string) bool {
	ws.mu.Lock()
	w := ws.watches[id]
	delete(ws.watches, id)
	ws.mu.Unlock()
	if w == nil {
		return false
	}
	w.end(reason)
	if w.lease != nil {
		w.lease.Stop()
	}
	return true
}

// End ends watch id, for reason, but keeps it for its reader: its next
// Read returns the hits still queued and the end. It reports whether the
// watch existed.
func (ws *Watches[K]) End(id uint64, reason string) bool {
	w := ws.Get(id)
	if w == nil {
		return false
	}
	w.end(reason)
	return true
}

// ID returns the watch's identifier.
func (w *Watch[K]) ID() uint64 { return w.id }

// Threads returns the number of threads the watch holds an event in.
func (w *Watch[K]) Threads() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.bps)
}

// follow registers the watch's event in thread k, whose Task is t, and
// attaches the watch to t, so that what k creates is watched too.
func (w *Watch[K]) follow(k K, t *hwbp.Task) error {
	th, _ := t.Attach(threadKey, func() hwbp.Extension { return &thread[K]{} }).(*thread[K])
	if th == nil {
		return fmt.Errorf("thread has exited: %w", unix.ESRCH)
	}
	th.setKey(k)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended != "" {
		return nil
	}
	bp, err := w.ws.tasks.Registry().RegisterHost(t, w.attr, func(_ *hwbp.Breakpoint, h hwbp.Hit) { w.hit(k, h) })
	if errors.Is(err, unix.ENOSPC) {
		ours := th.len()
		return fmt.Errorf("%w: %d of its %d slots are held by the guest (ptrace or perf_event_open), %d by host watches: %w",
			ErrNoSlot, t.SlotsInUse()-ours, hwbp.Slots, ours, err)
	}
	if err != nil {
		return err
	}
	w.bps[k] = bp
	th.add(w)
	return nil
}

// hit queues a hit of thread k.
func (w *Watch[K]) hit(k K, h hwbp.Hit) {
	n := w.attr.Len
	if w.attr.Type == hwbp.TypeX {
		n = 1 // the instruction's first byte; bp_len is sizeof(long)
	}
	d := w.ws.describe(k, w.attr.Addr, n, h.IP)
	d.Time = time.Now().UnixNano()
	w.mu.Lock()
	if w.ended != "" || w.count != 0 && w.hits >= w.count {
		w.mu.Unlock()
		return
	}
	w.hits++
	w.perPID[d.PID]++
	if len(w.queue) < MaxQueued {
		w.queue = append(w.queue, d)
	} else {
		w.lost++
	}
	done := w.count != 0 && w.hits == w.count
	w.mu.Unlock()
	w.wake()
	if done {
		w.end(fmt.Sprintf("count of %d hits reached", w.count))
	}
}

func (w *Watch[K]) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// end unregisters every event of the watch, for reason; later hits and
// clones find it ended. Its queue stays for its reader.
func (w *Watch[K]) end(reason string) {
	w.mu.Lock()
	if w.ended != "" {
		w.mu.Unlock()
		return
	}
	w.ended = reason
	bps := w.bps
	w.bps = nil
	w.mu.Unlock()
	ks := make([]K, 0, len(bps))
	for k, bp := range bps {
		if t := w.ws.tasks.Lookup(k); t != nil {
			if th, ok := t.Extension(threadKey).(*thread[K]); ok {
				th.remove(w)
			}
		}
		bp.Unregister()
		ks = append(ks, k)
	}
	if w.ws.changed != nil {
		for _, k := range ks {
			w.ws.changed(k)
		}
	}
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wake()
}

// drop forgets thread k, which execve flushes.
func (w *Watch[K]) drop(k K) {
	w.mu.Lock()
	bp := w.bps[k]
	delete(w.bps, k)
	w.mu.Unlock()
	if bp != nil {
		bp.Unregister()
	}
}

// live reports whether any thread still holds the watch's event.
func (w *Watch[K]) live() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, bp := range w.bps {
		if bp.Registered() {
			return true
		}
		delete(w.bps, k) // its thread exited
	}
	return false
}

// Read returns the hits queued since the last Read, waiting up to wait
// for one, and renews the watch's lease. Once the watch has ended and its
// queue is drained, the result says why (Ended) and the watch is
// forgotten. A watch whose threads have all exited or called execve ends
// there.
func (w *Watch[K]) Read(wait time.Duration) ReadResult {
	if w.lease != nil {
		w.lease.Reset(w.ws.lease)
	}
	wait = min(wait, w.ws.lease/2)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	// The end of the watched threads wakes nothing: it is polled.
	poll := time.NewTicker(exitPoll)
	defer poll.Stop()
	for {
		w.mu.Lock()
		if len(w.queue) > 0 || w.closed {
			break
		}
		// A watch that is ending is closed, and notify written, by
		// the goroutine that ends it.
		ending := w.ended != ""
		w.mu.Unlock()
		if !ending && !w.live() {
			w.end("the watched threads exited")
			continue
		}
		select {
		case <-w.notify:
		case <-poll.C:
		case <-timer.C:
			w.mu.Lock()
			if len(w.queue) == 0 && !w.closed {
				w.mu.Unlock()
				return ReadResult{}
			}
			w.mu.Unlock()
		}
	}
	// w.mu is held.
	res := ReadResult{Hits: w.queue, Lost: w.lost, Missed: w.missed}
	w.queue, w.lost, w.missed = nil, 0, 0
	if w.closed {
		res.Ended = w.ended
		res.PerPID = w.perPID
	}
	w.mu.Unlock()
	for i := range res.Hits {
		h := &res.Hits[i]
		h.Symbol, h.IPSymbol = w.syms.Name(h.Addr), w.syms.Name(h.IP)
	}
	if res.Ended != "" {
		w.ws.mu.Lock()
		delete(w.ws.watches, w.id)
		w.ws.mu.Unlock()
		if w.lease != nil {
			w.lease.Stop()
		}
	}
	return res
}
