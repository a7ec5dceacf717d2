// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package docker

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// k8sDir holds the Kubernetes set-up of docs/deploy.md: TestCRI runs
// these files, and TestDeployDoc checks that docs/deploy.md shows them as
// they are.
const k8sDir = "testdata/k8s"

// crictlBin returns the path of crictl: the project's build (crictl.sh),
// which the first run on a machine builds and later runs, the VM pass's
// among them, find in place.
func crictlBin(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("./crictl.sh")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		cannotStart(t, fmt.Sprintf("building crictl (test/docker/crictl.sh): %v\n%s", err, stderr.String()))
	}
	return filepath.Join(strings.TrimSpace(string(out)), "crictl")
}

// criConfig returns the configuration of containerd's CRI plugin: the
// test's (the local pause image; the native snapshotter, since the test
// VM's root is an overlay, on which overlayfs refuses its upper folders;
// CNI's folders in the daemon's, unused with host networking; runsc-hwbp
// as the default runtime, since containerd's default, runc, is not
// configured) and then the runtime handler of docs/deploy.md (k8sDir),
// with its shim configuration at shimConfig.
func criConfig(t *testing.T, d *daemon, shimConfig string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(k8sDir, "containerd-runsc-hwbp.toml"))
	if err != nil {
		t.Fatal(err)
	}
	const path = `ConfigPath = "/etc/containerd/runsc-hwbp.toml"`
	if !strings.Contains(string(doc), path) {
		t.Fatalf("%s/containerd-runsc-hwbp.toml has no %s for the test to replace", k8sDir, path)
	}
	return fmt.Sprintf(`[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "native"
  default_runtime_name = "runsc-hwbp"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = %q
  conf_dir = %q
`, pauseImage, filepath.Join(d.dir, "cni", "bin"), filepath.Join(d.dir, "cni", "net.d")) +
		strings.Replace(string(doc), path, fmt.Sprintf("ConfigPath = %q", shimConfig), 1)
}

// writeShimConfig writes to path the shim configuration of docs/deploy.md
// (k8sDir) with this repository's runsc as the binary, the runsc state
// folder and debug logs in the daemon's folder, and, for an off target,
// hwbp = "false". The shim reads it at each pod's start.
func writeShimConfig(t *testing.T, d *daemon, path, runsc string, tg target) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(k8sDir, "runsc-hwbp.toml"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(doc)
	const binary = `binary_name = "/usr/local/bin/runsc-hwbp"` + "\n"
	if !strings.HasPrefix(conf, binary) || !strings.HasSuffix(conf, "\n") || strings.LastIndex(conf, "\n[") != strings.Index(conf, "\n[runsc_config]\n") {
		t.Fatalf("%s/runsc-hwbp.toml must start with %q and end with its [runsc_config] table, for the test to set its own binary and flags", k8sDir, binary)
	}
	conf = fmt.Sprintf("binary_name = %q\nroot = %q\n", runsc, filepath.Join(d.dir, "runsc")) + conf[len(binary):]
	if tg.off {
		conf += "  hwbp = \"false\"\n"
	}
	conf += fmt.Sprintf("  debug-log = %q\n", d.logDir(tg.name)+"/")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// cri is crictl talking to the daemon's containerd.
type cri struct {
	*daemon
	crictl, config string
}

// run runs crictl with args and returns its standard output, failing t
// unless it exits with status 0.
func (c *cri) run(t *testing.T, args ...string) string {
	t.Helper()
	args = append([]string{"--config", c.config}, args...)
	stdout, stderr, err := c.command(c.crictl, args...)
	if err != nil {
		t.Fatalf("crictl %s: %v\nstdout:\n%s\nstderr:\n%s\nend of containerd's log:\n%s", strings.Join(args, " "), err, stdout, stderr, c.containerdLog())
	}
	return stdout
}

func (c *cri) containerdLog() string {
	log, _ := os.ReadFile(filepath.Join(c.dir, "containerd.log"))
	return sandbox.Tail(string(log), 20)
}

// writeJSON writes v as JSON to a file of the daemon's folder and returns
// its path.
func (c *cri) writeJSON(t *testing.T, name string, v any) string {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.dir, "cri", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// criPod is a pod sandbox that crictl runp started.
type criPod struct {
	c      *cri
	id     string
	pod    pod
	config string
}

// runPod starts the sandbox of p with runtime handler handler, as the
// kubelet does, and stops and removes it when t ends.
func (c *cri) runPod(t *testing.T, p pod, handler, uid string) *criPod {
	t.Helper()
	logs := filepath.Join(c.dir, "pods", uid)
	config := c.writeJSON(t, uid+"/pod.json", p.sandboxConfig(uid, logs))
	id := strings.TrimSpace(c.run(t, "runp", "--runtime", handler, config))
	t.Cleanup(func() {
		args := []string{"--config", c.config, "stopp", id}
		if _, stderr, err := c.command(c.crictl, args...); err != nil {
			t.Errorf("crictl stopp %s: %v\n%s", id, err, stderr)
		}
		args = []string{"--config", c.config, "rmp", id}
		if _, stderr, err := c.command(c.crictl, args...); err != nil {
			t.Errorf("crictl rmp %s: %v\n%s", id, err, stderr)
		}
	})
	return &criPod{c: c, id: id, pod: p, config: config}
}

// start creates and starts the container of config in the pod and returns
// its ID.
func (cp *criPod) start(t *testing.T, name string, config map[string]any) string {
	t.Helper()
	path := cp.c.writeJSON(t, filepath.Join(filepath.Base(filepath.Dir(cp.config)), name+".json"), config)
	id := strings.TrimSpace(cp.c.run(t, "create", cp.id, path, cp.config))
	cp.c.run(t, "start", id)
	return id
}

// startContainer starts the pod's container name as the kubelet does.
func (cp *criPod) startContainer(t *testing.T, name string) string {
	t.Helper()
	config, err := cp.pod.containerConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	return cp.start(t, name, config)
}

// inspect returns what crictl inspect says of container id.
func (c *cri) inspect(t *testing.T, id string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(c.run(t, "inspect", "-o", "json", id)), &v); err != nil {
		t.Fatalf("crictl inspect %s: %v", id, err)
	}
	return v
}

// wait waits for container id to exit and returns its exit status and
// what it printed (crictl logs). It fails t if the container has not
// exited after sandbox.Timeout.
func (c *cri) wait(t *testing.T, id string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(sandbox.Timeout)
	for {
		status, _ := c.inspect(t, id)["status"].(map[string]any)
		if status["state"] == "CONTAINER_EXITED" {
			code, _ := status["exitCode"].(float64)
			return int(code), c.logs(t, id)
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s (%v) has not exited after %v; it printed:\n%s", id, status["metadata"], sandbox.Timeout, c.logs(t, id))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// logs returns what container id printed, its standard output and error
// interleaved as the CRI log holds them.
func (c *cri) logs(t *testing.T, id string) string {
	t.Helper()
	args := []string{"--config", c.config, "logs", id}
	stdout, stderr, err := c.command(c.crictl, args...)
	if err != nil {
		t.Fatalf("crictl logs %s: %v\n%s", id, err, stderr)
	}
	return stdout + stderr
}

// oldNew is what gdb prints when the workload's watchpoint stops it: its
// first write after the debugger set armed, counter from 0 to 1.
const oldNew = "Hardware watchpoint 1: counter\n\nOld value = 0\nNew value = 1\n"

var inferiorExited = regexp.MustCompile(`\[Inferior 1 \(process \d+\) exited normally\]`)

// TestCRI runs the Kubernetes set-up of docs/deploy.md through CRI, with
// crictl (the project's build of cri-tools, crictl.sh) as the kubelet: a
// private containerd 1.7 (containerd.sh) with its CRI plugin and the
// runtime handler runsc-hwbp of testdata/k8s (gVisor's shim, buildShim,
// running this repository's runsc), images imported with ctr images
// import, and the Pod of testdata/k8s with its RuntimeClass, translated to
// CRI's configurations as the kubelet would (kubelet_test.go): host
// networking (no CNI), a workload container and a gdb container sharing
// the pod's PID namespace; then the gdb container as kubectl debug's
// ephemeral container (PID namespace mode TARGET) in the pod without a
// shared namespace, and the pod with hwbp off.
func TestCRI(t *testing.T) {
	sandbox.RequireRoot(t)
	containerd, ctrPath := containerd17(t)
	crictl := crictlBin(t)
	rc, err := readRuntimeClass(filepath.Join(k8sDir, "runtimeclass.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := readPod(filepath.Join(k8sDir, "pod.json"))
	if err != nil {
		t.Fatal(err)
	}
	handler, err := p.handler(rc)
	if err != nil {
		t.Fatal(err)
	}
	runsc := sandbox.Runsc(t)
	progs := buildPrograms(t)
	busybox := lookPaths(t, "busybox-static", "busybox")["busybox"]
	shim := buildShim(t, runsc)
	images := criImages(t, progs, busybox)
	requireSysResource(t)

	d := newDaemon(t)
	shimConfig := filepath.Join(d.dir, "runsc-hwbp.toml")
	writeShimConfig(t, d, shimConfig, runsc, target{name: "cri", platform: "systrap"})
	d.startContainerd(containerd, filepath.Dir(shim), criConfig(t, d, shimConfig))
	archive := filepath.Join(d.dir, "images.tar")
	if err := os.WriteFile(archive, images, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := d.command(ctrPath, "--address", d.containerdSocket(), "--namespace", "k8s.io", "images", "import", "--snapshotter", "native", archive); err != nil {
		t.Fatalf("ctr images import: %v\n%s%s", err, out, stderr)
	}
	c := &cri{daemon: d, crictl: crictl, config: filepath.Join(d.dir, "crictl.yaml")}
	sock := "unix://" + d.containerdSocket()
	if err := os.WriteFile(c.config, []byte(fmt.Sprintf("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: %d\n", sock, sock, int(sandbox.Timeout.Seconds()))), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{pauseImage, gdbImage, workloadImage} {
		c.run(t, "inspecti", img)
	}

	// The gdb session of TestDocker on the host kernel, which crictl
	// exec's in the workload's container must equal.
	script, err := filepath.Abs("testdata/watch.gdb")
	if err != nil {
		t.Fatal(err)
	}
	gdbArgs := append([]string{"gdb", "-nx", "-batch"}, sandbox.GDBCommands(t, script)...)

	pods := 0
	run := func(t *testing.T, tg target, p pod) (cp *criPod, logs string) {
		t.Helper()
		writeShimConfig(t, d, shimConfig, runsc, tg)
		logs = d.freshLogs(t, tg.name)
		pods++
		return c.runPod(t, p, handler, fmt.Sprintf("hwbp-pod-%d", pods)), logs
	}

	// kubectl debug's ephemeral container in a pod that does not share
	// its PID namespace: CRI's NamespaceMode TARGET, the target being the
	// workload's container, with the gdb container's command. CRI names
	// the namespace /proc/PID/ns/pid of the target's PID, which gVisor's
	// shim reports as the sandbox's for every container; runsc takes a
	// path of the sandbox's PID for the sandbox's root namespace
	// (runsc/sandbox: fixPidns), where the pause process is PID 1 and
	// every container's process is seen, not for the target's own. So
	// gdb -p works, from a namespace above the target's, as
	// docs/deploy.md says. A peer container of the pod in a namespace of
	// its own (CONTAINER, the kubelet's mode without
	// shareProcessNamespace) does not see the workload.
	t.Run("target", func(t *testing.T) {
		sandbox.RequireHostHits(t)
		tg := target{name: "cri-target", platform: "systrap"}
		own := p
		own.Spec.ShareProcessNamespace = false
		cp, logs := run(t, tg, own)
		workload := cp.startContainer(t, "workload")
		config, err := own.containerConfig("gdb")
		if err != nil {
			t.Fatal(err)
		}
		command := config["command"].([]string)
		config["metadata"] = map[string]any{"name": "peer", "attempt": 0}
		config["log_path"] = "peer/0.log"
		config["command"] = []string{"sh", "-c", "pidof workload"}
		status, out := c.wait(t, cp.start(t, "peer", config))
		if status == 0 {
			t.Errorf("a container in a PID namespace of its own found the workload's process (pidof workload: %s)", out)
		}

		config["metadata"] = map[string]any{"name": "debugger", "attempt": 0}
		config["log_path"] = "debugger/0.log"
		config["command"] = []string{"sh", "-c", "cat /proc/1/comm; " + command[len(command)-1]}
		sc := config["linux"].(map[string]any)["security_context"].(map[string]any)
		sc["namespace_options"] = map[string]any{"network": nsNode, "pid": nsTarget, "ipc": nsPod, "target_id": workload}
		status, out = c.wait(t, cp.start(t, "debugger", config))
		if !strings.HasPrefix(out, "pause\n") {
			t.Errorf("the TARGET container's PID 1 is not the pod's pause process, as docs/deploy.md says it is:\n%s", out)
		}
		if status != 0 || !strings.Contains(out, oldNew) {
			t.Errorf("the TARGET container exited with status %d; want 0 and a stop of the watchpoint with\n%s--- it printed\n%s", status, oldNew, out)
		}
		status, out = c.wait(t, workload)
		if status != 0 || !strings.Contains(out, "wrote counter 1000 times") {
			t.Errorf("the workload exited with status %d after gdb detached; want 0 and all its writes done\n--- it printed\n%s", status, out)
		}
		checkBootLog(t, tg, logs)
	})

	t.Run("hwbp", func(t *testing.T) {
		sandbox.RequireHostHits(t)
		tg := target{name: "cri", platform: "systrap"}
		cp, logs := run(t, tg, p)
		workload := cp.startContainer(t, "workload")
		// An operator watches the workload's counter from the node
		// (docs/watch.md), through all that follows: its watch holds a
		// debug register of the workload beside gdb's.
		w := sandbox.StartWatch(t, exec.Command(runsc, "--root="+filepath.Join(d.dir, "runsc", "k8s.io"), "watch", "--len=4", "--count=5", "--format=json", workload, "counter"))
		// The workload waits for a debugger; meanwhile gdb runs a
		// program of its container under crictl exec.
		t.Run("exec", func(t *testing.T) {
			cmd := exec.Command(gdbArgs[0], append(gdbArgs[1:], progs.writes)...)
			hostOut, _ := cmd.Output()
			host := sandbox.NormalizeGDB(string(hostOut))
			if n := strings.Count(host, "Hardware watchpoint 2: counter\n\nOld value"); n != hits || !strings.Contains(host, "exited normally") {
				t.Fatalf("the host's gdb session did not stop at each of the %d writes and run to the end:\n%s", hits, host)
			}
			args := append([]string{"--config", c.config, "exec", workload}, append(gdbArgs, "/hwbp/writes")...)
			// gdb's exit status reflects its last command only.
			out, errOut, _ := c.command(c.crictl, args...)
			if got := sandbox.NormalizeGDB(out); got != host {
				sandbox.CompareTranscripts(t, "crictl exec's gdb session", host, got)
				t.Logf("its standard error:\n%s", errOut)
			}
		})
		debug := cp.startContainer(t, "gdb")
		status, out := c.wait(t, debug)
		if status != 0 || !strings.Contains(out, oldNew) {
			t.Errorf("the gdb container exited with status %d; want 0 and a stop of the watchpoint with\n%s--- it printed\n%s", status, oldNew, out)
		}
		status, out = c.wait(t, workload)
		if status != 0 || !strings.Contains(out, "wrote counter 1000 times") {
			t.Errorf("the workload exited with status %d after gdb detached; want 0 and all its writes done\n--- it printed\n%s", status, out)
		}
		checkWatchedWorkload(t, w, workload)
		checkBootLog(t, tg, logs)
	})

	// hwbp = "false" in the shim's runsc_config: gdb's watchpoint is
	// accepted (gVisor's PTRACE_POKEUSER ignores debug registers and
	// returns 0) and never stops the workload, which runs to its end
	// under gdb.
	t.Run("hwbp=false", func(t *testing.T) {
		tg := target{name: "cri-off", platform: "systrap", off: true}
		cp, logs := run(t, tg, p)
		workload := cp.startContainer(t, "workload")
		debug := cp.startContainer(t, "gdb")
		_, out := c.wait(t, debug)
		if !strings.Contains(out, "Hardware watchpoint 1: counter") || strings.Contains(out, "Old value") || !inferiorExited.MatchString(out) {
			t.Errorf("gdb's session: want the watchpoint set, no stop of it, and the workload's normal exit\n--- it printed\n%s", out)
		}
		status, out := c.wait(t, workload)
		if status != 0 || !strings.Contains(out, "wrote counter 1000 times") {
			t.Errorf("the workload exited with status %d; want 0 and all its writes done\n--- it printed\n%s", status, out)
		}
		checkBootLog(t, tg, logs)
	})
}

// checkWatchedWorkload checks what runsc watch --count=5 reported of the
// workload's counter in container id while gdb watched it too: its first
// five writes, 1 to 5, then the watch's end at its count.
func checkWatchedWorkload(t *testing.T, w *sandbox.Watch, id string) {
	t.Helper()
	hits, summary := w.Finish(t)
	if want := "watch ended: count of 5 hits reached; 5 hits"; !strings.HasPrefix(summary, want) || len(hits) != 5 {
		t.Fatalf("runsc watch: %d hits, summary %q; want 5 and %q...:\n%s", len(hits), summary, want, strings.Join(hits, "\n"))
	}
	for i, l := range hits {
		var h struct{ Container, Symbol, Value string }
		if err := json.Unmarshal([]byte(l), &h); err != nil {
			t.Fatalf("hit %d: %v: %q", i, err, l)
		}
		v, err := strconv.ParseUint(h.Value, 0, 64)
		if h.Container != id || h.Symbol != "counter+0x0" || err != nil || v != uint64(i+1) {
			t.Errorf("hit %d: %s; want container %s, symbol counter+0x0, value %d", i, l, id, i+1)
		}
	}
}
