// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeRunsc writes a runsc stand-in that counts its runs in a file and,
// for the runs listed in shutdowns (1 is the first), leaves the KVM
// platform's vCPU shutdown message in the boot log of its --debug-log
// directory and exits 139, as the sentry does; other runs print "ok" and
// exit with status. It returns the script and the counter file.
func fakeRunsc(t *testing.T, status int, shutdowns ...int) (string, string) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	var cases strings.Builder
	for _, n := range shutdowns {
		cases.WriteString(strconv.Itoa(n) + ") shutdown=1 ;; ")
	}
	script := `#!/bin/sh
n=$(( $(cat ` + count + ` 2>/dev/null || echo 0) + 1 ))
echo $n > ` + count + `
shutdown=
case $n in ` + cases.String() + `*) ;; esac
for a; do
	case $a in --debug-log=*) log=${a#--debug-log=} ;; esac
done
if [ -n "$shutdown" ]; then
	printf '%s\nFATAL: rip =  000000000000fff0\n' "` + vcpuShutdown + `: 0000000000000000" > "${log}runsc.log.1.boot.txt"
	exit 139
fi
echo "I the sentry ran" > "${log}runsc.log.1.boot.txt"
echo ok
exit ` + strconv.Itoa(status) + "\n"
	path := filepath.Join(dir, "runsc")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, count
}

func TestRunWithVCPUShutdown(t *testing.T) {
	for _, tc := range []struct {
		name      string
		emulated  string
		platform  string
		status    int
		shutdowns []int
		// runs is how many times runsc ran, and exit and stdout the
		// result RunWith returned.
		runs   int
		exit   int
		stdout string
	}{
		{name: "a vCPU shutdown under emulation runs the sandbox once more", emulated: "qemu-tcg", platform: KVM, shutdowns: []int{1}, runs: 2, exit: 0, stdout: "ok\n"},
		{name: "a second vCPU shutdown is the result", emulated: "qemu-tcg", platform: KVM, shutdowns: []int{1, 2}, runs: 2, exit: 139},
		{name: "a vCPU shutdown on a real KVM host is the result", platform: KVM, shutdowns: []int{1}, runs: 1, exit: 139},
		{name: "another failure is the result", emulated: "qemu-tcg", platform: KVM, status: 1, runs: 1, exit: 1, stdout: "ok\n"},
		{name: "other platforms run once", emulated: "qemu-tcg", platform: "systrap", shutdowns: []int{1}, runs: 1, exit: 139},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HWBP_EMULATED", tc.emulated)
			runsc, count := fakeRunsc(t, tc.status, tc.shutdowns...)
			res := RunWith(t, Options{Runsc: runsc}, tc.platform, "/bin/true")
			b, err := os.ReadFile(count)
			if err != nil {
				t.Fatal(err)
			}
			if runs, _ := strconv.Atoi(strings.TrimSpace(string(b))); runs != tc.runs || res.ExitCode != tc.exit || res.Stdout != tc.stdout {
				t.Errorf("runs %d, exit %d, stdout %q; want runs %d, exit %d, stdout %q", runs, res.ExitCode, res.Stdout, tc.runs, tc.exit, tc.stdout)
			}
		})
	}
}
