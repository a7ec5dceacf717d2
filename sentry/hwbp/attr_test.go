// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// errnoOf returns the errno wrapped in err, or 0 for nil.
func errnoOf(t testing.TB, err error) unix.Errno {
	t.Helper()
	if err == nil {
		return 0
	}
	var e unix.Errno
	if !errors.As(err, &e) {
		t.Fatalf("error %v wraps no errno", err)
	}
	return e
}

func TestValidate(t *testing.T) {
	const user = 0x601000
	for _, tc := range []struct {
		name string
		attr Attr
		want unix.Errno
	}{
		{"write len 1 any address", Attr{Addr: user + 3, Len: 1, Type: TypeW}, 0},
		{"write len 2 aligned", Attr{Addr: user + 2, Len: 2, Type: TypeW}, 0},
		{"write len 4 aligned", Attr{Addr: user + 4, Len: 4, Type: TypeW}, 0},
		{"write len 8 aligned", Attr{Addr: user + 8, Len: 8, Type: TypeW}, 0},
		{"rw len 8 aligned", Attr{Addr: user, Len: 8, Type: TypeRW}, 0},
		{"disabled events are validated too", Attr{Addr: user + 1, Len: 8, Type: TypeW, Disabled: true}, unix.EINVAL},
		{"len 2 misaligned", Attr{Addr: user + 1, Len: 2, Type: TypeW}, unix.EINVAL},
		{"len 4 misaligned", Attr{Addr: user + 2, Len: 4, Type: TypeRW}, unix.EINVAL},
		{"len 8 misaligned", Attr{Addr: user + 4, Len: 8, Type: TypeW}, unix.EINVAL},
		{"execute needs sizeof long", Attr{Addr: user, Len: 8, Type: TypeX}, 0},
		{"execute at an odd address", Attr{Addr: user + 1, Len: 8, Type: TypeX}, 0},
		{"execute len 1 rejected", Attr{Addr: user, Len: 1, Type: TypeX}, unix.EINVAL},
		{"execute len 4 rejected", Attr{Addr: user, Len: 4, Type: TypeX}, unix.EINVAL},
		{"read-only does not exist on x86", Attr{Addr: user, Len: 4, Type: TypeR}, unix.EINVAL},
		{"empty type", Attr{Addr: user, Len: 4, Type: TypeEmpty}, unix.EINVAL},
		{"invalid type rw|x", Attr{Addr: user, Len: 8, Type: typeInvalid}, unix.EINVAL},
		{"write|x", Attr{Addr: user, Len: 8, Type: TypeW | TypeX}, unix.EINVAL},
		{"unknown type bit", Attr{Addr: user, Len: 8, Type: 8}, unix.EINVAL},
		{"len 0", Attr{Addr: user, Len: 0, Type: TypeW}, unix.EINVAL},
		{"len 3 not a power of two", Attr{Addr: user, Len: 3, Type: TypeW}, unix.EINVAL},
		{"range len 16 aligned needs bpext", Attr{Addr: user, Len: 16, Type: TypeW}, unix.EOPNOTSUPP},
		{"range len 16 misaligned", Attr{Addr: user + 8, Len: 16, Type: TypeW}, unix.EINVAL},
		{"range len 4096 aligned needs bpext", Attr{Addr: user, Len: 4096, Type: TypeRW}, unix.EOPNOTSUPP},
		{"null page is user space", Attr{Addr: 0, Len: 8, Type: TypeW}, 0},
		{"last user word", Attr{Addr: TaskSizeMax - 8, Len: 8, Type: TypeW}, 0},
		{"last user byte", Attr{Addr: TaskSizeMax - 1, Len: 1, Type: TypeW}, 0},
		{"last user instruction", Attr{Addr: TaskSizeMax - 1, Len: 8, Type: TypeX}, 0},
		{"range reaching task size max", Attr{Addr: TaskSizeMax - 4, Len: 8, Type: TypeW}, unix.EINVAL},
		{"word before the top of the 47-bit space", Attr{Addr: 0x7ffffffffff8, Len: 8, Type: TypeW}, unix.EINVAL},
		{"task size max itself", Attr{Addr: TaskSizeMax, Len: 1, Type: TypeW}, unix.EINVAL},
		{"execute at task size max", Attr{Addr: TaskSizeMax, Len: 8, Type: TypeX}, unix.EINVAL},
		{"non-canonical", Attr{Addr: 0x0000800000000000, Len: 1, Type: TypeW}, unix.EINVAL},
		{"kernel address", Attr{Addr: 0xffffffff81000000, Len: 8, Type: TypeRW}, unix.EINVAL},
		{"all ones", Attr{Addr: ^uint64(0), Len: 1, Type: TypeW}, unix.EINVAL},
		{"all ones execute", Attr{Addr: ^uint64(0), Len: 8, Type: TypeX}, unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errnoOf(t, tc.attr.Validate()); got != tc.want {
				t.Errorf("%v.Validate() = %v, want %v", tc.attr, got, tc.want)
			}
		})
	}
}
