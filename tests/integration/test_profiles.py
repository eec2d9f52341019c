"""Certificate profiles API: system profiles (read-only), custom clones, CA assignment.

Table-driven from src/ca/profiles/system.json; a clone is also checked by issuing a certificate
with it and reading the certificate bytes, not only the JSON echo.
"""
import json
import secrets
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from helpers import create_ca, expect_error, ext_or_none, key_usage_names, uid

SYSTEM_JSON = Path(__file__).resolve().parents[2] / "src" / "ca" / "profiles" / "system.json"
SYSTEM = json.loads(SYSTEM_JSON.read_text())
BY_ID = {p["id"]: p for p in SYSTEM}
SUBSCRIBER = [p for p in SYSTEM if p["kind"] == "subscriber"]
AUTHORITY = [p for p in SYSTEM if p["kind"] == "authority"]
SOURCE = "privatessl-tls-server"


def pid(prefix="my"):
    return f"{prefix}-{secrets.token_hex(4)}"


def ok(resp, status=200):
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:800]}"
    return resp.json()


def list_profiles(d, **params):
    body = ok(d.api("GET", "/profiles", params=params or None))
    assert isinstance(body.get("profiles"), list), body
    return {p["id"]: p for p in body["profiles"]}


def clone(d, expect=201, **body):
    r = d.api("POST", "/profiles", json=body)
    if expect == 201:
        return ok(r, 201)
    return r


@pytest.fixture(scope="module")
def root(daemon):
    return create_ca(daemon, id=uid("proot"), friendlyName="Profiles root", type="root",
                     signingKeyDetails="ECDSAP256+SHA256", subject="CN=Profiles Root,O=Test")


@pytest.fixture(scope="module")
def subord(daemon, root):
    return create_ca(daemon, id=uid("psub"), friendlyName="Profiles sub", type="subord", parentId=root["id"],
                     signingKeyDetails="ECDSAP256+SHA256", subject="CN=Profiles Sub,O=Test",
                     enableCrl=True, enableOcsp=False)


# ------------------------------------------------------------------ system profiles
def test_list_contains_every_system_profile(daemon):
    got = list_profiles(daemon)
    missing = sorted(set(BY_ID) - set(got))
    assert not missing, f"system profiles missing from GET /profiles: {missing}"
    for p in SYSTEM:
        g = got[p["id"]]
        assert g.get("system") is True, f"{p['id']}: system flag {g.get('system')!r}"
        for k, v in p.items():
            assert g.get(k) == v, f"{p['id']}.{k}: listed {g.get(k)!r}, system.json {v!r}"


def test_list_group_filter(daemon):
    got = list_profiles(daemon, group="smime")
    want = {p["id"] for p in SYSTEM if p["group"] == "smime"}
    assert want and want <= set(got)
    assert all(p["group"] == "smime" for p in got.values()), sorted(got)


@pytest.mark.parametrize("prof", [SUBSCRIBER[0], AUTHORITY[0], BY_ID[SOURCE]], ids=lambda p: p["id"])
def test_get_one(daemon, prof):
    g = ok(daemon.api("GET", f"/profiles/{prof['id']}"))
    for k, v in prof.items():
        assert g.get(k) == v, f"{prof['id']}.{k}: {g.get(k)!r} != {v!r}"
    assert g["system"] is True


def test_get_unknown_404(daemon):
    expect_error(daemon.api("GET", "/profiles/no-such-profile-x"), 404)


@pytest.mark.parametrize("prof_id", [SOURCE, AUTHORITY[0]["id"]])
def test_system_profile_read_only(daemon, prof_id):
    body = dict(BY_ID[prof_id])
    body.pop("id")
    body["validity_period"] = "P30D"
    expect_error(daemon.api("PUT", f"/profiles/{prof_id}", json=body), 403)
    expect_error(daemon.api("DELETE", f"/profiles/{prof_id}"), 403)
    # unchanged and still there
    g = ok(daemon.api("GET", f"/profiles/{prof_id}"))
    assert g["validity_period"] == BY_ID[prof_id]["validity_period"]


# ------------------------------------------------------------------ clones
def test_clone_subscriber(daemon, subord):
    new_id = pid("privatessl-c")
    usages = ["digitalSignature", "1.3.6.1.5.5.7.3.2"]
    c = clone(daemon, id=new_id, sourceProfileId=SOURCE, validity_period="P30D", usages=usages)
    assert c["id"] == new_id
    assert c["validity_period"] == "P30D"
    assert c["usages"] == usages
    assert c.get("system") is False
    assert c["kind"] == "subscriber"
    assert c["group"] == BY_ID[SOURCE]["group"]

    g = ok(daemon.api("GET", f"/profiles/{new_id}"))
    assert g["validity_period"] == "P30D" and g["usages"] == usages and g["system"] is False
    # fields not overridden come from the source
    for k in ("allowed_extensions", "key_usage_critical", "ca_constraint", "key_types", "allowedCATypes"):
        assert g[k] == BY_ID[SOURCE][k], k
    assert new_id in list_profiles(daemon)
    assert new_id in list_profiles(daemon, group=BY_ID[SOURCE]["group"])

    # The clone really drives issuance: 30 days, only digitalSignature + clientAuth.
    ok(daemon.api("POST", f"/cas/{subord['id']}/profiles", json={"profileId": new_id}))
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clone.example.com")]))
           .sign(key, hashes.SHA256()))
    r = daemon.api("POST", f"/cas/{subord['id']}/certificates",
                   json={"profileId": new_id, "csr": csr.public_bytes(serialization.Encoding.PEM).decode()})
    cert = x509.load_pem_x509_certificate(ok(r, 201)["certificate"].encode())
    days = (cert.not_valid_after - cert.not_valid_before).total_seconds() / 86400
    assert abs(days - 30) < 0.01, f"clone validity {days} days, wanted 30"
    ku = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert key_usage_names(ku.value) == ["digitalSignature"]
    eku = ext_or_none(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    assert eku is not None and [o.dotted_string for o in eku.value] == ["1.3.6.1.5.5.7.3.2"]
    # PUT changes a custom profile
    body = {k: v for k, v in g.items() if k not in ("id", "system")}
    body["validity_period"] = "P10D"
    p = ok(daemon.api("PUT", f"/profiles/{new_id}", json=body))
    assert p["validity_period"] == "P10D"
    assert ok(daemon.api("GET", f"/profiles/{new_id}"))["validity_period"] == "P10D"


def test_clone_of_clone(daemon):
    a = clone(daemon, id=pid("privatessl-a"), sourceProfileId=SOURCE, validity_period="P45D")
    b = clone(daemon, id=pid("privatessl-b"), sourceProfileId=a["id"])
    assert b["validity_period"] == "P45D" and b["usages"] == BY_ID[SOURCE]["usages"]


@pytest.mark.parametrize("override,field", [
    ({"usages": ["digitalSignature", "1.3.x.6"]}, "usages"),
    ({"usages": ["digitalSignature", "notAUsage"]}, "usages"),
    ({"validity_period": "P1X"}, "validity_period"),
    ({"validity_period": ""}, "validity_period"),
    # a valid duration longer than the stored text: was truncated and saved (then every use answered 500)
    ({"validity_period": "P" + "0" * 27 + "1Y6M"}, "validity_period"),
    ({"foo": 1}, "foo"),
    ({"id": "Bad_ID"}, "id"),
    ({"id": "a"}, "id"),
    ({"id": "x" * 65}, "id"),
    ({"allowed_extensions": ["2.5.29.32", "bogus"]}, "allowed_extensions"),
    ({"key_usage_critical": "yes"}, "key_usage_critical"),
    ({"group": "Bad Group"}, "group"),
], ids=["usage-bad-oid", "usage-bad-name", "duration-P1X", "duration-empty", "duration-long", "unknown-key",
        "id-Bad_ID",
        "id-short", "id-long", "ext-bad-oid", "bool-as-string", "group-bad"])
def test_clone_invalid_400_names_field(daemon, override, field):
    body = {"id": pid("privatessl-bad"), "sourceProfileId": SOURCE}
    body.update(override)
    r = clone(daemon, expect=400, **body)
    err = expect_error(r, 400)
    assert err.get("field") == field, f"error.field {err.get('field')!r}, wanted {field!r}: {err}"
    assert body["id"] not in list_profiles(daemon)


def test_clone_unknown_source_404(daemon):
    r = clone(daemon, expect=None, id=pid("privatessl-x"), sourceProfileId="no-such-profile")
    assert r.status_code in (400, 404), r.text
    expect_error(r, (400, 404))


@pytest.mark.parametrize("auth", AUTHORITY, ids=lambda p: p["id"])
def test_clone_authority_403(daemon, auth):
    new_id = pid("auth-clone")
    r = clone(daemon, expect=None, id=new_id, sourceProfileId=auth["id"])
    expect_error(r, 403)
    expect_error(daemon.api("GET", f"/profiles/{new_id}"), 404)


def test_clone_duplicate_id_409(daemon):
    new_id = pid("privatessl-dup")
    clone(daemon, id=new_id, sourceProfileId=SOURCE, validity_period="P20D")
    expect_error(clone(daemon, expect=None, id=new_id, sourceProfileId=SOURCE), 409)
    # A system id is taken too.
    expect_error(clone(daemon, expect=None, id=SOURCE, sourceProfileId=SOURCE), 409)
    assert ok(daemon.api("GET", f"/profiles/{new_id}"))["validity_period"] == "P20D"


# ------------------------------------------------------------------ assignment
def test_delete_in_use_409_then_unassign_200(daemon, subord):
    new_id = pid("privatessl-del")
    clone(daemon, id=new_id, sourceProfileId=SOURCE)
    ok(daemon.api("POST", f"/cas/{subord['id']}/profiles", json={"profileId": new_id}))
    assigned = ok(daemon.api("GET", f"/cas/{subord['id']}/profiles"))["profiles"]
    assert new_id in assigned

    expect_error(daemon.api("DELETE", f"/profiles/{new_id}"), 409)
    assert ok(daemon.api("GET", f"/profiles/{new_id}"))["id"] == new_id

    ok(daemon.api("DELETE", f"/cas/{subord['id']}/profiles/{new_id}"))
    assert new_id not in ok(daemon.api("GET", f"/cas/{subord['id']}/profiles"))["profiles"]
    ok(daemon.api("DELETE", f"/profiles/{new_id}"))
    expect_error(daemon.api("GET", f"/profiles/{new_id}"), 404)
    assert new_id not in list_profiles(daemon)


def test_assign_subscriber_to_root_400(daemon, root):
    r = daemon.api("POST", f"/cas/{root['id']}/profiles", json={"profileId": SOURCE})
    err = expect_error(r, 400)
    assert "allowedcatypes" in err["message"].lower(), err
    assert SOURCE not in ok(daemon.api("GET", f"/cas/{root['id']}/profiles"))["profiles"]


def test_assign_authority_to_subord_400(daemon, subord):
    prof = next(p for p in AUTHORITY if "subord" not in p["allowedCATypes"])
    expect_error(daemon.api("POST", f"/cas/{subord['id']}/profiles", json={"profileId": prof["id"]}), 400)


def test_assign_unknown_profile(daemon, subord):
    r = daemon.api("POST", f"/cas/{subord['id']}/profiles", json={"profileId": "no-such-profile"})
    expect_error(r, (400, 404))


def test_ca_create_with_profiles(daemon, root):
    want = [p["id"] for p in SUBSCRIBER[:3]]
    ca = create_ca(daemon, id=uid("pwith"), friendlyName="with", type="subord", parentId=root["id"],
                   signingKeyDetails="ECDSAP256+SHA256", subject="CN=with", enableCrl=False, profiles=want)
    got = ok(daemon.api("GET", f"/cas/{ca['id']}/profiles"))["profiles"]
    assert sorted(got) == sorted(want)


def test_custom_profiles_are_per_partition(daemon):
    new_id = pid("privatessl-iso")
    clone(daemon, id=new_id, sourceProfileId=SOURCE)
    other = daemon.creds["otheracct"]
    r = daemon.session.get(daemon.api_url(f"/profiles/{new_id}", account=other["accountId"]),
                           headers={"Authorization": f"Bearer {other['apiToken']}"})
    expect_error(r, 404)
