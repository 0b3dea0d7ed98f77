"""The shared HTTP scaffolding (common/http.c), seen through session_server with the memory
store: routing, limits, headers, metrics, the off-loop password check and the graceful stop."""
import json
import socket
import subprocess
import threading
import time

import pytest

import harness


@pytest.fixture
def server(users_file):
    port = harness.free_port()
    p = harness.Proc([harness.binary("session_server"), "--listen", f"127.0.0.1:{port}",
                      "--id", "s1", "--users", users_file, "--timeout", "2"], port=port)
    yield p
    assert p.stop() == 0, p.logs()


def test_every_response_carries_the_contract_headers(server):
    r = harness.request(server.port, "GET", "/healthz")
    assert r.status == 200
    assert r.json()["status"] == "ok"
    assert r.header("X-Served-By") == "s1"
    assert r.header("Content-Type") == "application/json"
    assert r.header("X-Request-Id")


def test_unknown_path_is_a_json_404(server):
    r = harness.request(server.port, "GET", "/nowhere")
    assert r.status == 404
    assert r.json()["error"] == "not_found" and r.json()["message"]
    assert r.header("X-Served-By") == "s1"


def test_wrong_method_is_a_json_405_with_allow(server):
    r = harness.request(server.port, "DELETE", "/login")
    assert r.status == 405
    assert r.json()["error"] == "method_not_allowed"
    assert "POST" in r.header("Allow")
    r = harness.request(server.port, "GET", "/login")
    assert r.status == 405
    for method in ("TRACE", "PUT", "OPTIONS"):
        out = harness.raw(server.port, b"%s /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                          % method.encode())
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 405"), (method, out[:200])
        assert b"X-Served-By: s1" in head and json.loads(body)["error"] == "method_not_allowed"
    # CONNECT names no path at all: a JSON error of ours too.
    out = harness.raw(server.port, b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 4") and b"X-Served-By: s1" in head and json.loads(body)["error"]


def test_login_body_limits_and_parse_errors(server):
    big = json.dumps({"username": "alice", "password": "x" * 9000})
    r = harness.request(server.port, "POST", "/login", body=big, headers={"Content-Type": "application/json"})
    assert r.status == 413 and r.json()["error"] == "payload_too_large"
    for bad in ['{"username": "alice"', '[1,2]', '{"username":"a","username":"b","password":"p"}',
                '{"username": 5, "password": "x"}', '']:
        r = harness.request(server.port, "POST", "/login", body=bad, headers={"Content-Type": "application/json"})
        assert r.status == 400, bad
        assert r.json()["error"] == "bad_request" and r.json()["message"], bad
        assert r.header("Cache-Control") == "no-store"
    r = harness.request(server.port, "POST", "/login", body="<x/>", headers={"Content-Type": "text/xml"})
    assert r.status == 415


def test_form_login_and_wrong_password(server):
    r = harness.request(server.port, "POST", "/login", body="username=alice&password=alice-password",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200 and r.json()["username"] == "alice"
    assert r.header("Cache-Control") == "no-store"
    r = harness.request(server.port, "POST", "/login", body={"username": "alice", "password": "nope"})
    assert r.status == 401 and r.json()["error"] == "invalid_credentials"
    r = harness.request(server.port, "POST", "/login", body={"username": "mallory", "password": "nope"})
    assert r.status == 401 and r.json()["error"] == "invalid_credentials"


def test_metrics_count_requests_and_auth_failures(server):
    harness.request(server.port, "POST", "/login", body={"username": "alice", "password": "nope"})
    harness.request(server.port, "GET", "/profile")
    r = harness.request(server.port, "GET", "/metrics")
    assert r.status == 200 and r.header("Content-Type").startswith("text/plain")
    text = r.body.decode()
    harness.prom_parse(text)    # one # HELP and # TYPE per family, its samples together
    assert 'http_requests_total{route="/login",status="401"} 1' in text
    assert 'auth_failures_total{reason="invalid_credentials"} 1' in text
    assert "http_request_duration_seconds_count" in text


def test_access_log_keeps_the_path_and_query_names_but_no_values(server):
    """A token put in a URL (RFC 6750 discourages ?access_token=) must not end up in the log."""
    harness.request(server.port, "POST", "/refresh?refresh_token=s3cr3t-refresh")
    harness.request(server.port, "GET", "/profile?access_token=s3cr3t-access&s3cr3t-bare&x=")
    logs = server.logs()
    assert "s3cr3t" not in logs, logs
    assert '"POST /refresh?refresh_token=<redacted>" 404' in logs, logs
    assert '"GET /profile?access_token=<redacted>&<redacted>&x=" 401' in logs, logs


def test_idle_connection_is_cut(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
        s.settimeout(10)
        start = time.monotonic()
        while s.recv(4096):
            pass
        assert time.monotonic() - start < 9


def test_a_slow_password_check_does_not_block_the_loop(tmp_path):
    """A login whose scrypt takes long is verified off the event loop: /healthz on the same
    server answers while it is in flight (ordering, not timing, is asserted)."""
    users = harness.make_users(str(tmp_path / "slow.json"), users=("alice",), ln=17)
    port = harness.free_port()
    p = harness.Proc([harness.binary("session_server"), "--listen", f"127.0.0.1:{port}",
                      "--id", "s1", "--users", users], port=port)
    try:
        events = []

        def login():
            r = harness.request(port, "POST", "/login", body={"username": "alice", "password": "alice-password"},
                                timeout=60)
            events.append(("login", r.status))

        t = threading.Thread(target=login)
        t.start()
        time.sleep(0.05)
        for _ in range(5):
            r = harness.request(port, "GET", "/healthz")
            assert r.status == 200
            events.append(("healthz", r.status))
        t.join(60)
        assert events[-1] == ("login", 200), events
        assert [e for e in events if e[0] == "healthz"] == [("healthz", 200)] * 5
    finally:
        assert p.stop() == 0


def test_sigterm_finishes_the_request_in_flight(tmp_path):
    users = harness.make_users(str(tmp_path / "slow.json"), users=("alice",), ln=16)
    port = harness.free_port()
    p = harness.Proc([harness.binary("session_server"), "--listen", f"127.0.0.1:{port}",
                      "--id", "s1", "--users", users], port=port)
    result = {}

    def login():
        result["r"] = harness.request(port, "POST", "/login",
                                      body={"username": "alice", "password": "alice-password"}, timeout=30)

    t = threading.Thread(target=login)
    t.start()
    time.sleep(0.1)
    assert p.stop() == 0, p.logs()
    t.join(30)
    assert result["r"].status == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_common_flags(users_file):
    exe = harness.binary("session_server")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--listen" in r.stdout
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip()
    for bad in (["--bogus"], ["--threads", "zero"], ["--listen", "nocolon"], ["--listen"],
                ["--trust-proxy", "nonsense"], ["--trust-proxy", "10.0.0.0/8"]):
        r = subprocess.run([exe] + bad, capture_output=True, text=True)
        assert r.returncode == 2, bad
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = subprocess.run([exe, "--listen", "127.0.0.1:1", "--id", "x", "--users", "/nonexistent/users.json"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "/nonexistent/users.json" in r.stderr


def test_cross_site_login_is_refused(server):
    """Login CSRF: a form on another site must not log the visitor into the attacker's account.
    Browsers say where a request comes from (Origin, Sec-Fetch-Site); curl and loadgen say
    nothing and are served; a same-origin page, directly or through the balancer, is served."""
    form = "username=alice&password=alice-password"
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    for hdrs in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                 {"Sec-Fetch-Site": "same-site"}, {"Origin": "null"},
                 {"Origin": f"http://127.0.0.1:{server.port}.evil.example"},
                 {"Origin": f"http://127.0.0.1:{server.port}", "Sec-Fetch-Site": "cross-site"}):
        r = harness.request(server.port, "POST", "/login", body=form, headers={**ctype, **hdrs})
        assert r.status == 403, (hdrs, r)
        assert r.json()["error"] == "cross_site_login" and r.header("X-Served-By") == "s1"
        assert r.header("Set-Cookie") is None
    for hdrs in ({}, {"Origin": f"http://127.0.0.1:{server.port}", "Sec-Fetch-Site": "same-origin"},
                 {"Sec-Fetch-Site": "none"}):
        r = harness.request(server.port, "POST", "/login", body=form, headers={**ctype, **hdrs})
        assert r.status == 200, (hdrs, r)
    bport = harness.free_port()
    balancer = harness.Proc([harness.binary("balancer"), "--listen", f"127.0.0.1:{bport}",
                             "--backend", f"127.0.0.1:{server.port}", "--quiet"], port=bport)
    try:
        same = {"Origin": f"http://127.0.0.1:{bport}", "Sec-Fetch-Site": "same-origin"}
        r = harness.request(bport, "POST", "/login", body=form, headers={**ctype, **same})
        assert r.status == 200 and r.header("Set-Cookie"), r
        r = harness.request(bport, "POST", "/login", body=form,
                            headers={**ctype, "Origin": "https://evil.example"})
        assert r.status == 403 and r.json()["error"] == "cross_site_login"
    finally:
        assert balancer.stop() == 0
