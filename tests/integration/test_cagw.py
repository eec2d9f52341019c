"""CA Gateway v1 API over mutual TLS, driven the way shell tools do it:
curl --cert-type P12 --cert file.p12:password (and python requests)."""
import base64
import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from status_helpers import make_root, make_sub, ok

PROFILE = "privatessl-tls-server"


class Cred:
    def __init__(self, d, tmp, cred_id, grants):
        r = d.api("POST", "/cagw-credentials", json={"id": cred_id, "name": cred_id, "grants": grants})
        body = ok(r, 201)
        assert body["fileName"] == f"pkcs12-{cred_id}.p12"
        self.path = tmp / body["fileName"]
        self.path.write_bytes(base64.b64decode(body["pkcs12"]))
        self.password = body["password"]
        self.d = d
        self.id = cred_id
        self.body = body

    def curl(self, method, path, data=None, cert=True):
        cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert", str(self.d.data_dir / "service-ca.pem"),
               "-X", method, "-H", "Content-Type: application/json"]
        if cert:
            cmd += ["--cert-type", "P12", "--cert", f"{self.path}:{self.password}"]
        if data is not None:
            cmd += ["--data-binary", json.dumps(data)]
        cmd.append(f"https://127.0.0.1:{self.d.https_port}/cagw/v1{path}")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        text, _, code = out.stdout.rpartition("\n")
        return int(code), (json.loads(text) if text.strip() else None)


@pytest.fixture(scope="module")
def setup(daemon, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cagw")
    root = make_root(daemon, tmp, "groot")
    sub = make_sub(daemon, tmp, root, "gsub")
    other = make_sub(daemon, tmp, root, "gother")
    admin = Cred(daemon, tmp, f"admin-{sub.id}"[:32],
                 [{"caId": sub.id, "roles": ["Certificate Administrators"]}])
    auditor = Cred(daemon, tmp, f"aud-{sub.id}"[:32], [{"caId": sub.id, "roles": ["CA Auditors"]}])
    return {"d": daemon, "tmp": tmp, "root": root, "sub": sub, "other": other, "admin": admin, "auditor": auditor,
            "caid": f"{daemon.account}~{sub.id}"}


def test_credential_pkcs12(setup):
    a = setup["admin"]
    key, cert, chain = pkcs12.load_key_and_certificates(a.path.read_bytes(), a.password.encode())
    assert key is not None and cert is not None and len(chain) == 1
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in list(eku)
    days = (cert.not_valid_after - cert.not_valid_before).days
    assert 364 <= days <= 366
    lst = ok(setup["d"].api("GET", "/cagw-credentials"))["credentials"]
    mine = [c for c in lst if c["id"] == a.id][0]
    assert "password" not in mine and "pkcs12" not in mine


def test_no_certificate_is_401(setup):
    code, body = setup["admin"].curl("GET", "/certificate-authorities", cert=False)
    assert code == 401 and body["type"] == "ErrorResponse"


def test_ca_list_and_get(setup):
    a, caid = setup["admin"], setup["caid"]
    code, body = a.curl("GET", "/certificate-authorities")
    assert code == 200 and body["type"] == "CAListResponse", body
    ids = [c["id"] for c in body["caList"]]
    assert caid in ids
    ca = [c for c in body["caList"] if c["id"] == caid][0]
    der = base64.b64decode(ca["certificate"]["certificateData"])
    assert x509.load_der_x509_certificate(der).subject.rfc4514_string().startswith("CN=Sub")
    code, body = a.curl("GET", f"/certificate-authorities/{caid}")
    assert code == 200 and body["type"] == "CAResponse" and body["ca"]["id"] == caid
    code, body = a.curl("GET", f"/certificate-authorities/{caid}/status")
    assert code == 200 and body["status"] == "UP"
    code, body = a.curl("GET", f"/certificate-authorities/{caid}?$fields=ca.id")
    assert code == 200 and body["ca"] == {"id": caid}, body


def _csr_b64(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256()))
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


def test_enroll_fetch_hold_revoke(setup):
    a, caid, d = setup["admin"], setup["caid"], setup["d"]
    # the shape the HashiCorp Vault plugin sends
    code, body = a.curl("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": PROFILE, "requiredFormat": {"format": "PEM"}, "csr": _csr_b64("vault.example.com"),
        "subjectVariables": [{"type": "cn", "value": "vault.example.com"}],
        "subjectAltNames": [{"type": "dNSName", "value": "vault.example.com"}],
        "optionalCertificateRequestDetails": {"validityPeriod": "PT60M"}})
    assert code == 200, body
    enr = body["enrollment"]
    cert = x509.load_pem_x509_certificate(enr["body"].encode())
    assert (cert.not_valid_after - cert.not_valid_before).total_seconds() <= 3700
    serial = enr["serialNumber"]
    # fetch with upper case and zero padding
    code, body = a.curl("GET", f"/certificate-authorities/{caid}/certificates/{serial.upper().zfill(40)}")
    assert code == 200 and body["certificate"]["status"] == "normal", body
    # hold, unhold, revoke (+ issueCrl as the shell utility sends it)
    for action, status in (("HoldAction", "held"), ("UnholdAction", "normal"), ("RevokeAction", "revoked")):
        code, body = a.curl("POST", f"/certificate-authorities/{caid}/certificates/{serial}/actions",
                            {"action": {"type": action, "reason": "keyCompromise", "comment": f"test {action}",
                                        "issueCrl": "true"}})
        assert code == 200 and body["action"]["status"] == "COMPLETED", body
        code, body = a.curl("GET", f"/certificate-authorities/{caid}/certificates/{serial}")
        assert body["certificate"]["status"] == status, (action, body)
        if status != "normal":
            assert body["certificate"]["revocationInfo"]["comment"] == f"test {action}", body
    # the CRL shows it (issueCrl published it)
    crl = d.get(f"/crl/{d.account}/{setup['sub'].id}/crl.crl")
    assert int(serial, 16) in {e.serial_number for e in x509.load_der_x509_crl(crl.content)}


def _csr_with_sans(cn, names):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
           .sign(key, hashes.SHA256()))
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


def _dns_names(cert):
    return sorted(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                  .get_values_for_type(x509.DNSName))


def test_use_san_from_csr(setup):
    a, caid = setup["admin"], setup["caid"]
    csr = _csr_with_sans("s.example.com", ["s.example.com", "from-csr.example.com"])
    base = {"profileId": PROFILE, "requiredFormat": {"format": "PEM"}, "csr": csr,
            "subjectAltNames": [{"type": "dNSName", "value": "from-request.example.com"}]}
    for flag, want in ((None, ["from-csr.example.com", "from-request.example.com", "s.example.com"]),
                       (True, ["from-csr.example.com", "from-request.example.com", "s.example.com"]),
                       (False, ["from-request.example.com"])):
        req = dict(base)
        if flag is not None:
            req["optionalCertificateRequestDetails"] = {"useSANFromCSR": flag}
        code, body = a.curl("POST", f"/certificate-authorities/{caid}/enrollments", req)
        assert code == 200, body
        cert = x509.load_pem_x509_certificate(body["enrollment"]["body"].encode())
        assert _dns_names(cert) == want, (flag, _dns_names(cert))


def test_interval_with_future_start(setup):
    import datetime
    a, caid = setup["admin"], setup["caid"]
    now = datetime.datetime.utcnow().replace(microsecond=0)
    start = now + datetime.timedelta(days=3)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    code, body = a.curl("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": PROFILE, "requiredFormat": {"format": "PEM"}, "csr": _csr_b64("later.example.com"),
        "optionalCertificateRequestDetails": {"validityPeriod": start.strftime(fmt) + "/P10D"}})
    assert code == 200, body
    cert = x509.load_pem_x509_certificate(body["enrollment"]["body"].encode())
    assert cert.not_valid_before == start and cert.not_valid_after == start + datetime.timedelta(days=10)
    # a start already past: valid from (about) now, not backdated to the start
    past = now - datetime.timedelta(days=5)
    code, body = a.curl("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": PROFILE, "requiredFormat": {"format": "PEM"}, "csr": _csr_b64("now.example.com"),
        "optionalCertificateRequestDetails": {"validityPeriod": past.strftime(fmt) + "/P10D"}})
    assert code == 200, body
    cert = x509.load_pem_x509_certificate(body["enrollment"]["body"].encode())
    assert abs((cert.not_valid_before - now).total_seconds()) < 300
    assert cert.not_valid_after == past + datetime.timedelta(days=10)


def test_pkcs12_enrollment(setup):
    a, caid = setup["admin"], setup["caid"]
    code, body = a.curl("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": "privatessl-p12-tls-server" if False else PROFILE,
        "requiredFormat": {"format": "PKCS12", "protection": {"type": "PasswordProtection",
                                                              "password": "p12-password-123"}},
        "subjectVariables": [{"type": "cn", "value": "p12.example.com"}],
        "subjectAltNames": [{"type": "dNSName", "value": "p12.example.com"}]})
    assert code == 200, body
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(body["enrollment"]["body"]),
                                                    b"p12-password-123")
    assert cert.subject.rfc4514_string() == "CN=p12.example.com"


def test_roles_per_ca(setup):
    aud, caid = setup["auditor"], setup["caid"]
    code, body = aud.curl("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": PROFILE, "requiredFormat": {"format": "X509"}, "csr": _csr_b64("denied.example.com")})
    assert code == 403 and body["type"] == "ErrorResponse", body
    # no grant on the other CA at all
    other = f"{setup['d'].account}~{setup['other'].id}"
    code, body = setup["admin"].curl("GET", f"/certificate-authorities/{other}")
    assert code in (403, 404), body


def test_bad_input(setup):
    a, caid = setup["admin"], setup["caid"]
    code, body = a.curl("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": "no-such-profile", "requiredFormat": {"format": "X509"}, "csr": _csr_b64("x.example.com")})
    assert 400 <= code < 500 and body["error"]["code"].startswith("cagw-"), body
    code, body = a.curl("POST", f"/certificate-authorities/{caid}/enrollments", {
        "profileId": PROFILE, "requiredFormat": {"format": "X509"}, "csr": _csr_b64("x.example.com"),
        "subjectAltNames": [{"type": "dnsname", "value": "x.example.com"}]})
    assert 400 <= code < 500 and body["error"].get("target"), body


def test_deleted_and_renewed_credentials_stop_working(setup, tmp_path):
    d = setup["d"]
    c = Cred(d, tmp_path, "short-lived", [{"caId": setup["sub"].id, "roles": ["CA Auditors"]}])
    assert c.curl("GET", "/certificate-authorities")[0] == 200
    renewed = ok(d.api("POST", f"/cagw-credentials/{c.id}/renew"))
    assert c.curl("GET", "/certificate-authorities")[0] == 401  # the old certificate is gone
    c.path.write_bytes(base64.b64decode(renewed["pkcs12"]))
    c.password = renewed["password"]
    assert c.curl("GET", "/certificate-authorities")[0] == 200
    ok(d.api("DELETE", f"/cagw-credentials/{c.id}"))
    assert c.curl("GET", "/certificate-authorities")[0] == 401
