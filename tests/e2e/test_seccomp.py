"""--seccomp (security/seccomp.c, docs/seccomp.md): every thread kind that exists confines itself,
a forbidden system call ends the process with SIGSYS and one line naming the thread and the call,
`false` turns the filters off and `log` lets the call through. The rest of the e2e suite runs
with the default (true), which is what shows that the filters are complete."""
import signal

import pytest

pytestmark = pytest.mark.usefixtures("kvm")

# The test-only hook: the thread of this kind makes a forbidden call (setsid) right after it
# installed its filter.
SELFTEST = "CUBICLE_SECCOMP_SELFTEST"


def hello(testguest):
    return ("--kernel", testguest("idle"), "--serial", "tty", "--console", "off")


@pytest.mark.parametrize("kind,thread", [("vmm", "vmm"), ("vcpu", "vcpu0"), ("ctl", "ctl")])
def test_violation_kills_with_a_clear_line(run_cubicle, testguest, kind, thread):
    vm = run_cubicle(*hello(testguest), env={SELFTEST: kind})
    assert vm.proc.returncode == -signal.SIGSYS, vm.describe()
    line = (f"cubicle: seccomp: thread '{thread}' made a forbidden system call: setsid (112); "
            "ending the process (--seccomp true)")
    assert line in vm.stderr, vm.describe()


@pytest.mark.parametrize("kind", ["vmm", "vcpu", "ctl"])
def test_seccomp_false_and_log_let_the_call_through(vm_factory, testguest, kind):
    for mode in ("false", "log"):
        vm = vm_factory(*hello(testguest), "--seccomp", mode, env={SELFTEST: kind})
        # The idle guest runs until stopped: still alive after its start means the call
        # went through.
        assert vm.wait_for("cubicle-testguest: idle", timeout=10), vm.describe()
        vm.signal(signal.SIGTERM)
        assert vm.wait(10) == 0, vm.describe()
        assert "seccomp" not in vm.stderr, vm.describe()


def test_reboot_keeps_the_filters_working(vm_factory, testguest):
    """After a guest reset the VMM thread (already confined) rebuilds the VM and starts vCPU
    threads again, which add their own filter on top of the inherited one: two reboots, then a
    clean stop, and no violation."""
    vm = vm_factory("--kernel", testguest("reset"), "--serial", "tty", "--console", "off")
    assert vm.wait_for("cubicle-testguest: reset\n", count=3, timeout=30), vm.describe()
    vm.signal(signal.SIGTERM)
    assert vm.wait(10) == 0, vm.describe()
    assert "seccomp" not in vm.stderr, vm.describe()


def test_docs_name_every_allowed_call():
    """docs/seccomp.md says why each call is allowed: every SCMP_SYS() in the filters is there."""
    import re
    from conftest import ROOT
    src = (ROOT / "src" / "security" / "seccomp.c").read_text()
    doc = (ROOT / "docs" / "seccomp.md").read_text()
    calls = set(re.findall(r"SCMP_SYS\((\w+)\)", src))
    assert len(calls) > 40
    missing = sorted(c for c in calls if f"`{c}`" not in doc)
    assert not missing, f"docs/seccomp.md does not explain: {missing}"


def test_api_thread_is_confined(run_cubicle, tmp_path):
    sock = tmp_path / "api.sock"
    vm = run_cubicle("--api-socket", f"path={sock}", env={SELFTEST: "api"}, timeout=30)
    assert vm.proc.returncode == -signal.SIGSYS, vm.describe()
    assert "thread 'api' made a forbidden system call: setsid (112)" in vm.stderr, vm.describe()


def test_disk_worker_threads_are_confined(run_cubicle, testguest, tmp_path):
    """virtio-blk's worker pool (the engine without io_uring) confines each worker."""
    img = tmp_path / "disk.raw"
    img.write_bytes(b"\0" * (1 << 20))
    vm = run_cubicle(*hello(testguest), "--disk", f"path={img},_disable_io_uring=on",
                     env={SELFTEST: "worker"}, timeout=30)
    assert vm.proc.returncode == -signal.SIGSYS, vm.describe()
    assert "thread 'blk-worker' made a forbidden system call: setsid (112)" in vm.stderr, \
        vm.describe()


def test_pmem_flush_worker_is_confined(run_cubicle, testguest, tmp_path):
    """virtio-pmem's flush engine, as a worker thread (CUBICLE_BLK_ENGINE=pool), confines itself
    under a name of its own."""
    backing = tmp_path / "pmem.img"
    backing.write_bytes(b"\0" * (2 << 20))
    vm = run_cubicle(*hello(testguest), "--pmem", f"file={backing}",
                     env={SELFTEST: "worker", "CUBICLE_BLK_ENGINE": "pool"}, timeout=30)
    assert vm.proc.returncode == -signal.SIGSYS, vm.describe()
    assert "thread 'pmem-worker' made a forbidden system call: setsid (112)" in vm.stderr, \
        vm.describe()
