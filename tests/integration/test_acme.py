"""ACME (RFC 8555) server: configuration API, EAB, the protocol step by step
with an independent Python client, hostile input, and state across a
restart. Real clients (certbot, lego, uacme) are in test_acme_clients.py.

Validation runs against real servers: http-01 answers come from a Python
HTTP server on a high port (acme_http01_port), and every name resolves
through Debian's pebble-challtestsrv (acme_resolver), which answers
127.0.0.1 for any A query and serves the TXT records the tests set."""
import ipaddress
import json

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, ed25519
from cryptography.x509.oid import ExtensionOID

from acme_helpers import (PROBLEM, ChallTestSrv, Client, Http01Server, b64u, eab_binding, free_port, jws, jwk_of,
                          make_csr, thumbprint)
from conftest import Daemon, _require_binaries, store_holds
from helpers import create_ca, split_pem_bundle, uid
import hashlib


@pytest.fixture(scope="module")
def acme(tmp_path_factory):
    """A daemon wired for ACME validation, an issuing CA with privatessl
    profiles, one ACME configuration with EAB and one without."""
    _require_binaries()
    cts = ChallTestSrv()
    http01 = free_port()
    tlsalpn = free_port()
    d = Daemon(tmp_path_factory.mktemp("pkiaasd-acme"))
    d.extra_conf = (f"acme_resolver = 127.0.0.1:{cts.dns_port}\nacme_http01_port = {http01}\n"
                    f"acme_tlsalpn01_port = {tlsalpn}\nacme_validation_timeout_ms = 5000\n")
    d.bootstrap()
    d.start()
    root = create_ca(d, id="acme-root", type="root", signingKeyDetails="ECDSAP256+SHA256", subject="CN=ACME Test Root")
    issuing = create_ca(d, id="acme-issuing", type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
                        subject="CN=ACME Test Issuing", profiles=["privatessl-tls-server", "privatessl-tls-client"])
    r = d.api("POST", "/protocols", json={"id": "acme1", "type": "acme", "description": "test directory",
                                           "caId": issuing["id"], "profileId": "privatessl-tls-server"})
    assert r.status_code == 201, r.text
    cfg = r.json()
    r = d.api("POST", "/protocols/acme1/eab-keys", json={"name": "web servers"})
    assert r.status_code == 201, r.text
    eab = r.json()
    r = d.api("POST", "/protocols", json={"id": "acme-open", "type": "acme", "caId": issuing["id"],
                                           "profileId": "privatessl-tls-server", "eabRequired": False,
                                           "allowedDomains": ["example.test"], "allowedIpRanges": ["127.0.0.0/8"]})
    assert r.status_code == 201, r.text
    webroot = tmp_path_factory.mktemp("acme-webroot")
    web = Http01Server(http01, webroot)
    env = type("AcmeEnv", (), {})()
    env.d, env.cts, env.http01, env.tlsalpn, env.web = d, cts, http01, tlsalpn, web
    env.cfg, env.eab, env.open_dir = cfg, eab, r.json()["directoryUrl"]
    env.issuing = issuing
    env.webroot = webroot
    yield env
    web.close()
    cts.close()
    d.stop()


def load_chain(pem):
    return [x509.load_der_x509_certificate(p) for p in split_pem_bundle(pem)]


def problem_of(r, status, typ):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:400]}"
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["type"] == PROBLEM + typ, body
    assert "Replay-Nonce" in r.headers
    return body


def client(env, key=None, eab=True):
    c = Client(env.cfg["directoryUrl"] if eab else env.open_dir, env.d.service_ca, key)
    r = c.register((env.eab["keyId"], env.eab["hmacKey"]) if eab else None)
    assert r.status_code == 201, r.text
    return c


# -- configuration API ----------------------------------------------------


def test_config_shape_and_validation(acme):
    d = acme.d
    assert acme.cfg["directoryUrl"] == f"{d.https_url}/acme/{d.account}/acme1/directory"
    assert acme.cfg["eabRequired"] is True
    r = d.api("GET", "/protocols")
    ids = {p["id"] for p in r.json()["protocols"]}
    assert {"acme1", "acme-open"} <= ids
    bad = [
        ({"id": "A", "type": "acme"}, "id"),
        ({"id": "x" * 19, "type": "acme", "caId": "acme-issuing", "profileId": "privatessl-tls-server"}, "id"),
        ({"id": "ok1", "type": "gopher", "caId": "acme-issuing", "profileId": "privatessl-tls-server"}, "type"),
        ({"id": "ok1", "type": "acme", "caId": "nope", "profileId": "privatessl-tls-server"}, "caId"),
        # a profile of another group
        ({"id": "ok1", "type": "acme", "caId": "acme-issuing", "profileId": "smime-signing"}, "profileId"),
        # a privatessl profile that is not assigned to the CA
        ({"id": "ok1", "type": "acme", "caId": "acme-issuing", "profileId": "privatessl-tls-client-server"},
         "profileId"),
        ({"id": "ok1", "type": "acme", "caId": "acme-issuing", "profileId": "privatessl-tls-server",
          "allowedIpRanges": ["10.0.0.0/99"]}, "allowedIpRanges"),
        ({"id": "ok1", "type": "acme", "caId": "acme-issuing", "profileId": "privatessl-tls-server",
          "bogus": 1}, "bogus"),
    ]
    for body, field in bad:
        r = d.api("POST", "/protocols", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.text)
    r = d.api("POST", "/protocols", json={"id": "acme1", "type": "acme", "caId": "acme-issuing",
                                           "profileId": "privatessl-tls-server"})
    assert r.status_code == 409
    # the profile cannot be taken from the CA while a configuration issues with it
    r = d.api("DELETE", "/cas/acme-issuing/profiles/privatessl-tls-server")
    assert r.status_code == 409 and "acme" in r.json()["error"]["message"], r.text
    # update: settings change, id/type are fixed, unknown keys refused
    r = d.api("PUT", "/protocols/acme-open", json={"description": "open directory", "termsOfService":
                                                   "https://example.test/tos"})
    assert r.status_code == 200 and r.json()["description"] == "open directory", r.text
    assert d.api("PUT", "/protocols/acme-open", json={"type": "scep"}).status_code == 400
    # a throw-away configuration: its directory disappears with it
    r = d.api("POST", "/protocols", json={"id": "tmp-dir", "type": "acme", "caId": "acme-issuing",
                                           "profileId": "privatessl-tls-server"})
    assert r.status_code == 201
    url = r.json()["directoryUrl"]
    assert requests.get(url, verify=str(d.service_ca)).status_code == 200
    assert d.api("DELETE", "/protocols/tmp-dir").status_code == 200
    assert requests.get(url, verify=str(d.service_ca)).status_code == 404
    assert d.api("GET", "/protocols/tmp-dir").status_code == 404


def test_eab_key_shown_once(acme):
    d = acme.d
    assert len(acme.eab["hmacKey"]) >= 43 and acme.eab["keyId"]
    r = d.api("GET", "/protocols/acme1/eab-keys")
    assert r.status_code == 200
    keys = r.json()["eabKeys"]
    mine = [k for k in keys if k["keyId"] == acme.eab["keyId"]]
    assert mine and mine[0]["name"] == "web servers"
    assert "hmacKey" not in r.text and acme.eab["hmacKey"] not in r.text
    # ids and keys go on command lines (certbot --eab-kid ...): never a leading '-' or '_'
    for _ in range(40):
        k = d.api("POST", "/protocols/acme1/eab-keys", json={"name": "cli-safe"}).json()
        assert k["keyId"][0].isalnum() and k["hmacKey"][0].isalnum(), k
    for name in ("x", "y" * 19):
        r = d.api("POST", "/protocols/acme1/eab-keys", json={"name": name})
        assert r.status_code == 400, r.text
    # the HMAC key is not in the database in the clear
    assert not store_holds(d, acme.eab["hmacKey"].encode())


# -- protocol ----------------------------------------------------------------


def test_directory_and_nonce(acme):
    r = requests.get(acme.cfg["directoryUrl"], verify=str(acme.d.service_ca))
    assert r.status_code == 200
    dirj = r.json()
    for k in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"):
        assert dirj[k].startswith(acme.d.https_url + f"/acme/{acme.d.account}/acme1/"), dirj
    assert dirj["meta"]["externalAccountRequired"] is True
    h = requests.head(dirj["newNonce"], verify=str(acme.d.service_ca))
    g = requests.get(dirj["newNonce"], verify=str(acme.d.service_ca))
    assert h.status_code == 200 and g.status_code == 204
    assert h.headers["Replay-Nonce"] != g.headers["Replay-Nonce"]
    assert "no-store" in h.headers.get("Cache-Control", "")
    r = requests.get(acme.d.https_url + f"/acme/{acme.d.account}/nosuch/directory", verify=str(acme.d.service_ca))
    assert r.status_code == 404


def test_account_eab_rules(acme):
    c = Client(acme.cfg["directoryUrl"], acme.d.service_ca)
    problem_of(c.register(), 400, "externalAccountRequired")
    wrong = b64u(b"\x00" * 32)
    problem_of(c.register((acme.eab["keyId"], wrong)), 401, "unauthorized")
    problem_of(c.register(("no-such-kid", acme.eab["hmacKey"])), 401, "unauthorized")
    # a binding over another key is refused
    other = ec.generate_private_key(ec.SECP256R1())
    payload = {"termsOfServiceAgreed": True,
               "externalAccountBinding": eab_binding(acme.eab["keyId"], acme.eab["hmacKey"], jwk_of(other),
                                                     c.dir["newAccount"])}
    problem_of(c.post(c.dir["newAccount"], payload, use_jwk=True), 400, "malformed")
    r = c.register((acme.eab["keyId"], acme.eab["hmacKey"]))
    assert r.status_code == 201, r.text
    acct = r.json()
    assert acct["status"] == "valid" and acct["contact"] == ["mailto:ops@example.test"]
    loc = r.headers["Location"]
    # the same key again: 200 and the same account
    c.kid = None
    r = c.register()
    assert r.status_code == 200 and r.headers["Location"] == loc
    # onlyReturnExisting for an unknown key
    c2 = Client(acme.cfg["directoryUrl"], acme.d.service_ca)
    problem_of(c2.post(c2.dir["newAccount"], {"onlyReturnExisting": True}, use_jwk=True), 400,
               "accountDoesNotExist")


def test_account_keys_of_every_algorithm(acme):
    for key in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP384R1()),
                ec.generate_private_key(ec.SECP521R1()), ed25519.Ed25519PrivateKey.generate()):
        c = client(acme, key)
        r = c.post(c.kid, None)
        assert r.status_code == 200 and r.json()["status"] == "valid", r.text


def test_jws_hostile(acme):
    c = client(acme)
    url = c.kid
    # reused nonce
    n = c.new_nonce()
    assert c.post(url, None, nonce=n).status_code == 200
    body = problem_of(c.post(url, None, nonce=n), 400, "badNonce")
    # made-up nonce
    problem_of(c.post(url, None, nonce="AAAAAAAAAAAAAAAAAAAAAA"), 400, "badNonce")
    # url header that is not the request URL
    problem_of(c.post(url, None, extra={"url": c.dir["newOrder"]}), 401, "unauthorized")
    # alg none / HS256 / mismatched alg
    body = problem_of(c.post(url, None, extra={"alg": "none"}), 400, "badSignatureAlgorithm")
    assert "ES256" in body["algorithms"]
    problem_of(c.post(url, None, extra={"alg": "HS256"}), 400, "badSignatureAlgorithm")
    problem_of(c.post(url, None, extra={"alg": "RS256"}), 400, "badSignatureAlgorithm")
    # tampered payload
    nonce = c.new_nonce()
    good = jws(c.key, {"nonce": nonce, "url": c.dir["newOrder"], "kid": c.kid},
               {"identifiers": [{"type": "dns", "value": "a.example.test"}]})
    good["payload"] = b64u(json.dumps({"identifiers": [{"type": "dns", "value": "evil.example.test"}]}))
    problem_of(c.post(c.dir["newOrder"], None, raw=json.dumps(good)), 400, "malformed")
    # not JSON, wrong content type, duplicate members, unknown account
    problem_of(c.post(url, None, raw="{not json"), 400, "malformed")
    r = c.s.post(url, data="{}", headers={"Content-Type": "application/json"})
    problem_of(r, 415, "malformed")
    problem_of(c.post(url, None, raw='{"protected":"e30","protected":"e30","payload":"","signature":""}'), 400,
               "malformed")
    problem_of(c.post(url, None, extra={"kid": url + "x"}), 400, "accountDoesNotExist")
    # both jwk and kid
    problem_of(c.post(url, None, extra={"jwk": c.jwk}), 400, "malformed")
    # oversized body
    r = c.s.post(url, data="{" + " " * (200 * 1024) + "}", headers={"Content-Type": "application/jose+json"})
    assert r.status_code in (400, 413) and r.status_code < 500
    # another account's resources
    other = client(acme)
    problem_of(other.post(url, None), 401, "unauthorized")
    assert requests.get(acme.d.url + "/healthz").status_code == 200


def order_for(c, idents):
    r = c.post(c.dir["newOrder"], {"identifiers": idents})
    assert r.status_code == 201, r.text
    return r.headers["Location"], r.json()


def solve_http01(acme, c, order):
    for az_url in order["authorizations"]:
        az = c.post(az_url, None).json()
        ch = next(x for x in az["challenges"] if x["type"] == "http-01")
        acme.web.tokens[ch["token"]] = c.key_authz(ch["token"])
        r = c.post(ch["url"], {})
        assert r.status_code == 200, r.text
        assert 'rel="up"' in r.headers.get("Link", "")
        done = c.wait(az_url, want=("valid", "invalid"))
        assert done["status"] == "valid", done


def test_order_http01_finalize_download(acme):
    c = client(acme)
    names = [f"{uid('www')}.example.test", f"{uid('api')}.example.test"]
    order_url, order = order_for(c, [{"type": "dns", "value": n} for n in names])
    assert order["status"] == "pending" and len(order["authorizations"]) == 2
    az = c.post(order["authorizations"][0], None).json()
    assert {ch["type"] for ch in az["challenges"]} == {"http-01", "dns-01", "tls-alpn-01"}
    # finalize too early
    key = ec.generate_private_key(ec.SECP256R1())
    problem_of(c.post(order["finalize"], {"csr": b64u(make_csr(key, names))}), 403, "orderNotReady")
    solve_http01(acme, c, order)
    assert c.wait(order_url)["status"] == "ready"
    # a CSR for other names, for fewer names, with the account key
    problem_of(c.post(order["finalize"], {"csr": b64u(make_csr(key, names + ["evil.example.test"]))}), 400, "badCSR")
    problem_of(c.post(order["finalize"], {"csr": b64u(make_csr(key, names[:1]))}), 400, "badCSR")
    problem_of(c.post(order["finalize"], {"csr": b64u(make_csr(c.key, names))}), 400, "badCSR")
    problem_of(c.post(order["finalize"], {"csr": "!!!"}), 400, "badCSR")
    r = c.post(order["finalize"], {"csr": b64u(make_csr(key, names, cn=names[0]))})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "valid"
    cert_url = r.json()["certificate"]
    r = c.post(cert_url, None)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/pem-certificate-chain")
    chain = load_chain(r.content)
    leaf = chain[0]
    assert len(chain) == 2  # leaf + issuing CA, the root stays out of the default chain
    sans = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    assert leaf.issuer == chain[1].subject
    alt = [l for l in r.headers.get("Link", "").split(",") if 'rel="alternate"' in l]
    assert alt, r.headers
    alt_url = alt[0].split(";")[0].strip().strip("<>")
    r2 = c.post(alt_url, None)
    full = load_chain(r2.content)
    assert len(full) == 3 and full[2].issuer == full[2].subject
    # it is in the CA's certificate list with the account as requester
    serial = format(leaf.serial_number, "x")
    r = acme.d.api("GET", f"/cas/acme-issuing/certificates", params={"serial": serial})
    items = r.json()["certificates"]
    assert items and items[0]["requester"].startswith("acme:acme1/"), items
    # orders list
    r = c.post(c.kid + "/orders", None)
    assert order_url in r.json()["orders"]


def test_dns01_and_ip_identifier(acme):
    c = client(acme)
    name = f"{uid('dns')}.example.test"
    order_url, order = order_for(c, [{"type": "dns", "value": "*." + name}])
    az = c.post(order["authorizations"][0], None).json()
    assert az["wildcard"] is True and az["identifier"]["value"] == name
    assert [ch["type"] for ch in az["challenges"]] == ["dns-01"]
    ch = az["challenges"][0]
    digest = b64u(hashlib.sha256(c.key_authz(ch["token"]).encode()).digest())
    acme.cts.set_txt(f"_acme-challenge.{name}.", digest)
    assert c.post(ch["url"], {}).status_code == 200
    assert c.wait(order["authorizations"][0], want=("valid", "invalid"))["status"] == "valid"
    key = ec.generate_private_key(ec.SECP256R1())
    assert c.wait(order_url)["status"] == "ready"
    r = c.post(order["finalize"], {"csr": b64u(make_csr(key, ["*." + name]))})
    assert r.status_code == 200, r.text
    leaf = load_chain(c.post(r.json()["certificate"], None).content)[0]
    assert leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value \
        .get_values_for_type(x509.DNSName) == ["*." + name]

    # IP identifier by http-01 (RFC 8738)
    order_url, order = order_for(c, [{"type": "ip", "value": "127.0.0.1"}])
    az = c.post(order["authorizations"][0], None).json()
    assert {ch["type"] for ch in az["challenges"]} == {"http-01", "tls-alpn-01"}
    solve_http01(acme, c, order)
    r = c.post(order["finalize"], {"csr": b64u(make_csr(key, [], ips=["127.0.0.1"]))})
    assert r.status_code == 200, r.text
    leaf = load_chain(c.post(r.json()["certificate"], None).content)[0]
    ips = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value \
        .get_values_for_type(x509.IPAddress)
    assert ips == [ipaddress.ip_address("127.0.0.1")]


def test_failed_challenge_invalidates(acme):
    c = client(acme)
    order_url, order = order_for(c, [{"type": "dns", "value": f"{uid('bad')}.example.test"}])
    az = c.post(order["authorizations"][0], None).json()
    ch = next(x for x in az["challenges"] if x["type"] == "http-01")
    acme.web.tokens[ch["token"]] = "wrong-key-authorization"
    c.post(ch["url"], {})
    done = c.wait(order["authorizations"][0], want=("valid", "invalid"))
    assert done["status"] == "invalid"
    bad = next(x for x in done["challenges"] if x["type"] == "http-01")
    assert bad["status"] == "invalid" and bad["error"]["type"].startswith(PROBLEM)
    assert c.wait(order_url, want=("invalid",))["status"] == "invalid"


def test_identifier_policy_and_syntax(acme):
    c = Client(acme.open_dir, acme.d.service_ca)
    assert c.register().status_code == 201
    problem_of(c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "www.other.test"}]}), 400,
               "rejectedIdentifier")
    problem_of(c.post(c.dir["newOrder"], {"identifiers": [{"type": "ip", "value": "10.1.2.3"}]}), 400,
               "rejectedIdentifier")
    for bad in ("-bad.example.test", "a..example.test", "ex ample.test", "bücher.example.test", "x" * 300):
        problem_of(c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": bad}]}), 400,
                   "rejectedIdentifier")
    problem_of(c.post(c.dir["newOrder"], {"identifiers": [{"type": "email", "value": "a@b.test"}]}), 400,
               "unsupportedIdentifier")
    problem_of(c.post(c.dir["newOrder"], {"identifiers": []}), 400, "malformed")
    r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "ok.example.test"}]})
    assert r.status_code == 201, r.text


def test_key_change_and_deactivate(acme):
    c = client(acme)
    new = ec.generate_private_key(ec.SECP384R1())
    inner = jws(new, {"url": c.dir["keyChange"], "jwk": jwk_of(new)}, {"account": c.kid, "oldKey": c.jwk})
    r = c.post(c.dir["keyChange"], inner)
    assert r.status_code == 200, r.text
    old = c.key
    c.key = new
    assert c.post(c.kid, None).status_code == 200
    # the old key no longer works
    r = c.post(c.kid, None, key=old)
    assert r.status_code in (400, 401)
    r = c.post(c.kid, {"status": "deactivated"})
    assert r.status_code == 200 and r.json()["status"] == "deactivated"
    problem_of(c.post(c.kid, None), 401, "unauthorized")


def test_revoke_by_account_and_by_cert_key(acme):
    c = client(acme)
    for by in ("account", "certkey"):
        name = f"{uid('rv')}.example.test"
        order_url, order = order_for(c, [{"type": "dns", "value": name}])
        solve_http01(acme, c, order)
        key = ec.generate_private_key(ec.SECP256R1())
        r = c.post(order["finalize"], {"csr": b64u(make_csr(key, [name]))})
        pem = c.post(r.json()["certificate"], None).content
        leaf = load_chain(pem)[0]
        der = leaf.public_bytes(serialization.Encoding.DER)
        problem_of(c.post(c.dir["revokeCert"], {"certificate": b64u(der), "reason": 7}), 400, "badRevocationReason")
        if by == "account":
            # another account may not revoke it
            problem_of(client(acme).post(c.dir["revokeCert"], {"certificate": b64u(der)}), 403, "unauthorized")
            r = c.post(c.dir["revokeCert"], {"certificate": b64u(der), "reason": 4})
        else:
            r = c.post(c.dir["revokeCert"], {"certificate": b64u(der), "reason": 1}, key=key, use_jwk=True)
        assert r.status_code == 200, r.text
        problem_of(c.post(c.dir["revokeCert"], {"certificate": b64u(der)}), 400, "alreadyRevoked")
        serial = format(leaf.serial_number, "x")
        r = acme.d.api("GET", f"/cas/acme-issuing/certificates", params={"serial": serial})
        item = r.json()["certificates"][0]
        assert item["status"] == "revoked"


def test_state_survives_restart(acme):
    c = client(acme)
    name = f"{uid('rs')}.example.test"
    order_url, order = order_for(c, [{"type": "dns", "value": name}])
    solve_http01(acme, c, order)
    acme.d.restart()
    c.dir = c.s.get(c.dir["newAccount"].replace("new-account", "directory")).json()
    c.nonce = None
    # the order, its authorization and the account are all still there
    assert c.wait(order_url)["status"] == "ready"
    key = ec.generate_private_key(ec.SECP256R1())
    r = c.post(order["finalize"], {"csr": b64u(make_csr(key, [name]))})
    assert r.status_code == 200 and r.json()["status"] == "valid", r.text
