// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// DR7 is the x86 debug control register (Intel SDM vol. 3, 18.2.4).
//
// For slot n, bits 2n and 2n+1 are the local and global enables (Ln, Gn) and
// bits 16+4n..19+4n hold the 2-bit R/W field and the 2-bit LEN field.
type DR7 uint64

// R/W field values of DR7.
const (
	RWExecute uint8 = 0 // instruction execution
	RWWrite   uint8 = 1 // data writes
	RWIO      uint8 = 2 // I/O reads and writes (needs CR4.DE; never for users)
	RWAccess  uint8 = 3 // data reads or writes
)

// LEN field values of DR7. The encoding is not monotonic: 2 means 8 bytes.
const (
	Len1 uint8 = 0
	Len2 uint8 = 1
	Len8 uint8 = 2
	Len4 uint8 = 3
)

// Other DR7 bits, with Linux's names (arch/x86/include/uapi/asm/debugreg.h).
const (
	DR7LocalSlowdown  DR7 = 1 << 8 // LE
	DR7GlobalSlowdown DR7 = 1 << 9 // GE
	DR7GeneralDetect  DR7 = 1 << 13
)

// enableMask returns the Ln|Gn bits of slot n.
func enableMask(slot int) DR7 { return 3 << (2 * uint(slot)) }

// controlShift returns the position of slot n's R/W field.
func controlShift(slot int) uint { return 16 + 4*uint(slot) }

// Enabled reports whether slot's local or global enable bit is set.
func (d DR7) Enabled(slot int) bool { return d&enableMask(slot) != 0 }

// Enables returns slot's two enable bits (bit 0 local, bit 1 global), as
// Linux's decode_dr7 (arch/x86/kernel/ptrace.c) does.
func (d DR7) Enables(slot int) uint8 { return uint8(d>>(2*uint(slot))) & 3 }

// RW returns slot's R/W field.
func (d DR7) RW(slot int) uint8 { return uint8(d>>controlShift(slot)) & 3 }

// Len returns slot's LEN field.
func (d DR7) Len(slot int) uint8 { return uint8(d>>(controlShift(slot)+2)) & 3 }

// SlotMask returns every DR7 bit that belongs to slot: its enables and its
// R/W and LEN fields (Linux's dr7_masks[slot]).
func SlotMask(slot int) DR7 { return enableMask(slot) | 0xf<<controlShift(slot) }

// EncodeSlot returns the DR7 bits that arm slot with the given fields: the
// global enable, as Linux's encode_dr7 sets, plus the R/W and LEN fields. It
// does not include GE, which the caller adds once for the whole register.
func EncodeSlot(slot int, rw, ln uint8) DR7 {
	return DR7(rw&3|(ln&3)<<2)<<controlShift(slot) | 2<<(2*uint(slot))
}

// Fields returns the DR7 R/W and LEN fields for a (validated) attribute, as
// Linux's arch_build_bp_info does. ok is false for attributes that have no
// DR7 encoding.
func (a Attr) Fields() (rw, ln uint8, ok bool) {
	switch a.Type {
	case TypeX:
		// Linux: X86_BREAKPOINT_LEN_X, which is LEN_1.
		return RWExecute, Len1, a.Len == 8
	case TypeW:
		rw = RWWrite
	case TypeRW:
		rw = RWAccess
	default:
		return 0, 0, false
	}
	switch a.Len {
	case 1:
		ln = Len1
	case 2:
		ln = Len2
	case 4:
		ln = Len4
	case 8:
		ln = Len8
	default:
		return 0, 0, false
	}
	return rw, ln, true
}

// AttrFields is the inverse of Fields: the perf type and length for DR7 R/W
// and LEN fields, with the rules and errno of Linux's arch_bp_generic_fields
// (arch/x86/kernel/hw_breakpoint.c): an execution breakpoint needs LEN=0
// (X86_BREAKPOINT_LEN_X) and becomes {X, sizeof(long)}; R/W=2 (I/O) is EINVAL.
func AttrFields(rw, ln uint8) (Type, uint64, error) {
	var t Type
	switch rw & 3 {
	case RWExecute:
		if ln&3 != Len1 {
			return 0, 0, fmt.Errorf("hwbp: execution breakpoint with DR7 LEN %d: %w", ln&3, unix.EINVAL)
		}
		return TypeX, 8, nil
	case RWWrite:
		t = TypeW
	case RWAccess:
		t = TypeRW
	default:
		return 0, 0, fmt.Errorf("hwbp: I/O breakpoints are not supported: %w", unix.EINVAL)
	}
	switch ln & 3 {
	case Len1:
		return t, 1, nil
	case Len2:
		return t, 2, nil
	case Len4:
		return t, 4, nil
	default:
		return t, 8, nil
	}
}

// DR6 is the x86 debug status register (Intel SDM vol. 3, 18.2.3).
type DR6 uint64

// DR6 bits, with Linux's names and values (arch/x86/include/uapi/asm/
// debugreg.h).
const (
	// DR6Reset is what DR6 reads as after a debug exception has been
	// cleared: Linux's DR6_RESERVED, all reserved bits set (active-low
	// bits included).
	DR6Reset DR6 = 0xffff0ff0
	// DR6Trap0 is B0; slot n's hit bit is DR6Trap0 << n.
	DR6Trap0 DR6 = 1 << 0
	// DR6TrapBits is B0-B3.
	DR6TrapBits DR6 = 0xf
	// DR6BD is set when a debug register access was detected (GD).
	DR6BD DR6 = 1 << 13
	// DR6BS is set by a single-step trap.
	DR6BS DR6 = 1 << 14
	// DR6BT is set by a task switch.
	DR6BT DR6 = 1 << 15
)

// Hit reports whether slot's B bit is set.
func (d DR6) Hit(slot int) bool { return d&(DR6Trap0<<uint(slot)) != 0 }

// Hits returns the B0-B3 bits as a slot bitmask.
func (d DR6) Hits() uint8 { return uint8(d & DR6TrapBits) }
