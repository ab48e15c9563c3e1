"""virtio-net with the real Linux guest, one boot (a boot takes a minute or more on kvm_pvm
hosts): two NICs on TAPs that cubicle creates inside a network namespace the test creates, the
first with num_queues=4 (two pairs) and mtu=9000 (VIRTIO_NET_F_MTU; fewer frames for the
emulated guest kernel to handle), both with a MAC the user chose. The guest pings the host on
each, receives 10 MiB (CUBICLE_E2E_NET_BYTES) of random bytes over TCP from the host and sends
them back; the host prints the SHA-256 of what it sent and of what came back, the guest of what
it received, and all three must agree (net_tcp_peer.py)."""
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import default_cmdline

pytestmark = pytest.mark.usefixtures("kvm")

HERE = Path(__file__).resolve().parent
TIMEOUT = int(os.environ.get("CUBICLE_E2E_NET_TIMEOUT", "1800"))
# The 10 MiB, host -> guest and back. What sets the pace is the guest kernel, not the
# VMM: on kvm_pvm hosts its CPL0 code is emulated. Measured mid-transfer (/proc/PID/task): the
# vCPU thread never halts (34 voluntary context switches since boot, always runnable) and in
# 5 s got 1.1 s of CPU on a loaded host, while cubicle's loop thread had used 0.1 s since boot;
# the TCP sender is receive-window limited 96% of the time (ss -ti). Without any network the
# same guest moves 1 MiB through a pipe (dd | cat) in 1.5 s and clears 10 MiB (dd /dev/zero to
# /dev/null) in 1.3 s: its kernel's rep-string copies run at ~8 MB/s. TCP gets ~400 KB/s per
# host core the guest has: 10 MiB took ~65 s one way at load ~4, 136 s in and 128 s out under
# nice 10 at load 6. CUBICLE_E2E_NET_BYTES makes it smaller on a host slower still.
SIZE = int(os.environ.get("CUBICLE_E2E_NET_BYTES", str(10 * 1024 * 1024)))
MAC0, MAC1 = "52:54:00:c0:ff:01", "52:54:00:c0:ff:02"
# The kernel passes /init at most 32 words: the command line brings eth0 up and fetches the
# rest from the host (net_tcp_peer.py serves it on port 5000).
GUEST_CMD = "ip link set eth0 up; ip addr add 10.78.0.2/24 dev eth0; nc 10.78.0.1 5000 >/s; . /s"
GUEST_SCRIPT = """\
ip link set eth1 up
ip addr add 10.79.0.2/24 dev eth1
cat /sys/class/net/eth0/address /sys/class/net/eth1/address
grep -o 'virtio[0-9]*-[a-z]*put[.][0-9]*' /proc/interrupts
ping -c 2 10.78.0.1
ping -c 2 10.79.0.1
cat /sys/class/net/eth0/mtu
nc -l -p 5001 >/d
sha256sum /d
nc 10.78.0.1 5002 </d
echo net-done
"""


@pytest.fixture(scope="module")
def boot(cubicle_bin, guest_env):
    ns = f"cublnx{os.getpid()}"
    tag = os.getpid() % 100000
    tmp = Path(tempfile.mkdtemp(prefix="cubicle-e2e-net-"))
    serial, stderr, script = tmp / "serial", tmp / "stderr", tmp / "script"
    script.write_text(GUEST_SCRIPT)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        argv = ["ip", "netns", "exec", ns, cubicle_bin, "--kernel", guest_env["CUBICLE_VMLINUX"],
                "--initramfs", guest_env["CUBICLE_INITRAMFS"], "--memory", "size=512M",
                "--cmdline", f"{default_cmdline()} -- {GUEST_CMD}",
                "--serial", f"file={serial}", "--console", "off",
                "--net", f"tap=cla{tag},ip=10.78.0.1,mask=255.255.255.0,mac={MAC0},"
                         "num_queues=4,mtu=9000",
                "--net", f"tap=clb{tag},ip=10.79.0.1,mask=255.255.255.0,mac={MAC1}"]
        peer = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3",
                                 str(HERE / "net_tcp_peer.py"), str(SIZE), "10.78.0.2", "5001",
                                 "10.78.0.1", "5002", str(script)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        t0 = time.monotonic()
        with open(stderr, "wb") as err:
            vm = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        try:
            rc = vm.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            vm.kill()
            rc = vm.wait()
        try:
            peer_out, _ = peer.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            peer.kill()
            peer_out, _ = peer.communicate()
        out = serial.read_text(errors="replace") if serial.exists() else ""
        info = (f"returncode {rc} after {time.monotonic() - t0:.0f} s\n--- serial (tail) ---\n"
                f"{out[-5000:]}\n--- stderr ---\n{stderr.read_text(errors='replace')[-3000:]}"
                f"\n--- host peer ---\n{peer_out}")
        yield {"rc": rc, "out": out, "peer": peer_out, "info": info}
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_boots_and_finishes(boot):
    assert "net-done" in boot["out"], boot["info"]
    assert "cubicle-guest: exit status 0" in boot["out"], boot["info"]
    assert boot["rc"] == 0, boot["info"]


def test_user_macs_and_queues(boot):
    out = boot["out"]
    assert MAC0 in out and MAC1 in out, boot["info"]
    # two queue pairs on the first NIC (one vCPU: Linux uses one, but sets up both), one on
    # the second
    names = set(re.findall(r"(virtio\d+)-input\.1", out))
    assert len(names) == 1, boot["info"]
    assert f"{names.pop()}-output.1" in out, boot["info"]


def test_ping_both_nics(boot):
    out = boot["out"]
    for ip in ("10.78.0.1", "10.79.0.1"):
        assert re.search(rf"PING {re.escape(ip)} [^P]*?2 packets transmitted, 2 packets received",
                         out, re.DOTALL), boot["info"]


def test_tcp_10mib_checksums(boot):
    host = re.search(r"host-sha256 ([0-9a-f]{64})", boot["peer"])
    guest = re.search(r"^([0-9a-f]{64})\s+/d\r?$", boot["out"], re.MULTILINE)
    back = re.search(r"returned-sha256 ([0-9a-f]{64})", boot["peer"])
    assert host and guest and back, boot["info"]
    assert guest.group(1) == host.group(1), boot["info"]
    assert back.group(1) == host.group(1), boot["info"]
    assert f"sent {SIZE} bytes" in boot["peer"], boot["info"]
    assert f"received {SIZE} bytes" in boot["peer"], boot["info"]


def test_mtu_offered(boot):
    assert re.search(r"^9000\r?$", boot["out"], re.MULTILINE), boot["info"]
