// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Binary checklocks is gVisor's checklocks analyzer
// (gvisor.dev/gvisor/tools/checklocks) as a go vet tool: "make vet" builds
// it and runs go vet -vettool=<it> over every package, so that the
// +checklocks annotations in this module are checked, not decorative.
package main

import (
	"golang.org/x/tools/go/analysis/unitchecker"
	"gvisor.dev/gvisor/tools/checklocks"
)

func main() { unitchecker.Main(checklocks.Analyzer) }
