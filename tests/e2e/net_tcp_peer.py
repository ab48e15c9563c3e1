"""The host side of the Linux guest's TCP check (test_linux_net.py), run in the test's network
namespace: serves the guest its script (SCRIPT, on HOST_IP port 5000: the kernel command line
holds at most 32 words for /init), sends SIZE random bytes to the guest and prints their
SHA-256; with HOST_PORT > 0 it then receives SIZE bytes back on that port and prints theirs.

    net_tcp_peer.py SIZE GUEST_IP GUEST_PORT HOST_IP HOST_PORT SCRIPT
"""
import errno
import hashlib
import os
import socket
import sys
import time

TIMEOUT = 1800
SCRIPT_PORT = 5000


def retry(fn, what):
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return fn()
        except OSError as e:
            if time.monotonic() > deadline:
                raise SystemExit(f"FAIL {what}: {e}")
            time.sleep(0.5 if e.errno != errno.EADDRNOTAVAIL else 0.05)


def main():
    size, gip, gport, hip, hport = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                                    sys.argv[4], int(sys.argv[5]))
    script = open(sys.argv[6], "rb").read()
    data = os.urandom(size)
    print(f"host-sha256 {hashlib.sha256(data).hexdigest()}", flush=True)

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    retry(lambda: srv.bind((hip, SCRIPT_PORT)), "bind")  # the address comes with cubicle's TAP
    srv.listen(1)
    if hport:
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((hip, hport))
        lst.listen(1)
    print("listening", flush=True)
    srv.settimeout(TIMEOUT)
    c, _ = srv.accept()
    c.sendall(script)
    c.close()
    srv.close()
    print("script served", flush=True)

    def connect():
        s = socket.create_connection((gip, gport), timeout=5)
        return s
    s = retry(connect, "connect to the guest")
    s.settimeout(TIMEOUT)
    t0 = time.monotonic()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # the guest's nc closes when it has everything
    s.close()
    print(f"sent {size} bytes in {time.monotonic() - t0:.1f} s", flush=True)
    if not hport:
        return 0

    lst.settimeout(TIMEOUT)
    c, _ = lst.accept()
    c.settimeout(TIMEOUT)
    h, got, t0 = hashlib.sha256(), 0, time.monotonic()
    while got < size:
        chunk = c.recv(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        got += len(chunk)
    c.close()  # busybox nc may wait for the peer to close after its stdin ends
    print(f"received {got} bytes in {time.monotonic() - t0:.1f} s", flush=True)
    print(f"returned-sha256 {h.hexdigest()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
