"""End-entity issuance, table-driven over every subscriber profile of src/ca/profiles/system.json.

Each issued certificate is parsed (python3-cryptography) and verified (openssl) and compared with
the profile JSON: key usage, EKU, basic constraints, SKI/AKI, CDP, AIA, validity, policies.
"""
import base64
import calendar
import datetime
import ipaddress
import json
import re
import secrets
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from helpers import (add_years, aia_urls, create_ca, crl_dp_urls, der_tlv, download_der, expect_error, expected_ski,
                     ext_or_none, fmt_time, key_usage_names, openssl, parse_time, uid, utcnow)

SYSTEM_JSON = Path(__file__).resolve().parents[2] / "src" / "ca" / "profiles" / "system.json"
SYSTEM = json.loads(SYSTEM_JSON.read_text())
BY_ID = {p["id"]: p for p in SYSTEM}
SUBSCRIBER = [p for p in SYSTEM if p["kind"] == "subscriber"]
P12_PROFILES = [p for p in SUBSCRIBER if p["pkcs12"]]

UPN_OID = "1.3.6.1.4.1.311.20.2.3"
UPN = "u@corp.example"
CN = "test.example.com"
TOL = datetime.timedelta(minutes=2)
KU_NAMES = {"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement",
            "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
CURVES = {"EC-P256": ec.SECP256R1, "EC-P384": ec.SECP384R1, "EC-P521": ec.SECP521R1}


# ------------------------------------------------------------------ helpers
def ok(resp, status=200):
    assert resp.status_code == status, (f"{resp.request.method} {resp.request.url} -> {resp.status_code}: "
                                        f"{resp.text[:800]}")
    return resp.json()


def add_months(dt, n):
    m = dt.month - 1 + n
    y, m = dt.year + m // 12, m % 12 + 1
    return dt.replace(year=y, month=m, day=min(dt.day, calendar.monthrange(y, m)[1]))


DUR_RE = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def add_duration(dt, text):
    m = DUR_RE.match(text)
    assert m and text not in ("P", "PT"), f"cannot parse duration {text!r}"
    y, mo, w, d, h, mi, s = (int(g or 0) for g in m.groups())
    dt = add_months(add_years(dt, y), mo)
    return dt + datetime.timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)


def key_for(profile):
    """A key of an allowed type: the first of key_types, but never RSA above 2048 (slow)."""
    kts = profile["key_types"]
    for kt in kts:
        if kt == "RSA-2048":
            return kt, rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kt in CURVES:
            return kt, ec.generate_private_key(CURVES[kt]())
    pytest.fail(f"{profile['id']}: no cheap key type in {kts}")


def make_csr(key, cn=CN, dns=(CN,), extra_attrs=(), extensions=()):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn is not None else []
    attrs += list(extra_attrs)
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), critical=False)
    for ext, crit in extensions:
        b = b.add_extension(ext, critical=crit)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def utf8_der(s):
    raw = s.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def issue(d, ca_id, expect=201, **body):
    r = d.api("POST", f"/cas/{ca_id}/certificates", json=body)
    if expect != 201:
        return r
    out = ok(r, 201)
    assert re.fullmatch(r"[0-9a-f]+", out["serialNumber"]), out["serialNumber"]
    assert out["status"] == "issued"
    cert = x509.load_pem_x509_certificate(out["certificate"].encode())
    assert cert.serial_number == int(out["serialNumber"], 16), "response serial does not match the certificate"
    assert parse_time(out["notAfter"]) == cert.not_valid_after
    assert parse_time(out["notBefore"]) == cert.not_valid_before
    return out, cert


def inventory_issued(d):
    inv = ok(d.api("GET", "/inventory"))
    return inv["certificates"]["issued"]


class CA:
    def __init__(self, d, info, tmp):
        self.d, self.info, self.id = d, info, info["id"]
        self.der = download_der(d, self.id)
        self.cert = x509.load_der_x509_certificate(self.der)
        self.pem_path = tmp / f"{self.id}.pem"
        self.pem_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture(scope="module")
def hier(daemon, tmp_path_factory):
    """root -> issuing subord (EC P-256, CRL+OCSP, 15-year expiry) with every subscriber profile."""
    tmp = tmp_path_factory.mktemp("issuance")
    root = CA(daemon, create_ca(daemon, id=uid("iroot"), friendlyName="Issuance root", type="root",
                                signingKeyDetails="ECDSAP256+SHA256", subject="CN=Issuance Root,O=Test"), tmp)
    exp = fmt_time(add_years(utcnow(), 15))
    sub = CA(daemon, create_ca(daemon, id=uid("isub"), friendlyName="Issuance sub", type="subord",
                               parentId=root.id, signingKeyDetails="ECDSAP256+SHA256",
                               subject="CN=Issuance Sub,O=Test", enableCrl=True, enableOcsp=True,
                               expiryDate=exp), tmp)
    for p in SUBSCRIBER:
        ok(daemon.api("POST", f"/cas/{sub.id}/profiles", json={"profileId": p["id"]}))
    assigned = ok(daemon.api("GET", f"/cas/{sub.id}/profiles"))["profiles"]
    assert sorted(assigned) == sorted(p["id"] for p in SUBSCRIBER)
    return {"root": root, "sub": sub, "tmp": tmp}


def openssl_verify(hier, cert, name):
    leaf = hier["tmp"] / f"{name}-{secrets.token_hex(3)}.pem"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cp = openssl("verify", "-CAfile", hier["root"].pem_path, "-untrusted", hier["sub"].pem_path, leaf, check=False)
    out = cp.stdout.decode() + cp.stderr.decode()
    assert cp.returncode == 0 and f"{leaf}: OK" in out, f"openssl verify failed for {name}:\n{out}"


def check_common(d, hier, cert, profile, *, issued_at, pubkey, capped=False):
    """Everything the profile JSON and the contract say about a subscriber certificate."""
    pid = profile["id"]
    sub = hier["sub"]
    acct, ca_id = d.account, sub.id
    assert cert.version == x509.Version.v3
    assert cert.issuer.public_bytes() == sub.cert.subject.public_bytes(), f"{pid}: issuer != CA subject"

    # Key usage
    ku = ext_or_none(cert, ExtensionOID.KEY_USAGE)
    want_ku = {u for u in profile["usages"] if u in KU_NAMES}
    assert ku is not None, f"{pid}: no keyUsage"
    assert set(key_usage_names(ku.value)) == want_ku, f"{pid}: keyUsage {key_usage_names(ku.value)} != {want_ku}"
    assert ku.critical == profile["key_usage_critical"], f"{pid}: keyUsage critical {ku.critical}"

    # Extended key usage
    want_eku = {u for u in profile["usages"] if u not in KU_NAMES}
    eku = ext_or_none(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    if want_eku:
        assert eku is not None, f"{pid}: EKU missing, wanted {want_eku}"
        got = [o.dotted_string for o in eku.value]
        assert set(got) == want_eku and len(got) == len(want_eku), f"{pid}: EKU {got} != {want_eku}"
        assert eku.critical == profile["extended_key_usage_critical"], f"{pid}: EKU critical {eku.critical}"
    else:
        assert eku is None, f"{pid}: unexpected EKU {[o.dotted_string for o in eku.value]}"

    # Basic constraints
    bc = ext_or_none(cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert bc is not None and bc.critical, f"{pid}: basicConstraints missing or not critical"
    assert bc.value.ca is False and bc.value.path_length is None

    # SKI / AKI
    ski = ext_or_none(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    assert ski is not None and not ski.critical
    assert ski.value.digest == expected_ski(pubkey), f"{pid}: SKI is not RFC 7093 method 1"
    assert ski.value.digest == expected_ski(cert.public_key())
    aki = ext_or_none(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    ca_ski = sub.cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
    assert aki is not None and not aki.critical
    assert aki.value.key_identifier == ca_ski, f"{pid}: AKI != CA SKI"

    # CDP / AIA
    cdp = crl_dp_urls(cert)
    assert cdp and len(cdp) == 1 and cdp[0].endswith(f"/crl/{acct}/{ca_id}/crl.crl"), f"{pid}: CDP {cdp}"
    assert cdp[0].startswith("http://")
    aia = aia_urls(cert)
    assert aia is not None, f"{pid}: no AIA"
    assert len(aia["ocsp"]) == 1 and aia["ocsp"][0].endswith(f"/ocsp/{acct}/{ca_id}"), f"{pid}: AIA {aia}"
    assert len(aia["caIssuers"]) == 1 and aia["caIssuers"][0].endswith(f"/ca/{acct}/{ca_id}.crt"), f"{pid}: {aia}"

    # Validity
    nb, na = cert.not_valid_before, cert.not_valid_after
    assert abs(nb - issued_at) <= TOL, f"{pid}: notBefore {nb} vs issued {issued_at}"
    if capped:
        assert na == sub.cert.not_valid_after, f"{pid}: capped notAfter {na} != CA {sub.cert.not_valid_after}"
    else:
        want = add_duration(issued_at, profile["validity_period"])
        assert abs(na - want) <= TOL, f"{pid}: notAfter {na}, wanted {want} ({profile['validity_period']})"
        assert na <= sub.cert.not_valid_after

    # Certificate policies
    cp = ext_or_none(cert, ExtensionOID.CERTIFICATE_POLICIES)
    if profile["certificate_policies"]:
        assert cp is not None, f"{pid}: certificatePolicies missing"
        assert not cp.critical
        got = [pi.policy_identifier.dotted_string for pi in cp.value]
        assert sorted(got) == sorted(profile["certificate_policies"]), f"{pid}: policies {got}"
    else:
        assert cp is None, f"{pid}: unexpected certificatePolicies"

    # No extension appears twice, no unexpected critical extension
    oids = [e.oid.dotted_string for e in cert.extensions]
    assert len(oids) == len(set(oids)), f"{pid}: duplicate extensions {oids}"
    critical_ok = {ExtensionOID.KEY_USAGE.dotted_string, ExtensionOID.BASIC_CONSTRAINTS.dotted_string,
                   ExtensionOID.EXTENDED_KEY_USAGE.dotted_string}
    for e in cert.extensions:
        if e.critical:
            assert e.oid.dotted_string in critical_ok, f"{pid}: {e.oid.dotted_string} is critical"

    openssl_verify(hier, cert, pid)


def san_entries(cert):
    ext = ext_or_none(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    return ext, (list(ext.value) if ext else [])


# ------------------------------------------------------------------ every subscriber profile
@pytest.mark.parametrize("profile", SUBSCRIBER, ids=lambda p: p["id"])
def test_issue_every_subscriber_profile(daemon, hier, profile):
    kt, key = key_for(profile)
    body = {"profileId": profile["id"], "csr": make_csr(key)}
    need_san = profile["subject_alt_name"] == "required"
    if need_san:
        body["subjectAltNames"] = [{"type": "userPrincipalName", "value": UPN}]
    issued_at = utcnow()
    out, cert = issue(daemon, hier["sub"].id, **body)
    assert out["validityCapped"] is False
    assert "pkcs12" not in out or out["pkcs12"] in (None, "")
    chain = [x509.load_pem_x509_certificate(c.encode()) for c in out["chain"]]
    assert [c.public_bytes(serialization.Encoding.DER) for c in chain] == [hier["sub"].der, hier["root"].der]

    assert cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cert.subject.rfc4514_string() == f"CN={CN}"
    check_common(daemon, hier, cert, profile, issued_at=issued_at, pubkey=key.public_key())

    # SAN: the CSR's DNS name merged with the request's UPN; non-critical (subject not empty)
    ext, names = san_entries(cert)
    assert ext is not None and not ext.critical
    dns = [n.value for n in names if isinstance(n, x509.DNSName)]
    assert dns == [CN], f"DNS SANs {dns}"
    upns = [n for n in names if isinstance(n, x509.OtherName) and n.type_id.dotted_string == UPN_OID]
    if need_san:
        assert len(upns) == 1 and UPN.encode() in upns[0].value, f"UPN missing: {names}"
    else:
        assert not upns

    # The stored record agrees with the bytes
    rec = ok(daemon.api("GET", f"/cas/{hier['sub'].id}/certificates/{out['serialNumber']}"))
    assert rec["profileId"] == profile["id"] and rec["status"] == "issued"
    assert rec["serialNumber"] == out["serialNumber"]


# ------------------------------------------------------------------ PKCS#12
@pytest.mark.parametrize("profile", P12_PROFILES, ids=lambda p: p["id"])
def test_pkcs12_every_p12_profile(daemon, hier, profile, tmp_path):
    kt = profile["key_types"][0]
    if kt not in ("RSA-2048",) and kt not in CURVES:
        kt = next(k for k in profile["key_types"] if k == "RSA-2048" or k in CURVES)
    password = "p12-" + secrets.token_hex(8)
    body = {"profileId": profile["id"], "keyType": kt, "p12Password": password, "subject": "CN=p12.example.com"}
    if profile["subject_alt_name"] == "required":
        body["subjectAltNames"] = [{"type": "rfc822Name", "value": "p12@example.com"}]
    issued_at = utcnow()
    out, cert = issue(daemon, hier["sub"].id, **body)
    assert out.get("pkcs12"), "no pkcs12 in the response"
    blob = base64.b64decode(out["pkcs12"], validate=True)
    f = tmp_path / "bundle.p12"
    f.write_bytes(blob)

    dump = openssl("pkcs12", "-in", f, "-passin", f"pass:{password}", "-nodes").stdout.decode()
    assert "PRIVATE KEY-----" in dump and "BEGIN CERTIFICATE" in dump
    info = openssl("pkcs12", "-info", "-in", f, "-passin", f"pass:{password}", "-noout")
    info_text = info.stdout.decode() + info.stderr.decode()
    assert "AES-256-CBC" in info_text, f"PKCS#12 not AES-256-CBC:\n{info_text}"
    bad = openssl("pkcs12", "-in", f, "-passin", "pass:wrong-password", "-nodes", check=False)
    assert bad.returncode != 0, "PKCS#12 opened with a wrong password"

    key_pem = re.search(r"-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----", dump, re.S)
    assert key_pem, dump[:500]
    key = serialization.load_pem_private_key(key_pem.group(0).encode(), None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(serialization.Encoding.DER, spki) == \
        cert.public_key().public_bytes(serialization.Encoding.DER, spki), "PKCS#12 key does not match the certificate"
    if kt.startswith("RSA"):
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == int(kt[4:])
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, CURVES[kt])

    k2, c2, extra = pkcs12.load_key_and_certificates(blob, password.encode())
    assert c2.public_bytes(serialization.Encoding.DER) == cert.public_bytes(serialization.Encoding.DER)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "p12.example.com"
    check_common(daemon, hier, cert, profile, issued_at=issued_at, pubkey=key.public_key())


def test_pkcs12_bad_requests(daemon, hier):
    prof = P12_PROFILES[0]["id"]
    ca = hier["sub"].id
    expect_error(issue(daemon, ca, expect=400, profileId=prof, keyType="EC-P256", p12Password="short",
                       subject="CN=x"), 400)
    expect_error(issue(daemon, ca, expect=400, profileId=prof, keyType="DSA-1024", p12Password="longenough1",
                       subject="CN=x"), 400)
    key = ec.generate_private_key(ec.SECP256R1())
    expect_error(issue(daemon, ca, expect=400, profileId=prof, keyType="EC-P256", p12Password="longenough1",
                       csr=make_csr(key)), 400)


# ------------------------------------------------------------------ validity
@pytest.fixture(scope="module")
def short_ca(daemon, hier):
    """An issuing CA that expires in 30 days, with only privatessl-tls-server assigned."""
    exp = fmt_time(utcnow() + datetime.timedelta(days=30))
    info = create_ca(daemon, id=uid("ishort"), friendlyName="short", type="subord", parentId=hier["root"].id,
                     signingKeyDetails="ECDSAP256+SHA256", subject="CN=Short Sub", enableCrl=False,
                     enableOcsp=False, expiryDate=exp, profiles=["privatessl-tls-server"])
    return CA(daemon, info, hier["tmp"])


def test_validity_capped_at_ca_expiry(daemon, short_ca):
    assert BY_ID["privatessl-tls-server"]["validity_period"] == "P1Y"
    key = ec.generate_private_key(ec.SECP256R1())
    out, cert = issue(daemon, short_ca.id, profileId="privatessl-tls-server", csr=make_csr(key))
    assert out["validityCapped"] is True
    assert cert.not_valid_after == short_ca.cert.not_valid_after, (cert.not_valid_after, short_ca.cert.not_valid_after)
    # CDP absent and no OCSP URL on a CA without CRL/OCSP; caIssuers always there
    assert crl_dp_urls(cert) is None
    aia = aia_urls(cert)
    assert aia["ocsp"] == [] and aia["caIssuers"][0].endswith(f"/ca/{daemon.account}/{short_ca.id}.crt")
    # A request beyond the CA's life is capped too
    out, cert = issue(daemon, short_ca.id, profileId="privatessl-tls-server", csr=make_csr(key),
                      validityPeriod="P90D")
    assert out["validityCapped"] is True and cert.not_valid_after == short_ca.cert.not_valid_after


def test_validity_request_overrides_profile(daemon, hier, short_ca):
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    out, cert = issue(daemon, short_ca.id, profileId="privatessl-tls-server", csr=make_csr(key),
                      validityPeriod="P3D")
    assert out["validityCapped"] is False
    assert abs(cert.not_valid_after - (now + datetime.timedelta(days=3))) <= TOL
    want = (utcnow() + datetime.timedelta(days=10)).replace(second=0)
    out, cert = issue(daemon, hier["sub"].id, profileId="privatessl-tls-server", csr=make_csr(key),
                      notAfter=fmt_time(want))
    assert out["validityCapped"] is False and cert.not_valid_after == want
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key),
              validityPeriod="P1X")
    assert expect_error(r, 400).get("field") == "validityPeriod"
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key),
              validityPeriod="P3D", notAfter=fmt_time(want))
    expect_error(r, 400)
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key),
              notAfter="2001-01-01T00:00:00Z")
    expect_error(r, 400)


def test_not_before_future_start(daemon, hier):
    key = ec.generate_private_key(ec.SECP256R1())
    start = (utcnow() + datetime.timedelta(days=2)).replace(second=0, microsecond=0)
    out, cert = issue(daemon, hier["sub"].id, profileId="privatessl-tls-server", csr=make_csr(key),
                      notBefore=fmt_time(start), validityPeriod="P30D")
    assert cert.not_valid_before == start, "a future start must be the certificate's notBefore"
    assert cert.not_valid_after == start + datetime.timedelta(days=30), "the duration counts from notBefore"
    # notAfter before the requested start: refused
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key),
              notBefore=fmt_time(start), notAfter=fmt_time(start - datetime.timedelta(hours=1)))
    assert expect_error(r, 400).get("field") == "notAfter"
    # no backdating: a start an hour ago is refused, naming the field
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key),
              notBefore=fmt_time(utcnow() - datetime.timedelta(hours=1)))
    assert expect_error(r, 400).get("field") == "notBefore"
    # a start after the CA expires: refused
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key),
              notBefore=fmt_time(add_years(utcnow(), 40)))
    assert expect_error(r, 400).get("field") == "notBefore"
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key),
              notBefore="tomorrow")
    assert expect_error(r, 400).get("field") == "notBefore"


def test_csr_sans_can_be_ignored(daemon, hier):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr(key, dns=(CN, "unwanted.example.com"))
    sans = [{"type": "dNSName", "value": "wanted.example.com"}]
    _, cert = issue(daemon, hier["sub"].id, profileId="privatessl-tls-server", csr=csr, subjectAltNames=sans,
                    useCsrSubjectAltNames=False)
    _, names = san_entries(cert)
    assert [n.value for n in names] == ["wanted.example.com"]
    _, cert = issue(daemon, hier["sub"].id, profileId="privatessl-tls-server", csr=csr, subjectAltNames=sans)
    _, names = san_entries(cert)
    assert sorted(n.value for n in names) == sorted([CN, "unwanted.example.com", "wanted.example.com"])
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=csr,
              useCsrSubjectAltNames="no")
    assert expect_error(r, 400).get("field") == "useCsrSubjectAltNames"


# ------------------------------------------------------------------ SAN handling
def test_supply_san_copies_cn(daemon, hier):
    prof = "privatessl-tls-server-supply-san"
    assert BY_ID[prof]["supply_san"] is True
    key = ec.generate_private_key(ec.SECP256R1())
    out, cert = issue(daemon, hier["sub"].id, profileId=prof, csr=make_csr(key, cn="host.example.com", dns=()))
    ext, names = san_entries(cert)
    assert ext is not None, "supply-san profile issued without a SAN"
    assert [n.value for n in names if isinstance(n, x509.DNSName)] == ["host.example.com"]
    # a non-supply-san profile does not invent one
    out, cert = issue(daemon, hier["sub"].id, profileId="privatessl-tls-server",
                      csr=make_csr(key, cn="host.example.com", dns=()))
    assert ext_or_none(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME) is None


def test_san_merge_and_all_types(daemon, hier):
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [{"type": "dNSName", "value": "www.example.com"}, {"type": "iPAddress", "value": "192.0.2.1"},
            {"type": "iPAddress", "value": "2001:db8::1"}, {"type": "rfc822Name", "value": "a@example.com"},
            {"type": "uniformResourceIdentifier", "value": "https://x.example/p"},
            {"type": "userPrincipalName", "value": UPN}]
    out, cert = issue(daemon, hier["sub"].id, profileId="privatessl-tls-server", csr=make_csr(key),
                      subjectAltNames=sans)
    _, names = san_entries(cert)
    assert sorted(n.value for n in names if isinstance(n, x509.DNSName)) == sorted([CN, "www.example.com"])
    assert sorted(str(n.value) for n in names if isinstance(n, x509.IPAddress)) == \
        sorted([str(ipaddress.ip_address("192.0.2.1")), str(ipaddress.ip_address("2001:db8::1"))])
    assert [n.value for n in names if isinstance(n, x509.RFC822Name)] == ["a@example.com"]
    assert [n.value for n in names if isinstance(n, x509.UniformResourceIdentifier)] == ["https://x.example/p"]
    assert len([n for n in names if isinstance(n, x509.OtherName) and n.type_id.dotted_string == UPN_OID]) == 1


def test_empty_subject_san_critical(daemon, hier):
    key = ec.generate_private_key(ec.SECP256R1())
    out, cert = issue(daemon, hier["sub"].id, profileId="privatessl-tls-server", csr=make_csr(key),
                      subject="")
    assert len(cert.subject) == 0, cert.subject
    ext = ext_or_none(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert ext is not None and ext.critical is True, "SAN must be critical with an empty subject"
    # empty subject and no SAN at all -> 400
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server",
              csr=make_csr(key, dns=()), subject="")
    expect_error(r, 400)


def test_san_required_profile_without_san_400(daemon, hier):
    prof = next(p for p in SUBSCRIBER if p["subject_alt_name"] == "required" and "RSA-2048" in p["key_types"])
    key = ec.generate_private_key(ec.SECP256R1()) if "EC-P256" in prof["key_types"] else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = issue(daemon, hier["sub"].id, expect=400, profileId=prof["id"], csr=make_csr(key, dns=()))
    assert expect_error(r, 400).get("field") == "subjectAltNames"


def test_wildcard_only_on_server_auth(daemon, hier):
    key = ec.generate_private_key(ec.SECP256R1())
    out, cert = issue(daemon, hier["sub"].id, profileId="privatessl-tls-server", csr=make_csr(key),
                      subjectAltNames=[{"type": "dNSName", "value": "*.example.com"}])
    assert "*.example.com" in [n.value for n in san_entries(cert)[1] if isinstance(n, x509.DNSName)]
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-client", csr=make_csr(key),
              subjectAltNames=[{"type": "dNSName", "value": "*.example.com"}])
    expect_error(r, 400)


# ------------------------------------------------------------------ request extensions
@pytest.fixture(scope="module")
def ext_profiles(daemon, hier):
    strict, lenient = f"privatessl-x-{secrets.token_hex(3)}", f"privatessl-y-{secrets.token_hex(3)}"
    for pid, ignore in ((strict, False), (lenient, True)):
        r = daemon.api("POST", "/profiles", json={"id": pid, "sourceProfileId": "privatessl-tls-server",
                                                  "allowed_extensions": ["1.2.3.4"],
                                                  "ignore_unknown_extensions": ignore})
        ok(r, 201)
        ok(daemon.api("POST", f"/cas/{hier['sub'].id}/profiles", json={"profileId": pid}))
    return strict, lenient


def _ext(oid, text, critical=False):
    return {"oid": oid, "critical": critical, "value": base64.b64encode(utf8_der(text)).decode()}


def test_extension_allowed_is_copied(daemon, hier, ext_profiles):
    strict, _ = ext_profiles
    key = ec.generate_private_key(ec.SECP256R1())
    out, cert = issue(daemon, hier["sub"].id, profileId=strict, csr=make_csr(key),
                      extensions=[_ext("1.2.3.4", "hello")])
    e = ext_or_none(cert, x509.ObjectIdentifier("1.2.3.4"))
    assert e is not None, "allowed request extension 1.2.3.4 missing from the certificate"
    assert e.value.value == utf8_der("hello") and e.critical is False


def test_extension_unknown_rejected_when_strict(daemon, hier, ext_profiles):
    strict, _ = ext_profiles
    key = ec.generate_private_key(ec.SECP256R1())
    before = inventory_issued(daemon)
    r = issue(daemon, hier["sub"].id, expect=400, profileId=strict, csr=make_csr(key),
              extensions=[_ext("1.2.3.5", "nope")])
    err = expect_error(r, 400)
    assert "1.2.3.5" in err["message"], err
    assert err.get("field", "").startswith("extensions"), err
    # same extension in the CSR's extensionRequest
    csr = make_csr(key, extensions=[(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.5"),
                                                                utf8_der("nope")), False)])
    r = issue(daemon, hier["sub"].id, expect=400, profileId=strict, csr=csr)
    assert "1.2.3.5" in expect_error(r, 400)["message"]
    assert inventory_issued(daemon) == before, "a refused request was counted as issued"


def test_extension_unknown_ignored_when_lenient(daemon, hier, ext_profiles):
    _, lenient = ext_profiles
    key = ec.generate_private_key(ec.SECP256R1())
    out, cert = issue(daemon, hier["sub"].id, profileId=lenient, csr=make_csr(key),
                      extensions=[_ext("1.2.3.5", "ignored"), _ext("1.2.3.4", "kept")])
    assert ext_or_none(cert, x509.ObjectIdentifier("1.2.3.5")) is None, "ignored extension copied"
    assert ext_or_none(cert, x509.ObjectIdentifier("1.2.3.4")).value.value == utf8_der("kept")


def test_system_profile_strict_extensions(daemon, hier):
    """v2g profiles accept no request extensions and reject unknown ones."""
    prof = next(p for p in SUBSCRIBER if not p["allowed_extensions"] and not p["ignore_unknown_extensions"])
    key = ec.generate_private_key(ec.SECP256R1())
    r = issue(daemon, hier["sub"].id, expect=400, profileId=prof["id"], csr=make_csr(key),
              extensions=[_ext("1.2.3.4", "x")])
    expect_error(r, 400)


def _policies_b64(*oids):
    pol = x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(o), None) for o in oids])
    return base64.b64encode(pol.public_bytes()).decode()


def test_extension_given_twice_400(daemon, hier):
    """RFC 5280 4.2: an extension appears at most once. Two certificatePolicies in the request, or one in the
    CSR and one beside it, or two EKUs, are refused; never a certificate with both, never a 500."""
    key = ec.generate_private_key(ec.SECP256R1())
    before = inventory_issued(daemon)
    pol = {"oid": "2.5.29.32", "critical": False, "value": _policies_b64("1.3.6.1.4.1.99999.7")}
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key),
              extensions=[pol, pol])
    assert "twice" in expect_error(r, 400)["message"]
    csr = make_csr(key, extensions=[(x509.CertificatePolicies(
        [x509.PolicyInformation(x509.ObjectIdentifier("1.3.6.1.4.1.99999.8"), None)]), False)])
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=csr, extensions=[pol])
    assert "twice" in expect_error(r, 400)["message"]
    eku = {"oid": "2.5.29.37", "critical": False,
           "value": base64.b64encode(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]).public_bytes()).decode()}
    prof = next(p for p in SUBSCRIBER if "2.5.29.37" in p["allowed_extensions"])
    r = issue(daemon, hier["sub"].id, expect=400, profileId=prof["id"], csr=make_csr(key), extensions=[eku, eku])
    assert "twice" in expect_error(r, 400)["message"]
    assert inventory_issued(daemon) == before, "a refused request was counted as issued"


def test_extension_with_no_entries_400(daemon, hier):
    """An EKU or certificatePolicies extension must list at least one entry (an empty EKU would silently
    replace the profile's usages)."""
    key = ec.generate_private_key(ec.SECP256R1())
    prof = next(p for p in SUBSCRIBER if "2.5.29.37" in p["allowed_extensions"])
    for pid, oid in ((prof["id"], "2.5.29.37"), ("privatessl-tls-server", "2.5.29.32")):
        r = issue(daemon, hier["sub"].id, expect=400, profileId=pid, csr=make_csr(key),
                  extensions=[{"oid": oid, "critical": False, "value": "MAA="}])  # SEQUENCE {}
        err = expect_error(r, 400)
        assert oid in err["message"] and "at least one" in err["message"], err


def test_ca_set_extensions_cannot_be_supplied(daemon, hier):
    """Extensions the CA writes itself (SAN, basicConstraints, keyUsage, SKI, AKI, CDP, AIA) are refused in the
    request even when a custom profile lists them: otherwise the certificate carries two, and a raw SAN skips
    the SAN checks (a wildcard on a client profile)."""
    pid = f"privatessl-raw-{secrets.token_hex(3)}"
    ok(daemon.api("POST", "/profiles", json={"id": pid, "sourceProfileId": "privatessl-tls-client",
                                             "allowed_extensions": ["2.5.29.17", "2.5.29.19", "2.5.29.15"]}), 201)
    ok(daemon.api("POST", f"/cas/{hier['sub'].id}/profiles", json={"profileId": pid}))
    key = ec.generate_private_key(ec.SECP256R1())
    raw = {"2.5.29.17": x509.SubjectAlternativeName([x509.DNSName("*.evil.example")]),
           "2.5.29.19": x509.BasicConstraints(ca=True, path_length=None),
           "2.5.29.15": x509.KeyUsage(True, False, False, False, False, True, True, False, False)}
    before = inventory_issued(daemon)
    for oid, ext in raw.items():
        r = issue(daemon, hier["sub"].id, expect=400, profileId=pid, csr=make_csr(key),
                  extensions=[{"oid": oid, "critical": True, "value": base64.b64encode(ext.public_bytes()).decode()}])
        err = expect_error(r, 400)
        assert oid in err["message"] and "set by the CA" in err["message"], err
    assert inventory_issued(daemon) == before


def test_malformed_extension_request_400(daemon, hier):
    """A CSR whose extensionRequest attribute cannot be decoded is refused, not issued without its SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    good = x509.load_pem_x509_csr(make_csr(key, dns=()).encode())
    # CertificationRequestInfo with attributes [0] { { extensionRequest, SET { INTEGER 5 } } }
    raw, info = good.tbs_certrequest_bytes, []
    _, pos, end = der_tlv(raw, 0)
    while pos < end:  # version, subject, subjectPKInfo, attributes [0]
        _, _, nxt = der_tlv(raw, pos)
        info.append(raw[pos:nxt])
        pos = nxt
    ext_req = bytes.fromhex("06092a864886f70d01090e")  # 1.2.840.113549.1.9.14
    attr = _der(0x30, ext_req + _der(0x31, bytes.fromhex("020105")))
    tbs = _der(0x30, b"".join(info[:3]) + _der(0xA0, attr))
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    alg = _der(0x30, bytes.fromhex("06082a8648ce3d040302"))  # ecdsa-with-SHA256
    der = _der(0x30, tbs + alg + _der(0x03, b"\x00" + sig))
    csr = x509.load_der_x509_csr(der)
    assert csr.is_signature_valid
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server",
              csr=csr.public_bytes(serialization.Encoding.PEM).decode(),
              subjectAltNames=[{"type": "dNSName", "value": CN}])
    assert "extensionRequest" in expect_error(r, 400)["message"]


def _der(tag, body):
    n = len(body)
    if n < 128:
        return bytes([tag, n]) + body
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(ln)]) + ln + body


# ------------------------------------------------------------------ subject handling
def test_use_subject_from_csr(daemon, hier):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr(key, cn="csr.example.com", extra_attrs=[x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CSR Org"),
                                                           x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")])
    csr_obj = x509.load_pem_x509_csr(csr.encode())
    for extra in ({"useSubjectFromCsr": True}, {}):
        out, cert = issue(daemon, hier["sub"].id, profileId="privatessl-tls-server", csr=csr, **extra)
        assert cert.subject == csr_obj.subject, (cert.subject, csr_obj.subject)


def test_subject_override(daemon, hier):
    key = ec.generate_private_key(ec.SECP256R1())
    out, cert = issue(daemon, hier["sub"].id, profileId="privatessl-tls-server",
                      csr=make_csr(key, cn="csr.example.com"), subject="CN=override.example.com,O=Override Inc,C=US")
    get = lambda oid: [a.value for a in cert.subject.get_attributes_for_oid(oid)]  # noqa: E731
    assert get(NameOID.COMMON_NAME) == ["override.example.com"]
    assert get(NameOID.ORGANIZATION_NAME) == ["Override Inc"]
    assert get(NameOID.COUNTRY_NAME) == ["US"]
    assert "csr.example.com" not in cert.subject.rfc4514_string()
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key),
              subject="NOTANATTR=x")
    assert expect_error(r, 400).get("field") == "subject"


# ------------------------------------------------------------------ key checks
def test_rsa_1024_refused(daemon, hier):
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key))
    err = expect_error(r, 400)
    assert err.get("field") == "csr"
    assert "2048" in err["message"] and "P-256" in err["message"], f"message does not list allowed keys: {err}"


def test_secp256k1_refused(daemon, hier):
    key = ec.generate_private_key(ec.SECP256K1())
    r = issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr=make_csr(key))
    assert expect_error(r, 400).get("field") == "csr"


def test_key_type_not_in_profile(daemon, hier):
    prof = next(p for p in SUBSCRIBER if p["key_types"] == ["EC-P256"])
    key = ec.generate_private_key(ec.SECP384R1())
    r = issue(daemon, hier["sub"].id, expect=400, profileId=prof["id"], csr=make_csr(key))
    err = expect_error(r, 400)
    assert "EC-P384" in err["message"], err


def test_unassigned_profile_409(daemon, short_ca):
    key = ec.generate_private_key(ec.SECP256R1())
    r = issue(daemon, short_ca.id, expect=409, profileId="privatessl-tls-client", csr=make_csr(key))
    expect_error(r, 409)
    r = issue(daemon, short_ca.id, expect=400, profileId="no-such-profile", csr=make_csr(key))
    expect_error(r, (400, 404))


def test_root_cannot_issue_subscriber(daemon, hier):
    key = ec.generate_private_key(ec.SECP256R1())
    r = issue(daemon, hier["root"].id, expect=409, profileId="privatessl-tls-server", csr=make_csr(key))
    expect_error(r, (400, 409))


# ------------------------------------------------------------------ inventory
def test_inventory_counts_exactly(daemon, hier):
    before = inventory_issued(daemon)
    key = ec.generate_private_key(ec.SECP256R1())
    n = 3
    for _ in range(n):
        issue(daemon, hier["sub"].id, profileId="privatessl-tls-server", csr=make_csr(key))
    issue(daemon, hier["sub"].id, profileId=P12_PROFILES[0]["id"], keyType="EC-P256",
          p12Password="inventory-pw", subject="CN=inv") if "EC-P256" in P12_PROFILES[0]["key_types"] else \
        issue(daemon, hier["sub"].id, profileId=P12_PROFILES[0]["id"], keyType="RSA-2048",
              p12Password="inventory-pw", subject="CN=inv")
    n += 1
    # a refused request does not count
    issue(daemon, hier["sub"].id, expect=400, profileId="privatessl-tls-server", csr="garbage")
    assert inventory_issued(daemon) == before + n


def test_certificate_policies_profile_plus_request(daemon, hier):
    """profiles.md: Certificate Policies = the profile's certificate_policies plus the request's policies."""
    pid = f"privatessl-pol-{secrets.token_hex(3)}"
    ok(daemon.api("POST", "/profiles", json={"id": pid, "sourceProfileId": "privatessl-tls-server",
                                             "certificate_policies": ["2.23.140.1.2.1"]}), 201)
    ok(daemon.api("POST", f"/cas/{hier['sub'].id}/profiles", json={"profileId": pid}))
    key = ec.generate_private_key(ec.SECP256R1())
    # without request policies: exactly the profile's
    _, cert = issue(daemon, hier["sub"].id, profileId=pid, csr=make_csr(key))
    got = [p.policy_identifier.dotted_string for p in
           cert.extensions.get_extension_for_oid(ExtensionOID.CERTIFICATE_POLICIES).value]
    assert got == ["2.23.140.1.2.1"]
    # with a request policy: both
    req = x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), None)])
    _, cert = issue(daemon, hier["sub"].id, profileId=pid, csr=make_csr(key),
                    extensions=[{"oid": "2.5.29.32", "critical": False,
                                 "value": base64.b64encode(req.public_bytes()).decode()}])
    got = [p.policy_identifier.dotted_string for p in
           cert.extensions.get_extension_for_oid(ExtensionOID.CERTIFICATE_POLICIES).value]
    assert sorted(got) == sorted(["2.23.140.1.2.1", "1.3.6.1.4.1.99999.1"]), f"policies {got}"
