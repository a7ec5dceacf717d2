// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Binary stockrunsc is gVisor's runsc without the hwbp plugin, built from
// the gVisor version pinned in go.mod: the baseline of the benchmarks.
package main

import "gvisor.dev/gvisor/runsc/cli/maincli"

func main() {
	maincli.Main()
}
