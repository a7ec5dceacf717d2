#!/usr/bin/env bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# test/docker/crictl.sh
#
# Builds crictl (cri-tools, the CRI client of Kubernetes' node tooling) of
# the version below, once per machine, and prints the directory holding it:
# $HWBP_CRICTL_CACHE (default /var/cache/hwbp-crictl)/VERSION, outside the
# work tree, as containerd.sh does for containerd. A second run with the
# binary in place does nothing and needs no network.
#
# v1.34.0 speaks CRI's runtime.v1, which containerd 1.7 serves, and uses
# only the calls 1.7 knows for what TestCRI runs (runp, create, start, exec,
# logs, inspect, stop, rm). The source is the module as the Go module proxy
# serves it, built with its own go.mod and go.sum inside the module cache,
# CGO_ENABLED=0, with the version stamped as cri-tools' Makefile stamps it.
set -euo pipefail

version=v1.34.0
module=sigs.k8s.io/cri-tools
. "$(dirname "$0")/buildonce.sh"
build_once crictl "$module" "$version" "${HWBP_CRICTL_CACHE:-/var/cache/hwbp-crictl}" \
	crictl "-X $module/pkg/version.Version=$version" "" ./cmd/crictl
