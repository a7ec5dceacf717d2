// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkConstraints is modelled on Linux's "perf bench breakpoint
// thread" (tools/perf/bench/breakpoint.c): with that many tasks in the
// registry, parallel goroutines each register four breakpoints on a task and
// unregister them again. One op is one register/unregister pair. The cost
// must not grow with the number of tasks.
func BenchmarkConstraints(b *testing.B) {
	for _, n := range []int{100, 10000, 100000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			r := NewRegistry()
			tasks := make([]*Task, n)
			for i := range tasks {
				tasks[i] = r.NewTask()
			}
			// Goroutine g owns the tasks whose index is g modulo procs, so
			// that no two goroutines fill the same task.
			procs := runtime.GOMAXPROCS(0)
			var goroutines atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				g := int(goroutines.Add(1)-1) % procs
				var bps [Slots]*Breakpoint
				i, k := 0, 0
				for pb.Next() {
					if i%Slots == 0 {
						// Move on to another of our tasks, spread over
						// all of them.
						k++
						task := tasks[g+procs*((k*7919)%(n/procs))]
						for s := range bps {
							bp, err := r.Register(task, Attr{Addr: testAddr + 8*uint64(s), Len: 8, Type: TypeW}, nil)
							if err != nil {
								b.Fatal(err)
							}
							bps[s] = bp
						}
					}
					bps[i%Slots].Unregister()
					i++
				}
				for s := i % Slots; s != 0 && s < Slots; s++ {
					bps[s].Unregister()
				}
			})
		})
	}
}

// BenchmarkHasBreakpoints is the platforms' hot path when no breakpoint
// exists anywhere.
func BenchmarkHasBreakpoints(b *testing.B) {
	r := NewRegistry()
	task := r.NewTask()
	for i := 0; i < b.N; i++ {
		if task.HasBreakpoints() {
			b.Fatal("breakpoint")
		}
	}
}
