// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fixedSampler gives every thread pid 100, tid 100+k, CPU 1, time 7.
type fixedSampler struct{}

func (fixedSampler) IDs(k thread) (uint32, uint32) { return 100, 100 + uint32(k) }
func (fixedSampler) CPU(thread) uint32             { return 1 }
func (fixedSampler) Time(thread) uint64            { return 7 }
func (fixedSampler) Parent(thread) uint32          { return 99 }

// Frames gives a stack of three frames at 0x1000, 0x1010 and 0x1020 whose
// return addresses are 0x401001 to 0x401003; the third frame's next
// pointer is 0, which cannot be read.
func (fixedSampler) Frames(thread) (uint64, Reader) {
	stack := map[uint64][2]uint64{0x1000: {0x1010, 0x401001}, 0x1010: {0x1020, 0x401002}, 0x1020: {0, 0x401003}}
	return 0x1000, func(addr uint64, dst []byte) error {
		f, ok := stack[addr]
		if !ok || len(dst) != 16 {
			return unix.EFAULT
		}
		binary.LittleEndian.PutUint64(dst, f[0])
		binary.LittleEndian.PutUint64(dst[8:], f[1])
		return nil
	}
}

// le builds a little-endian record from u32s (uint32) and u64s (uint64) and
// byte strings.
func le(fields ...any) []byte {
	var b []byte
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			b = binary.LittleEndian.AppendUint32(b, v)
		case uint64:
			b = binary.LittleEndian.AppendUint64(b, v)
		case string:
			b = append(b, v...)
		}
	}
	return b
}

// header is a record header.
func header(typ uint32, misc uint16, size int) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b, typ)
	binary.LittleEndian.PutUint16(b[4:], misc)
	binary.LittleEndian.PutUint16(b[6:], uint16(size))
	return b
}

var (
	loopText = Mapping{Start: 0x401000, Len: 0x1000, PgOff: 0x1000, Major: 0xfe, Minor: 0, Ino: 10757172, Prot: unix.PROT_READ | unix.PROT_EXEC, Flags: unix.MAP_PRIVATE, Name: "/tmp/ring/loop"}
	heap     = Mapping{Start: 0x402000, Len: 0x21000, PgOff: 0x402000, Prot: unix.PROT_READ | unix.PROT_WRITE, Flags: unix.MAP_PRIVATE, Name: "[heap]"}
)

func TestSideBandRecords(t *testing.T) {
	for _, tc := range []struct {
		name       string
		flags      uint64
		sampleType uint64
		emit       func(es *Events[thread])
		want       [][]byte
	}{
		{
			name:  "COMM of an exec: pid, tid, the name padded to 8 bytes, PERF_RECORD_MISC_COMM_EXEC",
			flags: FlagComm,
			emit:  func(es *Events[thread]) { es.Comm(1, "loop", true) },
			want:  [][]byte{append(header(recordComm, miscCommExec, 24), le(uint32(100), uint32(101), "loop\x00\x00\x00\x00")...)},
		},
		{
			name:  "a name of 8 bytes takes 8 more for its NUL",
			flags: FlagComm,
			emit:  func(es *Events[thread]) { es.Comm(1, "12345678", false) },
			want:  [][]byte{append(header(recordComm, 0, 32), le(uint32(100), uint32(101), "12345678", uint64(0))...)},
		},
		{
			name:  "a COMM holds at most TASK_COMM_LEN-1 bytes of the name",
			flags: FlagComm,
			emit:  func(es *Events[thread]) { es.Comm(1, "0123456789abcdefgh", false) },
			want:  [][]byte{append(header(recordComm, 0, 32), le(uint32(100), uint32(101), "0123456789abcde\x00")...)},
		},
		{
			name:       "sample_id_all appends the sample_id trailer in perf_event__output_id_sample's order",
			flags:      FlagComm | flagSampleIDAll,
			sampleType: SampleTID | SampleTime | SampleID | SampleStreamID | SampleCPU | SampleIdentifier | SampleIP | SampleAddr,
			emit:       func(es *Events[thread]) { es.Comm(1, "loop", true) },
			want: [][]byte{append(header(recordComm, miscCommExec, 72), le(uint32(100), uint32(101), "loop\x00\x00\x00\x00",
				uint32(100), uint32(101), uint64(7), uint64(1), uint64(1), uint32(1), uint32(0), uint64(1))...)},
		},
		{
			name:  "without attr.comm no COMM",
			flags: FlagMmap,
			emit:  func(es *Events[thread]) { es.Comm(1, "loop", true) },
		},
		{
			name:       "MMAP2 of an executable mapping: inode fields, prot and flags, misc user",
			flags:      FlagMmap | FlagMmap2 | flagSampleIDAll,
			sampleType: SampleTID,
			emit:       func(es *Events[thread]) { es.Mmap(1, &loopText) },
			// 0x60 bytes, as the host's record of this mapping.
			want: [][]byte{append(header(recordMmap2, miscUser, 0x60), le(uint32(100), uint32(101), uint64(0x401000), uint64(0x1000), uint64(0x1000),
				uint32(0xfe), uint32(0), uint64(10757172), uint64(0), uint32(5), uint32(unix.MAP_PRIVATE), "/tmp/ring/loop\x00\x00", uint32(100), uint32(101))...)},
		},
		{
			name:  "MMAP without mmap2: no inode fields",
			flags: FlagMmap,
			emit:  func(es *Events[thread]) { es.Mmap(1, &loopText) },
			want: [][]byte{append(header(recordMmap, miscUser, 56), le(uint32(100), uint32(101), uint64(0x401000), uint64(0x1000), uint64(0x1000),
				"/tmp/ring/loop\x00\x00")...)},
		},
		{
			name:  "a data mapping needs mmap_data",
			flags: FlagMmap | FlagMmap2,
			emit:  func(es *Events[thread]) { es.Mmap(1, &heap) },
		},
		{
			name:  "mmap_data gives data mappings, with PERF_RECORD_MISC_MMAP_DATA",
			flags: FlagMmapData,
			emit:  func(es *Events[thread]) { es.Mmap(1, &heap); es.Mmap(1, &loopText) },
			want: [][]byte{append(header(recordMmap, miscUser|miscMmapData, 48), le(uint32(100), uint32(101), uint64(0x402000), uint64(0x21000), uint64(0x402000),
				"[heap]\x00\x00")...)},
		},
		{
			name:  "FORK goes to the creator's events: the child's pid and tid, the creator's, the time",
			flags: FlagMmap,
			emit:  func(es *Events[thread]) { es.Fork(1, 2) },
			want:  [][]byte{append(header(recordFork, 0, 32), le(uint32(100), uint32(100), uint32(102), uint32(101), uint64(7))...)},
		},
		{
			name:       "EXIT: ppid and ptid are the parent's process id, with the sample_id trailer",
			flags:      FlagTask | flagSampleIDAll,
			sampleType: SampleTID,
			emit:       func(es *Events[thread]) { es.Exit(1) },
			want:       [][]byte{append(header(recordExit, 0, 40), le(uint32(100), uint32(99), uint32(101), uint32(99), uint64(7), uint32(100), uint32(101))...)},
		},
		{
			name:  "another thread's records go nowhere",
			flags: FlagComm | FlagMmap,
			emit:  func(es *Events[thread]) { es.Comm(2, "loop", true); es.Mmap(2, &loopText); es.Fork(2, 1); es.Exit(2) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.events.SetSampler(fixedSampler{})
			ev := f.open(t, 1, func(p []byte) {
				setFlags(p, tc.flags)
				set64(p, offSamplePeriod, 1)
				set64(p, offSampleType, tc.sampleType)
			})
			defer ev.Close()
			r, _, err := ev.Map(2*PageSize, true, true, 1<<20, plainAlloc)
			if err != nil {
				t.Fatal(err)
			}
			tc.emit(f.events)
			got := samples(r)
			if len(got) != len(tc.want) {
				t.Fatalf("%d records, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Errorf("record %d:\n%x\nwant\n%x", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestSideBandState(t *testing.T) {
	f := newFixture()
	f.events.SetSampler(fixedSampler{})
	if f.events.SideBand() {
		t.Fatalf("SideBand with no event open")
	}
	ev := f.open(t, 1, func(p []byte) {
		setFlags(p, FlagComm|FlagMmap|FlagDisabled|FlagEnableOnExec)
		set64(p, offSamplePeriod, 1)
	})
	plain := f.open(t, 1, func(p []byte) { set64(p, offBPAddr, testAddr+8) })
	if !f.events.SideBand() {
		t.Errorf("no SideBand with an event that asks for comm")
	}
	r, _, err := ev.Map(2*PageSize, true, true, 1<<20, plainAlloc)
	if err != nil {
		t.Fatal(err)
	}
	f.events.Comm(1, "before", true)
	if n := len(samples(r)); n != 0 {
		t.Errorf("a disabled event got %d records", n)
	}
	// perf_event_exec enables the enable_on_exec event, which then gets
	// the exec's COMM.
	f.tasks.Exec(1)
	f.events.Comm(1, "after", true)
	if n := len(samples(r)); n != 1 {
		t.Errorf("an event enabled by its exec got %d records, want 1", n)
	}
	// Records that do not fit are lost, and reported before the next
	// one that does.
	long := Mapping{Start: 0x1000, Len: 0x1000, Prot: unix.PROT_EXEC, Name: "/" + strings.Repeat("x", 3000)}
	f.events.Mmap(1, &long)
	f.events.Mmap(1, &long)
	if lost := ev.lostSamples.Load(); lost != 1 {
		t.Errorf("%d records lost, want 1", lost)
	}
	plain.Close()
	ev.Close()
	if f.events.SideBand() {
		t.Errorf("SideBand after the event closed")
	}
}
