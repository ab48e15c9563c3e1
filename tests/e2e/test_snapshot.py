"""Snapshot, restore and clone with the device test guest (fast): the `snapshot-ticker`
scenario ticks with a virtio-rng request each time; a snapshot taken in the middle and
restored in another cubicle must go on with the next tick on the same queue and pass.

Errors (a running VM, a full disk, a damaged snapshot) must each give one clear error and
leave the VM and the snapshot directory as they were."""
import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from api_client import Api
from conftest import tsc_khz

pytestmark = pytest.mark.usefixtures("kvm")

SNAPSHOT_FILES = ("config.json", "state.json", "memory-ranges")


GENID_GPA = 0xff000  # arch/x86/x86.h: X86_VMGENID_START


def start_ticker(vm_factory, device_guest, sock, ticks=60, tick_ms=20,
                 extra=f"genid={GENID_GPA:#x}"):
    words = f"snapshot-ticker {ticks} tick-ms={tick_ms} tsc_khz={tsc_khz()} {extra}".strip()
    vm = vm_factory("--kernel", device_guest, "--cmdline", words, "--serial", "tty",
                    "--console", "off", "--api-socket", f"path={sock}")
    api = Api(sock)
    api.wait_ready()
    return vm, api


def ok(r, what):
    assert r.status in (200, 204), f"{what}: {r.status} {r.raw!r}"
    return r


def checksums(d):
    return {f: hashlib.sha256((Path(d) / f).read_bytes()).hexdigest() for f in SNAPSHOT_FILES}


def ticks(text):
    return [int(m) for m in re.findall(r"tick (\d+) rng=", text)]


def continues(tpl, clone):
    """Whether a clone's ticks continue the template's from where it was paused: the template
    may have been paused in the middle of printing a line (the clone prints the rest of it), so
    the two outputs are joined before counting."""
    seq = ticks(tpl.stdout + clone.stdout)
    return len(seq) > len(ticks(tpl.stdout)) and seq == list(range(1, len(seq) + 1))


@pytest.fixture
def template(vm_factory, device_guest, tmp_path):
    """A paused ticker snapshotted after its 5th tick: (directory, the VM, its API)."""
    d = tmp_path / "snap"
    d.mkdir()
    vm, api = start_ticker(vm_factory, device_guest, tmp_path / "tpl.sock")
    assert vm.wait_for("tick 5 rng=", timeout=30), vm.describe()
    ok(api.put("vm.pause"), "vm.pause")
    ok(api.put("vm.snapshot", {"destination_url": f"file://{d}"}), "vm.snapshot")
    return d, vm, api


def restore(vm_factory, tmp_path, d, name, *extra):
    sock = tmp_path / f"{name}.sock"
    vm = vm_factory("--api-socket", f"path={sock}", "--restore",
                    f"source_url=file://{d}" + "".join(extra))
    api = Api(sock)
    api.wait_ready()
    return vm, api


def test_snapshot_files(template):
    d, vm, api = template
    assert sorted(os.listdir(d)) == sorted(SNAPSHOT_FILES)
    state = json.loads((d / "state.json").read_text())
    assert state["format"] == "cubicle-snapshot" and state["version"] == 1
    assert re.fullmatch(r"[0-9a-f]{8}", state["checksum"])
    assert set(state["state"]) >= {"vm", "vcpus", "devices"}
    assert len(state["state"]["vcpus"]) == 1
    config = json.loads((d / "config.json").read_text())
    assert config["payload"]["kernel"] == vm.argv[2]
    mem = d / "memory-ranges"
    st = mem.stat()
    assert st.st_size == 512 << 20  # the default RAM
    assert st.st_blocks * 512 < st.st_size // 4, "memory-ranges is not sparse"
    # The template keeps running once resumed.
    ok(api.put("vm.resume"), "vm.resume")
    assert vm.wait_for("PASS snapshot-ticker", timeout=30), vm.describe()


def test_restore_continues(template, vm_factory, tmp_path):
    d, tpl, tpl_api = template
    before = checksums(d)
    tpl.kill()
    vm, api = restore(vm_factory, tmp_path, d, "clone")
    info = ok(api.get("vm.info"), "vm.info").json
    assert info["state"] == "Paused", info
    time.sleep(0.2)
    assert ticks(vm.stdout) == [], "a restored VM must stay paused until vm.resume"
    ok(api.put("vm.resume"), "vm.resume")
    assert vm.wait_for("DONE passed=1 failed=0", timeout=60), vm.describe()
    assert continues(tpl, vm) and ticks(vm.stdout)[-1] == 60, vm.describe()
    assert "PASS snapshot-ticker 60 ticks" in vm.stdout, vm.describe()
    assert vm.wait(30) == 0, vm.describe()
    assert checksums(d) == before, "restoring changed the snapshot"


def test_clones(template, vm_factory, tmp_path):
    """Many clones of one snapshot at once, each with its own process and API socket."""
    d, tpl, _ = template
    before = checksums(d)
    tpl.kill()
    n = int(os.environ.get("CUBICLE_E2E_CLONES", "20"))
    clones = [restore(vm_factory, tmp_path, d, f"c{i}") for i in range(n)]
    for vm, api in clones:
        ok(api.put("vm.resume"), "vm.resume")
    ids = set()
    for vm, api in clones:
        assert vm.wait_for("PASS snapshot-ticker 60 ticks", timeout=120), vm.describe()
        assert continues(tpl, vm), vm.describe()
        # Each clone saw its generation ID change once, to a value of its own.
        changes = re.findall(r"genid changed (\d+) ([0-9a-f]{32})", vm.stdout)
        assert [c[0] for c in changes] == ["1"], vm.describe()
        ids.add(changes[0][1])
    assert len(ids) == n, "clones share a VM generation ID"
    assert checksums(d) == before, "the clones changed the snapshot"


# What may differ between two snapshots of the same paused VM: time keeps running while it is
# paused (the guest clock, the TSC, the PIT's load time). The new generation ID comes at the
# first resume, so a clone snapshotted before it ran has its template's.
TIME_MSRS = {0x10}  # IA32_TSC


def timeless(state):
    state = json.loads(json.dumps(state))
    state["vm"].pop("clock", None)
    for ch in state["vm"].get("pit", []):
        ch.pop("count_load_time", None)
    for v in state["vcpus"]:
        v["msrs"] = [m for m in v["msrs"] if int(m["index"]) not in TIME_MSRS]
    return state


def test_save_restore_save(template, vm_factory, tmp_path):
    """A restored VM snapshotted again before it runs gives the same state and memory."""
    d, tpl, _ = template
    tpl.kill()
    vm, api = restore(vm_factory, tmp_path, d, "again")
    d2 = tmp_path / "again-snap"
    d2.mkdir()
    ok(api.put("vm.snapshot", {"destination_url": f"file://{d2}"}), "vm.snapshot of a clone")
    a = json.loads((d / "state.json").read_text())
    b = json.loads((d2 / "state.json").read_text())
    assert a["memory"] == b["memory"]
    assert timeless(a["state"]) == timeless(b["state"])
    assert a["state"]["devices"] == b["state"]["devices"]
    assert (d / "config.json").read_text() == (d2 / "config.json").read_text()
    m1, m2 = (d / "memory-ranges").read_bytes(), (d2 / "memory-ranges").read_bytes()
    diff = [i for i in range(0, len(m1), 4096) if m1[i:i + 4096] != m2[i:i + 4096]]
    assert diff == [], f"pages that differ: {[hex(x) for x in diff]}"


def test_snapshot_running_vm_refused(vm_factory, device_guest, tmp_path):
    d = tmp_path / "snap"
    d.mkdir()
    vm, api = start_ticker(vm_factory, device_guest, tmp_path / "s.sock")
    assert vm.wait_for("tick 2 rng=", timeout=30), vm.describe()
    r = api.put("vm.snapshot", {"destination_url": f"file://{d}"})
    assert r.status >= 400, r
    assert os.listdir(d) == []
    assert vm.wait_for("PASS snapshot-ticker", timeout=60), vm.describe()


def test_full_disk(vm_factory, device_guest, tmp_path):
    """A snapshot that does not fit fails cleanly: nothing left, the VM resumes and goes on."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    d = tmp_path / "small"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], check=True)
    try:
        vm, api = start_ticker(vm_factory, device_guest, tmp_path / "s.sock")
        assert vm.wait_for("tick 3 rng=", timeout=30), vm.describe()
        ok(api.put("vm.pause"), "vm.pause")
        r = api.put("vm.snapshot", {"destination_url": f"file://{d}"})
        assert r.status >= 400, r
        assert "memory-ranges" in r.raw.decode() and "space" in r.raw.decode(), r
        assert os.listdir(d) == []
        ok(api.put("vm.resume"), "vm.resume")
        assert vm.wait_for("PASS snapshot-ticker", timeout=60), vm.describe()
    finally:
        subprocess.run(["umount", str(d)], check=False)


def test_damaged_snapshot_refused(template, run_cubicle, tmp_path):
    d, _, _ = template
    state = d / "state.json"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0x20
    state.write_bytes(bytes(data))
    vm = run_cubicle("--restore", f"source_url=file://{d}", timeout=30)
    assert vm.proc.returncode != 0
    assert "state.json" in vm.stderr and "damaged" in vm.stderr, vm.describe()


def test_missing_snapshot_refused(run_cubicle, tmp_path):
    vm = run_cubicle("--restore", f"source_url=file://{tmp_path}/none", timeout=30)
    assert vm.proc.returncode != 0
    assert "snapshot" in vm.stderr, vm.describe()


def pool_vmm(vm_factory, tmp_path, name, *extra):
    sock = tmp_path / f"{name}.sock"
    vm = vm_factory("-vv", "--api-socket", f"path={sock}", *extra)
    api = Api(sock)
    api.wait_ready()
    return vm, api


@pytest.mark.parametrize("prewarm, used", [("512M", True), ("64M", False)])
def test_prewarmed_pool_restore(template, vm_factory, tmp_path, prewarm, used):
    """--prewarm: a pooled VMM restores into the hypervisor it prepared when the snapshot's
    RAM fits (512M here), and into a new one when it does not."""
    d, tpl, _ = template
    tpl.kill()
    vm, api = pool_vmm(vm_factory, tmp_path, "pool", "--prewarm", prewarm)
    ok(api.put("vm.resume-from-snapshot", {"source_url": f"file://{d}"}),
       "vm.resume-from-snapshot")
    assert vm.wait_for("PASS snapshot-ticker 60 ticks", timeout=60), vm.describe()
    assert continues(tpl, vm), vm.describe()
    assert ("using the pre-warmed hypervisor" in vm.stderr) == used, vm.describe()


def test_prewarmed_pool_boot(vm_factory, device_guest, tmp_path):
    """A VM created and booted through the API also takes the prepared hypervisor."""
    vm, api = pool_vmm(vm_factory, tmp_path, "pool", "--prewarm", "256M")
    cfg = {"payload": {"kernel": device_guest,
                       "cmdline": f"snapshot-ticker 3 tick-ms=5 tsc_khz={tsc_khz()}"},
           "memory": {"size": 128 << 20}, "serial": {"mode": "Tty"}, "console": {"mode": "Off"}}
    ok(api.put("vm.create", cfg), "vm.create")
    ok(api.put("vm.boot"), "vm.boot")
    assert vm.wait_for("DONE passed=1 failed=0", timeout=60), vm.describe()
    assert "using the pre-warmed hypervisor (256M reserved)" in vm.stderr, vm.describe()
