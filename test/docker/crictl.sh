#!/usr/bin/env bash
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
cache=${HWBP_CRICTL_CACHE:-/var/cache/hwbp-crictl}
dir=$cache/$version

built() { [ -x "$dir/crictl" ]; }

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
echo "crictl: building crictl $version into $dir (once per machine)" >&2
# Outside any module, so that no go.mod or go.work of the caller applies.
src=$(cd / && GOFLAGS= GOWORK=off "$go" mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "crictl: go mod download $module@$version named no directory" >&2; exit 1; }
(cd "$src" && GOFLAGS=-mod=readonly GOWORK=off CGO_ENABLED=0 nice -n 10 "$go" build -trimpath \
	-ldflags "-X $module/pkg/version.Version=$version -s -w" \
	-o "$tmp/" ./cmd/crictl)
chmod 0755 "$tmp"
# A half-made folder of an interrupted build goes.
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
