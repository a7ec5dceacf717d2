// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// newTestRing returns a ring of n data pages in plain memory.
func newTestRing(n int, writable bool, watermark uint64) *Ring {
	user := make([]byte, PageSize)
	pages := make([][]byte, n)
	for i := range pages {
		pages[i] = make([]byte, PageSize)
	}
	return NewRing(user, pages, writable, watermark)
}

// rec returns a record of size bytes whose bytes after the header are b.
func rec(size int, b byte) record {
	body := bytes.Repeat([]byte{b}, size)
	putHeader(body, recordSample, miscUser)
	return record{
		body: body,
		lost: func(n uint64) []byte {
			l := make([]byte, 8, 24)
			l = binary.LittleEndian.AppendUint64(l, 77)
			l = binary.LittleEndian.AppendUint64(l, n)
			putHeader(l, recordLost, 0)
			return l
		},
	}
}

// read returns the ring's bytes from position from to data_head, as a
// reader of the mapping sees them.
func (r *Ring) readData(from uint64) []byte {
	head := r.word64(upDataHead).Load()
	var b []byte
	for p := from; p < head; p++ {
		off := p & (r.dataSize - 1)
		b = append(b, r.pages[off/PageSize][off%PageSize])
	}
	return b
}

func TestRingUserPage(t *testing.T) {
	r := newTestRing(2, true, 0)
	u := r.user
	for _, c := range []struct {
		name string
		off  int
		want uint64
	}{
		{"capabilities are cap_bit0_is_deprecated", upCapabilities, capBit0IsDeprecated},
		{"data_offset is one page", upDataOffset, PageSize},
		{"data_size is the data pages", upDataSize, 2 * PageSize},
		{"size is offsetof __reserved", upSize, upSizeValue},
	} {
		var got uint64
		if c.off == upSize {
			got = uint64(binary.LittleEndian.Uint32(u[c.off:]))
		} else {
			got = binary.LittleEndian.Uint64(u[c.off:])
		}
		if got != c.want {
			t.Errorf("%s: got %#x, want %#x", c.name, got, c.want)
		}
	}
	r.updateUserPage(5, 10, 10)
	if l := binary.LittleEndian.Uint32(u[upLock:]); l != 2 {
		t.Errorf("an update leaves lock at %d, want 2 (even: no update under way)", l)
	}
	if o := binary.LittleEndian.Uint64(u[upOffset:]); o != 5 {
		t.Errorf("offset %d, want the count 5", o)
	}
}

func TestRingOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		// records are the sizes of the records written in turn; a
		// negative one moves data_tail to data_head first.
		records []int
		// watermark is wakeup_watermark with the watermark flag, 0 for
		// none; wakeupEvents wakeup_events.
		watermark    uint64
		wakeupEvents uint32
		readonly     bool
		pages        int
		// wantLost is the number of records lost; wantHead data_head;
		// wantWakeups the records after which a wakeup was due.
		wantLost    int
		wantHead    uint64
		wantWakeups []int
	}{
		{
			name:    "the ring holds one byte less than its data pages",
			records: []int{1024, 1024, 1024, 1024},
			pages:   1, wantLost: 1, wantHead: 3072,
			wantWakeups: []int{2},
		},
		{
			name:    "a record that fits once the reader moved the tail wraps around",
			records: []int{1024, 1024, 1024, -1, 2048},
			pages:   1, wantHead: 3072 + 2048,
			wantWakeups: []int{2, 4},
		},
		{
			name:    "a lost record is reported before the next record that fits",
			records: []int{4000, 200, 200, -1, 64},
			pages:   1, wantLost: 2, wantHead: 4000 + 24 + 64,
			wantWakeups: []int{0},
		},
		{
			name:    "a read-only ring overwrites and loses nothing",
			records: []int{1024, 1024, 1024, 1024, 1024},
			pages:   1, readonly: true, wantHead: 5 * 1024,
			wantWakeups: []int{2, 4},
		},
		{
			name:    "the watermark wakes up each time head passes the last wakeup by more",
			records: []int{100, 100, 100, 100, 100},
			pages:   1, watermark: 150, wantHead: 500,
			wantWakeups: []int{1, 3, 4},
		},
		{
			name:    "a watermark past the data pages is the data pages",
			records: []int{4000, 100},
			pages:   1, watermark: 1 << 20, wantLost: 1, wantHead: 4000,
		},
		{
			name:    "wakeup_events wakes up every so many samples",
			records: []int{64, 64, 64, 64, 64},
			pages:   2, wakeupEvents: 2, wantHead: 320,
			wantWakeups: []int{1, 3},
		},
		{
			name:    "a ring without data pages takes nothing and loses nothing",
			records: []int{64},
			pages:   0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRing(tc.pages, !tc.readonly, tc.watermark)
			lost := 0
			var wakeups []int
			for i, size := range tc.records {
				if size < 0 {
					r.word64(upDataTail).Store(r.word64(upDataHead).Load())
					continue
				}
				rc := rec(size, byte(i))
				rc.wakeupEvents = tc.wakeupEvents
				res, wake := r.output(rc)
				if res == outputLost {
					lost++
				}
				if wake {
					wakeups = append(wakeups, i)
					if p := r.TakePoll(); p != pollIn {
						t.Errorf("record %d: poll reads %#x after a wakeup, want EPOLLIN", i, p)
					}
					if p := r.TakePoll(); p != 0 {
						t.Errorf("record %d: a second poll reads %#x, want 0", i, p)
					}
				}
			}
			if lost != tc.wantLost {
				t.Errorf("lost %d records, want %d", lost, tc.wantLost)
			}
			if h := r.word64(upDataHead).Load(); h != tc.wantHead {
				t.Errorf("data_head %d, want %d", h, tc.wantHead)
			}
			if !equalInts(wakeups, tc.wantWakeups) {
				t.Errorf("wakeups after records %v, want %v", wakeups, tc.wantWakeups)
			}
		})
	}
}

func equalInts(a, b []int) bool {
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

// TestRingRecords checks the bytes a reader finds: a record that wraps
// around is whole, and a PERF_RECORD_LOST with the count precedes the
// record after a loss.
func TestRingRecords(t *testing.T) {
	r := newTestRing(1, true, 0)
	r.output(rec(3000, 1))
	r.word64(upDataTail).Store(3000)
	r.output(rec(2000, 2)) // wraps around
	got := r.readData(3000)
	if len(got) != 2000 || binary.LittleEndian.Uint16(got[6:]) != 2000 || got[1999] != 2 || got[8] != 2 {
		t.Fatalf("wrapped record: %d bytes, size %d", len(got), binary.LittleEndian.Uint16(got[6:]))
	}
	if res, _ := r.output(rec(3000, 3)); res != outputLost {
		t.Fatalf("a record with no room was written")
	}
	r.word64(upDataTail).Store(5000)
	r.output(rec(64, 4))
	got = r.readData(5000)
	if typ := binary.LittleEndian.Uint32(got); typ != recordLost {
		t.Fatalf("first record after a loss has type %d, want PERF_RECORD_LOST", typ)
	}
	if n := binary.LittleEndian.Uint64(got[16:]); n != 1 {
		t.Errorf("PERF_RECORD_LOST counts %d, want 1", n)
	}
	if typ := binary.LittleEndian.Uint32(got[24:]); typ != recordSample || len(got) != 24+64 {
		t.Errorf("the record after PERF_RECORD_LOST: type %d, %d bytes", typ, len(got)-24)
	}
}

// TestRingBadTail checks that a data_tail the guest wrote anywhere makes
// records lost at worst, and never a write outside the data pages.
func TestRingBadTail(t *testing.T) {
	for _, tail := range []uint64{1, 4095, 1 << 63, ^uint64(0), 12345678} {
		r := newTestRing(1, true, 0)
		r.word64(upDataTail).Store(tail)
		for i := 0; i < 100; i++ {
			r.output(rec(72, 9))
		}
		if h := r.word64(upDataHead).Load(); h > 4095+tail && tail < 4096 {
			t.Errorf("tail %#x: head %d runs past the tail", tail, h)
		}
	}
}

func TestRingPaused(t *testing.T) {
	r := newTestRing(1, true, 0)
	r.setPaused(true)
	if res, _ := r.output(rec(64, 1)); res != outputLost {
		t.Errorf("a paused ring took a record")
	}
	r.setPaused(false)
	r.output(rec(64, 2))
	if got := r.readData(0); binary.LittleEndian.Uint32(got) != recordLost {
		t.Errorf("no PERF_RECORD_LOST for the record a paused ring lost")
	}
}
