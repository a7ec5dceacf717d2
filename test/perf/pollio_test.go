// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"testing"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// TestPollReadiness compares what poll, select and epoll report for a perf
// event's fd (testdata/pollio.c): EPOLLHUP for every event without a ring
// buffer, counting or sampling, enabled or not, on a live or an exited
// task; and O_ASYNC, F_SETOWN, F_SETSIG and FIOASYNC on the fd. No hits
// are needed.
func TestPollReadiness(t *testing.T) {
	sandbox.RequireRoot(t)
	prog := sandbox.BuildC(t, "testdata/pollio.c")
	compareOn(t, sandbox.Platforms, prog)
}

// TestAsyncSignals compares the signals that a sampling event's overflows
// send to the owner of its fd with O_ASYNC set (testdata/pollio.c hits):
// plain SIGIO, the F_SETSIG signal with si_code POLL_IN, si_band and si_fd
// (SI_SIGIO for a signal with codes of its own), POLL_HUP when a
// PERF_EVENT_IOC_REFRESH limit runs out, the fd of a dup that set O_ASYNC,
// FIOASYNC, a thread owner, a process group owner (every process of the
// group), none without an owner or for a counting event,
// and an overflow reported when its task exits. It needs hits, so it runs
// in the test VM where the host delivers none.
func TestAsyncSignals(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	prog := sandbox.BuildC(t, "testdata/pollio.c")
	compareOn(t, sandbox.HitPlatforms, prog, "hits")
}
