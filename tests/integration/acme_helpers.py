"""A small ACME client written for the tests (python3-cryptography + requests),
independent of the server's C code, so tests can send exactly the bytes they
want (good and hostile). Real clients (certbot, lego, uacme) are driven in
test_acme_clients.py."""
import base64
import hashlib
import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

PROBLEM = "urn:ietf:params:acme:error:"


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int_b64(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(length, "big"))


def jwk_of(key):
    pub = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        nums = pub.public_numbers()
        return {"kty": "RSA", "n": _int_b64(nums.n), "e": _int_b64(nums.e)}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        nums = pub.public_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
        return {"kty": "EC", "crv": crv, "x": _int_b64(nums.x, size), "y": _int_b64(nums.y, size)}
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
    raise ValueError("key type")


def thumbprint(jwk):
    req = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canon = json.dumps({k: jwk[k] for k in req}, separators=(",", ":"), sort_keys=True)
    return b64u(hashlib.sha256(canon.encode()).digest())


def alg_of(key):
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]


def sign(key, data):
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    h = {"secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}[key.curve.name]
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(h)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def jws(key, protected, payload):
    """Flattened JWS; payload None = POST-as-GET (empty string)."""
    protected = dict(protected)
    protected.setdefault("alg", alg_of(key))
    p64 = b64u(json.dumps(protected))
    pl64 = "" if payload is None else b64u(json.dumps(payload) if not isinstance(payload, (bytes, str)) else payload)
    sig = sign(key, f"{p64}.{pl64}".encode())
    return {"protected": p64, "payload": pl64, "signature": b64u(sig)}


def eab_binding(kid, hmac_key_b64u, account_jwk, url, alg="HS256"):
    protected = b64u(json.dumps({"alg": alg, "kid": kid, "url": url}))
    payload = b64u(json.dumps(account_jwk))
    digest = {"HS256": hashes.SHA256(), "HS384": hashes.SHA384(), "HS512": hashes.SHA512()}[alg]
    mac = hmac.HMAC(b64u_dec(hmac_key_b64u), digest)
    mac.update(f"{protected}.{payload}".encode())
    return {"protected": protected, "payload": payload, "signature": b64u(mac.finalize())}


def make_csr(key, names, cn=None, ips=()):
    import ipaddress
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class Client:
    """Enough of RFC 8555 to drive the server step by step."""

    def __init__(self, directory_url, verify, key=None):
        self.s = requests.Session()
        self.s.trust_env = False
        self.s.verify = str(verify)
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.dir = self.s.get(directory_url, timeout=30).json()
        self.kid = None
        self.nonce = None

    @property
    def jwk(self):
        return jwk_of(self.key)

    def new_nonce(self):
        r = self.s.head(self.dir["newNonce"], timeout=30)
        assert r.status_code == 200, r.status_code
        return r.headers["Replay-Nonce"]

    def post(self, url, payload, key=None, use_jwk=False, nonce=None, extra=None, raw=None):
        key = key or self.key
        if nonce is None:
            nonce = self.nonce or self.new_nonce()
        self.nonce = None
        protected = {"nonce": nonce, "url": url}
        if use_jwk or self.kid is None:
            protected["jwk"] = jwk_of(key)
        else:
            protected["kid"] = self.kid
        protected.update(extra or {})
        body = raw if raw is not None else json.dumps(jws(key, protected, payload))
        r = self.s.post(url, data=body, headers={"Content-Type": "application/jose+json"}, timeout=60)
        self.nonce = r.headers.get("Replay-Nonce")
        return r

    def register(self, eab=None, contact=("mailto:ops@example.test",)):
        payload = {"termsOfServiceAgreed": True, "contact": list(contact)}
        if eab:
            payload["externalAccountBinding"] = eab_binding(eab[0], eab[1], self.jwk, self.dir["newAccount"])
        r = self.post(self.dir["newAccount"], payload, use_jwk=True)
        if r.status_code in (200, 201):
            self.kid = r.headers["Location"]
        return r

    def key_authz(self, token):
        return f"{token}.{thumbprint(self.jwk)}"

    def wait(self, url, field="status", want=("valid", "invalid", "ready"), timeout=30):
        deadline = time.time() + timeout
        while True:
            r = self.post(url, None)
            assert r.status_code == 200, r.text
            if r.json()[field] in want or time.time() > deadline:
                return r.json()
            time.sleep(0.2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Http01Server:
    """Serves /.well-known/acme-challenge/<token> on 127.0.0.1:port."""

    def __init__(self, port, webroot=None):
        tokens = self.tokens = {}
        self.webroot = webroot

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                tok = self.path.rsplit("/", 1)[-1]
                body = tokens.get(tok)
                if body is None and webroot is not None and tok and "/" not in tok and not tok.startswith("."):
                    try:
                        body = (webroot / tok).read_text()
                    except OSError:
                        body = None
                self.send_response(200 if body else 404)
                self.end_headers()
                if body:
                    self.wfile.write(body.encode())

            def log_message(self, *a):
                pass

        self.handler, self.port, self.srv = H, port, None
        self.open()

    def open(self):
        ThreadingHTTPServer.allow_reuse_address = True
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        """Frees the port (for clients that answer http-01 themselves)."""
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None


class ChallTestSrv:
    """Debian's pebble-challtestsrv as the DNS server for every lookup of the
    ACME validator (A records answer 127.0.0.1; TXT records are set through
    its management API)."""

    def __init__(self):
        self.dns_port = free_port()
        self.mgmt_port = free_port()
        self.proc = subprocess.Popen(
            ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
             "-tlsalpn01", "", "-management", f"127.0.0.1:{self.mgmt_port}", "-defaultIPv6", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                requests.post(self.mgmt + "/clear-txt", json={"host": "probe.test."}, timeout=1,
                              proxies={"http": None})
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("pebble-challtestsrv did not start")

    @property
    def mgmt(self):
        return f"http://127.0.0.1:{self.mgmt_port}"

    def set_txt(self, host, value):
        r = requests.post(self.mgmt + "/set-txt", json={"host": host, "value": value}, timeout=5,
                          proxies={"http": None})
        assert r.status_code == 200, r.text

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)
