// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package ptrace

import (
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// Threads is the ptrace consumer of the breakpoints of a sandbox's threads,
// identified by K as in hwbp.Tasks: a thread's DebugRegs is the extension
// of its hwbp.Task, created when a tracer first writes one of its debug
// registers.
type Threads[K comparable] struct {
	tasks *hwbp.Tasks[K]
}

// NewThreads returns the ptrace view of tasks.
func NewThreads[K comparable](tasks *hwbp.Tasks[K]) *Threads[K] {
	return &Threads[K]{tasks: tasks}
}

// Tasks returns the core's map of threads.
func (ts *Threads[K]) Tasks() *hwbp.Tasks[K] { return ts.tasks }

// lookup returns k's Task and DebugRegs, either of them nil if k has none.
func (ts *Threads[K]) lookup(k K) (*hwbp.Task, *DebugRegs) {
	t := ts.tasks.Lookup(k)
	if t == nil {
		return nil, nil
	}
	d, _ := t.Extension(extensionKey).(*DebugRegs)
	return t, d
}

// get returns k's Task and DebugRegs, creating them if needed. It fails
// with ESRCH if k has begun to exit.
func (ts *Threads[K]) get(k K) (*hwbp.Task, *DebugRegs, error) {
	t, err := ts.tasks.Get(k)
	if err != nil {
		return nil, nil, err
	}
	d, _ := t.Attach(extensionKey, func() hwbp.Extension { return &DebugRegs{} }).(*DebugRegs)
	if d == nil {
		// t was released by k's exit after Get found it.
		return nil, nil, errExited
	}
	return t, d, nil
}
