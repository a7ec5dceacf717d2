#!/usr/bin/env bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# Prepares everything the Bazel build needs, offline, into .build/bazel/
# (git-ignored), from Debian packages and the Go module proxy only:
#
#   bazel_skylib, platforms, rules_java   Debian's bazel-skylib, bazel-platforms,
#                                         bazel-rules-java (links)
#   rules_cc                              Debian's bazel-rules-cc, patched
#                                         (bazel/patches/rules_cc)
#   io_bazel_rules_go                     rules_go v0.34.0, module source from the
#                                         Go module proxy, patched (bazel/patches/rules_go)
#   bazel_gazelle                         gazelle v0.27.0, module source from the
#                                         proxy, with its dependencies vendored
#   go                                    a copy of the host Go SDK with its standard
#                                         library compiled into pkg/ and cmd/pack built
#   remote_coverage_tools                 an empty stand-in for the repository that
#                                         Bazel 4 downloads for every test
#   bin/gazelle                           gazelle v0.27.0 (bazel/gazelle.sh)
#
# The WORKSPACE names them with paths relative to the workspace, so nothing of
# one machine is committed. "bazel/prepare.sh gazelle" prepares only
# bazel_gazelle and bin/gazelle, which need no Debian package. Run it again at
# will: stamps of the inputs skip the work when nothing changed. Installs the
# Debian packages (apt-get, as root) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RULES_GO_VERSION=v0.34.0
GAZELLE_VERSION=v0.27.0
DEBS=(bazel-bootstrap bazel-skylib bazel-platforms bazel-rules-java bazel-rules-cc)
OUT=.build/bazel
GO=${GO:-go}
export GOTOOLCHAIN=local

GOROOT_HOST=$("$GO" env GOROOT)
GO_VERSION=$("$GO" env GOVERSION)

# fresh NAME INPUTS...: whether the stamp of part NAME matches the inputs.
fresh() {
	local name=$1
	shift
	stamp=$(printf '%s\n' "$@" | sha256sum | cut -d' ' -f1)
	[ -f "$OUT/$name.stamp" ] && [ "$(cat "$OUT/$name.stamp")" = "$stamp" ]
}

# modsrc MODULE@VERSION: the module's source directory in the module cache.
modsrc() {
	local dir
	dir=$(GOFLAGS=-mod=mod "$GO" mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -n "$dir" ] || { echo "bazel/prepare.sh: go mod download $1 failed" >&2; exit 1; }
	echo "$dir"
}

# copy SRC DST [PATCHDIR]: a writable copy of SRC with PATCHDIR's patches applied.
copy() {
	rm -rf "$2"
	cp -r "$1" "$2"
	chmod -R u+w "$2"
	local p
	for p in ${3:+"$3"/*.patch}; do
		patch -s -p1 -d "$2" <"$p"
	done
}

mkdir -p "$OUT/bin"

# gazelle, for Bazel's go_repository rules and for bazel/gazelle.sh. Its
# go_repository_tools builds gazelle in GOPATH mode from vendor/, which the
# module source lacks (module zips hold no vendored code). Its list of the
# standard library's packages is regenerated for this Go, as gazelle's own
# Bazel build does (language/go:std_package_list): the one in its source is
# Go 1.19's, so imports of newer packages (cmp, slices, maps, iter, weak, ...)
# would be taken for modules.
if ! fresh gazelle "$(sha256sum <bazel/prepare.sh)" "$GAZELLE_VERSION" "$GO_VERSION"; then
	echo "bazel/prepare.sh: preparing gazelle $GAZELLE_VERSION"
	copy "$(modsrc github.com/bazelbuild/bazel-gazelle@$GAZELLE_VERSION)" "$OUT/bazel_gazelle"
	(
		cd "$OUT/bazel_gazelle"
		GOFLAGS=-mod=mod "$GO" mod vendor
		"$GO" list std >std_packages.txt
		GOFLAGS=-mod=vendor "$GO" run ./language/go/gen_std_package_list std_packages.txt language/go/std_package_list.go
		rm std_packages.txt
		GOFLAGS=-mod=vendor "$GO" build -ldflags=-s -o ../bin/gazelle ./cmd/gazelle
	)
	echo "$stamp" >"$OUT/gazelle.stamp"
fi
[ "${1:-}" = gazelle ] && exit 0

missing=()
for p in "${DEBS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "bazel/prepare.sh: needs the Debian packages ${missing[*]} (apt-get install them as root)" >&2
		exit 1
	fi
	echo "bazel/prepare.sh: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if fresh rules "$(cat bazel/prepare.sh bazel/patches/rules_go/*.patch bazel/patches/rules_cc/*.patch | sha256sum)" \
	"$RULES_GO_VERSION" "$GO_VERSION" "$GOROOT_HOST" "$(dpkg-query -W "${DEBS[@]}")"; then
	exit 0
fi
echo "bazel/prepare.sh: preparing rules_go $RULES_GO_VERSION, Debian's Bazel rules and the Go SDK in $OUT"
rm -f "$OUT/rules.stamp"

for l in bazel_skylib:/usr/share/bazel/tools/skylib platforms:/usr/share/bazel/tools/platforms rules_java:/usr/share/bazel/rules/java; do
	ln -sfn "${l#*:}" "$OUT/${l%%:*}"
done
copy /usr/share/bazel/rules/cc "$OUT/rules_cc" bazel/patches/rules_cc
copy "$(modsrc github.com/bazelbuild/rules_go@$RULES_GO_VERSION)" "$OUT/io_bazel_rules_go" bazel/patches/rules_go

rm -rf "$OUT/remote_coverage_tools"
mkdir -p "$OUT/remote_coverage_tools"
echo 'workspace(name = "remote_coverage_tools")' >"$OUT/remote_coverage_tools/WORKSPACE"
cat >"$OUT/remote_coverage_tools/BUILD" <<'EOF'
# Bazel 4 declares @remote_coverage_tools as a download, and every test rule
# depends on it. Coverage is not collected here; these stand-ins let tests run.
package(default_visibility = ["//visibility:public"])

filegroup(name = "coverage_report_generator")

filegroup(name = "lcov_merger")

filegroup(name = "Main")
EOF

# The Go SDK: rules_go v0.34 expects a GOROOT with a compiled standard
# library in pkg/ and the pack tool (Go 1.20 stopped shipping the first,
# Go 1.25 the second; rules_go v0.38 and 4d0a821e build them instead).
sdk="$OUT/go"
rm -rf "$sdk"
cp -a "$GOROOT_HOST" "$sdk"
chmod -R u+w "$sdk"
goos_goarch=$("$GO" env GOOS)_$("$GO" env GOARCH)
GOROOT="$PWD/$sdk" GODEBUG=installgoroot=all GOFLAGS= CGO_ENABLED=1 "$sdk/bin/go" install std
GOROOT="$PWD/$sdk" GOFLAGS= GO111MODULE=off "$sdk/bin/go" build -trimpath -o "$sdk/pkg/tool/$goos_goarch/pack" cmd/pack
touch "$sdk/ROOT"
echo 'workspace(name = "hwbp_go_sdk")' >"$sdk/WORKSPACE"
echo 'exports_files(["ROOT"])' >"$sdk/BUILD.bazel"

echo "$stamp" >"$OUT/rules.stamp"
