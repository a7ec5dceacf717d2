// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"testing"

	"gvisor.dev/gvisor/pkg/hostarch"

	"github.com/gvisor-hwbp/hwbp/sentry/perf"
)

func TestClip(t *testing.T) {
	const pg = 0x1000
	ar := hostarch.AddrRange{Start: 0x10000, End: 0x12000}
	for _, tc := range []struct {
		name     string
		in, want perf.Mapping
	}{{
		name: "inside",
		in:   perf.Mapping{Start: 0x10000, Len: 2 * pg, PgOff: 0x3000, Ino: 7},
		want: perf.Mapping{Start: 0x10000, Len: 2 * pg, PgOff: 0x3000, Ino: 7},
	}, {
		name: "file mapping merged on both sides",
		in:   perf.Mapping{Start: 0xe000, Len: 6 * pg, PgOff: 0x1000, Ino: 7},
		want: perf.Mapping{Start: 0x10000, Len: 2 * pg, PgOff: 0x3000, Ino: 7},
	}, {
		name: "anonymous mapping: offset is the start",
		in:   perf.Mapping{Start: 0xe000, Len: 4 * pg, PgOff: 0xe000},
		want: perf.Mapping{Start: 0x10000, Len: 2 * pg, PgOff: 0x10000},
	}, {
		name: "anonymous mapping moved by mremap keeps its offset's distance",
		in:   perf.Mapping{Start: 0xe000, Len: 4 * pg, PgOff: 0x5000},
		want: perf.Mapping{Start: 0x10000, Len: 2 * pg, PgOff: 0x7000},
	}, {
		name: "cut at the end only",
		in:   perf.Mapping{Start: 0x11000, Len: 4 * pg, PgOff: 0, Ino: 3},
		want: perf.Mapping{Start: 0x11000, Len: pg, PgOff: 0, Ino: 3},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.in
			clip(&m, ar)
			if m != tc.want {
				t.Errorf("clip(%+v, %v) = %+v, want %+v", tc.in, ar, m, tc.want)
			}
		})
	}
}

func TestOverlapsAny(t *testing.T) {
	m := perf.Mapping{Start: 0x10000, Len: 0x2000}
	for _, tc := range []struct {
		rs   []hostarch.AddrRange
		want bool
	}{
		{nil, false},
		{[]hostarch.AddrRange{{Start: 0xf000, End: 0x10000}}, false},
		{[]hostarch.AddrRange{{Start: 0x12000, End: 0x13000}}, false},
		{[]hostarch.AddrRange{{Start: 0xf000, End: 0x10000}, {Start: 0x11000, End: 0x11001}}, true},
		{[]hostarch.AddrRange{{Start: 0xf000, End: 0x10001}}, true},
	} {
		if got := overlapsAny(&m, tc.rs); got != tc.want {
			t.Errorf("overlapsAny(%+v, %v) = %v, want %v", m, tc.rs, got, tc.want)
		}
	}
}
