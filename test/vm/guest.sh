#!/bin/bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# Runs in the test VM as PID 1, in the host's root under a writable overlay
# (see init): finishes the system's set-up, runs the job that run.sh left in
# /run/hwbp-vm (cmd: NUL-separated argv; cwd; env: NUL-separated), with its
# output in stdout and stderr there and its exit status in status, then
# powers the VM off.
job=/run/hwbp-vm
mkdir -p /dev/pts /dev/shm /sys/fs/cgroup /tmp
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# gVisor's systrap back end opens perf breakpoint events on its stub
# processes; Debian's kernels default to 3, which refuses them (upstream's
# default is 2).
echo 2 >/proc/sys/kernel/perf_event_paranoid
ip link set lo up 2>/dev/null || true
hostname hwbp-vm

status=125
if mapfile -d '' argv <"$job/cmd" && [ ${#argv[@]} -gt 0 ]; then
	while IFS= read -r -d '' kv; do
		export "$kv"
	done <"$job/env"
	# The tests know they run here (sandbox.RequireHostHits, RequireKVM,
	# SkipUnderEmulation).
	export HWBP_EMULATED=qemu-tcg
	cd "$(cat "$job/cwd")" && { "${argv[@]}" </dev/null >>"$job/stdout" 2>>"$job/stderr"; status=$?; }
fi
echo "$status" >"$job/status"
sync
echo o >/proc/sysrq-trigger
sleep 60
