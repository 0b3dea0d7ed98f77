"""Refresh tokens and log out everywhere, against real jwt_server and session_server processes
and a private redis-server: rotation, reuse detection revoking the whole family (refresh and
access tokens, on every server), exactly one winner among simultaneous refreshes, expiry,
logout, log out everywhere on three instances (JWT, Redis sessions, memory sessions), Redis
down (503, never a token) and restarted with its AOF (revocations still in force), and attacks:
token confusion, another user's refresh token, a forged family id, a refresh token in a URL."""
import base64
import hashlib
import hmac
import json
import re
import socket
import subprocess
import threading
import time

import pytest

import harness
from harness import PASSWORDS, Proc, binary, free_port

RT_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def claims(tok):
    return json.loads(b64d(tok.split(".")[1]))


def redis_cmd(redis, *args):
    """One RESP command; returns a simple reply without its type byte, or a bulk string."""
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a)
                                               for a in (x.encode() for x in args))
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
        s.sendall(out)
        lines = s.recv(65536).decode().split("\r\n")
    return lines[1] if lines[0].startswith("$") and lines[0] != "$-1" else lines[0][1:]


@pytest.fixture
def secret(tmp_path):
    path = str(tmp_path / "secret")
    subprocess.run([binary("authctl"), "keygen", "hs256", "--out", path], check=True,
                   capture_output=True, timeout=60)
    return path


@pytest.fixture
def procs():
    """Collects started servers and checks that each stops gracefully."""
    started = []
    yield started
    for p in started:
        assert p.stop() == 0, p.logs()


def jwt_cluster(procs, users, secret, redis, n=3, refresh_ttl="60", extra=()):
    """n jwt_servers sharing the secret and the Redis; returns their ports."""
    ports = []
    for i in range(n):
        port = free_port()
        args = [binary("jwt_server"), "--listen", f"127.0.0.1:{port}", "--id", f"app{i + 1}",
                "--users", users, "--secret-file", secret, "--revocation", redis.url, *extra]
        if refresh_ttl:
            args += ["--refresh-ttl", refresh_ttl]
        procs.append(Proc(args, port=port, name=f"app{i + 1}"))
        ports.append(port)
    for port in ports:
        wait_ready(port)
    return ports


def wait_ready(port, timeout=10.0):
    """Until /healthz says 200: logins need Redis, which each thread connects to after start."""
    deadline = time.monotonic() + timeout
    while harness.request(port, "GET", "/healthz").status != 200:
        assert time.monotonic() < deadline, f"{port} never became healthy"
        time.sleep(0.05)


def login(port, user="alice", headers=None):
    r = harness.request(port, "POST", "/login", {"username": user, "password": PASSWORDS[user]},
                        headers=headers)
    assert r.status == 200, r
    return r


def refresh(port, rt=None, cookie=None, path="/refresh", method="POST"):
    headers = {"Cookie": cookie} if cookie else {}
    return harness.request(port, method, path, {"refresh_token": rt} if rt else None,
                           headers=headers)


def profile(port, tok):
    return harness.request(port, "GET", "/profile", headers={"Authorization": "Bearer " + tok})


def bearer_post(port, path, tok):
    return harness.request(port, "POST", path, headers={"Authorization": "Bearer " + tok})


def assert_error(r, status, code):
    assert r.status == status and r.json()["error"] == code, r


def set_cookie(r, name):
    for v in r.headers_all("Set-Cookie"):
        if v.startswith(name + "="):
            return v
    return None


def cookie_attrs(v):
    out = {}
    for part in v.split(";")[1:]:
        k, _, val = part.strip().partition("=")
        out[k.lower()] = val if _ else None
    return out


# ---- rotation, reuse, races, expiry, logout ----

def test_rotation_gives_a_new_pair_and_spends_the_old_token(procs, users_file, secret, redis):
    a, b, c = jwt_cluster(procs, users_file, secret, redis)
    r = login(a)
    body = r.json()
    rt1 = body["refresh_token"]
    assert RT_RE.match(rt1) and body["refresh_expires_in"] == 60, body
    fam = claims(body["access_token"])["fam"]
    assert len(fam) == 22 and claims(body["access_token"])["gen"] == 0
    # Only the hash is stored: the token itself appears nowhere in Redis.
    digest = b64e(hashlib.sha256(b64d(rt1)).digest())
    assert redis_cmd(redis, "GET", "rt:" + digest) == fam
    assert redis_cmd(redis, "EXISTS", "rt:" + rt1) == "0"

    r = refresh(b, rt1)
    assert r.status == 200, r
    rt2, a2 = r.json()["refresh_token"], r.json()["access_token"]
    assert rt2 != rt1 and claims(a2)["fam"] == fam and claims(a2)["sub"] == "alice"
    assert r.json()["expires_in"] == 900 and r.header("Cache-Control") == "no-store"
    for port in (a, b, c):
        assert profile(port, a2).status == 200
    # The cookie works as well as the body, and rotates too.
    r = refresh(c, cookie="refresh_token=" + rt2)
    assert r.status == 200, r
    rt3 = r.json()["refresh_token"]
    assert set_cookie(r, "refresh_token").startswith("refresh_token=" + rt3 + ";")
    assert refresh(a, rt3).status == 200


def test_refresh_cookie_attributes(procs, users_file, secret, redis):
    (a,) = jwt_cluster(procs, users_file, secret, redis, n=1)
    r = login(a)
    at = cookie_attrs(set_cookie(r, "refresh_token"))
    assert at["path"] == "/refresh" and at["samesite"] == "Strict" and "httponly" in at, at
    assert at["max-age"] == "60" and "secure" not in at, at
    r = login(a, headers={"X-Forwarded-Proto": "https"})
    assert "secure" in cookie_attrs(set_cookie(r, "refresh_token"))
    rt = r.json()["refresh_token"]
    r = refresh(a, rt)
    assert set_cookie(r, "refresh_token") is not None
    r = bearer_post(a, "/logout", r.json()["access_token"])
    assert r.status == 200, r
    assert cookie_attrs(set_cookie(r, "refresh_token"))["max-age"] == "0"


def test_reuse_revokes_the_whole_family_everywhere(procs, users_file, secret, redis):
    ports = jwt_cluster(procs, users_file, secret, redis)
    r = login(ports[0])
    rt1, a1 = r.json()["refresh_token"], r.json()["access_token"]
    other = login(ports[0]).json()  # another login of alice: another family
    r = refresh(ports[1], rt1)  # the victim refreshes
    assert r.status == 200, r
    rt2, a2 = r.json()["refresh_token"], r.json()["access_token"]
    assert profile(ports[2], a2).status == 200

    r = refresh(ports[2], rt1)  # the thief replays the stolen, spent token
    assert_error(r, 401, "refresh_reused")
    assert "Max-Age=0" in set_cookie(r, "refresh_token")
    assert_error(refresh(ports[0], rt2), 401, "refresh_revoked")  # the victim's newest dies too
    for port in ports:
        for tok in (a1, a2):
            r = profile(port, tok)
            assert_error(r, 401, "token_revoked")
            assert 'error="invalid_token"' in r.header("WWW-Authenticate")
    # The family is denied until its last access token would expire (ttl 900 + leeway 30).
    ttl = int(redis_cmd(redis, "TTL", "fdeny:" + claims(a1)["fam"]))
    assert 900 < ttl <= 931, ttl
    # The other login is a family of its own and lives on.
    assert profile(ports[1], other["access_token"]).status == 200
    assert refresh(ports[1], other["refresh_token"]).status == 200


def test_simultaneous_refreshes_have_exactly_one_winner(procs, users_file, secret, redis):
    ports = jwt_cluster(procs, users_file, secret, redis)
    racers = 6
    for round_ in range(25):
        rt = login(ports[round_ % 3]).json()["refresh_token"]
        clients = [harness.Client(ports[i % 3]) for i in range(racers)]
        for c in clients:
            c.conn.connect()
        barrier = threading.Barrier(racers)
        results = [None] * racers

        def race(i):
            barrier.wait()
            results[i] = clients[i].request("POST", "/refresh", {"refresh_token": rt})

        threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for c in clients:
            c.close()
        statuses = sorted(r.status for r in results)
        assert statuses == [200] + [401] * (racers - 1), (round_, results)
        assert all(r.json()["error"] == "refresh_reused" for r in results if r.status == 401)


def test_expired_and_unknown_refresh_tokens(procs, users_file, secret, redis):
    (a,) = jwt_cluster(procs, users_file, secret, redis, n=1, refresh_ttl="1")
    rt = login(a).json()["refresh_token"]
    assert int(redis_cmd(redis, "PTTL", "rt:" + b64e(hashlib.sha256(b64d(rt)).digest()))) <= 1000
    time.sleep(1.3)
    assert_error(refresh(a, rt), 401, "invalid_refresh_token")
    assert_error(refresh(a, b64e(b"\0" * 32)), 401, "invalid_refresh_token")
    assert_error(refresh(a, "short"), 401, "invalid_refresh_token")
    assert_error(refresh(a), 401, "not_authenticated")
    # A token that was never issued does not touch Redis' families.
    assert redis_cmd(redis, "EXISTS", "fdeny:x") == "0"


def test_logout_revokes_the_family(procs, users_file, secret, redis):
    a, b, c = jwt_cluster(procs, users_file, secret, redis)
    r = login(a)
    r = refresh(b, r.json()["refresh_token"])
    rt2, a2 = r.json()["refresh_token"], r.json()["access_token"]
    r = bearer_post(c, "/logout", a2)
    assert r.status == 200 and r.json()["revoked"] is True, r
    assert_error(refresh(a, rt2), 401, "refresh_revoked")
    for port in (a, b, c):
        assert_error(profile(port, a2), 401, "token_revoked")


# ---- log out everywhere ----

def test_jwt_logout_all_on_three_instances(procs, users_file, secret, redis):
    ports = jwt_cluster(procs, users_file, secret, redis)
    laptop = login(ports[0]).json()
    phone = refresh(ports[1], login(ports[1]).json()["refresh_token"]).json()
    bob = login(ports[2], "bob").json()
    r = bearer_post(ports[2], "/logout/all", phone["access_token"])
    assert r.status == 200 and r.json()["revoked"] is True and r.json()["message"], r
    assert "Max-Age=0" in set_cookie(r, "access_token")
    assert "Max-Age=0" in set_cookie(r, "refresh_token")
    for port in ports:
        for dev in (laptop, phone):
            assert_error(profile(port, dev["access_token"]), 401, "token_revoked")
        assert profile(port, bob["access_token"]).status == 200
    for dev in (laptop, phone):
        assert_error(refresh(ports[0], dev["refresh_token"]), 401, "refresh_revoked")
    assert refresh(ports[0], bob["refresh_token"]).status == 200
    # A login right after the call works everywhere, refresh included.
    fresh = login(ports[1]).json()
    assert claims(fresh["access_token"])["gen"] == 1
    for port in ports:
        assert profile(port, fresh["access_token"]).status == 200
    assert refresh(ports[2], fresh["refresh_token"]).status == 200


def test_jwt_logout_all_within_one_second(procs, users_file, secret, redis):
    """iat has one-second resolution: a token from earlier in the same second as the call must
    be refused, and a login right after it (same second too) must work."""
    (a,) = jwt_cluster(procs, users_file, secret, redis, n=1, refresh_ttl=None)
    for _ in range(20):
        before = login(a).json()["access_token"]
        assert profile(a, before).status == 200
        assert bearer_post(a, "/logout/all", before).status == 200
        after = login(a).json()["access_token"]
        if claims(before)["iat"] == claims(after)["iat"]:
            break
    else:
        pytest.fail("never managed a login, log out everywhere and login within one second")
    assert_error(profile(a, before), 401, "token_revoked")
    assert profile(a, after).status == 200
    assert "fam" not in claims(after)


def test_jwt_logout_all_without_revocation_says_it_cannot(procs, users_file, secret):
    port = free_port()
    procs.append(Proc([binary("jwt_server"), "--listen", f"127.0.0.1:{port}", "--id", "app1",
                       "--users", users_file, "--secret-file", secret], port=port))
    tok = login(port).json()["access_token"]
    r = bearer_post(port, "/logout/all", tok)
    assert r.status == 200 and r.json()["revoked"] is False, r
    assert profile(port, tok).status == 200
    assert_error(bearer_post(port, "/logout/all", "x.y.z"), 401, "invalid_token")
    assert_error(refresh(port, b64e(b"1" * 32)), 404, "not_found")


def session_cluster(procs, users, store, n=3):
    ports = []
    for i in range(n):
        port = free_port()
        procs.append(Proc([binary("session_server"), "--listen", f"127.0.0.1:{port}",
                           "--id", f"app{i + 1}", "--users", users, "--store", store],
                          port=port, name=f"app{i + 1}"))
        ports.append(port)
    for port in ports:
        wait_ready(port)
    return ports


def session_login(port, user="alice"):
    r = login(port, user)
    return re.match(r"sid=([^;]*)", r.header("Set-Cookie")).group(1)


def session_get(port, sid, method="GET", path="/profile"):
    return harness.request(port, method, path, headers={"Cookie": "sid=" + sid})


def test_session_logout_all_with_redis_on_three_instances(procs, users_file, redis):
    ports = session_cluster(procs, users_file, redis.url)
    laptop, phone, bob = session_login(ports[0]), session_login(ports[1]), session_login(ports[2], "bob")
    assert redis_cmd(redis, "SCARD", "usess:alice") == "2"
    ttl = int(redis_cmd(redis, "TTL", "usess:alice"))
    assert 28790 < ttl <= 28800, ttl
    r = session_get(ports[2], phone, "POST", "/logout/all")
    assert r.status == 200, r
    assert r.json()["scope"] == "cluster" and r.json()["ended"] == 2, r
    for port in ports:
        for sid in (laptop, phone):
            assert_error(session_get(port, sid), 401, "invalid_session")
        assert session_get(port, bob).status == 200
    assert redis_cmd(redis, "EXISTS", "usess:alice") == "0"
    fresh = session_login(ports[1])
    for port in ports:
        assert session_get(port, fresh).status == 200
    # A plain logout takes its session out of the index too.
    assert session_get(ports[0], fresh, "POST", "/logout").status == 200
    assert redis_cmd(redis, "SCARD", "usess:alice") == "0"
    assert_error(session_get(ports[0], fresh, "POST", "/logout/all"), 401, "invalid_session")


def test_session_logout_all_with_memory_reaches_one_server_and_says_so(procs, users_file):
    a, b = session_cluster(procs, users_file, "memory", n=2)
    here1, here2, there = session_login(a), session_login(a), session_login(b)
    bob = session_login(a, "bob")
    r = session_get(a, here1, "POST", "/logout/all")
    assert r.status == 200, r
    body = r.json()
    assert body["scope"] == "this_server" and body["ended"] == 2, body
    assert "only" in body["message"] and "app1" in body["message"], body
    assert_error(session_get(a, here2), 401, "invalid_session")
    assert session_get(b, there).status == 200  # the other server never heard of the call
    assert session_get(a, bob).status == 200


# ---- Redis down, Redis restarted ----

def test_redis_down_is_503_and_never_a_token(procs, users_file, secret, redis):
    ports = jwt_cluster(procs, users_file, secret, redis, n=1, extra=["--redis-timeout", "300"])
    sports = session_cluster(procs, users_file, redis.url, n=1)
    r = login(ports[0]).json()
    sid = session_login(sports[0])
    redis.stop()
    r1 = refresh(ports[0], r["refresh_token"])
    assert_error(r1, 503, "store_unavailable")
    assert "access_token" not in r1.json()
    assert_error(bearer_post(ports[0], "/logout/all", r["access_token"]), 503, "store_unavailable")
    r2 = harness.request(ports[0], "POST", "/login", {"username": "alice", "password": PASSWORDS["alice"]})
    assert_error(r2, 503, "store_unavailable")
    assert_error(session_get(sports[0], sid, "POST", "/logout/all"), 503, "store_unavailable")
    redis.restart()  # without its data: the old refresh token is gone, logins work again
    deadline = time.monotonic() + 10
    while (r2 := harness.request(ports[0], "POST", "/login",
                                 {"username": "alice", "password": PASSWORDS["alice"]})).status != 200:
        assert time.monotonic() < deadline, "never recovered after Redis came back"
        time.sleep(0.2)
    assert refresh(ports[0], r2.json()["refresh_token"]).status == 200
    assert_error(refresh(ports[0], r["refresh_token"]), 401, "invalid_refresh_token")


def test_revocations_survive_a_redis_restart_with_aof(procs, users_file, secret):
    redis = harness.Redis(aof=True)
    try:
        ports = jwt_cluster(procs, users_file, secret, redis, n=2)
        stolen = login(ports[0]).json()
        newest = refresh(ports[0], stolen["refresh_token"]).json()
        assert_error(refresh(ports[1], stolen["refresh_token"]), 401, "refresh_reused")
        everywhere = login(ports[0], "bob").json()
        assert bearer_post(ports[1], "/logout/all", everywhere["access_token"]).status == 200
        redis.restart()
        deadline = time.monotonic() + 10
        while harness.request(ports[0], "GET", "/healthz").status != 200 or \
                harness.request(ports[1], "GET", "/healthz").status != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for port in ports:
            assert_error(profile(port, newest["access_token"]), 401, "token_revoked")
            assert_error(profile(port, everywhere["access_token"]), 401, "token_revoked")
        assert_error(refresh(ports[0], newest["refresh_token"]), 401, "refresh_revoked")
        assert_error(refresh(ports[1], everywhere["refresh_token"]), 401, "refresh_revoked")
        assert claims(login(ports[1], "bob").json()["access_token"])["gen"] == 1
    finally:
        for p in procs:
            p.stop()
        redis.stop()


# ---- attacks ----

def test_refresh_and_access_tokens_are_not_interchangeable(procs, users_file, secret, redis):
    (a,) = jwt_cluster(procs, users_file, secret, redis, n=1)
    body = login(a).json()
    rt, at = body["refresh_token"], body["access_token"]
    assert_error(profile(a, rt), 401, "invalid_token")
    r = harness.request(a, "GET", "/profile", headers={"Cookie": "access_token=" + rt})
    assert_error(r, 401, "invalid_token")
    assert_error(bearer_post(a, "/logout/all", rt), 401, "invalid_token")
    assert_error(refresh(a, at), 401, "invalid_refresh_token")
    assert_error(refresh(a, cookie="refresh_token=" + at), 401, "invalid_refresh_token")
    # Neither attempt spent or revoked anything.
    assert profile(a, at).status == 200
    assert refresh(a, rt).status == 200


def test_another_users_refresh_token(procs, users_file, secret, redis):
    (a,) = jwt_cluster(procs, users_file, secret, redis, n=1)
    alice, bob = login(a).json(), login(a, "bob").json()
    # Presented with alice's access cookie, bob's refresh token still yields bob's tokens only.
    r = harness.request(a, "POST", "/refresh", {"refresh_token": bob["refresh_token"]},
                        headers={"Cookie": "access_token=" + alice["access_token"]})
    assert r.status == 200 and r.json()["username"] == "bob", r
    assert claims(r.json()["access_token"])["sub"] == "bob"
    bob_rt = r.json()["refresh_token"]
    # alice logging out with bob's refresh token in the body revokes alice's family, not bob's.
    r = harness.request(a, "POST", "/logout", {"refresh_token": bob_rt},
                        headers={"Authorization": "Bearer " + alice["access_token"]})
    assert r.status == 200, r
    assert_error(refresh(a, alice["refresh_token"]), 401, "refresh_revoked")
    assert refresh(a, bob_rt).status == 200


def sign_hs256(secret_path, payload, header=None):
    with open(secret_path, "rb") as f:
        key = f.read().strip()
    header = header or {"alg": "HS256", "typ": "JWT"}
    h = b64e(json.dumps(header, separators=(",", ":")).encode())
    p = b64e(json.dumps(payload, separators=(",", ":")).encode())
    return f"{h}.{p}." + b64e(hmac.new(key, f"{h}.{p}".encode(), hashlib.sha256).digest())


def test_forged_family_id_is_refused(procs, users_file, secret, redis, tmp_path):
    (a,) = jwt_cluster(procs, users_file, secret, redis, n=1)
    victim = login(a).json()
    r = refresh(a, victim["refresh_token"])
    assert_error(refresh(a, victim["refresh_token"]), 401, "refresh_reused")  # family revoked
    stolen = r.json()["access_token"]
    h, p, s = stolen.split(".")
    # Swapping the revoked family for a live one breaks the signature.
    live = claims(login(a).json()["access_token"])["fam"]
    forged = dict(claims(stolen), fam=live)
    tok = f"{h}.{b64e(json.dumps(forged).encode())}.{s}"
    assert_error(profile(a, tok), 401, "invalid_token")
    # So does dropping the family (and with it the family's deny-list entry).
    nofam = {k: v for k, v in claims(stolen).items() if k != "fam"}
    assert_error(profile(a, f"{h}.{b64e(json.dumps(nofam).encode())}.{s}"), 401, "invalid_token")
    # Signed with another key: refused too.
    other = tmp_path / "other"
    subprocess.run([binary("authctl"), "keygen", "hs256", "--out", str(other)], check=True,
                   capture_output=True, timeout=60)
    assert_error(profile(a, sign_hs256(str(other), forged)), 401, "invalid_token")
    # Even with the real key, a family id of the wrong shape or a token without a generation
    # (which log out everywhere could never reach) is refused.
    bad = dict(forged, fam="x" * 23)
    assert_error(profile(a, sign_hs256(secret, bad, json.loads(b64d(h)))), 401, "invalid_token")
    nogen = {k: v for k, v in forged.items() if k != "gen"}
    assert_error(profile(a, sign_hs256(secret, nogen, json.loads(b64d(h)))), 401, "invalid_token")


def test_refresh_token_never_from_a_url_or_a_get(procs, users_file, secret, redis):
    (a,) = jwt_cluster(procs, users_file, secret, redis, n=1)
    rt = login(a).json()["refresh_token"]
    r = harness.request(a, "POST", "/refresh?refresh_token=" + rt)
    assert_error(r, 400, "bad_request")
    r = harness.request(a, "GET", "/refresh?refresh_token=" + rt)
    assert r.status == 405 and "POST" in r.header("Allow"), r
    r = harness.request(a, "GET", "/refresh", headers={"Cookie": "refresh_token=" + rt})
    assert r.status == 405, r
    # None of those spent the token.
    assert refresh(a, rt).status == 200


def test_refresh_ttl_needs_revocation(users_file, secret):
    r = subprocess.run([binary("jwt_server"), "--listen", "127.0.0.1:1", "--id", "x", "--users",
                        users_file, "--secret-file", secret, "--refresh-ttl", "60"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--revocation" in r.stderr, r


# ---- the load generator's refresh flow, the cluster variant ----

def metric(port, route, status):
    text = harness.request(port, "GET", "/metrics").body.decode()
    m = re.search(r'http_requests_total\{route="%s",status="%s"\} (\d+)' % (re.escape(route), status), text)
    return int(m.group(1)) if m else 0


def test_loadgen_refresh_flow(procs, users_file, secret, redis, tmp_path):
    """Virtual users refresh at 3/4 of the access token's life (ttl 2 s: every 1.5 s; a leeway of
    1 s covers the up to 1 s that iat's resolution takes off the token's life) and keep
    working on the new pair, never on a spent or revoked one."""
    ports = jwt_cluster(procs, users_file, secret, redis, n=2, extra=["--ttl", "2", "--leeway", "1"])
    creds = tmp_path / "creds.txt"
    creds.write_text("".join(f"{u}:{p}\n" for u, p in PASSWORDS.items()))
    out = tmp_path / "report.json"
    p = subprocess.run([binary("loadgen"), "--url", f"http://127.0.0.1:{ports[0]}", "--flow", "refresh",
                        "--credentials", str(creds), "--users", "3", "--concurrency", "6",
                        "--duration", "4", "--rate", "150", "--json", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    report = json.loads(out.read_text())
    assert report["auth_failures"] == 0 and report["status"].get("401", 0) == 0, report
    assert report["config"]["flow"] == "refresh" and report["logins"]["ok"] == 3, report
    # Each of 3 users refreshed at least twice in 4 s (at 1.5 s and 3 s), and no token expired.
    refreshes = metric(ports[0], "/refresh", 200)
    assert 6 <= refreshes <= 12, refreshes
    assert metric(ports[0], "/refresh", 401) == 0
    assert metric(ports[0], "/login", 200) == 3


def test_cluster_variant_jwt_refresh(tmp_path):
    script = harness.os.path.join(harness.ROOT, "scripts", "cluster.sh")
    env = dict(harness.os.environ, AUTH_BIN=harness.BIN)
    d = str(tmp_path / "c")
    r = subprocess.run([script, "up", "jwt-refresh", "--dir", d, "--quiet"], capture_output=True,
                       text=True, timeout=120, env=env)
    try:
        assert r.returncode == 0, r.stderr
        conf = dict(line.strip().split("=", 1) for line in open(d + "/cluster.env")
                    if "=" in line and not line.startswith("#"))
        port, ca = int(conf["BALANCER_PORT"].strip("'")), conf["CA"].strip("'")
        c = harness.Client(port, tls=True, cacert=ca)
        r = c.request("POST", "/login", {"username": "alice", "password": PASSWORDS["alice"]})
        assert r.status == 200 and r.json()["expires_in"] == 60, r
        assert "Secure" in set_cookie(r, "refresh_token")  # HTTPS at the balancer
        rt = r.json()["refresh_token"]
        seen = set()
        for _ in range(3):  # through every server in turn
            r = c.request("POST", "/refresh", {"refresh_token": rt})
            assert r.status == 200, r
            seen.add(r.header("X-Served-By"))
            rt = r.json()["refresh_token"]
        assert seen == {"app1", "app2", "app3"}
        tok = r.json()["access_token"]
        assert c.request("POST", "/logout/all", headers={"Authorization": "Bearer " + tok}).status == 200
        for _ in range(3):
            assert c.request("GET", "/profile", headers={"Authorization": "Bearer " + tok}).status == 401
        c.close()
    finally:
        subprocess.run([script, "down", "--dir", d], capture_output=True, timeout=120, env=env)
