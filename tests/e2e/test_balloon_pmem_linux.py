"""Linux end-to-end for virtio-pmem and virtio-balloon: one shared boot (a minute or more on
kvm_pvm) with two pmem devices and a balloon, several checks on it.

- pmem0: an ext4 image built here with mkfs.ext4 -d, discard_writes=on; the guest mounts it
  with -o dax, reads a file, writes and deletes files: the image's sha256 must not change.
- pmem1: a raw file the guest writes through /dev/pmem1 with fsync (FLUSH): the bytes reach
  the file.
- balloon: size=320M at start (no deflate_on_oom, so the guest's MemTotal shrinks by it) and
  free_page_reporting=on: the guest fills a tmpfs with 48 MiB, then deletes it; the host's
  RSS of the cubicle process must rise and then fall back as the guest reports the freed pages
  and the device gives them back (madvise). The host polls that RSS until more than half came
  back and it stopped falling (or REPORT_DEADLINE_S passed), then lets the guest go on by
  writing GO_WORD into pmem1's file, which the guest polls with O_DIRECT reads of /dev/pmem1.
- balloon through the API (vm.resize desired_balloon, vm.counters): the guest turns free page
  reporting off (its order beyond the largest free block: from there on only the balloon gives
  memory back) and touches all its free memory but a margin; the host inflates the balloon by
  INFLATE_MB and its RSS of guest RAM (/proc/PID/smaps) must drop by most of that; the guest
  fills what it has left; the host deflates to 0, the guest sees its MemTotal back and writes
  REFILL_MB more: that RSS must rise by most of it, not before.
Guest RAM has transparent huge pages (see above MEMORY)."""
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

from api_client import Api
from conftest import Vm, default_cmdline

pytestmark = pytest.mark.usefixtures("kvm")

BOOT_TIMEOUT = int(os.environ.get("CUBICLE_E2E_BOOT_TIMEOUT", "1200"))
MiB = 1 << 20
FILL_MB = 48
# Guest RAM has transparent huge pages (thp=on, the default). The host's khugepaged collapses a
# 2 MiB range with a single page left into a whole huge page again (max_ptes_none 511 by
# default), about 16 MiB every 10 s here: unless the balloon takes the ranges it gives back in
# part out of THP, the RSS it gave back creeps up again (free page reporting gave back 3 to 10
# MiB of 48 here, and deflating brought 73 MiB back before the guest wrote anything).
MEMORY = 512 * MiB
# Touching guest memory is slow here (about a second per MiB on a loaded kvm_pvm host): a large
# balloon from boot keeps what the guest has, and so fills, small.
BOOT_BALLOON = 320 * MiB
INFLATE_MB = 128  # what vm.resize adds to the balloon
MARGIN_MB = 24  # the free memory the guest leaves untouched when it fills its tmpfs
REFILL_MB = 128  # what the guest writes once deflated: it did not fit while inflated
HELLO = "hello from the host's ext4 image"
PMEM1_WORD = "cubicle-pmem1-flushed"
# Free page reporting: how long the host waits for the freed tmpfs to come back at most, and
# for how long the RSS must have stopped falling once more than half of it is back.
REPORT_DEADLINE_S = 180
REPORT_SETTLE_S = 10
# The host's go-ahead to the guest after it: a word at GO_OFFSET (a 4 KiB block) of pmem1.
GO_WORD = "cubicle-host-go"
GO_OFFSET = MiB
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
mount -t tmpfs -o size=480M none /t
dd if=/dev/zero of=/t/fill bs=1M count={FILL_MB} 2>/dev/null
echo FILLED
sleep 6
rm /t/fill
echo FREED
i=0
until dd if=/dev/pmem1 bs=4096 skip={GO_OFFSET // 4096} count=1 iflag=direct 2>/dev/null |
	grep -q {GO_WORD} || [ $i -ge {2 * REPORT_DEADLINE_S} ]; do
	sleep 1
	i=$((i + 1))
done
echo BALLOON-DONE
echo 11 >/sys/module/page_reporting/parameters/page_reporting_order
mem() {{ while read -r k v u; do [ "$k" = "$1:" ] && return; done </proc/meminfo; }}
fill() {{
	mem MemFree
	n=$((v / 1024 - {MARGIN_MB}))
	[ -n "$2" ] && n=$2
	dd if=/dev/zero of=/t/$1 bs=1M count=$n 2>/dev/null
}}
show() {{ mem MemTotal; t=$v; mem MemFree; echo "$1 MemTotal $t kB MemFree $v kB"; }}
while mem MemTotal; a=$v; sleep 2; mem MemTotal; [ $v != $a ]; do :; done
fill a
rm /t/a
show TOUCHED
total=$t
i=0
while mem MemTotal; [ $v -gt $((total - {INFLATE_MB * 1024})) ] && [ $i -lt 300 ]; do
	sleep 1
	i=$((i + 1))
done
show INFLATED
fill b
show HELD
while mem MemTotal; [ $v -lt $((total + {BOOT_BALLOON >> 10})) ] && [ $i -lt 600 ]; do
	sleep 1
	i=$((i + 1))
done
show DEFLATED
fill c {REFILL_MB}
show REFILLED
sleep 5
echo BALLOON-API-DONE
"""


def rss_bytes(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def guest_ram_rss(pid):
    """The Rss of guest RAM in bytes, or None: the anonymous memory mappings (not I/O) of
    process @pid that cubicle keeps out of core dumps (MADV_DONTDUMP), one until the balloon
    splits it (it takes 2 MiB ranges out of transparent huge pages)."""
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return None
    found, anon, rss = None, False, 0
    for line in text.splitlines():
        m = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(\S*)", line)
        if m:
            anon, rss = not m.group(1), 0
        elif line.startswith("Rss:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmFlags:") and anon and " dd" in line and " io" not in line:
            found = (found or 0) + rss
    return found


def balloon_counters(api):
    r = api.get("vm.counters")
    assert r.status == 200, r
    return r.json["balloon"]


def wait_actual(api, target, timeout=300):
    """Polls vm.counters until the driver says it holds @target bytes; returns the seconds
    it took, or None (the last counters in the message) on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if balloon_counters(api)["actual_bytes"] == target:
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


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
                "--memory", f"size={MEMORY >> 20}M", "--serial", "tty", "--console", "off",
                "--pmem", f"file={self.img},discard_writes=on",
                "--pmem", f"file={self.raw}",
                "--balloon", f"size={BOOT_BALLOON >> 20}M,free_page_reporting=on",
                "--api-socket", str(tmp / "api.sock")]
        self.vm = Vm(argv)
        self.api = Api(tmp / "api.sock")
        self.resize = {}  # figures of the vm.resize sequence, or "error"
        self.resize_thread = threading.Thread(target=self._resize, daemon=True)
        self.resize_thread.start()
        self.rss = {}  # marker -> RSS (bytes) when it appeared, plus "min_after_freed"
        self.rss_series = []  # (seconds, MiB) from FREED to BALLOON-DONE
        self.report = {}  # "freed_at", "low_at" (monotonic), "go_s": when the guest was let go
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
            if "FREED" in self.rss and r and "\nBALLOON-DONE" not in out:
                now = time.monotonic()
                self.report.setdefault("freed_at", now)
                if low is None or r < low:
                    low = r
                    self.report["low_at"] = now
                self.rss["min_after_freed"] = low
                self.rss_series.append((round(now - self.vm.started, 1), r >> 20))
                if "go_s" not in self.report and self._reporting_over(now, low):
                    self._let_guest_go(now)
            time.sleep(0.25)
        self.vm.kill()  # no-op when it powered off by itself
        self.vm.wait(30)
        self.done.set()

    def _reporting_over(self, now, low):
        """Whether the wait for free page reporting is over: more than half of the freed
        tmpfs came back and the RSS has not fallen for REPORT_SETTLE_S, or the deadline passed
        (the test then fails on what came back)."""
        back = self.rss["FILLED"] - low if "FILLED" in self.rss else 0
        settled = now - self.report["low_at"] >= REPORT_SETTLE_S
        return (back > FILL_MB * MiB // 2 and settled) or \
            now - self.report["freed_at"] >= REPORT_DEADLINE_S

    def _let_guest_go(self, now):
        self.report["go_s"] = now - self.report["freed_at"]
        self.report["low_s"] = self.report["low_at"] - self.report["freed_at"]
        with open(self.raw, "r+b") as f:
            f.seek(GO_OFFSET)
            f.write(GO_WORD.encode() + b"\n")

    def _resize(self):
        try:
            self._resize_steps(self.resize)
        except Exception as e:  # reported by the test, with the guest's output
            self.resize["error"] = repr(e)

    def _resize_steps(self, res):
        """Inflate by INFLATE_MB once the guest touched its free memory, deflate to 0 once it
        saw the inflation and filled what it had left; the RSS of guest RAM at each step, how
        long the driver took."""
        if self.vm.wait_for("\nBALLOON-DONE", timeout=BOOT_TIMEOUT):
            res["at_done"] = balloon_counters(self.api)
        self._marker("TOUCHED")
        res["before"] = balloon_counters(self.api)
        res["rss_touched"] = guest_ram_rss(self.vm.proc.pid)
        self._resize_to(res, "inflated", BOOT_BALLOON + INFLATE_MB * MiB)
        self._marker("HELD")
        res["rss_held"] = guest_ram_rss(self.vm.proc.pid)
        self._resize_to(res, "deflated", 0)
        self._marker("REFILLED")
        res["rss_refilled"] = guest_ram_rss(self.vm.proc.pid)

    def _marker(self, marker):
        if not self.vm.wait_for(f"\n{marker}", timeout=300):
            raise AssertionError(f"the guest never printed {marker}")

    def _resize_to(self, res, step, target):
        """vm.resize to @target, then waits for the driver: res[step + "_s"] (None if it never
        got there), "rss_" + step, the counters in res[step], "info_" + step (vm.info)."""
        r = self.api.put("vm.resize", {"desired_balloon": target})
        assert r.status == 204, r
        res[step + "_s"] = wait_actual(self.api, target)
        res["rss_" + step] = guest_ram_rss(self.vm.proc.pid)
        res[step] = balloon_counters(self.api)
        res["info_" + step] = self.api.get("vm.info").json["memory_actual_size"]

    def result(self):
        assert self.done.wait(BOOT_TIMEOUT + 60), "boot never finished"
        self.resize_thread.join(30)
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
    """--balloon size= without deflate_on_oom: the guest's MemTotal drops by what it gave."""
    vm = boot.result()
    kb = int(re.search(r"^MemTotal:\s+(\d+) kB", vm.stdout, re.MULTILINE).group(1))
    print(f"guest MemTotal with a {BOOT_BALLOON >> 20}M balloon: {kb} kB")
    assert kb < (512 - 64) * 1024, vm.describe()


def test_free_page_reporting_gives_memory_back(boot, record_property):
    vm = boot.result()
    out = after_marker(vm)
    assert "BALLOON-DONE" in out, vm.describe()
    filled, low = boot.rss.get("FILLED"), boot.rss.get("min_after_freed")
    assert filled and low, f"rss samples {boot.rss}\n" + vm.describe()
    back = filled - low
    rep = boot.report
    assert "go_s" in rep, f"the host never let the guest go on: {rep}\n" + vm.describe()
    print(f"cubicle RSS: {filled / MiB:.0f} MiB with {FILL_MB} MiB of tmpfs in the guest, "
          f"{low / MiB:.0f} MiB after it was freed ({back / MiB:.0f} MiB given back, the "
          f"lowest {rep['low_s']:.1f} s after FREED; the guest went on after {rep['go_s']:.1f} s)")
    record_property("rss_filled_mib", round(filled / MiB))
    record_property("rss_after_free_mib", round(low / MiB))
    record_property("reporting_low_s", round(rep["low_s"], 1))
    assert back > FILL_MB * MiB // 2, \
        (f"rss samples {boot.rss}, after FREED {boot.rss_series[::4]}, balloon counters at "
         f"BALLOON-DONE {boot.resize.get('at_done')}\n" + vm.describe())


def guest_line(vm, marker):
    """(MemTotal, MemFree) in kB from the guest's "@marker MemTotal N kB MemFree M kB" line."""
    m = re.search(rf"^{marker} MemTotal (\d+) kB MemFree (\d+) kB", after_marker(vm),
                  re.MULTILINE)
    assert m, f"no {marker} line\n" + vm.describe()
    return int(m.group(1)), int(m.group(2))


def resize_result(boot, step):
    """The boot's vm and the figures of its vm.resize sequence, which got to @step ("inflated"
    or "deflated") and saw the driver reach the target there."""
    vm = boot.result()
    res = boot.resize
    assert "error" not in res and step in res, f"{res}\n" + vm.describe()
    assert res[step + "_s"] is not None, f"the driver never reached the target: {res[step]}"
    return vm, res


def record_figures(record_property, res, step, *rss):
    """Records how long the driver took for @step and the RSS figures named @rss, in MiB."""
    record_property(f"balloon_{step}_s", round(res[step + "_s"], 2))
    for key in rss:
        record_property(key + "_mib", round(res[key] / MiB))


def test_balloon_resize_inflate_gives_memory_back(boot, record_property):
    """vm.resize desired_balloon inflates: the driver gives the pages (actual), the guest's
    MemTotal shrinks by them, the host's RSS of guest RAM drops by most of the inflation."""
    vm, res = resize_result(boot, "inflated")
    x = INFLATE_MB * MiB
    touched, inflated = res["rss_touched"], res["rss_inflated"]
    drop = touched - inflated
    total0, free0 = guest_line(vm, "TOUCHED")
    total1, free1 = guest_line(vm, "INFLATED")
    c0, c1 = res["before"], res["inflated"]
    print(f"inflate {BOOT_BALLOON >> 20} -> {(BOOT_BALLOON + x) >> 20} MiB: the driver took "
          f"{res['inflated_s']:.2f} s; RSS of guest RAM {touched / MiB:.0f} -> "
          f"{inflated / MiB:.0f} MiB ({drop / MiB:.0f} MiB given back for {INFLATE_MB}); "
          f"guest MemTotal {total0} -> {total1} kB, MemFree {free0} -> {free1} kB; device "
          f"discarded {(c1['discarded_bytes'] - c0['discarded_bytes']) / MiB:.0f} MiB "
          f"(reported {(c1['reported_bytes'] - c0['reported_bytes']) / MiB:.0f} MiB of it); "
          f"vm.info memory_actual_size {res['info_inflated'] >> 20} MiB")
    record_figures(record_property, res, "inflated", "rss_touched", "rss_inflated")
    assert c0["actual_bytes"] == BOOT_BALLOON, c0
    assert c1["actual_bytes"] == BOOT_BALLOON + x, c1
    assert c1["inflated_pages"] - c0["inflated_pages"] == x // 4096, (c0, c1)
    assert c1["bad_pfns"] == 0 and c1["discard_failed"] == 0, c1
    assert total0 - total1 == x // 1024, vm.describe()  # no deflate_on_oom: out of MemTotal
    assert res["info_inflated"] == MEMORY - BOOT_BALLOON - x, res
    assert drop >= x * 7 // 10, \
        (f"inflating the balloon by {INFLATE_MB} MiB gave back only {drop / MiB:.0f} MiB of "
         f"host RSS (guest RAM {touched / MiB:.0f} -> {inflated / MiB:.0f} MiB)")


def test_balloon_resize_deflate_memory_usable_again(boot, record_property):
    """vm.resize desired_balloon=0 deflates: actual back to 0, the guest's MemTotal back, and
    the guest writes REFILL_MB, which did not fit while inflated (it had filled its free memory
    then): the host's RSS of guest RAM rises by most of it."""
    vm, res = resize_result(boot, "deflated")
    assert "rss_refilled" in res, f"{res}\n" + vm.describe()
    held = BOOT_BALLOON + INFLATE_MB * MiB
    deflated, refilled = res["rss_deflated"], res["rss_refilled"]
    rise = refilled - deflated
    total0, _ = guest_line(vm, "TOUCHED")
    total1, free1 = guest_line(vm, "HELD")
    total2, free2 = guest_line(vm, "DEFLATED")
    print(f"deflate {held >> 20} -> 0 MiB: the driver took {res['deflated_s']:.2f} s; RSS of "
          f"guest RAM {res['rss_held'] / MiB:.0f} -> {deflated / MiB:.0f} MiB, then "
          f"{refilled / MiB:.0f} MiB once the guest wrote {REFILL_MB} MiB ({rise / MiB:.0f} "
          f"MiB more); guest MemTotal {total1} -> {total2} kB, MemFree {free1} -> {free2} kB; "
          f"vm.info memory_actual_size {res['info_deflated'] >> 20} MiB")
    record_figures(record_property, res, "deflated", "rss_held", "rss_deflated", "rss_refilled")
    assert res["deflated"]["actual_bytes"] == 0, res
    assert res["deflated"]["bad_pfns"] == 0, res
    assert res["info_deflated"] == MEMORY, res
    # Deflating is the guest's word only: no host memory comes back until the guest writes.
    assert deflated - res["rss_held"] < 16 * MiB, res
    assert total2 - total1 == held // 1024, vm.describe()
    assert free1 // 1024 < REFILL_MB, vm.describe()  # it would not have fitted
    assert rise >= REFILL_MB * MiB * 7 // 10, \
        (f"the guest wrote {REFILL_MB} MiB after the deflation but the host's RSS of guest RAM "
         f"rose by only {rise / MiB:.0f} MiB")
    assert "BALLOON-API-DONE" in after_marker(vm), vm.describe()
