"""cubicle-remote against the real API server: an empty cubicle (only --api-socket) driven
through its life with the idle test guest, one VMM for the whole sequence."""
import json
import os
import subprocess

import pytest

from api_client import Api
from test_remote import remote_bin  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("kvm")


def remote(remote_bin, sock, *args, stdin=None, pass_fds=()):
    return subprocess.run([remote_bin, "--api-socket", str(sock), *args], input=stdin,
                          capture_output=True, text=True, timeout=60, pass_fds=pass_fds)


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    assert r.stderr == ""
    return json.loads(r.stdout) if r.stdout else None


def failed(r):
    assert r.returncode == 1, r
    assert r.stdout == ""
    assert r.stderr.startswith("cubicle-remote: ") and r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def test_remote_lifecycle(vm_factory, testguest, remote_bin, tmp_path):  # noqa: F811
    sock = tmp_path / "api.sock"
    vmm = vm_factory("--api-socket", f"path={sock}")
    Api(sock).wait_ready()

    ping = ok(remote(remote_bin, sock, "ping"))
    assert ping["pid"] == vmm.proc.pid and "build_version" in ping

    # Nothing created yet: the server's error, one line, exit status 1.
    assert "the server answered 4" in failed(remote(remote_bin, sock, "boot"))

    # A config the CLI's validation refuses: the same message, naming the JSON field.
    bad = {"payload": {"kernel": testguest("idle")}, "memory": {"size": (64 << 20) + 1}}
    msg = failed(remote(remote_bin, sock, "create", stdin=json.dumps(bad)))
    assert "the server answered 400" in msg and "memory.size: must be a multiple of 4 KiB" in msg

    config = {"payload": {"kernel": testguest("idle")}, "serial": {"mode": "Tty"},
              "console": {"mode": "Off"}, "memory": {"size": 64 << 20},
              "cpus": {"boot_vcpus": 2, "max_vcpus": 2}}
    f = tmp_path / "vm.json"
    f.write_text(json.dumps(config))
    assert ok(remote(remote_bin, sock, "create", str(f))) is None

    info = ok(remote(remote_bin, sock, "info"))
    assert info["state"] == "Created"
    assert info["config"]["memory"]["size"] == 64 << 20
    assert info["config"]["cpus"]["boot_vcpus"] == 2
    assert info["config"]["payload"]["kernel"] == testguest("idle")
    assert info["config"]["rng"]["src"] == "/dev/urandom"  # defaults filled in

    # add-net's fds travel with SCM_RIGHTS; a pipe is not a TAP: a clear refusal, fd closed.
    r1, w1 = os.pipe()
    try:
        msg = failed(remote(remote_bin, sock, "add-net", f"fd=[{r1}],mac=12:34:56:78:9a:bc",
                            pass_fds=(r1,)))
    finally:
        os.close(r1)
        os.close(w1)
    assert "add-net" in msg and "is not a TAP device" in msg, msg

    assert ok(remote(remote_bin, sock, "boot")) is None
    assert vmm.wait_for("cubicle-testguest: idle", timeout=30), vmm.describe()
    assert ok(remote(remote_bin, sock, "info"))["state"] == "Running"
    assert isinstance(ok(remote(remote_bin, sock, "counters")), dict)

    for _ in range(3):
        assert ok(remote(remote_bin, sock, "pause")) is None
        assert ok(remote(remote_bin, sock, "info"))["state"] == "Paused"
        assert "the server answered 4" in failed(remote(remote_bin, sock, "pause"))
        assert ok(remote(remote_bin, sock, "resume")) is None
        assert ok(remote(remote_bin, sock, "info"))["state"] == "Running"

    # Capabilities cubicle does not have: refused, never a silent success. The body is parsed
    # first, as Cloud Hypervisor does: a bad one gets the field's error.
    assert "the server answered" in failed(remote(remote_bin, sock, "resize", "--cpus", "1"))
    msg = failed(remote(remote_bin, sock, "add-disk", "readonly=on"))
    assert "the server answered 400" in msg and "path: missing" in msg, msg
    msg = failed(remote(remote_bin, sock, "add-pmem", "file=/p,pci_segment=2"))
    assert "pci_segment: must be 0" in msg, msg
    msg = failed(remote(remote_bin, sock, "add-vsock", "cid=3,socket=/s"))
    assert "the server answered" in msg and "vsock" in msg, msg

    assert remote(remote_bin, sock, "shutdown-vmm").returncode == 0
    assert vmm.wait(timeout=30) == 0, vmm.describe()
    assert "cannot connect to API socket" in failed(remote(remote_bin, sock, "ping"))
