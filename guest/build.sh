#!/bin/sh
# Builds the default guest and prints, on stdout, the shell assignments that `make guest` writes
# to BUILD_DIR/guest.env:
#   CUBICLE_VMLINUX, CUBICLE_BZIMAGE    the kernel (guest/build-kernel.sh, cached per machine)
#   CUBICLE_INITRAMFS                   busybox + guest/init (cached, keyed by its inputs)
#   CUBICLE_ROOTFS                      the same userland as an ext4 image, for root=/dev/vda
#   CUBICLE_TESTGUEST_DIR               the tiny PVH test guests (meson builds them)
# Progress goes to stderr. Usage: guest/build.sh BUILD_DIR
set -eu
[ $# -eq 1 ] || { echo "usage: guest/build.sh BUILD_DIR" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
cache=${CUBICLE_GUEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cubicle/guest}
busybox=${CUBICLE_BUSYBOX:-/bin/busybox}

kdir=$("$here/build-kernel.sh")

# The initramfs: uncompressed, because here the guest kernel's code is emulated and
# decompressing costs more than copying (guest/README.md has the numbers).
[ -x "$busybox" ] || { echo "guest/build.sh: $busybox missing (busybox-static)" >&2; exit 1; }
# A 32-bit userland breaks on kvm_pvm hosts: insist on a 64-bit ELF (class byte 2).
[ "$(od -An -tx1 -j4 -N1 "$busybox" | tr -d ' ')" = 02 ] ||
	{ echo "guest/build.sh: $busybox must be a 64-bit static busybox" >&2; exit 1; }
key=$( {
	sha256sum <"$busybox"
	cat "$here/init" "$here/mkinitramfs.py" "$here/mkrootfs.sh" "$here/build.sh" "$here"/tools/*.c \
		"$here"/tools/*.h
	(cd "$here/rootfs" && find . -type f | LC_ALL=C sort | while read -r f; do
		echo "$f"
		cat "$f"
	done)
} | sha256sum | cut -c1-16)
idir="$cache/initramfs-$key"
initramfs="$idir/initramfs.cpio"
if [ ! -f "$initramfs" ] || [ ! -f "$idir/rootfs.ext4" ]; then
	echo "guest/build.sh: building the initramfs and the ext4 root filesystem in $idir" >&2
	mkdir -p "$idir"
	# guest/rootfs plus the helpers busybox lacks, for both images.
	stage=$(mktemp -d "$idir/.rootfs.XXXXXX")
	cp -R "$here/rootfs/." "$stage/"
	mkdir -p "$stage/bin"
	# tools/*.c: the helpers busybox lacks, libc-free, a few KiB each: pwrbtn (the ACPI power
	# button handler init starts, vm.power-button), vsock-echo, ...
	for src in "$here"/tools/*.c; do
		${CC:-cc} -static -nostdlib -ffreestanding -fno-tree-loop-distribute-patterns -Os \
			-mgeneral-regs-only -fno-stack-protector -fno-asynchronous-unwind-tables \
			-fno-pie -no-pie -s -o "$stage/bin/$(basename "$src" .c)" "$src"
	done
	python3 "$here/mkinitramfs.py" "$initramfs" "$busybox" "$here/init" "$stage"
	"$here/mkrootfs.sh" "$idir/rootfs.ext4" "$busybox" "$here/init" "$stage"
	rm -rf "$stage"
fi

# The tiny test guests are default targets of the meson build; make sure they are current.
testguests="hello reset cmdline smp int3 idle cpuid pci"
if [ -f "$build/build.ninja" ]; then
	targets=""
	for g in $testguests; do targets="$targets guest/testguest/$g"; done
	# shellcheck disable=SC2086
	ninja -C "$build" $targets >&2
fi
for g in $testguests; do
	[ -f "$build/guest/testguest/$g" ] ||
		{ echo "guest/build.sh: $build/guest/testguest/$g missing (run ninja -C $build)" >&2; exit 1; }
done

echo "CUBICLE_VMLINUX=$kdir/vmlinux"
echo "CUBICLE_BZIMAGE=$kdir/bzImage"
echo "CUBICLE_INITRAMFS=$initramfs"
echo "CUBICLE_ROOTFS=$idir/rootfs.ext4"
echo "CUBICLE_TESTGUEST_DIR=$build/guest/testguest"
