// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"testing"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// w returns a one-byte write watchpoint entry at addr.
func w(addr uint64) entry { return entry{addr: addr, rw: hwbp.RWWrite, ln: hwbp.Len1} }

// positions builds the armed state of the four host positions; a zero entry
// is an unused position.
func positions(es ...entry) (armed [hwbp.Slots]entry, used [hwbp.Slots]bool) {
	for i, e := range es {
		if e != (entry{}) {
			armed[i], used[i] = e, true
		}
	}
	return armed, used
}

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		name        string
		armed       []entry
		all         []entry
		running     []entry
		want        []entry
		wantDropped int
	}{
		{name: "new entries take the free positions in order",
			all: []entry{w(0x10), w(0x20)}, want: []entry{w(0x10), w(0x20)}},
		{name: "an armed entry keeps its position",
			armed: []entry{{}, {}, w(0x20)}, all: []entry{w(0x10), w(0x20)},
			want: []entry{w(0x10), {}, w(0x20)}},
		{name: "an entry nobody needs frees its position",
			armed: []entry{w(0x10), w(0x20)}, all: []entry{w(0x20)},
			want: []entry{{}, w(0x20)}},
		{name: "nothing needed leaves every position unused",
			armed: []entry{w(0x10), w(0x20)}, want: nil},
		{name: "with more entries than positions the running tasks' come first",
			armed: []entry{w(0x10), w(0x20), w(0x30), w(0x40)},
			all:   []entry{w(0x10), w(0x20), w(0x30), w(0x40), w(0x50)}, running: []entry{w(0x50)},
			want: []entry{w(0x50), w(0x20), w(0x30), w(0x40)}},
		{name: "running entries that do not fit are counted as dropped",
			all:     []entry{w(0x10), w(0x20), w(0x30), w(0x40), w(0x50), w(0x60)},
			running: []entry{w(0x10), w(0x20), w(0x30), w(0x40), w(0x50), w(0x60)},
			want:    []entry{w(0x10), w(0x20), w(0x30), w(0x40)}, wantDropped: 2},
		{name: "armed entries of tasks that do not run stay where positions are left",
			armed: []entry{w(0x60), {}, {}, {}},
			all:   []entry{w(0x10), w(0x20), w(0x60), w(0x70), w(0x80)}, running: []entry{w(0x10), w(0x20)},
			want: []entry{w(0x60), w(0x10), w(0x20)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			armed, used := positions(tc.armed...)
			gotE, gotU, dropped := place(armed, used, tc.all, tc.running)
			wantE, wantU := positions(tc.want...)
			if gotE != wantE || gotU != wantU || dropped != tc.wantDropped {
				t.Errorf("place = %v %v dropped %d, want %v %v dropped %d", gotE, gotU, dropped, wantE, wantU, tc.wantDropped)
			}
			// No entry may be placed twice: one hit would show as two.
			seen := map[entry]bool{}
			for pos := range gotE {
				if gotU[pos] && seen[gotE[pos]] {
					t.Errorf("entry %v placed twice", gotE[pos])
				}
				seen[gotE[pos]] = gotU[pos]
			}
		})
	}
}

func TestDistinct(t *testing.T) {
	const limit = 0x7f0000000000
	img := func(addrs ...uint64) hwbp.Image {
		var img hwbp.Image
		for slot, a := range addrs {
			img.Addr[slot] = a
			img.DR7 |= hwbp.EncodeSlot(slot, hwbp.RWWrite, hwbp.Len1) | hwbp.DR7GlobalSlowdown
		}
		return img
	}
	for _, tc := range []struct {
		name string
		imgs []hwbp.Image
		want []entry
	}{
		{"tasks watching the same byte share one entry", []hwbp.Image{img(0x20, 0x10), img(0x10)}, []entry{w(0x10), w(0x20)}},
		{"the order of tasks does not matter", []hwbp.Image{img(0x10), img(0x30, 0x20)}, []entry{w(0x10), w(0x20), w(0x30)}},
		{"addresses of the stub are left out", []hwbp.Image{img(limit, 0x10, limit-1)}, []entry{w(0x10), w(limit - 1)}},
		{"disabled slots are left out", []hwbp.Image{{Addr: [hwbp.Slots]uint64{0x10}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := distinct(tc.imgs, limit)
			if len(got) != len(tc.want) {
				t.Fatalf("distinct = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("distinct = %v, want %v", got, tc.want)
				}
			}
		})
	}
}
