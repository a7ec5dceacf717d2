// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Extension is a consumer's own state of one thread, beyond the events it
// registered: Linux keeps ptrace's (ptrace_bps, ptrace_dr7) in the thread's
// thread_struct, next to the breakpoint layer's. A consumer attaches it to a
// Task with Task.Attach; the core calls it at the thread's clone and execve.
type Extension interface {
	// Clone returns the state that a thread created by the extension's
	// thread starts with, or nil for none: Linux copies thread_struct
	// whole at clone (arch_dup_task_struct), and no event is inherited.
	Clone() Extension

	// Exec drops what execve flushes (Linux's flush_thread), such as
	// the consumer's events.
	Exec()
}

// Inheritor is an Extension whose clone acts on the new thread once it has
// its Task: Linux's perf_event_init_task registers the child's copies of
// the events that its creator's perf events inherit. Tasks.Clone calls
// Inherited on what Clone returned, after attaching it to the new thread's
// Task, with the creator's and the new thread's keys and the flags of the
// clone (CLONE_*), which decide what it inherits.
type Inheritor[K comparable] interface {
	Extension
	Inherited(parent, child K, flags uint64, t *Task)
}

// ExtensionKey identifies one consumer's Extensions.
type ExtensionKey struct {
	name string
}

// NewExtensionKey returns a key for the extensions of the consumer name.
func NewExtensionKey(name string) *ExtensionKey {
	return &ExtensionKey{name: name}
}

// String implements fmt.Stringer.
func (k *ExtensionKey) String() string { return k.name }

// extension is one Extension of a Task and its key.
type extension struct {
	key *ExtensionKey
	ext Extension
}

// Extension returns t's extension for key, or nil.
func (t *Task) Extension(key *ExtensionKey) Extension {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	return t.extensionLocked(key)
}

// +checklocks:t.r.mu
func (t *Task) extensionLocked(key *ExtensionKey) Extension {
	for _, e := range t.ext {
		if e.key == key {
			return e.ext
		}
	}
	return nil
}

// Attach returns t's extension for key, attaching create() first if t has
// none. A released task gets none: Attach returns nil.
func (t *Task) Attach(key *ExtensionKey, create func() Extension) Extension {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	if t.released {
		return nil
	}
	if e := t.extensionLocked(key); e != nil {
		return e
	}
	e := create()
	t.ext = append(t.ext, extension{key: key, ext: e})
	return e
}

// extensions returns t's extensions.
func (t *Task) extensions() []extension {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	return append([]extension(nil), t.ext...)
}

// Tasks maps the threads of a sandbox, identified by K (the sentry's
// *kernel.Task; anything comparable in tests), to their breakpoint state. A
// thread has a Task while it holds events, extensions or a non-default
// virtual DR6; one that has none reads like a fresh Linux thread. It
// implements Linux's lifecycle rules: a thread created by clone starts with
// its creator's virtual DR6 and extensions' clones but no event, execve
// flushes, exit frees.
//
// Back ends find a thread's Task with Lookup on every Switch while any
// breakpoint is enabled, so Lookup takes no mutex.
type Tasks[K comparable] struct {
	r *Registry

	// exited reports whether a thread has begun to exit. Get creates no
	// Task for such a thread: its Exit may have run already, and nothing
	// would free the new one. Immutable; it is only called under mu,
	// which checklocks' lock inference would take for a guard.
	exited func(K) bool // +checklocksignore

	// n is the number of entries in m, plus one while Get creates one,
	// for the fast paths.
	n atomic.Int64

	// m maps K to *Task. Lookups take no lock; stores and deletes are
	// made with mu held, so that Get's check of exited and Exit's removal
	// are ordered.
	m sync.Map

	// mu serializes changes to m.
	mu sync.Mutex

	// created counts Tasks ever made, for leak reports.
	//
	// +checklocks:mu
	created uint64
}

// NewTasks returns an empty map whose Tasks live in r. exited reports
// whether a thread has begun to exit; it must be true for a thread before
// Exit is called for it.
func NewTasks[K comparable](r *Registry, exited func(K) bool) *Tasks[K] {
	return &Tasks[K]{r: r, exited: exited}
}

// Registry returns the registry that the Tasks live in.
func (ts *Tasks[K]) Registry() *Registry { return ts.r }

// Lookup returns k's Task, or nil if k has none. It takes no mutex, and is
// one atomic load when no thread of the sandbox has a Task.
func (ts *Tasks[K]) Lookup(k K) *Task {
	if ts.n.Load() == 0 {
		return nil
	}
	if v, ok := ts.m.Load(k); ok {
		return v.(*Task)
	}
	return nil
}

// Get returns k's Task, creating it if needed. It fails with ESRCH if k has
// begun to exit: a request that raced with the thread's death must not
// leave state behind that nothing frees.
func (ts *Tasks[K]) Get(k K) (*Task, error) {
	if t := ts.Lookup(k); t != nil {
		return t, nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.getLocked(k)
}

// +checklocks:ts.mu
func (ts *Tasks[K]) getLocked(k K) (*Task, error) {
	if v, ok := ts.m.Load(k); ok {
		return v.(*Task), nil
	}
	// n grows before exited is checked: an Exit that found n zero, and
	// so did not look for k, ran before this point, so it was preceded by
	// k's exit state, which the check then sees.
	ts.n.Add(1)
	if ts.exited != nil && ts.exited(k) {
		ts.n.Add(-1)
		return nil, fmt.Errorf("hwbp: thread has exited: %w", unix.ESRCH)
	}
	t := ts.r.NewTask()
	ts.m.Store(k, t)
	ts.created++
	return t, nil
}

// Clone gives child, a thread that parent just created, what Linux's clone
// copies (arch_dup_task_struct copies thread_struct, then
// copy_thread clears the breakpoints): parent's virtual DR6 and the clones
// of its extensions, no event of the core's own; an extension that is an
// Inheritor then registers what it inherits, given the clone's flags. A
// child of a thread without a Task gets none.
func (ts *Tasks[K]) Clone(parent, child K, flags uint64) {
	p := ts.Lookup(parent)
	if p == nil {
		return
	}
	dr6 := p.dr6.Load()
	var clones []extension
	for _, e := range p.extensions() {
		if c := e.ext.Clone(); c != nil {
			clones = append(clones, extension{key: e.key, ext: c})
		}
	}
	if dr6 == 0 && len(clones) == 0 {
		return
	}
	c, err := ts.Get(child)
	if err != nil {
		return // the child is gone already
	}
	c.dr6.Store(dr6)
	for _, e := range clones {
		ext := c.Attach(e.key, func() Extension { return e.ext })
		if in, ok := ext.(Inheritor[K]); ok && ext == e.ext {
			in.Inherited(parent, child, flags, c)
		}
	}
}

// Exec flushes k at execve, as Linux's flush_thread does: every extension
// drops what execve flushes (flush_ptrace_hw_breakpoint unregisters the
// ptrace breakpoints), and the virtual DR6 goes back to its reset value.
// A Task left without events is freed; Exec then reports what Exit does.
func (ts *Tasks[K]) Exec(k K) (empty bool, created uint64) {
	t := ts.Lookup(k)
	if t == nil {
		return false, 0
	}
	for _, e := range t.extensions() {
		e.ext.Exec()
	}
	t.dr6.Store(0)
	if t.SlotsInUse() != 0 {
		return false, 0
	}
	return ts.Exit(k)
}

// Exit frees k's Task and unregisters its events, at the thread's exit
// (Linux's exit_thread and perf_event_exit_task). It reports whether the
// last Task went away, with the number of Tasks ever created.
func (ts *Tasks[K]) Exit(k K) (empty bool, created uint64) {
	if ts.n.Load() == 0 {
		return false, 0
	}
	ts.mu.Lock()
	v, ok := ts.m.LoadAndDelete(k)
	n := ts.n.Load()
	if ok {
		n = ts.n.Add(-1)
	}
	created = ts.created
	ts.mu.Unlock()
	if !ok {
		return false, created
	}
	v.(*Task).Release()
	return n == 0, created
}

// Range calls f for each thread with a Task, until f returns false.
func (ts *Tasks[K]) Range(f func(k K, t *Task) bool) {
	ts.m.Range(func(k, t any) bool { return f(k.(K), t.(*Task)) })
}

// Len returns the number of threads with a Task.
func (ts *Tasks[K]) Len() int {
	return int(ts.n.Load())
}
