// This file is hwbp's addition to gVisor's mm package, added to a vendored
// copy of gVisor at build time (see the hwbp Makefile). It only adds an
// exported accessor; it changes no existing code.

package mm

// Users returns the number of users of mm: the tasks whose address space it
// is, and holders that IncUsers counted meanwhile. The systrap back end of
// hwbp counts a task's breakpoint hits on the host only while that task is
// the address space's single user.
func (mm *MemoryManager) Users() int32 {
	return mm.users.Load()
}
