// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package docker tests this repository's runsc as a Docker runtime, the way
// docs/deploy.md's "Docker" registers it:
// a private dockerd, with its own containerd, data root, exec root, socket
// and configuration, runs containers of an image imported from files of the
// test (no registry is reachable) with runsc as runtime "runsc-hwbp"
// (gVisor's default platform, systrap) and "runsc-hwbp-ptrace" (runtime
// arguments selecting ptrace), and what the containers print must be what
// the same programs print on the host kernel. TestContainerd does the same
// through a private containerd with gVisor's shim (containerd_test.go).
//
// The daemons leave any other Docker or containerd on the machine alone:
// everything they write is under one temporary directory (removed at the
// end, also when the test fails) except the cgroups of its containers,
// which live under a cgroup parent of their own that the test removes, and
// the shims' sockets in containerd's fixed /run/containerd/s, which the
// shims remove as they exit (and the test removes that folder if it is
// then empty).
package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvisor-hwbp/hwbp/plugin/status"
	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// image is the name under which the test's image is imported.
const image = "hwbp-docker-test:latest"

// runtimes are the runtimes registered in the daemon's configuration, both
// this repository's runsc: the first with gVisor's default platform, the
// second with runtime arguments that select another, as a user would.
var runtimes = []struct {
	name, platform string
	args           []string
}{
	{"runsc-hwbp", "systrap", nil},
	{"runsc-hwbp-ptrace", "ptrace", []string{"--platform=ptrace"}},
}

// hits is how many times dockerwatch and writes.c write their watched
// word.
const hits = 3

// daemon is a private containerd and dockerd and the docker client talking
// to them.
type daemon struct {
	t *testing.T
	// dir holds everything of the daemons.
	dir string
	// client is the docker command, env its environment.
	client string
	env    []string
	// cgroup is the cgroup parent of the containers.
	cgroup string
	// procs are containerd and dockerd, in the order they started.
	procs []*process
}

// process is a daemon process and its log.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	// exited is closed when the process has exited.
	exited chan struct{}
}

// install installs Debian's package pkg (docker.io brings dockerd,
// containerd and runc). It returns why it could not.
func install(t *testing.T, pkg string) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%s is not installed and there is no apt-get to install it with", pkg)
	}
	t.Logf("installing Debian's %s: apt-get install %s", pkg, pkg)
	get := func() ([]byte, error) {
		cmd := exec.Command("apt-get", "install", "-y", "-qq", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := get(); err == nil {
		return nil
	}
	// The package lists may be missing or stale on a fresh machine.
	if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v\n%s", err, out)
	}
	if out, err := get(); err != nil {
		return fmt.Errorf("apt-get install %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// cannotStart skips t because Docker or containerd cannot run here, saying
// why, except in the test VM: there they run on the host's installation,
// which the host pass has just started successfully before it queued the
// test, so they must start in the VM too.
func cannotStart(t *testing.T, why string) {
	t.Helper()
	if e := os.Getenv("HWBP_EMULATED"); e != "" {
		t.Fatalf("cannot run in the %s test VM: %s", e, why)
	}
	t.Skipf("cannot run on this machine: %s", why)
}

// lookPaths returns the paths of the programs, installing pkg if one is
// missing.
func lookPaths(t *testing.T, pkg string, programs ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil && os.Getenv("HWBP_EMULATED") == "" {
			if err := install(t, pkg); err != nil {
				cannotStart(t, err.Error())
			}
			path, err = exec.LookPath(p)
		}
		if err != nil {
			cannotStart(t, fmt.Sprintf("%s is not installed (Debian's %s has it; the test VM shares the host's root, where the host pass installs it)", p, pkg))
		}
		paths[p] = path
	}
	return paths
}

// newDaemon returns a daemon whose folder is removed, and whose processes
// are stopped, when t ends.
func newDaemon(t *testing.T) *daemon {
	t.Helper()
	// Not t.TempDir: unix socket paths are limited to 107 bytes, and a
	// test's temporary directory is named after the test.
	dir, err := os.MkdirTemp("", "hwbp-docker-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{
		t:      t,
		dir:    dir,
		cgroup: "/" + filepath.Base(dir),
		env: append(os.Environ(),
			"DOCKER_HOST=unix://"+filepath.Join(dir, "docker.sock"),
			// The client's own configuration, not the user's
			// ~/.docker.
			"DOCKER_CONFIG="+filepath.Join(dir, "client")),
	}
	t.Cleanup(d.stop)
	for _, sub := range []string{"containerd", "data", "exec", "client", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (d *daemon) containerdSocket() string {
	return filepath.Join(d.dir, "containerd", "containerd.sock")
}

// startContainerd starts a private containerd, with the folder shims first
// on its PATH if not "". dockerd would use a containerd already running at
// /run/containerd/containerd.sock rather than start its own, so the test
// starts one for it too. cri is the configuration of containerd's CRI
// plugin, appended to containerd's; with none, the plugin is disabled.
func (d *daemon) startContainerd(containerd, shims, cri string) {
	d.t.Helper()
	sock := d.containerdSocket()
	// The "opt" plugin would create /opt/containerd.
	disabled := `"io.containerd.internal.v1.opt"`
	if cri == "" {
		disabled += `, "io.containerd.grpc.v1.cri"`
	}
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [%s]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(d.dir, "containerd", "root"), filepath.Join(d.dir, "containerd", "state"), disabled, sock, sock+".ttrpc") + cri
	confPath := filepath.Join(d.dir, "containerd", "config.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		d.t.Fatal(err)
	}
	env := d.env
	if shims != "" {
		env = append(slices.Clone(d.env), "PATH="+shims+":"+os.Getenv("PATH"))
	}
	d.start("containerd", env, containerd, "--config", confPath)
	d.waitSocket(sock)
}

// startDocker starts a private containerd and dockerd with the runtimes
// registered, and stops them and removes all they made when t ends.
func startDocker(t *testing.T, runsc string) *daemon {
	t.Helper()
	bins := lookPaths(t, "docker.io", "dockerd", "containerd", "containerd-shim-runc-v2", "docker")
	d := newDaemon(t)
	d.client = bins["docker"]
	d.startContainerd(bins["containerd"], "", "")

	// dockerd, with runsc registered as in docs/deploy.md and the debug logs of
	// each runtime in a folder of its own, to tell which runtime and
	// platform ran a container.
	rts := map[string]any{}
	for _, rt := range runtimes {
		args := append(slices.Clone(rt.args), "--debug-log="+d.logDir(rt.name)+"/")
		rts[rt.name] = map[string]any{"path": runsc, "runtimeArgs": args}
	}
	conf := map[string]any{
		"runtimes": rts,
		// vfs works on any file system, the test VM's tmpfs overlay
		// included, where overlay2 does not; the image is a few
		// megabytes, so vfs's copy per container is cheap.
		"storage-driver": "vfs",
		// No network: iptables may be absent, and the containers run
		// with --network=none.
		"iptables": false,
		"bridge":   "none",
		"exec-opts": []string{
			// Not systemd's: there may be no systemd.
			"native.cgroupdriver=cgroupfs",
		},
		"cgroup-parent": d.cgroup,
		// dockerd writes its trust key to /etc/docker/key.json by
		// default.
		"deprecated-key-path": filepath.Join(d.dir, "key.json"),
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(d.dir, "daemon.json")
	if err := os.WriteFile(confPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	d.start("dockerd", d.env, bins["dockerd"],
		"--config-file="+confPath,
		"--data-root="+filepath.Join(d.dir, "data"),
		"--exec-root="+filepath.Join(d.dir, "exec"),
		"--pidfile="+filepath.Join(d.dir, "dockerd.pid"),
		"-H", "unix://"+filepath.Join(d.dir, "docker.sock"),
		"--containerd="+d.containerdSocket(),
	)
	d.waitSocket(filepath.Join(d.dir, "docker.sock"))
	if out, err := d.docker(nil, "version", "--format", "{{.Server.Version}}"); err != nil {
		d.cannotStart("dockerd", fmt.Sprintf("docker version: %v\n%s", err, out))
	}
	return d
}

func (d *daemon) logDir(runtime string) string {
	return filepath.Join(d.dir, "logs", runtime)
}

// start starts a daemon process with its output in a log file.
func (d *daemon) start(name string, env []string, path string, args ...string) {
	d.t.Helper()
	log, err := os.Create(filepath.Join(d.dir, name+".log"))
	if err != nil {
		d.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = env
	// Its own process group, so that a ^C of go test reaches the test
	// binary, whose cleanup stops the daemons in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		d.cannotStart(name, err.Error())
	}
	p := &process{name: name, cmd: cmd, log: log.Name(), exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	d.procs = append(d.procs, p)
}

// startTimeout bounds how long a daemon may take to listen: dockerd takes
// a few seconds on the host and well under a minute in the test VM.
const startTimeout = 5 * time.Minute

// waitSocket waits until the last daemon started accepts connections at
// sock, and skips or fails the test (cannotStart) if it exits first.
func (d *daemon) waitSocket(sock string) {
	d.t.Helper()
	p := d.procs[len(d.procs)-1]
	deadline := time.Now().Add(startTimeout)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		select {
		case <-p.exited:
			d.cannotStart(p.name, fmt.Sprintf("it exited with %v", p.cmd.ProcessState))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.cannotStart(p.name, fmt.Sprintf("it did not listen on %s within %v", sock, startTimeout))
		}
	}
}

// cannotStart skips or fails the test (see cannotStart) because the daemon
// called name did not start, with the end of its log.
func (d *daemon) cannotStart(name, why string) {
	d.t.Helper()
	log, _ := os.ReadFile(filepath.Join(d.dir, name+".log"))
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	cannotStart(d.t, fmt.Sprintf("%s did not start: %s; the end of its log:\n%s", name, why, strings.Join(lines, "\n")))
}

// docker runs the docker client with stdin as standard input and returns
// its standard output, and its standard error in the error if it fails.
func (d *daemon) docker(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sandbox.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.client, args...)
	cmd.Env = d.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// freshLogs empties the folder of the runsc logs of target name and
// returns it: containers of one target run one after the other, so that
// what it holds after a run is that container's.
func (d *daemon) freshLogs(t *testing.T, name string) string {
	t.Helper()
	logs := d.logDir(name)
	if err := os.RemoveAll(logs); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	return logs
}

// run is a runFunc: docker run with the target's runtime.
func (d *daemon) run(t *testing.T, tg target, mounts []string, argv ...string) (stdout, stderr string) {
	t.Helper()
	logs := d.freshLogs(t, tg.name)
	args := []string{"run", "--rm", "--pull=never", "--runtime=" + tg.name, "--network=none",
		// For ptrace, as docs/deploy.md says.
		"--cap-add=SYS_PTRACE"}
	for _, m := range mounts {
		args = append(args, "--volume="+m+":"+m+":ro")
	}
	args = append(append(args, image), argv...)
	return d.runClient(t, tg, logs, d.client, args...)
}

// runClient runs a client command that runs a container with target tg,
// whose runsc logs go to logs, and returns its standard output and error.
// It fails t unless the command exits with status 0 and the boot log says
// that the plugin was active on the target's platform (for an off target:
// that it was not).
func (d *daemon) runClient(t *testing.T, tg target, logs, client string, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := d.command(client, args...)
	if err != nil {
		failClient(t, logs, client, args, err, stdout, stderr)
	}
	checkBootLog(t, tg, logs)
	return stdout, stderr
}

// failClient fails t for a client command that failed with err, with its
// output and the end of runsc's logs in logs.
func failClient(t *testing.T, logs, client string, args []string, err error, stdout, stderr string) {
	t.Helper()
	t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s\nend of runsc's logs:\n%s", filepath.Base(client), strings.Join(args, " "), err, stdout, stderr, logTails(logs, 12))
}

// command runs a client command and returns its standard output and error.
func (d *daemon) command(client string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), sandbox.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, client, args...)
	cmd.Env = d.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// checkBootLog fails t unless the boot logs in logs say that the plugin was
// active on tg's platform (for an off target: that it was not).
func checkBootLog(t *testing.T, tg target, logs string) {
	t.Helper()
	boot, _ := filepath.Glob(filepath.Join(logs, "*.boot.txt"))
	var log []byte
	for _, b := range boot {
		data, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		log = append(log, data...)
	}
	if len(boot) == 0 {
		t.Errorf("%s: no boot log of the container in %s: was it run by this runsc?", tg.name, logs)
	}
	if want := status.StartMessage + ` on platform "` + tg.platform + `"`; bytes.Contains(log, []byte(want)) == tg.off {
		t.Errorf("%s: %q in the boot logs of the container (%d found in %s): %v, want %v", tg.name, want, len(boot), logs, tg.off, !tg.off)
	}
}

// logTails returns the last n lines of each of runsc's logs in dir, one per
// runsc command: when a container's program printed everything and the
// container still exits with the shim's status 128 (gVisor's
// pkg/shim/v1/proc: internalErrorCode, its "runsc wait" failed), only they
// say why.
func logTails(dir string, n int) string {
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(f), sandbox.Tail(string(data), n))
	}
	return b.String()
}

// stop stops the daemons, last started first, and removes what they made.
func (d *daemon) stop() {
	for _, p := range slices.Backward(d.procs) {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(2 * time.Minute):
			d.t.Errorf("%s did not exit on SIGTERM within 2 minutes; killing it", p.name)
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	d.killLeftovers()
	unmountUnder(d.t, d.dir)
	removeCgroup(d.t, d.cgroup)
	// containerd puts its shims' sockets in /run/containerd/s whatever
	// its state folder; the shims remove them as they exit. The folders
	// go too if they are empty, as they are where no other containerd
	// runs.
	os.Remove("/run/containerd/s")
	os.Remove("/run/containerd")
	if err := os.RemoveAll(d.dir); err != nil {
		d.t.Errorf("removing the daemons' folder: %v", err)
	}
}

// killLeftovers kills what the daemons started and left running after they
// exited, such as a shim or a sandbox of a container that a failed test
// left behind: the processes whose command line names the daemons' folder.
func (d *daemon) killLeftovers() {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmdline, []byte(d.dir)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		d.t.Logf("killing process %d, left by the daemons: %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(t *testing.T, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("reading mountinfo: %v", err)
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	for _, p := range slices.Backward(points) {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			t.Errorf("unmounting %s: %v", p, err)
		}
	}
}

// removeCgroup removes the cgroup parent of the containers from every
// cgroup hierarchy mounted (v1's, one per controller, or v2's).
func removeCgroup(t *testing.T, cgroup string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("reading mountinfo: %v", err)
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		// The file system type follows the " - " separator.
		_, after, ok := strings.Cut(line, " - ")
		f := strings.Fields(line)
		if !ok || len(f) < 5 || !(strings.HasPrefix(after, "cgroup ") || strings.HasPrefix(after, "cgroup2 ")) {
			continue
		}
		p := filepath.Join(f[4], cgroup)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removing cgroup %s: %v", p, err)
		}
	}
}

// programs are the test's programs, built on the host.
type programs struct {
	// watch is testdata/dockerwatch.c, writes testdata/writes.c,
	// counter test/watch's testdata/counter.c, all linked statically.
	watch, writes, counter string
	// src is the absolute path of writes.c, whose debug information
	// names it.
	src string
	// gdb is the host's gdb, under /usr.
	gdb string
}

func buildPrograms(t *testing.T) programs {
	t.Helper()
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Fatalf("gdb is needed (apt-get install gdb): %v", err)
	}
	// Containers get the host's /usr, read-only, for gdb and its
	// libraries, rather than an image with copies of them: the image
	// stays a few megabytes, and the container runs the very gdb that
	// the host's session runs.
	if gdb, err = filepath.EvalSymlinks(gdb); err != nil || !strings.HasPrefix(gdb, "/usr/") {
		t.Fatalf("gdb is %s (%v); the containers see only the host's /usr", gdb, err)
	}
	src, err := filepath.Abs("testdata/writes.c")
	if err != nil {
		t.Fatal(err)
	}
	return programs{
		watch:  sandbox.BuildC(t, "testdata/dockerwatch.c", "-static"),
		writes: sandbox.BuildC(t, "testdata/writes.c", "-static", "-g", "-O0"),
		// Not position-independent: counter has one address
		// whatever the program's load address.
		counter: sandbox.BuildC(t, "../watch/testdata/counter.c", "-static", "-no-pie"),
		src:     src,
		gdb:     gdb,
	}
}

// rootfs returns, as a tar archive, the root file system of the test's
// containers: the programs under /hwbp; writes.c at its path on the host,
// for gdb's source lines; and the folders and merged-/usr symbolic links
// of a root file system, so that the host's /usr mounted on /usr (for gdb)
// works.
func (p programs) rootfs(t *testing.T) []byte {
	t.Helper()
	return layer(t, append(baseEntries(),
		entry{name: "hwbp/dockerwatch", src: p.watch, mode: 0o755},
		entry{name: "hwbp/writes", src: p.writes, mode: 0o755},
		entry{name: "hwbp/counter", src: p.counter, mode: 0o755},
		entry{name: p.src, src: p.src, mode: 0o644},
	))
}

// hostRun runs a program on the host and returns its standard output,
// failing t unless it exits with status 0.
func hostRun(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		var stderr []byte
		if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
			stderr = exit.Stderr
		}
		t.Fatalf("%s on the host: %v\n%s", strings.Join(argv, " "), err, stderr)
	}
	return string(out)
}

// target is one way to run a container: with a runtime or configuration
// called name, which must boot the sandbox on platform.
type target struct {
	name, platform string
	// off is set for a target whose runsc runs with --hwbp=false: its
	// sandboxes must not have the plugin.
	off bool
}

// runFunc runs argv in a container of the test's root file system with
// target, the host folders mounts mounted read-only at their own paths, and
// returns its standard output and error. It fails t unless the container
// exits with status 0 and runsc booted it, with the plugin, on the
// target's platform.
type runFunc func(t *testing.T, tg target, mounts []string, argv ...string) (stdout, stderr string)

// compare runs the test's programs with each target and compares what they
// print with what they print on the host kernel. The debug registers'
// read-back ("registers") needs no hits and runs on every host; the hits
// ("hits") need a host kernel that delivers them, and run in the test VM
// where it does not (RequireHostHits).
func compare(t *testing.T, p programs, targets []target, run runFunc) {
	t.Run("registers", func(t *testing.T) {
		host := hostRun(t, p.watch, "0")
		for _, tg := range targets {
			t.Run(tg.name, func(t *testing.T) {
				got, _ := run(t, tg, nil, "/hwbp/dockerwatch", "0")
				sandbox.CompareTranscripts(t, "the container's transcript", host, got)
			})
		}
	})

	t.Run("hits", func(t *testing.T) {
		sandbox.RequireHostHits(t)
		host := hostRun(t, p.watch, strconv.Itoa(hits))
		if n := strings.Count(host, "stopped by signal 5"); n != hits {
			t.Fatalf("the host kernel stopped the child %d times at its %d writes:\n%s", n, hits, host)
		}
		script, err := filepath.Abs("testdata/watch.gdb")
		if err != nil {
			t.Fatal(err)
		}
		gdbArgs := append([]string{p.gdb, "-nx", "-batch"}, sandbox.GDBCommands(t, script)...)
		cmd := exec.Command(gdbArgs[0], append(gdbArgs[1:], p.writes)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		// gdb's exit status reflects its last command only.
		_ = cmd.Run()
		hostGDB, hostGDBErr := sandbox.NormalizeGDB(stdout.String()), sandbox.NormalizeGDB(stderr.String())
		if n := strings.Count(hostGDB, "Hardware watchpoint 2: counter\n\nOld value"); n != hits || !strings.Contains(hostGDB, "exited normally") {
			t.Fatalf("the host's gdb session did not stop at each of the %d writes and run to the end:\n%s\n%s", hits, hostGDB, hostGDBErr)
		}
		for _, tg := range targets {
			t.Run(tg.name, func(t *testing.T) {
				t.Run("ptrace", func(t *testing.T) {
					got, _ := run(t, tg, nil, "/hwbp/dockerwatch", strconv.Itoa(hits))
					sandbox.CompareTranscripts(t, "the container's transcript", host, got)
				})
				t.Run("gdb", func(t *testing.T) {
					out, errOut := run(t, tg, []string{"/usr"}, append(gdbArgs, "/hwbp/writes")...)
					sandbox.CompareTranscripts(t, "gdb's output", hostGDB, sandbox.NormalizeGDB(out))
					sandbox.CompareTranscripts(t, "gdb's errors", hostGDBErr, sandbox.NormalizeGDB(errOut))
				})
			})
		}
	})
}

// TestDocker runs a tracer that sets a write watchpoint on its child
// (testdata/dockerwatch.c) and a gdb session with a hardware watchpoint
// (testdata/watch.gdb) in containers that a private Docker runs with this
// repository's runsc, registered as runtime "runsc-hwbp" (gVisor's default
// platform, systrap) and "runsc-hwbp-ptrace" (runtime arguments selecting
// ptrace), from an image imported from a tar archive of the test's files,
// and compares what they print with the same programs on the host kernel.
func TestDocker(t *testing.T) {
	sandbox.RequireRoot(t)
	runsc := sandbox.Runsc(t)
	p := buildPrograms(t)
	d := startDocker(t, runsc)
	if out, err := d.docker(p.rootfs(t), "import", "-", image); err != nil {
		t.Fatalf("importing the image: %v\n%s", err, out)
	}
	var targets []target
	for _, rt := range runtimes {
		targets = append(targets, target{name: rt.name, platform: rt.platform})
	}
	compare(t, p, targets, d.run)
	t.Run("runsc watch", func(t *testing.T) { watchContainers(t, d, runsc) })
}

// watchWrites is how many times counter, in watchContainer, writes its
// watched word.
const watchWrites = 5

// watchContainers watches from the host, with runsc watch, the counter of a
// program in a container of each runtime, as docs/watch.md tells Docker's
// operators to: runsc's root is runtime-runc/moby in dockerd's exec root,
// and the container is named by Docker's full ID.
func watchContainers(t *testing.T, d *daemon, runsc string) {
	sandbox.RequireHostHits(t)
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			cidFile := filepath.Join(t.TempDir(), "cid")
			client := exec.Command(d.client, "run", "-i", "--rm", "--pull=never", "--network=none", "--cidfile="+cidFile, "--runtime="+rt.name, image, "/hwbp/counter", strconv.Itoa(watchWrites))
			client.Env = d.env
			// dockerd's runc shim keeps runsc's state there
			// (/var/run/docker/runtime-runc/moby by default), whatever
			// the runtime's name.
			root := filepath.Join(d.dir, "exec", "runtime-runc", "moby")
			watchContainer(t, client, runsc, root, func() string {
				cid, err := os.ReadFile(cidFile)
				if err != nil {
					t.Fatal(err)
				}
				return string(cid)
			}, nil)
		})
	}
}

// watchContainer starts client, a command that runs test/watch's counter in
// a container and passes it its standard input and output, and once the
// program is ready watches its counter with runsc --root=root watch,
// naming the container by id(). Each write must be reported with the value
// written, the program must see no SIGTRAP and exit with its status 7 at
// the end of its input, and the watch must then end with a summary of
// every hit. lostExit, if not nil, tells whether another exit status is
// the client's own failure to learn the program's, not the program's.
func watchContainer(t *testing.T, client *exec.Cmd, runsc, root string, id func() string, lostExit func() bool) {
	stdin, err := client.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	client.Stderr = &stderr
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Process.Kill()
		client.Wait()
	})
	lines := bufio.NewReader(out)
	readLine := func() string {
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("the container's output ended: %q, %v; %s's stderr:\n%s", line, err, filepath.Base(client.Path), stderr.String())
		}
		return strings.TrimSpace(line)
	}
	if line := readLine(); line != "ready" {
		t.Fatalf("program: %q", line)
	}
	cid := id()
	w := sandbox.StartWatch(t, exec.Command(runsc, "--root="+root, "watch", "--format=json", cid, "counter"))
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	if line, want := readLine(), fmt.Sprintf("counter %d, sigtraps 0", 3*watchWrites); line != want {
		t.Errorf("program: %q, want %q", line, want)
	}
	for i, l := range w.Read(t, watchWrites) {
		var h struct{ Container, Symbol, Value string }
		if err := json.Unmarshal([]byte(l), &h); err != nil {
			t.Fatalf("hit %d: %v: %q", i, err, l)
		}
		if h.Container != cid || h.Symbol != "counter+0x0" || h.Value != fmt.Sprintf("0x%016x", 3*(i+1)) {
			t.Errorf("hit %d: %s; want container %s, symbol counter+0x0, value %d", i, l, cid, 3*(i+1))
		}
	}
	stdin.Close()
	if err := client.Wait(); client.ProcessState.ExitCode() != 7 {
		if lostExit != nil && lostExit() {
			t.Logf("%s: %v, the program's exit status lost by the client", filepath.Base(client.Path), err)
		} else {
			t.Errorf("%s: %v, want exit status 7; stderr:\n%s", filepath.Base(client.Path), err, stderr.String())
		}
	}
	if more, summary := w.Finish(t); len(more) != 0 || !strings.Contains(summary, fmt.Sprintf("; %d hits", watchWrites)) {
		t.Errorf("after the program's exit: %d hits more, summary %q", len(more), summary)
	}
}
