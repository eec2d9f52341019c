"""API tokens: create (shown once), list (never the secret), revoke (unusable at once), name and role rules,
Owners only."""
import secrets

import pytest

import conftest
from helpers import error_of, expect_error
from status_helpers import ok

ROLES = ["Owners", "CA Administrators", "Certificate Administrators", "CA Auditors", "Protocol Operators",
         "Protocol Auditors"]
LIST_KEYS = {"name", "roles", "createdAt", "revokedAt"}


def _name(prefix="tok"):
    return f"{prefix}-{secrets.token_hex(5)}"


def _session(token):
    s = conftest._TimeoutSession()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def _get_cas(d, token):
    return _session(token).get(d.api_url("/cas"))


def _create(d, name, roles, expect=201):
    r = d.api("POST", "/tokens", json={"name": name, "roles": roles})
    assert r.status_code == expect, f"POST /tokens {name!r} {roles!r} -> {r.status_code}: {r.text[:400]}"
    return r


def _listed(d):
    body = ok(d.api("GET", "/tokens"))
    assert set(body) == {"tokens"}, body
    out = {}
    for t in body["tokens"]:
        assert set(t) == LIST_KEYS, f"token listing has other fields: {t}"
        out[t["name"]] = t
    return out


def test_create_list_revoke(daemon):
    d = daemon
    name = _name()
    r = _create(d, name, ["Certificate Administrators", "CA Auditors"])
    body = r.json()
    assert set(body) >= {"name", "roles", "token"}, body
    assert body["name"] == name
    assert body["roles"] == ["Certificate Administrators", "CA Auditors"]
    token = body["token"]
    assert isinstance(token, str) and len(token) >= 32 and token != d.token
    assert "application/json" in r.headers.get("Content-Type", "")

    # The new token works, within its roles.
    assert _get_cas(d, token).status_code == 200
    expect_error(_session(token).get(d.api_url("/tokens")), 403, code="forbidden")

    # Listed without the secret.
    r = d.api("GET", "/tokens")
    assert token not in r.text and token[3:] not in r.text
    listed = _listed(d)
    assert listed[name]["roles"] == ["Certificate Administrators", "CA Auditors"]
    assert listed[name]["revokedAt"] is None
    assert listed[name]["createdAt"].endswith("Z")
    assert listed["bootstrap"]["roles"] == ["Owners"] and listed["bootstrap"]["revokedAt"] is None

    # Revocation: 200, and the token is refused at once (it was just used, so it sits in the cache).
    for _ in range(3):
        assert _get_cas(d, token).status_code == 200
    r = d.api("DELETE", f"/tokens/{name}")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": name, "revoked": True}
    for _ in range(5):
        r = _get_cas(d, token)
        expect_error(r, 401, code="unauthorized")
        assert "Bearer" in r.headers.get("WWW-Authenticate", "")
    listed = _listed(d)
    assert listed[name]["revokedAt"] is not None and listed[name]["revokedAt"].endswith("Z")
    # Revoking again, or an unknown name: 404.
    expect_error(d.api("DELETE", f"/tokens/{name}"), 404)
    expect_error(d.api("DELETE", f"/tokens/{_name('nosuch')}"), 404)

    # The name is free again once its token is revoked; the old token stays dead.
    r = _create(d, name, ["CA Auditors"])
    token2 = r.json()["token"]
    assert token2 != token
    assert _get_cas(d, token2).status_code == 200
    expect_error(_get_cas(d, token), 401)

    # Neither the tokens nor their hashes' preimages appear in the daemon's log.
    log = d.log_text()
    for t in (token, token2, d.token):
        assert t not in log, "a token value appears in the daemon log"
        assert t[3:] not in log, "a token's random part appears in the daemon log"


def test_every_role_can_be_granted(daemon):
    d = daemon
    for role in ROLES:
        name = _name("role")
        body = _create(d, name, [role]).json()
        assert body["roles"] == [role]
        assert _get_cas(d, body["token"]).status_code == 200  # every role may browse CAs
        r = _session(body["token"]).get(d.api_url("/tokens"))
        if role == "Owners":
            assert r.status_code == 200, r.text
        else:
            expect_error(r, 403, code="forbidden")
        assert _listed(d)[name]["roles"] == [role]


def test_token_value_not_in_audit(daemon):
    d = daemon
    name = _name("aud")
    token = _create(d, name, ["CA Auditors"]).json()["token"]
    assert _get_cas(d, token).status_code == 200
    ok(d.api("DELETE", f"/tokens/{name}"))
    # the whole log, page by page (other suites fill it with thousands of records)
    text, after = "", None
    for _ in range(200):
        r = d.api("GET", "/audit", params={"limit": "1000", **({"after": after} if after is not None else {})})
        assert r.status_code == 200, r.text
        text += r.text
        after = r.json().get("next")
        if after is None:
            break
    else:
        pytest.fail("the audit log did not end within 200 pages")
    assert token not in text and token[3:] not in text
    assert name in text, "token creation / revocation is not audited"


@pytest.mark.parametrize("bad", ["", "a", "x" * 65, "Upper", "has space", "dot.name", "slash/x", "émoji", "tab\t",
                                 "semi;colon"], ids=repr)
def test_bad_names(daemon, bad):
    r = _create(daemon, bad, ["CA Auditors"], expect=400)
    err = expect_error(r, 400)
    assert err.get("field") == "name", err
    assert bad not in {t for t in _listed(daemon)} or bad == ""


@pytest.mark.parametrize("body", [{"roles": ["CA Auditors"]}, {"name": 12, "roles": ["CA Auditors"]},
                                  {"name": None, "roles": ["CA Auditors"]}, {"name": ["x"], "roles": ["CA Auditors"]}],
                         ids=["missing", "int", "null", "list"])
def test_name_not_a_string(daemon, body):
    err = expect_error(daemon.api("POST", "/tokens", json=body), 400)
    assert err.get("field") == "name", err


def test_name_limits_ok(daemon):
    for name in ("q" + secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz"), "a_b-9" + secrets.token_hex(3),
                 "z" * 54 + secrets.token_hex(5)):
        assert 2 <= len(name) <= 64
        body = _create(daemon, name, ["CA Auditors"]).json()
        assert body["name"] == name
        assert name in _listed(daemon)


@pytest.mark.parametrize("roles", [["Nobody"], ["owners"], ["Owner"], [], "Owners", None, [3], ["Owners", "Admins"],
                                   [""], [" Owners"], [","], [",Owners"], ["Owners", None]], ids=repr)
def test_bad_roles(daemon, roles):
    name = _name("badrole")
    r = daemon.api("POST", "/tokens", json={"name": name, "roles": roles})
    err = expect_error(r, 400)
    assert err.get("field") == "roles", err
    assert name not in _listed(daemon)


def test_missing_roles_and_unknown_keys(daemon):
    d = daemon
    err = expect_error(d.api("POST", "/tokens", json={"name": _name()}), 400)
    assert err.get("field") == "roles", err
    expect_error(d.api("POST", "/tokens", json={"name": _name(), "roles": ["Owners"], "token": "pk_mine"}), 400)
    expect_error(d.api("POST", "/tokens", data="not json", headers={"Content-Type": "application/json"}), 400)
    expect_error(d.api("POST", "/tokens", json=["x"]), 400)


def test_duplicate_live_name(daemon):
    d = daemon
    name = _name("dup")
    first = _create(d, name, ["CA Auditors"]).json()["token"]
    err = expect_error(_create(d, name, ["Owners"], expect=409), 409, code="conflict")
    assert err.get("field") == "name", err
    # The first token is untouched and keeps its roles.
    assert _listed(d)[name]["roles"] == ["CA Auditors"]
    assert _get_cas(d, first).status_code == 200
    expect_error(_session(first).get(d.api_url("/tokens")), 403)
    expect_error(d.api("POST", "/tokens", json={"name": "bootstrap", "roles": ["Owners"]}), 409)


def test_non_owners_cannot_manage_tokens(daemon):
    d = daemon
    victim = _name("keep")
    _create(d, victim, ["CA Auditors"])
    for role in ROLES[1:]:
        tok = _create(d, _name("no"), [role]).json()["token"]
        s = _session(tok)
        for method, path, kw in (("GET", "/tokens", {}),
                                 ("POST", "/tokens", {"json": {"name": _name("esc"), "roles": ["Owners"]}}),
                                 ("DELETE", f"/tokens/{victim}", {}),
                                 ("DELETE", "/tokens/bootstrap", {})):
            r = s.request(method, d.api_url(path), **kw)
            err = expect_error(r, 403, code="forbidden")
            assert "token" not in r.json() and "tokens" not in r.json(), (role, method, path)
            assert err["message"]
    listed = _listed(d)
    assert listed[victim]["revokedAt"] is None
    assert listed["bootstrap"]["revokedAt"] is None
    assert not [n for n in listed if n.startswith("esc-")]


def test_bad_credentials(daemon):
    d = daemon
    cases = [None, "", "Bearer", "Bearer ", "Bearer pk_" + secrets.token_urlsafe(32), "Basic dXNlcjpwYXNz",
             f"bearer-ish {d.token}", f"Bearer {d.token}x", f"Bearer {d.token[:-1]}"]
    for auth in cases:
        headers = {} if auth is None else {"Authorization": auth}
        s = conftest._TimeoutSession()
        r = s.get(d.api_url("/tokens"), headers=headers)
        err = expect_error(r, 401, code="unauthorized")
        assert "tokens" not in r.json(), auth
        assert err["message"]


def test_tokens_are_per_partition(daemon):
    d = daemon
    other = d.creds["otheracct"]
    b = _session(other["apiToken"])
    name = _name("part")
    a_token = _create(d, name, ["Owners"]).json()["token"]
    # B cannot see, create in, or revoke A's tokens.
    r = b.get(d.api_url("/tokens"))
    expect_error(r, 404)
    assert name not in r.text
    expect_error(b.delete(d.api_url(f"/tokens/{name}")), 404)
    expect_error(b.post(d.api_url("/tokens"), json={"name": _name("x"), "roles": ["Owners"]}), 404)
    # Revoking "the same name" in B does not touch A's token.
    expect_error(b.delete(d.api_url(f"/tokens/{name}", other["accountId"])), 404)
    assert _get_cas(d, a_token).status_code == 200
    # A's Owners token does nothing in B.
    s = _session(a_token)
    expect_error(s.get(d.api_url("/tokens", other["accountId"])), 404)
    expect_error(s.post(d.api_url("/tokens", other["accountId"]), json={"name": _name("y"), "roles": ["Owners"]}),
                 404)
    # The same name may exist in both partitions.
    r = b.post(d.api_url("/tokens", other["accountId"]), json={"name": name, "roles": ["CA Auditors"]})
    assert r.status_code == 201, r.text
    b_token = r.json()["token"]
    assert _session(b_token).get(d.api_url("/cas", other["accountId"])).status_code == 200
    expect_error(_session(b_token).get(d.api_url("/cas")), 404)
    r = b.delete(d.api_url(f"/tokens/{name}", other["accountId"]))
    assert r.status_code == 200, r.text
    assert _get_cas(d, a_token).status_code == 200, "revoking B's token revoked A's token of the same name"
    error_of(_session(b_token).get(d.api_url("/cas", other["accountId"])))


# Last in the file (a known daemon bug at the time of writing): a role name is one role, not a list.
@pytest.mark.parametrize("roles", [["Owners,CA Auditors"], ["CA Auditors,Owners"], ["Owners,"]], ids=repr)
def test_role_names_are_not_split_on_commas(daemon, roles):
    """openapi.yaml: roles items are an enum of the six names; "A,B" is none of them."""
    name = _name("comma")
    r = daemon.api("POST", "/tokens", json={"name": name, "roles": roles})
    assert r.status_code == 400, (f"POST /tokens roles={roles!r} -> {r.status_code} (expected 400 field roles): "
                                  f"{r.text[:300]}")
    assert error_of(r).get("field") == "roles"
    assert name not in _listed(daemon)
