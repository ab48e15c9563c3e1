"""Shared fixtures of the end-to-end tests: they run the real `cubicle` binary on the guests
that `make guest` built (BUILD_DIR/guest.env; BUILD_DIR is $CUBICLE_BUILD, default build).

Without a usable /dev/kvm the tests fail with a clear message, unless CUBICLE_SKIP_KVM=1, which
turns that failure into a skip.
"""
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def build_dir():
    d = Path(os.environ.get("CUBICLE_BUILD", "build"))
    return d if d.is_absolute() else ROOT / d


def read_guest_env(path):
    """Parses the KEY=VALUE lines of guest.env (values may be shell-quoted)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        words = shlex.split(value)
        env[key.strip()] = words[0] if words else ""
    return env


def default_cmdline():
    """The default kernel command line for this host (guest/cmdline, one line)."""
    return (ROOT / "guest" / "cmdline").read_text().strip()


@pytest.fixture(scope="session")
def kvm():
    """Fails (or skips with CUBICLE_SKIP_KVM=1) when /dev/kvm cannot be opened."""
    problem = None
    if not os.path.exists("/dev/kvm"):
        problem = "/dev/kvm does not exist (no KVM on this machine)"
    elif not os.access("/dev/kvm", os.R_OK | os.W_OK):
        problem = "/dev/kvm is not readable and writable by this user"
    if problem:
        if os.environ.get("CUBICLE_SKIP_KVM") == "1":
            pytest.skip(problem + " (CUBICLE_SKIP_KVM=1)")
        pytest.fail(problem + "; set CUBICLE_SKIP_KVM=1 to skip the tests that need it",
                    pytrace=False)
    return "/dev/kvm"


@pytest.fixture(scope="session")
def cubicle_bin():
    path = build_dir() / "cubicle"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} missing: run `make build` (or set CUBICLE_BUILD)", pytrace=False)
    return str(path)


@pytest.fixture(scope="session")
def guest_env():
    path = build_dir() / "guest.env"
    if not path.exists():
        pytest.fail(f"{path} missing: run `make guest`", pytrace=False)
    env = read_guest_env(path)
    for key in ("CUBICLE_VMLINUX", "CUBICLE_BZIMAGE", "CUBICLE_INITRAMFS",
                "CUBICLE_TESTGUEST_DIR"):
        if key not in env:
            pytest.fail(f"{path} has no {key}: run `make guest` again", pytrace=False)
    return env


@pytest.fixture(scope="session")
def testguest(guest_env):
    """testguest("hello") -> path of a tiny PVH test guest (guest/testguest/)."""
    def path(name):
        p = Path(guest_env["CUBICLE_TESTGUEST_DIR"]) / name
        if not p.exists():
            pytest.fail(f"test guest {p} missing: run `make guest`", pytrace=False)
        return str(p)
    return path


@pytest.fixture(scope="session")
def device_guest():
    """The device test guest (tests/guest/), built with cubicle."""
    path = build_dir() / "tests" / "guest" / "testguest.elf"
    if not path.exists():
        pytest.fail(f"{path} missing: run `make build`", pytrace=False)
    return str(path)


def tsc_khz():
    """The host's TSC frequency for the test guest's timers (/proc/cpuinfo's MHz)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return int(float(line.split(":")[1]) * 1000)
    return 0


def no_core_dump(returncode):
    """A returncode that is neither a signal death nor a shell-style 128+N."""
    return 0 <= returncode < 128


class Vm:
    """A cubicle process whose stdout and stderr are collected as they stream."""

    def __init__(self, argv, env=None, pass_fds=()):
        self.argv = argv
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, start_new_session=True,
                                     pass_fds=pass_fds)
        self._out = bytearray()
        self._err = bytearray()
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self._out),
                                      (self.proc.stderr, self._err))]
        for t in self._threads:
            t.start()

    def _pump(self, stream, buf):
        while True:
            chunk = stream.read1(65536)
            with self._cond:
                if not chunk:
                    self._cond.notify_all()
                    return
                buf += chunk
                self._cond.notify_all()

    @property
    def stdout(self):
        with self._cond:
            return self._out.decode(errors="replace")

    @property
    def stderr(self):
        with self._cond:
            return self._err.decode(errors="replace")

    def wait_for(self, text, count=1, timeout=30):
        """Waits until @text appears @count times on stdout; returns False on timeout or
        when the process exits first."""
        deadline = time.monotonic() + timeout
        needle = text.encode()
        with self._cond:
            while self._out.count(needle) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and
                                 not any(t.is_alive() for t in self._threads)):
                    return self._out.count(needle) >= count
                self._cond.wait(min(left, 0.2))
            return True

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        """Waits for exit; on timeout kills the process and fails the test."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"cubicle did not exit within {timeout} s\n{self.describe()}")
        for t in self._threads:
            t.join(5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def describe(self, tail=3000):
        return (f"argv: {shlex.join(self.argv)}\nreturncode: {self.proc.returncode}\n"
                f"--- stdout (tail) ---\n{self.stdout[-tail:]}\n"
                f"--- stderr (tail) ---\n{self.stderr[-tail:]}")


@pytest.fixture
def vm_factory(cubicle_bin):
    """vm_factory(args...) starts cubicle with those arguments; every VM still running at the
    end of the test is killed."""
    vms = []

    def start(*args, env=None):
        """@env: extra environment variables for cubicle (added to the test's own)."""
        vm = Vm([cubicle_bin, *args], env={**os.environ, **env} if env else None)
        vms.append(vm)
        return vm
    yield start
    for vm in vms:
        vm.kill()


@pytest.fixture
def run_cubicle(vm_factory):
    """run_cubicle(args..., timeout=30) runs cubicle to completion and returns the Vm (with
    .proc.returncode, .stdout, .stderr)."""
    def run(*args, timeout=30, env=None):
        vm = vm_factory(*args, env=env)
        vm.wait(timeout)
        return vm
    return run


def stderr_lines(vm):
    return [l for l in vm.stderr.splitlines() if l.strip()]


def first_match(pattern, text, flags=0):
    m = re.search(pattern, text, flags)
    return m.group(1) if m else None
