#!/bin/sh
# Writes the seed inputs of fuzz_qcow2 (layout: the comment at the top of fuzz_qcow2.c) into
# fuzz/corpus/qcow2/: small qcow2 images made by qemu-img/qemu-io (v3, v2, compressed, 1-bit
# refcounts; 512-byte clusters keep them a few KiB), each behind a list of operations, once
# writable and once read-only. Needs qemu-utils.
set -eu
out=$(cd "$(dirname "$0")" && pwd)/corpus/qcow2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
qemu-img create -q -f qcow2 -o cluster_size=512 v3 64k
qemu-io -f qcow2 -c 'write -P 7 0 2k' -c 'write -z 8k 1k' v3 >/dev/null
qemu-img create -q -f qcow2 -o cluster_size=512,compat=0.10 v2 64k
qemu-io -f qcow2 -c 'write -P 9 1k 2k' v2 >/dev/null
qemu-img create -q -f raw r.raw 64k
qemu-io -f raw -c 'write -P 3 0 4k' r.raw >/dev/null
qemu-img convert -c -O qcow2 -o cluster_size=512 r.raw c
qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=1 rc1 32k
mkdir -p "$out"
/usr/bin/python3 - "$out" <<'PY'
import struct, sys
# kind (0 read, 1 read_sync, 2 write, 3 discard, 4/5 write-zeroes, 6 flush), sector, sectors-1
ops = [(0, 0, 15), (2, 3, 7), (1, 0, 31), (3, 8, 3), (4, 20, 1), (5, 40, 9), (6, 0, 0), (0, 0, 127)]
body = bytes([len(ops)]) + b"".join(struct.pack("<BIB", k, o, n) for k, o, n in ops)
for name in ["v3", "v2", "c", "rc1"]:
    data = open(name, "rb").read()
    open(f"{sys.argv[1]}/{name}", "wb").write(bytes([0]) + body + data)
    open(f"{sys.argv[1]}/{name}-ro", "wb").write(bytes([1]) + body + data)
PY
