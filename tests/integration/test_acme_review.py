"""ACME findings of a review, each reproduced against the daemon first: revocation by an account holding
authorizations for every name of the certificate (RFC 8555 7.6), revocation after the configuration moved to
another CA, and the JWS url header compared with the whole request URL (6.4)."""
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acme_helpers import Client, b64u, jws, make_csr
from helpers import create_ca, uid
from test_acme import acme, client, problem_of, order_for, solve_http01, load_chain  # noqa: F401


def _issue(acme, c, name):
    order_url, order = order_for(c, [{"type": "dns", "value": name}])
    solve_http01(acme, c, order)
    key = ec.generate_private_key(ec.SECP256R1())
    r = c.post(order["finalize"], {"csr": b64u(make_csr(key, [name]))})
    assert r.status_code == 200, r.text
    return order_url, r.json()["certificate"]


def test_revoke_by_account_holding_authorizations_for_all_names(acme):
    """RFC 8555 7.6: 'The server MUST consider at least the following accounts authorized for a given
    certificate: the account that issued the certificate; an account that holds authorizations for all of
    the identifiers in the certificate.' Only the ordering account used to be allowed. An account with no
    authorization for the name is still refused."""
    a = client(acme)
    name = f"{uid('rva')}.example.test"
    _, cert_url = _issue(acme, a, name)
    der = load_chain(a.post(cert_url, None).content)[0].public_bytes(serialization.Encoding.DER)
    b = client(acme)
    _, order = order_for(b, [{"type": "dns", "value": name}])
    solve_http01(acme, b, order)  # b now holds a valid authorization for the only identifier
    stranger = client(acme)
    r = stranger.post(stranger.dir["revokeCert"], {"certificate": b64u(der), "reason": 1})
    problem_of(r, 403, "unauthorized")
    r = b.post(b.dir["revokeCert"], {"certificate": b64u(der), "reason": 1})
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"


def test_revoke_after_config_ca_changed(acme):
    """The account that issued a certificate may revoke it (RFC 8555 7.6) even after the operator moved the
    configuration to another issuing CA (it used to get 404: only the current CA was searched); the
    certificate itself can still be downloaded through the order."""
    d = acme.d
    other = create_ca(d, id="acme-issuing2", type="subord", parentId="acme-root", signingKeyDetails="ECDSAP256+SHA256",
                      subject="CN=ACME Test Issuing 2", profiles=["privatessl-tls-server"])
    r = d.api("POST", "/protocols", json={"id": "acme-mv", "type": "acme", "caId": "acme-issuing",
                                           "profileId": "privatessl-tls-server", "eabRequired": False})
    assert r.status_code == 201, r.text
    c = Client(r.json()["directoryUrl"], d.service_ca)
    assert c.register().status_code == 201
    name = f"{uid('mv')}.example.test"
    _, cert_url = _issue(acme, c, name)
    r = d.api("PUT", "/protocols/acme-mv", json={"caId": other["id"]})
    assert r.status_code == 200, r.text
    r = c.post(cert_url, None)
    assert r.status_code == 200, r.text  # still downloadable through the order
    der = load_chain(r.content)[0].public_bytes(serialization.Encoding.DER)
    r = c.post(c.dir["revokeCert"], {"certificate": b64u(der), "reason": 4})
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"


def test_url_header_must_equal_request_url_with_query(acme):
    """RFC 8555 6.4: the "url" header must be the URL the request is directed to. Query arguments other than
    the orders list's cursor used to be left out of the comparison, so a request to {kid}?foo=bar signed for
    {kid} passed."""
    c = client(acme)
    nonce = c.new_nonce()
    body = json.dumps(jws(c.key, {"nonce": nonce, "url": c.kid, "kid": c.kid}, None))
    r = c.s.post(c.kid + "?foo=bar", data=body, headers={"Content-Type": "application/jose+json"})
    assert r.status_code == 401, f"{r.status_code} {r.text[:200]}"
