"""Certificate status changes (revoke / suspend / unsuspend), browsing filters, pagination, downloads."""
import datetime
import hashlib
import re
import secrets

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from helpers import (create_ca, download_der, expect_error, fmt_time, openssl, parse_time, split_pem_bundle, uid,
                     utcnow)

PROFILE = "privatessl-tls-server"
REASONS = ["unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
           "cessationOfOperation", "privilegeWithdrawn", "aACompromise"]
HEX = re.compile(r"^[0-9a-f]+$")
TOL = datetime.timedelta(minutes=2)


def ok(resp, status=200):
    assert resp.status_code == status, (f"{resp.request.method} {resp.request.url} -> {resp.status_code}: "
                                        f"{resp.text[:800]}")
    return resp.json()


_KEY = ec.generate_private_key(ec.SECP256R1())


def csr_pem(cn, dns=()):
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), critical=False)
    return b.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


class CA:
    def __init__(self, d, root_id, name, ocsp=True):
        info = create_ca(d, id=uid(name), friendlyName=name, type="subord", parentId=root_id,
                         signingKeyDetails="ECDSAP256+SHA256", subject=f"CN={name} sub", enableCrl=True,
                         enableOcsp=ocsp, profiles=[PROFILE])
        self.d, self.id = d, info["id"]
        self.der = download_der(d, self.id)

    def issue(self, cn, dns=(), **extra):
        r = self.d.api("POST", f"/cas/{self.id}/certificates",
                       json={"profileId": PROFILE, "csr": csr_pem(cn, dns), **extra})
        out = ok(r, 201)
        assert HEX.match(out["serialNumber"]), out["serialNumber"]
        out["cert"] = x509.load_pem_x509_certificate(out["certificate"].encode())
        assert out["cert"].serial_number == int(out["serialNumber"], 16)
        return out

    def get(self, serial):
        return ok(self.d.api("GET", f"/cas/{self.id}/certificates/{serial}"))

    def post(self, serial, action, **body):
        return self.d.api("POST", f"/cas/{self.id}/certificates/{serial}/{action}", json=body)

    def list(self, **params):
        body = ok(self.d.api("GET", f"/cas/{self.id}/certificates", params=params))
        assert isinstance(body.get("certificates"), list) and "nextCursor" in body, body
        # The CA's OCSP responder certificate is listed among its issued
        # certificates (as the guide shows); these tests look at the rest.
        body["certificates"] = [c for c in body["certificates"] if c.get("profileId") != "ocsp-responder"]
        return body

    def serials(self, **params):
        params.setdefault("limit", 100)
        body = self.list(**params)
        assert body["nextCursor"] is None, f"unexpected extra page for {params}"
        return [c["serialNumber"] for c in body["certificates"]]


@pytest.fixture(scope="module")
def root(daemon):
    return create_ca(daemon, id=uid("sroot"), friendlyName="Status root", type="root",
                     signingKeyDetails="ECDSAP256+SHA256", subject="CN=Status Root")


@pytest.fixture(scope="module")
def ca(daemon, root):
    return CA(daemon, root["id"], "sstat")


# ------------------------------------------------------------------ revoke / suspend
def test_revoke_key_compromise(ca):
    c = ca.issue("revoke-me.example.com")
    serial = c["serialNumber"]
    assert ca.get(serial)["status"] == "issued"
    inv = fmt_time(utcnow() - datetime.timedelta(days=2))
    before = utcnow()
    r = ca.post(serial, "revoke", reason="keyCompromise", invalidityDate=inv, publishNow=True)
    assert r.status_code == 200, r.text
    g = ca.get(serial)
    assert g["status"] == "revoked"
    assert g["revocationReason"] == "keyCompromise"
    assert abs(parse_time(g["revokedAt"]) - before) <= TOL, g["revokedAt"]
    assert parse_time(g["invalidityDate"]) == parse_time(inv)
    # the record still describes the same certificate
    assert g["serialNumber"] == serial and g["subject"].endswith("revoke-me.example.com")

    # final
    expect_error(ca.post(serial, "revoke", reason="superseded"), 409)
    expect_error(ca.post(serial, "suspend"), 409)
    expect_error(ca.post(serial, "unsuspend"), 409)
    g = ca.get(serial)
    assert g["status"] == "revoked" and g["revocationReason"] == "keyCompromise"


@pytest.mark.parametrize("reason", REASONS)
def test_revoke_each_reason(ca, reason):
    serial = ca.issue(f"reason-{reason.lower()}.example.com")["serialNumber"]
    ok(ca.post(serial, "revoke", reason=reason))
    g = ca.get(serial)
    assert g["status"] == "revoked" and g["revocationReason"] == reason


@pytest.mark.parametrize("body", [{"reason": "certificateHold"}, {"reason": "removeFromCRL"}, {"reason": "bogus"},
                                  {"reason": 1}, {"reason": "keyCompromise", "invalidityDate": "yesterday"}],
                         ids=["hold", "removeFromCRL", "bogus", "number", "bad-date"])
def test_revoke_bad_body_400(ca, body):
    serial = ca.issue("bad-reason.example.com")["serialNumber"]
    expect_error(ca.post(serial, "revoke", **body), 400)
    assert ca.get(serial)["status"] == "issued"


def test_revoke_unknown_serial_404(ca):
    expect_error(ca.post("00" + secrets.token_hex(15), "revoke", reason="superseded"), 404)
    expect_error(ca.d.api("GET", f"/cas/{ca.id}/certificates/{secrets.token_hex(16)}"), 404)


def test_suspend_unsuspend(ca):
    serial = ca.issue("suspend-me.example.com")["serialNumber"]
    ok(ca.post(serial, "suspend"))
    assert ca.get(serial)["status"] == "suspended"
    ok(ca.post(serial, "unsuspend"))
    g = ca.get(serial)
    assert g["status"] == "issued"
    assert g.get("revokedAt") in (None, "")
    # again: suspend, then a revoke of a suspended certificate is final
    ok(ca.post(serial, "suspend"))
    assert ca.get(serial)["status"] == "suspended"
    ok(ca.post(serial, "revoke", reason="superseded"))
    assert ca.get(serial)["status"] == "revoked"
    expect_error(ca.post(serial, "unsuspend"), 409)


def test_status_comments_are_kept(ca):
    serial = ca.issue("commented.example.com")["serialNumber"]
    ok(ca.post(serial, "suspend", comment="laptop reported lost"))
    assert ca.get(serial)["statusComment"] == "laptop reported lost"
    ok(ca.post(serial, "unsuspend"))
    assert ca.get(serial)["statusComment"] is None, "a change without a comment clears the old one"
    ok(ca.post(serial, "revoke", reason="keyCompromise", comment="ticket SEC-1234 \u00e9"))
    assert ca.get(serial)["statusComment"] == "ticket SEC-1234 \u00e9"
    other = ca.issue("badcomment.example.com")["serialNumber"]
    for bad in ("x" * 1025, "line1\nline2", 42):
        e = expect_error(ca.post(other, "revoke", comment=bad), 400)
        assert e.get("field") == "comment", e
    assert ca.get(other)["status"] == "issued", "a refused request changed nothing"


def test_unsuspend_issued_409(ca):
    serial = ca.issue("never-suspended.example.com")["serialNumber"]
    expect_error(ca.post(serial, "unsuspend"), 409)
    assert ca.get(serial)["status"] == "issued"


# ------------------------------------------------------------------ list filters
@pytest.fixture(scope="module")
def populated(daemon, root):
    """A CA of its own with a known set of certificates."""
    c = CA(daemon, root["id"], "slist")
    tag = secrets.token_hex(3)
    certs = {
        "alpha": c.issue(f"alpha-{tag}.example.com", dns=[f"alpha-{tag}.example.com"]),
        "beta": c.issue(f"beta-{tag}.example.com", dns=[f"zeta-san-{tag}.example.org"], validityPeriod="P3D"),
        "gamma": c.issue(f"gamma-{tag}.example.com"),
        "delta": c.issue(f"delta-{tag}.example.com"),
        "eps": c.issue(f"eps-{tag}.example.com", validityPeriod="P1Y"),
    }
    ok(c.post(certs["gamma"]["serialNumber"], "revoke", reason="superseded"))
    ok(c.post(certs["delta"]["serialNumber"], "revoke", reason="keyCompromise"))
    ok(c.post(certs["eps"]["serialNumber"], "suspend"))
    return c, tag, {k: v["serialNumber"] for k, v in certs.items()}


def test_list_all_and_summary_fields(populated):
    c, tag, s = populated
    body = c.list(limit=100)
    assert sorted(x["serialNumber"] for x in body["certificates"]) == sorted(s.values())
    for x in body["certificates"]:
        assert HEX.match(x["serialNumber"])
        assert x["status"] in ("issued", "revoked", "suspended")
        parse_time(x["notAfter"])
    by = {x["serialNumber"]: x for x in body["certificates"]}
    assert by[s["gamma"]]["status"] == "revoked" and by[s["eps"]]["status"] == "suspended"


def test_list_status_filter(populated):
    c, tag, s = populated
    assert sorted(c.serials(status="revoked")) == sorted([s["gamma"], s["delta"]])
    assert sorted(c.serials(status="suspended")) == [s["eps"]]
    assert sorted(c.serials(status="issued")) == sorted([s["alpha"], s["beta"]])
    expect_error(c.d.api("GET", f"/cas/{c.id}/certificates", params={"status": "bogus"}), 400)


def test_list_q_by_cn_and_san(populated):
    c, tag, s = populated
    assert c.serials(q=f"alpha-{tag}") == [s["alpha"]]
    assert c.serials(q=f"zeta-san-{tag}") == [s["beta"]], "q does not search subjectAltNames"
    assert c.serials(q=f"nothing-{tag}") == []
    assert sorted(c.serials(q=tag)) == sorted(s.values())
    # LIKE wildcards in q match literally
    assert c.serials(q="%") == [] and c.serials(q="_") == [] and c.serials(q="\\") == []
    assert c.serials(q=f"alpha%{tag}") == []


def test_list_serial_filter(populated):
    c, tag, s = populated
    assert c.serials(serial=s["delta"]) == [s["delta"]]
    assert c.serials(serial="ab" * 16) == []


def test_list_profile_filter(populated):
    c, tag, s = populated
    assert sorted(c.serials(profile=PROFILE)) == sorted(s.values())
    assert c.serials(profile="smime-signing") == []


def test_list_expires_within(populated):
    c, tag, s = populated
    got = c.serials(expiresWithin=7)
    assert s["beta"] in got, "P3D certificate not found by expiresWithin=7"
    assert s["alpha"] not in got and s["eps"] not in got, "P1Y certificate matched expiresWithin=7"
    assert got == [s["beta"]]
    assert sorted(c.serials(expiresWithin=30)) == [s["beta"]]


def test_list_expired(populated):
    c, tag, s = populated
    assert c.serials(expired="true") == []


def test_list_bad_params_400(populated):
    c, _, _ = populated
    for params in ({"limit": "0"}, {"limit": "abc"}, {"expiresWithin": "abc"}, {"cursor": "%%%not-a-cursor"}):
        r = c.d.api("GET", f"/cas/{c.id}/certificates", params=params)
        expect_error(r, 400)


def test_pagination(daemon, root):
    c = CA(daemon, root["id"], "spage", ocsp=False)  # no responder certificate among the pages
    days = [40, 10, 70, 20, 60, 30, 50]
    issued = {c.issue(f"page-{d}.example.com", validityPeriod=f"P{d}D")["serialNumber"]: d for d in days}
    assert len(issued) == 7
    seen, pages, cursor = [], [], None
    while True:
        params = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = c.list(**params)
        assert len(body["certificates"]) <= 3
        pages.append(len(body["certificates"]))
        seen += body["certificates"]
        cursor = body["nextCursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 10, "pagination does not end"
    serials = [x["serialNumber"] for x in seen]
    assert len(serials) == len(set(serials)) == 7, f"pages {pages} gave {serials}"
    assert set(serials) == set(issued)
    assert pages == [3, 3, 1], pages
    # sorted by notAfter: here the validity periods are all different
    assert [issued[x] for x in serials] == sorted(days)
    na = [parse_time(x["notAfter"]) for x in seen]
    assert na == sorted(na)


# ------------------------------------------------------------------ downloads
def test_download_formats(daemon, ca, root, tmp_path):
    out = ca.issue("download.example.com", dns=["download.example.com"])
    serial, leaf = out["serialNumber"], out["cert"]
    leaf_der = leaf.public_bytes(serialization.Encoding.DER)
    root_der = download_der(daemon, root["id"])
    path = f"/cas/{ca.id}/certificates/{serial}/download"

    r = daemon.api("GET", path, params={"format": "pem"})
    assert r.status_code == 200, r.text
    assert split_pem_bundle(r.content) == [leaf_der]

    r = daemon.api("GET", path, params={"format": "der"})
    assert r.status_code == 200 and r.content == leaf_der
    assert r.headers.get("Content-Type", "").startswith("application/pkix-cert"), r.headers

    r = daemon.api("GET", path, params={"format": "chain"})
    assert r.status_code == 200
    assert split_pem_bundle(r.content) == [leaf_der, ca.der, root_der], "chain is not leaf -> issuing -> root"

    r = daemon.api("GET", path, params={"format": "pkcs7"})
    assert r.status_code == 200
    p7 = r.content
    certs = pkcs7.load_der_pkcs7_certificates(p7)
    got = {x.public_bytes(serialization.Encoding.DER) for x in certs}
    assert got == {leaf_der, ca.der, root_der}
    f = tmp_path / "c.p7b"
    f.write_bytes(p7)
    txt = openssl("pkcs7", "-inform", "DER", "-in", f, "-print_certs").stdout.decode()
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", txt, re.S)
    assert {x509.load_pem_x509_certificate(b.encode()).public_bytes(serialization.Encoding.DER)
            for b in blocks} == {leaf_der, ca.der, root_der}, txt
    assert "download.example.com" in txt

    expect_error(daemon.api("GET", path, params={"format": "bogus"}), 400)
    expect_error(daemon.api("GET", f"/cas/{ca.id}/certificates/{secrets.token_hex(16)}/download",
                            params={"format": "pem"}), 404)


def test_get_record_matches_bytes(ca):
    out = ca.issue("record.example.com", dns=["record.example.com"])
    g = ca.get(out["serialNumber"])
    cert = out["cert"]
    assert parse_time(g["notAfter"]) == cert.not_valid_after
    assert parse_time(g["notBefore"]) == cert.not_valid_before
    assert g["profileId"] == PROFILE
    assert g["sha256Fingerprint"] == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert g["revocationReason"] in (None, "") and g["revokedAt"] in (None, "")
    assert "record.example.com" in str(g["subjectAltNames"])


def test_revoke_batch_serial_forms_and_bad_fields(ca):
    serials = [ca.issue(f"batch{i}.example.com")["serialNumber"] for i in range(4)]
    forms = [serials[0].upper(), "00" + serials[1], ":".join(serials[2][i:i + 2] for i in range(0, len(serials[2]), 2)),
             format(int(serials[3], 16), "x")]
    # a malformed serial refuses the whole batch (400 naming it), nothing revoked
    e = expect_error(ca.d.api("POST", f"/cas/{ca.id}/certificates/revoke-batch",
                              json={"serials": forms + ["zz"], "reason": "superseded"}), 400)
    assert e.get("field") == f"serials[{len(forms)}]", e
    assert all(ca.get(sn)["status"] == "issued" for sn in serials)
    forms += [serials[0], "0" * 30 + "1"]
    r = ca.d.api("POST", f"/cas/{ca.id}/certificates/revoke-batch", json={"serials": forms, "reason": "superseded"})
    body = ok(r)
    assert [x["result"] for x in body["results"]] == ["revoked"] * 4 + ["already_revoked", "not_found"]
    assert body["summary"] == {"revoked": 4, "alreadyRevoked": 1, "notFound": 1, "failed": 0}, body
    for sn in serials:
        g = ca.get(sn)
        assert g["status"] == "revoked" and g["revocationReason"] == "superseded", g
    fresh = ca.issue("batch-bad.example.com")["serialNumber"]
    for bad, field in (({"reason": 1}, "reason"), ({"invalidityDate": 5}, "invalidityDate"),
                       ({"reason": "certificateHold"}, "reason"), ({"serials": []}, "serials")):
        req = {"serials": [fresh], **bad}
        e = expect_error(ca.d.api("POST", f"/cas/{ca.id}/certificates/revoke-batch", json=req), 400)
        assert e.get("field") == field, e
    assert ca.get(fresh)["status"] == "issued"
