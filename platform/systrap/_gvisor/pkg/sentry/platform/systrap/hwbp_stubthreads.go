// This file is hwbp's addition to gVisor's systrap platform package, added to
// a vendored copy of gVisor at build time (see the hwbp Makefile). It only
// adds an exported accessor; it changes no existing code. Proposed upstream
// shape: a platform-neutral hook for per-thread debug registers.

package systrap

import (
	"sync/atomic"
	"weak"

	"gvisor.dev/gvisor/pkg/sentry/platform"
)

// StubProcess identifies the host process that runs application code for an
// address space. Equal values denote the same process; a process is reused
// for other address spaces once its own is released.
type StubProcess = weak.Pointer[subprocess]

// StubThreads returns the host threads of mm's stub process: nursery is the
// thread that clones every new stub thread (so host perf events that it
// carries with inherit set are inherited by each stub thread created later),
// and all is tids with the stub threads that run application code appended.
// A thread may be cloned as soon as StubThreads returns. ok is false if mm's
// address space does not belong to this platform.
func StubThreads(mm platform.MemoryManager, tids []int32) (nursery int32, all []int32, ok bool) {
	s, ok := mm.AddressSpace().(*subprocess)
	if !ok {
		return 0, tids, false
	}
	s.syscallThreadMu.Lock()
	if s.syscallThread != nil {
		nursery = s.syscallThread.thread.tid
	}
	s.syscallThreadMu.Unlock()
	s.sysmsgThreadsMu.RLock()
	for _, t := range s.sysmsgThreads {
		tids = append(tids, t.thread.tid)
	}
	s.sysmsgThreadsMu.RUnlock()
	return nursery, tids, true
}

// CurrentStubProcess returns mm's stub process, or ok false if mm's address
// space does not belong to this platform.
func CurrentStubProcess(mm platform.MemoryManager) (p StubProcess, ok bool) {
	s, ok := mm.AddressSpace().(*subprocess)
	if !ok {
		return StubProcess{}, false
	}
	return weak.Make(s), true
}

// ContextStubThread returns the host TID of the stub thread that ran c, a
// context of this platform, in its last Switch. The stub records that thread
// in memory that the application can write too, so the answer is a hint: it
// names one of the stub threads of c's process, or ok is false.
func ContextStubThread(c platform.Context) (tid int32, ok bool) {
	pc, ok := c.(*platformContext)
	if !ok || pc.sharedContext == nil {
		return 0, false
	}
	s := pc.sharedContext.subprocess
	// Between Switches no thread works on the context; the one that
	// ran it last is recorded apart.
	id := pc.sharedContext.threadID()
	if id == invalidThreadID {
		id = atomic.LoadUint32(&pc.sharedContext.shared.LastThreadID)
	}
	s.sysmsgThreadsMu.RLock()
	defer s.sysmsgThreadsMu.RUnlock()
	t, ok := s.sysmsgThreads[id]
	if !ok {
		return 0, false
	}
	return t.thread.tid, true
}
