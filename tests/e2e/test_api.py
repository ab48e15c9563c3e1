"""End-to-end tests of the HTTP API (Cloud Hypervisor v28's routes on --api-socket) on the tiny
test guests: every route's success and failures, the lifecycle table, the OpenAPI schemas, the
sequence Kata Containers uses (with TAP-style fds over SCM_RIGHTS), bad input, slow clients,
concurrency and the event monitor. The power button on Linux is in test_api_linux.py."""
import json
import os
import socket
import stat
import subprocess
import threading
import time

import pytest

from test_net import netns, open_tap_in, tap_name  # noqa: F401 (a fixture)

from api_client import Api, Schemas, build_request, connect, holds, read_response

pytestmark = pytest.mark.usefixtures("kvm")


@pytest.fixture
def vmm(vm_factory, tmp_path):
    """A cubicle started with only --api-socket (and an event monitor): an empty VMM."""
    sock = tmp_path / "api.sock"
    events = tmp_path / "events.json"
    vm = vm_factory("--api-socket", f"path={sock}", "--event-monitor", f"path={events}")
    api = Api(sock)
    try:
        api.wait_ready()
    except TimeoutError:
        pytest.fail(vm.describe())
    vm.api, vm.sock, vm.events = api, sock, events
    return vm


@pytest.fixture(scope="module")
def schemas():
    return Schemas()


def idle_config(testguest, **extra):
    cfg = {"payload": {"kernel": testguest("idle")}, "serial": {"mode": "Tty"},
           "console": {"mode": "Off"}, "memory": {"size": 64 << 20}}
    cfg.update(extra)
    return cfg


def error_of(r):
    assert r.headers.get("Content-Type") == "application/json", r
    body = r.json
    assert isinstance(body, dict) and isinstance(body.get("error"), str), r
    return body["error"]


def read_events(path):
    """The event monitor's stream: pretty JSON objects, one after another."""
    dec = json.JSONDecoder()
    text, pos, out = path.read_text(), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        obj, pos = dec.raw_decode(text, pos)
        out.append(obj)


def test_kata_sequence(vmm, testguest, schemas, netns):
    api = vmm.api
    ping = api.get("vmm.ping")
    assert ping.status == 200
    schemas.validate("VmmPingResponse", ping.json)
    assert ping.json["pid"] == vmm.proc.pid

    assert api.put("vm.create", idle_config(testguest)).status == 204
    info = api.get("vm.info")
    assert info.status == 200, info
    schemas.validate("VmInfo", info.json)
    assert info.json["state"] == "Created"

    # vm.add-net with the two queue fds of a multi-queue TAP over SCM_RIGHTS, as Kata sends
    # them (the TAP lives in a network namespace the test made): the NIC joins the config.
    fds = open_tap_in(netns, tap_name("k"), 2)
    try:
        r = api.put("vm.add-net", {"id": "net0", "mac": "12:34:56:78:9a:bc"}, fds=fds)
        assert r.status == 204, r
    finally:
        for fd in fds:
            os.close(fd)
    info = api.get("vm.info")
    schemas.validate("VmInfo", info.json)
    net = info.json["config"]["net"]
    assert [n["id"] for n in net] == ["net0"] and net[0]["mac"] == "12:34:56:78:9a:bc", net
    assert net[0]["num_queues"] == 4, net  # one queue pair per fd

    assert api.put("vm.boot").status == 204
    info = api.get("vm.info")
    schemas.validate("VmInfo", info.json)
    assert info.json["state"] == "Running"
    assert "__rng" in info.json["device_tree"]
    assert "net0" in info.json["device_tree"], info.json["device_tree"]
    # Hotplug into the running VM is not there yet: said so, the fds closed.
    r1, w1 = os.pipe()
    try:
        r = api.put("vm.add-net", {"id": "net1"}, fds=[r1])
        assert r.status == 501 and "hotplug" in error_of(r), r
        assert not holds(vmm.proc.pid, [r1]), "the fds sent with vm.add-net leaked"
    finally:
        os.close(r1)
        os.close(w1)
    assert vmm.wait_for("cubicle-testguest: idle", timeout=20), vmm.describe()

    r = api.put("vmm.shutdown")
    assert r.status == 200, r
    assert vmm.wait(20) == 0, vmm.describe()
    assert not vmm.sock.exists(), "the API socket file was left behind"


def test_socket_is_private(vmm):
    st = os.stat(vmm.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


# Lifecycle table: every command in every state. "none" = no VM created.
STATES = ["none", "Created", "Running", "Paused"]
TABLE = {
    # command: status in none, Created, Running, Paused
    ("GET", "vmm.ping"): (200, 200, 200, 200),
    ("GET", "vm.info"): (409, 200, 200, 200),
    ("GET", "vm.counters"): (409, 409, 200, 200),
    ("PUT", "vm.create"): (204, 409, 409, 409),
    ("PUT", "vm.boot"): (409, 204, 409, 409),
    ("PUT", "vm.pause"): (409, 409, 204, 409),
    ("PUT", "vm.resume"): (409, 409, 409, 204),
    ("PUT", "vm.shutdown"): (409, 409, 204, 204),
    ("PUT", "vm.reboot"): (409, 409, 204, 204),
    ("PUT", "vm.delete"): (204, 204, 204, 204),
    ("PUT", "vm.power-button"): (409, 409, "pb", 409),
}
AFTER = {  # the state a successful command leaves
    "vm.create": "Created", "vm.boot": "Running", "vm.pause": "Paused", "vm.resume": "Running",
    "vm.shutdown": "Created", "vm.reboot": "Running", "vm.delete": "none",
}


def goto(api, testguest, state):
    assert api.put("vm.delete").status == 204
    if state == "none":
        return
    assert api.put("vm.create", idle_config(testguest)).status == 204
    if state in ("Running", "Paused"):
        assert api.put("vm.boot").status == 204
    if state == "Paused":
        assert api.put("vm.pause").status == 204


def state_of(api):
    r = api.get("vm.info")
    return "none" if r.status == 409 else r.json["state"]


def test_lifecycle_table(vmm, testguest, schemas):
    api = vmm.api
    for (method, route), expected in TABLE.items():
        for state, want in zip(STATES, expected):
            goto(api, testguest, state)
            body = idle_config(testguest) if route == "vm.create" else None
            r = api.put(route, body) if method == "PUT" else api.get(route)
            if want == "pb":  # the power button: pressed (204), or "not supported yet"
                want = r.status if r.status in (204, 501) else 204
            assert r.status == want, f"{route} in {state}: {r}"
            if r.status >= 400:
                msg = error_of(r)
                assert route in msg, msg
                assert state_of(api) == state, f"failed {route} changed the state"
            elif route in AFTER:
                assert state_of(api) == AFTER[route], f"{route} from {state}"
            if route == "vm.counters" and r.status == 200:
                schemas.validate("VmCounters", r.json)
                assert set(r.json) >= {"__rng"}
                assert {"requests", "bytes"} <= set(r.json["__rng"])


# Routes cubicle does not serve yet, with a valid body and a body with a field of the wrong type.
UNSUPPORTED = {
    "vm.resize": ({"desired_vcpus": 2}, {"desired_vcpus": "two"}),
    "vm.resize-zone": ({"id": "z", "desired_ram": 1 << 30}, {"id": 5, "desired_ram": 1}),
    "vm.add-device": ({"path": "/sys/bus/pci/devices/0000:00:01.0"}, {"path": 5}),
    "vm.remove-device": ({"id": "_disk0"}, {"id": 5}),
    "vm.add-fs": ({"tag": "t", "socket": "/tmp/s", "num_queues": 1, "queue_size": 1024}, None),
    "vm.add-vdpa": ({"path": "/dev/vhost-vdpa-0"}, {"path": 5}),
    "vm.coredump": ({"destination_url": "file:///tmp/core"}, {"destination_url": 5}),
    "vm.receive-migration": ({"receiver_url": "unix:/tmp/m"}, {"receiver_url": 5}),
    "vm.send-migration": ({"destination_url": "unix:/tmp/m"}, {"destination_url": 5}),
}


def test_unsupported_routes_say_so(vmm, testguest):
    api = vmm.api
    assert api.put("vm.create", idle_config(testguest)).status == 204
    for route, (good, bad) in UNSUPPORTED.items():
        r = api.put(route, good)
        assert r.status == 501, f"{route}: {r}"
        msg = error_of(r)
        assert route in msg and "not supported" in msg, msg
        if bad is not None:
            r = api.put(route, bad)
            assert r.status == 400, f"{route}: {r}"
            assert route in error_of(r)
    r = api.put("vm.add-net", {"mac": 5})
    assert r.status == 400 and "mac" in error_of(r), r
    # and nothing changed
    assert state_of(api) == "Created"


# Devices added before vm.boot join the config (as in Cloud Hypervisor); the body is checked
# like vm.create's, and a device the whole config refuses leaves it as it was.
COLD_PLUG = {
    "vm.add-disk": ({"path": "/tmp/x.img", "id": "d0"}, {"path": 5}, "disks"),
    "vm.add-pmem": ({"file": "/tmp/p", "size": 2 << 20, "id": "p0"}, {"file": 5}, "pmem"),
    "vm.add-vsock": ({"cid": 3, "socket": "/tmp/v.sock", "id": "v0"},
                     {"cid": "three", "socket": "/tmp/v"}, "vsock"),
}


def test_devices_added_before_boot_join_the_config(vmm, testguest):
    api = vmm.api
    r = api.put("vm.add-disk", {"path": "/tmp/x.img"})
    assert r.status == 409 and "vm.create first" in error_of(r), r
    assert api.put("vm.create", idle_config(testguest)).status == 204
    for route, (good, bad, section) in COLD_PLUG.items():
        r = api.put(route, bad)
        assert r.status == 400 and route in error_of(r), f"{route}: {r}"
        r = api.put(route, good)
        assert r.status == 204, f"{route}: {r}"
        cfg = api.get("vm.info").json["config"]
        got = cfg[section] if section == "vsock" else cfg[section][0]
        assert got["id"] == good["id"], cfg
    # a second vsock, or an id already taken, is refused and changes nothing
    r = api.put("vm.add-vsock", {"cid": 4, "socket": "/tmp/w.sock"})
    assert r.status == 400, r
    r = api.put("vm.add-disk", {"path": "/tmp/y.img", "id": "p0"})
    assert r.status == 400 and "p0" in error_of(r), r
    cfg = api.get("vm.info").json["config"]
    assert [d["id"] for d in cfg["disks"]] == ["d0"], cfg


def test_every_openapi_route_is_served(vmm, schemas):
    """No route of the yaml answers 404: each is known, with the method the yaml gives."""
    for path, ops in schemas.doc["paths"].items():
        route = path.lstrip("/")
        for method in ops:
            wrong = "POST"
            r = vmm.api.put(route) if method == "get" else vmm.api.get(route)
            assert r.status == 405, f"{route}: {r}"
            r2 = __import__("api_client").request(vmm.api.path, wrong, route)
            assert r2.status == 405, f"{route}: {r2}"


def test_request_errors(vmm, testguest):
    api = vmm.api
    cases = [
        (api.get("vm.nope"), 404, "unknown route"),
        (__import__("api_client").request(api.path, "GET", "../vmm.ping"), 404, None),
        (api.get("vm.boot"), 405, "method GET not allowed"),
        (api.put("vm.boot", {"x": 1}), 400, "takes no request body"),
        (api.put("vm.create"), 400, "body is required"),
        (api.put("vm.create", b"{\"payload\": "), 400, "malformed JSON"),
        (api.put("vm.create", b"[1, 2]"), 400, "must be a JSON object"),
        (api.put("vm.create", b"{\"a\": 1, \"a\": 2}"), 400, "malformed JSON"),
        (api.put("vm.create", {"payload": {"kernel": 5}}), 400, "payload.kernel"),
        (api.put("vm.create", {"payload": {"kernel": testguest("idle")},
                               "memory": {"size": 12345}}), 400, "multiple of 4 KiB"),
        (api.put("vm.create", b"\xff\xfe\x00garbage"), 400, "malformed JSON"),
    ]
    r = raw_exchange(api.path, b"GET /api/v1/\xff\xfe%00vm HTTP/1.1\r\nHost: x\r\n\r\n",
                     shut_wr=True)
    head, _, body = r.partition(b"\r\n\r\n")
    if b" 404 " in head.split(b"\r\n")[0]:  # libmicrohttpd may refuse it itself (400)
        assert "unknown route" in json.loads(body)["error"], r
    for r, status, words in cases:
        assert r.status == status, r
        msg = error_of(r)
        if words:
            assert words in msg, msg
    assert state_of(api) == "none"


def test_body_too_large(vmm):
    big = b"{\"x\": \"" + b"a" * (2 << 20) + b"\"}"
    with connect(vmm.api.path) as s:
        try:
            s.sendall(build_request("PUT", "vm.create", big))
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before all of it was sent
        r = read_response(s, "PUT")
    assert r.status == 413, r
    assert "larger than" in error_of(r)
    assert vmm.api.get("vmm.ping").status == 200


def raw_exchange(path, data, shut_wr=False, timeout=5):
    """Sends @data on a new connection; returns every byte the server sent until it closed or
    went quiet for @timeout."""
    out = b""
    with connect(path, timeout) as s:
        try:
            s.sendall(data)
            if shut_wr:
                s.shutdown(socket.SHUT_WR)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass
    return out


def test_bad_input_corpus(vmm):
    path = vmm.api.path
    ping = build_request("GET", "vmm.ping")
    nested = b"[" * 100000 + b"]" * 100000
    corpus = [
        ping[:10],                                              # truncated request line
        b"\x00\x01\x02\xff" * 1000 + b"\r\n\r\n",               # binary
        b"GET /api/v1/vmm.ping HTTP/1.1\r\nX: " + b"a" * 200000 + b"\r\n\r\n",  # huge header
        build_request("PUT", "vm.create", nested),              # deeply nested JSON
        build_request("PUT", "vm.create", b"{}")[:-2] + b"",    # shorter than Content-Length
        b"PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}",
        b"PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET /api/v1/vmm.ping HTTP/9.9\r\n\r\n",
        b"\r\n\r\n\r\n",
        b"GET\r\n\r\n",
    ]
    for data in corpus:
        raw_exchange(path, data, timeout=2)
        r = vmm.api.get("vmm.ping", timeout=5)
        assert r.status == 200, (data[:60], r)
    # the nested document is refused with a JSON error, not a crash
    out = raw_exchange(path, build_request("PUT", "vm.create", nested), shut_wr=True)
    assert b" 400 " in out.split(b"\r\n", 1)[0], out[:200]
    assert vmm.proc.poll() is None, vmm.describe()


def test_pipelined_and_half_closed(vmm):
    path = vmm.api.path
    two = build_request("GET", "vmm.ping") + build_request("GET", "vm.info")
    out = raw_exchange(path, two, shut_wr=True)
    assert out.count(b"HTTP/1.1 200") == 1 and out.count(b"HTTP/1.1 409") == 1, out
    # a request followed by a half-close is still answered
    out = raw_exchange(path, build_request("GET", "vmm.ping"), shut_wr=True)
    assert out.startswith(b"HTTP/1.1 200"), out


def test_stuck_clients_do_not_block_others(vmm, testguest):
    path = vmm.api.path
    stuck = []
    for data in (b"", b"PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
                 b"GET /api/v1/vmm.pi"):
        s = connect(path)
        if data:
            s.sendall(data)
        stuck.append(s)
    try:
        t0 = time.monotonic()
        assert vmm.api.put("vm.create", idle_config(testguest)).status == 204
        assert vmm.api.put("vm.boot").status == 204
        assert vmm.api.get("vm.info").json["state"] == "Running"
        assert time.monotonic() - t0 < 5
    finally:
        for s in stuck:
            s.close()


def test_too_many_connections(vmm):
    """Connections beyond the limit are refused; the server then serves again."""
    socks = []
    try:
        for _ in range(64):
            try:
                socks.append(connect(vmm.api.path, timeout=1))
            except OSError:
                break
        time.sleep(0.2)
    finally:
        for s in socks:
            s.close()
    time.sleep(0.2)
    assert vmm.api.get("vmm.ping").status == 200


def test_fds_with_other_routes_are_closed(vmm):
    r, w = os.pipe()
    try:
        for _ in range(20):
            assert vmm.api.get("vmm.ping", fds=[r, w]).status == 200
            r2 = vmm.api.put("vm.add-net", {"id": "n"}, fds=[r] * 20)  # > API_MAX_FDS
            assert r2.status == 409, r2  # no VM created: refused, its fds closed
        # a connection that sends fds and goes away without a request
        s = connect(vmm.api.path)
        s.sendmsg([b"G"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, __import__("array").array(
            "i", [r, w]))])
        s.close()
        time.sleep(0.3)
        assert vmm.api.get("vmm.ping").status == 200
        assert not holds(vmm.proc.pid, [r, w]), "fds sent with requests leaked"
    finally:
        os.close(r)
        os.close(w)


def test_concurrent_clients_with_pause_resume(vmm, testguest):
    api = vmm.api
    assert api.put("vm.create", idle_config(testguest, cpus={"boot_vcpus": 2, "max_vcpus": 2})).status == 204
    assert api.put("vm.boot").status == 204
    errors = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                r = api.get("vm.info")
                if r.status != 200 or r.json["state"] not in ("Running", "Paused"):
                    errors.append(r)
                if api.get("vmm.ping").status != 200:
                    errors.append("ping")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(50):
            r = api.put("vm.pause")
            assert r.status == 204, r
            r = api.put("vm.resume")
            assert r.status == 204, r
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors, errors[:5]
    assert state_of(api) == "Running"
    assert vmm.proc.poll() is None


def test_shutdown_then_boot_again(vmm, testguest):
    api = vmm.api
    assert api.put("vm.create", idle_config(testguest)).status == 204
    assert api.put("vm.boot").status == 204
    assert vmm.wait_for("cubicle-testguest: idle", timeout=20)
    assert api.put("vm.shutdown").status == 204
    assert state_of(api) == "Created"
    assert api.put("vm.boot").status == 204
    assert vmm.wait_for("cubicle-testguest: idle", count=2, timeout=20), vmm.describe()
    assert api.put("vm.reboot").status == 204
    assert vmm.wait_for("cubicle-testguest: idle", count=3, timeout=20), vmm.describe()


def test_boot_error_is_reported(vmm, tmp_path):
    cfg = {"payload": {"kernel": str(tmp_path / "missing")}, "console": {"mode": "Off"}}
    assert vmm.api.put("vm.create", cfg).status == 204
    r = vmm.api.put("vm.boot")
    assert r.status == 500, r
    assert "cannot open" in error_of(r)
    assert state_of(vmm.api) == "Created"


def test_guest_poweroff_ends_the_vmm(vmm, testguest):
    cfg = idle_config(testguest)
    cfg["payload"]["kernel"] = testguest("hello")
    assert vmm.api.put("vm.create", cfg).status == 204
    assert vmm.api.put("vm.boot").status == 204
    assert vmm.wait(20) == 0, vmm.describe()
    names = [(e["source"], e["event"]) for e in read_events(vmm.events)]
    assert names[-1] == ("vm", "shutdown"), names


def test_event_monitor(vmm, testguest):
    api = vmm.api
    assert api.put("vm.create", idle_config(testguest)).status == 204
    for route in ("vm.boot", "vm.pause", "vm.resume", "vm.reboot", "vm.shutdown",
                  "vm.delete"):
        assert api.put(route).status == 204, route
    assert api.put("vmm.shutdown").status == 200
    assert vmm.wait(20) == 0
    events = read_events(vmm.events)
    names = [(e["source"], e["event"]) for e in events]
    assert names == [
        ("vmm", "starting"), ("vm", "booting"), ("vm", "booted"), ("vm", "pausing"),
        ("vm", "paused"), ("vm", "resuming"), ("vm", "resumed"), ("vm", "rebooting"),
        ("vm", "rebooted"), ("vm", "shutdown"), ("vm", "deleted"), ("vmm", "shutdown"),
    ], names
    last = 0
    for e in events:
        assert set(e) == {"timestamp", "source", "event", "properties"}
        ts = e["timestamp"]["secs"] * 10**9 + e["timestamp"]["nanos"]
        assert ts >= last
        last = ts


def test_api_socket_fd_and_cli_kernel(cubicle_bin, testguest, tmp_path):
    """--api-socket fd=N serves an inherited listening socket; with --kernel the VM is booted
    at start and the API serves it."""
    path = tmp_path / "inherited.sock"
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(str(path))
    ls.listen(8)
    # conftest.Vm does not pass fds: started here with pass_fds.
    proc = subprocess.Popen([cubicle_bin, "--kernel", testguest("idle"), "--serial", "off",
                             "--console", "off", "--memory", "size=64M",
                             "--api-socket", f"fd={ls.fileno()}"],
                            pass_fds=[ls.fileno()], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    ls.close()
    try:
        api = Api(path)
        api.wait_ready()
        assert api.get("vm.info").json["state"] == "Running"
        assert api.put("vmm.shutdown").status == 200
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_api_socket_in_use_and_stale(vmm, run_cubicle, vm_factory, tmp_path):
    """A socket another cubicle serves is not taken over; a stale socket file is replaced."""
    r = run_cubicle("--api-socket", str(vmm.sock))
    assert r.proc.returncode == 1 and "in use by another process" in r.stderr, r.describe()
    assert vmm.api.get("vmm.ping").status == 200
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # the file stays, nobody listens
    vm = vm_factory("--api-socket", str(stale))
    api = Api(stale)
    api.wait_ready()
    assert api.put("vmm.shutdown").status == 200
    assert vm.wait(20) == 0, vm.describe()


def test_api_socket_errors(run_cubicle, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    vm = run_cubicle("--api-socket", str(f))
    assert vm.proc.returncode == 1
    assert "--api-socket: " in vm.stderr and "not a socket" in vm.stderr, vm.describe()
    vm = run_cubicle("--api-socket", "fd=abc")
    assert vm.proc.returncode == 1 and "fd must be a number" in vm.stderr, vm.describe()
    vm = run_cubicle("--api-socket", "fd=0")
    assert vm.proc.returncode == 1 and "not a stream socket" in vm.stderr, vm.describe()
    vm = run_cubicle("--api-socket", str(tmp_path / "s"), "--event-monitor", "fd=77")
    assert vm.proc.returncode == 1 and "--event-monitor: fd 77 is not open" in vm.stderr, \
        vm.describe()


def test_event_monitor_never_blocks_the_vmm(cubicle_bin, testguest, tmp_path):
    """An event monitor nobody reads (a pipe) fills up: cubicle keeps serving, drops events and
    says so at exit; what the reader gets is whole events."""
    sock = tmp_path / "api.sock"
    r, w = os.pipe()
    proc = subprocess.Popen([cubicle_bin, "--api-socket", str(sock), "--event-monitor",
                             f"fd={w}"], pass_fds=[w], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    os.close(w)
    try:
        api = Api(sock)
        api.wait_ready()
        cfg = idle_config(testguest, serial={"mode": "Null"})
        assert api.put("vm.create", cfg).status == 204
        assert api.put("vm.boot").status == 204
        t0 = time.monotonic()
        for _ in range(1500):  # ~6000 events, ~1 MB: more than the pipe and the buffer
            assert api.put("vm.pause").status == 204
            assert api.put("vm.resume").status == 204
        assert time.monotonic() - t0 < 120
        assert api.put("vmm.shutdown").status == 200
        assert proc.wait(20) == 0
        assert "events dropped" in proc.stderr.read().decode()
        os.set_blocking(r, False)
        data = b""
        while True:
            try:
                chunk = os.read(r, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        path = tmp_path / "events.json"
        path.write_bytes(data)
        events = read_events(path)  # whole objects only
        assert events[0]["event"] == "starting" and len(events) > 100
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_resize_sets_the_balloon_target(vmm, testguest):
    """vm.resize desired_balloon reaches the balloon (the idle guest has no driver: the target
    is set and the config-change interrupt sent); hotplug sizes are refused, nothing changed."""
    api = vmm.api
    cfg = idle_config(testguest, balloon={"size": 4 << 20})
    assert api.put("vm.create", cfg).status == 204
    r = api.put("vm.resize", {"desired_balloon": 8 << 20})
    assert r.status == 409, r  # not booted yet
    assert api.put("vm.boot").status == 204
    assert api.put("vm.resize", {"desired_balloon": 8 << 20}).status == 204
    for bad in ({"desired_balloon": (8 << 20) + 1}, {"desired_balloon": 1 << 40}):
        r = api.put("vm.resize", bad)
        assert r.status == 400 and "desired_balloon" in error_of(r), r
    r = api.put("vm.resize", {"desired_vcpus": 2})
    assert r.status == 501 and "not supported" in error_of(r), r
    assert state_of(api) == "Running"


def test_resize_without_a_balloon(vmm, testguest):
    api = vmm.api
    assert api.put("vm.create", idle_config(testguest)).status == 204
    assert api.put("vm.boot").status == 204
    r = api.put("vm.resize", {"desired_balloon": 8 << 20})
    assert r.status == 400 and "no balloon" in error_of(r), r
