#!/usr/bin/python3
# Writes the seed inputs of fuzz_vsock (the step script described at the top of fuzz_vsock.c)
# into fuzz/corpus/vsock/: a host connection accepted by the guest with data both ways, a guest
# connection to the host service at PATH_7, credit exchanges, half-closes and resets.
import os
import struct

HOST_BASE = 0x80  # host port byte: 2^30 + n


def hdr(op, gp, hp, payload=b"", flags=0, buf_alloc=65536, fwd=0):
    return (struct.pack("<BBBBBHII", 1, op, flags, gp, hp, len(payload), buf_alloc, fwd) +
            payload)


def rx(n=4, size=4096):
    return struct.pack("<BBH", 6, n, size)


REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = 1, 2, 3, 4, 5, 6, 7
seeds = {
    "host_connect": rx() + bytes([2, 9]) + hdr(RESPONSE, 9, HOST_BASE) +
    bytes([3, 0, 4, 4, 0]) + hdr(RW, 9, HOST_BASE, b"hello") + bytes([7]) +
    hdr(SHUTDOWN, 9, HOST_BASE, flags=3) + rx(),
    "guest_connect": rx() + hdr(REQUEST, 20, 7) + hdr(RW, 20, 7, b"x" * 300) +
    hdr(CREDIT_REQUEST, 20, 7) + hdr(CREDIT_UPDATE, 20, 7, fwd=10) + hdr(RST, 20, 7),
    "no_listener": rx() + hdr(REQUEST, 21, 8) + hdr(RW, 21, 8, b"zz"),
    "credit": rx(2, 200) + bytes([2, 5]) + hdr(RESPONSE, 5, HOST_BASE, buf_alloc=100) +
    bytes([3, 0, 8]) + rx(6, 64) + hdr(CREDIT_UPDATE, 5, HOST_BASE, buf_alloc=100, fwd=100) +
    bytes([5, 0, 4]) + rx(),
    "raw": rx() + struct.pack("<BH", 0, 44 | 0x8000) + bytes(44) + bytes([8]) + rx(),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "vsock")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
