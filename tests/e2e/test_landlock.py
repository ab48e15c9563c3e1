"""Landlock (--landlock, --landlock-rules, vm.create's landlock_enable; docs/landlock.md) on the
tiny test guests: a confined VM boots, reboots, uses its disk and serial file; what the rules do
not name is refused to the running VMM (a snapshot outside them, a disk added after vm.create);
a restored snapshot is confined again; bad rules get one clear error line."""
import signal
import time

import pytest

from api_client import Api
from conftest import stderr_lines
from test_api import error_of, idle_config

pytestmark = pytest.mark.usefixtures("kvm")

CONFINED = "landlock: the VMM's file access is confined"


def api_of(vm, sock):
    vm.api = Api(sock)
    try:
        vm.api.wait_ready()
    except TimeoutError:
        pytest.fail(vm.describe())
    return vm.api


def logged(vm, text, timeout=5):
    """Whether @text reaches cubicle's stderr within @timeout (it is read by a thread)."""
    deadline = time.monotonic() + timeout
    while text not in vm.stderr:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def snapshot_to(api, d):
    return api.put("vm.snapshot", {"destination_url": f"file://{d}"})


def test_confined_vm_boots_reboots_and_writes_its_files(vm_factory, testguest, tmp_path):
    """The build, the guest's disk and serial file, and every reboot's rebuild (kernel,
    /dev/kvm, the disk, the serial file reopened) all happen under the VM's own rules."""
    disk, serial = tmp_path / "disk.raw", tmp_path / "serial.log"
    disk.write_bytes(b"\0" * (1 << 20))
    vm = vm_factory("--kernel", testguest("reset"), "--disk", f"path={disk}", "--serial",
                    f"file={serial}", "--console", "off", "--landlock", "-v")
    deadline_ok = False
    for _ in range(100):
        if serial.exists() and serial.read_text().count("cubicle-testguest: reset\n") >= 3:
            deadline_ok = True
            break
        vm.wait_for("never", timeout=0.1)
    assert deadline_ok, vm.describe()
    vm.signal(signal.SIGTERM)
    assert vm.wait(10) == 0, vm.describe()
    assert logged(vm, CONFINED), vm.describe()
    assert "Permission denied" not in vm.stderr, vm.describe()


def test_snapshot_outside_the_rules_is_refused(vm_factory, testguest, tmp_path):
    """The running VMM thread is confined: vm.snapshot into a directory the rules do not name
    fails (Permission denied) and leaves nothing there; into a --landlock-rules directory it
    works. The snapshot's config keeps Landlock: its restore (vm.restore, --restore) is
    confined again (with the snapshot directory readable) and cannot write outside either."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    sock = tmp_path / "api.sock"
    vm = vm_factory("--kernel", testguest("ticker"), "--serial", "tty", "--console", "off",
                    "--memory", "size=64M", "--api-socket", f"path={sock}", "--landlock",
                    "--landlock-rules", f"path={allowed},access=rw", "-v")
    api = api_of(vm, sock)
    assert vm.wait_for("tick", count=2, timeout=30), vm.describe()
    assert api.put("vm.pause").status == 204
    r = snapshot_to(api, outside)
    assert r.status == 500 and "Permission denied" in error_of(r), r
    assert list(outside.iterdir()) == []
    snap = allowed / "snap"
    snap.mkdir()
    assert snapshot_to(api, snap).status == 204
    assert {p.name for p in snap.iterdir()} >= {"config.json", "state.json"}
    cfg = api.get("vm.info").json["config"]
    assert cfg["landlock_enable"] is True
    assert cfg["landlock_rules"] == [{"path": str(allowed), "access": "rw"}]

    sock2 = tmp_path / "clone.sock"
    clone = vm_factory("--api-socket", f"path={sock2}", "-v")
    api2 = api_of(clone, sock2)
    r = api2.put("vm.restore", {"source_url": f"file://{snap}"})
    assert r.status == 204, r
    assert logged(clone, CONFINED), clone.describe()
    r = snapshot_to(api2, outside)
    assert r.status == 500 and "Permission denied" in error_of(r), r
    assert api2.put("vm.resume").status == 204
    assert clone.wait_for("tick", count=2, timeout=30), clone.describe()

    # --restore on the command line, with an API socket: the same, and the socket is made
    # before the VMM is confined (its directory is not in the rules).
    sock3 = tmp_path / "cli.sock"
    cli = vm_factory("--restore", f"source_url=file://{snap}", "--api-socket", f"path={sock3}",
                     "-v")
    api3 = api_of(cli, sock3)
    assert api3.get("vm.info").json["state"] == "Paused"
    assert logged(cli, CONFINED), cli.describe()
    r = snapshot_to(api3, outside)
    assert r.status == 500 and "Permission denied" in error_of(r), r


def test_api_vm_create_confines_and_a_later_disk_is_refused(vm_factory, testguest, tmp_path):
    """API mode as Cloud Hypervisor v41: vm.create's landlock_enable confines the VMM at
    vm.create; a disk added afterwards outside the rules cannot be opened at vm.boot, one
    inside a rule's directory can."""
    ok_dir = tmp_path / "disks"
    ok_dir.mkdir()
    inside, outside = ok_dir / "in.raw", tmp_path / "out.raw"
    for p in (inside, outside):
        p.write_bytes(b"\0" * (1 << 20))
    sock = tmp_path / "api.sock"
    vm = vm_factory("--api-socket", f"path={sock}", "-v")
    api = api_of(vm, sock)
    cfg = idle_config(testguest, landlock_enable=True,
                      landlock_rules=[{"path": str(ok_dir), "access": "r"}])
    assert api.put("vm.create", cfg).status == 204
    assert logged(vm, CONFINED), vm.describe()
    assert api.put("vm.add-disk", {"path": str(outside)}).status == 204
    r = api.put("vm.boot")
    assert r.status == 500 and "Permission denied" in error_of(r), r
    assert str(outside) in error_of(r), r
    # The same VMM with the disk taken away and one under the rule (read-only: access=r).
    assert api.put("vm.delete").status == 204
    cfg["disks"] = [{"path": str(inside), "readonly": True}]
    assert api.put("vm.create", cfg).status == 204
    assert api.put("vm.boot").status == 204, vm.describe()
    assert api.get("vm.info").json["state"] == "Running"


@pytest.mark.parametrize("args, message", [
    (["--landlock-rules", "path=/tmp,access=x", "--landlock"],
     "--landlock-rules: invalid access 'x' for '/tmp' (expected r, w or rw)"),
    (["--landlock-rules", "path=/tmp,access=rwr", "--landlock"],
     "--landlock-rules: invalid access 'rwr' for '/tmp' (expected r, w or rw)"),
    (["--landlock-rules", "path=/tmp", "--landlock"],
     "--landlock-rules: access= is required (r, w or rw)"),
    (["--landlock-rules", "access=rw", "--landlock"], "--landlock-rules: path= is required"),
    (["--landlock-rules", "path=/tmp,acces=rw", "--landlock"],
     "--landlock-rules: unknown key 'acces' (expected path or access)"),
    (["--landlock-rules", "path=/tmp,access=rw"],
     "--landlock-rules: needs --landlock (the rules are what Landlock allows beyond the "
     "VM's own files)"),
    (["--landlock", "--landlock-rules", "path=/nonexistent/x,access=r"],
     "landlock: --landlock-rules: cannot open '/nonexistent/x': No such file or directory"),
])
def test_bad_rules_give_one_clear_error(run_cubicle, testguest, args, message):
    vm = run_cubicle("--kernel", testguest("hello"), "--console", "off", *args, timeout=20)
    assert vm.proc.returncode == 1, vm.describe()
    assert stderr_lines(vm) == [f"cubicle: error: {message}"], vm.describe()


def test_landlock_needs_a_kernel_and_not_restore(run_cubicle, tmp_path):
    vm = run_cubicle("--api-socket", f"path={tmp_path / 'a.sock'}", "--landlock", timeout=20)
    assert vm.proc.returncode == 1, vm.describe()
    assert "--landlock: needs --kernel (a VM created through the API turns Landlock on with " \
        "vm.create's landlock_enable)" in vm.stderr, vm.describe()
    vm = run_cubicle("--restore", f"source_url=file://{tmp_path}", "--landlock", timeout=20)
    assert vm.proc.returncode == 1, vm.describe()
    assert "--restore: cannot be combined with --landlock" in vm.stderr, vm.describe()


def test_api_bad_rules_are_a_400(vm_factory, testguest, tmp_path):
    sock = tmp_path / "api.sock"
    vm = vm_factory("--api-socket", f"path={sock}", "-v")
    api = api_of(vm, sock)
    r = api.put("vm.create", idle_config(testguest, landlock_enable=True,
                                         landlock_rules=[{"path": "/tmp", "access": "x"}]))
    assert r.status == 400, r
    assert error_of(r) == "vm.create: landlock_rules: invalid access 'x' for '/tmp' " \
        "(expected r, w or rw)"
    r = api.put("vm.create", idle_config(testguest, landlock_enable=True,
                                         landlock_rules=[{"path": str(tmp_path / "no")}]))
    assert r.status == 400 and "landlock_rules[0].access: missing" in error_of(r), r
    r = api.put("vm.create", idle_config(
        testguest, landlock_enable=True,
        landlock_rules=[{"path": str(tmp_path / "no"), "access": "r"}]))
    assert r.status == 400, r
    assert "landlock: --landlock-rules: cannot open" in error_of(r), r
    # Nothing was stored or confined by the refused requests: the first good one confines.
    assert api.get("vm.info").status == 409
    assert api.put("vm.create", idle_config(testguest, landlock_enable=True)).status == 204
    assert logged(vm, CONFINED), vm.describe()
    assert vm.stderr.count(CONFINED) == 1, vm.describe()
