// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"context"
	"sync"

	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/state"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/ptrace"
)

// checkpointKey names hwbp's part of the kernel's additional checkpoint
// state (kernel.Kernel.AddStateToCheckpoint).
const checkpointKey = "hwbp"

// checkpoint is hwbp's part of a checkpoint of the sandbox: the debug
// registers of its threads, which live in this plugin, outside the kernel
// state that gVisor saves. One checkpoint object is added to the kernel's
// additional checkpoint state (addCheckpoint) before any thread can have
// state; gVisor saves it with the kernel, and its StateSave takes the
// snapshot then, while the kernel is paused for the save. At restore its
// afterLoad gives each restored thread its registers and breakpoints back
// (host-side state, such as the systrap back end's perf events or a ptrace
// stub thread's debug registers, is rebuilt at the thread's next Switch, as
// for any thread whose breakpoints changed).
type checkpoint struct {
	// Threads are the threads that had state at the save, and States their
	// states, in the same order. Both are filled only for the save.
	Threads []*kernel.Task
	States  []savedThread
}

// savedThread is ptrace.ThreadState in a form that gVisor's state package
// saves.
type savedThread struct {
	DR6, DR7 uint64
	Used     [hwbp.Slots]bool
	Addr     [hwbp.Slots]uint64
	Len      [hwbp.Slots]uint64
	Type     [hwbp.Slots]uint32
	Disabled [hwbp.Slots]bool
}

func saveThread(st ptrace.ThreadState) savedThread {
	s := savedThread{DR6: st.DR6, DR7: st.DR7, Used: st.Used}
	for n, a := range st.Attr {
		s.Addr[n], s.Len[n], s.Type[n], s.Disabled[n] = a.Addr, a.Len, uint32(a.Type), a.Disabled
	}
	return s
}

func (s savedThread) threadState() ptrace.ThreadState {
	st := ptrace.ThreadState{DR6: s.DR6, DR7: s.DR7, Used: s.Used}
	for n := range st.Attr {
		st.Attr[n] = hwbp.Attr{Addr: s.Addr[n], Len: s.Len[n], Type: hwbp.Type(s.Type[n]), Disabled: s.Disabled[n]}
	}
	return st
}

var checkpointOnce sync.Once

// addCheckpoint adds hwbp's checkpoint object to k's checkpoint state, once
// per sentry: threads get state only through the guest's ptrace (and a
// restored sandbox has the restored object already, which saves the live
// state all the same).
func addCheckpoint(k *kernel.Kernel) {
	checkpointOnce.Do(func() { k.AddStateToCheckpoint(checkpointKey, &checkpoint{}) })
}

// snapshot fills c with the threads' current state.
func (c *checkpoint) snapshot() {
	c.Threads, c.States = nil, nil
	tasks.Range(func(t *kernel.Task, _ *hwbp.Task) bool {
		if st, ok := threads.Save(t); ok {
			c.Threads = append(c.Threads, t)
			c.States = append(c.States, saveThread(st))
		}
		return true
	})
}

// restore gives the restored threads their saved state.
func (c *checkpoint) restore() {
	for i, t := range c.Threads {
		if i >= len(c.States) {
			break
		}
		if err := threads.Restore(t, c.States[i].threadState()); err != nil {
			log.Warningf("hwbp: thread %d lost its debug registers at restore: %v", t.ThreadID(), err)
		}
	}
	c.Threads, c.States = nil, nil
}

// The methods below make checkpoint and savedThread savable by gVisor's
// state package, as the stateify tool would generate them.

func (c *checkpoint) StateTypeName() string { return "hwbp/plugin.checkpoint" }

func (c *checkpoint) StateFields() []string { return []string{"Threads", "States"} }

func (c *checkpoint) StateSave(sink state.Sink) {
	// The kernel is paused: no thread runs and no tracer changes state.
	c.snapshot()
	sink.Save(0, &c.Threads)
	sink.Save(1, &c.States)
}

func (c *checkpoint) StateLoad(_ context.Context, source state.Source) {
	// The threads must be restored (their afterLoad makes their platform
	// contexts) before their state is.
	source.LoadWait(0, &c.Threads)
	source.Load(1, &c.States)
	tasks.Registry().StopHostCounting() // see hwbp.Registry.StopHostCounting
	source.AfterLoad(c.restore)
}

func (s *savedThread) StateTypeName() string { return "hwbp/plugin.savedThread" }

func (s *savedThread) StateFields() []string {
	return []string{"DR6", "DR7", "Used", "Addr", "Len", "Type", "Disabled"}
}

func (s *savedThread) StateSave(sink state.Sink) {
	sink.Save(0, &s.DR6)
	sink.Save(1, &s.DR7)
	sink.Save(2, &s.Used)
	sink.Save(3, &s.Addr)
	sink.Save(4, &s.Len)
	sink.Save(5, &s.Type)
	sink.Save(6, &s.Disabled)
}

func (s *savedThread) StateLoad(_ context.Context, source state.Source) {
	source.Load(0, &s.DR6)
	source.Load(1, &s.DR7)
	source.Load(2, &s.Used)
	source.Load(3, &s.Addr)
	source.Load(4, &s.Len)
	source.Load(5, &s.Type)
	source.Load(6, &s.Disabled)
}

func init() {
	state.Register((*checkpoint)(nil))
	state.Register((*savedThread)(nil))
}
