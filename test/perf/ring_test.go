// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// TestRingMapping compares what mmap, munmap, mprotect, mremap, fork and
// poll answer for the ring buffer of a perf event without hits
// (testdata/ring.c): sizes of 1 + 2^n pages, private and executable
// mappings, offsets, a second mapping of the ring and one of another size,
// the first page's fields (version, lock, capabilities, data_offset,
// data_size, ...) after mmap, enable, disable and reset, a split of the
// mapping, a child's view after fork, mmap after close, read-only rings,
// counting and inherited events, SET_OUTPUT to and from a mapped event, and
// the locked-memory limit of a large ring. The host runs it as an
// unprivileged user; the sandbox, as root, must answer the same (see
// sentry/perf's package doc).
func TestRingMapping(t *testing.T) {
	sandbox.RequireRoot(t)
	prog := sandbox.BuildC(t, "testdata/ring.c")
	host := run(t, "", prog, "nobody")
	for _, p := range sandbox.Platforms {
		t.Run(p, func(t *testing.T) {
			sandbox.RequirePlatform(t, p)
			compare(t, host, run(t, p, prog))
		})
	}
}

// TestRingRecords compares the records that writes to a watched word leave
// in an event's ring (testdata/ring.c hits): PERF_RECORD_SAMPLE with
// identifier, ip (as an offset from the instruction after the store), pid
// and tid, time (inside the window of CLOCK_MONOTONIC around the writes,
// increasing), addr, id, stream_id, cpu, period (also after
// PERF_EVENT_IOC_PERIOD) and PERF_SAMPLE_READ; a full ring's lost samples,
// PERF_FORMAT_LOST and the PERF_RECORD_LOST with its sample_id trailer;
// the wakeups of wakeup_watermark, wakeup_events and the default half ring
// as poll sees them, and epoll's; a read-only ring that overwrites;
// PERF_EVENT_IOC_PAUSE_OUTPUT; SET_OUTPUT; when samples fall around
// PERF_EVENT_IOC_PERIOD; an event on a child that exits
// (EPOLLHUP). It needs hits, so it runs in the test VM where the host
// delivers none.
func TestRingRecords(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	prog := sandbox.BuildC(t, "testdata/ring.c")
	compareOn(t, sandbox.HitPlatforms, prog, "hits")
}

// TestCallchain compares the call chains of a breakpoint's samples
// (testdata/callchain.c, PERF_SAMPLE_CALLCHAIN): PERF_CONTEXT_USER, the ip
// and the return addresses of the frames that x86's perf_callchain_user
// walks through the frame pointers, as symbol+offset, with
// sample_max_stack and exclude_callchain_user. It needs hits, so it runs in
// the test VM where the host delivers none.
func TestCallchain(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	prog := sandbox.BuildC(t, "testdata/callchain.c", "-fno-omit-frame-pointer", "-rdynamic")
	compareOn(t, sandbox.HitPlatforms, prog)
}

// TestSideBand compares the side-band records (PERF_RECORD_COMM, MMAP2,
// EXIT) that an event opened as perf record opens its event on the workload
// (comm, mmap, mmap2, task, sample_id_all, enable_on_exec) gets in its ring
// across its child's exec, an mmap of an executable file, mprotects that
// make an anonymous page executable or leave it so, PR_SET_NAME and exit
// (testdata/sideband.c); with "data", also mmap_data's records of data
// mappings (the loader's segments, bss, ld.so's mappings and RELRO
// mprotects). Side-band records need no hits. The data records depend on
// the machine: "data" matches this machine's 6.18, and differs from the
// test VM's Debian kernels, built with soft-dirty tracking and running on
// an overlay root (docs/kernel-versions.md).
func TestSideBand(t *testing.T) {
	sandbox.RequireRoot(t)
	prog := sandbox.BuildC(t, "testdata/sideband.c")
	for _, mode := range []string{"exec", "data"} {
		t.Run(mode, func(t *testing.T) {
			compareOn(t, sandbox.Platforms, prog, mode)
		})
	}
}

// TestPerfRecord runs Linux's perf tool, "perf record -e mem:ADDR:wu" over
// a loop of 200 writes (testdata/loop.c), on the host and in the sandbox,
// and compares what "perf script -F ip,sym" and "perf report --stdio" make
// of each recording: one sample per write, at the same instruction, in the
// function that wrote (main), which perf finds through the PERF_RECORD_COMM
// and MMAP2 records of the workload's exec. perf opens the event on the
// forked workload (enable_on_exec, sample_period 1, sample_id_all, comm,
// mmap, mmap2, task) and maps a ring of 1 + 128 pages: with --per-thread
// one event, by default one per CPU, of which only the CPU's that the
// workload runs on samples a write. With -g, over the loop built with frame
// pointers, each sample's call chain is compared too (main, called from
// the C library's __libc_start_call_main).
func TestPerfRecord(t *testing.T) {
	sandbox.RequireRoot(t)
	for _, mode := range []struct {
		name   string
		flags  []string
		cflags []string
	}{
		{"per-thread", []string{"--per-thread"}, nil},
		{"per-CPU", nil, nil},
		{"call graph", []string{"--per-thread", "-g"}, []string{"-fno-omit-frame-pointer"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			perfTool, prog, event := perfOnLoop(t, mode.cflags...)
			argv := append(append([]string{perfTool, "record"}, mode.flags...), "-e", event, "-o", "-", "--", prog, "200")
			perfRecord(t, perfTool, argv)
		})
	}
}

// perfRecord is TestPerfRecord for one perf command line, argv.
func perfRecord(t *testing.T, perfTool string, argv []string) {
	script := func(data []byte) (samples, report string) {
		f := filepath.Join(t.TempDir(), "perf.data")
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(perfTool, "script", "-i", f, "-F", "ip,sym").CombinedOutput()
		if err != nil {
			t.Fatalf("perf script: %v\n%s", err, out)
		}
		rep, err := exec.Command(perfTool, "report", "-i", f, "--stdio").CombinedOutput()
		if err != nil {
			t.Fatalf("perf report: %v\n%s", err, rep)
		}
		// The report's lines without its comments (which name the
		// recording's host and times).
		var lines []string
		for _, l := range strings.Split(string(rep), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		return string(out), strings.Join(lines, "\n") + "\n"
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("perf record on the host: %v\n%s", err, stderr.String())
	}
	hostSamples, hostReport := script(stdout.Bytes())
	if n := strings.Count(hostSamples, " main\n"); n != 200 {
		t.Fatalf("perf record on the host recorded %d samples in main, want 200:\n%s", n, hostSamples)
	}
	if !strings.Contains(hostReport, "[.] main") {
		t.Fatalf("perf report on the host does not name main:\n%s", hostReport)
	}
	for _, p := range sandbox.HitPlatforms {
		t.Run(p, func(t *testing.T) {
			sandbox.RequirePlatform(t, p)
			res := sandbox.Run(t, p, argv...)
			if res.ExitCode != 0 {
				t.Fatalf("perf record on %s: exit %d\n%s\nend of the sentry's log:\n%s", p, res.ExitCode, res.Stderr, res.LogTail(40))
			}
			samples, report := script([]byte(res.Stdout))
			if samples != hostSamples {
				t.Errorf("perf script of the sandbox's recording differs from the host's:\nsandbox:\n%.2000s\nhost:\n%.500s", samples, hostSamples)
			}
			if report != hostReport {
				t.Errorf("perf report of the sandbox's recording differs from the host's:\nsandbox:\n%s\nhost:\n%s", report, hostReport)
			}
		})
	}
}
