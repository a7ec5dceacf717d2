// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package docker

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// TestCRI's images, made here and imported with ctr images import, since no
// registry is reachable.

// entry is a file of an image layer: a copy of the host's file src, or a
// symbolic link to link, or a directory when both are "".
type entry struct {
	name, src, link string
	mode            int64
}

// layer returns the entries as a tar archive, with the parent directories
// they need.
func layer(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	header := func(h *tar.Header) {
		h.Uid, h.Gid, h.Format = 0, 0, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	dirs := map[string]bool{}
	var mkdir func(d string)
	mkdir = func(d string) {
		if d == "." || d == "/" || dirs[d] {
			return
		}
		mkdir(filepath.Dir(d))
		dirs[d] = true
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		header(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode})
	}
	for _, e := range entries {
		name := strings.TrimPrefix(e.name, "/")
		switch {
		case e.link != "":
			mkdir(filepath.Dir(name))
			header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: e.link, Mode: 0o777})
		case e.src == "":
			mkdir(name)
		default:
			mkdir(filepath.Dir(name))
			data, err := os.ReadFile(e.src)
			if err != nil {
				t.Fatal(err)
			}
			mode := e.mode
			if mode == 0 {
				mode = 0o644
			}
			header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))})
			if _, err := tw.Write(data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// baseEntries are the folders of a root file system and the merged-/usr
// links of Debian's, at which the host's files are copied.
func baseEntries() []entry {
	es := []entry{{name: "dev"}, {name: "etc"}, {name: "proc"}, {name: "root"}, {name: "sys"}, {name: "tmp"}, {name: "usr/bin"}, {name: "usr/lib"}, {name: "usr/lib64"}, {name: "usr/sbin"}}
	for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
		es = append(es, entry{name: l, link: "usr/" + l})
	}
	return es
}

// hostFile returns the entry of the host's file path at its path with the
// folders' symbolic links resolved (so /lib/x/libc.so.6 lands in
// usr/lib/x/, under the image's lib link), holding what path, a symbolic
// link or not, names.
func hostFile(t *testing.T, path string, mode int64) entry {
	t.Helper()
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	src, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return entry{name: filepath.Join(dir, filepath.Base(path)), src: src, mode: mode}
}

// lddLibs returns the shared libraries that ldd lists for program, the
// dynamic loader among them.
func lddLibs(t *testing.T, program string) []string {
	t.Helper()
	out, err := exec.Command("ldd", program).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", program, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		case len(f) >= 3 && f[1] == "=>":
			t.Fatalf("ldd %s: %s is not found on this machine", program, f[0])
		}
	}
	return libs
}

// isStatic says whether the ELF executable at path has no program
// interpreter (no dynamic loader, no shared libraries).
func isStatic(t *testing.T, path string) bool {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

var gdbDataDir = regexp.MustCompile(`GDB's data directory is "([^"]+)"`)

// gdbEntries returns the host's gdb as the debug image carries it: gdb and
// the shared libraries ldd lists, its data directory (its Python modules
// among others), the modules of Python's library that gdb's Python loads
// as it starts (gdb links libpython: without them Python cannot start, and
// gdb works without its Python commands, saying so), the locale C.UTF-8,
// and a statically
// linked busybox for sh, pidof and sleep. A few megabytes of Python's
// library rather than all of it (54 MB on Debian 12), and no package
// manager in the image: what a debug image needs for gdb -p.
func gdbEntries(t *testing.T, p programs, busybox string) []entry {
	t.Helper()
	es := []entry{hostFile(t, p.gdb, 0o755)}
	es[0].name = "usr/bin/gdb"
	for _, lib := range lddLibs(t, p.gdb) {
		es = append(es, hostFile(t, lib, 0o755))
	}
	out, err := exec.Command(p.gdb, "-nx", "-batch", "-ex", "show data-directory",
		"-ex", `python import sys; print("\n".join(sorted(set(m.__file__ for m in sys.modules.values() if getattr(m, "__file__", None)))))`).CombinedOutput()
	if err != nil {
		t.Fatalf("asking gdb for its data directory and Python modules: %v\n%s", err, out)
	}
	m := gdbDataDir.FindSubmatch(out)
	if m == nil {
		t.Fatalf("gdb named no data directory:\n%s", out)
	}
	data := string(m[1])
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		es = append(es, hostFile(t, path, 0o644))
		return nil
	})
	if err != nil {
		t.Fatalf("copying gdb's data directory: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasSuffix(line, ".py") || !strings.HasPrefix(line, "/") || strings.HasPrefix(line, data+"/") {
			continue
		}
		es = append(es, hostFile(t, line, 0o644))
		if filepath.Base(line) == "os.py" {
			// Python's landmark of its exec_prefix.
			es = append(es, entry{name: filepath.Join(filepath.Dir(line), "lib-dynload")})
		}
	}
	// The locale of the image's LANG, C.UTF-8, which glibc 2.36 does not
	// build in: without it gdb's Python knows no encoding of ASCII and
	// fails to load gdb's Python commands.
	const locale = "/usr/lib/locale/C.utf8"
	err = filepath.WalkDir(locale, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		es = append(es, hostFile(t, path, 0o644))
		return nil
	})
	if err != nil {
		t.Fatalf("copying the locale C.UTF-8 (Debian's libc-bin): %v", err)
	}
	if !isStatic(t, busybox) {
		t.Fatalf("%s is linked dynamically; the image needs a static busybox (Debian's busybox-static)", busybox)
	}
	es = append(es, entry{name: "usr/bin/busybox", src: busybox, mode: 0o755})
	for _, applet := range []string{"sh", "pidof", "sleep", "ls", "cat"} {
		es = append(es, entry{name: "usr/bin/" + applet, link: "busybox"})
	}
	return es
}

// ociImage is an image of a docker archive: its layers, lowest first, and
// the configuration of its containers.
type ociImage struct {
	name   string
	layers [][]byte
	// entrypoint is the image's entry point (Kubernetes' command), env
	// its environment.
	entrypoint, env []string
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// dockerArchive returns the images as a tar archive of docker save's
// format, which ctr images import reads; layers that images share are
// stored once.
func dockerArchive(t *testing.T, images []ociImage) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	type manifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifests []manifest
	stored := map[string]bool{}
	for _, img := range images {
		var diffIDs, files []string
		for _, l := range img.layers {
			d := digest(l)
			diffIDs = append(diffIDs, "sha256:"+d)
			files = append(files, d+"/layer.tar")
			if !stored[d] {
				stored[d] = true
				add(d+"/layer.tar", l)
			}
		}
		config, err := json.Marshal(map[string]any{
			"architecture": "amd64",
			"os":           "linux",
			"config":       map[string]any{"Entrypoint": img.entrypoint, "Env": img.env},
			"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
		})
		if err != nil {
			t.Fatal(err)
		}
		c := digest(config) + ".json"
		add(c, config)
		manifests = append(manifests, manifest{Config: c, RepoTags: []string{img.name}, Layers: files})
	}
	data, err := json.Marshal(manifests)
	if err != nil {
		t.Fatal(err)
	}
	add("manifest.json", data)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Images are named after the Pod of testdata/k8s and the pause image of the
// containerd configuration.
const (
	pauseImage    = "hwbp.test/pause:1"
	gdbImage      = "hwbp.test/gdb:1"
	workloadImage = "hwbp.test/workload:1"
)

// criImages returns TestCRI's images as a docker archive: the pod
// sandbox's pause image (testdata/pause.c); the debug image, gdb
// (gdbEntries); and the workload's, the debug image's layer (so that
// crictl exec can run gdb in the workload's container) and one with the
// workload (testdata/k8s/workload.c) and the program of TestDocker's gdb
// session with its source.
func criImages(t *testing.T, p programs, busybox string) []byte {
	t.Helper()
	env := []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/root"}
	pause := layer(t, append(baseEntries(), entry{name: "pause", src: sandbox.BuildC(t, "testdata/pause.c", "-static"), mode: 0o755}))
	gdb := layer(t, append(baseEntries(), gdbEntries(t, p, busybox)...))
	workload := layer(t, []entry{
		{name: "hwbp/workload", src: sandbox.BuildC(t, "testdata/k8s/workload.c", "-static", "-g"), mode: 0o755},
		{name: "hwbp/writes", src: p.writes, mode: 0o755},
		{name: p.src, src: p.src},
	})
	return dockerArchive(t, []ociImage{
		{name: pauseImage, layers: [][]byte{pause}, entrypoint: []string{"/pause"}, env: env},
		{name: gdbImage, layers: [][]byte{gdb}, entrypoint: []string{"/usr/bin/sh"}, env: env},
		{name: workloadImage, layers: [][]byte{gdb, workload}, entrypoint: []string{"/hwbp/workload"}, env: env},
	})
}

// TestLayer checks that layer makes each entry's parent folders once, and
// the entries as asked.
func TestLayer(t *testing.T) {
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(layer(t, []entry{
		{name: "/a/b/f", src: src, mode: 0o755},
		{name: "a/b/l", link: "f"},
		{name: "a/c"},
	})))
	var got []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		got = append(got, h.Name+" "+string(h.Typeflag)+" "+h.Linkname)
	}
	want := []string{"a/ 5 ", "a/b/ 5 ", "a/b/f 0 ", "a/b/l 2 f", "a/c/ 5 "}
	if !slices.Equal(got, want) {
		t.Errorf("layer: %q, want %q", got, want)
	}
}
