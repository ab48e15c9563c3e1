"""virtio-net end to end with the device test guest: real TAP devices in a network namespace
the test creates (and deletes), frames with known contents both ways against an AF_PACKET
socket on the TAP (net_peer.py), the hostile virtqueue scenarios on the transmit queue, TAP
fds handed over with fd=, and the errors a user gets for a TAP cubicle cannot use.

Everything happens inside namespaces named after the test process's pid; nothing touches the
host's own interfaces."""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import Vm

pytestmark = pytest.mark.usefixtures("kvm")

HERE = Path(__file__).resolve().parent
PY = "/usr/bin/python3"
GUEST_MAC = "52:54:00:ab:cd:ef"
FRAMES = 200

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE = 0x0002, 0x1000, 0x4000, 0x0100


@pytest.fixture
def netns(request):
    """A fresh network namespace (loopback up), deleted afterwards."""
    name = f"cubnet{os.getpid()}-{request.node.name[-20:]}"[:40]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def tap_name(tag):
    return f"ct{tag}{os.getpid() % 100000}"[:15]


def in_ns(ns, *argv):
    return ["ip", "netns", "exec", ns, *argv]


def start_vm(ns, cubicle_bin, device_guest, words, *net_args, pass_fds=()):
    argv = [cubicle_bin, "--kernel", device_guest, "--cmdline", words, "--serial", "tty",
            "--console", "off"]
    for a in net_args:
        argv += ["--net", a]
    return Vm(in_ns(ns, *argv), pass_fds=pass_fds)


def peer(ns, *args):
    return subprocess.Popen(in_ns(ns, PY, str(HERE / "net_peer.py"), *args),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(vm, p, timeout=90):
    rc = vm.wait(timeout)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return rc, out


def test_frames_both_ways(netns, cubicle_bin, device_guest):
    """The guest receives FRAMES frames from the host and sends FRAMES back, every byte checked
    at both ends; the MAC given with mac= is the one the guest reads."""
    tap = tap_name("f")
    p = peer(netns, "check", tap, str(FRAMES), GUEST_MAC)
    vm = start_vm(netns, cubicle_bin, device_guest, f"virtio-net {FRAMES}",
                  f"tap={tap},ip=10.77.0.1,mask=255.255.255.0,mac={GUEST_MAC}")
    rc, out = finish(vm, p)
    assert rc == 0, vm.describe()
    assert f"PASS virtio-net {FRAMES} frames each way" in vm.stdout, vm.describe() + out
    assert f"mac {GUEST_MAC}" in vm.stdout, vm.describe()
    assert "DONE passed=1 failed=0" in vm.stdout, vm.describe()
    assert f"ok {FRAMES} frames each way" in out, out + vm.describe()


def test_hostile_transmit_queue(netns, cubicle_bin, device_guest):
    """The hostile virtqueue scenarios on the transmit queue: NEEDS_RESET or nothing used,
    then a good frame after a reset."""
    words = ("hostile-target=net hostile-loop hostile-oob hostile-overflow hostile-avail-jump "
             "hostile-nested-indirect hostile-ro-write")
    vm = start_vm(netns, cubicle_bin, device_guest, words, f"tap={tap_name('h')}")
    assert vm.wait(60) == 0, vm.describe()
    assert "FAIL" not in vm.stdout, vm.describe()
    assert "DONE passed=6 failed=0" in vm.stdout, vm.describe()


def open_tap_in(ns, name, queues):
    """Opens @queues TAP queue fds of @name inside @ns (a child enters the namespace and
    sends the fds back over a Unix socket)."""
    code = f"""
import fcntl, os, socket, struct, array
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM, fileno={{fd}})
fds = []
for i in range({queues}):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    flags = {IFF_TAP | IFF_NO_PI | IFF_VNET_HDR} | ({IFF_MULTI_QUEUE} if {queues} > 1 else 0)
    fcntl.ioctl(fd, {TUNSETIFF}, struct.pack("16sH", b"{name}", flags))
    fds.append(fd)
os.system("ip link set {name} up")
s.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
"""
    import array
    import socket
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    subprocess.run(in_ns(ns, PY, "-c", code.format(fd=b.fileno())), pass_fds=[b.fileno()],
                   check=True)
    b.close()
    fds = array.array("i")
    _, anc, _, _ = a.recvmsg(1, socket.CMSG_LEN(queues * fds.itemsize))
    a.close()
    for level, typ, data in anc:
        fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return list(fds)


def test_fds_handed_over(netns, cubicle_bin, device_guest):
    """fd=[a,b]: two queues of a multi-queue TAP opened by someone else; the first pair
    carries the frames (the test guest uses one pair)."""
    tap = tap_name("d")
    fds = open_tap_in(netns, tap, 2)
    try:
        p = peer(netns, "check", tap, "50", GUEST_MAC)
        vm = start_vm(netns, cubicle_bin, device_guest, "virtio-net 50",
                      f"fd=[{fds[0]},{fds[1]}],mac={GUEST_MAC}", pass_fds=fds)
        rc, out = finish(vm, p)
    finally:
        for fd in fds:
            os.close(fd)
    assert rc == 0, vm.describe()
    assert "PASS virtio-net 50 frames each way" in vm.stdout, vm.describe() + out
    assert "ok 50 frames each way" in out, out


def test_tap_errors(netns, cubicle_bin, device_guest):
    """What a user sees for a TAP cubicle cannot use: one line naming --net."""
    tap = tap_name("e")
    subprocess.run(in_ns(netns, "ip", "tuntap", "add", "dev", tap, "mode", "tap"), check=True)
    vm = start_vm(netns, cubicle_bin, device_guest, "smoke", f"tap={tap},num_queues=4")
    assert vm.wait(30) != 0
    assert f"--net: cannot open TAP '{tap}'" in vm.stderr, vm.describe()
    assert "multi_queue" in vm.stderr, vm.describe()

    vm = start_vm(netns, cubicle_bin, device_guest, "smoke", "fd=[0]")
    assert vm.wait(30) != 0
    assert "--net: fd 0 is not a TAP device" in vm.stderr, vm.describe()

    vm = start_vm(netns, cubicle_bin, device_guest, "smoke", "num_queues=3")
    assert vm.wait(30) != 0
    assert "--net: num_queues 3 must be even" in vm.stderr, vm.describe()
