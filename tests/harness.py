"""Shared helpers for the black-box tests: free ports, real processes, a private redis-server,
users files made with authctl, a small HTTP(S) client that keeps one connection alive, and a
checker of the Prometheus text format."""
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("AUTH_BIN") or os.path.join(ROOT, "bin")
SANITIZED = bool(os.environ.get("SANITIZER"))
# Cost of the test users' scrypt hashes: small so tests stay fast (each hash carries its cost).
TEST_LN = 4
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password"}


def binary(name):
    return os.path.join(BIN, name)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=15.0, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class Proc:
    """A program under test: started with its stderr in a log file, stopped with SIGTERM."""

    def __init__(self, args, port=None, env=None, cwd=None, name=None, stdin=None):
        self.name = name or os.path.basename(args[0])
        self.log = tempfile.NamedTemporaryFile(prefix=self.name + "-", suffix=".log", delete=False)
        self.args = args
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  stdin=subprocess.DEVNULL if stdin is None else stdin)
        self.port = port
        if port is not None:
            wait_port(port, self.p)

    def logs(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.p.poll() is None

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait(10)

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code (0 for a graceful stop)."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
                raise AssertionError(f"{self.name} ignored SIGTERM for {timeout}s:\n{self.logs()}")
        return self.p.returncode


class Redis(Proc):
    """A throw-away redis-server on a free port in a temp dir."""

    def __init__(self, aof=False, port=None, dir=None):
        self.dir = dir or tempfile.mkdtemp(prefix="redis-")
        port = port or free_port()
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "yes" if aof else "no", "--daemonize", "no"]
        if aof:
            args += ["--appendfsync", "always"]
        super().__init__(args, port=port, name="redis")
        self.url = f"redis://127.0.0.1:{port}"

    def restart(self):
        """Stops and starts the same server (same port and data dir)."""
        self.stop()
        Redis.__init__(self, aof="--appendonly" in self.args and self.args[self.args.index("--appendonly") + 1] == "yes",
                       port=self.port, dir=self.dir)


def make_users(path, users=("alice", "bob", "carol"), ln=TEST_LN):
    """Creates a users file with authctl useradd; the passwords are in PASSWORDS."""
    roles = {"alice": "admin"}
    for u in users:
        subprocess.run([binary("authctl"), "useradd", "--users", path, "--ln", str(ln),
                        "--name", u.capitalize() + " Example", "--email", f"{u}@example.com",
                        "--role", roles.get(u, "user"), u],
                       input=PASSWORDS[u] + "\n", text=True, check=True, capture_output=True, timeout=60)
    return path


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def headers_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


class Client:
    """One keep-alive HTTP or HTTPS connection to host:port."""

    def __init__(self, port, host="127.0.0.1", tls=False, cacert=None, timeout=10):
        if tls:
            ctx = ssl.create_default_context(cafile=cacert)
            self.conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        else:
            self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())

    def close(self):
        self.conn.close()


def request(port, method, path, body=None, headers=None, **kw):
    c = Client(port, **kw)
    try:
        return c.request(method, path, body, headers)
    finally:
        c.close()


PROM_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def prom_parse(text):
    """Parses a GET /metrics body and checks what a scraper relies on: every family has one
    # HELP and one # TYPE, in the whole text, before its samples, and all of its samples follow
    them together. Returns {(name, labels): value}, labels as written ('{thread="0"}' or '')."""
    samples, seen, family, kind = {}, set(), None, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            family, kind = line.split()[2], None
            assert family not in seen, f"family {family} appears twice:\n{text}"
            seen.add(family)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == family, f"# TYPE {name} without its # HELP:\n{text}"
        else:
            m = PROM_SAMPLE.match(line)
            assert m, f"not a sample: {line!r}"
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            parts = [family] + ([family + s for s in ("_bucket", "_sum", "_count")]
                                if kind == "histogram" else [])
            assert kind and name in parts, f"{name} outside its family ({family}):\n{text}"
            assert (name, labels) not in samples, f"{name}{labels} twice:\n{text}"
            samples[(name, labels)] = float(value)
    return samples


def scrape(port):
    """GET /metrics on a new connection (so any loop thread may answer): returns the index of
    the thread that answered (from X-Request-Id) and prom_parse() of the text."""
    r = request(port, "GET", "/metrics")
    assert r.status == 200, r
    return r.header("X-Request-Id").rsplit("-", 2)[1], prom_parse(r.body.decode())


def by_thread(samples, name):
    """{thread index: value} of the per-thread series name in prom_parse() output."""
    return {labels[len('{thread="'):-2]: v for (n, labels), v in samples.items()
            if n == name and labels.startswith('{thread="')}


def wait_metrics(port, ok, timeout=5.0):
    """Scrapes until ok(samples) holds in one scrape; returns those samples."""
    deadline = time.monotonic() + timeout
    while True:
        _, samples = scrape(port)
        if ok(samples):
            return samples
        assert time.monotonic() < deadline, samples
        time.sleep(0.05)


def read_until_close(s, quiet_ok=True):
    """Everything the peer sends on socket s until it closes (a reset counts as a close). If the
    socket's timeout passes first, returns what came when quiet_ok, else raises AssertionError."""
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        if not quiet_ok:
            raise AssertionError(f"no close within {s.gettimeout()}s; got {out[:200]!r}")
    return out


def raw(port, data, read_timeout=5.0, host="127.0.0.1"):
    """Sends raw bytes and returns everything the server sends until it closes or goes quiet."""
    with socket.create_connection((host, port), timeout=read_timeout) as s:
        s.sendall(data)
        return read_until_close(s)
