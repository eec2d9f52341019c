"""Rate limits (GCRA, per partition and capability): 100 requests / 10 s for standard subscriptions, then
HTTP 429 TooManyRequests with Retry-After; capabilities and partitions are independent; /healthz and /version
are never limited; premium subscriptions (>= 1,000,000 purchased certificates) get their own limit."""
import json
import math
import subprocess
import time

import pytest

import conftest
from helpers import error_of
from status_helpers import ConfiguredDaemon, crl_path, issue, make_root, make_sub, ocsp_request, ok, post_ocsp

WINDOW_S = 10
STANDARD = 100
PREMIUM = 200  # lowered from the default 1,000 to keep the test short
EMISSION_S = WINDOW_S / STANDARD  # GCRA lets one request through per window/limit after the burst


def _bootstrap_premium(d, partition):
    """A partition with 1,000,000 purchased certificates (premium tier)."""
    cp = subprocess.run(
        [str(conftest.PKIAASD), "bootstrap", "--data-dir", str(d.data_dir), "--partition", partition,
         "--owner-email", f"owner@{partition}.example", "--json", "--certificates", "1000000",
         *d.store_args()],
        capture_output=True, text=True, timeout=60, env=conftest.clean_env())
    assert cp.returncode == 0, f"bootstrap --certificates 1000000 failed ({cp.returncode}): {cp.stderr}"
    creds = json.loads(cp.stdout)
    d.creds[partition] = creds
    return creds


@pytest.fixture
def rated(tmp_path):
    conftest._require_binaries()
    d = ConfiguredDaemon(tmp_path / "pkiaasd", [f"rate_limit_standard = {STANDARD}",
                                                f"rate_limit_premium = {PREMIUM}",
                                                f"rate_limit_window_s = {WINDOW_S}"])
    d.bootstrap()             # conftest's purchase: 999,999 certificates -> standard
    d.bootstrap("otheracct")  # standard as well
    _bootstrap_premium(d, "premiumco")
    d.start()
    yield d
    rc = d.stop()
    assert rc in (0, None), f"pkiaasd exited with {rc} on SIGTERM\n{d.tail()}"


def _session(token):
    s = conftest._TimeoutSession()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def _check_429(r):
    assert r.status_code == 429, r.status_code
    err = error_of(r)
    assert err["code"] == "TooManyRequests", err
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.isdigit(), f"Retry-After {ra!r} is not an integer number of seconds"
    assert 1 <= int(ra) <= WINDOW_S, f"Retry-After {ra}"
    return int(ra)


def _burst(session, url, n):
    """n sequential GETs; returns (responses, seconds from the first send to the last answer)."""
    out = []
    t0 = time.monotonic()
    for _ in range(n):
        out.append(session.get(url))
    return out, time.monotonic() - t0


def _expect_burst(responses, elapsed, limit, what):
    """GCRA: the first `limit` pass, then at most one per emission interval."""
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, f"{what}: unexpected statuses {sorted(set(statuses))}"
    assert elapsed < WINDOW_S, f"{what}: the burst took {elapsed:.2f} s, too slow to test the limit"
    first_bad = next((i for i, s in enumerate(statuses) if s != 200), len(statuses))
    assert first_bad >= limit, f"{what}: request {first_bad + 1} refused within the burst of {limit}"
    refills = math.floor(elapsed / (WINDOW_S / limit))
    passed = statuses.count(200)
    assert limit <= passed <= limit + refills, (
        f"{what}: {passed} of {len(statuses)} passed in {elapsed:.3f} s; expected {limit} + at most {refills}")
    retry = [_check_429(r) for r in responses if r.status_code == 429]
    # Hammering leaves the bucket at most one emission interval short, so Retry-After is that, rounded up.
    assert all(x == max(1, math.ceil(WINDOW_S / limit)) for x in retry), f"{what}: Retry-After values {set(retry)}"
    return passed, retry


def test_standard_limit(rated):
    d = rated
    tmp = d.workdir
    # Set-up (a CA with CRL and OCSP and a certificate), then let the buckets refill.
    root = make_root(d, tmp)
    sub = make_sub(d, tmp, root)
    leaf = issue(d, sub, tmp)
    time.sleep(1.0)

    # 150 quick GET /cas: 100 pass, the rest 429 (minus the tokens that refill meanwhile).
    url = d.api_url("/cas")
    responses, elapsed = _burst(d.session, url, 150)
    passed, retry = _expect_burst(responses, elapsed, STANDARD, "standard partition")
    refused = 150 - passed
    assert 50 - math.floor(elapsed / EMISSION_S) <= refused <= 50, (refused, elapsed)
    assert responses[-1].status_code == 429 or elapsed >= EMISSION_S
    msg = error_of(next(r for r in responses if r.status_code == 429))["message"]
    assert msg

    # Other capabilities have buckets of their own: CRL, OCSP and certificate creation still work,
    # while the "other" bucket keeps refusing.
    t0 = time.monotonic()
    refused_other = 0
    for _ in range(10):
        r = d.get(crl_path(d, sub.id))
        assert r.status_code == 200, f"CRL download refused after the admin API was limited: {r.status_code}"
        refused_other += d.session.get(url).status_code == 429
    _, ocsp_resp = post_ocsp(d, sub.id, ocsp_request(leaf.cert, sub.cert))
    assert ocsp_resp.response_status.name == "SUCCESSFUL"
    issue(d, sub, tmp)  # POST .../certificates: 201 (the "certificate" bucket)
    assert refused_other >= 10 - math.floor((time.monotonic() - t0) / EMISSION_S) - 1, refused_other

    # /healthz and /version are never limited.
    for _ in range(STANDARD + 20):
        assert d.get("/healthz").status_code == 200
    for _ in range(20):
        assert d.get("/version").status_code == 200

    # Another partition is unaffected.
    other = _session(d.creds["otheracct"]["apiToken"])
    b_url = d.api_url("/cas", d.creds["otheracct"]["accountId"])
    for i in range(STANDARD):
        r = other.get(b_url)
        assert r.status_code == 200, f"second partition refused at request {i + 1}: {r.status_code} {r.text[:200]}"

    # After Retry-After seconds the first partition is served again.
    last = d.session.get(url)
    wait = _check_429(last) if last.status_code == 429 else max(retry)
    time.sleep(wait)
    r = d.session.get(url)
    assert r.status_code == 200, f"still refused {wait} s after Retry-After: {r.status_code} {r.text[:200]}"


def test_other_capabilities_limited_too(rated):
    """The CRL bucket: 100 quick downloads pass, then 429 with Retry-After (the API bucket is untouched)."""
    d = rated
    tmp = d.workdir
    root = make_root(d, tmp)
    sub = make_sub(d, tmp, root)
    s = conftest._TimeoutSession()
    responses, elapsed = _burst(s, d.url + crl_path(d, sub.id), 130)
    passed, _ = _expect_burst(responses, elapsed, STANDARD, "CRL downloads")
    assert passed < 130 or elapsed >= 30 * EMISSION_S
    assert d.session.get(d.api_url("/cas")).status_code == 200


def test_premium_limit(rated):
    d = rated
    prem = d.creds["premiumco"]
    s = _session(prem["apiToken"])
    # The tiers follow the purchase: 1,000,000 certificates is premium, 999,999 standard.
    assert ok(s.get(d.api_url("/inventory", prem["accountId"])))["certificates"]["purchased"] == 1000000
    assert ok(d.api("GET", "/inventory"))["certificates"]["purchased"] == 999999
    time.sleep(0.5)  # both buckets full again

    responses, elapsed = _burst(s, d.api_url("/cas", prem["accountId"]), PREMIUM + 50)
    _expect_burst(responses, elapsed, PREMIUM, "premium partition")
    responses, elapsed = _burst(d.session, d.api_url("/cas"), STANDARD + 30)
    _expect_burst(responses, elapsed, STANDARD, "999,999-certificate partition")
