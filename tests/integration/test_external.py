"""External roots: import, pending subordinate with a CSR, offline signing, certificate import."""
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from helpers import (b64, create_ca, der_of, download_chain, download_der, error_of, expect_error, get_ca, list_cas,
                     openssl, uid)

PENDING_NULL_FIELDS = ("serialNumber", "sha256Fingerprint", "validFrom", "expiryDate", "issuer",
                       "subjectKeyIdentifier", "authorityKeyIdentifier")


def _openssl_root(tmp_path, name, cn, keyalg=("rsa:2048",)):
    key, pem = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    openssl("req", "-x509", "-newkey", *keyalg, "-nodes", "-keyout", key, "-out", pem, "-subj", f"/CN={cn}",
            "-days", "3650", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return key, pem


def _load_key(path):
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _build(subject, issuer_name, public_key, signing_key, *, ca=True, path_len=None, ku=None, eku=None,
           bc=True, days=365):
    now = datetime.datetime.utcnow()
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(public_key)
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=days)))
    if bc:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_len if ca else None), critical=True)
    if ku:
        flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                     data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                     encipher_only=False, decipher_only=False)
        flags.update(ku)
        if any(flags.values()):
            b = b.add_extension(x509.KeyUsage(**flags), critical=True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    return b.sign(signing_key, hashes.SHA256())


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _import(d, ca_id, pem):
    return d.api("POST", f"/cas/{ca_id}/certificate", json={"certificate": pem})


def test_external_root(daemon, tmp_path):
    d = daemon
    ext_key, ext_pem = _openssl_root(tmp_path, "ext", "Ext Root")
    ext2_key, ext2_pem = _openssl_root(tmp_path, "ext2", "Ext Root Two",
                                       ("ec", "-pkeyopt", "ec_paramgen_curve:P-256"))
    ext_der = der_of(ext_pem.read_bytes())
    ext2_der = der_of(ext2_pem.read_bytes())
    ext_cert = x509.load_der_x509_certificate(ext_der)

    # --- import: PEM, and base64 DER
    ext_id, ext2_id = uid("ext"), uid("ext2")
    info = create_ca(d, id=ext_id, friendlyName="On-prem root", type="externalKey",
                     certificate=ext_pem.read_text())
    assert info["type"] == "externalKey"
    assert info["status"] == "active"
    assert info["sha256Fingerprint"] == hashlib.sha256(ext_der).hexdigest()
    assert int(info["serialNumber"], 16) == ext_cert.serial_number
    assert info["subjectKeyIdentifier"] == ext_cert.extensions.get_extension_for_oid(
        ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest.hex()
    assert "CN=Ext Root" in info["subject"]
    assert info["publicKeyType"] == "RSA2048"
    assert download_der(d, ext_id) == ext_der
    assert download_chain(d, ext_id) == [ext_der]

    info2 = create_ca(d, id=ext2_id, friendlyName="Second", type="externalKey", certificate=b64(ext2_der))
    assert info2["status"] == "active"
    assert info2["sha256Fingerprint"] == hashlib.sha256(ext2_der).hexdigest()
    assert info2["publicKeyType"] == "ECDSAP256"
    assert download_der(d, ext2_id) == ext2_der

    # --- a subordinate under the external root starts pending, with a CSR
    sub_id = uid("xsub")
    sub = create_ca(d, id=sub_id, friendlyName="Ext issuing", type="subord", parentId=ext_id,
                    signingKeyDetails="ECDSAP256+SHA256", subject="CN=Ext Issuing,O=PKIaaS Test",
                    enableCrl=True, enableOcsp=False)
    assert sub["status"] == "pending"
    assert sub["parentId"] == ext_id
    for field in PENDING_NULL_FIELDS:
        assert sub.get(field) is None, f"{field} of a pending CA is {sub.get(field)!r}"
    assert get_ca(d, sub_id)["status"] == "pending"
    r = d.api("GET", f"/cas/{sub_id}/certificate", params={"format": "der"})
    assert 400 <= r.status_code < 500, f"certificate of a pending CA: {r.status_code}"
    assert b"BEGIN CERTIFICATE" not in r.content

    r = d.api("GET", f"/cas/{sub_id}/csr")
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith("application/pkcs10"), r.headers.get("Content-Type")
    assert r.content.lstrip().startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    csr_path = tmp_path / "sub.csr"
    csr_path.write_bytes(r.content)
    cp = openssl("req", "-in", csr_path, "-noout", "-verify", check=False)
    assert cp.returncode == 0 and b"verify OK" in cp.stdout + cp.stderr, cp.stderr
    csr = x509.load_pem_x509_csr(r.content)
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Ext Issuing"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "PKIaaS Test"
    csr_pub = csr.public_key()
    assert isinstance(csr_pub, ec.EllipticCurvePublicKey) and csr_pub.curve.name == "secp256r1"
    # The same CSR each time (the key is fixed at creation).
    r2 = d.api("GET", f"/cas/{sub_id}/csr")
    assert x509.load_pem_x509_csr(r2.content).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == csr_pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    # --- wrong certificates for the pending CA: each refused, CA stays pending
    ext_priv, ext2_priv = _load_key(ext_key), _load_key(ext2_key)
    ext2_cert = x509.load_der_x509_certificate(ext2_der)
    good_ku = {"key_cert_sign": True, "crl_sign": True, "digital_signature": True}
    wrong = {
        "signed by a different root": _build(csr.subject, ext2_cert.subject, csr_pub, ext2_priv, path_len=0,
                                             ku=good_ku),
        "issuer name right but signature by another key": _build(csr.subject, ext_cert.subject, csr_pub,
                                                                 ext2_priv, path_len=0, ku=good_ku),
        "certifies a different key": _build(csr.subject, ext_cert.subject,
                                            ec.generate_private_key(ec.SECP256R1()).public_key(), ext_priv,
                                            path_len=0, ku=good_ku),
        "without keyCertSign": _build(csr.subject, ext_cert.subject, csr_pub, ext_priv, path_len=0,
                                      ku={"digital_signature": True, "crl_sign": True}),
        "not a CA": _build(csr.subject, ext_cert.subject, csr_pub, ext_priv, ca=False,
                           ku={"digital_signature": True}),
    }
    for why, cert in wrong.items():
        r = _import(d, sub_id, _pem(cert))
        assert r.status_code == 400, f"import of a certificate {why}: {r.status_code} {r.text[:300]}"
        expect_error(r, 400)
        assert get_ca(d, sub_id)["status"] == "pending", why
    r = _import(d, sub_id, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    expect_error(r, 400)

    # --- sign the CSR offline with openssl and import it
    extfile = tmp_path / "sub.ext"
    extfile.write_text("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                       "keyUsage=critical,keyCertSign,cRLSign,digitalSignature\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    signed = tmp_path / "sub-signed.pem"
    openssl("x509", "-req", "-in", csr_path, "-CA", ext_pem, "-CAkey", ext_key, "-set_serial",
            "0x" + x509.random_serial_number().to_bytes(20, "big").hex(), "-days", "1825", "-sha256",
            "-extfile", extfile, "-out", signed)
    signed_der = der_of(signed.read_bytes())
    r = _import(d, sub_id, signed.read_text())
    assert r.status_code == 200, r.text
    active = r.json()
    assert active["status"] == "active"
    assert active["sha256Fingerprint"] == hashlib.sha256(signed_der).hexdigest()
    assert int(active["serialNumber"], 16) == x509.load_der_x509_certificate(signed_der).serial_number
    assert active["basicConstraints"] == {"ca": True, "pathLength": 0}
    assert get_ca(d, sub_id)["status"] == "active"

    assert download_der(d, sub_id) == signed_der
    chain = download_chain(d, sub_id)
    assert chain == [signed_der, ext_der]
    (tmp_path / "chain.pem").write_bytes(d.api("GET", f"/cas/{sub_id}/chain").content)
    (tmp_path / "dl.pem").write_bytes(d.api("GET", f"/cas/{sub_id}/certificate", params={"format": "pem"}).content)
    cp = openssl("verify", "-CAfile", ext_pem, "dl.pem", cwd=tmp_path, check=False)
    assert cp.returncode == 0 and b"dl.pem: OK" in cp.stdout, cp.stdout + cp.stderr
    cp = openssl("verify", "-CAfile", ext_pem, "-untrusted", "chain.pem", "dl.pem", cwd=tmp_path, check=False)
    assert cp.returncode == 0 and b"dl.pem: OK" in cp.stdout, cp.stdout + cp.stderr

    # An active CA takes no second certificate.
    r = _import(d, sub_id, signed.read_text())
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert download_der(d, sub_id) == signed_der

    # An intermediate under the external root is pending too.
    inter = create_ca(d, id=uid("xint"), type="intermediate", parentId=ext2_id,
                      signingKeyDetails="RSA-2048+PKCS15-SHA256", subject="CN=Ext Inter", enableCrl=False)
    assert inter["status"] == "pending"

    # A CA that is not pending has no CSR (api.md: 404 otherwise, 409 if not pending).
    for ca_id in (sub_id, ext_id):
        r = d.api("GET", f"/cas/{ca_id}/csr")
        assert r.status_code in (404, 409), (ca_id, r.status_code, r.text[:100])
        error_of(r)


def test_external_root_rejects(daemon, tmp_path):
    d = daemon
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Reject Test CA")])
    ca_cert = _build(ca_name, ca_name, ca_key.public_key(), ca_key, path_len=None,
                     ku={"key_cert_sign": True, "crl_sign": True})

    # Self-signed, but no basicConstraints at all.
    k1 = ec.generate_private_key(ec.SECP256R1())
    n1 = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "No BC")])
    no_bc = _build(n1, n1, k1.public_key(), k1, bc=False, ku={"key_cert_sign": True, "crl_sign": True})
    # Self-signed with cA=FALSE.
    ca_false = _build(n1, n1, k1.public_key(), k1, ca=False, ku={"digital_signature": True})
    # A leaf (TLS server) certificate issued by a CA.
    k2 = ec.generate_private_key(ec.SECP256R1())
    leaf = _build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.com")]), ca_name,
                  k2.public_key(), ca_key, ca=False, ku={"digital_signature": True},
                  eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    # Self-signed CA without keyCertSign.
    no_kcs = _build(n1, n1, k1.public_key(), k1, ku={"digital_signature": True, "crl_sign": True})

    before = set(list_cas(d, include_deleted=True))
    for why, cert in (("no basicConstraints", no_bc), ("cA=FALSE", ca_false), ("leaf", leaf),
                      ("no keyCertSign", no_kcs)):
        for enc in (_pem(cert), b64(cert.public_bytes(serialization.Encoding.DER))):
            r = d.api("POST", "/cas", json={"id": uid("xbad"), "type": "externalKey", "certificate": enc})
            assert r.status_code == 400, f"{why}: {r.status_code} {r.text[:300]}"
            expect_error(r, 400, mention="certificate")
    for garbage in ("", "not base64 !!", b64(b"\x30\x03\x02\x01\x01")):
        r = d.api("POST", "/cas", json={"id": uid("xbad"), "type": "externalKey", "certificate": garbage})
        expect_error(r, 400, mention="certificate")
    r = d.api("POST", "/cas", json={"id": uid("xbad"), "type": "externalKey"})
    expect_error(r, 400, mention="certificate")
    assert set(list_cas(d, include_deleted=True)) == before, "a rejected import created a CA"

    # The genuine CA certificate is accepted.
    info = create_ca(d, id=uid("xok"), type="externalKey", certificate=_pem(ca_cert))
    assert info["status"] == "active"
