// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"cmp"
	"slices"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// This file: which host debug register position carries which breakpoint
// of a stub process (pure logic, no host calls).

// placement is which entry each of a space's host debug register positions
// holds.
type placement struct {
	// armed is the entry that the events at each position hold, valid
	// where used is set.
	armed [hwbp.Slots]entry
	used  [hwbp.Slots]bool

	// dropped is how many distinct breakpoints did not fit.
	dropped int

	// limit is the end of the application's address space: no entry is
	// at or above it (hwbp.Image.Below).
	limit uint64

	// all and running are want's buffers: the distinct entries of every
	// member and of the members that run now.
	all, running []entry
}

// want returns the distinct entries of sp's members by position (place),
// those of the members that run now first. It runs at every Switch of a
// task of a process with events, so it reuses sp's buffers rather than
// allocate.
//
// +checklocks:sp.mu
func (sp *space) want() (want [hwbp.Slots]entry, use [hwbp.Slots]bool, dropped int) {
	sp.placement.all = sp.entries(sp.placement.all[:0], false)
	running := sp.placement.all
	if len(sp.placement.all) > hwbp.Slots {
		sp.placement.running = sp.entries(sp.placement.running[:0], true)
		running = sp.placement.running
	}
	return place(sp.placement.armed, sp.placement.used, sp.placement.all, running)
}

// place returns the entries that the host's debug register positions must
// hold, given those that they hold now (entry armed[pos] where used[pos]),
// the distinct entries of every member (all), and those of the members that
// run now (running, a subset of all). An entry that is armed keeps its
// position, so that a hit reported after another task's change is still
// attributed; new entries take free positions, those of armed entries that
// still serve a member last. If all has more entries than
// the host has debug registers, running comes first (a task is armed before
// it runs, so the others need theirs only when they run again), and dropped
// counts the entries of running that do not fit. Entries armed already that
// still serve a member stay where a position is left, rather than be moved
// back when their member runs again.
func place(armed [hwbp.Slots]entry, used [hwbp.Slots]bool, all, running []entry) (want [hwbp.Slots]entry, use [hwbp.Slots]bool, dropped int) {
	need := all
	if len(all) > hwbp.Slots {
		need = running
	}
	for pos := range armed {
		if used[pos] && slices.Contains(need, armed[pos]) && !placed(want, use, armed[pos]) {
			want[pos], use[pos] = armed[pos], true
		}
	}
	// keep marks the positions whose armed entry still serves a member:
	// new entries take other free positions first.
	var keep [hwbp.Slots]bool
	for pos := range armed {
		keep[pos] = used[pos] && slices.Contains(all, armed[pos])
	}
	for _, e := range need {
		if placed(want, use, e) {
			continue
		}
		free := -1
		for pos := range use {
			if !use[pos] && (free < 0 || keep[free] && !keep[pos]) {
				free = pos
			}
		}
		if free < 0 {
			dropped++
			continue
		}
		want[free], use[free] = e, true
	}
	for pos := range armed {
		if !use[pos] && used[pos] && slices.Contains(all, armed[pos]) && !placed(want, use, armed[pos]) {
			want[pos], use[pos] = armed[pos], true
		}
	}
	return want, use, dropped
}

// entries appends to dst the distinct entries of the members, of those that
// run now only if running is set, sorted (appendDistinct).
//
// +checklocks:sp.mu
func (sp *space) entries(dst []entry, running bool) []entry {
	for _, m := range sp.members {
		if !running || m.running {
			dst = appendDistinct(dst, m.img, sp.placement.limit)
		}
	}
	sortEntries(dst)
	return dst
}

// distinct returns the distinct entries that the enabled slots of imgs
// hold, sorted, so that which entries are dropped, if any, does not depend
// on the order of imgs. Nothing at or above limit, the end of the
// application's address space, is included (hwbp.Image.Below).
func distinct(imgs []hwbp.Image, limit uint64) []entry {
	var entries []entry
	for _, img := range imgs {
		entries = appendDistinct(entries, img, limit)
	}
	sortEntries(entries)
	return entries
}

// appendDistinct appends to entries those of img's enabled slots below
// limit that it does not hold yet.
func appendDistinct(entries []entry, img hwbp.Image, limit uint64) []entry {
	img = img.Below(limit)
	for slot := 0; slot < hwbp.Slots; slot++ {
		if !img.DR7.Enabled(slot) {
			continue
		}
		if e := entryOf(&img, slot); !slices.Contains(entries, e) {
			entries = append(entries, e)
		}
	}
	return entries
}

// sortEntries sorts entries by address, type and length.
func sortEntries(entries []entry) {
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.key(), b.key()) })
}

// placed reports whether e is at a used position of want.
func placed(want [hwbp.Slots]entry, use [hwbp.Slots]bool, e entry) bool {
	for pos := range want {
		if use[pos] && want[pos] == e {
			return true
		}
	}
	return false
}
