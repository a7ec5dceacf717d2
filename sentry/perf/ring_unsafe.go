// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"sync/atomic"
	"unsafe"
)

// word64 returns the 64-bit word of the first page at off, which the guest
// shares: the sentry accesses it atomically (data_head, data_tail).
func (r *Ring) word64(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&r.user[off]))
}

// word32 is word64 for a 32-bit word (lock).
func (r *Ring) word32(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&r.user[off]))
}
