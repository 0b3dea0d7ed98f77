"""cluster.sh --netns, "hosts apart": each server, the balancer and Redis in a network namespace
of its own with its own address on a bridge (root only; skipped otherwise, and CI runs as root).
Nothing goes over loopback: the servers listen on their bridge addresses, the balancer reaches
them and checks their health over the bridge, the servers trust X-Forwarded-For only from the
balancer's address, and the address they log for a client is the client's real one. The demo's
lessons 1-3 run across it, and stop removes every namespace and the bridge."""
import json
import os
import re
import socket
import subprocess
import time

import pytest

import harness

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

CLUSTER = os.path.join(harness.ROOT, "scripts", "cluster.sh")
DEMO = os.path.join(harness.ROOT, "scripts", "demo.sh")


def env_of(rundir):
    env = {}
    for line in open(os.path.join(rundir, "cluster.env")):
        if "=" in line and not line.startswith("#"):
            k, v = line.rstrip("\n").split("=", 1)
            env[k] = v
    return env


def namespaces():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout


def log_waiting_for(path, needle, timeout):
    """Returns the log at path once it holds needle, or as it is after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        log = open(path).read()
        if needle in log or time.monotonic() > deadline:
            return log
        time.sleep(0.1)


def test_cluster_hosts_apart(tmp_path):
    run = str(tmp_path / "run")
    env = dict(os.environ, AUTH_BIN=harness.BIN, CLUSTER_LN="4")
    up = subprocess.run([CLUSTER, "up", "session-redis", "--netns", "--instances", "2", "--dir", run,
                         "--quiet"], capture_output=True, text=True, env=env, timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        made = open(os.path.join(run, "netns")).read()
        e = env_of(run)
        client = e["CLIENT_ADDR"]
        lb_host = re.match(r"https://([\d.]+):(\d+)$", e["BALANCER_URL"]).group(1)
        hosts = [lb_host, e["REDIS_URL"].split("//")[1].split(":")[0],
                 e["SERVER_app1"].split(":")[0], e["SERVER_app2"].split(":")[0]]
        # Five different addresses on one /24, none of them loopback.
        assert len(set(hosts + [client])) == 5 and not any(h.startswith("127.") for h in hosts)
        assert len({h.rsplit(".", 1)[0] for h in hosts + [client]}) == 1
        # A server is not reachable on loopback: it listens on its bridge address only.
        port = int(e["SERVER_app1"].split(":")[1])
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()

        port = int(e["BALANCER_URL"].rsplit(":", 1)[1])
        c = harness.Client(port, host=lb_host, tls=True, cacert=e["CA"])
        r = c.request("POST", "/login", json.dumps({"username": "alice",
                                                   "password": "alice-password"}),
                      {"Content-Type": "application/json"})
        assert r.status == 200, r
        sid = re.search(r"sid=([^;]+)", r.header("Set-Cookie")).group(1)
        served = set()
        for _ in range(4):
            r = c.request("GET", "/profile", headers={"Cookie": f"sid={sid}"})
            assert r.status == 200, r
            served.add(r.header("X-Served-By"))
        c.close()
        assert served == {"app1", "app2"}
        # The balancer's first active check runs one --health-interval after it starts, and on a
        # quiet machine `up` plus the requests above can take less than that: wait for it.
        interval = int(re.search(r"--health-interval (\d+)",
                                 open(os.path.join(run, "cmds", "balancer")).read()).group(1))
        for name in ("app1", "app2"):
            check = f'{lb_host} "GET /healthz" 200'
            log = log_waiting_for(os.path.join(run, "logs", f"{name}.log"), check,
                                  interval / 1000 + 2)
            # X-Forwarded-For carried the client's real address, believed from the balancer;
            # health checks came straight from the balancer's address over the bridge.
            assert re.search(rf"_server: {re.escape(client)} \"GET /profile\" 200", log), log[-2000:]
            assert check in log, log[-2000:]
            assert '127.0.0.1 "' not in log
            cmd = open(os.path.join(run, "cmds", name)).read()
            assert "--trust-proxy" in cmd and lb_host in cmd
    finally:
        down = subprocess.run([CLUSTER, "down", "--dir", run], capture_output=True, text=True,
                              env=env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not os.path.exists(os.path.join(run, "netns"))
    left = namespaces()
    for ns in re.findall(r"^host \S+ (\S+) ", made, re.M):
        assert ns not in left
    br = re.search(r"^bridge (\S+)", made, re.M).group(1)
    assert subprocess.run(["ip", "link", "show", br], capture_output=True).returncode != 0


@pytest.mark.parametrize("lesson", [1, 2, 3])
def test_demo_lessons_hosts_apart(tmp_path, lesson):
    demo_dir = str(tmp_path / "demo")
    env = dict(os.environ, AUTH_BIN=harness.BIN, CLUSTER_NETNS="1", DEMO_DIR=demo_dir,
               NO_COLOR="1")
    p = subprocess.run([DEMO, "--lesson", str(lesson)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert re.search(r"All \d+ checks passed", p.stdout), p.stdout[-2000:]
    envs = [os.path.join(demo_dir, d) for d in os.listdir(demo_dir)
            if os.path.exists(os.path.join(demo_dir, d, "cluster.env"))]
    assert envs
    for d in envs:
        e = env_of(d)
        assert e["BALANCER_URL"].startswith("https://10.213."), e["BALANCER_URL"]
        assert not os.path.exists(os.path.join(d, "netns"))    # removed at the end
