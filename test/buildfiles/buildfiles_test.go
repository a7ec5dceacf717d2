// Package buildfiles checks that every Go package of the repository has a
// BUILD.bazel whose rules list exactly the package's Go files, with the
// target names gazelle generates (go_naming_convention "import": the library
// is named after its directory, "<dir>_lib" for a main package with a
// go_binary "<dir>", and the test "<dir>_test").
package buildfiles

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

var (
	ruleRE = regexp.MustCompile(`(?ms)^(go_library|go_test|go_binary)\((.*?)^\)`)
	nameRE = regexp.MustCompile(`(?m)^\s*name = "([^"]+)"`)
	srcsRE = regexp.MustCompile(`(?s)\bsrcs = \[(.*?)\]`)
	fileRE = regexp.MustCompile(`"([^"]+)"`)
	pkgRE  = regexp.MustCompile(`(?m)^package (\w+)`)
)

type rule struct {
	kind, name string
	srcs       []string
}

func parseBuild(t *testing.T, path string) []rule {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	var rules []rule
	for _, m := range ruleRE.FindAllStringSubmatch(string(data), -1) {
		r := rule{kind: m[1]}
		if n := nameRE.FindStringSubmatch(m[2]); n != nil {
			r.name = n[1]
		}
		if s := srcsRE.FindStringSubmatch(m[2]); s != nil {
			for _, f := range fileRE.FindAllStringSubmatch(s[1], -1) {
				r.srcs = append(r.srcs, f[1])
			}
		}
		sort.Strings(r.srcs)
		rules = append(rules, r)
	}
	return rules
}

func TestBuildFilesListGoFiles(t *testing.T) {
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string][2][]string{} // dir -> library files, test files
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Like the go tool, skip testdata and names starting with
			// "." or "_" (platform/*/_gvisor holds files added to
			// gVisor's packages at build time, not packages of ours).
			switch name := d.Name(); {
			case path == root:
			case name == "vendor", name == "bin", name == "testdata", strings.HasPrefix(name, "."), strings.HasPrefix(name, "_"):
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		dir, name := filepath.Split(path)
		files := pkgs[dir]
		if strings.HasSuffix(name, "_test.go") {
			files[1] = append(files[1], name)
		} else {
			files[0] = append(files[0], name)
		}
		pkgs[dir] = files
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) == 0 {
		t.Fatal("found no Go packages")
	}
	for dir, files := range pkgs {
		rel, _ := filepath.Rel(root, dir)
		t.Run(rel, func(t *testing.T) {
			base := filepath.Base(dir)
			libName := base
			if len(files[0]) > 0 && isMain(t, filepath.Join(dir, files[0][0])) {
				libName = base + "_lib"
			}
			want := map[string][]string{}
			if len(files[0]) > 0 {
				sort.Strings(files[0])
				want["go_library "+libName] = files[0]
			}
			if len(files[1]) > 0 {
				sort.Strings(files[1])
				want["go_test "+base+"_test"] = files[1]
			}
			got := map[string][]string{}
			for _, r := range parseBuild(t, filepath.Join(dir, "BUILD.bazel")) {
				if r.kind == "go_binary" {
					if r.name != base {
						t.Errorf("go_binary is named %q, want %q", r.name, base)
					}
					continue
				}
				got[r.kind+" "+r.name] = r.srcs
			}
			for k, w := range want {
				if g, ok := got[k]; !ok {
					t.Errorf("BUILD.bazel has no %s", k)
				} else if strings.Join(g, " ") != strings.Join(w, " ") {
					t.Errorf("%s srcs = %v, want %v", k, g, w)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("BUILD.bazel has %s, which has no Go files", k)
				}
			}
		})
	}
}

func isMain(t *testing.T, path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := pkgRE.FindSubmatch(data)
	return m != nil && string(m[1]) == "main"
}
