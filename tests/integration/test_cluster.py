"""scripts/cluster.sh: every variant comes up behind our balancer, HAProxy and nginx; real HTTPS
requests through it show per-request round robin (memory sessions fail on the hops, Redis
sessions and JWTs do not), stickiness, failover after stop-server; `down` and Ctrl-C during `up`
leave nothing running; bad arguments and a server that cannot start are reported."""
import base64
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter

import pytest

import harness

SCRIPT = os.path.join(harness.ROOT, "scripts", "cluster.sh")
TIMEOUT = 180 if harness.SANITIZED else 90
VARIANTS = ["session-memory", "session-sticky", "session-redis", "jwt-hs256", "jwt-es256",
            "jwt-hs256-revoke"]
BALANCERS = ["ours", "haproxy", "nginx"]
# Passwords that cluster.sh gives the demo users (also in the run dir's credentials.txt).
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password"}


def cluster(*args, env=None, check=True):
    e = dict(os.environ, AUTH_BIN=harness.BIN)
    e.update(env or {})
    r = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=TIMEOUT, env=e)
    if check:
        assert r.returncode == 0, f"cluster.sh {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def read_env(d):
    env = {}
    with open(os.path.join(d, "cluster.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                env[k] = v.strip("'")
    return env


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def started_pids(env):
    """Every process the cluster started, nginx's workers included."""
    pids = [int(v) for k, v in env.items() if k.startswith("PID_")]
    return pids + children(int(env["PID_balancer"]))


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_reports(root):
    """Sanitizer reports in any log under root (the servers' stderr goes to RUNDIR/logs)."""
    found = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".log"):
                with open(os.path.join(dirpath, name), errors="replace") as f:
                    text = f.read()
                if any(m in text for m in SANITIZER_MARKS):
                    found.append(f"{os.path.join(dirpath, name)}:\n{text[-3000:]}")
    return found


def need(balancer):
    if balancer != "ours" and shutil.which(balancer) is None:
        pytest.skip(f"{balancer} is not installed")
    prog = {"ours": "balancer"}.get(balancer)
    if prog and not os.access(harness.binary(prog), os.X_OK):
        pytest.skip(f"{prog} is not built")


def client(env):
    return harness.Client(int(env["BALANCER_PORT"]), tls=True, cacert=env["CA"])


def login(c, user="alice"):
    r = c.request("POST", "/login", {"username": user, "password": PASSWORDS[user]})
    assert r.status == 200, r
    return r


def sid_of(r):
    for v in r.headers_all("Set-Cookie"):
        if v.startswith("sid="):
            return v.split(";")[0][4:]
    raise AssertionError(f"no sid cookie in {r}")


def profiles(c, count, headers):
    """count GET /profile over one keep-alive connection: [(server, status)]."""
    out = []
    for _ in range(count):
        r = c.request("GET", "/profile", headers=headers)
        out.append((r.header("X-Served-By"), r.status))
    return out


def claims(token, part=1):
    p = token.split(".")[part]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


@pytest.fixture
def up(tmp_path):
    """Starts a cluster; always takes it down again and checks nothing is left running."""
    dirs = []

    def start(variant, balancer="ours", instances=3, extra=()):
        d = str(tmp_path / f"{variant}-{balancer}")
        r = cluster("up", variant, "--balancer", balancer, "--instances", str(instances), "--dir", d, *extra)
        dirs.append(d)
        env = read_env(d)
        env["_stdout"] = r.stdout
        return env

    yield start
    for d in dirs:
        env = read_env(d)
        pids = started_pids(env)
        cluster("down", "--dir", d)
        left = [p for p in pids if alive(p)]
        assert not left, f"still running after down: {left}"
        assert not sanitizer_reports(d)


@pytest.mark.parametrize("balancer", BALANCERS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_through_balancer(up, variant, balancer):
    need(balancer)
    n = 3
    env = up(variant, balancer, n)
    names = env["SERVERS"].split(",")
    assert names == ["app1", "app2", "app3"]
    assert env["BALANCER_URL"] == f"https://127.0.0.1:{env['BALANCER_PORT']}"
    for pid in started_pids(env):
        assert alive(pid)
    assert ("PID_redis" in env) == (variant in ("session-redis", "jwt-hs256-revoke"))
    with open(env["CREDENTIALS"]) as f:
        assert sorted(f.read().split()) == sorted(f"{u}:{p}" for u, p in PASSWORDS.items())

    c = client(env)
    r = login(c)
    home = r.header("X-Served-By")
    assert home in names
    if variant.startswith("session"):
        headers = {"Cookie": f"sid={sid_of(r)}"}
        if variant == "session-sticky":
            # Keep the balancer's affinity cookie (ours or HAProxy's); nginx pins by address.
            extra = [v.split(";")[0] for v in r.headers_all("Set-Cookie") if not v.startswith("sid=")]
            if balancer != "nginx":
                assert extra, f"the sticky balancer set no cookie: {r}"
            headers["Cookie"] = "; ".join([headers["Cookie"], *extra])
    else:
        token = r.json()["access_token"]
        assert claims(token, 0)["alg"] == ("ES256" if variant == "jwt-es256" else "HS256")
        headers = {"Authorization": f"Bearer {token}"}
    seen = profiles(c, 3 * n, headers)
    per_server = Counter(s for s, _ in seen)

    if variant == "session-memory":
        # Per-request round robin even on one keep-alive connection: every server gets its
        # third, and only the server that created the session knows it.
        assert per_server == Counter({s: 3 for s in names}), seen
        assert all(st == (200 if s == home else 401) for s, st in seen), seen
        assert all(seen[i][0] != seen[i + 1][0] for i in range(len(seen) - 1)), seen
    elif variant == "session-sticky":
        assert seen == [(home, 200)] * (3 * n), seen
    else:
        assert per_server == Counter({s: 3 for s in names}), seen
        assert all(st == 200 for _, st in seen), seen

    if variant == "jwt-hs256-revoke":
        assert c.request("POST", "/logout", headers=headers).status in (200, 204)
        seen = profiles(c, n, headers)
        assert sorted(s for s, _ in seen) == names and all(st == 401 for _, st in seen), seen
    c.close()

    st = cluster("status", "--dir", env["RUNDIR"])
    assert st.stdout.count("running") == n + 1 + ("PID_redis" in env), st.stdout
    assert "healthz 200" in st.stdout


def test_down_stops_everything_and_status_says_so(tmp_path):
    need("ours")
    d = str(tmp_path / "c")
    cluster("up", "session-redis", "--dir", d, "--instances", "2")
    env = read_env(d)
    pids = started_pids(env)
    assert len(pids) == 4 and all(alive(p) for p in pids)
    logs = cluster("logs", "--dir", d).stdout
    assert "==> " + os.path.join(d, "logs", "app1.log") in logs
    cluster("down", "--dir", d)
    assert not [p for p in pids if alive(p)]
    st = cluster("status", "--dir", d, check=False)
    assert st.returncode == 1 and "running" not in st.stdout
    # down twice is harmless.
    cluster("down", "--dir", d)


def test_fixed_port_and_second_up_refused(up, tmp_path):
    need("ours")
    port = harness.free_port()
    env = up("jwt-hs256", "ours", 2, extra=("--port", str(port)))
    assert env["BALANCER_URL"] == f"https://127.0.0.1:{port}"
    r = harness.request(port, "GET", "/healthz", tls=True, cacert=env["CA"])
    assert r.status == 200 and r.header("X-Served-By") in ("app1", "app2")
    again = cluster("up", "jwt-hs256", "--dir", env["RUNDIR"], check=False)
    assert again.returncode != 0 and "already running" in again.stderr
    # The first cluster is untouched by the refused second one.
    assert all(alive(p) for p in started_pids(env))


@pytest.mark.parametrize("balancer", BALANCERS)
def test_stop_server_and_start_server(up, balancer):
    need(balancer)
    env = up("jwt-hs256", balancer, 3)
    c = client(env)
    token = login(c).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    cluster("stop-server", "app2", "--dir", env["RUNDIR"])
    assert not alive(int(env["PID_app2"]))
    seen = profiles(c, 6, headers)
    assert all(st == 200 for _, st in seen) and "app2" not in {s for s, _ in seen}, seen
    st = cluster("status", "--dir", env["RUNDIR"], check=False)
    assert st.returncode == 1 and "stopped" in st.stdout
    cluster("start-server", "app2", "--dir", env["RUNDIR"])
    # The balancer's health checks bring it back within a few intervals.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if "app2" in {s for s, _ in profiles(c, 3, headers)}:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("app2 never came back after start-server")
    c.close()


def fake_bin(tmp_path, session_server):
    """A bin dir with the real programs but a session_server that runs the given shell body."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for prog in ("authctl", "balancer", "jwt_server"):
        os.symlink(harness.binary(prog), fake / prog)
    (fake / "session_server").write_text("#!/bin/sh\n" + session_server + "\n")
    (fake / "session_server").chmod(0o755)
    return str(fake)


def test_ctrl_c_during_up_leaves_nothing(tmp_path):
    need("ours")
    # Servers that never listen keep `up` waiting, so the interrupt lands mid-start every time.
    fake = fake_bin(tmp_path, 'exec /usr/bin/python3 -c "import time; time.sleep(60)" session_server "$@"')
    d = tmp_path / "c"
    p = subprocess.Popen([SCRIPT, "up", "session-redis", "--dir", str(d)],
                         env=dict(os.environ, AUTH_BIN=fake), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    pidfiles = [d / "pids" / f"{n}.pid" for n in ("redis", "app1", "app2", "app3")]
    deadline = time.monotonic() + 30
    while not all(f.exists() for f in pidfiles) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    assert p.poll() is None, f"up ended before it could be interrupted: {p.communicate()}"
    pids = [int(f.read_text().split()[0]) for f in pidfiles]
    assert all(alive(q) for q in pids)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0
    assert "up did not complete; stopped what it had started" in err
    assert not [q for q in pids if alive(q)]
    assert not (d / "cluster.env").exists()


def test_server_that_cannot_start_is_reported_and_cleaned_up(tmp_path):
    need("ours")
    # A session_server that exits at once: up must fail, show why, and stop Redis again.
    fake = fake_bin(tmp_path, "echo 'cannot start: broken on purpose' >&2; exit 1")
    d = tmp_path / "c"
    r = cluster("up", "session-redis", "--dir", str(d), env={"AUTH_BIN": fake}, check=False)
    assert r.returncode != 0
    assert "app1" in r.stderr and "broken on purpose" in r.stderr
    assert "stopped what it had started" in r.stderr
    redis_log = (d / "logs" / "redis.log").read_text()
    assert "Ready to accept connections" in redis_log
    # Redis was started, then stopped again.
    assert "Redis is now ready to exit" in redis_log or "bye" in redis_log.lower()


@pytest.mark.parametrize("args,message", [
    (["up", "session-postgres"], "unknown variant"),
    (["up", "jwt-hs256", "--instances", "0"], "--instances"),
    (["up", "jwt-hs256", "--instances", "x"], "--instances"),
    (["up", "jwt-hs256", "--balancer", "traefik"], "--balancer"),
    (["up", "jwt-hs256", "--port", "80a"], "--port"),
    (["up", "jwt-hs256", "--frobnicate"], "unknown option"),
    (["teleport"], "usage"),
])
def test_bad_arguments(tmp_path, args, message):
    r = cluster(*args, "--dir", str(tmp_path), check=False) if args[0] == "up" else cluster(*args, check=False)
    assert r.returncode == 2
    assert message in r.stderr
    assert not os.path.exists(os.path.join(tmp_path, "pids"))


def test_help():
    r = cluster("--help")
    assert "usage: scripts/cluster.sh up VARIANT" in r.stdout
    for v in VARIANTS:
        assert v in r.stdout
    # stop-server and start-server cannot guess the cluster: --dir is not optional for them.
    assert "stop-server NAME --dir RUNDIR" in r.stdout and "start-server NAME --dir RUNDIR" in r.stdout


def fake_run_dir(d, logs=("app1", "balancer")):
    """What `up` leaves in a run directory, minus the processes: cmds/, pids/ and logs/."""
    for sub in ("cmds", "pids", "logs"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for name in logs:
        with open(os.path.join(d, "logs", name + ".log"), "w") as f:
            f.write(f"{name} says hello\n")


def test_logs_of_one_server_and_of_an_unknown_name(tmp_path):
    d = str(tmp_path / "c")
    fake_run_dir(d)
    r = cluster("logs", "--dir", d, "app1")
    assert "app1 says hello" in r.stdout and "balancer says" not in r.stdout
    r = cluster("logs", "--dir", d, "nope", check=False)
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "nope" in lines[0] and "app1" in lines[0], r
    assert r.stdout == ""


def test_status_ignores_the_teaching_pages_run_directory(tmp_path):
    # scripts/web.sh up makes run/web with pids/ and logs/ of its own: not a cluster.
    os.makedirs(tmp_path / "run" / "web" / "pids")
    os.makedirs(tmp_path / "run" / "web" / "logs")
    fake_run_dir(str(tmp_path / "run" / "jwt-hs256"))
    r = subprocess.run([SCRIPT, "status"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, AUTH_BIN=harness.BIN))
    assert "run/web" not in r.stdout + r.stderr, r.stdout
    assert "jwt-hs256" in r.stdout
