package plugin

import (
	"sort"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"

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
// mappings the loader made, in the order Linux's load_elf_binary makes
// them (the executable's segments, the interpreter's, then the vdso,
// arch_setup_additional_pages), each in address order. The stack, which
// Linux sets up before the new mm is the task's (no record), has none.
func perfExec(t *kernel.Task) {
	events.Comm(t, t.Name(), true)
	ms := mappingsIn(t, allMappings)
	var exe string
	if mm := t.MemoryManager(); mm != nil {
		if f := mm.Executable(); f != nil {
			exe = f.MappedName(t)
			f.DecRef(t)
		}
	}
	rank := func(m *perf.Mapping) int {
		switch {
		case m.Name == exe:
			return 0
		case m.Name == "[vdso]" || m.Name == "[vvar]":
			return 2
		case m.Name == "[stack]":
			return 3
		}
		return 1
	}
	sort.SliceStable(ms, func(i, j int) bool { return rank(&ms[i]) < rank(&ms[j]) })
	for i := range ms {
		if rank(&ms[i]) == 3 {
			continue
		}
		events.Mmap(t, &ms[i])
	}
}

// perfMmapHook writes the MMAP record of a mapping that a successful mmap
// made (mmap_region's perf_event_mmap, of the vma as it is after merging
// with its neighbours).
func perfMmapHook(orig kernel.SyscallFn) kernel.SyscallFn {
	return func(t *kernel.Task, sysno uintptr, args arch.SyscallArguments) (uintptr, *kernel.SyscallControl, error) {
		rv, ctl, err := orig(t, sysno, args)
		if err != nil || !events.SideBand() {
			return rv, ctl, err
		}
		if ar, ok := userRange(hostarch.Addr(rv), args[1].Uint64()); ok {
			for _, m := range mappingsIn(t, ar) {
				events.Mmap(t, &m)
			}
		}
		return rv, ctl, err
	}
}

// perfMprotectHook writes the MMAP record of each mapping whose protection
// a successful mprotect changed (mprotect_fixup's perf_event_mmap, which
// an unchanged vma does not reach), as it is afterwards.
func perfMprotectHook(orig kernel.SyscallFn) kernel.SyscallFn {
	return func(t *kernel.Task, sysno uintptr, args arch.SyscallArguments) (uintptr, *kernel.SyscallControl, error) {
		if !events.SideBand() {
			return orig(t, sysno, args)
		}
		ar, ok := userRange(args[0].Pointer(), args[1].Uint64())
		var before []perf.Mapping
		if ok {
			before = mappingsIn(t, ar)
		}
		rv, ctl, err := orig(t, sysno, args)
		if err != nil || !ok {
			return rv, ctl, err
		}
		for _, m := range mappingsIn(t, ar) {
			if protChanged(before, &m, ar) {
				events.Mmap(t, &m)
			}
		}
		return rv, ctl, err
	}
}

// protChanged reports whether a mapping of before that overlaps both m and
// ar had another protection than m has.
func protChanged(before []perf.Mapping, m *perf.Mapping, ar hostarch.AddrRange) bool {
	lo, hi := max(m.Start, uint64(ar.Start)), min(m.Start+m.Len, uint64(ar.End))
	for i := range before {
		b := &before[i]
		if b.Start < hi && b.Start+b.Len > lo && b.Prot != m.Prot {
			return true
		}
	}
	return false
}
