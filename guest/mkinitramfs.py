#!/usr/bin/env python3
"""Writes cubicle's default initramfs: a cpio "newc" archive built without privileges.

Usage: mkinitramfs.py OUTPUT BUSYBOX INIT ROOTFS_DIR [bin/NAME=PATH...]

The archive holds /init, /bin/busybox with the few applet links the guest uses, the files under
ROOTFS_DIR (e.g. etc/fstab), empty /proc /sys /tmp and /dev with the /dev/console character
device (5,1) that the kernel opens for init's stdio before anything is mounted. Every entry is
owned by root with mtime 0, so the same inputs give the same bytes.
"""
import os
import stat
import sys

# Applet links: /bin/sh for scripts, and the commands the README's examples use. ash finds the
# other applets by itself (busybox-static is built with FEATURE_SH_STANDALONE).
APPLETS = ["sh", "cat", "dmesg", "echo", "grep", "ls", "mount", "nproc", "poweroff", "ps",
           "reboot", "uname"]
DIRS = ["bin", "dev", "etc", "proc", "sys", "tmp"]


class Newc:
    def __init__(self, out):
        self.out = out
        self.ino = 1

    def entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name_b), 0]
        self.ino += 1
        hdr = b"070701" + b"".join(b"%08x" % f for f in fields)
        self.write_padded(hdr + name_b)
        self.write_padded(data)

    def write_padded(self, b):
        self.out.write(b)
        self.out.write(b"\0" * (-len(b) % 4))

    def trailer(self):
        self.ino = 0
        self.entry("TRAILER!!!", 0)


def main():
    if len(sys.argv) < 5:
        sys.exit("usage: mkinitramfs.py OUTPUT BUSYBOX INIT ROOTFS_DIR [bin/NAME=PATH...]")
    output, busybox, init, rootfs = sys.argv[1:5]
    extra = [arg.split("=", 1) for arg in sys.argv[5:]]
    with open(busybox, "rb") as f:
        busybox_data = f.read()
    with open(init, "rb") as f:
        init_data = f.read()

    tmp = output + ".tmp"
    with open(tmp, "wb") as out:
        a = Newc(out)
        for d in DIRS:
            a.entry(d, stat.S_IFDIR | (0o1777 if d == "tmp" else 0o755), nlink=2)
        a.entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
        a.entry("bin/busybox", stat.S_IFREG | 0o755, busybox_data)
        for applet in APPLETS:
            a.entry("bin/" + applet, stat.S_IFLNK | 0o777, b"busybox")
        a.entry("init", stat.S_IFREG | 0o755, init_data)
        for name, path in extra:
            with open(path, "rb") as f:
                a.entry(name, stat.S_IFREG | 0o755, f.read())
        for top, dirs, files in os.walk(rootfs):
            dirs.sort()
            rel = os.path.relpath(top, rootfs)
            if rel != "." and rel not in DIRS:
                a.entry(rel, stat.S_IFDIR | 0o755, nlink=2)
            for name in sorted(files):
                path = os.path.join(top, name)
                with open(path, "rb") as f:
                    data = f.read()
                mode = 0o755 if os.access(path, os.X_OK) else 0o644
                a.entry(os.path.normpath(os.path.join(rel, name)), stat.S_IFREG | mode, data)
        a.trailer()
    os.replace(tmp, output)


if __name__ == "__main__":
    main()
