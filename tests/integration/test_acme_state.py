"""ACME state and identity rules found by review: a deactivated account's key does nothing more, one key is one
account whatever its base64url spelling, a deleted configuration takes its accounts and orders with it, an order
whose authorization was deactivated is not finalized, the orders list's next link can be followed, a CSR may name
an identifier in its common name only, and a dns identifier cannot be an address. Each test failed on the build
before its fix."""
import json

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acme_helpers import PROBLEM, Client, b64u, b64u_dec, jws, jwk_of, make_csr, thumbprint
from conftest import sqlite_only
from helpers import uid
from test_acme import acme, client, problem_of, order_for, solve_http01, load_chain  # noqa: F401


def issued(acme, c):
    name = f"{uid('rv')}.example.test"
    order_url, order = order_for(c, [{"type": "dns", "value": name}])
    solve_http01(acme, c, order)
    key = ec.generate_private_key(ec.SECP256R1())
    r = c.post(order["finalize"], {"csr": b64u(make_csr(key, [name]))})
    assert r.status_code == 200, r.text
    pem = c.post(r.json()["certificate"], None).content
    return load_chain(pem)[0], key


def test_finalize_after_authz_deactivated(acme):
    """RFC 8555 7.1.6/7.5.2: an order whose authorization is deactivated is invalid; it must not be finalized."""
    c = client(acme)
    name = f"{uid('da')}.example.test"
    order_url, order = order_for(c, [{"type": "dns", "value": name}])
    solve_http01(acme, c, order)
    assert c.wait(order_url)["status"] == "ready"
    r = c.post(order["authorizations"][0], {"status": "deactivated"})
    assert r.status_code == 200 and r.json()["status"] == "deactivated", r.text
    st = c.post(order_url, None).json()["status"]
    key = ec.generate_private_key(ec.SECP256R1())
    r = c.post(order["finalize"], {"csr": b64u(make_csr(key, [name]))})
    assert r.status_code == 403, f"order status after deactivation={st}; finalize -> {r.status_code} {r.text[:200]}"


def test_revoke_by_deactivated_account_key_via_jwk(acme):
    """RFC 8555 7.3.6: no further requests authorized by a deactivated account's key."""
    c = client(acme)
    leaf, _ = issued(acme, c)
    der = leaf.public_bytes(serialization.Encoding.DER)
    r = c.post(c.kid, {"status": "deactivated"})
    assert r.status_code == 200 and r.json()["status"] == "deactivated"
    problem_of(c.post(c.dir["revokeCert"], {"certificate": b64u(der)}), 401, "unauthorized")  # by kid: refused
    r = c.post(c.dir["revokeCert"], {"certificate": b64u(der)}, use_jwk=True)
    assert r.status_code in (401, 403), f"deactivated account revoked via jwk: {r.status_code} {r.text[:200]}"


def test_new_account_for_deactivated_key(acme):
    c = client(acme)
    assert c.post(c.kid, {"status": "deactivated"}).status_code == 200
    r = c.post(c.dir["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert r.status_code in (401, 403), f"{r.status_code} {r.text[:200]}"


def _noncanonical(jwk):
    """Same key, different base64url text: set the unused low bits of the last character of x."""
    alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    j = dict(jwk)
    x = j["x"]
    v = alpha.index(x[-1])
    j["x"] = x[:-1] + alpha[v | 0b11]  # 32 bytes -> 43 chars, last char has 2 unused bits
    assert j["x"] != x and b64u_dec(j["x"]) == b64u_dec(x)
    return j


def test_same_key_two_accounts_noncanonical_jwk(acme):
    """One key, one account (RFC 8555 7.3 / 7.3.5): a non-canonical base64url JWK creates a second account."""
    c1 = client(acme)
    key = c1.key
    c2 = Client(acme.cfg["directoryUrl"], acme.d.service_ca, key)
    nonce = c2.new_nonce()
    from acme_helpers import eab_binding
    jwk2 = _noncanonical(jwk_of(key))
    payload = {"termsOfServiceAgreed": True,
               "externalAccountBinding": eab_binding(acme.eab["keyId"], acme.eab["hmacKey"], jwk2,
                                                     c2.dir["newAccount"])}
    body = json.dumps(jws(key, {"nonce": nonce, "url": c2.dir["newAccount"], "jwk": jwk2}, payload))
    r = c2.s.post(c2.dir["newAccount"], data=body, headers={"Content-Type": "application/jose+json"})
    # the spelling is refused (RFC 4648 3.5 canonical encoding), so it cannot open a second account
    problem_of(r, 400, "malformed")
    assert "base64url" in r.json()["detail"], r.text


def test_key_change_to_key_in_use_noncanonical(acme):
    """RFC 8555 7.3.5: the server MUST refuse a new key already used by another account."""
    victim = client(acme)
    c = client(acme)
    new = victim.key
    jwk2 = _noncanonical(jwk_of(new))
    inner = jws(new, {"url": c.dir["keyChange"], "jwk": jwk2}, {"account": c.kid, "oldKey": c.jwk})
    r = c.post(c.dir["keyChange"], inner)
    problem_of(r, 400, "malformed")
    # spelled canonically, the key in use is refused as such
    inner = jws(new, {"url": c.dir["keyChange"], "jwk": jwk_of(new)}, {"account": c.kid, "oldKey": c.jwk})
    assert c.post(c.dir["keyChange"], inner).status_code == 409


def test_orders_next_link_url(acme):
    """RFC 8555 6.4 / 7.1.2.1: the url header is the URL the request goes to, query included."""
    c = client(acme)
    for i in range(101):
        r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": f"o{i}.example.test"}]})
        assert r.status_code == 201, r.text
    r = c.post(c.kid + "/orders", None)
    assert r.status_code == 200 and len(r.json()["orders"]) == 100
    link = [l for l in r.headers.get("Link", "").split(",") if 'rel="next"' in l]
    assert link, r.headers
    nxt = link[0].split(";")[0].strip().strip("<>")
    r = c.post(nxt, None)
    assert r.status_code == 200, f"POST to the next link ({nxt}) -> {r.status_code} {r.text[:200]}"


def test_csr_with_cn_only(acme):
    """RFC 8555 7.4: dns identifiers MUST appear in the commonName or in a subjectAltName, or both."""
    c = client(acme)
    name = f"{uid('cn')}.example.test"
    order_url, order = order_for(c, [{"type": "dns", "value": name}])
    solve_http01(acme, c, order)
    key = ec.generate_private_key(ec.SECP256R1())
    r = c.post(order["finalize"], {"csr": b64u(make_csr(key, [], cn=name))})
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"


def test_ip_policy_bypass_with_dns_identifier(acme):
    d = acme.d
    r = d.api("POST", "/protocols", json={"id": "ip-only", "type": "acme", "caId": acme.issuing["id"],
                                           "profileId": "privatessl-tls-server", "eabRequired": False,
                                           "allowedIpRanges": ["127.0.0.0/8"]})
    assert r.status_code == 201, r.text
    c = Client(r.json()["directoryUrl"], d.service_ca)
    assert c.register().status_code == 201
    problem_of(c.post(c.dir["newOrder"], {"identifiers": [{"type": "ip", "value": "10.1.2.3"}]}), 400,
               "rejectedIdentifier")
    r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "10.1.2.3"}]})
    assert r.status_code == 400, f"dns identifier 10.1.2.3 accepted: {r.status_code} {r.text[:300]}"


def test_config_recreate_resurrects_accounts(acme):
    """Deleting a configuration deletes its EAB keys so they never work for a later configuration with the same
    id; its accounts (and their keys) survive and do."""
    d = acme.d
    r = d.api("POST", "/protocols", json={"id": "reuse1", "type": "acme", "caId": acme.issuing["id"],
                                           "profileId": "privatessl-tls-server", "eabRequired": False})
    assert r.status_code == 201, r.text
    c = Client(r.json()["directoryUrl"], d.service_ca)
    assert c.register().status_code == 201
    old_kid = c.kid
    assert d.api("DELETE", "/protocols/reuse1").status_code == 200
    # a new configuration, same id, now requiring EAB
    r = d.api("POST", "/protocols", json={"id": "reuse1", "type": "acme", "caId": acme.issuing["id"],
                                           "profileId": "privatessl-tls-server", "eabRequired": True})
    assert r.status_code == 201, r.text
    c.nonce = None
    r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "x.example.test"}]})
    r2 = c.post(c.dir["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert r.status_code in (400, 401) and r2.status_code == 400, \
        (f"old account {old_kid} still works in the new EAB-required configuration: newOrder -> {r.status_code}, "
         f"newAccount(onlyReturnExisting) -> {r2.status_code} {r2.headers.get('Location')}")


def test_old_order_finalized_after_config_recreated_on_other_ca(acme):
    from helpers import create_ca
    d = acme.d
    other = create_ca(d, id=uid("oth")[:18], type="subord", parentId="acme-root", signingKeyDetails="ECDSAP256+SHA256",
                      subject="CN=Other Issuing", profiles=["privatessl-tls-server"])
    r = d.api("POST", "/protocols", json={"id": "reuse2", "type": "acme", "caId": acme.issuing["id"],
                                           "profileId": "privatessl-tls-server", "eabRequired": False})
    assert r.status_code == 201, r.text
    c = Client(r.json()["directoryUrl"], d.service_ca)
    assert c.register().status_code == 201
    name = f"{uid('old')}.example.test"
    order_url, order = order_for(c, [{"type": "dns", "value": name}])
    solve_http01(acme, c, order)
    assert d.api("DELETE", "/protocols/reuse2").status_code == 200
    r = d.api("POST", "/protocols", json={"id": "reuse2", "type": "acme", "caId": other["id"],
                                           "profileId": "privatessl-tls-server", "eabRequired": True})
    assert r.status_code == 201, r.text
    c.nonce = None
    key = ec.generate_private_key(ec.SECP256R1())
    r = c.post(order["finalize"], {"csr": b64u(make_csr(key, [name]))})
    leaf = None
    if r.status_code == 200:
        leaf = load_chain(c.post(r.json()["certificate"], None).content)[0]
    assert r.status_code != 200, f"old order finalized in the new configuration; issuer={leaf.issuer.rfc4514_string()}"



@sqlite_only("edits the authorization document through Python's sqlite3 on the database file")
def test_stalled_challenge_can_be_asked_again(acme):
    """A challenge left "processing" (its node stopped mid-validation) can be asked for again once stale, instead
    of blocking the authorization until it expires."""
    import sqlite3
    import time as _time
    c = client(acme)
    name = f"{uid('st')}.example.test"
    order_url, order = order_for(c, [{"type": "dns", "value": name}])
    az_url = order["authorizations"][0]
    az_id = az_url.rstrip("/").rsplit("/", 1)[1]
    db = sqlite3.connect(str(acme.d.data_dir / "pkiaas.db"), timeout=30)
    try:
        with db:
            (doc,) = db.execute("SELECT json FROM object WHERE kind='acme-authz' AND id=?", (az_id,)).fetchone()
            d = json.loads(doc)
            for ch in d["challenges"]:
                if ch["type"] == "http-01":
                    ch["status"] = "processing"
                    ch["processingSince"] = int(_time.time()) - 3600
            db.execute("UPDATE object SET json=? WHERE kind='acme-authz' AND id=?", (json.dumps(d), az_id))
    finally:
        db.close()
    az = c.post(az_url, None).json()
    assert next(x for x in az["challenges"] if x["type"] == "http-01")["status"] == "processing"
    solve_http01(acme, c, order)  # asks again, and it validates
    assert c.wait(order_url)["status"] == "ready"


def test_null_leaves_eab_required_as_it_is(acme):
    """PUT with "eabRequired": null (null means "leave as is" for every other setting) switched EAB back on,
    and ACME clients without EAB keys stopped working."""
    d = acme.d
    r = d.api("POST", "/protocols", json={"id": "eab-null", "type": "acme", "caId": acme.issuing["id"],
                                           "profileId": "privatessl-tls-server", "eabRequired": False})
    assert r.status_code == 201 and r.json()["eabRequired"] is False, r.text
    r = d.api("PUT", "/protocols/eab-null", json={"description": "x", "eabRequired": None})
    assert r.status_code == 200 and r.json()["eabRequired"] is False, r.text
    c = Client(r.json()["directoryUrl"], d.service_ca)
    assert c.register().status_code == 201
