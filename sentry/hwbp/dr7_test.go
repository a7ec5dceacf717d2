// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestAttrFields(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rw, ln  uint8
		typ     Type
		length  uint64
		wantErr unix.Errno
	}{
		{"execute with len 0", RWExecute, Len1, TypeX, 8, 0},
		{"execute with len 2 rejected", RWExecute, Len2, 0, 0, unix.EINVAL},
		{"execute with len 8 rejected", RWExecute, Len8, 0, 0, unix.EINVAL},
		{"execute with len 4 rejected", RWExecute, Len4, 0, 0, unix.EINVAL},
		{"write 1", RWWrite, Len1, TypeW, 1, 0},
		{"write 2", RWWrite, Len2, TypeW, 2, 0},
		{"write 4 is encoded 3", RWWrite, Len4, TypeW, 4, 0},
		{"write 8 is encoded 2", RWWrite, Len8, TypeW, 8, 0},
		{"access 1", RWAccess, Len1, TypeRW, 1, 0},
		{"access 8", RWAccess, Len8, TypeRW, 8, 0},
		{"io rejected", RWIO, Len1, 0, 0, unix.EINVAL},
		{"io len 8 rejected", RWIO, Len8, 0, 0, unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, length, err := AttrFields(tc.rw, tc.ln)
			if got := errnoOf(t, err); got != tc.wantErr {
				t.Fatalf("AttrFields(%d, %d) error %v, want %v", tc.rw, tc.ln, got, tc.wantErr)
			}
			if err != nil {
				return
			}
			if typ != tc.typ || length != tc.length {
				t.Fatalf("AttrFields(%d, %d) = %v, %d, want %v, %d", tc.rw, tc.ln, typ, length, tc.typ, tc.length)
			}
			rw, ln, ok := Attr{Type: typ, Len: length}.Fields()
			if !ok || rw != tc.rw || ln != tc.ln {
				t.Fatalf("Fields() = %d, %d, %v; want %d, %d", rw, ln, ok, tc.rw, tc.ln)
			}
		})
	}
}

func TestDR7Layout(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  DR7
		want DR7
	}{
		// Linux arch/x86/kernel/hw_breakpoint.c: dr7_masks.
		{"slot 0 mask", SlotMask(0), 0x000f0003},
		{"slot 1 mask", SlotMask(1), 0x00f0000c},
		{"slot 2 mask", SlotMask(2), 0x0f000030},
		{"slot 3 mask", SlotMask(3), 0xf00000c0},
		// gdb's "watch" on a 4-byte int in DR0: G0, RW=01, LEN=11.
		{"write 4 in slot 0", EncodeSlot(0, RWWrite, Len4), 0x000d0002},
		{"rw 8 in slot 3", EncodeSlot(3, RWAccess, Len8), 0xb0000080},
		{"execute in slot 2", EncodeSlot(2, RWExecute, Len1), 0x00000020},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %#x, want %#x", uint64(tc.got), uint64(tc.want))
			}
		})
	}
	d := DR7(0xb00d0081) // L0 | G3, slot 0 write len 4, slot 3 rw len 8
	for _, tc := range []struct {
		name            string
		slot            int
		enables, rw, ln uint8
	}{
		{"local enable slot 0", 0, 1, RWWrite, Len4},
		{"disabled slot 1", 1, 0, 0, 0},
		{"global enable slot 3", 3, 2, RWAccess, Len8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d.Enables(tc.slot) != tc.enables || d.Enabled(tc.slot) != (tc.enables != 0) || d.RW(tc.slot) != tc.rw || d.Len(tc.slot) != tc.ln {
				t.Errorf("slot %d: enables %d rw %d len %d, want %d %d %d", tc.slot, d.Enables(tc.slot), d.RW(tc.slot), d.Len(tc.slot), tc.enables, tc.rw, tc.ln)
			}
		})
	}
}

func TestDR6(t *testing.T) {
	d := DR6Reset | DR6Trap0<<1 | DR6Trap0<<3 | DR6BS
	if d.Hits() != 0xa || d.Hit(0) || !d.Hit(1) || d.Hit(2) || !d.Hit(3) {
		t.Errorf("DR6 %#x: hits %#x", uint64(d), d.Hits())
	}
	if DR6Reset.Hits() != 0 {
		t.Errorf("DR6Reset has B bits")
	}
}
