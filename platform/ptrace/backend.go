// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package ptrace is hwbp's back end for gVisor's ptrace platform. There a
// task's code runs in a host "stub thread" that the sentry OS thread running
// the task traces, so the task's debug registers can be the stub thread's
// real ones: before each Switch the stub thread is given the task's DR image
// with host PTRACE_POKEUSER (the host kernel then traps at hardware speed,
// with Linux's exact semantics), and the host SIGTRAPs those registers cause
// are turned back into the guest's (hwbp.Tasks.Trap). The slots of counting
// events get host perf events that count without stopping the stub thread
// instead, where the host has room (count.go). Like every back end, it
// knows only the core (sentry/hwbp) and the host's perf events
// (platform/hostperf), not who registered the breakpoints.
//
// Invariants:
//   - Switch is called only while a breakpoint may be enabled in the
//     sandbox; otherwise the plugin's Switch costs one atomic load more
//     than the platform's own.
//   - No host debug register holds an address at or above the end of the
//     application's address space, where the stub's code is
//     (backend.Loop.Image).
//   - A stub thread runs a task only with that task's image or with an
//     image that no longer arms anything the task can see: a stale image
//     (another task's, or the task's own after its tracer disarmed it) is
//     cleared before the task runs while any breakpoint is enabled, and
//     otherwise at its first spurious trap, which the guest never sees.
//   - A host refusal to arm (the host's own breakpoints may hold its debug
//     registers) never kills the guest process: the task runs without the
//     breakpoints that could not be armed, as it would on systrap, and a
//     rate-limited warning says so.
package ptrace

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/seccomp"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	gvptrace "gvisor.dev/gvisor/pkg/sentry/platform/ptrace"

	"github.com/gvisor-hwbp/hwbp/platform/hostperf"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp/backend"
)

// Offsets of the host's struct user on x86_64 (arch/x86/include/asm/
// user_64.h), for the host ptrace requests on stub threads.
const (
	debugRegOffset = 848 // offsetof(struct user, u_debugreg[0])
	dr6Offset      = debugRegOffset + 6*8
	dr7Offset      = debugRegOffset + 7*8
)

// warnings limits the back end's warnings about host failures.
var warnings = log.BasicRateLimitedLogger(time.Minute)

// Backend loads tasks' debug registers into the ptrace platform's stub
// threads.
type Backend struct {
	backend.Loop[stubRun]

	tasks *hwbp.Tasks[*kernel.Task]

	// host reads and writes stub threads' debug registers; tests replace
	// it.
	host debugRegs

	// stubs maps each gvptrace.StubThread whose debug registers were ever
	// written to its stubState, what they hold. A stub thread without an
	// entry has all debug registers zero, as every new host thread does.
	// Switch reads it without a lock; mu serializes changes.
	stubs sync.Map

	mu sync.Mutex

	// nstubs is the number of entries in stubs.
	//
	// +checklocks:mu
	nstubs int

	// failures counts the host's refusals to arm.
	failures atomic.Int64

	// perf opens the host events of counting slots (count.go); tests
	// replace it.
	perf perfHost

	// counterFDs counts the host events of all stub threads' counters.
	counterFDs atomic.Int64

	countersMu sync.Mutex

	// counters maps each task to the counters of the stub threads that
	// count hits for it, for Flush.
	//
	// +checklocks:countersMu
	counters map[*hwbp.Task]map[*stubCounters]struct{}

	// pruneAt is the size of stubs at which entries of dead stub threads
	// are dropped.
	//
	// +checklocks:mu
	pruneAt int
}

// stubState is a stub thread's debug registers and the image they came
// from.
type stubState struct {
	// regs is what the host registers hold.
	regs hostRegs
	// task and img are the task whose image is armed, and that image;
	// task is nil when nothing is armed.
	task *hwbp.Task
	img  hwbp.Image
	// counters are the stub thread's host events for counting slots,
	// nil until it first had one; counting is whether they count for
	// task now.
	counters *stubCounters
	counting bool
}

// hostRegs is the contents of a stub thread's DR0-DR3 and DR7.
type hostRegs struct {
	addr [hwbp.Slots]uint64
	dr7  hwbp.DR7
	// dirty means a write failed halfway: the contents are unknown.
	dirty bool
}

// stubRun is a run of a task on the current OS thread's stub thread, which
// holds st.
type stubRun struct {
	stub gvptrace.StubThread
	st   stubState
}

var (
	_ backend.Backend         = (*Backend)(nil)
	_ backend.Arming[stubRun] = (*Backend)(nil)
)

// New returns a back end for the breakpoints of tasks.
func New(tasks *hwbp.Tasks[*kernel.Task]) *Backend {
	b := &Backend{tasks: tasks, host: hostDebugRegs{}, perf: hostPerf{}, pruneAt: 64}
	b.Init(tasks, b)
	return b
}

// Refusals returns how many times the host refused to arm a stub thread's
// debug registers.
func (b *Backend) Refusals() int64 { return b.failures.Load() }

// SeccompRules returns the host system calls that the back end makes from
// the sentry beyond the platform's own: the host perf events of counting
// slots (count.go).
func (b *Backend) SeccompRules() seccomp.SyscallRules {
	return hostperf.SeccompRules()
}

// Stale implements backend.Backend.Stale: with nothing enabled, a
// TRAP_HWBKPT can only come from an image left in a stub thread.
func (b *Backend) Stale(info *linux.SignalInfo) bool {
	return info.Code == hwbp.TrapHWBkpt
}

// Arm implements backend.Arming.Arm: the current OS thread's stub thread for
// run.MM gets the task's image. The OS thread stays locked (it is the stub
// thread's tracer) until Done.
func (b *Backend) Arm(run backend.Run) (stubRun, error) {
	runtime.LockOSThread()
	stub, ok := gvptrace.CurrentStubThread(run.MM)
	if !ok {
		runtime.UnlockOSThread()
		return stubRun{}, fmt.Errorf("hwbp: address space of type %T is not the ptrace platform's", run.MM.AddressSpace())
	}
	return stubRun{stub: stub, st: b.arm(stub, run.State)}, nil
}

// Done implements backend.Arming.Done.
func (b *Backend) Done(backend.Run, stubRun) {
	runtime.UnlockOSThread()
}

// arm gives stub the image of task (nil for a task without breakpoint
// state) and returns the stub thread's new state.
func (b *Backend) arm(stub gvptrace.StubThread, task *hwbp.Task) stubState {
	var have stubState
	if v, ok := b.stubs.Load(stub); ok {
		have = v.(stubState)
	}
	if task != nil && have.task == task && have.img.Generation == task.Generation() && (!have.counting || task.VirtualDR6() == hwbp.DR6Reset) {
		return have // the common case: nothing changed
	}
	if task == nil && have.task == nil && !have.regs.dirty && have.regs.dr7 == 0 && !have.counting {
		return have // nothing armed, nothing wanted
	}
	// What the counters counted is the old image's; closing them frees
	// their slots for debug registers.
	b.releaseCounters(have.counters)
	want := stubState{regs: have.regs, counters: have.counters}
	var slots [hwbp.Slots]bool
	counting := false
	if task != nil {
		want.img = b.Image(task)
		if !want.img.Empty() {
			want.task = task
		}
		slots, counting = countable(b.tasks.Registry(), task, &want.img)
	}
	regs, err := writeHostDebugRegs(b.host, stub.TID, have.regs, withoutSlots(want.img, slots))
	if err == nil && counting {
		if want.counters == nil {
			want.counters = newStubCounters(stub.TID)
		}
		counted := b.openCounters(want.counters, task, &want.img, slots)
		want.counting = counted != [hwbp.Slots]bool{}
		if counted != slots {
			// The slots that got no event trap.
			regs, err = writeHostDebugRegs(b.host, stub.TID, regs, withoutSlots(want.img, counted))
		}
	}
	want.regs = regs
	if err != nil {
		// The host refused (its own breakpoints may hold the debug
		// registers): the task runs without the breakpoints, hits
		// of whatever the registers still arm are not its own, and
		// the next Switch tries again.
		warnings.Warningf("hwbp: %v; the task's breakpoints do not fire", err)
		b.failures.Add(1)
		want.task = nil
	}
	b.record(stub, want)
	return want
}

// record notes the state of stub.
func (b *Backend) record(stub gvptrace.StubThread, st stubState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.stubs.Load(stub); !ok {
		if b.nstubs >= b.pruneAt {
			// Stub threads die with their address space; drop what
			// we knew of the dead ones.
			b.stubs.Range(func(k, v any) bool {
				if k.(gvptrace.StubThread).ID.Value() == nil {
					b.releaseCounters(v.(stubState).counters)
					b.stubs.Delete(k)
					b.nstubs-- // +checklocksignore: Range calls back before it returns, with mu held
				}
				return true
			})
			b.pruneAt = 2*b.nstubs + 64
		}
		b.nstubs++
	}
	b.stubs.Store(stub, st)
}

// Exception implements backend.Arming.Exception: a host SIGTRAP of the stub
// thread, with the DR6 that the host kept for it, is the guest's debug
// exception if the stub thread ran the task's own image. The host's
// exc_debug_user already set RF where Linux does.
func (b *Backend) Exception(_ backend.Run, r stubRun, info *linux.SignalInfo) backend.Exception {
	switch info.Code {
	case hwbp.TrapBrkpt:
		// An icebp (INT1): the host's exc_debug_user found no reason
		// in DR6. Linux resets the virtual DR6 for it too.
		return backend.Exception{Kind: backend.Seen, DR6: hwbp.DR6Reset}
	case hwbp.TrapHWBkpt, hwbp.TrapTrace:
	default:
		return backend.Exception{} // int3, a SIGTRAP sent by a process, ...
	}
	stub, st := r.stub, r.st
	dr6 := hwbp.DR6Reset | hwbp.DR6BS
	if info.Code == hwbp.TrapHWBkpt || st.regs.dr7 != 0 {
		v, err := b.host.peek(stub.TID, dr6Offset)
		if err != nil {
			warnings.Warningf("hwbp: reading DR6 of stub thread %d: %v", stub.TID, err)
			return backend.Exception{}
		}
		dr6 = hwbp.DR6(v)
		// The host restarts its virtual DR6 at every debug exception;
		// reset it now too so that nothing stale can be read.
		if err := b.host.poke(stub.TID, dr6Offset, uint64(hwbp.DR6Reset)); err != nil {
			warnings.Warningf("hwbp: resetting DR6 of stub thread %d: %v", stub.TID, err)
		}
	}
	if dr6&(hwbp.DR6BS|hwbp.DR6TrapBits) == 0 {
		return backend.Exception{} // not attributable: pass it on unchanged
	}
	if dr6&hwbp.DR6BS == 0 && st.task == nil {
		// A hit of an image that the task does not own (stale, or
		// disarmed since): Arm clears it before the task runs again.
		return backend.Exception{Kind: backend.Spurious}
	}
	return backend.Exception{Kind: backend.Debug, DR6: dr6, Image: st.img}
}

// writeHostDebugRegs moves a stub thread's debug registers from have to the
// registers of image want, with host ptrace requests in an order the host
// accepts at every step (disarm, move addresses, arm), and returns what the
// registers hold afterwards.
func writeHostDebugRegs(host debugRegs, tid int32, have hostRegs, want hwbp.Image) (hostRegs, error) {
	next := have
	same := !have.dirty && have.dr7 == want.DR7
	for i := 0; same && i < hwbp.Slots; i++ {
		same = !want.DR7.Enabled(i) || have.addr[i] == want.Addr[i]
	}
	if same {
		return have, nil
	}
	next.dirty = true
	if have.dirty || have.dr7 != 0 {
		if err := host.poke(tid, dr7Offset, 0); err != nil {
			return next, fmt.Errorf("hwbp: clearing DR7 of stub thread %d: %w", tid, err)
		}
		next.dr7 = 0
	}
	for i := 0; i < hwbp.Slots; i++ {
		if want.DR7.Enabled(i) && (have.dirty || have.addr[i] != want.Addr[i]) {
			if err := host.poke(tid, debugRegOffset+8*uint64(i), want.Addr[i]); err != nil {
				return next, fmt.Errorf("hwbp: writing DR%d of stub thread %d: %w", i, tid, err)
			}
			next.addr[i] = want.Addr[i]
		}
	}
	if want.DR7 != 0 {
		if err := host.poke(tid, dr7Offset, uint64(want.DR7)); err != nil {
			return next, fmt.Errorf("hwbp: writing DR7 %#x of stub thread %d: %w", uint64(want.DR7), tid, err)
		}
		next.dr7 = want.DR7
	}
	next.dirty = false
	return next, nil
}

// debugRegs reads and writes the debug registers of a stopped host thread
// that the current OS thread traces, at offsets of struct user.
type debugRegs interface {
	peek(tid int32, off uint64) (uint64, error)
	poke(tid int32, off, v uint64) error
}

// hostDebugRegs is the host kernel's PTRACE_PEEKUSR and PTRACE_POKEUSR.
type hostDebugRegs struct{}

func (hostDebugRegs) peek(tid int32, off uint64) (uint64, error) { return peekUser(tid, off) }
func (hostDebugRegs) poke(tid int32, off, v uint64) error        { return pokeUser(tid, off, v) }

func pokeUser(tid int32, off, v uint64) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_POKEUSR, uintptr(tid), uintptr(off), uintptr(v), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
