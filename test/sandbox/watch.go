// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Watch is a running "runsc watch": test/watch drives it against runsc do's
// sandboxes, test/docker against Docker's.
type Watch struct {
	// Cmd is the runsc watch process.
	Cmd *exec.Cmd
	// Start is its first line on stderr, printed once the watch is armed.
	Start string

	// hits receives its lines on stdout; it is closed at their end.
	hits   chan string
	stderr *bufio.Reader
}

// StartWatch starts cmd, a runsc watch command, and returns once the watch
// is armed (it printed "watching ..."); it fails t if runsc watch refuses.
// The watch is killed at the end of t if it is still running.
func StartWatch(t testing.TB, cmd *exec.Cmd) *Watch {
	t.Helper()
	w := &Watch{Cmd: cmd, hits: make(chan string, 1024)}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.stderr = bufio.NewReader(stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.hits)
		for sc := bufio.NewScanner(stdout); sc.Scan(); {
			w.hits <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := w.stderr.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "watching ") {
		rest, _ := w.stderr.ReadString(0)
		t.Fatalf("%s: %q%s (%v)", strings.Join(cmd.Args, " "), line, rest, err)
	}
	w.Start = strings.TrimSpace(line)
	t.Log(w.Start)
	return w
}

// Read returns the watch's next n hits (text lines, or JSON), failing t if
// they do not come within a minute.
func (w *Watch) Read(t testing.TB, n int) []string {
	t.Helper()
	var hits []string
	timeout := time.After(time.Minute)
	for len(hits) < n {
		select {
		case h, ok := <-w.hits:
			if !ok {
				t.Fatalf("runsc watch ended its output after %d hits, want %d:\n%s", len(hits), n, strings.Join(hits, "\n"))
			}
			hits = append(hits, h)
		case <-timeout:
			t.Fatalf("runsc watch printed %d hits in a minute, want %d:\n%s", len(hits), n, strings.Join(hits, "\n"))
		}
	}
	return hits
}

// Finish waits for the watch to end by itself and returns the hits it
// printed after those read, and its last line on stderr, the summary.
func (w *Watch) Finish(t testing.TB) ([]string, string) {
	t.Helper()
	done := make(chan error, 1)
	var rest string
	var hits []string
	go func() {
		rest, _ = w.stderr.ReadString(0)
		for h := range w.hits {
			hits = append(hits, h)
		}
		done <- w.Cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runsc watch: %v; stderr:\n%s", err, rest)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("runsc watch did not end")
	}
	lines := strings.Split(strings.TrimSpace(rest), "\n")
	return hits, lines[len(lines)-1]
}
