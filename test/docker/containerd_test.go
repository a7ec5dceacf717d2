// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package docker

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
	"golang.org/x/sys/unix"
)

// atLeast says whether version (such as "1.6.20~ds1") is at least
// major.minor.
func atLeast(version string, major, minor int) bool {
	f := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(f) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(f[0])
	mi, err2 := strconv.Atoi(f[1])
	return err1 == nil && err2 == nil && (ma > major || ma == major && mi >= minor)
}

// hasCapability says whether this process has capability c in its
// effective set.
func hasCapability(t *testing.T, c int) bool {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatalf("capget: %v", err)
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
}

// shimName is the name containerd derives from the runtime
// io.containerd.runsc.v1 and looks up on its PATH.
const shimName = "containerd-shim-runsc-v1"

// buildShim builds gVisor's containerd shim from the gVisor version that
// go.mod pins, next to runsc (bin/), and returns its path. The shim is
// gVisor's own: it runs whatever runsc its configuration names. The VM pass
// uses the one the host pass built, as it does runsc.
func buildShim(t *testing.T, runsc string) string {
	t.Helper()
	out := filepath.Join(filepath.Dir(runsc), shimName)
	if os.Getenv("HWBP_EMULATED") != "" {
		if _, err := os.Stat(out); err != nil {
			t.Fatalf("the host pass builds the shim for the VM: %v", err)
		}
		return out
	}
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "gvisor.dev/gvisor")
	cmd.Dir = root
	v, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m gvisor.dev/gvisor: %v", err)
	}
	version := strings.TrimSpace(string(v))
	// A module of its own: the shim's dependencies (containerd's
	// libraries) are not this module's.
	mod := t.TempDir()
	for _, args := range [][]string{
		{"mod", "init", "hwbp-shim"},
		{"get", "gvisor.dev/gvisor/shim@" + version},
		{"build", "-o", out, "gvisor.dev/gvisor/shim"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			cannotStart(t, fmt.Sprintf("building gVisor's shim: go %s: %v\n%s", strings.Join(args, " "), err, b))
		}
	}
	return out
}

// containerdEnv names a folder holding the containerd and ctr to test
// instead of the project's build, such as a distribution's /usr/bin.
const containerdEnv = "HWBP_CONTAINERD"

// containerdBins returns the folder holding containerd and ctr: the one
// HWBP_CONTAINERD names, else the project's build of a containerd recent
// enough for gVisor's shim (containerd.sh), which the first run on a
// machine builds (a few minutes) and later runs, the VM pass's among them,
// find in place.
func containerdBins(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv(containerdEnv); dir != "" {
		return dir
	}
	cmd := exec.Command("./containerd.sh")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		cannotStart(t, fmt.Sprintf("building containerd (test/docker/containerd.sh): %v\n%s", err, stderr.String()))
	}
	return strings.TrimSpace(string(out))
}

// ctr runs containers with the private containerd and gVisor's shim.
type ctr struct {
	*daemon
	ctr string
	// rootfs is the containers' root file system, configs the shim's
	// configuration of each target.
	rootfs  string
	configs map[string]string
	n       int
}

// run is a runFunc: ctr run with gVisor's shim, whose configuration file
// names this repository's runsc and the target's platform.
//
// gVisor's shim waits for the container with "runsc wait". A program that
// ends before that wait has reached the sandbox's control server leaves
// the wait with nothing to ask ("sandbox no longer running and its exit
// status is unavailable"), and the shim then ends the container with its
// internal error status, 128, after the program printed everything (seen
// in two of this project's CI rehearsals in the test VM, on shim-ptrace).
// That race is the shim's and runsc wait's, not the sandbox's: such a run
// is repeated, up to twice, with a new container.
func (c *ctr) run(t *testing.T, tg target, mounts []string, argv ...string) (stdout, stderr string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		logs, args := c.args(t, tg, mounts, argv...)
		stdout, stderr, err := c.command(c.ctr, args...)
		if err != nil && attempt < 3 && waitLost(logs) {
			t.Logf("%s: the shim's runsc wait came after the sandbox's end (exit status 128); running the container again", tg.name)
			continue
		}
		if err != nil {
			failClient(t, logs, c.ctr, args, err, stdout, stderr)
		}
		checkBootLog(t, tg, logs)
		return stdout, stderr
	}
}

// waitLost reports whether one of the runsc logs in logs is that of a
// "runsc wait" that found the sandbox gone without its exit status.
func waitLost(logs string) bool {
	waits, _ := filepath.Glob(filepath.Join(logs, "*.wait.txt"))
	for _, w := range waits {
		if b, err := os.ReadFile(w); err == nil && bytes.Contains(b, []byte("sandbox no longer running and its exit status is unavailable")) {
			return true
		}
	}
	return false
}

// ctrNamespace is the containerd namespace of the containers that ctr runs.
const ctrNamespace = "hwbp-test"

// args returns a fresh folder for the runsc logs of a container of tg and
// the ctr command line that runs argv in it.
func (c *ctr) args(t *testing.T, tg target, mounts []string, argv ...string) (logs string, args []string) {
	t.Helper()
	logs = c.freshLogs(t, tg.name)
	c.n++
	args = []string{"--address", c.containerdSocket(), "--namespace", ctrNamespace,
		"run", "--rm", "--runtime", "io.containerd.runsc.v1", "--runtime-config-path", c.configs[tg.name],
		// The container is its sandbox's root container, which is
		// what CRI's annotation says and what gVisor's shim needs to
		// be told: without it, the shim (pkg/shim/v1/runsc/service.go,
		// newInit) does not hand runsc create the container's standard
		// input and output, and then waits for the end of runsc
		// create's output, which the sandbox holds, so that ctr run
		// never returns (gVisor issue 12198; issue 4544 gives this
		// annotation as the way around).
		"--annotation", "io.kubernetes.cri.container-type=sandbox",
		// Not /run/containerd/fifo.
		"--fifo-dir", filepath.Join(c.dir, "fifo")}
	for _, m := range mounts {
		args = append(args, "--mount", "type=bind,src="+m+",dst="+m+",options=rbind:ro")
	}
	args = append(append(args, "--rootfs", c.rootfs, fmt.Sprintf("hwbp-%d", c.n)), argv...)
	return logs, args
}

// configure writes the shim's configuration for target tg: the runsc
// binary and its state folder, and runsc's flags, with --hwbp=false for an
// off target.
func (c *ctr) configure(t *testing.T, runsc string, tg target) {
	t.Helper()
	off := ""
	if tg.off {
		off = "  hwbp = \"false\"\n"
	}
	conf := fmt.Sprintf(`binary_name = %q
root = %q
[runsc_config]
  platform = %q
  network = "none"
%s  debug-log = %q
`, runsc, filepath.Join(c.dir, "runsc"), tg.platform, off, c.logDir(tg.name)+"/")
	c.configs[tg.name] = filepath.Join(c.dir, tg.name+".toml")
	if err := os.WriteFile(c.configs[tg.name], []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// containerd17 returns the paths of containerd and ctr (containerdBins),
// and skips t, saying so, if that containerd is older than 1.7.
//
// The shim answers containerd's "start" with its bootstrap parameters as a
// JSON object (BootstrapParams, which containerd reads since 1.7:
// containerd PR 8052); containerd 1.6 (Debian 12's) takes the whole reply
// for a socket address and fails ("dial unix {"version":2,...}: connect:
// invalid argument", seen here with 1.6.20). The project's build is recent
// enough; one that HWBP_CONTAINERD names may not be.
func containerd17(t *testing.T) (containerd, ctr string) {
	t.Helper()
	bins := containerdBins(t)
	containerd, ctr = filepath.Join(bins, "containerd"), filepath.Join(bins, "ctr")
	out, err := exec.Command(containerd, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", containerd, err)
	}
	if f := strings.Fields(string(out)); len(f) < 3 || !atLeast(f[2], 1, 7) {
		t.Skipf("gVisor's shim (go.mod's gVisor) needs containerd 1.7 or later, which understands its bootstrap reply; this is %s (%s)", strings.TrimSpace(string(out)), containerd)
	}
	return containerd, ctr
}

// requireSysResource skips t to the test VM where root lacks
// CAP_SYS_RESOURCE. gVisor's shim gives itself an OOM score adjustment of
// -999, which needs it, and fails to start without it
// (pkg/shim/v1/manager.go; Linux refuses with EACCES, fs/proc/base.c
// __set_oom_adj, and containerd's SetOOMScore forgives that only to
// unprivileged users and user namespaces). Root in some containers and
// sandboxes lacks it, this project's machines among them, where the whole
// test runs in the test VM, whose root has it, with the containerd and shim
// that the host pass built.
func requireSysResource(t *testing.T) {
	t.Helper()
	if !hasCapability(t, unix.CAP_SYS_RESOURCE) {
		sandbox.SkipToVM(t, "root here lacks CAP_SYS_RESOURCE, without which gVisor's shim refuses to start (it sets its oom_score_adj to -999)")
	}
}

// TestContainerd runs the sessions of TestDocker in containers that a
// private containerd (the project's build of containerd 1.7,
// containerd.sh) runs with gVisor's shim (built from the gVisor version in
// go.mod), configured as docs/deploy.md says to run this repository's runsc on
// systrap and on ptrace. ctr runs them from a root file system folder made
// of the same files as TestDocker's image.
func TestContainerd(t *testing.T) {
	sandbox.RequireRoot(t)
	containerd, ctrPath := containerd17(t)
	runsc := sandbox.Runsc(t)
	p := buildPrograms(t)
	shim := buildShim(t, runsc)
	requireSysResource(t)
	d := newDaemon(t)
	d.startContainerd(containerd, filepath.Dir(shim), "")
	c := &ctr{daemon: d, ctr: ctrPath, rootfs: filepath.Join(d.dir, "rootfs"), configs: map[string]string{}}
	if err := os.MkdirAll(c.rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	untar := exec.Command("tar", "-x", "-C", c.rootfs)
	untar.Stdin = bytes.NewReader(p.rootfs(t))
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("unpacking the root file system: %v\n%s", err, out)
	}
	var targets []target
	for _, platform := range []string{"systrap", "ptrace"} {
		tg := target{name: "shim-" + platform, platform: platform}
		targets = append(targets, tg)
		c.configure(t, runsc, tg)
	}
	compare(t, p, targets, c.run)

	// runsc watch from the host, as docs/watch.md tells containerd's
	// operators: runsc's root is the shim's root (its configuration's
	// "root") and containerd's namespace, the container is named by its
	// containerd ID.
	t.Run("runsc watch", func(t *testing.T) {
		sandbox.RequireHostHits(t)
		for _, tg := range targets {
			t.Run(tg.name, func(t *testing.T) {
				logs, args := c.args(t, tg, nil, "/hwbp/counter", strconv.Itoa(watchWrites))
				client := exec.Command(c.ctr, args...)
				client.Env = c.env
				root := filepath.Join(c.dir, "runsc", ctrNamespace)
				id := fmt.Sprintf("hwbp-%d", c.n)
				watchContainer(t, client, runsc, root, func() string { return id }, func() bool { return waitLost(logs) })
			})
		}
	})

	// hwbp = "false" in the shim's runsc_config turns hwbp off, as
	// docs/deploy.md's "The --hwbp flag" says: the sandbox's sentry has no plugin
	// (run checks its boot log), and the program sees what runsc
	// --hwbp=false gives it, not Linux's debug registers.
	t.Run("hwbp=false", func(t *testing.T) {
		tg := target{name: "shim-systrap-off", platform: "systrap", off: true}
		c.configure(t, runsc, tg)
		got, _ := c.run(t, tg, nil, "/hwbp/dockerwatch", "0")
		off := sandbox.RunWith(t, sandbox.Options{Flags: []string{"--hwbp=false"}}, "systrap", p.watch, "0")
		if off.ExitCode != 0 {
			t.Fatalf("runsc --hwbp=false do: exit %d\n%s", off.ExitCode, off.Stderr)
		}
		if got != off.Stdout {
			t.Errorf("the container's transcript differs from runsc --hwbp=false's:\n--- runsc --hwbp=false\n%s--- container\n%s", off.Stdout, got)
		}
		if host := hostRun(t, p.watch, "0"); got == host {
			t.Errorf("the container's transcript is the host kernel's: hwbp was on\n%s", got)
		}
	})
}

// TestAtLeast checks the version check of TestContainerd on the versions
// that containerd --version prints: the project's build stamps
// "v1.7.35", Debian's packages "1.6.20~ds1" and "1.7.24~ds1".
func TestAtLeast(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version string
		want    bool
	}{
		{"project build with v prefix", "v1.7.35", true},
		{"debian 12 is older", "1.6.20~ds1", false},
		{"debian 13 is recent enough", "1.7.24~ds1", true},
		{"next major", "2.0.0", true},
		{"minor compared as a number", "1.10.0", true},
		{"older major", "0.9.0", false},
		{"no minor", "1", false},
		{"not a number", "unknown", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := atLeast(tc.version, 1, 7); got != tc.want {
				t.Errorf("atLeast(%q, 1, 7) = %v, want %v", tc.version, got, tc.want)
			}
		})
	}
}

// TestWaitLost checks the signature of the shim's lost wait that run
// repeats a container for: only a wait log that says so.
func TestWaitLost(t *testing.T) {
	dir := t.TempDir()
	if waitLost(dir) {
		t.Errorf("waitLost of a folder without logs")
	}
	other := filepath.Join(dir, "runsc.log.1.wait.txt")
	if err := os.WriteFile(other, []byte(`FATAL ERROR: waiting on container "c": connection refused`), 0o644); err != nil {
		t.Fatal(err)
	}
	if waitLost(dir) {
		t.Errorf("waitLost of another wait failure")
	}
	lost := filepath.Join(dir, "runsc.log.2.wait.txt")
	if err := os.WriteFile(lost, []byte(`W1207 19:57:02.815435    4711 util.go:107] FATAL ERROR: waiting on container "hwbp-5": sandbox no longer running and its exit status is unavailable`), 0o644); err != nil {
		t.Fatal(err)
	}
	if !waitLost(dir) {
		t.Errorf("waitLost does not recognize the shim's lost wait")
	}
}
