// Package gdb runs scripted gdb sessions with hardware watchpoints and
// breakpoints on the host kernel and inside sandboxes booted by this
// repository's runsc, and fails if the sessions' output differs once
// run-specific details (pids, thread IDs, addresses) are normalized.
package gdb

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// commands returns the commands of a script, which are passed as separate
// -ex options: unlike -x, gdb goes on after a command that fails, such as
// a watchpoint it cannot insert.
func commands(t *testing.T, script string) []string {
	f, err := os.Open(script)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var args []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		args = append(args, "-ex", line)
	}
	return args
}

var (
	// dropped are lines that depend on the environment, not on the
	// debugging: gVisor does not let gdb disable ASLR, libthread_db
	// notices, and the notices of threads that exit as the process ends,
	// which depend on whether gdb reaps the last worker before the main
	// thread's exit_group: on Linux 6.1 in the test VM the same session
	// printed one "[Thread ... exited]" line in most runs and two plus
	// "[New process N]" in others, and so did the sandbox.
	dropped  = regexp.MustCompile(`^(warning: Error disabling address space randomization|\[Thread debugging using libthread_db|Using host libthread_db|\[Thread 0x[0-9a-f]+ \(LWP \d+\) exited\]$|\[New process \d+\]$)`)
	rewrites = []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(`0x[0-9a-f]+`), "ADDR"},
		{regexp.MustCompile(`process \d+`), "process PID"},
		{regexp.MustCompile(`LWP \d+`), "LWP N"},
	}
)

func normalize(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if dropped.MatchString(line) {
			continue
		}
		for _, r := range rewrites {
			line = r.re.ReplaceAllString(line, r.with)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
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
			args := append(append([]string{"-nx", "-batch"}, commands(t, abs)...), bin)
			// gdb's exit status reflects its last command only; the
			// output is what matters. Standard output and error are
			// compared separately: their interleaving depends on
			// buffering.
			cmd := exec.Command(gdb, args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			_ = cmd.Run()
			host := normalize(stdout.String())
			if !strings.Contains(host, "exited normally") {
				t.Fatalf("the host session did not run to its end:\n%s\n%s", host, stderr.String())
			}
			for _, p := range sandbox.HitPlatforms {
				t.Run(p, func(t *testing.T) {
					res := sandbox.Run(t, p, append([]string{gdb}, args...)...)
					if got := normalize(res.Stdout); got != host {
						t.Errorf("gdb's output differs from the host's.\nhost:\n%s\nsandbox:\n%s", host, got)
					}
					if got, want := normalize(res.Stderr), normalize(stderr.String()); got != want {
						t.Errorf("gdb's errors differ from the host's.\nhost:\n%s\nsandbox:\n%s", want, got)
					}
				})
			}
		})
	}
}
