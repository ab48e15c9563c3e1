"""virtio-blk under Linux (one boot; on kvm_pvm it takes a minute or two): the guest boots from
the ext4 root filesystem image (root=/dev/vda, read-only disk), with three more disks: vdb
writable with two queues (one vCPU: Linux uses one, but negotiates MQ; the second queue is
exercised by test_blk.py) and a serial, vdc read-only holding a pattern the test wrote, vdd the
script the guest runs (`sh /dev/vdd`: the kernel allows init only a few words of command line).
The guest copies vdc's first MiB to vdb and writes a line of its own at sector 4096, reads vdc's
sha256, tries to write vdc, and reports what sysfs says about the disks. The test then checks
vdb's image on the host (sha256) and that vdc's did not change."""
import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import default_cmdline

pytestmark = pytest.mark.usefixtures("kvm")

# A boot here takes 2-3 minutes, much more when the host is loaded.
BOOT_TIMEOUT = int(os.environ.get("CUBICLE_E2E_BOOT_TIMEOUT", "1200"))
MiB = 1 << 20
GUEST_LINE = "written-by-the-guest"
# Every process costs seconds in this guest: shell builtins where possible, four dd/sha256sum.
GUEST_SCRIPT = f"""
read -r a < /sys/block/vda/ro; read -r b < /sys/block/vdb/ro; read -r c < /sys/block/vdc/ro
read -r s < /sys/block/vdb/serial; read -r f < /sys/block/vdb/device/features
case $f in ????????????1*) mq=1 ;; *) mq=0 ;; esac
echo vda-ro=$a vdb-ro=$b vdc-ro=$c vdb-mq=$mq vdb-serial=$s
sha256sum /dev/vdc
dd if=/dev/vdc of=/dev/vdb bs=65536 count=16 conv=fsync 2>/dev/null; echo copy-rc=$?
echo {GUEST_LINE} > /tmp/line
dd if=/tmp/line of=/dev/vdb bs=512 seek=4096 conv=fsync 2>/dev/null; echo line-rc=$?
dd if=/dev/zero of=/dev/vdc bs=512 count=1 conv=fsync 2>/dev/null; echo rowrite-rc=$?
exit 0
"""


def host_pattern(n):
    return bytes(((o * 31 + (o >> 12)) & 0xff) for o in range(n))


@pytest.fixture(scope="module")
def boot(tmp_path_factory, cubicle_bin, guest_env):
    if "CUBICLE_ROOTFS" not in guest_env:
        pytest.fail("build/guest.env has no CUBICLE_ROOTFS: run `make guest`", pytrace=False)
    d = tmp_path_factory.mktemp("linux-blk")
    data, src = d / "data.raw", d / "pattern.raw"
    data.write_bytes(bytes(4 * MiB))
    src.write_bytes(host_pattern(2 * MiB))
    script = d / "script.raw"
    script.write_bytes(GUEST_SCRIPT.encode().ljust(4096, b"\0"))
    serial, err = d / "serial.log", d / "stderr.log"
    cmdline = f"{default_cmdline()} root=/dev/vda ro rootfstype=ext4 -- sh /dev/vdd"
    argv = [cubicle_bin, "--kernel", guest_env["CUBICLE_VMLINUX"], "--cmdline", cmdline,
            "--memory", "size=256M",
            "--disk", f"path={guest_env['CUBICLE_ROOTFS']},readonly=on",
            f"path={data},num_queues=2,serial=cubicle-data",
            f"path={src},readonly=on", f"path={script},readonly=on",
            "--serial", f"file={serial}", "--console", "off"]
    with open(err, "wb") as e:
        try:
            rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=e, stderr=e,
                                timeout=BOOT_TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            rc = None
    out = serial.read_text(errors="replace") if serial.exists() else ""
    describe = (f"argv: {' '.join(argv)}\nreturncode {rc}\n--- serial (tail) ---\n"
                f"{out[-4000:]}\n--- stderr ---\n{err.read_text(errors='replace')[-2000:]}")
    return {"rc": rc, "out": out, "describe": describe, "data": data, "src": src}


def field(out, key):
    m = re.search(rf"{key}=(\S+)", out)
    return m.group(1) if m else None


def test_boots_from_ext4_root(boot):
    assert boot["rc"] == 0, boot["describe"]
    assert "cubicle-guest: userspace up" in boot["out"], boot["describe"]
    assert re.search(r"EXT4-fs \(vda\): mounted filesystem", boot["out"]), boot["describe"]


def test_disks_as_linux_sees_them(boot):
    out = boot["out"]
    assert field(out, "vda-ro") == "1", boot["describe"]
    assert field(out, "vdb-ro") == "0", boot["describe"]
    assert field(out, "vdc-ro") == "1", boot["describe"]
    assert field(out, "vdb-mq") == "1", boot["describe"]  # VIRTIO_BLK_F_MQ negotiated
    assert field(out, "vdb-serial") == "cubicle-data", boot["describe"]


def test_host_pattern_read_by_guest(boot):
    want = hashlib.sha256(host_pattern(2 * MiB)).hexdigest()
    assert f"{want}  /dev/vdc" in boot["out"], boot["describe"]


def test_guest_writes_reach_the_image(boot):
    assert field(boot["out"], "copy-rc") == "0", boot["describe"]
    assert field(boot["out"], "line-rc") == "0", boot["describe"]
    data = Path(boot["data"]).read_bytes()
    assert hashlib.sha256(data[:MiB]).hexdigest() == \
        hashlib.sha256(host_pattern(MiB)).hexdigest(), boot["describe"]
    assert data[4096 * 512:4096 * 512 + len(GUEST_LINE) + 1] == (GUEST_LINE + "\n").encode()
    assert data[MiB:4096 * 512] == bytes(4096 * 512 - MiB)


def test_readonly_enforced(boot):
    assert field(boot["out"], "rowrite-rc") not in (None, "0"), boot["describe"]
    assert Path(boot["src"]).read_bytes() == host_pattern(2 * MiB)
