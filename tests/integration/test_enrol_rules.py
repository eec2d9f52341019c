"""Enrolment protocol rules found by review (each test failed on the build before its fix):
- MDM web service: /pkcs12 only for PKCS#12 Digital IDs, refused for a deactivated or decommissioned end entity
  (and recorded on it), and under the partition's rate limits like every interface;
- MDM SCEP: a request refused for the rate limit does not spend its one-time challenge;
- EST: certificate-mode authentication needs a clientAuth certificate, re-enrolment renews certificates of the
  configuration's profile only, and serverkeygen refuses the names simpleenroll refuses."""
import base64
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID, ObjectIdentifier

from conftest import _require_binaries
from helpers import create_ca
from status_helpers import ConfiguredDaemon
from test_est import enroll, est, make_csr, p7_certs  # noqa: F401  (est: the EST module fixture)
from test_scep import pkcs_req


SCEP_PROFILE = "mdmws-digital-signature"
P12_PROFILE = "mdmws-p12-digital-signature"
VARS = {"igusername": "alice", "iggroup": "Sales", "devicetype": "iPhone"}


@pytest.fixture(scope="module")
def mdm(tmp_path_factory):
    _require_binaries()
    d = ConfiguredDaemon(tmp_path_factory.mktemp("pkiaasd-mdm"), ["rate_limit_standard = 20", "rate_limit_premium = 20",
                                                                  "rate_limit_window_s = 600"])
    d.bootstrap()
    d.start()
    root = create_ca(d, id="mdm-root", type="root", signingKeyDetails="ECDSAP256+SHA256", subject="CN=MDM Root")
    create_ca(d, id="mdm-sub", type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
              subject="CN=MDM Issuing", profiles=[SCEP_PROFILE, P12_PROFILE])
    r = d.api("POST", "/protocols", json={"id": "jamf", "type": "mdmws", "caId": "mdm-sub", "profileId": SCEP_PROFILE})
    assert r.status_code == 201, r.text
    cfg = r.json()
    r = d.api("POST", "/protocols/jamf/credentials", json={"name": "jamf pro", "id": "jamfpro"})
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    for body in ({"name": "device", "rdnFormat": "CN=<igusername>", "parentDn": "O=Example"},
                 {"name": "user-p12", "rdnFormat": "CN=<igusername>", "parentDn": "O=Example",
                  "profileId": P12_PROFILE}):
        r = d.api("POST", "/protocols/jamf/digital-ids", json=body)
        assert r.status_code == 201, r.text
    env = type("MdmEnv", (), {})()
    env.d, env.cfg = d, cfg
    env.ws = cfg["mdmWebServiceUrl"]
    env.auth = ("jamfpro", secret)
    yield env
    d.stop()


def ws(mdm, method, path, **kw):
    return requests.request(method, mdm.ws + path, auth=mdm.auth, timeout=60, verify=str(mdm.d.service_ca), **kw)


def test_pkcs12_refused_for_a_decommissioned_end_entity(mdm, tmp_path):
    """An end entity (subject CN=bob,O=Example) enrolled by SCEP, then decommissioned (permanent): the MDM web
    service still issues a PKCS#12 for exactly that subject."""
    v = dict(VARS, igusername="bob")
    r = ws(mdm, "POST", "/challenges", json={"digitalId": "device", "variables": v})
    assert r.status_code == 201, r.text
    subject = r.json()["subject"]
    env = type("Env", (), {"http_url": mdm.cfg["scepUrl"].replace(mdm.d.https_url, mdm.d.url)})()
    rep, *_ = pkcs_req(env, tmp_path, r.json()["challenge"], cn="ignored")
    if rep.status != "0":
        pytest.skip(f"SCEP enrolment refused (rate limit?): {rep.fail}")
    ees = mdm.d.api("GET", "/protocols/jamf/end-entities").json()["endEntities"]
    ee = [e for e in ees if e["identifier"] == subject]
    assert ee, ees
    r = mdm.d.api("POST", f"/protocols/jamf/end-entities/{ee[0]['id']}/decommission", json={})
    assert r.status_code == 200, r.text
    # SCEP now refuses it
    r = ws(mdm, "POST", "/challenges", json={"digitalId": "device", "variables": v})
    assert r.status_code == 201
    rep, *_ = pkcs_req(env, tmp_path, r.json()["challenge"], cn="ignored")
    assert rep.status == "2"
    # ... but the web service's pkcs12 does not check the end entity
    r = ws(mdm, "POST", "/pkcs12", json={"digitalId": "user-p12", "variables": v, "password": "Passw0rd!x",
                                          "keyType": "EC-P256"})
    print("pkcs12 for decommissioned EE:", r.status_code, r.text[:200])
    assert r.status_code == 409 and "decommissioned" in r.text, r.text


def test_pkcs12_only_for_pkcs12_digital_ids(mdm):
    """docs/scep.md: pkcs12 is for Digital IDs with an mdmws-p12-* profile; a SCEP Digital ID works too."""
    r = ws(mdm, "POST", "/pkcs12", json={"digitalId": "device", "variables": dict(VARS, igusername="carol"),
                                          "password": "Passw0rd!x", "keyType": "EC-P256"})
    print("pkcs12 with SCEP digital id:", r.status_code, r.text[:200])
    assert r.status_code == 400, r.text


def write_csr(tmp, name, csr):
    p = tmp / f"{name}.b64"
    p.write_bytes(base64.encodebytes(csr.public_bytes(serialization.Encoding.DER)))
    return p


def api_issue(est, name, profile):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    r = est.d.api("POST", f"/cas/{est.sub['id']}/certificates", json={
        "profileId": profile, "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
        "subjectAltNames": [{"type": "dNSName", "value": f"{name}.example"}]})
    assert r.status_code == 201, r.text
    j = r.json()
    pem = j.get("certificate") or j.get("pem") or j.get("certificatePem")
    if pem is None:
        g = est.d.api("GET", f"/cas/{est.sub['id']}/certificates/{j['serialNumber']}")
        pem = g.json().get("certificate") or g.json().get("pem")
    assert pem, j.keys()
    kp, cp = est.tmp / f"{name}.key", est.tmp / f"{name}.crt"
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    cp.write_bytes(pem.encode() if isinstance(pem, str) else pem)
    return kp, cp, x509.load_pem_x509_certificate(cp.read_bytes())


def test_cert_mode_needs_a_client_certificate(est):
    """certificate mode: a TLS *server* certificate (EKU serverAuth only) of the CA authenticates an enrolment."""
    kp, cp, cert = api_issue(est, "srv-only", "est-tls-server")
    eku = cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH not in eku
    _, csr = make_csr(est.tmp, "srvauth", "/CN=anything-i-want")
    r = enroll(est, est.base_cert, csr, "--cert", cp, "--key", kp)
    assert r.status == 403 and "clientAuth" in r.text, (r.status, r.text[:200])


def test_reenroll_keeps_the_profile(est):
    """simplereenroll renews a certificate issued with another profile (est-tls-server via the API) into
    the configuration's est-tls-client profile: the EKU changes from serverAuth to clientAuth."""
    kp, cp, cert = api_issue(est, "srv-renew", "est-tls-server")
    key = serialization.load_pem_private_key(kp.read_bytes(), None)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(cert.subject)
           .add_extension(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False)
           .sign(key, hashes.SHA256()))
    r = enroll(est, est.base, write_csr(est.tmp, "srv-renew-csr", csr), "--cert", cp, "--key", kp,
               op="simplereenroll")
    assert r.status == 403 and "profile" in r.text, (r.status, r.text[:200])


def test_serverkeygen_refuses_what_simpleenroll_refuses(est):
    """A SAN the server cannot handle: simpleenroll says 400, serverkeygen silently leaves it out."""
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("kg-names.example"),
                                       x509.OtherName(ObjectIdentifier("1.3.6.1.5.5.7.8.4"), b"\x0c\x03abc")])
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kg-names")]))
           .add_extension(san, False).sign(key, hashes.SHA256()))
    p = write_csr(est.tmp, "kg-names", csr)
    r1 = enroll(est, est.base, p, "-u", est.user)
    r2 = enroll(est, est.base, p, "-u", est.user, op="serverkeygen")
    assert r1.status == r2.status == 400, (r1.status, r1.text[:150], r2.status, r2.text[:150])


def test_rate_limited_scep_keeps_its_challenge(tmp_path):
    _require_binaries()
    d = ConfiguredDaemon(tmp_path / "d", ["rate_limit_standard = 12", "rate_limit_premium = 12",
                                          "rate_limit_window_s = 60"])
    d.bootstrap()
    d.start()
    try:
        root = create_ca(d, id="mdm-root", type="root", signingKeyDetails="ECDSAP256+SHA256", subject="CN=R")
        time.sleep(1)
        create_ca(d, id="mdm-sub", type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
                  subject="CN=MDM Issuing", profiles=[SCEP_PROFILE, "privatessl-tls-server"])
        assert d.api("POST", "/protocols", json={"id": "jamf", "type": "mdmws", "caId": "mdm-sub",
                                                  "profileId": SCEP_PROFILE}).status_code == 201
        r = d.api("POST", "/protocols/jamf/credentials", json={"name": "jamf", "id": "jamfpro"})
        assert r.status_code == 201, r.text
        auth = ("jamfpro", r.json()["secret"])
        assert d.api("POST", "/protocols/jamf/digital-ids", json={"name": "device", "rdnFormat": "CN=<igusername>",
                                                                   "parentDn": "O=Example"}).status_code == 201
        ws = f"{d.url}/mdm/v2/mdmws/{d.account}/jamf"
        env = type("Env", (), {"http_url": f"{d.url}/mdm/v2/scep/{d.account}/jamf"})()
        ch = requests.post(ws + "/challenges", auth=auth, json={"digitalId": "device", "variables": dict(VARS, igusername="dave")}).json()
        # drain the partition's certificate bucket with ordinary API issuances
        k = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, "fill.example")])).sign(k, hashes.SHA256()).public_bytes(
            serialization.Encoding.PEM).decode()
        codes = []
        for _ in range(14):
            codes.append(d.api("POST", "/cas/mdm-sub/certificates", json={"profileId": "privatessl-tls-server",
                                                                          "csr": csr}).status_code)
        assert 429 in codes
        rep, *_ = pkcs_req(env, tmp_path, ch["challenge"], cn="ignored")
        assert rep.status == "2"
        time.sleep(6)  # one token refills (60 s / 12)
        rep, *_ = pkcs_req(env, tmp_path, ch["challenge"], cn="ignored")
        assert rep.status == "0", "the rate-limited device's one-time challenge was consumed by the refusal"
    finally:
        d.stop()


def test_pkcs12_is_rate_limited(mdm):
    """rate_limit_standard = 20 per 600 s: the web service's certificates count like any other (run last: it
    empties the module daemon's bucket)."""
    codes = []
    for i in range(26):
        r = ws(mdm, "POST", "/pkcs12", json={"digitalId": "user-p12", "variables": dict(VARS, igusername=f"u{i}"),
                                              "password": "Passw0rd!x", "keyType": "EC-P256"})
        codes.append(r.status_code)
    assert 429 in codes and set(codes) <= {201, 429}, codes
    assert codes.index(429) <= 20, codes
