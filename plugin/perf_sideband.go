// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"debug/elf"
	"encoding/binary"
	"sort"
	"strings"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/vfs"
	"gvisor.dev/gvisor/pkg/usermem"

	"github.com/gvisor-hwbp/hwbp/sentry/perf"
)

// This file gathers what the side-band records of guest perf events
// (sentry/perf Events.Comm and Events.Mmap) say about a thread: its name
// and its mappings, as the guest's /proc/PID/maps shows them (gVisor's
// vmas, the path the guest sees, the device and inode numbers of the
// file's stat). All of it runs only while some open event asks for
// side-band records (Events.SideBand, an atomic load).

// vsyscallStart is the start of the vsyscall page that gVisor lists among a
// task's mappings; Linux's is the gate vma, of which no perf record tells.
const vsyscallStart = 0xffffffffff600000

// mappingsIn returns t's mappings that overlap ar, in address order, as
// perf records describe them (perf_event_mmap_event).
func mappingsIn(t *kernel.Task, ar hostarch.AddrRange) []perf.Mapping {
	mm := t.MemoryManager()
	if mm == nil {
		return nil
	}
	// gVisor gives its vdso no name (see loader.PrepareVDSO); it is
	// the mapping at AT_SYSINFO_EHDR, which Linux names "[vdso]".
	var vdso hostarch.Addr
	for _, e := range mm.Auxv() {
		if e.Key == linux.AT_SYSINFO_EHDR {
			vdso = e.Value
		}
	}
	var ms []perf.Mapping
	mm.ReadMapsDataInto(t, func(start, end hostarch.Addr, perms hostarch.AccessType, private string, offset uint64, major, minor uint32, ino uint64, path string) {
		if start >= vsyscallStart || end <= ar.Start || start >= ar.End || path == platformStubName {
			return
		}
		if start == vdso && vdso != 0 && path == "" {
			path = "[vdso]"
		}
		m := perf.Mapping{
			Start: uint64(start),
			Len:   uint64(end - start),
			PgOff: offset,
			Major: major,
			Minor: minor,
			Ino:   ino,
			Flags: linux.MAP_SHARED,
			Name:  path,
		}
		if perms.Read {
			m.Prot |= linux.PROT_READ
		}
		if perms.Write {
			m.Prot |= linux.PROT_WRITE
		}
		if perms.Execute {
			m.Prot |= linux.PROT_EXEC
		}
		anon := major == 0 && minor == 0 && ino == 0
		if private == "p" {
			m.Flags = linux.MAP_PRIVATE
			// A private anonymous vma's vm_pgoff is its start
			// page (do_mmap, do_brk_flags); a special mapping's
			// (the vdso) is 0.
			if anon && path != "[vdso]" && path != "[vvar]" {
				m.PgOff = uint64(start)
			}
		}
		if path == "" {
			// perf_event_mmap_event's name of an anonymous
			// mapping.
			m.Name = "//anon"
		}
		ms = append(ms, m)
	})
	return ms
}

// platformStubName is the mapping of systrap's stub code, which the
// platform maps into each address space and Linux does not have.
const platformStubName = "[usertrap]"

// allMappings is the whole address space.
var allMappings = hostarch.AddrRange{Start: 0, End: ^hostarch.Addr(0)}

// perfExec writes the side-band records of t's exec, once its new image is
// in place: the COMM of its new name, then the MMAP records of the
// mappings the exec made, in the order Linux's load_elf_binary makes them:
// the stack (setup_arg_pages' mprotect_fixup), the executable's segments
// with its bss, the interpreter's, then the vdso and vvar
// (arch_setup_additional_pages), each in address order. Data mappings
// reach only events with mmap_data (Events.Mmap).
//
// elf_map maps the first segment of a position-independent executable, and
// of the interpreter, with the size of the whole image and unmaps the rest
// at once, so Linux's record of that segment has the image's size
// (total_mapping_size); the records here say the same.
func perfExec(t *kernel.Task) {
	events.Comm(t, t.Name(), true)
	ms := mappingsIn(t, allMappings)
	exe, dyn := executable(t)
	rank := func(m *perf.Mapping) int {
		switch {
		case m.Name == "[stack]":
			return 0
		case m.Name == exe:
			return 1
		case m.Name == "[vdso]":
			return 3
		case strings.HasPrefix(m.Name, "[vvar"):
			return 4
		case m.Name == "//anon" || m.Name == "[heap]":
			// The bss of an image follows its segments.
			return 5
		}
		return 2
	}
	// Attach each anonymous mapping that directly follows an image's
	// mapping (its bss) to that image.
	ranks := make([]int, len(ms))
	for i := range ms {
		ranks[i] = rank(&ms[i])
		if ranks[i] == 5 && i > 0 && ms[i-1].Start+ms[i-1].Len == ms[i].Start && (ranks[i-1] == 1 || ranks[i-1] == 2) {
			ranks[i] = ranks[i-1]
		}
	}
	// The first segment of each image takes the image's size.
	for i := range ms {
		m := &ms[i]
		if ranks[i] != 1 && ranks[i] != 2 || m.PgOff != 0 || m.Name == "//anon" || i > 0 && ms[i-1].Name == m.Name {
			continue
		}
		if ranks[i] == 1 && !dyn {
			continue
		}
		end := m.Start + m.Len
		for j := i + 1; j < len(ms) && ms[j].Start == end && ranks[j] == ranks[i]; j++ {
			end += ms[j].Len
		}
		m.Len = end - m.Start
	}
	idx := make([]int, len(ms))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return ranks[idx[a]] < ranks[idx[b]] })
	for _, i := range idx {
		if ranks[i] == 5 {
			// Other anonymous mappings (a heap) came later.
			continue
		}
		events.Mmap(t, &ms[i])
	}
}

// executable returns the path of t's executable as its mappings name it,
// and whether it is position-independent (ET_DYN).
func executable(t *kernel.Task) (string, bool) {
	mm := t.MemoryManager()
	if mm == nil {
		return "", false
	}
	f := mm.Executable()
	if f == nil {
		return "", false
	}
	defer f.DecRef(t)
	var hdr [18]byte
	n, _ := f.PRead(t, usermem.BytesIOSequence(hdr[:]), 0, vfs.ReadOptions{})
	dyn := n == int64(len(hdr)) && elf.Type(binary.LittleEndian.Uint16(hdr[16:])) == elf.ET_DYN
	return f.MappedName(t), dyn
}

// MemoryMapped implements kernel.Extension.MemoryMapped: the MMAP record
// of the mapping that a successful mmap made (mmap_region's
// perf_event_mmap, of the vma as it is after merging with its neighbours).
func (taskExtension) MemoryMapped(t *kernel.Task, ar hostarch.AddrRange) {
	if !events.SideBand() {
		return
	}
	for _, m := range mappingsIn(t, ar) {
		events.Mmap(t, &m)
	}
}

// MemoryProtected implements kernel.Extension.MemoryProtected: the MMAP
// record of each mapping whose protection an mprotect of ar changed
// (mprotect_fixup's perf_event_mmap, which an unchanged vma does not
// reach), as it is afterwards, within ar.
func (taskExtension) MemoryProtected(t *kernel.Task, ar hostarch.AddrRange, changed []hostarch.AddrRange) {
	if !events.SideBand() {
		return
	}
	for _, m := range mappingsIn(t, ar) {
		if !overlapsAny(&m, changed) {
			continue
		}
		// gVisor merges the changed part with a neighbour of the
		// same protection more often than Linux, whose vma_merge
		// also compares flags such as VM_ACCOUNT (a private mapping
		// that was writable, like a RELRO segment, keeps it): the
		// record covers the part that mprotect split off.
		clip(&m, ar)
		events.Mmap(t, &m)
	}
}

// clip cuts m down to its part inside ar, which it overlaps. The page
// offset moves with the start, except for an anonymous mapping, whose
// offset Linux reports as its start address (vm_pgoff of an anonymous vma
// is its address in pages).
func clip(m *perf.Mapping, ar hostarch.AddrRange) {
	if lo := uint64(ar.Start); m.Start < lo {
		if m.PgOff != m.Start || m.Ino != 0 {
			m.PgOff += lo - m.Start
		} else {
			m.PgOff = lo
		}
		m.Len -= lo - m.Start
		m.Start = lo
	}
	if hi := uint64(ar.End); m.Start+m.Len > hi {
		m.Len = hi - m.Start
	}
}

// overlapsAny reports whether m overlaps one of rs.
func overlapsAny(m *perf.Mapping, rs []hostarch.AddrRange) bool {
	for _, r := range rs {
		if m.Start < uint64(r.End) && uint64(r.Start) < m.Start+m.Len {
			return true
		}
	}
	return false
}

// TaskRenamed implements kernel.Extension.TaskRenamed: the COMM record of
// a thread that renamed itself or was renamed (prctl(PR_SET_NAME), a write
// to /proc/PID/comm), __set_task_comm's perf_event_comm, not an exec's.
func (taskExtension) TaskRenamed(t *kernel.Task) {
	if events.SideBand() {
		events.Comm(t, t.Name(), false)
	}
}
