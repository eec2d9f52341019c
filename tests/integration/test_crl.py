"""CRL service: public download, admin endpoints, CRL contents byte by byte, numbering, scheduler.

Every CRL is verified with `openssl crl -CAfile issuer.pem` and parsed with python3-cryptography.
"""
import datetime
import email.utils
import re
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

import conftest
from conftest import _require_binaries
from helpers import crl_dp_urls, der_tlv, expect_error, ext_or_none, parse_time
from status_helpers import (FLAG_OF, ConfiguredDaemon, crl_number, crl_path, crl_serials, crl_version, fetch_crl,
                            issue, make_root, make_sub, ok, openssl_crl_verify, publish, revoke, rfc3339, suspend,
                            unsuspend, utcnow, wait_for)

DEFAULT_CRL_DELAY_S = 900  # config.c: crl_delay_s

SEVEN_DAYS = datetime.timedelta(days=7)
TOL = datetime.timedelta(minutes=2)
EXPIRED_CERTS_ON_CRL = "2.5.29.60"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("crl")


@pytest.fixture(scope="module")
def hier(daemon, tmp):
    root = make_root(daemon, tmp, "croot")
    sub = make_sub(daemon, tmp, root, "csub", ocsp_=False)
    return root, sub


def http_time(value):
    assert value, "missing HTTP date header"
    return email.utils.parsedate_to_datetime(value).astimezone(datetime.timezone.utc).replace(tzinfo=None)


def entry(crl, cert):
    e = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert e is not None, f"serial {cert.serial_number:x} is not on the CRL (entries: {sorted(crl_serials(crl))})"
    return e


def entry_ext(e, cls):
    try:
        return e.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def check_crl(der, ca, tmp):
    """Checks every CRL-level field against the issuing CA; returns the parsed CRL."""
    openssl_crl_verify(der, ca.pem_path, tmp)
    crl = x509.load_der_x509_crl(der)
    assert crl.public_bytes(serialization.Encoding.DER) == der
    assert crl.is_signature_valid(ca.cert.public_key()), "CRL signature does not verify with the CA key"
    assert crl_version(der) == 1, "CRL is not v2"
    assert crl.issuer == ca.cert.subject, f"CRL issuer {crl.issuer} != CA subject {ca.cert.subject}"
    now = utcnow()
    assert abs(crl.last_update - now) < TOL, f"thisUpdate {crl.last_update} is not about now ({now})"
    assert crl.next_update - crl.last_update == SEVEN_DAYS, (
        f"nextUpdate - thisUpdate = {crl.next_update - crl.last_update}, want 7 days")
    # crlExtensions: AKI (= CA SKI), cRLNumber, expiredCertsOnCRL; nothing critical
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert not aki.critical
    assert aki.value.key_identifier == ca.ski, "CRL AKI does not equal the CA SKI"
    num = crl.extensions.get_extension_for_class(x509.CRLNumber)
    assert not num.critical and num.value.crl_number >= 1
    exp = [e for e in crl.extensions if e.oid.dotted_string == EXPIRED_CERTS_ON_CRL]
    assert len(exp) == 1, "expiredCertsOnCRL (2.5.29.60) missing"
    assert not exp[0].critical
    raw = exp[0].value.value
    tag, s, e = der_tlv(raw, 0)
    assert tag == 0x18 and e == len(raw), f"expiredCertsOnCRL is not one GeneralizedTime: {raw.hex()}"
    when = datetime.datetime.strptime(raw[s:e].decode(), "%Y%m%d%H%M%SZ")
    assert when <= crl.last_update
    assert when == ca.cert.not_valid_before, f"expiredCertsOnCRL {when} != CA notBefore {ca.cert.not_valid_before}"
    for ext in crl.extensions:
        assert not ext.critical, f"unexpected critical CRL extension {ext.oid.dotted_string}"
    assert sorted(e.oid.dotted_string for e in crl.extensions) == sorted(
        [ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string, ExtensionOID.CRL_NUMBER.dotted_string,
         EXPIRED_CERTS_ON_CRL])
    return crl


def cert_detail(d, ca_id, serial):
    return ok(d.api("GET", f"/cas/{ca_id}/certificates/{serial}"))


# ------------------------------------------------------------------ contents
def test_crl_fields_entries_and_headers(daemon, hier, tmp):
    root, sub = hier
    a, b, c, good = (issue(daemon, sub, tmp) for _ in range(4))
    # every issued certificate points at the public CRL
    assert crl_dp_urls(a.cert) == [daemon.url + crl_path(daemon, sub.id)]
    inval = utcnow() - datetime.timedelta(hours=3)
    revoke(daemon, sub.id, a.serial, "keyCompromise", rfc3339(inval))
    revoke(daemon, sub.id, b.serial)  # unspecified: no reasonCode
    revoke(daemon, sub.id, c.serial, "superseded", publish=True)

    r, _ = fetch_crl(daemon, sub.id)
    crl = check_crl(r.content, sub, tmp)
    assert crl_serials(crl) == {a.cert.serial_number, b.cert.serial_number, c.cert.serial_number}
    assert good.cert.serial_number not in crl_serials(crl)

    ea, eb, ec = entry(crl, a.cert), entry(crl, b.cert), entry(crl, c.cert)
    assert entry_ext(ea, x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert entry_ext(ea, x509.InvalidityDate).value.invalidity_date == inval
    assert entry_ext(eb, x509.CRLReason) is None, "reasonCode must be absent for unspecified"
    assert entry_ext(eb, x509.InvalidityDate) is None
    assert entry_ext(ec, x509.CRLReason).value.reason == x509.ReasonFlags.superseded
    assert entry_ext(ec, x509.InvalidityDate) is None
    for e, leaf in ((ea, a), (eb, b), (ec, c)):
        det = cert_detail(daemon, sub.id, leaf.serial)
        assert det["status"] == "revoked"
        assert e.revocation_date == parse_time(det["revokedAt"]), (e.revocation_date, det["revokedAt"])
        for ext in e.extensions:
            assert not ext.critical

    # HTTP caching headers
    assert r.headers["ETag"].startswith('"') and r.headers["ETag"].endswith('"')
    assert http_time(r.headers["Last-Modified"]) == crl.last_update
    # cacheable for crl_delay_s (a newer CRL can appear that soon after a change), not up to nextUpdate
    m = re.search(r"max-age=(\d+)", r.headers.get("Cache-Control", ""))
    assert m, r.headers.get("Cache-Control")
    assert int(m.group(1)) == DEFAULT_CRL_DELAY_S, (m.group(1), DEFAULT_CRL_DELAY_S)
    want = utcnow() + datetime.timedelta(seconds=DEFAULT_CRL_DELAY_S)
    assert abs((http_time(r.headers["Expires"]) - want).total_seconds()) < 120, r.headers["Expires"]
    assert http_time(r.headers["Expires"]) < crl.next_update


def test_crl_number_increases_and_crls_list(daemon, hier, tmp):
    _, sub = hier
    nums = []
    for _ in range(3):
        out = publish(daemon, sub.id)
        assert set(out) >= {"crlNumber", "thisUpdate", "nextUpdate"}, out
        assert parse_time(out["nextUpdate"]) - parse_time(out["thisUpdate"]) == SEVEN_DAYS
        nums.append(out["crlNumber"])
    assert nums == sorted(nums) and len(set(nums)) == 3, f"cRLNumber not strictly increasing: {nums}"
    _, crl = fetch_crl(daemon, sub.id)
    assert crl_number(crl) == nums[-1]
    assert crl.last_update == parse_time(out["thisUpdate"])

    listed = ok(daemon.api("GET", f"/cas/{sub.id}/crls"))["crls"]
    got = [x["crlNumber"] for x in listed]
    assert got == sorted(got, reverse=True) and len(set(got)) == len(got), f"not newest first: {got}"
    assert got[0] == nums[-1]
    assert set(nums) <= set(got)
    for x in listed:
        assert parse_time(x["nextUpdate"]) - parse_time(x["thisUpdate"]) == SEVEN_DAYS
        assert isinstance(x.get("entries"), int)
    assert listed[0]["entries"] == len(crl_serials(crl))


def test_etag_and_304(daemon, hier, tmp):
    _, sub = hier
    publish(daemon, sub.id)
    r1, _ = fetch_crl(daemon, sub.id)
    etag = r1.headers["ETag"]
    r2 = daemon.get(crl_path(daemon, sub.id), headers={"If-None-Match": etag})
    assert r2.status_code == 304, f"If-None-Match with the current ETag -> {r2.status_code}"
    assert r2.content == b""
    assert r2.headers.get("ETag") == etag
    r3 = daemon.get(crl_path(daemon, sub.id), headers={"If-None-Match": '"0000"'})
    assert r3.status_code == 200 and r3.content == r1.content
    publish(daemon, sub.id)
    r4 = daemon.get(crl_path(daemon, sub.id), headers={"If-None-Match": etag})
    assert r4.status_code == 200, "a new CRL must not match the old ETag"
    assert r4.headers["ETag"] != etag
    assert crl_number(x509.load_der_x509_crl(r4.content)) > crl_number(x509.load_der_x509_crl(r1.content))


def test_admin_crl_pem_and_der(daemon, hier, tmp):
    _, sub = hier
    publish(daemon, sub.id)
    pub, _ = fetch_crl(daemon, sub.id)
    rp = daemon.api("GET", f"/cas/{sub.id}/crl", params={"format": "pem"})
    assert rp.status_code == 200, rp.text[:300]
    assert rp.headers["Content-Type"].startswith("application/x-pem-file")
    assert rp.text.startswith("-----BEGIN X509 CRL-----")
    assert x509.load_pem_x509_crl(rp.content).public_bytes(serialization.Encoding.DER) == pub.content
    rd = daemon.api("GET", f"/cas/{sub.id}/crl", params={"format": "der"})
    assert rd.status_code == 200
    assert rd.headers["Content-Type"].startswith("application/pkix-crl")
    assert rd.content == pub.content
    check_crl(rd.content, sub, tmp)
    # the admin endpoints need the token
    r = daemon.get(f"/api/v1/partitions/{daemon.account}/cas/{sub.id}/crl")
    assert r.status_code == 401, r.status_code
    expect_error(daemon.api("GET", "/cas/no-such-ca/crl"), 404)


def test_suspend_unsuspend_round_trip(daemon, hier, tmp):
    _, sub = hier
    leaf = issue(daemon, sub, tmp)
    suspend(daemon, sub.id, leaf.serial, publish=True)
    _, crl1 = fetch_crl(daemon, sub.id)
    check_crl(crl1.public_bytes(serialization.Encoding.DER), sub, tmp)
    e = entry(crl1, leaf.cert)
    assert entry_ext(e, x509.CRLReason).value.reason == x509.ReasonFlags.certificate_hold
    assert entry_ext(e, x509.InvalidityDate) is None
    unsuspend(daemon, sub.id, leaf.serial, publish=True)
    _, crl2 = fetch_crl(daemon, sub.id)
    assert crl_number(crl2) > crl_number(crl1)
    assert leaf.cert.serial_number not in crl_serials(crl2), "unsuspended certificate still on the CRL"
    assert cert_detail(daemon, sub.id, leaf.serial)["status"] == "issued"
    # and it can be revoked for good afterwards
    revoke(daemon, sub.id, leaf.serial, "affiliationChanged", publish=True)
    _, crl3 = fetch_crl(daemon, sub.id)
    assert entry_ext(entry(crl3, leaf.cert), x509.CRLReason).value.reason == x509.ReasonFlags.affiliation_changed


def test_every_reason_code(daemon, hier, tmp):
    _, sub = hier
    leaves = {}
    for name in FLAG_OF:
        if name == "certificateHold":
            continue
        leaves[name] = issue(daemon, sub, tmp)
        revoke(daemon, sub.id, leaves[name].serial, name)
    publish(daemon, sub.id)
    r, crl = fetch_crl(daemon, sub.id)
    check_crl(r.content, sub, tmp)
    for name, leaf in leaves.items():
        ext = entry_ext(entry(crl, leaf.cert), x509.CRLReason)
        if name == "unspecified":
            assert ext is None
        else:
            assert ext is not None and ext.value.reason == FLAG_OF[name], (name, ext)


def test_root_crl_lists_revoked_subordinate(daemon, tmp):
    root = make_root(daemon, tmp, "rroot")
    s1 = make_sub(daemon, tmp, root, "rsub", ocsp_=False)
    s2 = make_sub(daemon, tmp, root, "rsub", ocsp_=False)
    # the subordinate's certificate points at the root's CRL
    assert crl_dp_urls(s1.cert) == [daemon.url + crl_path(daemon, root.id)]
    revoke(daemon, root.id, s1.info["serialNumber"], "cACompromise", publish=True)
    r, crl = fetch_crl(daemon, root.id)
    check_crl(r.content, root, tmp)
    assert crl_serials(crl) == {s1.cert.serial_number}, "root CRL must list exactly the revoked subordinate"
    assert entry_ext(entry(crl, s1.cert), x509.CRLReason).value.reason == x509.ReasonFlags.ca_compromise
    assert s2.cert.serial_number not in crl_serials(crl)


def test_crl_disabled(daemon, tmp):
    root = make_root(daemon, tmp, "nroot")
    sub = make_sub(daemon, tmp, root, "nsub", crl=False, ocsp_=False)
    assert sub.info["crlEnabled"] is False
    r = daemon.get(crl_path(daemon, sub.id))
    assert r.status_code == 404, f"CRL of a CA without CRL -> {r.status_code}"
    leaf = issue(daemon, sub, tmp)
    assert ext_or_none(leaf.cert, ExtensionOID.CRL_DISTRIBUTION_POINTS) is None, "CDP in a certificate of a CA without CRL"
    # still revocable; no CRL appears
    revoke(daemon, sub.id, leaf.serial, "keyCompromise", publish=True)
    assert daemon.get(crl_path(daemon, sub.id)).status_code == 404


def test_unknown_crl_paths_404(daemon, hier):
    _, sub = hier
    assert daemon.get(f"/crl/{daemon.account}/no-such-ca/crl.crl").status_code == 404
    assert daemon.get(f"/crl/{daemon.account}/{sub.id}/other.crl").status_code == 404
    assert daemon.get(f"/crl/nosuchacct/{sub.id}/crl.crl").status_code == 404
    # a CA of another partition is not reachable through this partition's path
    other = daemon.creds["otheracct"]["accountId"]
    assert daemon.get(f"/crl/{other}/{sub.id}/crl.crl").status_code == 404


# ------------------------------------------------------------------ scheduling
def test_revoke_without_publish_waits_for_delay(daemon, hier, tmp):
    """Default crl_delay_s is 900: a revocation without publishNow is not on the CRL at once."""
    _, sub = hier
    leaf = issue(daemon, sub, tmp)
    _, before = fetch_crl(daemon, sub.id)
    revoke(daemon, sub.id, leaf.serial, "keyCompromise")
    r, after = fetch_crl(daemon, sub.id)
    assert leaf.cert.serial_number not in crl_serials(after), "CRL rebuilt at once although publishNow was not set"
    assert crl_number(after) == crl_number(before)
    out = publish(daemon, sub.id)
    _, now_ = fetch_crl(daemon, sub.id)
    assert crl_number(now_) == out["crlNumber"] > crl_number(before)
    assert leaf.cert.serial_number in crl_serials(now_)


@pytest.fixture
def fast_daemon(tmp_path):
    _require_binaries()
    d = ConfiguredDaemon(tmp_path / "pkiaasd-fast", ["crl_delay_s = 2", "scheduler_tick_s = 1"])
    d.bootstrap()
    d.start()
    yield d
    rc = d.stop()
    assert rc in (0, None), f"pkiaasd exited with {rc} on SIGTERM\n{d.tail()}"


def test_automatic_crl_within_window(fast_daemon, tmp_path):
    d = fast_daemon
    root = make_root(d, tmp_path, "aroot")
    sub = make_sub(d, tmp_path, root, "asub", ocsp_=False)
    leaf = issue(d, sub, tmp_path)
    held = issue(d, sub, tmp_path)
    _, before = fetch_crl(d, sub.id)
    revoke(d, sub.id, leaf.serial, "keyCompromise")
    suspend(d, sub.id, held.serial)
    t0 = time.monotonic()
    r, right_away = fetch_crl(d, sub.id)
    assert leaf.cert.serial_number not in crl_serials(right_away), "listed before crl_delay_s elapsed"
    assert "max-age=2," in r.headers["Cache-Control"], r.headers  # caches revalidate as often as it can change

    def listed():
        _, crl = fetch_crl(d, sub.id)
        return crl if {leaf.cert.serial_number, held.cert.serial_number} <= crl_serials(crl) else None

    crl = wait_for(listed, 10, what="scheduler CRL with the revoked serial")
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.5, f"CRL rebuilt after {elapsed:.2f}s, before crl_delay_s = 2"
    assert crl_number(crl) > crl_number(before)
    check_crl(crl.public_bytes(serialization.Encoding.DER), sub, tmp_path)
    assert entry_ext(entry(crl, held.cert), x509.CRLReason).value.reason == x509.ReasonFlags.certificate_hold
    # unsuspend: removed by the next automatic CRL
    unsuspend(d, sub.id, held.serial)
    crl2 = wait_for(lambda: (lambda c: c if held.cert.serial_number not in crl_serials(c) else None)(
        fetch_crl(d, sub.id)[1]), 10, what="scheduler CRL without the unsuspended serial")
    assert crl_number(crl2) > crl_number(crl)
    assert leaf.cert.serial_number in crl_serials(crl2)


def test_crl_number_survives_restart(fresh_daemon, tmp_path):
    d = fresh_daemon
    root = make_root(d, tmp_path, "sroot")
    sub = make_sub(d, tmp_path, root, "ssub", ocsp_=False)
    leaf = issue(d, sub, tmp_path)
    revoke(d, sub.id, leaf.serial, "superseded", publish=True)
    n1 = publish(d, sub.id)["crlNumber"]
    r1, crl1 = fetch_crl(d, sub.id)
    assert crl_number(crl1) == n1
    d.restart()
    r2, crl2 = fetch_crl(d, sub.id)
    assert crl_number(crl2) >= n1, f"CRL number went back after restart: {crl_number(crl2)} < {n1}"
    assert leaf.cert.serial_number in crl_serials(crl2)
    n2 = publish(d, sub.id)["crlNumber"]
    assert n2 > crl_number(crl2) >= n1, f"cRLNumber not increasing across restart: {n1} -> {n2}"
    _, crl3 = fetch_crl(d, sub.id)
    assert crl_number(crl3) == n2
    check_crl(crl3.public_bytes(serialization.Encoding.DER), sub, tmp_path)
    assert leaf.cert.serial_number in crl_serials(crl3)
    listed = [x["crlNumber"] for x in ok(d.api("GET", f"/cas/{sub.id}/crls"))["crls"]]
    assert listed[0] == n2 and n1 in listed and listed == sorted(listed, reverse=True)


def test_concurrent_publications_never_lose_a_revocation(daemon, tmp_path):
    """A CRL number is reserved before the revoked list is read: with publications running at once (admin
    publish, publishNow, the scheduler, a first download), a higher number must never carry an older list.
    With revocations only, the full CRLs' entry counts may not fall as their numbers rise."""
    import threading
    root = make_root(daemon, tmp_path, "cproot")
    sub = make_sub(daemon, tmp_path, root, "cpsub", ocsp_=False)
    leaves = [issue(daemon, sub, tmp_path) for _ in range(24)]
    errors = []

    def publisher():
        try:
            for _ in range(12):
                publish(daemon, sub.id)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    def revoker():
        try:
            for i, leaf in enumerate(leaves):
                revoke(daemon, sub.id, leaf.serial, "keyCompromise", publish=(i % 3 == 0))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
    ts = [threading.Thread(target=publisher) for _ in range(4)] + [threading.Thread(target=revoker)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    publish(daemon, sub.id)
    crls = ok(daemon.api("GET", f"/cas/{sub.id}/crls"))["crls"]
    full = sorted((c["crlNumber"], c["entries"]) for c in crls if c["partition"] is None)
    assert len(full) >= 40, full
    falls = [(a, b) for a, b in zip(full, full[1:]) if b[1] < a[1]]
    assert not falls, f"a higher CRL number lists fewer revocations: {falls}"
    assert full[-1][1] == len(leaves)


def test_old_crls_keep_their_numbers_not_their_bytes(daemon, tmp):
    """The history list keeps past CRLs' numbers and times; only the newest few keep their DER (a CA with many
    revocations publishes megabytes each time, and nothing serves an older CRL)."""
    import sqlite3
    root = make_root(daemon, tmp, "kr")
    sub = make_sub(daemon, tmp, root, "ks")
    for _ in range(7):
        publish(daemon, sub.id)
    crls = ok(daemon.api("GET", f"/cas/{sub.id}/crls"))["crls"]
    assert len(crls) >= 7, crls
    sql = ("SELECT c.number, length(c.der) FROM crl c JOIN ca ON ca.pk=c.ca_pk WHERE ca.ca_id='%s' "
           "AND c.shard=-1 ORDER BY c.number DESC" % sub.id)  # the id is ours: letters, digits and '-'
    if daemon.store is None:
        db = sqlite3.connect(str(daemon.data_dir / "pkiaas.db"), timeout=30)
        try:
            rows = db.execute(sql).fetchall()
        finally:
            db.close()
    else:
        cp = conftest._psql(daemon.store, "-At", "-F", ",", "-c", sql)
        assert cp.returncode == 0, cp.stderr
        rows = [tuple(int(x) for x in line.split(",")) for line in cp.stdout.split()]
    assert len(rows) >= 7
    assert all(n > 0 for _, n in rows[:4]), rows
    assert all(n == 0 for _, n in rows[4:]), rows
    # the newest is served
    _, crl = fetch_crl(daemon, sub.id)
    assert crl_number(crl) == rows[0][0]
