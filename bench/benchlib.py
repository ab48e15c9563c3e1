"""Shared by the bench/*/run scripts: running one VMM to the end of its test guest's run, with
the CPU time of the whole process (wait4) and of its vCPU threads.

The device test guest busy-polls its rings, so its vCPU thread's CPU time is the guest's, not
the VMM's: the CPU a VMM spends on the device is the whole process's less its vCPU threads'.
cubicle names them "vcpuN", QEMU "CPU N/KVM" (with -name ...,debug-threads=on)."""
import os
import re
import subprocess
import time
from pathlib import Path

VCPU_THREAD_RE = re.compile(r"vcpu\d+$|CPU \d+/KVM$")


def vcpu_seconds(pid):
    """CPU time so far of the process's vCPU threads; None once the process is gone."""
    total, tck = 0.0, os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        if VCPU_THREAD_RE.match(comm):
            fields = rest.split()
            total += (int(fields[11]) + int(fields[12])) / tck  # utime, stime
    return total


def run_once(argv, timeout, peer_argv=None):
    """Runs one VMM to completion (its guest prints DONE, or its output ends); returns (stdout,
    cpu seconds of the whole process, of its vCPU threads up to the guest's PASS line). A peer
    (@peer_argv) runs beside it and is killed at the end."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    peer = None
    deadline = time.monotonic() + timeout
    out = b""
    vcpu = 0.0
    if peer_argv:
        peer = subprocess.Popen(peer_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        try:
            chunk = os.read(proc.stdout.fileno(), 65536)
        except BlockingIOError:
            chunk = None
        if chunk:
            out += chunk
        if b"PASS " not in out or b"PASS " in (chunk or b""):
            # the guest spins until it is done: its CPU is not the VMM's
            vcpu = vcpu_seconds(proc.pid) or vcpu
        if b"DONE passed=" in out or chunk == b"":
            break
        time.sleep(0.005)
    for _ in range(300):
        pid, _, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.01)
    else:
        proc.kill()
        _, _, ru = os.wait4(proc.pid, 0)
    proc.returncode = 0
    if peer:
        peer.kill()
        peer.wait()
    return out, ru.ru_utime + ru.ru_stime, vcpu
