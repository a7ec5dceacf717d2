// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package gdb runs scripted gdb sessions with hardware watchpoints and
// breakpoints on the host kernel and inside sandboxes booted by this
// repository's runsc, and fails if the sessions' output differs once
// run-specific details (pids, thread IDs, addresses) are normalized.
package gdb

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// sessions maps each gdb script to the program it debugs.
var sessions = map[string]string{
	"watch":   "widths",
	"rwatch":  "widths",
	"hbreak":  "widths",
	"threads": "threads",
}

// TestSessions runs each testdata/*.gdb script with gdb on the host and
// inside the sandbox, and compares what gdb printed.
func TestSessions(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Fatalf("gdb is needed (apt-get install gdb): %v", err)
	}
	for script, prog := range sessions {
		t.Run(script, func(t *testing.T) {
			bin := sandbox.BuildC(t, "testdata/"+prog+".c", "-g", "-O0", "-lpthread")
			abs, err := filepath.Abs("testdata/" + script + ".gdb")
			if err != nil {
				t.Fatal(err)
			}
			args := append(append([]string{"-nx", "-batch"}, sandbox.GDBCommands(t, abs)...), bin)
			// gdb's exit status reflects its last command only; the
			// output is what matters. Standard output and error are
			// compared separately: their interleaving depends on
			// buffering.
			cmd := exec.Command(gdb, args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			_ = cmd.Run()
			host := sandbox.NormalizeGDB(stdout.String())
			if !strings.Contains(host, "exited normally") {
				t.Fatalf("the host session did not run to its end:\n%s\n%s", host, stderr.String())
			}
			for _, p := range sandbox.HitPlatforms {
				t.Run(p, func(t *testing.T) {
					sandbox.RequirePlatform(t, p)
					res := sandbox.Run(t, p, append([]string{gdb}, args...)...)
					if got := sandbox.NormalizeGDB(res.Stdout); got != host {
						sandbox.CompareTranscripts(t, fmt.Sprintf("gdb's output (exit status %d)", res.ExitCode), host, got)
						t.Logf("end of the sentry's log:\n%s", res.LogTail(40))
					}
					sandbox.CompareTranscripts(t, "gdb's errors", sandbox.NormalizeGDB(stderr.String()), sandbox.NormalizeGDB(res.Stderr))
				})
			}
		})
	}
}
