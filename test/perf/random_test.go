// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// randomSeqLen is the length of TestRandomSequence's sequences: on a
// 2-core machine, a sandbox runs one in about 5 s on systrap and 13 s on
// ptrace when the machine is idle, two or three times that under load.
const randomSeqLen = 4000

// driverTranscript runs the script at path with testdata/perfdriver.c on
// the host (platform "") or in a sandbox and returns its transcript.
func driverTranscript(t *testing.T, platform, path string) string {
	t.Helper()
	return run(t, platform, sandbox.BuildC(t, "testdata/perfdriver.c"), path)
}

// perfdriver is testdata/perfdriver.c, for the random sequences: its
// scripts are *.pd files, each transcript line starts with its script line.
var perfdriver = sandbox.Driver{Ext: ".pd", Run: driverTranscript, Format: sandbox.NumberedSteps, Budget: 80}

// pick returns one of choices.
func pick[T any](rng *rand.Rand, choices ...T) T { return choices[rng.Intn(len(choices))] }

// randomAddrs are the addresses the random sequences use: inside the
// child's buffer at every alignment, and the edges of the user address
// space and kernel addresses.
var randomAddrs = []string{"buf+0", "buf+1", "buf+2", "buf+3", "buf+4", "buf+6", "buf+8", "buf+0x10", "buf+0x18",
	"buf+0x20", "buf+0x7f8", "0", "0x7fffffffeff8", "0x7ffffffff000", "0x7ffffffffff8", "0x800000000000",
	"0xffff800000000000", "0xffffffff81000000", "~0"}

// randomAttrFields returns the F=V words of a random breakpoint attribute
// for perfdriver's open (open) or modify (!open).
func randomAttrFields(rng *rand.Rand, open bool) string {
	var f []string
	add := func(p int, format string, args ...any) {
		if rng.Intn(100) < p {
			f = append(f, fmt.Sprintf(format, args...))
		}
	}
	// Mostly valid breakpoints (x86 has no read-only type), so that
	// slots fill up; else any type, length and address, most of them
	// invalid.
	if rng.Intn(10) < 7 {
		t, l := pick(rng, 2, 2, 3, 3, 4), pick(rng, 1, 2, 4, 8)
		if t == 4 {
			l = 8 // an execution breakpoint is sizeof(long) long
		}
		f = append(f, fmt.Sprintf("t=%d l=%d a=buf+%#x", t, l, l*rng.Intn(0x40)))
	} else {
		add(70, "t=%d", pick(rng, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x10))
		add(70, "l=%d", pick(rng, 0, 1, 2, 3, 4, 5, 8, 16, 0x100))
		add(80, "a=%s", pick(rng, randomAddrs...))
	}
	add(30, "d=%d", rng.Intn(2))
	if open {
		add(15, "i=1")
		add(20, "g=%d", rng.Intn(8))
		add(4, "s=1 r=1")
		add(3, "r=1")
		add(5, "f=%d", pick(rng, 1, 2, 4, 0x10))
		add(4, "k=0")
	} else {
		// A modify without exclude_kernel gets EPERM for a data
		// breakpoint in kernel space, but EINVAL or EPERM for an
		// execution breakpoint depending on the host kernel's kprobes
		// (sentry/perf's checkBreakpoint): keep it a data breakpoint.
		add(4, "k=0 t=%d", pick(rng, 2, 3))
	}
	add(4, "u=1")
	add(25, "rf=%d", rng.Intn(32))
	add(10, "p=%s", pick(rng, "1", "3", "0x8000000000000000"))
	if !open {
		// What a modify may not change, and its fields that check the
		// attribute itself.
		add(3, "i=1")
		add(3, "rf=%d", rng.Intn(32))
		add(4, "ty=%d", pick(rng, 0, 1, 2))
		add(4, "sz=%d", pick(rng, 0, 1, 64, 72, 136, 200))
		add(8, "sd=%d", rng.Intn(100))
	}
	return strings.Join(f, " ")
}

// randomPerfOps returns n random perfdriver requests: perf events opened,
// modified, read, controlled by ioctls and closed on one traced child, and
// ptrace writes and reads of its debug registers, which share its four
// slots with the events; now and then the child runs a turn, execs (which
// removes the remove_on_exec events and flushes the ptrace breakpoints) or
// is replaced (its events see it exit).
func randomPerfOps(seed int64, n int) []string {
	rng := rand.New(rand.NewSource(seed))
	ops := make([]string, 0, n)
	for len(ops) < n {
		// Mostly the first four event slots, so that most requests
		// meet an event.
		k := rng.Intn(4)
		if rng.Intn(4) == 0 {
			k = rng.Intn(8)
		}
		var op string
		// The ptrace address registers are rarer than the events: a
		// breakpoint that a poke registers holds its slot until the
		// child is replaced, as on Linux.
		switch r := rng.Intn(100); {
		case r < 5:
			op = fmt.Sprintf("poke %d %s", rng.Intn(4), pick(rng, randomAddrs...))
		case r < 15:
			dr7 := sandbox.RandomDR7(rng)
			if rng.Intn(4) == 0 {
				dr7 = 0
			}
			op = fmt.Sprintf("poke 7 %#x", dr7)
		case r < 17:
			op = fmt.Sprintf("poke 6 %#x", sandbox.RandomDR6(rng))
		case r < 22:
			op = fmt.Sprintf("peek %d", pick(rng, 0, 1, 2, 3, 6, 7))
		case r < 47:
			op = strings.TrimSpace(fmt.Sprintf("open %d %s", k, randomAttrFields(rng, true)))
		case r < 57:
			op = strings.TrimSpace(fmt.Sprintf("modify %d %s", k, randomAttrFields(rng, false)))
		case r < 73:
			switch io := pick(rng, "enable", "disable", "reset", "id", "period", "refresh"); io {
			case "period":
				op = fmt.Sprintf("ioctl %d period %s", k, pick(rng, "0", "1", "5", "0x8000000000000000"))
			case "refresh":
				op = fmt.Sprintf("ioctl %d refresh %d", k, pick(rng, 0, 1, 2, -1))
			case "id":
				op = fmt.Sprintf("ioctl %d id", k)
			default:
				op = fmt.Sprintf("ioctl %d %s%s", k, io, pick(rng, "", "", " g"))
			}
		case r < 87:
			op = fmt.Sprintf("read %d %d", k, pick(rng, 0, 7, 8, 16, 24, 32, 40, 48, 56, 63, 256))
		case r < 95:
			op = fmt.Sprintf("close %d", k)
		case r < 96:
			op = "cont"
		case r < 98:
			op = "exec"
		default:
			op = "respawn"
		}
		ops = append(ops, op)
	}
	return ops
}

// TestRandomSequence runs seeded random sequences of perf events and
// ptrace debug-register writes on one traced child (randomPerfOps,
// testdata/perfdriver.c) on the host and in the sandbox, and compares the
// transcripts line by line; a difference is reported with the seed and a
// minimized failing sequence. No hits are needed. HWBP_SEED=N runs seed N
// only.
func TestRandomSequence(t *testing.T) {
	sandbox.RequireRoot(t)
	gen := func(seed int64) []string { return randomPerfOps(seed, randomSeqLen) }
	perfdriver.RandomSequences(t, sandbox.Platforms, gen, 1, 20261126)
}

// TestRandomPerfOpsAreDeterministic guards the seed contract: one seed gives
// one sequence, and a sequence covers every kind of request.
func TestRandomPerfOpsAreDeterministic(t *testing.T) {
	gen := func(seed int64) []string { return randomPerfOps(seed, 2000) }
	kinds := func(op string) []string {
		f := strings.Fields(op)
		k := []string{f[0]}
		if len(f) > 2 && f[0] == "ioctl" {
			k = append(k, "ioctl "+f[2])
		}
		if len(f) > 1 && f[0] == "poke" {
			k = append(k, "poke "+f[1])
		}
		for _, w := range f[1:] {
			if name, _, ok := strings.Cut(w, "="); ok {
				k = append(k, f[0]+" "+name+"=")
			}
		}
		return k
	}
	sandbox.CheckGenerator(t, gen, kinds, "poke 0", "poke 3", "poke 6", "poke 7", "peek", "open", "modify", "read", "close", "cont", "exec", "respawn",
		"ioctl enable", "ioctl disable", "ioctl reset", "ioctl id", "ioctl period", "ioctl refresh",
		"open t=", "open l=", "open a=", "open d=", "open i=", "open g=", "open k=", "open u=", "open rf=", "open p=", "open s=", "open r=", "open f=",
		"modify a=", "modify t=", "modify l=", "modify d=", "modify ty=", "modify sz=", "modify sd=", "modify p=")
}
