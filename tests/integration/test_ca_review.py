"""CA management findings of a review, each reproduced against the daemon first: a revoked or suspended CA
certifying new CAs, OCSP of a CA activated by uploading its certificate (at once; and without a
subjectKeyIdentifier), an uploaded CA certificate with an unknown critical extension, and CA subjects unique
per issuer (RFC 5280 4.1.2.6)."""
import datetime
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import create_ca, download_der, uid
from status_helpers import CA, PROFILE, issue, pem

EC = "ECDSAP256+SHA256"


def _run(*a):
    cp = subprocess.run([str(x) for x in a], capture_output=True, text=True, timeout=120)
    return cp.returncode, cp.stdout + cp.stderr


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ext_cert(subject, issuer, pub, signer, issuer_pub=None, *, path_len=None, days=1000, ski=True):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                      crl_sign=True, encipher_only=False, decipher_only=False), critical=True))
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    if issuer_pub is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_pub), critical=False)
    return b.sign(signer, hashes.SHA256())


def _pem(c):
    return c.public_bytes(serialization.Encoding.PEM).decode()


# ---------------------------------------------------------------- 1
@pytest.mark.parametrize("action", ["revoke", "suspend"])
def test_ca_with_revoked_or_suspended_certificate_cannot_certify_ca(daemon, action):
    """api.md: 'A CA whose own certificate its parent revoked or suspended cannot issue (409)'.
    Leaf issuance was refused, but the same CA still signed new CA certificates through POST /cas."""
    d = daemon
    root = create_ca(d, id=uid("rvr"), type="root", signingKeyDetails=EC, subject=f"CN=RV Root {action}")
    inter = create_ca(d, id=uid("rvi"), type="intermediate", parentId=root["id"], signingKeyDetails=EC,
                      subject=f"CN=RV Inter {action}")
    base = f"/cas/{root['id']}/certificates/{inter['serialNumber']}"
    body = {"reason": "cACompromise"} if action == "revoke" else {}
    assert d.api("POST", f"{base}/{action}", json=body).status_code == 200
    r = d.api("POST", "/cas", json={"id": uid("rvs"), "type": "subord", "parentId": inter["id"],
                                    "signingKeyDetails": EC, "subject": f"CN=RV Child {action}"})
    assert r.status_code == 409, f"{action}d CA signed a new CA certificate: {r.status_code} {r.text[:200]}"


# ---------------------------------------------------------------- 2
def _pending_sub_under_external(d, tmp_path, *, ski=True):
    rk = ec.generate_private_key(ec.SECP384R1())
    name = _name(f"XO Root {uid('n')}")
    root = _ext_cert(name, name, rk.public_key(), rk, days=3000)
    ext = create_ca(d, id=uid("xo"), type="externalKey", certificate=_pem(root))
    sub = create_ca(d, id=uid("xos"), type="subord", parentId=ext["id"], signingKeyDetails=EC,
                    subject=f"CN=XO Sub {uid('n')}", enableCrl=True, enableOcsp=True, profiles=[PROFILE])
    csr = x509.load_pem_x509_csr(d.api("GET", f"/cas/{sub['id']}/csr").content)
    cert = _ext_cert(csr.subject, root.subject, csr.public_key(), rk, rk.public_key(), path_len=0, days=500,
                     ski=ski)
    return root, sub, cert


def _as_ca(d, tmp_path, ca_id):
    s = CA.__new__(CA)
    s.d, s.id = d, ca_id
    s.der = download_der(d, ca_id)
    s.cert = x509.load_der_x509_certificate(s.der)
    s.pem_path = tmp_path / f"{ca_id}.pem"
    s.pem_path.write_bytes(pem(s.cert))
    return s


def _ocsp(d, tmp_path, root, s, leaf):
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(root) + pem(s.cert))
    return _run("openssl", "ocsp", "-issuer", s.pem_path, "-cert", leaf.pem_path,
                "-url", d.url + f"/ocsp/{d.account}/{s.id}", "-CAfile", bundle)


def test_ocsp_answers_right_after_certificate_import(daemon, tmp_path):
    """An OCSP-enabled CA created under one of our roots gets its responder at once (ca_create); one
    activated by uploading the external root's certificate answers 'unauthorized' until the next
    scheduler tick (30 s), although leaves it issues in between are already in use."""
    d = daemon
    root, sub, cert = _pending_sub_under_external(d, tmp_path)
    r = d.api("POST", f"/cas/{sub['id']}/certificate", json={"certificate": _pem(cert)})
    assert r.status_code == 200, r.text
    s = _as_ca(d, tmp_path, sub["id"])
    leaf = issue(d, s, tmp_path)
    rc, out = _ocsp(d, tmp_path, root, s, leaf)
    assert rc == 0 and "Response verify OK" in out and ": good" in out, out


def test_uploaded_ca_certificate_without_ski_ocsp_works_or_is_refused(daemon, tmp_path):
    """An uploaded CA certificate without subjectKeyIdentifier was accepted and activated, but its OCSP
    responder certificate could never be issued (svc_cert_issue required the CA's SKI): OCSP stayed
    'unauthorized' for good. The key identifier is now computed, as issue.c and crl.c do."""
    d = daemon
    root, sub, cert = _pending_sub_under_external(d, tmp_path, ski=False)
    r = d.api("POST", f"/cas/{sub['id']}/certificate", json={"certificate": _pem(cert)})
    assert r.status_code == 200, r.text  # the key identifier is computed, as for issued certificates
    s = _as_ca(d, tmp_path, sub["id"])
    leaf = issue(d, s, tmp_path)  # issuance works: issue.c computes the AKI when the CA has no SKI
    rc, out = _ocsp(d, tmp_path, root, s, leaf)  # at once: the responder is made when the CA is activated
    assert rc == 0 and "Response verify OK" in out and ": good" in out, out


# ---------------------------------------------------------------- 3
def test_ca_subject_unique_per_issuer(daemon):
    """RFC 5280 4.1.2.6: 'The DN MUST be unique for each subject entity certified by the one CA'. The daemon
    certifies a second CA (another key) with the subject of an existing sibling, and a child CA with its
    parent's own subject (a self-issued certificate that does not count towards pathLen, RFC 5280 6.1.4 (l)).
    Both are refused now; a deleted sibling's subject is free again."""
    d = daemon
    tag = uid("u")
    root = create_ca(d, id=uid("ur"), type="root", signingKeyDetails=EC, subject=f"CN=Uniq Root {tag}")
    first = create_ca(d, id=uid("us"), type="subord", parentId=root["id"], signingKeyDetails=EC,
                      subject=f"CN=Uniq Issuing {tag}")
    assert first["status"] == "active"
    r = d.api("POST", "/cas", json={"id": uid("us"), "type": "subord", "parentId": root["id"],
                                    "signingKeyDetails": EC, "subject": f"CN=Uniq Issuing {tag}"})
    assert r.status_code == 409 and r.json()["error"]["field"] == "subject", r.text
    r = d.api("POST", "/cas", json={"id": uid("us"), "type": "subord", "parentId": root["id"],
                                    "signingKeyDetails": EC, "subject": f"CN=Uniq Root {tag}"})
    assert r.status_code == 409 and r.json()["error"]["field"] == "subject", r.text
    assert d.api("DELETE", f"/cas/{first['id']}").status_code == 200
    again = create_ca(d, id=uid("us"), type="subord", parentId=root["id"], signingKeyDetails=EC,
                      subject=f"CN=Uniq Issuing {tag}")
    assert again["status"] == "active"


# ---------------------------------------------------------------- 4
def test_uploaded_ca_certificate_with_unknown_critical_extension_refused(daemon, tmp_path):
    """RFC 5280 4.2: a relying party MUST reject a certificate with a critical extension it does not recognise.
    The upload check used to accept such a CA certificate and activate the CA; every certificate it then issued
    failed path validation (openssl: 'unhandled critical extension')."""
    from cryptography.x509.oid import ObjectIdentifier
    d = daemon
    rk = ec.generate_private_key(ec.SECP384R1())
    name = _name(f"XC Root {uid('n')}")
    root = _ext_cert(name, name, rk.public_key(), rk, days=3000)
    ext = create_ca(d, id=uid("xc"), type="externalKey", certificate=_pem(root))
    sub = create_ca(d, id=uid("xcs"), type="subord", parentId=ext["id"], signingKeyDetails=EC,
                    subject=f"CN=XC Sub {uid('n')}", enableCrl=True, profiles=[PROFILE])
    csr = x509.load_pem_x509_csr(d.api("GET", f"/cas/{sub['id']}/csr").content)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(root.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=500))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(rk.public_key()), critical=False)
            .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.7"), b"\x05\x00"),
                           critical=True)
            .sign(rk, hashes.SHA256()))
    r = d.api("POST", f"/cas/{sub['id']}/certificate", json={"certificate": _pem(cert)})
    if r.status_code == 200:
        s = _as_ca(d, tmp_path, sub["id"])
        leaf = issue(d, s, tmp_path)
        (tmp_path / "root.pem").write_bytes(pem(root))
        rc, out = _run("openssl", "verify", "-CAfile", tmp_path / "root.pem", "-untrusted", s.pem_path,
                       leaf.pem_path)
        pytest.fail(f"CA activated with an unhandled critical extension; openssl verify of its leaf: {out}")
    assert r.status_code == 400 and "critical extension" in r.json()["error"]["message"], r.text
