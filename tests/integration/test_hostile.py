"""Hostile clients against session_server, jwt_server and the balancer at once: slowloris heads,
bodies that never finish or trickle, hundreds of idle connections, oversized heads and bodies,
and a process out of file descriptors. The servers must keep answering a well-behaved client
quickly meanwhile, and close the bad connections on time. Timeouts are set short (2 s) so the
whole module stays well under a minute."""
import json
import os
import selectors
import socket
import threading
import time

import pytest

import harness

TIMEOUT_S = 2          # the servers' --timeout, the balancer's --idle-timeout
HEADER_MS = 1500       # the balancer's --header-timeout
CLOSE_SLACK = 3.0      # how late after its timeout a bad connection may still be open
GOOD_LATENCY = 1.0     # a good request may take this long while the hostile ones go on


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    users = harness.make_users(str(tmp / "users.json"), users=("alice",))
    secret = tmp / "secret"
    secret.write_bytes(os.urandom(24).hex().encode())
    procs = {}
    ports = {k: harness.free_port() for k in ("session", "jwt", "balancer")}
    common = ["--users", users, "--timeout", str(TIMEOUT_S), "--quiet"]
    procs["session"] = harness.Proc([harness.binary("session_server"), "--listen",
                                     f"127.0.0.1:{ports['session']}", "--id", "hs1"] + common,
                                    port=ports["session"])
    procs["jwt"] = harness.Proc([harness.binary("jwt_server"), "--listen", f"127.0.0.1:{ports['jwt']}",
                                 "--id", "hj1", "--secret-file", str(secret)] + common, port=ports["jwt"])
    procs["balancer"] = harness.Proc([harness.binary("balancer"), "--listen", f"127.0.0.1:{ports['balancer']}",
                                      "--backend", f"127.0.0.1:{ports['jwt']}", "--quiet",
                                      "--header-timeout", str(HEADER_MS),
                                      "--idle-timeout", str(TIMEOUT_S * 1000),
                                      "--health-interval", "500"], port=ports["balancer"])
    yield procs
    for name in ("balancer", "session", "jwt"):
        assert procs[name].stop() == 0, procs[name].logs()[-3000:]


class Hostile:
    """count connections to port that send prefix, then one byte of drip every interval
    (drip None: nothing more). A background thread notes when the server closes each one."""

    def __init__(self, port, count, prefix=b"", drip=None, interval=0.4):
        self.socks = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if prefix:
                s.sendall(prefix)
            s.setblocking(False)
            self.socks.append(s)
        self.start = time.monotonic()
        self.closed = {}            # socket index -> seconds after start
        self.replies = {}           # socket index -> bytes the server sent
        self.drip, self.interval = drip, interval
        self.stopping = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        sel = selectors.DefaultSelector()
        for i, s in enumerate(self.socks):
            sel.register(s, selectors.EVENT_READ, i)
        k, next_drip = 0, time.monotonic() + self.interval
        while not self.stopping and len(self.closed) < len(self.socks):
            for key, _ in sel.select(0.05):
                i = key.data
                try:
                    data = key.fileobj.recv(65536)
                except (ConnectionResetError, BlockingIOError, OSError) as e:
                    data = b"" if not isinstance(e, BlockingIOError) else None
                if data is None:
                    continue
                if data:
                    self.replies[i] = self.replies.get(i, b"") + data
                else:
                    self.closed[i] = time.monotonic() - self.start
                    sel.unregister(key.fileobj)
            if self.drip and time.monotonic() >= next_drip:
                byte = self.drip[k % len(self.drip):k % len(self.drip) + 1]
                k += 1
                next_drip += self.interval
                for i, s in enumerate(self.socks):
                    if i not in self.closed:
                        try:
                            s.send(byte)
                        except OSError:
                            pass  # the read side notices the close
        sel.close()

    def wait_closed(self, limit):
        deadline = self.start + limit
        while len(self.closed) < len(self.socks) and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.socks) - len(self.closed)

    def close(self):
        self.stopping = True
        self.t.join(5)
        for s in self.socks:
            s.close()


def good_requests(procs, seconds):
    """A well-behaved client on every target for a while; returns the worst latency and the
    statuses seen."""
    worst, statuses = 0.0, []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name, p in procs.items():
            t0 = time.monotonic()
            try:
                r = harness.request(p.port, "GET", "/healthz", timeout=5)
                statuses.append((name, r.status))
            except OSError as e:
                statuses.append((name, repr(e)))
            worst = max(worst, time.monotonic() - t0)
        time.sleep(0.05)
    return worst, statuses


def assert_all_alive(procs):
    for name, p in procs.items():
        assert p.alive(), f"{name} died:\n{p.logs()[-3000:]}"
        logs = p.logs()
        assert "runtime error" not in logs and "AddressSanitizer" not in logs, logs[-3000:]


def run_hostile(targets, make, limit, good_seconds):
    """Starts make(port) on every target at once, keeps a good client going on all of them for
    good_seconds, then waits up to limit seconds for the hostile connections to be closed.
    Returns {target: (connections still open, replies)} and the good client's record."""
    hostile = {name: make(p.port) for name, p in targets.items()}
    try:
        worst, statuses = good_requests(targets, good_seconds)
        left = {name: (h.wait_closed(limit), dict(h.replies)) for name, h in hostile.items()}
        return left, worst, statuses
    finally:
        for h in hostile.values():
            h.close()


def check_good_client(targets, worst, statuses):
    bad = [s for s in statuses if s[1] != 200]
    assert not bad, bad[:10]
    assert worst < GOOD_LATENCY, f"a good request took {worst:.2f}s while under attack"
    assert_all_alive(targets)


HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
POST_HEAD = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 4000\r\n\r\n")
LIMIT = TIMEOUT_S + CLOSE_SLACK


@pytest.fixture(scope="module")
def slowloris(targets):
    """30 heads per target trickling one byte every 0.4 s: never quiet long enough for a
    per-read timeout; only a deadline for the whole head closes them."""
    return run_hostile(targets, lambda port: Hostile(port, 30, HEAD, drip=b"X-Slow: lorisss\r\n"),
                       LIMIT, LIMIT)


@pytest.fixture(scope="module")
def trickled_body(targets):
    """20 login bodies per target arriving one byte every 0.4 s (R-U-Dead-Yet)."""
    return run_hostile(targets, lambda port: Hostile(port, 20, POST_HEAD, drip=b" "), LIMIT, 1.0)


def test_slowloris_good_clients_still_served(targets, slowloris):
    check_good_client(targets, *slowloris[1:])


@pytest.mark.parametrize("name", ["session", "jwt", "balancer"])
def test_slowloris_heads_closed_on_time(slowloris, name):
    left, replies = slowloris[0][name]
    assert left == 0, f"{left} trickling heads still open {LIMIT}s after they started"
    for reply in replies.values():
        assert reply.startswith(b"HTTP/1.1 4"), reply[:200]


def test_trickled_body_good_clients_still_served(targets, trickled_body):
    check_good_client(targets, *trickled_body[1:])


@pytest.mark.parametrize("name", ["session", "jwt", "balancer"])
def test_trickled_body_closed_on_time(trickled_body, name):
    left, replies = trickled_body[0][name]
    assert left == 0, f"{left} trickling bodies still open {LIMIT}s after they started"
    if name == "balancer":  # its own body deadline, not the backend's, must end them
        for reply in replies.values():
            assert reply.startswith(b"HTTP/1.1 408"), reply[:200]


def test_silent_heads_and_bodies_are_closed_on_time(targets):
    """Half a head, half a body, or nothing at all, then silence: the idle timeout's job."""
    post = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{\"username\": ")

    def make(port):
        return [Hostile(port, 20, HEAD), Hostile(port, 20, post), Hostile(port, 20)]
    hostile = {name: make(p.port) for name, p in targets.items()}
    try:
        check_good_client(targets, *good_requests(targets, 1.0))
        for name, hs in hostile.items():
            for what, h in zip(("half head", "half body", "nothing"), hs):
                left = h.wait_closed(LIMIT)
                assert left == 0, f"{name}: {left} '{what}' connections still open after {LIMIT}s"
                # A reply, if any, must be an HTTP error (408/400), never a 5xx or a success.
                for reply in h.replies.values():
                    assert reply.startswith(b"HTTP/1.1 4"), (name, what, reply[:200])
        assert_all_alive(targets)
    finally:
        for hs in hostile.values():
            for h in hs:
                h.close()


def test_many_idle_connections(targets):
    """400 idle connections per target (1200 in all): everyone else is still served, and the
    idle ones are closed after the idle timeout."""
    left, worst, statuses = run_hostile(targets, lambda port: Hostile(port, 400), LIMIT + 1.0, 1.5)
    check_good_client(targets, worst, statuses)
    assert not any(v[0] for v in left.values()), {k: v[0] for k, v in left.items()}


def read_reply(port, data, timeout=5.0):
    """Sends data and reads until the server closes; returns (status, reply, seconds)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we finished: the reply tells
        out = harness.read_until_close(s, quiet_ok=False)
    status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.") else None
    return status, out, time.monotonic() - t0


@pytest.mark.parametrize("name", ["session", "jwt", "balancer"])
def test_oversized_heads(targets, name):
    port = targets[name].port
    cases = [HEAD + b"X-Big: " + b"a" * 20000 + b"\r\nConnection: close\r\n\r\n",
             HEAD + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 20) for i in range(1000)) + b"\r\n",
             b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
             HEAD + b"Cookie: " + b"c=" * 10000 + b"\r\nConnection: close\r\n\r\n"]
    for data in cases:
        status, out, took = read_reply(port, data)
        assert status is None or 400 <= status < 500, out[:300]
        assert took < 3, f"took {took:.1f}s"
    assert_all_alive(targets)
    assert harness.request(port, "GET", "/healthz").status == 200


@pytest.mark.parametrize("name", ["session", "jwt", "balancer"])
def test_oversized_bodies(targets, name):
    port = targets[name].port
    # Announced too big: refused at once, without waiting for the body.
    status, out, took = read_reply(port, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   b"Content-Length: 100000000\r\n\r\n{")
    assert status == 413, out[:300]
    assert took < 2, took
    assert b"application/json" in out.split(b"\r\n\r\n", 1)[0], out[:300]
    assert json.loads(out.split(b"\r\n\r\n", 1)[1])["error"] == "payload_too_large"
    # Past the login limit (8 KiB) but small enough to be read: a JSON 413.
    body = json.dumps({"username": "alice", "password": "x" * 9000}).encode()
    status, out, _ = read_reply(port, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert status == 413, out[:300]
    assert json.loads(out.split(b"\r\n\r\n", 1)[1])["error"] == "payload_too_large"
    # Chunked, never announcing its size, 3 MB: refused without reading it all.
    chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
    data = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 48 + b"0\r\n\r\n")
    status, out, took = read_reply(port, data, timeout=10)
    assert status in (None, 400, 413), out[:300]
    assert took < 5
    assert_all_alive(targets)
    assert harness.request(port, "GET", "/healthz").status == 200


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("name", ["session", "balancer"])
def test_out_of_descriptors_pauses_instead_of_spinning(tmp_path, name):
    """With only 64 descriptors, 120 clients exhaust them: the server must not spin on
    accept() (little CPU), and serves again once they leave."""
    port = harness.free_port()
    if name == "session":
        users = harness.make_users(str(tmp_path / "users.json"), users=("alice",))
        args = [harness.binary("session_server"), "--listen", f"127.0.0.1:{port}", "--id", "fd1",
                "--users", users, "--timeout", "30", "--quiet"]
    else:
        backend = harness.free_port()  # nothing listens there: only the client side matters
        args = [harness.binary("balancer"), "--listen", f"127.0.0.1:{port}", "--backend",
                f"127.0.0.1:{backend}", "--quiet", "--idle-timeout", "30000", "--header-timeout", "30000"]
    p = harness.Proc(["prlimit", "--nofile=64:64", "--"] + args, port=port, name=name)
    socks = []
    try:
        for _ in range(120):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        before = cpu_seconds(p.p.pid)
        time.sleep(2.0)
        spent = cpu_seconds(p.p.pid) - before
        assert spent < 0.5, f"{name} used {spent:.2f}s of CPU in 2s while out of descriptors"
        assert p.alive(), p.logs()[-2000:]
        for s in socks:
            s.close()
        socks = []
        time.sleep(0.5)
        r = harness.request(port, "GET", "/healthz", timeout=5)
        assert r.status in (200, 503), r  # the balancer has no live backend: 503 is its answer
        assert p.stop() == 0, p.logs()[-2000:]
    finally:
        for s in socks:
            s.close()
        p.kill()
