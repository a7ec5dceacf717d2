// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package operator is the operator's switch for hwbp: gVisor's
// configuration flag --hwbp (patches/gvisor/0012), true by default. With
// --hwbp=false the plugin installs nothing in any runsc process, so that the
// sandbox is stock gVisor's: the guest's debug registers read 0 and ignore
// writes, no system call or platform is wrapped, and the sentry's seccomp
// filter is gVisor's own.
//
// The flag is set wherever gVisor's configuration flags are: runsc's command
// line (runsc --hwbp=false do ...), Docker's runtimeArgs, the runsc_config of
// containerd's shim, and, where runsc runs with --allow-flag-override, the
// OCI annotation dev.gvisor.flag.hwbp. gVisor hands the sandbox's sentry
// ("runsc boot") its configuration on its command line (Config.ToFlags,
// runsc/config/flags.go), which the sentry's re-executions of itself copy
// (sandboxsetup.PrepareArgs), and its log shows it in its "Args:" line. The
// plugin decides in its init function, before runsc parses its flags, so it
// reads the flag from its own process's command line, as runsc will parse it.
package operator

import (
	"flag"
	"io"
	"os"
	"sync"

	"gvisor.dev/gvisor/runsc/config"
)

// Name is the name of the flag: runsc --hwbp=false turns hwbp off.
const Name = "hwbp"

const usage = "enable hwbp: the guest's debug registers through ptrace, hardware breakpoints and watchpoints. " +
	"false runs the sandbox as stock gVisor does: nothing of hwbp is installed in it, and the sentry makes no host system call for it."

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

// Enabled reports whether hwbp is installed in this runsc process: what
// --hwbp says on its command line (see Parse), true where it is not given. A
// command line that runsc cannot parse leaves it true: runsc then refuses
// that command line itself.
func Enabled() bool {
	once.Do(func() { enabled = enabledBy(os.Args) })
	return enabled
}

// enabledBy tells from args, a process's command line, whether hwbp is on.
func enabledBy(args []string) bool {
	if len(args) == 0 {
		return true
	}
	s, err := Parse(args[1:])
	return err != nil || s.Enabled
}
