"""CA constraints found by review, each checked on the certificate bytes (python3-cryptography, `openssl verify`):
path length along the whole chain (authority profiles and certificates uploaded for CAs under external roots), a
CA whose own certificate is revoked or suspended stops issuing, an uploaded CA certificate must have cRLSign when
CRLs are on, be valid already and carry the CSR's subject, an external root must really be self-signed, an
intermediate's CSR asks for its path length, CA keys are never generated into PKCS#12, and an expiry with an
offset cannot reach year 10000. Each test failed on the build before its fix."""
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from helpers import create_ca, download_der, expect_error, openssl, pem_of, uid

EC = "ECDSAP256+SHA256"
TLS = "privatessl-tls-server"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _csr(key, cn):
    return (x509.CertificateSigningRequestBuilder().subject_name(_name(cn))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


def _pem(c):
    return c.public_bytes(serialization.Encoding.PEM).decode()


def _path_len(cert):
    return cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.path_length


def _external_cert(subject, issuer, pub, signer, *, path_len=None, crl_sign=True, nb_days=0, days=1000):
    now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=nb_days)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=crl_sign, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .sign(signer, hashes.SHA256()))


def _external_root(d, cn, **kw):
    key = ec.generate_private_key(ec.SECP256R1())
    root = _external_cert(_name(cn), _name(cn), key.public_key(), key, days=3000, **kw)
    ext = create_ca(d, id=uid("xr"), type="externalKey", certificate=_pem(root))
    return ext, root, key


def _issue_ca_cert(d, ca_id, profile, cn):
    r = d.api("POST", f"/cas/{ca_id}/profiles", json={"profileId": profile})
    assert r.status_code == 200, r.text
    return d.api("POST", f"/cas/{ca_id}/certificates",
                 json={"profileId": profile, "csr": _csr(ec.generate_private_key(ec.SECP256R1()), cn)})


# ------------------------------------------------------------------ path length
def test_no_ca_certificate_below_path_length_zero(daemon):
    d = daemon
    root = create_ca(d, id=uid("plr"), type="root", signingKeyDetails=EC, subject="CN=PL Root", pathLength=1)
    inter = create_ca(d, id=uid("pli"), type="intermediate", parentId=root["id"], signingKeyDetails=EC,
                      subject="CN=PL Inter")
    assert _path_len(x509.load_der_x509_certificate(download_der(d, inter["id"]))) == 0
    # below a pathLen 0 CA, and below a pathLen 0 root: refused
    expect_error(_issue_ca_cert(d, inter["id"], "basic-ca-subord", "Sneaky CA"), 409, mention="pathLenConstraint")
    root0 = create_ca(d, id=uid("pl0"), type="root", signingKeyDetails=EC, subject="CN=PL0 Root", pathLength=0)
    expect_error(_issue_ca_cert(d, root0["id"], "basic-ca-intermediate", "Sneaky CA 2"), 409,
                 mention="pathLenConstraint")


def test_ca_certificate_path_length_bounded_by_the_chain(daemon, tmp_path):
    """A profile with no pathLen (or a larger one) under a constrained chain gets the chain's bound, and the
    result validates with openssl."""
    d = daemon
    root = create_ca(d, id=uid("pl2"), type="root", signingKeyDetails=EC, subject="CN=PL2 Root", pathLength=1)
    key = ec.generate_private_key(ec.SECP256R1())
    r = d.api("POST", f"/cas/{root['id']}/profiles", json={"profileId": "basic-ca-intermediate"})
    assert r.status_code == 200, r.text
    r = d.api("POST", f"/cas/{root['id']}/certificates",
              json={"profileId": "basic-ca-intermediate", "csr": _csr(key, "Bounded CA")})
    assert r.status_code == 201, r.text
    ca = x509.load_pem_x509_certificate(r.json()["certificate"].encode())
    assert _path_len(ca) == 0
    # an end entity under it validates
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name("leaf.example")).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "root.pem").write_bytes(pem_of(download_der(d, root["id"])))
    (tmp_path / "ca.pem").write_text(_pem(ca))
    (tmp_path / "leaf.pem").write_text(_pem(leaf))
    openssl("verify", "-CAfile", "root.pem", "-untrusted", "ca.pem", "leaf.pem", cwd=tmp_path)


def test_uploaded_certificate_respects_the_roots_path_length(daemon):
    d = daemon
    ext, root, rk = _external_root(d, "XR One", path_len=1)
    inter = create_ca(d, id=uid("xi"), type="intermediate", parentId=ext["id"], signingKeyDetails=EC,
                      subject="CN=X Inter One")
    csr = x509.load_pem_x509_csr(d.api("GET", f"/cas/{inter['id']}/csr").content)
    # the root allows one CA below it, which may certify no further CA: no pathLen (unlimited) is refused
    cert = _external_cert(csr.subject, root.subject, csr.public_key(), rk, path_len=None, days=2000)
    expect_error(d.api("POST", f"/cas/{inter['id']}/certificate", json={"certificate": _pem(cert)}), 400,
                 mention="pathLenConstraint")
    cert = _external_cert(csr.subject, root.subject, csr.public_key(), rk, path_len=0, days=2000)
    r = d.api("POST", f"/cas/{inter['id']}/certificate", json={"certificate": _pem(cert)})
    assert r.status_code == 200, r.text
    # and with pathLen 0 it cannot have a CA below it
    r = d.api("POST", "/cas", json={"id": uid("xs"), "type": "subord", "parentId": inter["id"],
                                    "signingKeyDetails": EC, "subject": "CN=X Sub"})
    expect_error(r, 400, mention="pathLenConstraint")


def test_intermediate_csr_asks_for_its_path_length(daemon):
    d = daemon
    ext, _, _ = _external_root(d, "XR PL")
    inter = create_ca(d, id=uid("xi"), type="intermediate", parentId=ext["id"], signingKeyDetails=EC,
                      subject="CN=X Inter", pathLength=3)
    csr = x509.load_pem_x509_csr(d.api("GET", f"/cas/{inter['id']}/csr").content)
    assert csr.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.path_length == 3
    sub = create_ca(d, id=uid("xs"), type="subord", parentId=ext["id"], signingKeyDetails=EC, subject="CN=X Sub")
    csr = x509.load_pem_x509_csr(d.api("GET", f"/cas/{sub['id']}/csr").content)
    assert csr.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.path_length == 0


# ------------------------------------------------------------------ uploaded and external certificates
@pytest.mark.parametrize("flaw", ["no cRLSign", "not yet valid", "other subject"])
def test_uploaded_certificate_flaws(daemon, flaw):
    d = daemon
    ext, root, rk = _external_root(d, f"XR {flaw}")
    sub = create_ca(d, id=uid("xk"), type="subord", parentId=ext["id"], signingKeyDetails=EC,
                    subject="CN=Requested Name,O=Req", enableCrl=True)
    csr = x509.load_pem_x509_csr(d.api("GET", f"/cas/{sub['id']}/csr").content)
    subject = _name("Other Name") if flaw == "other subject" else csr.subject
    cert = _external_cert(subject, root.subject, csr.public_key(), rk, path_len=0,
                          crl_sign=flaw != "no cRLSign", nb_days=30 if flaw == "not yet valid" else 0)
    mention = {"no cRLSign": "cRLSign", "not yet valid": "not valid yet", "other subject": "subject"}[flaw]
    expect_error(d.api("POST", f"/cas/{sub['id']}/certificate", json={"certificate": _pem(cert)}), 400,
                 mention=mention)
    # the right one is then accepted
    good = _external_cert(csr.subject, root.subject, csr.public_key(), rk, path_len=0)
    assert d.api("POST", f"/cas/{sub['id']}/certificate", json={"certificate": _pem(good)}).status_code == 200


def test_external_root_must_be_self_signed_and_valid(daemon):
    d = daemon
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    bogus = _external_cert(_name("Bogus Root"), _name("Bogus Root"), key.public_key(), other)
    expect_error(d.api("POST", "/cas", json={"id": uid("xbg"), "type": "externalKey", "certificate": _pem(bogus)}),
                 400, mention="self-signed")
    future = _external_cert(_name("Future Root"), _name("Future Root"), key.public_key(), key, nb_days=100)
    expect_error(d.api("POST", "/cas", json={"id": uid("xfu"), "type": "externalKey", "certificate": _pem(future)}),
                 400, mention="not valid yet")


# ------------------------------------------------------------------ issuing
def test_ca_with_revoked_or_suspended_certificate_stops_issuing(daemon):
    d = daemon
    root = create_ca(d, id=uid("rvr"), type="root", signingKeyDetails=EC, subject="CN=RV Root")
    sub = create_ca(d, id=uid("rvs"), type="subord", parentId=root["id"], signingKeyDetails=EC,
                    subject="CN=RV Sub", profiles=[TLS])

    def issue():
        return d.api("POST", f"/cas/{sub['id']}/certificates",
                     json={"profileId": TLS, "csr": _csr(ec.generate_private_key(ec.SECP256R1()), "www.example.com")})

    assert issue().status_code == 201
    base = f"/cas/{root['id']}/certificates/{sub['serialNumber']}"
    assert d.api("POST", base + "/suspend", json={}).status_code == 200
    expect_error(issue(), 409, mention="suspended")
    assert d.api("POST", base + "/unsuspend", json={}).status_code == 200
    assert issue().status_code == 201
    assert d.api("POST", base + "/revoke", json={"reason": "cACompromise"}).status_code == 200
    expect_error(issue(), 409, mention="revoked")


def test_no_pkcs12_for_ca_certificates(daemon):
    d = daemon
    root = create_ca(d, id=uid("pr"), type="root", signingKeyDetails=EC, subject="CN=PR")
    inter = create_ca(d, id=uid("pi"), type="intermediate", parentId=root["id"], signingKeyDetails=EC,
                      subject="CN=PI", profiles=["basic-ca-subord"])
    r = d.api("POST", f"/cas/{inter['id']}/certificates", json={
        "profileId": "basic-ca-subord", "keyType": "EC-P256", "p12Password": "password123",
        "subject": "CN=Server generated CA"})
    expect_error(r, 400, mention="CSR only")


@pytest.mark.parametrize("expiry", ["9999-12-31T23:59:59-01:00", "1950-01-01T00:30:00+01:00"])
def test_expiry_with_offset_stays_in_range(daemon, expiry):
    r = daemon.api("POST", "/cas", json={"id": uid("exr"), "type": "root", "signingKeyDetails": EC,
                                         "subject": "CN=exp", "expiryDate": expiry})
    expect_error(r, 400, mention="expiryDate")
