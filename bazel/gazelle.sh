#!/usr/bin/env bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# The files of the Bazel build that are generated, and how:
#
#   BUILD.bazel files     gazelle (configured by the # gazelle: lines of the
#                         top-level BUILD.bazel); what gazelle does not
#                         generate (data, tags, env, pure, comments) it keeps
#   deps.bzl              gazelle update-repos from go.mod: a go_repository for
#                         every module of the build list; attributes added by
#                         hand (gVisor's patches) are kept
#   bazel/patches/gvisor/hwbp.patch
#                         bazel/gvisor-patch.sh, from patches/gvisor
#
# "bazel/gazelle.sh fix" regenerates them (make gazelle); "bazel/gazelle.sh
# check" (make vet) fails, showing the difference, when any of them is not
# what would be generated, for example after go.mod changed without deps.bzl.
set -euo pipefail
cd "$(dirname "$0")/.."

GAZELLE=.build/bazel/bin/gazelle
GVISOR_PATCH=bazel/patches/gvisor/hwbp.patch
# update-repos' flags: the modules' .proto files are not compiled (their
# generated .pb.go files are used, as the go command does).
UPDATE_REPOS=(update-repos -from_file=go.mod -to_macro=deps.bzl%go_dependencies -prune -build_file_proto_mode=disable_global)

./bazel/prepare.sh gazelle

case "${1:-}" in
fix)
	"$GAZELLE" "${UPDATE_REPOS[@]}"
	"$GAZELLE" -mode=fix
	./bazel/gvisor-patch.sh >"$GVISOR_PATCH"
	;;
check)
	status=0
	# update-repos rewrites deps.bzl in place: run it on a copy.
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	cp WORKSPACE BUILD.bazel deps.bzl go.mod go.sum "$tmp"
	(cd "$tmp" && "$OLDPWD/$GAZELLE" "${UPDATE_REPOS[@]}" >/dev/null)
	if ! diff -u deps.bzl "$tmp/deps.bzl"; then
		echo "deps.bzl is not what go.mod gives: run make gazelle" >&2
		status=1
	fi
	if ! "$GAZELLE" -mode=diff; then
		echo "BUILD.bazel files are not what gazelle generates (above): run make gazelle" >&2
		status=1
	fi
	if ! ./bazel/gvisor-patch.sh | diff -u "$GVISOR_PATCH" -; then
		echo "$GVISOR_PATCH does not match patches/gvisor: run make gazelle" >&2
		status=1
	fi
	exit $status
	;;
*)
	echo "usage: bazel/gazelle.sh fix|check" >&2
	exit 2
	;;
esac
