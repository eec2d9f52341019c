"""Issuance caps (guide "Quotas"): issuance stops at the purchased certificate
count and revoking frees capacity; CA creation stops at the purchased CA count
and a deleted CA keeps counting for 24 hours."""
import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import conftest

PROFILE = "privatessl-tls-server"


class SmallDaemon(conftest.Daemon):
    """A partition that purchased 3 certificates and 2 CAs."""

    def bootstrap(self, partition=None):
        cp = subprocess.run([str(conftest.PKIAASD), "bootstrap", "--data-dir", str(self.data_dir), "--partition",
                             self.partition, "--owner-email", "q@example.com", "--json", "--certificates", "3",
                             "--cas", "2", *self.store_args()], capture_output=True, text=True, timeout=60, env=conftest.clean_env())
        assert cp.returncode == 0, cp.stderr
        creds = json.loads(cp.stdout)
        assert creds["inventory"] == {"certificatesPurchased": 3, "casPurchased": 2, "tier": "standard"}
        self.creds[self.partition] = creds
        self.account, self.token = creds["accountId"], creds["apiToken"]
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        return creds


@pytest.fixture
def small(tmp_path):
    d = SmallDaemon(tmp_path / "small", "quota")
    d.bootstrap()
    d.start()
    yield d
    assert d.stop() in (0, None)


def csr():
    key = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "q.example.com")]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


def test_quotas(small):
    d = small
    ok = lambda r, code: (r.status_code == code) or pytest.fail(f"{r.status_code} {r.text}")
    ok(d.api("POST", "/cas", json={"id": "qroot", "type": "root", "signingKeyDetails": "ECDSAP256+SHA256",
                                   "subject": "CN=q root"}), 201)
    ok(d.api("POST", "/cas", json={"id": "qsub", "type": "subord", "parentId": "qroot",
                                   "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=q sub",
                                   "enableOcsp": True, "profiles": [PROFILE]}), 201)
    r = d.api("POST", "/cas", json={"id": "qsub2", "type": "subord", "parentId": "qroot",
                                    "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=q sub2"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "quota_exceeded", r.text
    # the OCSP responder certificate did not use a purchased certificate
    serials = []
    for _ in range(3):
        r = d.api("POST", "/cas/qsub/certificates", json={"profileId": PROFILE, "csr": csr()})
        ok(r, 201)
        serials.append(r.json()["serialNumber"])
    r = d.api("POST", "/cas/qsub/certificates", json={"profileId": PROFILE, "csr": csr()})
    assert r.status_code == 422 and r.json()["error"]["code"] == "quota_exceeded", r.text
    inv = d.api("GET", "/inventory").json()
    assert inv["certificates"] == {"issued": 3, "purchased": 3}
    assert inv["cas"]["active"] == 2 and inv["cas"]["purchased"] == 2
    # suspending does not free capacity; revoking does
    ok(d.api("POST", f"/cas/qsub/certificates/{serials[0]}/suspend"), 200)
    assert d.api("POST", "/cas/qsub/certificates", json={"profileId": PROFILE, "csr": csr()}).status_code == 422
    ok(d.api("POST", f"/cas/qsub/certificates/{serials[1]}/revoke", json={"reason": "superseded"}), 200)
    ok(d.api("POST", "/cas/qsub/certificates", json={"profileId": PROFILE, "csr": csr()}), 201)
    assert d.api("POST", "/cas/qsub/certificates", json={"profileId": PROFILE, "csr": csr()}).status_code == 422
    # a deleted CA keeps counting for 24 h
    ok(d.api("DELETE", "/cas/qsub"), 200)
    r = d.api("POST", "/cas", json={"id": "qsub3", "type": "subord", "parentId": "qroot",
                                    "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=q sub3"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "quota_exceeded", r.text
    assert d.api("GET", "/inventory").json()["cas"]["active"] == 2
