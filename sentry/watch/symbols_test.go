// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package watch

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildProgram builds a small Go program with go build's buildmode mode
// (go test strips its own binary's symbol table).
func buildProgram(t *testing.T, mode string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command to build a program with a symbol table (under Bazel's test sandbox): %v", err)
	}
	dir := t.TempDir()
	src := "package main\n\nvar counter int\n\nfunc main() { counter++ }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module prog\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "prog")
	cmd := exec.Command("go", "build", "-buildmode="+mode, "-o", exe, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

func TestSymbols(t *testing.T) {
	for _, mode := range []string{"exe", "pie"} {
		t.Run(mode, func(t *testing.T) { testSymbols(t, buildProgram(t, mode), mode == "pie") })
	}
}

func testSymbols(t *testing.T, exe string, pie bool) {
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		t.Fatal(err)
	}
	// Where a position-independent test binary would be loaded.
	const base = 0x555555554000
	entry := ef.Entry
	if (ef.Type == elf.ET_DYN) != pie {
		t.Fatalf("ELF type %v", ef.Type)
	}
	if pie {
		entry += base
	}
	syms, err := ReadSymbols(f, entry)
	if err != nil {
		t.Fatal(err)
	}
	var want elf.Symbol
	all, _ := ef.Symbols()
	for _, s := range all {
		if s.Name == "runtime.main" {
			want = s
		}
	}
	if want.Value == 0 || want.Size < 4 {
		t.Fatalf("the test binary has no usable runtime.main: %+v", want)
	}
	if pie {
		want.Value += base
	}
	got, err := syms.Lookup("runtime.main")
	if err != nil || got != want.Value {
		t.Fatalf("Lookup(runtime.main) = %#x, %v; want %#x", got, err, want.Value)
	}
	if name := syms.Name(got + 3); name != "runtime.main+0x3" {
		t.Errorf("Name(runtime.main+3) = %q", name)
	}
	if name := syms.Name(got); name != "runtime.main+0x0" {
		t.Errorf("Name(runtime.main) = %q", name)
	}
	if name := syms.Name(1); name != "" {
		t.Errorf("Name(1) = %q, want none", name)
	}
	_, err = syms.Lookup("runtime.mian")
	if err == nil || !strings.Contains(err.Error(), "runtime.main") {
		t.Errorf("Lookup of a misspelt name: %v, want runtime.main among the near names", err)
	}
	t.Log(err)
	if _, err := syms.Lookup("no_such_symbol_anywhere_xyzzy"); err == nil {
		t.Error("Lookup of an unknown name succeeded")
	}
}

func TestReadSymbolsOfNonELF(t *testing.T) {
	if _, err := ReadSymbols(strings.NewReader("#!/bin/sh\n"), 0); err == nil {
		t.Error("ReadSymbols of a script succeeded")
	}
}
