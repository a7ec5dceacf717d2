// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/gvisor-hwbp/hwbp/plugin/status"
	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// TestNoStateLeaks runs 10,000 cycles (200 on kvm, in the test VM) in
// which a traced child gets a watchpoint and a DR6 value, forks a grandchild
// that inherits state, execs and exits, and checks in the sentry's log that
// every debug-register state the plugin created was released and, where the
// back end arms breakpoints with host perf events (systrap), that every stub
// process that got events had them closed. On kvm, whose back end keeps no
// state of its own (the vCPU's registers are set for one Switch at a time),
// the tasks' state must be freed all the same.
func TestNoStateLeaks(t *testing.T) {
	prog := sandbox.BuildC(t, "testdata/cycles.c")
	released := regexp.MustCompile(regexp.QuoteMeta(status.ReleasedMessage) + ` (\d+)`)
	opened := regexp.MustCompile(regexp.QuoteMeta(status.EventsOpenedMessage) + ` (\d+)`)
	closed := regexp.MustCompile(regexp.QuoteMeta(status.EventsClosedMessage) + ` (\d+)`)
	for _, p := range append(sandbox.Platforms, sandbox.KVM) {
		t.Run(p, func(t *testing.T) {
			cycles := 10000
			if p == sandbox.KVM {
				sandbox.RequireKVM(t)
				// In the test VM a cycle on kvm takes about 0.1 s, and
				// long runs there crashed the guest kernel ("corrupted
				// stack end detected inside scheduler" in the sentry,
				// after 1,000-3,000 cycles, measured 2026-11-25: nested
				// SVM under QEMU's emulation). A leaked state shows
				// after the first cycle.
				cycles = 200
			}
			// A cycle takes about 20 ms on these 2-core machines when
			// they are idle and three times that when other work
			// competes for them: 10,000 cycles can outlast the usual
			// bound of one sandboxed command.
			res := sandbox.RunWith(t, sandbox.Options{Timeout: 25 * time.Minute}, p, prog, strconv.Itoa(cycles))
			if res.ExitCode != 0 || res.Stdout != strconv.Itoa(cycles)+" cycles\n" {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
			}
			log, err := res.BootLog()
			if err != nil {
				t.Fatal(err)
			}
			all := released.FindAllStringSubmatch(log, -1)
			if len(all) == 0 {
				t.Fatalf("the sentry never reported that all state was released")
			}
			// Each cycle creates state for the child (by POKEUSER) and
			// for the grandchild (inherited DR6/DR7). The last report
			// says how many had been created when nothing was left.
			if got := all[len(all)-1][1]; got != strconv.Itoa(2*cycles) {
				t.Fatalf("last report: all released after %s states were created, want %d", got, 2*cycles)
			}
			if p != "systrap" {
				return
			}
			// The child runs with its watchpoint armed in every cycle:
			// its stub process gets events, closed at its exec.
			o, c := opened.FindAllStringSubmatch(log, -1), closed.FindAllStringSubmatch(log, -1)
			if len(o) != cycles || len(c) != cycles {
				t.Fatalf("host events opened %d times and closed %d times, want %d each", len(o), len(c), cycles)
			}
			if left := c[len(c)-1][1]; left != "0" {
				t.Fatalf("after the last close, %s stub processes still carry events", left)
			}
		})
	}
}

// TestDisarmClosesEventsAtOnce checks on systrap that a tracer disarming a
// stopped tracee closes the host events of the tracee's stub process at
// once (testdata/disarm.c): when a second tracee's events are opened, the
// first is still stopped and no process but the second carries events.
func TestDisarmClosesEventsAtOnce(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	prog := sandbox.BuildC(t, "testdata/disarm.c")
	opened := regexp.MustCompile(regexp.QuoteMeta(status.EventsOpenedMessage) + ` (\d+)`)
	res := sandbox.Run(t, "systrap", prog)
	want := "A hit\nB hit while A stays stopped, disarmed\n"
	if res.ExitCode != 0 || res.Stdout != want {
		t.Fatalf("exit %d, stdout %q, want %q; stderr:\n%s", res.ExitCode, res.Stdout, want, res.Stderr)
	}
	log, err := res.BootLog()
	if err != nil {
		t.Fatal(err)
	}
	o := opened.FindAllStringSubmatch(log, -1)
	if len(o) != 2 {
		t.Fatalf("host events opened %d times, want 2 (once per tracee)", len(o))
	}
	if o[1][1] != "1" {
		t.Fatalf("when the second tracee's events were opened, %s processes carried events, want 1", o[1][1])
	}
}
