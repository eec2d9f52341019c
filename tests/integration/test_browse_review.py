"""Certificate status and browsing findings of a review, each reproduced against the daemon first: unknown keys in
revocation bodies (a misspelt reason revoked for good with another), publishNow and expired that were not
booleans, invalidity dates at or before 1970 accepted and then lost, malformed serials in a revoke batch, and a
profile moved out of the group a protocol configuration needs."""
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from status_helpers import PROFILE, make_root, make_sub

_KEY = ec.generate_private_key(ec.SECP256R1())


def _csr(cn):
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


@pytest.fixture(scope="module")
def cas(daemon, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browse")
    root = make_root(daemon, tmp, prefix="brroot")
    sub = make_sub(daemon, tmp, root, prefix="brsub", ocsp_=False)
    return root, sub


def _issue(d, ca_id, cn="b.example.com", profile=PROFILE):
    r = d.api("POST", f"/cas/{ca_id}/certificates",
              json={"profileId": profile, "csr": _csr(cn), "subjectAltNames": [{"type": "dNSName", "value": cn}]})
    assert r.status_code == 201, r.text
    return r.json()["serialNumber"]


def _err(r, status=400):
    assert r.status_code == status, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:400]}"
    return r.json()["error"]


# 1 ------------------------------------------------------------------------------------------
def test_profile_group_change_while_protocol_uses_it(daemon, cas):
    """A protocol configuration must use a profile of its type's group (docs/api.md "Enrollment protocol
    configurations"; POST /protocols enforces it). PUT /profiles/{id} must not move a profile that an
    ACME configuration issues with out of the 'privatessl' group."""
    _, sub = cas
    pid = "privatessl-brgrp"
    assert daemon.api("POST", "/profiles", json={"id": pid, "sourceProfileId": PROFILE}).status_code == 201
    assert daemon.api("POST", f"/cas/{sub.id}/profiles", json={"profileId": pid}).status_code == 200
    r = daemon.api("POST", "/protocols", json={"id": "br-acme", "type": "acme", "caId": sub.id, "profileId": pid})
    assert r.status_code == 201, r.text
    r = daemon.api("PUT", f"/profiles/{pid}", json={"group": "smime"})
    # the same configuration could not be created now:
    again = daemon.api("POST", "/protocols", json={"id": "br-acme2", "type": "acme", "caId": sub.id, "profileId": pid})
    assert r.status_code == 409 and r.json()["error"]["field"] == "group", (
        f"PUT group=smime on a profile used by ACME config br-acme answered {r.status_code} "
        f"(group now {daemon.api('GET', f'/profiles/{pid}').json().get('group')!r}); "
        f"creating the same config now answers {again.status_code}: {again.text[:200]}")
    assert again.status_code == 201, again.text
    # other changes to the profile in use are fine
    assert daemon.api("PUT", f"/profiles/{pid}", json={"validity_period": "P90D"}).status_code == 200


# 2 ------------------------------------------------------------------------------------------
def test_revoke_rejects_unknown_fields(daemon, cas):
    """Revocation is final; a misspelt key ("reson") must not silently revoke with reason unspecified.
    Issuance and profiles reject unknown keys with 400 naming the field (docs/api.md errors)."""
    _, sub = cas
    s = _issue(daemon, sub.id)
    r = daemon.api("POST", f"/cas/{sub.id}/certificates/{s}/revoke", json={"reson": "keyCompromise"})
    after = daemon.api("GET", f"/cas/{sub.id}/certificates/{s}").json()
    assert r.status_code == 400 and r.json()["error"].get("field") == "reson", (
        f"revoke with misspelt 'reson' -> {r.status_code}; certificate now {after['status']} "
        f"reason {after['revocationReason']!r}")


def test_revoke_batch_rejects_unknown_fields(daemon, cas):
    _, sub = cas
    s = _issue(daemon, sub.id)
    r = daemon.api("POST", f"/cas/{sub.id}/certificates/revoke-batch",
                   json={"serials": [s], "reasons": "keyCompromise"})
    after = daemon.api("GET", f"/cas/{sub.id}/certificates/{s}").json()
    assert r.status_code == 400 and r.json()["error"].get("field") == "reasons", (
        f"revoke-batch with misspelt 'reasons' -> {r.status_code}; certificate now {after['status']} "
        f"reason {after['revocationReason']!r}")


def test_revoke_publish_now_must_be_boolean(daemon, cas):
    _, sub = cas
    s = _issue(daemon, sub.id)
    r = daemon.api("POST", f"/cas/{sub.id}/certificates/{s}/revoke", json={"publishNow": "yes"})
    assert r.status_code == 400 and r.json()["error"].get("field") == "publishNow", (r.status_code, r.text[:200])


# 3 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("inv", ["1950-01-01T00:00:00Z", "1970-01-01T00:00:00Z"])
def test_invalidity_date_at_or_before_1970_is_refused(daemon, cas, inv):
    """Dates at or before the Unix epoch used to be accepted, then dropped (1970: null in the answer; 1950:
    shown in the answer but missing from the CRL)."""
    _, sub = cas
    s = _issue(daemon, sub.id)
    r = daemon.api("POST", f"/cas/{sub.id}/certificates/{s}/revoke", json={"invalidityDate": inv})
    # refused: a date the CRL could not carry (the store keeps 0 as "none")
    assert r.status_code == 400 and r.json()["error"]["field"] == "invalidityDate", r.text
    after = daemon.api("GET", f"/cas/{sub.id}/certificates/{s}").json()
    assert after["status"] == "issued", after


def test_invalidity_date_reaches_the_crl(daemon, cas):
    """A date the API accepts is what it reports and what the CRL entry carries (RFC 5280 5.3.2)."""
    _, sub = cas
    inv = "2001-02-03T04:05:06Z"
    s = _issue(daemon, sub.id)
    r = daemon.api("POST", f"/cas/{sub.id}/certificates/{s}/revoke", json={"invalidityDate": inv})
    assert r.status_code == 200, r.text
    assert r.json()["invalidityDate"] == inv, f"accepted {inv}, reports {r.json()['invalidityDate']!r}"
    assert daemon.api("POST", f"/cas/{sub.id}/crl").status_code in (200, 201)
    crl = x509.load_der_x509_crl(daemon.api("GET", f"/cas/{sub.id}/crl", params={"format": "der"}).content)
    entry = crl.get_revoked_certificate_by_serial_number(int(s, 16))
    assert entry is not None
    try:
        got = entry.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date
    except x509.ExtensionNotFound:
        got = None
    want = datetime.datetime.strptime(inv, "%Y-%m-%dT%H:%M:%SZ")
    assert got == want, f"API accepted and reports invalidityDate {inv}; CRL entry has {got}"


# 4 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("val", ["yes", "1", "TRUE"])
def test_list_expired_must_be_boolean(daemon, cas, val):
    """docs/openapi.yaml: expired is a boolean. expired=1 / yes used to be ignored and the whole, unexpired list
    came back, looking like an answer to "which certificates expired"."""
    _, sub = cas
    _issue(daemon, sub.id)
    r = daemon.api("GET", f"/cas/{sub.id}/certificates", params={"expired": val})
    if r.status_code == 200:
        live = [c for c in r.json()["certificates"] if c["notAfter"] > datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")]
        pytest.fail(f"expired={val} -> 200 with {len(live)} unexpired certificates")
    assert _err(r)["field"] == "expired"


def test_list_expired_and_expires_within_conflict(daemon, cas):
    """The CLI refuses --expired with --expires-within; the API used to drop expiresWithin silently."""
    _, sub = cas
    r = daemon.api("GET", f"/cas/{sub.id}/certificates", params={"expired": "true", "expiresWithin": "7"})
    assert r.status_code == 400, (r.status_code, r.text[:200])


# 5 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["zz", 5, None])
def test_revoke_batch_malformed_serial_is_400(daemon, cas, bad):
    """A serial that is not hex (or not a string) is bad input, not an unknown certificate: it used to be
    answered 200 'not_found' (and a non-string echoed as serial "")."""
    _, sub = cas
    r = daemon.api("POST", f"/cas/{sub.id}/certificates/revoke-batch", json={"serials": [bad]})
    assert r.status_code == 400 and (r.json()["error"].get("field") or "").startswith("serials"), (
        r.status_code, r.text[:300])
