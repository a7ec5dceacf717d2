#!/usr/bin/env bash
# make bench: hwbp's end-to-end benchmarks. Every number is a ratio against
# a baseline measured in the same run (host kernel, stock runsc of the same
# gVisor version, or the same program without a breakpoint); absolute times
# on this kind of machine vary too much to mean anything.
#
# PLATFORMS (default "systrap ptrace") are the platforms whose hits are
# measured; the no-breakpoint overhead is measured on both. RUNS (default 21)
# is the number of runs of the no-breakpoint workload per runsc and platform.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runsc="$root/bin/runsc"
hostbp="$root/bin/hostbp"
platforms=${PLATFORMS:-systrap ptrace}
runs=${RUNS:-21}

[ "$(id -u)" = 0 ] || { echo "bench: runsc do needs root" >&2; exit 1; }
[ -x "$runsc" ] || { echo "bench: $runsc is missing; run make runsc" >&2; exit 1; }
[ -x "$hostbp" ] || { echo "bench: $hostbp is missing; run make bin/hostbp" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stock="$work/stockrunsc"
(cd "$root" && CGO_ENABLED=0 go build -o "$stock" ./test/bench/stockrunsc)
for p in roundtrip singlestep hammer workload loop mechanisms; do
	gcc -O1 -g -o "$work/$p" "$here/progs/$p.c" -lpthread
done

# Sections 1, 2, 4 and 5 time hardware breakpoint hits, which need a host
# kernel that delivers them (test/hostcheck/hostbp.c); where it does not,
# they are skipped with the reason and the run ends with a failure status.
hits=yes
"$hostbp" >"$work/hostbp.txt" 2>&1 || hits=no
needs_hits() {
	[ "$hits" = yes ] && return 0
	echo "skipped: $(cat "$work/hostbp.txt")"
	return 1
}

sandbox() { # sandbox RUNSC PLATFORM CMD...: run CMD in a fresh sandbox
	local r=$1 p=$2
	shift 2
	"$r" --network=none --platform="$p" do "$@" </dev/null
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
now() { date +%s.%N; }
elapsed() { # elapsed CMD...: wall seconds of CMD, its output discarded
	local a
	a=$(now)
	"$@" >/dev/null 2>&1 || true
	awk -v a="$a" -v b="$(now)" 'BEGIN {printf "%.3f\n", b - a}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f\n", a / b}'; }
verdict() { # verdict RATIO LIMIT
	if awk -v r="$1" -v l="$2" 'BEGIN {exit !(r <= l)}'; then echo "met (<= $2)"; else echo "NOT MET (> $2)"; fi
}

echo "== 1. watchpoint hit round trip (PTRACE_CONT -> SIGTRAP -> waitpid), ns per hit, median of 9, host and sandbox interleaved"
if needs_hits; then
	for platform in $platforms; do
		: >"$work/rt.host"
		: >"$work/rt.sb"
		: >"$work/ss.host"
		: >"$work/ss.sb"
		for i in $(seq 9); do
			"$work/roundtrip" 2000 >>"$work/rt.host"
			sandbox "$runsc" "$platform" "$work/roundtrip" 2000 >>"$work/rt.sb"
			"$work/singlestep" 2000 >>"$work/ss.host"
			sandbox "$stock" "$platform" "$work/singlestep" 2000 >>"$work/ss.sb"
		done
		host=$(median <"$work/rt.host")
		sb=$(median <"$work/rt.sb")
		r1=$(ratio "$sb" "$host")
		echo "--platform=$platform: host kernel $host ns, runsc $sb ns: ratio $r1, target $(verdict "$r1" 2)"
		# The floor: what any trap round trip costs in stock gVisor, whatever
		# caused the trap. A hit cannot be cheaper than that.
		hstep=$(median <"$work/ss.host")
		sstep=$(median <"$work/ss.sb")
		echo "    reference: PTRACE_SINGLESTEP round trip, host $hstep ns, stock runsc $sstep ns: ratio $(ratio "$sstep" "$hstep");"
		echo "    a hit in the sandbox costs $(ratio "$sb" "$sstep")x a single-step of stock gVisor"
	done
fi

echo
echo "== 2. gdb, watchpoint on a word that shares its page with a hammered array, median of 3"
if needs_hits; then
	n=3000000000
	for platform in $platforms; do
		with=$(for i in 1 2 3; do elapsed sandbox "$runsc" "$platform" gdb -nx -batch -ex 'watch page.watched' -ex run -ex continue --args "$work/hammer" $n; done | median)
		without=$(for i in 1 2 3; do elapsed sandbox "$runsc" "$platform" gdb -nx -batch -ex run --args "$work/hammer" $n; done | median)
		r2=$(ratio "$with" "$without")
		echo "--platform=$platform: with the watchpoint ${with}s, without ${without}s: ratio $r2, target $(verdict "$r2" 1.10)"
	done
fi

echo
echo "== 3. no breakpoint: syscalls, page faults, threads; plugin runsc vs stock runsc, median ms of $runs runs each, interleaved"
# Rounds per run, so that one run lasts about a second or more on either
# platform: shorter runs are dominated by this VM's noise.
declare -A rounds=([ptrace]=1 [systrap]=6)
for p in ptrace systrap; do
	: >"$work/plugin.$p"
	: >"$work/stock.$p"
	for i in $(seq "$runs"); do
		sandbox "$runsc" "$p" "$work/workload" "${rounds[$p]}" >>"$work/plugin.$p"
		sandbox "$stock" "$p" "$work/workload" "${rounds[$p]}" >>"$work/stock.$p"
	done
	a=$(median <"$work/plugin.$p")
	b=$(median <"$work/stock.$p")
	r3=$(ratio "$a" "$b")
	echo "--platform=$p: plugin ${a} ms, stock ${b} ms: ratio $r3, target $(verdict "$r3" 1.02)"
done

echo
echo "== 4. gdb watch over a loop: hardware watchpoint (plugin runsc) vs software watchpoint (stock runsc)"
if needs_hits; then
	hw_iters=20000
	long_iters=6000000000
	sw_iters=${SW_ITERS:-500}
	session() { # session RUNSC [gdb commands...] -- ITERATIONS: wall time of a gdb watch session
		local r=$1 n=${@: -1}
		shift
		elapsed sandbox "$r" "$platform" gdb -nx -batch "${@:1:$#-1}" -ex 'break main' -ex run -ex 'watch target' -ex continue -ex continue --args "$work/loop" "$n"
	}
	for platform in $platforms; do
		echo "--platform=$platform:"
		hw=$(session "$runsc" $hw_iters)
		hw_long=$(session "$runsc" $long_iters)
		sw=$(session "$stock" -ex 'set can-use-hw-watchpoints 0' $sw_iters)
		echo "hardware: $hw_iters iterations ${hw}s, $long_iters iterations ${hw_long}s; software: $sw_iters iterations ${sw}s"
		awk -v hw="$hw" -v hl="$hw_long" -v sw="$sw" -v hi=$hw_iters -v li=$long_iters -v si="$sw_iters" 'BEGIN {
			sw_per = (sw - hw) / si        # the short hardware session stands for gdb start-up
			hw_per = (hl - hw) / (li - hi)
			printf "whole session over %d iterations: %.0fx (software time extrapolated from %d iterations)\n", hi, (hw + sw_per * hi) / hw, si
			if (hw_per > 0) printf "per iteration, start-up subtracted: %.3g s software vs %.3g s hardware: %.3gx\n", sw_per, hw_per, sw_per / hw_per
		}'
	done
fi

echo
echo "== 5. how a systrap stub thread could be armed, host kernel, us per operation, median of 5 (see progs/mechanisms.c)"
if needs_hits; then
	for i in 1 2 3 4 5; do "$work/mechanisms"; done >"$work/mech"
	for k in perf-open perf-modify perf-hit step-signal ptrace-arm page-protect; do
		printf '%-13s %s\n' "$k" "$(awk -v k="$k" '$1 == k {print $2}' "$work/mech" | median)"
	done
fi

if [ "$hits" = no ]; then
	echo
	echo "bench: the hit benchmarks were skipped: this host delivers no debug-register traps" >&2
	exit 1
fi
