"""The API on the real Linux guest (one boot, ~1 minute on kvm_pvm hosts): created and booted
through the API, vm.info and vm.counters while Linux runs, pause/resume under Linux, then
vm.power-button: the ACPI power button (GED → PWRB) reaches the guest, whose handler
(guest/tools/pwrbtn.c) powers it off, and cubicle exits 0 as Cloud Hypervisor does."""
import os
import time

import pytest

from api_client import Api
from conftest import default_cmdline
from test_api import read_events

pytestmark = pytest.mark.usefixtures("kvm")

BOOT_TIMEOUT = int(os.environ.get("CUBICLE_E2E_BOOT_TIMEOUT", "600"))
READY = "cubicle-guest: power button handler ready"


def test_power_button_powers_linux_off(vm_factory, guest_env, tmp_path):
    sock = tmp_path / "api.sock"
    events = tmp_path / "events.json"
    vm = vm_factory("--api-socket", str(sock), "--event-monitor", f"path={events}")
    api = Api(sock)
    api.wait_ready()
    cfg = {
        "payload": {"kernel": guest_env["CUBICLE_VMLINUX"],
                    "initramfs": guest_env["CUBICLE_INITRAMFS"],
                    "cmdline": default_cmdline() + " -- echo api-guest-up; sleep 100000"},
        "cpus": {"boot_vcpus": 1, "max_vcpus": 1},
        "memory": {"size": 256 << 20},
        "serial": {"mode": "Tty"},
        "console": {"mode": "Off"},
    }
    assert api.put("vm.create", cfg).status == 204
    assert api.put("vm.boot").status == 204
    assert vm.wait_for(READY, timeout=BOOT_TIMEOUT), vm.describe()
    assert vm.wait_for("api-guest-up", timeout=120), vm.describe()

    info = api.get("vm.info").json
    assert info["state"] == "Running"
    counters = api.get("vm.counters").json
    assert counters["__rng"]["requests"] > 0, counters  # Linux's hwrng took entropy

    # pause/resume under Linux: the guest keeps working afterwards
    for _ in range(3):
        assert api.put("vm.pause").status == 204
        assert api.get("vm.info").json["state"] == "Paused"
        time.sleep(0.2)
        assert api.put("vm.resume").status == 204

    t0 = time.monotonic()
    r = api.put("vm.power-button")
    assert r.status == 204, r
    assert vm.wait_for("power button pressed, powering off", timeout=120), vm.describe()
    assert vm.wait(120) == 0, vm.describe()
    print(f"power button to exit: {time.monotonic() - t0:.1f} s")
    names = [(e["source"], e["event"]) for e in read_events(events)]
    assert ("vm", "power-button") in names and names[-1] == ("vm", "shutdown"), names
