"""Black-box tests of jwt_server over real sockets: login, profile by Bearer header and by
cookie, tampering, expiry, logout with and without the Redis deny-list, every thread's deny-list
series in every /metrics scrape, verify-only instances, key rotation, JWKS, and start-up
refusals."""
import base64
import collections
import json
import os
import socket
import subprocess
import time

import pytest

import harness
from harness import PASSWORDS, Proc, binary, free_port


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def keygen(tmp_path, kind, name=None):
    path = str(tmp_path / (name or kind))
    args = [binary("authctl"), "keygen", kind, "--out", path]
    if kind == "rsa":
        args += ["--bits", "2048"]
    subprocess.run(args, check=True, capture_output=True, timeout=60)
    return path


def start(users, *keyargs, extra=()):
    port = free_port()
    args = [binary("jwt_server"), "--listen", f"127.0.0.1:{port}", "--id", f"jwt-{port}",
            "--users", users, *keyargs, *extra]
    return Proc(args, port=port, name="jwt_server")


def login(port, user="alice", password=None, headers=None):
    return harness.request(port, "POST", "/login",
                           {"username": user, "password": password or PASSWORDS[user]},
                           headers=headers)


def token_of(port, user="alice"):
    r = login(port, user)
    assert r.status == 200, r
    return r.json()["access_token"]


def profile(port, token=None, cookie=None):
    headers = {}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if cookie is not None:
        headers["Cookie"] = cookie
    return harness.request(port, "GET", "/profile", headers=headers)


def assert_invalid_token(r, code="invalid_token"):
    assert r.status == 401, r
    assert r.json()["error"] == code, r
    www = r.header("WWW-Authenticate")
    assert www is not None and www.startswith("Bearer realm=") and 'error="invalid_token"' in www, r


def redis_cmd(port, *args):
    """One RESP command to a redis-server; returns the raw reply line(s)."""
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in
                                               (x.encode() for x in args))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(out)
        return s.recv(4096).decode()


@pytest.fixture
def secret(tmp_path):
    return keygen(tmp_path, "hs256", "secret")


@pytest.fixture
def hs(users_file, secret):
    p = start(users_file, "--secret-file", secret)
    yield p
    assert p.stop() == 0


def test_login_sets_token_and_cookie(hs):
    r = login(hs.port)
    assert r.status == 200, r
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["username"] == "alice"
    assert r.header("Cache-Control") == "no-store"
    assert r.header("X-Served-By") == f"jwt-{hs.port}"
    cookie = r.header("Set-Cookie")
    assert cookie.startswith("access_token=" + body["access_token"] + ";")
    for attr in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=900"):
        assert attr in cookie, cookie
    assert "Secure" not in cookie
    hdr, payload, _ = body["access_token"].split(".")
    h, c = json.loads(b64d(hdr)), json.loads(b64d(payload))
    assert h["alg"] == "HS256" and h["typ"] == "JWT" and h["kid"]
    assert set(c) == {"sub", "name", "role", "iss", "aud", "iat", "exp", "jti"}
    assert c["sub"] == "alice" and c["role"] == "admin" and c["exp"] - c["iat"] == 900
    assert len(b64d(c["jti"])) == 16
    assert c["jti"] != json.loads(b64d(token_of(hs.port).split(".")[1]))["jti"]


def test_cookie_secure_behind_https_proxy(hs):
    r = login(hs.port, headers={"X-Forwarded-Proto": "https"})
    assert r.status == 200 and "Secure" in r.header("Set-Cookie")


def test_profile_by_bearer_and_by_cookie(hs):
    tok = token_of(hs.port, "bob")
    for r in (profile(hs.port, token=tok), profile(hs.port, cookie="x=1; access_token=" + tok)):
        assert r.status == 200, r
        assert r.json() == {"username": "bob", "name": "Bob Example", "email": "bob@example.com",
                            "role": "user", "served_by": f"jwt-{hs.port}", "auth": "jwt"}
        assert r.header("Cache-Control") == "no-store"


def test_wrong_password_and_bad_requests(hs):
    r = login(hs.port, "alice", "wrong")
    assert r.status == 401 and r.json()["error"] == "invalid_credentials"
    r = login(hs.port, "nobody", "x")
    assert r.status == 401 and r.json()["error"] == "invalid_credentials"
    r = harness.request(hs.port, "POST", "/login", b"{not json",
                        headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["error"] == "bad_request"
    assert harness.request(hs.port, "GET", "/login").status == 405
    assert harness.request(hs.port, "POST", "/profile").status == 405


def test_no_token_is_not_authenticated(hs):
    r = profile(hs.port)
    assert r.status == 401 and r.json()["error"] == "not_authenticated"
    assert r.header("WWW-Authenticate") == 'Bearer realm="jwt_server"'
    r = harness.request(hs.port, "POST", "/logout")
    assert r.status == 401
    # Another scheme presents no bearer token (RFC 6750 3.1): no error code in the challenge;
    # a cookie token is still taken then.
    r = harness.request(hs.port, "GET", "/profile", headers={"Authorization": "Basic YTpi"})
    assert r.status == 401 and r.json()["error"] == "not_authenticated"
    assert r.header("WWW-Authenticate") == 'Bearer realm="jwt_server"'
    r = harness.request(hs.port, "GET", "/profile", headers={
        "Authorization": "Basic YTpi", "Cookie": "access_token=" + token_of(hs.port)})
    assert r.status == 200
    # A Bearer header that does not parse is a bad token, not a missing one.
    r = harness.request(hs.port, "GET", "/profile", headers={"Authorization": "Bearer a b"})
    assert_invalid_token(r)


def test_tampered_payload_role_admin(hs):
    tok = token_of(hs.port, "bob")
    h, p, s = tok.split(".")
    claims = json.loads(b64d(p))
    claims["role"] = "admin"
    forged = ".".join([h, b64e(json.dumps(claims).encode()), s])
    assert_invalid_token(profile(hs.port, token=forged))
    assert_invalid_token(profile(hs.port, cookie="access_token=" + forged))
    # alg none
    none = b64e(b'{"alg":"none","typ":"JWT"}') + "." + b64e(json.dumps(claims).encode()) + "."
    assert_invalid_token(profile(hs.port, token=none))
    r = profile(hs.port, token="a" * 9000)
    assert r.status in (401, 431), r
    m = harness.request(hs.port, "GET", "/metrics").body.decode()
    assert "bad_signature" in m and "alg_not_allowed" in m


def test_threads_share_the_connections_evenly(users_file, secret):
    p = start(users_file, "--secret-file", secret, extra=("--threads", "3"))
    try:
        tok = token_of(p.port)
        served = collections.Counter()
        for _ in range(60):     # a new connection each time, dealt round-robin to the threads
            r = profile(p.port, token=tok)
            assert r.status == 200, r
            served[r.header("X-Request-Id").rsplit("-", 2)[1]] += 1
        assert served == {"0": 20, "1": 20, "2": 20}, served
    finally:
        assert p.stop() == 0, p.logs()


def test_expired_token(users_file, secret):
    p = start(users_file, "--secret-file", secret, extra=["--ttl", "1", "--leeway", "0"])
    try:
        tok = token_of(p.port)
        assert profile(p.port, token=tok).status == 200
        time.sleep(2.1)
        r = profile(p.port, token=tok)
        assert_invalid_token(r, "token_expired")
        assert "expired" in r.header("WWW-Authenticate")
    finally:
        assert p.stop() == 0


def test_logout_without_revocation_keeps_token_valid(hs):
    tok = token_of(hs.port)
    r = harness.request(hs.port, "POST", "/logout", headers={"Authorization": "Bearer " + tok})
    assert r.status == 200, r
    body = r.json()
    assert body["revoked"] is False and "stays valid until" in body["message"]
    assert "Max-Age=0" in r.header("Set-Cookie")
    # The lesson: the token still works everywhere until it expires.
    assert profile(hs.port, token=tok).status == 200


def test_logout_with_revocation(users_file, secret, redis):
    a = start(users_file, "--secret-file", secret, extra=["--revocation", redis.url])
    b = start(users_file, "--secret-file", secret, extra=["--revocation", redis.url])
    try:
        tok = token_of(a.port)
        other = token_of(a.port)
        assert profile(b.port, token=tok).status == 200
        r = harness.request(a.port, "POST", "/logout", headers={"Cookie": "access_token=" + tok})
        assert r.status == 200 and r.json()["revoked"] is True, r
        for port in (a.port, b.port):
            assert_invalid_token(profile(port, token=tok), "token_revoked")
        assert profile(b.port, token=other).status == 200
        jti = json.loads(b64d(tok.split(".")[1]))["jti"]
        ttl = int(redis_cmd(int(redis.url.rsplit(":", 1)[1]), "TTL", "deny:" + jti)[1:])
        assert 900 < ttl <= 930, ttl
    finally:
        assert a.stop() == 0 and b.stop() == 0


@pytest.mark.parametrize("extra", [[], ["--refresh-ttl", "60"]], ids=["deny", "deny+family"])
def test_logout_refused_by_redis_is_503_and_revokes_nothing(users_file, secret, redis, extra):
    """Redis answers reads but refuses writes (OOM under noeviction): the logout must not
    claim a revocation that never happened, and the token keeps working until a retry succeeds."""
    rport = int(redis.url.rsplit(":", 1)[1])
    p = start(users_file, "--secret-file", secret, extra=["--revocation", redis.url, *extra])
    try:
        tok = token_of(p.port)
        assert redis_cmd(rport, "CONFIG", "SET", "maxmemory-policy", "noeviction") == "+OK\r\n"
        assert redis_cmd(rport, "CONFIG", "SET", "maxmemory", "1") == "+OK\r\n"
        assert profile(p.port, token=tok).status == 200     # reads still answered
        r = harness.request(p.port, "POST", "/logout", headers={"Authorization": "Bearer " + tok})
        assert r.status == 503 and r.json()["error"] == "store_unavailable", r
        assert "revoked" not in r.json() and r.header("Set-Cookie") is None, r
        assert "OOM command not allowed" in p.logs(), p.logs()
        assert profile(p.port, token=tok).status == 200
        assert redis_cmd(rport, "CONFIG", "SET", "maxmemory", "0") == "+OK\r\n"
        r = harness.request(p.port, "POST", "/logout", headers={"Authorization": "Bearer " + tok})
        assert r.status == 200 and r.json()["revoked"] is True, r
        assert_invalid_token(profile(p.port, token=tok), "token_revoked")
    finally:
        assert p.stop() == 0


def test_redis_down_is_503_never_valid(users_file, secret, redis):
    p = start(users_file, "--secret-file", secret,
              extra=["--revocation", redis.url, "--redis-timeout", "300"])
    try:
        tok = token_of(p.port)
        assert profile(p.port, token=tok).status == 200
        time.sleep(1.1)     # token times have a one-second resolution
        redis.stop()
        r = profile(p.port, token=tok)
        assert r.status == 503 and r.json()["error"] == "store_unavailable", r
        r = harness.request(p.port, "POST", "/logout", headers={"Authorization": "Bearer " + tok})
        assert r.status == 503, r
        assert harness.request(p.port, "GET", "/healthz").status == 503
        redis.restart()     # without its data: the deny-list fails closed
        deadline = time.monotonic() + 10
        while (r := profile(p.port, token=tok)).status == 503:
            assert time.monotonic() < deadline, "never recovered after Redis came back"
            time.sleep(0.2)
        assert r.status == 401 and r.json()["error"] == "token_revoked", r
        assert profile(p.port, token=token_of(p.port)).status == 200
        assert harness.request(p.port, "GET", "/healthz").status == 200
    finally:
        assert p.stop() == 0


def test_metrics_show_every_thread_in_every_scrape(users_file, secret, redis):
    p = start(users_file, "--secret-file", secret,
              extra=["--revocation", redis.url, "--threads", "2", "--redis-timeout", "300"])
    both_up = {"0": 1, "1": 1}
    try:
        harness.wait_metrics(p.port, lambda m: harness.by_thread(m, "jwt_denylist_up") == both_up)
        tok = token_of(p.port)
        for _ in range(10):     # a new connection each time: the threads take turns
            assert profile(p.port, token=tok).status == 200
        answered = set()
        for _ in range(10):
            thread, m = harness.scrape(p.port)     # one # TYPE per family, samples together
            answered.add(thread)
            assert harness.by_thread(m, "jwt_denylist_up") == both_up, m
            for name in ("jwt_denylist_failed_total", "jwt_denylist_refused_total"):
                assert set(harness.by_thread(m, name)) == {"0", "1"}, (name, m)
        assert answered == {"0", "1"}, answered
        redis.kill()
        harness.wait_metrics(p.port, lambda m: harness.by_thread(m, "jwt_denylist_up") ==
                             {"0": 0, "1": 0})
        for _ in range(10):
            assert profile(p.port, token=tok).status == 503
        _, m = harness.scrape(p.port)
        assert sum(harness.by_thread(m, "jwt_denylist_refused_total").values()) >= 10, m
    finally:
        assert p.stop() == 0


@pytest.mark.parametrize("kind", ["es256", "ed25519", "rsa"])
def test_verify_only_instance_and_jwks(tmp_path, users_file, kind):
    key = keygen(tmp_path, kind)
    signer = start(users_file, "--key", key)
    verifier = start(users_file, "--verify-key", key + ".pub")
    try:
        tok = token_of(signer.port, "carol")
        r = profile(verifier.port, token=tok)
        assert r.status == 200 and r.json()["served_by"] == f"jwt-{verifier.port}", r
        r = login(verifier.port, "carol")
        assert r.status == 503 and r.json()["error"] == "cannot_issue"
        jwks = harness.request(signer.port, "GET", "/.well-known/jwks.json").json()
        kid = json.loads(b64d(tok.split(".")[0]))["kid"]
        assert [k["kid"] for k in jwks["keys"]] == [kid]
        assert all("d" not in k and "p" not in k for k in jwks["keys"])
        assert harness.request(verifier.port, "GET", "/.well-known/jwks.json").json() == jwks
    finally:
        assert signer.stop() == 0 and verifier.stop() == 0


def test_key_rotation_and_foreign_keys(tmp_path, users_file, secret):
    old, new, stranger = (keygen(tmp_path, "es256", n) for n in ("old", "new", "stranger"))
    a = start(users_file, "--key", old)
    b = start(users_file, "--key", new, "--verify-key", old + ".pub")
    c = start(users_file, "--key", stranger)
    d = start(users_file, "--secret-file", secret)
    try:
        told, tnew = token_of(a.port), token_of(b.port)
        assert profile(b.port, token=told).status == 200
        assert profile(b.port, token=tnew).status == 200
        assert_invalid_token(profile(a.port, token=tnew))     # unknown kid
        assert_invalid_token(profile(b.port, token=token_of(c.port)))
        assert_invalid_token(profile(b.port, token=token_of(d.port)))  # HS256 not allowed
        assert harness.request(d.port, "GET", "/.well-known/jwks.json").json() == {"keys": []}
    finally:
        for p in (a, b, c, d):
            assert p.stop() == 0


def test_user_removed_after_login(tmp_path, secret):
    full = harness.make_users(str(tmp_path / "all.json"))
    fewer = harness.make_users(str(tmp_path / "fewer.json"), users=("alice",))
    a = start(full, "--secret-file", secret)
    b = start(fewer, "--verify-key", secret)
    try:
        assert profile(b.port, token=token_of(a.port, "alice")).status == 200
        assert_invalid_token(profile(b.port, token=token_of(a.port, "bob")))
    finally:
        assert a.stop() == 0 and b.stop() == 0


def test_issuer_and_audience_must_match(users_file, secret):
    a = start(users_file, "--secret-file", secret, extra=["--audience", "shop"])
    b = start(users_file, "--secret-file", secret, extra=["--issuer", "elsewhere"])
    c = start(users_file, "--secret-file", secret)
    try:
        tok = token_of(c.port)
        assert_invalid_token(profile(a.port, token=tok))
        assert_invalid_token(profile(b.port, token=tok))
    finally:
        for p in (a, b, c):
            assert p.stop() == 0


def run_server(users, *args):
    port = free_port()
    return subprocess.run([binary("jwt_server"), "--listen", f"127.0.0.1:{port}", "--id", "x",
                           "--users", users, *args], capture_output=True, text=True, timeout=30)


def test_startup_refusals(tmp_path, users_file):
    short = tmp_path / "short"
    short.write_text("x" * 31)
    r = run_server(users_file, "--secret-file", str(short))
    assert r.returncode != 0 and "32 bytes" in r.stderr
    pub = keygen(tmp_path, "es256") + ".pub"
    r = run_server(users_file, "--secret-file", pub)
    assert r.returncode != 0 and "PEM" in r.stderr
    r = run_server(users_file, "--key", pub)
    assert r.returncode != 0 and "cannot sign" in r.stderr
    weak = tmp_path / "weak.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                    "-out", str(weak)], check=True, capture_output=True, timeout=60)
    r = run_server(users_file, "--key", str(weak))
    assert r.returncode != 0 and "2048" in r.stderr
    r = run_server(users_file)
    assert r.returncode == 2 and "key" in r.stderr
    r = run_server(users_file, "--secret-file", str(short), "--ttl", "0")
    assert r.returncode == 2
    r = run_server(users_file, "--verify-key", pub, "--revocation", "http://x")
    assert r.returncode == 2
    r = subprocess.run([binary("jwt_server"), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--secret-file" in r.stdout
