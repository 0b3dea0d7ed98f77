"""loadgen's progress line and per-second series: on a terminal (a pty here) it rewrites one
line at least once a second with the elapsed time, requests, requests/s and errors; with stderr
not a terminal it prints nothing extra; --json carries a per-second series whose counts add up
to the totals and that shows when a backend went away."""
import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import harness

LOADGEN = harness.binary("loadgen")
BACKEND = os.path.join(os.path.dirname(__file__), "backend.py")
PROGRESS = re.compile(rb"loadgen: ([\d.]+) s  (\d+) requests  (\d+)/s  errors (\d+)  status>=400 (\d+)")


def start_backend():
    port = harness.free_port()
    return harness.Proc([sys.executable, BACKEND, str(port), "b1"], port=port, name="backend")


def test_progress_line_on_a_terminal(tmp_path):
    backend = start_backend()
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([LOADGEN, "--url", f"http://127.0.0.1:{backend.port}", "--flow",
                              "none", "--concurrency", "2", "--duration", "3.2"],
                             stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        seen, data = [], b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if not r:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:        # the pty closes when loadgen exits
                break
            if not chunk:
                break
            data += chunk
            for m in PROGRESS.finditer(chunk):
                seen.append(m)
        out, _ = p.communicate(timeout=30)
    finally:
        os.close(master)
        backend.stop()
    assert p.returncode == 0, data
    elapsed = [float(m.group(1)) for m in seen]
    requests = [int(m.group(2)) for m in seen]
    # At least once a second over the whole run, rewriting the same line (\r, erase).
    assert len(seen) >= 3, data
    assert all(b - a <= 1.0 for a, b in zip([0.0] + elapsed, elapsed)), elapsed
    assert requests == sorted(requests) and requests[-1] > 0, requests
    assert b"\r\x1b[K" in data
    assert all(int(m.group(4)) == 0 for m in seen)
    # The line is cleared at the end, and the report on stdout is untouched by it.
    assert data.endswith(b"\r\x1b[K"), data[-80:]
    assert b"\r" not in out and b"requests" in out


def test_no_progress_line_without_a_terminal(tmp_path):
    backend = start_backend()
    try:
        p = subprocess.run([LOADGEN, "--url", f"http://127.0.0.1:{backend.port}", "--flow", "none",
                            "--concurrency", "2", "--duration", "1.5"],
                           capture_output=True, timeout=30)
    finally:
        backend.stop()
    assert p.returncode == 0, p.stderr
    assert p.stderr == b"", p.stderr
    assert b"\r" not in p.stdout


def test_series_adds_up_and_shows_a_backend_going_away(tmp_path):
    backend = start_backend()
    out = tmp_path / "r.json"
    p = subprocess.Popen([LOADGEN, "--url", f"http://127.0.0.1:{backend.port}", "--flow", "none",
                          "--concurrency", "2", "--duration", "4", "--timeout", "1",
                          "--json", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.8)
    backend.kill()
    p.wait(30)
    r = json.loads(out.read_text())
    s = r["series"]
    assert [x["t"] for x in s] == list(range(len(s))) and 4 <= len(s) <= 5, s
    assert sum(x["ok"] + x["http_4xx"] + x["http_5xx"] for x in s) == r["requests"]
    for kind, n in r["errors"].items():
        assert sum(x["errors"][kind] for x in s) == n, kind
    assert s[0]["ok"] > 0
    # The backend is gone for the last two seconds: only errors there, no answers.
    assert all(x["ok"] == 0 and sum(x["errors"].values()) > 0 for x in s[2:4]), s
