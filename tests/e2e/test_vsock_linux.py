"""virtio-vsock end to end with the real Linux guest: one shared boot for the module (a boot takes
minutes on this host). The guest runs guest/tools/vsock-echo.c: first it connects to the host
(CID 2, port 5000 → the Unix listener at PATH_5000) and prints the reply, then it serves an
echo service on vsock port 1234, which the host reaches through PATH with "CONNECT 1234\\n".

Checked on the one boot: the guest → host connection; host → guest echo; a port nobody listens
on in the guest (refused: the host sees EOF without "OK"); ten connections at once while an
eleventh has a host reader that does not read, which must stall only that one connection and
lose nothing once it reads again."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import default_cmdline

pytestmark = pytest.mark.usefixtures("kvm")

BOOT_TIMEOUT = int(os.environ.get("CUBICLE_E2E_BOOT_TIMEOUT", "900"))
GUEST_PORT = 1234
HOST_PORT = 5000
GUEST_CMD = (f"vsock-echo send 2 {HOST_PORT} hi-from-guest; vsock-echo serve {GUEST_PORT}")
IO_TIMEOUT = 120  # the guest's kernel is emulated here: ~50 KB/s of echo


class LinuxVsock:
    def __init__(self, cubicle_bin, guest_env, tmp):
        self.dir = Path(tmp)
        self.path = str(self.dir / "v.sock")
        self.serial = self.dir / "serial"
        self.stderr = self.dir / "stderr"
        self.from_guest = []
        self.host_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.host_listener.bind(f"{self.path}_{HOST_PORT}")
        self.host_listener.listen(4)
        self.host_thread = threading.Thread(target=self._host_service, daemon=True)
        self.host_thread.start()
        argv = [cubicle_bin, "--kernel", guest_env["CUBICLE_VMLINUX"],
                "--initramfs", guest_env["CUBICLE_INITRAMFS"],
                "--cmdline", f"{default_cmdline()} -- {GUEST_CMD}",
                "--vsock", f"cid=3,socket={self.path}",
                "--serial", f"file={self.serial}", "--console", "off"]
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err,
                                         stderr=err, start_new_session=True)

    def _host_service(self):
        """The host's side of the guest's connection: reads to EOF, answers in upper case."""
        self.host_listener.settimeout(BOOT_TIMEOUT)
        try:
            c, _ = self.host_listener.accept()
        except OSError:
            return
        with c:
            c.settimeout(IO_TIMEOUT)
            data = b""
            while chunk := c.recv(4096):
                data += chunk
            self.from_guest.append(data)
            c.sendall(data.upper())

    @property
    def output(self):
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""

    def describe(self):
        err = self.stderr.read_text(errors="replace") if self.stderr.exists() else ""
        return f"--- serial ---\n{self.output[-3000:]}\n--- stderr ---\n{err[-3000:]}"

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if text in self.output:
                return True
            time.sleep(0.5)
        return text in self.output

    def connect(self, port):
        """A host connection to guest port @port: returns (socket, the OK line or b'')."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(IO_TIMEOUT)
        s.connect(self.path)
        s.sendall(f"CONNECT {port}\n".encode())
        line = b""
        while not line.endswith(b"\n"):
            b = s.recv(1)
            if not b:
                break
            line += b
        return s, line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.host_listener.close()


@pytest.fixture(scope="module")
def vm(cubicle_bin, guest_env):
    with tempfile.TemporaryDirectory(prefix=f"cubicle-vsock-{os.getpid()}-") as tmp:
        v = LinuxVsock(cubicle_bin, guest_env, tmp)
        try:
            if not v.wait_for("vsock-echo: listening", BOOT_TIMEOUT):
                pytest.fail(f"the guest's echo service never came up\n{v.describe()}")
            yield v
        finally:
            v.stop()
        assert v.proc.returncode == 0, v.describe()
        err = v.stderr.read_text(errors="replace")
        assert "Sanitizer" not in err and "needs reset" not in err, v.describe()


def echo(s, payload):
    got = bytearray()

    def reader():
        while len(got) < len(payload):
            b = s.recv(65536)
            if not b:
                return
            got.extend(b)
    t = threading.Thread(target=reader)
    t.start()
    s.sendall(payload)
    t.join(IO_TIMEOUT)
    return bytes(got)


def test_guest_to_host(vm):
    assert "vsock-echo: reply: HI-FROM-GUEST" in vm.output, vm.describe()
    assert vm.from_guest == [b"hi-from-guest"]


def test_host_to_guest_echo(vm):
    s, line = vm.connect(GUEST_PORT)
    with s:
        assert re.fullmatch(rb"OK \d+\n", line), (line, vm.describe())
        assert int(line[3:]) >= 1 << 30
        payload = os.urandom(64 * 1024)
        assert echo(s, payload) == payload, vm.describe()
        # a half-close: the guest's echo service sees EOF and closes its side
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b""


def test_no_guest_listener(vm):
    s, line = vm.connect(4321)
    with s:
        assert line == b"", vm.describe()  # refused by the guest (RST): closed without OK


def test_ten_connections_and_a_stalled_reader(vm):
    # The stalled connection: the host writes and never reads the echo, until nothing moves.
    stalled, line = vm.connect(GUEST_PORT)
    assert line.startswith(b"OK "), vm.describe()
    stalled.setblocking(False)
    sent = bytearray()
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 10:
        chunk = os.urandom(65536)
        try:
            n = stalled.send(chunk)
            sent += chunk[:n]
            idle_since = time.monotonic()
        except BlockingIOError:
            time.sleep(0.5)
        assert len(sent) < 16 << 20, "16 MiB in and still not stalled: nothing bounds it"

    # Ten more, at once, while it is stalled.
    results = [None] * 10

    def one(i):
        s, ok = vm.connect(GUEST_PORT)
        with s:
            payload = os.urandom(8192)
            results[i] = (ok.startswith(b"OK "), echo(s, payload) == payload)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(IO_TIMEOUT * 2)
    assert results == [(True, True)] * 10, (results, vm.describe())

    # The stalled reader reads: everything comes back, in order.
    stalled.setblocking(True)
    stalled.settimeout(IO_TIMEOUT)
    got = bytearray()
    while len(got) < len(sent):
        b = stalled.recv(65536)
        assert b, f"EOF after {len(got)} of {len(sent)} bytes\n{vm.describe()}"
        got += b
    assert bytes(got) == bytes(sent)
    stalled.close()
