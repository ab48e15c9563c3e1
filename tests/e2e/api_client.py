"""A small HTTP/1.1 client for cubicle's API over its Unix socket (stdlib only), able to send
file descriptors with the request (SCM_RIGHTS), as Kata Containers does for vm.add-net."""
import array
import http.client
import json
import os
import socket
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = Path("/work/shared/anchors/cloud-hypervisor-openapi.yaml")


class Response:
    def __init__(self, status, body, headers):
        self.status = status
        self.raw = body
        self.headers = headers

    @property
    def json(self):
        return json.loads(self.raw) if self.raw else None

    def __repr__(self):
        return f"<{self.status} {self.raw[:300]!r}>"


def connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    return s


def build_request(method, route, body=None, headers=None):
    if body is not None and not isinstance(body, (bytes, bytearray)):
        body = json.dumps(body).encode()
    lines = [f"{method} /api/v1/{route} HTTP/1.1", "Host: localhost", "Accept: */*"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def read_response(sock, method="GET"):
    resp = http.client.HTTPResponse(sock, method=method)
    resp.begin()
    body = resp.read()
    return Response(resp.status, body, dict(resp.getheaders()))


def request(path, method, route, body=None, fds=None, timeout=10):
    """One request on a new connection; @fds are sent with its bytes (SCM_RIGHTS)."""
    data = build_request(method, route, body)
    with connect(path, timeout) as s:
        if fds:
            s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                array.array("i", fds))])
        else:
            s.sendall(data)
        return read_response(s, method)


class Api:
    def __init__(self, path):
        self.path = str(path)

    def get(self, route, **kw):
        return request(self.path, "GET", route, **kw)

    def put(self, route, body=None, **kw):
        return request(self.path, "PUT", route, body, **kw)

    def wait_ready(self, timeout=10):
        """Polls vmm.ping as Kata does until the server answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = self.get("vmm.ping", timeout=1)
                if r.status == 200:
                    return r
            except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the API socket did not answer vmm.ping")
            time.sleep(0.01)


def holds(pid, fds):
    """The fds of process @pid that are the same files as our @fds (e.g. pipe:[inode])."""
    ours = set()
    for fd in fds:
        st = os.fstat(fd)
        ours.add((st.st_dev, st.st_ino))
    found = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            st = os.stat(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            continue
        if (st.st_dev, st.st_ino) in ours:
            found.append(int(name))
    return found


class Schemas:
    """Validates JSON against a schema of components/schemas in the OpenAPI yaml."""

    def __init__(self):
        import jsonschema
        self.jsonschema = jsonschema
        self.doc = self._fix_enums(yaml.safe_load(OPENAPI.read_text()))

    @classmethod
    def _fix_enums(cls, node):
        """YAML 1.1 reads the enum values Off/On/Null as booleans and None: back to strings."""
        names = {False: "Off", True: "On", None: "Null"}
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "enum" and isinstance(v, list):
                    node[k] = [names.get(x, x) if not isinstance(x, str) else x for x in v]
                else:
                    cls._fix_enums(v)
        elif isinstance(node, list):
            for v in node:
                cls._fix_enums(v)
        return node

    def validate(self, name, instance):
        schema = {"$ref": f"#/components/schemas/{name}", "components": self.doc["components"]}
        self.jsonschema.validate(instance, schema)
