"""Snapshot and restore of the real Linux guest: one boot (~1 minute on kvm_pvm hosts), then
clones restored from its snapshot, which is also the fast way to a running Linux here.

The template has two vCPUs (both are saved and restored) and runs a counter in its /init shell that holds a file open (fd 3) and writes each
count to the console, to that file, and to its disk (/dev/vda, raw). A clone must go on
counting from where the template was paused, on the console, through the open file, and to
its own disk (vm.resume-from-snapshot's per-clone `disks` override) while the template's disk
stays as it was; Linux must see the new VM generation ID (its RNG reseeds: "crng reseeded due
to virtual machine fork"). The template also serves vsock port 1234 (guest/tools/vsock-echo):
a clone's connections were reset by the restore, but its listener answers on the clone's own
socket and CID."""
import hashlib
import os
import re
import shutil

import pytest

from api_client import Api
from conftest import default_cmdline

pytestmark = pytest.mark.usefixtures("kvm")

BOOT_TIMEOUT = int(os.environ.get("CUBICLE_E2E_BOOT_TIMEOUT", "600"))
VSOCK_PORT = 1234
COUNTER = (f"vsock-echo serve {VSOCK_PORT} & "
           "exec 3>/counter.txt; i=0; while :; do i=$((i+1)); echo counter $i; echo $i >&3 || "
           "echo counter-file-broken; echo disk-count $i >/dev/vda; sync; sleep 1; done")


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def counts(text):
    return [int(x) for x in re.findall(r"counter (\d+)", text)]


@pytest.fixture(scope="module")
def linux_template(tmp_path_factory, guest_env, kvm):
    """Boots Linux once, lets the counter run, pauses and snapshots it: (directory, disk)."""
    from conftest import Vm, build_dir
    work = tmp_path_factory.mktemp("linux-snap")
    disk = work / "template.img"
    disk.write_bytes(b"\0" * (1 << 20))
    snap = work / "snap"
    snap.mkdir()
    sock = work / "tpl.sock"
    vm = Vm([str(build_dir() / "cubicle"), "--kernel", guest_env["CUBICLE_VMLINUX"],
             "--initramfs", guest_env["CUBICLE_INITRAMFS"],
             "--cmdline", default_cmdline() + " -- " + COUNTER,
             "--cpus", "boot=2", "--memory", "size=256M", "--disk", f"path={disk}",
             "--vsock", f"cid=3,socket={work / 'tpl.vsock'}",
             "--serial", "tty",
             "--console", "off", "--api-socket", f"path={sock}"])
    try:
        assert vm.wait_for("counter 3\r", timeout=BOOT_TIMEOUT), vm.describe()
        assert vm.wait_for("vsock-echo: listening", timeout=60), vm.describe()
        api = Api(sock)
        assert api.put("vm.pause").status == 204
        last = counts(vm.stdout)[-1]
        r = api.put("vm.snapshot", {"destination_url": f"file://{snap}"})
        assert r.status == 204, r
    finally:
        vm.kill()
    return snap, disk, last


def test_linux_clone_continues(linux_template, vm_factory, tmp_path):
    snap, disk, last = linux_template
    before = sha(disk)
    own = tmp_path / "clone.img"
    shutil.copyfile(disk, own)
    sock = tmp_path / "clone.sock"
    vm = vm_factory("--api-socket", f"path={sock}")
    api = Api(sock)
    api.wait_ready()
    r = api.put("vm.resume-from-snapshot",
                {"source_url": f"file://{snap}", "disks": [{"path": str(own), "id": "_disk0"}]})
    assert r.status == 204, r
    assert vm.wait_for(f"counter {last + 3}\r", timeout=120), vm.describe()
    seen = counts(vm.stdout)
    assert seen[0] in (last, last + 1) and seen == list(range(seen[0], seen[-1] + 1)), \
        vm.describe()
    assert "counter-file-broken" not in vm.stdout, vm.describe()
    # The clone's writes reach its own disk; the template's is untouched.
    assert own.read_bytes().startswith(b"disk-count "), own.read_bytes()[:40]
    n = int(own.read_bytes()[11:20].split(b"\n")[0])
    assert n > last, (n, last)
    assert sha(disk) == before
    # Linux saw the new VM generation ID.
    assert vm.wait_for("crng reseeded due to virtual machine fork", timeout=30), vm.describe()
    info = api.get("vm.info").json
    assert info["state"] == "Running"
    assert info["config"]["cpus"]["boot_vcpus"] == 2
    assert info["config"]["disks"][0]["path"] == str(own)


def test_linux_clones_at_once(linux_template, vm_factory, tmp_path):
    """Three clones at once from the same snapshot, each on its own disk copy."""
    snap, disk, last = linux_template
    vms = []
    for i in range(3):
        own = tmp_path / f"c{i}.img"
        shutil.copyfile(disk, own)
        sock = tmp_path / f"c{i}.sock"
        vm = vm_factory("--api-socket", f"path={sock}")
        api = Api(sock)
        api.wait_ready()
        r = api.put("vm.resume-from-snapshot",
                    {"source_url": f"file://{snap}",
                     "disks": [{"path": str(own), "id": "_disk0"}]})
        assert r.status == 204, r
        vms.append(vm)
    for vm in vms:
        assert vm.wait_for(f"counter {last + 2}\r", timeout=180), vm.describe()


def test_linux_clone_vsock(linux_template, vm_factory, tmp_path):
    """The guest's vsock listener survives the restore (connections are reset, listeners are
    not) and answers through the clone's own Unix socket and CID."""
    import socket
    snap, disk, last = linux_template
    own = tmp_path / "clone.img"
    shutil.copyfile(disk, own)
    path = tmp_path / "clone.vsock"
    sock = tmp_path / "clone.sock"
    vm = vm_factory("--api-socket", f"path={sock}")
    api = Api(sock)
    api.wait_ready()
    r = api.put("vm.resume-from-snapshot",
                {"source_url": f"file://{snap}", "disks": [{"path": str(own), "id": "_disk0"}],
                 "vsock": {"cid": 4, "socket": str(path)}})
    assert r.status == 204, r
    assert vm.wait_for(f"counter {last + 2}\r", timeout=120), vm.describe()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(str(path))
    s.sendall(f"CONNECT {VSOCK_PORT}\n".encode())
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        assert b, f"connection closed after {line!r}\n{vm.describe()}"
        line += b
    assert line.startswith(b"OK "), line
    s.sendall(b"hello clone")
    got = b""
    while len(got) < len(b"hello clone"):
        b = s.recv(64)
        assert b, got
        got += b
    assert got == b"hello clone", got
    s.close()
    assert api.get("vm.info").json["config"]["vsock"]["cid"] == 4
