// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/subcommands"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/urpc"
	"gvisor.dev/gvisor/runsc/config"
	"gvisor.dev/gvisor/runsc/container"
	"gvisor.dev/gvisor/runsc/flag"

	"github.com/gvisor-hwbp/hwbp/sentry/watch"
)

// readWait is how long one Watch.Read waits for hits: the longest the
// command takes to notice Ctrl-C or its --duration.
const readWait = 500 * time.Millisecond

// watchCmd is "runsc watch": it watches an address of a sandboxed process
// from the host, through the sandbox's control server (the control object
// Watch of plugin/watch.go), and prints every hit.
type watchCmd struct {
	access   string
	length   uint64
	pid      int
	count    uint64
	duration time.Duration
	format   string
}

// Name implements subcommands.Command.Name.
func (*watchCmd) Name() string { return "watch" }

// Synopsis implements subcommands.Command.Synopsis.
func (*watchCmd) Synopsis() string {
	return "watch a sandboxed process's memory with a hardware watchpoint, invisibly to it"
}

// Usage implements subcommands.Command.Usage.
func (*watchCmd) Usage() string {
	return `watch [flags] <container-id> <address|symbol[+offset]>

Arms a hardware watchpoint, owned by the host, in every thread of a process
of the container (and in the threads and children they create), and prints
one line per access while the program runs: on standard output, as text or
JSON lines; what starts and ends the watch goes to standard error. The
program sees nothing of it: no signal, no stop, its debug registers as it
set them. The watch holds one of each thread's four debug registers until
it ends: at --count hits, after --duration, at Ctrl-C or when the process
exits. A symbol is looked up in the process's executable.

`
}

// SetFlags implements subcommands.Command.SetFlags.
func (w *watchCmd) SetFlags(f *flag.FlagSet) {
	f.StringVar(&w.access, "access", "w", "the accesses to report: w (writes), rw (reads and writes) or x (execution of the instruction at the address)")
	f.Uint64Var(&w.length, "len", 0, "bytes watched: 1, 2, 4 or 8, aligned to it (default: 8 for w and rw, 1 for x)")
	f.IntVar(&w.pid, "pid", 0, "the process to watch, as runsc ps shows it (default: the container's first process)")
	f.Uint64Var(&w.count, "count", 0, "end after this many hits (0: no limit)")
	f.DurationVar(&w.duration, "duration", 0, "end after this long (0: no limit)")
	f.StringVar(&w.format, "format", "text", "output format: text or json (one JSON object per line)")
}

// FetchSpec implements util.SubCommand.FetchSpec: like runsc ps, the
// command needs no spec of its own.
func (*watchCmd) FetchSpec(*config.Config, *flag.FlagSet) (string, *specs.Spec, error) {
	return "", nil, nil
}

// Execute implements subcommands.Command.Execute.
func (w *watchCmd) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if f.NArg() != 2 {
		f.Usage()
		return subcommands.ExitUsageError
	}
	conf := args[0].(*config.Config)
	if err := w.run(conf, f.Arg(0), f.Arg(1), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "runsc watch: %v\n", err)
		return subcommands.ExitFailure
	}
	return subcommands.ExitSuccess
}

// startArgs checks the command's flags and target and makes the request of
// Watch.Start.
func (w *watchCmd) startArgs(id, target string) (watch.StartArgs, error) {
	a := watch.StartArgs{ContainerID: id, PID: int32(w.pid), Len: w.length, Access: w.access, Count: w.count}
	switch w.access {
	case "w", "rw":
		if a.Len == 0 {
			a.Len = 8
		}
	case "x":
		if a.Len == 0 {
			a.Len = 1
		}
	default:
		return a, fmt.Errorf("--access=%s: want w, rw or x", w.access)
	}
	if w.pid < 0 {
		return a, fmt.Errorf("--pid=%d: want a process id", w.pid)
	}
	if w.format != "text" && w.format != "json" {
		return a, fmt.Errorf("--format=%s: want text or json", w.format)
	}
	if target == "" {
		return a, fmt.Errorf("no address or symbol")
	}
	if addr, err := strconv.ParseUint(target, 0, 64); err == nil {
		a.Addr = addr
		return a, nil
	}
	if target[0] >= '0' && target[0] <= '9' {
		return a, fmt.Errorf("%q is not an address", target)
	}
	a.Symbol = target
	if sym, off, ok := strings.Cut(target, "+"); ok {
		n, err := strconv.ParseUint(off, 0, 64)
		if err != nil {
			return a, fmt.Errorf("%q: the offset after + is not a number", target)
		}
		a.Symbol, a.Offset = sym, n
	}
	return a, nil
}

// run watches target in container id and prints its hits to out, and its
// start and end to status.
func (w *watchCmd) run(conf *config.Config, id, target string, out, status io.Writer) error {
	args, err := w.startArgs(id, target)
	if err != nil {
		return err
	}
	c, err := container.Load(conf.RootDir, container.FullID{ContainerID: id}, container.LoadOpts{})
	if err != nil {
		return fmt.Errorf("container %q: %v", id, err)
	}
	if c.Status != container.Running {
		return fmt.Errorf("container %q is %s, not running", id, c.Status)
	}
	// The sentry knows the container by its full ID, of which id may be
	// a prefix (container.Load).
	id = c.ID
	args.ContainerID = id
	var started watch.StartResult
	if err := c.Sandbox.Call("Watch.Start", &args, &started); err != nil {
		if strings.Contains(err.Error(), urpc.ErrUnknownMethod.Error()) {
			return fmt.Errorf("the sandbox of container %q has no watches: its runsc runs without hwbp (--hwbp=false), or is not hwbp's", id)
		}
		return err
	}
	where := fmt.Sprintf("%#x", started.Addr)
	if started.Symbol != "" {
		where += " (" + started.Symbol + ")"
	}
	bytes := "bytes"
	if args.Len == 1 {
		bytes = "byte"
	}
	fmt.Fprintf(status, "watching %s, %d %s, access %s, in process %d of container %s (%d threads); Ctrl-C ends\n", where, args.Len, bytes, args.Access, started.PID, id, started.Threads)

	// Ctrl-C (or a SIGTERM) ends the watch; a second one, the command.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	defer signal.Stop(sigs)
	var deadline <-chan time.Time
	if w.duration > 0 {
		timer := time.NewTimer(w.duration)
		defer timer.Stop()
		deadline = timer.C
	}
	stop := func(why string) error {
		return c.Sandbox.Call("Watch.Stop", &watch.StopArgs{ID: started.ID, Reason: why}, nil)
	}
	perPID := map[int32]uint64{}
	var lost uint64
	var ended string
	stopping := false
	for ended == "" {
		var res watch.ReadResult
		if err := c.Sandbox.Call("Watch.Read", &watch.ReadArgs{ID: started.ID, WaitMillis: readWait.Milliseconds()}, &res); err != nil {
			// The sandbox is gone, with the process (a container's
			// sandbox ends with its last process), or going: its
			// control server no longer answers.
			if c.Sandbox.IsRunning() && !strings.Contains(err.Error(), unix.ECONNREFUSED.Error()) {
				return fmt.Errorf("reading the watch's hits: %v", err)
			}
			ended = "the sandbox exited"
			break
		}
		for _, h := range res.Hits {
			perPID[h.PID]++
			if err := w.print(out, id, args.Access, h); err != nil {
				stop("the output failed")
				return err
			}
		}
		if res.Lost > 0 {
			lost += res.Lost
			fmt.Fprintf(status, "lost %d hits: the reader fell behind\n", res.Lost)
		}
		if res.Missed > 0 {
			fmt.Fprintf(status, "%d new threads not watched: no free debug register\n", res.Missed)
		}
		if res.Ended != "" {
			ended = res.Ended
			if len(res.PerPID) > 0 {
				perPID = res.PerPID
			}
			break
		}
		if stopping {
			continue
		}
		select {
		case s := <-sigs:
			stopping = true
			if err := stop(fmt.Sprintf("%s (%s)", s, unix.SignalName(s.(unix.Signal)))); err != nil {
				return err
			}
			go func() {
				<-sigs
				os.Exit(130)
			}()
		case <-deadline:
			stopping = true
			if err := stop(fmt.Sprintf("--duration=%v", w.duration)); err != nil {
				return err
			}
		default:
		}
	}
	fmt.Fprintf(status, "watch ended: %s; %s\n", ended, summary(perPID, lost))
	return nil
}

// summary is "N hits (pid P: N, ...)".
func summary(perPID map[int32]uint64, lost uint64) string {
	var total uint64
	pids := make([]int32, 0, len(perPID))
	for pid, n := range perPID {
		pids = append(pids, pid)
		total += n
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	parts := make([]string, 0, len(pids))
	for _, pid := range pids {
		parts = append(parts, fmt.Sprintf("pid %d: %d", pid, perPID[pid]))
	}
	s := fmt.Sprintf("%d hits", total)
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	if lost > 0 {
		s += fmt.Sprintf(", %d of them lost", lost)
	}
	return s
}

// hitJSON is a hit as --format=json prints it.
type hitJSON struct {
	Time      string `json:"time"`
	Container string `json:"container"`
	PID       int32  `json:"pid"`
	TID       int32  `json:"tid"`
	Comm      string `json:"comm"`
	Access    string `json:"access"`
	Addr      string `json:"addr"`
	Symbol    string `json:"symbol,omitempty"`
	Len       uint64 `json:"len"`
	Value     string `json:"value,omitempty"`
	IP        string `json:"ip"`
	IPSymbol  string `json:"ip_symbol,omitempty"`
}

// value is the watched bytes as a little-endian number, in hex with two
// digits a byte; "" if they could not be read.
func value(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("0x")
	for i := len(b) - 1; i >= 0; i-- {
		fmt.Fprintf(&sb, "%02x", b[i])
	}
	return sb.String()
}

// print writes hit h as one line.
func (w *watchCmd) print(out io.Writer, id, access string, h watch.Hit) error {
	t := time.Unix(0, h.Time)
	if w.format == "json" {
		b, err := json.Marshal(hitJSON{
			Time:      t.UTC().Format(time.RFC3339Nano),
			Container: id,
			PID:       h.PID,
			TID:       h.TID,
			Comm:      h.Comm,
			Access:    access,
			Addr:      fmt.Sprintf("%#x", h.Addr),
			Symbol:    h.Symbol,
			Len:       h.Len,
			Value:     value(h.Value),
			IP:        fmt.Sprintf("%#x", h.IP),
			IPSymbol:  h.IPSymbol,
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	line := fmt.Sprintf("%s pid %d tid %d (%s) %s %#x", t.Format("15:04:05.000000"), h.PID, h.TID, h.Comm, access, h.Addr)
	if h.Symbol != "" {
		line += " " + h.Symbol
	}
	if v := value(h.Value); v != "" {
		line += " = " + v
	}
	line += " at "
	if h.IPSymbol != "" {
		line += h.IPSymbol + " "
	}
	line += fmt.Sprintf("(%#x)", h.IP)
	_, err := fmt.Fprintln(out, line)
	return err
}
