#!/usr/bin/python3
# Writes the seed inputs of fuzz_blk (layout: the comment at the top of fuzz_blk.c) into
# fuzz/corpus/blk/: one valid request of each type in descriptors 0-2 (header at window 0,
# data at 0x1000, status at 0x3000; addresses are window offsets), and a few chains at once.
import os
import struct

NEXT, WRITE = 1, 2
IN, OUT, FLUSH, GET_ID, DISCARD, WZ = 0, 1, 4, 8, 11, 13


def seed(flags, heads, descs, ram):
    d = bytearray(16 * 16)
    for i, (addr, length, fl, nxt) in enumerate(descs):
        struct.pack_into("<QIHH", d, 16 * i, addr, length, fl, nxt)
    h = bytes(heads) + bytes(32 - len(heads))
    return bytes([flags, len(heads) - 1]) + h + bytes(d) + bytes(ram)


def request(rtype, sector, dlen, dflags, payload=b""):
    ram = bytearray(0x3100)
    struct.pack_into("<IIQ", ram, 0, rtype, 0, sector)
    ram[0x1000:0x1000 + len(payload)] = payload
    descs = [(0, 16, NEXT, 1)]
    if dlen:
        descs.append((0x1000, dlen, dflags | NEXT, 2))
        descs.append((0x3000, 1, WRITE, 0))
    else:
        descs[0] = (0, 16, NEXT, 2)
        descs += [(0, 0, 0, 0), (0x3000, 1, WRITE, 0)]
    return descs, ram


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "blk")
    os.makedirs(out, exist_ok=True)
    seeds = {
        "read": request(IN, 4, 4096, WRITE),
        "write": request(OUT, 8, 1024, 0, bytes(range(256)) * 4),
        "flush": request(FLUSH, 0, 0, 0),
        "get_id": request(GET_ID, 0, 20, WRITE),
        "discard": request(DISCARD, 0, 16, 0, struct.pack("<QII", 16, 8, 0)),
        "write_zeroes": request(WZ, 0, 32, 0,
                                struct.pack("<QII", 16, 8, 1) + struct.pack("<QII", 40, 2, 0)),
        "past_end": request(IN, 127, 1024, WRITE),
    }
    for name, (descs, ram) in seeds.items():
        for flags, suffix in ((0, ""), (2, "_pool"), (9, "_ro_q1")):
            with open(os.path.join(out, name + suffix), "wb") as f:
                f.write(seed(flags, [0], descs, ram))
    descs, ram = request(IN, 0, 512, WRITE)
    with open(os.path.join(out, "same_chain_thrice"), "wb") as f:
        f.write(seed(0, [0, 0, 0], descs, ram))


if __name__ == "__main__":
    main()
