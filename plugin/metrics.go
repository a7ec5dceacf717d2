// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"gvisor.dev/gvisor/pkg/metric"

	"github.com/gvisor-hwbp/hwbp/platform/hostperf"
)

// registerMetrics exports hwbp's counters as gVisor metrics, which runsc's
// metric server and "runsc export-metrics" read like the sentry's own
// (pkg/metric). gVisor requires metrics to be registered at init.
func registerMetrics() {
	gauge := func(name, description string, value func() uint64) {
		metric.MustRegisterCustomUint64Metric(name, metric.Uint64Metadata{Description: description}, func(...*metric.FieldValue) uint64 { return value() })
	}
	counter := func(name, description string, value func() uint64) {
		metric.MustRegisterCustomUint64Metric(name, metric.Uint64Metadata{Cumulative: true, Description: description}, func(...*metric.FieldValue) uint64 { return value() })
	}
	gauge("/hwbp/events_enabled", "Enabled hardware breakpoint events of the sandbox's threads.", func() uint64 {
		return uint64(tasks.Registry().Enabled())
	})
	gauge("/hwbp/threads", "Threads that hold breakpoint state (events, debug register values).", func() uint64 {
		return uint64(tasks.Len())
	})
	counter("/hwbp/hits", "Hardware breakpoint hits delivered to events.", func() uint64 {
		return tasks.Registry().Hits()
	})
	counter("/hwbp/hits_counted", "Hardware breakpoint hits of counting events (perf events that do not sample) that the host counted without stopping the thread, among /hwbp/hits.", func() uint64 {
		return tasks.Registry().CountedHits()
	})
	gauge("/hwbp/host_fds", "Host fds (perf events) that the platform's back end holds to arm breakpoints.", func() uint64 {
		if current == nil {
			return 0
		}
		return uint64(current.HostFDs())
	})
	counter("/hwbp/host_refusals", "Times the host refused to arm breakpoints; the breakpoints concerned did not fire.", func() uint64 {
		if current == nil {
			return 0
		}
		return uint64(current.Refusals())
	})
	// The host calls of the back ends' perf events, to prove what the
	// hit path and context switches cost without timing them
	// (test/bench: host system calls per hit, opens per context switch).
	hostCalls := func(name, what string, value func(hostperf.Calls) uint64) {
		counter("/hwbp/host_perf_"+name, "Host "+what+" calls made by the platform's back end for perf breakpoint events.", func() uint64 {
			return value(hostperf.CallCounts())
		})
	}
	hostCalls("opens", "perf_event_open(2)", func(c hostperf.Calls) uint64 { return c.Open })
	hostCalls("closes", "close(2)", func(c hostperf.Calls) uint64 { return c.Close })
	hostCalls("reads", "read(2) of a count", func(c hostperf.Calls) uint64 { return c.Read })
	hostCalls("ioctls", "ioctl(2) (PERF_EVENT_IOC_ENABLE, _DISABLE, _MODIFY_ATTRIBUTES)", func(c hostperf.Calls) uint64 { return c.Ioctl })
}
