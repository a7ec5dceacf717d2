// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package ptrace

// Offsets in struct user on x86_64 (arch/x86/include/asm/user_64.h).
const (
	// UserSize is sizeof(struct user) in the x86_64 kernel (glibc's
	// sys/user.h declares a shorter one).
	UserSize = 928

	// RegsSize is sizeof(struct user_regs_struct), the general registers
	// at the start of struct user.
	RegsSize = 27 * 8
	// DebugRegOffset is offsetof(struct user, u_debugreg[0]).
	DebugRegOffset = 848
	// DebugRegEnd is offsetof(struct user, u_debugreg[7]), the last
	// register of the area.
	DebugRegEnd = DebugRegOffset + 7*8
)
