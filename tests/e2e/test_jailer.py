"""cubicle-jailer (src/jailer/jailer.c, docs/jailer.md): cubicle runs in its own mount namespace
rooted at the jail directory, as the given uid/gid, in its cgroup with the limits set and with
its rlimits; host paths are out of reach; the jail and the cgroup are gone when the VM ends; bad
ids and paths are refused with one clear line."""
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import build_dir

pytestmark = pytest.mark.usefixtures("kvm")

NOBODY = 65534


@pytest.fixture
def jailer():
    path = build_dir() / "cubicle-jailer"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} missing: run `make build`", pytrace=False)
    return str(path)


@pytest.fixture
def base(tmp_path):
    # The jail needs device nodes: a directory on the root file system (not a nodev tmpfs).
    d = Path(f"/var/tmp/cubicle-jail-test-{os.getpid()}-{tmp_path.name}")
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=False)


def jail_cmd(jailer, cubicle_bin, base, vm_id, guest, *extra, cubicle_args=()):
    return [jailer, "--id", vm_id, "--exec-file", cubicle_bin, "--uid", str(NOBODY),
            "--gid", str(NOBODY), "--chroot-base-dir", str(base), "--ro-file", guest, *extra,
            "--", "--kernel", "/" + os.path.basename(guest), "--serial", "tty",
            "--console", "off", *cubicle_args]


def test_vm_runs_in_the_jail_and_leaves_nothing(jailer, cubicle_bin, testguest, base):
    r = subprocess.run(jail_cmd(jailer, cubicle_bin, base, "vm-hello", testguest("hello")),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "cubicle-testguest: hello" in r.stdout
    assert not (base / "cubicle" / "vm-hello").exists()


def child_of(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    pytest.fail("the jailer started no child")


def cgroup_v1():
    return not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def test_confinement_while_running(jailer, cubicle_bin, testguest, base):
    vm_id = f"vm-{os.getpid()}"
    limits = (["--cgroup", "memory.limit_in_bytes=268435456", "--cgroup", "pids.max=64"]
              if cgroup_v1() else ["--cgroup", "memory.max=268435456", "--cgroup",
                                   "pids.max=64"])
    p = subprocess.Popen(jail_cmd(jailer, cubicle_bin, base, vm_id, testguest("idle"),
                                  "--new-pid-ns", "--resource-limit", "no-file=128",
                                  "--resource-limit", "fsize=1048576", *limits),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        vmm = child_of(p.pid)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{vmm}/exe").resolve().name != "cubicle":
            assert time.monotonic() < deadline, "cubicle was never exec'd"
            time.sleep(0.05)
        status = Path(f"/proc/{vmm}/status").read_text()
        assert re.search(rf"^Uid:\s+{NOBODY}\s+{NOBODY}\s+{NOBODY}\s+{NOBODY}$", status, re.M)
        assert re.search(rf"^Gid:\s+{NOBODY}\s+{NOBODY}\s+{NOBODY}\s+{NOBODY}$", status, re.M)
        assert re.search(r"^Groups:\s*$", status, re.M)
        # Its root is the jail, holding only what the VM needs.
        root = Path(f"/proc/{vmm}/root")
        # (its path is not visible from here, only the directory itself)
        jail = os.stat(base / "cubicle" / vm_id / "root")
        seen = os.stat(root)
        assert (seen.st_dev, seen.st_ino) == (jail.st_dev, jail.st_ino)
        assert sorted(os.listdir(root)) == ["cubicle", "dev", "idle", "proc"]
        assert sorted(os.listdir(root / "dev")) == ["kvm", "net", "null", "urandom"]
        # A new PID namespace: it is process 1 there.
        assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), status
        limits_txt = Path(f"/proc/{vmm}/limits").read_text()
        assert re.search(r"Max open files\s+128\s+128", limits_txt)
        assert re.search(r"Max file size\s+1048576\s+1048576", limits_txt)
        cg = Path(f"/proc/{vmm}/cgroup").read_text()
        if cgroup_v1():
            assert f"memory:/cubicle/{vm_id}" in cg, cg
            d = Path("/sys/fs/cgroup/memory/cubicle") / vm_id
            assert (d / "memory.limit_in_bytes").read_text().strip() == "268435456"
            assert (Path("/sys/fs/cgroup/pids/cubicle") / vm_id / "pids.max").read_text() \
                .strip() == "64"
        else:
            assert f"0::/cubicle/{vm_id}" in cg, cg
        # The guest runs in the jail: its first line arrives (then stop it).
        ready, _, _ = select.select([p.stdout], [], [], 15)
        assert ready and "cubicle-testguest: idle" in p.stdout.readline()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=15)
        assert p.returncode == 0, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not (base / "cubicle" / vm_id).exists()
    assert not (Path("/sys/fs/cgroup/memory/cubicle") / vm_id).exists()


def test_host_paths_are_out_of_reach(jailer, cubicle_bin, testguest, base):
    """The kernel named by its host path cannot be opened from inside the jail."""
    host_path = testguest("hello")
    cmd = jail_cmd(jailer, cubicle_bin, base, "vm-reach", testguest("hello"))
    cmd[cmd.index("/hello")] = host_path
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert host_path in r.stderr and "No such file" in r.stderr, r.stderr


def test_netns_is_joined(jailer, cubicle_bin, testguest, base):
    ns = f"cubicle-jail-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        p = subprocess.Popen(jail_cmd(jailer, cubicle_bin, base, "vm-ns", testguest("idle"),
                                      "--netns", f"/var/run/netns/{ns}"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            vmm = child_of(p.pid)
            deadline = time.monotonic() + 10
            want = os.stat(f"/var/run/netns/{ns}").st_ino
            while os.stat(f"/proc/{vmm}/ns/net").st_ino != want:
                assert time.monotonic() < deadline, "cubicle is not in the namespace"
                time.sleep(0.05)
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=15)
            assert p.returncode == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.parametrize("args,message", [
    (["--id", "../x"], "--id: '../x' is not 1-64 characters of [A-Za-z0-9-]"),
    (["--id", ""], "--id: '' is not"),
    (["--id", "a" * 65], "is not 1-64 characters"),
    (["--uid", "abc"], "--uid: invalid value 'abc'"),
    (["--exec-file", "build/cubicle"], "--exec-file: an absolute path to cubicle is required"),
    (["--exec-file", "/nonexistent/cubicle"], "is not an executable file"),
    (["--ro-file", "/nonexistent/kernel"], "--ro-file: '/nonexistent/kernel' is not a regular"),
    (["--ro-file", "relative/kernel"], "is not an absolute path"),
    (["--chroot-base-dir", "relative"], "--chroot-base-dir: 'relative' must be an absolute"),
    (["--cgroup", "../../x=1"], "--cgroup: expected FILE=VALUE"),
    (["--resource-limit", "cpu=1"], "--resource-limit: unknown resource 'cpu'"),
    (["--netns", "/nonexistent/ns"], "--netns: cannot open '/nonexistent/ns'"),
    (["--bogus", "1"], "unknown option '--bogus'"),
])
def test_bad_arguments_are_refused(jailer, cubicle_bin, testguest, base, args, message):
    cmd = [jailer, "--id", "vm-bad", "--exec-file", cubicle_bin, "--uid", "1", "--gid", "1",
           "--chroot-base-dir", str(base), "--ro-file", testguest("hello")]
    for i in range(0, len(args), 2):
        if args[i] in cmd and args[i] not in ("--ro-file",):
            cmd[cmd.index(args[i]) + 1] = args[i + 1]
        else:
            cmd += args[i:i + 2]
    r = subprocess.run(cmd + ["--", "--kernel", "/hello"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not (base / "cubicle" / "vm-bad").exists()


def test_an_id_in_use_is_refused(jailer, cubicle_bin, testguest, base):
    (base / "cubicle" / "vm-dup").mkdir(parents=True)
    r = subprocess.run(jail_cmd(jailer, cubicle_bin, base, "vm-dup", testguest("hello")),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "another VM with this id?" in r.stderr
    assert (base / "cubicle" / "vm-dup").exists()  # not ours: left alone


def test_cubicle_dies_with_the_jailer(jailer, cubicle_bin, testguest, base):
    """A jailer killed outright (SIGKILL: no forwarding, no clean-up) takes cubicle with it:
    no VMM is left running unsupervised in a jail."""
    for extra in ([], ["--new-pid-ns"]):
        p = subprocess.Popen(jail_cmd(jailer, cubicle_bin, base, f"vm-orphan{len(extra)}",
                                      testguest("idle"), *extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        vmm = child_of(p.pid)
        ready, _, _ = select.select([p.stdout], [], [], 15)
        assert ready and "cubicle-testguest: idle" in p.stdout.readline()
        p.kill()
        p.wait()
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{vmm}") and \
                "Z" not in Path(f"/proc/{vmm}/stat").read_text().split()[2]:
            assert time.monotonic() < deadline, "cubicle outlived its jailer"
            time.sleep(0.05)


def test_daemonize_returns_at_once_and_cleans_up(jailer, cubicle_bin, testguest, base):
    """--daemonize: the command returns (status 0, nothing printed) once cubicle is exec'd; the
    supervising jailer lives on in a session of its own with its stdio on /dev/null, and when
    cubicle ends it still removes the jail and the cgroup."""
    from api_client import Api
    vm_id = f"vm-daemon-{os.getpid()}"
    jail = base / "cubicle" / vm_id
    t0 = time.monotonic()
    r = subprocess.run(jail_cmd(jailer, cubicle_bin, base, vm_id, testguest("idle"),
                                "--daemonize", "--cgroup", "pids.max=64",
                                cubicle_args=("--api-socket", "/api.sock")),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r
    assert time.monotonic() - t0 < 5
    api = Api(jail / "root" / "api.sock")
    api.wait_ready()
    vmm = api.get("vmm.ping").json["pid"]
    supervisor = int(Path(f"/proc/{vmm}/stat").read_text().rsplit(")", 1)[1].split()[1])
    try:
        assert Path(f"/proc/{vmm}/exe").resolve().name == "cubicle"
        assert Path(f"/proc/{supervisor}/exe").resolve().name == "cubicle-jailer"
        # Detached: a session of its own (it leads it), nothing of the caller's terminal.
        assert os.getsid(supervisor) == supervisor != os.getsid(0)
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{supervisor}/fd/{fd}") == "/dev/null"
        assert api.get("vm.info").json["state"] == "Running"
        cg = Path(f"/proc/{vmm}/cgroup").read_text()
        assert f"/cubicle/{vm_id}" in cg, cg
        assert api.put("vmm.shutdown").status == 200
        deadline = time.monotonic() + 15
        while jail.exists() or os.path.exists(f"/proc/{supervisor}"):
            assert time.monotonic() < deadline, "the jail was not cleaned up"
            time.sleep(0.05)
    finally:
        for pid in (vmm, supervisor):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not (Path("/sys/fs/cgroup/cubicle") / vm_id).exists()
    assert not (Path("/sys/fs/cgroup/pids/cubicle") / vm_id).exists()


def test_daemonize_still_reports_a_failure(jailer, cubicle_bin, testguest, base, tmp_path):
    """A step that fails after the jail is made (joining a 'network namespace' that is a plain
    file) is still reported on the caller's stderr, with status 1, and the jail is gone."""
    not_ns = tmp_path / "not-a-netns"
    not_ns.write_text("")
    r = subprocess.run(jail_cmd(jailer, cubicle_bin, base, "vm-dfail", testguest("idle"),
                                "--daemonize", "--netns", str(not_ns)),
                       capture_output=True, text=True, timeout=15)
    assert r.returncode == 1, r
    assert r.stderr == "cubicle-jailer: cannot join the network namespace: Invalid argument\n", r
    assert not (base / "cubicle" / "vm-dfail").exists()
