// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package ptrace

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// peekUser reads the word at off of the stub thread's struct user. The raw
// system call stores the word at the address passed as data.
func peekUser(tid int32, off uint64) (uint64, error) {
	var v uint64
	_, _, errno := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKUSR, uintptr(tid), uintptr(off), uintptr(unsafe.Pointer(&v)), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return v, nil
}
