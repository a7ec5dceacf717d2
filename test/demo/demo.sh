#!/usr/bin/env bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# make demo: gdb sets a hardware watchpoint on a global inside a gVisor
# sandbox booted by this repository's runsc, next to the same session on the
# host kernel, and says plainly whether the watchpoint stopped the program.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runsc="$root/bin/runsc"
hostbp="$root/bin/hostbp"
platform=${PLATFORM:-systrap}

for tool in gcc gdb; do
	command -v "$tool" >/dev/null || { echo "demo: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
if [ "$(id -u)" != 0 ]; then
	echo "demo: runsc do needs root to create the sandbox; run make demo as root" >&2
	exit 1
fi
[ -x "$runsc" ] || { echo "demo: $runsc is missing; run make runsc" >&2; exit 1; }
[ -x "$hostbp" ] || { echo "demo: $hostbp is missing; run make bin/hostbp" >&2; exit 1; }

if [ -z "${HWBP_EMULATED:-}" ] && [ "$platform" = kvm ]; then
	# gVisor's KVM platform needs a /dev/kvm whose guests can run its ring
	# 0, which these machines lack (PVM guests); the test VM's has one.
	echo "demo: --platform=kvm runs inside a QEMU guest with nested virtualization"
	echo "      (test/vm/run.sh; the first run installs QEMU and a Debian kernel)."
	echo
	exec "$root/test/vm/run.sh" -- "$0"
fi

host_hits=yes
hostbp_says=$("$hostbp" 2>&1) || host_hits=no
echo "$hostbp_says"
echo
if [ "$host_hits" = no ] && [ -z "${HWBP_EMULATED:-}" ]; then
	# hwbp arms the host's debug registers, so on this machine nothing
	# would stop; a CPU emulated by QEMU raises the traps.
	echo "demo: this machine's CPU or hypervisor raises no debug-register traps, so the"
	echo "      demo runs inside a QEMU guest whose emulated CPU does (test/vm/run.sh;"
	echo "      the first run installs QEMU and a Debian kernel)."
	echo
	exec "$root/test/vm/run.sh" -- "$0"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -g -O0 -o "$work/counter" "$here/counter.c"

# gdb -batch exits 1 when its last command fails ("The program is not being
# run." once the inferior has exited), so its status says nothing here; the
# transcript does.
gdb_session() {
	{ "$@" gdb -nx -batch \
		-ex 'watch counter' \
		-ex 'run' \
		-ex 'continue' \
		"$work/counter" </dev/null 2>&1 || true; } |
		grep -v -e '^\[Thread debugging' -e '^Using host libthread_db' -e 'address space randomization'
}

echo "== gdb on the host kernel"
gdb_session env | tee "$work/host.txt"
echo
echo "== gdb inside runsc --platform=$platform"
gdb_session "$runsc" --network=none --platform="$platform" do | tee "$work/sandbox.txt"
echo

if grep -q '^New value = 10$' "$work/sandbox.txt"; then
	echo "RESULT: the hardware watchpoint stopped the program inside the sandbox."
elif [ "$host_hits" = no ]; then
	echo "RESULT: the watchpoint stopped neither session: this ${HWBP_EMULATED:+emulated }CPU raises no"
	echo "        debug-register traps, not even for the kernel it runs (see the"
	echo "        hostbp line above), and hwbp arms those debug registers."
	exit 1
else
	echo "RESULT: the hardware watchpoint did NOT stop the program inside the sandbox"
	echo "        although it stopped it on the host kernel: that is a bug in hwbp."
	exit 1
fi
