"""SCEP test helpers: a partition with an issuing CA and a static-challenge configuration, and hand-built
pkiMessages (test_scep.py builds them; this adds the digest and cipher choices the review tests need)."""
import datetime
import hashlib
import os

import pytest
import requests
from asn1crypto import algos, cms as acms, core, x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from conftest import Daemon, _require_binaries
from helpers import create_ca, uid
from test_scep import Rep, _self_signed, build_pkimessage, envelope, open_rep  # noqa

PROFILE = "scep-tls-client"


class Env:
    pass


def make_env(d, prefix="s"):
    root = create_ca(d, id=f"{prefix}-root", type="root", signingKeyDetails="RSA-2048+PKCS15-SHA256",
                     subject=f"CN={prefix} Root")
    create_ca(d, id=f"{prefix}-sub", type="subord", parentId=root["id"], signingKeyDetails="RSA-2048+PKCS15-SHA256",
              subject=f"CN={prefix} Issuing", profiles=[PROFILE], enableCrl=True)
    r = d.api("POST", "/protocols", json={"id": "dev", "type": "scep", "caId": f"{prefix}-sub", "profileId": PROFILE})
    assert r.status_code == 201, r.text
    r = d.api("POST", "/protocols/dev/credentials", json={"name": "chal"})
    assert r.status_code == 201, r.text
    e = Env()
    e.d, e.chal = d, r.json()["secret"]
    e.url = f"{d.url}/scep/{d.account}/dev/pkiclient.exe"
    e.ca = f"{prefix}-sub"
    return e


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    _require_binaries()
    d = Daemon(tmp_path_factory.mktemp("pkiaasd-scep-msg"))
    d.bootstrap()
    d.start()
    yield make_env(d)
    d.stop()


def ra_of(url):
    from cryptography.hazmat.primitives.serialization import pkcs7
    r = requests.get(url, params={"operation": "GetCACert"})
    return next(c for c in pkcs7.load_der_pkcs7_certificates(r.content) if "SCEP RA" in c.subject.rfc4514_string())


def post(url, der):
    return requests.post(url, params={"operation": "PKIOperation"}, data=der,
                         headers={"Content-Type": "application/x-pki-message"})


def make_csr(key, cn, challenge=None):
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if challenge is not None:
        b = b.add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def send(url, tmp_path, inner, signer, signer_key, msg_type=19, txid=None, nonce=None, cipher="-aes-128-cbc",
         env_der=None):
    ra = ra_of(url)
    tmp_path.mkdir(parents=True, exist_ok=True)
    envd = env_der if env_der is not None else envelope(tmp_path, inner, ra.public_bytes(serialization.Encoding.PEM),
                                                        cipher)
    txid = txid or hashlib.sha256(os.urandom(16)).hexdigest()
    nonce = nonce if nonce is not None else os.urandom(16)
    der = build_pkimessage(signer, signer_key, msg_type, envd, txid, nonce)
    r = post(url, der)
    return r, der, ra, txid


def enrol(e, tmp_path, cn=None):
    key = rsa.generate_private_key(65537, 2048)
    cn = cn or uid("dev")
    signer = _self_signed(key, cn)
    r, _, ra, txid = send(e.url, tmp_path, make_csr(key, cn, e.chal), signer, key)
    rep = Rep(r.content, ra)
    assert rep.status == "0", rep.fail
    return key, open_rep(tmp_path, rep, signer, key)[0], ra


OID = {"messageType": "2.16.840.1.113733.1.9.2", "pkiStatus": "2.16.840.1.113733.1.9.3",
       "failInfo": "2.16.840.1.113733.1.9.4", "senderNonce": "2.16.840.1.113733.1.9.5",
       "recipientNonce": "2.16.840.1.113733.1.9.6", "transactionID": "2.16.840.1.113733.1.9.7"}
HASHES = {"md5": hashes.MD5, "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha512": hashes.SHA512}


def _attr(oid, value):
    return acms.CMSAttribute({"type": acms.CMSAttributeType(oid), "values": [value]})


def build_msg(signer_cert, signer_key, msg_type, inner_env, txid, nonce=None, digest="sha256", signing_time=None,
              extra_attrs=None, msg_type_value=None):
    h = HASHES[digest]
    hh = __import__("hashlib").new(digest, inner_env).digest()
    signing_time = signing_time or datetime.datetime.now(datetime.timezone.utc)
    lst = [
        _attr("content_type", acms.ContentType("data")),
        _attr("message_digest", core.OctetString(hh)),
        _attr("signing_time", acms.Time({"utc_time": core.UTCTime(signing_time)})),
        _attr(OID["messageType"], msg_type_value or core.PrintableString(str(msg_type))),
        _attr(OID["transactionID"], core.PrintableString(txid)),
    ]
    if nonce is not None:
        lst.append(_attr(OID["senderNonce"], core.OctetString(nonce)))
    lst += extra_attrs or []
    attrs = acms.CMSAttributes(lst)
    sig = signer_key.sign(attrs.dump(), padding.PKCS1v15(), h())
    cert = ax509.Certificate.load(signer_cert.public_bytes(serialization.Encoding.DER))
    si = acms.SignerInfo({
        "version": "v1",
        "sid": acms.SignerIdentifier({"issuer_and_serial_number": acms.IssuerAndSerialNumber(
            {"issuer": cert.issuer, "serial_number": cert.serial_number})}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": digest}),
        "signed_attrs": attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
        "signature": sig,
    })
    sd = acms.SignedData({
        "version": "v1",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": digest})],
        "encap_content_info": {"content_type": "data", "content": core.OctetString(inner_env)},
        "certificates": [acms.CertificateChoices({"certificate": cert})],
        "signer_infos": [si],
    })
    return acms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()


def rep_of(r, ra):
    """A CertRep (status, fail, attrs) without insisting on recipientNonce."""
    assert r.status_code == 200, (r.status_code, r.text[:200])
    ci = acms.ContentInfo.load(r.content)
    sd = ci["content"]
    si = sd["signer_infos"][0]
    attrs = {a["type"].dotted: a["values"][0] for a in si["signed_attrs"]}
    st = attrs[OID["pkiStatus"]].native
    fi = attrs[OID["failInfo"]].native if OID["failInfo"] in attrs else None
    return st, fi, attrs


def _ias_like(cert):
    """IssuerAndSerialNumber DER of a certificate."""
    return acms.IssuerAndSerialNumber({"issuer": ax509.Name.load(cert.issuer.public_bytes()),
                                       "serial_number": cert.serial_number}).dump()
