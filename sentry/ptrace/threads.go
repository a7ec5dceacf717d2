package ptrace

import (
	"sync"
	"sync/atomic"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// Threads maps the threads of a sandbox, identified by K (the sentry's
// *kernel.Task; anything comparable in tests), to their DebugRegs. A thread
// gets an entry when a tracer first writes one of its debug registers, or
// when it is created by a thread whose DR6 or DR7 reads non-default; the
// entry goes away at execve and exit.
type Threads[K comparable] struct {
	r *hwbp.Registry

	// n is len(m), readable without mu for the fast paths that run on
	// every clone and every new thread.
	n atomic.Int64

	mu sync.Mutex

	// +checklocks:mu
	m map[K]*DebugRegs

	// created counts entries ever made, for leak reports.
	//
	// +checklocks:mu
	created uint64
}

// NewThreads returns an empty map whose threads' events live in r.
func NewThreads[K comparable](r *hwbp.Registry) *Threads[K] {
	return &Threads[K]{r: r, m: make(map[K]*DebugRegs)}
}

// Registry returns the core registry the threads' events live in.
func (ts *Threads[K]) Registry() *hwbp.Registry { return ts.r }

// Lookup returns k's state, or nil if k reads like a fresh thread. Calling
// Get on a nil *DebugRegs is valid and returns the fresh values.
func (ts *Threads[K]) Lookup(k K) *DebugRegs {
	if ts.n.Load() == 0 {
		return nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.m[k]
}

// Get returns k's state, creating it if needed.
func (ts *Threads[K]) Get(k K) *DebugRegs {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.getLocked(k)
}

// +checklocks:ts.mu
func (ts *Threads[K]) getLocked(k K) *DebugRegs {
	d, ok := ts.m[k]
	if !ok {
		d = newDebugRegs(ts.r)
		ts.m[k] = d
		ts.created++
		ts.n.Store(int64(len(ts.m)))
	}
	return d
}

// Inherit gives child, a thread that parent just created, parent's DR6 and
// DR7 read-back values (and no breakpoint), as Linux's copy_thread does.
func (ts *Threads[K]) Inherit(parent, child K) {
	p := ts.Lookup(parent)
	if p == nil {
		return
	}
	dr6, dr7 := p.inheritable()
	if dr6 == 0 && dr7 == 0 {
		return
	}
	c := ts.Get(child)
	c.mu.Lock()
	c.dr6, c.dr7 = dr6, dr7
	c.mu.Unlock()
}

// Remove forgets k, unregistering its events: Linux's
// flush_ptrace_hw_breakpoint, which runs at execve (flush_thread) and at
// exit. It reports whether the last entry went away, with the number of
// entries ever created.
func (ts *Threads[K]) Remove(k K) (empty bool, created uint64) {
	if ts.n.Load() == 0 {
		return false, 0
	}
	ts.mu.Lock()
	d, ok := ts.m[k]
	if ok {
		delete(ts.m, k)
		ts.n.Store(int64(len(ts.m)))
	}
	empty, created = ok && len(ts.m) == 0, ts.created
	ts.mu.Unlock()
	if ok {
		d.release()
	}
	return empty, created
}

// Len returns the number of threads with state.
func (ts *Threads[K]) Len() int {
	return int(ts.n.Load())
}

// Trap delivers a debug exception that thread k took in user mode while
// the back end had img loaded, with real DR6 dr6 and user RIP ip after the
// trap. It returns the SIGTRAP the thread must get, if any. This is the
// entry point of the platform back ends.
func (ts *Threads[K]) Trap(k K, img *hwbp.Image, dr6 hwbp.DR6, ip uint64) (Signal, bool) {
	d := ts.Lookup(k)
	if d == nil {
		if dr6&hwbp.DR6BS == 0 {
			// No ptrace state to update; the events of img still fire.
			d = &DebugRegs{}
		} else {
			// The virtual DR6 must show the single-step.
			d = ts.Get(k)
		}
	}
	return d.trap(img, dr6, ip)
}

// SingleStep records a single-step trap that thread k took with no debug
// register image loaded: Linux's exc_debug_user restarts the tracer's view
// of DR6 from the real DR6's BS bit on every debug exception, breakpoints or
// not. The SIGTRAP itself (TRAP_TRACE) is the platform's.
func (ts *Threads[K]) SingleStep(k K, ip uint64) {
	empty := hwbp.Image{}
	ts.Trap(k, &empty, hwbp.DR6Reset|hwbp.DR6BS, ip)
}
