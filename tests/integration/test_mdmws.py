"""MDM integrations (Jamf / Workspace ONE / Ivanti / MaaS360: type mdmws):
Digital IDs with RDN variables, the MDM web service (one-time SCEP
challenges, PKCS#12, revocation, listing) authenticated with the
configuration's credentials, and device enrolment with micromdm's
scepclient at /mdm/v2/scep/..."""
import base64
import shutil
import subprocess

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from conftest import Daemon, _require_binaries, clean_env
from helpers import create_ca, uid

SCEP_PROFILE = "mdmws-digital-signature"
P12_PROFILE = "mdmws-p12-digital-signature"
VARS = {"igusername": "alice", "iggroup": "Sales, EMEA", "devicetype": "iPhone"}


@pytest.fixture(scope="module")
def mdm(tmp_path_factory):
    _require_binaries()
    d = Daemon(tmp_path_factory.mktemp("pkiaasd-mdmws"))
    d.bootstrap()
    d.start()
    root = create_ca(d, id="mdm-root", type="root", signingKeyDetails="RSA-2048+PKCS15-SHA256", subject="CN=MDM Root")
    create_ca(d, id="mdm-sub", type="subord", parentId=root["id"], signingKeyDetails="RSA-2048+PKCS15-SHA256",
              subject="CN=MDM Issuing", profiles=[SCEP_PROFILE, P12_PROFILE])
    r = d.api("POST", "/protocols", json={"id": "jamf", "type": "mdmws", "caId": "mdm-sub", "profileId": SCEP_PROFILE,
                                           "description": "Jamf Pro"})
    assert r.status_code == 201, r.text
    cfg = r.json()
    r = d.api("POST", "/protocols/jamf/credentials", json={"name": "jamf pro", "id": "jamfpro"})
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    for body in ({"name": "device", "rdnFormat": "CN=<igusername>,OU=<iggroup>,OU=<devicetype>",
                  "parentDn": "O=Example,C=US"},
                 {"name": "user-p12", "rdnFormat": "CN=<igusername> <profileid>", "parentDn": "O=Example",
                  "profileId": P12_PROFILE}):
        r = d.api("POST", "/protocols/jamf/digital-ids", json=body)
        assert r.status_code == 201, r.text
    env = type("MdmEnv", (), {})()
    env.d, env.cfg = d, cfg
    env.ws = cfg["mdmWebServiceUrl"].replace(d.https_url, d.url)
    env.auth = ("jamfpro", secret)
    yield env
    d.stop()


def test_config_and_digital_id_validation(mdm):
    d = mdm.d
    assert mdm.cfg["scepUrl"] == f"{d.https_url}/mdm/v2/scep/{d.account}/jamf"
    assert mdm.cfg["mdmWebServiceUrl"] == f"{d.https_url}/mdm/v2/mdmws/{d.account}/jamf"
    ids = {x["name"]: x for x in d.api("GET", "/protocols/jamf/digital-ids").json()["digitalIds"]}
    assert set(ids) == {"device", "user-p12"}
    assert ids["device"]["alwaysPresentVariables"] == ["igusername", "iggroup", "devicetype"]
    bad = [({"name": "x", "rdnFormat": "CN=<igusername>"}, "name"),
           ({"name": "ok", "rdnFormat": "CN=<Bad Var>"}, "rdnFormat"),
           ({"name": "ok"}, "rdnFormat"),
           ({"name": "ok", "rdnFormat": "CN=<igusername>", "profileId": "scep-tls-client"}, "profileId"),
           ({"name": "ok", "rdnFormat": "CN=<igusername>", "parentDn": "not a dn"}, "rdnFormat")]
    for body, field in bad:
        r = d.api("POST", "/protocols/jamf/digital-ids", json=body)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, (body, r.text)
    # MDM user names are 2-18 characters
    r = d.api("POST", "/protocols/jamf/credentials", json={"name": "too long", "id": "u" * 19})
    assert r.status_code == 400


def ws(mdm, method, path, auth=True, **kw):
    return requests.request(method, mdm.ws + path, auth=mdm.auth if auth else None, timeout=60, **kw)


def test_web_service_auth_and_variables(mdm):
    assert ws(mdm, "GET", "/certificates", auth=False).status_code == 401
    r = requests.get(mdm.ws + "/certificates", auth=("jamfpro", "wrong"))
    assert r.status_code == 401 and "Basic" in r.headers.get("WWW-Authenticate", "")
    # a variable the RDN format needs is missing
    r = ws(mdm, "POST", "/challenges", json={"digitalId": "device", "variables": {"igusername": "a", "iggroup": "g"}})
    assert r.status_code == 400 and "devicetype" in r.json()["error"]["message"]
    r = ws(mdm, "POST", "/pkcs12", json={"digitalId": "user-p12", "variables": VARS, "password": "Passw0rd!x"})
    assert r.status_code == 400 and "profileid" in r.json()["error"]["message"]
    assert ws(mdm, "POST", "/challenges", json={"digitalId": "nope", "variables": VARS}).status_code == 404
    # PKCS#12 Digital IDs are not for SCEP challenges
    assert ws(mdm, "POST", "/challenges", json={"digitalId": "user-p12", "variables": VARS}).status_code == 400


def scepclient(mdm, tmp_path, challenge):
    tmp_path.mkdir(parents=True, exist_ok=True)
    url = mdm.cfg["scepUrl"].replace(mdm.d.https_url, mdm.d.url)
    return subprocess.run(["scepclient", "-server-url", url, "-private-key", str(tmp_path / "k.key"), "-certificate",
                           str(tmp_path / "c.pem"), "-cn", "ignored", "-challenge", challenge],
                          capture_output=True, text=True, timeout=120, env=clean_env(), cwd=tmp_path)


@pytest.mark.skipif(not shutil.which("scepclient"), reason="scepclient not installed")
def test_dynamic_challenge_enrolment_list_revoke(mdm, tmp_path):
    r = ws(mdm, "POST", "/challenges", json={"digitalId": "device", "variables": VARS})
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["subject"] == "CN=alice, OU=Sales\\, EMEA, OU=iPhone, O=Example, C=US"  # printed as certificates are
    cp = scepclient(mdm, tmp_path / "a", ch["challenge"])
    assert cp.returncode == 0, cp.stdout + cp.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "a" / "c.pem").read_bytes())
    # the Digital ID fixes the subject, whatever the device asked for
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == \
        ["Sales, EMEA", "iPhone"] or sorted(a.value for a in cert.subject.get_attributes_for_oid(
            NameOID.ORGANIZATIONAL_UNIT_NAME)) == ["Sales, EMEA", "iPhone"]
    assert cert.issuer.rfc4514_string() == "CN=MDM Issuing"
    # one-time: the same challenge does not work twice
    cp = scepclient(mdm, tmp_path / "b", ch["challenge"])
    assert cp.returncode != 0 and not (tmp_path / "b" / "c.pem").exists()
    # listed, then revoked through the web service
    serial = format(cert.serial_number, "x")
    listed = {c["serialNumber"].lstrip("0"): c for c in ws(mdm, "GET", "/certificates").json()["certificates"]}
    assert serial.lstrip("0") in listed
    full = listed[serial.lstrip("0")]["serialNumber"]
    r = ws(mdm, "POST", f"/certificates/{full}/revoke", json={"reason": "keyCompromise"})
    assert r.status_code == 200, r.text
    assert mdm.d.api("GET", f"/cas/mdm-sub/certificates/{full}").json()["status"] == "revoked"
    # a certificate not issued through the configuration cannot be revoked here
    assert ws(mdm, "POST", "/certificates/01ab/revoke", json={}).status_code == 404
    # the configuration's events: challenge handed out, issued, second use refused, revoked
    ev = mdm.d.api("GET", "/protocols/jamf/events", params={"limit": "1000"}).json()["events"]
    kinds = {(e["type"], e["status"]) for e in ev}
    assert {("challenge", "done"), ("issue", "done"), ("issue", "failed"), ("revoke", "done")} <= kinds, kinds
    # the device is an end entity named by its resolved subject
    ees = mdm.d.api("GET", "/protocols/jamf/end-entities").json()["endEntities"]
    assert any(e["identifier"] == ch["subject"] for e in ees), ees


def test_challenge_fixes_the_names_too(mdm, tmp_path):
    """A one-time challenge grants the Digital ID's subject, nothing else: names the device puts in its CSR
    (an e-mail address, a host name) are not the MDM's to vouch for and stay out of the certificate."""
    from test_scep import open_rep, pkcs_req
    r = ws(mdm, "POST", "/challenges", json={"digitalId": "device", "variables": VARS})
    assert r.status_code == 201, r.text
    env = type("Env", (), {"http_url": mdm.cfg["scepUrl"].replace(mdm.d.https_url, mdm.d.url)})()
    asked = [x509.RFC822Name("ceo@example.com"), x509.DNSName("login.example.com")]
    rep, key, signer, _ = pkcs_req(env, tmp_path, r.json()["challenge"], cn="ignored", sans=asked)
    assert rep.status == "0", rep.fail
    cert = open_rep(tmp_path, rep, signer, key)[0]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    try:
        names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        names = []
    assert not [n for n in asked if n in names], f"the CSR's own names were certified: {names}"


def test_challenge_dies_with_its_configuration(mdm, tmp_path):
    """Deleting a configuration deletes its one-time challenges and Digital IDs: a configuration created
    later with the same id does not honour a challenge handed out for the old one."""
    from test_scep import pkcs_req
    d = mdm.d

    def make():
        r = d.api("POST", "/protocols", json={"id": "jamf2", "type": "mdmws", "caId": "mdm-sub",
                                               "profileId": SCEP_PROFILE})
        assert r.status_code == 201, r.text
        env = type("Env", (), {})()
        env.d, env.cfg = d, r.json()
        env.ws = env.cfg["mdmWebServiceUrl"].replace(d.https_url, d.url)
        env.http_url = env.cfg["scepUrl"].replace(d.https_url, d.url)
        r = d.api("POST", "/protocols/jamf2/credentials", json={"name": "jamf pro", "id": "jamfpro"})
        assert r.status_code == 201, r.text
        env.auth = ("jamfpro", r.json()["secret"])
        r = d.api("POST", "/protocols/jamf2/digital-ids", json={"name": "device", "rdnFormat": "CN=<igusername>",
                                                                 "parentDn": "O=Example"})
        assert r.status_code == 201, r.text
        return env
    old = make()
    r = ws(old, "POST", "/challenges", json={"digitalId": "device", "variables": VARS})
    assert r.status_code == 201, r.text
    challenge = r.json()["challenge"]
    assert d.api("DELETE", "/protocols/jamf2").status_code == 200
    new = make()
    rep, *_ = pkcs_req(new, tmp_path, challenge, cn="ignored")
    assert rep.status == "2", "a challenge of the deleted configuration was honoured"
    # a challenge of the new configuration works
    r = ws(new, "POST", "/challenges", json={"digitalId": "device", "variables": VARS})
    rep, *_ = pkcs_req(new, tmp_path, r.json()["challenge"], cn="ignored")
    assert rep.status == "0", rep.fail
    assert d.api("DELETE", "/protocols/jamf2").status_code == 200


def test_pkcs12_through_the_web_service(mdm):
    v = dict(VARS, profileid="P-17")
    r = ws(mdm, "POST", "/pkcs12", json={"digitalId": "user-p12", "variables": v, "password": "Passw0rd!x",
                                          "keyType": "EC-P256"})
    assert r.status_code == 201, r.text
    key, cert, chain = pkcs12.load_key_and_certificates(base64.b64decode(r.json()["pkcs12"]), b"Passw0rd!x")
    assert cert.subject.rfc4514_string() == "CN=alice P-17,O=Example"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert any(c.subject.rfc4514_string() == "CN=MDM Issuing" for c in chain)


def test_listing_pages_and_ignores_other_certificates(mdm):
    """The list is filtered by the store, not after reading the CA's first
    1,000 certificates: 1,001 certificates issued elsewhere on the same CA,
    all expiring sooner, hide none of the configuration's, and pages chain
    through nextCursor."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    mine = []
    for i in range(3):
        r = ws(mdm, "POST", "/pkcs12", json={"digitalId": "user-p12", "password": "Passw0rd!x", "keyType": "EC-P256",
                                              "variables": dict(VARS, igusername=f"pager{i}", profileid="P")})
        assert r.status_code == 201, r.text
        _, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(r.json()["pkcs12"]), b"Passw0rd!x")
        mine.append(format(cert.serial_number, "x"))
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "elsewhere")])).sign(key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM).decode()
    for _ in range(1001):
        r = mdm.d.api("POST", "/cas/mdm-sub/certificates", json={"profileId": P12_PROFILE, "csr": csr,
                                                                  "validityPeriod": "P2D"})
        assert r.status_code == 201, r.text
    seen, cursor, pages = [], None, 0
    while True:
        r = ws(mdm, "GET", "/certificates", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["certificates"]) <= 2
        assert all(c["requester"].startswith(("mdmws:jamf/", "mdmws-scep:jamf/")) for c in body["certificates"])
        seen += [c["serialNumber"].lstrip("0") for c in body["certificates"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
        assert pages < 100
    assert set(mine) <= set(seen) and len(seen) == len(set(seen)), (mine, seen)
    assert pages >= 2
    whole = ws(mdm, "GET", "/certificates").json()
    assert [c["serialNumber"].lstrip("0") for c in whole["certificates"]] == seen and whole["nextCursor"] is None
    for q in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"cursor": "nope"}):
        r = ws(mdm, "GET", "/certificates", params=q)
        assert r.status_code == 400 and r.json()["error"]["field"] == list(q)[0], (q, r.text)
