// Binary stockrunsc is gVisor's runsc without the hwbp plugin, built from
// the gVisor version pinned in go.mod: the baseline of the benchmarks.
package main

import "gvisor.dev/gvisor/runsc/cli/maincli"

func main() {
	maincli.Main()
}
