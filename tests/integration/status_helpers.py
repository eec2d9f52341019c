"""Helpers shared by test_crl.py and test_ocsp.py: small CA hierarchies, issuance, status changes,
CRL / OCSP fetching and a daemon started with a config file."""
import base64
import datetime
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

import conftest
from helpers import create_ca, der_children, der_tlv, download_der, uid

PROFILE = "privatessl-tls-server"
CRL_FLAGS = {v: k for k, v in {
    "unspecified": x509.ReasonFlags.unspecified, "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise, "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded, "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold, "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise}.items()}
FLAG_OF = {name: flag for flag, name in CRL_FLAGS.items()}


def ok(resp, status=200):
    assert resp.status_code == status, (f"{resp.request.method} {resp.request.url} -> {resp.status_code}: "
                                        f"{resp.text[:800]}")
    return resp.json() if "json" in resp.headers.get("Content-Type", "") else resp


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow():
    return datetime.datetime.utcnow().replace(microsecond=0)


class CA:
    """A CA created through the API; its certificate is downloaded and written to `pem_path`."""

    def __init__(self, d, tmp, **body):
        self.d = d
        self.info = create_ca(d, **body)
        self.id = self.info["id"]
        self.der = download_der(d, self.id)
        self.cert = x509.load_der_x509_certificate(self.der)
        self.pem_path = Path(tmp) / f"{self.id}.pem"
        self.pem_path.write_bytes(pem(self.cert))
        self.serial = format(self.cert.serial_number, "x")

    @property
    def ski(self):
        return self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def make_root(d, tmp, prefix="root", key="ECDSAP256+SHA256", **extra):
    cid = uid(prefix)
    return CA(d, tmp, id=cid, friendlyName=f"Root {cid}", type="root", signingKeyDetails=key,
              subject=f"CN=Root {cid},O=Status Tests", **extra)


def make_sub(d, tmp, parent, prefix="sub", key="ECDSAP256+SHA256", crl=True, ocsp_=True, profiles=(PROFILE,),
             **extra):
    cid = uid(prefix)
    return CA(d, tmp, id=cid, friendlyName=f"Sub {cid}", type="subord", parentId=parent.id, signingKeyDetails=key,
              subject=f"CN=Sub {cid},O=Status Tests", enableCrl=crl, enableOcsp=ocsp_, profiles=list(profiles),
              **extra)


class Leaf:
    def __init__(self, body, tmp):
        self.body = body
        self.serial = body["serialNumber"]
        self.cert = x509.load_pem_x509_certificate(body["certificate"].encode())
        assert self.cert.serial_number == int(self.serial, 16), "serialNumber does not match the certificate"
        self.pem_path = Path(tmp) / f"leaf-{self.serial}.pem"
        self.pem_path.write_bytes(pem(self.cert))


_KEY = None


def _key():
    global _KEY
    if _KEY is None:
        _KEY = ec.generate_private_key(ec.SECP256R1())
    return _KEY


def issue(d, ca, tmp, name=None):
    name = name or f"{uid('h')}.example"
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    r = d.api("POST", f"/cas/{ca.id}/certificates", json={
        "profileId": PROFILE, "csr": csr, "subjectAltNames": [{"type": "dNSName", "value": name}]})
    return Leaf(ok(r, 201), tmp)


def revoke(d, ca_id, serial, reason=None, invalidity=None, publish=False):
    body = {}
    if reason is not None:
        body["reason"] = reason
    if invalidity is not None:
        body["invalidityDate"] = invalidity
    if publish:
        body["publishNow"] = True
    return ok(d.api("POST", f"/cas/{ca_id}/certificates/{serial}/revoke", json=body))


def suspend(d, ca_id, serial, publish=False):
    kw = {"json": {"publishNow": True}} if publish else {}
    return ok(d.api("POST", f"/cas/{ca_id}/certificates/{serial}/suspend", **kw))


def unsuspend(d, ca_id, serial, publish=False):
    kw = {"json": {"publishNow": True}} if publish else {}
    return ok(d.api("POST", f"/cas/{ca_id}/certificates/{serial}/unsuspend", **kw))


def publish(d, ca_id):
    return ok(d.api("POST", f"/cas/{ca_id}/crl"))


# ------------------------------------------------------------------ CRL
def crl_path(d, ca_id, account=None):
    return f"/crl/{account or d.account}/{ca_id}/crl.crl"


def fetch_crl(d, ca_id, **kw):
    """The public CRL response (asserts 200 and DER content type) and the parsed CRL."""
    r = d.get(crl_path(d, ca_id), **kw)
    assert r.status_code == 200, f"GET {crl_path(d, ca_id)} -> {r.status_code}: {r.text[:300]}"
    assert r.headers.get("Content-Type", "").startswith("application/pkix-crl"), r.headers
    return r, x509.load_der_x509_crl(r.content)


def crl_number(crl):
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def crl_serials(crl):
    """The serial numbers (ints) listed on a CRL."""
    return {rc.serial_number for rc in crl}


def crl_version(der):
    """The version INTEGER of TBSCertList (1 means v2)."""
    tag, s, e = der_tlv(der, 0)
    assert tag == 0x30
    tag, ts, te = der_children(der, s, e)[0]
    assert tag == 0x30, "TBSCertList is not a SEQUENCE"
    first = der_children(der, ts, te)[0]
    assert first[0] == 0x02, "TBSCertList has no version field (v1 CRL)"
    return int.from_bytes(der[first[1]:first[2]], "big")


def openssl_crl_verify(der, issuer_pem, tmp):
    f = Path(tmp) / f"crl-{time.monotonic_ns()}.der"
    f.write_bytes(der)
    cp = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(f), "-CAfile", str(issuer_pem), "-noout"],
                        capture_output=True, text=True, timeout=60)
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0 and "verify OK" in out, f"openssl crl verify failed ({cp.returncode}): {out}"
    return out


def wait_for(pred, timeout, interval=0.25, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what}: not reached within {timeout}s (last: {last!r})")


# ------------------------------------------------------------------ OCSP
def ocsp_path(d, ca_id, account=None):
    return f"/ocsp/{account or d.account}/{ca_id}"


def ocsp_request(cert, issuer, nonce=None, hash_alg=None):
    b = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hash_alg or hashes.SHA1())
    if nonce is not None:
        b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


def post_ocsp(d, ca_id, der, account=None):
    """POSTs a DER request; asserts HTTP 200 + content type; returns (response, parsed OCSPResponse)."""
    url = d.url + ocsp_path(d, ca_id, account)
    r = requests.post(url, data=der, headers={"Content-Type": "application/ocsp-request"},
                               timeout=60, proxies={"http": None, "https": None})
    assert r.status_code == 200, f"POST {url} -> {r.status_code}: {r.content[:300]!r}"
    assert r.headers.get("Content-Type", "").startswith("application/ocsp-response"), r.headers
    return r, ocsp.load_der_ocsp_response(r.content)


def get_ocsp(d, ca_id, der, account=None):
    b64 = urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    path = f"{ocsp_path(d, ca_id, account)}/{b64}"
    r = d.get(path)
    assert r.status_code == 200, f"GET {path} -> {r.status_code}: {r.content[:300]!r}"
    assert r.headers.get("Content-Type", "").startswith("application/ocsp-response"), r.headers
    return r, ocsp.load_der_ocsp_response(r.content)


# ------------------------------------------------------------------ a daemon with a config file
class ConfiguredDaemon(conftest.Daemon):
    """A conftest Daemon started with `--config FILE` (the file holds `config_lines`)."""

    def __init__(self, workdir, config_lines, partition="acme"):
        super().__init__(workdir, partition)
        self.config_path = self.workdir / "pkiaasd.conf"
        lines = list(config_lines) + ([f'store = "{self.store}"'] if self.store else [])
        self.config_path.write_text("".join(f"{line}\n" for line in lines))

    def start(self, new_ports=False):
        assert self.proc is None, "daemon already running"
        last = None
        for attempt in range(3):
            if new_ports or attempt > 0 or self.http_port is None:
                self.http_port, self.https_port = conftest.free_port(), conftest.free_port()
                while self.https_port == self.http_port:
                    self.https_port = conftest.free_port()
            with open(self.stderr_path, "ab") as err:
                err.write(f"--- pkiaasd serve --config (attempt {attempt + 1})\n".encode())
                err.flush()
                self.proc = subprocess.Popen(
                    [str(conftest.PKIAASD), "serve", "--config", str(self.config_path),
                     "--data-dir", str(self.data_dir),
                     "--http", f"127.0.0.1:{self.http_port}", "--https", f"127.0.0.1:{self.https_port}"],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=conftest.clean_env())
            last = self._wait_ready()
            if last is None:
                return
            self.proc = None
        pytest.fail(f"pkiaasd did not become ready: {last}\n--- stderr tail ---\n{self.tail()}")
