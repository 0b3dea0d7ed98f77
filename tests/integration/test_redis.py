"""Redis run the way production runs it, against real redis-server processes (each in its own
temp dir on a free port): AUTH with a password file, REDISCLI_AUTH or an ACL user, a wrong
password (503 store_unavailable and a log line, never 401), a password in the URL refused, the
deny-list marker that makes revocation fail closed when Redis loses its data, the append-only
file keeping sessions and revocations across a restart, and WAIT for replicas after a login."""
import json
import os
import subprocess
import tempfile
import time

import pytest

import harness
from harness import PASSWORDS, Proc, binary, free_port

PASSWORD = "correct horse battery staple"


class AuthRedis(Proc):
    """A redis-server with a password (in its 0600 config file, not on its command line)."""

    def __init__(self, aof=False, port=None, dir=None, extra=""):
        self.dir = dir or tempfile.mkdtemp(prefix="redis-auth-")
        self.port = port or free_port()
        self.aof, self.extra = aof, extra
        conf = os.path.join(self.dir, "redis.conf")
        with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f'port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nsave ""\n'
                    f'requirepass "{PASSWORD}"\n'
                    f'appendonly {"yes" if aof else "no"}\nappendfsync everysec\n{extra}')
        super().__init__(["redis-server", conf], port=self.port, name="redis")
        self.url = f"redis://127.0.0.1:{self.port}"

    def cli(self, *args):
        env = dict(os.environ, REDISCLI_AUTH=PASSWORD)
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                           text=True, timeout=10, env=env)
        return r.stdout.strip()

    def restart(self, wipe=False):
        """Stops (SIGTERM: the AOF is flushed) and starts again on the same port and dir."""
        assert self.stop() == 0
        if wipe:
            for name in os.listdir(self.dir):
                if name != "redis.conf":
                    subprocess.run(["rm", "-rf", os.path.join(self.dir, name)], check=True)
        AuthRedis.__init__(self, self.aof, self.port, self.dir, self.extra)


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


@pytest.fixture
def procs():
    """Processes a test starts; all stopped afterwards, each with a clean exit and log."""
    started = []
    yield started
    failed = []
    for p in reversed(started):
        if p.stop() != 0 or any(m in p.logs() for m in SANITIZER_MARKS):
            failed.append(f"{p.name} exited {p.p.returncode}:\n{p.logs()[-3000:]}")
    assert not failed, "\n".join(failed)


@pytest.fixture
def pwfile(tmp_path):
    path = str(tmp_path / "redis-password")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(PASSWORD + "\n")
    return path


@pytest.fixture
def secret(tmp_path):
    path = str(tmp_path / "secret")
    subprocess.run([binary("authctl"), "keygen", "hs256", "--out", path], check=True,
                   capture_output=True, timeout=30)
    return path


def session_server(users, url, *extra, env=None):
    port = free_port()
    return Proc([binary("session_server"), "--listen", f"127.0.0.1:{port}", "--id", f"s{port}",
                 "--users", users, "--store", url, *extra], port=port, env=env, name="session_server")


def jwt_server(users, secret, url, *extra, env=None):
    port = free_port()
    return Proc([binary("jwt_server"), "--listen", f"127.0.0.1:{port}", "--id", f"j{port}",
                 "--users", users, "--secret-file", secret, "--revocation", url, *extra],
                port=port, env=env, name="jwt_server")


def wait_health(port, status, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        r = harness.request(port, "GET", "/healthz")
        if r.status == status or time.monotonic() > deadline:
            assert r.status == status, r
            return r
        time.sleep(0.05)


def login(port, user="alice"):
    return harness.request(port, "POST", "/login", {"username": user, "password": PASSWORDS[user]})


def sid_of(r):
    for v in r.headers_all("Set-Cookie"):
        if v.startswith("sid=") and len(v.split(";")[0]) > 4:
            return v.split(";")[0][4:]
    raise AssertionError(f"no sid in {r}")


def session_profile(port, sid):
    return harness.request(port, "GET", "/profile", headers={"Cookie": f"sid={sid}"})


def bearer(port, token, path="/profile", method="GET"):
    return harness.request(port, method, path, headers={"Authorization": f"Bearer {token}"})


def test_auth_with_a_password_file_and_with_redis_cli_auth(users_file, pwfile, procs):
    redis = AuthRedis()
    procs.append(redis)
    s = session_server(users_file, redis.url, "--redis-password-file", pwfile)
    procs.append(s)
    wait_health(s.port, 200)
    r = login(s.port)
    assert r.status == 200, r
    assert session_profile(s.port, sid_of(r)).json()["username"] == "alice"
    # The session is really in the password-protected Redis.
    assert len(redis.cli("KEYS", "sess:*").split()) == 1
    s2 = session_server(users_file, redis.url, env=dict(os.environ, REDISCLI_AUTH=PASSWORD))
    procs.append(s2)
    wait_health(s2.port, 200)
    assert session_profile(s2.port, sid_of(r)).json()["username"] == "alice"


def test_wrong_or_missing_password_is_503_with_a_log_line_never_401(users_file, tmp_path, secret,
                                                                  pwfile, procs):
    redis = AuthRedis()
    procs.append(redis)
    wrong = str(tmp_path / "wrong")
    with open(os.open(wrong, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write("not the password\n")
    s = session_server(users_file, redis.url, "--redis-password-file", wrong)
    nopw = session_server(users_file, redis.url, env={k: v for k, v in os.environ.items()
                                                      if k != "REDISCLI_AUTH"})
    j = jwt_server(users_file, secret, redis.url, "--redis-password-file", wrong)
    procs += [s, nopw, j]
    for p in (s, nopw, j):
        wait_health(p.port, 503)
    for port in (s.port, nopw.port):
        r = login(port)
        assert r.status == 503 and r.json()["error"] == "store_unavailable", r
        r = session_profile(port, "A" * 43)
        assert r.status == 503 and r.json()["error"] == "store_unavailable", r
    r = login(j.port)
    assert r.status == 503 and r.json()["error"] == "store_unavailable", r
    good = jwt_server(users_file, secret, redis.url, "--redis-password-file", pwfile)
    procs.append(good)
    wait_health(good.port, 200)
    r = bearer(j.port, login(good.port).json()["access_token"])   # valid, but cannot be checked
    assert r.status == 503 and r.json()["error"] == "store_unavailable", r
    time.sleep(0.3)
    for p in (s, j):
        assert "AUTH failed: WRONGPASS" in p.logs(), p.logs()
    assert "NOAUTH" in nopw.logs(), nopw.logs()
    assert PASSWORD not in s.logs() + j.logs()


def test_acl_user_named_in_the_url(users_file, pwfile, procs):
    # The default user's password is different: only USER@ with the file's password gets in.
    redis = AuthRedis()
    procs.append(redis)
    assert redis.cli("ACL", "SETUSER", "app", "on", ">" + PASSWORD, "~*", "+@all") == "OK"
    assert redis.cli("CONFIG", "SET", "requirepass", "other-password-entirely") == "OK"
    host = redis.url[len("redis://"):]
    s = session_server(users_file, f"redis://app@{host}", "--redis-password-file", pwfile)
    bad = session_server(users_file, f"redis://nobody@{host}", "--redis-password-file", pwfile)
    procs += [s, bad]
    wait_health(s.port, 200)
    r = login(s.port)
    assert r.status == 200 and session_profile(s.port, sid_of(r)).status == 200
    wait_health(bad.port, 503)
    assert "AUTH failed" in bad.logs()


@pytest.mark.parametrize("url", ["redis://:hunter2secret@127.0.0.1:6379",
                                 "redis://app:hunter2secret@127.0.0.1:6379/1",
                                 "redis-sentinel://app:hunter2secret@127.0.0.1:26379#auth"])
def test_a_password_in_the_url_is_refused_without_echoing_it(users_file, secret, url):
    for args in (["session_server", "--store", url],
                 ["jwt_server", "--secret-file", secret, "--revocation", url]):
        r = subprocess.run([binary(args[0]), "--listen", f"127.0.0.1:{free_port()}", "--id", "x",
                            "--users", users_file, *args[1:]], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 2, r
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "password" in lines[0] and "--redis-password-file" in lines[0]
        assert "hunter2secret" not in r.stderr + r.stdout


def test_deny_list_marker_lost_refuses_older_tokens_and_accepts_fresh_ones(users_file, pwfile,
                                                                            secret, procs):
    redis = AuthRedis()            # no persistence: a restart loses everything
    procs.append(redis)
    a = jwt_server(users_file, secret, redis.url, "--redis-password-file", pwfile)
    b = jwt_server(users_file, secret, redis.url, "--redis-password-file", pwfile)
    procs += [a, b]
    wait_health(a.port, 200)
    wait_health(b.port, 200)
    assert redis.cli("EXISTS", "denylist:since") == "1"
    kept = login(a.port).json()["access_token"]
    revoked = login(a.port).json()["access_token"]
    assert bearer(b.port, revoked, "/logout", "POST").status == 200
    assert bearer(a.port, revoked).status == 401
    assert bearer(b.port, kept).status == 200
    time.sleep(1.1)                 # the marker has a resolution of one second
    redis.restart(wipe=True)        # the deny-list is gone, revoked token included
    for p in (a, b):
        wait_health(p.port, 200)
        for tok in (kept, revoked):  # both pre-loss tokens now fail closed
            r = bearer(p.port, tok)
            assert r.status == 401 and r.json()["error"] == "token_revoked", r
    assert "lost the list" in a.logs() + b.logs()
    fresh = login(b.port).json()["access_token"]
    assert bearer(a.port, fresh).status == 200 and bearer(b.port, fresh).status == 200
    # The same when the data goes without a reconnect (FLUSHALL): the next check notices.
    time.sleep(1.1)
    redis.cli("FLUSHALL")
    r = bearer(a.port, fresh)
    assert r.status == 401 and r.json()["error"] == "token_revoked", r
    newer = login(a.port).json()["access_token"]
    assert bearer(b.port, newer).status == 200


def test_restart_with_aof_keeps_sessions_revocations_and_the_marker(users_file, pwfile, secret,
                                                                    procs):
    redis = AuthRedis(aof=True)
    procs.append(redis)
    s = session_server(users_file, redis.url, "--redis-password-file", pwfile)
    j = jwt_server(users_file, secret, redis.url, "--redis-password-file", pwfile)
    procs += [s, j]
    wait_health(s.port, 200)
    wait_health(j.port, 200)
    sid = sid_of(login(s.port))
    kept = login(j.port).json()["access_token"]
    revoked = login(j.port).json()["access_token"]
    assert bearer(j.port, revoked, "/logout", "POST").status == 200
    time.sleep(1.1)
    redis.restart()
    wait_health(s.port, 200)
    wait_health(j.port, 200)
    assert session_profile(s.port, sid).json()["username"] == "alice"
    r = bearer(j.port, revoked)
    assert r.status == 401 and r.json()["error"] == "token_revoked", r
    assert bearer(j.port, kept).status == 200   # the marker survived: nothing fails closed


def test_redis_wait_confirms_logins_only_when_a_replica_has_them(users_file, pwfile, procs):
    master = AuthRedis(aof=True)
    procs.append(master)
    s = session_server(users_file, master.url, "--redis-password-file", pwfile,
                       "--redis-wait", "1:1500", "--redis-timeout", "3000")   # a busy machine
    procs.append(s)
    wait_health(s.port, 200)
    r = login(s.port)              # no replica yet: WAIT 1 times out
    assert r.status == 503 and r.json()["error"] == "store_unavailable", r
    assert "0 of 1 replicas" in s.logs()
    replica = AuthRedis(extra=f'masterauth "{PASSWORD}"\nreplicaof 127.0.0.1 {master.port}\n')
    procs.append(replica)
    deadline = time.monotonic() + 10
    while "master_link_status:up" not in replica.cli("INFO", "replication"):
        assert time.monotonic() < deadline, replica.cli("INFO", "replication")
        time.sleep(0.1)
    r = login(s.port)
    assert r.status == 200, r
    key = master.cli("KEYS", "sess:*").split("\n")[0]
    assert replica.cli("EXISTS", key) == "1"   # on the replica before the login was answered


def test_flags(users_file, tmp_path):
    base = [binary("session_server"), "--listen", f"127.0.0.1:{free_port()}", "--id", "x",
            "--users", users_file, "--store", "redis://127.0.0.1:1"]
    for extra, want in ((["--redis-wait", "0"], "--redis-wait"),
                        (["--redis-wait", "1:2000"], "below --redis-timeout"),
                        (["--redis-password-file", str(tmp_path / "missing")], "--redis-password-file")):
        r = subprocess.run(base + extra, capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and want in r.stderr and len(r.stderr.strip().splitlines()) == 1, r
    r = subprocess.run([binary("session_server"), "--help"], capture_output=True, text=True, timeout=10)
    assert "--redis-password-file" in r.stdout and "redis-sentinel://" in r.stdout
    r = subprocess.run([binary("jwt_server"), "--help"], capture_output=True, text=True, timeout=10)
    assert "--redis-password-file" in r.stdout and "redis-sentinel://" in r.stdout


class Sentinel(Proc):
    """A redis-server --sentinel watching master_port as "auth", with short timings."""

    def __init__(self, master_port, port=None):
        self.dir = tempfile.mkdtemp(prefix="sentinel-")
        port = port or free_port()
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f'port {port}\nbind 127.0.0.1\ndir {self.dir}\nrequirepass "{PASSWORD}"\n'
                    f"sentinel monitor auth 127.0.0.1 {master_port} 1\n"
                    f'sentinel auth-pass auth "{PASSWORD}"\n'
                    "sentinel down-after-milliseconds auth 1000\n")
        super().__init__(["redis-server", conf, "--sentinel"], port=port, name="sentinel")


def test_sentinel_unreachable_at_start_is_503_then_service_starts_by_itself(users_file, pwfile,
                                                                          secret, procs):
    ports = [free_port(), free_port()]
    url = f"redis-sentinel://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}#auth"
    s = session_server(users_file, url, "--redis-password-file", pwfile)
    j = jwt_server(users_file, secret, url, "--redis-password-file", pwfile)
    procs += [s, j]
    wait_health(s.port, 503)
    wait_health(j.port, 503)
    r = login(s.port)
    assert r.status == 503 and r.json()["error"] == "store_unavailable", r
    r = login(j.port)
    assert r.status == 503 and r.json()["error"] == "store_unavailable", r
    master = AuthRedis()
    procs.append(master)
    procs.append(Sentinel(master.port, port=ports[1]))   # only the second sentinel ever comes
    wait_health(s.port, 200, timeout=15)
    wait_health(j.port, 200, timeout=15)
    r = login(s.port)
    assert r.status == 200 and session_profile(s.port, sid_of(r)).status == 200
    assert bearer(j.port, login(j.port).json()["access_token"]).status == 200
    assert f"master auth is 127.0.0.1:{master.port}" in s.logs()
    assert master.cli("DBSIZE") != "0"


@pytest.mark.parametrize("wait", [0, 1])
def test_failover_drill_under_four_clients(tmp_path, wait):
    """scripts/failover_drill.py: SIGKILL the master of a session-redis-ha cluster under load."""
    out = tmp_path / "drill.json"
    r = subprocess.run([os.path.join(harness.ROOT, "scripts", "failover_drill.py"), "--clients", "4",
                        "--wait", str(wait), "--json", str(out), "--dir", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, AUTH_BIN=harness.BIN))
    print(r.stdout)
    res = json.loads(out.read_text())
    assert res["errors_after_kill"] > 0, res           # the kill was felt by the clients
    assert set(res["status"]) <= {"200", "503"}, res   # an outage is 503, never 401
    assert res["recovered"] and res["unavailable_s"] <= 15, res
    assert res["killed_master"] != res["new_master"], res
    assert res["sessions_before_kill"] > 0, res
    if wait:
        assert res["sessions_lost"] == 0, res
    assert r.returncode == 0, r.stdout + r.stderr
    for dirpath, _, files in os.walk(tmp_path / "run" / "logs"):
        for name in files:
            with open(os.path.join(dirpath, name), errors="replace") as f:
                text = f.read()
            assert not any(m in text for m in SANITIZER_MARKS), f"{name}:\n{text[-3000:]}"


def test_jwt_revoke_ha_follows_a_manual_failover_and_keeps_the_deny_list(tmp_path):
    """cluster.sh jwt-revoke-ha; SENTINEL FAILOVER demotes the live master (no kill): the servers
    must leave it for the promoted replica by themselves, and revocations must survive."""
    rundir = str(tmp_path / "run")
    cluster = os.path.join(harness.ROOT, "scripts", "cluster.sh")
    env = dict(os.environ, AUTH_BIN=harness.BIN, CLUSTER_LN="4")
    subprocess.run([cluster, "up", "jwt-revoke-ha", "--instances", "2", "--dir", rundir, "--quiet"],
                   check=True, env=env, timeout=180, capture_output=True)
    try:
        with open(os.path.join(rundir, "cluster.env")) as f:
            cenv = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        ports = [int(cenv[f"SERVER_app{i}"].rsplit(":", 1)[1]) for i in (1, 2)]
        assert os.stat(cenv["REDIS_PASSWORD_FILE"]).st_mode & 0o777 == 0o600
        assert os.stat(os.path.dirname(cenv["REDIS_PASSWORD_FILE"])).st_mode & 0o077 == 0
        sentinel = cenv["REDIS_URL"].split("//")[1].split(",")[0].rsplit(":", 1)[1]
        with open(cenv["REDIS_PASSWORD_FILE"]) as f:
            pw = f.read().strip()

        def sentinel_cli(*args):
            return subprocess.run(["redis-cli", "-p", sentinel, *args], capture_output=True, text=True,
                                  timeout=10, env=dict(os.environ, REDISCLI_AUTH=pw)).stdout.split()

        kept = login(ports[0]).json()["access_token"]
        revoked = login(ports[0]).json()["access_token"]
        assert bearer(ports[1], revoked, "/logout", "POST").status == 200
        old = sentinel_cli("SENTINEL", "get-master-addr-by-name", "auth")
        time.sleep(1)               # let the replicas acknowledge the writes
        assert sentinel_cli("SENTINEL", "FAILOVER", "auth") == ["OK"]
        deadline = time.monotonic() + 15
        while sentinel_cli("SENTINEL", "get-master-addr-by-name", "auth") == old:
            assert time.monotonic() < deadline, "no failover"
            time.sleep(0.1)
        new = sentinel_cli("SENTINEL", "get-master-addr-by-name", "auth")
        # The sentinels demote the old master a moment after promoting the new one (and close
        # its client connections); ROLE, READONLY or the closed connection send us over.
        for i, port in enumerate(ports, 1):
            deadline = time.monotonic() + 15
            while f"master auth is {new[0]}:{new[1]}" not in open(
                    os.path.join(rundir, "logs", f"app{i}.log")).read():
                assert time.monotonic() < deadline, "the server did not follow the failover"
                bearer(port, kept)
                time.sleep(0.1)
            deadline = time.monotonic() + 5
            while (r := bearer(port, kept)).status == 503:
                assert time.monotonic() < deadline, r
                time.sleep(0.1)
            assert r.status == 200, r
            r = bearer(port, revoked)
            assert r.status == 401 and r.json()["error"] == "token_revoked", r
            # Writes work, so the connection is on the new master, not the demoted one.
            fresh = login(port).json()["access_token"]
            assert bearer(port, fresh, "/logout", "POST").status == 200
    finally:
        subprocess.run([cluster, "down", "--dir", rundir], env=env, timeout=120, capture_output=True)
