"""Black-box tests of the balancer's path routes (--route PREFIX=[sticky:]HOST:PORT,...): the
prefix is stripped on the way in, cookie paths get it on the way out, every route has its own
round robin and stickiness, unrouted paths get 404 when there is no default pool, and bad
--route flags are refused. Run as a script, this file is the test backend:
test_balancer_routes.py PORT ID."""
import json
import os
import subprocess
import sys
from urllib.parse import parse_qs, quote, urlparse

import pytest

# Also when this file runs as the test backend, outside pytest and its conftest.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness  # noqa: E402
from harness import Client, Proc, binary, free_port, request  # noqa: E402


class Backend(Proc):
    def __init__(self, name):
        self.id = name
        port = free_port()
        super().__init__([sys.executable, os.path.abspath(__file__), str(port), name], port=port,
                         name=name)


class Balancer:
    """Backends named by pool plus one balancer; everything stops at the end of the test."""

    def __init__(self, pools, default=(), args=()):
        self.backends = {}
        cmd = []
        for prefix, spec in pools.items():
            sticky = spec.startswith("sticky:")
            names = spec.removeprefix("sticky:").split(",")
            for n in names:
                self.backends[n] = Backend(n)
            addrs = ",".join(f"127.0.0.1:{self.backends[n].port}" for n in names)
            cmd += ["--route", f"{prefix}={'sticky:' if sticky else ''}{addrs}"]
        for n in default:
            self.backends[n] = Backend(n)
            cmd += ["--backend", f"127.0.0.1:{self.backends[n].port}"]
        self.port = free_port()
        self.admin = free_port()
        self.lb = Proc([binary("balancer"), "--listen", f"127.0.0.1:{self.port}",
                        "--admin", f"127.0.0.1:{self.admin}", "--health-interval", "200"]
                       + cmd + list(args), port=self.port, name="balancer")

    @staticmethod
    def setcookie(*values):
        """The test backend's path that answers with these Set-Cookie values."""
        return "setcookie?" + "&".join("v=" + quote(json.dumps(v), safe="") for v in values)

    def get(self, path, headers=None):
        return request(self.port, "GET", path, headers=headers)

    def stop(self):
        code = self.lb.stop()
        for b in self.backends.values():
            b.kill()
        return code


@pytest.fixture
def balancer():
    made = []

    def make(*a, **kw):
        made.append(Balancer(*a, **kw))
        return made[-1]
    yield make
    for b in made:
        assert b.stop() == 0, b.lb.logs()


def test_prefix_is_replaced_by_slash(balancer):
    b = balancer({"/app/": "a0", "/other/": "o0"}, default=["d0"])
    r = b.get("/app/profile?x=1&y=/app/")
    assert r.status == 200
    assert r.json() == {"served_by": "a0", "path": "/profile?x=1&y=/app/", "method": "GET"}
    assert b.get("/app/").json()["path"] == "/"
    assert b.get("/other/a/b").json() == {"served_by": "o0", "path": "/a/b", "method": "GET"}
    # No route: the default pool gets the path unchanged, even when it looks like a prefix.
    for path in ("/", "/app", "/APP/x", "/apps/x", "/x/app/"):
        r = b.get(path)
        assert r.json() == {"served_by": "d0", "path": path, "method": "GET"}, path
    # POST with a body goes through the same way.
    r = request(b.port, "POST", "/app/login", body={"username": "alice"})
    assert r.json() == {"served_by": "a0", "path": "/login", "method": "POST"}


def test_longest_prefix_wins(balancer):
    b = balancer({"/a/": "short", "/a/b/": "long"})
    assert b.get("/a/b/x").json() == {"served_by": "long", "path": "/x", "method": "GET"}
    assert b.get("/a/bx").json() == {"served_by": "short", "path": "/bx", "method": "GET"}
    assert b.get("/a/c/b/").json() == {"served_by": "short", "path": "/c/b/", "method": "GET"}


@pytest.mark.parametrize("sent, expected", [
    ("sid=abc; Path=/; HttpOnly; SameSite=Lax", "sid=abc; Path=/app/; HttpOnly; SameSite=Lax"),
    ("sid=abc; HttpOnly", "sid=abc; HttpOnly; Path=/app/"),
    ("sid=abc", "sid=abc; Path=/app/"),
    ("sid=; Max-Age=0; Path=/; Secure", "sid=; Max-Age=0; Path=/app/; Secure"),
    ("t=1; path = /sub/dir; Secure", "t=1; path = /app/sub/dir; Secure"),
    ("t=1; PATH=/", "t=1; PATH=/app/"),
    # The last Path counts (RFC 6265 5.3): an invalid last one means the default path.
    ("t=1; Path=/; Path=relative", "t=1; Path=/app/; Path=relative; Path=/app/"),
    ("t=1; Path=", "t=1; Path=; Path=/app/"),
    # Only the Path attribute: a value or another attribute that mentions a path stays as is.
    ("path=/; Pathological=/x", "path=/; Pathological=/x; Path=/app/"),
])
def test_cookie_path_rewrite(balancer, sent, expected):
    b = balancer({"/app/": "a0"}, default=["d0"])
    r = b.get("/app/" + b.setcookie(sent))
    assert r.headers_all("Set-Cookie") == [expected]
    # The default pool's cookies pass through unchanged.
    r = b.get("/" + b.setcookie(sent))
    assert r.headers_all("Set-Cookie") == [sent]


def test_several_cookies_rewritten(balancer):
    b = balancer({"/app/": "a0"})
    r = b.get("/app/" + b.setcookie("a=1; Path=/", "b=2", "c=3; Path=/x; HttpOnly"))
    assert r.headers_all("Set-Cookie") == ["a=1; Path=/app/", "b=2; Path=/app/",
                                           "c=3; Path=/app/x; HttpOnly"]


def test_rewritten_head_too_large_is_502(balancer):
    prefix = "/" + "p" * 62 + "/"
    b = balancer({prefix: "a0"})
    # A head the parser accepts, which the rewrite would grow past what the proxy sends.
    r = b.get(prefix + "manypaths?n=1500")
    assert r.status == 502
    assert r.json()["error"] == "bad_gateway"
    assert b.get(prefix + "manypaths?n=10").status == 200
    assert b.lb.alive()


def test_each_route_has_its_own_round_robin(balancer):
    b = balancer({"/a/": "a0,a1,a2", "/b/": "b0,b1"}, default=["d0", "d1"])
    c = Client(b.port)
    seen = {"/a/": [], "/b/": [], "/": []}
    try:
        for _ in range(6):
            for prefix in seen:
                r = c.request("GET", prefix + "who")
                assert r.status == 200
                seen[prefix].append(r.header("X-Served-By"))
    finally:
        c.close()
    # Interleaving does not disturb a pool's turn: each cycles over exactly its own backends.
    assert seen["/a/"][:3] * 2 == seen["/a/"] and sorted(seen["/a/"][:3]) == ["a0", "a1", "a2"]
    assert seen["/b/"][:2] * 3 == seen["/b/"] and sorted(seen["/b/"][:2]) == ["b0", "b1"]
    assert seen["/"][:2] * 3 == seen["/"] and sorted(seen["/"][:2]) == ["d0", "d1"]


def test_sticky_per_route(balancer):
    b = balancer({"/s/": "sticky:s0,s1", "/r/": "r0,r1"})
    c = Client(b.port)
    try:
        r = c.request("GET", "/s/x")
        cookies = r.headers_all("Set-Cookie")
        assert len(cookies) == 1 and cookies[0].startswith("lb="), cookies
        assert "; Path=/s/;" in cookies[0] and "HttpOnly" in cookies[0]
        lb = cookies[0].split(";")[0]
        first = r.header("X-Served-By")
        for _ in range(5):
            r = c.request("GET", "/s/x", headers={"Cookie": lb})
            assert r.header("X-Served-By") == first
            assert r.headers_all("Set-Cookie") == []
        # The round-robin route ignores the cookie and sets none.
        who = [c.request("GET", "/r/x", headers={"Cookie": lb}) for _ in range(4)]
        assert {w.header("X-Served-By") for w in who} == {"r0", "r1"}
        assert all(w.headers_all("Set-Cookie") == [] for w in who)
    finally:
        c.close()
    # The pinned server dies: the client moves to the other one and gets a new cookie there.
    b.backends[first].kill()
    r = b.get("/s/x", headers={"Cookie": lb})
    assert r.status == 200
    other = r.header("X-Served-By")
    assert other != first and other in ("s0", "s1")
    cookies = r.headers_all("Set-Cookie")
    assert len(cookies) == 1 and "; Path=/s/;" in cookies[0] and cookies[0].split(";")[0] != lb
    assert b.get("/s/x", headers={"Cookie": cookies[0].split(";")[0]}).header("X-Served-By") == other


def test_sticky_cookie_of_another_route_is_ignored(balancer):
    b = balancer({"/s/": "sticky:s0,s1", "/t/": "sticky:t0,t1"})
    lb = b.get("/s/x").headers_all("Set-Cookie")[0].split(";")[0]
    # s's cookie names no backend of t: t picks one by round robin and sets its own cookie.
    r = b.get("/t/x", headers={"Cookie": lb})
    assert r.header("X-Served-By") in ("t0", "t1")
    cookies = r.headers_all("Set-Cookie")
    assert len(cookies) == 1 and "; Path=/t/;" in cookies[0]


def test_unrouted_path_is_404_without_default_pool(balancer):
    b = balancer({"/app/": "a0"})
    for path in ("/", "/app", "/App/x", "/favicon.ico", "/x/app/", "*"):
        method = "OPTIONS" if path == "*" else "GET"
        r = request(b.port, method, path)
        assert r.status == 404, path
        assert r.json()["error"] == "not_found"
        assert r.header("Content-Type") == "application/json"
    assert b.get("/app/").status == 200
    r = request(b.port, "POST", "/nowhere", body={"a": 1})
    assert r.status == 404


def test_route_without_healthy_backend_is_503_not_default(balancer):
    b = balancer({"/app/": "a0"}, default=["d0"])
    b.backends["a0"].kill()
    r = b.get("/app/x")
    assert r.status in (502, 503)
    assert r.json()["error"] in ("bad_gateway", "service_unavailable")
    assert b.get("/x").header("X-Served-By") == "d0"


def test_admin_status_shows_routes(balancer):
    b = balancer({"/m/": "m0,m1", "/s/": "sticky:s0"}, default=["d0"])
    b.get("/m/x")
    st = request(b.admin, "GET", "/status").json()
    routes = {r["prefix"]: r for r in st["routes"]}
    addr = {n: f"127.0.0.1:{p.port}" for n, p in b.backends.items()}
    assert routes["/"] == {"prefix": "/", "default": True, "sticky": False, "backends": [addr["d0"]]}
    assert routes["/m/"] == {"prefix": "/m/", "default": False, "sticky": False,
                             "backends": [addr["m0"], addr["m1"]]}
    assert routes["/s/"]["sticky"] is True and routes["/s/"]["backends"] == [addr["s0"]]
    by_addr = {x["address"]: x for x in st["backends"]}
    assert by_addr[addr["m0"]]["route"] == "/m/" and by_addr[addr["d0"]]["route"] == "/"
    assert sum(by_addr[addr[n]]["requests"] for n in ("m0", "m1")) == 1


@pytest.mark.parametrize("flags", [
    ["--route", "app/=127.0.0.1:1"],
    ["--route", "/app=127.0.0.1:1"],
    ["--route", "/=127.0.0.1:1"],
    ["--route", "/app/"],
    ["--route", "/app/="],
    ["--route", "/app/=sticky:"],
    ["--route", "/app/=127.0.0.1"],
    ["--route", "/app/=127.0.0.1:1,nonsense"],
    ["--route", "/a/../=127.0.0.1:1"],
    ["--route", "/a//b/=127.0.0.1:1"],
    ["--route", "/a b/=127.0.0.1:1"],
    ["--route", '/a"/=127.0.0.1:1'],
    ["--route", "/" + "x" * 64 + "/=127.0.0.1:1"],
    ["--route", "/a/=127.0.0.1:1", "--route", "/a/=127.0.0.1:2"],
    ["--route", "/a/=127.0.0.1:1", "--sticky"],
    [],
])
def test_bad_route_flags(flags):
    p = subprocess.run([binary("balancer"), "--listen", f"127.0.0.1:{free_port()}"] + flags,
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2, (flags, p.stderr)
    assert p.stderr.strip() and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_too_many_routes():
    flags = []
    for i in range(17):
        flags += ["--route", f"/r{i}/=127.0.0.1:{1000 + i}"]
    p = subprocess.run([binary("balancer"), "--listen", f"127.0.0.1:{free_port()}"] + flags,
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "at most 16" in p.stderr


def test_routes_over_tls_sticky_cookie_is_secure(balancer, tmp_path):
    tls = str(tmp_path / "tls")
    subprocess.run([os.path.join(harness.ROOT, "scripts", "mkcert.sh"), tls], check=True,
                   capture_output=True, timeout=60)
    tls_port = free_port()
    b = balancer({"/s/": "sticky:s0"}, args=["--tls-listen", f"127.0.0.1:{tls_port}",
                                            "--cert", f"{tls}/cert.pem", "--key", f"{tls}/key.pem"])
    r = request(tls_port, "GET", "/s/" + b.setcookie("sid=1; Path=/; Secure"), tls=True,
                cacert=f"{tls}/ca.pem")
    cookies = r.headers_all("Set-Cookie")
    assert "sid=1; Path=/s/; Secure" in cookies
    lb = [c for c in cookies if c.startswith("lb=")]
    assert len(lb) == 1 and lb[0].endswith("; Path=/s/; HttpOnly; SameSite=Lax; Secure")


# ---- the test backend ----------------------------------------------------------------------

def serve(port, ident):
    """/healthz; /setcookie?v="JSON string"... sets each v; /manypaths?n=N sets one cookie with
    N Path attributes; anything else answers {"served_by", "path", "method"}."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 65536
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):
            pass

        def handle_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            url = urlparse(self.path)
            q = parse_qs(url.query)
            cookies = []
            if url.path == "/setcookie":
                cookies = [json.loads(v) for v in q.get("v", [])]
            elif url.path == "/manypaths":
                cookies = ["c=1" + "; Path=/" * int(q["n"][0])]
            body = json.dumps({"served_by": ident, "path": self.path, "method": self.command})
            if url.path == "/healthz":
                body = '{"status": "ok"}'
            self.send_response(200)
            self.send_header("X-Served-By", ident)
            self.send_header("Content-Type", "application/json")
            for c in cookies:
                self.send_header("Set-Cookie", c)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = do_HEAD = do_OPTIONS = handle_any

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
