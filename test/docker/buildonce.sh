# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# test/docker/buildonce.sh, sourced by containerd.sh and crictl.sh.
#
# build_once NAME MODULE VERSION CACHE BINARIES LDFLAGS TAGS PACKAGE...
# builds the Go PACKAGEs of MODULE@VERSION, as the Go module proxy serves
# it, once per machine into CACHE/VERSION, and prints that directory. It is
# done when every one of BINARIES (space-separated) is there; a second run
# then does nothing and needs no network. Builds on one machine take turns
# (flock on CACHE/lock), and a waiter finds the result in place.
#
# The module is built with its own go.mod and go.sum inside the module
# cache, which the build only reads (go install PKG@VERSION refuses modules
# whose go.mod has exclude or replace directives), outside any module of the
# caller, CGO_ENABLED=0 and -trimpath, with LDFLAGS (plus -s -w) and TAGS.
# An interrupted build leaves no half-made directory.
build_once() {
	local name=$1 module=$2 version=$3 cache=$4 binaries=$5 ldflags=$6 tags=$7
	shift 7
	local dir=$cache/$version
	built() {
		local b
		for b in $binaries; do
			[ -x "$dir/$b" ] || return 1
		done
	}
	if built; then
		echo "$dir"
		return 0
	fi
	mkdir -p "$cache"
	exec 9>"$cache/lock"
	flock 9
	if built; then
		echo "$dir"
		return 0
	fi
	local go=${GO:-go} tmp src
	tmp=$(mktemp -d "$cache/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	echo "$name: building $binaries $version into $dir (once per machine)" >&2
	src=$(cd / && GOFLAGS= GOWORK=off "$go" mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -n "$src" ] || { echo "$name: go mod download $module@$version named no directory" >&2; return 1; }
	(cd "$src" && GOFLAGS=-mod=readonly GOWORK=off CGO_ENABLED=0 nice -n 10 "$go" build -trimpath \
		-tags "$tags" -ldflags "$ldflags -s -w" -o "$tmp/" "$@")
	chmod 0755 "$tmp"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	trap - EXIT
	echo "$dir"
}
