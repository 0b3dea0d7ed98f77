#!/usr/bin/env python3
"""The failover drill: start a session-redis-ha cluster (scripts/cluster.sh: three session
servers behind the balancer, a Redis master, two replicas, three sentinels), put it under load
(client threads that log in and read /profile over HTTPS, in a loop), SIGKILL the Redis master,
and measure what the users saw: how long requests got 503 until a replica was promoted and the
servers followed, and how many sessions whose login had been answered 200 were lost. Run it
without and with --wait 1 (WAIT for one replica after each login) to see what it buys and costs.

Prints a summary and, with --json FILE, writes the figures. Exit 0 when service came back
within --max-recovery seconds (and, with --wait, no session was lost); 1 otherwise; 2 for bad
flags. The cluster is always taken down."""
import http.client
import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import cli  # scripts/cli.py, next to this file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CLUSTER = os.path.join(ROOT, "scripts", "cluster.sh")


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, _, v = line.rstrip("\n").partition("=")
                env[k] = (shlex.split(v) or [""])[0]
    return env


def redis_cli(env, port, *args):
    """One command to a local Redis or sentinel, with the run's password."""
    with open(env["REDIS_PASSWORD_FILE"]) as f:
        pw = f.read().strip()
    r = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                       timeout=10, env=dict(os.environ, REDISCLI_AUTH=pw))
    return r.stdout.split()


def master_of(env):
    """(host, port) of the master as the first sentinel that answers names it."""
    url = env["REDIS_URL"]
    hosts, _, name = url[len("redis-sentinel://"):].partition("#")
    for hp in hosts.split(","):
        out = redis_cli(env, hp.rsplit(":", 1)[1], "SENTINEL", "get-master-addr-by-name", name)
        if len(out) == 2:
            return out[0], int(out[1])
    raise RuntimeError("no sentinel names a master")


class Load:
    """Client threads, each on its own keep-alive HTTPS connection to the balancer: log in (a
    new session every time), then GET /profile with it. Every answer is recorded with its time;
    every session whose login got 200 is remembered with the time of that 200."""

    def __init__(self, env, clients):
        self.env = env
        self.ctx = ssl.create_default_context(cafile=env["CA"])
        with open(env["CREDENTIALS"]) as f:
            self.creds = [line.strip().split(":", 1) for line in f if ":" in line]
        self.events = []            # (time, "login" or "profile", status or error name)
        self.sessions = []          # (time the login was answered, sid)
        self.login_ms = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def connect(self):
        port = int(self.env["BALANCER_PORT"])
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=self.ctx)

    def request(self, conn, method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, r.getheader("Set-Cookie") or "", data

    def record(self, kind, status):
        with self.lock:
            self.events.append((time.monotonic(), kind, status))

    def run(self, i):
        user, pw = self.creds[i % len(self.creds)]
        body = json.dumps({"username": user, "password": pw})
        conn = self.connect()
        while not self.stop.is_set():
            try:
                t0 = time.monotonic()
                st, cookie, _ = self.request(conn, "POST", "/login", body,
                                             {"Content-Type": "application/json"})
                self.record("login", st)
                if st != 200:
                    time.sleep(0.02)
                    continue
                sid = cookie.split(";")[0].partition("=")[2]
                with self.lock:
                    self.sessions.append((time.monotonic(), sid))
                    self.login_ms.append((time.monotonic() - t0) * 1000)
                st, _, _ = self.request(conn, "GET", "/profile", headers={"Cookie": f"sid={sid}"})
                self.record("profile", st)
            except (OSError, http.client.HTTPException) as e:
                self.record("error", type(e).__name__)
                conn.close()
                conn = self.connect()
                time.sleep(0.02)
        conn.close()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def still_valid(self, sid):
        conn = self.connect()
        try:
            st, _, _ = self.request(conn, "GET", "/profile", headers={"Cookie": f"sid={sid}"})
            return st
        finally:
            conn.close()


def store_create_ms(env):
    """Mean time the servers' session store took to create a session (Redis EVAL, plus WAIT with
    --redis-wait), from their /metrics, in ms."""
    total = count = 0.0
    for name in env["SERVERS"].split(","):
        conn = http.client.HTTPConnection(*env[f"SERVER_{name}"].rsplit(":", 1), timeout=10)
        conn.request("GET", "/metrics")
        for line in conn.getresponse().read().decode().splitlines():
            if line.startswith('session_store_duration_seconds_sum{op="create"}'):
                total += float(line.split()[-1])
            elif line.startswith('session_store_duration_seconds_count{op="create"}'):
                count += float(line.split()[-1])
        conn.close()
    return round(total / count * 1000, 3) if count else None


def percentile(values, p):
    v = sorted(values)
    return round(v[min(len(v) - 1, int(len(v) * p / 100))], 1) if v else None


def drill(args, rundir):
    env_vars = dict(os.environ, CLUSTER_LN=os.environ.get("CLUSTER_LN", "4"))
    if args.wait:
        env_vars["CLUSTER_SERVER_ARGS"] = f"--redis-wait {args.wait}:{args.wait_ms}"
    subprocess.run([CLUSTER, "up", "session-redis-ha", "--dir", rundir, "--quiet"], check=True,
                   env=env_vars, timeout=180)
    env = read_env(os.path.join(rundir, "cluster.env"))
    load = Load(env, args.clients)
    time.sleep(args.warmup)
    create_ms = store_create_ms(env)
    host, port = master_of(env)
    pid = int(dict(kv.split(":", 1) for kv in redis_cli(env, port, "INFO", "server")
                   if ":" in kv)["process_id"])
    ours = {int(v) for k, v in env.items() if k.startswith("PID_redis")}
    if pid not in ours:
        raise RuntimeError(f"the master's pid {pid} is not one this run started ({ours})")
    t_kill = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    # Keep the load on until requests have succeeded for a while after the outage, or the limit.
    deadline = t_kill + args.max_recovery + 5
    while time.monotonic() < deadline:
        time.sleep(0.2)
        with load.lock:
            after = [e for e in load.events if e[0] > t_kill]
        bad = [e for e in after if e[2] != 200]
        if bad and after[-1][0] - bad[-1][0] > 2 and time.monotonic() - bad[-1][0] > 2:
            break
    load.finish()
    with load.lock:
        events, sessions = list(load.events), list(load.sessions)
    after = [e for e in events if e[0] > t_kill]
    bad = [e for e in after if e[2] != 200]
    back = next((e[0] for e in after if bad and e[0] > bad[-1][0] and e[2] == 200), None)
    at_risk = [sid for t, sid in sessions if t <= t_kill]
    lost = [sid for sid in at_risk if load.still_valid(sid) != 200]
    new_host, new_port = master_of(env)
    status = {}
    for e in events:
        status[str(e[2])] = status.get(str(e[2]), 0) + 1
    return {
        "wait_replicas": args.wait, "clients": args.clients,
        "killed_master": f"{host}:{port}", "new_master": f"{new_host}:{new_port}",
        "requests": len(events), "status": status,
        "first_error_s": round(bad[0][0] - t_kill, 3) if bad else None,
        "errors_after_kill": len(bad),
        "unavailable_s": round(back - t_kill, 3) if back else None,
        "recovered": back is not None and back - t_kill <= args.max_recovery,
        "sessions_before_kill": len(at_risk), "sessions_lost": len(lost),
        "store_create_ms_mean": create_ms,
        "login_ms_p50": percentile(load.login_ms, 50), "login_ms_p99": percentile(load.login_ms, 99),
    }


def main():
    ap = cli.ArgParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wait", type=int, default=0, metavar="N",
                    help="replicas each login waits for (session_server's --redis-wait; "
                         "default 0: no WAIT)")
    ap.add_argument("--wait-ms", type=int, default=500, metavar="MS", help="WAIT timeout (500)")
    ap.add_argument("--clients", type=int, default=4, help="client threads (4)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the kill (2)")
    ap.add_argument("--max-recovery", type=float, default=15.0, metavar="S",
                    help="service must be back within S seconds of the kill (15)")
    ap.add_argument("--dir", help="run directory (default: a temporary one, removed afterwards)")
    ap.add_argument("--json", metavar="FILE", help="write the figures there")
    args = ap.parse_args()
    if args.clients < 1 or args.wait < 0 or args.wait_ms < 1 or args.warmup < 0:
        ap.error("--clients, --wait-ms need at least 1; --wait, --warmup at least 0")
    rundir = args.dir or tempfile.mkdtemp(prefix="failover-drill-")
    try:
        res = drill(args, rundir)
    finally:
        subprocess.run([CLUSTER, "down", "--dir", rundir], capture_output=True, timeout=120)
        if not args.dir:
            subprocess.run(["rm", "-rf", rundir])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    print(f"failover drill: {args.clients} clients, --redis-wait {args.wait}: master "
          f"{res['killed_master']} killed, {res['new_master']} promoted")
    print(f"  503 window: first error {res['first_error_s']} s after the kill, service back "
          f"after {res['unavailable_s']} s ({res['errors_after_kill']} failed requests)")
    print(f"  sessions answered 200 before the kill: {res['sessions_before_kill']}, lost: "
          f"{res['sessions_lost']}")
    print(f"  before the kill: session store create {res['store_create_ms_mean']} ms on average, "
          f"login p50 {res['login_ms_p50']} ms, p99 {res['login_ms_p99']} ms")
    print(f"  statuses {res['status']}")
    ok = res["recovered"] and (args.wait == 0 or res["sessions_lost"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
