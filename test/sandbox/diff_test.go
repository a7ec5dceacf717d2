// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	if d := Diff("a\nb\nend\n", "a\nb\nend\n", 5); d != "" {
		t.Errorf("equal transcripts: %q, want none", d)
	}
	d := Diff("a\nb\nc\nend\n", "a\nB\nc\n", 5)
	for _, want := range []string{"line 2", `after "a"`, "kernel:  b\n  sandbox: B\n", "kernel:  end\n  sandbox: \n"} {
		if !strings.Contains(d, want) {
			t.Errorf("Diff shows no %q:\n%s", want, d)
		}
	}
	if d := Diff("1\n2\n3\n", "x\ny\nz\n", 2); !strings.HasSuffix(d, "  ...\n") || strings.Count(d, "kernel:") != 2 {
		t.Errorf("Diff with max 2 shows:\n%s", d)
	}
	if d := Diff("a\n", "a\nextra\n", 5); !strings.Contains(d, "kernel:  \n  sandbox: extra") {
		t.Errorf("a longer sandbox transcript shows:\n%s", d)
	}
}

func TestFirstDifferentStep(t *testing.T) {
	host := "1 poke 0 = 0\n2 peek 0 = 16\nend\n"
	if _, differ := FirstDifferentStep(host, host, NumberedSteps); differ {
		t.Error("equal transcripts differ")
	}
	if step, differ := FirstDifferentStep(host, "1 poke 0 = 0\n2 peek 0 = 0\nend\n", NumberedSteps); !differ || step != 1 {
		t.Errorf("step %d, differ %v; want step 1", step, differ)
	}
	// A sandbox transcript that stops short: the host's line names the step.
	if step, _ := FirstDifferentStep(host, "1 poke 0 = 0\n", NumberedSteps); step != 1 {
		t.Errorf("step %d of a short transcript, want 1", step)
	}
	if step, _ := FirstDifferentStep("end\n", "oops\n", NumberedSteps); step != -1 {
		t.Errorf("step %d of lines that name none, want -1", step)
	}
}

// TestMinimize checks the minimizer against a fake comparison: a script
// "differs" when it holds "open 1" and later "close 1", and reports the
// difference at the close.
func TestMinimize(t *testing.T) {
	var steps []string
	for i := 0; i < 300; i++ {
		steps = append(steps, "noise")
	}
	steps[100], steps[200] = "open 1", "close 1"
	runs := 0
	differs := func(c []string) (bool, int) {
		runs++
		opened := false
		for i, s := range c {
			if s == "open 1" {
				opened = true
			}
			if opened && s == "close 1" {
				return true, i
			}
		}
		return false, -1
	}
	small := Minimize(steps, 200, 80, differs)
	if want := "open 1\nclose 1"; strings.Join(small, "\n") != want {
		t.Fatalf("minimized to %q, want %q", small, want)
	}
	if runs > 80 {
		t.Errorf("%d runs, over the budget of 80", runs)
	}
}
