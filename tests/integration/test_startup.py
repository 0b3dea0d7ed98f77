"""What the programs say at start-up. A users file the login servers cannot use, or an address
a program cannot listen on, is a fatal error and the line says so (not "warning"), exit 1; a hash
that costs too much is refused naming its entry; hashes of mixed costs get a warning (an unknown
name pays the dearest one, so the cheaper users can be told apart by timing)."""
import json
import socket
import subprocess

import pytest

import harness

SERVERS = ["session_server", "jwt_server"]
DEAR = ("$scrypt$ln=20,r=15,p=16$AAECAwQFBgcICQoLDA0ODw$"
        "22tmw7TO8hLX4foyTe+1G4BqDUFxxBmYej5x8fpaxI8")


def argv(server, users, tmp_path, port=None):
    args = [harness.binary(server), "--listen", f"127.0.0.1:{port or harness.free_port()}",
            "--id", "t", "--users", users]
    if server == "jwt_server":
        key = tmp_path / "hs256.key"
        key.write_bytes(b"k" * 48)
        key.chmod(0o600)
        args += ["--secret-file", str(key)]
    return args


def start_fails(server, users, tmp_path):
    r = subprocess.run(argv(server, users, tmp_path), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    # jwt_server first says which key it loaded; then one line, the error.
    assert "warning:" not in r.stderr, r.stderr
    return r.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("server", SERVERS)
def test_missing_users_file_is_fatal(tmp_path, server):
    line = start_fails(server, str(tmp_path / "nope.json"), tmp_path)
    assert "fatal: " in line and "warning" not in line and "nope.json: cannot open" in line


@pytest.mark.parametrize("server", SERVERS)
def test_too_costly_hash_is_refused_naming_the_entry(tmp_path, server):
    users = harness.make_users(str(tmp_path / "users.json"), users=("alice",))
    with open(users) as f:
        doc = json.load(f)
    doc["users"].append(dict(doc["users"][0], username="eve", password_hash=DEAR))
    with open(users, "w") as f:
        json.dump(doc, f)
    line = start_fails(server, users, tmp_path)
    assert "fatal: " in line and "users[1] (eve)" in line and "costs too much" in line, line


def test_mixed_costs_are_warned_about_at_start(tmp_path):
    users = str(tmp_path / "users.json")
    harness.make_users(users, users=("alice", "bob"), ln=4)
    harness.make_users(users, users=("carol",), ln=6)
    port = harness.free_port()
    p = harness.Proc(argv("session_server", users, tmp_path, port), port=port)
    try:
        logs = p.logs()
    finally:
        assert p.stop() == 0
    warn = [x for x in logs.splitlines() if "warning:" in x]
    assert len(warn) == 1, logs
    assert "2 of 3 users" in warn[0] and "carol (ln=6,r=8,p=1)" in warn[0], warn[0]
    # One cost for all: no warning.
    same = str(tmp_path / "same.json")
    harness.make_users(same, ln=4)
    port = harness.free_port()
    p = harness.Proc(argv("session_server", same, tmp_path, port), port=port)
    try:
        assert "warning:" not in p.logs()
    finally:
        assert p.stop() == 0


@pytest.mark.parametrize("program", SERVERS + ["balancer", "balancer --admin"])
def test_address_in_use_is_fatal(tmp_path, program, users_file):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = "127.0.0.1:%d" % taken.getsockname()[1]
        if program == "balancer":
            args = [harness.binary("balancer"), "--listen", addr, "--backend", "127.0.0.1:1"]
        elif program == "balancer --admin":
            args = [harness.binary("balancer"), "--listen", f"127.0.0.1:{harness.free_port()}",
                    "--backend", "127.0.0.1:1", "--admin", addr]
        else:
            args = argv(program, users_file, tmp_path)
            args[args.index("--listen") + 1] = addr
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    assert "warning:" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "fatal: " in last and f"cannot listen on {addr}" in last, r.stderr
