"""The command line, Cloud Hypervisor v28's: every bad input exits with status 1 and exactly
one line on stderr that names the option or file at fault; never a crash or a core dump."""
import os
import re

import pytest

from conftest import no_core_dump, stderr_lines


def assert_one_error(vm, *words):
    """Exit status 1, one stderr line, containing every word of @words (case-insensitive)."""
    rc = vm.proc.returncode
    assert no_core_dump(rc), vm.describe()
    assert rc == 1, vm.describe()
    lines = stderr_lines(vm)
    assert len(lines) == 1, "expected exactly one line on stderr\n" + vm.describe()
    for w in words:
        assert re.search(w, lines[0], re.IGNORECASE), \
            f"stderr line does not mention {w!r}\n" + vm.describe()


def test_version(run_cubicle):
    vm = run_cubicle("--version")
    assert vm.proc.returncode == 0, vm.describe()
    assert re.search(r"\d+\.\d+", vm.stdout + vm.stderr), vm.describe()


def test_help(run_cubicle):
    vm = run_cubicle("--help")
    assert vm.proc.returncode == 0, vm.describe()
    assert "--kernel" in vm.stdout + vm.stderr, vm.describe()


# Errors found while parsing and validating the configuration: no KVM needed.
@pytest.mark.parametrize("args,words", [
    (["--frobnicate"], ["frobnicate"]),
    (["--memory", "size=abc"], ["memory"]),
    (["--memory", "size=1G,foo=bar"], ["memory", "foo"]),
    (["--cpus", "boot=0"], ["cpus"]),
    (["--serial", "bogus"], ["serial"]),
    (["--disk", "path=/a,id=d1", "--net", "tap=t0,id=d1"], ["device id 'd1'", "more than one"]),
    (["--disk", "path=/a,id=__x"], ["device id '__x'", "reserved"]),
], ids=["unknown-option", "memory-size-abc", "memory-unknown-key", "cpus-boot-0",
        "serial-bogus", "id-shared-by-disk-and-net", "id-reserved"])
def test_bad_option(run_cubicle, testguest, args, words):
    vm = run_cubicle("--kernel", testguest("hello"), *args)
    assert_one_error(vm, *words)


def test_no_kernel(run_cubicle):
    vm = run_cubicle("--memory", "size=512M")
    assert_one_error(vm, "kernel")


# Errors found when the VM is built: these may need /dev/kvm to get that far.
@pytest.mark.usefixtures("kvm")
class TestBuildErrors:
    def test_too_many_vcpus(self, run_cubicle, testguest):
        vm = run_cubicle("--kernel", testguest("hello"), "--cpus", "boot=1000")
        assert_one_error(vm, "cpu")

    def test_memory_more_than_host(self, run_cubicle, testguest):
        vm = run_cubicle("--kernel", testguest("hello"), "--memory", "size=100T")
        assert_one_error(vm, "memory")

    def test_missing_kernel(self, run_cubicle, tmp_path):
        vm = run_cubicle("--kernel", str(tmp_path / "nope"))
        assert_one_error(vm, "kernel|nope")

    def test_kernel_is_a_directory(self, run_cubicle, tmp_path):
        vm = run_cubicle("--kernel", str(tmp_path))
        assert_one_error(vm, "kernel|" + re.escape(str(tmp_path)))

    def test_corrupt_kernel(self, run_cubicle, tmp_path):
        bad = tmp_path / "random.bin"
        bad.write_bytes(os.urandom(64 * 1024))
        vm = run_cubicle("--kernel", str(bad))
        assert_one_error(vm, "kernel|random.bin")

    def test_empty_kernel(self, run_cubicle, tmp_path):
        bad = tmp_path / "empty"
        bad.write_bytes(b"")
        vm = run_cubicle("--kernel", str(bad))
        assert_one_error(vm, "kernel|empty")

    def test_truncated_vmlinux(self, run_cubicle, guest_env, tmp_path):
        with open(guest_env["CUBICLE_VMLINUX"], "rb") as f:
            head = f.read(4096)
        bad = tmp_path / "vmlinux-4k"
        bad.write_bytes(head)
        vm = run_cubicle("--kernel", str(bad))
        assert_one_error(vm, "kernel|vmlinux-4k")

    def test_truncated_bzimage(self, run_cubicle, guest_env, tmp_path):
        with open(guest_env["CUBICLE_BZIMAGE"], "rb") as f:
            head = f.read(8192)
        bad = tmp_path / "bzImage-8k"
        bad.write_bytes(head)
        vm = run_cubicle("--kernel", str(bad))
        assert_one_error(vm, "kernel|bzImage-8k")

    def test_missing_initramfs(self, run_cubicle, testguest, tmp_path):
        vm = run_cubicle("--kernel", testguest("hello"), "--initramfs",
                         str(tmp_path / "no-initrd"))
        assert_one_error(vm, "initramfs|no-initrd")

    @pytest.mark.parametrize("option, value, words", [
        ("--serial", "file={tmp}/no-dir/serial.log", ("--serial", "cannot open")),
        ("--console", "file={tmp}/no-dir/console.log", ("--console", "cannot open")),
        ("--rng", "src={tmp}/no-rng", ("--rng", "cannot open")),
        ("--rng", "src={tmp}", ("--rng", "not a file or device")),
        ("--rng", "src={tmp}/empty", ("--rng", "empty")),
    ])
    def test_device_backend_errors(self, run_cubicle, testguest, tmp_path, option, value,
                                   words):
        """A device whose backend cannot be opened: one line naming the option (not a second
        one from the VM builder), exit 1."""
        (tmp_path / "empty").write_bytes(b"")
        args = ["--kernel", testguest("hello"), option, value.format(tmp=tmp_path)]
        if option != "--console":
            args += ["--console", "off"]
        vm = run_cubicle(*args)
        assert_one_error(vm, *words)
