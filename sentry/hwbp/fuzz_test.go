// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"testing"
)

// FuzzValidate checks that validation never panics, agrees with the
// reference table, and that everything it accepts has a DR7 encoding that
// decodes back to the same attribute.
func FuzzValidate(f *testing.F) {
	f.Add(uint64(0x601000), uint64(8), uint32(TypeW))
	f.Add(uint64(0x601001), uint64(8), uint32(TypeX))
	f.Add(uint64(0x7ffffffff000), uint64(1), uint32(TypeRW))
	f.Add(^uint64(0), uint64(16), uint32(typeInvalid))
	f.Fuzz(func(t *testing.T, addr, length uint64, typ uint32) {
		a := Attr{Addr: addr, Len: length, Type: Type(typ)}
		err := a.Validate()
		if got, want := errnoOf(t, err), refErrno(a); got != want {
			t.Fatalf("%v.Validate() = %v, want %v", a, got, want)
		}
		if err != nil {
			return
		}
		rw, ln, ok := a.Fields()
		if !ok {
			t.Fatalf("valid %v has no DR7 fields", a)
		}
		gotType, gotLen, err := AttrFields(rw, ln)
		if err != nil || gotType != a.Type || gotLen != a.Len {
			t.Fatalf("%v -> rw %d len %d -> %v %d %v", a, rw, ln, gotType, gotLen, err)
		}
	})
}

// FuzzDR7 checks that decoding any DR7 slot and encoding the result again
// gives back the same fields, and that decoding never panics.
func FuzzDR7(f *testing.F) {
	f.Add(uint64(0x000d0002), uint8(0))
	f.Add(uint64(0xb0000080), uint8(3))
	f.Add(uint64(0xffffffffffffffff), uint8(2))
	f.Add(uint64(0x00020001), uint8(0)) // I/O
	f.Fuzz(func(t *testing.T, v uint64, slot uint8) {
		s := int(slot % Slots)
		d := DR7(v)
		typ, length, err := AttrFields(d.RW(s), d.Len(s))
		if err != nil {
			if d.RW(s) != RWIO && !(d.RW(s) == RWExecute && d.Len(s) != Len1) {
				t.Fatalf("fields rw %d len %d rejected: %v", d.RW(s), d.Len(s), err)
			}
			return
		}
		rw, ln, ok := Attr{Type: typ, Len: length}.Fields()
		if !ok || rw != d.RW(s) || ln != d.Len(s) {
			t.Fatalf("rw %d len %d -> %v %d -> %d %d %v", d.RW(s), d.Len(s), typ, length, rw, ln, ok)
		}
		enc := EncodeSlot(s, rw, ln)
		if enc&^SlotMask(s) != 0 || enc.RW(s) != rw || enc.Len(s) != ln || enc.Enables(s) != 2 {
			t.Fatalf("EncodeSlot(%d, %d, %d) = %#x", s, rw, ln, uint64(enc))
		}
	})
}
