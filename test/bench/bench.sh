#!/usr/bin/env bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# make bench: hwbp's end-to-end benchmarks. Every number is a ratio against
# a baseline measured in the same run (host kernel, stock runsc of the same
# gVisor version, or the same program without a breakpoint); absolute times
# on this kind of machine vary too much to mean anything.
#
# usage: bench.sh [SECTION...]   (default: all; a SECTION is its number or name)
#
#   1 roundtrip   watchpoint hit round trip, pinned to one CPU: against the
#                 host kernel and against stock runsc's single-step     (hits)
#   2 hammer      gdb, watchpoint on a word that shares its page with a
#                 hammered array, against no watchpoint                 (hits)
#   3 overhead    no breakpoint: workload in the plugin vs stock runsc
#   4 gdbwatch    gdb watch over a loop: hardware (plugin) vs software
#                 watchpoint (stock runsc)                              (hits)
#   5 mechanisms  how a systrap stub thread could be armed, host kernel (hits)
#   6 bystander   workload next to a process with an armed, never-hit
#                 watchpoint, against the same with nothing armed
#   7 syscalls    hwbp's per-system-call hook: getppid loop, plugin vs
#                 stock runsc, pinned to one CPU
#   8 perfstat    perf stat -e mem:ADDR:wu over a loop of writes, and perf
#                 record -c 1 (a sample per hit), sandbox vs the kernel (hits)
#   9 calls       host syscalls per hit and host perf opens per context
#                 switch, counted by the sandbox's metrics: proxies of the
#                 hit path's and the context switch's host cost that do
#                 not depend on timing                                  (hits)
#  10 watch       runsc watch from the host: a workload in a process whose
#                 untouched word is watched vs unwatched; the cost of a
#                 watched write against stock runsc's single-step round
#                 trip, the rate the watch sustains, hits lost      (hits)
#
# The sections marked (hits) need a host kernel that delivers debug-register
# traps (test/hostcheck/hostbp.c). Where it does not, this script runs them
# in the test VM (test/vm/run.sh: QEMU, software emulation), whose emulated
# CPU delivers them, and labels their figures so: only ratios are printed
# there, since times under emulation say nothing about a real CPU.
#
# Exit status: 0 when every section asked for was measured (whatever its
# verdicts: benchmarks only report); 3 when one could not be measured on
# this machine (under emulation: section 2), 1 when the hit sections could
# not be run at all (nor in the test VM) or something else failed; the
# reason is printed.
#
# Environment:
#   PLATFORMS  platforms to measure (default "systrap ptrace"); with kvm
#              among them, every section runs in the test VM
#   RUNS       runs per configuration in sections 3, 6 and 7 (default 21)
#   RT_RUNS    runs per configuration in section 1 (default 9)
#   PERF_RUNS  runs per configuration in section 8 (default 5)
#   HWBP_BENCH_KEEP    directory to keep every run's figures in (one file
#                      per configuration, one line per run; not for the
#                      sections run in the test VM)
#   HWBP_BENCH_VM=no   do not use the test VM for the hit sections
#   HWBP_BENCH_BIN     directory of the already built programs and stock
#                      runsc (set for the pass in the test VM, which builds
#                      nothing)
#   HWBP_EMULATED      set by the test VM (test/vm/guest.sh)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runsc="$root/bin/runsc"
hostbp="$root/bin/hostbp"
platforms=${PLATFORMS:-systrap ptrace}
runs=${RUNS:-21}
rt_runs=${RT_RUNS:-9}
perf_runs=${PERF_RUNS:-5}
emulated=${HWBP_EMULATED:-}

all_sections=(roundtrip hammer overhead gdbwatch mechanisms bystander syscalls perfstat calls watch)
hit_sections=" roundtrip hammer gdbwatch mechanisms perfstat calls watch "
sections=()
for a in "$@"; do
	case $a in
	[1-9] | 10) sections+=("${all_sections[$((a - 1))]}") ;;
	*)
		[[ " ${all_sections[*]} " == *" $a "* ]] || { echo "bench: unknown section $a (${all_sections[*]})" >&2; exit 2; }
		sections+=("$a")
		;;
	esac
done
[ ${#sections[@]} -gt 0 ] || sections=("${all_sections[@]}")
number() { # number SECTION: its number
	local i
	for i in "${!all_sections[@]}"; do
		[ "${all_sections[$i]}" != "$1" ] || echo $((i + 1))
	done
}

[ "$(id -u)" = 0 ] || { echo "bench: runsc do needs root" >&2; exit 1; }
[ -x "$runsc" ] || { echo "bench: $runsc is missing; run make runsc" >&2; exit 1; }
[ -x "$hostbp" ] || { echo "bench: $hostbp is missing; run make bin/hostbp" >&2; exit 1; }

work=$(mktemp -d)
keep() {
	if [ -n "${HWBP_BENCH_KEEP:-}" ]; then
		mkdir -p "$HWBP_BENCH_KEEP"
		find "$work" -maxdepth 1 -type f -exec cp {} "$HWBP_BENCH_KEEP/" \;
	fi
	rm -rf "$work"
}
trap keep EXIT
progs="roundtrip singlestep hammer workload loop mechanisms bystander syscalls calls watched"
if [ -n "${HWBP_BENCH_BIN:-}" ]; then
	bin=$HWBP_BENCH_BIN
else
	bin=$work/bin
	mkdir "$bin"
	(cd "$root" && CGO_ENABLED=0 go build -o "$bin/stockrunsc" ./test/bench/stockrunsc)
	for p in $progs; do
		gcc -O1 -g -I "$root/test/include" -o "$bin/$p" "$here/progs/$p.c" -lpthread
	done
	# Section 8's loop of writes is test/perf's (without PIE: the word's
	# address is the same in every run, in or out of a sandbox).
	gcc -O1 -g -no-pie -o "$bin/writes" "$root/test/perf/testdata/loop.c"
fi
stock="$bin/stockrunsc"

hits=yes
"$hostbp" >"$work/hostbp.txt" 2>&1 || hits=no
# gVisor's KVM platform runs only in the test VM: with kvm among the
# platforms, every section runs there.
vm_only=no
if [ -z "$emulated" ] && [[ " $platforms " == *" kvm "* ]]; then
	vm_only=yes
	echo "gVisor's KVM platform runs in the test VM (test/vm), not on this machine" >"$work/hostbp.txt"
fi

sandbox() { # sandbox RUNSC PLATFORM CMD...: run CMD in a fresh sandbox
	local r=$1 p=$2
	shift 2
	"$r" --network=none --platform="$p" do "$@" </dev/null
}
pinned() { # pinned CMD...: CMD, and every process it starts, on CPU 0 only
	taskset -c 0 "$@"
}
pinned_sandbox() { # pinned_sandbox RUNSC PLATFORM CMD...: sandbox, with runsc and all it starts on CPU 0
	local r=$1 p=$2
	shift 2
	taskset -c 0 "$r" --network=none --platform="$p" do "$@" </dev/null
}
median() { sort -g | awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
now() { date +%s.%N; }
elapsed() { # elapsed CMD...: wall seconds of CMD, its output discarded
	local a
	a=$(now)
	"$@" >/dev/null 2>&1 || true
	awk -v a="$a" -v b="$(now)" 'BEGIN {printf "%.3f\n", b - a}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a !~ /^[0-9.e+-]+$/ || b !~ /^[0-9.e+-]+$/ || b + 0 == 0) print "n/a"; else printf "%.3f\n", a / b}'; }
verdict() { # verdict RATIO LIMIT
	if [ "$1" = n/a ]; then echo "not measured"; return; fi
	if awk -v r="$1" -v l="$2" 'BEGIN {exit !(r <= l)}'; then echo "met (<= $2)"; else echo "NOT MET (> $2)"; fi
}
sample() { # sample FILE CMD...: append CMD's output (one number) to FILE; a failed run is reported and left out
	local f=$1 out
	shift
	if out=$("$@" 2>"$work/err") && [[ $out =~ ^[0-9.]+$ ]]; then
		echo "$out" >>"$f"
	else
		echo "    (a run failed and is left out: $* : $(tail -n 3 "$work/err" | tr '\n' ' ')$out)" >&2
	fi
}
# spread FILE_A FILE_B: the range of the ratios of the runs of A and B made
# side by side (run i of each), if no run failed.
spread() {
	[ "$(wc -l <"$1")" = "$(wc -l <"$2")" ] || return 0
	paste "$1" "$2" | awk '{r = $1 / $2; if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r} END {if (NR) printf " (run by run %.2f to %.2f)", lo, hi}'
}
# compare A B UNIT: "A UNIT vs B UNIT: ratio R"; under emulation, where
# times mean nothing, only "ratio R".
compare() {
	if [ -n "$emulated" ]; then
		echo "ratio $(ratio "$1" "$2")"
	else
		echo "$1 $3 vs $2 $3: ratio $(ratio "$1" "$2")"
	fi
}
# kernel is what the programs run on outside the sandbox.
kernel="host kernel"
[ -z "$emulated" ] || kernel="test VM's kernel"
header() { # header SECTION TEXT
	local h="== $(number "$1"). $2"
	[ -z "$emulated" ] || h="$h [QEMU TCG emulation: ratios only]"
	echo
	echo "$h"
}
load() { echo "(load average${emulated:+ in the test VM} at start: $(cut -d' ' -f1-3 /proc/loadavg))"; }
warm() { # warm PLATFORM RUNSC...: one discarded run of each, so that no measured run loads runsc cold
	local p=$1 r
	shift
	for r in "$@"; do
		sandbox "$r" "$p" /bin/true >/dev/null 2>&1 || true
	done
}

section_roundtrip() {
	# Everything that takes part in a round trip (tracer, tracee, and for a
	# sandbox its sentry, stub processes and gofer) runs on CPU 0: unpinned,
	# the host's own figure is bimodal on 2-CPU VMs, depending on whether
	# tracer and tracee share a CPU. Under emulation a trap costs about a
	# millisecond, so fewer round trips per run.
	local n=2000 platform
	[ -z "$emulated" ] || n=300
	header roundtrip "watchpoint hit round trip (PTRACE_CONT -> SIGTRAP -> waitpid), pinned to CPU 0 (taskset -c 0 around the host program and around runsc do), median ns per round trip of $rt_runs interleaved runs of $n"
	load
	for platform in $platforms; do
		: >"$work/hit.host"
		: >"$work/hit.plugin"
		: >"$work/step.host"
		: >"$work/step.stock"
		: >"$work/step.plugin"
		warm "$platform" "$runsc" "$stock"
		for i in $(seq "$rt_runs"); do
			sample "$work/hit.host" pinned "$bin/roundtrip" $n
			sample "$work/hit.plugin" pinned_sandbox "$runsc" "$platform" "$bin/roundtrip" $n
			sample "$work/step.stock" pinned_sandbox "$stock" "$platform" "$bin/singlestep" $n
			sample "$work/step.host" pinned "$bin/singlestep" $n
			sample "$work/step.plugin" pinned_sandbox "$runsc" "$platform" "$bin/singlestep" $n
		done
		local hh hp sh ss sp
		hh=$(median <"$work/hit.host")
		hp=$(median <"$work/hit.plugin")
		sh=$(median <"$work/step.host")
		ss=$(median <"$work/step.stock")
		sp=$(median <"$work/step.plugin")
		echo "--platform=$platform:"
		echo "    (a) hit, plugin runsc vs $kernel: $(compare "$hp" "$hh" ns)"
		echo "    (b) hit, plugin runsc vs stock runsc's single-step round trip (PTRACE_SINGLESTEP -> SIGTRAP -> waitpid,"
		echo "        gVisor's cheapest trap): $(compare "$hp" "$ss" ns)$(spread "$work/hit.plugin" "$work/step.stock"), target $(verdict "$(ratio "$hp" "$ss")" 1.15)"
		echo "    reference, single-step round trip: stock runsc vs $kernel (gVisor's trap floor) $(compare "$ss" "$sh" ns);"
		echo "        plugin vs stock runsc $(compare "$sp" "$ss" ns); hit vs single-step, both in the plugin runsc: ratio $(ratio "$hp" "$sp")"
		# (b) also holds what the kernel underneath charges for a hit
		# beyond a single-step (its debug exception and perf paths):
		# little on a real CPU, most of (b) under QEMU's emulation,
		# where a watchpoint hit takes TCG's slow memory path. (c)
		# divides it out: what the sandbox adds to that difference.
		echo "    (c) the sandbox's own share of (b): (b) divided by $kernel's hit vs single-step round trip (ratio $(ratio "$hh" "$sh")): ratio $(ratio "$(ratio "$hp" "$ss")" "$(ratio "$hh" "$sh")")"
	done
}

section_hammer() {
	header hammer "gdb, watchpoint on a word that shares its page with a hammered array, median of 3"
	if [ -n "$emulated" ]; then
		# Measured in the test VM (2026-11-26): the guest's own kernel runs
		# hammer 2x slower under gdb with the watchpoint than without.
		echo "not measured under emulation: QEMU's TCG sends every access to a page that holds a watchpoint through its"
		echo "slow memory path, so the guest kernel itself runs this program about 2x slower with the watchpoint, and the"
		echo "ratio would measure QEMU, not hwbp. On a machine whose host delivers hits (make hostcheck):"
		echo "    make bench, or ./test/bench/bench.sh hammer after make runsc bin/hostbp"
		unmeasured+=" hammer"
		return
	fi
	load
	local n=3000000000 platform
	for platform in $platforms; do
		with=$(for i in 1 2 3; do elapsed sandbox "$runsc" "$platform" gdb -nx -batch -ex 'watch page.watched' -ex run -ex continue --args "$bin/hammer" $n; done | median)
		without=$(for i in 1 2 3; do elapsed sandbox "$runsc" "$platform" gdb -nx -batch -ex run --args "$bin/hammer" $n; done | median)
		r2=$(ratio "$with" "$without")
		echo "--platform=$platform: with the watchpoint ${with}s, without ${without}s: ratio $r2, target $(verdict "$r2" 1.10)"
	done
}

# Rounds of the workload per run, so that one run lasts about a second or
# more on any platform: shorter runs are dominated by this VM's noise (kvm
# runs only in the test VM, under emulation).
declare -A rounds=([ptrace]=1 [systrap]=6 [kvm]=1)

section_overhead() {
	header overhead "no breakpoint: syscalls, page faults, threads; plugin runsc vs stock runsc, median ms of $runs runs each, interleaved"
	load
	local p
	for p in $platforms; do
		: >"$work/plugin.$p"
		: >"$work/stock.$p"
		warm "$p" "$runsc" "$stock"
		for i in $(seq "$runs"); do
			sample "$work/plugin.$p" sandbox "$runsc" "$p" "$bin/workload" "${rounds[$p]}"
			sample "$work/stock.$p" sandbox "$stock" "$p" "$bin/workload" "${rounds[$p]}"
		done
		a=$(median <"$work/plugin.$p")
		b=$(median <"$work/stock.$p")
		r3=$(ratio "$a" "$b")
		echo "--platform=$p: plugin vs stock $(compare "$a" "$b" ms)$(spread "$work/plugin.$p" "$work/stock.$p"), target $(verdict "$r3" 1.02)"
	done
}

section_gdbwatch() {
	# The loop times itself (loop-ns: ns per iteration), so gdb's and the
	# sandbox's start-up do not enter the per-iteration figures; the whole
	# session's figure is the hardware session's wall time against it plus
	# the software watchpoint's extra time per iteration. The watchpoint is
	# deleted once it has fired, so that gdb does not single-step the
	# program's exit in software.
	local hw_iters=20000 long_iters=600000000 sw_iters=${SW_ITERS:-500}
	[ -z "$emulated" ] || { long_iters=100000000; sw_iters=${SW_ITERS:-100}; }
	header gdbwatch "gdb watch over a loop: hardware watchpoint (plugin runsc) vs software watchpoint (stock runsc)"
	load
	session() { # session RUNSC ITERATIONS [gdb commands...]: gdb watch session; prints its wall time and the loop's ns per iteration
		local r=$1 n=$2 a
		shift 2
		a=$(now)
		sandbox "$r" "$platform" gdb -nx -batch "$@" -ex 'break main' -ex run -ex 'watch target' -ex continue -ex delete -ex continue --args "$bin/loop" "$n" >"$work/gdb.out" 2>&1 || true
		awk -v a="$a" -v b="$(now)" '$1 == "loop-ns" {ns = $2} END {printf "%.3f %s\n", b - a, ns}' "$work/gdb.out"
	}
	local platform hw hw_long sw
	for platform in $platforms; do
		hw=$(session "$runsc" $hw_iters)
		hw_long=$(session "$runsc" $long_iters)
		sw=$(session "$stock" $sw_iters -ex 'set can-use-hw-watchpoints 0')
		echo "--platform=$platform:"
		awk -v hw="$hw" -v hl="$hw_long" -v sw="$sw" -v hi=$hw_iters -v li=$long_iters -v si="$sw_iters" -v emu="$emulated" 'BEGIN {
			split(hw, h); split(hl, l); split(sw, s)
			if (l[2] == "" || s[2] == "") { print "    a session failed: no loop time"; exit }
			if (!emu) printf "    hardware: %d iterations, session %.1f s; %d iterations, %.3g ns per iteration; software: %d iterations, %.3g ns per iteration\n", hi, h[1], li, l[2], si, s[2]
			printf "    per iteration: software vs hardware watchpoint %.3gx\n", s[2] / l[2]
			printf "    whole session over %d iterations (bounded by gdb'\''s start-up): %.3gx\n", hi, (h[1] + (s[2] - l[2]) * hi / 1e9) / h[1]
		}'
	done
}

section_mechanisms() {
	header mechanisms "how a systrap stub thread could be armed, $kernel, $([ -n "$emulated" ] && echo "relative to step-signal" || echo "us per operation"), median of 5 (see progs/mechanisms.c)"
	load
	for i in 1 2 3 4 5; do "$bin/mechanisms"; done >"$work/mech"
	local k step
	step=$(awk '$1 == "step-signal" {print $2}' "$work/mech" | median)
	for k in perf-open perf-modify perf-hit step-signal ptrace-arm page-protect; do
		v=$(awk -v k="$k" '$1 == k {print $2}' "$work/mech" | median)
		if [ -n "$emulated" ]; then
			printf '%-13s %sx\n' "$k" "$(ratio "$v" "$step")"
		else
			printf '%-13s %s\n' "$k" "$v"
		fi
	done
}

section_bystander() {
	# bystander.c: a traced process that wakes every millisecond and never
	# touches the word its tracer watches, next to the workload; "armed"
	# pokes the watchpoint into DR0/DR7, "none" leaves it out. Nothing is
	# hit, so this runs where the host delivers no hits too: the breakpoint
	# is armed on the host all the same.
	header bystander "bystander: no-breakpoint workload next to a process with an armed, never-hit watchpoint vs with nothing armed, plugin runsc, median ms of $runs runs each, interleaved"
	load
	local p
	for p in $platforms; do
		: >"$work/armed.$p"
		: >"$work/none.$p"
		warm "$p" "$runsc"
		for i in $(seq "$runs"); do
			sample "$work/armed.$p" sandbox "$runsc" "$p" "$bin/bystander" armed "$bin/workload" "${rounds[$p]}"
			sample "$work/none.$p" sandbox "$runsc" "$p" "$bin/bystander" none "$bin/workload" "${rounds[$p]}"
		done
		a=$(median <"$work/armed.$p")
		b=$(median <"$work/none.$p")
		r6=$(ratio "$a" "$b")
		echo "--platform=$p: armed vs nothing armed $(compare "$a" "$b" ms)$(spread "$work/armed.$p" "$work/none.$p"), target $(verdict "$r6" 1.02)"
	done
}

# getppid calls per run of section 7, so that a pinned run lasts a few
# seconds on this project's VMs, where a system call in the sandbox costs
# 30-40 us on systrap and 40-200 us on ptrace (kvm: in the test VM).
declare -A calls=([ptrace]=30000 [systrap]=100000 [kvm]=20000)

section_syscalls() {
	header syscalls "hwbp's per-system-call hook: getppid loop, no breakpoint, plugin vs stock runsc, pinned to CPU 0, median ns per call of $runs runs each, interleaved"
	load
	local p
	for p in $platforms; do
		: >"$work/sc.plugin.$p"
		: >"$work/sc.stock.$p"
		warm "$p" "$runsc" "$stock"
		for i in $(seq "$runs"); do
			sample "$work/sc.plugin.$p" pinned_sandbox "$runsc" "$p" "$bin/syscalls" "${calls[$p]}"
			sample "$work/sc.stock.$p" pinned_sandbox "$stock" "$p" "$bin/syscalls" "${calls[$p]}"
		done
		a=$(median <"$work/sc.plugin.$p")
		b=$(median <"$work/sc.stock.$p")
		echo "--platform=$p: plugin vs stock $(compare "$a" "$b" ns)$(spread "$work/sc.plugin.$p" "$work/sc.stock.$p")"
	done
}

# hwbp_metrics RUNSC ROOT: hwbp's metrics of the one sandbox whose state is
# in ROOT, a "NAME VALUE" line each (runsc exports a counter once it is not
# zero: a missing one is 0).
hwbp_metrics() {
	local id
	id=$("$1" --root="$2" list --quiet)
	"$1" --root="$2" export-metrics "$id" | awk '/^runsc_hwbp_/ {n = $1; sub(/^runsc_hwbp_/, "", n); sub(/[{].*/, "", n); print n, $2}'
}
# metric_delta FILE_A FILE_B NAME...: the sum of the NAMEs' growth from A to B.
metric_delta() {
	local a=$1 b=$2
	shift 2
	awk -v names=" $* " 'FNR == NR {if (index(names, " " $1 " ")) a += $2; next} index(names, " " $1 " ") {b += $2} END {print b - a}' "$a" "$b"
}

section_calls() {
	# The window of each phase is between two looks at the metrics, while
	# the program waits for a line: the host perf calls of the hits alone,
	# then of the sleeps and wake-ups alone, the events being open already.
	local n=1000 m=1000 p line
	[ -z "$emulated" ] || n=200
	header calls "host perf system calls (/hwbp/host_perf_opens, _closes, _reads, _ioctls) per watchpoint hit ($n hits), and host perf_event_open per context switch of a tracee that sleeps and wakes ($m usleep(100)) with its watchpoint armed and unchanged"
	for p in $platforms; do
		rm -rf "$work/tmp.$p" && mkdir "$work/tmp.$p"
		coproc CALLS { TMPDIR="$work/tmp.$p" "$runsc" --network=none --platform="$p" do "$bin/calls" "$n" "$m" 2>"$work/calls.err"; }
		local out=${CALLS[0]} in=${CALLS[1]} root phase ok=yes
		for phase in armed hits switches; do
			if ! read -r -u "$out" line || [ "$line" != "$phase" ]; then
				echo "--platform=$p: the program said \"$line\", not $phase: $(tail -n 3 "$work/calls.err" | tr '\n' ' ')"
				ok=no
				break
			fi
			root=$(echo "$work/tmp.$p"/runsc-do*)
			hwbp_metrics "$runsc" "$root" >"$work/calls.$phase.$p"
			echo >&"$in"
		done
		exec {in}>&-
		wait "$CALLS_PID" || ok=no
		[ "$ok" = yes ] || continue
		local per_hit per_switch opens
		per_hit=$(awk -v d="$(metric_delta "$work/calls.armed.$p" "$work/calls.hits.$p" host_perf_opens host_perf_closes host_perf_reads host_perf_ioctls)" -v n="$n" 'BEGIN {printf "%.3f", d / n}')
		opens=$(metric_delta "$work/calls.hits.$p" "$work/calls.switches.$p" host_perf_opens)
		per_switch=$(awk -v d="$opens" -v m="$m" 'BEGIN {printf "%.4f", d / m}')
		echo "--platform=$p: host syscalls per hit: $per_hit (perf open, close, read, ioctl); host perf opens per context switch: $per_switch ($opens over $m sleeps and wake-ups)"
	done
}

# Writes per run of section 10's watched loop, by platform: a watched write
# traps on every platform (kvm's under the test VM's emulation takes about a
# millisecond).
declare -A watch_writes=([systrap]=20000 [ptrace]=20000 [kvm]=500)

# watched_run PLATFORM MODE N WATCH SUMMARIES: runs "watched MODE N" in a
# sandbox pinned to CPU 0 and prints the program's elapsed ms. With WATCH
# "watch", runsc watch (not pinned) watches its word from before the
# program starts until it exits, and the watch's summary line is appended
# to SUMMARIES. For MODE writes the program exits only once the watch has
# printed a hit per write (or after a minute), so that none is lost to the
# sandbox's end (docs/watch.md).
watched_run() {
	local p=$1 mode=$2 n=$3 watch=$4 summaries=$5 tmp line ms wpid= root id i
	tmp=$(mktemp -d "$work/watched.XXXXXX")
	coproc WATCHED { TMPDIR="$tmp" taskset -c 0 "$runsc" --network=none --platform="$p" do "$bin/watched" "$mode" "$n" 2>"$tmp/err"; }
	local out=${WATCHED[0]} in=${WATCHED[1]}
	if ! read -r -u "$out" line || [ "$line" != ready ]; then
		echo "watched said \"$line\": $(tail -n 3 "$tmp/err" | tr '\n' ' ')" >&2
		return 1
	fi
	if [ "$watch" = watch ]; then
		root=$(echo "$tmp"/runsc-do*)
		id=$("$runsc" --root="$root" list --quiet)
		"$runsc" --root="$root" watch --format=json "$id" word >"$tmp/hits" 2>"$tmp/watch.err" &
		wpid=$!
		until grep -q '^watching ' "$tmp/watch.err"; do
			kill -0 "$wpid" 2>/dev/null || { echo "runsc watch: $(cat "$tmp/watch.err")" >&2; return 1; }
			sleep 0.01
		done
	fi
	echo >&"$in"
	read -r -u "$out" ms
	if [ -n "$wpid" ] && [ "$mode" = writes ]; then
		for i in $(seq 6000); do
			[ "$(wc -l <"$tmp/hits")" -lt "$n" ] || break
			sleep 0.01
		done
	fi
	exec {in}>&-
	wait "$WATCHED_PID"
	if [ -n "$wpid" ]; then
		wait "$wpid"
		tail -n 1 "$tmp/watch.err" >>"$summaries"
	fi
	rm -rf "$tmp"
	echo "$ms"
}

section_watch() {
	header watch "runsc watch from the host: workload with an untouched word watched vs unwatched, medians of $runs interleaved runs; writes of the watched word, watched vs unwatched, and stock runsc's single-step round trip, medians of $rt_runs runs; sandboxes pinned to one CPU"
	load
	local p a b n w u s cost rate i
	for p in $platforms; do
		: >"$work/wi.$p"
		: >"$work/wu.$p"
		warm "$p" "$runsc" "$stock"
		for i in $(seq "$runs"); do
			sample "$work/wi.$p" watched_run "$p" idle "${rounds[$p]}" watch /dev/null
			sample "$work/wu.$p" watched_run "$p" idle "${rounds[$p]}" none /dev/null
		done
		a=$(median <"$work/wi.$p")
		b=$(median <"$work/wu.$p")
		echo "--platform=$p: idle watch: workload watched vs unwatched $(compare "$a" "$b" ms)$(spread "$work/wi.$p" "$work/wu.$p"), target $(verdict "$(ratio "$a" "$b")" 1.02)"
		n=${watch_writes[$p]}
		: >"$work/ww.$p"
		: >"$work/wn.$p"
		: >"$work/ws.$p"
		: >"$work/wsum.$p"
		for i in $(seq "$rt_runs"); do
			sample "$work/ww.$p" watched_run "$p" writes "$n" watch "$work/wsum.$p"
			sample "$work/wn.$p" watched_run "$p" writes "$n" none /dev/null
			sample "$work/ws.$p" pinned_sandbox "$stock" "$p" "$bin/singlestep" 2000
		done
		w=$(median <"$work/ww.$p")
		u=$(median <"$work/wn.$p")
		s=$(median <"$work/ws.$p")
		# ms per n writes, less the unwatched loop's, in ns per write.
		cost=$(awk -v w="$w" -v u="$u" -v n="$n" 'BEGIN {printf "%.0f", (w - u) * 1e6 / n}')
		rate=$(awk -v w="$w" -v n="$n" 'BEGIN {printf "%.0f", n / (w / 1e3)}')
		echo "--platform=$p: a watched write costs $(ratio "$cost" "$s")x stock runsc's single-step round trip$([ -n "$emulated" ] || echo " ($cost ns vs $s ns)"), target $(verdict "$(ratio "$cost" "$s")" 1.0); $n writes at $rate a second; every hit reported: $(summaries_complete "$work/wsum.$p" "$n")"
	done
}

# summaries_complete FILE N: "yes (R runs)" if every summary line of runsc
# watch in FILE counted N hits and none lost, else "no: " and the first
# that did not.
summaries_complete() {
	awk -v n="$2" '
	{
		if (!match($0, /; [0-9]+ hits/) || substr($0, RSTART + 2, RLENGTH - 7) != n || /lost/) {
			print "no: " $0
			bad = 1
			exit
		}
	}
	END { if (!bad) print (NR ? "yes (" NR " runs)" : "no: no watch ended") }' "$1"
}

# Writes per run of section 8, by platform. systrap and ptrace serve a
# counting event with the host's own counting, so their loop is as long as on
# the host; kvm stops the task at every hit, which under the test VM's
# emulation takes about a millisecond, so its loop is short.
declare -A perf_writes=([systrap]=1000000 [ptrace]=1000000 [kvm]=2000)
# Samples per run of section 8's perf record (a trap per hit everywhere).
perf_samples=2000

# perf_elapsed CMD...: the "seconds time elapsed" that perf stat CMD prints:
# the workload's wall time, from its fork to its exit.
perf_elapsed() {
	"$@" 2>&1 | awk '/seconds time elapsed/ {print $1; found = 1} END {exit !found}'
}

section_perfstat() {
	header perfstat "perf stat -e mem:ADDR:wu over a loop of writes (perf stat's \"seconds time elapsed\", the workload's wall time), and perf record -c 1 (a sample per hit), sandbox vs $kernel, medians of $perf_runs interleaved runs"
	local perf
	if ! perf=$(command -v perf); then
		echo "no perf on this machine (Debian's linux-perf)"
		unmeasured+=" perfstat"
		return
	fi
	load
	local event p n a b c d
	event="mem:$("$bin/writes" addr):wu"
	for p in $platforms; do
		n=${perf_writes[$p]}
		: >"$work/ps.host.$p"
		: >"$work/ps.plugin.$p"
		: >"$work/pr.host.$p"
		: >"$work/pr.plugin.$p"
		: >"$work/pr1.host.$p"
		: >"$work/pr1.plugin.$p"
		warm "$p" "$runsc"
		for i in $(seq "$perf_runs"); do
			sample "$work/ps.host.$p" perf_elapsed "$perf" stat -e "$event" -- "$bin/writes" "$n"
			sample "$work/ps.plugin.$p" perf_elapsed sandbox "$runsc" "$p" "$perf" stat -e "$event" -- "$bin/writes" "$n"
			sample "$work/pr.host.$p" elapsed "$perf" record -q -c 1 -e "$event" -o "$work/perf.data" -- "$bin/writes" "$perf_samples"
			sample "$work/pr.plugin.$p" elapsed sandbox "$runsc" "$p" "$perf" record -q -c 1 -e "$event" -o "$work/perf.data" -- "$bin/writes" "$perf_samples"
			sample "$work/pr1.host.$p" elapsed "$perf" record -q -c 1 -e "$event" -o "$work/perf.data" -- "$bin/writes" 1
			sample "$work/pr1.plugin.$p" elapsed sandbox "$runsc" "$p" "$perf" record -q -c 1 -e "$event" -o "$work/perf.data" -- "$bin/writes" 1
		done
		a=$(median <"$work/ps.plugin.$p")
		b=$(median <"$work/ps.host.$p")
		echo "--platform=$p:"
		echo "    counting, $n writes: sandbox vs $kernel $(compare "$a" "$b" s)$(spread "$work/ps.plugin.$p" "$work/ps.host.$p"), target $(verdict "$(ratio "$a" "$b")" 1.5)"
		# perf record's run over 1 write is the fixed cost (perf's
		# and, in the sandbox, the sandbox's start); what a sample
		# costs is the rest, divided by the samples.
		a=$(median <"$work/pr.plugin.$p")
		b=$(median <"$work/pr.host.$p")
		c=$(median <"$work/pr1.plugin.$p")
		d=$(median <"$work/pr1.host.$p")
		echo "    sampling (perf record -c 1), cost per sample over $perf_samples writes: sandbox vs $kernel ratio $(ratio "$(awk -v x="$a" -v y="$c" 'BEGIN {print x - y}')" "$(awk -v x="$b" -v y="$d" 'BEGIN {print x - y}')")"
	done
}

if [ -n "$emulated" ]; then
	echo "=== in the test VM: QEMU TCG, software emulation (HWBP_EMULATED=$emulated). Only ratios are printed:"
	echo "=== absolute times here mean nothing for a real CPU (a trap round trip takes 0.1 to 20 ms here)."
	if [ "$hits" = no ]; then
		echo "bench: the test VM delivered no debug-register hits: $(cat "$work/hostbp.txt")" >&2
		exit 1
	fi
fi

unmeasured=
deferred=()
for s in "${sections[@]}"; do
	if [ "$vm_only" = yes ] || { [ "$hits" = no ] && [[ $hit_sections == *" $s "* ]]; }; then
		deferred+=("$s")
		continue
	fi
	"section_$s"
done

status=0
if [ ${#deferred[@]} -gt 0 ]; then
	echo
	echo "== sections $(for s in "${deferred[@]}"; do number "$s"; done | paste -sd,) ($(echo "${deferred[*]}")) cannot run here: $(cat "$work/hostbp.txt")"
	if [ "${HWBP_BENCH_VM:-yes}" = no ]; then
		echo "bench: not run (HWBP_BENCH_VM=no); on a machine whose host delivers hits: ./test/bench/bench.sh ${deferred[*]}" >&2
		exit 1
	fi
	echo "== running them in the test VM (test/vm/run.sh: QEMU TCG, software emulation; boots in about 25 s)"
	echo "(load average on this machine at start: $(cut -d' ' -f1-3 /proc/loadavg))"
	vm=0
	HWBP_BENCH_BIN=$bin PLATFORMS=$platforms RT_RUNS=$rt_runs PERF_RUNS=$perf_runs "$root/test/vm/run.sh" -- "$here/bench.sh" "${deferred[@]}" || vm=$?
	case $vm in
	0) ;;
	3) status=3 ;; # it said what it could not measure, and why
	*)
		echo "bench: the hit sections could not be measured in the test VM either (status $vm); on a machine whose host delivers hits: ./test/bench/bench.sh ${deferred[*]}" >&2
		status=1
		;;
	esac
	echo "(load average on this machine at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
fi
if [ -n "$unmeasured" ]; then
	echo
	echo "bench: not measured on this machine:$unmeasured (the reason is above)" >&2
	status=3
fi
exit $status
