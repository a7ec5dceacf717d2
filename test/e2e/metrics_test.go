package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// TestMetrics checks that hwbp's counters are gVisor metrics that
// "runsc export-metrics" reads from a running sandbox: while a traced child
// has four armed watchpoints, four events are enabled, one thread holds
// state, and on systrap the back end holds host perf event fds for them
// (none on ptrace, which uses the stub thread's debug registers).
func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		platform string
		hostFDs  func(int) bool
	}{
		{"systrap", func(n int) bool { return n > 0 }},
		{"ptrace", func(n int) bool { return n == 0 }},
	} {
		t.Run(tc.platform, func(t *testing.T) {
			runsc := sandbox.Runsc(t)
			prog := sandbox.BuildC(t, "testdata/armed.c")
			// runsc do keeps its containers' state in a temporary
			// directory, which a private TMPDIR makes findable.
			tmp := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), sandbox.Timeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, runsc, "--network=none", "--platform="+tc.platform, "do", prog)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if line != "ready\n" {
				t.Fatalf("program said %q (%v); stderr:\n%s", line, err, stderr.String())
			}
			roots, _ := filepath.Glob(filepath.Join(tmp, "runsc-do*"))
			if len(roots) != 1 {
				t.Fatalf("runsc do state directories: %v", roots)
			}
			out, err := exec.Command(runsc, "--root="+roots[0], "list", "--quiet").Output()
			id := strings.TrimSpace(string(out))
			if err != nil || id == "" {
				t.Fatalf("runsc list: %q, %v", out, err)
			}
			out, err = exec.Command(runsc, "--root="+roots[0], "export-metrics", id).Output()
			if err != nil {
				t.Fatalf("runsc export-metrics: %v", err)
			}
			values := map[string]int{}
			for _, m := range regexp.MustCompile(`(?m)^runsc_hwbp_(\w+)\{[^}]*\} (\d+)`).FindAllStringSubmatch(string(out), -1) {
				values[m[1]], _ = strconv.Atoi(m[2])
			}
			if values["events_enabled"] != 4 || values["threads"] != 1 || !tc.hostFDs(values["host_fds"]) {
				t.Errorf("hwbp metrics %v, want 4 events enabled, 1 thread, host fds as the platform needs; export:\n%s", values, out)
			}
		})
	}
}
