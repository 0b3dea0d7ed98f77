"""scripts/demo.sh run non-interactively: every lesson's outcome as printed (servers, statuses,
tallies) matches the story, behind our balancer, HAProxy and nginx; a deliberately wrong set-up
makes the demo fail loudly without printing the lesson's conclusion; no process survives the demo,
an interrupt, or --serve."""
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter

import pytest

import harness
from test_cluster import sanitizer_reports

SCRIPT = os.path.join(harness.ROOT, "scripts", "demo.sh")
TIMEOUT = 600 if harness.SANITIZED else 400
# The demo's promise (about two minutes, a few seconds on an idle machine) is checked only when
# the machine is not busy with other work.
def idle():
    return os.getloadavg()[0] < 2 * (os.cpu_count() or 1)
# One request line: `  curl ... $URL/path   -> app2 401 invalid_session`, or the command alone
# (lines ending in " \" continue it) followed by one or more `    -> app2 401 ...` result lines.
REQ = re.compile(r"^  (curl .*?) +-> (\S+) +(\d{3}) ?(.*)$")
RESULT = re.compile(r"^    -> (\S+) +(\d{3}) ?(.*)$")


def need(balancer):
    if balancer != "ours" and shutil.which(balancer) is None:
        pytest.skip(f"{balancer} is not installed")
    for prog in ("authctl", "session_server", "jwt_server") + (("balancer",) if balancer == "ours" else ()):
        if not os.access(harness.binary(prog), os.X_OK):
            pytest.skip(f"{prog} is not built")


def env_for(demo_dir, **extra):
    e = dict(os.environ, AUTH_BIN=harness.BIN, DEMO_DIR=str(demo_dir),
             DEMO_CA_DIR=os.path.join(str(demo_dir), "ca"))
    e.pop("NO_COLOR", None)
    e.update(extra)
    return e


def run_demo(demo_dir, *args, input=None, **extra):
    """Runs the demo in its own process group: a timeout stops it the way Ctrl-C would, so that
    a demo that hangs still takes its clusters down."""
    t0 = time.monotonic()
    p = subprocess.Popen([SCRIPT, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env_for(demo_dir, **extra),
                         start_new_session=True)
    try:
        out, err = p.communicate(input=input if input is not None else "", timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGINT)
        p.communicate(timeout=120)
        raise
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    r.elapsed = time.monotonic() - t0
    return r


def leftovers(demo_dir):
    """Processes that still refer to the demo's directory (command line or open files)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if str(demo_dir) in cmd or any(t.startswith(str(demo_dir)) for t in targets):
            found.append((int(pid), cmd))
    return [p for p in found if p[0] != os.getpid()]


def lessons(out):
    """{lesson number: text of that lesson}."""
    parts = re.split(r"^== Lesson (\d): .* ==$", out, flags=re.M)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def joined_lines(text):
    """The lines of text with shell continuations (" \\" at the end) joined."""
    out, buf = [], ""
    for line in text.splitlines():
        if buf:
            line, buf = buf + " " + line.strip(), ""
        if line.endswith(" \\"):
            buf = line[:-2]
            continue
        out.append(line)
    return out


def requests(text, path=None):
    """[(curl line, server, status, detail)] in order, optionally only for one path."""
    out, pending = [], None
    text = re.sub(r"  \[Enter: [^\]]*\] ", "", text)    # --step's prompts end without a newline
    for line in joined_lines(text):
        m = REQ.match(line)
        if m:
            pending = None
            cmd, rest = m.group(1), m.groups()[1:]
        elif line.startswith("  curl "):
            pending = line.strip()
            continue
        elif pending and RESULT.match(line):
            cmd, rest = pending, RESULT.match(line).groups()
        else:
            continue
        if path is None or cmd.endswith("$URL" + path):
            out.append((cmd, rest[0], int(rest[1]), rest[2]))
    return out


def flat(text):
    return " ".join(text.split())


def tally_line(text):
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("Tally:")]


def expected_tally(reqs):
    c = Counter((s, st) for _, s, st, _ in reqs)
    return "Tally: " + "   ".join(f"{s} {n}x{st}" for (s, st), n in sorted(c.items()))


def check_round_robin_memory(text, n):
    reqs = requests(text)
    login, profiles = reqs[0], reqs[1:]
    assert login[0].startswith("curl") and login[0].endswith("$URL/login") and login[2] == 200
    home = login[1]
    assert len(profiles) == 2 * n
    assert all(st == (200 if s == home else 401) for _, s, st, _ in profiles), profiles
    assert Counter(s for _, s, _, _ in profiles) == Counter({f"app{i}": 2 for i in range(1, n + 1)})
    assert [st for _, _, st, _ in profiles].count(401) == 2 * n - 2
    assert tally_line(text)[0] == expected_tally(profiles)
    assert f"{2 * n - 2} of {2 * n} requests failed with 401: only {home} knows" in flat(text)
    # Which client shows which number, and why (the page and the README use the same words).
    assert "loadgen ignores Set-Cookie on 4xx, so it keeps its cookie" in flat(text)


def check_refresh_lesson(text, n):
    """Lesson 7: rotation and reuse detection, then log out everywhere for sessions and JWT."""
    rot, redis_part, jwt_part = [requests(p) for p in re.split(r"^-- ", text, flags=re.M)[1:4]]
    assert [r[2] for r in rot[:n + 2]] == [200] * (n + 2) and rot[n + 1][0].endswith("$URL/refresh"), rot
    assert len({r[1] for r in rot[1:n + 1]}) == n
    assert [(r[2], r[3]) for r in rot[n + 2:n + 4]] == [(401, "refresh_reused"), (401, "refresh_revoked")], rot
    assert "$OLD_RT" in rot[n + 2][0] and "$RT" in rot[n + 3][0]
    last = rot[n + 4:]
    assert len(last) == n and all(r[3] == "token_revoked" for r in last) and len({r[1] for r in last}) == n
    assert [r[2] for r in redis_part[:3]] == [200, 200, 200] and redis_part[2][0].endswith("$URL/logout/all")
    assert [r[2] for r in redis_part[3:]] == [401] * (2 * n), redis_part
    assert [r[2] for r in jwt_part[:3]] == [200, 200, 200] and jwt_part[2][0].endswith("$URL/logout/all")
    assert [r[3] for r in jwt_part[3:3 + 2 * n]] == ["token_revoked"] * (2 * n), jwt_part
    assert jwt_part[-1][0].endswith("$URL/refresh") and jwt_part[-1][2] == 401
    assert "stolen credential   after logout" in text


def check_all_lessons(out, n=3):
    ls = lessons(out)
    assert sorted(ls) in ([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7])
    if 7 in ls:
        check_refresh_lesson(ls[7], n)
    check_round_robin_memory(ls[1], n)

    for k in (2, 3):
        profiles = requests(ls[k], "/profile")
        assert len(profiles) == 2 * n and all(st == 200 for _, _, st, _ in profiles), profiles
        assert Counter(s for _, s, _, _ in profiles) == Counter({f"app{i}": 2 for i in range(1, n + 1)})
        assert tally_line(ls[k])[0] == expected_tally(profiles)
    assert re.search(r"^  TOKEN=[\w-]+\.\.\.[\w-]+$", ls[3], re.M)
    assert "$ authctl token decode $TOKEN" in ls[3] and '"alice"' in ls[3] and "HS256" in ls[3]
    assert "redis-cli -u $REDIS_URL HGETALL $KEY" in ls[2] and re.search(r"^    alice$", ls[2], re.M)

    tamper, signers = ls[4].split("-- who can sign")
    t = requests(tamper)
    assert [r[2] for r in t[:2]] == [200, 200] and "role=user" in t[1][3]
    for var in ("$FORGED", "$NOSIG"):
        sent = [r for r in t if var in r[0]]
        assert len(sent) == n and {r[1] for r in sent} == {f"app{i}" for i in range(1, n + 1)}, sent
        assert all(r[2] == 401 and r[3] == "invalid_token" for r in sent), sent
        assert f"$ authctl token decode {var}" in tamper
    assert '"role": "admin"' in tamper and '"alg": "none"' in tamper
    assert 'error="invalid_token"' in ls[4]
    v = [r for r in requests(signers) if r[1] == "verifier"]
    assert [(r[2], r[3]) for r in v] == [(503, "cannot_issue"), (200, "user=alice role=admin"),
                                         (401, "invalid_token")], v
    minted = [r for r in requests(signers) if "$MINTED" in r[0]]
    if "no 'token sign' yet" not in signers:
        assert len(minted) == n and all(r[2] == 200 for r in minted), minted

    s = ls[5].split("-- the same stop on the Redis and JWT clusters")
    sticky = requests(s[0])
    home = sticky[0][1]
    before, after = sticky[1:n + 1], sticky[n + 1:]
    assert before == [(r[0], home, 200, r[3]) for r in before], sticky
    assert len(after) == n and all(r[1] != home and r[2] == 401 for r in after), sticky
    assert f"stop-server {home}" in s[0]
    codes = [r[3] for r in after]
    assert codes[0] == "invalid_session" and set(codes) <= {"invalid_session", "not_authenticated"}
    assert f"Why {codes.count('invalid_session')} x invalid_session" in flat(s[0])
    for part in s[1].split("$ scripts/cluster.sh stop-server")[1:]:
        stopped = part.split()[0]
        p = requests(part, "/profile")
        assert len(p) == 2 * n and all(st == 200 and srv != stopped for _, srv, st, _ in p), p

    redis_part, rest = ls[6].split("-- JWT without a deny-list")
    plain, deny = rest.split("-- JWT with a deny-list")
    r = requests(redis_part)
    assert [x[2] for x in r[:3]] == [200, 200, 200] and " -X POST " in r[2][0]
    assert [x[2] for x in r[3:]] == [401] * n and len({x[1] for x in r[3:]}) == n
    assert re.search(r"EXISTS \$KEY\n +0\n", redis_part)
    r = requests(plain)
    assert [x[2] for x in r[:2]] == [200, 200] and [x[2] for x in r[2:]] == [200] * n
    assert len({x[1] for x in r[2:]}) == n
    assert "the token still works on every server after logout" in flat(plain)
    r = requests(deny)
    assert [x[2] for x in r[:3]] == [200, 200, 200] and [x[3] for x in r[3:]] == ["token_revoked"] * n
    assert len({x[1] for x in r[3:]}) == n and re.search(r"TTL deny:\S+\n +\d+\n", deny)
    m = re.search(r"All (\d+) checks passed in (\d+) s", out)
    assert m and int(m.group(1)) >= 50


@pytest.mark.parametrize("balancer", ["ours", "haproxy", "nginx"])
def test_whole_demo(tmp_path, balancer):
    need(balancer)
    args = ["--balancer", balancer]
    stdin = ""
    if balancer == "haproxy":
        args.append("--step")  # the teacher's mode, with Enter pressed at every pause
        stdin = "\n" * 40
    r = run_demo(tmp_path, *args, input=stdin, COLUMNS="80")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "\x1b[" not in r.stdout, "colours on a pipe"
    check_all_lessons(r.stdout)
    wide = [line for line in r.stdout.splitlines() if len(line) > 80]
    assert not wide, wide
    parts = len(re.findall(r"^-- ", r.stdout, re.M))
    assert parts >= 8
    # --step: a pause before each part of a lesson and before each lesson.
    assert r.stdout.count("[Enter: ") == (parts + len(lessons(r.stdout)) - 1 if "--step" in args else 0)
    if balancer == "nginx":
        assert "nginx has no sticky cookie" in r.stdout
    if not harness.SANITIZED and idle():
        assert r.elapsed < 120, f"the demo took {r.elapsed:.0f} s"
    assert leftovers(tmp_path) == []
    assert not sanitizer_reports(tmp_path)


def test_narrow_and_wide_terminals(tmp_path):
    """Lesson 3 (the longest lines) fitted to 60 and 120 columns."""
    need("ours")
    for cols in (60, 120):
        r = run_demo(tmp_path, "--lesson", "3", COLUMNS=str(cols))
        assert r.returncode == 0, r.stdout + r.stderr
        assert max(len(line) for line in r.stdout.splitlines()) <= cols
        assert len(requests(r.stdout, "/profile")) == 6
    assert leftovers(tmp_path) == []


def test_show_http_and_a_pause_per_request(tmp_path):
    """--show-http: under each request the headers that carry the credential and the answer;
    --step-requests: Enter after every request."""
    need("ours")
    r = run_demo(tmp_path, "--lesson", "1", "--show-http", "--step-requests", input="\n" * 40,
                 COLUMNS="80")
    assert r.returncode == 0, r.stdout + r.stderr
    reqs = requests(r.stdout)
    assert len(reqs) == 7
    assert r.stdout.count("[Enter: next request]") == 7
    assert len(re.findall(r"^      > Cookie: sid=[\w-]+$", r.stdout, re.M)) == 6
    served = re.findall(r"^      < X-Served-By: (app\d)$", r.stdout, re.M)
    assert served == [x[1] for x in reqs]
    # The hops' 401s delete the cookie: the lesson's cascade, visible in the raw view.
    assert len(re.findall(r"^      < Set-Cookie: sid=; .*Max-Age=0", r.stdout, re.M)) == 4
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert leftovers(tmp_path) == []


def run_pasted(demo_dir, line):
    """Runs a printed curl line in a new shell that sourced the demo's env file, as a teacher
    pasting it would; returns (exit status, parsed JSON body or None)."""
    p = subprocess.run(["bash", "-c", '. "$1" && eval "$2"', "paste", str(demo_dir / "env"),
                        line + " -s --max-time 10"], capture_output=True, text=True, timeout=30)
    try:
        body = json.loads(p.stdout)
    except ValueError:
        body = None
    return p.returncode, body


def test_printed_curl_lines_work_when_pasted(tmp_path):
    """--step: at each pause the clusters of the part just shown are up; every curl line printed
    so far is run as printed (after `. $DEMO_DIR/env`) and must reach a server that answers
    JSON: the user for a line the demo showed as 200, an error for one it showed as 4xx/5xx."""
    need("ours")
    p = subprocess.Popen([SCRIPT, "--lesson", "4", "--step"], env=env_for(tmp_path, COLUMNS="80"),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    out, tried, answered = b"", 0, 0
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
            # Act once per prompt: the demo ends a prompt's line after reading Enter, and that
            # newline may arrive alone, behind a prompt already answered (slow builds).
            prompts = out.count(b"[Enter:")
            if prompts == answered or not out.rstrip().endswith(b"]"):
                continue
            answered = prompts
            text = out.decode()
            pending = requests(text)[tried:]
            for cmd, server, status, detail in pending:
                if cmd.endswith("/login") or "$URL/logout" in cmd:
                    tried += 1
                    continue        # a second login or logout would change the story
                rc, body = run_pasted(tmp_path, cmd)
                assert rc == 0 and body is not None, (cmd, rc, body)
                if status == 200:
                    assert "username" in body, (cmd, body)
                else:
                    assert body.get("error") == detail, (cmd, body)
                tried += 1
            p.stdin.write(b"\n")
            p.stdin.flush()
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=60)
    assert p.returncode == 0, out.decode()[-2000:] + p.stderr.read().decode()
    assert tried >= 2 * 3 + 2, out.decode()
    assert leftovers(tmp_path) == []


def test_lesson_one_with_four_instances(tmp_path):
    need("ours")
    r = run_demo(tmp_path, "--lesson", "1", "--instances", "4")
    assert r.returncode == 0, r.stdout + r.stderr
    ls = lessons(r.stdout)
    assert list(ls) == [1]
    check_round_robin_memory(ls[1], 4)
    assert leftovers(tmp_path) == []
    assert not sanitizer_reports(tmp_path)


def test_wrong_store_makes_memory_lesson_fail_loudly(tmp_path):
    """The memory lesson pointed at the Redis store: every request succeeds, which is not the
    story, so the self-check must stop the demo and must not print the lesson's conclusion."""
    need("ours")
    r = run_demo(tmp_path, "--lesson", "1", DEMO_VARIANT_MEMORY="session-redis")
    assert r.returncode == 1
    assert "DEMO FAILED in lesson 1" in r.stderr
    assert re.search(r"request \d on app\d, which never saw the login: expected 401, got 200", r.stderr)
    assert "=>" not in r.stdout and "checks passed" not in r.stdout
    # What did happen is still shown honestly: 200s from a server that never saw the login.
    reqs = requests(lessons(r.stdout)[1], "/profile")
    assert reqs and reqs[0][2] == 200
    assert leftovers(tmp_path) == []
    assert not sanitizer_reports(tmp_path)


def test_missing_deny_list_makes_logout_lesson_fail(tmp_path):
    need("ours")
    r = run_demo(tmp_path, "--lesson", "6", DEMO_VARIANT_REVOKE="jwt-hs256")
    assert r.returncode == 1
    assert "DEMO FAILED in lesson 6" in r.stderr
    assert "revoked token: requests answered 401: expected 3, got 0" in r.stderr
    assert "with the deny-list the token is refused everywhere" not in r.stdout
    assert leftovers(tmp_path) == []
    assert not sanitizer_reports(tmp_path)


def test_cluster_that_cannot_start_fails_clearly(tmp_path):
    need("ours")
    fake = tmp_path / "bin"
    fake.mkdir()
    for prog in ("authctl", "balancer", "session_server"):
        os.symlink(harness.binary(prog), fake / prog)
    (fake / "jwt_server").write_text("#!/bin/sh\necho 'jwt_server: refusing to start' >&2\nexit 1\n")
    (fake / "jwt_server").chmod(0o755)
    r = run_demo(tmp_path / "run", "--lesson", "3", AUTH_BIN=str(fake))
    assert r.returncode == 1
    assert "DEMO FAILED in lesson 3" in r.stderr and "could not start the jwt-hs256 cluster" in r.stderr
    assert "refusing to start" in r.stderr
    assert leftovers(tmp_path) == []
    assert not sanitizer_reports(tmp_path)


def test_interrupt_leaves_nothing(tmp_path):
    """Ctrl-C in the middle of the demo (SIGINT to the whole foreground process group)."""
    need("ours")
    p = subprocess.Popen([SCRIPT], env=env_for(tmp_path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "session-redis" / "cluster.env").exists() and time.monotonic() < deadline:
        assert p.poll() is None, p.communicate()
        time.sleep(0.05)
    assert leftovers(tmp_path), "the demo's clusters should be running now"
    os.killpg(p.pid, signal.SIGINT)
    p.communicate(timeout=60)
    assert p.returncode != 0
    assert leftovers(tmp_path) == []
    assert not sanitizer_reports(tmp_path)


def test_serve_keeps_clusters_until_stopped(tmp_path):
    need("ours")
    p = subprocess.Popen([SCRIPT, "--lesson", "4", "--serve"], env=env_for(tmp_path),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    serve = tmp_path / "serve.env"
    deadline = time.monotonic() + 300
    while not (serve.exists() and "MEMORY" in serve.read_text() and "REFRESH" in serve.read_text()) \
            and time.monotonic() < deadline:
        assert p.poll() is None, p.communicate()
        time.sleep(0.1)
    time.sleep(0.5)
    dirs = dict(line.split("=", 1) for line in serve.read_text().split())
    assert set(dirs) == {"SESSION_MEMORY_DIR", "SESSION_STICKY_DIR", "SESSION_REDIS_DIR", "JWT_HS256_DIR",
                         "JWT_REFRESH_DIR"}
    for d in dirs.values():
        env = dict(l.split("=", 1) for l in open(os.path.join(d, "cluster.env")) if "=" in l and l[0] != "#")
        r = harness.request(int(env["BALANCER_PORT"].strip()), "GET", "/healthz", tls=True,
                            cacert=env["CA"].strip())
        assert r.status == 200
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=60)
    assert "Serving" in out and "https://127.0.0.1:" in out
    assert leftovers(tmp_path) == []
    assert not sanitizer_reports(tmp_path)


@pytest.mark.parametrize("args", [["--lesson", "9"], ["--instances", "1"], ["--balancer", "envoy"],
                                  ["--bogus"]])
def test_bad_options(tmp_path, args):
    r = run_demo(tmp_path, *args)
    assert r.returncode == 2 and r.stderr.startswith("demo.sh: ")
    assert not os.listdir(tmp_path)


def test_help(tmp_path):
    r = run_demo(tmp_path, "--help")
    assert r.returncode == 0 and "--lesson K" in r.stdout and "--balancer" in r.stdout
