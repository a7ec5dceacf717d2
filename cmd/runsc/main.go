// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Binary runsc is gVisor's runsc with the hwbp plugin linked in. It must be
// built with CGO_ENABLED=0: a cgo build of runsc does not boot a sandbox.
//
// runsc --hwbp=false runs sandboxes without the plugin, as stock runsc does
// (plugin/operator).
package main

import (
	"gvisor.dev/gvisor/runsc/cli/maincli"

	_ "github.com/gvisor-hwbp/hwbp/plugin"
)

func main() {
	maincli.RegisterCommand(&watchCmd{}, "")
	maincli.Main()
}
