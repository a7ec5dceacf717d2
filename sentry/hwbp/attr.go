// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Type is a breakpoint type as in perf's bp_type (include/uapi/linux/
// hw_breakpoint.h: HW_BREAKPOINT_R, _W, _X and their combinations).
type Type uint32

// Breakpoint types, with Linux's values.
const (
	TypeEmpty Type = 0
	TypeR     Type = 1
	TypeW     Type = 2
	TypeRW    Type = TypeR | TypeW
	TypeX     Type = 4
	// typeInvalid is HW_BREAKPOINT_INVALID: RW|X, rejected by
	// __reserve_bp_slot before anything else.
	typeInvalid Type = TypeRW | TypeX
)

// String implements fmt.Stringer.
func (t Type) String() string {
	switch t {
	case TypeEmpty:
		return "empty"
	case TypeR:
		return "r"
	case TypeW:
		return "w"
	case TypeRW:
		return "rw"
	case TypeX:
		return "x"
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Slots is the number of x86 debug address registers (DR0-DR3), Linux's
// HBP_NUM.
const Slots = 4

// TaskSizeMax is the end of the user address space that a breakpoint may
// cover: Linux's TASK_SIZE_MAX on x86_64 with 4-level paging,
// (1<<47) - PAGE_SIZE (arch/x86/include/asm/page_64.h). gVisor's address
// spaces are 47-bit too, so nothing a guest owns lies above it.
const TaskSizeMax = 1<<47 - 4096

// Attr is the subset of perf_event_attr that describes a breakpoint.
type Attr struct {
	// Addr is bp_addr, the first byte watched.
	Addr uint64
	// Len is bp_len in bytes: 1, 2, 4 or 8 for data breakpoints, 8
	// (sizeof(long)) for execution breakpoints.
	Len uint64
	// Type is bp_type.
	Type Type
	// Disabled is perf's disabled bit: the event exists and holds its
	// slot, but is not armed.
	Disabled bool
}

// String implements fmt.Stringer.
func (a Attr) String() string {
	state := "enabled"
	if a.Disabled {
		state = "disabled"
	}
	return fmt.Sprintf("{%s %#x len %d %s}", a.Type, a.Addr, a.Len, state)
}

// checkType is the "basic check" of Linux's __reserve_bp_slot
// (kernel/events/hw_breakpoint.c), which runs before the slot count and
// before any other validation: HW_BREAKPOINT_EMPTY and HW_BREAKPOINT_INVALID
// are EINVAL.
func (a Attr) checkType() error {
	if a.Type == TypeEmpty || a.Type == typeInvalid {
		return fmt.Errorf("hwbp: breakpoint type %v: %w", a.Type, unix.EINVAL)
	}
	return nil
}

// ErrKernelSpace marks Validate's error for a breakpoint whose range reaches
// TASK_SIZE_MAX (arch_check_bp_in_kernelspace). It is EINVAL for a
// breakpoint that excludes the kernel, as every one of the core does; a
// consumer whose attribute may include the kernel answers otherwise.
var ErrKernelSpace = errors.New("outside the user address space")

// ErrLength and ErrMisaligned mark Validate's errors for a length that x86's
// debug registers cannot watch and for an address that is not a multiple of
// the length, so that a consumer can word them for its own users (runsc
// watch) without checking the same rules again.
var (
	ErrLength     = errors.New("x86 debug registers watch 1, 2, 4 or 8 bytes")
	ErrMisaligned = errors.New("not aligned to the length")
)

// Validate reports whether a is a breakpoint that x86_64 Linux accepts for a
// user task (perf's exclude_kernel), with Linux's errno:
//
//   - arch_build_bp_info (arch/x86/kernel/hw_breakpoint.c): only W, RW and X
//     exist on x86 (a read-only watchpoint is EINVAL); X needs
//     bp_len == sizeof(long); data lengths are 1, 2, 4 or 8. Any other length
//     is EINVAL unless it is a power of two and the address is aligned to it,
//     in which case it asks for an AMD range breakpoint (X86_FEATURE_BPEXT),
//     which the sentry does not offer: EOPNOTSUPP, as on a CPU without BPEXT.
//   - hw_breakpoint_arch_parse: the address is aligned to the length (an
//     execution breakpoint's DR7 length is LEN_1, so any address will do).
//   - hw_breakpoint_parse + arch_check_bp_in_kernelspace: the watched range,
//     [addr, addr+len-1] with len 1 for X, lies below TASK_SIZE_MAX; with
//     exclude_kernel, as every guest event is, anything else is EINVAL
//     (wrapping ErrKernelSpace).
//
// Validate does not include the type check that __reserve_bp_slot makes
// first; Register and Modify apply both in Linux's order.
func (a Attr) Validate() error {
	if err := a.checkType(); err != nil {
		return err
	}
	switch a.Type {
	case TypeW, TypeRW:
	case TypeX:
		if a.Len != 8 {
			return fmt.Errorf("hwbp: execution breakpoint length %d, want 8: %w", a.Len, unix.EINVAL)
		}
	default:
		return fmt.Errorf("hwbp: breakpoint type %v not supported on x86: %w", a.Type, unix.EINVAL)
	}
	span := a.Len // bytes covered by the debug register
	if a.Type == TypeX {
		span = 1
	} else {
		switch a.Len {
		case 1, 2, 4, 8:
		default:
			if a.Len == 0 || a.Len&(a.Len-1) != 0 || a.Addr&(a.Len-1) != 0 {
				return fmt.Errorf("hwbp: breakpoint length %d: %w: %w", a.Len, ErrLength, unix.EINVAL)
			}
			return fmt.Errorf("hwbp: range breakpoint of length %d needs AMD BPEXT: %w: %w", a.Len, ErrLength, unix.EOPNOTSUPP)
		}
	}
	if a.Addr&(span-1) != 0 {
		return fmt.Errorf("hwbp: address %#x %w %d: %w", a.Addr, ErrMisaligned, a.Len, unix.EINVAL)
	}
	if a.Addr >= TaskSizeMax || a.Addr+span-1 >= TaskSizeMax {
		return fmt.Errorf("hwbp: range %#x+%d: %w: %w", a.Addr, span, ErrKernelSpace, unix.EINVAL)
	}
	return nil
}
