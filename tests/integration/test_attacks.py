"""Attack suite against a running jwt_server, in the spirit of the jwt_tool scanner (RFC 8725):
alg none in every spelling, empty, truncated and non-canonical signatures, key confusion with the
public key as HMAC secret, injected jwk/jku/x5u/x5c/kid, crit, duplicate members, claims of every
wrong JSON type, bad times, oversized and deeply nested tokens, odd Authorization headers.

Two servers run for the whole module: one with an HS256 secret file, one with an ES256 key from
`authctl keygen es256`. Tokens are forged here with the real keys where that makes the attack
stronger (the server must refuse the token for what it says, not because the signature is off);
positive controls show the forging itself is right. Every case must get 401 (or 400), never a
5xx, the server must still be alive, and a valid token must still work right afterwards."""
import base64
import datetime
import hashlib
import hmac
import json
import os
import socket
import subprocess
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

import harness

ISSUER = AUDIENCE = "auth-demo"  # jwt_server's defaults


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(part):
    """A token segment from a dict (compact JSON) or from raw JSON text."""
    if isinstance(part, dict):
        part = json.dumps(part, separators=(",", ":"))
    return b64u(part)


def hs256(signing_input, key):
    return hmac.new(key, signing_input.encode(), hashlib.sha256).digest()


def es256(signing_input, priv):
    r, s = utils.decode_dss_signature(priv.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def token(header, payload, sign=None):
    """header.payload signed by sign(signing_input) -> bytes (None: empty signature)."""
    si = seg(header) + "." + seg(payload)
    return si + "." + (b64u(sign(si)) if sign else "")


def non_canonical_tail(s):
    """The same bytes in another spelling: sets an unused trailing bit of the last character."""
    abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(s) % 4 in (2, 3)
    v = abc.index(s[-1])
    assert v & 1 == 0
    return s[:-1] + abc[v | 1]


class Server:
    def __init__(self, kind, tmp, users):
        self.kind = kind
        key = os.path.join(tmp, kind + ".key")
        subprocess.run([harness.binary("authctl"), "keygen", kind, "--out", key], check=True,
                       capture_output=True, timeout=60)
        self.port = harness.free_port()
        flag = "--secret-file" if kind == "hs256" else "--key"
        self.proc = harness.Proc([harness.binary("jwt_server"), "--listen", f"127.0.0.1:{self.port}",
                                  "--id", "atk-" + kind, "--users", users, flag, key, "--quiet"],
                                 port=self.port)
        with open(key, "rb") as f:
            raw = f.read()
        if kind == "hs256":
            # The file's bytes with one trailing newline dropped are the key (jwt.h).
            self.secret = raw[:-1] if raw.endswith(b"\n") else raw
            self.sign = lambda si: hs256(si, self.secret)
            self.alg = "HS256"
        else:
            self.priv = serialization.load_pem_private_key(raw, None)
            with open(key + ".pub", "rb") as f:
                self.pub_pem = f.read()
            self.sign = lambda si: es256(si, self.priv)
            self.alg = "ES256"
        r = harness.request(self.port, "POST", "/login",
                            body={"username": "alice", "password": harness.PASSWORDS["alice"]})
        assert r.status == 200, r
        self.valid = r.json()["access_token"]
        self.kid = json.loads(base64.urlsafe_b64decode(self.valid.split(".")[0] + "==")).get("kid")

    def claims(self, **over):
        now = int(time.time())
        c = {"sub": "alice", "name": "Alice", "role": "admin", "iss": ISSUER, "aud": AUDIENCE,
             "iat": now, "exp": now + 600, "jti": "attack-" + os.urandom(6).hex()}
        for k, v in over.items():
            if v is DROP:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def header(self, **over):
        h = {"alg": self.alg, "typ": "JWT"}
        h.update(over)
        return {k: v for k, v in h.items() if v is not DROP}

    def forge(self, header=None, payload=None):
        """A token with our header and claims, signed with the server's real key."""
        return token(header if header is not None else self.header(),
                     payload if payload is not None else self.claims(), self.sign)


DROP = object()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("attacks"))
    users = harness.make_users(os.path.join(tmp, "users.json"), users=("alice", "bob"))
    srv = {k: Server(k, tmp, users) for k in ("hs256", "es256")}
    yield srv
    for s in srv.values():
        assert s.proc.stop() == 0, s.proc.logs()


def profile(srv, headers):
    return harness.request(srv.port, "GET", "/profile", headers=headers)


def assert_still_serving(srv):
    assert srv.proc.alive(), srv.proc.logs()[-3000:]
    r = profile(srv, {"Authorization": "Bearer " + srv.valid})
    assert r.status == 200 and r.json()["username"] == "alice", r


def assert_refused(srv, r, allowed=(400, 401)):
    assert r.status in allowed, r
    if r.status == 401:
        body = r.json()
        assert body["error"] and body["message"], r
        assert "Bearer" in (r.header("WWW-Authenticate") or ""), r
    assert_still_serving(srv)


def assert_token_refused(srv, tok, allowed=(400, 401)):
    r = profile(srv, {"Authorization": "Bearer " + tok})
    assert_refused(srv, r, allowed)
    if r.status == 401:
        assert 'error="invalid_token"' in r.header("WWW-Authenticate"), r
    # The same token in the access_token cookie must fare no better.
    if all(c.isalnum() or c in "-_." for c in tok) and len(tok) < 4000:
        assert_refused(srv, profile(srv, {"Cookie": "access_token=" + tok}), allowed)


# ---- Positive controls: the forging machinery makes tokens the server accepts ----

@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_control_forged_token_with_real_key_is_accepted(servers, kind):
    srv = servers[kind]
    for tok in (srv.valid, srv.forge(), srv.forge(srv.header(kid=srv.kid))):
        r = profile(srv, {"Authorization": "Bearer " + tok})
        assert r.status == 200 and r.json()["auth"] == "jwt", r
        assert profile(srv, {"Cookie": "access_token=" + tok}).status == 200


# ---- alg none and algorithm games ----

NONE_SPELLINGS = ["none", "None", "NONE", "nOnE", "noNe", "none ", " none", "none\u0000", "",
                  "nonE", "NoNe"]


@pytest.mark.parametrize("kind", ["hs256", "es256"])
@pytest.mark.parametrize("alg", NONE_SPELLINGS)
def test_alg_none_every_spelling(servers, kind, alg):
    srv = servers[kind]
    h = {"alg": alg, "typ": "JWT"}
    c = srv.claims()
    assert_token_refused(srv, token(h, c))                               # empty signature
    assert_token_refused(srv, token(h, c) + srv.valid.split(".")[2])     # a real signature
    assert_token_refused(srv, token(h, c, srv.sign))                     # signed anyway
    assert_token_refused(srv, token(h, c)[:-1])                          # no third segment


@pytest.mark.parametrize("kind", ["hs256", "es256"])
@pytest.mark.parametrize("alg", [None, 256, ["HS256"], {"HS256": 1}, True, "hs256", "HS256 ",
                                 "HS384", "HS512", "RS256", "PS256", "ES384", "EdDSA", "ES256K",
                                 "HS256\u0000", "dir"])
def test_wrong_alg_values(servers, kind, alg):
    srv = servers[kind]
    if alg == srv.alg:
        pytest.skip("that is the right alg")
    h = srv.header(alg=alg)
    assert_token_refused(srv, token(h, srv.claims(), srv.sign))
    assert_token_refused(srv, token(srv.header(alg=DROP), srv.claims(), srv.sign))


def test_hs256_token_on_es256_server_signed_with_public_key(servers):
    """Key confusion (CVE-2016-10555 style): the public key as the HMAC secret."""
    srv = servers["es256"]
    pem = srv.pub_pem
    der = srv.priv.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    point = srv.priv.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
    jwks = harness.request(srv.port, "GET", "/.well-known/jwks.json")
    secrets = [pem, pem.rstrip(b"\n"), pem + b"\n", der, point, jwks.body]
    for secret in secrets:
        for h in ({"alg": "HS256", "typ": "JWT"}, {"alg": "HS256", "kid": srv.kid}):
            assert_token_refused(srv, token(h, srv.claims(), lambda si: hs256(si, secret)))


def test_es256_server_refuses_der_zero_and_mangled_signatures(servers):
    srv = servers["es256"]
    h, c = srv.header(), srv.claims()
    si = seg(h) + "." + seg(c)
    der = srv.priv.sign(si.encode(), ec.ECDSA(hashes.SHA256()))
    good = es256(si, srv.priv)
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for sig in (der,                                  # ASN.1 DER instead of R||S
                bytes(64),                            # r = s = 0 ("psychic signatures")
                n.to_bytes(32, "big") * 2,            # r = s = n
                good[:32] + n.to_bytes(32, "big"),    # s = n
                good[:63], good + b"\0", good[32:] + good[:32], b"\xff" * 64):
        assert_token_refused(srv, si + "." + b64u(sig))


# ---- Signatures: empty, truncated, altered, non-canonical ----

@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_empty_truncated_and_altered_signatures(servers, kind):
    srv = servers[kind]
    h, p, s = srv.valid.split(".")
    cases = [h + "." + p + ".", h + "." + p, h + "." + p + "..", h + "." + p + "." + s[:-1],
             h + "." + p + "." + s[:len(s) // 2], h + "." + p + "." + s + "A",
             h + "." + p + "." + s + "AAAA", h + "." + p + "." + s[1:],
             h + "." + p + "." + ("A" if s[0] != "A" else "B") + s[1:],
             h + "." + p + "." + s + "." + s, "." + p + "." + s, h + ".." + s, "..",
             h + "." + p[:-1] + "." + s, h[:-1] + "." + p + "." + s, h, "", ".",
             srv.valid + " ", srv.valid.replace(".", "..", 1)]
    # The signature of another valid token (another jti) over this header and payload.
    cases.append(h + "." + p + "." + srv.forge().split(".")[2])
    for tok in cases:
        if tok.strip() == srv.valid:
            continue
        assert_token_refused(srv, tok)


@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_non_canonical_base64url(servers, kind):
    """Padding, the standard alphabet and set trailing bits: other spellings of the same bytes
    must be refused, even when the signature covers them."""
    srv = servers[kind]
    # A token whose every segment has leftover bits and holds '-' or '_' somewhere; the header
    # varies by its optional members, the payload by its jti and padding.
    variants = [srv.header(kid=srv.kid), srv.header(), srv.header(typ=DROP),
                srv.header(typ=DROP, kid=srv.kid), srv.header(typ="jwt"), srv.header(typ="jwt", kid=srv.kid)]
    for i in range(3000):
        c = srv.claims(jti=f"nc{i}")
        c["pad"] = "~" * (3 + i % 3)  # "~~~" spans every byte position: a "_" or "-" appears
        h = variants[i % len(variants)]
        tok = srv.forge(h, c)
        hs, ps, ss = tok.split(".")
        if all(len(x) % 4 in (2, 3) for x in (hs, ps, ss)) and any(ch in ss for ch in "-_") \
                and any(ch in ps for ch in "-_"):
            break
    else:
        pytest.fail("could not make a token with every property")
    assert profile(srv, {"Authorization": "Bearer " + tok}).status == 200
    resign = lambda hh, pp: hh + "." + pp + "." + b64u(srv.sign(hh + "." + pp))  # noqa: E731
    pad = lambda x: x + "=" * (-len(x) % 4)  # noqa: E731
    std = lambda x: x.replace("-", "+").replace("_", "/")  # noqa: E731
    cases = [hs + "." + ps + "." + non_canonical_tail(ss),       # same signature bytes
             hs + "." + ps + "." + pad(ss), hs + "." + ps + "." + std(ss),
             hs + "." + ps + "." + ss + "=",
             resign(non_canonical_tail(hs), ps), resign(hs, non_canonical_tail(ps)),
             resign(pad(hs), ps), resign(hs, pad(ps)), resign(hs, std(ps)),
             resign(std(hs), std(ps)), resign(hs + "=", ps), resign(" " + hs, ps),
             resign(hs, ps + "\t"), resign(hs, ps[:10] + "%2B" + ps[10:])]
    for t in cases:
        assert_token_refused(srv, t)


# ---- Injected keys and key ids ----

def attacker_key():
    priv = ec.generate_private_key(ec.SECP256R1())
    nums = priv.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64u(nums.x.to_bytes(32, "big")),
           "y": b64u(nums.y.to_bytes(32, "big"))}
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(priv.public_key()).serial_number(1)
            .not_valid_before(datetime.datetime(2020, 1, 1))
            .not_valid_after(datetime.datetime(2040, 1, 1))
            .sign(priv, hashes.SHA256()))
    return priv, jwk, base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class Listener:
    """A TCP listener that counts connections: a server that fetches jku/x5u would show here."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.hits += 1
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.t.join(2)
        self.sock.close()


def test_injected_jwk_jku_x5u_x5c_are_never_used(servers):
    srv = servers["es256"]
    priv, jwk, x5c = attacker_key()
    lis = Listener()
    url = f"http://127.0.0.1:{lis.port}/jwks.json"
    mine = lambda si: es256(si, priv)  # noqa: E731
    try:
        headers = [{"alg": "ES256", "jwk": jwk}, {"alg": "ES256", "jwk": dict(jwk, kid="evil"), "kid": "evil"},
                   {"alg": "ES256", "jku": url}, {"alg": "ES256", "jku": url, "kid": "evil"},
                   {"alg": "ES256", "x5u": url}, {"alg": "ES256", "x5c": [x5c]},
                   {"alg": "ES256", "x5c": [x5c], "kid": srv.kid}, {"alg": "ES256", "jwk": jwk, "kid": srv.kid},
                   {"alg": "HS256", "jwk": {"kty": "oct", "k": b64u(b"k" * 32)}}]
        for h in headers:
            signer = mine if h["alg"] == "ES256" else (lambda si: hs256(si, b"k" * 32))
            assert_token_refused(srv, token(h, srv.claims(), signer))
        time.sleep(0.3)
        assert lis.hits == 0, "the server fetched a URL from a token header"
    finally:
        lis.close()
    # On the HS256 server too, with a jwk carrying the attacker's own secret.
    hsrv = servers["hs256"]
    for h in ({"alg": "HS256", "jwk": {"kty": "oct", "k": b64u(b"attacker-secret-attacker-secret!")}},
              {"alg": "HS256", "jku": url, "kid": "a"}):
        assert_token_refused(hsrv, token(h, hsrv.claims(), lambda si: hs256(si, b"attacker-secret-attacker-secret!")))


KIDS = ["../../../../../../dev/null", "/dev/null", "../../../../etc/passwd", "/proc/self/environ",
        "' OR '1'='1", "x' UNION SELECT 'AAAA' --", "1; DROP TABLE keys", "unknown", "", " ",
        "$(id)", "`id`", "|id", "%00", "A" * 65, "A" * 4000, "kid\nx"]


@pytest.mark.parametrize("kind", ["hs256", "es256"])
@pytest.mark.parametrize("kid", KIDS + [123, None, True, [], {}],
                         ids=[f"kid{i}" for i in range(len(KIDS) + 5)])
def test_hostile_kid(servers, kind, kid):
    srv = servers[kind]
    h = srv.header(kid=kid)
    # Signed with the real key (a kid naming no key must still refuse) and with the empty key
    # /dev/null would give, and with the literal kid as secret (SQL injection selecting it).
    for signer in (srv.sign, lambda si: hs256(si, b""), lambda si: hs256(si, str(kid).encode()),
                   lambda si: hs256(si, b"AAAA")):
        for alg in (srv.alg, "HS256"):
            assert_token_refused(srv, token(dict(h, alg=alg), srv.claims(), signer), (400, 401))


def test_kid_of_the_other_server(servers):
    hs, es = servers["hs256"], servers["es256"]
    assert_token_refused(hs, hs.forge(hs.header(kid=es.kid)))
    assert_token_refused(es, es.forge(es.header(kid=hs.kid)))


# ---- crit, typ, duplicates ----

@pytest.mark.parametrize("kind", ["hs256", "es256"])
@pytest.mark.parametrize("crit", [["exp"], [], ["b64"], "b64", None, ["x-unknown"], [1], {}])
def test_crit_is_refused(servers, kind, crit):
    srv = servers[kind]
    extra = {"b64": False} if crit in (["b64"], "b64") else {}
    assert_token_refused(srv, srv.forge(srv.header(crit=crit, **extra)))


@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_odd_typ_is_refused(servers, kind):
    srv = servers[kind]
    for typ in (1, None, [], "JWE", "at+jwt+x", "JOSE+JSON", ""):
        assert_token_refused(srv, srv.forge(srv.header(typ=typ)))


@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_duplicate_members(servers, kind):
    srv = servers[kind]
    now = int(time.time())
    a = srv.alg
    base = (f'"iss":"{ISSUER}","aud":"{AUDIENCE}","iat":{now},"jti":"dup-{now}",')
    headers = [f'{{"alg":"{a}","alg":"none"}}', f'{{"alg":"none","alg":"{a}"}}',
               f'{{"alg":"{a}","alg":"{a}"}}', f'{{"alg":"{a}","typ":"JWT","typ":"JWT"}}',
               f'{{"alg":"{a}","kid":"nope","kid":"{srv.kid}"}}']
    for h in headers:
        assert_token_refused(srv, token(h, srv.claims(), srv.sign))
    payloads = ['{' + base + f'"sub":"bob","exp":{now + 600},"sub":"alice"}}',
                '{' + base + f'"sub":"alice","exp":{now - 600},"exp":{now + 600}}}',
                '{' + base + f'"sub":"alice","exp":{now + 600},"exp":{now + 600}}}',
                '{' + base + f'"sub":"alice","exp":{now + 600},"aud":"x"}}',
                '{' + base.replace(f'"jti":"dup-{now}",', f'"jti":"a","jti":"b",') +
                f'"sub":"alice","exp":{now + 600}}}']
    for p in payloads:
        assert_token_refused(srv, token(srv.header(), p, srv.sign))


# ---- Claims: wrong types, times, issuer and audience ----

WRONG_FOR_NUMBER = ["1999999999", None, True, False, [], [1999999999], {}, {"v": 1999999999}]
WRONG_FOR_STRING = [1, 1.5, None, True, False, [], ["alice"], {}, {"v": "alice"}]


def claim_cases():
    out = []
    for claim in ("exp", "nbf", "iat"):
        out += [(claim, v) for v in WRONG_FOR_NUMBER]
    for claim in ("sub", "iss", "jti"):
        out += [(claim, v) for v in WRONG_FOR_STRING]
    out += [("aud", v) for v in [1, None, True, [], [1], [None], {}, {"aud": AUDIENCE}, [[AUDIENCE]]]]
    return out


@pytest.mark.parametrize("kind", ["hs256", "es256"])
@pytest.mark.parametrize("claim,value", claim_cases())
def test_claim_of_wrong_json_type(servers, kind, claim, value):
    srv = servers[kind]
    assert_token_refused(srv, srv.forge(payload=srv.claims(**{claim: value})))


@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_times_expired_future_missing(servers, kind):
    srv = servers[kind]
    now = int(time.time())
    bad = [dict(exp=now - 3600), dict(exp=now - 120), dict(exp=0), dict(exp=-1), dict(exp=-1e300),
           dict(exp=DROP), dict(exp=DROP, iat=DROP, nbf=DROP), dict(nbf=now + 3600),
           dict(nbf=now + 120), dict(iat=now + 3600), dict(iat=now + 120),
           dict(exp=now + 600, nbf=now + 400), dict(exp=now - 3600, iat=now - 7200)]
    for over in bad:
        assert_token_refused(srv, srv.forge(payload=srv.claims(**over)))
    # Inside the leeway is fine (the controls for the cases above).
    for over in (dict(nbf=now + 5), dict(iat=now + 5), dict(exp=now + 5), dict(iat=DROP)):
        r = profile(srv, {"Authorization": "Bearer " + srv.forge(payload=srv.claims(**over))})
        assert r.status == 200, (over, r)


@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_issuer_audience_and_subject(servers, kind):
    srv = servers[kind]
    bad = [dict(iss="evil"), dict(iss=DROP), dict(iss=ISSUER + " "), dict(iss=ISSUER.upper()),
           dict(aud="evil"), dict(aud=DROP), dict(aud=["evil", "other"]), dict(aud=AUDIENCE + "\u0000"),
           dict(sub="mallory"), dict(sub=DROP), dict(sub=""), dict(sub="alice\u0000"),
           dict(sub="ALICE"), dict(sub="alice ")]
    for over in bad:
        assert_token_refused(srv, srv.forge(payload=srv.claims(**over)))
    r = profile(srv, {"Authorization": "Bearer " + srv.forge(payload=srv.claims(aud=["x", AUDIENCE]))})
    assert r.status == 200, r


# ---- Size and nesting ----

@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_oversized_tokens(servers, kind):
    srv = servers[kind]
    for n in (8200, 12000):
        assert_token_refused(srv, srv.forge(payload=srv.claims(pad="p" * n)))
    # A header line beyond the server's header limit is refused by the HTTP layer.
    for n in (20000, 100000):
        r = profile(srv, {"Authorization": "Bearer " + "A" * n})
        assert_refused(srv, r, (400, 401, 413, 431))
    r = profile(srv, {"Cookie": "access_token=" + "A" * 20000})
    assert_refused(srv, r, (400, 401, 413, 431))


@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_deeply_nested_tokens(servers, kind):
    srv = servers[kind]
    for depth in (100, 2100, 3000):
        nest = "[" * depth + "]" * depth
        hdr = '{"alg":"%s","x":%s}' % (srv.alg, nest)
        # Unsigned (the payload must not even be parsed) and really signed.
        assert_token_refused(srv, token(srv.header(), '{"x":%s}' % nest) + "AAAA")
        if depth > 2048:  # beyond Jansson's own nesting limit: malformed even when signed
            assert_token_refused(srv, token(hdr, srv.claims(), srv.sign))
            pay = json.dumps(srv.claims())[:-1] + ',"x":' + nest + "}"
            assert_token_refused(srv, token(srv.header(), pay, srv.sign))
        else:
            assert_token_refused(srv, token(hdr, srv.claims(), lambda si: b"\0" * 32))


# ---- The Authorization header itself ----

@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_malformed_authorization_values(servers, kind):
    srv = servers[kind]
    v = srv.valid
    values = ["Bearer", "Bearer ", "Bearer\t" + v, "Bearer" + v, "Basic " + v, "Token " + v,
              "Bearer " + v[:20] + " " + v[20:], "Bearer " + v + " " + v, "Bearer " + v + ",x",
              "Bearer " + v.replace(".", " ."), "Bearer \"" + v + "\"", "Bearer " + v + "\x0b",
              "Bearer " + v[:30] + "\t" + v[30:], "Bearer " + v[:-1] + "\u00e9".encode().decode("latin-1"),
              "Bearer " + v.replace(".", "%2E"), "Bearer " + v + ";", "Bearer ," + v]
    for value in values:
        r = profile(srv, {"Authorization": value})
        assert_refused(srv, r)


def raw_get(srv, header_block):
    req = b"GET /profile HTTP/1.1\r\nHost: x\r\n" + header_block + b"Connection: close\r\n\r\n"
    out = harness.raw(srv.port, req, read_timeout=5)
    assert out.startswith(b"HTTP/1."), out[:200]
    return int(out.split(b" ", 2)[1]), out


@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_whitespace_and_newlines_in_the_header(servers, kind):
    srv = servers[kind]
    v = srv.valid.encode()
    blocks = [b"Authorization: Bearer " + v[:40] + b"\r\n " + v[40:] + b"\r\n",      # obs-fold
              b"Authorization: Bearer " + v[:40] + b"\n" + v[40:] + b"\r\n",        # bare LF
              b"Authorization: Bearer " + v[:40] + b"\r" + v[40:] + b"\r\n",        # bare CR
              b"Authorization: Bearer " + v[:40] + b"\x00" + v[40:] + b"\r\n",
              b"Authorization : Bearer " + v + b"\r\n"]                            # space before colon
    for block in blocks:
        status, out = raw_get(srv, block)
        assert status in (400, 401), out[:300]
        assert_still_serving(srv)
    # RFC 9112 5.2 lets a server either refuse obs-fold or read it as one space.
    status, out = raw_get(srv, b"Authorization: Bearer\r\n " + v + b"\r\n")
    assert status in (200, 400), out[:300]


@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_two_authorization_headers(servers, kind):
    """Authorization is not a list: two of them are ambiguous (a proxy may check one, the server
    use the other), so no combination may authenticate."""
    srv = servers[kind]
    v = srv.valid.encode()
    none = token({"alg": "none"}, srv.claims()).encode()
    for first, second in ((v, b"x.y.z"), (b"x.y.z", v), (v, v), (none, v), (v, none)):
        status, out = raw_get(srv, b"Authorization: Bearer " + first + b"\r\n"
                              b"Authorization: Bearer " + second + b"\r\n")
        assert status in (400, 401), (first[:20], second[:20], out[:300])
        assert_still_serving(srv)


@pytest.mark.parametrize("kind", ["hs256", "es256"])
def test_header_beats_cookie_and_bad_header_is_not_rescued(servers, kind):
    """A bad Authorization header is a bad token even when a good cookie comes along."""
    srv = servers[kind]
    r = profile(srv, {"Authorization": "Bearer x.y.z", "Cookie": "access_token=" + srv.valid})
    assert_refused(srv, r)
    none = token({"alg": "none"}, srv.claims())
    for cookie in ("access_token=" + none, "access_token=" + none + "; access_token=" + srv.valid,
                   "access_token=\"" + none + "\"", "access_token=" + srv.valid[:-2]):
        assert_refused(srv, profile(srv, {"Cookie": cookie}))


def test_logs_show_no_sanitizer_report_and_servers_stay_up(servers):
    """Runs last in the module: nothing above made ASan/UBSan complain."""
    for srv in servers.values():
        assert_still_serving(srv)
        logs = srv.proc.logs()
        assert "runtime error" not in logs and "AddressSanitizer" not in logs, logs[-3000:]
