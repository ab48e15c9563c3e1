"""End-to-end tests on the tiny PVH test guests (guest/testguest/): each boots in milliseconds,
so these check the VMM itself: serial output, the debug port, the command line, ACPI power-off,
i8042 reset, signals, exits the host cannot handle, vCPU start-up and memory layouts."""
import re
import signal
from pathlib import Path

import pytest

from conftest import no_core_dump, stderr_lines

pytestmark = pytest.mark.usefixtures("kvm")

QUIET = ("--console", "off")


def tty_args(testguest, name, *extra):
    return ("--kernel", testguest(name), "--serial", "tty", *QUIET, *extra)


def test_hello_prints_and_powers_off(run_cubicle, testguest):
    vm = run_cubicle(*tty_args(testguest, "hello"))
    assert "cubicle-testguest: hello\n" in vm.stdout, vm.describe()
    assert vm.proc.returncode == 0, vm.describe()


def test_debug_port_is_logged_with_verbose(run_cubicle, testguest):
    # The lead's contract: with -v the debug port (0x80) logs what the guest wrote, e.g.
    # "cubicle: info: debug port 0x80: 0x42".
    vm = run_cubicle(*tty_args(testguest, "hello", "-v"))
    assert vm.proc.returncode == 0, vm.describe()
    assert re.search(r"debug.*0x42", vm.stderr, re.IGNORECASE), vm.describe()


def test_cmdline_reaches_the_guest(run_cubicle, testguest):
    vm = run_cubicle(*tty_args(testguest, "cmdline", "--cmdline", "foo=bar baz"))
    assert "cubicle-testguest: cmdline: foo=bar baz\n" in vm.stdout, vm.describe()
    assert "bad magic" not in vm.stdout, vm.describe()
    assert vm.proc.returncode == 0, vm.describe()


def test_reset_reboots_then_sigterm_stops(vm_factory, testguest):
    vm = vm_factory(*tty_args(testguest, "reset"))
    assert vm.wait_for("cubicle-testguest: reset\n", count=2, timeout=30), \
        "the guest did not boot twice after an i8042 reset\n" + vm.describe()
    assert "reset ignored" not in vm.stdout, vm.describe()
    vm.signal(signal.SIGTERM)
    assert vm.wait(10) == 0, vm.describe()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_guest_stops_on_signal(vm_factory, testguest, sig):
    vm = vm_factory(*tty_args(testguest, "idle"))
    assert vm.wait_for("cubicle-testguest: idle\n", timeout=30), vm.describe()
    vm.signal(sig)
    assert vm.wait(10) == 0, vm.describe()


def test_int3_is_reported_not_hung(vm_factory, testguest):
    """A guest-kernel int3 with no IDT. On kvm_pvm hosts KVM cannot emulate it: cubicle must
    exit non-zero naming the exit reason and the guest RIP. On hardware KVM it triple-faults,
    which cubicle (like Cloud Hypervisor) may treat as a reset: that is accepted too."""
    vm = vm_factory(*tty_args(testguest, "int3"))
    assert vm.wait_for("cubicle-testguest: int3\n", timeout=30), vm.describe()
    if vm.wait_for("cubicle-testguest: int3\n", count=2, timeout=20):
        vm.signal(signal.SIGTERM)  # reset path (triple fault on hardware KVM)
        assert vm.wait(10) == 0, vm.describe()
        return
    rc = vm.wait(10)
    assert rc != 0 and no_core_dump(rc), vm.describe()
    assert "returned" not in vm.stdout, vm.describe()
    assert re.search(r"\brip\b", vm.stderr, re.IGNORECASE), vm.describe()
    assert re.search(r"emulation|internal|shutdown|triple|fault|exit reason", vm.stderr,
                     re.IGNORECASE), vm.describe()


def test_serial_to_file(run_cubicle, testguest, tmp_path):
    out = tmp_path / "serial.log"
    vm = run_cubicle("--kernel", testguest("hello"), "--serial", f"file={out}", *QUIET)
    assert vm.proc.returncode == 0, vm.describe()
    assert "cubicle-testguest: hello\n" in out.read_text(errors="replace")
    assert "cubicle-testguest" not in vm.stdout


def test_serial_off_prints_nothing(run_cubicle, testguest):
    vm = run_cubicle("--kernel", testguest("hello"), "--serial", "off", *QUIET)
    assert vm.proc.returncode == 0, vm.describe()
    assert vm.stdout == "", vm.describe()


def test_serial_default_is_null(run_cubicle, testguest):
    vm = run_cubicle("--kernel", testguest("hello"), *QUIET)
    assert vm.proc.returncode == 0, vm.describe()
    assert "cubicle-testguest" not in vm.stdout, vm.describe()


def test_smp_ap_startup(run_cubicle, testguest, record_property):
    """INIT-SIPI-SIPI to APIC id 1 through the in-kernel LAPIC: the AP runs the real-mode
    trampoline at 0x8000 and sets a flag the boot CPU waits for (it does on kvm_pvm too)."""
    vm = run_cubicle(*tty_args(testguest, "smp", "--cpus", "boot=2"), timeout=60)
    m = re.search(r"cubicle-testguest: smp ap (started|timeout)", vm.stdout)
    assert m, vm.describe()
    record_property("smp_ap", m.group(1))
    assert m.group(1) == "started", vm.describe()
    assert vm.proc.returncode == 0, vm.describe()


@pytest.mark.parametrize("size", ["64M", "3584M", "8G"])
def test_memory_sizes(run_cubicle, testguest, size):
    """64M: small; 3584M and 8G: RAM split around the 32-bit PCI hole (3 GiB .. 4 GiB)."""
    vm = run_cubicle(*tty_args(testguest, "hello", "--memory", f"size={size}"))
    assert "cubicle-testguest: hello\n" in vm.stdout, vm.describe()
    assert vm.proc.returncode == 0, vm.describe()


@pytest.mark.parametrize("opts", ["shared=on", "shared=on,prefault=on", "thp=off",
                                  "prefault=on"])
def test_memory_options(run_cubicle, testguest, opts):
    vm = run_cubicle(*tty_args(testguest, "hello", "--memory", f"size=256M,{opts}"))
    assert "cubicle-testguest: hello\n" in vm.stdout, vm.describe()
    assert vm.proc.returncode == 0, vm.describe()


@pytest.fixture
def hugepage_pool():
    """Sets the number of reserved 2 MiB huge pages for the test, restoring it afterwards."""
    path = Path("/proc/sys/vm/nr_hugepages")
    old = path.read_text().strip()

    def set_pool(n):
        path.write_text(f"{n}\n")
        return int(path.read_text())

    yield set_pool
    path.write_text(old + "\n")


def test_hugepages(run_cubicle, testguest, hugepage_pool):
    """hugepages=on: boots from a big enough pool (private and shared RAM); with an empty pool
    it fails at start-up with one line naming --memory, never with SIGBUS later."""
    if hugepage_pool(80) < 64:
        pytest.fail("could not reserve 64 huge pages for the test")
    for opts in ("hugepages=on", "hugepages=on,shared=on"):
        vm = run_cubicle(*tty_args(testguest, "hello", "--memory", f"size=128M,{opts}"))
        assert "cubicle-testguest: hello\n" in vm.stdout, vm.describe()
        assert vm.proc.returncode == 0, vm.describe()
    hugepage_pool(0)
    vm = run_cubicle(*tty_args(testguest, "hello", "--memory", "size=128M,hugepages=on"))
    assert no_core_dump(vm.proc.returncode) and vm.proc.returncode == 1, vm.describe()
    lines = stderr_lines(vm)
    assert len(lines) == 1 and "--memory" in lines[0] and "huge pages" in lines[0], vm.describe()


def test_no_stray_stderr_on_success(run_cubicle, testguest):
    """Like Cloud Hypervisor, a successful run without -v writes nothing to stderr."""
    vm = run_cubicle(*tty_args(testguest, "hello"))
    assert vm.proc.returncode == 0, vm.describe()
    assert stderr_lines(vm) == [], vm.describe()
