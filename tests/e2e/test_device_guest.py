"""End-to-end tests with the device test guest (tests/guest/): a freestanding guest whose
scenarios run at CPL3, natively even on kvm_pvm hosts, so device tests take milliseconds.
Each scenario prints `PASS name ...` or `FAIL name: why`, then `DONE passed=N failed=M`, and
the guest powers off (ACPI S5).

The virtio-rng and hostile-virtqueue scenarios run against cubicle's virtio-PCI transport and
virtio-rng (always present, reading /dev/urandom by default)."""
import re

import pytest

pytestmark = pytest.mark.usefixtures("kvm")


def run_scenarios(run_cubicle, device_guest, words, *extra, timeout=60):
    return run_cubicle("--kernel", device_guest, "--cmdline", words, "--serial", "tty",
                       "--console", "off", *extra, timeout=timeout)


def assert_all_passed(vm, count):
    assert vm.proc.returncode == 0, vm.describe()
    assert "FAIL" not in vm.stdout, vm.describe()
    assert f"DONE passed={count} failed=0" in vm.stdout, vm.describe()


def test_smoke(run_cubicle, device_guest):
    vm = run_scenarios(run_cubicle, device_guest, "smoke")
    assert "PASS smoke\n" in vm.stdout.replace("\r", ""), vm.describe()
    assert_all_passed(vm, 1)


def test_unknown_scenario_fails_cleanly(run_cubicle, device_guest):
    vm = run_scenarios(run_cubicle, device_guest, "smoke no-such-scenario")
    assert vm.proc.returncode == 0, vm.describe()
    assert "FAIL no-such-scenario: unknown scenario" in vm.stdout, vm.describe()
    assert "DONE passed=1 failed=1" in vm.stdout, vm.describe()


def test_pci_enum(run_cubicle, device_guest):
    """Bus 0 through 0xcf8/0xcfc and ECAM agree, and the host bridge is 00:00.0."""
    vm = run_scenarios(run_cubicle, device_guest, "pci-enum")
    assert "pci 00:00.0 8086:0d57 class 060000" in vm.stdout, vm.describe()
    assert_all_passed(vm, 1)


def test_virtio_rng(run_cubicle, device_guest, record_property):
    vm = run_scenarios(run_cubicle, device_guest, "virtio-rng 100")
    m = re.search(r"PASS virtio-rng (.*)", vm.stdout)
    if m:
        record_property("virtio_rng", m.group(1).strip())
    assert_all_passed(vm, 1)


def test_virtio_rng_from_a_short_regular_file(run_cubicle, device_guest, tmp_path):
    """A regular file as the source is read again from its start when it ends (an lseek on the
    VMM loop thread, under its seccomp filter): 100 requests of 64 bytes from 100 bytes."""
    src = tmp_path / "seed"
    src.write_bytes(bytes(range(100)))
    vm = run_scenarios(run_cubicle, device_guest, "virtio-rng 100", "--rng", f"src={src}")
    assert_all_passed(vm, 1)


@pytest.mark.parametrize("scenario", ["hostile-loop", "hostile-oob", "hostile-overflow",
                                      "hostile-avail-jump", "hostile-nested-indirect",
                                      "hostile-ro-write", "hostile-notify-early",
                                      "hostile-features", "hostile-msix", "hostile-config",
                                      "hostile-queue-size"])
def test_hostile_virtqueue(run_cubicle, device_guest, scenario):
    """A hostile driver (bad rings, early notifications, features never offered, MSI-X table
    and configuration-space abuse, bad queue sizes and addresses): the device must go to
    NEEDS_RESET or refuse/ignore the bad access, cubicle keeps running, and after a reset one
    good request succeeds."""
    vm = run_scenarios(run_cubicle, device_guest, f"{scenario} virtio-rng 1")
    assert_all_passed(vm, 2)


# The virtqueue scenarios that take a target device (hostile-target=NAME); device tests run
# them against their own device with `hostile_ring_scenarios(...)`.
HOSTILE_RING = ["hostile-loop", "hostile-oob", "hostile-overflow", "hostile-avail-jump",
                "hostile-nested-indirect", "hostile-ro-write"]


def test_hostile_target_selects_device(run_cubicle, device_guest):
    """hostile-target= names the attacked device; the scenario says which one it attacked, and
    an unknown name fails instead of silently attacking virtio-rng."""
    vm = run_scenarios(run_cubicle, device_guest, "hostile-target=rng hostile-loop")
    assert_all_passed(vm, 1)
    assert re.search(r"PASS hostile-loop rng: ", vm.stdout), vm.stdout
    vm = run_scenarios(run_cubicle, device_guest, "hostile-target=nosuch hostile-oob")
    assert re.search(r"FAIL hostile-oob: unknown hostile-target 'nosuch'", vm.stdout), vm.stdout


@pytest.mark.parametrize("serial", ["tty", "file=/dev/null"])
def test_serial_to_dev_null(cubicle_bin, device_guest, serial):
    """Output to a file epoll cannot watch (/dev/null, as a service manager may hand over)
    is written directly instead of failing the device."""
    import subprocess
    p = subprocess.run([cubicle_bin, "--kernel", device_guest, "--cmdline", "smoke",
                        "--serial", serial, "--console", "off"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
