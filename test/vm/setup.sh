#!/usr/bin/env bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# Installs what test/vm/run.sh needs and builds its guest kernel and
# initramfs, once per machine: QEMU 10 (bookworm-backports: bookworm's QEMU
# 7.2 neither intercepts XSETBV in nested SVM nor arms DR7 for a nested
# guest, see docs/testing.md), busybox-static for the initramfs, kmod
# to order the kernel modules, and the kernel of Debian's linux-image-amd64.
#
# Everything lands in $HWBP_VM_CACHE (default /var/cache/hwbp-vm), outside
# the work tree, so clean clones on one machine share it. A second run with
# everything in place does nothing and needs no network.
#
# HWBP_VM_KERNEL=VERSION boots another Debian kernel instead: a version of
# the linux-image-amd64 package (as apt-cache madison prints it, such as
# 7.3.4-1~bpo13+1) or its upstream part (7.3.4, or 7.3 when one version
# alone starts so), looked up in the host release, its security updates and
# backports, Debian stable with its security updates and backports, and
# unstable (sid), through an apt configuration of its own in the cache (the
# host's sources and packages stay untouched: nothing is installed, the
# packages are downloaded and unpacked). Each such kernel has its own
# directory, kernel-<package version>, beside the default one; a version
# the cache already holds needs no network. A version that matches nothing,
# or more than one of those in the cache and the package lists, is an error
# that lists the versions there are.
#
# Prints the directory holding vmlinuz and initrd.gz.
set -euo pipefail

cache=${HWBP_VM_CACHE:-/var/cache/hwbp-vm}
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "vm setup: $*" >&2; }

qemu_major() {
	qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p'
}

apt_updated=
apt_update() {
	[ -n "$apt_updated" ] || { apt-get update -qq >&2; apt_updated=1; }
}

apt_install() {
	apt_update
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# The backports suite of this Debian release, from the mirror apt already
# uses for the release itself.
add_backports() {
	. /etc/os-release
	local suite=${VERSION_CODENAME}-backports
	if apt-cache policy 2>/dev/null | grep -q " $suite/main "; then
		return
	fi
	apt_update
	local mirror
	mirror=$(apt-cache policy | awk -v s="$VERSION_CODENAME/main" '$3 == s { print $2; exit }')
	[ -n "$mirror" ] || { log "no Debian mirror for $VERSION_CODENAME in apt's sources"; exit 1; }
	echo "deb $mirror $suite main" >/etc/apt/sources.list.d/hwbp-backports.list
	apt_updated=
	apt_update
}

if [ "$(qemu_major)" = "" ] || [ "$(qemu_major)" -lt 10 ]; then
	log "installing QEMU 10 from backports"
	add_backports
	. /etc/os-release
	apt_install -t "${VERSION_CODENAME}-backports" qemu-system-x86
fi
# The initramfs has no libc: only the static busybox works there (Debian's
# busybox package, which replaces it, is linked dynamically).
dpkg -s busybox-static >/dev/null 2>&1 || apt_install busybox-static
command -v depmod >/dev/null || apt_install kmod
command -v cpio >/dev/null || apt_install cpio

# apt_kernels runs apt-get or apt-cache ($1) with the rest of the
# arguments on the suites that HWBP_VM_KERNEL chooses from, through a
# configuration of its own under $cache/apt: its own sources, package lists
# and caches, the host's keyring and package database, no preferences.
apt_kernels() {
	local tool=$1 a=$cache/apt
	shift
	"$tool" -o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts="$a/none" \
		-o Dir::Etc::Preferences="$a/none/preferences" -o Dir::Etc::PreferencesParts="$a/none" \
		-o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" -o APT::Default-Release= "$@"
}

# apt_kernels_update writes the sources of apt_kernels, with the mirrors
# that the host's apt uses for its release and its security updates, and
# fetches their package lists.
apt_kernels_update() {
	. /etc/os-release
	local a=$cache/apt mirror security keyring=/usr/share/keyrings/debian-archive-keyring.gpg opts=
	mirror=$(apt-cache policy | awk -v s="$VERSION_CODENAME/main" '$3 == s { print $2; exit }')
	security=$(apt-cache policy | awk -v s="$VERSION_CODENAME-security/main" '$3 == s { print $2; exit }')
	[ -n "$mirror" ] || { log "no Debian mirror for $VERSION_CODENAME in apt's sources"; exit 1; }
	[ ! -f "$keyring" ] || opts=" [signed-by=$keyring]"
	mkdir -p "$a/none" "$a/lists/partial" "$a/cache/archives/partial"
	{
		echo "deb$opts $mirror $VERSION_CODENAME main"
		echo "deb$opts $mirror $VERSION_CODENAME-backports main"
		echo "deb$opts $mirror stable main"
		echo "deb$opts $mirror stable-backports main"
		echo "deb$opts $mirror unstable main"
		if [ -n "$security" ]; then
			echo "deb$opts $security $VERSION_CODENAME-security main"
			echo "deb$opts $security stable-security main"
		fi
	} >"$a/sources.list"
	log "updating the package lists of $a/sources.list"
	apt_kernels apt-get update -qq >&2
}

# version_matches VERSION WANT: whether the Debian package version VERSION
# is WANT, or its upstream part (before the Debian revision) is WANT or
# starts with WANT and a dot.
version_matches() {
	local up=${1%-*}
	[ "$1" = "$2" ] || [ "$up" = "$2" ] || [[ $up == "$2".* ]]
}

# depends_pinned PACKAGE VERSION prints the packages named linux-* that
# PACKAGE's VERSION depends on at exactly that version: newer Debian
# kernels split linux-image-X into linux-binary-X (vmlinuz),
# linux-modules-X and linux-base-X.
depends_pinned() {
	apt_kernels apt-cache show "$1=$2" | sed -n 's/^Depends: //p' | head -n 1 | tr ',|' '\n\n' |
		awk -v v="$2" '$1 ~ /^linux-/ && $2 == "(=" && $3 == v ")" && NF == 3 { print $1 }'
}

# kernel_versions prints "VERSION WHERE" for each version of
# linux-image-amd64 in the package lists that apt_kernels_update fetched
# last (WHERE: the suite, and its codename when that differs), then for each
# kernel in the cache ("in the cache").
kernel_versions() {
	if [ -f "$cache/apt/sources.list" ]; then
		{
			apt_kernels apt-cache policy | awk '
				$NF == "Packages" { s = $3; sub("/main$", "", s) }
				$1 == "release" && s != "" && match($0, /[ ,]n=[^,]*/) { print "suite", s, substr($0, RSTART + 3, RLENGTH - 3); s = "" }'
			apt_kernels apt-cache madison linux-image-amd64
		} | awk -F'|' '
			$1 ~ /^suite / { split($1, f, " "); code[f[2]] = f[3]; next }
			{ gsub(/ /, "", $2); split($3, u, " "); s = u[2]; sub("/main$", "", s)
			  print $2, s (code[s] != "" && code[s] != s ? " (" code[s] ")" : "") }'
	fi
	local d
	for d in "$cache"/kernel-*; do
		[ ! -f "$d/ready" ] || echo "$(cat "$d/version") in the cache"
	done
}

# matching_versions WANT prints the distinct versions of kernel_versions
# that version_matches WANT.
matching_versions() {
	local v
	kernel_versions | while read -r v _; do
		! version_matches "$v" "$1" || echo "$v"
	done | awk '!seen[$0]++'
}

# versioned_kernel WANT prints the directory of the kernel that
# HWBP_VM_KERNEL=WANT chooses, downloading and unpacking it when the cache
# does not hold it. WANT must match exactly one version among those that
# the cache holds and those of the package lists fetched last; when it
# matches none, the lists are fetched again first. So a kernel in the
# cache needs no network, and a version that has become ambiguous (a newer
# package of the same upstream version, say) is refused, never guessed.
versioned_kernel() {
	local want=$1 d v matches=()
	mapfile -t matches < <(matching_versions "$want")
	if [ ${#matches[@]} -eq 0 ]; then
		apt_kernels_update
		mapfile -t matches < <(matching_versions "$want")
	fi
	if [ ${#matches[@]} -ne 1 ]; then
		{
			if [ ${#matches[@]} -eq 0 ]; then
				echo "vm setup: no Debian kernel has the version HWBP_VM_KERNEL=$want."
			else
				echo "vm setup: HWBP_VM_KERNEL=$want matches several Debian kernels (${matches[*]}): name one of them."
			fi
			echo "Versions of linux-image-amd64 (apt-cache madison with $cache/apt/sources.list, and the cache):"
			kernel_versions | awk '{ v = $1; $1 = ""; printf "  %-24s%s\n", v, $0 }'
			echo "HWBP_VM_KERNEL takes a full version, its upstream part, or a prefix of that which only one of them has, such as 7.3."
		} >&2
		exit 1
	fi
	v=${matches[0]}
	d=$cache/kernel-$v
	log "kernel $v (HWBP_VM_KERNEL=$want)"
	if [ ! -f "$d/ready" ]; then
		local img pkgs=() p q
		img=$(apt_kernels apt-cache show "linux-image-amd64=$v" | sed -n 's/^Depends: //p' | head -n 1 |
			tr ',|' '\n\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\) .*/\1/p' | head -n 1)
		[ -n "$img" ] || { log "cannot resolve linux-image-amd64=$v"; exit 1; }
		local i=0
		pkgs=("$img")
		while [ $i -lt ${#pkgs[@]} ]; do
			for q in $(depends_pinned "${pkgs[$i]}" "$v"); do
				[[ " ${pkgs[*]} " == *" $q "* ]] || pkgs+=("$q")
			done
			i=$((i + 1))
		done
		log "downloading ${pkgs[*]} ($v)"
		rm -rf "$d" && mkdir -p "$d/deb"
		(cd "$d/deb" && apt_kernels apt-get download "${pkgs[@]/%/=$v}" >&2)
		for p in "$d"/deb/*.deb; do
			dpkg-deb -x "$p" "$d/root"
		done
		rm -rf "$d/deb"
		# Newer packages put the modules (and vmlinuz) in /usr/lib/modules
		# only; depmod and modprobe of bookworm's kmod look in /lib.
		[ -e "$d/root/lib" ] || ln -s usr/lib "$d/root/lib"
		if ! ls "$d"/root/lib/modules/*/kernel >/dev/null 2>&1; then
			log "the packages of kernel $v hold no modules: ${pkgs[*]}"
			exit 1
		fi
		echo "$v" >"$d/version"
		touch "$d/ready"
	fi
	echo "$d"
}

mkdir -p "$cache"
if [ -n "${HWBP_VM_KERNEL:-}" ]; then
	kdir=$(versioned_kernel "$HWBP_VM_KERNEL")
else
	# One default kernel per cache: the first one found stays, so later
	# runs need no network. Remove its directory to move to a newer one.
	kdir=$(ls -d "$cache"/linux-image-* 2>/dev/null | head -n 1 || true)
	if [ -z "$kdir" ] || [ ! -f "$kdir/ready" ]; then
		apt_update
		pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
		[ -n "$pkg" ] || { log "cannot resolve linux-image-amd64"; exit 1; }
		log "downloading $pkg"
		kdir=$cache/$pkg
		rm -rf "$kdir" && mkdir -p "$kdir/deb"
		(cd "$kdir/deb" && apt-get download "$pkg" >&2)
		dpkg-deb -x "$kdir"/deb/*.deb "$kdir/root"
		rm -rf "$kdir/deb"
		touch "$kdir/ready"
	fi
fi
kver=$(ls "$kdir/root/lib/modules")

# The initramfs is rebuilt whenever init or this script changes.
stamp=$(cat "$here/init" "$0" | sha256sum | cut -c1-16)
if [ ! -f "$kdir/initrd-$stamp.gz" ]; then
	log "building the initramfs"
	depmod -b "$kdir/root" "$kver"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp"/{bin,dev,proc,sys,host,upper,newroot,out,mod}
	cp /bin/busybox "$tmp/bin/busybox"
	cp "$here/init" "$tmp/init"
	chmod 0755 "$tmp/init"
	# virtio and 9p to reach the host's files, overlay for a writable
	# root, kvm-amd for /dev/kvm (QEMU's -cpu max is an AMD CPU with SVM),
	# each with the modules it needs, unless the kernel has it built in.
	for m in virtio_pci 9pnet_virtio 9p overlay kvm_amd; do
		modprobe --show-depends -d "$kdir/root" -S "$kver" "$m" ||
			{ log "kernel $kver has no module $m"; exit 1; }
	done >"$tmp/deps"
	# Newer kernels' modules are compressed (.ko.xz, .ko.zst); busybox's
	# insmod loads plain ones.
	awk '$1 == "insmod" && !seen[$2]++ { print $2 }' "$tmp/deps" | while read -r ko; do
		name=$(basename "$ko")
		case $ko in
		*.ko.xz) command -v xz >/dev/null || apt_install xz-utils; xz -dc "$ko" >"$tmp/mod/${name%.xz}" ;;
		*.ko.zst) command -v zstd >/dev/null || apt_install zstd; zstd -dcq "$ko" >"$tmp/mod/${name%.zst}" ;;
		*.ko.gz) gzip -dc "$ko" >"$tmp/mod/${name%.gz}" ;;
		*) cp "$ko" "$tmp/mod/" ;;
		esac
		echo "/mod/${name%.ko*}.ko" >>"$tmp/modules"
	done
	rm "$tmp/deps"
	(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$kdir/initrd-$stamp.gz.tmp"
	rm -f "$kdir"/initrd-*.gz
	mv "$kdir/initrd-$stamp.gz.tmp" "$kdir/initrd-$stamp.gz"
fi
ln -sf "initrd-$stamp.gz" "$kdir/initrd.gz"
if [ -f "$kdir/root/boot/vmlinuz-$kver" ]; then
	ln -sf "root/boot/vmlinuz-$kver" "$kdir/vmlinuz"
else
	# Newer packages (linux-binary-X) install it beside the modules.
	ln -sf "root/lib/modules/$kver/vmlinuz" "$kdir/vmlinuz"
fi
echo "$kdir"
