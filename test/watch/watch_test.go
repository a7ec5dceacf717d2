// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package watch tests "runsc watch" end to end: a program in a real sandbox
// is watched from the host, and what the watch reports is compared with
// what the program did and with the host kernel's perf mem: events of the
// same program.
package watch

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// writes is how many times the program writes its counter.
const writes = 25

// hit is a line of runsc watch --format=json.
type hit struct {
	Time      string `json:"time"`
	Container string `json:"container"`
	PID       int32  `json:"pid"`
	TID       int32  `json:"tid"`
	Comm      string `json:"comm"`
	Access    string `json:"access"`
	Addr      string `json:"addr"`
	Symbol    string `json:"symbol"`
	Len       uint64 `json:"len"`
	Value     string `json:"value"`
	IP        string `json:"ip"`
	IPSymbol  string `json:"ip_symbol"`
}

// program builds testdata/counter.c, not position-independent so that its
// counter has the same address on the host and in the sandbox, and returns
// its path and the counter's address.
func program(t *testing.T) (string, uint64) {
	t.Helper()
	prog := sandbox.BuildC(t, "testdata/counter.c", "-no-pie")
	f, err := elf.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == "counter" {
			return prog, s.Value
		}
	}
	t.Fatalf("%s has no symbol counter", prog)
	return "", 0
}

// onHitPlatforms runs f in a subtest for each platform that delivers hits,
// as root, where the host delivers them (kvm's in the test VM).
func onHitPlatforms(t *testing.T, f func(t *testing.T, p string)) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	for _, p := range sandbox.HitPlatforms {
		t.Run(p, func(t *testing.T) {
			sandbox.RequirePlatform(t, p)
			f(t, p)
		})
	}
}

// startReady starts argv on platform p and returns once the program has
// printed "ready".
func startReady(t *testing.T, p string, argv ...string) *sandbox.Started {
	t.Helper()
	s := sandbox.Start(t, p, argv...)
	if line := s.ReadLine(t); line != "ready" {
		t.Fatalf("program: %q", line)
	}
	return s
}

// startWatch runs runsc watch with args (CID stands for s's container ID)
// for s's sandbox and returns once the watch is armed.
func startWatch(t *testing.T, s *sandbox.Started, args ...string) *sandbox.Watch {
	t.Helper()
	cid := s.ContainerID(t)
	argv := append([]string{"watch"}, args...)
	for i, a := range argv {
		argv[i] = strings.ReplaceAll(a, "CID", cid)
	}
	return sandbox.StartWatch(t, s.Command(argv...))
}

// TestWatchReportsEveryWrite watches the counter of a program by its
// symbol: runsc watch reports each of its writes, with the value written
// and the instruction after the write in bump, the program's output and
// exit status are those of a run without the watch, and the watch ends,
// with its summary, when the program exits.
func TestWatchReportsEveryWrite(t *testing.T) {
	prog, addr := program(t)
	onHitPlatforms(t, func(t *testing.T, p string) {
		base := startReady(t, p, prog, strconv.Itoa(writes))
		base.WriteLine(t, "go")
		wantOut, wantStatus := base.Finish(t)

		s := startReady(t, p, prog, strconv.Itoa(writes))
		cid := s.ContainerID(t)
		w := startWatch(t, s, "--format=json", "CID", "counter")
		if want := fmt.Sprintf("watching %#x (counter+0x0), 8 bytes, access w, in process 1", addr); !strings.HasPrefix(w.Start, want) {
			t.Errorf("watch started with %q, want %q...", w.Start, want)
		}
		s.WriteLine(t, "go")
		// The program exits at the end of its input, once every
		// hit is read: a hit that the sentry queued when runsc
		// do's sandbox ends with the program is lost
		// (docs/watch.md).
		lines := w.Read(t, writes)
		out, status := s.Finish(t)
		if out != wantOut || status != wantStatus {
			t.Errorf("watched, the program printed %q and exited %d; unwatched, %q and %d", out, status, wantOut, wantStatus)
		}
		more, summary := w.Finish(t)
		if len(more) != 0 {
			t.Errorf("%d hits more than the program's writes:\n%s", len(more), strings.Join(more, "\n"))
		}
		// The sandbox of runsc do ends with the program, maybe
		// before the watch's last read learns that its threads
		// exited.
		if want := fmt.Sprintf(`^watch ended: the (watched threads|sandbox) exited; %d hits \(pid 1: %d\)$`, writes, writes); !regexp.MustCompile(want).MatchString(summary) {
			t.Errorf("summary %q, want %q", summary, want)
		}
		for i, l := range lines {
			var h hit
			if err := json.Unmarshal([]byte(l), &h); err != nil {
				t.Fatalf("hit %d: %v: %q", i, err, l)
			}
			want := hit{
				Time: h.Time, Container: cid, PID: 1, TID: 1, Comm: "counter", Access: "w",
				Addr: fmt.Sprintf("%#x", addr), Symbol: "counter+0x0", Len: 8,
				Value: fmt.Sprintf("0x%016x", 3*(i+1)), IP: h.IP, IPSymbol: h.IPSymbol,
			}
			if h != want || !strings.HasPrefix(h.IPSymbol, "bump+0x") {
				t.Errorf("hit %d = %+v\nwant %+v with ip_symbol bump+...", i, h, want)
			}
			if _, err := time.Parse(time.RFC3339Nano, h.Time); err != nil {
				t.Errorf("hit %d: time %q: %v", i, h.Time, err)
			}
		}
		t.Log(lines[0])
		t.Run("perf", func(t *testing.T) { comparePerf(t, prog, addr, lines) })
	})
}

// comparePerf runs prog on the host under perf record -e mem:ADDR/8:w and
// checks that perf script lists the hits that runsc watch reported: as
// many, at the same instruction pointers, in the same functions.
func comparePerf(t *testing.T, prog string, addr uint64, lines []string) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		t.Skipf("no perf on the host for the differential check (apt-get install linux-perf): %v", err)
	}
	data := filepath.Join(t.TempDir(), "perf.data")
	rec := exec.Command(perf, "record", "-q", "-o", data, "-e", fmt.Sprintf("mem:%#x/8:w", addr), "--", prog, strconv.Itoa(writes))
	rec.Stdin = strings.NewReader("go\n")
	if out, err := rec.CombinedOutput(); err != nil {
		if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 7 {
			t.Fatalf("perf record: %v\n%s", err, out)
		}
	}
	out, err := exec.Command(perf, "script", "-i", data, "-F", "ip,sym").Output()
	if err != nil {
		t.Fatalf("perf script: %v", err)
	}
	var host []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			t.Fatalf("perf script line %q", l)
		}
		ip, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			t.Fatalf("perf script line %q: %v", l, err)
		}
		if ip >= 1<<47 {
			// The kernel's own write of the counter at exec
			// (clearing .bss), before the sandbox's watch
			// would start: not the program's.
			continue
		}
		host = append(host, fmt.Sprintf("%#x %s", ip, f[1]))
	}
	var sandboxed []string
	for _, l := range lines {
		var h hit
		json.Unmarshal([]byte(l), &h)
		sym, _, _ := strings.Cut(h.IPSymbol, "+")
		sandboxed = append(sandboxed, h.IP+" "+sym)
	}
	if strings.Join(host, "\n") != strings.Join(sandboxed, "\n") {
		t.Errorf("perf on the host:\n%s\nrunsc watch:\n%s", strings.Join(host, "\n"), strings.Join(sandboxed, "\n"))
	}
}

// TestWatchHoldsASlotInvisibly watches the counter of a program that then
// forks a traced child (watched too, as perf's inherit would) and writes
// its debug registers: with the watch holding one of the child's four
// slots, its tracer's fourth watchpoint gets ENOSPC, as next to a pinned
// breakpoint on Linux; PEEKUSR shows DR6 as without a watch, and the
// child's writes make no stop and no SIGTRAP. Once Ctrl-C has ended the
// watch, four succeed, and the sandbox holds no event and no host fd.
func TestWatchHoldsASlotInvisibly(t *testing.T) {
	prog, _ := program(t)
	onHitPlatforms(t, func(t *testing.T, p string) {
		s := startReady(t, p, prog, strconv.Itoa(writes), "slots")
		w := startWatch(t, s, "CID", "counter")
		s.WriteLine(t, "go")
		var watched []string
		for {
			line := s.ReadLine(t)
			if line == "stage 2" {
				break
			}
			watched = append(watched, line)
		}
		// As on Linux beside a pinned breakpoint: the fourth
		// ptrace breakpoint, registered (disabled) at the write
		// of DR3, finds no slot, and so does DR7's write that
		// would enable it, which leaves DR7 as it was.
		if want := []string{
			"watched: poke dr3: No space left on device",
			"watched: four guest watchpoints: No space left on device",
			"watched: dr6 0xffff0ff0 dr7 0",
			"child exited 0",
		}; strings.Join(watched, "\n") != strings.Join(want, "\n") {
			t.Errorf("under the watch, the tracer saw:\n%s\nwant:\n%s", strings.Join(watched, "\n"), strings.Join(want, "\n"))
		}
		if err := w.Cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		lines, summary := w.Finish(t)
		if want := fmt.Sprintf("watch ended: interrupt (SIGINT); %d hits (pid 2: %d)", writes, writes); summary != want {
			t.Errorf("summary %q, want %q", summary, want)
		}
		hitRE := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6} pid 2 tid 2 \(counter\) w 0x[0-9a-f]+ counter\+0x0 = (0x[0-9a-f]{16}) at bump\+0x[0-9a-f]+ \(0x[0-9a-f]+\)$`)
		for i, l := range lines {
			m := hitRE.FindStringSubmatch(l)
			if m == nil || m[1] != fmt.Sprintf("0x%016x", 3*(i+1)) {
				t.Errorf("hit %d: %q, want the child's write of %d", i, l, 3*(i+1))
			}
		}
		if len(lines) != writes {
			t.Errorf("%d hits, want %d", len(lines), writes)
		}
		metrics := s.Metrics(t)
		if metrics["events_enabled"] != 0 || metrics["host_fds"] != 0 {
			t.Errorf("after the watch: %d events enabled, %d host fds", metrics["events_enabled"], metrics["host_fds"])
		}
		s.WriteLine(t, "go")
		for _, want := range []string{"unwatched: four guest watchpoints: ok", "unwatched: dr6 0xffff0ff0 dr7 0xdddd0055"} {
			if line := s.ReadLine(t); line != want {
				t.Errorf("after the watch: %q, want %q", line, want)
			}
		}
		out, status := s.Finish(t)
		if want := fmt.Sprintf("counter %d, sigtraps 0\n", 3*writes); out != want || status != 7 {
			t.Errorf("the program ended with %q, status %d; want %q, 7", out, status, want)
		}
	})
}

// TestWatchEndsAtCountAndDuration ends one watch at --count hits and
// another, in the same process, at --duration: each says why, and the
// sandbox holds no event and no host fd after them.
func TestWatchEndsAtCountAndDuration(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	prog, _ := program(t)
	p := sandbox.Platforms[0]
	s := startReady(t, p, prog, strconv.Itoa(writes))
	w := startWatch(t, s, "--count=3", "CID", "counter")
	s.WriteLine(t, "go")
	if line, want := s.ReadLine(t), fmt.Sprintf("counter %d, sigtraps 0", 3*writes); line != want {
		t.Errorf("program: %q, want %q", line, want)
	}
	lines, summary := w.Finish(t)
	if want := "watch ended: count of 3 hits reached; 3 hits (pid 1: 3)"; summary != want || len(lines) != 3 {
		t.Errorf("--count=3: %d hits, summary %q; want 3 hits and %q", len(lines), summary, want)
	}
	// The program waits for the end of its input: nothing more hits.
	// The container is named by a prefix of its ID, as runsc allows.
	start := time.Now()
	w = startWatch(t, s, "--duration=1s", s.ContainerID(t)[:len("runsc-")+2], "counter")
	lines, summary = w.Finish(t)
	if want := "watch ended: --duration=1s; 0 hits"; summary != want || len(lines) != 0 {
		t.Errorf("--duration=1s: %d hits, summary %q; want none and %q", len(lines), summary, want)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("--duration=1s ended after %v", d)
	}
	metrics := s.Metrics(t)
	if metrics["events_enabled"] != 0 || metrics["host_fds"] != 0 {
		t.Errorf("after the watches: %d events enabled, %d host fds", metrics["events_enabled"], metrics["host_fds"])
	}
	if _, status := s.Finish(t); status != 7 {
		t.Errorf("the program exited %d, want 7", status)
	}
}

// TestWatchRefusesBadInput gives runsc watch what it cannot watch: each
// fails with a message that says why, and leaves no event in the sandbox.
func TestWatchRefusesBadInput(t *testing.T) {
	sandbox.RequireRoot(t)
	prog, addr := program(t)
	s := startReady(t, sandbox.Platforms[0], prog, strconv.Itoa(writes))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"no-such-container", "counter"}, `container "no-such-container"`},
		{[]string{"--pid=99", "CID", "counter"}, "no process 99"},
		{[]string{"CID", "countr"}, `symbol "countr" not found in the executable; near names: counter`},
		{[]string{"CID", "0xffffffffff600000"}, "outside the user address space of process 1"},
		{[]string{"--len=8", "CID", "counter+4"}, fmt.Sprintf("address %#x is not aligned to the length 8", addr+4)},
		{[]string{"--len=4", "CID", fmt.Sprintf("%#x", addr+2)}, fmt.Sprintf("address %#x is not aligned to the length 4", addr+2)},
		{[]string{"--len=3", "CID", "counter"}, "length 3: x86 debug registers watch 1, 2, 4 or 8 bytes"},
		{[]string{"--len=16", "CID", "counter"}, "length 16: x86 debug registers watch 1, 2, 4 or 8 bytes"},
		{[]string{"--access=x", "--len=8", "CID", "bump"}, "an execution watch (--access=x) has length 1, not 8"},
		{[]string{"--access=r", "CID", "counter"}, "--access=r: want w, rw or x"},
	} {
		cid := s.ContainerID(t)
		argv := []string{"watch"}
		for _, a := range c.args {
			argv = append(argv, strings.ReplaceAll(a, "CID", cid))
		}
		out, err := s.Command(argv...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("runsc %s: %v, %q; want a failure that says %q", strings.Join(argv, " "), err, out, c.want)
		}
	}
	if m := s.Metrics(t); m["events_enabled"] != 0 || m["threads"] != 0 {
		t.Errorf("after the refusals: %d events enabled, %d threads with state", m["events_enabled"], m["threads"])
	}
	s.WriteLine(t, "go")
	if _, status := s.Finish(t); status != 7 {
		t.Errorf("the program exited %d, want 7", status)
	}
}

// TestWatchExecution watches the execution of bump's first instruction:
// one hit per call, reported at the instruction itself, and the program,
// which runs on past each hit (with RF set, as Linux resumes after an
// execution breakpoint), prints what it prints unwatched.
func TestWatchExecution(t *testing.T) {
	prog, _ := program(t)
	onHitPlatforms(t, func(t *testing.T, p string) {
		s := startReady(t, p, prog, strconv.Itoa(writes))
		w := startWatch(t, s, "--access=x", "--format=json", "CID", "bump")
		s.WriteLine(t, "go")
		if line, want := s.ReadLine(t), fmt.Sprintf("counter %d, sigtraps 0", 3*writes); line != want {
			t.Errorf("program: %q, want %q", line, want)
		}
		lines := w.Read(t, writes)
		for i, l := range lines {
			var h hit
			if err := json.Unmarshal([]byte(l), &h); err != nil {
				t.Fatalf("hit %d: %v: %q", i, err, l)
			}
			if h.Access != "x" || h.Symbol != "bump+0x0" || h.IPSymbol != "bump+0x0" || h.IP != h.Addr || h.Len != 1 {
				t.Errorf("hit %d = %+v, want an execution of bump+0x0 at its address", i, h)
			}
		}
		if _, status := s.Finish(t); status != 7 {
			t.Errorf("the program exited %d, want 7", status)
		}
		if more, _ := w.Finish(t); len(more) != 0 {
			t.Errorf("%d hits more than bump's calls", len(more))
		}
	})
}

// TestWatchRefusesAFullThread starts a watch on a program whose thread's
// four debug registers are held by its own perf_event_open events: runsc
// watch fails, saying who holds them, and changes nothing: the program's
// events count its writes as before, and it sees no SIGTRAP.
func TestWatchRefusesAFullThread(t *testing.T) {
	prog, _ := program(t)
	onHitPlatforms(t, func(t *testing.T, p string) {
		s := startReady(t, p, prog, strconv.Itoa(writes), "full")
		before := s.Metrics(t)
		out, err := s.Command("watch", s.ContainerID(t), "counter").CombinedOutput()
		want := "no free debug register: 4 of its 4 slots are held by the guest (ptrace or perf_event_open), 0 by host watches"
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("runsc watch: %v, %q; want a failure that says %q", err, out, want)
		}
		after := s.Metrics(t)
		if after["events_enabled"] != before["events_enabled"] || after["host_fds"] != before["host_fds"] {
			t.Errorf("the refused watch changed the sandbox: events enabled %d -> %d, host fds %d -> %d",
				before["events_enabled"], after["events_enabled"], before["host_fds"], after["host_fds"])
		}
		s.WriteLine(t, "go")
		for _, want := range []string{"guest events: 1 1 1 1", fmt.Sprintf("counter %d, sigtraps 0", 3*writes)} {
			if line := s.ReadLine(t); line != want {
				t.Errorf("program: %q, want %q", line, want)
			}
		}
		if _, status := s.Finish(t); status != 7 {
			t.Errorf("the program exited %d, want 7", status)
		}
	})
}
