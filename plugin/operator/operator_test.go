// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package operator

import (
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

func TestEnabledBy(t *testing.T) {
	for _, tc := range []struct {
		name string
		args string
		want bool
	}{
		{name: "runsc without the flag installs hwbp", args: "runsc --network=none do /bin/true", want: true},
		{name: "runsc --hwbp=false installs nothing", args: "runsc --hwbp=false do /bin/true", want: false},
		{name: "the sentry follows its configuration's flags, in any order", args: "runsc-sandbox --network=none --hwbp=false --root=/r boot --bundle=/b id", want: false},
		{name: "the sentry is on where its configuration says so", args: "runsc-sandbox --hwbp=true --root=/r boot --bundle=/b id", want: true},
		{name: "a command line runsc refuses leaves hwbp on", args: "runsc --bogus do /bin/true", want: true},
		{name: "an empty command line leaves hwbp on", args: "", want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := enabledBy(strings.Fields(tc.args)); got != tc.want {
				t.Fatalf("enabledBy(%q) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}
