#!/usr/bin/python3
# Writes the seed inputs of fuzz_virtq (layout: the comment at the top of fuzz_virtq.c) into
# fuzz/corpus/virtq/. Each is a valid queue of 8 at desc 0x0, avail 0x100, used 0x200 with a
# few chains available; the fuzzer mutates from there.
import os
import struct

DESC, AVAIL, USED, DATA, TABLE = 0x0, 0x100, 0x200, 0x400, 0x300
NEXT, WRITE, INDIRECT = 1, 2, 4


def seed(chains, flags=0, start=0, written=0, off=0, tables=(), ram=0x800):
    mem = bytearray(ram)
    heads = []
    for head, descs in chains:
        heads.append(head)
        for i, (addr, length, fl, nxt) in descs:
            struct.pack_into("<QIHH", mem, DESC + 16 * i, addr, length, fl, nxt)
    for base, descs in tables:
        for i, (addr, length, fl, nxt) in enumerate(descs):
            struct.pack_into("<QIHH", mem, base + 16 * i, addr, length, fl, nxt)
    for n, head in enumerate(heads):
        struct.pack_into("<H", mem, AVAIL + 4 + 2 * ((start + n) % 8), head)
    struct.pack_into("<H", mem, AVAIL + 2, (start + len(heads)) & 0xFFFF)
    struct.pack_into("<H", mem, USED + 2, start & 0xFFFF)
    hdr = struct.pack("<BHHHHBHBBH", 3, 0, DESC, AVAIL, USED, flags, start, written, off, 0)
    assert len(hdr) == 16
    return hdr + bytes(mem)


seeds = {
    "single": seed([(0, [(0, (DATA, 64, 0, 0))])]),
    "mixed": seed([(2, [(2, (DATA, 16, NEXT, 3)), (3, (DATA + 0x40, 32, NEXT | WRITE, 5)),
                        (5, (DATA + 0x80, 32, WRITE, 0))]),
                   (0, [(0, (DATA + 0x100, 8, WRITE, 0))])], written=1, off=4),
    "indirect": seed([(1, [(1, (TABLE, 48, INDIRECT, 0))])], flags=2,
                     tables=[(TABLE, [(DATA, 16, NEXT, 1), (DATA + 0x20, 16, NEXT | WRITE, 2),
                                      (DATA + 0x40, 16, WRITE, 0)])]),
    "event_idx_wrap": seed([(i, [(i, (DATA + 0x10 * i, 16, WRITE, 0))]) for i in range(4)],
                           flags=1 | 8, start=65534, written=200),
    "region_split": seed([(0, [(0, (0x8000 - 8, 16, WRITE, 0))])]),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "virtq")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
