"""Interoperability with an independent JWT implementation, Debian's python3-jwt (PyJWT), both
ways: tokens jwt_server issues verify in PyJWT with the right key, issuer and audience; tokens
PyJWT signs with our keys verify in jwt_server and in `authctl token verify`; tampered tokens
fail on both sides."""
import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import time
import uuid

import jwt as pyjwt
import pytest

from harness import binary
from test_jwt_server import b64d, b64e, keygen, profile, start, token_of

ALGS = {"hs256": "HS256", "rsa": "RS256", "es256": "ES256", "ed25519": "EdDSA"}


def key_material(path, kind):
    """What PyJWT needs: the secret's bytes (one trailing newline dropped, as jwt_server does),
    or the PEM text."""
    with open(path, "rb") as f:
        data = f.read()
    return data.rstrip(b"\n") if kind == "hs256" else data


def claims(**over):
    now = int(time.time())
    c = {"sub": "alice", "name": "Alice Example", "role": "admin", "iss": "auth-demo",
         "aud": "auth-demo", "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    c.update(over)
    return c


def tamper(tok):
    h, p, s = tok.split(".")
    c = json.loads(b64d(p))
    c["role"] = "superuser"
    return ".".join([h, b64e(json.dumps(c).encode()), s])


def authctl_verify(keyfile, tok, *extra):
    return subprocess.run([binary("authctl"), "token", "verify", "--key", keyfile,
                           "--issuer", "auth-demo", "--audience", "auth-demo", *extra, "-"],
                          input=tok, capture_output=True, text=True, timeout=30)


@pytest.fixture(params=list(ALGS))
def instance(request, tmp_path, users_file):
    kind = request.param
    key = keygen(tmp_path, kind)
    flag = "--secret-file" if kind == "hs256" else "--key"
    p = start(users_file, flag, key)
    yield kind, key, p
    assert p.stop() == 0


def test_our_tokens_verify_in_pyjwt(instance):
    kind, key, p = instance
    verify_key = key_material(key if kind == "hs256" else key + ".pub", kind)
    tok = token_of(p.port)
    got = pyjwt.decode(tok, verify_key, algorithms=[ALGS[kind]], audience="auth-demo",
                       issuer="auth-demo", options={"require": ["exp", "iat", "iss", "aud", "sub"]})
    assert got["sub"] == "alice" and got["role"] == "admin"
    assert pyjwt.get_unverified_header(tok)["alg"] == ALGS[kind]
    with pytest.raises(pyjwt.InvalidAudienceError):
        pyjwt.decode(tok, verify_key, algorithms=[ALGS[kind]], audience="someone-else")
    with pytest.raises(pyjwt.InvalidIssuerError):
        pyjwt.decode(tok, verify_key, algorithms=[ALGS[kind]], audience="auth-demo",
                     issuer="someone-else")
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(tamper(tok), verify_key, algorithms=[ALGS[kind]], audience="auth-demo")


def test_pyjwt_tokens_verify_here(instance):
    kind, key, p = instance
    sign_key = key_material(key, kind)
    tok = pyjwt.encode(claims(), sign_key, algorithm=ALGS[kind])
    r = profile(p.port, token=tok)
    assert r.status == 200 and r.json()["username"] == "alice", r
    r = authctl_verify(key if kind == "hs256" else key + ".pub", tok)
    assert r.returncode == 0 and r.stdout.startswith("valid"), r
    # With the kid our server would put there, too.
    kid = pyjwt.get_unverified_header(token_of(p.port))["kid"]
    tok2 = pyjwt.encode(claims(), sign_key, algorithm=ALGS[kind], headers={"kid": kid})
    assert profile(p.port, token=tok2).status == 200
    # Tampered, expired, and for another audience: refused with the exact reason.
    bad = tamper(tok)
    assert profile(p.port, token=bad).status == 401
    r = authctl_verify(key if kind == "hs256" else key + ".pub", bad)
    assert r.returncode == 1 and r.stdout.startswith("invalid: bad_signature"), r
    old = pyjwt.encode(claims(iat=1000, exp=2000), sign_key, algorithm=ALGS[kind])
    assert profile(p.port, token=old).json()["error"] == "token_expired"
    r = authctl_verify(key if kind == "hs256" else key + ".pub", old)
    assert r.returncode == 1 and "expired" in r.stdout
    other = pyjwt.encode(claims(aud=["x", "y"]), sign_key, algorithm=ALGS[kind])
    assert profile(p.port, token=other).status == 401
    r = authctl_verify(key if kind == "hs256" else key + ".pub", other)
    assert r.returncode == 1 and "wrong_audience" in r.stdout
    arr = pyjwt.encode(claims(aud=["x", "auth-demo"]), sign_key, algorithm=ALGS[kind])
    assert profile(p.port, token=arr).status == 200


def test_pyjwt_none_and_key_confusion_refused(tmp_path):
    key = keygen(tmp_path, "rsa")
    pub = key_material(key + ".pub", "rsa")
    none = pyjwt.encode(claims(), None, algorithm="none")
    r = authctl_verify(key + ".pub", none)
    assert r.returncode == 1 and "alg_not_allowed" in r.stdout, r
    # The classic attack: HS256 keyed with the public PEM. PyJWT itself refuses to make this
    # token, so it is built by hand.
    h = b64e(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64e(json.dumps(claims()).encode())
    sig = hmac.new(pub, f"{h}.{p}".encode(), hashlib.sha256).digest()
    r = authctl_verify(key + ".pub", f"{h}.{p}.{b64e(sig)}")
    assert r.returncode == 1 and "alg_not_allowed" in r.stdout, r


def test_authctl_decode_shows_without_verifying(tmp_path):
    secret = keygen(tmp_path, "hs256")
    tok = pyjwt.encode(claims(exp=2000000000), key_material(secret, "hs256"), algorithm="HS256")
    r = subprocess.run([binary("authctl"), "token", "decode", tok], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r
    out = json.loads(r.stdout)
    assert out["header"] == {"alg": "HS256", "typ": "JWT"}
    assert out["payload"]["sub"] == "alice"
    assert out["dates"]["exp"] == "2033-05-18T03:33:20Z"
    assert out["signature"]["bytes"] == 32 and out["signature"]["verified"].startswith("no")
    r = subprocess.run([binary("authctl"), "token", "decode", "a.b"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "not a JWS" in r.stderr
    r = subprocess.run([binary("authctl"), "token", "frobnicate"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2


def test_keygen_files(tmp_path):
    secret = keygen(tmp_path, "hs256")
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert len(base64.urlsafe_b64decode(open(secret).read().strip() + "=")) == 32
    key = keygen(tmp_path, "ed25519")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert open(key + ".pub").read().startswith("-----BEGIN PUBLIC KEY-----")
    r = subprocess.run([binary("authctl"), "keygen", "hs256", "--out", secret],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "exists" in r.stderr      # never overwrites a key
    r = subprocess.run([binary("authctl"), "keygen", "rsa", "--bits", "1024", "--out",
                        str(tmp_path / "weak")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
