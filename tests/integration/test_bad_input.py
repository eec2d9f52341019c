"""Bad requests are refused with 4xx JSON errors naming the field, and create nothing."""
import json

import pytest
import requests

from helpers import add_years, create_ca, error_of, fmt_time, list_cas, uid, utcnow

ROOT = {"type": "root", "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=Bad Input"}


def _expect(resp, statuses, field, mention=None):
    if isinstance(statuses, int):
        statuses = (statuses,)
    assert resp.status_code in statuses, f"expected {statuses}, got {resp.status_code}: {resp.text[:400]}"
    err = error_of(resp)
    word = mention or field
    if word:
        assert word.lower() in err["message"].lower(), f"message {err['message']!r} does not mention {word!r}"
    if field and isinstance(err.get("field"), str) and err["field"]:
        assert err["field"] == field, f"error.field {err['field']!r} != {field!r}"
    return err


FOUR_XX = tuple(range(400, 500))


def test_bad_input(daemon):
    d = daemon
    root = create_ca(d, id=uid("bad-root"), **ROOT)
    sub = create_ca(d, id=uid("bad-sub"), type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
                    subject="CN=Bad Sub", enableCrl=False)
    now = utcnow()
    short_root = create_ca(d, id=uid("bad-short"), expiryDate=fmt_time(add_years(now, 3)), **ROOT)
    before = set(list_cas(d, include_deleted=True))
    tried = []

    def post(body, statuses, field, mention=None):
        if "id" in body and isinstance(body["id"], str):
            tried.append(body["id"])
        r = d.api("POST", "/cas", json=body)
        return _expect(r, statuses, field, mention)

    # --- identifiers
    for bad in ("a", "abcdefghij123456789", "Upper-case", "dot.id", "sp ace", "sla/sh", "ünï", ""):
        post(dict(ROOT, id=bad), 400, "id")
    post(dict(ROOT), 400, "id")  # missing
    post(dict(ROOT, id=12345), 400, "id")  # not a string
    err = post(dict(ROOT, id=root["id"]), 409, "id")
    assert err["code"] == "conflict", err

    # --- subject
    for bad in ("CN", "", "CN=", "=x", "CN=a,,O=b"):
        post(dict(ROOT, id=uid("bs"), subject=bad), 400, "subject")
    post(dict(ROOT, id=uid("bs"), subject="FOO=bar"), 400, "subject", mention="FOO")
    post({k: v for k, v in dict(ROOT, id=uid("bs")).items() if k != "subject"}, 400, "subject")

    # --- key label, type
    post(dict(ROOT, id=uid("bk"), signingKeyDetails="RSA-1024+PKCS15-SHA1"), 400, "signingKeyDetails")
    post({k: v for k, v in dict(ROOT, id=uid("bk")).items() if k != "signingKeyDetails"}, 400,
         "signingKeyDetails")
    post(dict(ROOT, id=uid("bt"), type="banana"), 400, "type")
    post({k: v for k, v in dict(ROOT, id=uid("bt")).items() if k != "type"}, 400, "type")

    # --- parents
    sub_body = {"type": "subord", "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=Child",
                "enableCrl": True}
    post(dict(sub_body, id=uid("bp")), 400, "parentId")  # missing
    post(dict(sub_body, id=uid("bp"), type="intermediate"), 400, "parentId")
    post(dict(sub_body, id=uid("bp"), parentId="no-such-ca"), (400, 404), "parentId")
    post(dict(sub_body, id=uid("bp"), parentId=sub["id"]), FOUR_XX, "parentId")  # subord cannot certify
    post(dict(sub_body, id=uid("bp"), type="intermediate", parentId=sub["id"]), FOUR_XX, "parentId")

    # --- expiry
    post(dict(ROOT, id=uid("be"), expiryDate="2020-01-01T00:00:00Z"), 400, "expiryDate")
    post(dict(ROOT, id=uid("be"), expiryDate=fmt_time(now)), 400, "expiryDate")
    post(dict(ROOT, id=uid("be"), expiryDate="next tuesday"), 400, "expiryDate")
    post(dict(ROOT, id=uid("be"), expiryDate="2040-13-01T00:00:00Z"), 400, "expiryDate")
    post(dict(sub_body, id=uid("be"), parentId=short_root["id"], expiryDate=fmt_time(add_years(now, 5))),
         FOUR_XX, "expiryDate")

    # --- flags and numbers
    post(dict(ROOT, id=uid("bo"), enableOcsp=True), FOUR_XX, "enableOcsp")  # OCSP on a root
    post(dict(sub_body, id=uid("bo"), type="intermediate", parentId=root["id"], enableOcsp=True), FOUR_XX,
         "enableOcsp")
    post(dict(sub_body, id=uid("bo"), parentId=root["id"], enableCrl="yes"), 400, "enableCrl")
    post(dict(ROOT, id=uid("bn"), pathLength=-1), 400, "pathLength")
    post(dict(ROOT, id=uid("bn"), pathLength="one"), 400, "pathLength")
    post(dict(ROOT, id=uid("bn"), friendlyName=42), 400, "friendlyName")

    # --- bodies that are not a JSON object
    url = d.api_url("/cas")
    hdr = {"Content-Type": "application/json"}
    for raw in (b'{"id":', b"{'id': 'x'}", b"\xff\xfe{}", b""):
        r = d.session.post(url, data=raw, headers=hdr)
        err = _expect(r, 400, None)
        assert err["code"] in ("invalid_json", "invalid_request"), (raw, err)
    r = d.session.post(url, data=b'{"id":', headers=hdr)
    assert error_of(r)["code"] == "invalid_json"
    for raw in (b"[1, 2]", b'"root"', b"42", b"null"):
        r = d.session.post(url, data=raw, headers=hdr)
        _expect(r, 400, None)

    # --- a 2 MB body
    big = json.dumps(dict(ROOT, id=uid("big"), friendlyName="x" * (2 * 1024 * 1024))).encode()
    try:
        r = d.session.post(url, data=big, headers=hdr)
    except requests.ConnectionError as exc:
        pytest.fail(f"2 MB body: the daemon dropped the connection without an HTTP answer ({exc})")
    assert r.status_code in (413, 400), (r.status_code, r.text[:200])
    err = error_of(r)
    if r.status_code == 413:
        assert err["code"] == "payload_too_large", err

    # --- wrong methods and missing objects
    r = d.session.put(url, json=dict(ROOT, id=uid("bm")))
    assert r.status_code == 405, (r.status_code, r.text)
    assert error_of(r)["code"] == "method_not_allowed"
    r = d.api("DELETE", "/cas/no-such-ca")
    assert r.status_code == 404, r.text
    assert error_of(r)["code"] == "not_found"
    r = d.api("GET", "/cas/no-such-ca/certificate")
    assert r.status_code == 404
    error_of(r)

    # --- nothing was created, and the daemon is fine
    after = set(list_cas(d, include_deleted=True))
    assert after == before, f"bad requests created CAs: {after - before}"
    assert d.get("/healthz").status_code == 200
    assert d.api("GET", "/cas").status_code == 200
