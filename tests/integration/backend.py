"""A tiny HTTP/1.1 keep-alive backend for the balancer tests.

Usage: backend.py PORT ID
Every answer carries X-Served-By: ID and a JSON body with what arrived (method, path, headers,
body length). Special paths: /healthz (503 while the file named by BACKEND_SICK exists),
/slow?ms=N (answers after N ms), /chunked (chunked body), /close (no length: ends by closing),
/big?n=N (N bytes), /cookie (sets a cookie of its own), /refuse (413 at once, body unread, then a
close that the unread body turns into a reset), /partial?ms=N (body unread, the head and 10 of
the 100 bytes it announces at once, the rest never: closes after N ms).
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT = int(sys.argv[1])
ID = sys.argv[2]
SICK = os.environ.get("BACKEND_SICK")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response, sent at once: no Nagle/delayed-ACK pauses in the tests.
    wbufsize = 65536
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, extra=(), close=False):
        self.send_response(status)
        self.send_header("X-Served-By", ID)
        self.send_header("Content-Type", "application/json")
        for k, v in extra:
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def refuse(self):
        """What a server with a body limit does: answer before the body, then close."""
        body = json.dumps({"error": "payload_too_large", "message": "refused unread"}).encode()
        self.wfile.write(b"HTTP/1.1 413 Content Too Large\r\nX-Served-By: %s\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (ID.encode(), len(body), body))
        self.wfile.flush()
        self.close_connection = True

    def handle_any(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if url.path == "/refuse":
            return self.refuse()
        if url.path == "/partial":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Served-By: %s\r\nContent-Length: 100\r\n\r\n"
                             b"0123456789" % ID.encode())
            self.wfile.flush()
            time.sleep(int(q.get("ms", ["5000"])[0]) / 1000)
            self.close_connection = True
            return
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            data = self.rfile.read(n) if n else b""
        info = {"served_by": ID, "method": self.command, "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()], "body_len": len(data)}
        if url.path == "/healthz":
            sick = SICK and os.path.exists(SICK)
            self.answer(503 if sick else 200, json.dumps({"status": "sick" if sick else "ok"}).encode())
        elif url.path == "/slow":
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000)
            self.answer(200, json.dumps(info).encode())
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("X-Served-By", ID)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/close":
            self.answer(200, json.dumps(info).encode(), close=True)
            self.wfile.write(json.dumps(info).encode())
        elif url.path == "/big":
            self.answer(200, b"x" * int(q.get("n", ["1000000"])[0]))
        elif url.path == "/cookie":
            self.answer(200, json.dumps(info).encode(), [("Set-Cookie", "app=1; Path=/")])
        else:
            self.answer(200, json.dumps(info).encode(),
                        [("Connection", "X-Secret"), ("X-Secret", "hop"), ("Keep-Alive", "timeout=5")])

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = handle_any


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer.request_queue_size = 128
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
