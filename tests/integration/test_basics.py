"""Health, version, auth errors, signing-key details, HTTPS, bootstrap, logs."""
import hashlib
import json
import re
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import run_bootstrap
from helpers import (CLASSICAL, error_of, expect_error, expected_ski, list_cas, spki_der,
                     spki_public_key_bits, uid)


def test_der_walker_self_check():
    """The SKI helper itself: the BIT STRING it extracts is the raw key (checked two other ways)."""
    k = ec.generate_private_key(ec.SECP256R1()).public_key()
    bits = spki_public_key_bits(spki_der(k))
    assert bits == k.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    r = rsa.generate_private_key(65537, 2048).public_key()
    bits = spki_public_key_bits(spki_der(r))
    assert bits == r.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    assert len(bits) > 256  # long-form length path exercised
    assert expected_ski(r) == hashlib.sha256(bits).digest()[:20]


def test_health_version(daemon):
    r = daemon.get("/healthz")
    assert r.status_code == 200
    assert r.json().get("status") == "ok"

    r = daemon.get("/version")
    assert r.status_code == 200
    assert "application/json" in r.headers.get("Content-Type", "")
    v = r.json()
    assert v.get("name") == "pkiaas"
    assert isinstance(v.get("version"), str) and re.match(r"^\d+\.\d+\.\d+", v["version"]), v

    # Unknown paths: 404 with a JSON error body.
    for path in ("/no-such-thing", f"/api/v1/partitions/{daemon.account}/no-such-thing",
                 f"/api/v1/partitions/{daemon.account}/cas/nosuchca"):
        r = daemon.session.get(daemon.url + path)
        assert r.status_code == 404, (path, r.status_code, r.text)
        err = error_of(r)
        assert err["code"] == "not_found", (path, err)

    # Missing / wrong / malformed credentials: 401 with error.code.
    cas = daemon.api_url("/cas")
    noproxy = {"http": None, "https": None}
    for headers in ({}, {"Authorization": "Bearer pk_wrong-token-0000000000000000000000000"},
                    {"Authorization": "Bearer " + daemon.token + "x"},
                    {"Authorization": "Bearer"}, {"Authorization": "Basic " + daemon.token},
                    {"Authorization": daemon.token}):
        r = requests.get(cas, headers=headers, timeout=30, proxies=noproxy)
        assert r.status_code == 401, (headers.get("Authorization", "")[:12], r.status_code, r.text)
        err = error_of(r)
        assert err["code"] == "unauthorized", err
        assert daemon.token not in r.text

    # A write without a token is refused too (and creates nothing).
    ca_id = uid("noauth")
    r = requests.post(cas, json={"id": ca_id, "type": "root", "signingKeyDetails": "ECDSAP256+SHA256",
                                 "subject": "CN=x"}, timeout=30, proxies=noproxy)
    assert r.status_code == 401, r.text
    assert error_of(r)["code"] == "unauthorized"
    assert ca_id not in list_cas(daemon, include_deleted=True)


def test_partition_isolation(daemon):
    """A token of one partition does not open another partition."""
    other = daemon.creds["otheracct"]
    assert other["accountId"] != daemon.account
    r = daemon.session.get(daemon.api_url("/cas", account=other["accountId"]))
    assert r.status_code in (403, 404), (r.status_code, r.text)
    error_of(r)
    r = daemon.session.post(daemon.api_url("/cas", account=other["accountId"]),
                            json={"id": uid("iso"), "type": "root", "signingKeyDetails": "ECDSAP256+SHA256",
                                  "subject": "CN=iso"})
    assert r.status_code in (403, 404), (r.status_code, r.text)
    # ... and the other partition's own token works there.
    r = requests.get(daemon.api_url("/cas", account=other["accountId"]),
                     headers={"Authorization": "Bearer " + other["apiToken"]}, timeout=30,
                     proxies={"http": None, "https": None})
    assert r.status_code == 200, r.text
    assert r.json()["cas"] == []


def test_key_details(daemon):
    r = daemon.api("GET", "/signing-key-details")
    assert r.status_code == 200, r.text
    body = r.json()
    rows = body.get("signingKeyDetails")
    assert isinstance(rows, list) and rows
    by_label = {}
    for row in rows:
        assert row["label"] not in by_label, f"duplicate label {row['label']}"
        by_label[row["label"]] = row
    for label, (ka, sa, va_kt, va_sa) in CLASSICAL.items():
        assert label in by_label, f"{label} missing"
        row = by_label[label]
        got = (row.get("keyAlgorithm"), row.get("signatureAlgorithm"), row.get("vaKeyType"),
               row.get("vaSignatureAlgorithm"), row.get("supported"))
        assert got == (ka, sa, va_kt, va_sa, True), (label, got)
    for pq in ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87"):
        assert pq in by_label, f"{pq} missing"
        assert by_label[pq].get("supported") is False, by_label[pq]
    unsupported = [l for l, row in by_label.items() if row.get("supported") is not True]
    assert not set(unsupported) & set(CLASSICAL)
    # Every supported label is one of the nine classical ones.
    assert {l for l, row in by_label.items() if row.get("supported") is True} == set(CLASSICAL)

    ca_id = uid("pq")
    r = daemon.api("POST", "/cas", json={"id": ca_id, "type": "root", "signingKeyDetails": "ML-DSA-44",
                                         "subject": "CN=PQ Root"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    err = error_of(r)
    assert "not yet supported" in err["message"].lower(), err
    assert ca_id not in list_cas(daemon, include_deleted=True)


def test_https(daemon):
    ca = str(daemon.service_ca)
    s = requests.Session()
    s.trust_env = False
    r = s.get(daemon.https_url + "/healthz", verify=ca, timeout=30)
    assert r.status_code == 200
    assert r.json().get("status") == "ok"
    # Same API over HTTPS.
    r = s.get(f"{daemon.https_url}/api/v1/partitions/{daemon.account}/signing-key-details", verify=ca,
              headers={"Authorization": f"Bearer {daemon.token}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert "signingKeyDetails" in r.json()
    r = s.get(f"{daemon.https_url}/api/v1/partitions/{daemon.account}/cas", verify=ca, timeout=30)
    assert r.status_code == 401
    # Without the service CA as trust anchor, verification fails (it is a private CA).
    # (A new session: a pooled connection would skip the handshake.)
    fresh = requests.Session()
    fresh.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        fresh.get(daemon.https_url + "/healthz", verify=True, timeout=30)


def test_bootstrap_twice(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    first = run_bootstrap(data, "twice")
    assert first.returncode == 0, first.stderr
    creds = json.loads(first.stdout)
    assert creds["accountId"] == "twice"
    assert creds["region"] == "us"
    assert creds["owner"]["email"] == "owner@twice.example"
    assert isinstance(creds["owner"]["password"], str) and len(creds["owner"]["password"]) >= 12
    assert isinstance(creds["apiToken"], str) and len(creds["apiToken"]) >= 20
    assert isinstance(creds["subscriptionId"], str) and creds["subscriptionId"]

    second = run_bootstrap(data, "twice")
    assert second.returncode != 0
    assert second.stderr.strip(), "no message on stderr"
    assert "twice" in second.stderr or "exist" in second.stderr.lower(), second.stderr
    assert creds["apiToken"] not in second.stdout + second.stderr
    assert "apiToken" not in second.stdout

    # Another partition in the same data directory is fine, with its own token.
    third = run_bootstrap(data, "another")
    assert third.returncode == 0, third.stderr
    creds3 = json.loads(third.stdout)
    assert creds3["accountId"] == "another"
    assert creds3["apiToken"] != creds["apiToken"]


def test_logs_are_json_and_secret_free(daemon):
    daemon.get("/healthz")
    daemon.api("GET", "/cas")
    # Failed TLS handshakes and plain HTTP on the HTTPS port must be logged as JSON too (or not at all).
    fresh = requests.Session()
    fresh.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        fresh.get(daemon.https_url + "/healthz", verify=True, timeout=30)
    try:
        requests.get(f"http://127.0.0.1:{daemon.https_port}/healthz", timeout=5,
                     proxies={"http": None, "https": None})
    except requests.RequestException:
        pass
    for _ in range(50):  # the request line may be written just after the response
        text = daemon.log_text()
        if f"/api/v1/partitions/{daemon.account}/cas" in text:
            break
        time.sleep(0.1)
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("--- pkiaasd serve")]
    assert lines, "daemon wrote no log lines"
    seen_request = False
    for line in lines:
        try:
            obj = json.loads(line)  # every line is one JSON object
        except ValueError:
            pytest.fail(f"daemon stderr line is not JSON: {line!r}")
        assert isinstance(obj, dict), line
        if (obj.get("path") == f"/api/v1/partitions/{daemon.account}/cas" and obj.get("method") == "GET"
                and obj.get("status") == 200):
            seen_request = True
            assert obj.get("partition") == daemon.account, obj
            assert isinstance(obj.get("ms"), (int, float)), obj
    assert seen_request, "no request log line for GET .../cas"
    for secret in (daemon.token, daemon.creds[daemon.partition]["owner"]["password"]):
        assert secret not in text, "a secret appears in the daemon log"
