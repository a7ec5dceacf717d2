// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/gvisor-hwbp/hwbp/plugin/operator"
	"github.com/gvisor-hwbp/hwbp/plugin/status"
	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// seccompKey finds the seccomp configuration that the sentry logs when it
// builds its filter; the plugin's wrapped platforms add "+hwbp" to its
// platform's name there.
var seccompKey = regexp.MustCompile(`No precompiled program found for config options (.*), building`)

// TestHwbpFlag checks the runsc flag that turns hwbp off: with --hwbp=false
// the guest sees stock gVisor (the same transcript as gVisor's own runsc),
// and the sentry has nothing of the plugin; by default, or with
// --hwbp=true, the guest sees Linux (the host kernel's transcript).
func TestHwbpFlag(t *testing.T) {
	prog := sandbox.BuildC(t, "testdata/debugregs.c")
	b, err := exec.Command(prog).CombinedOutput()
	if err != nil {
		t.Fatalf("debugregs on the host: %v\n%s", err, b)
	}
	host := string(b)
	stock := sandbox.StockRunsc(t)
	for _, p := range sandbox.Platforms {
		t.Run(p, func(t *testing.T) {
			stockRes := sandbox.RunWith(t, sandbox.Options{Runsc: stock}, p, prog)
			if stockRes.ExitCode != 0 {
				t.Fatalf("stock runsc: exit %d\nstdout:\n%s\nstderr:\n%s", stockRes.ExitCode, stockRes.Stdout, stockRes.Stderr)
			}
			// What the off cases compare with is what the issue
			// says stock gVisor does: debug registers read 0.
			for _, line := range []string{"peek DR0 -> 0x0\n", "peek DR7 -> 0x0\n"} {
				if !strings.Contains(stockRes.Stdout, line) {
					t.Fatalf("stock gVisor's transcript has no %q:\n%s", line, stockRes.Stdout)
				}
			}
			for _, tc := range []struct {
				name  string
				flags []string
				// want is the transcript the guest must see.
				want string
				// on tells whether the plugin must be in the sentry.
				on bool
			}{
				{name: "hwbp is on by default: the guest sees Linux's debug registers", want: host, on: true},
				{name: "--hwbp=true is the default", flags: []string{"--hwbp=true"}, want: host, on: true},
				{name: "--hwbp=false gives the guest stock gVisor's debug registers and system calls", flags: []string{"--hwbp=false"}, want: stockRes.Stdout},
				{name: "--hwbp=false reaches the sentry among other global flags in two-argument form", flags: []string{"--root", t.TempDir(), "--hwbp=false", "--log-format", "text"}, want: stockRes.Stdout},
			} {
				t.Run(tc.name, func(t *testing.T) {
					res := sandbox.RunWith(t, sandbox.Options{Flags: tc.flags}, p, prog)
					if res.ExitCode != 0 {
						t.Fatalf("runsc %v: exit %d\nstdout:\n%s\nstderr:\n%s", tc.flags, res.ExitCode, res.Stdout, res.Stderr)
					}
					if res.Stdout != tc.want {
						t.Errorf("runsc %v: the guest's transcript\n%s\nwant\n%s", tc.flags, res.Stdout, tc.want)
					}
					log, err := res.BootLog()
					if err != nil {
						t.Fatal(err)
					}
					if got := strings.Contains(log, status.StartMessage); got != tc.on {
						t.Errorf("runsc %v: the sentry's log has %q: %v, want %v", tc.flags, status.StartMessage, got, tc.on)
					}
					// gVisor hands the sentry the flag with the rest
					// of its configuration, before the subcommand,
					// where it is not the default (Config.ToFlags).
					off := "--" + operator.Name + "=false"
					given := regexp.MustCompile(`Args: \[runsc-sandbox (\S+ )*` + regexp.QuoteMeta(off) + ` (\S+ )*boot `).MatchString(log)
					if given == tc.on {
						t.Errorf("runsc %v: the sentry's command line in its log gives %s among its global flags: %v, want %v", tc.flags, off, given, !tc.on)
					}
					// On systrap the plugin adds host system calls to the
					// sentry's seccomp filter, and marks its configuration.
					if p == "systrap" {
						m := seccompKey.FindStringSubmatch(log)
						if m == nil {
							t.Fatalf("the sentry's log has no seccomp configuration")
						}
						if got := strings.Contains(m[1], "+hwbp"); got != tc.on {
							t.Errorf("runsc %v: the sentry's seccomp configuration %s has hwbp's rules: %v, want %v", tc.flags, m[1], got, tc.on)
						}
					}
				})
			}
		})
	}
}

// TestHwbpFlagParsing checks that the plugin reads --hwbp from a runsc
// command line as runsc reads it: for every global flag that runsc lists
// ("runsc flags"), a value in the next argument is skipped and a boolean
// takes none, so that the flag after them is still found.
func TestHwbpFlagParsing(t *testing.T) {
	runsc := sandbox.Runsc(t)
	out, err := exec.Command(runsc, "flags").CombinedOutput()
	if err != nil {
		t.Fatalf("runsc flags: %v\n%s", err, out)
	}
	// "  -name" for a boolean, "  -name TYPE" for a flag with a value.
	line := regexp.MustCompile(`(?m)^  -(\S+)( \S+)?$`)
	flags := line.FindAllStringSubmatch(string(out), -1)
	if len(flags) < 50 {
		t.Fatalf("runsc flags lists %d flags:\n%s", len(flags), out)
	}
	for _, f := range flags {
		name, isBool := f[1], f[2] == ""
		if name == operator.Name {
			continue
		}
		t.Run(name, func(t *testing.T) {
			args := []string{"-" + name}
			if !isBool {
				args = append(args, "VALUE")
			}
			args = append(args, "--"+operator.Name+"=false", "create", "id")
			s, err := operator.Parse(args)
			if err != nil || !s.Given || s.Enabled || s.Command != "create" {
				t.Fatalf("Parse(%q) = %+v, %v; want --%s=false given, subcommand create", args, s, err, operator.Name)
			}
		})
	}
}
