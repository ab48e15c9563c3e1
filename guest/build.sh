#!/bin/sh
# Builds the default guest and prints, on stdout, the shell assignments that `make guest` writes
# to BUILD_DIR/guest.env:
#   CUBICLE_VMLINUX, CUBICLE_BZIMAGE    the kernel (guest/build-kernel.sh, cached per machine)
#   CUBICLE_INITRAMFS                   busybox + guest/init (cached, keyed by its inputs)
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
	cat "$here/init" "$here/mkinitramfs.py" "$here/build.sh" "$here/pwrbtn.c"
	(cd "$here/rootfs" && find . -type f | LC_ALL=C sort | while read -r f; do
		echo "$f"
		cat "$f"
	done)
} | sha256sum | cut -c1-16)
idir="$cache/initramfs-$key"
initramfs="$idir/initramfs.cpio"
if [ ! -f "$initramfs" ]; then
	echo "guest/build.sh: building the initramfs in $idir" >&2
	mkdir -p "$idir"
	# pwrbtn: the ACPI power button handler (vm.power-button), a static helper init starts.
	${CC:-cc} -static -nostdlib -ffreestanding -fno-stack-protector -fno-pie -no-pie \
		-mgeneral-regs-only -fno-asynchronous-unwind-tables -Os -s \
		-o "$idir/pwrbtn" "$here/pwrbtn.c"
	python3 "$here/mkinitramfs.py" "$initramfs" "$busybox" "$here/init" "$here/rootfs" \
		"bin/pwrbtn=$idir/pwrbtn"
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
echo "CUBICLE_TESTGUEST_DIR=$build/guest/testguest"
