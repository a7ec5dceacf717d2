// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/gvisor-hwbp/hwbp/plugin/status"
	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// TestHostEventsBounded runs a tracer of 300 children that live at once,
// each with four armed write watchpoints, on systrap, where every stub
// process whose tasks have breakpoints gets host perf events (four fds per
// stub thread and its nursery). Measured before the bound: 2,400 host fds,
// growing with every such child. The sentry must keep the events of only a
// bounded number of idle processes open, so its host event fds stay in the
// low hundreds, and still every child gets its four hits.
func TestHostEventsBounded(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	const children = 300
	// maxFDs is "the low hundreds": the back end keeps the events of 32
	// idle processes (platform/systrap openLimit), eight fds each for a
	// process with one stub thread, plus those of the processes whose
	// tasks run at the same moment.
	const maxFDs = 400
	prog := sandbox.BuildC(t, "testdata/manychildren.c")
	sandbox.HoldFourSlots(t)
	res := sandbox.Run(t, "systrap", prog, strconv.Itoa(children))
	want := fmt.Sprintf("%d children, %d hits, 0 children without four\n", children, 4*children)
	if res.ExitCode != 0 || res.Stdout != want {
		t.Fatalf("exit %d, stdout %q, want %q; stderr:\n%s", res.ExitCode, res.Stdout, want, res.Stderr)
	}
	log, err := res.BootLog()
	if err != nil {
		t.Fatal(err)
	}
	report := regexp.MustCompile(`(` + regexp.QuoteMeta(status.EventsOpenedMessage) + `|` + regexp.QuoteMeta(status.EventsClosedMessage) + `) (\d+)` + regexp.QuoteMeta(status.HostFDsMessage) + `(\d+)`)
	all := report.FindAllStringSubmatch(log, -1)
	if len(all) == 0 {
		t.Fatal("the sentry never reported host events")
	}
	opens, maxProcs, maxFDsSeen := 0, 0, 0
	for _, m := range all {
		procs, _ := strconv.Atoi(m[2])
		fds, _ := strconv.Atoi(m[3])
		if m[1] == status.EventsOpenedMessage {
			opens++
		}
		maxProcs = max(maxProcs, procs)
		maxFDsSeen = max(maxFDsSeen, fds)
	}
	t.Logf("%d children: host events opened %d times; at most %d processes carried events, with %d host fds", children, opens, maxProcs, maxFDsSeen)
	if maxFDsSeen > maxFDs {
		t.Errorf("the sentry held up to %d host event fds, want at most %d", maxFDsSeen, maxFDs)
	}
	if last := all[len(all)-1]; last[2] != "0" || last[3] != "0" {
		t.Errorf("at the end %s processes still carry events, with %s fds", last[2], last[3])
	}
}
