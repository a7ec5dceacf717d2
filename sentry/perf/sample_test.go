// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// plainAlloc allocates a ring's pages in Go memory.
func plainAlloc(nrData int) ([]byte, [][]byte, any, error) {
	pages := make([][]byte, nrData)
	for i := range pages {
		pages[i] = make([]byte, PageSize)
	}
	return make([]byte, PageSize), pages, nil, nil
}

// samples returns the records in r from data_tail to data_head.
func samples(r *Ring) [][]byte {
	var recs [][]byte
	b := r.readData(r.word64(upDataTail).Load())
	for len(b) >= 8 {
		size := binary.LittleEndian.Uint16(b[6:])
		recs = append(recs, b[:size])
		b = b[size:]
	}
	return recs
}

func TestSampleRecords(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sampleType uint64
		period     uint64
		hits       int
		// frames gives the events fixedSampler, whose stack has three
		// frames; edit changes the attribute further.
		frames bool
		edit   func(p []byte)
		// want are the u64s after each record's header.
		want [][]uint64
	}{
		{
			name:       "an overflow every sample_period hits, with the fields in perf_output_sample's order",
			sampleType: SampleIdentifier | SampleAddr | SampleID | SampleStreamID,
			period:     3, hits: 7,
			want: [][]uint64{{1, testAddr, 1, 1}, {1, testAddr, 1, 1}},
		},
		{
			name:       "PERF_SAMPLE_PERIOD makes every hit an overflow of period 1",
			sampleType: SamplePeriod,
			period:     3, hits: 2,
			want: [][]uint64{{1}, {1}},
		},
		{
			name:       "fields without a source take Linux's values for none",
			sampleType: SampleRaw | SampleWeight | SampleDataSrc | SampleTransaction | SampleDataPage,
			period:     1, hits: 1,
			want: [][]uint64{{4, 0, memNA, 0, PageSize}},
		},
		{
			name:       "a call chain walks the frame pointers until a frame cannot be read",
			sampleType: SampleCallchain,
			period:     1, hits: 1, frames: true,
			want: [][]uint64{{5, contextUser, 0, 0x401001, 0x401002, 0x401003}},
		},
		{
			name:       "sample_max_stack bounds the call chain's entries, ip included",
			sampleType: SampleCallchain,
			period:     1, hits: 1, frames: true,
			edit: func(p []byte) { binary.LittleEndian.PutUint16(p[offMaxStack:], 2) },
			want: [][]uint64{{3, contextUser, 0, 0x401001}},
		},
		{
			name:       "exclude_callchain_user leaves the call chain empty",
			sampleType: SampleCallchain,
			period:     1, hits: 1, frames: true,
			edit: func(p []byte) { p[offFlags+2] |= 1 << 6 },
			want: [][]uint64{{0}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			if tc.frames {
				f.events.SetSampler(fixedSampler{})
			}
			ev := f.open(t, 1, func(p []byte) {
				set64(p, offSamplePeriod, tc.period)
				set64(p, offSampleType, tc.sampleType)
				if tc.edit != nil {
					tc.edit(p)
				}
			})
			defer ev.Close()
			r, _, err := ev.Map(2*PageSize, true, true, 1<<20, plainAlloc)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < tc.hits; i++ {
				f.hit(1)
			}
			recs := samples(r)
			if len(recs) != len(tc.want) {
				t.Fatalf("%d records, want %d", len(recs), len(tc.want))
			}
			for i, rec := range recs {
				if typ := binary.LittleEndian.Uint32(rec); typ != recordSample {
					t.Errorf("record %d has type %d", i, typ)
				}
				if got := u64s(rec[8:]); !equalU64s(got, tc.want[i]) {
					t.Errorf("record %d: %#x, want %#x", i, got, tc.want[i])
				}
			}
		})
	}
}

func equalU64s(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMap(t *testing.T) {
	f := newFixture()
	ev := f.open(t, 1, func(p []byte) { set64(p, offSamplePeriod, 1) })
	defer ev.Close()
	for _, tc := range []struct {
		name     string
		length   uint64
		private  bool
		memlock  uint64
		want     unix.Errno
		wantSame bool
	}{
		{"a private mapping is EINVAL", 3 * PageSize, true, 1 << 20, unix.EINVAL, false},
		{"data pages not a power of two are EINVAL", 4 * PageSize, false, 1 << 20, unix.EINVAL, false},
		{"pages beyond the locked memory limit are EPERM", (1 + 4096) * PageSize, false, 0, unix.EPERM, false},
		{"1 + 2^n pages map a ring", 3 * PageSize, false, 1 << 20, 0, false},
		{"a second mapping of the same size shares the ring", 3 * PageSize, false, 1 << 20, 0, true},
		{"a mapping of another size is EINVAL while the ring exists", 5 * PageSize, false, 1 << 20, unix.EINVAL, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ev.Ring()
			r, _, err := ev.Map(tc.length, !tc.private, true, tc.memlock, plainAlloc)
			checkErrno(t, err, tc.want)
			if tc.wantSame && r != before {
				t.Errorf("a second mapping made a new ring")
			}
			if err == nil {
				ev.Mapped(r, tc.length)
			}
		})
	}
	r := ev.Ring()
	released := 0
	ev.Unmapped(r, 3*PageSize, func() { released++ })
	if ev.Ring() == nil || released != 0 {
		t.Errorf("unmapping one of two mappings released the ring")
	}
	ev.Unmapped(r, 3*PageSize, func() { released++ })
	if ev.Ring() != nil || released != 1 {
		t.Errorf("unmapping the last mapping left the ring (released %d times)", released)
	}
	inh := f.open(t, 1, func(p []byte) {
		setFlags(p, FlagInherit)
		set64(p, offSamplePeriod, 1)
		set64(p, offBPAddr, testAddr+8)
	})
	defer inh.Close()
	if _, _, err := inh.Map(3*PageSize, true, true, 1<<20, plainAlloc); !errors.Is(err, unix.EINVAL) {
		t.Errorf("mmap of an inherited event without a CPU: %v, want EINVAL", err)
	}
}

// TestPeriodChange checks when samples fall around PERF_EVENT_IOC_PERIOD,
// with the counts (PERF_SAMPLE_READ) that Linux gives for one write, the
// ioctl, and eight more writes: measured on 6.1 and 6.18, once with the
// thread staying on its CPU from the ioctl to the writes and once with a
// sleep between them, which re-arms the period (hw_breakpoint_add).
func TestPeriodChange(t *testing.T) {
	for _, tc := range []struct {
		name       string
		p0, p1     uint64
		sampleType uint64
		sleep      bool
		want       []uint64
	}{
		{"from 1 to 2 the first hit after it overflows twice", 1, 2, 0, false, []uint64{1, 2, 2, 3, 5, 7, 9}},
		{"from 3 to 2 the first hit after it overflows", 3, 2, 0, false, []uint64{2, 4, 6, 8}},
		{"from 2 to 3 the old period counts once more", 2, 3, 0, false, []uint64{2, 3, 6, 9}},
		{"to 1 every hit overflows", 3, 1, 0, false, []uint64{2, 3, 4, 5, 6, 7, 8, 9}},
		{"PERF_SAMPLE_PERIOD overflows at every hit", 1, 2, SamplePeriod, false, []uint64{1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 1, 6, 1, 7, 1, 8, 1, 9}},
		{"from 1 to 2 and a sleep: the new period starts", 1, 2, 0, true, []uint64{1, 3, 5, 7, 9}},
		{"from 3 to 2 and a sleep: the new period starts", 3, 2, 0, true, []uint64{3, 5, 7, 9}},
		{"from 2 to 3 and a sleep: the new period starts", 2, 3, 0, true, []uint64{4, 7}},
		{"to 1 and a sleep: every hit overflows", 3, 1, 0, true, []uint64{2, 3, 4, 5, 6, 7, 8, 9}},
		{"PERF_SAMPLE_PERIOD and a sleep: every hit overflows", 1, 2, SamplePeriod, true, []uint64{1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 1, 6, 1, 7, 1, 8, 1, 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			ev := f.open(t, 1, func(p []byte) {
				set64(p, offSamplePeriod, tc.p0)
				set64(p, offSampleType, tc.sampleType|SampleRead)
			})
			defer ev.Close()
			r, _, err := ev.Map(2*PageSize, true, true, 1<<20, plainAlloc)
			if err != nil {
				t.Fatal(err)
			}
			f.hit(1)
			checkErrno(t, ev.SetPeriod(tc.p1), 0)
			if tc.sleep {
				f.events.SchedOut(1, f.clock)
				f.events.SchedIn(1, 0, f.clock)
			}
			for i := 0; i < 8; i++ {
				f.hit(1)
			}
			var got []uint64
			for _, rec := range samples(r) {
				got = append(got, u64s(rec[8:])...)
			}
			if !equalU64s(got, tc.want) {
				t.Errorf("samples %v, want %v", got, tc.want)
			}
		})
	}
}
