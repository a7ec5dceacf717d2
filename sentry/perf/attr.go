// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Event types (perf_event_attr.type). Only TypeBreakpoint is this package's.
const TypeBreakpoint = unix.PERF_TYPE_BREAKPOINT

// Sizes of struct perf_event_attr (include/uapi/linux/perf_event.h).
const (
	// AttrSizeVer0 is PERF_ATTR_SIZE_VER0, the first published struct,
	// which a size of 0 stands for. It ends before bp_len.
	AttrSizeVer0 = unix.PERF_ATTR_SIZE_VER0
	// AttrSize is sizeof(struct perf_event_attr) of the kernel that is
	// the oracle (Linux 6.18, PERF_ATTR_SIZE_VER8: config3): the size
	// written back with E2BIG, and the bytes past which a larger struct
	// must be zero.
	AttrSize = unix.PERF_ATTR_SIZE_VER8
	// maxAttrSize is PAGE_SIZE, the largest size perf_copy_attr accepts.
	maxAttrSize = 4096
)

// Offsets of the fields of struct perf_event_attr.
const (
	offType         = 0
	offSize         = 4
	offConfig       = 8
	offSamplePeriod = 16
	offSampleType   = 24
	offReadFormat   = 32
	offFlags        = 40
	offWakeup       = 48
	offBPType       = 52
	offBPAddr       = 56
	offBPLen        = 64
	offBranchType   = 72
	offRegsUser     = 80
	offStackUser    = 88
	offClockID      = 92
	offRegsIntr     = 96
	offAuxWatermark = 104
	offMaxStack     = 108
	offReserved2    = 110
	offAuxSample    = 112
	offAuxAction    = 116
	offSigData      = 120
	offConfig3      = 128
)

// Flag bits of perf_event_attr's bit field word.
const (
	FlagDisabled      = 1 << 0
	FlagInherit       = 1 << 1
	FlagPinned        = 1 << 2
	FlagExclusive     = 1 << 3
	FlagExcludeUser   = 1 << 4
	FlagExcludeKernel = 1 << 5
	FlagExcludeHV     = 1 << 6
	FlagFreq          = 1 << 10
	FlagEnableOnExec  = 1 << 12
	// FlagExcludeCallchainUser is exclude_callchain_user.
	FlagExcludeCallchainUser = 1 << 22
	FlagNamespaces           = 1 << 28
	FlagUseClockID           = 1 << 25
	FlagAuxOutput            = 1 << 31
	FlagInheritThread        = 1 << 35
	FlagRemoveOnExec         = 1 << 36
	FlagSigtrap              = 1 << 37
	// flagsReserved is __reserved_1: bits 38-63.
	flagsReserved = ^uint64(1<<38 - 1)
)

// aux_action bits (the word after aux_sample_size).
const (
	auxStartPaused = 1 << 0
	auxPause       = 1 << 1
	auxResume      = 1 << 2
	// auxReserved is __reserved_3.
	auxReserved = ^uint32(1<<3 - 1)
)

// sample_type bits (enum perf_event_sample_format).
const (
	SampleIP           = unix.PERF_SAMPLE_IP
	SampleTID          = unix.PERF_SAMPLE_TID
	SampleTime         = unix.PERF_SAMPLE_TIME
	SampleAddr         = unix.PERF_SAMPLE_ADDR
	SampleRead         = unix.PERF_SAMPLE_READ
	SampleCallchain    = unix.PERF_SAMPLE_CALLCHAIN
	SampleID           = unix.PERF_SAMPLE_ID
	SampleCPU          = unix.PERF_SAMPLE_CPU
	SamplePeriod       = unix.PERF_SAMPLE_PERIOD
	SampleStreamID     = unix.PERF_SAMPLE_STREAM_ID
	SampleBranchStack  = unix.PERF_SAMPLE_BRANCH_STACK
	SampleRegsUser     = unix.PERF_SAMPLE_REGS_USER
	SampleStackUser    = unix.PERF_SAMPLE_STACK_USER
	SampleWeight       = unix.PERF_SAMPLE_WEIGHT
	SampleRegsIntr     = unix.PERF_SAMPLE_REGS_INTR
	SamplePhysAddr     = unix.PERF_SAMPLE_PHYS_ADDR
	SampleWeightStruct = unix.PERF_SAMPLE_WEIGHT_STRUCT
	// sampleMax is PERF_SAMPLE_MAX of Linux 6.18.
	sampleMax = unix.PERF_SAMPLE_MAX
)

// read_format bits (enum perf_event_read_format).
const (
	FormatTotalTimeEnabled = unix.PERF_FORMAT_TOTAL_TIME_ENABLED
	FormatTotalTimeRunning = unix.PERF_FORMAT_TOTAL_TIME_RUNNING
	FormatID               = unix.PERF_FORMAT_ID
	FormatGroup            = unix.PERF_FORMAT_GROUP
	FormatLost             = unix.PERF_FORMAT_LOST
	formatMax              = unix.PERF_FORMAT_MAX
)

// branch_sample_type bits that matter to the checks of perf_copy_attr.
const (
	branchUser   = unix.PERF_SAMPLE_BRANCH_USER
	branchKernel = unix.PERF_SAMPLE_BRANCH_KERNEL
	branchHV     = unix.PERF_SAMPLE_BRANCH_HV
	branchPLMAll = branchUser | branchKernel | branchHV
	// branchMax is PERF_SAMPLE_BRANCH_MAX of Linux 6.18.
	branchMax = unix.PERF_SAMPLE_BRANCH_MAX
)

// Register numbers of sample_regs_user/intr on x86_64
// (arch/x86/include/uapi/asm/perf_regs.h).
const (
	regDS       = 12
	regES       = 13
	regFS       = 14
	regGS       = 15
	regX8664Max = 24
	regXMM0     = 32
	// regNoSupport are the segment registers perf cannot sample.
	regNoSupport = 1<<regDS | 1<<regES | 1<<regFS | 1<<regGS
	// regReserved are the numbers between the last general register and
	// XMM0 (PERF_REG_X86_RESERVED).
	regReserved = (1<<regXMM0 - 1) &^ (1<<regX8664Max - 1)
	// regExtended are the XMM registers (PERF_REG_EXTENDED_MASK), which
	// only PMUs with PERF_PMU_CAP_EXTENDED_REGS sample.
	regExtended = ^uint64(1<<regXMM0 - 1)
)

// defaultMaxStack is kernel.perf_event_max_stack's default
// (PERF_MAX_STACK_DEPTH), which perf_copy_attr puts in a zero
// sample_max_stack.
const defaultMaxStack = unix.PERF_MAX_STACK_DEPTH

// MaxSampleRate is kernel.perf_event_max_sample_rate's default
// (DEFAULT_MAX_SAMPLE_RATE): the largest sample_freq of a frequency event.
const MaxSampleRate = 100000

// Clock ids (include/uapi/linux/time.h) that perf_event_set_clock accepts
// for a PMU that may count from NMI context, as the breakpoint PMU does: only
// the NMI-safe clocks.
const (
	clockMonotonic    = unix.CLOCK_MONOTONIC
	clockMonotonicRaw = unix.CLOCK_MONOTONIC_RAW
)

// Attr is a guest's struct perf_event_attr, as perf_copy_attr leaves it:
// the first min(size, AttrSize) bytes, zero beyond.
type Attr struct {
	raw [AttrSize]byte
}

func (a Attr) u16(off int) uint16 { return binary.LittleEndian.Uint16(a.raw[off:]) }
func (a Attr) u32(off int) uint32 { return binary.LittleEndian.Uint32(a.raw[off:]) }
func (a Attr) u64(off int) uint64 { return binary.LittleEndian.Uint64(a.raw[off:]) }

// Type is perf_event_attr.type.
func (a Attr) Type() uint32 { return a.u32(offType) }

// Size is the size the guest gave (0 read as AttrSizeVer0).
func (a Attr) Size() uint32 { return a.u32(offSize) }

// SamplePeriod is sample_period, or sample_freq for a frequency event.
func (a Attr) SamplePeriod() uint64 { return a.u64(offSamplePeriod) }

// SampleType is sample_type.
func (a Attr) SampleType() uint64 { return a.u64(offSampleType) }

// ReadFormat is read_format.
func (a Attr) ReadFormat() uint64 { return a.u64(offReadFormat) }

// Flags is the word of single-bit fields (disabled, inherit, ...).
func (a Attr) Flags() uint64 { return a.u64(offFlags) }

// Has reports whether every bit of flag is set in Flags.
func (a Attr) Has(flag uint64) bool { return a.Flags()&flag == flag }

// BPType is bp_type.
func (a Attr) BPType() uint32 { return a.u32(offBPType) }

// BPAddr is bp_addr.
func (a Attr) BPAddr() uint64 { return a.u64(offBPAddr) }

// BPLen is bp_len.
func (a Attr) BPLen() uint64 { return a.u64(offBPLen) }

// SigData is sig_data, the si_perf_data of sigtrap's signals.
func (a Attr) SigData() uint64 { return a.u64(offSigData) }

// ClockID is clockid, used with use_clockid.
func (a Attr) ClockID() int32 { return int32(a.u32(offClockID)) }

// copyBreakpoint sets a's bp_addr, bp_type, bp_len and disabled to n's
// (hw_breakpoint_copy_attr).
func (a *Attr) copyBreakpoint(n Attr) {
	copy(a.raw[offBPType:offBPType+4], n.raw[offBPType:])
	copy(a.raw[offBPAddr:offBPLen+8], n.raw[offBPAddr:])
	f := a.Flags()&^FlagDisabled | n.Flags()&FlagDisabled
	binary.LittleEndian.PutUint64(a.raw[offFlags:], f)
}

// normalized is a as perf_event_alloc keeps it in the event: without
// branch_sample_type unless the event samples the branch stack.
func (a Attr) normalized() Attr {
	if a.SampleType()&SampleBranchStack == 0 {
		binary.LittleEndian.PutUint64(a.raw[offBranchType:], 0)
	}
	return a
}

// Sampling reports whether the event samples (is_sampling_event): a
// non-zero sample_period or sample_freq.
func (a Attr) Sampling() bool { return a.SamplePeriod() != 0 }

// Reader reads guest memory: len(dst) bytes at addr, or EFAULT.
type Reader func(addr uint64, dst []byte) error

// E2BIGError is perf_copy_attr's E2BIG: the caller must write AttrSize to
// the guest's size field (put_user, whose failure Linux ignores) before
// returning E2BIG.
var E2BIGError = fmt.Errorf("perf: attribute size: %w", unix.E2BIG)

// CopyAttr reads the guest's struct perf_event_attr at addr and makes the
// checks of Linux's perf_copy_attr (kernel/events/core.c) in its order:
//
//   - size (0 means AttrSizeVer0) below AttrSizeVer0 or above a page, or a
//     larger struct than the kernel's whose extra bytes are not all zero
//     (copy_struct_from_user): E2BIG (E2BIGError);
//   - __reserved_1, __reserved_2, __reserved_3, unknown sample_type or
//     read_format bits: EINVAL;
//   - the branch stack, register and user stack sampling checks;
//   - inherit_thread without inherit, remove_on_exec with enable_on_exec,
//     sigtrap without remove_on_exec: EINVAL.
//
// An unreadable size field or struct is EFAULT. The checks are those of
// every event type: callers learn the type from the returned Attr even if
// err is not nil (it is zero when the struct could not be read).
func CopyAttr(read Reader, addr uint64) (Attr, error) {
	var a Attr
	var sz [4]byte
	if err := read(addr+offSize, sz[:]); err != nil {
		return a, err
	}
	size := binary.LittleEndian.Uint32(sz[:])
	if size == 0 {
		size = AttrSizeVer0
	}
	if size < AttrSizeVer0 || size > maxAttrSize {
		// Learn the type all the same, for the caller's dispatch.
		read(addr+offType, a.raw[offType:offType+4])
		return a, E2BIGError
	}
	if size > AttrSize {
		// copy_struct_from_user: the bytes the kernel does not know
		// must be zero.
		tail := make([]byte, size-AttrSize)
		if err := read(addr+AttrSize, tail); err != nil {
			return a, err
		}
		for _, b := range tail {
			if b != 0 {
				read(addr+offType, a.raw[offType:offType+4])
				return a, E2BIGError
			}
		}
	}
	n := min(size, AttrSize)
	if err := read(addr, a.raw[:n]); err != nil {
		return Attr{}, err
	}
	binary.LittleEndian.PutUint32(a.raw[offSize:], size)
	if a.u16(offMaxStack) == 0 {
		binary.LittleEndian.PutUint16(a.raw[offMaxStack:], defaultMaxStack)
	}
	return a, a.check()
}

// regsValid is x86's perf_reg_validate.
func regsValid(mask uint64) error {
	if mask == 0 || mask&(regNoSupport|regReserved) != 0 {
		return fmt.Errorf("perf: sampled registers %#x: %w", mask, unix.EINVAL)
	}
	return nil
}

// check is the part of perf_copy_attr after the copy.
func (a *Attr) check() error {
	einval := func(what string) error { return fmt.Errorf("perf: %s: %w", what, unix.EINVAL) }
	if a.Flags()&flagsReserved != 0 || a.u16(offReserved2) != 0 || a.u32(offAuxAction)&auxReserved != 0 {
		return einval("reserved field set")
	}
	st := a.SampleType()
	if st&^(sampleMax-1) != 0 {
		return einval("unknown sample_type bits")
	}
	if a.ReadFormat()&^(formatMax-1) != 0 {
		return einval("unknown read_format bits")
	}
	if st&SampleBranchStack != 0 {
		mask := a.u64(offBranchType)
		if mask&^(branchMax-1) != 0 {
			return einval("unknown branch_sample_type bits")
		}
		if mask&^branchPLMAll == 0 {
			return einval("branch_sample_type without a branch type")
		}
		// Privilege levels not given follow the exclude bits.
		if mask&branchPLMAll == 0 {
			if !a.Has(FlagExcludeUser) {
				mask |= branchUser
			}
			if !a.Has(FlagExcludeKernel) {
				mask |= branchKernel
			}
			if !a.Has(FlagExcludeHV) {
				mask |= branchHV
			}
		}
		if mask&(branchKernel|branchHV) != 0 {
			// perf_allow_kernel: the sandbox's callers are
			// unprivileged (see the package doc).
			return fmt.Errorf("perf: kernel branch sampling: %w", unix.EACCES)
		}
	}
	if st&SampleRegsUser != 0 {
		if err := regsValid(a.u64(offRegsUser)); err != nil {
			return err
		}
	}
	if st&SampleStackUser != 0 {
		// arch_perf_have_user_stack_dump is true on x86.
		if s := a.u32(offStackUser); s >= 0xffff || s%8 != 0 {
			return einval("sample_stack_user")
		}
	}
	// A bad sample_regs_intr is reported only if nothing below fails
	// (perf_copy_attr keeps its result in ret and goes on).
	var intrErr error
	if st&SampleRegsIntr != 0 {
		intrErr = regsValid(a.u64(offRegsIntr))
	}
	if st&SampleWeight != 0 && st&SampleWeightStruct != 0 {
		return einval("weight and weight_struct")
	}
	if !a.Has(FlagInherit) && a.Has(FlagInheritThread) {
		return einval("inherit_thread without inherit")
	}
	if a.Has(FlagRemoveOnExec) && a.Has(FlagEnableOnExec) {
		return einval("remove_on_exec with enable_on_exec")
	}
	if a.Has(FlagSigtrap) && !a.Has(FlagRemoveOnExec) {
		return einval("sigtrap without remove_on_exec")
	}
	return intrErr
}

// CheckOpen makes the checks that perf_event_open makes on the copied
// attribute before it looks at its other arguments, for a caller that is not
// perfmon_capable on a host whose perf_event_paranoid is 2 (see the package doc):
// an event that counts in the kernel (exclude_kernel clear) or with
// namespaces, or that samples physical addresses, is EACCES; a frequency
// above MaxSampleRate or a period with bit 63 set is EINVAL.
func (a Attr) CheckOpen() error {
	if !a.Has(FlagExcludeKernel) {
		return fmt.Errorf("perf: kernel events need CAP_PERFMON: %w", unix.EACCES)
	}
	if a.Has(FlagNamespaces) {
		return fmt.Errorf("perf: namespace events need CAP_PERFMON: %w", unix.EACCES)
	}
	if a.Has(FlagFreq) {
		if a.SamplePeriod() > MaxSampleRate {
			return fmt.Errorf("perf: sample_freq %d: %w", a.SamplePeriod(), unix.EINVAL)
		}
	} else if a.SamplePeriod()&(1<<63) != 0 {
		return fmt.Errorf("perf: sample_period %#x: %w", a.SamplePeriod(), unix.EINVAL)
	}
	if a.SampleType()&SamplePhysAddr != 0 {
		return fmt.Errorf("perf: physical addresses need CAP_PERFMON: %w", unix.EACCES)
	}
	return nil
}

// IsE2BIG reports whether err is CopyAttr's E2BIG.
func IsE2BIG(err error) bool { return errors.Is(err, E2BIGError) }
