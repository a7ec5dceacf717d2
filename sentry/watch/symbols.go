// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package watch

import (
	"debug/elf"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// Symbols is the symbol table of a process's executable, at the addresses
// where its image is loaded: what names a watched address and the
// instruction that hit it.
type Symbols struct {
	// bias is the load bias: 0 for a fixed executable (ET_EXEC), the
	// distance from its ELF entry point to the process's AT_ENTRY for a
	// position-independent one (ET_DYN).
	bias uint64
	// syms are the executable's functions and objects, by address.
	syms []elf.Symbol
}

// ReadSymbols reads the symbol table (.symtab, and .dynsym for what it
// lacks) of the executable r, loaded so that its entry point is at entry
// (the process's AT_ENTRY).
func ReadSymbols(r io.ReaderAt, entry uint64) (*Symbols, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	s := &Symbols{}
	if f.Type == elf.ET_DYN {
		s.bias = entry - f.Entry
	}
	seen := make(map[string]bool)
	for _, read := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, _ := read() // ErrNoSymbols for a stripped executable
		for _, sym := range syms {
			switch elf.ST_TYPE(sym.Info) {
			case elf.STT_OBJECT, elf.STT_FUNC, elf.STT_TLS:
			default:
				continue
			}
			if sym.Value == 0 || sym.Section == elf.SHN_UNDEF || elf.ST_TYPE(sym.Info) == elf.STT_TLS || seen[sym.Name] {
				continue
			}
			seen[sym.Name] = true
			s.syms = append(s.syms, sym)
		}
	}
	if len(s.syms) == 0 {
		return nil, fmt.Errorf("the executable has no symbol table (stripped?)")
	}
	sort.SliceStable(s.syms, func(i, j int) bool { return s.syms[i].Value < s.syms[j].Value })
	return s, nil
}

// Lookup returns the address of the function or object name in the
// process, or an error that lists the names closest to it.
func (s *Symbols) Lookup(name string) (uint64, error) {
	for _, sym := range s.syms {
		if sym.Name == name {
			return sym.Value + s.bias, nil
		}
	}
	if near := s.near(name, 5); len(near) > 0 {
		return 0, fmt.Errorf("symbol %q not found in the executable; near names: %s", name, strings.Join(near, ", "))
	}
	return 0, fmt.Errorf("symbol %q not found in the executable", name)
}

// near returns up to n names of the table that are closest to name: those
// that contain it or that it contains, then those within a small edit
// distance, closest first.
func (s *Symbols) near(name string, n int) []string {
	type cand struct {
		name string
		d    int
	}
	var cands []cand
	lower := strings.ToLower(name)
	for _, sym := range s.syms {
		l := strings.ToLower(sym.Name)
		switch d := distance(lower, l); {
		case strings.Contains(l, lower) || strings.Contains(lower, l) && len(l) > 2:
			cands = append(cands, cand{sym.Name, min(d, 1)})
		case d <= max(2, len(name)/3):
			cands = append(cands, cand{sym.Name, d})
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		if a.d != b.d {
			return a.d - b.d
		}
		return strings.Compare(a.name, b.name)
	})
	var names []string
	for _, c := range cands {
		if !slices.Contains(names, c.name) {
			names = append(names, c.name)
		}
		if len(names) == n {
			break
		}
	}
	return names
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Name returns addr as "symbol+0xOFF" when it lies inside a function or
// object of the table, and "" otherwise.
func (s *Symbols) Name(addr uint64) string {
	if s == nil || addr < s.bias {
		return ""
	}
	v := addr - s.bias
	i := sort.Search(len(s.syms), func(i int) bool { return s.syms[i].Value > v })
	// The symbols that start at or below v, nearest first; an object
	// may lie inside a function's range (or the reverse) only in odd
	// executables, so the nearest one that covers v wins.
	for j := i - 1; j >= 0 && j >= i-8; j-- {
		sym := s.syms[j]
		if v < sym.Value+max(sym.Size, 1) {
			return fmt.Sprintf("%s+%#x", sym.Name, v-sym.Value)
		}
	}
	return ""
}
