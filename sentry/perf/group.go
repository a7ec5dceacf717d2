// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

// members returns the events an ioctl with PERF_IOC_FLAG_GROUP reaches:
// ev's whole group (perf_event_for_each), or ev alone.
func (ev *Event[K]) members(group bool) []*Event[K] {
	if !group {
		return []*Event[K]{ev}
	}
	es := ev.es
	es.groupMu.Lock()
	defer es.groupMu.Unlock()
	l := ev
	if leader, ok := es.leaders[ev]; ok {
		l = leader
	}
	return append([]*Event[K]{l}, es.siblings[l]...)
}

// groupLeader returns ev's group leader.
func (ev *Event[K]) groupLeader() *Event[K] {
	es := ev.es
	es.groupMu.Lock()
	defer es.groupMu.Unlock()
	if l, ok := es.leaders[ev]; ok {
		return l
	}
	return ev
}

// withChildren returns e and its live inherited copies: an ioctl reaches
// them all (perf_event_for_each_child).
func (ev *Event[K]) withChildren() []*Event[K] {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return append([]*Event[K]{ev}, ev.children...)
}

// leaveGroup is perf_group_detach: a member leaves its group; a leader's
// members become singletons.
func (ev *Event[K]) leaveGroup() {
	es := ev.es
	es.groupMu.Lock()
	defer es.groupMu.Unlock()
	if l, ok := es.leaders[ev]; ok {
		sib := es.siblings[l]
		for i, s := range sib {
			if s == ev {
				sib = append(sib[:i:i], sib[i+1:]...)
				break
			}
		}
		if len(sib) == 0 {
			delete(es.siblings, l)
		} else {
			es.siblings[l] = sib
		}
		delete(es.leaders, ev)
		return
	}
	for _, s := range es.siblings[ev] {
		delete(es.leaders, s)
	}
	delete(es.siblings, ev)
}
