// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package perf

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

const (
	testAddr = 0x601000
	pageSize = 4096
)

// memory is a guest address space for CopyAttr: one mapped page at testAddr.
type memory struct {
	page [pageSize]byte
}

func (m *memory) read(addr uint64, dst []byte) error {
	if addr < testAddr || addr+uint64(len(dst)) > testAddr+pageSize || addr+uint64(len(dst)) < addr {
		return unix.EFAULT
	}
	copy(dst, m.page[addr-testAddr:])
	return nil
}

// watchpoint returns the bytes of a valid 4-byte user-mode write
// watchpoint with size 128 (PERF_ATTR_SIZE_VER7).
func watchpoint() []byte {
	b := make([]byte, AttrSize)
	binary.LittleEndian.PutUint32(b[offType:], TypeBreakpoint)
	binary.LittleEndian.PutUint32(b[offSize:], 128)
	binary.LittleEndian.PutUint32(b[offBPType:], uint32(hwbp.TypeW))
	binary.LittleEndian.PutUint64(b[offBPAddr:], testAddr)
	binary.LittleEndian.PutUint64(b[offBPLen:], 4)
	binary.LittleEndian.PutUint64(b[offFlags:], FlagExcludeKernel|FlagExcludeHV)
	return b
}

func set32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func set64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
func setFlags(b []byte, f uint64)       { set64(b, offFlags, binary.LittleEndian.Uint64(b[offFlags:])|f) }

func TestCopyAttr(t *testing.T) {
	for _, tc := range []struct {
		name string
		// edit changes the page, which holds watchpoint() at its start.
		edit func(p []byte)
		// at is the attribute's offset in the page.
		at   uint64
		want unix.Errno
	}{
		{"a valid watchpoint", func(p []byte) {}, 0, 0},
		{"size 0 is the first struct, 64 bytes", func(p []byte) { set32(p, offSize, 0) }, 0, 0},
		{"size below 64 is E2BIG", func(p []byte) { set32(p, offSize, 63) }, 0, unix.E2BIG},
		{"size above a page is E2BIG", func(p []byte) { set32(p, offSize, pageSize+1) }, 0, unix.E2BIG},
		{"a larger struct with a zero tail is accepted", func(p []byte) { set32(p, offSize, 200) }, 0, 0},
		{"a larger struct with a non-zero tail is E2BIG", func(p []byte) { set32(p, offSize, 200); p[AttrSize] = 1 }, 0, unix.E2BIG},
		{"bytes past size are not read", func(p []byte) { set32(p, offSize, 72); p[100] = 1 }, 0, 0},
		{"an unreadable size is EFAULT", func(p []byte) {}, pageSize - 2, unix.EFAULT},
		{"a struct past the mapping is EFAULT", func(p []byte) {}, pageSize - 64, unix.EFAULT},
		{"an unreadable tail is EFAULT", func(p []byte) { set32(p, offSize, pageSize) }, 8, unix.EFAULT},
		{"reserved flag bits are EINVAL", func(p []byte) { setFlags(p, 1<<38) }, 0, unix.EINVAL},
		{"__reserved_2 is EINVAL", func(p []byte) { p[offReserved2] = 1 }, 0, unix.EINVAL},
		{"__reserved_3 is EINVAL", func(p []byte) { set32(p, offAuxAction, 1<<3) }, 0, unix.EINVAL},
		{"unknown sample_type bits are EINVAL", func(p []byte) { set64(p, offSampleType, sampleMax) }, 0, unix.EINVAL},
		{"unknown read_format bits are EINVAL", func(p []byte) { set64(p, offReadFormat, formatMax) }, 0, unix.EINVAL},
		{"inherit_thread needs inherit", func(p []byte) { setFlags(p, FlagInheritThread) }, 0, unix.EINVAL},
		{"remove_on_exec excludes enable_on_exec", func(p []byte) { setFlags(p, FlagRemoveOnExec|FlagEnableOnExec) }, 0, unix.EINVAL},
		{"sigtrap needs remove_on_exec", func(p []byte) { setFlags(p, FlagSigtrap) }, 0, unix.EINVAL},
		{"sigtrap with remove_on_exec", func(p []byte) { setFlags(p, FlagSigtrap|FlagRemoveOnExec) }, 0, 0},
		{"user registers need a mask", func(p []byte) { set64(p, offSampleType, SampleRegsUser) }, 0, unix.EINVAL},
		{"segment registers cannot be sampled", func(p []byte) {
			set64(p, offSampleType, SampleRegsUser)
			set64(p, offRegsUser, 1<<regDS)
		}, 0, unix.EINVAL},
		{"a bad interrupt register mask yields to later errors", func(p []byte) {
			set64(p, offSampleType, SampleRegsIntr)
			setFlags(p, FlagSigtrap)
		}, 0, unix.EINVAL},
		{"kernel branch sampling is EACCES", func(p []byte) {
			set64(p, offSampleType, SampleBranchStack)
			set64(p, offBranchType, 1<<3|branchKernel)
		}, 0, unix.EACCES},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m memory
			p := m.page[tc.at:]
			w := watchpoint()
			copy(p, w[:min(len(w), len(p))])
			tc.edit(m.page[tc.at:])
			_, err := CopyAttr(m.read, testAddr+tc.at)
			checkErrno(t, err, tc.want)
			if tc.want == unix.E2BIG && !IsE2BIG(err) {
				t.Errorf("E2BIG is not IsE2BIG: %v", err)
			}
		})
	}
}

func checkErrno(t *testing.T, err error, want unix.Errno) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("got %v, want success", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
}

func attrOf(t *testing.T, edit func(p []byte)) Attr {
	t.Helper()
	var m memory
	w := watchpoint()
	copy(m.page[:], w)
	edit(m.page[:])
	a, err := CopyAttr(m.read, testAddr)
	if err != nil {
		t.Fatalf("CopyAttr: %v", err)
	}
	return a
}

func TestCheckOpen(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(p []byte)
		want unix.Errno
	}{
		{"user mode only", func(p []byte) {}, 0},
		{"kernel counting is EACCES", func(p []byte) { set64(p, offFlags, 0) }, unix.EACCES},
		{"namespaces is EACCES", func(p []byte) { setFlags(p, FlagNamespaces) }, unix.EACCES},
		{"period bit 63 is EINVAL", func(p []byte) { set64(p, offSamplePeriod, 1<<63) }, unix.EINVAL},
		{"frequency above the maximum is EINVAL", func(p []byte) { setFlags(p, FlagFreq); set64(p, offSamplePeriod, MaxSampleRate+1) }, unix.EINVAL},
		{"physical addresses are EACCES", func(p []byte) { set64(p, offSampleType, SamplePhysAddr) }, unix.EACCES},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrno(t, attrOf(t, tc.edit).CheckOpen(), tc.want)
		})
	}
}

type thread int

// fixture is a sandbox of threads 1 and 2, with thread 3 exited.
type fixture struct {
	tasks   *hwbp.Tasks[thread]
	events  *Events[thread]
	clock   uint64
	signals []Sigtrap
}

func newFixture() *fixture {
	tasks := hwbp.NewTasks(hwbp.NewRegistry(), func(k thread) bool { return k == 3 })
	f := &fixture{tasks: tasks}
	f.events = NewEvents(tasks, func(k thread, s Sigtrap) { f.signals = append(f.signals, s) })
	return f
}

// clone makes child a clone of parent: a thread of parent's process
// (CLONE_THREAD) if both are in one ten, a forked process otherwise.
func (f *fixture) clone(parent, child thread) {
	var flags uint64
	if parent/10 == child/10 {
		flags = unix.CLONE_VM | unix.CLONE_SIGHAND | unix.CLONE_THREAD
	}
	f.tasks.Clone(parent, child, flags)
}

func (f *fixture) target(k thread) Target[thread] {
	return Target[thread]{
		Task: k, HasTask: true, CPU: -1, NumCPU: 2,
		MayAccess: func(attach bool) bool { return k != 2 || !attach },
		Exited:    func() bool { return k == 3 },
		Clock:     func() uint64 { return f.clock },
	}
}

func (f *fixture) open(t *testing.T, k thread, edit func(p []byte)) *Event[thread] {
	t.Helper()
	ev, err := f.events.Open(attrOf(t, edit), f.target(k), Group[thread]{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return ev
}

func TestOpen(t *testing.T) {
	cpuWide := func(tg *Target[thread]) { tg.HasTask, tg.CPU = false, 0 }
	for _, tc := range []struct {
		name   string
		edit   func(p []byte)
		target func(*Target[thread])
		// before runs first, on the fixture.
		before func(t *testing.T, f *fixture)
		want   unix.Errno
	}{
		{"a watchpoint of the thread", func(p []byte) {}, nil, nil, 0},
		{"cpu -1 needs a task", func(p []byte) {}, func(tg *Target[thread]) { tg.HasTask = false }, nil, unix.EINVAL},
		{"a cpu past the last is EINVAL", func(p []byte) {}, func(tg *Target[thread]) { tg.CPU = 2 }, nil, unix.EINVAL},
		{"cpu -2 is EINVAL", func(p []byte) {}, func(tg *Target[thread]) { tg.CPU = -2 }, nil, unix.EINVAL},
		{"a task on one cpu", func(p []byte) {}, func(tg *Target[thread]) { tg.CPU = 1 }, nil, 0},
		{"CPU-wide events are EACCES", func(p []byte) {}, cpuWide, nil, unix.EACCES},
		{"CPU-wide: a bad length comes first", func(p []byte) { set64(p, offBPLen, 3) }, cpuWide, nil, unix.EINVAL},
		{"CPU-wide: ENOSPC next to a task with four events", func(p []byte) {}, cpuWide, func(t *testing.T, f *fixture) {
			for i := 0; i < hwbp.Slots; i++ {
				f.open(t, 1, func(p []byte) { setFlags(p, FlagDisabled) })
			}
		}, unix.ENOSPC},
		{"CPU-wide sigtrap is EINVAL", func(p []byte) { setFlags(p, FlagSigtrap|FlagRemoveOnExec) }, cpuWide, nil, unix.EINVAL},
		{"inherit with PERF_SAMPLE_READ needs PERF_SAMPLE_TID", func(p []byte) { setFlags(p, FlagInherit); set64(p, offSampleType, SampleRead) }, nil, nil, unix.EINVAL},
		{"branch stack is EOPNOTSUPP", func(p []byte) { set64(p, offSampleType, SampleBranchStack); set64(p, offBranchType, 1<<3|branchUser) }, nil, nil, unix.EOPNOTSUPP},
		{"a read watchpoint is EINVAL", func(p []byte) { set32(p, offBPType, uint32(hwbp.TypeR)) }, nil, nil, unix.EINVAL},
		{"an address past the user space is EINVAL", func(p []byte) { set64(p, offBPAddr, hwbp.TaskSizeMax) }, nil, nil, unix.EINVAL},
		{"XMM registers are EOPNOTSUPP", func(p []byte) { set64(p, offRegsUser, 1<<40) }, nil, nil, unix.EOPNOTSUPP},
		{"aux_output is EOPNOTSUPP", func(p []byte) { setFlags(p, FlagAuxOutput) }, nil, nil, unix.EOPNOTSUPP},
		{"aux_sample_size is EINVAL", func(p []byte) { set32(p, offAuxSample, 8) }, nil, nil, unix.EINVAL},
		{"CLOCK_REALTIME is EINVAL", func(p []byte) { setFlags(p, FlagUseClockID) }, nil, nil, unix.EINVAL},
		{"CLOCK_MONOTONIC", func(p []byte) { setFlags(p, FlagUseClockID); set32(p, offClockID, clockMonotonic) }, nil, nil, 0},
		{"a task the caller may not trace", func(p []byte) { setFlags(p, FlagSigtrap|FlagRemoveOnExec) }, func(tg *Target[thread]) { *tg = newFixture().target(2) }, nil, unix.EACCES},
		{"an exited task is ESRCH", func(p []byte) {}, func(tg *Target[thread]) { *tg = newFixture().target(3) }, nil, unix.ESRCH},
		{"an exited task: the attribute's errors first", func(p []byte) { set64(p, offBPLen, 3) }, func(tg *Target[thread]) { *tg = newFixture().target(3) }, nil, unix.EINVAL},
		{"a fifth event is ENOSPC", func(p []byte) {}, nil, func(t *testing.T, f *fixture) {
			for i := 0; i < hwbp.Slots; i++ {
				f.open(t, 1, func(p []byte) { setFlags(p, FlagDisabled) })
			}
		}, unix.ENOSPC},
		{"ENOSPC before the attribute's errors", func(p []byte) { set64(p, offBPLen, 3) }, nil, func(t *testing.T, f *fixture) {
			for i := 0; i < hwbp.Slots; i++ {
				f.open(t, 1, func(p []byte) {})
			}
		}, unix.ENOSPC},
		{"ENOSPC next to ptrace's registers", func(p []byte) {}, nil, func(t *testing.T, f *fixture) {
			task, err := f.tasks.Get(1)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < hwbp.Slots; i++ {
				// What PTRACE_POKEUSER of DRi registers.
				if _, err := f.tasks.Registry().Register(task, hwbp.Attr{Addr: uint64(i), Len: 1, Type: hwbp.TypeW, Disabled: true}, nil); err != nil {
					t.Fatal(err)
				}
			}
		}, unix.ENOSPC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			if tc.before != nil {
				tc.before(t, f)
			}
			target := f.target(1)
			if tc.target != nil {
				tc.target(&target)
			}
			before := f.tasks.Registry().MaxSlotsInUse()
			ev, err := f.events.Open(attrOf(t, tc.edit), target, Group[thread]{})
			checkErrno(t, err, tc.want)
			if err != nil {
				if got := f.tasks.Registry().MaxSlotsInUse(); got != before {
					t.Errorf("a failed Open changed the slots in use: %d, was %d", got, before)
				}
				return
			}
			ev.Close()
			if got := f.tasks.Registry().MaxSlotsInUse(); got != before {
				t.Errorf("Close left %d slots in use, want %d", got, before)
			}
		})
	}
}

func TestPtraceAfterFourEvents(t *testing.T) {
	f := newFixture()
	for i := 0; i < hwbp.Slots; i++ {
		f.open(t, 1, func(p []byte) { setFlags(p, FlagDisabled) })
	}
	task, _ := f.tasks.Get(1)
	_, err := f.tasks.Registry().Register(task, hwbp.Attr{Addr: 0, Len: 1, Type: hwbp.TypeW, Disabled: true}, nil)
	checkErrno(t, err, unix.ENOSPC)
}

func TestGroupRules(t *testing.T) {
	f := newFixture()
	leader := f.open(t, 1, func(p []byte) {})
	member, err := f.events.Open(attrOf(t, func(p []byte) {}), f.target(1), Group[thread]{Leader: leader})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	for _, tc := range []struct {
		name   string
		edit   func(p []byte)
		target Target[thread]
		group  Group[thread]
		want   unix.Errno
	}{
		{"a member of the same task", func(p []byte) {}, f.target(1), Group[thread]{Leader: leader}, 0},
		{"inherit must match the leader's", func(p []byte) { setFlags(p, FlagInherit) }, f.target(1), Group[thread]{Leader: leader}, unix.EINVAL},
		{"another task is EINVAL", func(p []byte) {}, f.target(2), Group[thread]{Leader: leader}, unix.EINVAL},
		{"a pinned member is EINVAL", func(p []byte) { setFlags(p, FlagPinned) }, f.target(1), Group[thread]{Leader: leader}, unix.EINVAL},
		{"output redirection without a ring buffer is EINVAL", func(p []byte) {}, f.target(1), Group[thread]{Leader: leader, Output: leader}, unix.EINVAL},
		{"a member is no leader", func(p []byte) {}, f.target(1), Group[thread]{Leader: member}, unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := f.events.Open(attrOf(t, tc.edit), tc.target, tc.group)
			checkErrno(t, err, tc.want)
			if ev != nil {
				ev.Close()
			}
		})
	}
}

// hit fires every armed slot of thread k once, as a back end's trap would.
func (f *fixture) hit(k thread) {
	task := f.tasks.Lookup(k)
	img := task.Image()
	var dr6 hwbp.DR6 = hwbp.DR6Reset
	for slot := 0; slot < hwbp.Slots; slot++ {
		if img.DR7.Enabled(slot) {
			dr6 |= hwbp.DR6Trap0 << slot
		}
	}
	f.tasks.Trap(k, &img, dr6, 0)
}

func u64s(b []byte) []uint64 {
	var v []uint64
	for ; len(b) >= 8; b = b[8:] {
		v = append(v, binary.LittleEndian.Uint64(b))
	}
	return v
}

func TestCountAndRead(t *testing.T) {
	f := newFixture()
	rf := uint64(FormatTotalTimeEnabled | FormatTotalTimeRunning | FormatID | FormatLost)
	ev := f.open(t, 1, func(p []byte) { set64(p, offReadFormat, rf) })
	f.clock = 100
	f.hit(1)
	f.hit(1)
	if _, err := ev.Read(39); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Read of 39 bytes: %v, want ENOSPC", err)
	}
	b, err := ev.Read(100)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u64s(b), []uint64{2, 100, 100, ev.ID(), 0}; !equal(got, want) {
		t.Errorf("Read = %v, want %v", got, want)
	}
	ev.Disable(false)
	f.hit(1) // nothing armed: no slot fires
	f.clock = 150
	ev.Reset(false)
	b, _ = ev.Read(100)
	if got, want := u64s(b), []uint64{0, 100, 100, ev.ID(), 0}; !equal(got, want) {
		t.Errorf("after disable and reset: Read = %v, want %v", got, want)
	}
	ev.Enable(false)
	f.clock = 170
	f.hit(1)
	b, _ = ev.Read(100)
	if got, want := u64s(b), []uint64{1, 120, 120, ev.ID(), 0}; !equal(got, want) {
		t.Errorf("after enable: Read = %v, want %v", got, want)
	}
	ev.Close()
	if n := f.tasks.Lookup(1).SlotsInUse(); n != 0 {
		t.Errorf("close left %d slots in use", n)
	}
}

func TestExcludeUserCountsNothing(t *testing.T) {
	f := newFixture()
	ev := f.open(t, 1, func(p []byte) { setFlags(p, FlagExcludeUser) })
	f.hit(1)
	b, _ := ev.Read(8)
	if got := u64s(b); got[0] != 0 {
		t.Errorf("an exclude_user event counted %d user-mode hits", got[0])
	}
}

func TestGroupRead(t *testing.T) {
	f := newFixture()
	rf := uint64(FormatGroup | FormatID)
	leader := f.open(t, 1, func(p []byte) { set64(p, offReadFormat, rf) })
	member, err := f.events.Open(attrOf(t, func(p []byte) { set64(p, offBPAddr, testAddr+8) }), f.target(1), Group[thread]{Leader: leader})
	if err != nil {
		t.Fatal(err)
	}
	f.hit(1)
	b, err := leader.Read(40)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u64s(b), []uint64{2, 1, leader.ID(), 1, member.ID()}; !equal(got, want) {
		t.Errorf("group Read = %v, want %v", got, want)
	}
	leader.Disable(true)
	if n := f.tasks.Registry().Enabled(); n != 0 {
		t.Errorf("disable with PERF_IOC_FLAG_GROUP left %d events enabled", n)
	}
	member.Close()
	b, _ = leader.Read(40)
	if got, want := u64s(b), []uint64{1, 1, leader.ID()}; !equal(got, want) {
		t.Errorf("after the member's close: Read = %v, want %v", got, want)
	}
	other, err := f.events.Open(attrOf(t, func(p []byte) { set64(p, offReadFormat, rf) }), f.target(1), Group[thread]{Leader: leader})
	if err != nil {
		t.Fatal(err)
	}
	leader.Close()
	b, _ = other.Read(40)
	if got, want := u64s(b), []uint64{1, 0, other.ID()}; !equal(got, want) {
		t.Errorf("after the leader's close, a member reads alone: %v, want %v", got, want)
	}
}

func TestSetPeriod(t *testing.T) {
	f := newFixture()
	counting := f.open(t, 1, func(p []byte) {})
	checkErrno(t, counting.SetPeriod(1), unix.EINVAL)
	sampling := f.open(t, 1, func(p []byte) { set64(p, offSamplePeriod, 1) })
	checkErrno(t, sampling.SetPeriod(0), unix.EINVAL)
	checkErrno(t, sampling.SetPeriod(1<<63), unix.EINVAL)
	checkErrno(t, sampling.SetPeriod(5), 0)
	checkErrno(t, counting.Refresh(1), unix.EINVAL)
}

func TestRefresh(t *testing.T) {
	f := newFixture()
	ev := f.open(t, 1, func(p []byte) {
		setFlags(p, FlagDisabled|FlagSigtrap|FlagRemoveOnExec)
		set64(p, offSamplePeriod, 2)
	})
	checkErrno(t, ev.Refresh(2), 0)
	for i := 0; i < 6; i++ {
		f.hit(1)
	}
	b, _ := ev.Read(8)
	if got := u64s(b)[0]; got != 4 || len(f.signals) != 2 {
		t.Errorf("refresh 2 with period 2: %d hits counted and %d signals, want 4 and 2", got, len(f.signals))
	}
	if n := f.tasks.Registry().Enabled(); n != 0 {
		t.Errorf("the event is still enabled after its last overflow")
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSigtrap(t *testing.T) {
	f := newFixture()
	ev := f.open(t, 1, func(p []byte) {
		setFlags(p, FlagSigtrap|FlagRemoveOnExec)
		set64(p, offSamplePeriod, 3)
		set64(p, offSigData, 0xfeed)
	})
	for i := 0; i < 7; i++ {
		f.hit(1)
	}
	want := Sigtrap{Addr: testAddr, Data: 0xfeed, Type: TypeBreakpoint}
	if len(f.signals) != 2 || f.signals[0] != want {
		t.Fatalf("7 hits with period 3 sent %v, want two of %v", f.signals, want)
	}
	checkErrno(t, ev.SetPeriod(1), 0)
	f.hit(1)
	if len(f.signals) != 3 {
		t.Errorf("after PERF_EVENT_IOC_PERIOD 1, a hit sent %d signals in all, want 3", len(f.signals))
	}
	counting := f.open(t, 1, func(p []byte) { set64(p, offBPAddr, testAddr+8) })
	f.signals = nil
	f.hit(1)
	if len(f.signals) != 1 {
		t.Errorf("a counting event next to the sigtrap one: %d signals, want 1", len(f.signals))
	}
	counting.Close()
	ev.Close()
}

func TestExec(t *testing.T) {
	f := newFixture()
	onExec := f.open(t, 1, func(p []byte) { setFlags(p, FlagDisabled|FlagEnableOnExec) })
	removed := f.open(t, 1, func(p []byte) { setFlags(p, FlagRemoveOnExec); set64(p, offBPAddr, testAddr+8) })
	kept := f.open(t, 1, func(p []byte) { set64(p, offBPAddr, testAddr+16) })
	closed := f.open(t, 1, func(p []byte) { setFlags(p, FlagDisabled|FlagEnableOnExec); set64(p, offBPAddr, testAddr+24) })
	closed.Close()
	f.hit(1)
	f.tasks.Exec(1)
	if n := f.tasks.Lookup(1).SlotsInUse(); n != 3 {
		t.Errorf("after exec: %d slots in use, want 3 (enable_on_exec, plain, and remove_on_exec until it is closed)", n)
	}
	f.hit(1)
	for _, tc := range []struct {
		name string
		ev   *Event[thread]
		want uint64
	}{{"enable_on_exec", onExec, 1}, {"remove_on_exec", removed, 1}, {"plain", kept, 2}} {
		b, _ := tc.ev.Read(8)
		if got := u64s(b)[0]; got != tc.want {
			t.Errorf("%s event counted %d, want %d", tc.name, got, tc.want)
		}
	}
	f.tasks.Exec(1)
	onExec.Disable(false)
	f.tasks.Exec(1)
	if got := f.tasks.Registry().Enabled(); got != 1 {
		t.Errorf("enable_on_exec acted at a second exec: %d events enabled, want 1", got)
	}
}

func TestExitStopsTimes(t *testing.T) {
	f := newFixture()
	ev := f.open(t, 1, func(p []byte) { set64(p, offReadFormat, FormatTotalTimeEnabled|FormatTotalTimeRunning) })
	f.clock = 10
	f.hit(1)
	f.events.Exit(1)
	f.tasks.Exit(1)
	f.clock = 50
	b, _ := ev.Read(24)
	if got, want := u64s(b), []uint64{1, 10, 10}; !equal(got, want) {
		t.Errorf("after the task's exit: Read = %v, want %v", got, want)
	}
	ev.Enable(false) // no task left: nothing to arm
	ev.Close()
}

func TestModify(t *testing.T) {
	edit := func(p []byte) { set64(p, offReadFormat, FormatID) }
	for _, tc := range []struct {
		name        string
		disable     bool // PERF_EVENT_IOC_DISABLE first
		edit        func(p []byte)
		want        unix.Errno
		wantAddr    uint64
		wantEnabled int64
	}{
		{"moves the breakpoint", false, func(p []byte) { set64(p, offBPAddr, testAddr+8) }, 0, testAddr + 8, 1},
		{"retypes and resizes it", false, func(p []byte) { set32(p, offBPType, uint32(hwbp.TypeRW)); set64(p, offBPLen, 8) }, 0, testAddr, 1},
		{"disabled disables it", false, func(p []byte) { setFlags(p, FlagDisabled) }, 0, testAddr, 0},
		{"any other field is EINVAL", false, func(p []byte) { set64(p, offSamplePeriod, 1) }, unix.EINVAL, testAddr, 1},
		{"another size is EINVAL", false, func(p []byte) { set32(p, offSize, 136) }, unix.EINVAL, testAddr, 1},
		{"branch_sample_type is EINVAL", false, func(p []byte) { set64(p, offBranchType, 1) }, unix.EINVAL, testAddr, 1},
		{"another type is EINVAL", false, func(p []byte) { set32(p, offType, 1) }, unix.EINVAL, testAddr, 1},
		{"a bad length is EINVAL", false, func(p []byte) { set64(p, offBPLen, 3) }, unix.EINVAL, testAddr, 1},
		{"a range is EOPNOTSUPP before the field check", false, func(p []byte) {
			set64(p, offBPLen, 16)
			set64(p, offSamplePeriod, 1)
		}, unix.EOPNOTSUPP, testAddr, 1},
		{"a failure enables an event disabled by ioctl", true, func(p []byte) { set64(p, offSamplePeriod, 1) }, unix.EINVAL, testAddr, 1},
		{"sig_data may change", false, func(p []byte) { set64(p, offSigData, 5) }, 0, testAddr, 1},
		{"a kernel address is EINVAL with exclude_kernel", false, func(p []byte) { set64(p, offBPAddr, hwbp.TaskSizeMax) }, unix.EINVAL, testAddr, 1},
		{"a kernel address without exclude_kernel is EPERM before the field check", false, func(p []byte) {
			set64(p, offBPAddr, ^uint64(0))
			set64(p, offBPLen, 1)
			set64(p, offFlags, FlagExcludeHV)
		}, unix.EPERM, testAddr, 1},
		{"TASK_SIZE_MAX without exclude_kernel is EPERM", false, func(p []byte) {
			set64(p, offBPAddr, hwbp.TaskSizeMax)
			set64(p, offFlags, FlagExcludeHV)
		}, unix.EPERM, testAddr, 1},
		{"an execution breakpoint in kernel space without exclude_kernel is EINVAL", false, func(p []byte) {
			set64(p, offBPAddr, hwbp.TaskSizeMax)
			set32(p, offBPType, uint32(hwbp.TypeX))
			set64(p, offBPLen, 8)
			set64(p, offFlags, FlagExcludeHV)
		}, unix.EINVAL, testAddr, 1},
		{"a user address without exclude_kernel is EINVAL (another field)", false, func(p []byte) { set64(p, offFlags, FlagExcludeHV) }, unix.EINVAL, testAddr, 1},
		{"a misaligned kernel address without exclude_kernel is EINVAL", false, func(p []byte) {
			set64(p, offBPAddr, hwbp.TaskSizeMax+1)
			set64(p, offFlags, FlagExcludeHV)
		}, unix.EINVAL, testAddr, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			ev := f.open(t, 1, edit)
			if tc.disable {
				ev.Disable(false)
			}
			n := attrOf(t, func(p []byte) { edit(p); tc.edit(p) })
			checkErrno(t, ev.Modify(n), tc.want)
			img := f.tasks.Lookup(1).Image()
			if got := f.tasks.Registry().Enabled(); got != tc.wantEnabled {
				t.Errorf("%d events enabled, want %d", got, tc.wantEnabled)
			}
			if tc.wantEnabled == 1 && img.Addr[0] != tc.wantAddr {
				t.Errorf("armed at %#x, want %#x", img.Addr[0], tc.wantAddr)
			}
		})
	}
}

func TestInherit(t *testing.T) {
	f := newFixture()
	rf := uint64(FormatTotalTimeEnabled | FormatTotalTimeRunning)
	ev := f.open(t, 1, func(p []byte) { setFlags(p, FlagInherit); set64(p, offReadFormat, rf) })
	plain := f.open(t, 1, func(p []byte) { set64(p, offBPAddr, testAddr+8) })
	threadOnly := f.open(t, 1, func(p []byte) { setFlags(p, FlagInherit|FlagInheritThread); set64(p, offBPAddr, testAddr+16) })
	f.clone(1, 20) // another process: not inherit_thread's copy
	f.clone(1, 2)  // a thread of 1's process (fixture: k/10)
	if n := f.tasks.Lookup(20).SlotsInUse(); n != 1 {
		t.Errorf("a forked child has %d events, want 1 (inherit only)", n)
	}
	if n := f.tasks.Lookup(2).SlotsInUse(); n != 2 {
		t.Errorf("a new thread has %d events, want 2 (inherit, inherit_thread)", n)
	}
	f.clone(20, 21) // a grandchild: its copy counts for ev too
	f.clock = 10
	f.hit(1)
	f.hit(20)
	f.hit(21)
	f.hit(21)
	read := func() []uint64 {
		b, err := ev.Read(24)
		if err != nil {
			t.Fatal(err)
		}
		return u64s(b)
	}
	if got := read(); got[0] != 4 || got[1] != 40 || got[1] != got[2] {
		t.Errorf("with live copies: Read = %v, want 4 hits and 40 ns (4 events for 10 ns each)", got)
	}
	f.events.Exit(21)
	f.tasks.Exit(21)
	f.clock = 20
	if got := read(); got[0] != 4 || got[1] != 10+20+20+20 {
		t.Errorf("after a copy's exit: Read = %v, want 4 hits and 70 ns", got)
	}
	ev.Disable(false)
	if got := f.tasks.Registry().Enabled(); got != 3 {
		// plain, thread and its copy in 2, and nothing of ev's.
		t.Errorf("disable reaches the copies: %d events enabled, want 3", got)
	}
	ev.Reset(false)
	if got := read(); got[0] != 2 {
		t.Errorf("after reset: count %d, want 2 (what the exited copy left)", got[0])
	}
	ev.Close()
	for _, k := range []thread{2, 20} {
		if n := f.tasks.Lookup(k).SlotsInUse(); n != map[thread]int{2: 1, 20: 0}[k] {
			t.Errorf("after close, thread %d has %d events", k, n)
		}
	}
	plain.Close()
	threadOnly.Close()
	if n := f.tasks.Lookup(2).SlotsInUse(); n != 0 {
		t.Errorf("after every close, thread 2 has %d events", n)
	}
}

// TestReadWhileCopiesExit checks that a read of an inherited event sums
// each copy once while copies exit (Linux's sync_child_event and
// perf_event_read_value, both under child_mutex): never a count that an
// exiting copy has left but the opened event not yet taken.
func TestReadWhileCopiesExit(t *testing.T) {
	const copies = 40
	for round := 0; round < 20; round++ {
		f := newFixture()
		ev := f.open(t, 1, func(p []byte) { setFlags(p, FlagInherit) })
		for i := 0; i < copies; i++ {
			k := thread(100 + 10*i) // each a process of its own
			f.clone(1, k)
			f.hit(k)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < copies; i++ {
				k := thread(100 + 10*i)
				f.events.Exit(k)
				f.tasks.Exit(k)
			}
		}()
		for reading := true; reading; {
			select {
			case <-done:
				reading = false
			default:
			}
			if count, _, _ := ev.value(); count != copies {
				t.Fatalf("round %d: a read while copies exit counts %d hits, want %d", round, count, copies)
			}
		}
		ev.Close()
	}
}

// TestInheritedGroup checks that a group is copied into a new thread whole
// or not at all, as its leader's inherit_thread and sigtrap decide (Linux's
// inherit_task_group and inherit_group).
func TestInheritedGroup(t *testing.T) {
	const sigtrap = FlagSigtrap | FlagRemoveOnExec
	for _, tc := range []struct {
		name                   string
		leader, member         uint64 // flags besides FlagInherit
		child                  thread
		clearSighand           bool
		wantLeader, wantMember bool
	}{
		{"a forked child copies a group whose leader lacks inherit_thread, with its inherit_thread member", 0, FlagInheritThread, 20, false, true, true},
		{"a forked child copies no member of a group whose leader has inherit_thread", FlagInheritThread, 0, 20, false, false, false},
		{"a thread copies the group either way", FlagInheritThread, 0, 2, false, true, true},
		{"a child with its signal handlers reset copies no group whose leader has sigtrap", sigtrap, 0, 20, true, false, false},
		{"a child with its signal handlers reset copies a group whose leader lacks sigtrap, with its sigtrap member", 0, sigtrap, 20, true, true, true},
		{"a child with its handlers kept copies a sigtrap group", sigtrap, 0, 20, false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			leader := f.open(t, 1, func(p []byte) { setFlags(p, FlagInherit|tc.leader) })
			defer leader.Close()
			member, err := f.events.Open(attrOf(t, func(p []byte) {
				setFlags(p, FlagInherit|tc.member)
				set64(p, offBPAddr, testAddr+8)
			}), f.target(1), Group[thread]{Leader: leader})
			if err != nil {
				t.Fatal(err)
			}
			defer member.Close()
			if tc.clearSighand {
				f.tasks.Clone(1, tc.child, unix.CLONE_CLEAR_SIGHAND)
			} else {
				f.clone(1, tc.child)
			}
			f.hit(tc.child)
			for _, e := range []struct {
				name string
				ev   *Event[thread]
				want bool
			}{{"leader", leader, tc.wantLeader}, {"member", member, tc.wantMember}} {
				count, _, _ := e.ev.value()
				if got := count == 1; got != e.want {
					t.Errorf("%s counts %d hits of the new thread, want a copy: %v", e.name, count, e.want)
				}
			}
		})
	}
}

// TestDefunct checks which events perf_event_open refuses as group_fd with
// ENODEV: those whose task exited or that an exec removed.
func TestDefunct(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(p []byte)
		// then runs after the event is opened on thread 1.
		then func(f *fixture)
		want bool
	}{
		{"an open event is a leader", func(p []byte) {}, func(f *fixture) {}, false},
		{"a disabled event is a leader", func(p []byte) { setFlags(p, FlagDisabled) }, func(f *fixture) {}, false},
		{"an event whose task exited is defunct", func(p []byte) {}, func(f *fixture) { f.events.Exit(1); f.tasks.Exit(1) }, true},
		{"a remove_on_exec event after an exec is defunct", func(p []byte) { setFlags(p, FlagRemoveOnExec) }, func(f *fixture) { f.tasks.Exec(1) }, true},
		{"an event that an exec keeps is a leader", func(p []byte) {}, func(f *fixture) { f.tasks.Exec(1) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			ev := f.open(t, 1, tc.edit)
			defer ev.Close()
			tc.then(f)
			if got := ev.Defunct(); got != tc.want {
				t.Errorf("Defunct() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRemovedEventKeepsItsSlot checks that an event that an exec removed
// (remove_on_exec) holds its slot until it is closed, as on Linux, which
// releases a breakpoint's slot only when it frees the event, while the
// ptrace registers and a fifth event find none.
func TestRemovedEventKeepsItsSlot(t *testing.T) {
	f := newFixture()
	removed := f.open(t, 1, func(p []byte) { setFlags(p, FlagRemoveOnExec) })
	for i := 1; i < hwbp.Slots; i++ {
		f.open(t, 1, func(p []byte) { set64(p, offBPAddr, testAddr+8*uint64(i)) })
	}
	f.tasks.Exec(1)
	if !removed.Defunct() {
		t.Fatal("the exec did not remove the remove_on_exec event")
	}
	if got := f.tasks.Registry().Enabled(); got != hwbp.Slots-1 {
		t.Errorf("after the exec %d events are enabled, want %d: the removed one must not count", got, hwbp.Slots-1)
	}
	_, err := f.events.Open(attrOf(t, func(p []byte) {}), f.target(1), Group[thread]{})
	checkErrno(t, err, unix.ENOSPC)
	task, _ := f.tasks.Get(1)
	_, err = f.tasks.Registry().Register(task, hwbp.Attr{Addr: 0, Len: 1, Type: hwbp.TypeW, Disabled: true}, nil)
	checkErrno(t, err, unix.ENOSPC)
	removed.Close()
	ev, err := f.events.Open(attrOf(t, func(p []byte) {}), f.target(1), Group[thread]{})
	checkErrno(t, err, 0)
	ev.Close()
}

// TestRemoveOnExecLeavesTheGroup checks that an exec takes a remove_on_exec
// event out of its group (a leader's members become singletons), and that a
// task's exit keeps a group whole, as on Linux.
func TestRemoveOnExecLeavesTheGroup(t *testing.T) {
	rf := func(p []byte) { set64(p, offReadFormat, FormatGroup) }
	removeOnExec := func(p []byte) { rf(p); setFlags(p, FlagRemoveOnExec) }
	at := func(i uint64, edit func(p []byte)) func(p []byte) {
		return func(p []byte) { edit(p); set64(p, offBPAddr, testAddr+8*i) }
	}
	// nr returns the number of events that a group read of ev reports.
	nr := func(t *testing.T, ev *Event[thread]) uint64 {
		t.Helper()
		b, err := ev.Read(64)
		if err != nil {
			t.Fatal(err)
		}
		return u64s(b)[0]
	}
	for _, tc := range []struct {
		name string
		// leader and members edit the attributes of a leader and two
		// members, opened in that order on thread 1.
		leader, member1, member2 func(p []byte)
		// exit makes thread 1 exit instead of exec.
		exit bool
		// want is nr of a group read of the leader and of each member.
		want [3]uint64
	}{
		{"a removed member leaves the group", rf, removeOnExec, rf, false, [3]uint64{2, 1, 2}},
		{"a removed leader's members become singletons", removeOnExec, rf, rf, false, [3]uint64{1, 1, 1}},
		{"an exec keeps a group without remove_on_exec", rf, rf, rf, false, [3]uint64{3, 3, 3}},
		{"an exit keeps a group whole", removeOnExec, removeOnExec, rf, true, [3]uint64{3, 3, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			leader := f.open(t, 1, at(0, tc.leader))
			var evs [3]*Event[thread]
			evs[0] = leader
			for i, edit := range []func(p []byte){tc.member1, tc.member2} {
				ev, err := f.events.Open(attrOf(t, at(uint64(i+1), edit)), f.target(1), Group[thread]{Leader: leader})
				if err != nil {
					t.Fatal(err)
				}
				evs[i+1] = ev
			}
			if tc.exit {
				f.events.Exit(1)
				f.tasks.Exit(1)
			} else {
				f.tasks.Exec(1)
			}
			for i, ev := range evs {
				if got := nr(t, ev); got != tc.want[i] {
					t.Errorf("event %d reads a group of %d, want %d", i, got, tc.want[i])
				}
			}
			for _, ev := range evs {
				ev.Close()
			}
		})
	}
}

// TestAsyncNotifications checks the reasons that a sampling event's
// overflows notify an O_ASYNC owner with (Linux's pending_kill: POLL_IN,
// POLL_HUP when a refresh limit runs out), and when.
func TestAsyncNotifications(t *testing.T) {
	sampling := func(p []byte) { setFlags(p, FlagInherit); set64(p, offSamplePeriod, 2) }
	for _, tc := range []struct {
		name string
		// run acts on the event, opened on thread 1 with period 2, and
		// on the fixture.
		run  func(f *fixture, ev *Event[thread], async func(bool))
		want []int
	}{
		{"an overflow with O_ASYNC is POLL_IN", func(f *fixture, ev *Event[thread], async func(bool)) {
			async(true)
			for i := 0; i < 5; i++ {
				f.hit(1)
			}
		}, []int{PollIn, PollIn}},
		{"a counting event never notifies", func(f *fixture, ev *Event[thread], async func(bool)) {
			ev.mu.Lock()
			set64(ev.attr.raw[:], offSamplePeriod, 0)
			ev.mu.Unlock()
			async(true)
			f.hit(1)
			f.hit(1)
			f.events.Exit(1)
		}, nil},
		{"the overflow that uses up a refresh is POLL_HUP", func(f *fixture, ev *Event[thread], async func(bool)) {
			ev.mu.Lock()
			set64(ev.attr.raw[:], offFlags, binary.LittleEndian.Uint64(ev.attr.raw[offFlags:])&^FlagInherit)
			ev.mu.Unlock()
			async(true)
			checkErrno(t, ev.Refresh(2), 0)
			for i := 0; i < 6; i++ {
				f.hit(1)
			}
		}, []int{PollIn, PollHUp}},
		{"without O_ASYNC nothing, then the exit reports the pending overflow", func(f *fixture, ev *Event[thread], async func(bool)) {
			f.hit(1)
			f.hit(1)
			async(true)
			f.events.Exit(1)
		}, []int{PollIn}},
		{"an exit with nothing pending reports nothing", func(f *fixture, ev *Event[thread], async func(bool)) {
			async(true)
			f.hit(1)
			f.hit(1)
			f.events.Exit(1)
		}, []int{PollIn}},
		{"O_ASYNC cleared stops them", func(f *fixture, ev *Event[thread], async func(bool)) {
			async(true)
			f.hit(1)
			async(false)
			f.hit(1)
		}, nil},
		{"a copy's overflow reports through the opened event", func(f *fixture, ev *Event[thread], async func(bool)) {
			async(true)
			f.clone(1, 20)
			f.hit(20)
			f.hit(20)
		}, []int{PollIn}},
		{"a copy's exit reports the opened event's pending overflow", func(f *fixture, ev *Event[thread], async func(bool)) {
			f.clone(1, 20)
			f.hit(1)
			f.hit(1)
			async(true)
			f.events.Exit(20)
		}, []int{PollIn}},
		{"the close reports nothing", func(f *fixture, ev *Event[thread], async func(bool)) {
			f.hit(1)
			f.hit(1)
			async(true)
			ev.Close()
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			ev := f.open(t, 1, sampling)
			var got []int
			async := func(on bool) {
				if on {
					ev.SetAsync(func(reason int) { got = append(got, reason) })
				} else {
					ev.SetAsync(nil)
				}
			}
			tc.run(f, ev, async)
			if !slices.Equal(got, tc.want) {
				t.Errorf("notifications %v, want %v", got, tc.want)
			}
			ev.Close()
		})
	}
}
