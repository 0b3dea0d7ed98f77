"""session_server end to end: real servers on free ports, a private redis-server, real sockets.
Sessions shared through Redis and not through memory, the cookie's attributes, idle and absolute
expiry, logout, session fixation, Redis outages (killed, hung, absent at start, restarted with
and without AOF), --threads with the memory store, every thread's series in every /metrics
scrape, --max-sessions, and bad input."""
import collections
import os
import re
import signal
import socket
import threading
import time

import pytest

import harness

SID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def start(users_file, store="memory", *extra, name="s1"):
    port = harness.free_port()
    return harness.Proc([harness.binary("session_server"), "--listen", f"127.0.0.1:{port}",
                         "--id", name, "--users", users_file, "--store", store, *extra],
                        port=port, name=name)


@pytest.fixture
def servers():
    """Collects started servers and checks that each stops gracefully."""
    started = []
    yield started
    for p in started:
        assert p.stop() == 0, p.logs()


def login(port, user="alice", headers=None):
    r = harness.request(port, "POST", "/login",
                        body={"username": user, "password": harness.PASSWORDS[user]}, headers=headers)
    cookie = r.header("Set-Cookie") or ""
    m = re.match(r"sid=([^;]*)", cookie)
    return r, (m.group(1) if m else None)


def profile(port, sid):
    return harness.request(port, "GET", "/profile", headers={"Cookie": f"sid={sid}"})


def attrs(set_cookie):
    """The attributes of a Set-Cookie value, lower-cased names: {"httponly": None, ...}."""
    out = {}
    for part in set_cookie.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        out[k.lower()] = v if _ else None
    return out


def wait_health(port, status, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = harness.request(port, "GET", "/healthz")
        if r.status == status:
            return r
        time.sleep(0.05)
    raise AssertionError(f"/healthz never answered {status} within {timeout}s (last {r})")


def expect_503(r):
    assert r.status == 503, r
    assert r.json()["error"] == "store_unavailable" and r.json()["message"]


# ---- Sharing: the point of the demo ----

def test_redis_session_is_valid_on_every_instance_and_logout_ends_it_everywhere(users_file, redis, servers):
    a = start(users_file, redis.url, name="a")
    servers.append(a)
    b = start(users_file, redis.url, name="b")
    servers.append(b)
    wait_health(a.port, 200)
    wait_health(b.port, 200)
    r, sid = login(a.port)
    assert r.status == 200 and r.json()["username"] == "alice" and r.header("X-Served-By") == "a"
    for port, name in ((a.port, "a"), (b.port, "b")):
        p = profile(port, sid)
        assert p.status == 200, p
        assert p.json() == {"username": "alice", "name": "Alice Example", "email": "alice@example.com",
                            "role": "admin", "served_by": name, "auth": "session"}
        assert p.header("X-Served-By") == name and p.header("Cache-Control") == "no-store"
    out = harness.request(b.port, "POST", "/logout", headers={"Cookie": f"sid={sid}"})
    assert out.status in (200, 204)
    assert attrs(out.header("Set-Cookie")).get("max-age") == "0"
    for port in (a.port, b.port):
        p = profile(port, sid)
        assert p.status == 401 and p.json()["error"] == "invalid_session"
    again = harness.request(a.port, "POST", "/logout", headers={"Cookie": f"sid={sid}"})
    assert again.status == 401
    # The key in Redis is the hash of the id, never the id itself.
    harness_keys = redis_cli(redis, "KEYS", "*")
    assert sid not in harness_keys


def redis_cli(redis, *args):
    import subprocess
    return subprocess.run(["redis-cli", "-p", str(redis.port), *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout


def test_memory_session_is_rejected_by_another_instance(users_file, servers):
    a = start(users_file, name="a")
    servers.append(a)
    b = start(users_file, name="b")
    servers.append(b)
    r, sid = login(a.port)
    assert r.status == 200 and SID_RE.match(sid)
    assert profile(a.port, sid).status == 200
    p = profile(b.port, sid)
    assert p.status == 401 and p.json()["error"] == "invalid_session"
    assert profile(a.port, sid).status == 200, "b's rejection must not end a's session"


def test_redis_keys_expire_in_redis_itself(users_file, redis, servers):
    s = start(users_file, redis.url, "--idle-timeout", "100", "--absolute-timeout", "50")
    servers.append(s)
    wait_health(s.port, 200)
    _, sid = login(s.port)
    keys = redis_cli(redis, "KEYS", "sess:*").split()
    assert len(keys) == 1 and sid not in keys[0]
    ttl = int(redis_cli(redis, "PTTL", keys[0]))
    assert 45000 < ttl <= 50000, ttl     # min(idle, absolute)
    fields = redis_cli(redis, "HGETALL", keys[0]).split()
    assert "alice" in fields and sid not in fields


# ---- The cookie ----

def test_cookie_attributes_and_secure_only_from_a_trusted_https_proxy(users_file, servers):
    s = start(users_file)
    servers.append(s)
    r, sid = login(s.port)
    assert r.status == 200 and r.header("Cache-Control") == "no-store"
    assert SID_RE.match(sid), sid
    a = attrs(r.header("Set-Cookie"))
    assert "httponly" in a and a.get("samesite") == "Lax" and a.get("path") == "/"
    assert "secure" not in a
    assert "max-age" not in a and "expires" not in a, "a browser-session cookie"
    r, _ = login(s.port, headers={"X-Forwarded-Proto": "https"})
    a = attrs(r.header("Set-Cookie"))
    assert "secure" in a and "httponly" in a and a.get("samesite") == "Lax"
    # A proxy that is not trusted cannot claim HTTPS.
    t = start(users_file, "memory", "--trust-proxy", "192.0.2.1", name="t")
    servers.append(t)
    r, _ = login(t.port, headers={"X-Forwarded-Proto": "https"})
    assert r.status == 200 and "secure" not in attrs(r.header("Set-Cookie"))


def test_every_login_gets_a_fresh_id_and_a_planted_one_is_never_adopted(users_file, servers):
    s = start(users_file)
    servers.append(s)
    planted = "A" * 42 + "A"   # well-formed, unknown to the server
    r, sid = login(s.port, headers={"Cookie": f"sid={planted}"})
    assert r.status == 200 and sid != planted and SID_RE.match(sid)
    assert profile(s.port, planted).status == 401
    assert profile(s.port, sid).status == 200
    # Logging in again with a valid session gives a new id and ends the old one.
    r, sid2 = login(s.port, headers={"Cookie": f"sid={sid}"})
    assert r.status == 200 and sid2 not in (sid, planted)
    assert profile(s.port, sid2).status == 200
    assert profile(s.port, sid).status == 401
    ids = {login(s.port, "bob")[1] for _ in range(20)}
    assert len(ids) == 20


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_missing_malformed_and_unknown_ids_get_401(users_file, redis, servers, store):
    s = start(users_file, redis.url if store == "redis" else "memory")
    servers.append(s)
    wait_health(s.port, 200)
    r = harness.request(s.port, "GET", "/profile")
    assert r.status == 401 and r.json()["error"] == "not_authenticated" and r.json()["message"]
    r = harness.request(s.port, "GET", "/profile", headers={"Cookie": "other=1"})
    assert r.status == 401 and r.json()["error"] == "not_authenticated"
    _, good = login(s.port)
    for bad in ["", "x", good[:-1], good + "A", good[:-1] + "=", good[:-1] + "+", good[:-1] + "/",
                good[:-1] + "%", "B" * 5000, "' OR 1=1 --".ljust(43, "A")]:
        r = harness.request(s.port, "GET", "/profile", headers={"Cookie": f"sid={bad}"})
        assert r.status == 401, (bad, r)
        assert r.json()["error"] in ("invalid_session", "not_authenticated"), (bad, r)
    # Non-canonical base64url (non-zero trailing bits) is refused, not mapped onto a valid id.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = good[:-1] + last[last.index(good[-1]) ^ 1]
    r = profile(s.port, twin)
    assert r.status == 401 and r.json()["error"] == "invalid_session"
    r = profile(s.port, "A" * 43)
    assert r.status == 401 and r.json()["error"] == "invalid_session"
    assert attrs(r.header("Set-Cookie")).get("max-age") == "0", "a bad cookie is cleared"
    r = harness.request(s.port, "POST", "/logout")
    assert r.status == 401 and r.json()["error"] == "not_authenticated"
    assert profile(s.port, good).status == 200
    metrics = harness.request(s.port, "GET", "/metrics").body.decode()
    assert re.search(r'auth_failures_total\{reason="invalid_session"\} [1-9]', metrics)


# ---- Expiry ----

@pytest.mark.parametrize("store", ["memory", "redis"])
def test_idle_timeout_slides_and_then_ends_the_session(users_file, redis, servers, store):
    s = start(users_file, redis.url if store == "redis" else "memory", "--idle-timeout", "2",
              "--absolute-timeout", "60")
    servers.append(s)
    wait_health(s.port, 200)
    _, sid = login(s.port)
    for _ in range(3):          # 3.6 s in all, longer than the idle timeout: each use slides it
        time.sleep(1.2)
        assert profile(s.port, sid).status == 200
    time.sleep(2.4)
    r = profile(s.port, sid)
    assert r.status == 401 and r.json()["error"] in ("session_expired", "invalid_session"), r
    assert profile(s.port, sid).status == 401


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_absolute_timeout_ends_a_busy_session(users_file, redis, servers, store):
    s = start(users_file, redis.url if store == "redis" else "memory", "--idle-timeout", "60",
              "--absolute-timeout", "3")
    servers.append(s)
    wait_health(s.port, 200)
    _, sid = login(s.port)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.4:
        assert profile(s.port, sid).status == 200
        time.sleep(0.3)
    time.sleep(3.2 - (time.monotonic() - t0))
    r = profile(s.port, sid)
    assert r.status == 401 and r.json()["error"] in ("session_expired", "invalid_session"), r


def test_memory_store_reports_session_expired_before_the_sweep(users_file, servers):
    # Absolute deadline 1 s, checked 0.1 s after: the sweep (every 1 s) may not have run yet, so
    # either reason is right, but the session must be gone and must stay gone.
    s = start(users_file, "memory", "--absolute-timeout", "1")
    servers.append(s)
    _, sid = login(s.port)
    time.sleep(1.1)
    r = profile(s.port, sid)
    assert r.status == 401 and r.json()["error"] in ("session_expired", "invalid_session")
    time.sleep(1.2)
    metrics = harness.request(s.port, "GET", "/metrics").body.decode()
    assert re.search(r"sessions_expired_total [1-9]", metrics), metrics
    assert 'sessions_active{store="memory"} 0' in metrics


# ---- Redis outages ----

def test_killed_redis_gives_503_quickly_and_service_resumes_after_restart(users_file, redis, servers):
    s = start(users_file, redis.url, "--redis-timeout", "500")
    servers.append(s)
    wait_health(s.port, 200)
    _, sid = login(s.port)
    assert profile(s.port, sid).status == 200
    redis.kill()
    t0 = time.monotonic()
    r = profile(s.port, sid)
    assert time.monotonic() - t0 < 1.5
    expect_503(r)
    h = wait_health(s.port, 503, timeout=2)
    assert h.json()["store_status"] == "down"
    expect_503(login(s.port)[0])
    expect_503(harness.request(s.port, "POST", "/logout", headers={"Cookie": f"sid={sid}"}))
    # Never 401 while the store is down: nobody is logged out by an outage.
    for _ in range(5):
        assert profile(s.port, sid).status == 503
    redis.restart()             # no persistence: the old session is gone, new logins work
    wait_health(s.port, 200, timeout=5)
    assert profile(s.port, sid).status == 401
    r, sid2 = login(s.port)
    assert r.status == 200 and profile(s.port, sid2).status == 200
    metrics = harness.request(s.port, "GET", "/metrics").body.decode()
    assert re.search(r'redis_connects_total\{thread="0"\} [2-9]', metrics), metrics
    assert 'result="unavailable"' in metrics


def test_sessions_survive_a_redis_restart_with_aof(users_file, servers):
    redis = harness.Redis(aof=True)
    try:
        s = start(users_file, redis.url)
        servers.append(s)
        wait_health(s.port, 200)
        _, sid = login(s.port)
        _, sid_bob = login(s.port, "bob")
        redis.restart()
        wait_health(s.port, 200, timeout=5)
        p = profile(s.port, sid)
        assert p.status == 200 and p.json()["username"] == "alice"
        assert profile(s.port, sid_bob).json()["username"] == "bob"
    finally:
        redis.stop()


def test_hung_redis_times_out_with_503_and_recovers(users_file, redis, servers):
    s = start(users_file, redis.url, "--redis-timeout", "300")
    servers.append(s)
    wait_health(s.port, 200)
    _, sid = login(s.port)
    os.kill(redis.p.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = profile(s.port, sid)
        took = time.monotonic() - t0
        expect_503(r)
        assert 0.2 < took < 1.5, took
        wait_health(s.port, 503, timeout=3)
    finally:
        os.kill(redis.p.pid, signal.SIGCONT)
    wait_health(s.port, 200, timeout=5)
    assert profile(s.port, sid).status == 200, "the session outlived the hang"
    metrics = harness.request(s.port, "GET", "/metrics").body.decode()
    assert re.search(r'redis_timeouts_total\{thread="0"\} [1-9]', metrics), metrics


def test_redis_absent_at_start_then_appearing(users_file, servers):
    port = harness.free_port()
    s = start(users_file, f"redis://127.0.0.1:{port}/3")
    servers.append(s)
    h = harness.request(s.port, "GET", "/healthz")
    assert h.status == 503 and h.json()["status"] != "ok"
    assert h.json()["error"] and h.json()["message"]  # the contract's error body
    expect_503(profile(s.port, "A" * 43))
    expect_503(login(s.port)[0])
    redis = harness.Redis(port=port)
    try:
        wait_health(s.port, 200, timeout=5)
        r, sid = login(s.port)
        assert r.status == 200 and profile(s.port, sid).status == 200
        # The session and its user's index (usess:alice) are in database 3.
        assert redis_cli(redis, "-n", "3", "DBSIZE").strip() == "2", "SELECT 3 was used"
    finally:
        redis.stop()


# ---- Threads and limits ----

def test_memory_store_is_shared_by_threads(users_file, servers):
    s = start(users_file, "memory", "--threads", "2")
    servers.append(s)
    _, sid = login(s.port)
    served = collections.Counter()
    for _ in range(60):
        # A new connection each time: the threads deal the connections of their one
        # listening socket round-robin, so each serves exactly half (whichever accepted them).
        r = profile(s.port, sid)
        assert r.status == 200, r
        served[r.header("X-Request-Id").rsplit("-", 2)[1]] += 1
    assert served == {"0": 30, "1": 30}, served


def test_sigterm_while_connections_are_handed_over(users_file):
    """SIGTERM in the middle of a burst of new connections, many of them on their way from the
    thread that accepted them to another: the server stops at once and exits 0, and every
    client gets its answer or a close. The moment cannot be forced from outside: a few rounds."""
    for _ in range(4):
        s = start(users_file, "memory", "--threads", "3")
        clients = []

        def burst():
            for _ in range(150):
                try:
                    c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                except OSError:
                    return      # the server stopped listening
                clients.append(c)

        workers = [threading.Thread(target=burst) for _ in range(2)]
        for w in workers:
            w.start()
        while len(clients) < 100 and any(w.is_alive() for w in workers):
            time.sleep(0.001)
        t0 = time.monotonic()
        rc = s.stop()
        took = time.monotonic() - t0
        for w in workers:
            w.join()
        for c in clients:
            c.settimeout(5)
            try:
                out = harness.read_until_close(c, quiet_ok=False)
            except OSError:
                out = b""       # reset: it was still in the listening socket's queue
            assert out == b"" or out.startswith(b"HTTP/1.1 200 "), out[:100]
            c.close()
        assert rc == 0 and took < 4, (rc, took, s.logs())
        assert "still busy" not in s.logs(), s.logs()


def test_metrics_show_every_thread_in_every_scrape(users_file, redis, servers):
    s = start(users_file, redis.url, "--threads", "2", "--redis-timeout", "300")
    servers.append(s)
    harness.wait_metrics(s.port, lambda m: harness.by_thread(m, "session_store_up") == {"0": 1, "1": 1})
    _, sid = login(s.port)
    for _ in range(10):         # a new connection each time: the threads take turns
        assert profile(s.port, sid).status == 200
    answered = set()
    for _ in range(10):
        thread, m = harness.scrape(s.port)     # one # TYPE per family, samples together
        answered.add(thread)
        assert harness.by_thread(m, "session_store_up") == {"0": 1, "1": 1}, m
        for name in ("redis_connects_total", "redis_disconnects_total", "redis_timeouts_total",
                     "redis_commands_total", "redis_refused_total", "redis_pending"):
            assert set(harness.by_thread(m, name)) == {"0", "1"}, (name, m)
        assert all(v >= 1 for v in harness.by_thread(m, "redis_connects_total").values()), m
        # Both threads served look-ups: each one's commands show whichever thread answers.
        assert all(v >= 1 for v in harness.by_thread(m, "redis_commands_total").values()), m
    assert answered == {"0", "1"}, answered
    redis.kill()
    harness.wait_metrics(s.port, lambda m: harness.by_thread(m, "session_store_up") == {"0": 0, "1": 0})
    redis.restart()
    m = harness.wait_metrics(s.port, lambda m: harness.by_thread(m, "session_store_up") == {"0": 1, "1": 1})
    assert all(v >= 2 for v in harness.by_thread(m, "redis_connects_total").values()), m
    assert all(v >= 1 for v in harness.by_thread(m, "redis_disconnects_total").values()), m


def test_max_sessions_evicts_the_least_recently_used(users_file, servers):
    s = start(users_file, "memory", "--max-sessions", "2")
    servers.append(s)
    _, a = login(s.port, "alice")
    _, b = login(s.port, "bob")
    assert profile(s.port, a).status == 200     # bob is now the least recently used
    r, c = login(s.port, "carol")
    assert r.status == 200
    assert profile(s.port, b).status == 401
    assert profile(s.port, a).status == 200 and profile(s.port, c).status == 200
    metrics = harness.request(s.port, "GET", "/metrics").body.decode()
    assert "sessions_evicted_total 1" in metrics and 'sessions_active{store="memory"} 2' in metrics


def test_bad_input(users_file, servers):
    s = start(users_file)
    servers.append(s)
    r = harness.request(s.port, "POST", "/login", body='{"username": "alice", "password": ',
                        headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["error"] == "bad_request"
    r = harness.request(s.port, "POST", "/login", body='{"username": "alice", "password": "' + "x" * 20000 + '"}',
                        headers={"Content-Type": "application/json"})
    assert r.status == 413
    for method, path in (("POST", "/profile"), ("GET", "/logout"), ("GET", "/login"), ("PUT", "/profile")):
        r = harness.request(s.port, method, path)
        assert r.status == 405 and r.json()["error"] == "method_not_allowed", (method, path)
    # A huge Cookie header is refused by the header limit, and the server lives on.
    out = harness.raw(s.port, b"GET /profile HTTP/1.1\r\nHost: x\r\nCookie: sid=" + b"A" * 40000 +
                      b"\r\nConnection: close\r\n\r\n", read_timeout=3)
    assert out == b"" or out.split(b" ")[1][:1] == b"4", out[:200]
    r = harness.request(s.port, "GET", "/profile", headers={"Cookie": "sid=" + "A" * 3000})
    assert r.status == 401
    r = harness.request(s.port, "GET", "/profile", headers={"Cookie": 'sid="' + "A" * 43 + '"; sid=x'})
    assert r.status == 401 and r.json()["error"] == "invalid_session"
    assert harness.request(s.port, "GET", "/healthz").status == 200


def test_flags(users_file, tmp_path):
    import subprocess
    exe = harness.binary("session_server")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--store" in r.stdout and "--idle-timeout" in r.stdout
    base = [exe, "--listen", "127.0.0.1:1", "--id", "x", "--users", users_file]
    for bad in (["--store", "mysql://x"], ["--store", "redis://127.0.0.1"], ["--store", "redis://h:1/x"],
                ["--idle-timeout", "0"], ["--absolute-timeout", "-5"], ["--max-sessions", "0"],
                ["--redis-timeout", "5"], ["--bogus"]):
        r = subprocess.run(base + bad, capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (bad, r.stderr)
        assert r.stderr.strip() and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)
