// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The differential harness: every suite runs one program on a Linux kernel
// and in the sandbox, and compares the two transcripts line by line. A
// difference is reported at its first line, with the line before it for
// context; suites whose programs follow a script of steps (test/conformance's
// drdriver, test/perf's perfdriver) also shrink a failing script with
// Minimize.

// firstDifferentLine returns the index of the first line at which the
// transcripts w and g, split into lines, differ, or -1 if they are equal.
func firstDifferentLine(w, g []string) int {
	for i := 0; i < len(w) || i < len(g); i++ {
		if i >= len(w) || i >= len(g) || w[i] != g[i] {
			return i
		}
	}
	return -1
}

// Diff returns "" if got equals want, the kernel's transcript, and otherwise
// a report of the difference: the number of the first differing line, the
// line before it, and at most max differing lines, each as the kernel's and
// the sandbox's.
func Diff(want, got string, max int) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	first := firstDifferentLine(w, g)
	if first < 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  first difference at line %d", first+1)
	if first > 0 {
		fmt.Fprintf(&b, ", after %q", w[first-1])
	}
	b.WriteString(":\n")
	shown := 0
	for i := first; i < len(w) || i < len(g); i++ {
		wl, gl := lineAt(w, i), lineAt(g, i)
		if wl == gl {
			continue
		}
		if shown == max {
			b.WriteString("  ...\n")
			break
		}
		fmt.Fprintf(&b, "  kernel:  %s\n  sandbox: %s\n", wl, gl)
		shown++
	}
	return b.String()
}

// lineAt returns lines[i], or "<none>" past the end.
func lineAt(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "<none>"
}

// CompareTranscripts fails t when got, the sandbox's transcript of what,
// differs from want, the kernel's, and shows the difference.
func CompareTranscripts(t testing.TB, what, want, got string) {
	t.Helper()
	if d := Diff(want, got, 10); d != "" {
		t.Errorf("%s differs from the kernel's:\n%s", what, d)
	}
}

// StepFormat is how a driver's transcript line names the step of its
// script that printed it: the step's index, or -1 for a line of no step.
type StepFormat func(line string) int

// NumberedSteps is the format of drdriver and perfdriver: each line starts
// with the 1-based number of its step.
func NumberedSteps(line string) int {
	f := strings.Fields(line)
	if len(f) == 0 {
		return -1
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 1 {
		return -1
	}
	return n - 1
}

// FirstDifferentStep returns the step of format that printed the first line
// at which want and got differ (the kernel's line, else the sandbox's), or
// -1 if that line names none; differ is false if they are equal.
func FirstDifferentStep(want, got string, format StepFormat) (step int, differ bool) {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := firstDifferentLine(w, g)
	if i < 0 {
		return -1, false
	}
	step = -1
	if i < len(w) {
		step = format(w[i])
	}
	if step < 0 && i < len(g) {
		step = format(g[i])
	}
	return step, true
}

// Minimize shrinks a script of steps that makes the sandbox differ from the
// kernel: first to the prefix that ends at the first differing step
// (firstBad, -1 if unknown), then by dropping chunks of halving size while
// the rest still differs, within budget runs of differs. differs runs a
// candidate script on both sides and reports whether it differs, and at
// which step (-1 if unknown); a candidate is cut after that step too. The
// last step, which shows the difference, always stays.
func Minimize(steps []string, firstBad, budget int, differs func([]string) (bool, int)) []string {
	if firstBad >= 0 && firstBad < len(steps) {
		steps = steps[:firstBad+1]
	}
	runs := 0
	for chunk := len(steps) / 2; chunk >= 1 && runs < budget; chunk /= 2 {
		for start := 0; start+chunk <= len(steps)-1 && runs < budget; {
			candidate := append(append([]string{}, steps[:start]...), steps[start+chunk:]...)
			runs++
			if bad, i := differs(candidate); bad {
				if i >= 0 && i < len(candidate) {
					candidate = candidate[:i+1]
				}
				steps = candidate
			} else {
				start += chunk
			}
		}
	}
	return steps
}

// Driver is a test program that runs a script of steps, one a line, and
// prints a transcript whose lines name their step in Format.
type Driver struct {
	// Ext is the extension of its script files, such as ".dr".
	Ext string

	// Run runs the script at path on the kernel (platform "") or in a
	// sandbox of platform, and returns its transcript; it fails t if the
	// driver did not run to its end.
	Run func(t *testing.T, platform, path string) string

	// Format is how its transcript lines name their step.
	Format StepFormat

	// Budget bounds the runs of one minimization.
	Budget int
}

// WriteScript writes steps, one a line, to a file name in a temporary
// directory of t, and returns its path.
func WriteScript(t testing.TB, name string, steps []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(strings.Join(steps, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// differs runs steps on the kernel and on platform, and reports whether
// their transcripts differ and at which step.
func (d Driver) differs(t *testing.T, platform string, steps []string) (bool, int) {
	path := WriteScript(t, "candidate"+d.Ext, steps)
	step, differ := FirstDifferentStep(d.Run(t, "", path), d.Run(t, platform, path), d.Format)
	return differ, step
}

// RandomSequences runs the script gen(seed) of each seed of Seeds (the
// defaults, or HWBP_SEED) on the kernel and on each of platforms; a
// difference fails t with the seed, the difference and a minimized script.
func (d Driver) RandomSequences(t *testing.T, platforms []string, gen func(seed int64) []string, defaults ...int64) {
	for _, seed := range Seeds(t, defaults...) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			steps := gen(seed)
			path := WriteScript(t, "random"+d.Ext, steps)
			kernel := d.Run(t, "", path)
			for _, p := range platforms {
				t.Run(p, func(t *testing.T) {
					got := d.Run(t, p, path)
					first, differ := FirstDifferentStep(kernel, got, d.Format)
					if !differ {
						return
					}
					small := Minimize(steps, first, d.Budget, func(c []string) (bool, int) { return d.differs(t, p, c) })
					t.Errorf("seed %d: transcript differs from the kernel's (HWBP_SEED=%d reruns it):\n%s\nminimized failing script (%d steps):\n  %s",
						seed, seed, Diff(kernel, got, 5), len(small), strings.Join(small, "\n  "))
				})
			}
		})
	}
}

// CheckGenerator guards the seed contract of gen, a random script
// generator: one seed gives one script, and a script covers every kind of
// step in want, where kinds lists the kinds one step is of.
func CheckGenerator(t *testing.T, gen func(seed int64) []string, kinds func(step string) []string, want ...string) {
	t.Helper()
	a, b := gen(7), gen(7)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatal("one seed gives two scripts")
	}
	seen := map[string]bool{}
	for _, step := range a {
		for _, k := range kinds(step) {
			seen[k] = true
		}
	}
	var missing []string
	for _, k := range want {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("no %q in a script of %d steps", missing, len(a))
	}
}

// RandomDR7 is a DR7 for random scripts: each slot left disabled or
// enabled locally, globally or both, with random R/W and LEN fields, valid
// for Linux or not.
func RandomDR7(rng *rand.Rand) uint64 {
	var dr7 uint64
	for slot := 0; slot < 4; slot++ {
		if rng.Intn(2) == 0 {
			dr7 |= uint64(1+rng.Intn(3)) << (2 * slot)
		}
		dr7 |= uint64(rng.Intn(16)) << (16 + 4*slot)
	}
	return dr7
}

// RandomDR6 is a DR6 for random scripts: a random word shifted right by a
// random count, so that small values are common.
func RandomDR6(rng *rand.Rand) uint64 {
	return rng.Uint64() >> uint(rng.Intn(64))
}
