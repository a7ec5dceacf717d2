// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"testing"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// TestMetrics checks that hwbp's counters are gVisor metrics that
// "runsc export-metrics" reads from a running sandbox: while a traced child
// has four armed watchpoints, four events are enabled, one thread holds
// state, and on systrap the back end holds host perf event fds for them
// (none on ptrace, which uses the stub thread's debug registers). On
// systrap the counters of host perf calls show the calls that made those
// fds: an open for each, and an enabling ioctl for each armed event (runsc
// exports a counter only once it is not zero, so a missing one reads 0).
func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		platform string
		hostFDs  func(uint64) bool
		// enables is the least number of ioctls that arming the four
		// watchpoints makes.
		enables uint64
	}{
		{"systrap", func(n uint64) bool { return n > 0 }, 4},
		{"ptrace", func(n uint64) bool { return n == 0 }, 0},
	} {
		t.Run(tc.platform, func(t *testing.T) {
			prog := sandbox.BuildC(t, "testdata/armed.c")
			s := sandbox.Start(t, tc.platform, prog)
			if line := s.ReadLine(t); line != "ready" {
				t.Fatalf("program said %q", line)
			}
			values := s.Metrics(t)
			if values["events_enabled"] != 4 || values["threads"] != 1 || !tc.hostFDs(values["host_fds"]) {
				t.Errorf("hwbp metrics %v, want 4 events enabled, 1 thread, host fds as the platform needs", values)
			}
			// Every fd held was opened, and counted so (a call the
			// host refused counts too).
			if opens, closes := values["host_perf_opens"], values["host_perf_closes"]; opens < closes+values["host_fds"] {
				t.Errorf("host perf opens %d, closes %d: fewer than the %d host fds held need", opens, closes, values["host_fds"])
			}
			if n := values["host_perf_ioctls"]; n < tc.enables {
				t.Errorf("%d host perf ioctls, want at least the %d that enable the armed events", n, tc.enables)
			}
		})
	}
}
