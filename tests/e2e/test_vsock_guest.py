"""virtio-vsock with the device test guest (tests/guest/): the guest speaks the vsock protocol on
the rings itself (scenario virtio-vsock: config space, connect, echo with credit, RST, an
unknown port) against a host echo service on PATH_5000, and the hostile virtqueue scenarios
attack the device's transmit queue (hostile-target=vsock). Milliseconds each: the scenarios
run natively at CPL3."""
import os
import re
import socket
import tempfile
import threading

import pytest

from test_device_guest import HOSTILE_RING, assert_all_passed

pytestmark = pytest.mark.usefixtures("kvm")

HOST_PORT = 5000


class EchoService:
    """A host program on PATH_<port>: every connection gets its bytes back."""

    def __init__(self, path):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(8)
        self.connections = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        with c:
            try:
                while b := c.recv(65536):
                    c.sendall(b)
            except OSError:
                pass

    def close(self):
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


@pytest.fixture
def vsock_dir():
    with tempfile.TemporaryDirectory(prefix=f"cubicle-vsockg-{os.getpid()}-") as d:
        yield d


def test_virtio_vsock_protocol(run_cubicle, device_guest, vsock_dir, record_property):
    path = os.path.join(vsock_dir, "v.sock")
    svc = EchoService(f"{path}_{HOST_PORT}")
    try:
        vm = run_scenarios_vsock(run_cubicle, device_guest, path, "virtio-vsock 100")
    finally:
        svc.close()
    m = re.search(r"PASS virtio-vsock (.*)", vm.stdout)
    if m:
        record_property("virtio_vsock", m.group(1).strip())
    assert_all_passed(vm, 1)
    assert svc.connections == 1
    assert not os.path.exists(path), "the listener's socket outlives cubicle"


def test_virtio_vsock_no_host_service(run_cubicle, device_guest, vsock_dir):
    """Without the host service the guest's REQUEST is refused: the scenario fails cleanly
    (an RST, not a hang) and cubicle exits normally."""
    vm = run_scenarios_vsock(run_cubicle, device_guest, os.path.join(vsock_dir, "v.sock"),
                             "virtio-vsock 1")
    assert vm.proc.returncode == 0, vm.describe()
    assert "FAIL virtio-vsock: got op 3, expected 2" in vm.stdout, vm.describe()


def run_scenarios_vsock(run_cubicle, device_guest, path, words):
    return run_cubicle("--kernel", device_guest, "--cmdline", words, "--serial", "tty",
                       "--console", "off", "--vsock", f"cid=3,socket={path}", timeout=60)


def test_hostile_vsock_tx_queue(run_cubicle, device_guest, vsock_dir):
    vm = run_scenarios_vsock(run_cubicle, device_guest, os.path.join(vsock_dir, "v.sock"),
                             "hostile-target=vsock " + " ".join(HOSTILE_RING))
    for s in HOSTILE_RING:
        assert re.search(rf"PASS {s} vsock: ", vm.stdout), vm.describe()
    assert_all_passed(vm, len(HOSTILE_RING))


@pytest.mark.parametrize("value,message", [
    ("cid=2,socket={d}/v.sock", "--vsock: cid 2 is out of range (3 to 4294967294; 0-2 are reserved)"),
    ("cid=3", "--vsock: 'socket' is required"),
    ("cid=3,socket={d}/no/such/dir/v.sock", "--vsock: cannot listen on '{d}/no/such/dir/v.sock': "
     "No such file or directory"),
])
def test_vsock_option_errors(run_cubicle, device_guest, vsock_dir, value, message):
    vm = run_cubicle("--kernel", device_guest, "--serial", "tty", "--console", "off",
                     "--vsock", value.format(d=vsock_dir))
    assert vm.proc.returncode == 1, vm.describe()
    assert f"cubicle: error: {message.format(d=vsock_dir)}" in vm.stderr, vm.describe()
