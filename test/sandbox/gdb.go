// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
)

// GDBCommands returns the commands of the gdb script at path, for gdb's
// -ex options: unlike -x, gdb goes on after a command that fails, such as
// a watchpoint it cannot insert. Blank lines and # comments are left out.
func GDBCommands(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
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
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return args
}

var (
	// gdbDropped are lines of a gdb session that depend on the
	// environment, not on the debugging: gVisor does not let gdb disable
	// ASLR, libthread_db notices, and the notices of threads that exit as
	// the process ends, which depend on whether gdb reaps the last worker
	// before the main thread's exit_group: on Linux 6.1 in the test VM
	// the same session printed one "[Thread ... exited]" line in most runs
	// and two plus "[New process N]" in others, and so did the sandbox.
	gdbDropped  = regexp.MustCompile(`^(warning: Error disabling address space randomization|\[Thread debugging using libthread_db|Using host libthread_db|\[Thread 0x[0-9a-f]+ \(LWP \d+\) exited\]$|\[New process \d+\]$)`)
	gdbRewrites = []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(`0x[0-9a-f]+`), "ADDR"},
		{regexp.MustCompile(`process \d+`), "process PID"},
		{regexp.MustCompile(`LWP \d+`), "LWP N"},
	}
)

// NormalizeGDB returns gdb's output without what differs from run to run
// (pids, thread IDs, addresses) or with the environment, so that sessions
// on the host kernel and in a sandbox compare equal when the debugging went
// the same way.
func NormalizeGDB(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if gdbDropped.MatchString(line) {
			continue
		}
		for _, r := range gdbRewrites {
			line = r.re.ReplaceAllString(line, r.with)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}
