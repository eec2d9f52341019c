"""CA Gateway rules found by review (each failed on the build before its fix): a credential's grant ends with its
CA (a new CA created later under the same id is another CA, and its event feed shows none of the old one's
records), grants name live CAs only, subject actions match the subject whatever the case or spacing of its values,
a CA whose own certificate is revoked reports DOWN and no enrolment capability, and an endDate at the epoch is an
empty range, not an open one."""
import base64
import datetime
import ipaddress
import urllib.parse

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

import conftest
from conftest import db_exec
from status_helpers import CA, make_root, make_sub, ok
from test_cagw_more import Client, csr_b64

PROFILE = "privatessl-tls-server"


def csr_name(name_attrs):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(name_attrs)).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


@pytest.fixture(scope="module")
def env(daemon, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scrf")
    root = make_root(daemon, tmp, "froot")
    return dict(d=daemon, tmp=tmp, root=root)


def test_grant_ends_with_its_ca(env):
    d, tmp, root = env["d"], env["tmp"], env["root"]
    old = make_sub(d, tmp, root, "reuse")
    cred = Client(d, tmp, "reuse-cred", [{"caId": old.id, "roles": ["Certificate Administrators"]}])
    caid = f"{d.account}~{old.id}"
    code, body = cred.call("POST", f"/certificate-authorities/{caid}/enrollments",
                           {"profileId": PROFILE, "csr": csr_b64("old-ca-secret.example.com")})
    assert code == 200, body
    old_serial = body["enrollment"]["serialNumber"]
    ok(d.api("DELETE", f"/cas/{old.id}"))
    assert cred.call("GET", f"/certificate-authorities/{caid}")[0] == 404
    # 25 hours pass (the id is reserved for 24 h after deletion)
    assert db_exec(d, "UPDATE ca SET deleted_at=deleted_at-90000 WHERE partition_id=? AND ca_id=? AND status='deleted'",
                   d.account, old.id) == 1
    # an administrator later creates an unrelated CA that happens to reuse the id
    CA(d, tmp, id=old.id, friendlyName="New unrelated CA", type="subord", parentId=root.id,
       signingKeyDetails="ECDSAP256+SHA256", subject=f"CN=New {old.id},O=Other", profiles=[PROFILE])
    code, ca = cred.call("GET", f"/certificate-authorities/{caid}")
    code_e, enr = cred.call("POST", f"/certificate-authorities/{caid}/enrollments",
                            {"profileId": PROFILE, "csr": csr_b64("stale-grant.example.com")})
    code_ev, ev = cred.call("GET", f"/certificate-authorities/{caid}/certificate-events")
    leaked = [e for e in ev.get("events", []) if e["serialNumber"] == old_serial]
    assert code_e in (403, 404), ("credential granted on the deleted CA can enroll on the new CA with the same id",
                                  code_e, enr)
    assert not leaked, ("events of the deleted CA appear in the new CA's feed", leaked)


def test_no_grant_on_a_deleted_ca(env):
    d, tmp, root = env["d"], env["tmp"], env["root"]
    gone = make_sub(d, tmp, root, "gone")
    ok(d.api("DELETE", f"/cas/{gone.id}"))
    r = d.api("POST", "/cagw-credentials", json={"id": "grant-deleted", "grants": [
        {"caId": gone.id, "roles": ["Certificate Administrators"]}]})
    assert r.status_code == 400, "a grant on a deleted CA was accepted"


def test_subject_actions_ignore_case_and_spacing(env):
    d, tmp, root = env["d"], env["tmp"], env["root"]
    sub = make_sub(d, tmp, root, "spc")
    c = Client(d, tmp, "spc-cred", [{"caId": sub.id, "roles": ["Certificate Administrators"]}])
    caid = f"{d.account}~{sub.id}"
    csr = csr_name([x509.NameAttribute(NameOID.COMMON_NAME, "Multi  Space Device"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")])
    code, body = c.call("POST", f"/certificate-authorities/{caid}/enrollments", {"profileId": PROFILE, "csr": csr})
    assert code == 200, body
    # docs: "case and spacing of values do not matter" -> X509_NAME_cmp equal
    for dn in ["O=Acme,CN=Multi  Space Device", "O=acme,CN=multi  space device", "O=Acme,CN=Multi Space Device"]:
        code, r = c.call("POST", f"/certificate-authorities/{caid}/subjects/{urllib.parse.quote(dn, safe='')}/actions",
                         {"action": {"type": "HoldAction"}})
        assert code == 200, (dn, r)


def test_revoked_ca_is_down(env):
    d, tmp, root = env["d"], env["tmp"], env["root"]
    sub = make_sub(d, tmp, root, "revca")
    c = Client(d, tmp, "revca-cred", [{"caId": sub.id, "roles": ["Certificate Administrators"]}])
    caid = f"{d.account}~{sub.id}"
    r = d.api("POST", f"/cas/{root.id}/certificates/{sub.serial}/revoke", json={"reason": "cACompromise"})
    assert r.status_code == 200
    st = c.call("GET", f"/certificate-authorities/{caid}/status")
    caps = c.call("GET", f"/certificate-authorities/{caid}/capabilities")
    enr = c.call("POST", f"/certificate-authorities/{caid}/enrollments", {"profileId": PROFILE, "csr": csr_b64("x.example")})
    assert enr[0] == 409, enr
    assert st[1].get("status") == "DOWN", st
    assert not {"Enrollment", "EnrollmentX509", "EnrollmentPKCS12"} & set(caps[1]["capabilities"]), caps


def test_end_date_at_the_epoch_is_empty(env):
    d, tmp, root = env["d"], env["tmp"], env["root"]
    sub = make_sub(d, tmp, root, "evt")
    c = Client(d, tmp, "evt-cred", [{"caId": sub.id, "roles": ["Certificate Administrators"]}])
    caid = f"{d.account}~{sub.id}"
    assert c.call("POST", f"/certificate-authorities/{caid}/enrollments", {"profileId": PROFILE, "csr": csr_b64("e.example")})[0] == 200
    code, body = c.call("GET", f"/certificate-authorities/{caid}/certificate-events?endDate=1970-01-01T00:00:00Z")
    assert code == 200 and body["events"] == [], "endDate 1970-01-01 returns events from 2026"





# ---- an operator's own TLS certificate (found by review) ----
def _own_tls_cert(tmp):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cp, kp = tmp / "own.crt", tmp / "own.key"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cp, kp


def test_cagw_credentials_work_with_an_operator_tls_certificate(tmp_path):
    """With tls_cert_file/tls_key_file (no service CA is made) the HTTPS listener asked for no client
    certificate, so every CA Gateway credential got 401."""
    cp, kp = _own_tls_cert(tmp_path)
    d = conftest.Daemon(tmp_path / "own")
    d.extra_conf = f'tls_cert_file = "{cp}"\ntls_key_file = "{kp}"\n'
    d.bootstrap()
    d.start()
    try:
        assert not d.service_ca.exists()
        root = make_root(d, tmp_path, "owroot")
        sub = make_sub(d, tmp_path, root, "owsub")
        body = ok(d.api("POST", "/cagw-credentials", json={
            "id": "owncert", "grants": [{"caId": sub.id, "roles": ["Certificate Administrators"]}]}), 201)
        key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(body["pkcs12"]),
                                                        body["password"].encode())
        (tmp_path / "c.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "c.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
        s = requests.Session()
        s.trust_env = False
        r = s.get(f"https://127.0.0.1:{d.https_port}/cagw/v1/certificate-authorities", verify=str(cp),
                  cert=(str(tmp_path / "c.crt"), str(tmp_path / "c.key")), timeout=30)
        assert r.status_code == 200, (r.status_code, r.text[:300])
    finally:
        d.stop()


def test_error_answers_quote_any_bytes(daemon, tmp_path):
    """CA Gateway errors quote request bytes (a CA id, a serial cut to 64 bytes): bytes that are not UTF-8, or a
    character cut in half, made the JSON encoder fail and the answer a 500 instead of the 404 ErrorResponse."""
    root = make_root(daemon, tmp_path, "u8root")
    sub = make_sub(daemon, tmp_path, root, "u8sub")
    admin = Client(daemon, tmp_path, f"u8-{sub.id}"[:32], [{"caId": sub.id, "roles": ["Certificate Administrators"]}])
    base = f"https://127.0.0.1:{daemon.https_port}/cagw/v1/certificate-authorities"
    for path in (f"/{daemon.account}~%FF", f"/{daemon.account}~{sub.id}/certificates/a" + "%C3%A9" * 40):
        r = admin.http.request("GET", base + path, timeout=60)
        assert r.status_code == 404 and r.json()["type"] == "ErrorResponse", (path, r.status_code, r.text[:300])
