"""EST findings of a review, each reproduced against the daemon first: serverkeygen answering a request for an
encrypted key in clear, serverkeygen ignoring the CSR's extensions (and so the profile's rules on them), and
simplereenroll accepting a subject that differs in case and spacing (RFC 7030 4.2.2: identical)."""
import base64

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

from helpers import uid
from test_est import enroll, enrolled, est, make_csr, p7_certs, parse_multipart  # noqa: F401

ID_AA_DECRYPT_KEY_ID = "1.2.840.113549.1.9.16.2.37"        # RFC 7030 4.4.1.1
ID_AA_ASYMM_DECRYPT_KEY_ID = "1.2.840.113549.1.9.16.2.54"  # RFC 7030 4.4.1.2
POLICY = "1.3.6.1.4.1.99999.1.2"


def write_csr(tmp, name, csr):
    p = tmp / f"{name}.b64"
    p.write_bytes(base64.encodebytes(csr.public_bytes(serialization.Encoding.DER)))
    return p


def csr_with(name, key, extensions=(), attributes=()):
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
    for ext in extensions:
        b = b.add_extension(ext, False)
    for oid, value in attributes:
        b = b.add_attribute(ObjectIdentifier(oid), value, _tag=_ASN1Type.OctetString)
    return b.sign(key, hashes.SHA256())


def test_serverkeygen_encryption_request_not_answered_in_clear(est):
    """A serverkeygen request asking for the key to be encrypted (DecryptKeyIdentifier /
    AsymmetricDecryptKeyIdentifier) must be refused by a server that cannot encrypt it, not
    answered with a cleartext application/pkcs8 key (RFC 7030 4.4.1.1 / 4.4.1.2 / 4.4.2)."""
    key = ec.generate_private_key(ec.SECP256R1())
    for oid, value in ((ID_AA_DECRYPT_KEY_ID, b"kek-1"), (ID_AA_ASYMM_DECRYPT_KEY_ID, b"\x01" * 20)):
        p = write_csr(est.tmp, f"kg-enc-{oid[-2:]}", csr_with("kg-encrypted", key, attributes=[(oid, value)]))
        r = enroll(est, est.base, p, "-u", est.user, op="serverkeygen")
        parts = parse_multipart(r) if r.status == 200 else []
        assert r.status == 501, (oid, r.status, [h.get("content-type") for h, _ in parts])
        assert "encrypted" in r.text, r.text


def test_serverkeygen_requested_extensions_like_simpleenroll(est):
    """RFC 7030 4.4.1: serverkeygen treats the CSR as simpleenroll does (only its key and signature are
    ignored). simpleenroll honours a requested certificatePolicies (est-* profiles allow 2.5.29.32);
    serverkeygen used to drop it silently."""
    key = ec.generate_private_key(ec.SECP256R1())
    pol = x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier(POLICY), None)])
    p = write_csr(est.tmp, "kg-pol", csr_with("kg-policy", key, extensions=[pol]))
    r1 = enroll(est, est.base, p, "-u", est.user)
    assert r1.status == 200, r1.text
    c1 = p7_certs(r1.body, est.tmp)[0]
    assert c1.extensions.get_extension_for_class(x509.CertificatePolicies).value == pol
    r2 = enroll(est, est.base, p, "-u", est.user, op="serverkeygen")
    assert r2.status == 200, r2.text
    c2 = p7_certs(parse_multipart(r2)[1][1], est.tmp)[0]
    got = [e.oid.dotted_string for e in c2.extensions]
    assert "2.5.29.32" in got, f"serverkeygen dropped the requested certificatePolicies: {got}"


def test_serverkeygen_refuses_what_the_profile_refuses(est):
    """With a profile that refuses unknown extensions (ignore_unknown_extensions false), simpleenroll
    answers 400 for a CSR carrying one; serverkeygen used to issue the same request anyway."""
    d = est.d
    pid = uid("strict-est")
    r = d.api("POST", "/profiles", json={"id": pid, "sourceProfileId": "est-tls-client",
                                          "ignore_unknown_extensions": False})
    assert r.status_code == 201, r.text
    assert d.api("POST", f"/cas/{est.sub['id']}/profiles", json={"profileId": pid}).status_code == 200
    r = d.api("POST", "/protocols", json={"id": "est-strict", "type": "est", "caId": est.sub["id"],
                                          "profileId": pid})
    assert r.status_code == 201, r.text
    r = d.api("POST", "/protocols/est-strict/credentials", json={"name": "devices", "id": "user1"})
    assert r.status_code == 201, r.text
    user = f"user1:{r.json()['secret']}"
    base = f"{d.https_url}/.well-known/est/{d.account}~est-strict"
    key = ec.generate_private_key(ec.SECP256R1())
    unknown = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.7"), b"\x05\x00")
    p = write_csr(est.tmp, "kg-strict", csr_with("kg-strict", key, extensions=[unknown]))
    r1 = enroll(est, base, p, "-u", user)
    assert r1.status == 400, r1.text
    r2 = enroll(est, base, p, "-u", user, op="serverkeygen")
    assert r2.status == 400, (r2.status, r2.text[:120])


def test_reenroll_subject_must_be_identical(est):
    """RFC 7030 4.2.2 (and docs/est.md): the re-enrolment request's subject MUST be identical to the
    certificate being renewed. The check used X509_NAME_cmp (case-folding, whitespace-collapsing), so
    a renewal could change 'CN=renew-case,O=EST Test' into 'CN=RENEW-CASE,O=est   test'. The subject copied
    as is still renews."""
    key, crt, cert = enrolled(est, "rc1", "/CN=renew-case/O=EST Test", sans="DNS:renew-case.example")
    _, csr = make_csr(est.tmp, "rc1b", "/CN=RENEW-CASE/O=est   test", sans="DNS:renew-case.example")
    r = enroll(est, est.base, csr, "--cert", crt, "--key", key, op="simplereenroll")
    new = p7_certs(r.body, est.tmp)[0].subject.rfc4514_string() if r.status == 200 else None
    assert r.status == 400, f"renewed {cert.subject.rfc4514_string()!r} as {new!r}"
    assert "subject" in r.text, r.text
    _, csr = make_csr(est.tmp, "rc1c", "/CN=renew-case/O=EST Test", sans="DNS:renew-case.example")
    r = enroll(est, est.base, csr, "--cert", crt, "--key", key, op="simplereenroll")
    assert r.status == 200, r.text
