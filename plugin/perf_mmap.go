// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/errors/linuxerr"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/limits"
	"gvisor.dev/gvisor/pkg/sentry/memmap"
	"gvisor.dev/gvisor/pkg/sentry/pgalloc"
	"gvisor.dev/gvisor/pkg/sentry/usage"
	"gvisor.dev/gvisor/pkg/sentry/vfs"

	"github.com/gvisor-hwbp/hwbp/sentry/perf"
)

// ConfigureMMap implements vfs.FileDescriptionImpl.ConfigureMMap: perf_mmap
// of the event's ring (sentry/perf Event.Map makes Linux's checks), whose
// pages are sentry memory that the guest maps and the event's overflows
// write records into. Only offset 0 maps anything: a breakpoint event has
// no AUX area, so any other offset is EINVAL.
//
// Linux's anonymous inodes live on a mount without exec (SB_I_NOEXEC), so
// do_mmap refuses PROT_EXEC with EPERM before perf_mmap runs, and the
// mapping may never become executable (mprotect: EACCES); gVisor's
// anonymous mount has no such flag, so the fd says it itself.
//
// Like Linux's perf_mmap, it marks the mapping VM_DONTCOPY (a fork does not
// copy it), VM_DONTEXPAND (mremap may not grow it) and unsplittable
// (perf_mmap_may_split: a ring is unmapped, protected and moved whole);
// gVisor's memory manager enforces them (patches/gvisor/0013).
func (pf *perfFD) ConfigureMMap(ctx context.Context, opts *memmap.MMapOpts) error {
	if opts.Perms.Execute {
		return linuxerr.EPERM
	}
	opts.MaxPerms.Execute = false
	opts.DontCopy = true
	opts.DontExpand = true
	opts.NoSplit = true
	if opts.Offset != 0 {
		return linuxerr.EINVAL
	}
	t := kernel.TaskFromContext(ctx)
	if t == nil {
		return linuxerr.EINVAL
	}
	mf := t.Kernel().MemoryFile()
	memlock := t.ThreadGroup().Limits().Get(limits.MemoryLocked).Cur
	length, ok := hostarch.PageRoundUp(opts.Length)
	if !ok {
		return linuxerr.ENOMEM
	}
	r, backing, err := pf.ev.Map(length, !opts.Private, opts.Perms.Write, memlock, func(nrData int) ([]byte, [][]byte, any, error) {
		return allocRing(mf, nrData)
	})
	if err != nil {
		return guestError(err)
	}
	m := &perfMapping{pf: pf, ring: r, mem: backing.(*ringMemory)}
	return vfs.GenericConfigureMMap(&pf.vfsfd, m, opts)
}

// ringMemory is the sentry memory of a ring.
type ringMemory struct {
	mf *pgalloc.MemoryFile
	fr memmap.FileRange
}

// allocRing allocates the first page and nrData data pages of a ring,
// zeroed, as guest memory (it counts as the sandbox's anonymous memory).
// Its errors wrap ENOMEM, as sentry/perf's wrap their errno (guestError).
//
// The pages are committed by zeroing them through the sentry's mapping
// (AllocateAndWritePopulate), not with AllocateAndCommit's fallocate: on
// the memory file (shmem) fallocate fails with EINTR whenever a signal is
// pending for the calling thread (Linux mm/shmem.c: shmem_fallocate), and
// the sentry's threads get signals at any time (Go's preemption; ptrace's
// SIGCHLDs), the likely cause of a perf record on ptrace in the test VM
// that once failed to map its ring.
func allocRing(mf *pgalloc.MemoryFile, nrData int) ([]byte, [][]byte, any, error) {
	size := uint64(nrData+1) * perf.PageSize
	fr, err := mf.Allocate(size, pgalloc.AllocOpts{Kind: usage.Anonymous, Mode: pgalloc.AllocateAndWritePopulate})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("allocating a ring of %d bytes: %v: %w", size, err, unix.ENOMEM)
	}
	bs, err := mf.MapInternal(fr, hostarch.ReadWrite)
	if err != nil {
		mf.DecRef(fr)
		return nil, nil, nil, fmt.Errorf("mapping a ring of %d bytes: %v: %w", size, err, unix.ENOMEM)
	}
	// The internal mapping may come in pieces (MemoryFile chunks), each
	// a whole number of pages.
	var pages [][]byte
	for !bs.IsEmpty() {
		b := bs.Head().ToSlice()
		for len(b) >= perf.PageSize {
			pages = append(pages, b[:perf.PageSize:perf.PageSize])
			b = b[perf.PageSize:]
		}
		bs = bs.Tail()
	}
	if len(pages) != nrData+1 {
		mf.DecRef(fr)
		return nil, nil, nil, fmt.Errorf("a ring of %d bytes mapped as %d pages: %w", size, len(pages), unix.ENOMEM)
	}
	for _, p := range pages {
		clear(p)
	}
	return pages[0], pages[1:], &ringMemory{mf: mf, fr: fr}, nil
}

// perfMapping is the memmap.Mappable of a ring mapped through an event's
// fd: Linux's perf_mmap_vmops. It reports the guest's mappings to the event
// (perf_mmap_open, perf_mmap_close), which frees the ring's pages when the
// last one goes; the guest's page tables keep their own references.
type perfMapping struct {
	pf   *perfFD
	ring *perf.Ring
	mem  *ringMemory
}

var _ memmap.Mappable = (*perfMapping)(nil)

// AddMapping implements memmap.Mappable.AddMapping.
func (m *perfMapping) AddMapping(_ context.Context, _ memmap.MappingSpace, ar hostarch.AddrRange, _ uint64, _ bool) error {
	m.pf.ev.Mapped(m.ring, uint64(ar.Length()))
	return nil
}

// CopyMapping implements memmap.Mappable.CopyMapping. A fork does not copy
// the mapping (it is DontCopy), but a mremap that moves it does.
func (m *perfMapping) CopyMapping(_ context.Context, _ memmap.MappingSpace, _, dstAR hostarch.AddrRange, _ uint64, _ bool) error {
	m.pf.ev.Mapped(m.ring, uint64(dstAR.Length()))
	return nil
}

// RemoveMapping implements memmap.Mappable.RemoveMapping.
func (m *perfMapping) RemoveMapping(_ context.Context, _ memmap.MappingSpace, ar hostarch.AddrRange, _ uint64, _ bool) {
	m.pf.ev.Unmapped(m.ring, uint64(ar.Length()), func() { m.mem.mf.DecRef(m.mem.fr) })
}

// Translate implements memmap.Mappable.Translate.
func (m *perfMapping) Translate(_ context.Context, required, optional memmap.MappableRange, _ hostarch.AccessType) ([]memmap.Translation, error) {
	size := m.mem.fr.Length()
	if required.End > size {
		return nil, &memmap.BusError{Err: linuxerr.EFAULT}
	}
	source := optional.Intersect(memmap.MappableRange{Start: 0, End: size})
	if source.Length() == 0 {
		return nil, linuxerr.EFAULT
	}
	return []memmap.Translation{{
		Source: source,
		File:   m.mem.mf,
		Offset: m.mem.fr.Start + source.Start,
		Perms:  hostarch.AnyAccess,
	}}, nil
}

// errRingCheckpoint is the error of a checkpoint of a sandbox that maps a
// perf ring.
var errRingCheckpoint = errors.New("hwbp: a perf event's ring buffer is mapped: rings are not carried across checkpoint and restore")

// InvalidateUnsavable implements memmap.Mappable.InvalidateUnsavable: the
// rings are not part of a checkpoint, so one that is mapped fails it.
func (m *perfMapping) InvalidateUnsavable(context.Context) error {
	return errRingCheckpoint
}

// sampler gives sentry/perf what a sample records of the guest thread that
// hit.
type sampler struct{}

// IDs implements perf.Sampler.IDs: the ids in the thread's own PID
// namespace.
func (sampler) IDs(t *kernel.Task) (uint32, uint32) {
	ns := t.PIDNamespace()
	return uint32(ns.IDOfThreadGroup(t.ThreadGroup())), uint32(ns.IDOfTask(t))
}

// CPU implements perf.Sampler.CPU.
func (sampler) CPU(t *kernel.Task) uint32 { return uint32(t.CPU()) }

// Time implements perf.Sampler.Time: the sandbox's monotonic clock, which
// stands for Linux's local_clock and for the monotonic clocks of
// use_clockid.
func (sampler) Time(t *kernel.Task) uint64 { return perfClock(t) }

// perfClock is the sandbox's monotonic clock in nanoseconds, the clock of
// the perf events' times and samples.
func perfClock(t *kernel.Task) uint64 {
	return uint64(t.Kernel().MonotonicClock().Now().Nanoseconds())
}

// Frames implements perf.Sampler.Frames: the thread's RBP and a reader of
// its memory. The sample is taken on the thread's goroutine, at its hit.
func (sampler) Frames(t *kernel.Task) (uint64, perf.Reader) {
	return t.Arch().StateData().Regs.Rbp, func(addr uint64, dst []byte) error {
		_, err := t.CopyInBytes(hostarch.Addr(addr), dst)
		return err
	}
}

// Parent implements perf.Sampler.Parent.
func (sampler) Parent(t *kernel.Task) uint32 {
	p := t.ThreadGroup().Leader()
	if p == nil {
		return 0
	}
	if pp := p.Parent(); pp != nil {
		return uint32(t.PIDNamespace().IDOfThreadGroup(pp.ThreadGroup()))
	}
	return 0
}
