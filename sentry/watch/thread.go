// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package watch

import (
	"slices"
	"sync"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// threadKey names the watch consumer's extension of a thread's hwbp.Task.
var threadKey = hwbp.NewExtensionKey("watch")

// thread is the watches of one thread: the extension of its hwbp.Task,
// through which the threads and children it creates are watched too
// (perf's inherit: perf_event_init_task registers a child's copy of each
// inherited event).
type thread[K comparable] struct {
	mu sync.Mutex
	// k is the thread.
	//
	// +checklocks:mu
	k K
	// +checklocks:mu
	keyed bool
	// +checklocks:mu
	watches []*Watch[K]
}

func (th *thread[K]) setKey(k K) {
	th.mu.Lock()
	defer th.mu.Unlock()
	th.k, th.keyed = k, true
}

func (th *thread[K]) add(w *Watch[K]) {
	th.mu.Lock()
	defer th.mu.Unlock()
	if !slices.Contains(th.watches, w) {
		th.watches = append(th.watches, w)
	}
}

func (th *thread[K]) remove(w *Watch[K]) {
	th.mu.Lock()
	defer th.mu.Unlock()
	th.watches = slices.DeleteFunc(th.watches, func(x *Watch[K]) bool { return x == w })
}

func (th *thread[K]) len() int {
	th.mu.Lock()
	defer th.mu.Unlock()
	return len(th.watches)
}

// Clone implements hwbp.Extension.Clone: the new thread is to be watched
// by the same watches (Inherited registers their events).
func (th *thread[K]) Clone() hwbp.Extension {
	th.mu.Lock()
	defer th.mu.Unlock()
	if len(th.watches) == 0 {
		return nil
	}
	return &thread[K]{watches: slices.Clone(th.watches)}
}

// Inherited implements hwbp.Inheritor.Inherited: each watch of the
// creator registers its event in the new thread, whatever the clone's
// flags (a thread or a process). A child without a free slot for it is
// not watched, and its watch counts it as missed.
func (th *thread[K]) Inherited(_, child K, _ uint64, t *hwbp.Task) {
	th.mu.Lock()
	th.k, th.keyed = child, true
	watches := th.watches
	th.watches = nil
	th.mu.Unlock()
	for _, w := range watches {
		if err := w.follow(child, t); err != nil {
			w.mu.Lock()
			w.missed++
			w.mu.Unlock()
		}
	}
}

// Exec implements hwbp.Extension.Exec: execve drops the thread's watches,
// whose address belonged to the old image.
func (th *thread[K]) Exec() {
	th.mu.Lock()
	k, keyed := th.k, th.keyed
	watches := th.watches
	th.watches = nil
	th.mu.Unlock()
	if !keyed {
		return
	}
	for _, w := range watches {
		w.drop(k)
	}
}
