"""virtio-blk end to end with the device test guest (tests/guest/scenarios/virtio_blk.c): the
test writes an image with known contents, the guest reads, writes, flushes, zeroes, discards
and asks for the id, and the test checks the image on the host afterwards. Also the hostile
virtqueue scenarios against virtio-blk, --disk errors a user sees, and the image lock."""
import hashlib
import os
import re
import shutil
import subprocess

import pytest

from test_device_guest import HOSTILE_RING, assert_all_passed

pytestmark = pytest.mark.usefixtures("kvm")

SECTOR = 512
IMAGE_SIZE = 1 << 20


def pattern(start, length):
    """What the test writes: byte o of the disk is (7 o + o / 512) mod 256."""
    return bytes(((o * 7 + (o >> 9)) & 0xff) for o in range(start, start + length))


def guest_pattern(start, length):
    """What the guest writes to sectors 16-23 (blk_guest_pattern)."""
    return bytes(((o * 13 + 5) & 0xff) for o in range(start, start + length))


@pytest.fixture
def raw_image(tmp_path):
    path = tmp_path / "disk.raw"
    path.write_bytes(pattern(0, IMAGE_SIZE))
    return path


def run_guest(run_cubicle, device_guest, words, *disks, timeout=60):  # noqa: F811
    args = ["--kernel", device_guest, "--cmdline", words, "--serial", "tty", "--console", "off"]
    for d in disks:
        args += ["--disk", d]
    return run_cubicle(*args, timeout=timeout)


def check_guest_writes(data):
    """The image after the virtio-blk scenario on a writable disk."""
    assert data[:16 * SECTOR] == pattern(0, 16 * SECTOR)
    assert data[16 * SECTOR:24 * SECTOR] == guest_pattern(16 * SECTOR, 8 * SECTOR)
    assert data[24 * SECTOR:32 * SECTOR] == pattern(24 * SECTOR, 8 * SECTOR)
    assert data[32 * SECTOR:40 * SECTOR] == bytes(8 * SECTOR)
    assert data[40 * SECTOR:64 * SECTOR] == pattern(40 * SECTOR, 24 * SECTOR)
    # 64-71 were discarded: zeros or the old data, both allowed
    assert data[72 * SECTOR:] == pattern(72 * SECTOR, IMAGE_SIZE - 72 * SECTOR)


@pytest.mark.parametrize("engine", ["io_uring", "thread-pool"])
def test_raw_read_write_flush_zeroes_discard_id(run_cubicle, device_guest, raw_image,  # noqa: F811
                                                engine):
    opts = f"path={raw_image},serial=e2e-serial-42"
    if engine == "thread-pool":
        opts += ",_disable_io_uring=on"
    vm = run_guest(run_cubicle, device_guest, "virtio-blk", opts)
    assert_all_passed(vm, 1)
    assert f"PASS virtio-blk capacity={IMAGE_SIZE // SECTOR} serial=e2e-serial-42 ro=0 queue=0" \
        in vm.stdout, vm.describe()
    check_guest_writes(raw_image.read_bytes())


def test_readonly(run_cubicle, device_guest, raw_image):  # noqa: F811
    before = hashlib.sha256(raw_image.read_bytes()).hexdigest()
    vm = run_guest(run_cubicle, device_guest, "virtio-blk", f"path={raw_image},readonly=on")
    assert_all_passed(vm, 1)
    assert "ro=1" in vm.stdout, vm.describe()
    assert hashlib.sha256(raw_image.read_bytes()).hexdigest() == before


def test_direct(run_cubicle, device_guest, raw_image):  # noqa: F811
    """direct=on (O_DIRECT) with the guest's page-aligned buffers (the unaligned, bounced case
    is in tests/unit/test_blk.c)."""
    vm = run_guest(run_cubicle, device_guest, "virtio-blk", f"path={raw_image},direct=on")
    assert_all_passed(vm, 1)
    check_guest_writes(raw_image.read_bytes())


@pytest.fixture
def loop_4k(raw_image):
    """raw_image behind a loop device with 4096-byte logical blocks (root only)."""
    if os.geteuid() != 0 or not shutil.which("losetup"):
        pytest.skip("a loop device needs root and losetup")
    r = subprocess.run(["losetup", "--find", "--show", "--sector-size", "4096", str(raw_image)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no loop device: {r.stderr.strip()}")
    dev = r.stdout.strip()
    yield dev
    subprocess.run(["losetup", "-d", dev], capture_output=True)  # the test may have done it


def test_direct_4k_sectors_unaligned(run_cubicle, device_guest, raw_image, loop_4k):  # noqa: F811
    """direct=on on a disk of 4 KiB logical blocks, the guest writing 512-byte sectors 32 at a
    time: each is a read-modify-write of its block, eight share each block, and not one may be
    lost; then 512-byte reads."""
    n = 1000
    vm = run_guest(run_cubicle, device_guest,
                   f"blk-bench {n} blk-mode=write blk-bs=512 blk-qd=32",
                   f"path={loop_4k},direct=on")
    assert_all_passed(vm, 1)
    vm = run_guest(run_cubicle, device_guest, f"blk-bench {n} blk-mode=read blk-bs=512 blk-qd=32",
                   f"path={loop_4k},direct=on,readonly=on")
    assert_all_passed(vm, 1)
    subprocess.run(["losetup", "-d", loop_4k], check=True)  # written back to the file
    data = raw_image.read_bytes()
    assert data[:n * SECTOR] == bytes(n * SECTOR)  # the guest's buffer is zeros
    assert data[n * SECTOR:] == pattern(n * SECTOR, IMAGE_SIZE - n * SECTOR)


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img (qemu-utils) not installed")
def test_qcow2(run_cubicle, device_guest, raw_image, tmp_path):  # noqa: F811
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw_image),
                    str(qcow2)], check=True)
    vm = run_guest(run_cubicle, device_guest, "virtio-blk", f"path={qcow2}")
    if "qcow2" in vm.stderr and "not supported" in vm.stderr:
        pytest.xfail("qcow2 images not supported by this build's image layer yet")
    assert_all_passed(vm, 1)
    subprocess.run(["qemu-img", "check", str(qcow2)], check=True, capture_output=True)
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2), str(back)],
                   check=True)
    check_guest_writes(back.read_bytes())


def test_hostile_virtqueue_blk(run_cubicle, device_guest, raw_image):  # noqa: F811
    """The hostile ring scenarios against virtio-blk: NEEDS_RESET or the bad chain ignored,
    then a GET_ID after reset works."""
    vm = run_guest(run_cubicle, device_guest, "hostile-target=blk " + " ".join(HOSTILE_RING),
                   f"path={raw_image}")
    assert_all_passed(vm, len(HOSTILE_RING))
    for s in HOSTILE_RING:
        assert f"PASS {s} blk: " in vm.stdout, vm.describe()


def test_two_disks_and_queues(run_cubicle, device_guest, raw_image, tmp_path):  # noqa: F811
    """Two disks, the first with two queues: the scenario runs on its second queue; both disks
    are on the bus. Asking for a queue the disk lacks fails."""
    other = tmp_path / "other.raw"
    other.write_bytes(bytes(IMAGE_SIZE))
    vm = run_guest(run_cubicle, device_guest, "pci-enum virtio-blk blk-queue=1",
                   f"path={raw_image},num_queues=2", f"path={other},id=second")
    assert_all_passed(vm, 2)
    assert "ro=0 queue=1" in vm.stdout, vm.describe()
    check_guest_writes(raw_image.read_bytes())
    assert len(set(re.findall(r"pci (\S+) 1af4:1042", vm.stdout))) == 2, vm.describe()


def test_errors(run_cubicle, device_guest, tmp_path):  # noqa: F811
    vm = run_guest(run_cubicle, device_guest, "smoke", f"path={tmp_path}/missing.raw")
    assert vm.proc.returncode != 0
    assert "--disk" in vm.stderr and "missing.raw" in vm.stderr, vm.describe()
    vm = run_guest(run_cubicle, device_guest, "smoke", "path=/x,colour=blue")
    assert vm.proc.returncode != 0
    assert "--disk: unknown key 'colour'" in vm.stderr, vm.describe()
    vm = run_guest(run_cubicle, device_guest, "smoke", "path=/x,queue_size=100")
    assert vm.proc.returncode != 0
    assert "--disk: queue_size must be a power of two" in vm.stderr, vm.describe()


def test_image_locked(vm_factory, run_cubicle, device_guest, raw_image):  # noqa: F811
    """A second cubicle on an image the first one has open for writing is refused."""
    first = vm_factory("--kernel", device_guest, "--cmdline", "blk-bench 100000000 blk-qd=1",
                       "--serial", "tty", "--console", "off", "--disk", f"path={raw_image}")
    try:
        # The guest runs only once the VM is built, so its first line means the lock is held.
        assert first.wait_for("testguest: cmdline", timeout=30), first.describe()
        second = run_guest(run_cubicle, device_guest, "smoke", f"path={raw_image}")
        assert first.proc.poll() is None, first.describe()
        assert second.proc.returncode != 0, second.describe()
        assert "locked" in second.stderr, second.describe()
    finally:
        first.kill()


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img (qemu-utils) not installed")
def test_qcow2_grows_under_the_loop_filter(run_cubicle, device_guest, tmp_path):  # noqa: F811
    """Writes to an empty qcow2 image allocate clusters past the end of the file (ftruncate on
    the VMM loop thread, under its seccomp filter), and the image stays consistent."""
    qcow2 = tmp_path / "empty.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), str(IMAGE_SIZE)],
                   check=True)
    before = qcow2.stat().st_size
    vm = run_guest(run_cubicle, device_guest, "blk-bench 64 blk-mode=write blk-bs=16384",
                   f"path={qcow2}")
    assert "PASS blk-bench 64 requests" in vm.stdout, vm.describe()
    assert vm.proc.returncode == 0, vm.describe()
    assert qcow2.stat().st_size >= before + IMAGE_SIZE, vm.describe()
    subprocess.run(["qemu-img", "check", str(qcow2)], check=True, capture_output=True)
