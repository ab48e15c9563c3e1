"""End-to-end tests of snapshot and restore through the API, the command line and
cubicle-remote, on the tiny test guests: vm.snapshot, vm.restore, CubeSandbox's
vm.pause2snapshot, vm.resume-from-snapshot (with per-clone overrides) and vm.waitstart, and
--restore. Every refusal is checked (the state, the body, the destination, the source, the
overrides); the success paths run the `ticker` guest, whose count must go on in the clone."""
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from api_client import Api, holds
from test_api import error_of, idle_config, read_events, vmm  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("kvm")

TICK = re.compile(r"cubicle-testguest: tick ([0-9a-f]{8})\n")


# A clone's first whole tick line may be the one after the template's last whole line: the
# template's serial may have sent part of the next line before the pause, and the clone sends
# the rest (which the pattern does not match); hence at_pause + 2 below.
def ticks(vm):
    return [int(t, 16) for t in TICK.findall(vm.stdout)]


def ticker_config(testguest, **extra):
    return idle_config(testguest, payload={"kernel": testguest("ticker")}, **extra)


def state_of(api):
    r = api.get("vm.info")
    return None if r.status == 409 else r.json["state"]


def event_names(vm):
    return [e["event"] for e in read_events(vm.events) if e["source"] == "vm"]


def snapshot_files(d):
    return sorted(p.name for p in Path(d).iterdir())


def boot(vmm, cfg, min_ticks=0):
    """Creates and boots @cfg on @vmm; waits for @min_ticks ticks of the ticker."""
    assert vmm.api.put("vm.create", cfg).status == 204
    assert vmm.api.put("vm.boot").status == 204
    if min_ticks:
        assert vmm.wait_for("tick", count=min_ticks, timeout=30), vmm.describe()


def new_vmm(vm_factory, tmp_path, name, *extra):
    """Another cubicle with only --api-socket and an event monitor (a clone's VMM)."""
    sock, events = tmp_path / f"{name}.sock", tmp_path / f"{name}.events"
    vm = vm_factory("--api-socket", f"path={sock}", "--event-monitor", f"path={events}",
                    *extra)
    vm.api, vm.sock, vm.events = Api(sock), sock, events
    vm.api.wait_ready()
    return vm


# --- refusals that come before anything is read or written ---------------------------------

def test_snapshot_needs_a_paused_vm(vmm, testguest, tmp_path):
    snap = tmp_path / "snap"
    snap.mkdir()
    api, dest = vmm.api, {"destination_url": f"file://{snap}"}
    r = api.put("vm.snapshot", dest)
    assert r.status == 409 and "no VM is created" in error_of(r), r
    assert api.put("vm.create", idle_config(testguest)).status == 204
    r = api.put("vm.snapshot", dest)
    assert r.status == 409 and "the VM is Created" in error_of(r), r
    assert api.put("vm.boot").status == 204
    r = api.put("vm.snapshot", dest)
    assert r.status == 409, r
    assert "vm.snapshot: the VM is Running; it must be Paused" in error_of(r), r
    assert state_of(api) == "Running"
    for bad, field in (({}, "destination_url: missing"), ({"destination_url": 5},
                                                          "destination_url")):
        r = api.put("vm.snapshot", bad)
        assert r.status == 400 and field in error_of(r), r
    r = api.put("vm.snapshot")
    assert r.status == 400 and "body is required" in error_of(r), r
    assert snapshot_files(snap) == [], "a refused snapshot wrote something"
    assert "snapshotting" not in event_names(vmm)


def test_pause2snapshot_needs_a_booted_vm(vmm, testguest, tmp_path):
    api, dest = vmm.api, {"destination_url": f"file://{tmp_path}"}
    r = api.put("vm.pause2snapshot", dest)
    assert r.status == 409 and "vm.pause2snapshot" in error_of(r), r
    assert api.put("vm.create", idle_config(testguest)).status == 204
    r = api.put("vm.pause2snapshot", dest)
    assert r.status == 409 and "Running or Paused" in error_of(r), r
    r = api.put("vm.pause2snapshot", {"destination_url": None})
    assert r.status == 400, r
    assert state_of(api) == "Created"


def test_failed_pause2snapshot_resumes_the_vm_it_paused(vmm, testguest, tmp_path):
    """A failure leaves the VM as the command found it: running (chosen; docs/api.md)."""
    api = vmm.api
    boot(vmm, ticker_config(testguest), min_ticks=1)
    r = api.put("vm.pause2snapshot", {"destination_url": f"file://{tmp_path / 'missing'}"})
    assert r.status >= 400 and "vm.pause2snapshot" in error_of(r), r
    assert state_of(api) == "Running"
    assert event_names(vmm)[-5:] == ["pausing", "paused", "snapshotting", "resuming", "resumed"]
    n = len(ticks(vmm))
    assert vmm.wait_for("tick", count=n + 1, timeout=30), vmm.describe()
    # a VM that was paused stays paused
    assert api.put("vm.pause").status == 204
    r = api.put("vm.pause2snapshot", {"destination_url": f"file://{tmp_path / 'missing'}"})
    assert r.status >= 400, r
    assert state_of(api) == "Paused"


def test_restore_refuses_when_a_vm_exists(vmm, testguest, tmp_path):
    api = vmm.api
    assert api.put("vm.create", idle_config(testguest)).status == 204
    for route in ("vm.restore", "vm.resume-from-snapshot"):
        r = api.put(route, {"source_url": f"file://{tmp_path}"})
        assert r.status == 409, r
        assert f"{route}: a VM is already created (Created" in error_of(r), r
    assert api.put("vm.boot").status == 204
    r = api.put("vm.restore", {"source_url": f"file://{tmp_path}"})
    assert r.status == 409 and "Running" in error_of(r), r
    assert state_of(api) == "Running"
    assert "restoring" not in event_names(vmm)


BAD_RESTORE_BODIES = [
    ({}, "source_url: missing"),
    ({"source_url": 5}, "source_url"),
    ({"source_url": "file:///s", "prefault": "yes"}, "prefault"),
    ({"source_url": "file:///s", "fs": [{"tag": "t", "socket": "/s"}]}, "fs: not supported"),
    ({"source_url": "file:///s", "dirty_log": True}, "dirty_log: not supported"),
    ({"source_url": "file:///s", "disks": [{"path": "/c.img"}]}, "disks[0].id: missing"),
    ({"source_url": "file:///s", "net": {"id": "n0"}}, "net"),
    ({"source_url": "file:///s", "pmem": [{"id": "p0"}]}, "pmem[0].file: missing"),
    ({"source_url": "file:///s", "vsock": {"cid": 3}}, "vsock.socket: missing"),
]


@pytest.mark.parametrize("route", ["vm.restore", "vm.resume-from-snapshot"])
def test_restore_refuses_bad_bodies(vmm, route):
    for body, msg in BAD_RESTORE_BODIES:
        r = vmm.api.put(route, body)
        assert r.status == 400, (body, r)
        assert route in error_of(r) and msg in error_of(r), (body, r)
    assert state_of(vmm.api) is None


def test_resume_from_snapshot_fds_need_one_net_override(vmm):
    """TAP fds sent with the request (SCM_RIGHTS) are for the one net override; anything else
    is refused, and the fds are closed (not kept by cubicle)."""
    r1, w1 = os.pipe()
    try:
        for body, msg in (({"source_url": "file:///s"}, "exactly one net override"),
                          ({"source_url": "file:///s", "net": [{"id": "a"}, {"id": "b"}]},
                           "exactly one net override"),
                          ({"source_url": "file:///s", "net": [{"id": "a"}]},
                           "fd 1 of 1 sent with the request is not a TAP device")):
            r = vmm.api.put("vm.resume-from-snapshot", body, fds=[r1])
            assert r.status == 400 and msg in error_of(r), r
        assert not holds(vmm.proc.pid, [r1]), "the fds sent with the request leaked"
    finally:
        os.close(r1)
        os.close(w1)


def test_waitstart_refusals_and_timeout(vmm, testguest):
    api = vmm.api
    r = api.put("vm.waitstart")
    assert r.status == 409 and "vm.waitstart" in error_of(r), r
    r = api.put("vm.waitstart", {"timeout_ms": "soon"})
    assert r.status == 400 and "timeout_ms" in error_of(r), r
    r = api.put("vm.waitstart", {"timeout_ms": 25001})
    assert r.status == 400 and "timeout_ms" in error_of(r), r
    # Without --sys-ctrl the ticker's start signal reaches nothing: the wait times out, and
    # the VMM loop kept running the guest meanwhile (the command waits without blocking it).
    boot(vmm, ticker_config(testguest), min_ticks=1)
    before = len(ticks(vmm))
    t0 = time.monotonic()
    r = api.put("vm.waitstart", {"timeout_ms": 1500})
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert "did not signal its start within 1500 ms" in error_of(r), r
    assert 1.4 <= took < 10, took
    assert len(ticks(vmm)) > before, "the guest stood still while vm.waitstart waited"
    assert api.get("vmm.ping").status == 200
    assert state_of(api) == "Running"


def test_waitstart_does_not_hold_the_api(vmm, testguest):
    """While a vm.waitstart waits, other requests are served (its connection is suspended);
    a VM shut down meanwhile ends the wait with a 409."""
    api = vmm.api
    boot(vmm, ticker_config(testguest), min_ticks=1)
    result = {}
    waiter = threading.Thread(target=lambda: result.update(
        r=api.put("vm.waitstart", {"timeout_ms": 8000})))
    waiter.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    for _ in range(5):
        assert api.get("vmm.ping").status == 200
        assert state_of(api) == "Running"
    assert time.monotonic() - t0 < 3, "requests waited behind vm.waitstart"
    assert waiter.is_alive()
    assert api.put("vm.shutdown").status == 204
    waiter.join(10)
    r = result["r"]
    assert r.status == 409, r
    assert "shut down before the guest signalled its start" in error_of(r), r
    # several at once, each answered at its own timeout
    assert api.put("vm.boot").status == 204
    got = []
    waiters = [threading.Thread(target=lambda ms=ms: got.append(
        (ms, api.put("vm.waitstart", {"timeout_ms": ms}).status))) for ms in (300, 600, 900)]
    for w in waiters:
        w.start()
    for w in waiters:
        w.join(10)
    assert sorted(got) == [(300, 504), (600, 504), (900, 504)], got


def test_cli_restore_refusals(run_cubicle, testguest, tmp_path):
    cases = [
        (["--restore", f"source_url=file://{tmp_path}", "--kernel", testguest("idle")],
         "--restore: cannot be combined with --kernel"),
        (["--restore", "prefault=on"], "--restore: source_url is missing"),
        (["--restore", "source_url=/s,bogus=1"], "--restore: unknown key 'bogus'"),
        (["--restore", f"source_url=file://{tmp_path}", "--memory", "size=64M"],
         "--restore: cannot be combined with --memory"),
    ]
    for args, msg in cases:
        vm = run_cubicle(*args)
        assert vm.proc.returncode == 1, vm.describe()
        assert msg in vm.stderr, vm.describe()


# --- the destination and the source (the snapshot module's checks) --------------------------

def test_snapshot_destination_errors(vmm, testguest, tmp_path):
    api = vmm.api
    boot(vmm, idle_config(testguest))
    assert api.put("vm.pause").status == 204
    missing = tmp_path / "missing"
    not_dir = tmp_path / "file"
    not_dir.write_text("x")
    for url, status in ((f"file://{missing}", 400), (f"file://{not_dir}", 400),
                        ("http://example.com/snap", 400), ("file://relative/dir", 400)):
        r = api.put("vm.snapshot", {"destination_url": url})
        assert r.status == status, (url, r)
        assert "vm.snapshot" in error_of(r), r
    assert not missing.exists()
    # a directory that already holds a snapshot is refused, and left as it was
    snap = tmp_path / "snap"
    snap.mkdir()
    r = api.put("vm.snapshot", {"destination_url": f"file://{snap}"})
    assert r.status == 204, r
    before = {p.name: p.stat().st_mtime_ns for p in snap.iterdir()}
    r = api.put("vm.snapshot", {"destination_url": f"file://{snap}"})
    assert r.status == 400 and "vm.snapshot" in error_of(r), r
    assert {p.name: p.stat().st_mtime_ns for p in snap.iterdir()} == before
    assert state_of(api) == "Paused"


def test_restore_source_errors(vmm, vm_factory, testguest, tmp_path):
    api = vmm.api
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * (1 << 20))
    boot(vmm, idle_config(testguest, disks=[{"path": str(disk), "id": "d0"}]))
    assert api.put("vm.pause").status == 204
    snap = tmp_path / "snap"
    snap.mkdir()
    assert api.put("vm.snapshot", {"destination_url": f"file://{snap}"}).status == 204

    clone = new_vmm(vm_factory, tmp_path, "clone")
    empty = tmp_path / "empty"
    empty.mkdir()
    for url in (f"file://{tmp_path / 'missing'}", f"file://{empty}", "http://x/snap"):
        r = clone.api.put("vm.restore", {"source_url": url})
        assert r.status == 400, (url, r)
        assert "vm.restore" in error_of(r), r
    # an override naming a device the snapshot does not have: 400 naming it, nothing built
    r = clone.api.put("vm.resume-from-snapshot",
                      {"source_url": f"file://{snap}",
                       "disks": [{"path": str(disk), "id": "nope"}]})
    assert r.status == 400, r
    assert "disks[0].id: the snapshot has no disk 'nope'" in error_of(r), r
    r = clone.api.put("vm.restore", {"source_url": f"file://{snap}",
                                     "net": [{"id": "_net0"}]})
    assert r.status == 400 and "net[0].id" in error_of(r), r
    assert state_of(clone.api) is None


# --- the success paths ---------------------------------------------------------------------

def check_snapshot_dir(d):
    names = snapshot_files(d)
    assert {"config.json", "state.json", "memory-ranges"} <= set(names), names
    assert not [n for n in names if n.startswith(".")], names  # no temporary file left


def test_snapshot_restore_resume_continues(vmm, vm_factory, testguest, tmp_path):
    api = vmm.api
    cfg = ticker_config(testguest)
    boot(vmm, cfg, min_ticks=3)
    assert api.put("vm.pause").status == 204
    at_pause = ticks(vmm)[-1]
    snap = tmp_path / "snap"
    snap.mkdir()
    r = api.put("vm.snapshot", {"destination_url": f"file://{snap}"})
    assert r.status == 204, r
    check_snapshot_dir(snap)
    names = event_names(vmm)
    assert names[-2:] == ["snapshotting", "snapshotted"], names
    original_config = api.get("vm.info").json["config"]
    assert api.put("vm.shutdown").status == 204

    clone = new_vmm(vm_factory, tmp_path, "clone")
    r = clone.api.put("vm.restore", {"source_url": f"file://{snap}", "prefault": False})
    assert r.status == 204, r
    info = clone.api.get("vm.info").json
    assert info["state"] == "Paused"  # Cloud Hypervisor v28: restored paused
    assert info["config"] == original_config
    assert event_names(clone)[-2:] == ["restoring", "restored"]
    time.sleep(0.5)
    assert ticks(clone) == [], "the restored VM ran before vm.resume"
    assert clone.api.put("vm.resume").status == 204
    assert clone.wait_for("tick", count=2, timeout=30), clone.describe()
    got = ticks(clone)
    assert got[0] in (at_pause, at_pause + 1, at_pause + 2), (at_pause, got)  # where it was, not from 0
    assert got == sorted(got)


def test_cli_restore(vmm, vm_factory, testguest, tmp_path):
    boot(vmm, ticker_config(testguest), min_ticks=2)
    snap = tmp_path / "snap"
    snap.mkdir()
    r = vmm.api.put("vm.pause2snapshot", {"destination_url": f"file://{snap}"})
    assert r.status == 204, r
    assert state_of(vmm.api) == "Paused"  # pause2snapshot leaves it paused
    at_pause = ticks(vmm)[-1]
    assert event_names(vmm)[-4:] == ["pausing", "paused", "snapshotting", "snapshotted"]

    clone = new_vmm(vm_factory, tmp_path, "clone", "--restore",
                    f"source_url=file://{snap},prefault=on")
    assert state_of(clone.api) == "Paused"
    assert clone.api.put("vm.resume").status == 204
    assert clone.wait_for("tick", count=2, timeout=30), clone.describe()
    assert ticks(clone)[0] in (at_pause, at_pause + 1, at_pause + 2)


def test_resume_from_snapshot_with_overrides(vmm, vm_factory, testguest, tmp_path):
    template_disk, clone_disk = tmp_path / "template.img", tmp_path / "clone.img"
    for d in (template_disk, clone_disk):
        d.write_bytes(b"\0" * (1 << 20))
    cfg = ticker_config(testguest, disks=[{"path": str(template_disk), "id": "d0"}])
    boot(vmm, cfg, min_ticks=1)
    snap = tmp_path / "snap"
    snap.mkdir()
    assert vmm.api.put("vm.pause2snapshot", {"destination_url": f"file://{snap}"}).status == 204

    clone = new_vmm(vm_factory, tmp_path, "clone")
    r = clone.api.put("vm.resume-from-snapshot",
                      {"source_url": f"file://{snap}",
                       "disks": [{"path": str(clone_disk), "id": "d0"}]})
    assert r.status == 204, r
    info = clone.api.get("vm.info").json
    assert info["state"] == "Running"
    assert [(d["id"], d["path"]) for d in info["config"]["disks"]] == [("d0", str(clone_disk))]
    assert event_names(clone)[-4:] == ["restoring", "restored", "resuming", "resumed"]
    assert clone.wait_for("tick", count=1, timeout=30), clone.describe()
    # the snapshot is a template: unchanged by its clones
    assert json.loads((snap / "config.json").read_text())["disks"][0]["path"] == \
        str(template_disk)


def test_waitstart_answers_once_the_guest_started(vm_factory, testguest, tmp_path):
    sock = tmp_path / "api.sock"
    vm = vm_factory("--api-socket", f"path={sock}", "--kernel", testguest("ticker"),
                    "--serial", "tty", "--console", "off", "--memory", "size=64M",
                    "--sys-ctrl")
    api = Api(sock)
    api.wait_ready()
    r = api.put("vm.waitstart", {"timeout_ms": 20000})
    assert r.status == 204, r
    assert vm.wait_for("tick", timeout=30), vm.describe()
    r = api.put("vm.waitstart")  # already started: at once
    assert r.status == 204, r
