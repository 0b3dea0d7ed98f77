"""Black-box tests of bin/balancer in front of small Python backends (backend.py) that the tests
start on free ports: per-request round robin, health checks, sticky mode, TLS, forwarded headers,
strict framing, limits and timeouts, the admin listener and the graceful stop."""
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

import harness
from harness import Client, Proc, binary, free_port, raw, request

HERE = os.path.dirname(os.path.abspath(__file__))
BACKEND = os.path.join(HERE, "backend.py")
MKCERT = os.path.join(harness.ROOT, "scripts", "mkcert.sh")


class Backend(Proc):
    def __init__(self, name, port=None, env=None):
        self.id = name
        port = port or free_port()
        super().__init__([sys.executable, BACKEND, str(port), name], port=port, name=name, env=env)

    def restart(self):
        self.kill()
        Backend.__init__(self, self.id, self.port)


class Cluster:
    """Backends plus one balancer; everything is stopped at the end of the test."""

    def __init__(self, n=3, args=(), tls_dir=None, env=None):
        self.backends = [Backend(f"b{i}", env=env) for i in range(n)]
        self.port = free_port()
        self.admin = free_port()
        cmd = [binary("balancer"), "--listen", f"127.0.0.1:{self.port}",
               "--admin", f"127.0.0.1:{self.admin}", "--health-interval", "200"]
        if tls_dir:
            self.tls_port = free_port()
            cmd += ["--tls-listen", f"127.0.0.1:{self.tls_port}",
                    "--cert", os.path.join(tls_dir, "cert.pem"), "--key", os.path.join(tls_dir, "key.pem")]
        for b in self.backends:
            cmd += ["--backend", f"127.0.0.1:{b.port}"]
        self.lb = Proc(cmd + list(args), port=self.port, name="balancer")

    def stop(self):
        code = self.lb.stop()
        for b in self.backends:
            b.kill()
        return code

    def status(self):
        return request(self.admin, "GET", "/status").json()


@pytest.fixture
def cluster():
    made = []

    def make(*a, **kw):
        c = Cluster(*a, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        code = c.stop()
        logs = c.lb.logs()
        assert code == 0, logs
        assert "AddressSanitizer" not in logs and "runtime error" not in logs, logs


def served_by(r):
    return r.header("X-Served-By")


def echoed(r):
    """The request headers as the backend received them, names lower-cased."""
    return {k.lower(): v for k, v in r.json()["headers"]}


def one_response(data):
    """Parses exactly one response from raw bytes: (status, headers dict, body)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def assert_error(data, status, code=None):
    assert data.count(b"HTTP/1.1 ") == 1, data
    st, headers, body = one_response(data)
    assert st == status, data
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert set(doc) == {"error", "message"} and doc["message"], doc
    if code:
        assert doc["error"] == code
    assert headers.get("connection") == "close"


def test_strict_rotation_over_one_keepalive_connection(cluster):
    c = cluster(3)
    cl = Client(c.port)
    seen = []
    for i in range(12):
        r = cl.request("GET", f"/r{i}")
        assert r.status == 200
        seen.append(served_by(r))
        if i == 0:
            sock = cl.conn.sock
        assert cl.conn.sock is sock, "the balancer closed the client connection"
    cl.close()
    first = seen[:3]
    assert sorted(first) == ["b0", "b1", "b2"]
    assert seen == first * 4, seen


def test_forwarded_headers_and_hop_by_hop(cluster):
    c = cluster(1)
    r = request(c.port, "GET", "/h", headers={
        "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Request-Id": "abc-123.X_y",
        "Connection": "X-Drop-Me", "X-Drop-Me": "secret", "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==", "TE": "trailers", "X-Keep": "yes"})
    assert r.status == 200
    h = echoed(r)
    assert h["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert h["x-forwarded-proto"] == "http", "a client must not claim https"
    assert h["x-request-id"] == "abc-123.X_y"
    assert h["x-keep"] == "yes"
    for gone in ("x-drop-me", "keep-alive", "proxy-authorization", "te", "connection"):
        assert gone not in h, (gone, h)
    # The backend's own hop-by-hop headers do not reach the client either.
    assert r.header("X-Secret") is None and r.header("Keep-Alive") is None
    assert served_by(r) == "b0"
    # An insane request id is replaced by one of ours.
    r = request(c.port, "GET", "/h", headers={"X-Request-Id": "bad id <script>"})
    rid = echoed(r)["x-request-id"]
    assert rid != "bad id <script>" and harness_sane(rid)
    r2 = request(c.port, "GET", "/h")
    assert harness_sane(echoed(r2)["x-request-id"]) and echoed(r2)["x-request-id"] != rid
    assert "x-forwarded-for" in echoed(r2) and echoed(r2)["x-forwarded-for"] == "127.0.0.1"


def harness_sane(rid):
    return 0 < len(rid) <= 64 and all(ch.isalnum() or ch in "._-" for ch in rid)


def test_bodies_and_framing_pass_through(cluster):
    c = cluster(1)
    cl = Client(c.port)
    r = cl.request("POST", "/p", body=b"x" * 5000, headers={"Content-Type": "text/plain"})
    assert r.status == 200 and r.json()["body_len"] == 5000
    r = cl.request("GET", "/chunked")
    assert r.status == 200 and r.body == b"hello chunked world"
    r = cl.request("GET", "/big?n=3000000")
    assert r.status == 200 and len(r.body) == 3000000
    r = cl.request("HEAD", "/x")
    assert r.status == 200 and r.body == b""
    r = cl.request("GET", "/close")
    assert r.status == 200 and r.header("Connection") == "close"
    assert b"served_by" in r.body
    cl.close()
    # A chunked request body is forwarded with its framing intact.
    data = raw(c.port, b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    st, _, body = one_response(data)
    assert st == 200 and json.loads(body)["body_len"] == 11
    # HTTP/1.0 gets its chunked response without chunk framing, ended by the close.
    data = raw(c.port, b"GET /chunked HTTP/1.0\r\n\r\n")
    st, headers, body = one_response(data)
    assert st == 200 and body == b"hello chunked world"
    assert "transfer-encoding" not in headers
    # Pipelined requests are answered in order, each by the next backend.
    data = raw(c.port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.count(b"HTTP/1.1 200") == 2
    assert data.index(b'"/a"') < data.index(b'"/b"')


def test_killed_backend_is_skipped_and_rejoins(cluster):
    c = cluster(3)
    cl = Client(c.port)
    for _ in range(6):
        assert cl.request("GET", "/").status == 200
    victim = c.backends[1]
    victim.kill()
    after = []
    for _ in range(30):
        r = cl.request("GET", "/")
        assert r.status == 200, r
        after.append(served_by(r))
    assert "b1" not in after
    assert set(after) == {"b0", "b2"}
    st = {b["address"]: b for b in c.status()["backends"]}
    assert st[f"127.0.0.1:{victim.port}"]["up"] is False
    victim.restart()
    deadline = time.monotonic() + 10
    back = False
    while time.monotonic() < deadline and not back:
        r = cl.request("GET", "/")
        assert r.status == 200
        back = served_by(r) == "b1"
        time.sleep(0.05)
    assert back, "the backend did not rejoin the rotation"
    seen = [served_by(cl.request("GET", "/")) for _ in range(6)]
    assert sorted(seen) == ["b0", "b0", "b1", "b1", "b2", "b2"]
    cl.close()


def test_health_check_takes_sick_backend_out(cluster, tmp_path):
    sick = tmp_path / "sick"
    c = cluster(2, env=dict(os.environ, BACKEND_SICK=str(sick)))
    sick.touch()   # both backends now fail /healthz but still answer other paths
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(b["up"] for b in c.status()["backends"]):
        time.sleep(0.05)
    assert not any(b["up"] for b in c.status()["backends"])
    r = request(c.port, "GET", "/")
    assert r.status == 503 and r.json()["error"] == "service_unavailable"
    sick.unlink()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(b["up"] for b in c.status()["backends"]):
        time.sleep(0.05)
    assert request(c.port, "GET", "/").status == 200


def test_sticky_keeps_client_and_moves_it(cluster):
    c = cluster(3, args=["--sticky"])
    cl = Client(c.port)
    r = cl.request("GET", "/")
    cookie = r.header("Set-Cookie")
    assert cookie and cookie.startswith("lb=")
    attrs = [a.strip() for a in cookie.split(";")]
    assert "HttpOnly" in attrs and "SameSite=Lax" in attrs and "Path=/" in attrs
    assert "Secure" not in attrs
    value = attrs[0][3:]
    home = served_by(r)
    # Opaque: 64 random bits, new for every run, so it tells nothing about the backend. (Not
    # "the backend's name is not in it": "b0" is hex too, and turns up by chance 1 run in 17.)
    assert re.fullmatch(r"[0-9a-f]{16}", value), value
    other_port = free_port()
    other = Proc([binary("balancer"), "--listen", f"127.0.0.1:{other_port}", "--sticky"]
                 + [a for b in c.backends for a in ("--backend", f"127.0.0.1:{b.port}")],
                 port=other_port, name="balancer")
    try:
        other_cookies = {}
        for _ in range(6):
            r = request(other_port, "GET", "/")
            other_cookies[served_by(r)] = r.header("Set-Cookie").split(";")[0][3:]
    finally:
        assert other.stop() == 0
    assert len(set(other_cookies.values())) == 3 and other_cookies[home] != value, other_cookies
    for _ in range(8):
        r = cl.request("GET", "/", headers={"Cookie": f"other=1; lb={value}"})
        assert served_by(r) == home
        assert r.header("Set-Cookie") is None
    # Without the cookie, requests still rotate.
    assert len({served_by(request(c.port, "GET", "/")) for _ in range(3)}) == 3
    victim = next(b for b in c.backends if b.id == home)
    victim.kill()
    r = cl.request("GET", "/", headers={"Cookie": f"lb={value}"})
    assert r.status == 200 and served_by(r) != home
    moved = r.header("Set-Cookie")
    assert moved and moved.startswith("lb=") and moved.split(";")[0][3:] != value
    new_home, new_value = served_by(r), moved.split(";")[0][3:]
    for _ in range(5):
        r = cl.request("GET", "/", headers={"Cookie": f"lb={new_value}"})
        assert served_by(r) == new_home and r.header("Set-Cookie") is None
    # A forged cookie is just unknown: the client gets a fresh one.
    r = cl.request("GET", "/", headers={"Cookie": "lb=0000000000000000"})
    assert r.status == 200 and r.header("Set-Cookie").startswith("lb=")
    cl.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run([MKCERT, str(d)], check=True, capture_output=True, timeout=60)
    return str(d)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_https_with_generated_ca(cluster, certs):
    c = cluster(2, args=["--sticky"], tls_dir=certs)
    cl = Client(c.tls_port, tls=True, cacert=os.path.join(certs, "ca.pem"))
    r = cl.request("GET", "/t")
    assert r.status == 200
    assert echoed(r)["x-forwarded-proto"] == "https"
    assert "Secure" in [a.strip() for a in r.header("Set-Cookie").split(";")]
    cl.close()
    # curl, as a user would run it: no -k.
    out = subprocess.run(["curl", "-sS", "--cacert", os.path.join(certs, "ca.pem"),
                          f"https://localhost:{c.tls_port}/curl"], capture_output=True, timeout=30)
    assert out.returncode == 0 and b"served_by" in out.stdout, out.stderr
    # TLS 1.1 and older are refused.
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection(("127.0.0.1", c.tls_port), timeout=5) as s:
            ctx.wrap_socket(s, server_hostname="127.0.0.1")
    # A client that vanishes without close_notify, even mid-request, disturbs no one.
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", c.tls_port), timeout=5)
        t = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t.shutdown(socket.SHUT_RDWR)   # no close_notify: Python only sends it from unwrap()
        t.close()
    r = request(c.tls_port, "GET", "/after", tls=True, cacert=os.path.join(certs, "ca.pem"))
    assert r.status == 200
    # Plain HTTP on the TLS port fails cleanly (closed or reset, never served).
    try:
        assert b"200 OK" not in raw(c.tls_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", read_timeout=3)
    except ConnectionResetError:
        pass
    assert c.lb.alive()


def tls_get(t, path, extra=b""):
    """One request on the TLS socket t; returns the raw response (Content-Length framed)."""
    t.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += t.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    body = bytearray(body)
    while len(body) < n:
        chunk = t.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    return head, bytes(body)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_tls_resumption_sni_less_large_and_slow_readers(cluster, certs, version):
    c = cluster(2, tls_dir=certs)
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    # A client without SNI (server_hostname=None) is served, and its session resumes.
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", c.tls_port), timeout=10) as s:
        t = ctx.wrap_socket(s, server_hostname=None)
        assert t.version() == version.replace("_", ".")
        assert "GCM" in t.cipher()[0] or "CHACHA20" in t.cipher()[0]
        head, _ = tls_get(t, "/first")
        assert head.startswith(b"HTTP/1.1 200")
        session = t.session
        t.close()
    with socket.create_connection(("127.0.0.1", c.tls_port), timeout=10) as s:
        t = ctx.wrap_socket(s, server_hostname=None, session=session)
        assert t.session_reused
        # Keep-alive: large bodies both ways, several TLS records per read and per response.
        body = os.urandom(1000000)
        t.sendall(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        data = b""
        while b"}" not in data:
            data += t.recv(65536)
        assert b'"body_len": 1000000' in data
        head, big = tls_get(t, "/big?n=3000000")
        assert head.startswith(b"HTTP/1.1 200") and big == b"x" * 3000000
        # A reader that lets the socket fill up: writes block and resume with the same bytes.
        t.sendall(b"GET /big?n=12000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.0)
        data = b""
        while b"\r\n\r\n" not in data:
            data += t.recv(1024)
        head, _, big = data.partition(b"\r\n\r\n")
        big = bytearray(big)
        while len(big) < 12000000:
            chunk = t.recv(65536)
            assert chunk
            big += chunk
        assert big == b"x" * 12000000
        # Pipelined requests in one TLS write are answered in order.
        t.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            chunk = t.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.count(b"HTTP/1.1 200") == 2 and data.index(b'"/a"') < data.index(b'"/b"')
        t.close()
    assert c.lb.alive()


SMUGGLING = [
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage", 400),
    (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", 405),
]


@pytest.mark.parametrize("data,status", SMUGGLING, ids=range(len(SMUGGLING)))
def test_bad_requests_are_refused(cluster, data, status):
    c = cluster(1, args=["--max-body", "1000"])
    assert_error(raw(c.port, data), status)
    # Nothing of it reached a backend as a request of its own.
    assert c.status()["backends"][0]["requests"] == 0
    assert request(c.port, "GET", "/ok").status == 200


def test_limits(cluster):
    c = cluster(1, args=["--max-body", "1000"])
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    assert_error(raw(c.port, big), 431, "request_header_fields_too_large")
    many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n"
    assert_error(raw(c.port, many), 431)
    assert_error(raw(c.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n" + b"a" * 1001),
                 413, "payload_too_large")
    chunks = b"".join(b"100\r\n" + b"a" * 256 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
    assert_error(raw(c.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks),
                 413)
    r = request(c.port, "POST", "/", body=b"a" * 1000)
    assert r.status == 200 and r.json()["body_len"] == 1000


def test_slow_clients_are_cut_and_others_served(cluster):
    c = cluster(2, args=["--header-timeout", "600", "--idle-timeout", "1500"])
    loris = socket.create_connection(("127.0.0.1", c.port), timeout=5)
    loris.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    done = threading.Event()
    got = []

    def dribble():
        try:
            while not done.is_set():
                loris.sendall(b"X")
                time.sleep(0.1)
        except OSError:
            pass
    t = threading.Thread(target=dribble, daemon=True)
    t.start()
    start = time.monotonic()
    cl = Client(c.port)
    while time.monotonic() - start < 1.0:
        t0 = time.monotonic()
        r = cl.request("GET", "/")
        got.append(time.monotonic() - t0)
        assert r.status == 200
    loris.settimeout(3)
    data = b""
    try:
        while True:
            chunk = loris.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    done.set()
    assert b"408" in data.split(b"\r\n")[0], data
    assert max(got) < 0.5
    # A client that connects and says nothing is dropped after the idle timeout.
    idle = socket.create_connection(("127.0.0.1", c.port), timeout=5)
    t0 = time.monotonic()
    assert idle.recv(100) == b""
    assert 1.0 < time.monotonic() - t0 < 4
    # One that sends half a body and stalls gets 408 after the idle timeout.
    data = raw(c.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc", read_timeout=5)
    assert_error(data, 408)
    cl.close()


def exchange(port, head, pieces, interval=0.0, read_timeout=8.0):
    """Sends head, then pieces interval seconds apart from a thread, while reading; returns
    (everything read until the close, seconds from the head to the close, bytes sent).
    A send the server no longer takes (it answered and closed) just ends the sending."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    sent = [0]
    stop = threading.Event()

    def send():
        try:
            for p in pieces:
                if stop.is_set():
                    return
                s.sendall(p)
                sent[0] += len(p)
                time.sleep(interval)
        except OSError:
            pass
    s.sendall(head)
    t0 = time.monotonic()
    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        out = harness.read_until_close(s, quiet_ok=False)
    finally:
        took = time.monotonic() - t0
        stop.set()
        t.join(5)
        s.close()
    return out, took, sent[0]


@pytest.mark.parametrize("flags", [["--header-timeout", "800"], ["--body-timeout", "800"]],
                         ids=["default-is-header-timeout", "body-timeout"])
def test_trickled_body_gets_408_on_time(cluster, flags):
    """A body sent a byte at a time never trips the idle (per-read) timeout; the body deadline
    answers 408 after --body-timeout (by default the header timeout), and the backend, which
    never got a whole request, answers nothing."""
    c = cluster(1, args=flags + ["--idle-timeout", "5000"])
    head = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n"
    out, took, sent = exchange(c.port, head, [b"a"] * 4000, interval=0.1)
    assert_error(out, 408, "request_timeout")
    assert 0.7 < took < 2.5, took
    assert sent < 40
    assert c.lb.alive() and request(c.port, "GET", "/").status == 200


def test_body_deadline_once_the_answer_started(cluster):
    """A backend may answer before the body is in. A complete answer reaches the client whole,
    and the connection then closes (the rest of the body cannot be told from a next request):
    no 408 after it. An answer still coming at the deadline cannot become a 408 any more: the
    close cuts it short, and its framing tells the client that the exchange failed."""
    c = cluster(1, args=["--body-timeout", "600", "--idle-timeout", "5000"])
    head = b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n"
    out, took, _ = exchange(c.port, head, [b"a"] * 4000, interval=0.1)
    st, headers, body = one_response(out)
    assert st == 413 and out.count(b"HTTP/1.1 ") == 1, out
    assert headers["connection"] == "close" and json.loads(body)["message"] == "refused unread"
    assert took < 0.5, took
    head = b"POST /partial?ms=5000 HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n"
    out, took, _ = exchange(c.port, head, [b"a"] * 4000, interval=0.1)
    st, headers, body = one_response(out)
    assert st == 200 and headers["content-length"] == "100" and body == b"0123456789", out
    assert 0.5 < took < 2.5, took
    assert request(c.port, "GET", "/").status == 200


def test_slow_but_steady_body_is_not_cut(cluster):
    """The deadline is a minimum rate, not a total: a body that takes twice the deadline but
    keeps coming faster than 1000 bytes/s gets through whole."""
    c = cluster(1, args=["--body-timeout", "400"])
    head = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 8000\r\nConnection: close\r\n\r\n"
    out, took, _ = exchange(c.port, head, [b"a" * 500] * 16, interval=0.05)
    st, _, body = one_response(out)
    assert st == 200 and json.loads(body)["body_len"] == 8000, out[:300]
    assert took > 0.75, took


def test_early_refusal_of_a_body_reaches_the_client(cluster):
    """A backend that answers 413 before reading the body, then closes: the balancer's writes of
    the rest of the body fail while that answer sits unread in its socket. The client must get
    the backend's 413 and then the close (the body cannot be resynchronised), never a 502.
    Which of the two the balancer notices first is a race, hence the repetitions. The client asks
    for the close itself: on a loaded machine the kernel may take the whole body before the
    backend answers, and a keep-alive exchange that completed is then legitimately kept open."""
    c = cluster(1, args=["--max-body", str(8 << 20)])
    size = 3 << 20
    head = (b"POST /refuse HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % size)
    for i in range(100):
        out, took, _ = exchange(c.port, head, [b"a" * 65536] * (size // 65536))
        st, headers, body = one_response(out)
        assert st == 413, (i, out[:300])
        assert json.loads(body)["message"] == "refused unread"
        assert headers["connection"] == "close" and headers["x-served-by"] == "b0"
        assert took < 3, took
    assert c.status()["backends"][0]["up"] is True
    assert request(c.port, "GET", "/").status == 200


def test_backend_timeout_and_unreachable(cluster):
    c = cluster(1, args=["--backend-timeout", "300"])
    t0 = time.monotonic()
    r = request(c.port, "GET", "/slow?ms=1500")
    assert r.status == 504 and r.json()["error"] == "gateway_timeout"
    assert time.monotonic() - t0 < 1.4
    assert request(c.port, "GET", "/").status == 200
    c.backends[0].kill()
    r = request(c.port, "GET", "/")
    assert r.status in (502, 503) and set(r.json()) == {"error", "message"}
    r = request(c.port, "GET", "/")
    assert r.status == 503 and r.json()["error"] == "service_unavailable"


def test_post_is_not_resent(cluster):
    """A POST whose backend dies after receiving it is not sent again (it may have happened)."""
    c = cluster(2, args=["--backend-timeout", "5000"])
    cl = Client(c.port)
    target = None

    def killer():
        time.sleep(0.3)
        for b in c.backends:
            if b.id == target:
                b.kill()
    # Route the slow POST to a known backend: rotation is strict.
    first = served_by(cl.request("GET", "/"))
    target = "b1" if first == "b0" else "b0"
    threading.Thread(target=killer, daemon=True).start()
    r = cl.request("POST", "/slow?ms=1500", body=b"pay")
    assert r.status == 502, r
    cl.close()
    assert c.status()["retries"] == 0


def test_admin_status_and_metrics(cluster):
    c = cluster(3)
    for _ in range(6):
        request(c.port, "GET", "/")
    st = c.status()
    assert len(st["backends"]) == 3
    for b in st["backends"]:
        assert b["up"] is True and b["requests"] == 2 and b["failures"] == 0
        assert b["latency_ms_avg"] > 0
    m = request(c.admin, "GET", "/metrics")
    assert m.status == 200 and m.header("Content-Type").startswith("text/plain")
    text = m.body.decode()
    port = c.backends[0].port
    assert f'lb_backend_up{{backend="127.0.0.1:{port}"}} 1' in text
    assert f'lb_backend_requests_total{{backend="127.0.0.1:{port}"}} 2' in text
    assert 'lb_responses_total{code="2xx"} 6' in text
    assert f'lb_backend_latency_seconds_count{{backend="127.0.0.1:{port}"}} 2' in text
    assert request(c.admin, "GET", "/nope").status == 404
    # One access-log line per request, naming the backend.
    lines = [line for line in c.lb.logs().splitlines() if '"GET /"' in line]
    assert len(lines) == 6 and all("backend=127.0.0.1:" in line for line in lines)


def test_sigterm_finishes_in_flight_and_exits_0(cluster):
    c = cluster(1)
    result = {}

    def slow():
        result["r"] = request(c.port, "GET", "/slow?ms=800")
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    idle = Client(c.port)
    assert idle.request("GET", "/").status == 200
    c.lb.p.send_signal(15)
    t.join(5)
    assert result["r"].status == 200
    assert c.lb.p.wait(5) == 0


def test_cli():
    out = subprocess.run([binary("balancer"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--body-timeout MS" in out.stdout
    assert subprocess.run([binary("balancer"), "--version"], capture_output=True).returncode == 0
    for args in (["--bogus"], ["--listen", "127.0.0.1:1"], ["--backend", "127.0.0.1:1"],
                 ["--listen", "nope", "--backend", "127.0.0.1:1"],
                 ["--listen", "127.0.0.1:1", "--backend", "127.0.0.1:1", "--tls-listen", "127.0.0.1:2"],
                 ["--listen", "127.0.0.1:1", "--backend", "127.0.0.1:1", "--threads", "0"],
                 ["--listen", "127.0.0.1:1", "--backend", "127.0.0.1:1", "--body-timeout", "0"]):
        out = subprocess.run([binary("balancer")] + args, capture_output=True, text=True)
        assert out.returncode == 2, args
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
