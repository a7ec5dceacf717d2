package perf

import (
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
// PERF_EVENT_IOC_PAUSE_OUTPUT; SET_OUTPUT; an event on a child that exits
// (EPOLLHUP). It needs hits, so it runs in the test VM where the host
// delivers none.
func TestRingRecords(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireHostHits(t)
	prog := sandbox.BuildC(t, "testdata/ring.c")
	compareOn(t, sandbox.HitPlatforms, prog, "hits")
}
