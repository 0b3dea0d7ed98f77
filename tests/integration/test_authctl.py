"""Black-box tests of authctl: useradd and hash (the users file it writes, the hash strings
checked independently with Python's hashlib.scrypt, passwords kept off argv, terminal prompts
with echo off, the exit codes of the contract), and token sign and verify against a real
jwt_server and tokens made in Python."""
import base64
import hashlib
import hmac
import json
import os
import pty
import select
import stat
import subprocess
import time

import harness

AUTHCTL = harness.binary("authctl")


def run(args, password=None, **kw):
    return subprocess.run([AUTHCTL] + args, input=password, capture_output=True, text=True,
                          timeout=60, **kw)


def b64(s):
    """Standard base64 without padding, as passlib writes it; strict like the C decoder."""
    assert "=" not in s
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def scrypt_matches(password, hash_string):
    """Checks a $scrypt$ string with hashlib.scrypt, independently of our C code."""
    empty, scheme, params, salt, dk = hash_string.split("$")
    assert empty == "" and scheme == "scrypt"
    p = dict(kv.split("=") for kv in params.split(","))
    assert list(p) == ["ln", "r", "p"]
    salt, dk = b64(salt), b64(dk)
    assert len(salt) == 16 and len(dk) == 32
    n, r, par = 2 ** int(p["ln"]), int(p["r"]), int(p["p"])
    got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=par, dklen=32,
                         maxmem=256 * 1024 * 1024)
    return got == dk


def useradd(path, user, password, *flags):
    return run(["useradd", "--users", path, "--ln", "4", *flags, user], password + "\n")


def test_useradd_creates_then_extends(tmp_path):
    path = str(tmp_path / "users.json")
    r = useradd(path, "alice", "alice-pw", "--name", "Alice Liddell", "--email",
                "alice@example.com", "--role", "admin")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        doc = json.load(f)
    [alice] = doc["users"]
    assert alice["username"] == "alice" and alice["name"] == "Alice Liddell"
    assert alice["email"] == "alice@example.com" and alice["role"] == "admin"
    assert alice["password_hash"].startswith("$scrypt$ln=4,r=8,p=1$")
    assert scrypt_matches("alice-pw", alice["password_hash"])

    r = useradd(path, "bob", "bob-pw")
    assert r.returncode == 0, r.stderr
    with open(path) as f:
        doc = json.load(f)
    assert [u["username"] for u in doc["users"]] == ["alice", "bob"]
    assert doc["users"][0] == alice, "the existing entry must be kept as it was"
    bob = doc["users"][1]
    assert bob["role"] == "user" and bob["name"] == "bob" and bob["email"] == ""
    assert scrypt_matches("bob-pw", bob["password_hash"])
    assert not scrypt_matches("alice-pw", bob["password_hash"])
    # The atomic rewrite leaves no temporary file behind.
    assert sorted(os.listdir(tmp_path)) == ["users.json"]


def test_useradd_warns_about_mixed_costs(tmp_path):
    """A file with hashes of different costs lets a timing attacker tell names that exist: the
    servers warn at start-up, and useradd already when it writes such a file."""
    path = str(tmp_path / "users.json")
    r = useradd(path, "alice", "pw")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    r = useradd(path, "bob", "pw")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    r = run(["useradd", "--users", path, "--ln", "5", "carol"], "pw\n")
    assert r.returncode == 0, r.stderr
    assert "added 'carol'" in r.stderr
    assert "warning:" in r.stderr and "different costs" in r.stderr, r.stderr
    assert "2 of 3 users" in r.stderr and "carol (ln=5" in r.stderr, r.stderr


def test_useradd_keeps_mode_and_other_keys(tmp_path):
    path = str(tmp_path / "users.json")
    assert useradd(path, "alice", "pw").returncode == 0
    with open(path) as f:
        doc = json.load(f)
    doc["comment"] = "kept"
    with open(path, "w") as f:
        json.dump(doc, f)
    os.chmod(path, 0o640)
    assert useradd(path, "carol", "pw").returncode == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    with open(path) as f:
        doc = json.load(f)
    assert doc["comment"] == "kept" and len(doc["users"]) == 2


def test_useradd_refuses_duplicate(tmp_path):
    path = str(tmp_path / "users.json")
    assert useradd(path, "alice", "first").returncode == 0
    before = open(path, "rb").read()
    r = useradd(path, "alice", "second")
    assert r.returncode == 1
    assert "alice" in r.stderr and "already exists" in r.stderr
    assert open(path, "rb").read() == before


def test_useradd_refuses_broken_file(tmp_path):
    path = str(tmp_path / "users.json")
    for content in ['{"users": [{"username": "x"}]}', "{not json", '{"users": {}}']:
        with open(path, "w") as f:
            f.write(content)
        r = useradd(path, "alice", "pw")
        assert r.returncode == 1, r.stderr
        assert path in r.stderr
        assert open(path).read() == content, "a broken file must be left alone"


def test_useradd_bad_usernames(tmp_path):
    path = str(tmp_path / "users.json")
    for name in ["", "a b", "-x", ".hidden", 'qu"ote', "a:b", "x" * 65, "caf\u00e9"]:
        r = useradd(path, name, "pw")
        assert r.returncode == 2, (name, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    assert not os.path.exists(path)
    assert useradd(path, "x" * 64, "pw").returncode == 0
    assert useradd(path, "first.last-1_x@example.com", "pw").returncode == 0


def test_password_never_on_argv(tmp_path):
    path = str(tmp_path / "users.json")
    # There is no flag for it and no place for it among the arguments.
    for args in (["useradd", "--users", path, "--password", "pw", "alice"],
                 ["useradd", "--users", path, "alice", "pw"],
                 ["hash", "pw"], ["hash", "--password", "pw"]):
        r = run(args, "")
        assert r.returncode == 2, (args, r.stderr)
    assert not os.path.exists(path)
    # While authctl waits for the password, its command line holds no secret.
    p = subprocess.Popen([AUTHCTL, "useradd", "--users", path, "--ln", "4", "alice"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.2)
        with open(f"/proc/{p.pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        assert b"s3cret-on-stdin" not in b" ".join(argv)
        out, err = p.communicate(b"s3cret-on-stdin\n", timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err
    with open(path) as f:
        assert scrypt_matches("s3cret-on-stdin", json.load(f)["users"][0]["password_hash"])


def test_password_input_errors(tmp_path):
    path = str(tmp_path / "users.json")
    cases = [("", "no password"), ("\n", "must not be empty"), ("a\0b\n", "NUL"),
             ("x" * 257 + "\n", "longer than 256")]
    for stdin, why in cases:
        r = run(["useradd", "--users", path, "--ln", "4", "alice"], stdin)
        assert r.returncode == 1, (stdin[:20], r.stderr)
        assert why in r.stderr
        r = run(["hash", "--ln", "4"], stdin)
        assert r.returncode == 1 and why in r.stderr and r.stdout == ""
    assert not os.path.exists(path)
    # 256 bytes is the longest a login accepts, and a CRLF line ending is not part of it.
    r = run(["hash", "--ln", "4"], "y" * 256 + "\r\n")
    assert r.returncode == 0 and scrypt_matches("y" * 256, r.stdout.strip())


def test_hash_verifies_with_hashlib():
    r = run(["hash", "--ln", "4"], "correct horse battery staple\nignored second line\n")
    assert r.returncode == 0, r.stderr
    h = r.stdout.strip()
    assert r.stdout == h + "\n"
    assert scrypt_matches("correct horse battery staple", h)
    assert not scrypt_matches("correct horse battery stapl", h)
    assert not scrypt_matches("ignored second line", h)
    # A fresh salt each time.
    assert run(["hash", "--ln", "4"], "correct horse battery staple\n").stdout.strip() != h


def test_hash_default_cost_is_owasp():
    r = run(["hash"], "pw\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("$scrypt$ln=17,r=8,p=1$")
    assert scrypt_matches("pw", r.stdout.strip())


def test_hash_written_by_hashlib_loads(tmp_path):
    """A users file whose hash Python made (as passlib would) is accepted by useradd's check."""
    salt = os.urandom(16)
    dk = hashlib.scrypt(b"pw", salt=salt, n=16, r=8, p=1, dklen=32)
    enc = lambda b: base64.b64encode(b).decode().rstrip("=")
    path = str(tmp_path / "users.json")
    with open(path, "w") as f:
        json.dump({"users": [{"username": "py", "name": "", "email": "", "role": "user",
                              "password_hash": f"$scrypt$ln=4,r=8,p=1${enc(salt)}${enc(dk)}"}]}, f)
    assert useradd(path, "alice", "pw").returncode == 0
    assert useradd(path, "py", "pw").returncode == 1


def pty_run(args, typed):
    """Runs authctl with a terminal as stdin and stderr; types each line after a prompt.
    Returns (exit code, stdout, everything the terminal showed)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([AUTHCTL] + args, stdin=slave, stderr=slave, stdout=subprocess.PIPE)
    os.close(slave)
    shown = b""
    try:
        for line in typed:
            deadline = time.monotonic() + 10
            while not shown.rstrip().endswith(b":") and time.monotonic() < deadline:
                if select.select([master], [], [], 0.2)[0]:
                    shown += os.read(master, 1024)
            assert shown.rstrip().endswith(b":"), shown
            os.write(master, line.encode() + b"\n")
            time.sleep(0.1)
            if select.select([master], [], [], 0.5)[0]:
                shown += os.read(master, 1024)
        out, _ = p.communicate(timeout=30)
        while select.select([master], [], [], 0.1)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        p.kill()
        os.close(master)
    return p.returncode, out.decode(), shown.decode(errors="replace")


def test_terminal_prompt_without_echo(tmp_path):
    code, out, shown = pty_run(["hash", "--ln", "4"], ["typed-secret"])
    assert code == 0, shown
    assert "Password" in shown and "typed-secret" not in shown
    assert scrypt_matches("typed-secret", out.strip())

    path = str(tmp_path / "users.json")
    code, out, shown = pty_run(["useradd", "--users", path, "--ln", "4", "dora"], ["one", "two"])
    assert code == 1 and "differ" in shown
    assert not os.path.exists(path)
    code, out, shown = pty_run(["useradd", "--users", path, "--ln", "4", "dora"], ["pw-x", "pw-x"])
    assert code == 0, shown
    assert "pw-x" not in shown
    with open(path) as f:
        assert scrypt_matches("pw-x", json.load(f)["users"][0]["password_hash"])


def test_help_version_and_bad_flags(tmp_path):
    for args in (["--help"], ["useradd", "--help"], ["hash", "--help"]):
        r = run(args)
        assert r.returncode == 0 and r.stdout.startswith("usage:"), (args, r)
    assert "useradd" in run(["--help"]).stdout
    for args in (["--version"], ["useradd", "--version"], ["hash", "--version"]):
        r = run(args)
        assert r.returncode == 0 and r.stdout.startswith("authctl"), (args, r)
    path = str(tmp_path / "users.json")
    for args in ([], ["--bogus"], ["nope"], ["useradd", "--bogus", "x"], ["useradd", "alice"],
                 ["useradd", "--users"], ["useradd", "--users", path, "a", "b"],
                 ["useradd", "--users", path, "--ln", "0", "a"],
                 ["useradd", "--users", path, "--ln", "21", "a"],
                 ["useradd", "--users", path, "--role", "", "a"],
                 ["useradd", "--users", path, "--name", "\udcff", "a"],
                 ["hash", "--ln", "abc"], ["hash", "--ln"], ["hash", "extra"]):
        r = run(args, "pw\n", errors="surrogateescape")
        assert r.returncode == 2, (args, r)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert r.stdout == ""
    assert not os.path.exists(path)


# ---- authctl token sign and verify, against a real jwt_server ----

def keyfile(tmp_path, kind, name):
    path = str(tmp_path / name)
    r = run(["keygen", kind, "--out", path])
    assert r.returncode == 0, r.stderr
    return path


def sign(*flags):
    return run(["token", "sign", *flags])


def jwt_server(users, *keyargs):
    port = harness.free_port()
    return harness.Proc([harness.binary("jwt_server"), "--listen", f"127.0.0.1:{port}",
                         "--id", "minted", "--users", users, *keyargs], port=port,
                        name="jwt_server")


def profile(port, tok):
    return harness.request(port, "GET", "/profile", headers={"Authorization": "Bearer " + tok})


def payload_of(tok):
    return json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))


def test_token_sign_accepted_by_a_server_with_the_same_key(tmp_path, users_file):
    """HS256: whoever holds the secret mints tokens for any user; a server takes them as its
    own. A token from another secret, or with the wrong audience or kid, is refused."""
    secret = keyfile(tmp_path, "hs256", "cluster-secret")
    other = keyfile(tmp_path, "hs256", "other-secret")
    srv = jwt_server(users_file, "--secret-file", secret)
    try:
        r = sign("--secret-file", secret, "--sub", "bob", "--role", "admin", "--ttl", "60")
        assert r.returncode == 0, r.stderr
        tok = r.stdout.strip()
        assert r.stdout == tok + "\n" and tok.count(".") == 2
        c = payload_of(tok)
        assert c["sub"] == "bob" and c["role"] == "admin" and c["exp"] - c["iat"] == 60
        assert c["iss"] == c["aud"] == "auth-demo" and abs(c["iat"] - time.time()) < 60
        got = profile(srv.port, tok)
        assert got.status == 200, got
        # The profile comes from the users file, not from the minted claims.
        assert got.json()["username"] == "bob" and got.json()["role"] == "user"
        # Two mints are two tokens (a fresh jti each).
        assert payload_of(sign("--secret-file", secret, "--sub", "bob").stdout)["jti"] != c["jti"]

        # Each refusal with its reason, which the server tells in error_description.
        refused = {
            "key": sign("--secret-file", other, "--sub", "bob"),
            "audience": sign("--secret-file", secret, "--sub", "bob", "--audience", "x"),
            "issued by": sign("--secret-file", secret, "--sub", "bob", "--issuer", "x"),
        }
        for words, r in refused.items():
            assert r.returncode == 0, r.stderr
            got = profile(srv.port, r.stdout.strip())
            assert got.status == 401 and got.json()["error"] == "invalid_token", got
            assert words in got.header("WWW-Authenticate"), (words, got)
        # The same secret under a kid the server does not know is refused as well.
        r = sign("--secret-file", secret, "--sub", "bob", "--kid", "someone-else")
        assert profile(srv.port, r.stdout.strip()).status == 401
    finally:
        assert srv.stop() == 0


def test_token_sign_es256_and_public_keys(tmp_path, users_file):
    """ES256: the private key mints tokens a verify-only server accepts; the public key cannot
    mint anything."""
    key = keyfile(tmp_path, "es256", "es")
    srv = jwt_server(users_file, "--verify-key", key + ".pub")
    try:
        r = sign("--key", key, "--sub", "alice")
        assert r.returncode == 0, r.stderr
        assert json.loads(base64.urlsafe_b64decode(r.stdout.split(".")[0] + "=="))["alg"] == "ES256"
        got = profile(srv.port, r.stdout.strip())
        assert got.status == 200 and got.json()["username"] == "alice", got
        r = sign("--key", key + ".pub", "--sub", "alice")
        assert r.returncode == 1 and r.stdout == ""
        assert "public key" in r.stderr and "not sign" in r.stderr
    finally:
        assert srv.stop() == 0


def test_token_sign_usage(tmp_path):
    secret = keyfile(tmp_path, "hs256", "s")
    for args in ([], ["--sub", "alice"], ["--secret-file", secret],
                 ["--secret-file", secret, "--key", secret, "--sub", "a"],
                 ["--secret-file", secret, "--sub", ""], ["--secret-file", secret, "--sub"],
                 ["--secret-file", secret, "--sub", "a", "--ttl", "0"],
                 ["--secret-file", secret, "--sub", "a", "--kid", "k" * 65],
                 ["--secret-file", secret, "--sub", "a", "extra"],
                 ["--secret-file", str(tmp_path / "missing"), "--sub", "a"],
                 ["--secret", "inline-secret-is-never-taken", "--sub", "a"]):
        r = sign(*args)
        assert r.returncode == 2, (args, r)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == "", (args, r)
    assert "sign" in run(["token", "--help"]).stdout


def hs256_token(secret_path, claims, kid=None):
    """A token made here in Python, independently of authctl; kid defaults to the one our
    code derives from the secret (a MAC of "jwt-kid" under it, first 16 bytes)."""
    with open(secret_path, "rb") as f:
        secret = f.read().rstrip(b"\n")
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    if kid is None:
        kid = enc(hmac.new(secret, b"jwt-kid", hashlib.sha256).digest()[:16])
    head = enc(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = enc(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{enc(mac)}", kid


def test_token_verify_wrong_key_says_it_did_not_sign(tmp_path):
    """verify with the wrong secret talks to the person who gave the key, not as a server."""
    secret = keyfile(tmp_path, "hs256", "right")
    wrong = keyfile(tmp_path, "hs256", "wrong")
    now = int(time.time())
    claims = {"sub": "alice", "iss": "auth-demo", "aud": "auth-demo", "iat": now,
              "exp": now + 60}
    tok, right_kid = hs256_token(secret, claims)
    r = run(["token", "verify", "--secret-file", secret, tok])
    assert r.returncode == 0 and r.stdout.startswith("valid\n"), r
    r = run(["token", "verify", "--secret-file", wrong, tok])
    assert r.returncode == 1, r
    line = r.stdout.strip()
    assert line.startswith("invalid: unknown_key: ") and "did not sign this token" in line, line
    assert "server" not in line, line
    assert right_kid in line, line
    # The same secret under another kid: the kids differ, and the line names both.
    tok2, _ = hs256_token(secret, claims, kid="elsewhere")
    line = run(["token", "verify", "--secret-file", secret, tok2]).stdout.strip()
    assert "did not sign" in line and "elsewhere" in line and right_kid in line, line
    # The right kid but a wrong secret behind it: the signature does not match.
    tok3, _ = hs256_token(wrong, claims, kid=right_kid)
    line = run(["token", "verify", "--secret-file", secret, tok3]).stdout.strip()
    assert line.startswith("invalid: bad_signature: ") and "did not sign" in line, line
    # A key of another algorithm.
    es = keyfile(tmp_path, "es256", "es")
    line = run(["token", "verify", "--key", es + ".pub", tok]).stdout.strip()
    assert line.startswith("invalid: alg_not_allowed: ") and "HS256" in line and "ES256" in line
    assert "server" not in line
