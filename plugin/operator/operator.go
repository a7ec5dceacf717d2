// Package operator is the operator's switch for hwbp: the global runsc flag
// --hwbp, true by default. With --hwbp=false the plugin installs nothing in
// any runsc process, so that the sandbox is stock gVisor's: the guest's
// debug registers read 0 and ignore writes, no system call or platform is
// wrapped, and the sentry's seccomp filter is gVisor's own.
//
// The flag is given where runsc's other global flags are (runsc --hwbp=false
// do ..., Docker's runtimeArgs, the runsc_config of containerd's shim), and
// must reach the sandbox's sentry ("runsc boot"), which the runsc process
// that the operator started (create, run, do, restore) starts. gVisor passes
// only flags of its own on to that process: the sentry's command line is
// made of the fields of its configuration (config.Config.ToFlags,
// runsc/config/flags.go), its file descriptors and a fixed set of boot flags,
// and its environment is emptied unless --TESTONLY-unsafe-nonroot is set
// (Sandbox.createSandboxProcess, runsc/sandbox/sandbox.go). So "runsc boot"
// reads the flag from the command line of its parent, the runsc process that
// started it, before it sandboxes itself, parsing it as runsc parsed it there.
// It then adds the flag, with the value it found, to its own command line,
// which the sentry's re-executions of itself copy up to the subcommand
// (sandboxsetup.PrepareArgs, runsc/cmd/sandboxsetup/process.go): those find
// it there and need not look at their parent again. The sentry's log shows
// the value in its "Args:" line.
//
// The flag is not one of gVisor's configuration flags, so no OCI annotation
// can set it: gVisor rejects a dev.gvisor.flag.hwbp annotation.
package operator

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"

	"gvisor.dev/gvisor/runsc/config"
)

// Name is the name of the flag: runsc --hwbp=false turns hwbp off.
const Name = "hwbp"

const usage = "enable hwbp: the guest's debug registers through ptrace, hardware breakpoints and watchpoints. " +
	"false runs the sandbox as stock gVisor does: nothing of hwbp is installed in it, and the sentry makes no host system call for it."

// boot is the subcommand that runs the sandbox's sentry.
const boot = "boot"

// cliFlags are the global flags that runsc's entry point registers itself,
// besides gVisor's configuration flags (runsc/cli/cli.go: log-fd,
// debug-log-fd, panic-log-fd and coverage-fd take a value; help, h and
// version are booleans). The value tells whether the flag is a boolean.
var cliFlags = map[string]bool{
	"log-fd":       false,
	"debug-log-fd": false,
	"panic-log-fd": false,
	"coverage-fd":  false,
	"help":         true,
	"h":            true,
	"version":      true,
}

// Setting is what a runsc command line says about hwbp.
type Setting struct {
	// Given is set if --hwbp is among the command line's global flags.
	Given bool
	// Enabled is the flag's value, true where it is not given.
	Enabled bool
	// Command is runsc's subcommand, "" if there is none.
	Command string
}

// Parse reads the --hwbp flag from args, a runsc command line without the
// program's name, as runsc parses it: among the global flags, which end at
// the first argument that is neither a flag nor a flag's value (the
// subcommand) or at "--". Everything after the subcommand belongs to it
// (for "runsc do", the sandboxed command's arguments). It fails where runsc
// itself fails: on a flag runsc does not know or a value --hwbp does not
// take.
func Parse(args []string) (Setting, error) {
	fs := globalFlags()
	if err := fs.Parse(args); err != nil {
		return Setting{}, err
	}
	s := Setting{Enabled: fs.Lookup(Name).Value.(flag.Getter).Get().(bool), Command: fs.Arg(0)}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == Name {
			s.Given = true
		}
	})
	return s, nil
}

// globalFlags returns a flag set that knows runsc's global flags: gVisor's
// configuration flags, those of runsc's entry point, any other flag
// registered on the program's flag.CommandLine, and --hwbp. Only --hwbp
// keeps its value; the others accept any value, since only whether a flag
// takes one matters to where the global flags end.
func globalFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("runsc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Bool(Name, true, usage)
	add := func(name string, isBool bool) {
		if fs.Lookup(name) == nil {
			fs.Var(anyValue{isBool: isBool}, name, "")
		}
	}
	addAll := func(set *flag.FlagSet) {
		set.VisitAll(func(f *flag.Flag) {
			b, ok := f.Value.(interface{ IsBoolFlag() bool })
			add(f.Name, ok && b.IsBoolFlag())
		})
	}
	conf := flag.NewFlagSet("config", flag.ContinueOnError)
	config.RegisterFlags(conf)
	addAll(conf)
	addAll(flag.CommandLine)
	for name, isBool := range cliFlags {
		add(name, isBool)
	}
	return fs
}

// anyValue is a flag value that accepts anything.
type anyValue struct{ isBool bool }

func (anyValue) String() string     { return "" }
func (anyValue) Set(string) error   { return nil }
func (v anyValue) IsBoolFlag() bool { return v.isBool }

var (
	once    sync.Once
	enabled bool
)

// Enabled reports whether hwbp is installed in this runsc process, deciding
// it the first time (see Decide). If that fails, the process cannot tell
// what the operator asked for and exits, saying why.
func Enabled() bool {
	once.Do(func() {
		var err error
		if enabled, err = Decide(); err != nil {
			fmt.Fprintf(os.Stderr, "runsc: %v\n", err)
			os.Exit(128)
		}
	})
	return enabled
}

// Decide registers --hwbp on flag.CommandLine, so that runsc accepts it and
// lists it with its other flags, and tells whether hwbp is to be installed in
// this process (see decide). For "runsc boot" without the flag, it adds the
// flag to os.Args. Call it before runsc parses its flags.
func Decide() (bool, error) {
	if flag.CommandLine.Lookup(Name) == nil {
		flag.CommandLine.Bool(Name, true, usage)
	}
	on, args, err := decide(os.Args, parentArgs)
	if err != nil {
		return false, err
	}
	os.Args = args
	return on, nil
}

// decide tells from args, this process's command line, whether hwbp is on,
// and returns the command line to run with:
//   - where the command line gives --hwbp, its value;
//   - for "runsc boot" without it, the value that the command line of the
//     runsc process that started this one gives, through parent, or true
//     where that command line is not one that runsc parses as global flags
//     (gVisor's bwrap alias, or a process that is not runsc at all, as after
//     its creator died); the flag is then added to the returned command line;
//   - otherwise true. A command line that runsc cannot parse gets true too:
//     runsc refuses it itself.
func decide(args []string, parent func() ([]string, error)) (bool, []string, error) {
	if len(args) == 0 {
		return true, args, nil
	}
	s, err := Parse(args[1:])
	if err != nil || s.Given || s.Command != boot {
		return err != nil || s.Enabled, args, nil
	}
	pargs, err := parent()
	if err != nil {
		return false, nil, fmt.Errorf("hwbp: cannot read --%s from the runsc process that started this sandbox: %w", Name, err)
	}
	on := true
	if len(pargs) > 1 {
		if ps, err := Parse(pargs[1:]); err == nil {
			on = ps.Enabled
		}
	}
	args = slices.Insert(slices.Clone(args), 1, "--"+Name+"="+strconv.FormatBool(on))
	return on, args, nil
}

// parentArgs returns the command line of this process's parent. The sentry
// starts in a new PID namespace, where getppid returns 0, but before it sets
// up its own root it still sees the host's /proc, whose PIDs are those of
// the namespace of the runsc process that started it.
func parentArgs() ([]string, error) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return nil, err
	}
	ppid, err := statPPID(stat)
	if err != nil {
		return nil, err
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(ppid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	return splitCmdline(cmdline), nil
}

// statPPID returns the parent's PID from the contents of /proc/PID/stat:
// "PID (COMM) STATE PPID ...", where COMM may hold spaces and parentheses.
func statPPID(stat []byte) (int, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/self/stat")
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 2 {
		return 0, errors.New("malformed /proc/self/stat")
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil || ppid <= 0 {
		return 0, fmt.Errorf("no parent in /proc/self/stat (%q)", fields[1])
	}
	return ppid, nil
}

// splitCmdline splits the contents of /proc/PID/cmdline, NUL-terminated
// arguments, into arguments.
func splitCmdline(b []byte) []string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	var args []string
	for _, a := range bytes.Split(b, []byte{0}) {
		args = append(args, string(a))
	}
	return args
}
