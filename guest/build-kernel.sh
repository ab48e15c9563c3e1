#!/bin/sh
# Builds the guest kernel (vmlinux with its PVH note, and bzImage) from Debian's linux-source-6.1
# with guest/microvm.config and guest/pvm-host.patch. The result is cached outside the tree,
# keyed by a hash of every input, so the ~6-minute build happens once per machine.
# Prints the cache directory that holds vmlinux and bzImage.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${CUBICLE_GUEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cubicle/guest}
src_tar=/usr/src/linux-source-6.1.tar.xz
[ -f "$src_tar" ] || { echo "build-kernel: $src_tar missing (scripts/install-deps)" >&2; exit 1; }

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "$srcver"; cat "$here/microvm.config" "$here/pvm-host.patch" "$here/build-kernel.sh"; } |
	sha256sum | cut -c1-16)
out="$cache/kernel-$key"
if [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.kbuild.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-kernel: building Linux $srcver in $work (about 6 minutes on 2 cores)" >&2
tar -C "$work" -xf "$src_tar"
cd "$work"/linux-source-6.1
patch -s -p1 < "$here/pvm-host.patch"
cp "$here/microvm.config" .config
make -s olddefconfig >&2
make -s -j"$(nproc)" vmlinux bzImage >&2
mkdir -p "$work/out"
cp vmlinux "$work/out/vmlinux"
cp arch/x86/boot/bzImage "$work/out/bzImage"
rm -rf "$out"
mv "$work/out" "$out"
echo "$out"
