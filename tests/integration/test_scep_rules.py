"""SCEP rules found by review, each shown with hand-built PKIMessages (test_scep's builders) and failing on the
build before its fix:
- a PKCSReq is signed with the key of its own PKCS#10 request (RFC 8894 2.3);
- the same request again gets the same certificate, never a second one; a CertPoll is answered only to the
  transaction's own requester (RFC 8894 3.3.3);
- a RenewalReq renews only a certificate issued through the same configuration (not another configuration's, nor
  one from the API), and an MDM device's end entity is found by its renewal, so deactivating or decommissioning it
  covers renewed certificates;
- strangers with a wrong challenge cannot spend the partition's certificate rate."""
import hashlib
import os
import shutil
import subprocess
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from conftest import Daemon, _require_binaries, clean_env
from helpers import create_ca, uid
from status_helpers import ConfiguredDaemon
from scep_msg import make_csr, post, ra_of, send
from test_scep import Rep, _self_signed, build_pkimessage, envelope, open_rep


class Env:
    pass


def _cas(d, prefix, profiles):
    """A root and an RSA issuing CA `<prefix>-sub` with the profiles."""
    root = create_ca(d, id=f"{prefix}-root", type="root", signingKeyDetails="RSA-2048+PKCS15-SHA256",
                     subject=f"CN={prefix} Root")
    create_ca(d, id=f"{prefix}-sub", type="subord", parentId=root["id"], signingKeyDetails="RSA-2048+PKCS15-SHA256",
              subject=f"CN={prefix} Issuing", profiles=profiles, enableCrl=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    _require_binaries()
    d = Daemon(tmp_path_factory.mktemp("pkiaasd-scep-rules"))
    d.bootstrap()
    d.start()
    _cas(d, "r", ["scep-tls-client", "scep-tls-server", "privatessl-tls-client"])
    e = Env()
    e.d = d
    for cid, prof in (("cfga", "scep-tls-client"), ("cfgb", "scep-tls-server")):
        r = d.api("POST", "/protocols", json={"id": cid, "type": "scep", "caId": "r-sub", "profileId": prof})
        assert r.status_code == 201, r.text
        r = d.api("POST", f"/protocols/{cid}/credentials", json={"name": "chal"})
        assert r.status_code == 201, r.text
        setattr(e, cid + "_chal", r.json()["secret"])
        setattr(e, cid + "_url", f"{d.url}/scep/{d.account}/{cid}/pkiclient.exe")
    yield e
    d.stop()


def test_pkcsreq_signed_with_the_csr_key(env, tmp_path):
    """RFC 8894 2.3: the transient self-signed certificate MUST use the same key as the PKCS#10."""
    csr_key = rsa.generate_private_key(65537, 2048)
    other = rsa.generate_private_key(65537, 2048)
    cn = uid("mismatch")
    signer = _self_signed(other, "somebody-else")
    r, _, ra, _ = send(env.cfga_url, tmp_path, make_csr(csr_key, cn, env.cfga_chal), signer, other)
    assert r.status_code == 200
    rep = Rep(r.content, ra)
    assert rep.status == "2" and rep.fail == "1", (rep.status, rep.fail)  # badMessageCheck


def test_poll_only_by_the_requester(env, tmp_path):
    key = rsa.generate_private_key(65537, 2048)
    cn = uid("victim")
    signer = _self_signed(key, cn)
    r, _, ra, txid = send(env.cfga_url, tmp_path, make_csr(key, cn, env.cfga_chal), signer, key)
    rep = Rep(r.content, ra)
    assert rep.status == "0"
    victim_cert = open_rep(tmp_path, rep, signer, key)[0]
    # attacker: own key, knows the (cleartext) transactionID
    akey = rsa.generate_private_key(65537, 2048)
    asigner = _self_signed(akey, "attacker")
    (tmp_path / "a").mkdir()
    r, _, ra, _ = send(env.cfga_url, tmp_path / "a", b"\x30\x00", asigner, akey, msg_type=20, txid=txid)
    poll = Rep(r.content, ra)
    assert poll.status == "2", "CertPoll by another key was answered"
    # the requester's own poll still gets its certificate
    (tmp_path / "v").mkdir()
    r, _, ra, _ = send(env.cfga_url, tmp_path / "v", b"\x30\x00", signer, key, msg_type=20, txid=txid)
    own = Rep(r.content, ra)
    assert own.status == "0", own.fail
    assert open_rep(tmp_path / "v", own, signer, key)[0].serial_number == victim_cert.serial_number


def test_repeated_pkcsreq_gets_the_same_certificate(env, tmp_path):
    key = rsa.generate_private_key(65537, 2048)
    cn = uid("replay")
    signer = _self_signed(key, cn)
    r, der, ra, txid = send(env.cfga_url, tmp_path, make_csr(key, cn, env.cfga_chal), signer, key)
    rep1 = Rep(r.content, ra)
    assert rep1.status == "0"
    c1 = open_rep(tmp_path, rep1, signer, key)[0]
    r2 = post(env.cfga_url, der)  # byte-identical replay
    rep2 = Rep(r2.content, ra)
    assert rep2.status == "0", rep2.fail  # answered, as a retry would be ...
    c2 = open_rep(tmp_path, rep2, signer, key)[0]
    assert c2.serial_number == c1.serial_number  # ... with the same certificate
    listed = env.d.api("GET", "/cas/r-sub/certificates", params={"q": f"CN={cn}"}).json()["certificates"]
    assert len([c for c in listed if c["subject"] == f"CN={cn}"]) == 1


def test_renewal_only_through_the_issuing_configuration(env, tmp_path):
    """A certificate of config A (scep-tls-client) renews at config B (scep-tls-server), no B challenge."""
    d = env.d
    key = rsa.generate_private_key(65537, 2048)
    cn = uid("xcfg")
    signer = _self_signed(key, cn)
    r, _, ra, _ = send(env.cfga_url, tmp_path, make_csr(key, cn, env.cfga_chal), signer, key)
    rep = Rep(r.content, ra)
    assert rep.status == "0"
    leaf = open_rep(tmp_path, rep, signer, key)[0]
    # deactivate the end entity at A
    ees = d.api("GET", "/protocols/cfga/end-entities").json()["endEntities"]
    ee = next(e for e in ees if cn in e["identifier"])
    assert d.api("POST", f"/protocols/cfga/end-entities/{ee['id']}/deactivate").status_code == 200
    # renewal at A refused
    nk = rsa.generate_private_key(65537, 2048)
    (tmp_path / "a").mkdir()
    r, _, ra, _ = send(env.cfga_url, tmp_path / "a", make_csr(nk, cn), leaf, key, msg_type=17)
    assert Rep(r.content, ra).status == "2"
    # renewal at B
    (tmp_path / "b").mkdir()
    r, _, rab, _ = send(env.cfgb_url, tmp_path / "b", make_csr(nk, cn), leaf, key, msg_type=17)
    repb = Rep(r.content, rab)
    assert repb.status == "2", "a certificate of configuration A (its end entity deactivated there) renewed at B"


def test_api_certificate_does_not_renew_over_scep(env, tmp_path):
    """A certificate issued over the REST API (privatessl profile) is accepted as a SCEP renewal signer."""
    d = env.d
    key = rsa.generate_private_key(65537, 2048)
    cn = uid("api")
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    r = d.api("POST", "/cas/r-sub/certificates", json={"profileId": "privatessl-tls-client", "csr": csr})
    assert r.status_code == 201, r.text
    j = r.json()
    pem = j.get("certificate") or j.get("pem") or j.get("cert")
    leaf = x509.load_pem_x509_certificate(pem.encode())
    nk = rsa.generate_private_key(65537, 2048)
    r, _, ra, _ = send(env.cfgb_url, tmp_path, make_csr(nk, cn), leaf, key, msg_type=17)
    rep = Rep(r.content, ra)
    assert rep.status == "2", "a certificate from the API renewed through SCEP configuration B"


@pytest.fixture(scope="module")
def mdm(tmp_path_factory):
    _require_binaries()
    d = Daemon(tmp_path_factory.mktemp("pkiaasd-scep-rules-mdm"))
    d.bootstrap()
    d.start()
    _cas(d, "m", ["mdmws-digital-signature"])
    r = d.api("POST", "/protocols", json={"id": "jamf", "type": "mdmws", "caId": "m-sub",
                                           "profileId": "mdmws-digital-signature"})
    assert r.status_code == 201, r.text
    cfg = r.json()
    r = d.api("POST", "/protocols/jamf/credentials", json={"name": "jamf pro", "id": "jamfpro"})
    secret = r.json()["secret"]
    r = d.api("POST", "/protocols/jamf/digital-ids", json={"name": "device", "rdnFormat": "CN=<igusername>,OU=<iggroup>,OU=<devicetype>",
                                                            "parentDn": "O=Example,C=US"})
    assert r.status_code == 201, r.text
    e = type("E", (), {})()
    e.d = d
    e.ws = cfg["mdmWebServiceUrl"].replace(d.https_url, d.url)
    e.auth = ("jamfpro", secret)
    e.url = f"{d.url}/mdm/v2/scep/{d.account}/jamf"
    yield e
    d.stop()


def _mdm_enrol(mdm, tmp_path, user):
    """A device enrolled by SCEP with a one-time challenge: (challenge answer, key, certificate, RA)."""
    r = requests.post(mdm.ws + "/challenges", auth=mdm.auth,
                      json={"digitalId": "device", "variables": {"igusername": user, "iggroup": "Sales",
                                                                 "devicetype": "iPhone"}})
    assert r.status_code == 201, r.text
    ch = r.json()
    key = rsa.generate_private_key(65537, 2048)
    signer = _self_signed(key, "ignored")
    ra = ra_of(mdm.url)
    env = envelope(tmp_path, make_csr(key, "ignored", ch["challenge"]), ra.public_bytes(serialization.Encoding.PEM))
    rep = Rep(post(mdm.url, build_pkimessage(signer, key, 19, env, hashlib.sha256(os.urandom(8)).hexdigest(),
                                             os.urandom(16))).content, ra)
    assert rep.status == "0", rep.fail
    return ch, key, open_rep(tmp_path, rep, signer, key)[0], ra


def _mdm_renew(mdm, tmp_path, key, leaf, ra):
    """A RenewalReq signed by the device's certificate, same names, new key: the CertRep."""
    nk = rsa.generate_private_key(65537, 2048)
    csr = x509.CertificateSigningRequestBuilder().subject_name(leaf.subject).sign(nk, hashes.SHA256())
    (tmp_path / "r").mkdir()
    env = envelope(tmp_path / "r", csr.public_bytes(serialization.Encoding.DER),
                   ra.public_bytes(serialization.Encoding.PEM))
    return Rep(post(mdm.url, build_pkimessage(leaf, key, 17, env, hashlib.sha256(os.urandom(8)).hexdigest(),
                                              os.urandom(16))).content, ra)


def test_deactivated_mdm_end_entity_cannot_renew(mdm, tmp_path):
    d = mdm.d
    user = uid("bob")
    _, key, leaf, ra = _mdm_enrol(mdm, tmp_path, user)
    ees = d.api("GET", "/protocols/jamf/end-entities").json()["endEntities"]
    ee = next(e for e in ees if user in e["identifier"])
    assert d.api("POST", f"/protocols/jamf/end-entities/{ee['id']}/deactivate").json()["status"] == "inactive"
    rep2 = _mdm_renew(mdm, tmp_path, key, leaf, ra)
    ees = d.api("GET", "/protocols/jamf/end-entities").json()["endEntities"]
    assert rep2.status == "2", "the deactivated MDM end entity renewed its certificate"
    assert len([e for e in ees if user in e["identifier"]]) == 1, ees


def test_decommission_revokes_renewed_certificates(mdm, tmp_path):
    d = mdm.d
    ch, key, leaf, ra = _mdm_enrol(mdm, tmp_path, uid("carol"))
    rep2 = _mdm_renew(mdm, tmp_path, key, leaf, ra)
    assert rep2.status == "0"
    renewed = open_rep(tmp_path / "r", rep2, leaf, key)[0]
    ee = next(e for e in d.api("GET", "/protocols/jamf/end-entities").json()["endEntities"]
              if e["identifier"] == ch["subject"])
    r = d.api("POST", f"/protocols/jamf/end-entities/{ee['id']}/decommission")
    assert r.status_code == 200, r.text
    st = d.api("GET", f"/cas/m-sub/certificates/{format(renewed.serial_number, 'x')}").json()["status"]
    assert st == "revoked", "decommissioning the device left its renewed certificate valid"


def test_wrong_challenge_spends_no_rate(tmp_path):
    _require_binaries()
    d = ConfiguredDaemon(tmp_path / "pkiaasd", ["rate_limit_standard = 5", "rate_limit_premium = 5",
                                                "rate_limit_window_s = 600"])
    d.bootstrap()
    d.start()
    try:
        _cas(d, "q", ["scep-tls-client", "privatessl-tls-client"])
        assert d.api("POST", "/protocols", json={"id": "s1", "type": "scep", "caId": "q-sub",
                                                  "profileId": "scep-tls-client"}).status_code == 201
        url = f"{d.url}/scep/{d.account}/s1/pkiclient.exe"
        ra = ra_of(url)
        key = rsa.generate_private_key(65537, 2048)
        signer = _self_signed(key, "stranger")
        (tmp_path / "w").mkdir()
        env = envelope(tmp_path / "w", make_csr(key, "stranger", "not-the-challenge"),
                       ra.public_bytes(serialization.Encoding.PEM))
        fails = []
        for i in range(8):
            der = build_pkimessage(signer, key, 19, env, hashlib.sha256(os.urandom(8)).hexdigest(), os.urandom(16))
            rep = Rep(post(url, der).content, ra)
            fails.append((rep.status, rep.fail))
        assert all(f == ("2", "2") for f in fails), fails  # badRequest, not the rate limit
        # the partition's owner now issues over the authenticated REST API
        k2 = rsa.generate_private_key(65537, 2048)
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "legit.example")]))
               .sign(k2, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
        r = d.api("POST", "/cas/q-sub/certificates", json={"profileId": "privatessl-tls-client", "csr": csr})
        assert r.status_code == 201, "strangers with a wrong SCEP challenge exhausted the partition's certificate rate"
    finally:
        d.stop()


# ---- a configuration deleted and created again under its id (found by review) ----
LEFTOVER_PROFILE = "scep-tls-client"


def _scepclient(d, cfg, wd, challenge, cn):
    wd.mkdir(parents=True, exist_ok=True)
    url = f"{d.url}/scep/{d.account}/{cfg}/pkiclient.exe"
    return subprocess.run(["scepclient", "-server-url", url, "-private-key", str(wd / "client.key"), "-certificate",
                           str(wd / "client.pem"), "-cn", cn, "-organization", "Devices", "-country", "US",
                           "-challenge", challenge],
                          capture_output=True, text=True, timeout=120, env=clean_env(), cwd=wd)


def _leftover_cfg(d):
    r = d.api("POST", "/protocols", json={"id": "dev1", "type": "scep", "caId": "l-sub", "profileId": LEFTOVER_PROFILE})
    assert r.status_code == 201, r.text
    r = d.api("POST", "/protocols/dev1/credentials", json={"name": "static"})
    assert r.status_code == 201, r.text
    return r.json()["secret"]


@pytest.mark.skipif(not shutil.which("scepclient"), reason="scepclient not installed")
def test_a_recreated_configuration_inherits_nothing(tmp_path):
    """Deleting a SCEP configuration left its end entities and transactions behind, and a new configuration
    with the same id inherited them: the old end entities were listed, a device deactivated there was refused
    with the new challenge, and a certificate of the deleted configuration renewed without any challenge."""
    _require_binaries()
    d = Daemon(tmp_path / "d")
    d.bootstrap()
    d.start()
    try:
        root = create_ca(d, id="l-root", type="root", signingKeyDetails="RSA-2048+PKCS15-SHA256", subject="CN=L Root")
        create_ca(d, id="l-sub", type="subord", parentId=root["id"], signingKeyDetails="RSA-2048+PKCS15-SHA256",
                  subject="CN=L Issuing", profiles=[LEFTOVER_PROFILE])
        old_secret = _leftover_cfg(d)
        cn_x, cn_y = uid("devx"), uid("devy")
        assert _scepclient(d, "dev1", tmp_path / "x", old_secret, cn_x).returncode == 0
        assert _scepclient(d, "dev1", tmp_path / "y", old_secret, cn_y).returncode == 0
        ees = d.api("GET", "/protocols/dev1/end-entities").json()["endEntities"]
        ex = next(e for e in ees if cn_x in e["identifier"])
        assert d.api("POST", f"/protocols/dev1/end-entities/{ex['id']}/deactivate").status_code == 200

        assert d.api("DELETE", "/protocols/dev1").status_code == 200
        time.sleep(1.1)  # creation times are kept in seconds
        new_secret = _leftover_cfg(d)  # a new configuration, its own challenge

        problems = []
        left = d.api("GET", "/protocols/dev1/end-entities").json()["endEntities"]
        if left:
            problems.append(f"new configuration lists the deleted one's end entities: {[e['identifier'] for e in left]}")
        # a new device named like the deactivated old one, with the NEW valid challenge
        cp = _scepclient(d, "dev1", tmp_path / "x2", new_secret, cn_x)
        if cp.returncode != 0:
            why = [l for l in d.log_text().splitlines() if "refused" in l][-1:]
            problems.append(f"enrolment with the new configuration's challenge refused: {why}")
        # the old device renews under the new configuration without knowing its challenge
        old_cert = x509.load_pem_x509_certificate((tmp_path / "y" / "client.pem").read_bytes())
        cp = _scepclient(d, "dev1", tmp_path / "y", "not-the-new-challenge", cn_y)
        new_cert = x509.load_pem_x509_certificate((tmp_path / "y" / "client.pem").read_bytes())
        if cp.returncode == 0 and new_cert.serial_number != old_cert.serial_number:
            r = d.api("GET", "/cas/l-sub/certificates", params={"serial": format(new_cert.serial_number, "x")})
            problems.append("certificate of the deleted configuration renewed under the new one without its "
                            f"challenge (requester {r.json()['certificates'][0]['requester']})")
        print("\n".join(problems))
        assert not problems, problems
    finally:
        d.stop()


@pytest.mark.skipif(not shutil.which("scepclient"), reason="scepclient not installed")
def test_decommission_revokes_at_the_issuing_ca_after_a_ca_change(tmp_path):
    """Decommission looked the end entity's serials up at the configuration's current CA: after a PUT moved the
    configuration to another CA it revoked nothing and still answered 200. Each serial is revoked at the CA that
    issued it now."""
    d = Daemon(tmp_path / "d")
    d.bootstrap()
    d.start()
    try:
        root = create_ca(d, id="m-root", type="root", signingKeyDetails="RSA-2048+PKCS15-SHA256", subject="CN=M Root")
        for cid in ("m-sub1", "m-sub2"):
            create_ca(d, id=cid, type="subord", parentId=root["id"], signingKeyDetails="RSA-2048+PKCS15-SHA256",
                      subject=f"CN={cid}", profiles=[LEFTOVER_PROFILE])
        assert d.api("POST", "/protocols", json={"id": "dev", "type": "scep", "caId": "m-sub1",
                                                  "profileId": LEFTOVER_PROFILE}).status_code == 201
        secret = d.api("POST", "/protocols/dev/credentials", json={"name": "static"}).json()["secret"]
        serials = {}
        for ca_id, cn in (("m-sub1", uid("dev")), ("m-sub2", None)):
            if cn is None:  # the configuration moves to the other CA; the device enrols again there
                assert d.api("PUT", "/protocols/dev", json={"caId": "m-sub2"}).status_code == 200
                cn = first_cn
            first_cn = cn
            assert _scepclient(d, "dev", tmp_path / ca_id, secret, cn).returncode == 0
            cert = x509.load_pem_x509_certificate((tmp_path / ca_id / "client.pem").read_bytes())
            assert cert.issuer.rfc4514_string() == f"CN={ca_id}"
            serials[ca_id] = format(cert.serial_number, "x")
        ee = d.api("GET", "/protocols/dev/end-entities").json()["endEntities"][0]
        r = d.api("POST", f"/protocols/dev/end-entities/{ee['id']}/decommission")
        assert r.status_code == 200 and r.json()["revokedCertificates"] == 2, r.text
        for ca_id, serial in serials.items():
            assert d.api("GET", f"/cas/{ca_id}/certificates/{serial}").json()["status"] == "revoked", ca_id
    finally:
        d.stop()
