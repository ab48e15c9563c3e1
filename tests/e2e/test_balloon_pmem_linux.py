"""Linux end-to-end for virtio-pmem and virtio-balloon: one shared boot (a minute or more on
kvm_pvm) with two pmem devices and a balloon, several checks on it.

- pmem0: an ext4 image built here with mkfs.ext4 -d, discard_writes=on; the guest mounts it
  with -o dax, reads a file, writes and deletes files: the image's sha256 must not change.
- pmem1: a raw file the guest writes through /dev/pmem1 with fsync (FLUSH): the bytes reach
  the file.
- balloon: size=64M at start (no deflate_on_oom, so the guest's MemTotal shrinks by it) and
  free_page_reporting=on: the guest fills a tmpfs with 160 MiB, then deletes it; the host's
  RSS of the cubicle process must rise and then fall back as the guest reports the freed pages
  and the device gives them back (madvise)."""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import Vm, default_cmdline

pytestmark = pytest.mark.usefixtures("kvm")

BOOT_TIMEOUT = int(os.environ.get("CUBICLE_E2E_BOOT_TIMEOUT", "1200"))
MiB = 1 << 20
FILL_MB = 48
HELLO = "hello from the host's ext4 image"
PMEM1_WORD = "cubicle-pmem1-flushed"
# Linux passes at most 32 words of the command line to init: the script lives on pmem0 itself
# (copied to /tmp first, so that pmem0 can be unmounted while it runs).
GUEST_CMD = "mkdir /mnt && mount -t ext4 -o dax /dev/pmem0 /mnt && cp /mnt/t.sh /tmp && sh /tmp/t.sh"
GUEST_SCRIPT = f"""echo PMEM0-MOUNTED
grep pmem0 /proc/mounts
cat /mnt/hello.txt
echo guest-was-here > /mnt/new.txt
rm /mnt/hello.txt
dd if=/dev/zero of=/mnt/big bs=1M count=2 2>/dev/null
sync
ls /mnt
umount /mnt
echo {PMEM1_WORD} | dd of=/dev/pmem1 conv=fsync 2>/dev/null && echo PMEM1-WRITTEN
grep MemTotal /proc/meminfo
mkdir /t
mount -t tmpfs -o size=400M none /t
dd if=/dev/zero of=/t/fill bs=1M count={FILL_MB} 2>/dev/null
echo FILLED
sleep 6
rm /t/fill
echo FREED
sleep 25
echo BALLOON-DONE
"""


def rss_bytes(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


class Boot:
    def __init__(self, cubicle_bin, guest_env, tmp):
        self.tmp = tmp
        tree = tmp / "tree"
        tree.mkdir()
        (tree / "hello.txt").write_text(HELLO + "\n")
        (tree / "t.sh").write_text(GUEST_SCRIPT)
        self.img = tmp / "root.ext4"
        subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-d", str(tree), str(self.img),
                        "64M"], check=True, capture_output=True)
        self.img_sha = hashlib.sha256(self.img.read_bytes()).hexdigest()
        self.raw = tmp / "raw.img"
        self.raw.write_bytes(b"\0" * (2 * MiB))
        argv = [cubicle_bin, "--kernel", guest_env["CUBICLE_VMLINUX"],
                "--initramfs", guest_env["CUBICLE_INITRAMFS"],
                "--cmdline", f"{default_cmdline()} -- {GUEST_CMD}",
                "--memory", "size=512M", "--serial", "tty", "--console", "off",
                "--pmem", f"file={self.img},discard_writes=on",
                "--pmem", f"file={self.raw}",
                "--balloon", "size=64M,free_page_reporting=on"]
        self.vm = Vm(argv)
        self.rss = {}  # marker -> RSS (bytes) when it appeared, plus "min_after_freed"
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self):
        pid = self.vm.proc.pid
        deadline = time.monotonic() + BOOT_TIMEOUT
        low = None
        while self.vm.proc.poll() is None and time.monotonic() < deadline:
            out = self.vm.stdout
            if "Kernel panic" in out:
                time.sleep(2)
                break
            r = rss_bytes(pid)
            for marker in ("FILLED", "FREED"):
                if f"\n{marker}" in out and marker not in self.rss and r:
                    self.rss[marker] = r
            if "FREED" in self.rss and r:
                low = r if low is None else min(low, r)
                self.rss["min_after_freed"] = low
            time.sleep(0.25)
        self.vm.kill()  # no-op when it powered off by itself
        self.vm.wait(30)
        self.done.set()

    def result(self):
        assert self.done.wait(BOOT_TIMEOUT + 60), "boot never finished"
        return self.vm


@pytest.fixture(scope="module")
def boot(cubicle_bin, guest_env):
    tmp = Path(tempfile.mkdtemp(prefix="cubicle-e2e-balloon-pmem-"))
    b = Boot(cubicle_bin, guest_env, tmp)
    yield b
    b.vm.kill()
    shutil.rmtree(tmp, ignore_errors=True)


def after_marker(vm):
    return vm.stdout.split("cubicle-guest: userspace up", 1)[-1]


def test_pmem_ext4_dax_discard_writes(boot):
    vm = boot.result()
    out = after_marker(vm)
    assert "PMEM0-MOUNTED" in out, vm.describe()
    mounts = [l for l in out.splitlines() if l.startswith("/dev/pmem0 ")]
    assert mounts and "dax" in mounts[0], vm.describe()
    assert HELLO in out, vm.describe()
    assert re.search(r"^big\s.*new\.txt|new\.txt", out, re.MULTILINE), vm.describe()
    # The guest wrote, deleted and synced: the file must be as the host made it.
    assert hashlib.sha256(boot.img.read_bytes()).hexdigest() == boot.img_sha
    assert vm.proc.returncode == 0, vm.describe()


def test_pmem_flush_reaches_file(boot):
    vm = boot.result()
    assert "PMEM1-WRITTEN" in after_marker(vm), vm.describe()
    assert boot.raw.read_bytes()[:len(PMEM1_WORD)] == PMEM1_WORD.encode(), vm.describe()


def test_pmem_region_not_ram(boot):
    """Linux found both regions where config space put them and did not take them for RAM."""
    vm = boot.result()
    out = vm.stdout
    assert "pmem0" in out and "pmem1" in out or "PMEM1-WRITTEN" in out, vm.describe()
    kb = int(re.search(r"^MemTotal:\s+(\d+) kB", out, re.MULTILINE).group(1))
    assert kb < 512 * 1024, vm.describe()


def test_balloon_inflated_at_boot(boot):
    """size=64M without deflate_on_oom: the guest's MemTotal drops by what it gave."""
    vm = boot.result()
    kb = int(re.search(r"^MemTotal:\s+(\d+) kB", vm.stdout, re.MULTILINE).group(1))
    print(f"guest MemTotal with a 64M balloon: {kb} kB")
    assert kb < (512 - 64) * 1024, vm.describe()


def test_free_page_reporting_gives_memory_back(boot, record_property):
    vm = boot.result()
    out = after_marker(vm)
    assert "BALLOON-DONE" in out, vm.describe()
    filled, low = boot.rss.get("FILLED"), boot.rss.get("min_after_freed")
    assert filled and low, f"rss samples {boot.rss}\n" + vm.describe()
    back = filled - low
    print(f"cubicle RSS: {filled / MiB:.0f} MiB with {FILL_MB} MiB of tmpfs in the guest, "
          f"{low / MiB:.0f} MiB after it was freed ({back / MiB:.0f} MiB given back)")
    record_property("rss_filled_mib", round(filled / MiB))
    record_property("rss_after_free_mib", round(low / MiB))
    assert back > FILL_MB * MiB // 2, f"rss samples {boot.rss}\n" + vm.describe()
