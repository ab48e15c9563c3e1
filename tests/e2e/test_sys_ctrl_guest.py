"""--sys-ctrl (CubeSandbox's start signal) with the device test guest's `sys-ctrl` scenario,
which reads I/O port 0x680, prints what it read and writes 1 there. Without --sys-ctrl nothing
decodes the port (a read gives 0xff, the write is dropped, the guest runs on); with it the port
reads the device's version (1) and the write marks the guest started, which the VMM logs at
debug level (-vv) once. vm.waitstart, which waits on the same flag, is tested with the API."""
import pytest

from test_device_guest import assert_all_passed

pytestmark = pytest.mark.usefixtures("kvm")

STARTED = "the guest signalled its start"


def run_sys_ctrl(run_cubicle, device_guest, *extra):
    return run_cubicle("--kernel", device_guest, "--cmdline", "sys-ctrl smoke", "--serial", "tty",
                       "--console", "off", "-vv", *extra)


def test_port_ignored_without_sys_ctrl(run_cubicle, device_guest):
    vm = run_sys_ctrl(run_cubicle, device_guest)
    assert "sys-ctrl: port 0x680 reads 0xff" in vm.stdout, vm.describe()
    assert STARTED not in vm.stderr, vm.describe()
    assert_all_passed(vm, 2)


def test_start_signal_with_sys_ctrl(run_cubicle, device_guest):
    vm = run_sys_ctrl(run_cubicle, device_guest, "--sys-ctrl")
    assert "sys-ctrl: port 0x680 reads 0x1" in vm.stdout, vm.describe()
    assert vm.stderr.count(STARTED) == 1, vm.describe()
    assert_all_passed(vm, 2)
