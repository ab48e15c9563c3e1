"""virtio-balloon and virtio-pmem with the device test guest (tests/guest/, scenarios at CPL3,
milliseconds per run): the device scenarios and the hostile virtqueue scenarios against each
(hostile-target=balloon attacks the inflate queue, hostile-target=pmem the request queue)."""
import re

import pytest

from test_device_guest import HOSTILE_RING, assert_all_passed

pytestmark = pytest.mark.usefixtures("kvm")

MiB = 1 << 20
MAGIC = b"CUBICLE-PMEM"
WORD = b"guest-stored-this"


def pmem_file(tmp_path, name="pmem.img"):
    p = tmp_path / name
    p.write_bytes(MAGIC + b"\0" * (2 * MiB - len(MAGIC)))
    return p


def run(run_cubicle, device_guest, words, *extra):  # noqa: F811
    return run_cubicle("--kernel", device_guest, "--cmdline", words, "--serial", "tty",
                       "--console", "off", *extra, timeout=60)


def test_virtio_balloon(run_cubicle, device_guest, tmp_path):  # noqa: F811
    """num_pages from --balloon size=, inflated pages come back zero (given back to the host)."""
    vm = run(run_cubicle, device_guest, "virtio-balloon 3072", "--balloon", "size=12M")
    assert "PASS virtio-balloon num_pages 3072, 2 pages given back" in vm.stdout, vm.describe()
    assert_all_passed(vm, 1)


@pytest.mark.parametrize("discard", [False, True])
def test_virtio_pmem(run_cubicle, device_guest, tmp_path, discard):  # noqa: F811
    """The file's bytes at config space's start, above RAM; a guest store reaches the file
    after FLUSH, or never with discard_writes=on."""
    img = pmem_file(tmp_path)
    opt = f"file={img}" + (",discard_writes=on" if discard else "")
    vm = run(run_cubicle, device_guest, "virtio-pmem", "--pmem", opt)
    assert re.search(r"PASS virtio-pmem region [0-9a-f]+ size 200000, flush ok", vm.stdout), \
        vm.describe()
    assert_all_passed(vm, 1)
    data = img.read_bytes()
    assert data[:len(MAGIC)] == MAGIC
    assert (data[4096:4096 + len(WORD)] == WORD) != discard, vm.describe()


@pytest.mark.parametrize("target", ["balloon", "pmem"])
def test_hostile_rings(run_cubicle, device_guest, tmp_path, target):  # noqa: F811
    """Loops, buffers outside RAM, wrapping addresses, avail jumps, nested indirect tables and
    read-only buffers on the device's queue: needs-reset or ignored, never a crash, and the
    device serves a good request after a reset."""
    words = " ".join([f"hostile-target={target}", *HOSTILE_RING])
    vm = run(run_cubicle, device_guest, words, "--balloon", "size=4M", "--pmem",
             f"file={pmem_file(tmp_path)}")
    for s in HOSTILE_RING:
        assert re.search(rf"PASS {s} {target}: ", vm.stdout), vm.describe()
    assert_all_passed(vm, len(HOSTILE_RING))
