"""CA Gateway v1 API through python requests with a client certificate (PEM files extracted from the
credential's PKCS#12): profiles, capabilities, $fields, status changes seen by real OCSP / CRL clients,
subject actions, foreign-partition and expired credentials, malformed requests."""
import base64
from conftest import db_exec
import subprocess
import time
import urllib.parse

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from status_helpers import fetch_crl, make_root, make_sub, ok

PROFILE = "privatessl-tls-server"


class Client:
    """A CAGW credential used through python requests (cert + key as PEM files)."""

    def __init__(self, d, tmp, cred_id, grants, partition=None):
        self.d, self.partition = d, partition or d.account
        token = d.creds[self.partition]["apiToken"]
        r = d.session.request("POST", d.api_url("/cagw-credentials", account=self.partition),
                              headers={"Authorization": f"Bearer {token}"},
                              json={"id": cred_id, "name": cred_id, "grants": grants})
        body = ok(r, 201)
        key, cert, chain = pkcs12.load_key_and_certificates(base64.b64decode(body["pkcs12"]),
                                                            body["password"].encode())
        self.id = cred_id
        self.cert_path, self.key_path = tmp / f"{cred_id}.crt", tmp / f"{cred_id}.key"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = str(d.data_dir / "service-ca.pem")
        self.http.cert = (str(self.cert_path), str(self.key_path))

    def call(self, method, path, body=None, raw=None, headers=None):
        url = f"https://127.0.0.1:{self.d.https_port}/cagw/v1{path}"
        r = self.http.request(method, url, json=body, data=raw, headers=headers or {}, timeout=60)
        assert r.headers.get("Content-Type", "").startswith("application/json"), (r.status_code, r.text[:300])
        return r.status_code, r.json()


def csr_b64(cn, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")]))
           .sign(key, hashes.SHA256()))
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


@pytest.fixture(scope="module")
def env(daemon, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cagwmore")
    root = make_root(daemon, tmp, "mroot")
    sub = make_sub(daemon, tmp, root, "msub")
    admin = Client(daemon, tmp, f"req-{sub.id}"[:32], [{"caId": sub.id, "roles": ["Certificate Administrators"]}])
    return {"d": daemon, "tmp": tmp, "root": root, "sub": sub, "admin": admin,
            "caid": f"{daemon.account}~{sub.id}"}


def enroll(c, caid, cn, fmt="X509"):
    code, body = c.call("POST", f"/certificate-authorities/{caid}/enrollments",
                        {"profileId": PROFILE, "requiredFormat": {"format": fmt}, "csr": csr_b64(cn)})
    assert code == 200, body
    enr = body["enrollment"]
    cert = x509.load_der_x509_certificate(base64.b64decode(enr["body"]))
    assert cert.serial_number == int(enr["serialNumber"], 16)
    return enr["serialNumber"], cert


def action(c, caid, serial, kind, **extra):
    code, body = c.call("POST", f"/certificate-authorities/{caid}/certificates/{serial}/actions",
                        {"action": {"type": kind, **extra}})
    return code, body


def test_profiles_and_capabilities(env):
    c, caid = env["admin"], env["caid"]
    code, body = c.call("GET", f"/certificate-authorities/{caid}/profiles")
    assert code == 200 and body["type"] == "ProfilesResponse", body
    prof = [p for p in body["profiles"] if p["id"] == PROFILE]
    assert len(prof) == 1, [p["id"] for p in body["profiles"]]
    for field in ("name", "properties", "protocols", "requestedProperties", "subjectVariableRequirements",
                  "subjectAltNameRequirements"):
        assert field in prof[0], (field, prof[0])
    assert all({"name", "required"} <= set(v) for v in prof[0]["subjectVariableRequirements"])
    code, one = c.call("GET", f"/certificate-authorities/{caid}/profiles/{PROFILE}")
    assert code == 200 and one["profile"]["id"] == PROFILE and "message" in one, one
    code, err = c.call("GET", f"/certificate-authorities/{caid}/profiles/no-such-profile")
    assert code == 404 and err["type"] == "ErrorResponse" and err["error"]["code"].startswith("cagw-"), err
    code, caps = c.call("GET", f"/certificate-authorities/{caid}/capabilities")
    assert code == 200 and {"EnrollmentX509", "RevokeAction", "HoldAction", "CertificateEvents"} <= \
        set(caps["capabilities"]), caps


def test_fields_include_and_exclude(env):
    c, caid = env["admin"], env["caid"]
    code, full = c.call("GET", "/certificate-authorities")
    assert code == 200 and all("certificateData" in ca["certificate"] for ca in full["caList"]), full
    code, slim = c.call("GET", "/certificate-authorities?%24fields=-caList.certificate.certificateData")
    assert code == 200 and slim["caList"], slim
    assert all("certificateData" not in ca.get("certificate", {}) for ca in slim["caList"]), slim
    assert [ca["id"] for ca in slim["caList"]] == [ca["id"] for ca in full["caList"]]
    code, only = c.call("GET", f"/certificate-authorities/{caid}?$fields=ca.id,ca.name")
    assert code == 200 and set(only["ca"]) == {"id", "name"}, only


def openssl_ocsp(env, cert, tmp):
    """Asks the CA's OCSP responder with the real `openssl ocsp` client; returns its stdout."""
    d, sub = env["d"], env["sub"]
    leaf = tmp / f"leaf-{cert.serial_number:x}.pem"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    chain = tmp / "chain.pem"
    chain.write_bytes(sub.pem_path.read_bytes() + env["root"].pem_path.read_bytes())
    out = subprocess.run(["openssl", "ocsp", "-issuer", str(sub.pem_path), "-cert", str(leaf),
                          "-url", f"{d.url}/ocsp/{d.account}/{sub.id}", "-CAfile", str(chain), "-no_nonce"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Response verify OK" in out.stderr + out.stdout, out.stderr
    return out.stdout


def test_hold_unhold_revoke_seen_by_ocsp_and_crl(env, tmp_path):
    c, caid, d = env["admin"], env["caid"], env["d"]
    serial, cert = enroll(c, caid, "status.example.com")
    assert ": good" in openssl_ocsp(env, cert, tmp_path)
    code, body = action(c, caid, serial, "HoldAction", reason="certificateHold", comment="on hold")
    assert code == 200 and body["type"] == "ActionResponse" and body["action"]["status"] == "COMPLETED", body
    out = openssl_ocsp(env, cert, tmp_path)
    assert ": revoked" in out and "certificateHold" in out, out
    code, body = action(c, caid, serial, "UnholdAction")
    assert code == 200, body
    assert ": good" in openssl_ocsp(env, cert, tmp_path)
    code, body = action(c, caid, serial, "RevokeAction", reason="keyCompromise", issueCrl=True)
    assert code == 200, body
    out = openssl_ocsp(env, cert, tmp_path)
    assert ": revoked" in out and "keyCompromise" in out, out
    _, crl = fetch_crl(d, env["sub"].id)
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None, "issueCrl: the CRL published at once lists the certificate"
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    # revocation is final; asking again with succeedIfAlreadyInRequestedState is fine
    code, body = action(c, caid, serial, "HoldAction")
    assert code == 409 and body["error"]["target"] == "action.type", body
    code, body = action(c, caid, serial, "RevokeAction", succeedIfAlreadyInRequestedState=True)
    assert code == 200, body
    code, body = c.call("GET", f"/certificate-authorities/{caid}/certificates/{serial}")
    assert body["certificate"]["status"] == "revoked"
    assert body["certificate"]["revocationInfo"]["reason"] == "keyCompromise", body


def test_subject_actions(env):
    c, caid = env["admin"], env["caid"]
    cn = f"subj-{int(time.time() * 1000)}.example.com"
    issued = [enroll(c, caid, cn) for _ in range(3)]
    mine = [s for s, _ in issued]
    other, _ = enroll(c, caid, "other-" + cn)
    # the DN as `openssl x509 -nameopt rfc2253` prints it (most specific RDN first)
    dn = urllib.parse.quote(issued[0][1].subject.rfc4514_string(), safe="")
    code, body = c.call("POST", f"/certificate-authorities/{caid}/subjects/{dn}/actions",
                        {"action": {"type": "HoldAction", "reason": "certificateHold"}})
    assert code == 200 and body["action"]["status"] == "COMPLETED", body
    props = body["action"]["properties"]  # a string map, as every CAGW properties object
    assert props["matched"] == "3" and props["changed"] == "3" and props["alreadyInRequestedState"] == "0", props
    for s in mine:
        assert c.call("GET", f"/certificate-authorities/{caid}/certificates/{s}")[1]["certificate"]["status"] == "held"
    assert c.call("GET", f"/certificate-authorities/{caid}/certificates/{other}")[1]["certificate"]["status"] == \
        "normal", "a certificate with another subject was touched"
    code, body = c.call("POST", f"/certificate-authorities/{caid}/subjects/{dn}/actions",
                        {"action": {"type": "RevokeAction", "reason": "superseded", "issueCrl": True}})
    assert code == 200 and body["action"]["properties"]["changed"] == "3", body
    nobody = urllib.parse.quote("O=Acme,CN=nobody.example.com", safe="")
    code, body = c.call("POST", f"/certificate-authorities/{caid}/subjects/{nobody}/actions",
                        {"action": {"type": "RevokeAction"}})
    assert code == 404 and body["type"] == "ErrorResponse", body


def test_foreign_partition_credential(env):
    d, caid = env["d"], env["caid"]
    foreign = Client(d, env["tmp"], "foreign-cred", [], partition="otheracct")
    code, body = foreign.call("GET", "/certificate-authorities")
    assert code == 200 and all(not ca["id"].startswith(f"{d.account}~") for ca in body["caList"]), body
    code, body = foreign.call("GET", f"/certificate-authorities/{caid}")
    assert code in (403, 404) and body["type"] == "ErrorResponse", body
    code, body = foreign.call("POST", f"/certificate-authorities/{caid}/enrollments",
                              {"profileId": PROFILE, "requiredFormat": {"format": "X509"}, "csr": csr_b64("x.example")})
    assert code in (403, 404), body


def test_expired_credential_is_401(env):
    d, sub = env["d"], env["sub"]
    c = Client(d, env["tmp"], "expiring-cred", [{"caId": sub.id, "roles": ["CA Auditors"]}])
    assert c.call("GET", "/certificate-authorities")[0] == 200
    assert db_exec(d, "UPDATE cagw_credential SET not_after=? WHERE cred_id=? AND partition_id=?",
                   int(time.time()) - 60, c.id, d.account) == 1
    code, body = c.call("GET", "/certificate-authorities")
    assert code == 401 and body["type"] == "ErrorResponse", body


@pytest.mark.parametrize("raw,target", [
    (b"{not json", None),
    (b"[]", None),
    (b'{"profileId": 5}', "profileId"),
    (b'{"profileId": "privatessl-tls-server", "requiredFormat": {"format": "DOCX"}}', "requiredFormat.format"),
    (b'{"profileId": "privatessl-tls-server", "requiredFormat": {"format": "X509"}}', "csr"),
    (b'{"profileId": "privatessl-tls-server", "csr": "AAAA"}', "csr"),
], ids=["malformed", "array", "profile-number", "format", "no-csr", "bad-csr"])
def test_malformed_requests(env, raw, target):
    c, caid = env["admin"], env["caid"]
    code, body = c.call("POST", f"/certificate-authorities/{caid}/enrollments", raw=raw,
                        headers={"Content-Type": "application/json"})
    assert 400 <= code < 500 and body["type"] == "ErrorResponse", (code, body)
    assert body["error"]["code"].startswith("cagw-") and body["error"]["message"], body
    if target:
        assert body["error"]["target"] == target, body


def test_san_type_typo_names_the_entry(env):
    c, caid = env["admin"], env["caid"]
    code, body = c.call("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": PROFILE, "requiredFormat": {"format": "X509"}, "csr": csr_b64("typo.example.com"),
        "subjectAltNames": [{"type": "dNSName", "value": "ok.example.com"},
                            {"type": "dnsNames", "value": "typo.example.com"}]})
    assert code == 400, body
    assert body["error"]["target"].startswith("subjectAltNames"), body
    assert "dnsNames" in (body["error"].get("value") or "") + body["error"]["message"], body


def test_directory_name_and_registered_id_sans(env):
    c, caid = env["admin"], env["caid"]
    code, body = c.call("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": PROFILE, "requiredFormat": {"format": "X509"}, "csr": csr_b64("dir.example.com"),
        "subjectAltNames": [{"type": "dNSName", "value": "dir.example.com"},
                            {"type": "directoryName", "value": "CN=Device 7,O=Acme"},
                            {"type": "registeredID", "value": "1.3.6.1.4.1.99999.1"}]})
    assert code == 200, body
    cert = x509.load_der_x509_certificate(base64.b64decode(body["enrollment"]["body"]))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dirs = san.get_values_for_type(x509.DirectoryName)
    assert [{a.oid: a.value for a in d} for d in dirs] == [{NameOID.COMMON_NAME: "Device 7",
                                                          NameOID.ORGANIZATION_NAME: "Acme"}], dirs
    assert san.get_values_for_type(x509.RegisteredID) == [x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")]
    code, body = c.call("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": PROFILE, "requiredFormat": {"format": "X509"}, "csr": csr_b64("dir.example.com"),
        "subjectAltNames": [{"type": "registeredID", "value": "sha256"}]})
    assert code == 400 and body["error"]["target"].startswith("subjectAltNames[0]"), body
    code, body = c.call("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": PROFILE, "requiredFormat": {"format": "X509"}, "csr": csr_b64("dir.example.com"),
        "subjectAltNames": [{"type": "x400Address", "value": "x"}]})
    assert code == 400 and body["error"]["target"] == "subjectAltNames[0].type", body
