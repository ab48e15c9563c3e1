"""The host side of the test guest's virtio-net scenarios (tests/guest/scenarios/virtio_net.c),
run inside the test's network namespace: an AF_PACKET socket on the TAP.

    net_peer.py check IFACE COUNT GUEST_MAC   send COUNT test frames to the guest, then
                                              receive COUNT from it and check every byte
    net_peer.py sink IFACE COUNT              count COUNT test frames from the guest (bench)

Prints "ready" once bound (after the TAP has a carrier), then "ok ..." or "FAIL ...".
"""
import errno
import os
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETHERTYPE = 0x88b5
MAGIC = 0x4e425543
PACKET_OUTGOING = 4
TIMEOUT = 60


def frame_len(seq):
    return 60 + (seq * 97) % 1455


def build(seq, length, dst, src):
    head = dst + src + struct.pack(">HIII", ETHERTYPE, MAGIC, seq, length)
    body = bytes(((seq * 31 + i * 7 + (i >> 8)) & 0xff) for i in range(26, length))
    return head + body


def wait_carrier(iface):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            with open(f"/sys/class/net/{iface}/carrier") as f:
                if f.read().strip() == "1":
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"FAIL {iface}: no carrier within {TIMEOUT} s")


def open_socket(iface):
    wait_carrier(iface)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.settimeout(TIMEOUT)
    with open(f"/sys/class/net/{iface}/address") as f:
        host_mac = bytes.fromhex(f.read().strip().replace(":", ""))
    print("ready", flush=True)
    return s, host_mac


def receive(s, count, guest_mac, check):
    got = 0
    while got < count:
        try:
            data, addr = s.recvfrom(65536)
        except OSError as e:
            # The VM may be gone already (its TAP with it) while frames it sent wait in this
            # socket: the kernel reports ENETDOWN once, then hands them over.
            if e.errno != errno.ENETDOWN:
                raise
            continue
        if addr[2] == PACKET_OUTGOING or len(data) < 26:
            continue
        if struct.unpack(">H", data[12:14])[0] != ETHERTYPE:
            continue
        if not check:
            got += 1
            continue
        magic, seq, length = struct.unpack(">III", data[14:26])
        want = build(got, frame_len(got), b"\xff" * 6, guest_mac)
        # A short frame may come padded to the 60-byte minimum: compare what was sent.
        if (magic, seq, length) != (MAGIC, got, frame_len(got)) or data[:length] != want:
            raise SystemExit(f"FAIL frame {got}: magic {magic:#x} seq {seq} len {length} "
                             f"({len(data)} bytes received)")
        got += 1
    return got


def main():
    mode, iface, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s, host_mac = open_socket(iface)
    if mode == "check":
        guest_mac = bytes.fromhex(sys.argv[4].replace(":", ""))
        for seq in range(count):
            s.send(build(seq, frame_len(seq), guest_mac, host_mac))
        receive(s, count, guest_mac, True)
        print(f"ok {count} frames each way", flush=True)
    elif mode == "sink":
        t0 = time.monotonic()
        receive(s, count, None, False)
        print(f"ok {count} frames in {time.monotonic() - t0:.6f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
