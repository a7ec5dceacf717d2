#!/usr/bin/env bash
# Installs what test/vm/run.sh needs and builds its guest kernel and
# initramfs, once per machine: QEMU 10 (bookworm-backports: bookworm's QEMU
# 7.2 neither intercepts XSETBV in nested SVM nor arms DR7 for a nested
# guest, see DESIGN.md section 6), busybox-static for the initramfs, kmod
# to order the kernel modules, and the kernel of Debian's linux-image-amd64.
#
# Everything lands in $HWBP_VM_CACHE (default /var/cache/hwbp-vm), outside
# the work tree, so clean clones on one machine share it. A second run with
# everything in place does nothing and needs no network.
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

mkdir -p "$cache"
# One kernel per cache: the first one found stays, so later runs need no
# network. Remove the cache to move to a newer one.
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
	# root, kvm-amd for /dev/kvm (QEMU's -cpu max is an AMD CPU with SVM).
	for m in virtio_pci 9pnet_virtio 9p overlay kvm_amd; do
		modprobe --show-depends -d "$kdir/root" -S "$kver" "$m"
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
		cp "$ko" "$tmp/mod/"
		echo "/mod/$(basename "$ko")" >>"$tmp/modules"
	done
	(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$kdir/initrd-$stamp.gz.tmp"
	rm -f "$kdir"/initrd-*.gz
	mv "$kdir/initrd-$stamp.gz.tmp" "$kdir/initrd-$stamp.gz"
fi
ln -sf "initrd-$stamp.gz" "$kdir/initrd.gz"
ln -sf "root/boot/vmlinuz-$kver" "$kdir/vmlinuz"
echo "$kdir"
