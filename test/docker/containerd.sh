#!/usr/bin/env bash
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
# (version 2) that README shows.
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
cache=${HWBP_CONTAINERD_CACHE:-/var/cache/hwbp-containerd}
dir=$cache/$version

built() { [ -x "$dir/containerd" ] && [ -x "$dir/ctr" ]; }

if built; then
	echo "$dir"
	exit 0
fi
mkdir -p "$cache"
# One build at a time on the machine; a waiter finds the result in place.
exec 9>"$cache/lock"
flock 9
if built; then
	echo "$dir"
	exit 0
fi

go=${GO:-go}
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "containerd: building containerd and ctr $version into $dir (once per machine)" >&2
# Outside any module, so that no go.mod or go.work of the caller applies.
src=$(cd / && GOFLAGS= GOWORK=off "$go" mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "containerd: go mod download $module@$version named no directory" >&2; exit 1; }
(cd "$src" && GOFLAGS=-mod=readonly GOWORK=off CGO_ENABLED=0 nice -n 10 "$go" build -trimpath \
	-tags "urfave_cli_no_docs no_btrfs osusergo netgo static_build" \
	-ldflags "-X $module/version.Version=$version -s -w" \
	-o "$tmp/" ./cmd/containerd ./cmd/ctr)
chmod 0755 "$tmp"
# A half-made folder of an interrupted build goes.
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
