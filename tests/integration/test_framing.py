"""HTTP framing, the same at the balancer and at the login servers (contract: "HTTP framing"):
smuggling through a body on HEAD/TRACE, pipelining, HEAD, malformed and oversized requests, chunk
extensions, a port already in use, and a differential run of one corpus of raw requests through
the balancer to a server where both sides' logs must agree on how many requests there were."""
import json
import re
import socket
import subprocess
import time

import pytest

import harness

SMUGGLED = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n"
            b"X-Request-Id: SMUGGLED\r\n\r\n")
LOG_LINE = re.compile(r'^\S+ \S+: \S+ "(\S+) (\S+)" (\d{3}) ', re.M)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A session_server (memory store, access log on) behind a balancer (access log on)."""
    tmp = tmp_path_factory.mktemp("framing")
    users = harness.make_users(str(tmp / "users.json"), users=("alice",))
    sport, bport = harness.free_port(), harness.free_port()
    server = harness.Proc([harness.binary("session_server"), "--listen", f"127.0.0.1:{sport}",
                           "--id", "f1", "--users", users, "--timeout", "3"], port=sport)
    balancer = harness.Proc([harness.binary("balancer"), "--listen", f"127.0.0.1:{bport}",
                             "--backend", f"127.0.0.1:{sport}", "--health-interval", "60000"],
                            port=bport)
    yield {"server": server, "balancer": balancer, "users": users}
    assert balancer.stop() == 0, balancer.logs()[-2000:]
    assert server.stop() == 0, server.logs()[-2000:]


def served(proc):
    """The requests proc's access log shows so far: (method, target, status)."""
    return LOG_LINE.findall(proc.logs())


def settle(procs):
    """Waits until the access logs of procs stop growing (log lines are written after replies)."""
    last = None
    for _ in range(40):
        now = [len(p.logs()) for p in procs]
        if now == last:
            return
        last = now
        time.sleep(0.05)


def exchange(port, data, timeout=5.0):
    """Sends data, half-closes, and returns everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return harness.read_until_close(s, quiet_ok=False)


def responses(data, head_requests=()):
    """Splits a byte stream into responses: [(status, headers dict, body)]. A response to a HEAD
    (by position, in head_requests) has no body whatever its Content-Length says."""
    out, i = [], 0
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data[:300]
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        n = 0 if i in head_requests else int(headers.get("content-length", 0))
        out.append((status, headers, rest[:n]))
        data = rest[n:]
        i += 1
    return out


def assert_json_error(resp, status, served_by):
    code, headers, body = resp
    assert code == status, resp
    assert headers["content-type"] == "application/json", resp
    assert headers.get("x-served-by") == served_by, resp
    doc = json.loads(body)
    assert doc["error"] and doc["message"], doc


# ---- Smuggling through a body on HEAD and TRACE ----

SMUGGLE_CASES = {
    "head": b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    "trace": b"TRACE /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    "head_chunked": (b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("case", sorted(SMUGGLE_CASES))
@pytest.mark.parametrize("via", ["server", "balancer"])
def test_body_on_head_or_trace_is_refused_and_nothing_is_smuggled(stack, case, via):
    server, balancer = stack["server"], stack["balancer"]
    port = server.port if via == "server" else balancer.port
    before = len(served(server))
    out = exchange(port, SMUGGLE_CASES[case])
    resps = responses(out)
    assert len(resps) == 1, out
    assert_json_error(resps[0], 400, "f1" if via == "server" else "balancer")
    settle([server, balancer])
    seen = served(server)[before:]
    assert "SMUGGLED" not in server.logs() and "6.6.6.6" not in server.logs()
    # Directly: the server answered the one request (400); through the balancer it saw none.
    assert len(seen) == (1 if via == "server" else 0), seen


@pytest.mark.parametrize("via", ["server", "balancer"])
def test_get_with_a_request_as_body_is_one_request(stack, via):
    server, balancer = stack["server"], stack["balancer"]
    port = server.port if via == "server" else balancer.port
    before = len(served(server))
    out = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                   % len(SMUGGLED) + SMUGGLED)
    resps = responses(out)
    assert [r[0] for r in resps] == [200], out
    settle([server, balancer])
    assert len(served(server)[before:]) == 1
    assert "SMUGGLED" not in server.logs()


# ---- Pipelining, HEAD ----

@pytest.mark.parametrize("via", ["server", "balancer"])
def test_three_pipelined_requests_are_answered_in_order(stack, via):
    port = stack["server"].port if via == "server" else stack["balancer"].port
    data = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: one\r\n\r\n"
            b"GET /nowhere HTTP/1.1\r\nHost: x\r\nX-Request-Id: two\r\n\r\n"
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\nX-Request-Id: three\r\n\r\n{}")
    resps = responses(exchange(port, data))
    assert [r[0] for r in resps] == [200, 404, 400]
    assert [r[1]["x-request-id"] for r in resps] == ["one", "two", "three"]


@pytest.mark.parametrize("via", ["server", "balancer"])
def test_head_has_the_get_length_and_no_body(stack, via):
    port = stack["server"].port if via == "server" else stack["balancer"].port
    get = responses(exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    out = exchange(port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, after = responses(out, head_requests=(0,))
    assert head[0] == 200 and head[2] == b""
    assert int(head[1]["content-length"]) == len(after[2]) > 0
    assert after[0] == 200 and json.loads(after[2])["status"] == "ok"
    assert get[0][0] == 200


# ---- Malformed and oversized requests, chunk extensions ----

BAD = {
    "malformed_line": (b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "bare_lf": (b"GET /healthz HTTP/1.1\nHost: x\n\n", 400),
    "garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    "cl_and_te": (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "head_20k": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20480 + b"\r\n\r\n", 431),
    "body_100k": (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 102400\r\n\r\n" + b"a" * 102400, 413),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("via", ["server", "balancer"])
def test_bad_requests_get_the_json_error(stack, case, via):
    port = stack["server"].port if via == "server" else stack["balancer"].port
    data, status = BAD[case]
    if via == "balancer" and case == "body_100k":
        status = 413  # the balancer's own limit is larger; the server's 413 passes through
    resps = responses(exchange(port, data))
    assert len(resps) == 1
    served_by = "f1" if via == "server" or case == "body_100k" else "balancer"
    assert_json_error(resps[0], status, served_by)


def test_a_head_the_balancer_takes_is_never_too_large_for_the_server(stack):
    """The balancer's head limit (8 KiB) sits well below the servers' (18 KiB), so what it
    forwards, with the headers it adds, always fits: the 431 comes from the front or not at all."""
    def head(size):
        start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
        return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"
    [ok] = responses(exchange(stack["balancer"].port, head(8192 - 64)))
    assert ok[0] == 200 and ok[1]["x-served-by"] == "f1", ok
    [big] = responses(exchange(stack["balancer"].port, head(8192 + 64)))
    assert_json_error(big, 431, "balancer")
    [direct] = responses(exchange(stack["server"].port, head(8192 + 64)))
    assert direct[0] == 200, direct


def test_no_query_value_reaches_either_access_log(stack):
    """A token in a URL passes the balancer to the server: neither log may keep it."""
    server, balancer = stack["server"], stack["balancer"]
    [r] = responses(exchange(balancer.port, b"GET /profile?access_token=s3cr3t-a&x=1&s3cr3t-b "
                             b"HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert r[0] == 401, r
    settle([server, balancer])
    shown = '"GET /profile?access_token=<redacted>&x=<redacted>&<redacted>" 401'
    for proc in (balancer, server):
        assert "s3cr3t" not in proc.logs() and shown in proc.logs(), proc.logs()[-1500:]


@pytest.mark.parametrize("via", ["server", "balancer"])
def test_chunk_extensions_are_accepted_and_dropped(stack, via):
    port = stack["server"].port if via == "server" else stack["balancer"].port
    body = json.dumps({"username": "alice", "password": harness.PASSWORDS["alice"]}).encode()
    a, b = body[:10], body[10:]
    data = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"%x;a=b\r\n%s\r\n%x;name=\"quoted\";x\r\n%s\r\n0;last\r\n\r\n" % (len(a), a, len(b), b))
    resps = responses(exchange(port, data))
    assert [r[0] for r in resps] == [200], resps
    assert json.loads(resps[0][2])["username"] == "alice"


def test_slow_head_gets_a_json_408(stack):
    with socket.create_connection(("127.0.0.1", stack["server"].port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        out = harness.read_until_close(s, quiet_ok=False)
    resps = responses(out)
    assert_json_error(resps[0], 408, "f1")


def test_a_client_that_leaves_early_does_not_stop_the_server(stack):
    """Requests whose client is gone before the answer: the server keeps serving."""
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", stack["server"].port)) as s:
            s.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 47\r\n\r\n{\"username\":\"alice\",\"password\":\"wrong-pass\"}")
    assert harness.request(stack["server"].port, "GET", "/healthz").status == 200


# ---- A port already in use ----

@pytest.mark.parametrize("second", ["session_server", "jwt_server", "balancer"])
def test_second_process_on_a_used_port_exits_1(stack, second, tmp_path):
    port = stack["server"].port
    secret = tmp_path / "secret"
    secret.write_text("x" * 48)
    secret.chmod(0o600)
    args = {"session_server": ["--id", "x", "--users", stack["users"]],
            "jwt_server": ["--id", "x", "--users", stack["users"], "--secret-file", str(secret)],
            "balancer": ["--backend", "127.0.0.1:1", "--threads", "2"]}[second]
    r = subprocess.run([harness.binary(second), "--listen", f"127.0.0.1:{port}"] + args,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1, (r.returncode, r.stderr)
    # One line says why (jwt_server may have told which key it loaded before).
    lines = [ln for ln in r.stderr.strip().splitlines() if "kid " not in ln]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], r.stderr
    assert harness.request(port, "GET", "/healthz").header("X-Served-By") == "f1"


def test_threads_of_one_process_share_the_port(stack):
    port = harness.free_port()
    p = harness.Proc([harness.binary("session_server"), "--listen", f"127.0.0.1:{port}",
                      "--id", "t4", "--users", stack["users"], "--threads", "4", "--quiet"], port=port)
    try:
        for _ in range(20):
            assert harness.request(port, "GET", "/healthz").status == 200
    finally:
        assert p.stop() == 0, p.logs()


# ---- Differential: one corpus through the balancer to the server ----

CORPUS = [
    b"GET /profile HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /profile HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /profile HTTP/1.0\r\n\r\n",
    b"GET /profile HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /",
    b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\n{}\r\n0\r\n\r\n",
    b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n{}{}",
    b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\n{}{}",
    b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"POST /login HTTP/1.1\r\nHost: x\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"POST /login HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    *(c.replace(b" /healthz HTTP", b" /profile HTTP", 1) for c in SMUGGLE_CASES.values()),
    b"HEAD /profile HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + SMUGGLED.replace(b"/healthz", b"/profile").replace(b"SMUGGLED", b"pipelined"),
    b"GET /profile HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"GET /profile HTTP/1.1\r\n\r\n",
    b"GET /profile HTTP/2.0\r\nHost: x\r\n\r\n",
    b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /profile HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    b"\r\n\r\nGET /profile HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"",
]


def test_differential_corpus_balancer_and_server_agree(stack):
    """Every raw request of the corpus goes to the balancer, then straight to the server.
    Through the balancer the server logs no request the balancer did not pass on (its log lines
    naming a backend; a body the balancer finds bad after passing the head on reaches the server
    cut short, unanswered). Straight to the server, the server answers exactly as many requests
    as the balancer answered in all, passed on or refused itself: one parser, one count."""
    server, balancer = stack["server"], stack["balancer"]
    for i, data in enumerate(CORPUS):
        settle([server, balancer])
        s0, b0 = len(served(server)), len(served(balancer))
        p0 = balancer.logs().count(" backend=127.0.0.1:")
        exchange(balancer.port, data)
        settle([server, balancer])
        passed = balancer.logs().count(" backend=127.0.0.1:") - p0
        answered = len(served(balancer)) - b0
        assert len(served(server)) - s0 <= passed, (i, data)
        s1 = len(served(server))
        exchange(server.port, data)
        settle([server])
        assert len(served(server)) - s1 == answered, (i, data, answered)
    assert "SMUGGLED" not in server.logs()
