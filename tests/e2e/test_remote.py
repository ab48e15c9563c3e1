"""cubicle-remote against a stub HTTP server on a Unix socket (a Python thread that records
each request, its fds included, and answers what the test asks for): every subcommand sends
the method, route and body ch-remote v28 sends; errors are one clear line and exit status 1.

No KVM needed: the real server is exercised in test_api_remote.py.
"""
import json
import os
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import build_dir


@pytest.fixture(scope="session")
def remote_bin():
    path = build_dir() / "cubicle-remote"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} missing: run `make build` (or set CUBICLE_BUILD)", pytrace=False)
    return str(path)


class StubServer:
    """Answers every request with self.reply (raw bytes, or a (status, body) pair) and keeps
    the requests: dicts of method, path, headers, body, fds (received with SCM_RIGHTS)."""

    def __init__(self, path):
        self.path = path
        self.requests = []
        self.reply = (200, b"")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_request(self, conn):
        data, fds = b"", []
        while b"\r\n\r\n" not in data:
            msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += list(memoryview(payload).cast("i"))
            if not msg:
                return None
            data += msg
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip()
                   for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return {"method": method, "path": path, "headers": headers, "body": body, "fds": fds}

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                req = self._read_request(conn)
                if req is None:
                    continue
                self.requests.append(req)
                reply = self.reply
                if isinstance(reply, tuple):
                    status, body = reply
                    reason = {200: "OK", 204: "No Content", 400: "Bad Request",
                              404: "Not Found", 500: "Internal Server Error"}.get(status, "X")
                    reply = (f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
                             + ("Content-Type: application/json\r\n" if body else "")
                             + "\r\n").encode() + body
                if reply:
                    conn.sendall(reply)

    def close(self):
        # shutdown() wakes the thread blocked in accept(); a bare close() would leave it
        # blocked there, and a later test's socket could reuse the fd under it.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        assert not self.thread.is_alive(), "the stub server thread did not end"
        self.sock.close()


@pytest.fixture
def stub():
    d = tempfile.mkdtemp(prefix=f"cubicle-remote-{os.getpid()}-")
    server = StubServer(os.path.join(d, "api.sock"))
    yield server
    server.close()
    os.unlink(server.path)
    os.rmdir(d)


def run(remote_bin, sock, *args, stdin=None, pass_fds=()):
    return subprocess.run([remote_bin, "--api-socket", sock, *args], input=stdin,
                          capture_output=True, text=True, timeout=30, pass_fds=pass_fds)


# subcommand arguments -> (method, route, expected JSON body or None)
CASES = [
    (["ping"], "GET", "vmm.ping", None),
    (["shutdown-vmm"], "PUT", "vmm.shutdown", None),
    (["info"], "GET", "vm.info", None),
    (["counters"], "GET", "vm.counters", None),
    (["boot"], "PUT", "vm.boot", None),
    (["pause"], "PUT", "vm.pause", None),
    (["resume"], "PUT", "vm.resume", None),
    (["shutdown"], "PUT", "vm.shutdown", None),
    (["reboot"], "PUT", "vm.reboot", None),
    (["power-button"], "PUT", "vm.power-button", None),
    (["delete"], "PUT", "vm.delete", None),
    (["add-disk", "path=/a.img,readonly=on,num_queues=2,id=d0,bw_size=1000,bw_refill_time=10"],
     "PUT", "vm.add-disk",
     {"path": "/a.img", "readonly": True, "num_queues": 2, "id": "d0",
      "rate_limiter_config": {"bandwidth": {"size": 1000, "refill_time": 10}}}),
    (["add-disk", "path=/b,socket=/s,vhost_user=true,_disable_io_uring=on"], "PUT",
     "vm.add-disk", {"path": "/b", "vhost_socket": "/s", "vhost_user": True,
                     "disable_io_uring": True}),
    (["add-net", "tap=tap0,mac=12:34:56:78:9a:bc,ip=10.0.0.1,mask=255.0.0.0,mtu=1400,"
                 "num_queues=4,queue_size=512,vhost_mode=server,ops_size=5,ops_refill_time=9"],
     "PUT", "vm.add-net",
     {"tap": "tap0", "mac": "12:34:56:78:9a:bc", "ip": "10.0.0.1", "mask": "255.0.0.0",
      "mtu": 1400, "num_queues": 4, "queue_size": 512, "vhost_mode": "Server",
      "rate_limiter_config": {"ops": {"size": 5, "refill_time": 9}}}),
    (["add-pmem", "file=/p.img,size=1G,discard_writes=on"], "PUT", "vm.add-pmem",
     {"file": "/p.img", "size": 1 << 30, "discard_writes": True}),
    (["add-vsock", "cid=3,socket=/tmp/v.sock,id=v0"], "PUT", "vm.add-vsock",
     {"cid": 3, "socket": "/tmp/v.sock", "id": "v0"}),
    (["add-fs", "tag=myfs,socket=/tmp/fs.sock,num_queues=1,queue_size=1024"], "PUT",
     "vm.add-fs", {"tag": "myfs", "socket": "/tmp/fs.sock", "num_queues": 1,
                   "queue_size": 1024}),
    (["add-device", "path=/sys/bus/pci/devices/0000:01:00.0,iommu=on"], "PUT",
     "vm.add-device", {"path": "/sys/bus/pci/devices/0000:01:00.0", "iommu": True}),
    (["add-user-device", "socket=/tmp/u.sock,id=u0"], "PUT", "vm.add-user-device",
     {"socket": "/tmp/u.sock", "id": "u0"}),
    (["add-vdpa", "path=/dev/vhost-vdpa-0,num_queues=2"], "PUT", "vm.add-vdpa",
     {"path": "/dev/vhost-vdpa-0", "num_queues": 2}),
    (["remove-device", "_disk0"], "PUT", "vm.remove-device", {"id": "_disk0"}),
    (["resize", "--cpus", "4", "--memory=2G", "--balloon", "512M"], "PUT", "vm.resize",
     {"desired_vcpus": 4, "desired_ram": 2 << 30, "desired_balloon": 512 << 20}),
    (["resize", "--cpus", "2"], "PUT", "vm.resize", {"desired_vcpus": 2}),
    (["resize-zone", "--id", "mem0", "--size", "1G"], "PUT", "vm.resize-zone",
     {"id": "mem0", "desired_ram": 1 << 30}),
    (["snapshot", "file:///tmp/snap"], "PUT", "vm.snapshot",
     {"destination_url": "file:///tmp/snap"}),
    (["restore", "source_url=file:///tmp/snap,prefault=on"], "PUT", "vm.restore",
     {"source_url": "file:///tmp/snap", "prefault": True}),
    (["pause2snapshot", "file:///tmp/snap"], "PUT", "vm.pause2snapshot",
     {"destination_url": "file:///tmp/snap"}),
    (["resume-from-snapshot", "source_url=file:///tmp/snap"], "PUT",
     "vm.resume-from-snapshot", {"source_url": "file:///tmp/snap"}),
    (["resume-from-snapshot", "source_url=file:///s,prefault=off", "--net", "tap=tap7,id=n0",
      "--disk=path=/c.img,id=d0", "--disk", "path=/e.img,id=d1", "--pmem",
      "file=/p,id=p0", "--vsock", "cid=9,socket=/v.sock"], "PUT", "vm.resume-from-snapshot",
     {"source_url": "file:///s", "prefault": False, "net": [{"tap": "tap7", "id": "n0"}],
      "disks": [{"path": "/c.img", "id": "d0"}, {"path": "/e.img", "id": "d1"}],
      "pmem": [{"file": "/p", "id": "p0"}], "vsock": {"cid": 9, "socket": "/v.sock"}}),
    (["waitstart"], "PUT", "vm.waitstart", None),
    (["waitstart", "--timeout", "1500"], "PUT", "vm.waitstart", {"timeout_ms": 1500}),
    (["coredump", "file:///tmp/core"], "PUT", "vm.coredump",
     {"destination_url": "file:///tmp/core"}),
    (["send-migration", "unix:/tmp/mig", "--local"], "PUT", "vm.send-migration",
     {"destination_url": "unix:/tmp/mig", "local": True}),
    (["send-migration", "tcp:1.2.3.4:6000"], "PUT", "vm.send-migration",
     {"destination_url": "tcp:1.2.3.4:6000", "local": False}),
    (["receive-migration", "unix:/tmp/mig"], "PUT", "vm.receive-migration",
     {"receiver_url": "unix:/tmp/mig"}),
]


@pytest.mark.parametrize("args,method,route,body", CASES, ids=lambda v: str(v)[:40])
def test_subcommand_request(remote_bin, stub, args, method, route, body):
    r = run(remote_bin, stub.path, *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    [req] = stub.requests
    assert req["method"] == method
    assert req["path"] == "/api/v1/" + route
    if body is None:
        assert req["body"] == b""
    else:
        assert req["headers"]["content-type"] == "application/json"
        assert json.loads(req["body"]) == body
    if method == "PUT":
        assert req["headers"]["content-length"] == str(len(req["body"]))
    assert req["fds"] == []


def test_create_from_file_and_stdin(remote_bin, stub, tmp_path):
    config = {"payload": {"kernel": "/k", "cmdline": "console=hvc0"},
              "memory": {"size": 1 << 28}}
    f = tmp_path / "vm.json"
    f.write_text(json.dumps(config))
    assert run(remote_bin, stub.path, "create", str(f)).returncode == 0
    assert run(remote_bin, stub.path, "create", stdin=json.dumps(config)).returncode == 0
    assert run(remote_bin, stub.path, "create", "-", stdin=json.dumps(config)).returncode == 0
    assert len(stub.requests) == 3
    for req in stub.requests:
        assert (req["method"], req["path"]) == ("PUT", "/api/v1/vm.create")
        assert json.loads(req["body"]) == config


def test_create_refuses_bad_json_locally(remote_bin, stub, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{"payload": ')
    r = run(remote_bin, stub.path, "create", str(f))
    assert r.returncode == 1
    assert r.stderr.startswith(f"cubicle-remote: create: {f}: ")
    r = run(remote_bin, stub.path, "create", str(tmp_path / "missing.json"))
    assert r.returncode == 1 and "missing.json" in r.stderr
    r = run(remote_bin, stub.path, "create", stdin='{"memory": {}, "memory": {}}')
    assert r.returncode == 1 and "duplicate object key" in r.stderr, r.stderr
    r = run(remote_bin, stub.path, "create", stdin="[1, 2]")
    assert r.returncode == 1 and "not a JSON object" in r.stderr
    assert stub.requests == []


def test_add_net_sends_fds_with_scm_rights(remote_bin, stub, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")
    fa, fb = os.open(a, os.O_RDONLY), os.open(b, os.O_RDONLY)
    try:
        r = run(remote_bin, stub.path, "add-net", f"fd=[{fa},{fb}],mac=12:34:56:78:9a:bc",
                pass_fds=(fa, fb))
    finally:
        os.close(fa)
        os.close(fb)
    assert r.returncode == 0, r.stderr
    [req] = stub.requests
    assert json.loads(req["body"]) == {"mac": "12:34:56:78:9a:bc"}  # no fd numbers
    assert len(req["fds"]) == 2
    got = [os.fstat(fd).st_ino for fd in req["fds"]]
    assert got == [a.stat().st_ino, b.stat().st_ino]
    for fd in req["fds"]:
        os.close(fd)


def test_add_net_refuses_a_closed_fd(remote_bin, stub):
    r = run(remote_bin, stub.path, "add-net", "fd=[987]")
    assert r.returncode == 1
    assert r.stderr == "cubicle-remote: add-net: fd 987 is not open\n"
    assert stub.requests == []


def test_prints_json_pretty(remote_bin, stub):
    info = {"config": {"cpus": {"boot_vcpus": 1}}, "state": "Running"}
    stub.reply = (200, json.dumps(info, separators=(",", ":")).encode())
    r = run(remote_bin, stub.path, "info")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == info
    assert "\n  " in r.stdout  # indented


def test_chunked_response(remote_bin, stub):
    stub.reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"9\r\n{\"build_v\r\n"
                  b"f\r\nersion\": \"0.1\"}\r\n0\r\n\r\n")
    r = run(remote_bin, stub.path, "ping")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"build_version": "0.1"}


def test_http_errors(remote_bin, stub):
    stub.reply = (400, b'{"error": "memory.size: must be a multiple of 4 KiB"}')
    r = run(remote_bin, stub.path, "boot")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == ('cubicle-remote: boot: the server answered 400: '
                        'memory.size: must be a multiple of 4 KiB\n')
    stub.reply = (409, b'{"code": 7}')
    r = run(remote_bin, stub.path, "boot")
    assert r.stderr == 'cubicle-remote: boot: the server answered 409: {"code":7}\n'
    stub.reply = (500, b"VM is not\ncreated")
    r = run(remote_bin, stub.path, "pause")
    assert r.returncode == 1
    assert r.stderr == "cubicle-remote: pause: the server answered 500: VM is not created\n"
    stub.reply = (404, b"")
    r = run(remote_bin, stub.path, "info")
    assert (r.returncode, r.stderr) == (1, "cubicle-remote: info: the server answered 404\n")


def test_broken_server(remote_bin, stub):
    stub.reply = b""  # closes without answering
    r = run(remote_bin, stub.path, "ping")
    assert r.returncode == 1
    assert "closed the connection without answering" in r.stderr
    stub.reply = b"garbage\r\n\r\n"
    r = run(remote_bin, stub.path, "ping")
    assert r.returncode == 1
    assert "malformed HTTP response" in r.stderr
    stub.reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    r = run(remote_bin, stub.path, "ping")
    assert r.returncode == 1
    assert "malformed HTTP response" in r.stderr


def test_no_socket(remote_bin, tmp_path):
    path = tmp_path / "nothing.sock"
    r = run(remote_bin, str(path), "ping")
    assert r.returncode == 1
    assert r.stderr == (f"cubicle-remote: cannot connect to API socket {path}: "
                        "No such file or directory\n")
    # A socket file nobody listens on.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    r = run(remote_bin, str(path), "ping")
    assert r.returncode == 1
    assert r.stderr == (f"cubicle-remote: cannot connect to API socket {path}: "
                        "Connection refused\n")


@pytest.mark.parametrize("args,message", [
    ([], "missing subcommand"),
    (["frob"], "unknown subcommand 'frob'"),
    (["add-disk"], "add-disk: needs exactly one argument"),
    (["add-disk", "path=/a,sise=3"], "add-disk: unknown key 'sise'"),
    (["add-disk", "path=/a,readonly=maybe"],
     "add-disk: invalid value 'maybe' for 'readonly' (expected on or off)"),
    (["add-pmem", "file=/p,size=lots"], "add-pmem: invalid size 'lots' for 'size'"),
    (["add-net", "vhost_mode=both"],
     "add-net: invalid vhost_mode 'both' (expected client or server)"),
    (["info", "extra"], "info: unexpected argument 'extra'"),
    (["resize", "--cpus", "300"], "resize: invalid value '300' for --cpus"),
    (["resize", "--disks", "3"], "resize: unexpected argument '--disks'"),
    (["resize-zone", "--id", "z"], "resize-zone: needs --id <zone_id> and --size <size>"),
    (["send-migration"], "send-migration: needs <destination_url>"),
])
def test_bad_arguments(remote_bin, stub, args, message):
    r = run(remote_bin, stub.path, *args)
    assert r.returncode == 1
    assert r.stderr.startswith("cubicle-remote: " + message), r.stderr
    assert stub.requests == []


def test_usage(remote_bin):
    r = subprocess.run([remote_bin, "ping"], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr == "cubicle-remote: --api-socket <path> is required (see --help)\n"
    r = subprocess.run([remote_bin, "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for name in ("add-disk", "add-net", "create", "ping", "shutdown-vmm", "send-migration"):
        assert f"  {name} " in r.stdout


@pytest.mark.parametrize("args,msg", [
    (["resume-from-snapshot"], "needs source_url"),
    (["resume-from-snapshot", "source_url=/s", "--nets", "tap=t"], "unexpected argument"),
    (["resume-from-snapshot", "source_url=/s", "--vsock", "cid=3,socket=/a", "--vsock",
      "cid=4,socket=/b"], "--vsock given more than once"),
    (["resume-from-snapshot", "source_url=/s", "--disk", "bogus=1"], "bogus"),
    (["waitstart", "--timeout", "soon"], "invalid value 'soon'"),
    (["waitstart", "5"], "unexpected argument '5'"),
])
def test_snapshot_subcommands_refuse_bad_arguments(remote_bin, stub, args, msg):
    r = run(remote_bin, stub.path, *args)
    assert r.returncode == 1 and msg in r.stderr, r.stderr
    assert stub.requests == []


def test_resume_from_snapshot_sends_the_net_fds(remote_bin, stub, tmp_path):
    a = tmp_path / "a"
    a.write_text("a")
    fa = os.open(a, os.O_RDONLY)
    try:
        r = run(remote_bin, stub.path, "resume-from-snapshot", "source_url=/s", "--net",
                f"fd={fa},id=n0", pass_fds=(fa,))
    finally:
        os.close(fa)
    assert r.returncode == 0, r.stderr
    [req] = stub.requests
    assert json.loads(req["body"]) == {"source_url": "/s", "net": [{"id": "n0"}]}
    assert len(req["fds"]) == 1
    os.close(req["fds"][0])
