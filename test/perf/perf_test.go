// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package perf runs the same perf_event_open(PERF_TYPE_BREAKPOINT) programs
// on the host kernel and inside sandboxes booted by this repository's runsc,
// and fails on any difference between their transcripts: the host kernel is
// the specification of the guest's perf events (sentry/perf).
package perf

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// nobody is the user the attribute program drops to: the host then answers
// an unprivileged caller, which is what the sandbox answers everyone.
const nobody = "65534"

// run runs prog with args on the host (platform "") or in a sandbox and
// returns its transcript, which must end with "end".
func run(t *testing.T, platform, prog string, args ...string) string {
	t.Helper()
	var out string
	if platform == "" {
		b, err := exec.Command(prog, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v on the host: %v\n%s", prog, args, err, b)
		}
		out = string(b)
	} else {
		res := sandbox.Run(t, platform, append([]string{prog}, args...)...)
		if res.ExitCode != 0 {
			t.Fatalf("%s %v on %s: exit %d\nstdout:\n%s\nstderr:\n%s\nend of the sentry's log:\n%s", prog, args, platform, res.ExitCode, res.Stdout, res.Stderr, res.LogTail(40))
		}
		out = res.Stdout
	}
	if !strings.HasSuffix(out, "end\n") {
		t.Fatalf("transcript of %s %v on %q is incomplete:\n%s", prog, args, platform, out)
	}
	return out
}

// deliberate is what the sandbox answers, by design, where it differs from
// the host: event types other than PERF_TYPE_BREAKPOINT keep gVisor's
// ENODEV (the "type-" cases).
func deliberate(name string) (string, bool) {
	if strings.HasPrefix(name, "type-") {
		return "ENODEV", true
	}
	return "", false
}

// hostBusy reports whether a "cpuwide-" case of host reads ENOSPC: a CPU-wide
// breakpoint needs a slot next to the busiest task of the whole host, and
// another process (a systrap sandbox's stub threads, a debugger) held four
// when it ran. The sandbox's own tasks are all it answers for.
func hostBusy(host string) bool {
	for _, line := range strings.Split(host, "\n") {
		if name, outcome, _ := strings.Cut(line, ": "); strings.HasPrefix(name, "cpuwide-") && outcome == "ENOSPC" {
			return true
		}
	}
	return false
}

// expected is the host's transcript with the deliberate answers in place
// of the host's: what the sandbox must print.
func expected(host string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(host, "\n") {
		name, _, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
		if o, ok := deliberate(name); ok {
			line = name + ": " + o + "\n"
		}
		b.WriteString(line)
	}
	return b.String()
}

// compare fails t when got differs from the host's transcript, but for the
// deliberate differences.
func compare(t *testing.T, host, got string) {
	t.Helper()
	sandbox.CompareTranscripts(t, "the transcript", expected(host), got)
}

// compareOn runs prog with args on the host and on each of platforms, and
// compares each sandbox's transcript with the host's.
func compareOn(t *testing.T, platforms []string, prog string, args ...string) {
	t.Helper()
	host := run(t, "", prog, args...)
	for _, p := range platforms {
		t.Run(p, func(t *testing.T) {
			sandbox.RequirePlatform(t, p)
			compare(t, host, run(t, p, prog, args...))
		})
	}
}

// hostBusyWait is how long hostTranscript waits for the host's breakpoints
// to be free: the other test packages that make test runs at the same time
// start sandboxes whose stub threads hold four each for seconds.
const hostBusyWait = 2 * time.Minute

// hostTranscript runs prog on the host until its CPU-wide cases are not
// disturbed by other processes' breakpoints (hostBusy), every half second
// for hostBusyWait at most; it fails t if they always are.
func hostTranscript(t *testing.T, prog string, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(hostBusyWait)
	runs := 0
	for {
		out := run(t, "", prog, args...)
		runs++
		if !hostBusy(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("other processes on this host held four breakpoints during %d runs of %s over %v: its CPU-wide cases cannot be compared", runs, prog, hostBusyWait)
		}
		time.Sleep(time.Second / 2)
	}
}

// TestAttributes opens a table of attributes (testdata/perfattr.c: sizes,
// bp_type, bp_len and alignment, addresses up to and past the user address
// space, every flag, sample_type and read_format bit, pid, cpu, group_fd and
// flags, faulting pointers, slots) as an unprivileged caller on the host and
// in the sandbox, and as root in the sandbox, which must answer like the
// unprivileged host: no hits are needed, so it runs on any machine.
func TestAttributes(t *testing.T) {
	sandbox.RequireRoot(t)
	prog := sandbox.BuildC(t, "testdata/perfattr.c")
	host := hostTranscript(t, prog, nobody)
	// -p leaves out the cases that need a dropped caller (a target of
	// another user): the sandbox's root may trace it.
	hostPriv := hostTranscript(t, prog, "-p", nobody)
	for _, p := range sandbox.Platforms {
		t.Run(p, func(t *testing.T) {
			t.Run("nobody", func(t *testing.T) { compare(t, host, run(t, p, prog, nobody)) })
			t.Run("root", func(t *testing.T) { compare(t, hostPriv, run(t, p, prog, "-p")) })
		})
	}
}

// TestFDOperations compares what an event's fd answers without hits
// (testdata/fdops.c: read with every read_format and short buffers, group
// reads, write, pread, lseek, fcntl, the fd's name, the ioctls), and how
// perf events and a tracee's ptrace debug registers share its four slots.
func TestFDOperations(t *testing.T) {
	sandbox.RequireRoot(t)
	prog := sandbox.BuildC(t, "testdata/fdops.c")
	compareOn(t, sandbox.Platforms, prog)
}

// TestCounting compares counting events that hits reach through the core's
// hit path (testdata/counting.c: writes, reads, execution, enable, disable
// and reset between hits, exclude_user, four events at once, an event on a
// child that outlives it). It needs a host that delivers hits: elsewhere it
// is queued for the test VM.
func TestCounting(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	prog := sandbox.BuildC(t, "testdata/counting.c", "-lpthread")
	compareOn(t, sandbox.HitPlatforms, prog)
}

// TestSigtrap compares a program that watches its own memory with sigtrap
// events (testdata/sigtrap.c): the SIGTRAP of every overflow, its siginfo
// (TRAP_PERF, si_addr, si_perf_data, si_perf_type, si_perf_flags) and the
// instruction it interrupts, sample_period and PERF_EVENT_IOC_PERIOD,
// SIGTRAP blocked and ignored.
func TestSigtrap(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	prog := sandbox.BuildC(t, "testdata/sigtrap.c")
	compareOn(t, sandbox.HitPlatforms, prog)
}

// hostCountWrites is how many writes testdata/hostcount.c makes in each
// phase that its thread is alone: enough that a trap per hit would show,
// few enough for the platforms that trap each under the test VM's
// emulation.
const hostCountWrites = 5000

// TestHostCounting runs testdata/hostcount.c, a counting event (no
// sampling) on the program's own thread over its writes while it is alone
// in its address space, while a second thread writes too, and alone again:
// the counts must be the host kernel's, and on systrap and ptrace the hits
// of the first phase at least must have been counted by the host without a
// trap each (the /hwbp/hits_counted metric; on systrap, when the third
// phase starts, the exited thread may still hold the address space for a
// moment, and its hits then trap). kvm traps every hit.
func TestHostCounting(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	prog := sandbox.BuildC(t, "testdata/hostcount.c", "-lpthread")
	arg := fmt.Sprint(hostCountWrites)
	host := run(t, "", prog, arg)
	for _, p := range sandbox.HitPlatforms {
		t.Run(p, func(t *testing.T) {
			sandbox.RequirePlatform(t, p)
			s := sandbox.Start(t, p, prog, arg)
			var got strings.Builder
			for {
				line := s.ReadLine(t)
				got.WriteString(line + "\n")
				if line == "ready" {
					break
				}
			}
			m := s.Metrics(t)
			rest, code := s.Finish(t)
			got.WriteString(rest)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, got.String())
			}
			compare(t, host, got.String())
			counted := m["hits_counted"]
			t.Logf("hits %d, counted by the host %d", m["hits"], counted)
			if p != sandbox.KVM && counted < hostCountWrites || p == sandbox.KVM && counted != 0 {
				t.Errorf("%d hits counted by the host on %s, want at least %d on systrap and ptrace, 0 on kvm", counted, p, hostCountWrites)
			}
		})
	}
}

// perfOnLoop returns Linux's perf tool, testdata/loop.c built without PIE
// (and with cflags),
// and the perf event of a user-mode write watchpoint on the word that it
// writes ("mem:ADDR:wu"), for the tests that run perf over the loop on the
// host and in the sandbox. It skips t where there is no perf, and where
// hits need the test VM.
func perfOnLoop(t *testing.T, cflags ...string) (perfTool, prog, event string) {
	t.Helper()
	perfTool, err := exec.LookPath("perf")
	if err != nil {
		t.Skipf("no perf on this machine (Debian's linux-perf): %v", err)
	}
	sandbox.RequireHostHits(t)
	prog = sandbox.BuildC(t, "testdata/loop.c", append([]string{"-no-pie"}, cflags...)...)
	addr, err := exec.Command(prog, "addr").Output()
	if err != nil {
		t.Fatalf("%s addr: %v", prog, err)
	}
	return perfTool, prog, "mem:" + strings.TrimSpace(string(addr)) + ":wu"
}

// TestPerfStat runs Linux's perf tool, "perf stat -e mem:ADDR:wu" over a
// loop of 1,000 writes (testdata/loop.c; few, since hits are slow under the
// test VM's emulation), on the host and in the sandbox: the counts must be
// equal. perf opens the event on the forked
// workload, disabled with enable_on_exec and inherit, and reads it after
// the workload exits.
func TestPerfStat(t *testing.T) {
	sandbox.RequireRoot(t)
	perfTool, prog, event := perfOnLoop(t)
	argv := []string{perfTool, "stat", "-x,", "-e", event, "--", prog, "1000"}
	count := func(out string) string {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Split(line, ","); len(f) > 2 && strings.HasPrefix(f[2], "mem:") {
				return f[0]
			}
		}
		t.Fatalf("no count in perf's output:\n%s", out)
		return ""
	}
	b, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("perf stat on the host: %v\n%s", err, b)
	}
	host := count(string(b))
	if host != "1000" {
		t.Fatalf("perf stat on the host counted %s writes, want 1000", host)
	}
	for _, p := range sandbox.HitPlatforms {
		t.Run(p, func(t *testing.T) {
			sandbox.RequirePlatform(t, p)
			res := sandbox.Run(t, p, argv...)
			if res.ExitCode != 0 {
				t.Fatalf("perf stat on %s: exit %d\n%s%s", p, res.ExitCode, res.Stdout, res.Stderr)
			}
			if got := count(res.Stdout + res.Stderr); got != host {
				t.Errorf("perf stat counted %s writes on %s, %s on the host", got, p, host)
			}
		})
	}
}

// TestDeliberateDifferences checks the comparison itself: a sandbox line
// that differs from the host's fails, and one of the deliberate cases passes
// only with gVisor's answer.
func TestDeliberateDifferences(t *testing.T) {
	host := "size-ver7: ok\ntype-software: ok\nend\n"
	for _, tc := range []struct {
		got    string
		differ bool
	}{
		{"size-ver7: ok\ntype-software: ENODEV\nend\n", false},
		{"size-ver7: EINVAL\ntype-software: ENODEV\nend\n", true},
		{"size-ver7: ok\ntype-software: ok\nend\n", true},
		{"size-ver7: ok\nend\n", true},
	} {
		if got := expected(host) != tc.got; got != tc.differ {
			t.Errorf("%q differs from expected(%q): %v, want %v", tc.got, host, got, tc.differ)
		}
	}
	if !hostBusy("cpuwide-x: ENOSPC\nend\n") || hostBusy("cpuwide-x: EACCES\nend\n") {
		t.Errorf("hostBusy does not tell a disturbed CPU-wide case")
	}
}
