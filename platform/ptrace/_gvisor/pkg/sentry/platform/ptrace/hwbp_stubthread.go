// This file is hwbp's addition to gVisor's ptrace platform package, added to
// a vendored copy of gVisor at build time (see the hwbp Makefile). It only
// adds an exported accessor; it changes no existing code. Proposed upstream
// shape: a platform-neutral hook for per-thread debug registers.

package ptrace

import (
	"weak"

	"gvisor.dev/gvisor/pkg/hosttid"
	"gvisor.dev/gvisor/pkg/sentry/platform"
)

// StubThread identifies the host thread that runs application code in an
// address space when Context.Switch is called on the current OS thread.
type StubThread struct {
	// TID is the host thread ID. The current OS thread traces it, so it
	// may issue ptrace requests to it while the thread is stopped, that
	// is between two Switch calls.
	TID int32

	// ID is equal for the same stub thread and differs between stub
	// threads, even after host TID reuse. It does not keep the thread
	// alive.
	ID weak.Pointer[thread]
}

// CurrentStubThread returns the stub thread that a Switch into mm on the
// current OS thread would run, creating it if needed, exactly as Switch
// does. ok is false if mm's address space does not belong to this platform.
//
// Precondition: the OS thread is locked (runtime.LockOSThread), and stays
// locked until the caller is done with the stub thread.
func CurrentStubThread(mm platform.MemoryManager) (st StubThread, ok bool) {
	s, ok := mm.AddressSpace().(*subprocess)
	if !ok {
		return StubThread{}, false
	}
	t := s.sysemuThreads.lookupOrCreate(int32(hosttid.Current()), s.newThread)
	return StubThread{TID: t.tid, ID: weak.Make(t)}, true
}
