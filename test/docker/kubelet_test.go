// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// The Kubernetes objects of docs/deploy.md (testdata/k8s), which TestCRI
// runs as the kubelet would. This file is the kubelet's part: the
// translation of a Pod into CRI's configurations, for the fields the
// documented Pod uses.

// runtimeClass is a node.k8s.io/v1 RuntimeClass.
type runtimeClass struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Handler string `json:"handler"`
}

// pod is the part of a v1 Pod that the translation knows; a Pod with any
// other field is refused, naming it, rather than run without it.
type pod struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		RuntimeClassName      string `json:"runtimeClassName"`
		HostNetwork           bool   `json:"hostNetwork"`
		ShareProcessNamespace bool   `json:"shareProcessNamespace"`
		// RestartPolicy is the kubelet's own business: it decides
		// whether to create a container again, CRI never sees it.
		RestartPolicy string         `json:"restartPolicy"`
		Containers    []podContainer `json:"containers"`
	} `json:"spec"`
}

type podContainer struct {
	Name            string   `json:"name"`
	Image           string   `json:"image"`
	Command         []string `json:"command"`
	Args            []string `json:"args"`
	SecurityContext *struct {
		Capabilities *struct {
			Add []string `json:"add"`
		} `json:"capabilities"`
	} `json:"securityContext"`
}

// CRI's NamespaceMode (k8s.io/cri-api runtime.v1), as crictl's JSON
// configurations spell it.
const (
	nsPod       = 0
	nsContainer = 1
	nsNode      = 2
	nsTarget    = 3
)

// decodeStrict decodes the JSON object in data into v, refusing fields
// that v does not have and anything after the object.
func decodeStrict(name string, data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %v (the test translates only the fields of the documented objects, as the kubelet would)", name, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: more than one JSON object", name)
	}
	return nil
}

// readRuntimeClass reads a RuntimeClass from path.
func readRuntimeClass(path string) (runtimeClass, error) {
	var rc runtimeClass
	data, err := os.ReadFile(path)
	if err != nil {
		return rc, err
	}
	if err := decodeStrict(path, data, &rc); err != nil {
		return rc, err
	}
	if rc.APIVersion != "node.k8s.io/v1" || rc.Kind != "RuntimeClass" {
		return rc, fmt.Errorf("%s: %s %s, want node.k8s.io/v1 RuntimeClass", path, rc.APIVersion, rc.Kind)
	}
	if rc.Metadata.Name == "" || rc.Handler == "" {
		return rc, fmt.Errorf("%s: a RuntimeClass needs metadata.name and handler", path)
	}
	return rc, nil
}

// readPod reads a Pod from path.
func readPod(path string) (pod, error) {
	var p pod
	data, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	if err := decodeStrict(path, data, &p); err != nil {
		return p, err
	}
	if p.APIVersion != "v1" || p.Kind != "Pod" {
		return p, fmt.Errorf("%s: %s %s, want v1 Pod", path, p.APIVersion, p.Kind)
	}
	if p.Metadata.Name == "" || len(p.Spec.Containers) == 0 {
		return p, fmt.Errorf("%s: a Pod needs metadata.name and containers", path)
	}
	for _, c := range p.Spec.Containers {
		if c.Name == "" || c.Image == "" {
			return p, fmt.Errorf("%s: a container needs a name and an image: %+v", path, c)
		}
	}
	return p, nil
}

// handler returns the CRI runtime handler of p, the handler of the
// RuntimeClass that p names, as the kubelet resolves it.
func (p pod) handler(rc runtimeClass) (string, error) {
	if p.Spec.RuntimeClassName != rc.Metadata.Name {
		return "", fmt.Errorf("pod %s names RuntimeClass %q, not %q", p.Metadata.Name, p.Spec.RuntimeClassName, rc.Metadata.Name)
	}
	return rc.Handler, nil
}

// namespaces returns CRI's namespace options of p's sandbox and
// containers, as the kubelet sets them (pkg/kubelet/kuberuntime,
// namespacesForPod).
func (p pod) namespaces() map[string]any {
	network, pid := nsPod, nsContainer
	if p.Spec.HostNetwork {
		network = nsNode
	}
	if p.Spec.ShareProcessNamespace {
		pid = nsPod
	}
	return map[string]any{"network": network, "pid": pid, "ipc": nsPod}
}

// sandboxConfig returns the CRI PodSandboxConfig of p, for crictl runp,
// with uid as the pod's UID and logs as its log directory.
func (p pod) sandboxConfig(uid, logs string) map[string]any {
	ns := p.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	return map[string]any{
		"metadata":      map[string]any{"name": p.Metadata.Name, "namespace": ns, "uid": uid, "attempt": 0},
		"log_directory": logs,
		"linux": map[string]any{
			"security_context": map[string]any{"namespace_options": p.namespaces()},
		},
	}
}

// containerConfig returns the CRI ContainerConfig of p's container name,
// for crictl create.
func (p pod) containerConfig(name string) (map[string]any, error) {
	for _, c := range p.Spec.Containers {
		if c.Name != name {
			continue
		}
		sc := map[string]any{"namespace_options": p.namespaces()}
		if c.SecurityContext != nil && c.SecurityContext.Capabilities != nil {
			sc["capabilities"] = map[string]any{"add_capabilities": c.SecurityContext.Capabilities.Add}
		}
		return map[string]any{
			"metadata": map[string]any{"name": c.Name, "attempt": 0},
			"image":    map[string]any{"image": c.Image},
			"command":  c.Command,
			"args":     c.Args,
			"log_path": c.Name + "/0.log",
			"linux":    map[string]any{"security_context": sc},
		}, nil
	}
	var names []string
	for _, c := range p.Spec.Containers {
		names = append(names, c.Name)
	}
	return nil, fmt.Errorf("pod %s has no container %q (it has %s)", p.Metadata.Name, name, strings.Join(names, ", "))
}

// TestPodTranslation checks the kubelet's part on the documented objects
// and that an object with a field it does not translate is refused.
func TestPodTranslation(t *testing.T) {
	rc, err := readRuntimeClass("testdata/k8s/runtimeclass.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := readPod("testdata/k8s/pod.json")
	if err != nil {
		t.Fatal(err)
	}
	if h, err := p.handler(rc); err != nil || h != "runsc-hwbp" {
		t.Errorf("handler = %q, %v; want runsc-hwbp (the containerd configuration's)", h, err)
	}
	ns := p.namespaces()
	if ns["network"] != nsNode || ns["pid"] != nsPod {
		t.Errorf("namespace options %v: want network NODE (hostNetwork) and pid POD (shareProcessNamespace)", ns)
	}
	c, err := p.containerConfig("gdb")
	if err != nil {
		t.Fatal(err)
	}
	caps := c["linux"].(map[string]any)["security_context"].(map[string]any)["capabilities"]
	if fmt.Sprint(caps) != "map[add_capabilities:[SYS_PTRACE]]" {
		t.Errorf("the gdb container's capabilities: %v, want SYS_PTRACE added", caps)
	}
	if _, err := p.containerConfig("nginx"); err == nil || !strings.Contains(err.Error(), `no container "nginx"`) {
		t.Errorf("a container the pod lacks: %v", err)
	}

	dir := t.TempDir()
	bad := dir + "/pod.json"
	if err := os.WriteFile(bad, []byte(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"volumes": [], "containers": []}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readPod(bad); err == nil || !strings.Contains(err.Error(), `"volumes"`) {
		t.Errorf("a Pod with volumes, which the test does not translate: %v, want an error naming the field", err)
	}
}

// TestDeployDoc checks that docs/deploy.md shows the Kubernetes set-up that
// TestCRI runs, file by file as they are in testdata/k8s, and the checks
// that TestCRI makes, and that README points to it.
func TestDeployDoc(t *testing.T) {
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ file, lang string }{
		{"containerd-runsc-hwbp.toml", "toml"},
		{"runsc-hwbp.toml", "toml"},
		{"runtimeclass.json", "json"},
		{"pod.json", "json"},
	} {
		data, err := os.ReadFile(filepath.Join(k8sDir, f.file))
		if err != nil {
			t.Fatal(err)
		}
		if block := "```" + f.lang + "\n" + string(data) + "```\n"; !strings.Contains(string(doc), block) {
			t.Errorf("docs/deploy.md does not show %s/%s as it is, in a ```%s block:\n%s", k8sDir, f.file, f.lang, data)
		}
	}
	for _, check := range []string{"```\n" + oldNew + "```\n", "wrote counter 1000 times", `hwbp = "false"`, "exited normally]"} {
		if !strings.Contains(string(doc), check) {
			t.Errorf("docs/deploy.md does not show TestCRI's check %q", check)
		}
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "(docs/deploy.md)") {
		t.Errorf("README does not link docs/deploy.md")
	}
}
