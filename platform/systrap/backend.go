// Package systrap is hwbp's back end for gVisor's systrap platform. There an
// address space is a host "stub process" whose threads take task contexts
// from a shared queue and run them, so the sentry does not know in advance
// which host thread will run a task and cannot program that thread's debug
// registers before a Switch. Instead every stub thread of the process
// carries host perf breakpoint events (PERF_TYPE_BREAKPOINT, Linux 5.13+)
// for the breakpoints of all the process's tasks: each hit makes the host
// send the stub thread a SIGTRAP (sigtrap, with sig_data naming the event)
// that the stub reports as the context's fault, and Switch turns it into the
// guest's debug trap if the task that ran owns the breakpoint, and resumes
// the task invisibly otherwise.
//
// Events are opened on the stub threads that exist, and on the thread that
// clones new ones with inherit set, so a stub thread created later carries
// them from its first instruction. A process holds at most hwbp.Slots
// events per thread, the host's debug registers: its tasks' breakpoints are
// merged into distinct entries (address, type, length), and if there are
// more than that, the entries of the tasks that run at the moment are armed.
//
// One debug exception makes one SIGTRAP however many events fired, so the
// guest's DR6 B bits come from the events' counts (see space.hits).
//
// Invariants:
//   - Switch is called only while a breakpoint may be enabled or a stub
//     process carries events; otherwise the plugin's Switch costs one
//     atomic load more than the platform's own. While a process carries
//     events, the registry is retained (hwbp.Registry.Retain); they are
//     closed when a tracer disarms the last breakpoint (Refresh), or at the
//     first Switch of any of the process's tasks after it went.
//   - A task never sees a hit on a breakpoint it does not own.
//   - No event covers an address at or above the end of the application's
//     address space, where the stub's code and data are
//     (SetMaxUserAddress): the guest cannot trap the stub.
package systrap

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/seccomp"
	"gvisor.dev/gvisor/pkg/sentry/arch"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/platform"
	gvsystrap "gvisor.dev/gvisor/pkg/sentry/platform/systrap"

	"github.com/gvisor-hwbp/hwbp/plugin/status"
	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	sentryptrace "github.com/gvisor-hwbp/hwbp/sentry/ptrace"
)

// Backend arms tasks' breakpoints on the systrap platform's stub threads.
type Backend struct {
	threads *sentryptrace.Threads[*kernel.Task]

	// opened counts the spaces whose events are open; they update it
	// through space.opened. Its only use here, taking its address, happens
	// under mu, which checklocks' lock inference would take for a guard.
	opened atomic.Int64 // +checklocksignore

	// maxUser is the end of the application's address space.
	maxUser atomic.Uint64

	// warnOnce limits the warning about a host that refuses perf events.
	warnOnce sync.Once

	// mu guards the maps below. It is never held while a space's mu is
	// taken; the reverse order is allowed.
	mu sync.Mutex

	// spaces are the stub processes whose tasks have had breakpoints.
	//
	// +checklocks:mu
	spaces map[gvsystrap.StubProcess]*space

	// memberOf is the space each task with breakpoints is a member of.
	//
	// +checklocks:mu
	memberOf map[*kernel.Task]*space
}

// space is one stub process's breakpoints and the host events that arm them.
type space struct {
	// r, opened and maxUser are immutable. They are only used under mu,
	// which checklocks' lock inference would take for a guard.

	// r is retained while the space's events are open.
	r *hwbp.Registry // +checklocksignore

	// opened counts the spaces of the back end whose events are open.
	opened *atomic.Int64 // +checklocksignore

	// maxUser is the end of the application's address space.
	maxUser uint64 // +checklocksignore

	mu sync.Mutex

	// members are the tasks of the process with a non-empty image, and
	// that image.
	//
	// +checklocks:mu
	members map[*kernel.Task]member

	// armed is the entry that the events at each position hold, valid
	// where used is set.
	//
	// +checklocks:mu
	armed [hwbp.Slots]entry
	// +checklocks:mu
	used [hwbp.Slots]bool

	// running counts the tasks between arm and the end of their trap
	// handling: while none is, no event can fire unseen, and the events
	// of stub threads can be replaced (adopt).
	running atomic.Int32

	// epoch counts arms: a task that finds it unchanged at its trap knows
	// that no other task ran in the process since its own arm.
	//
	// +checklocks:mu
	epoch uint64

	// dropped is how many distinct breakpoints did not fit.
	//
	// +checklocks:mu
	dropped int

	// open is whether the events exist.
	//
	// +checklocks:mu
	open bool

	// nursery are the events, by position, on the thread that clones new
	// stub threads; they are inherited by those threads.
	//
	// +checklocks:mu
	nursery [hwbp.Slots]int

	// own are the events of each stub thread that existed before nursery
	// was opened, by host TID; a nil value marks a thread that inherited
	// nursery's.
	//
	// +checklocks:mu
	own map[int32]*[hwbp.Slots]int

	// ownCounts are the counts of each own thread's events as last read,
	// and nurseryCounts those of the nursery's events, which sum the
	// counts of every thread that inherited them: comparing them with new
	// counts tells which events fired in a trap (see hits).
	//
	// +checklocks:mu
	ownCounts map[int32]*[hwbp.Slots]uint64
	// +checklocks:mu
	nurseryCounts [hwbp.Slots]uint64
}

// member is a task of a space and the image its breakpoints are armed from.
type member struct {
	task *hwbp.Task
	img  hwbp.Image
	// running is whether the task is between its arm and the end of its
	// trap handling.
	running bool
}

// New returns a back end for the tasks in threads.
func New(threads *sentryptrace.Threads[*kernel.Task]) *Backend {
	b := &Backend{
		threads:  threads,
		spaces:   make(map[gvsystrap.StubProcess]*space),
		memberOf: make(map[*kernel.Task]*space),
	}
	b.maxUser.Store(^uint64(0))
	return b
}

// SetMaxUserAddress tells the back end where the platform's application
// address space ends (platform.Platform.MaxUserAddress): breakpoints at or
// above it are not armed (hwbp.Image.Below).
func (b *Backend) SetMaxUserAddress(a hostarch.Addr) {
	b.maxUser.Store(uint64(a))
}

// SeccompRules returns the host system calls that the back end makes from
// the sentry, beyond what the platform itself needs.
func (b *Backend) SeccompRules() seccomp.SyscallRules {
	return seccomp.MakeSyscallRules(map[uintptr]seccomp.SyscallRule{
		unix.SYS_PERF_EVENT_OPEN: seccomp.PerArg{
			seccomp.AnyValue{},
			seccomp.AnyValue{},
			seccomp.EqualTo(^uintptr(0)),
			seccomp.EqualTo(^uintptr(0)),
			seccomp.EqualTo(unix.PERF_FLAG_FD_CLOEXEC),
		},
		unix.SYS_IOCTL: seccomp.Or{
			seccomp.PerArg{seccomp.NonNegativeFD{}, seccomp.EqualTo(unix.PERF_EVENT_IOC_ENABLE), seccomp.EqualTo(0)},
			seccomp.PerArg{seccomp.NonNegativeFD{}, seccomp.EqualTo(unix.PERF_EVENT_IOC_DISABLE), seccomp.EqualTo(0)},
			seccomp.PerArg{seccomp.NonNegativeFD{}, seccomp.EqualTo(unix.PERF_EVENT_IOC_MODIFY_ATTRIBUTES)},
		},
		unix.SYS_CLOSE: seccomp.MatchAll{},
	})
}

// Stale implements the plugin's backend.Stale: with nothing enabled and no
// event open any more (the registry is retained while any is), a TRAP_PERF of
// ours is a hit that came before its event was closed.
func (b *Backend) Stale(info *linux.SignalInfo) bool {
	if info.Code != trapPerf {
		return false
	}
	data, _ := sigPerfData(info.Fields[:])
	return data&^0xff == sigDataMagic
}

// Switch runs inner.Switch for task t with the breakpoints of t's stub
// process armed.
func (b *Backend) Switch(t *kernel.Task, inner platform.Context, ctx context.Context, mm platform.MemoryManager, ac *arch.Context64, cpu int32) (*linux.SignalInfo, hostarch.AccessType, error) {
	for {
		r := b.arm(t, mm) // r.sp.running is incremented
		info, at, err := inner.Switch(ctx, mm, ac, cpu)
		retry := false
		if err == platform.ErrContextSignal && info.Signo == int32(linux.SIGTRAP) {
			switch info.Code {
			case sentryptrace.TrapTrace:
				b.step(t, r, inner, ac, info)
			case trapPerf:
				retry = b.trap(t, r, inner, ac, info)
			}
		}
		if r.sp != nil {
			r.sp.done(t)
		}
		if !retry {
			return info, at, err
		}
	}
}

// run is what a task runs with between arm and the end of its trap handling.
type run struct {
	// sp is the space of the task's stub process, nil if it never had
	// breakpoints.
	sp *space
	// img is the task's image as armed.
	img hwbp.Image
	// epoch is sp.epoch after arm.
	epoch uint64
}

// arm brings the events of t's stub process up to date with its tasks'
// breakpoints, t's current ones included, and returns what t runs with.
func (b *Backend) arm(t *kernel.Task, mm platform.MemoryManager) run {
	var task *hwbp.Task
	if d := b.threads.Lookup(t); d != nil {
		task = d.Task()
	}
	p, ok := gvsystrap.CurrentStubProcess(mm)
	if !ok {
		return run{}
	}
	b.mu.Lock()
	sp := b.spaces[p]
	prev := b.memberOf[t]
	var dead []*space
	if sp == nil && task != nil && task.HasBreakpoints() {
		sp = &space{r: b.threads.Registry(), opened: &b.opened, maxUser: b.maxUser.Load(), members: make(map[*kernel.Task]member), own: make(map[int32]*[hwbp.Slots]int), ownCounts: make(map[int32]*[hwbp.Slots]uint64)}
		dead = b.pruneLocked()
		b.spaces[p] = sp
	}
	b.mu.Unlock()
	for _, d := range dead {
		d.mu.Lock()
		d.closeAll()
		d.mu.Unlock()
	}
	if prev != nil && prev != sp {
		b.leave(t, prev) // t's address space changed
	}
	if sp == nil {
		return run{}
	}

	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.running.Add(1)
	sp.epoch++
	changed := false
	if m, ok := sp.members[t]; task != nil && (!ok || m.img.Generation != task.Generation()) || task == nil && ok {
		changed = true
		b.setMember(sp, t, task)
	}
	for k, m := range sp.members {
		if k != t && m.img.Generation != m.task.Generation() {
			changed = true
			b.setMember(sp, k, m.task)
		}
	}
	if m, ok := sp.members[t]; ok {
		m.running = true
		sp.members[t] = m
	}
	if changed || sp.open {
		gvsystrap.StubThreads(mm, func(_ gvsystrap.StubProcess, nursery int32, tids []int32) {
			// StubThreads calls this before it returns, with sp.mu
			// still held; checklocks cannot tell.
			b.apply(sp, nursery, tids) // +checklocksignore
		})
	}
	return run{sp: sp, img: sp.members[t].img, epoch: sp.epoch}
}

// setMember records task's current image as k's in sp.
//
// +checklocks:sp.mu
func (b *Backend) setMember(sp *space, k *kernel.Task, task *hwbp.Task) {
	var img hwbp.Image
	if task != nil {
		img = task.Image()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if img.Empty() {
		delete(sp.members, k)
		if b.memberOf[k] == sp {
			delete(b.memberOf, k)
		}
		return
	}
	sp.members[k] = member{task: task, img: img, running: sp.members[k].running}
	b.memberOf[k] = sp
}

// pruneLocked drops the spaces of stub processes that no longer exist and
// returns them, for the caller to close once b.mu is released.
//
// +checklocks:b.mu
func (b *Backend) pruneLocked() (dead []*space) {
	for p, sp := range b.spaces {
		if p.Value() == nil {
			delete(b.spaces, p)
			dead = append(dead, sp)
		}
	}
	return dead
}

// Refresh implements the plugin's refresher: t's tracer changed t's
// breakpoints while t is stopped. If t's process carries events for t, they
// are brought up to date now, so that disarming closes them without waiting
// for a task of the process to run (meanwhile the registry stays retained
// and every task of the sandbox takes the armed path). New breakpoints are
// armed at t's next Switch, which also finds the process's threads.
func (b *Backend) Refresh(t *kernel.Task) {
	b.mu.Lock()
	sp := b.memberOf[t]
	b.mu.Unlock()
	if sp == nil {
		return
	}
	var task *hwbp.Task
	if d := b.threads.Lookup(t); d != nil {
		task = d.Task()
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	m, ok := sp.members[t]
	if !ok || task != nil && m.img.Generation == task.Generation() {
		return
	}
	b.setMember(sp, t, task)
	b.apply(sp, 0, nil)
}

// Forget drops t's breakpoints from its stub process, at t's exec or exit.
func (b *Backend) Forget(t *kernel.Task) {
	b.mu.Lock()
	sp := b.memberOf[t]
	delete(b.memberOf, t)
	b.mu.Unlock()
	if sp != nil {
		b.leave(t, sp)
	}
}

// leave removes t from sp and disarms what only t needed.
func (b *Backend) leave(t *kernel.Task, sp *space) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if _, ok := sp.members[t]; !ok {
		return
	}
	delete(sp.members, t)
	// No stub thread can have appeared that the events do not cover
	// (they are inherited), so the known threads are enough.
	b.apply(sp, 0, nil)
}

// want returns the distinct entries of sp's members by position: an entry
// that is armed keeps its position, so that a hit reported after another
// task's change is still attributed; new entries take free positions. If
// the members have more distinct breakpoints than the host has debug
// registers, those of the members that run now come first (a task is armed
// before it runs, so the others need theirs only when they run again), and
// dropped counts those of them that do not fit.
//
// +checklocks:sp.mu
func (sp *space) want() (want [hwbp.Slots]entry, use [hwbp.Slots]bool, dropped int) {
	all := sp.entries(func(member) bool { return true })
	need := all
	if len(all) > hwbp.Slots {
		need = sp.entries(func(m member) bool { return m.running })
	}
	for pos := range sp.armed {
		if sp.used[pos] && slices.Contains(need, sp.armed[pos]) {
			want[pos], use[pos] = sp.armed[pos], true
		}
	}
	for _, e := range need {
		if placed(want, use, e) {
			continue
		}
		free := slices.Index(use[:], false)
		if free < 0 {
			dropped++
			continue
		}
		want[free], use[free] = e, true
	}
	// Entries armed already that still serve a member stay, rather than
	// be moved back when it runs again.
	for pos := range sp.armed {
		if !use[pos] && sp.used[pos] && slices.Contains(all, sp.armed[pos]) && !placed(want, use, sp.armed[pos]) {
			want[pos], use[pos] = sp.armed[pos], true
		}
	}
	return want, use, dropped
}

// entries returns the distinct entries of the members for which pick is
// true, sorted, so that which entries are dropped, if any, does not depend
// on map order. Nothing at or above the end of the application's address
// space is included (hwbp.Image.Below).
//
// +checklocks:sp.mu
func (sp *space) entries(pick func(member) bool) []entry {
	var entries []entry
	for _, m := range sp.members {
		if !pick(m) {
			continue
		}
		img := m.img.Below(sp.maxUser)
		for slot := 0; slot < hwbp.Slots; slot++ {
			if !img.DR7.Enabled(slot) {
				continue
			}
			if e := entryOf(&img, slot); !slices.Contains(entries, e) {
				entries = append(entries, e)
			}
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.key(), b.key()) })
	return entries
}

// done ends t's run: from now on its breakpoints need not be armed.
func (sp *space) done(t *kernel.Task) {
	sp.mu.Lock()
	if m, ok := sp.members[t]; ok {
		m.running = false
		sp.members[t] = m
	}
	sp.mu.Unlock()
	sp.running.Add(-1)
}

// placed reports whether e is at a used position of want.
func placed(want [hwbp.Slots]entry, use [hwbp.Slots]bool, e entry) bool {
	for pos := range want {
		if use[pos] && want[pos] == e {
			return true
		}
	}
	return false
}

// apply makes sp's events hold sp.want(), on the stub threads tids (plus
// those already known) of a process whose thread-cloning thread is nursery.
// Host failures are logged: the breakpoints concerned then do not fire.
//
// +checklocks:sp.mu
func (b *Backend) apply(sp *space, nursery int32, tids []int32) {
	want, use, dropped := sp.want()
	if dropped > sp.dropped {
		log.Warningf("hwbp: the tasks of one address space that run at the same time use more distinct breakpoints than the host's %d debug registers; %d do not fire while they do", hwbp.Slots, dropped)
	}
	sp.dropped = dropped
	if !slices.Contains(use[:], true) {
		sp.closeAll()
		return
	}
	if !sp.open {
		if nursery == 0 {
			return // no threads to look at; the next Switch opens them
		}
		sp.armed, sp.used = want, use
		sp.open = true
		sp.r.Retain()
		log.Infof("%s %d", status.EventsOpenedMessage, sp.opened.Add(1))
		for i := range sp.nursery {
			sp.nursery[i] = -1
		}
		for _, tid := range tids {
			b.openOwn(sp, tid)
		}
		// Threads cloned from now on inherit these.
		if err := sp.openSet(&sp.nursery, nursery, true); err != nil {
			b.warn(fmt.Errorf("opening the events of stub thread creator %d: %w", nursery, err))
		}
		return
	}
	for pos := range want {
		if want[pos] == sp.armed[pos] && use[pos] == sp.used[pos] {
			continue
		}
		e := want[pos]
		if !use[pos] {
			e = sp.armed[pos]
		}
		sp.forEachFD(pos, func(fd int, inherit bool) {
			// The events inherited from the nursery's take the
			// change too.
			a := e.attr(pos, inherit)
			if err := perfModify(fd, &a); err != nil {
				b.warn(err)
			}
			if err := perfEnable(fd, use[pos]); err != nil {
				b.warn(err)
			}
		})
		sp.armed[pos], sp.used[pos] = e, use[pos]
	}
	for _, tid := range tids {
		if _, ok := sp.own[tid]; !ok {
			b.openOwn(sp, tid)
		}
	}
	if nursery != 0 && sp.running.Load() == 1 {
		// Only the caller's task is between arm and its trap
		// handling, and it is not running: no event can fire now.
		b.adopt(sp, nursery)
	}
}

// adopt gives each stub thread that inherited the nursery's events events of
// its own, whose counts tell which ones fired on that thread alone (see
// hits): closing the nursery's events removes the inherited ones, and new
// nursery events are opened for the threads cloned later.
//
// Precondition: no event of sp can fire (no task of its process runs) and no
// stub thread is being cloned.
//
// +checklocks:sp.mu
func (b *Backend) adopt(sp *space, nursery int32) {
	var inherited []int32
	for tid, fds := range sp.own {
		if fds == nil {
			inherited = append(inherited, tid)
		}
	}
	if len(inherited) == 0 {
		return
	}
	for pos, fd := range sp.nursery {
		if fd >= 0 {
			unix.Close(fd)
			sp.nursery[pos] = -1
		}
	}
	sp.nurseryCounts = [hwbp.Slots]uint64{}
	for _, tid := range inherited {
		delete(sp.own, tid)
		b.openOwn(sp, tid)
	}
	if err := sp.openSet(&sp.nursery, nursery, true); err != nil {
		b.warn(fmt.Errorf("opening the events of stub thread creator %d: %w", nursery, err))
	}
}

// openOwn opens events at every position on stub thread tid, or records
// that it inherited the nursery's: a thread that carries them has no debug
// register left, so the host refuses the first event with ENOSPC.
//
// +checklocks:sp.mu
func (b *Backend) openOwn(sp *space, tid int32) {
	fds := new([hwbp.Slots]int)
	for i := range fds {
		fds[i] = -1
	}
	err := sp.openSet(fds, tid, false)
	switch {
	case err == nil:
		sp.own[tid] = fds
		sp.ownCounts[tid] = new([hwbp.Slots]uint64)
	case errors.Is(err, unix.ENOSPC) && fds[0] == -1:
		sp.own[tid] = nil
	default:
		b.warn(fmt.Errorf("opening the events of stub thread %d: %w", tid, err))
		sp.own[tid] = fds // what could be opened
		sp.ownCounts[tid] = new([hwbp.Slots]uint64)
	}
}

// openSet opens the events of every position on thread tid into fds. Unused
// positions get a disabled event, so that each thread always holds all its
// debug registers and later changes are in-place modifications.
//
// +checklocks:sp.mu
func (sp *space) openSet(fds *[hwbp.Slots]int, tid int32, inherit bool) error {
	for pos := range fds {
		e := sp.armed[pos]
		if !sp.used[pos] {
			e = entry{rw: 1} // any valid breakpoint: it stays disabled
		}
		a := e.attr(pos, inherit)
		fd, err := perfOpen(&a, tid)
		if err != nil {
			return err
		}
		fds[pos] = fd
		if sp.used[pos] {
			if err := perfEnable(fd, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// forEachFD calls f with every event fd at pos, and whether it is the
// nursery's.
//
// +checklocks:sp.mu
func (sp *space) forEachFD(pos int, f func(fd int, inherit bool)) {
	if sp.nursery[pos] >= 0 {
		f(sp.nursery[pos], true)
	}
	for _, fds := range sp.own {
		if fds != nil && fds[pos] >= 0 {
			f(fds[pos], false)
		}
	}
}

// closeAll closes every event of sp; closing the nursery's removes the
// inherited ones too.
//
// +checklocks:sp.mu
func (sp *space) closeAll() {
	if !sp.open {
		return
	}
	for pos := range sp.nursery {
		sp.forEachFD(pos, func(fd int, _ bool) { unix.Close(fd) })
	}
	clear(sp.own)
	clear(sp.ownCounts)
	sp.nurseryCounts = [hwbp.Slots]uint64{}
	sp.used = [hwbp.Slots]bool{}
	sp.open = false
	sp.r.Unretain()
	log.Infof("%s %d", status.EventsClosedMessage, sp.opened.Add(-1))
}

// warn logs a host failure to arm breakpoints, the first time.
func (b *Backend) warn(err error) {
	b.warnOnce.Do(func() {
		log.Warningf("hwbp: host perf breakpoint events failed, breakpoints may not fire (needs Linux 5.13+ and perf_event_paranoid <= 2): %v", err)
	})
}

// trap turns a TRAP_PERF SIGTRAP of one of the events of r.sp into t's debug
// trap, given t's platform context inner. It reports whether the trap must
// stay invisible and the Switch be retried: the hit was on a breakpoint that
// t does not own.
func (b *Backend) trap(t *kernel.Task, r run, inner platform.Context, ac *arch.Context64, info *linux.SignalInfo) (retry bool) {
	data, flags := sigPerfData(info.Fields[:])
	if data&^0xff != sigDataMagic || data&0xff >= hwbp.Slots {
		return false // not one of ours: the guest sees it as it is
	}
	sp := r.sp
	if flags&trapPerfFlagAsync != 0 || sp == nil {
		return true // not a synchronous report of a hit on t's
	}
	pos := int(data & 0xff)
	sp.mu.Lock()
	hit := sp.hits(inner, r.epoch)
	e, used := sp.armed[pos], sp.used[pos]
	dr6 := sp.dr6(&r.img, hit)
	sp.mu.Unlock()
	// The signalling event fired even if its count was not readable. It
	// reports its breakpoint address in si_addr, which differs from what
	// the position holds now if it was moved since the hit.
	if used && e.addr == info.Addr() {
		dr6 |= slotsOf(&r.img, e)
	}
	if dr6.Hits() == 0 {
		return true // another task's breakpoint, or a stale one
	}
	sig, ok := b.threads.Trap(t, &r.img, dr6, uint64(ac.IP()))
	if !ok {
		return true // only events that do not signal the task fired
	}
	// Linux's exc_debug_user sends a plain fault siginfo: no perf data.
	info.Fields = [len(info.Fields)]byte{}
	info.Code = sig.Code
	info.SetAddr(sig.Addr)
	return false
}

// step handles a single-step trap (TRAP_TRACE) of t. A breakpoint that the
// same instruction hit shows in DR6 beside BS, as on Linux, where one debug
// exception reports both; the host's SIGTRAP for the hit is merged into the
// single-step's, so only the events' counts tell.
func (b *Backend) step(t *kernel.Task, r run, inner platform.Context, ac *arch.Context64, info *linux.SignalInfo) {
	var dr6 hwbp.DR6
	if r.sp != nil {
		r.sp.mu.Lock()
		dr6 = r.sp.dr6(&r.img, r.sp.hits(inner, r.epoch))
		r.sp.mu.Unlock()
	}
	if dr6.Hits() == 0 {
		b.threads.SingleStep(t, uint64(ac.IP()))
		return
	}
	if sig, ok := b.threads.Trap(t, &r.img, dr6|hwbp.DR6BS, uint64(ac.IP())); ok {
		info.Code = sig.Code
		info.SetAddr(sig.Addr)
	}
}

// hits returns the positions whose events fired in the debug exception that
// the stub thread which ran inner just reported. The host sends one SIGTRAP
// per exception however many events fired (a second one is merged into the
// pending first), so the events' counts are compared with those last read.
// That is exact only if no other task of the process ran since the caller's
// arm (epoch): the stub thread may have run another task's context, and
// taken another exception, before the caller got here. Otherwise, and for a
// thread whose counts are not its own alone (it inherited the nursery's
// events and is not the only one that did), hits returns no position and the
// caller relies on the signal's. The counts are read in every case, so that
// the next comparison starts from them.
//
// +checklocks:sp.mu
func (sp *space) hits(inner platform.Context, epoch uint64) (hit [hwbp.Slots]bool) {
	if !sp.open {
		return hit
	}
	tid, ok := gvsystrap.ContextStubThread(inner)
	if !ok {
		return hit
	}
	fds, last := sp.own[tid], sp.ownCounts[tid]
	if fds == nil {
		inherited := 0
		for _, f := range sp.own {
			if f == nil {
				inherited++
			}
		}
		if _, known := sp.own[tid]; !known {
			// Born after the nursery's events were opened, and
			// not yet seen by arm.
			inherited++
		}
		if inherited != 1 {
			return hit
		}
		fds, last = &sp.nursery, &sp.nurseryCounts
	}
	alone := epoch == sp.epoch && sp.running.Load() == 1
	for pos, fd := range fds {
		if fd < 0 || !sp.used[pos] {
			continue
		}
		n, err := perfCount(fd)
		if err != nil {
			continue
		}
		if n != last[pos] {
			hit[pos] = alone
			last[pos] = n
		}
	}
	return hit
}

// dr6 returns the DR6 B bits of img's slots that hold the entries at the
// positions in hit.
//
// +checklocks:sp.mu
func (sp *space) dr6(img *hwbp.Image, hit [hwbp.Slots]bool) hwbp.DR6 {
	dr6 := hwbp.DR6Reset
	for pos := range hit {
		if hit[pos] && sp.used[pos] {
			dr6 |= slotsOf(img, sp.armed[pos])
		}
	}
	return dr6
}

// slotsOf returns the DR6 B bits of img's enabled slots that hold e.
func slotsOf(img *hwbp.Image, e entry) hwbp.DR6 {
	var bits hwbp.DR6
	for slot := 0; slot < hwbp.Slots; slot++ {
		if img.DR7.Enabled(slot) && entryOf(img, slot) == e {
			bits |= hwbp.DR6Trap0 << slot
		}
	}
	return bits
}
