"""End-to-end check of the PCI root complex with the tiny `pci` test guest: the host bridge's
ids through the legacy configuration ports and through ECAM, and an absent slot."""
import pytest

pytestmark = pytest.mark.usefixtures("kvm")


def test_host_bridge_through_cf8_and_ecam(run_cubicle, testguest):
    vm = run_cubicle("--kernel", testguest("pci"), "--serial", "tty", "--console", "off")
    assert vm.proc.returncode == 0, vm.describe()
    # vendor 0x8086, device 0x0d57 (Cloud Hypervisor's host bridge), class 06/00/00
    assert ("cubicle-testguest: pci cf8=0d578086 ecam=0d578086 class=06000000 "
            "absent=ffffffff\n") in vm.stdout, vm.describe()
