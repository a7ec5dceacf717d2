#!/usr/bin/env bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# test/docker/containerd.sh
#
# Builds containerd and ctr of the version below, once per machine, and
# prints the directory holding them: $HWBP_CONTAINERD_CACHE (default
# /var/cache/hwbp-containerd)/VERSION, outside the work tree, so that clean
# clones on one machine (CI's among them) share it. A second run with both
# binaries in place does nothing and needs no network.
#
# Why build it: gVisor's shim (containerd-shim-runsc-v1, of the gVisor
# version in go.mod) answers containerd's "start" with a JSON
# BootstrapParams, which containerd reads since 1.7; Debian 12 ships 1.6.
# 1.7 is also what Debian 13 ships (1.7.24), and reads the configuration
# (version 2) that docs/deploy.md shows.
#
# The source is containerd's module as the Go module proxy serves it, built
# with its own go.mod and go.sum (go install PKG@VERSION refuses this module:
# its go.mod has exclude directives) inside the module cache, which the
# build only reads. CGO_ENABLED=0, with the tags of containerd's static
# release build (Makefile: STATIC=1) and no_btrfs (the btrfs snapshotter
# needs cgo), and the version stamped as containerd's Makefile stamps it,
# so that "containerd --version" names it.
set -euo pipefail

version=v1.7.35
module=github.com/containerd/containerd
. "$(dirname "$0")/buildonce.sh"
build_once containerd "$module" "$version" "${HWBP_CONTAINERD_CACHE:-/var/cache/hwbp-containerd}" \
	"containerd ctr" "-X $module/version.Version=$version" \
	"urfave_cli_no_docs no_btrfs osusergo netgo static_build" ./cmd/containerd ./cmd/ctr
