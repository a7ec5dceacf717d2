#!/usr/bin/env bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# test/vm/run.sh -- CMD ARGS...
#
# Runs CMD ARGS... as root in a QEMU guest under software emulation (TCG,
# -cpu max: an AMD CPU with SVM, so /dev/kvm works in the guest, and debug
# registers that trap), with this machine's root file system visible at the
# same paths under a writable tmpfs overlay, from the current directory and
# with the current environment. Its standard output and error arrive on this
# script's as it runs; the script exits with its status (125 if the VM
# failed before the command could report one).
#
# This lets every hit path be tested on machines whose CPU or hypervisor
# raises no debug-register traps for the host kernel (PVM guests), and
# gVisor's KVM platform run where the host has no usable /dev/kvm. The guest
# runs its own kernel (Debian's), so a differential test run entirely inside
# the guest compares the sandbox with that kernel.
#
# Environment: HWBP_VM_TIMEOUT (seconds, default 3600), HWBP_VM_MEM (default
# 6G), HWBP_VM_CACHE and HWBP_VM_KERNEL (another Debian kernel than the
# default one, by version; see setup.sh).
set -euo pipefail

if [ "${1:-}" != "--" ] || [ $# -lt 2 ]; then
	echo "usage: $0 -- CMD [ARGS...]" >&2
	exit 2
fi
shift

here=$(cd "$(dirname "$0")" && pwd)
kdir=$("$here/setup.sh")

job=$(mktemp -d /tmp/hwbp-vm.XXXXXX)
qemu_pid=
cleanup() {
	[ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
	rm -rf "$job"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '%s\0' "$@" >"$job/cmd"
pwd >"$job/cwd"
env -0 >"$job/env"
cp "$here/guest.sh" "$job/guest.sh"
: >"$job/stdout"
: >"$job/stderr"

# -cpu max,-la57: four-level paging, as on the hosts whose transcripts the
# tests were written against (five-level paging moves the user address
# limit).
timeout --foreground "${HWBP_VM_TIMEOUT:-3600}" qemu-system-x86_64 \
	-accel tcg,thread=multi -cpu max,-la57 -smp "$(nproc)" -m "${HWBP_VM_MEM:-6G}" \
	-machine q35 -display none -monitor none -no-reboot \
	-serial "file:$job/console" \
	-kernel "$kdir/vmlinuz" -initrd "$kdir/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet" \
	-virtfs local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap \
	-virtfs "local,path=$job,mount_tag=out,security_model=none" \
	-nic none &
qemu_pid=$!
tail -q -n +1 -f --pid="$qemu_pid" "$job/stdout" &
out_pid=$!
tail -q -n +1 -f --pid="$qemu_pid" "$job/stderr" >&2 &
err_pid=$!
qemu_status=0
wait "$qemu_pid" || qemu_status=$?
qemu_pid=
wait "$out_pid" "$err_pid" || true

if [ -s "$job/status" ]; then
	exit "$(cat "$job/status")"
fi
echo "vm: the guest reported no exit status (QEMU exited with $qemu_status); its console:" >&2
# A guest kernel's report (oops, BUG, panic) starts well before its last 40
# lines: print from the first one, at most 200 lines, else the tail.
first=$(grep -n -m1 -E 'cut here|BUG:|Oops|Kernel panic|WARNING:|rcu_.*stall' "$job/console" | cut -d: -f1 || true)
if [ -n "$first" ]; then
	tail -n "+$((first > 20 ? first - 20 : 1))" "$job/console" | head -n 200 >&2
else
	tail -n 40 "$job/console" >&2
fi
exit 125
