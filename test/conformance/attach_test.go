// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package conformance

import (
	"bytes"
	"os/exec"
	"testing"
	"time"

	"github.com/gvisor-hwbp/hwbp/test/sandbox"
)

// TestAttachThenRequest runs testdata/attachwait.c on the host and in the
// sandbox and compares the transcripts: PTRACE_POKEUSER and PTRACE_PEEKUSER
// of DR0 and PTRACE_GETREGS made right after PTRACE_ATTACH, or PTRACE_SEIZE
// and PTRACE_INTERRUPT, with no waitpid between, to a stopped, a running and
// an exiting child, 100 times each. Linux's ptrace_attach returns only once a
// group-stopped tracee is in its ptrace-stop (or has exited), so such a
// request succeeds there; stock gVisor returned at once, and the request
// failed with ESRCH in most attempts (patches/gvisor/0004). The program
// forces one path where Linux's own answer depends on scheduling (see its
// comment). No hit is needed: it runs on every platform, kvm in the test VM.
func TestAttachThenRequest(t *testing.T) {
	sandbox.RequireRoot(t)
	prog := sandbox.BuildC(t, "testdata/attachwait.c", "-lpthread")
	var stderr bytes.Buffer
	cmd := exec.Command(prog)
	cmd.Stderr = &stderr
	want, err := cmd.Output()
	if err != nil {
		t.Fatalf("attachwait on the host: %v\n%s%s", err, want, stderr.Bytes())
	}
	for _, p := range append(append([]string{}, sandbox.Platforms...), sandbox.KVM) {
		t.Run(p, func(t *testing.T) {
			sandbox.RequirePlatform(t, p)
			// 2,400 forks: about 25 s on systrap and ptrace here, and
			// minutes on kvm under the test VM's emulation.
			res := sandbox.RunWith(t, sandbox.Options{Timeout: 30 * time.Minute}, p, prog)
			if res.ExitCode != 0 {
				t.Fatalf("attachwait on %s: exit %d\nstdout:\n%s\nstderr:\n%s\nend of the sentry's log:\n%s", p, res.ExitCode, res.Stdout, res.Stderr, res.LogTail(40))
			}
			sandbox.CompareTranscripts(t, "attachwait's transcript on "+p, string(want), res.Stdout)
		})
	}
}
