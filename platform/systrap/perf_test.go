// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package systrap

import (
	"bufio"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// TestNurseryEventsReachClones checks, against the host kernel, that the
// events opened on the nursery are inherited by a process that it clones
// without CLONE_THREAD, as systrap clones its stub threads: such a clone
// starts with every debug register taken, so that one more breakpoint
// event on it is refused with ENOSPC. An event with inherit_thread is not
// inherited there (Linux's inherit_task_group), and a stub thread that a
// busy process cloned then ran a task's writes with no event at all until
// the next arm listed it.
//
// The nursery stands in as a shell, whose subshell is a fork that does not
// exec (remove_on_exec would drop the events at an exec).
func TestNurseryEventsReachClones(t *testing.T) {
	for _, counting := range []bool{false, true} {
		sh := exec.Command("/bin/sh", "-c", "exec 3<&0; read start; (read stop <&3) & echo $!; wait")
		in, err := sh.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sh.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		host := hostPerf{}
		var fds []int
		for pos := 0; pos < hwbp.Slots; pos++ {
			// An address the shell never touches: the events
			// only need to hold the debug registers.
			a := entry{addr: 0x1000 + 8*uint64(pos), rw: 1, ln: 3}.attr(pos, true, counting)
			fd, err := host.open(&a, int32(sh.Process.Pid))
			if err != nil {
				sh.Process.Kill()
				sh.Wait()
				t.Skipf("the host refuses perf breakpoint events (needs Linux 5.13+ and perf_event_paranoid <= 2): %v", err)
			}
			fds = append(fds, fd)
		}
		in.Write([]byte("start\n"))
		line, err := bufio.NewReader(out).ReadString('\n')
		clone, perr := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || perr != nil {
			t.Fatalf("reading the subshell's pid: %q, %v, %v", line, err, perr)
		}
		a := entry{addr: 0x2000, rw: 1, ln: 3}.attr(0, false, false)
		fd, err := host.open(&a, int32(clone))
		if err == nil {
			host.close(fd)
		}
		in.Write([]byte("stop\n"))
		in.Close()
		if werr := sh.Wait(); werr != nil {
			t.Errorf("shell: %v", werr)
		}
		for _, fd := range fds {
			host.close(fd)
		}
		if !errors.Is(err, unix.ENOSPC) {
			t.Errorf("counting %v: a fifth breakpoint event on the clone: got error %v, want ENOSPC (the clone did not inherit the nursery's events)", counting, err)
		}
	}
}
