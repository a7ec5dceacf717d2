#!/usr/bin/env bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# test/vm/queued.sh QUEUE
#
# Runs inside the test VM (run.sh) the tests that skipped on this host
# because its kernel delivers no hardware watchpoint hits or because they
# need gVisor's KVM platform: sandbox's RequireHostHits and RequireKVM wrote
# their names to QUEUE/<package path with "/" as "."> (HWBP_VM_QUEUE). Their
# test binaries are built here on the host; in the guest they run with the
# runsc built on the host (HWBP_RUNSC) and with HWBP_EMULATED set (guest.sh),
# under which a guest that delivered no hits fails them rather than skipping
# them. Exits 0 at once when nothing is queued.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
queue=$(cd "$1" && pwd)

shopt -s nullglob
files=()
for f in "$queue"/test.*; do
	# Only the queue files: a previous run's test binaries sit beside them.
	[[ $f == *.test ]] || files+=("$f")
done
if [ ${#files[@]} -eq 0 ]; then
	exit 0
fi

# patterns prints the go test -run patterns that together select exactly
# the tests named in the queue file $1, one per run of its test binary: a
# pattern for the subtests of one top-level test would filter out those of
# another, and one for subtests two levels down selects every combination
# of its second and third elements, so those are grouped by their last
# element (the platform, in the suites' naming). Deeper names run one by
# one.
patterns() {
	awk -F/ '
	function q(s) { gsub(/[][\\.*^$+?(){}|]/, "\\\\&", s); return s }
	{ name[$0] = 1; top[$1] = 1 }
	END {
		for (t in top) {
			if (t in name) {
				print "^" q(t) "$"
				continue
			}
			two = ""
			split("", mids)
			for (n in name) {
				k = split(n, e, "/")
				if (e[1] != t)
					continue
				if (k == 2) {
					two = two (two == "" ? "" : "|") q(e[2])
				} else if (k == 3) {
					mids[e[3]] = mids[e[3]] (mids[e[3]] == "" ? "" : "|") q(e[2])
				} else {
					p = "^" q(e[1]) "$"
					for (i = 2; i <= k; i++)
						p = p "/^" q(e[i]) "$"
					print p
				}
			}
			if (two != "")
				print "^" q(t) "$/^(" two ")$"
			for (l in mids)
				print "^" q(t) "$/^(" mids[l] ")$/^" q(l) "$"
		}
	}' "$1" | sort
}

# The guest runs the tests in order from the one numbered by its first
# argument and reports each one's end on its standard output as
# "hwbp-vm: test N status S", so that the host can tell how far a guest got
# that died. After a test that failed it prints what the guest's kernel
# logged while the test ran (a sandbox process killed by the kernel, a
# segfault line, kvm's complaints: the evidence that a sandbox ending
# without a word leaves nowhere else) and the guest's free memory (its
# writes live in a tmpfs overlay, in its RAM).
script=$queue/run-in-vm.sh
n=0
{
	echo 'set -u'
	echo 'from=$1'
	echo 'failed=0'
	for f in "${files[@]}"; do
		pkg=$(basename "$f" | tr . /)
		bin=$queue/$(basename "$f").test
		go test -c -o "$bin" "./$pkg"
		while read -r pattern; do
			n=$((n + 1))
			printf 'if [ %d -ge "$from" ]; then\n' "$n"
			printf '\techo "=== VM: %s -run %q"\n' "$pkg" "$pattern"
			printf '\tdmesg -C\n'
			printf '\t(cd %q && %q -test.count=1 -test.timeout=60m -test.v -test.run %q); s=$?\n' "$root/$pkg" "$bin" "$pattern"
			printf '\techo "hwbp-vm: test %d status $s"\n' "$n"
			printf '\tif [ $s -ne 0 ]; then\n'
			printf '\t\tfailed=1\n'
			printf '\t\techo "--- the guest kernel'"'"'s log during the test:"\n'
			printf '\t\tdmesg | tail -n 80\n'
			printf '\t\tgrep -E "^(MemTotal|MemAvailable|Shmem):" /proc/meminfo\n'
			printf '\tfi\n'
			echo 'fi'
		done < <(patterns "$f")
	done
	echo 'exit $failed'
} >"$script"

echo "vm: running in a QEMU guest the tests this machine cannot run (hardware watchpoint hits, gVisor's KVM platform):"
cat "${files[@]}" | sed 's/^/  /'

# A guest whose kernel dies (run.sh exits 125 with no status from the
# guest; Debian's 6.1 guest kernel sometimes finds a corrupted task stack
# end in the scheduler in a sentry thread on kvm, nested SVM under TCG, see
# test/e2e/lifecycle_test.go) takes with it the
# tests after the one it was running. Those run again in a new guest, from
# the interrupted one; a test that is interrupted twice fails the pass.
log=$queue/vm-output
from=1
failed=0
interrupted=
while :; do
	status=0
	HWBP_RUNSC=$root/bin/runsc HWBP_VM_QUEUE= \
		"$root/test/vm/run.sh" -- bash "$script" "$from" | tee "$log" || status=${PIPESTATUS[0]}
	if grep -qE '^hwbp-vm: test [0-9]+ status [1-9]' "$log"; then
		failed=1
	fi
	last=$(sed -nE 's/^hwbp-vm: test ([0-9]+) status [0-9]+$/\1/p' "$log" | tail -n 1)
	next=$((${last:-$((from - 1))} + 1))
	if [ "$status" -ne 125 ] || [ "$next" -gt "$n" ]; then
		[ "$status" -eq 0 ] || [ "$status" -eq 125 ] || failed=1
		break
	fi
	if [ "$next" = "$interrupted" ]; then
		echo "vm: the guest died twice while running test $next of $n; the tests from there on did not run" >&2
		failed=1
		break
	fi
	echo "vm: the guest died while running test $next of $n (its report is above); running the tests from there on in a new guest" >&2
	interrupted=$next
	from=$next
done
exit $failed
