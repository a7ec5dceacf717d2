// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gvisor-hwbp/hwbp/plugin/status"
	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// TestHostEventsBounded runs a tracer of 300 children that live at once,
// each with four armed write watchpoints, on systrap, where every stub
// process whose tasks have breakpoints gets host perf events (four fds per
// stub thread and its nursery). The sentry must keep its host event fds in
// the low hundreds, and still every child gets its four hits when it
// finally writes its watched words. Two wake-up patterns:
//
//   - sleeping: the children sleep in read() until woken once. Measured
//     before any bound: 2,400 host fds, growing with every such child.
//   - waking: the children loop on usleep(20000), 50 wake-ups a second
//     each, the whole time, and the back end evicts and reopens their
//     events all along. Measured with an eviction that closed at most one
//     idle process per open: about 1,160 host fds; with one that closed
//     every idle process above the limit, but no cap: up to 1,600, the
//     events of processes whose tasks were queued for a stub thread.
func TestHostEventsBounded(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	const children = 300
	// maxFDs is "the low hundreds": the back end caps its host event fds
	// at 352 (platform/systrap maxFDs), eight fds for each process with
	// one stub thread, whatever the wake-up pattern.
	const maxFDs = 400
	// wakeups is the children's wake-ups a second (usleep(20000)).
	const wakeups = 50
	want := fmt.Sprintf("%d children, %d hits, 0 children without four\n", children, 4*children)
	prog := sandbox.BuildC(t, "testdata/manychildren.c")
	t.Run("sleeping", func(t *testing.T) {
		res := sandbox.Run(t, "systrap", prog, strconv.Itoa(children))
		if res.ExitCode != 0 || res.Stdout != want {
			t.Fatalf("exit %d, stdout %q, want %q; stderr:\n%s", res.ExitCode, res.Stdout, want, res.Stderr)
		}
		log, err := res.BootLog()
		if err != nil {
			t.Fatal(err)
		}
		checkHostEvents(t, log, children, maxFDs)
	})
	t.Run("waking", func(t *testing.T) {
		s := sandbox.Start(t, "systrap", prog, strconv.Itoa(children), "wake")
		if line := s.ReadLine(t); line != "ready" {
			t.Fatalf("program said %q", line)
		}
		// While every child wakes and sleeps: the fds the back end
		// holds now (the boot log's reports below give the most it
		// ever held), and what reopening evicted events costs.
		first, start := s.Metrics(t), time.Now()
		var last map[string]uint64
		for range 5 {
			last = s.Metrics(t)
			if n := last["host_fds"]; n > maxFDs {
				t.Errorf("the sentry holds %d host event fds, want at most %d", n, maxFDs)
			}
		}
		secs := time.Since(start).Seconds()
		opens := float64(last["host_perf_opens"]-first["host_perf_opens"]) / secs
		closes := float64(last["host_perf_closes"]-first["host_perf_closes"]) / secs
		t.Logf("while the children wake: %d host fds; %.0f host perf_event_open and %.0f close calls a second", last["host_fds"], opens, closes)
		// Reopening is bounded by the wake-ups: at most one process's
		// events (four on its stub thread, four on its nursery) each.
		if most := float64(children * wakeups * 2 * 4); opens > most {
			t.Errorf("%.0f host perf_event_open calls a second, more than the %.0f that reopening a process's events at each of its wake-ups takes", opens, most)
		}
		out, code := s.Finish(t)
		if code != 0 || out != want {
			t.Fatalf("exit %d, stdout %q, want %q", code, out, want)
		}
		log, err := s.BootLog()
		if err != nil {
			t.Fatal(err)
		}
		checkHostEvents(t, log, children, maxFDs)
	})
}

// TestWakeUpsOpenNothing runs the waking children of TestHostEventsBounded,
// but fewer than the back end keeps the events of (platform/systrap
// openLimit): a task that sleeps and wakes without changing its
// breakpoints must make no host perf_event_open or close, so that
// context switches cost no host calls once the events are open.
func TestWakeUpsOpenNothing(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	const children = 8
	prog := sandbox.BuildC(t, "testdata/manychildren.c")
	s := sandbox.Start(t, "systrap", prog, strconv.Itoa(children), "wake")
	if line := s.ReadLine(t); line != "ready" {
		t.Fatalf("program said %q", line)
	}
	first, start := s.Metrics(t), time.Now()
	time.Sleep(2 * time.Second)
	last := s.Metrics(t)
	// usleep(20000) in a loop: about 50 wake-ups a second each.
	wakeups := time.Since(start).Seconds() * children * 50
	opens, closes := last["host_perf_opens"]-first["host_perf_opens"], last["host_perf_closes"]-first["host_perf_closes"]
	t.Logf("%d host fds; %d host perf_event_open and %d close calls over about %.0f wake-ups", last["host_fds"], opens, closes, wakeups)
	if last["host_fds"] == 0 {
		t.Error("no host event fds while the children wake")
	}
	if opens != 0 || closes != 0 {
		t.Errorf("%d host perf_event_open and %d close calls while the children only sleep and wake, want none", opens, closes)
	}
	want := fmt.Sprintf("%d children, %d hits, 0 children without four\n", children, 4*children)
	if out, code := s.Finish(t); code != 0 || out != want {
		t.Fatalf("exit %d, stdout %q, want %q", code, out, want)
	}
}

// checkHostEvents checks the back end's reports in the sentry's log: it
// never held more than maxFDs host event fds, and none at the end.
func checkHostEvents(t *testing.T, log string, children, maxFDs int) {
	t.Helper()
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
	if strings.Contains(log, "are interrupted so that the others run in turn") {
		t.Log("the back end interrupted running processes to stay within its cap")
	}
	if maxFDsSeen > maxFDs {
		t.Errorf("the sentry held up to %d host event fds, want at most %d", maxFDsSeen, maxFDs)
	}
	if last := all[len(all)-1]; last[2] != "0" || last[3] != "0" {
		t.Errorf("at the end %s processes still carry events, with %s fds", last[2], last[3])
	}
}
