// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package restore tests that the guest's debug registers and breakpoints
// survive runsc checkpoint and restore: a sandbox run from an OCI bundle
// with "runsc run" is checkpointed at chosen points of a traced program,
// restored from the image, and the program's transcript must be the host
// kernel's, which never restores anything.
package restore

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// hostTranscript runs prog on the host and ends each of its windows at once.
func hostTranscript(t *testing.T, prog string) string {
	t.Helper()
	cmd := exec.Command(prog)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		b.WriteString(line + "\n")
		if strings.HasPrefix(line, "window ") {
			cmd.Process.Signal(syscall.SIGUSR1)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s on the host: %v", prog, err)
	}
	return b.String()
}

// container is one sandbox run from an OCI bundle by runsc run.
type container struct {
	t      *testing.T
	runsc  string
	flags  []string
	dir    string
	bundle string
	out    *os.File
	// restores counts the restores made.
	restores int
	// before, if set, is called at each window of the program, before
	// any checkpoint.
	before func(window string)
}

const containerID = "hwbp-restore"

func newContainer(t *testing.T, platform, prog string) *container {
	t.Helper()
	// Not t.TempDir: runsc keeps a network namespace mounted under its
	// root directory for a while after delete.
	dir, err := os.MkdirTemp("", "hwbp-restore-")
	if err != nil {
		t.Fatal(err)
	}
	c := &container{t: t, runsc: sandbox.Runsc(t), dir: dir, bundle: filepath.Join(dir, "bundle")}
	t.Cleanup(c.cleanup)
	c.flags = []string{"--root=" + filepath.Join(dir, "root"), "--network=none", "--platform=" + platform, "--debug-log=" + filepath.Join(dir, "logs") + "/"}
	spec := map[string]any{
		"ociVersion": "1.0.0",
		"process": map[string]any{
			"terminal": false,
			"user":     map[string]any{"uid": 0, "gid": 0},
			"args":     []string{prog},
			"env":      []string{"PATH=/usr/bin:/bin"},
			"cwd":      "/",
		},
		"root":   map[string]any{"path": "/", "readonly": true},
		"mounts": []map[string]any{{"destination": "/proc", "type": "proc", "source": "proc"}},
		"linux": map[string]any{"namespaces": []map[string]any{
			{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"},
		}},
	}
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{c.bundle, filepath.Join(dir, "root")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(c.bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// The program's standard output, kept across restores: O_APPEND, so
	// that the restored sandbox writes after what the first one wrote.
	c.out, err = os.OpenFile(filepath.Join(dir, "stdout"), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runsc runs a runsc command with the container's flags and fails the test
// if it fails.
func (c *container) cmd(args ...string) {
	c.t.Helper()
	// Bounded, so that a runsc that hangs (seen once on kvm in a CI VM
	// pass, in TestPerfCheckpointRestore) fails the test with what it
	// said rather than stall the whole run.
	ctx, cancel := context.WithTimeout(context.Background(), sandbox.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.runsc, append(append([]string{}, c.flags...), args...)...)
	// Files, not pipes: a detached sandbox inherits them, and a pipe
	// would keep Run waiting until the sandbox exits.
	cmd.Stdout = c.out
	stderr, err := os.CreateTemp(c.dir, "stderr")
	if err != nil {
		c.t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(stderr.Name())
		out, _ := os.ReadFile(c.out.Name())
		c.t.Fatalf("runsc %s: %v (context: %v)\n%s\nprogram output so far:\n%s", strings.Join(args, " "), err, ctx.Err(), msg, out)
	}
}

func (c *container) cleanup() {
	exec.Command(c.runsc, append(append([]string{}, c.flags...), "delete", "-force", containerID)...).Run()
	c.out.Close()
	exec.Command("umount", "-l", filepath.Join(c.dir, "root", "null-netns")).Run()
	os.RemoveAll(c.dir)
}

// checkpointRestore checkpoints the container into a new image and
// restores it from that image.
func (c *container) checkpointRestore() {
	c.t.Helper()
	c.restores++
	img := filepath.Join(c.dir, fmt.Sprintf("image%d", c.restores))
	c.cmd("checkpoint", "--image-path="+img, containerID)
	c.cmd("delete", "-force", containerID)
	c.cmd("restore", "-detach", "--image-path="+img, "--bundle="+c.bundle, containerID)
}

// transcript runs the container's program and, at each of its windows
// named in at, checkpoints and restores the sandbox before it ends the
// window. It returns the program's output.
func (c *container) transcript(at map[string]bool) string {
	c.t.Helper()
	c.cmd("run", "-detach", "--bundle="+c.bundle, containerID)
	deadline := time.Now().Add(sandbox.Timeout)
	seen := 0
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(c.out.Name())
		if err != nil {
			c.t.Fatal(err)
		}
		lines := strings.SplitAfter(string(data), "\n")
		complete := lines[:len(lines)-1] // the last one is unfinished
		for ; seen < len(complete); seen++ {
			line := strings.TrimSuffix(complete[seen], "\n")
			if line == "done" {
				// Its last line. (runsc wait cannot tell the exit
				// status of a restored sandbox that has exited.)
				return string(data)
			}
			if name, ok := strings.CutPrefix(line, "window "); ok {
				if c.before != nil {
					c.before(name)
				}
				if at[name] {
					c.checkpointRestore()
				}
				c.cmd("kill", containerID, "USR1")
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	data, _ := os.ReadFile(c.out.Name())
	c.t.Fatalf("the program did not finish in %v; output so far:\n%s", sandbox.Timeout, data)
	return ""
}

// TestCheckpointRestore checkpoints and restores a sandbox whose traced
// child has a write watchpoint, on each platform with breakpoints: what the
// tracer reads of the debug registers after restore, and on hosts that
// deliver hits the hits that follow, also while the child is stopped at a
// hit during the checkpoint, must be the host kernel's.
func TestCheckpointRestore(t *testing.T) {
	sandbox.RequireRoot(t)
	prog := sandbox.BuildC(t, "testdata/crwatch.c")
	host := hostTranscript(t, prog)
	for _, tc := range []struct {
		name string
		at   map[string]bool
		hits bool
	}{
		{"registers", map[string]bool{"running": true}, false},
		{"hits", map[string]bool{"running": true, "stopped": true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hits {
				sandbox.RequireHostHits(t)
			}
			for _, p := range sandbox.HitPlatforms {
				t.Run(p, func(t *testing.T) {
					sandbox.RequirePlatform(t, p)
					c := newContainer(t, p, prog)
					got := c.transcript(tc.at)
					sandbox.CompareTranscripts(t, fmt.Sprintf("the transcript after %d checkpoint/restore cycles", c.restores), host, got)
					if c.restores == 0 {
						t.Errorf("no checkpoint was taken")
					}
				})
			}
		})
	}
}

// TestPerfCheckpointRestore checkpoints and restores a sandbox whose
// program has perf breakpoint events open on itself (counting, enabled and
// disabled, in a group, inherited by a child that lives across the
// checkpoint and one that exited before it, and one with sigtrap and a
// refresh limit), on each platform with breakpoints: the ids, counts, times
// and enabled states that the program reads after the restore, and on hosts
// that deliver hits the hits that the restored events count, the SIGTRAPs
// and the refresh limit that runs out, must be the host kernel's.
func TestPerfCheckpointRestore(t *testing.T) {
	sandbox.RequireRoot(t)
	prog := sandbox.BuildC(t, "testdata/crperf.c")
	host := hostTranscript(t, prog)
	for _, tc := range []struct {
		name string
		hits bool
	}{
		{"registers", false},
		{"hits", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hits {
				sandbox.RequireHostHits(t)
				// Where hits arrive, the transcript must show them,
				// or the comparison would prove nothing about them.
				if !strings.Contains(host, "hits: yes\n") {
					t.Fatalf("the host kernel delivered no hits to the program:\n%s", host)
				}
			}
			for _, p := range sandbox.HitPlatforms {
				t.Run(p, func(t *testing.T) {
					sandbox.RequirePlatform(t, p)
					c := newContainer(t, p, prog)
					got := c.transcript(map[string]bool{"saved": true})
					sandbox.CompareTranscripts(t, fmt.Sprintf("the transcript after %d checkpoint/restore cycles", c.restores), host, got)
					if c.restores == 0 {
						t.Errorf("no checkpoint was taken")
					}
				})
			}
		})
	}
}

// TestRingCheckpointRefused checks what a checkpoint does to a sandbox whose
// program maps a perf event's ring buffer (testdata/crring.c), which is not
// carried across one: "runsc checkpoint --leave-running" fails and says why,
// and the sandbox goes on as if nothing had happened; once the ring is
// unmapped, with the event's fd still open, the sandbox is checkpointed and
// restored, and the program's transcript is the host kernel's.
func TestRingCheckpointRefused(t *testing.T) {
	sandbox.RequireRoot(t)
	prog := sandbox.BuildC(t, "testdata/crring.c")
	host := hostTranscript(t, prog)
	for _, p := range sandbox.HitPlatforms {
		t.Run(p, func(t *testing.T) {
			sandbox.RequirePlatform(t, p)
			c := newContainer(t, p, prog)
			refused := false
			c.before = func(name string) {
				if name != "mapped" {
					return
				}
				img := filepath.Join(c.dir, "refused")
				out, err := exec.Command(c.runsc, append(append([]string{}, c.flags...), "checkpoint", "--leave-running", "--image-path="+img, containerID)...).CombinedOutput()
				if err == nil {
					t.Errorf("runsc checkpoint of a sandbox that maps a perf ring succeeded")
					return
				}
				if !strings.Contains(string(out), "ring buffer is mapped") {
					t.Errorf("runsc checkpoint failed without saying that a perf ring is mapped: %v\n%s", err, out)
				}
				refused = true
			}
			got := c.transcript(map[string]bool{"unmapped": true})
			sandbox.CompareTranscripts(t, "the transcript", host, got)
			if !refused || c.restores != 1 {
				t.Errorf("checkpoint refused: %v, restores: %d; want the refusal and one restore", refused, c.restores)
			}
		})
	}
}
