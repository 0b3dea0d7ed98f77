#!/usr/bin/python3
"""The teaching page's own server, for demo mode only: serves web/ and a small JSON control API
that stops and starts the demo clusters' servers (through scripts/cluster.sh). It listens on
loopback only and sits behind the front balancer as its default pool, so the page, the API and
the four login variants (/memory/, /sticky/, /redis/, /jwt/) share one HTTPS origin.

The API needs the demo's token: random per run, written to RUNDIR/webdemo.token and put into the
page it serves (a <meta> the page's script sends back in X-Demo-Token). A request whose Host or
Origin is not the balancer's is refused, so another site or a rebinding DNS name cannot drive it.

It assumes a single-user machine (a teacher's laptop). The token keeps other web sites out, not
other local users: anyone who can connect to 127.0.0.1 can load the page, and with it the token,
and stop or start the demo's servers. Every request reaches us through the front balancer, so
we cannot tell which local user sent it. On a shared machine, do not run the page (the demo and
the clusters themselves are not affected).

usage: webdemo.py --listen 127.0.0.1:PORT --public PORT --rundir DIR --cluster NAME=DIR...
"""
import hmac
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cli  # scripts/cli.py, next to this file

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER_SH = os.path.join(HERE, "cluster.sh")
WEB = os.path.join(os.path.dirname(HERE), "web")
# The page's clusters, in order: name (also the path prefix). "revoke" (JWT with the deny-list and
# refresh tokens) is shown in the JWT column when its deny-list box is ticked.
COLUMNS = ("memory", "sticky", "redis", "jwt", "revoke")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
STATIC = re.compile(r"^/([a-z0-9_-]{1,40}\.(html|js|css|png|svg))$")
TOKEN_META = '<meta name="demo-token" content="">'
MAX_BODY = 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def read_env(path):
    """KEY=VALUE lines of a cluster.env (values written plain by cluster.sh for what we read)."""
    env = {}
    with open(path) as f:
        for line in f:
            k, sep, v = line.strip().partition("=")
            if sep and not k.startswith("#"):
                env[k] = v
    return env


class Demo:
    """The clusters behind the page, the token, and one lock so that two clicks never run
    cluster.sh on the same cluster at once."""

    def __init__(self, clusters, public_port, token):
        self.clusters = clusters            # column name -> run directory
        self.token = token
        self.hosts = {f"127.0.0.1:{public_port}", f"localhost:{public_port}"}
        self.origins = {"https://" + h for h in self.hosts}
        self.lock = threading.Lock()

    def servers(self, column):
        """[(name, "HOST:PORT")] of a column's cluster, from its cluster.env."""
        env = read_env(os.path.join(self.clusters[column], "cluster.env"))
        names = [n for n in env.get("SERVERS", "").split(",") if re.fullmatch(r"app[0-9]{1,2}", n)]
        return [(n, env.get("SERVER_" + n, "")) for n in names]

    @staticmethod
    def running(addr):
        host, _, port = addr.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return True
        except (OSError, ValueError):
            return False

    def listing(self):
        out = []
        for col in COLUMNS:
            env = read_env(os.path.join(self.clusters[col], "cluster.env"))
            out.append({"column": col, "prefix": f"/{col}/", "variant": env.get("VARIANT", ""),
                        "servers": [{"name": n, "running": self.running(a)}
                                    for n, a in self.servers(col)]})
        return {"columns": out}

    def control(self, action, column, server):
        """Runs cluster.sh stop-server/start-server; returns (status, body)."""
        if column not in self.clusters:
            return 400, {"error": "bad_request", "message": "unknown column"}
        if server not in [n for n, _ in self.servers(column)]:
            return 400, {"error": "bad_request", "message": "unknown server"}
        with self.lock:
            try:
                p = subprocess.run([CLUSTER_SH, f"{action}-server", server, "--dir",
                                    self.clusters[column]], capture_output=True, text=True,
                                   timeout=40, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                return 504, {"error": "timeout", "message": f"{action} {server} took too long"}
        if p.returncode != 0:
            msg = (p.stderr.strip().splitlines() or [f"{action} failed"])[-1]
            return 409, {"error": "conflict", "message": msg[:200]}
        return 200, {"column": column, "server": server, "action": action}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "webdemo"
    sys_version = ""
    timeout = 30                    # an idle or slow connection is closed
    demo = None                     # set in main()

    def log_message(self, fmt, *args):
        if self.path.startswith("/api/") or self.command != "GET":
            sys.stderr.write("webdemo: %s %s\n" % (self.address_string(), fmt % args))

    def reply(self, status, body, ctype="application/json", extra=()):
        if isinstance(body, dict):
            body = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", "webdemo")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message):
        self.reply(status, {"error": code, "message": message}, extra=[("Cache-Control", "no-store")])

    def checked(self, api):
        """Whether the request came through the balancer from the page; answers it if not."""
        if self.headers.get("Host", "") not in self.demo.hosts:
            self.error(421, "misdirected_request", "this server answers only for the demo's address")
            return False
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self.demo.origins:
            self.error(403, "forbidden", "cross-origin requests are refused")
            return False
        if not api:
            return True
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site != "same-origin":
            self.error(403, "forbidden", "only the demo page may call the API")
            return False
        if self.command == "POST" and origin is None:
            self.error(403, "forbidden", "a POST to the API needs an Origin header")
            return False
        sent = self.headers.get("X-Demo-Token", "")
        if not hmac.compare_digest(sent.encode(), self.demo.token.encode()):
            self.error(401, "not_authenticated", "the demo token is missing or wrong")
            return False
        return True

    def static(self, path):
        m = STATIC.match("/index.html" if path == "/" else path)
        name = m.group(1) if m else None
        if name is None or name not in os.listdir(WEB):
            self.error(404, "not_found", "no such page")
            return
        with open(os.path.join(WEB, name), "rb") as f:
            body = f.read()
        extra = [("Cache-Control", "no-store"), ("Content-Security-Policy", CSP),
                 ("X-Frame-Options", "DENY")]
        if name == "index.html":
            body = body.replace(TOKEN_META.encode(), TOKEN_META.replace(
                'content=""', f'content="{self.demo.token}"').encode())
        self.reply(200, body, TYPES[os.path.splitext(name)[1]], extra)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/healthz":          # the balancer's health check: no page, no secret
            self.reply(200, {"status": "ok"}, extra=[("Cache-Control", "no-store")])
            return
        if not self.checked(path.startswith("/api/")):
            return
        if path == "/api/servers":
            self.reply(200, self.demo.listing(), extra=[("Cache-Control", "no-store")])
        elif path.startswith("/api/"):
            self.error(404, "not_found", "no such API")
        else:
            self.static(path)

    do_HEAD = do_GET

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        try:
            n = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            n = -1
        if self.headers.get("Transfer-Encoding") or n < 0 or n > MAX_BODY:
            self.close_connection = True
            self.error(413 if n > MAX_BODY else 400, "bad_request", "send a small JSON body")
            return
        body = self.rfile.read(n) if n else b""
        if not self.checked(True):
            return
        m = re.fullmatch(r"/api/(stop|start)", path)
        if m is None:
            self.error(404, "not_found", "no such API")
            return
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            self.error(415, "unsupported_media_type", "send application/json")
            return
        try:
            req = json.loads(body)
            column, server = req["column"], req["server"]
            if not isinstance(column, str) or not isinstance(server, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self.error(400, "bad_request", 'send {"column": "...", "server": "..."}')
            return
        status, out = self.demo.control(m.group(1), column, server)
        self.reply(status, out, extra=[("Cache-Control", "no-store")])

    def other(self):
        self.close_connection = True
        self.error(405, "method_not_allowed", "use GET or POST")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = other


def main():
    ap = cli.ArgParser(description="The teaching page's static and control server.")
    ap.add_argument("--listen", required=True, help="127.0.0.1:PORT (loopback only)")
    ap.add_argument("--public", required=True, type=int,
                    help="the front balancer's port: the only Host/Origin accepted")
    ap.add_argument("--rundir", required=True, help="where the token file goes")
    ap.add_argument("--cluster", action="append", default=[], metavar="NAME=DIR",
                    help="a column's cluster run directory (memory, sticky, redis, jwt)")
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    if host not in ("127.0.0.1", "::1", "[::1]") or not port.isdigit():
        ap.error("--listen must be 127.0.0.1:PORT or [::1]:PORT: the controls stay on loopback")
    clusters = {}
    for c in a.cluster:
        name, sep, d = c.partition("=")
        if not sep or name not in COLUMNS or not os.path.isfile(os.path.join(d, "cluster.env")):
            ap.error(f"--cluster {c}: expected NAME=DIR with NAME in {','.join(COLUMNS)} "
                     "and DIR/cluster.env")
        clusters[name] = os.path.abspath(d)
    if sorted(clusters) != sorted(COLUMNS):
        ap.error("give --cluster for each of " + ", ".join(COLUMNS))
    if TOKEN_META.encode() not in open(os.path.join(WEB, "index.html"), "rb").read():
        ap.error("web/index.html lacks " + TOKEN_META)

    token = secrets.token_urlsafe(32)
    tokfile = os.path.join(a.rundir, "webdemo.token")
    fd = os.open(tokfile + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tokfile + ".tmp", tokfile)

    Handler.demo = Demo(clusters, a.public, token)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    if ":" in host.strip("[]"):
        ThreadingHTTPServer.address_family = socket.AF_INET6
    srv = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    # SIGTERM: stop accepting, let the handler threads end, exit 0.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=srv.shutdown).start())
    sys.stderr.write(f"webdemo: serving {WEB} on {a.listen} for https://127.0.0.1:{a.public}/\n")
    srv.serve_forever()
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
