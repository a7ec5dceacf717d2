// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"errors"
	"fmt"
	"io"
	"time"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/sentry/mm"
	"gvisor.dev/gvisor/pkg/sentry/vfs"
	"gvisor.dev/gvisor/pkg/usermem"
	"gvisor.dev/gvisor/runsc/boot"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
	"github.com/gvisor-hwbp/hwbp/sentry/watch"
)

// watchLease is how long a watch lives without a read from its runsc
// watch: a reader that was killed, or lost its connection, leaves nothing
// behind for longer.
const watchLease = 10 * time.Second

// watches are the host's watches of the sandbox's threads ("runsc watch"),
// the third consumer of tasks' breakpoints.
var watches = watch.New(tasks, describeHit, kick, watchLease)

// registerWatch serves the watches through the sandbox's control server
// (patches/gvisor/0017) as the control object Watch, whose methods runsc
// watch calls.
func registerWatch() {
	boot.RegisterControlObject(func(k *kernel.Kernel) any { return &Watch{k: k} })
}

// Watch is the control object of the host's watches: Watch.Start,
// Watch.Read and Watch.Stop.
//
// A checkpoint does not carry a watch: its events are not in the plugin's
// checkpoint state (checkpoint.go saves the guest's debug registers only),
// so a restored sandbox runs without it, every slot free for the guest,
// while the checkpointed sandbox keeps it until it ends (at once, unless
// runsc checkpoint --leave-running: then runsc watch reports that the
// sandbox exited). A failed save ends a sandbox in gVisor, so the sentry
// cannot refuse a checkpoint without killing the workload.
type Watch struct {
	k *kernel.Kernel
}

// Start implements the control method Watch.Start: it arms a host-owned
// watchpoint in every thread of a process of the container, and in what
// they create from now on. A request that cannot be watched fails with an
// error that says why, and changes nothing.
func (c *Watch) Start(args *watch.StartArgs, res *watch.StartResult) error {
	attr, err := watchAttr(args)
	if err != nil {
		return err
	}
	tg, err := c.process(args.ContainerID, args.PID)
	if err != nil {
		return err
	}
	root := c.k.TaskSet().Root
	pid := root.IDOfThreadGroup(tg)
	syms, symsErr := c.symbols(tg)
	if args.Symbol != "" {
		if symsErr != nil {
			return fmt.Errorf("symbol %q of process %d: %v", args.Symbol, pid, symsErr)
		}
		a, err := syms.Lookup(args.Symbol)
		if err != nil {
			return fmt.Errorf("process %d: %v", pid, err)
		}
		attr.Addr = a + args.Offset
	}
	if limit := uint64(c.k.Platform.MaxUserAddress()); attr.Addr >= limit || attr.Addr+args.Len > limit {
		return fmt.Errorf("address %#x (len %d) is outside the user address space of process %d, which ends at %#x", attr.Addr, args.Len, pid, limit)
	}
	// x86's rules for lengths and alignment (Linux's arch_build_bp_info
	// and hw_breakpoint_arch_parse), in the operator's terms.
	switch err := attr.Validate(); {
	case errors.Is(err, hwbp.ErrLength):
		return fmt.Errorf("length %d: %v", args.Len, hwbp.ErrLength)
	case errors.Is(err, hwbp.ErrMisaligned):
		return fmt.Errorf("address %#x is %v %d: x86 watches %d bytes only at a multiple of %d", attr.Addr, hwbp.ErrMisaligned, args.Len, args.Len, args.Len)
	case err != nil:
		return fmt.Errorf("cannot watch %#x (len %d): %v", attr.Addr, args.Len, err)
	}
	list := func() []*kernel.Task {
		var ts []*kernel.Task
		for _, tid := range tg.MemberIDs(root) {
			if t := root.TaskWithID(tid); t != nil {
				ts = append(ts, t)
			}
		}
		return ts
	}
	name := func(t *kernel.Task) string { return fmt.Sprintf("%d (%s)", root.IDOfTask(t), t.Name()) }
	w, err := watches.Start(list, name, attr, args.Count, syms)
	if errors.Is(err, watch.ErrNoSlot) {
		return fmt.Errorf("process %d: %v", pid, err)
	}
	if err != nil {
		return fmt.Errorf("cannot watch %#x (len %d) in process %d: %v", attr.Addr, args.Len, pid, err)
	}
	for _, t := range list() {
		kick(t)
	}
	*res = watch.StartResult{ID: w.ID(), Addr: attr.Addr, Symbol: syms.Name(attr.Addr), PID: int32(pid), Threads: w.Threads()}
	log.Infof("hwbp: watch %d of %v in process %d of container %q, %d threads", w.ID(), attr, res.PID, args.ContainerID, res.Threads)
	return nil
}

// watchAttr is the event of a watch that args asks for, whose address the
// caller sets; Start validates it.
func watchAttr(args *watch.StartArgs) (hwbp.Attr, error) {
	attr := hwbp.Attr{Addr: args.Addr, Len: args.Len}
	switch args.Access {
	case "w":
		attr.Type = hwbp.TypeW
	case "rw":
		attr.Type = hwbp.TypeRW
	case "x":
		// An execution breakpoint covers one byte; perf's bp_len for
		// it is sizeof(long).
		if args.Len != 1 {
			return attr, fmt.Errorf("an execution watch (--access=x) has length 1, not %d", args.Len)
		}
		attr.Type, attr.Len = hwbp.TypeX, 8
	default:
		return attr, fmt.Errorf("access %q: want w, rw or x", args.Access)
	}
	return attr, nil
}

// symbols reads the symbol table of tg's executable, placed where tg's
// image is loaded (its AT_ENTRY).
func (c *Watch) symbols(tg *kernel.ThreadGroup) (*watch.Symbols, error) {
	leader := tg.Leader()
	if leader == nil {
		return nil, fmt.Errorf("the process has exited")
	}
	var m *mm.MemoryManager
	leader.WithMuLocked(func(t *kernel.Task) {
		if tm := t.MemoryManager(); tm != nil && tm.IncUsers() {
			m = tm
		}
	})
	if m == nil {
		return nil, fmt.Errorf("the process has no address space")
	}
	ctx := c.k.SupervisorContext()
	defer m.DecUsers(ctx)
	var entry uint64
	for _, e := range m.Auxv() {
		if e.Key == linux.AT_ENTRY {
			entry = uint64(e.Value)
		}
	}
	exe := m.Executable()
	if exe == nil {
		return nil, fmt.Errorf("the process has no executable")
	}
	defer exe.DecRef(ctx)
	return watch.ReadSymbols(fileReader{ctx, exe}, entry)
}

// fileReader reads a file description as an io.ReaderAt.
type fileReader struct {
	ctx context.Context
	fd  *vfs.FileDescription
}

// ReadAt implements io.ReaderAt.
func (r fileReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.fd.PRead(r.ctx, usermem.BytesIOSequence(p), off, vfs.ReadOptions{})
	if err == nil && int(n) < len(p) {
		err = io.EOF
	}
	return int(n), err
}

// kick makes t take its changed breakpoints into account while it may be
// running: a thread that runs application code is interrupted, as Linux
// reprograms a running task's breakpoints with an IPI, and takes them at
// its next switch to user mode (gVisor goes back to the application at
// once, with no signal to deliver, so the guest sees nothing); any other
// thread takes them at its next switch anyway, and a back end that holds
// them beyond a switch is told now (a watch that ends leaves no host state
// behind while its threads block).
func kick(t *kernel.Task) {
	if t.TaskGoroutineState() == kernel.TaskGoroutineRunningApp {
		t.Interrupt()
		return
	}
	if current != nil {
		current.Refresh(t)
	}
}

// process returns the process pid of container cid, in the root PID
// namespace as runsc ps shows it, or, for pid 0, the container's first
// process.
func (c *Watch) process(cid string, pid int32) (*kernel.ThreadGroup, error) {
	root := c.k.TaskSet().Root
	if pid != 0 {
		tg := root.ThreadGroupWithID(kernel.ThreadID(pid))
		if tg == nil || tg.Leader() == nil {
			return nil, fmt.Errorf("no process %d in the sandbox", pid)
		}
		if got := tg.Leader().ContainerID(); got != cid {
			return nil, fmt.Errorf("process %d is not in container %q", pid, cid)
		}
		return tg, nil
	}
	var first *kernel.ThreadGroup
	var firstID kernel.ThreadID
	for _, tg := range root.ThreadGroups() {
		id := root.IDOfThreadGroup(tg)
		if id == 0 || tg.Leader() == nil || tg.Leader().ContainerID() != cid {
			continue
		}
		if first == nil || id < firstID {
			first, firstID = tg, id
		}
	}
	if first == nil {
		return nil, fmt.Errorf("container %q has no process", cid)
	}
	return first, nil
}

// Read implements the control method Watch.Read: the hits since the last
// read, waiting up to args.WaitMillis for one.
func (c *Watch) Read(args *watch.ReadArgs, res *watch.ReadResult) error {
	w := watches.Get(args.ID)
	if w == nil {
		return fmt.Errorf("no watch %d", args.ID)
	}
	*res = w.Read(time.Duration(args.WaitMillis) * time.Millisecond)
	return nil
}

// Stop implements the control method Watch.Stop: the watch ends, and its
// next Watch.Read returns the hits still queued and the end.
func (c *Watch) Stop(args *watch.StopArgs, _ *struct{}) error {
	reason := args.Reason
	if reason == "" {
		reason = "stopped"
	}
	if !watches.End(args.ID, reason) {
		return fmt.Errorf("no watch %d", args.ID)
	}
	log.Infof("hwbp: watch %d stopped: %s", args.ID, reason)
	return nil
}

// describeHit describes a hit of t, on its goroutine: its ids in the root
// PID namespace, its name, and the watched bytes after the access.
func describeHit(t *kernel.Task, addr, n, ip uint64) watch.Hit {
	root := t.Kernel().TaskSet().Root
	h := watch.Hit{
		PID:  int32(root.IDOfThreadGroup(t.ThreadGroup())),
		TID:  int32(root.IDOfTask(t)),
		Comm: t.Name(),
		Addr: addr,
		Len:  n,
		IP:   ip,
	}
	buf := make([]byte, n)
	if _, err := t.CopyInBytes(hostarch.Addr(addr), buf); err == nil {
		h.Value = buf
	}
	return h
}
