"""SCEP (RFC 8894): configuration, GetCACaps / GetCACert, enrolment and
renewal with Debian's micromdm `scepclient` (a client someone else wrote),
and a hand-built PKIOperation (python3-cryptography + openssl cms) for the
failure paths: wrong challenge, tampered signature, garbage. Every answer is
a CertRep or a 4xx, never a 5xx; the daemon stays healthy."""
import base64
import datetime
import shutil
import subprocess

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import Daemon, _require_binaries, clean_env
from helpers import create_ca, uid

PROFILE = "scep-tls-client"


@pytest.fixture(scope="module")
def scep(tmp_path_factory):
    _require_binaries()
    d = Daemon(tmp_path_factory.mktemp("pkiaasd-scep"))
    d.bootstrap()
    d.start()
    root = create_ca(d, id="scep-root", type="root", signingKeyDetails="RSA-2048+PKCS15-SHA256",
                     subject="CN=SCEP Test Root")
    sub = create_ca(d, id="scep-sub", type="subord", parentId=root["id"], signingKeyDetails="RSA-2048+PKCS15-SHA256",
                    subject="CN=SCEP Test Issuing", profiles=[PROFILE], enableCrl=True)
    r = d.api("POST", "/protocols", json={"id": "scep1", "type": "scep", "caId": sub["id"], "profileId": PROFILE,
                                           "description": "devices"})
    assert r.status_code == 201, r.text
    cfg = r.json()
    r = d.api("POST", "/protocols/scep1/credentials", json={"name": "static challenge"})
    assert r.status_code == 201, r.text
    env = type("ScepEnv", (), {})()
    env.d, env.cfg, env.challenge = d, cfg, r.json()["secret"]
    env.http_url = f"{d.url}/scep/{d.account}/scep1/pkiclient.exe"
    yield env
    d.stop()


def test_config_and_caps(scep):
    d = scep.d
    assert scep.cfg["scepUrl"] == f"{d.https_url}/scep/{d.account}/scep1/pkiclient.exe"
    r = requests.get(scep.http_url, params={"operation": "GetCACaps"})
    assert r.status_code == 200
    caps = set(r.text.split())
    assert {"POSTPKIOperation", "Renewal", "SHA-256", "SHA-512", "AES", "DES3", "SCEPStandard"} <= caps
    # the secret is not listed
    r = d.api("GET", "/protocols/scep1/credentials")
    assert r.status_code == 200 and scep.challenge not in r.text
    # a profile of another group is refused
    r = d.api("POST", "/protocols", json={"id": "scep2", "type": "scep", "caId": "scep-sub",
                                           "profileId": "privatessl-tls-server"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "profileId"
    assert requests.get(f"{d.url}/scep/{d.account}/nosuch/pkiclient.exe",
                        params={"operation": "GetCACaps"}).status_code == 404


def test_revoking_the_ra_certificate_frees_no_inventory(scep):
    """The RA certificate is the service's own and never counted as issued; revoking it must not give back
    purchased inventory (else deleting and recreating a configuration, each time revoking its RA
    certificate, would issue past the purchase)."""
    d = scep.d
    r = requests.get(scep.http_url, params={"operation": "GetCACert"})
    assert r.status_code == 200
    ra = next(c for c in pkcs7.load_der_pkcs7_certificates(r.content) if "SCEP RA" in c.subject.rfc4514_string())
    # one counted certificate first, so that a wrong decrement shows (the count never goes below 0)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "inventory.example")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    r = d.api("POST", "/cas/scep-sub/certificates", json={"profileId": PROFILE, "csr": csr})
    assert r.status_code == 201, r.text
    before = d.api("GET", "/inventory").json()["certificates"]["issued"]
    assert before >= 1
    serial = format(ra.serial_number, "x")
    r = d.api("POST", f"/cas/scep-sub/certificates/{serial}/revoke", json={"reason": "superseded"})
    assert r.status_code == 200, r.text
    assert d.api("GET", "/inventory").json()["certificates"]["issued"] == before
    # a new RA certificate takes its place for the next client
    r = requests.get(scep.http_url, params={"operation": "GetCACert"})
    ra2 = next(c for c in pkcs7.load_der_pkcs7_certificates(r.content) if "SCEP RA" in c.subject.rfc4514_string())
    assert ra2.serial_number != ra.serial_number, "the revoked RA certificate is still handed out"


def test_get_ca_cert(scep):
    r = requests.get(scep.http_url, params={"operation": "GetCACert"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/x-x509-ca-ra-cert"
    certs = pkcs7.load_der_pkcs7_certificates(r.content)
    subjects = [c.subject.rfc4514_string() for c in certs]
    assert any("SCEP RA" in s for s in subjects), subjects
    assert "CN=SCEP Test Issuing" in subjects and "CN=SCEP Test Root" in subjects
    ra = next(c for c in certs if "SCEP RA" in c.subject.rfc4514_string())
    assert isinstance(ra.public_key(), rsa.RSAPublicKey) and ra.public_key().key_size >= 2048
    assert ra.issuer.rfc4514_string() == "CN=SCEP Test Issuing"
    ku = ra.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment


def scepclient(scep, tmp_path, challenge, cn=None, renew=False):
    """Runs scepclient in its own directory (it keeps csr.pem / self.pem in
    the working directory and reuses them)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    key, cert = tmp_path / "client.key", tmp_path / "client.pem"
    cmd = ["scepclient", "-server-url", scep.http_url, "-private-key", str(key), "-certificate", str(cert),
           "-cn", cn or uid("dev"), "-organization", "Devices", "-country", "US"]
    if challenge is not None:
        cmd += ["-challenge", challenge]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=clean_env(), cwd=tmp_path)


@pytest.mark.skipif(not shutil.which("scepclient"), reason="scepclient (Debian package scep) not installed")
def test_scepclient_enrol_and_renew(scep, tmp_path):
    cn = uid("device")
    cp = scepclient(scep, tmp_path / "a", scep.challenge, cn=cn)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "a" / "client.pem").read_bytes())
    key = serialization.load_pem_private_key((tmp_path / "a" / "client.key").read_bytes(), None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.issuer.rfc4514_string() == "CN=SCEP Test Issuing"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    serial = format(cert.serial_number, "x")
    r = scep.d.api("GET", "/cas/scep-sub/certificates", params={"serial": serial})
    item = r.json()["certificates"][0]
    assert item["requester"].startswith("scep:scep1/") and item["profileId"] == PROFILE
    # run again with the certificate in place: scepclient renews it
    cp = scepclient(scep, tmp_path / "a", scep.challenge, cn=cn)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    renewed = x509.load_pem_x509_certificate((tmp_path / "a" / "client.pem").read_bytes())
    assert renewed.serial_number != cert.serial_number and renewed.subject == cert.subject
    r = scep.d.api("GET", "/cas/scep-sub/certificates", params={"serial": format(renewed.serial_number, "x")})
    assert r.json()["certificates"][0]["requester"] == "scep:scep1/renewal"  # a RenewalReq, not a new PKCSReq
    # wrong challenge: the client gets a failure CertRep
    cp = scepclient(scep, tmp_path / "b", "not-the-challenge")
    assert cp.returncode != 0 and "badRequest" in cp.stdout + cp.stderr, cp.stdout + cp.stderr
    assert not (tmp_path / "b" / "client.pem").exists()
    # no challenge at all
    cp = scepclient(scep, tmp_path / "c", None)
    assert cp.returncode != 0 and not (tmp_path / "c" / "client.pem").exists()
    # a deleted credential stops working at once
    r = scep.d.api("POST", "/protocols/scep1/credentials", json={"name": "temporary"})
    tmp = r.json()
    assert scep.d.api("DELETE", f"/protocols/scep1/credentials/{tmp['id']}").status_code == 200
    cp = scepclient(scep, tmp_path / "d", tmp["secret"])
    assert cp.returncode != 0 and not (tmp_path / "d" / "client.pem").exists()
    assert requests.get(scep.d.url + "/healthz").status_code == 200


# -- hand-built requests (failure paths) --------------------------------------

def _ra_cert(scep):
    r = requests.get(scep.http_url, params={"operation": "GetCACert"})
    certs = pkcs7.load_der_pkcs7_certificates(r.content)
    return next(c for c in certs if "SCEP RA" in c.subject.rfc4514_string())


def _self_signed(key, cn):
    now = datetime.datetime.utcnow()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))


def test_garbage_and_bad_requests(scep):
    u = scep.http_url
    assert requests.post(u, params={"operation": "PKIOperation"}, data=b"garbage").status_code == 400
    assert requests.post(u, params={"operation": "PKIOperation"}, data=b"").status_code == 400
    assert requests.get(u, params={"operation": "PKIOperation", "message": "%%%notbase64"}).status_code == 400
    assert requests.get(u, params={"operation": "Nope"}).status_code == 400
    assert requests.get(u).status_code == 400
    # a signed CMS without SCEP attributes is not a pkiMessage
    key = rsa.generate_private_key(65537, 2048)
    signer = _self_signed(key, "x")
    p7 = pkcs7.PKCS7SignatureBuilder().set_data(b"hello").add_signer(signer, key, hashes.SHA256()).sign(
        serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    r = requests.post(u, params={"operation": "PKIOperation"}, data=p7)
    assert r.status_code == 400
    # truncated and huge messages
    assert requests.post(u, params={"operation": "PKIOperation"}, data=p7[: len(p7) // 2]).status_code == 400
    assert requests.post(u, params={"operation": "PKIOperation"}, data=b"\x30" * 300000).status_code in (400, 413)
    assert requests.get(scep.d.url + "/healthz").status_code == 200


# -- a SCEP client written for the tests (asn1crypto + openssl cms) -------------

import hashlib
import os

from asn1crypto import algos, cms as acms, core, x509 as ax509

OID = {"messageType": "2.16.840.1.113733.1.9.2", "pkiStatus": "2.16.840.1.113733.1.9.3",
       "failInfo": "2.16.840.1.113733.1.9.4", "senderNonce": "2.16.840.1.113733.1.9.5",
       "recipientNonce": "2.16.840.1.113733.1.9.6", "transactionID": "2.16.840.1.113733.1.9.7"}


def _attr(oid, value):
    return acms.CMSAttribute({"type": acms.CMSAttributeType(oid), "values": [value]})


def build_pkimessage(signer_cert, signer_key, msg_type, inner_env, txid, nonce, signing_time=None, tamper=False):
    """SignedData over `inner_env` (an EnvelopedData DER) with the SCEP attributes."""
    content = core.OctetString(inner_env)
    digest = hashlib.sha256(inner_env).digest()
    signing_time = signing_time or datetime.datetime.now(datetime.timezone.utc)
    attrs = acms.CMSAttributes([
        _attr("content_type", acms.ContentType("data")),
        _attr("message_digest", core.OctetString(digest)),
        _attr("signing_time", acms.Time({"utc_time": core.UTCTime(signing_time)})),
        _attr(OID["messageType"], core.PrintableString(str(msg_type))),
        _attr(OID["transactionID"], core.PrintableString(txid)),
        _attr(OID["senderNonce"], core.OctetString(nonce)),
    ])
    sig = signer_key.sign(attrs.dump(), __import__("cryptography.hazmat.primitives.asymmetric.padding",
                                                     fromlist=["PKCS1v15"]).PKCS1v15(), hashes.SHA256())
    if tamper:
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    cert = ax509.Certificate.load(signer_cert.public_bytes(serialization.Encoding.DER))
    si = acms.SignerInfo({
        "version": "v1",
        "sid": acms.SignerIdentifier({"issuer_and_serial_number": acms.IssuerAndSerialNumber(
            {"issuer": cert.issuer, "serial_number": cert.serial_number})}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
        "signed_attrs": attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
        "signature": sig,
    })
    sd = acms.SignedData({
        "version": "v1",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
        "encap_content_info": {"content_type": "data", "content": content},
        "certificates": [acms.CertificateChoices({"certificate": cert})],
        "signer_infos": [si],
    })
    return acms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()


def envelope(tmp_path, data, ra_pem, cipher="-aes-128-cbc", oaep=False):
    (tmp_path / "in.der").write_bytes(data)
    (tmp_path / "ra.pem").write_bytes(ra_pem)
    cmd = ["openssl", "cms", "-encrypt", "-binary", cipher, "-in", "in.der", "-outform", "DER", "-out", "env.der",
           "-recip", "ra.pem"]
    if oaep:
        cmd += ["-keyopt", "rsa_padding_mode:oaep"]
    if cipher == "-des-cbc":  # single DES lives in OpenSSL 3's legacy provider
        cmd += ["-provider", "legacy", "-provider", "default"]
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    return (tmp_path / "env.der").read_bytes()


class Rep:
    """A parsed CertRep: attributes, signature checked with the RA key."""

    def __init__(self, der, ra_cert):
        ci = acms.ContentInfo.load(der)
        assert ci["content_type"].native == "signed_data"
        sd = ci["content"]
        si = sd["signer_infos"][0]
        self.attrs = {a["type"].dotted: a["values"][0] for a in si["signed_attrs"]}
        signed = si["signed_attrs"].dump()
        signed = b"\x31" + signed[1:]  # the signature covers the SET OF encoding
        ra_cert.public_key().verify(si["signature"].native, signed,
                                    __import__("cryptography.hazmat.primitives.asymmetric.padding",
                                               fromlist=["PKCS1v15"]).PKCS1v15(), hashes.SHA256())
        self.status = self.attrs[OID["pkiStatus"]].native
        self.fail = self.attrs[OID["failInfo"]].native if OID["failInfo"] in self.attrs else None
        self.txid = self.attrs[OID["transactionID"]].native
        self.recipient_nonce = self.attrs[OID["recipientNonce"]].native
        enc = sd["encap_content_info"]["content"]
        self.envelope = enc.native if enc.native is not None else None


def open_rep(tmp_path, rep, cert, key):
    (tmp_path / "rep-env.der").write_bytes(rep.envelope)
    (tmp_path / "me.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "me.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    cp = subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in", "rep-env.der",
                         "-recip", "me.pem", "-inkey", "me.key", "-out", "p7.der", "-provider", "legacy",
                         "-provider", "default"], cwd=tmp_path, capture_output=True)
    assert cp.returncode == 0, cp.stderr
    return pkcs7.load_der_pkcs7_certificates((tmp_path / "p7.der").read_bytes())


def post(scep, der, use_get=False):
    if use_get:
        return requests.get(scep.http_url, params={"operation": "PKIOperation", "message": base64.b64encode(der)})
    return requests.post(scep.http_url, params={"operation": "PKIOperation"}, data=der,
                         headers={"Content-Type": "application/x-pki-message"})


def pkcs_req(scep, tmp_path, challenge, cipher="-aes-128-cbc", oaep=False, use_get=False, tamper=False,
             signing_time=None, cn=None, msg_type=19, signer=None, signer_key=None, key=None, sans=None):
    key = key or rsa.generate_private_key(65537, 2048)
    cn = cn or uid("hand")
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if challenge is not None:
        b = b.add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    csr = b.sign(key, hashes.SHA256())
    ra = _ra_cert(scep)
    env = envelope(tmp_path, csr.public_bytes(serialization.Encoding.DER), ra.public_bytes(serialization.Encoding.PEM),
                   cipher, oaep)
    signer = signer or _self_signed(key, cn)
    signer_key = signer_key or key
    txid = hashlib.sha256(os.urandom(16)).hexdigest()
    nonce = os.urandom(16)
    der = build_pkimessage(signer, signer_key, msg_type, env, txid, nonce, signing_time, tamper)
    r = post(scep, der, use_get)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/x-pki-message"
    rep = Rep(r.content, ra)
    assert rep.txid == txid and rep.recipient_nonce == nonce
    return rep, key, signer, txid


CIPHERS = [("-aes-128-cbc", False), ("-aes-256-cbc", True), ("-aes-128-gcm", False), ("-aes-256-gcm", True),
           ("-des-ede3-cbc", False), ("-des-cbc", True)]


@pytest.mark.parametrize("cipher,oaep", CIPHERS)
def test_pkcsreq_every_cipher_and_key_transport(scep, tmp_path, cipher, oaep):
    rep, key, signer, _ = pkcs_req(scep, tmp_path, scep.challenge, cipher, oaep, use_get=(cipher == "-aes-128-cbc"))
    assert rep.status == "0", (rep.status, rep.fail)
    certs = open_rep(tmp_path, rep, signer, key)
    leaf = certs[0]
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    assert leaf.issuer.rfc4514_string() == "CN=SCEP Test Issuing"


def test_failure_certreps(scep, tmp_path):
    rep, *_ = pkcs_req(scep, tmp_path, "wrong")
    assert (rep.status, rep.fail) == ("2", "2")  # badRequest
    assert rep.envelope in (None, b"")
    rep, *_ = pkcs_req(scep, tmp_path, scep.challenge, tamper=True)
    assert (rep.status, rep.fail) == ("2", "1")  # badMessageCheck
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3)
    rep, *_ = pkcs_req(scep, tmp_path, scep.challenge, signing_time=old)
    assert (rep.status, rep.fail) == ("2", "3")  # badTime
    rep, *_ = pkcs_req(scep, tmp_path, scep.challenge, msg_type=99)
    assert (rep.status, rep.fail) == ("2", "2")
    # RSA-1024 subject key: refused by the issuance core
    rep, *_ = pkcs_req(scep, tmp_path, scep.challenge, key=rsa.generate_private_key(65537, 1024))
    assert (rep.status, rep.fail) == ("2", "2")
    assert requests.get(scep.d.url + "/healthz").status_code == 200


def _ias(cert_issuer_der_name, serial):
    from asn1crypto import x509 as x
    return acms.IssuerAndSerialNumber({"issuer": x.Name.load(cert_issuer_der_name), "serial_number": serial}).dump()


def test_renewal_poll_getcert_getcrl(scep, tmp_path):
    rep, key, signer, txid = pkcs_req(scep, tmp_path, scep.challenge)
    assert rep.status == "0"
    leaf = open_rep(tmp_path, rep, signer, key)[0]
    ra = _ra_cert(scep)
    # CertPoll with the same transaction finds the certificate
    env = envelope(tmp_path, b"\x30\x00", ra.public_bytes(serialization.Encoding.PEM))
    r = post(scep, build_pkimessage(signer, key, 20, env, txid, os.urandom(16)))
    poll = Rep(r.content, ra)
    assert poll.status == "0" and open_rep(tmp_path, poll, signer, key)[0].serial_number == leaf.serial_number
    r = post(scep, build_pkimessage(signer, key, 20, env, "unknown-" + txid[:20], os.urandom(16)))
    assert Rep(r.content, ra).fail == "4"  # badCertId
    # GetCert by issuer and serial
    issuer = leaf.issuer.public_bytes()
    env = envelope(tmp_path, _ias(issuer, leaf.serial_number), ra.public_bytes(serialization.Encoding.PEM))
    got = Rep(post(scep, build_pkimessage(signer, key, 21, env, "gc" + txid[:30], os.urandom(16))).content, ra)
    assert got.status == "0" and open_rep(tmp_path, got, signer, key)[0].serial_number == leaf.serial_number
    env = envelope(tmp_path, _ias(issuer, 12345), ra.public_bytes(serialization.Encoding.PEM))
    got = Rep(post(scep, build_pkimessage(signer, key, 21, env, "gx" + txid[:30], os.urandom(16))).content, ra)
    assert got.fail == "4"
    # GetCRL
    env = envelope(tmp_path, _ias(issuer, leaf.serial_number), ra.public_bytes(serialization.Encoding.PEM))
    crl = Rep(post(scep, build_pkimessage(signer, key, 22, env, "cr" + txid[:30], os.urandom(16))).content, ra)
    assert crl.status == "0", crl.fail
    (tmp_path / "rep-env.der").write_bytes(crl.envelope)
    (tmp_path / "me.pem").write_bytes(signer.public_bytes(serialization.Encoding.PEM))
    subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in", "rep-env.der", "-recip",
                    "me.pem", "-inkey", "me.key", "-out", "crl-p7.der"], cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-in", "crl-p7.der", "-print_certs", "-noout",
                          "-print"], cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert "crl:" in out and "SCEP Test Issuing" in out
    # RenewalReq signed with the issued certificate: a new certificate, same subject
    new_key = rsa.generate_private_key(65537, 2048)
    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    rep2, _, _, _ = pkcs_req(scep, tmp_path, None, msg_type=17, signer=leaf, signer_key=key, key=new_key, cn=cn)
    assert rep2.status == "0", rep2.fail
    renewed = open_rep(tmp_path, rep2, leaf, key)[0]
    assert renewed.public_key().public_numbers() == new_key.public_key().public_numbers()
    assert renewed.serial_number != leaf.serial_number
    # a renewal renews the signer's own identity: another subject is refused (badRequest), even though the
    # signer is a current certificate of this CA
    rep4, *_ = pkcs_req(scep, tmp_path, None, msg_type=17, signer=leaf, signer_key=key,
                        key=rsa.generate_private_key(65537, 2048), cn="Administrator")
    assert (rep4.status, rep4.fail) == ("2", "2")
    # renewal signed with a certificate we did not issue
    stranger = rsa.generate_private_key(65537, 2048)
    rep3, *_ = pkcs_req(scep, tmp_path, None, msg_type=17, signer=_self_signed(stranger, cn), signer_key=stranger)
    assert (rep3.status, rep3.fail) == ("2", "1")


@pytest.mark.skipif(not shutil.which("scepclient"), reason="scepclient not installed")
def test_end_entities_and_events(scep, tmp_path):
    d = scep.d
    cn = uid("ee")
    cp = scepclient(scep, tmp_path / "a", scep.challenge, cn=cn)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "a" / "client.pem").read_bytes())
    ees = d.api("GET", "/protocols/scep1/end-entities").json()["endEntities"]
    mine = [e for e in ees if cn in e["identifier"]]
    assert len(mine) == 1 and mine[0]["status"] == "active", ees
    ee = mine[0]
    serial = format(cert.serial_number, "x")
    assert any(s.lstrip("0") == serial.lstrip("0") for s in ee["certificates"])
    assert ee["expiration"]
    # deactivated: the same subject cannot enrol
    r = d.api("POST", f"/protocols/scep1/end-entities/{ee['id']}/deactivate")
    assert r.status_code == 200 and r.json()["status"] == "inactive"
    cp = scepclient(scep, tmp_path / "b", scep.challenge, cn=cn)
    assert cp.returncode != 0 and not (tmp_path / "b" / "client.pem").exists()
    # reactivated: it can again
    assert d.api("POST", f"/protocols/scep1/end-entities/{ee['id']}/activate").json()["status"] == "active"
    cp = scepclient(scep, tmp_path / "c", scep.challenge, cn=cn)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    # decommissioned: permanent, and every certificate revoked (cessationOfOperation)
    r = d.api("POST", f"/protocols/scep1/end-entities/{ee['id']}/decommission")
    assert r.status_code == 200 and r.json()["revokedCertificates"] == 2, r.text
    detail = d.api("GET", f"/cas/scep-sub/certificates/{serial}").json()
    assert detail["status"] == "revoked" and detail["revocationReason"] == "cessationOfOperation"
    assert d.api("POST", f"/protocols/scep1/end-entities/{ee['id']}/activate").status_code == 409
    assert d.api("GET", f"/protocols/scep1/end-entities/{'f' * 32}").status_code == 404
    # enrollment events of the configuration: issues done, the refusal failed
    ev = d.api("GET", "/protocols/scep1/events", params={"limit": "1000"}).json()["events"]
    types = {(e["type"], e["status"]) for e in ev}
    assert ("issue", "done") in types and ("issue", "failed") in types, types
    refused = [e for e in ev if e["status"] == "failed" and e["endEntity"] and cn in e["endEntity"]]
    assert refused and "deactivated" in refused[0]["reason"]
    assert all(int(e["eventId"], 16) > 0 for e in ev)
