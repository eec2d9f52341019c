"""CA Gateway rules found by review (each failed on the build before its fix): a credential's grant ends with its
CA (a new CA created later under the same id is another CA, and its event feed shows none of the old one's
records), grants name live CAs only, subject actions match the subject whatever the case or spacing of its values,
a CA whose own certificate is revoked reports DOWN and no enrolment capability, and an endDate at the epoch is an
empty range, not an open one."""
import base64
import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


