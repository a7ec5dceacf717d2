package operator

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		args string
		want Setting
		err  bool
	}{
		{name: "without the flag hwbp is on", args: "--network=none do /bin/true", want: Setting{Enabled: true, Command: "do"}},
		{name: "--hwbp=false turns it off", args: "--hwbp=false --network=none do /bin/true", want: Setting{Given: true, Command: "do"}},
		{name: "one dash is the same flag", args: "-hwbp=false do /bin/true", want: Setting{Given: true, Command: "do"}},
		{name: "the bare flag turns it on", args: "--hwbp do /bin/true", want: Setting{Given: true, Enabled: true, Command: "do"}},
		{name: "the last of several wins", args: "--hwbp=false --hwbp=true create id", want: Setting{Given: true, Enabled: true, Command: "create"}},
		{name: "values of gVisor's flags in the next argument are skipped", args: "--root /run/runsc --log-format json --hwbp=false create --bundle /b id", want: Setting{Given: true, Command: "create"}},
		{name: "gVisor's boolean flags take no next argument", args: "--debug --hwbp=false do /bin/true", want: Setting{Given: true, Command: "do"}},
		{name: "the flags of runsc's entry point are known", args: "--debug-log-fd 3 --hwbp=false boot --bundle=/b id", want: Setting{Given: true, Command: "boot"}},
		{name: "after the subcommand it is not runsc's flag", args: "do --hwbp=false /bin/true", want: Setting{Enabled: true, Command: "do"}},
		{name: "the sandboxed command's arguments are not runsc's", args: "--network=none do /bin/prog --hwbp=false", want: Setting{Enabled: true, Command: "do"}},
		{name: "nothing after -- is a flag", args: "-- --hwbp=false", want: Setting{Enabled: true, Command: "--hwbp=false"}},
		{name: "a flag runsc does not know is an error", args: "--ro-bind / / /bin/sh", err: true},
		{name: "a value the flag does not take is an error", args: "--hwbp=maybe do /bin/true", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.Fields(tc.args))
			if tc.err {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error", tc.args, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	bootArgs := "runsc-sandbox --network=none --root=/r boot --bundle=/b --apply-caps=true id"
	errNoProc := errors.New("no /proc")
	for _, tc := range []struct {
		name      string
		args      string
		parent    string // "" means that parent must not be asked
		parentErr error
		want      bool
		wantArgs  string // the command line to run with, if not args
		err       bool
	}{
		{name: "runsc without the flag installs hwbp", args: "runsc --network=none do /bin/true", want: true},
		{name: "runsc --hwbp=false installs nothing", args: "runsc --hwbp=false do /bin/true", want: false},
		{name: "other subcommands do not ask their parent", args: "runsc-gofer --root=/r gofer --bundle=/b", want: true},
		{name: "a command line runsc refuses leaves hwbp on", args: "runsc --bogus do /bin/true", want: true},
		{
			name: "the sentry follows the runsc that started it and records the flag",
			args: bootArgs, parent: "runsc --root /r --hwbp=false create --bundle /b id",
			want: false, wantArgs: "runsc-sandbox --hwbp=false --network=none --root=/r boot --bundle=/b --apply-caps=true id",
		},
		{
			name: "the sentry is on where its parent does not say",
			args: bootArgs, parent: "runsc --root /r do /bin/true",
			want: true, wantArgs: "runsc-sandbox --hwbp=true --network=none --root=/r boot --bundle=/b --apply-caps=true id",
		},
		{
			name: "a parent whose command line runsc does not parse leaves the sentry on",
			args: bootArgs, parent: "bwrap --ro-bind / / /bin/sh",
			want: true, wantArgs: "runsc-sandbox --hwbp=true --network=none --root=/r boot --bundle=/b --apply-caps=true id",
		},
		{name: "a sentry re-executed with the flag keeps it", args: "runsc-sandbox --hwbp=false --network=none boot --bundle=/b id", want: false},
		{name: "a sentry that cannot read its parent fails", args: bootArgs, parentErr: errNoProc, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := false
			parent := func() ([]string, error) {
				asked = true
				if tc.parentErr != nil {
					return nil, tc.parentErr
				}
				return strings.Fields(tc.parent), nil
			}
			args := strings.Fields(tc.args)
			orig := slices.Clone(args)
			got, gotArgs, err := decide(args, parent)
			if tc.err {
				if err == nil || !errors.Is(err, tc.parentErr) {
					t.Fatalf("decide = %v, %q, %v; want an error wrapping %v", got, gotArgs, err, tc.parentErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decide: %v", err)
			}
			wantArgs := tc.args
			if tc.wantArgs != "" {
				wantArgs = tc.wantArgs
			}
			if got != tc.want || strings.Join(gotArgs, " ") != wantArgs {
				t.Fatalf("decide = %v, %q; want %v, %q", got, gotArgs, tc.want, wantArgs)
			}
			if asked != (tc.parent != "" || tc.parentErr != nil) {
				t.Fatalf("parent asked: %v", asked)
			}
			if !slices.Equal(args, orig) {
				t.Fatalf("decide changed its argument to %q", args)
			}
		})
	}
}

func TestStatPPID(t *testing.T) {
	for _, tc := range []struct {
		name string
		stat string
		want int
		err  bool
	}{
		{name: "the fourth field", stat: "42 (exe) S 4711 42 42 0 -1", want: 4711},
		{name: "a name with spaces and parentheses", stat: "42 (a) b (c) R 17 42 42 0", want: 17},
		{name: "no parent in this namespace is an error", stat: "1 (exe) S 0 1 1 0", err: true},
		{name: "a truncated line is an error", stat: "42 (exe) S", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := statPPID([]byte(tc.stat))
			if tc.err != (err != nil) || got != tc.want {
				t.Fatalf("statPPID(%q) = %d, %v; want %d (error: %v)", tc.stat, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestSplitCmdline(t *testing.T) {
	got := splitCmdline([]byte("runsc\x00--hwbp=false\x00\x00do\x00"))
	if want := []string{"runsc", "--hwbp=false", "", "do"}; !slices.Equal(got, want) {
		t.Fatalf("splitCmdline = %q, want %q (an empty argument stays one)", got, want)
	}
	if got := splitCmdline(nil); got != nil {
		t.Fatalf("splitCmdline(nil) = %q, want none (a process with no command line: a kernel thread or a zombie)", got)
	}
}

// TestParentArgs reads the test's own parent, through the /proc of its
// namespace, as the sentry does.
func TestParentArgs(t *testing.T) {
	args, err := parentArgs()
	if err != nil {
		t.Fatal(err)
	}
	if len(args) == 0 {
		t.Fatal("the parent has an empty command line")
	}
}
