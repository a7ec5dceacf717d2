// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package e2e holds end-to-end tests that boot real sandboxes with this
// repository's runsc.
package e2e

import (
	"strings"
	"testing"

	"github.com/gvisor-hwbp/hwbp/plugin/status"
	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// TestSandboxBootsWithPlugin checks that the plugin runsc boots a sandbox on
// every supported platform, runs a program in it, and that the plugin is
// live in the sentry (its start line is in the boot log).
func TestSandboxBootsWithPlugin(t *testing.T) {
	for _, p := range sandbox.Platforms {
		t.Run(p, func(t *testing.T) {
			res := sandbox.Run(t, p, "/bin/echo", "hello from", p)
			if res.ExitCode != 0 || res.Stdout != "hello from "+p+"\n" {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
			}
			log, err := res.BootLog()
			if err != nil {
				t.Fatal(err)
			}
			want := status.StartMessage + ` on platform "` + p + `"`
			if !strings.Contains(log, want) {
				t.Errorf("boot log has no %q", want)
			}
		})
	}
}

// TestExitStatusPropagates checks that a failing command's status comes out
// of the sandbox, so that tests can rely on it.
func TestExitStatusPropagates(t *testing.T) {
	res := sandbox.Run(t, sandbox.Platforms[0], "/bin/sh", "-c", "exit 7")
	if res.ExitCode != 7 {
		t.Fatalf("exit %d, want 7; stderr:\n%s", res.ExitCode, res.Stderr)
	}
}
