"""EST server (RFC 7030): configuration settings, cacerts, simpleenroll,
simplereenroll, serverkeygen and csrattrs driven with real clients (curl and
openssl), checked with python3-cryptography; authentication in "basic" and
"certificate" mode; hostile input answered with 4xx text, never 5xx."""
import base64
import re
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from conftest import Daemon, _require_binaries, clean_env
from helpers import create_ca, download_der, openssl, uid
from status_helpers import ConfiguredDaemon

PROFILE = "est-tls-client"


# ----------------------------------------------------------------- clients
class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower(), "")

    @property
    def text(self):
        return self.body.decode(errors="replace")


def curl(url, tmp, *args, cacert=None, data=None, ctype="application/pkcs10"):
    """One request with curl; (status, lower-cased headers, body bytes)."""
    hdr, out = tmp / "curl.headers", tmp / "curl.body"
    cmd = ["curl", "-sS", "--noproxy", "*", "-o", str(out), "-D", str(hdr), "-w", "%{http_code}"]
    if cacert:
        cmd += ["--cacert", str(cacert)]
    if data is not None:
        cmd += ["--data-binary", f"@{data}"]
        if ctype:
            cmd += ["-H", f"Content-Type: {ctype}"]
    cmd += [*map(str, args), url]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=clean_env())
    assert cp.returncode == 0, f"curl failed ({cp.returncode}): {cp.stderr}"
    headers = {}
    for line in hdr.read_text(errors="replace").splitlines():
        if ":" in line and not line.startswith("HTTP/"):
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return Resp(int(cp.stdout.strip()), headers, out.read_bytes())


def make_csr(tmp, name, subj, key_alg="ec", sans=None):
    """Key + CSR with openssl; returns (key path, base64 CSR path with line breaks)."""
    key, csr_der, b64 = tmp / f"{name}.key", tmp / f"{name}.csr.der", tmp / f"{name}.csr.b64"
    if key_alg == "ec":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    else:
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    args = ["req", "-new", "-key", key, "-subj", subj, "-outform", "DER", "-out", csr_der]
    if sans:
        args += ["-addext", f"subjectAltName={sans}"]
    openssl(*args)
    openssl("base64", "-in", csr_der, "-out", b64)  # 64-column lines
    return key, b64


def p7_certs(b64_body, tmp):
    """The certificates of a base64 certs-only PKCS#7, via openssl pkcs7 -print_certs."""
    raw = tmp / "p7.b64"
    raw.write_bytes(b64_body)
    der = openssl("base64", "-d", "-in", raw).stdout
    assert der, "base64 body decoded to nothing"
    pem = openssl("pkcs7", "-inform", "DER", "-print_certs", input=der).stdout
    return [x509.load_pem_x509_certificate(b) for b in
            re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", pem, re.S)]


def spki(obj):
    return obj.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def key_spki(path):
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def expect_text(r, status):
    assert r.status == status, f"expected {status}, got {r.status}: {r.text[:400]}"
    assert r.header("content-type").startswith("text/plain"), r.headers
    assert r.body.strip(), "error body is empty"
    return r.text


# ----------------------------------------------------------------- fixture
@pytest.fixture(scope="module")
def est(tmp_path_factory):
    """A daemon with two CA hierarchies, EST configurations in basic and
    certificate mode and one credential each."""
    _require_binaries()
    tmp = tmp_path_factory.mktemp("est")
    d = Daemon(tmp_path_factory.mktemp("pkiaasd-est"))
    d.bootstrap()
    d.bootstrap("otheracct")  # configurations are per partition
    d.start()
    root = create_ca(d, id=uid("estroot"), type="root", signingKeyDetails="ECDSAP256+SHA256",
                     subject="CN=EST Test Root")
    sub = create_ca(d, id=uid("estsub"), type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
                    subject="CN=EST Test Issuing", profiles=[PROFILE, "est-tls-server"])
    root2 = create_ca(d, id=uid("otherroot"), type="root", signingKeyDetails="ECDSAP256+SHA256",
                      subject="CN=Other Root")
    sub2 = create_ca(d, id=uid("othersub"), type="subord", parentId=root2["id"],
                     signingKeyDetails="ECDSAP256+SHA256", subject="CN=Other Issuing", profiles=[PROFILE])
    cfgs = {}
    for body in ({"id": "est1", "type": "est", "description": "devices", "caId": sub["id"], "profileId": PROFILE},
                 {"id": "est-other", "type": "est", "caId": sub2["id"], "profileId": PROFILE,
                  "authentication": "basic"},
                 {"id": "est-cert", "type": "est", "caId": sub["id"], "profileId": PROFILE,
                  "authentication": "certificate", "trustedCaIds": [sub2["id"]]}):
        r = d.api("POST", "/protocols", json=body)
        assert r.status_code == 201, r.text
        cfgs[body["id"]] = r.json()
    creds = {}
    for cfg in ("est1", "est-other"):
        r = d.api("POST", f"/protocols/{cfg}/credentials", json={"name": "devices", "id": "user1"})
        assert r.status_code == 201, r.text
        creds[cfg] = r.json()
        assert creds[cfg]["id"] == "user1" and creds[cfg]["secret"]
    env = type("EstEnv", (), {})()
    env.d, env.tmp, env.root, env.sub, env.root2, env.sub2 = d, tmp, root, sub, root2, sub2
    env.cfgs, env.creds = cfgs, creds
    env.base = f"{d.https_url}/.well-known/est/{d.account}~est1"
    env.base_other = f"{d.https_url}/.well-known/est/{d.account}~est-other"
    env.base_cert = f"{d.https_url}/.well-known/est/{d.account}~est-cert"
    env.user = f"user1:{creds['est1']['secret']}"
    env.user_other = f"user1:{creds['est-other']['secret']}"
    yield env
    rc = d.stop()
    assert rc == 0, f"pkiaasd exited with {rc} on SIGTERM\n{d.tail()}"


def enroll(env, base, csr_b64, *args, op="simpleenroll"):
    return curl(f"{base}/{op}", env.tmp, *args, cacert=env.d.service_ca, data=csr_b64)


def enrolled(env, name, subj, base=None, user=None, sans=None):
    """Enrols a fresh key over Basic auth; returns (key path, cert path, cert)."""
    key, csr = make_csr(env.tmp, name, subj, sans=sans)
    r = enroll(env, base or env.base, csr, "-u", user or env.user)
    assert r.status == 200, r.text
    certs = p7_certs(r.body, env.tmp)
    assert len(certs) == 1
    path = env.tmp / f"{name}.crt"
    path.write_bytes(certs[0].public_bytes(serialization.Encoding.PEM))
    return key, path, certs[0]


def serial_hex(cert):
    h = format(cert.serial_number, "x")
    h = "0" * (len(h) % 2) + h
    return ("00" + h) if int(h[:2], 16) >= 0x80 else h


# ----------------------------------------------------------------- configuration
def test_config_settings_and_url(est):
    d = est.d
    cfg = est.cfgs["est1"]
    assert cfg["estUrl"] == f"{d.https_url}/.well-known/est/{d.account}~est1"
    assert cfg["authentication"] == "basic" and cfg["trustedCaIds"] == []
    assert est.cfgs["est-cert"]["authentication"] == "certificate"
    assert est.cfgs["est-cert"]["trustedCaIds"] == [est.sub2["id"]]
    base = {"type": "est", "caId": est.sub["id"], "profileId": PROFILE}
    for extra, field in (({"authentication": "digest"}, "authentication"),
                         ({"authentication": 1}, "authentication"),
                         ({"trustedCaIds": "x"}, "trustedCaIds"),
                         ({"trustedCaIds": ["NOT A CA"]}, "trustedCaIds"),
                         ({"trustedCaIds": ["ab", "ab"]}, "trustedCaIds"),
                         ({"eabRequired": False}, "eabRequired")):
        r = d.api("POST", "/protocols", json={"id": "est-bad", **base, **extra})
        assert r.status_code == 400, (extra, r.text)
        assert r.json()["error"]["field"] == field, (extra, r.text)
    # a profile of another group is refused for EST
    r = d.api("POST", "/protocols", json={"id": "est-bad", "type": "est", "caId": est.sub["id"],
                                           "profileId": "privatessl-tls-server"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "profileId", r.text
    # update keeps what is not given
    r = d.api("PUT", "/protocols/est-other", json={"description": "other devices"})
    assert r.status_code == 200, r.text
    assert r.json()["authentication"] == "basic" and r.json()["trustedCaIds"] == []


# ----------------------------------------------------------------- cacerts / csrattrs
def test_cacerts(est):
    r = curl(f"{est.base}/cacerts", est.tmp, cacert=est.d.service_ca)
    assert r.status == 200, r.text
    assert r.header("content-type").startswith("application/pkcs7-mime"), r.headers
    assert "smime-type=certs-only" in r.header("content-type")
    assert r.header("content-transfer-encoding").lower() == "base64"
    certs = p7_certs(r.body, est.tmp)
    ders = [c.public_bytes(serialization.Encoding.DER) for c in certs]
    assert ders == [download_der(est.d, est.sub["id"]), download_der(est.d, est.root["id"])]
    # the degenerate SignedData: no signers, no content
    raw = est.tmp / "cacerts.b64"
    raw.write_bytes(r.body)
    der = openssl("base64", "-d", "-in", raw).stdout
    txt = openssl("pkcs7", "-inform", "DER", "-print", "-noout", input=der).stdout.decode()
    assert re.search(r"signer_info:\s*<EMPTY>", txt), txt[-600:]
    assert re.search(r"md_algs:\s*<EMPTY>", txt), txt[:600]


def test_csrattrs(est):
    r = curl(f"{est.base}/csrattrs", est.tmp, cacert=est.d.service_ca)
    assert r.status == 200, r.text
    assert r.header("content-type").startswith("application/csrattrs"), r.headers
    raw = est.tmp / "csrattrs.b64"
    raw.write_bytes(r.body)
    der = openssl("base64", "-d", "-in", raw).stdout
    assert der[0] == 0x30
    txt = openssl("asn1parse", "-inform", "DER", input=der).stdout.decode()
    assert "ecdsa-with-SHA256" in txt and "prime256v1" in txt and "id-ecPublicKey" in txt, txt


# ----------------------------------------------------------------- simpleenroll
def test_simpleenroll(est):
    key, csr = make_csr(est.tmp, "dev1", "/CN=device-1/O=EST Test", sans="DNS:device-1.example")
    r = enroll(est, est.base, csr, "-u", est.user)
    assert r.status == 200, r.text
    assert r.header("content-type").startswith("application/pkcs7-mime"), r.headers
    assert "smime-type=certs-only" in r.header("content-type")
    assert r.header("content-transfer-encoding").lower() == "base64"
    certs = p7_certs(r.body, est.tmp)
    assert len(certs) == 1, "simpleenroll answers only the issued certificate"
    cert = certs[0]
    assert spki(cert) == key_spki(key), "the certificate is not for the CSR's key"
    sub = x509.load_der_x509_certificate(download_der(est.d, est.sub["id"]))
    assert cert.issuer == sub.subject
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "device-1"
    eku = cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert san.get_values_for_type(x509.DNSName) == ["device-1.example"]
    # chains to the root
    leaf, chain = est.tmp / "dev1.pem", est.tmp / "est-root.pem"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(sub.public_bytes(serialization.Encoding.PEM) + x509.load_der_x509_certificate(
        download_der(est.d, est.root["id"])).public_bytes(serialization.Encoding.PEM))
    openssl("verify", "-CAfile", chain, leaf)
    # recorded with the EST requester
    g = est.d.api("GET", f"/cas/{est.sub['id']}/certificates/{serial_hex(cert)}")
    assert g.status_code == 200, g.text
    assert g.json()["requester"] == "est:est1/user1", g.json()


def test_simpleenroll_rsa_and_unwrapped_base64(est):
    key, csr = make_csr(est.tmp, "dev-rsa", "/CN=device-rsa", key_alg="rsa")
    one_line = est.tmp / "dev-rsa.oneline"
    one_line.write_bytes(base64.b64encode(base64.b64decode(csr.read_bytes())))
    r = enroll(est, est.base, one_line, "-u", est.user)
    assert r.status == 200, r.text
    assert spki(p7_certs(r.body, est.tmp)[0]) == key_spki(key)


# ----------------------------------------------------------------- simplereenroll
def test_simplereenroll(est):
    key, crt, cert = enrolled(est, "renew1", "/CN=renew-me/O=EST Test", sans="DNS:renew-me.example")
    # same key (re-certification) and same subject, over mutual TLS
    csr_der = est.tmp / "renew1b.der"
    openssl("req", "-new", "-key", key, "-subj", "/CN=renew-me/O=EST Test", "-addext",
            "subjectAltName=DNS:renew-me.example", "-outform", "DER", "-out", csr_der)
    csr = est.tmp / "renew1b.b64"
    openssl("base64", "-in", csr_der, "-out", csr)
    r = enroll(est, est.base, csr, "--cert", crt, "--key", key, op="simplereenroll")
    assert r.status == 200, r.text
    new = p7_certs(r.body, est.tmp)
    assert len(new) == 1
    assert new[0].subject == cert.subject and new[0].serial_number != cert.serial_number
    assert spki(new[0]) == spki(cert)
    # rekey: a new key, the same subject
    key2, csr2 = make_csr(est.tmp, "renew1c", "/CN=renew-me/O=EST Test", sans="DNS:renew-me.example")
    r = enroll(est, est.base, csr2, "--cert", crt, "--key", key, op="simplereenroll")
    assert r.status == 200, r.text
    got = p7_certs(r.body, est.tmp)[0]
    assert got.subject == cert.subject and spki(got) == key_spki(key2)
    # another subject or other SANs are refused (RFC 7030 4.2.2)
    _, bad = make_csr(est.tmp, "renew1d", "/CN=someone-else/O=EST Test", sans="DNS:renew-me.example")
    expect_text(enroll(est, est.base, bad, "--cert", crt, "--key", key, op="simplereenroll"), 400)
    _, bad = make_csr(est.tmp, "renew1e", "/CN=renew-me/O=EST Test", sans="DNS:other.example")
    expect_text(enroll(est, est.base, bad, "--cert", crt, "--key", key, op="simplereenroll"), 400)


def test_simplereenroll_refusals(est):
    key, crt, cert = enrolled(est, "renew2", "/CN=renew-two")
    _, csr = make_csr(est.tmp, "renew2b", "/CN=renew-two")
    # no client certificate (Basic credentials do not renew)
    t = expect_text(enroll(est, est.base, csr, "-u", est.user, op="simplereenroll"), 403)
    assert "certificate" in t
    # a certificate of another CA
    okey, ocrt, ocert = enrolled(est, "other1", "/CN=renew-two", base=est.base_other, user=est.user_other)
    expect_text(enroll(est, est.base, csr, "--cert", ocrt, "--key", okey, op="simplereenroll"), 403)
    # suspended, then revoked
    serial = serial_hex(cert)
    r = est.d.api("POST", f"/cas/{est.sub['id']}/certificates/{serial}/suspend", json={})
    assert r.status_code == 200, r.text
    t = expect_text(enroll(est, est.base, csr, "--cert", crt, "--key", key, op="simplereenroll"), 403)
    assert "suspended" in t
    r = est.d.api("POST", f"/cas/{est.sub['id']}/certificates/{serial}/revoke", json={"reason": "superseded"})
    assert r.status_code == 200, r.text
    t = expect_text(enroll(est, est.base, csr, "--cert", crt, "--key", key, op="simplereenroll"), 403)
    assert "revoked" in t


# ----------------------------------------------------------------- serverkeygen
def parse_multipart(r):
    m = re.match(r'multipart/mixed;\s*boundary="?([^";]+)"?', r.header("content-type"))
    assert m, r.headers
    boundary = m.group(1).encode()
    body = r.body
    assert body.rstrip().endswith(b"--" + boundary + b"--"), body[-200:]
    parts = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, content = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n"):
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        parts.append((headers, content))
    return parts


def test_serverkeygen(est):
    _, csr = make_csr(est.tmp, "keygen1", "/CN=keygen-device/O=EST Test", sans="DNS:keygen.example")
    r = enroll(est, est.base, csr, "-u", est.user, op="serverkeygen")
    assert r.status == 200, r.text
    parts = parse_multipart(r)
    assert len(parts) == 2
    (kh, kbody), (ch, cbody) = parts
    assert kh["content-type"] == "application/pkcs8" and kh["content-transfer-encoding"] == "base64"
    assert ch["content-type"].startswith("application/pkcs7-mime") and "smime-type=certs-only" in ch["content-type"]
    key = serialization.load_der_private_key(base64.b64decode(kbody), None)
    # openssl reads the key part too
    kfile = est.tmp / "keygen1.p8.b64"
    kfile.write_bytes(kbody)
    openssl("pkey", "-inform", "DER", "-noout", input=openssl("base64", "-d", "-in", kfile).stdout)
    certs = p7_certs(cbody, est.tmp)
    assert len(certs) == 1
    cert = certs[0]
    assert spki(cert) == key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "keygen-device"
    san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert san.get_values_for_type(x509.DNSName) == ["keygen.example"]
    # the server key follows the request's key type (EC P-256 here)
    assert key.curve.name == "secp256r1"


# ----------------------------------------------------------------- errors
def test_bad_input_is_400_text(est):
    junk = est.tmp / "junk.b64"
    junk.write_bytes(b"this is not base64!!\n")
    t = expect_text(enroll(est, est.base, junk, "-u", est.user), 400)
    assert "base64" in t
    notcsr = est.tmp / "notcsr.b64"
    notcsr.write_bytes(base64.encodebytes(b"\x30\x03\x02\x01\x01"))
    t = expect_text(enroll(est, est.base, notcsr, "-u", est.user), 400)
    assert "PKCS#10" in t
    text = est.tmp / "text.b64"
    text.write_bytes(base64.encodebytes(b"hello world, no DER here"))
    expect_text(enroll(est, est.base, text, "-u", est.user), 400)
    empty = est.tmp / "empty.b64"
    empty.write_bytes(b"")
    expect_text(enroll(est, est.base, empty, "-u", est.user), 400)
    # a CSR whose signature does not verify (last byte of the signature flipped)
    _, csr = make_csr(est.tmp, "badsig", "/CN=bad-signature")
    der = bytearray(base64.b64decode(csr.read_bytes()))
    der[-1] ^= 0x01
    bad = est.tmp / "badsig.tampered.b64"
    bad.write_bytes(base64.encodebytes(bytes(der)))
    t = expect_text(enroll(est, est.base, bad, "-u", est.user), 400)
    assert "PKCS#10" in t
    # truncated DER
    trunc = est.tmp / "trunc.b64"
    trunc.write_bytes(base64.encodebytes(bytes(der[:40])))
    expect_text(enroll(est, est.base, trunc, "-u", est.user), 400)
    # the same for serverkeygen
    expect_text(enroll(est, est.base, junk, "-u", est.user, op="serverkeygen"), 400)
    # a content type that is not application/pkcs10
    _, good = make_csr(est.tmp, "ctype", "/CN=ctype")
    r = curl(f"{est.base}/simpleenroll", est.tmp, "-u", est.user, cacert=est.d.service_ca, data=good,
             ctype="application/json")
    expect_text(r, 415)


def test_hostile_bodies(est):
    big = est.tmp / "big.b64"
    big.write_bytes(b"QUFB" * 80000)  # 320 KB of valid base64
    expect_text(enroll(est, est.base, big, "-u", est.user), 413)
    nul = est.tmp / "nul.b64"
    nul.write_bytes(b"MIIB\x00\x00\xff\xfe" * 64)
    expect_text(enroll(est, est.base, nul, "-u", est.user), 400)
    # base64 of a DER SEQUENCE that claims far more than it holds
    lie = est.tmp / "lie.b64"
    lie.write_bytes(base64.encodebytes(b"\x30\x84\x7f\xff\xff\xff" + b"\x30" * 100))
    expect_text(enroll(est, est.base, lie, "-u", est.user), 400)
    # a certificate instead of a request
    cert = est.tmp / "cert-not-csr.b64"
    cert.write_bytes(base64.encodebytes(download_der(est.d, est.sub["id"])))
    expect_text(enroll(est, est.base, cert, "-u", est.user), 400)
    # hostile Authorization headers
    _, csr = make_csr(est.tmp, "hostile", "/CN=hostile")
    for h in ("Basic", "Basic ", "Basic " + base64.b64encode(b"no-colon").decode(),
              "Basic " + base64.b64encode(b":only-password").decode(),
              "Basic " + base64.b64encode(b"user1\x00:x").decode(),
              "Basic " + base64.b64encode(b"x" * 100 + b":y").decode(),
              "Basic " + base64.b64encode(b"../../etc:y").decode()):
        r = enroll(est, est.base, csr, "-H", f"Authorization: {h}")
        expect_text(r, 401)
    # the public endpoints also answer on the HTTP listener; enrolment does not
    r = curl(f"{est.d.url}/.well-known/est/{est.d.account}~est1/cacerts", est.tmp)
    assert r.status == 200, r.text


def test_authentication_failures(est):
    _, csr = make_csr(est.tmp, "auth1", "/CN=auth-test")
    for args in (["-u", "user1:wrong-password"], ["-u", "nobody:x"], [], ["-H", "Authorization: Basic !!!"],
                 ["-H", "Authorization: Bearer abc"], ["-u", est.user_other]):
        r = enroll(est, est.base, csr, *args)
        expect_text(r, 401)
        assert r.header("www-authenticate") == 'Basic realm="estrealm"', (args, r.headers)
    r = enroll(est, est.base, csr, "-u", est.user, "-H", "Authorization: Basic " + "A" * 5000)
    assert r.status == 401 or (400 <= r.status < 500), r.status
    expect_text(enroll(est, est.base, csr, "-u", "user1:wrong", op="serverkeygen"), 401)


def test_unknown_configuration_404(est):
    d = est.d
    _, csr = make_csr(est.tmp, "nf", "/CN=not-found")
    for label in (f"{d.account}~nope", "otheracct~est1", f"{d.account}", f"{d.account}~est1~x", "~est1",
                  f"{d.account}~EST1", f"{d.account}~" + "x" * 40):
        r = curl(f"{d.https_url}/.well-known/est/{label}/cacerts", est.tmp, cacert=d.service_ca)
        expect_text(r, 404)
        expect_text(enroll(est, f"{d.https_url}/.well-known/est/{label}", csr, "-u", est.user), 404)


def test_plain_http_enrolment_refused(est):
    d = est.d
    _, csr = make_csr(est.tmp, "plain", "/CN=plain-http")
    r = curl(f"{d.url}/.well-known/est/{d.account}~est1/simpleenroll", est.tmp, "-u", est.user, data=csr)
    t = expect_text(r, 403)
    assert "HTTPS" in t


# ----------------------------------------------------------------- certificate mode
def test_certificate_mode(est):
    d = est.d
    # a client certificate from the trusted other hierarchy
    okey, ocrt, _ = enrolled(est, "trusted1", "/CN=trusted-client", base=est.base_other, user=est.user_other)
    key, csr = make_csr(est.tmp, "cm1", "/CN=cert-mode-device")
    r = enroll(est, est.base_cert, csr, "--cert", ocrt, "--key", okey)
    assert r.status == 200, r.text
    cert = p7_certs(r.body, est.tmp)[0]
    assert spki(cert) == key_spki(key)
    assert cert.issuer == x509.load_der_x509_certificate(download_der(d, est.sub["id"])).subject
    g = d.api("GET", f"/cas/{est.sub['id']}/certificates/{serial_hex(cert)}").json()
    assert g["requester"] == "est:est-cert/CN=trusted-client", g
    # a certificate of the configuration's own CA works too; serverkeygen as well
    skey, scrt, scert = enrolled(est, "own1", "/CN=own-client")
    r = enroll(est, est.base_cert, csr, "--cert", scrt, "--key", skey)
    assert r.status == 200, r.text
    r = enroll(est, est.base_cert, csr, "--cert", scrt, "--key", skey, op="serverkeygen")
    assert r.status == 200, r.text
    assert len(parse_multipart(r)) == 2
    # Basic credentials are not enough, nor no certificate
    expect_text(enroll(est, est.base_cert, csr, "-u", est.user), 403)
    expect_text(enroll(est, est.base_cert, csr), 403)
    # an untrusted hierarchy: a self-made CA with the same names
    ca_key, ca_crt = est.tmp / "fake-ca.key", est.tmp / "fake-ca.crt"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
            "-out", ca_crt, "-subj", "/CN=EST Test Issuing", "-days", "2")
    fkey, fcsr_b64 = make_csr(est.tmp, "fake1", "/CN=fake-client")
    fcsr = est.tmp / "fake1.csr.der"
    fcrt = est.tmp / "fake1.crt"
    openssl("x509", "-req", "-inform", "DER", "-in", fcsr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
            "-out", fcrt, "-days", "1")
    t = expect_text(enroll(est, est.base_cert, csr, "--cert", fcrt, "--key", fkey), 403)
    assert "not trusted" in t
    # revoked certificates are refused
    r = d.api("POST", f"/cas/{est.sub['id']}/certificates/{serial_hex(scert)}/revoke", json={"reason": "superseded"})
    assert r.status_code == 200, r.text
    t = expect_text(enroll(est, est.base_cert, csr, "--cert", scrt, "--key", skey), 403)
    assert "revoked" in t


# ----------------------------------------------------------------- rate limit
def test_enrolment_rate_limited(tmp_path):
    """Enrolments take from the partition's certificate bucket: 429 with
    Retry-After, as text, once it is empty."""
    _require_binaries()
    d = ConfiguredDaemon(tmp_path / "pkiaasd", ["rate_limit_standard = 5", "rate_limit_premium = 5",
                                                "rate_limit_window_s = 600"])
    d.bootstrap()
    d.start()
    try:
        root = create_ca(d, id=uid("rlroot"), type="root", signingKeyDetails="ECDSAP256+SHA256", subject="CN=RL Root")
        sub = create_ca(d, id=uid("rlsub"), type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
                        subject="CN=RL Issuing", profiles=[PROFILE])
        assert d.api("POST", "/protocols", json={"id": "est-rl", "type": "est", "caId": sub["id"],
                                                  "profileId": PROFILE}).status_code == 201
        r = d.api("POST", "/protocols/est-rl/credentials", json={"name": "rl", "id": "rl"})
        assert r.status_code == 201, r.text
        user = f"rl:{r.json()['secret']}"
        _, csr = make_csr(tmp_path, "rl", "/CN=rate-limited")
        url = f"{d.https_url}/.well-known/est/{d.account}~est-rl/simpleenroll"
        statuses = []
        for _ in range(7):
            r = curl(url, tmp_path, "-u", user, cacert=d.service_ca, data=csr)
            statuses.append(r.status)
            if r.status == 429:
                expect_text(r, 429)
                assert r.header("retry-after").isdigit() and int(r.header("retry-after")) >= 1, r.headers
        assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429], statuses
    finally:
        rc = d.stop()
    assert rc == 0, f"pkiaasd exited with {rc} on SIGTERM\n{d.tail()}"


def test_daemon_still_healthy(est):
    r = est.d.get("/healthz")
    assert r.status_code == 200
    assert "ERROR: AddressSanitizer" not in est.d.log_text()
