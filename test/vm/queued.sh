#!/usr/bin/env bash
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

# quote escapes a test name for one level of go test's -run.
quote() { sed 's/[][\\.*^$+?(){}|]/\\&/g' <<<"$1"; }

script=$queue/run-in-vm.sh
{
	echo 'set -u'
	echo 'failed=0'
	for f in "${files[@]}"; do
		pkg=$(basename "$f" | tr . /)
		bin=$queue/$(basename "$f").test
		go test -c -o "$bin" "./$pkg"
		# One run per top-level test: a pattern for the subtests of one
		# would filter out those of another.
		for top in $(cut -d/ -f1 "$f" | sort -u); do
			if grep -qx "$top" "$f"; then
				pattern="^$(quote "$top")\$"
			else
				subs=$(grep "^$top/" "$f" | cut -d/ -f2- | sort -u | while read -r s; do quote "$s"; done | paste -sd'|')
				pattern="^$(quote "$top")\$/^($subs)\$"
			fi
			printf 'echo "=== VM: %s -run %q"\n' "$pkg" "$pattern"
			printf '(cd %q && %q -test.count=1 -test.timeout=60m -test.v -test.run %q) || failed=1\n' "$root/$pkg" "$bin" "$pattern"
		done
	done
	echo 'exit $failed'
} >"$script"

echo "vm: running in a QEMU guest the tests this machine cannot run (hardware watchpoint hits, gVisor's KVM platform):"
cat "${files[@]}" | sed 's/^/  /'
HWBP_RUNSC=$root/bin/runsc HWBP_VM_QUEUE= \
	"$root/test/vm/run.sh" -- bash "$script"
