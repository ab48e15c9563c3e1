"""End-to-end tests that boot the real Linux guest (make guest: kernel + busybox initramfs).

On this workplace's kvm_pvm host a boot takes a minute or more (the guest kernel is emulated),
so all boots start together when the first test of this file asks for them, at most
CUBICLE_E2E_PARALLEL (default 3) at once, and each test waits for its own and checks several
things on it. Serial output goes to files in a temporary directory; a failing test prints the
tail of its serial log and of cubicle's stderr."""
import concurrent.futures
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import default_cmdline

pytestmark = pytest.mark.usefixtures("kvm")

BOOT_TIMEOUT = int(os.environ.get("CUBICLE_E2E_BOOT_TIMEOUT", "600"))
PARALLEL = int(os.environ.get("CUBICLE_E2E_PARALLEL", "3"))
MARKER = "cubicle-guest: userspace up"
DEMO_CMD = "uname -a; nproc; grep MemTotal /proc/meminfo"
# The pvh boot also lists the PCI functions Linux found (one more process, ~1 s here), writes to
# the virtio console (--console file=) and reads 1 MiB from virtio-rng through /dev/hwrng.
PCI_CMD = "ls /sys/bus/pci/devices"
HVC0_WORD = "hello-hvc0"
HWRNG_BYTES = 1048576
VIRTIO_CMD = f"echo {HVC0_WORD} > /dev/hvc0; head -c {HWRNG_BYTES} /dev/hwrng | wc -c"
MiB = 1024  # MemTotal is in kB


@dataclass
class Boot:
    name: str
    args: list
    stop_after_markers: int = 0  # > 0: SIGTERM once the marker appeared that often
    with_console: bool = False  # --console file=<console> instead of --console off
    console: Path = None
    serial: Path = None
    stderr: Path = None
    returncode: int = None
    seconds: float = None
    marker_seconds: list = field(default_factory=list)
    error: str = None

    @property
    def output(self):
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""

    def describe(self, tail=4000):
        err = self.stderr.read_text(errors="replace") if self.stderr.exists() else ""
        return (f"boot {self.name}: returncode {self.returncode} after {self.seconds} s, "
                f"markers at {self.marker_seconds} s {self.error or ''}\n"
                f"argv: {' '.join(self.args)}\n"
                f"--- serial log (tail) ---\n{self.output[-tail:]}\n"
                f"--- stderr (tail) ---\n{err[-tail:]}")


def run_boot(boot, cubicle_bin):
    """Runs one boot to its end (or BOOT_TIMEOUT) while watching its serial log."""
    console = f"file={boot.console}" if boot.with_console else "off"
    argv = [cubicle_bin, *boot.args, "--serial", f"file={boot.serial}", "--console", console]
    t0 = time.monotonic()
    with open(boot.stderr, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True)
    try:
        sent_term = False
        while proc.poll() is None:
            elapsed = time.monotonic() - t0
            if elapsed > BOOT_TIMEOUT:
                boot.error = f"(killed after {BOOT_TIMEOUT} s)"
                break
            n = boot.output.count(MARKER)
            while len(boot.marker_seconds) < n:
                boot.marker_seconds.append(round(elapsed, 1))
            if boot.stop_after_markers and n >= boot.stop_after_markers and not sent_term:
                proc.send_signal(signal.SIGTERM)
                sent_term = True
                term_deadline = time.monotonic() + 15
            if sent_term and time.monotonic() > term_deadline:
                boot.error = "(no exit within 15 s of SIGTERM)"
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    boot.returncode = proc.returncode
    boot.seconds = round(time.monotonic() - t0, 1)
    n = boot.output.count(MARKER)
    while len(boot.marker_seconds) < n:
        boot.marker_seconds.append(boot.seconds)
    return boot


@pytest.fixture(scope="module")
def boots(cubicle_bin, guest_env):
    """Starts every boot of this file at once (bounded by PARALLEL); returns name -> future."""
    base = default_cmdline()
    vmlinux, bzimage = guest_env["CUBICLE_VMLINUX"], guest_env["CUBICLE_BZIMAGE"]
    initrd = ["--initramfs", guest_env["CUBICLE_INITRAMFS"]]

    def linux(kernel, cpus, mem, cmdline):
        return ["--kernel", kernel, *initrd, "--cmdline", cmdline, "--cpus", f"boot={cpus}",
                "--memory", f"size={mem}"]

    demo = f"{base} -- {DEMO_CMD}"
    plan = [  # the longest first
        Boot("reboot", linux(vmlinux, 1, "512M", f"{base} cubicle.action=reboot -- uname -r"),
             stop_after_markers=2),
        Boot("pvh", linux(vmlinux, 1, "512M", f"{demo}; {PCI_CMD}; {VIRTIO_CMD}"),
             with_console=True),
        Boot("bzimage", linux(bzimage, 1, "1G", demo)),
        Boot("highmem", linux(vmlinux, 1, "3584M", demo)),
        Boot("smp", linux(vmlinux, 2, "512M", demo)),
    ]

    tmp = Path(tempfile.mkdtemp(prefix="cubicle-e2e-linux-"))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL)
    futures = {}
    for b in plan:
        b.serial, b.stderr = tmp / f"{b.name}.serial", tmp / f"{b.name}.stderr"
        b.console = tmp / f"{b.name}.hvc0"
        futures[b.name] = pool.submit(run_boot, b, cubicle_bin)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def result(boots, name):
    return boots[name].result(timeout=BOOT_TIMEOUT * 3)


def lists_pci_function(after_marker, fn):
    """Whether `ls /sys/bus/pci/devices` printed @fn: one per line, or in columns (ls on the
    serial tty packs several names on a line)."""
    return re.search(rf"(?:^|[ \t]){re.escape(fn)}(?:[ \t]|\r?$)", after_marker, re.MULTILINE)


def mem_total_kb(out):
    m = re.search(r"^MemTotal:\s+(\d+) kB", out, re.MULTILINE)
    return int(m.group(1)) if m else None


def nproc(out):
    after = out.split(MARKER, 1)[-1]
    m = re.search(r"^(\d+)\r?$", after, re.MULTILINE)
    return int(m.group(1)) if m else None


def check_demo(b, record_property):
    out = b.output
    record_property("seconds_to_userspace", b.marker_seconds[:1])
    record_property("seconds_total", b.seconds)
    print(f"{b.name}: userspace marker at {b.marker_seconds} s, exit after {b.seconds} s")
    assert MARKER in out, "the guest never reached /init\n" + b.describe()
    assert re.search(r"^Linux \S+ \S+ .* x86_64", out, re.MULTILINE), b.describe()
    assert "cubicle-guest: exit status 0" in out, b.describe()
    assert b.returncode == 0, "poweroff must exit 0\n" + b.describe()
    return out


def test_pvh_vmlinux_512m(boots, record_property):
    b = result(boots, "pvh")
    out = check_demo(b, record_property)
    # The MP table spares the kernel a scan of 0xf0000-0xfffff (2.5 s on kvm_pvm); ACPI
    # still describes the machine.
    assert "found SMP MP-table at [mem 0x0009fc00" in out, b.describe()
    assert "ACPI: Using ACPI (MADT) for SMP configuration information" in out, b.describe()
    assert nproc(out) == 1, b.describe()
    kb = mem_total_kb(out)
    assert kb and 400 * MiB <= kb <= 512 * MiB, f"MemTotal {kb} kB\n" + b.describe()


def test_pci_host_bridge(boots):
    """Linux finds the PCI host bridge (ACPI PNP0A08, MCFG) and keeps cubicle's windows."""
    b = result(boots, "pvh")
    out = b.output
    assert MARKER in out, "the guest never reached /init\n" + b.describe()
    assert lists_pci_function(out.split(MARKER, 1)[1], "0000:00:00.0"), b.describe()
    assert "pci 0000:00:00.0: [8086:0d57] type 00 class 0x060000" in out, b.describe()
    assert "root bus resource [mem 0xc0000000-0xdfffffff window]" in out, b.describe()
    assert not re.search(r"pci .*(reassign|no space|can't claim|BAR .*: failed)", out,
                         re.IGNORECASE), b.describe()


def test_bzimage_1g(boots, record_property):
    b = result(boots, "bzimage")
    out = check_demo(b, record_property)
    assert nproc(out) == 1, b.describe()
    kb = mem_total_kb(out)
    assert kb and 900 * MiB <= kb <= 1024 * MiB, f"MemTotal {kb} kB\n" + b.describe()


def test_ram_above_4g(boots, record_property):
    """3.5 GiB: 3 GiB below the PCI hole and 512 MiB above 4 GiB."""
    b = result(boots, "highmem")
    out = check_demo(b, record_property)
    kb = mem_total_kb(out)
    assert kb and kb > int(3.2 * 1024 * MiB), f"MemTotal {kb} kB\n" + b.describe()


def test_reboot_boots_again(boots, record_property):
    """cubicle.action=reboot: init reboots (reboot=k, i8042) and the kernel boots again; the
    second boot would reboot too, so the test stops cubicle with SIGTERM, which exits 0."""
    b = result(boots, "reboot")
    record_property("marker_seconds", b.marker_seconds)
    assert b.output.count(MARKER) >= 2, "no second boot after reboot\n" + b.describe()
    assert b.returncode == 0, "SIGTERM must stop cubicle cleanly (exit 0)\n" + b.describe()


def test_two_vcpus(boots, record_property):
    """2 vCPUs: on kvm_pvm this needs the backend's PV-IPI work-around (guest/README.md)."""
    b = result(boots, "smp")
    out = check_demo(b, record_property)
    assert nproc(out) == 2, b.describe()


def test_virtio_devices(boots):
    """Linux binds the two virtio functions cubicle always adds (rng) or adds by default
    (console): the text written to /dev/hvc0 lands in the --console file, and 1 MiB comes out
    of /dev/hwrng."""
    b = result(boots, "pvh")
    out = b.output
    assert MARKER in out, "the guest never reached /init\n" + b.describe()
    after = out.split(MARKER, 1)[1]
    for fn in ("0000:00:01.0", "0000:00:02.0"):
        assert lists_pci_function(after, fn), b.describe()
    assert "pci 0000:00:01.0: [1af4:1044]" in out, b.describe()
    assert "pci 0000:00:02.0: [1af4:1043]" in out, b.describe()
    assert re.search(rf"^{HWRNG_BYTES}\r?$", after, re.MULTILINE), b.describe()
    hvc0 = b.console.read_text(errors="replace") if b.console.exists() else ""
    assert HVC0_WORD in hvc0, f"--console file holds {hvc0[-200:]!r}\n" + b.describe()
