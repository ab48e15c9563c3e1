#!/bin/sh
# Writes cubicle's ext4 root filesystem image, for guests booted with root=/dev/vda: the same
# userland as the initramfs (busybox, guest/init as /init and /sbin/init, guest/rootfs/), plus
# the applet links the disk tests use (dd, sha256sum, sync, blockdev, cmp, head). Built without
# privileges: mkfs.ext4 -d copies a staging tree (e2fsprogs); the kernel mounts devtmpfs on
# /dev itself (CONFIG_DEVTMPFS_MOUNT), so no device node is needed in the image.
# Usage: guest/mkrootfs.sh OUTPUT BUSYBOX INIT ROOTFS_DIR
set -eu
[ $# -eq 4 ] || { echo "usage: guest/mkrootfs.sh OUTPUT BUSYBOX INIT ROOTFS_DIR" >&2; exit 1; }
out=$1 busybox=$2 init=$3 rootfs=$4
command -v mkfs.ext4 >/dev/null || { echo "mkrootfs.sh: mkfs.ext4 missing (e2fsprogs)" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/sbin" "$stage/dev" "$stage/etc" "$stage/proc" "$stage/sys" \
	"$stage/tmp" "$stage/mnt"
chmod 1777 "$stage/tmp"
cp "$busybox" "$stage/bin/busybox"
chmod 755 "$stage/bin/busybox"
for a in sh cat dmesg echo grep ls mount umount nproc poweroff ps reboot uname dd sha256sum \
	sync blockdev cmp head sleep; do
	ln -s busybox "$stage/bin/$a"
done
cp "$init" "$stage/init"
chmod 755 "$stage/init"
ln -s ../init "$stage/sbin/init"
cp -R "$rootfs/." "$stage/"
# Fixed UUID and hash seed, files owned by root: the same inputs give the same file system.
E2FSPROGS_FAKE_TIME=1 mkfs.ext4 -q -F -L cubicle-root -U 6c756269-6375-4000-8000-726f6f746673 \
	-E root_owner=0:0,hash_seed=6c756269-6375-4000-8000-686173687365 -d "$stage" \
	"$out.tmp" 32M >&2
mv "$out.tmp" "$out"
