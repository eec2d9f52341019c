"""CA Gateway v1: certificate-event paging over more than 1,000 events, replay of the request shapes the
public Entrust clients send (HashiCorp Vault plugin enrolment, cagw-shell-util revoke, event polling), and
the partition rate limit as seen through the CA Gateway (429 TooManyRequests + Retry-After).

Everything is checked on the bytes a client receives: JSON bodies, headers, certificates parsed with
python3-cryptography."""
import base64
import datetime
import json
import math
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

import conftest
from status_helpers import ConfiguredDaemon, fetch_crl, make_root, make_sub, ok

PROFILE = "privatessl-tls-server"
PAGE_MAX = 50
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # base64url without padding: safe in a query string as is
EVENT_DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")

N_ISSUED = 1000
N_REVOKED = 100
N_LATE = 20


# ---------------------------------------------------------------------------------------------- helpers
class Cred:
    """A CA Gateway credential (PKCS#12 from the admin API) used through curl --cert-type P12, as shell tools
    do. `call` returns (HTTP status, parsed JSON or None, response headers with lower-case names)."""

    def __init__(self, d, tmp, cred_id, grants):
        r = d.api("POST", "/cagw-credentials", json={"id": cred_id, "name": cred_id, "grants": grants})
        body = ok(r, 201)
        assert body["fileName"] == f"pkcs12-{cred_id}.p12"
        self.tmp = Path(tmp)
        self.path = self.tmp / body["fileName"]
        self.path.write_bytes(base64.b64decode(body["pkcs12"]))
        self.password = body["password"]
        self.d = d
        self.id = cred_id
        self._n = 0

    def url(self, path):
        return f"https://127.0.0.1:{self.d.https_port}/cagw/v1{path}"

    def call(self, method, path, data=None, headers=None, raw=None, json_content_type=True):
        self._n += 1
        hdr_file = self.tmp / f"{self.id}-hdr-{self._n}.txt"
        cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-D", str(hdr_file),
               "--cacert", str(self.d.service_ca), "--cert-type", "P12", "--cert", f"{self.path}:{self.password}",
               "-X", method]
        if json_content_type:
            cmd += ["-H", "Content-Type: application/json"]
        for h in headers or ():
            cmd += ["-H", h]
        if data is not None:
            cmd += ["--data-binary", json.dumps(data)]
        elif raw is not None:
            cmd += ["--data-binary", raw]
        cmd.append(self.url(path))
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=conftest.clean_env())
        assert out.returncode == 0, f"curl {method} {path}: {out.stderr}"
        text, _, code = out.stdout.rpartition("\n")
        hdrs = {}
        for line in hdr_file.read_text(errors="replace").splitlines()[1:]:
            name, sep, value = line.partition(":")
            if sep:
                hdrs[name.strip().lower()] = value.strip()
        hdr_file.unlink()
        body = None
        if text.strip():
            assert hdrs.get("content-type", "").startswith("application/json"), (code, hdrs, text[:300])
            body = json.loads(text)
        return int(code), body, hdrs


def _csr(cn, dns=None, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), critical=False)
    return b.sign(key, hashes.SHA256())


def _rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _not_before(cert):  # python3-cryptography 38 has no *_utc properties
    return cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def _not_after(cert):
    return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _verify_issued_by(cert, issuer):
    assert cert.issuer == issuer.subject
    issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                               ec.ECDSA(cert.signature_hash_algorithm))  # the test CAs are ECDSA P-256


def _event_time(s):
    assert EVENT_DATE_RE.match(s), f"eventDate {s!r} is not RFC 3339 UTC"
    return datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)


def _events_path(caid, start, size, token=None, extra=""):
    q = f"startDate={start}&preferredPageSize={size}"
    if token is not None:
        q += f"&nextPageIndex={token}"
    return f"/certificate-authorities/{caid}/certificate-events?{q}{extra}"


def _check_page(body, cap):
    assert body["type"] == "CertificateEventsResponse", body
    assert set(body) >= {"events", "nextPageIndex", "morePages"}, sorted(body)
    assert isinstance(body["events"], list) and isinstance(body["morePages"], bool), body
    assert len(body["events"]) <= cap, f"page of {len(body['events'])} events, above the cap of {cap}"
    tok = body["nextPageIndex"]
    if body["events"]:
        assert isinstance(tok, str) and TOKEN_RE.match(tok), f"nextPageIndex {tok!r} is not URL-safe"
    else:
        assert tok is None and body["morePages"] is False, body
    if body["morePages"]:
        assert body["events"], "morePages is true on an empty page"


def walk(cred, caid, start, size, token=None, max_pages=None, cap=PAGE_MAX):
    """Follows nextPageIndex while morePages is true (or up to max_pages pages).
    Returns (events in order, list of page sizes, last nextPageIndex, morePages of the last page)."""
    events, sizes = [], []
    pages = 0
    while True:
        code, body, _ = cred.call("GET", _events_path(caid, start, size, token))
        assert code == 200, (code, body)
        _check_page(body, cap)
        events += body["events"]
        sizes.append(len(body["events"]))
        pages += 1
        if body["nextPageIndex"] is not None:
            token = body["nextPageIndex"]
        if not body["morePages"] or (max_pages is not None and pages >= max_pages):
            return events, sizes, token, body["morePages"]
        assert pages < 100, "paging does not end (more than 100 pages for ~1,100 events)"


def _key(ev):
    return ev["action"], int(ev["serialNumber"], 16)


def _check_event_certificate(ev, ca_cert):
    assert ev.get("certificate"), f"event without certificate: {ev}"
    cert = x509.load_der_x509_certificate(base64.b64decode(ev["certificate"], validate=True))
    assert cert.serial_number == int(ev["serialNumber"], 16), (ev["serialNumber"], hex(cert.serial_number))
    assert cert.issuer == ca_cert.subject
    return cert


# ---------------------------------------------------------------------------------------------- 1. paging
class _Issuer:
    """Issues certificates through the admin REST API from a thread pool (one requests session per thread),
    all from ONE CSR."""

    def __init__(self, d, ca_id):
        self.d, self.ca_id = d, ca_id
        self.csr = _csr("bulk.events.example", ["bulk.events.example"]).public_bytes(
            serialization.Encoding.PEM).decode()
        self.local = threading.local()

    def _session(self):
        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = conftest._TimeoutSession()
            s.headers["Authorization"] = f"Bearer {self.d.token}"
        return s

    def one(self, _=None):
        r = self._session().post(self.d.api_url(f"/cas/{self.ca_id}/certificates"),
                                 json={"profileId": PROFILE, "csr": self.csr})
        body = ok(r, 201)
        cert = x509.load_pem_x509_certificate(body["certificate"].encode())
        assert cert.serial_number == int(body["serialNumber"], 16)
        return body["serialNumber"]

    def many(self, n):
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(self.one, range(n)))


@pytest.fixture(scope="module")
def bulk(daemon, tmp_path_factory):
    d = daemon
    tmp = tmp_path_factory.mktemp("cagw-events")
    start = _rfc3339(_utcnow() - datetime.timedelta(seconds=5))
    root = make_root(d, tmp, "evroot")
    sub = make_sub(d, tmp, root, "evsub")  # privatessl-tls-server assigned
    cred = Cred(d, tmp, f"ev-{sub.id}"[:32], [{"caId": sub.id, "roles": ["Certificate Administrators"]}])
    issuer = _Issuer(d, sub.id)
    serials = issuer.many(N_ISSUED)
    assert len({int(s, 16) for s in serials}) == N_ISSUED, "duplicate serial numbers"
    revoked = serials[::N_ISSUED // N_REVOKED][:N_REVOKED]
    r = ok(d.api("POST", f"/cas/{sub.id}/certificates/revoke-batch",
                 json={"serials": revoked, "reason": "superseded"}))
    assert r["summary"]["revoked"] == N_REVOKED, r["summary"]
    return {"d": d, "tmp": tmp, "sub": sub, "cred": cred, "caid": f"{d.account}~{sub.id}", "start": start,
            "issued": {int(s, 16) for s in serials}, "revoked": {int(s, 16) for s in revoked}, "issuer": issuer}


def _check_complete(events, issued, revoked, sub_cert, start):
    keys = [_key(e) for e in events]
    dups = {k for k in keys if keys.count(k) > 1} if len(set(keys)) != len(keys) else set()
    assert not dups, f"{len(dups)} events returned more than once, e.g. {sorted(dups)[:3]}"
    got_issued = {s for a, s in keys if a == "issued"}
    got_revoked = {s for a, s in keys if a == "revoked"}
    assert {a for a, _ in keys} <= {"issued", "revoked"}, {a for a, _ in keys}
    assert got_issued == issued, (f"issued events: {len(got_issued)}, expected {len(issued)}; "
                                  f"missing {len(issued - got_issued)}, unexpected {len(got_issued - issued)}")
    assert got_revoked == revoked, (f"revoked events: {len(got_revoked)}, expected {len(revoked)}; "
                                    f"missing {len(revoked - got_revoked)}")
    assert len(events) == len(issued) + len(revoked)
    # the log order: a certificate's issued event comes before its revoked event
    pos = {k: i for i, k in enumerate(keys)}
    assert all(pos[("issued", s)] < pos[("revoked", s)] for s in revoked)
    lower = datetime.datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    for ev in events:
        assert _event_time(ev["eventDate"]) >= lower, ev["eventDate"]
        _check_event_certificate(ev, sub_cert)
        if ev["action"] == "revoked":
            assert ev.get("reason") == "superseded", ev
        else:
            detail = json.loads(ev["detail"])
            assert detail["subject"] == "CN=bulk.events.example" and detail["profile"] == PROFILE, detail


def test_events_paging_every_event_once(bulk):
    events, sizes, _, more = walk(bulk["cred"], bulk["caid"], bulk["start"], PAGE_MAX)
    total = N_ISSUED + N_REVOKED
    assert total > 1000
    assert more is False
    assert max(sizes) == PAGE_MAX and all(s == PAGE_MAX for s in sizes[:-1]), sizes
    assert len(sizes) in (math.ceil(total / PAGE_MAX), math.ceil(total / PAGE_MAX) + 1), sizes
    _check_complete(events, bulk["issued"], bulk["revoked"], bulk["sub"].cert, bulk["start"])
    bulk["walk50"] = [_key(e) for e in events]


def test_events_page_size_capped_and_smaller_pages(bulk):
    # asking for 500 still gives pages of at most 50, and the same events in the same order
    events, sizes, _, _ = walk(bulk["cred"], bulk["caid"], bulk["start"], 500)
    assert max(sizes) == PAGE_MAX, sizes
    _check_complete(events, bulk["issued"], bulk["revoked"], bulk["sub"].cert, bulk["start"])
    if "walk50" in bulk:
        assert [_key(e) for e in events] == bulk["walk50"]
    # a smaller preferred size is honoured
    code, body, _ = bulk["cred"].call("GET", _events_path(bulk["caid"], bulk["start"], 7))
    assert code == 200 and len(body["events"]) == 7 and body["morePages"] is True, body
    _check_page(body, 7)


def test_events_stable_while_new_events_arrive(bulk):
    """Two pages, then 20 new certificates, then the rest of the walk with the saved token: every original event
    exactly once, no duplicates; the new events come after them (the token is a position in the log)."""
    cred, caid, start = bulk["cred"], bulk["caid"], bulk["start"]
    first, sizes, token, more = walk(cred, caid, start, PAGE_MAX, max_pages=2)
    assert more is True and sizes == [PAGE_MAX, PAGE_MAX], sizes
    late = {int(s, 16) for s in bulk["issuer"].many(N_LATE)}
    rest, _, _, more = walk(cred, caid, start, PAGE_MAX, token=token)
    assert more is False
    events = first + rest
    original = [e for e in events if _key(e)[1] not in late]
    _check_complete(original, bulk["issued"], bulk["revoked"], bulk["sub"].cert, start)
    new = [_key(e) for e in events if _key(e)[1] in late]
    assert sorted(new) == sorted(("issued", s) for s in late), f"{len(new)} of the {N_LATE} new events returned"
    keys = [_key(e) for e in events]
    assert len(set(keys)) == len(keys), "duplicate events after new ones arrived"
    last_original = max(i for i, k in enumerate(keys) if k[1] not in late)
    first_new = min(i for i, k in enumerate(keys) if k[1] in late)
    assert first_new > last_original, "a new event was returned between the original ones"


def test_events_bad_token(bulk):
    code, body, _ = bulk["cred"].call("GET", _events_path(bulk["caid"], bulk["start"], 10, token="not!a~token"))
    assert code == 400 and body["type"] == "ErrorResponse", body
    assert body["error"]["code"] == "cagw-4001" and body["error"]["target"] == "nextPageIndex", body


# ---------------------------------------------------------------------------------------------- 2. client replay
@pytest.fixture(scope="module")
def compat(daemon, tmp_path_factory):
    d = daemon
    tmp = tmp_path_factory.mktemp("cagw-compat")
    root = make_root(d, tmp, "cproot")
    sub = make_sub(d, tmp, root, "cpsub")
    cred = Cred(d, tmp, f"cp-{sub.id}"[:32], [{"caId": sub.id, "roles": ["Certificate Administrators"]}])
    return {"d": d, "sub": sub, "root": root, "cred": cred, "caid": f"{d.account}~{sub.id}"}


CLIENT_HEADERS = ["ca-client-id: vault-pki-cagw", "Accept: application/json"]


def _vault_enroll(c, cn, validity="PT60M"):
    """The body the HashiCorp Vault CAGW plugin sends (csr = base64 DER)."""
    der = _csr(cn).public_bytes(serialization.Encoding.DER)
    return c["cred"].call("POST", f"/certificate-authorities/{c['caid']}/enrollments", {
        "profileId": PROFILE, "requiredFormat": {"format": "PEM"}, "csr": base64.b64encode(der).decode(),
        "subjectVariables": [{"type": "cn", "value": cn}],
        "subjectAltNames": [{"type": "dNSName", "value": cn}],
        "optionalCertificateRequestDetails": {"validityPeriod": validity}}, headers=CLIENT_HEADERS)


def test_vault_enrollment_and_shell_util_revoke(compat):
    c = compat
    caid, cred, sub = c["caid"], c["cred"], c["sub"]
    start = _rfc3339(_utcnow() - datetime.timedelta(seconds=2))
    before = _utcnow()
    code, body, _ = _vault_enroll(c, "vault.compat.example")
    after = _utcnow()
    assert code == 200, body
    assert body["type"] == "EnrollmentResponse", body
    enr = body["enrollment"]
    cert = x509.load_pem_x509_certificate(enr["body"].encode())
    assert enr["body"].lstrip().startswith("-----BEGIN CERTIFICATE-----")
    assert cert.serial_number == int(enr["serialNumber"], 16)
    assert cert.subject.rfc4514_string() == "CN=vault.compat.example"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["vault.compat.example"]
    assert list(sans) == [x509.DNSName("vault.compat.example")]
    skew = datetime.timedelta(seconds=120)
    # notBefore is set 60 s back for relying parties' clock skew (src/ca/issue.c); the end is now + 60 min
    assert _not_after(cert) - _not_before(cert) <= datetime.timedelta(minutes=61)
    assert _not_after(cert) <= after + datetime.timedelta(minutes=60) + skew
    assert _not_after(cert) >= before + datetime.timedelta(minutes=60) - skew
    assert _not_before(cert) <= after + skew
    _verify_issued_by(cert, sub.cert)
    chain = [x509.load_der_x509_certificate(base64.b64decode(e["certificateData"])) for e in enr["chain"]]
    assert chain and chain[0] == sub.cert, "enrollment.chain does not start with the issuing CA"
    serial = enr["serialNumber"]

    # the cagw-shell-util revoke body (issueCrl as the string "true")
    code, body, _ = cred.call("POST", f"/certificate-authorities/{caid}/certificates/{serial}/actions",
                              {"action": {"type": "RevokeAction", "reason": "keyCompromise",
                                          "comment": "key left on a laptop", "issueCrl": "true"}},
                              headers=CLIENT_HEADERS)
    assert code == 200, body
    assert body["type"] == "ActionResponse" and body["action"]["status"] == "COMPLETED", body
    assert body["action"]["type"] == "RevokeAction" and body["action"]["reason"] == "keyCompromise", body
    code, body, _ = cred.call("GET", f"/certificate-authorities/{caid}/certificates/{serial}", headers=CLIENT_HEADERS)
    assert code == 200 and body["certificate"]["status"] == "revoked", body
    assert body["certificate"]["revocationInfo"]["reason"] == "keyCompromise", body
    got = x509.load_der_x509_certificate(base64.b64decode(body["certificate"]["certificateData"]))
    assert got == cert
    # issueCrl "true": the published CRL lists it now
    _, crl = fetch_crl(c["d"], sub.id)
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None, "issueCrl=\"true\" did not publish the CRL"
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise

    # the events, read the way the clients read them
    events, sizes, token, more = walk(cred, caid, start, PAGE_MAX)
    mine = [e for e in events if int(e["serialNumber"], 16) == cert.serial_number]
    assert [e["action"] for e in mine] == ["issued", "revoked"], mine
    assert mine[1]["reason"] == "keyCompromise", mine[1]
    for e in mine:
        assert x509.load_der_x509_certificate(base64.b64decode(e["certificate"])) == cert
    assert json.loads(mine[0]["detail"])["subject"] == "CN=vault.compat.example"

    # keep the last token and poll: nothing new -> empty page; after a new enrolment -> exactly it
    code, body, _ = cred.call("GET", _events_path(caid, start, PAGE_MAX, token), headers=CLIENT_HEADERS)
    assert code == 200 and body["events"] == [] and body["morePages"] is False, body
    assert body["nextPageIndex"] is None, body
    code, enr2, _ = _vault_enroll(c, "vault2.compat.example", "P1D")
    assert code == 200, enr2
    code, body, _ = cred.call("GET", _events_path(caid, start, PAGE_MAX, token), headers=CLIENT_HEADERS)
    assert code == 200, body
    _check_page(body, PAGE_MAX)
    assert [_key(e) for e in body["events"]] == [("issued", int(enr2["enrollment"]["serialNumber"], 16))], body
    assert body["morePages"] is False


def test_get_with_json_content_type_and_empty_body(compat):
    c = compat
    caid, cred = c["caid"], c["cred"]
    for path in (f"/certificate-authorities/{caid}", f"/certificate-authorities/{caid}/status",
                 f"/certificate-authorities/{caid}/profiles", f"/certificate-authorities/{caid}/certificate-events",
                 "/certificate-authorities"):
        plain = cred.call("GET", path, json_content_type=False)
        empty = cred.call("GET", path, raw="", headers=CLIENT_HEADERS)  # Content-Type: application/json, 0 bytes
        assert plain[0] == 200 and empty[0] == 200, (path, plain[:2], empty[:2])
        assert empty[2].get("content-type", "").startswith("application/json")
        if "certificate-events" not in path:
            assert empty[1] == plain[1], path
        else:
            assert empty[1]["type"] == plain[1]["type"] == "CertificateEventsResponse"
    code, body, _ = cred.call("GET", f"/certificate-authorities/{caid}", raw="", headers=CLIENT_HEADERS)
    assert body["ca"]["id"] == caid


def test_fields_percent_encoded_like_dollar(compat):
    c = compat
    caid, cred = c["caid"], c["cred"]
    code, _, _ = _vault_enroll(c, "fields.compat.example")
    assert code == 200
    start = _rfc3339(_utcnow() - datetime.timedelta(hours=1))
    base = f"/certificate-authorities/{caid}/certificate-events?startDate={start}&preferredPageSize=50"
    code, full, _ = cred.call("GET", base)
    assert code == 200 and full["events"] and all("certificate" in e for e in full["events"]), full
    results = {}
    for spelled in ("$fields", "%24fields"):
        code, drop, _ = cred.call("GET", f"{base}&{spelled}=-events.certificate")
        assert code == 200, drop
        assert drop["events"] and all("certificate" not in e for e in drop["events"]), (spelled, drop["events"][:1])
        assert drop["events"] == [{k: v for k, v in e.items() if k != "certificate"} for e in full["events"]]
        code, keep, _ = cred.call("GET", f"{base}&{spelled}=events.serialNumber,morePages")
        assert code == 200, keep
        assert set(keep) == {"type", "events", "morePages"}, (spelled, sorted(keep))
        assert keep["events"] == [{"serialNumber": e["serialNumber"]} for e in full["events"]], spelled
        code, one, _ = cred.call("GET", f"/certificate-authorities/{caid}?{spelled}=ca.id")
        assert code == 200 and one == {"type": "CAResponse", "ca": {"id": caid}}, (spelled, one)
        results[spelled] = (drop, keep)
    assert results["$fields"] == results["%24fields"]


# ---------------------------------------------------------------------------------------------- 3. rate limit
RL_LIMIT = 10
RL_WINDOW_S = 4  # GCRA: a burst of 10, then one request per 0.4 s


@pytest.fixture
def rated(tmp_path):
    conftest._require_binaries()
    d = ConfiguredDaemon(tmp_path / "pkiaasd", [f"rate_limit_standard = {RL_LIMIT}",
                                                f"rate_limit_premium = {RL_LIMIT}",
                                                f"rate_limit_window_s = {RL_WINDOW_S}"])
    d.bootstrap()
    d.start()
    yield d
    rc = d.stop()
    assert rc in (0, None), f"pkiaasd exited with {rc} on SIGTERM\n{d.tail()}"


def _pem_session(cred):
    key, cert, _ = pkcs12.load_key_and_certificates(cred.path.read_bytes(), cred.password.encode())
    cp, kp = cred.tmp / f"{cred.id}.crt", cred.tmp / f"{cred.id}.key"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    s = requests.Session()
    s.trust_env = False
    s.verify = str(cred.d.service_ca)
    s.cert = (str(cp), str(kp))
    return s


def _check_429(code, body, hdrs):
    assert code == 429, (code, body)
    assert body["type"] == "ErrorResponse", body
    assert body["error"]["code"] == "TooManyRequests", body
    ra = hdrs.get("retry-after")
    assert ra is not None and ra.isdigit(), f"Retry-After {ra!r}"
    assert 1 <= int(ra) <= RL_WINDOW_S, ra
    return int(ra)


def test_rate_limit_429(rated, tmp_path):
    d = rated
    root = make_root(d, tmp_path, "rlroot")
    sub = make_sub(d, tmp_path, root, "rlsub")
    cred = Cred(d, tmp_path, "rl-tool", [{"caId": sub.id, "roles": ["Certificate Administrators"]}])
    caid = f"{d.account}~{sub.id}"
    s = _pem_session(cred)
    url = cred.url(f"/certificate-authorities/{caid}/status")
    s.get(url, timeout=30)  # TLS session up before the clock starts
    time.sleep(RL_WINDOW_S + 0.5)  # the set-up's requests are forgotten: a full bucket

    n = RL_LIMIT + 25
    t0 = time.monotonic()
    responses = [s.get(url, timeout=30) for _ in range(n)]
    elapsed = time.monotonic() - t0
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    first_bad = statuses.index(429) if 429 in statuses else n
    assert first_bad >= RL_LIMIT, f"refused at request {first_bad + 1} of a burst of {RL_LIMIT}: {statuses}"
    refills = math.floor(elapsed / (RL_WINDOW_S / RL_LIMIT))
    passed = statuses.count(200)
    assert RL_LIMIT <= passed <= RL_LIMIT + refills + 1, (passed, elapsed, statuses)
    assert 429 in statuses, f"no 429 in {n} requests within {elapsed:.2f} s"
    for r in responses:
        if r.status_code == 429:
            assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
            _check_429(429, r.json(), {k.lower(): v for k, v in r.headers.items()})

    # the bucket is the partition's, shared with the admin API
    for _ in range(RL_LIMIT):  # keep it empty
        s.get(url, timeout=30)
    assert d.api("GET", "/cas").status_code == 429

    # the same through curl --cert-type P12 (a token comes back every 0.4 s; a curl run is far quicker, but a
    # loaded machine may let one through)
    seen = []
    for _ in range(4):
        s.get(url, timeout=30)
        code, body, hdrs = cred.call("GET", f"/certificate-authorities/{caid}")
        assert code in (200, 429), (code, body)
        if code == 429:
            seen.append(_check_429(code, body, hdrs))
    assert seen, "curl never saw the 429"

    # after Retry-After the credential is served again
    time.sleep(max(seen) + 0.2)
    code, body, _ = cred.call("GET", f"/certificate-authorities/{caid}")
    assert code == 200 and body["ca"]["id"] == caid, body
