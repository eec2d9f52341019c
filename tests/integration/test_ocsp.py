"""OCSP responder: `openssl ocsp` (POST, with and without nonce; GET by hand), and the DER responses
parsed with python3-cryptography: delegated responder certificate, signatures, statuses, nonce,
archive cutoff, error statuses, RFC 5019 cache headers, cache invalidation on status changes."""
import base64
import datetime
import email.utils
import os
import re
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, SignatureAlgorithmOID

from conftest import _require_binaries, clean_env
from helpers import aia_urls, crl_dp_urls, der_children, der_tlv, ext_or_none, parse_time, spki_public_key_bits
from status_helpers import (ConfiguredDaemon, get_ocsp, issue, make_root, make_sub, ocsp_path, ocsp_request, ok,
                            post_ocsp, revoke, rfc3339, suspend, unsuspend, utcnow)

TOL = datetime.timedelta(minutes=2)
MALFORMED = bytes.fromhex("30030a0101")      # OCSPResponse { responseStatus malformedRequest(1) }
UNAUTHORIZED = bytes.fromhex("30030a0106")   # OCSPResponse { responseStatus unauthorized(6) }
ARCHIVE_CUTOFF = "1.3.6.1.5.5.7.48.1.6"
OCSP_NOCHECK = "1.3.6.1.5.5.7.48.1.5"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("ocsp")


class Hier:
    def __init__(self, d, tmp, key="ECDSAP256+SHA256", prefix="o"):
        self.d = d
        self.root = make_root(d, tmp, prefix + "root")
        self.sub = make_sub(d, tmp, self.root, prefix + "sub", key=key, crl=True, ocsp_=True)
        self.bundle = tmp / f"{self.sub.id}-bundle.pem"
        self.bundle.write_bytes(self.root.pem_path.read_bytes() + self.sub.pem_path.read_bytes())
        self.url = d.url + ocsp_path(d, self.sub.id)
        self.tmp = tmp

    def leaf(self):
        return issue(self.d, self.sub, self.tmp)


@pytest.fixture(scope="module")
def hier(daemon, tmp):
    return Hier(daemon, tmp)


def run_ocsp(*args):
    cp = subprocess.run(["openssl", "ocsp", *map(str, args)], capture_output=True, text=True, timeout=60,
                        env=clean_env())
    return cp.returncode, cp.stdout + cp.stderr


def openssl_query(h, leaves, *extra):
    """`openssl ocsp` POST to the responder; returns (output, DER response)."""
    out_der = h.tmp / f"resp-{os.urandom(4).hex()}.der"
    args = ["-issuer", h.sub.pem_path]
    for leaf in leaves:
        args += ["-cert", leaf.pem_path]
    rc, out = run_ocsp(*args, "-url", h.url, "-CAfile", h.bundle, "-respout", out_der, *extra)
    assert rc == 0, f"openssl ocsp failed ({rc}):\n{out}"
    assert "Response verify OK" in out, out
    return out, out_der.read_bytes()


def status_line(out, leaf):
    m = re.search(re.escape(str(leaf.pem_path)) + r": (\w+)", out)
    assert m, f"no status for {leaf.pem_path} in:\n{out}"
    return m.group(1)


def responses(resp):
    return {r.serial_number: r for r in resp.responses}


def check_signed(resp, h, pss=False):
    """Checks the responder certificate and the response signature; returns the responder cert."""
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    ders = {c.public_bytes(serialization.Encoding.DER) for c in resp.certificates}
    assert len(ders) == 1, f"the response must carry the responder certificate (and nothing else): {len(ders)}"
    rc = resp.certificates[0]
    ca = h.sub.cert
    # delegated responder certificate
    assert rc.issuer == ca.subject, f"responder cert issuer {rc.issuer} != CA subject"
    assert rc.subject != ca.subject, "the CA signs responses itself; a delegated responder is expected"
    eku = rc.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING], f"responder EKU {list(eku)}"
    assert ext_or_none(rc, x509.OCSPNoCheck.oid) is not None, "id-pkix-ocsp-nocheck missing"
    bc = rc.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False
    aki = rc.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == h.sub.ski
    assert rc.not_valid_before <= utcnow() + TOL and utcnow() < rc.not_valid_after, "responder cert not valid now"
    key = rc.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048, "responder key is not RSA-2048"
    # issued (signed) by the CA
    ca_key = ca.public_key()
    if isinstance(ca_key, ec.EllipticCurvePublicKey):
        ca_key.verify(rc.signature, rc.tbs_certificate_bytes, ec.ECDSA(rc.signature_hash_algorithm))
    elif rc.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
        # cryptography 38 cannot name the PSS hash; the PSS CAs used here are RSA-2048+PSS-SHA256
        ca_key.verify(rc.signature, rc.tbs_certificate_bytes,
                      padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    else:
        ca_key.verify(rc.signature, rc.tbs_certificate_bytes, padding.PKCS1v15(), rc.signature_hash_algorithm)
    # response signature with the responder key, VA algorithm
    if pss:
        assert resp.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS, resp.signature_algorithm_oid
        key.verify(resp.signature, resp.tbs_response_bytes,
                   padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    else:
        assert resp.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256, resp.signature_algorithm_oid
        key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())
    # responderID byKey = SHA-1 of the responder's public key bits
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA1())
    digest.update(spki_public_key_bits(spki))
    assert resp.responder_key_hash == digest.finalize(), "responderID is not byKey of the responder cert"
    assert abs(resp.produced_at - utcnow()) < TOL
    return rc


def oid_str(b):
    """Dotted string of OID content octets."""
    first, rest = b[0], b[1:]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    v = 0
    for x in rest:
        v = (v << 7) | (x & 0x7F)
        if not x & 0x80:
            arcs.append(v)
            v = 0
    return ".".join(map(str, arcs))


def single_extensions(resp):
    """{serial: {oid: extnValue bytes}} from the DER of ResponseData (cryptography 38 exposes
    singleExtensions only for the first response)."""
    tbs = resp.tbs_response_bytes
    tag, s, e = der_tlv(tbs, 0)
    assert tag == 0x30 and e == len(tbs)
    kids = der_children(tbs, s, e)
    if kids[0][0] == 0xA0:  # version
        kids = kids[1:]
    assert kids[0][0] in (0xA1, 0xA2), "responderID"
    assert kids[1][0] == 0x18, "producedAt"
    assert kids[2][0] == 0x30, "responses"
    out = {}
    for tag, ss, se in der_children(tbs, kids[2][1], kids[2][2]):
        assert tag == 0x30, "SingleResponse"
        parts = der_children(tbs, ss, se)
        cid = der_children(tbs, parts[0][1], parts[0][2])
        assert cid[3][0] == 0x02
        serial = int.from_bytes(tbs[cid[3][1]:cid[3][2]], "big")
        exts = {}
        for ptag, ps, pe in parts[3:]:  # after certID, certStatus (revoked is [1] too), thisUpdate
            if ptag == 0xA1:
                _, xs, xe = der_tlv(tbs, ps)
                for _, es, ee in der_children(tbs, xs, xe):
                    fields = der_children(tbs, es, ee)
                    assert fields[0][0] == 0x06 and fields[-1][0] == 0x04
                    exts[oid_str(tbs[fields[0][1]:fields[0][2]])] = tbs[fields[-1][1]:fields[-1][2]]
        out[serial] = exts
    return out


def check_single(resp, serial, h, status):
    """Checks the SingleResponse for `serial`; returns it."""
    single = responses(resp)[serial]
    assert single.certificate_status == status, f"serial {single.serial_number:x}: {single.certificate_status}"
    assert abs(single.this_update - utcnow()) < TOL
    assert single.next_update is not None and single.next_update > single.this_update
    if status == ocsp.OCSPCertStatus.UNKNOWN:
        return single
    # archive cutoff = the CA's notBefore
    exts = single_extensions(resp)[serial]
    assert ARCHIVE_CUTOFF in exts, f"archiveCutoff missing from the single response: {sorted(exts)}"
    raw = exts[ARCHIVE_CUTOFF]
    tag, s, e = der_tlv(raw, 0)
    assert e == len(raw)
    assert tag == 0x18, f"archiveCutoff is not a GeneralizedTime: {raw.hex()}"
    cutoff = datetime.datetime.strptime(raw[s:e].decode(), "%Y%m%d%H%M%SZ")
    assert cutoff == h.sub.cert.not_valid_before, (cutoff, h.sub.cert.not_valid_before)
    return single


def nonce_of(resp):
    try:
        return resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def http_time(value):
    return email.utils.parsedate_to_datetime(value).astimezone(datetime.timezone.utc).replace(tzinfo=None)


# ------------------------------------------------------------------ openssl client
def test_openssl_post_several_certs_with_nonce(hier):
    good, bad = hier.leaf(), hier.leaf()
    inval = utcnow() - datetime.timedelta(days=1)
    revoke(hier.d, hier.sub.id, bad.serial, "keyCompromise", rfc3339(inval))
    out, der = openssl_query(hier, [good, bad])
    assert "WARNING" not in out, out  # e.g. "WARNING: no nonce in response"
    assert status_line(out, good) == "good"
    assert status_line(out, bad) == "revoked"
    assert re.search(r"Reason: keyCompromise", out), out

    resp = ocsp.load_der_ocsp_response(der)
    check_signed(resp, hier)
    by = responses(resp)
    assert set(by) == {good.cert.serial_number, bad.cert.serial_number}
    check_single(resp, good.cert.serial_number, hier, ocsp.OCSPCertStatus.GOOD)
    r = check_single(resp, bad.cert.serial_number, hier, ocsp.OCSPCertStatus.REVOKED)
    det = ok(hier.d.api("GET", f"/cas/{hier.sub.id}/certificates/{bad.serial}"))
    assert r.revocation_time == parse_time(det["revokedAt"])
    assert r.revocation_reason == x509.ReasonFlags.key_compromise
    nonce = nonce_of(resp)
    assert nonce is not None and 1 <= len(nonce) <= 32, "openssl's nonce was not echoed"


def test_openssl_post_without_nonce(hier):
    leaf = hier.leaf()
    out, der = openssl_query(hier, [leaf], "-no_nonce")
    assert status_line(out, leaf) == "good"
    resp = ocsp.load_der_ocsp_response(der)
    check_signed(resp, hier)
    assert nonce_of(resp) is None
    check_single(resp, leaf.cert.serial_number, hier, ocsp.OCSPCertStatus.GOOD)


def test_get_request(hier):
    leaf, rev = hier.leaf(), hier.leaf()
    revoke(hier.d, hier.sub.id, rev.serial, "cessationOfOperation")
    req = hier.tmp / f"req-{leaf.serial}.der"
    rc, out = run_ocsp("-issuer", hier.sub.pem_path, "-cert", leaf.pem_path, "-cert", rev.pem_path,
                       "-no_nonce", "-reqout", req)
    assert rc == 0, out
    der = req.read_bytes()
    # RFC 6960 A.1: the base64 of the DER request, URL-encoded
    r, resp = get_ocsp(hier.d, hier.sub.id, der)
    check_signed(resp, hier)
    by = responses(resp)
    check_single(resp, leaf.cert.serial_number, hier, ocsp.OCSPCertStatus.GOOD)
    check_single(resp, rev.cert.serial_number, hier, ocsp.OCSPCertStatus.REVOKED)
    assert by[rev.cert.serial_number].revocation_reason == x509.ReasonFlags.cessation_of_operation
    assert "max-age=" in r.headers.get("Cache-Control", "")
    # openssl accepts the GET answer
    resp_file = hier.tmp / f"resp-{leaf.serial}.der"
    resp_file.write_bytes(r.content)
    rc, out = run_ocsp("-respin", resp_file, "-issuer", hier.sub.pem_path, "-cert", leaf.pem_path,
                       "-cert", rev.pem_path, "-CAfile", hier.bundle, "-no_nonce")
    assert rc == 0 and "Response verify OK" in out, out
    assert status_line(out, leaf) == "good" and status_line(out, rev) == "revoked"
    # the same request as POST gives the same statuses
    _, resp2 = post_ocsp(hier.d, hier.sub.id, der)
    assert {s: x.certificate_status for s, x in responses(resp2).items()} == \
        {s: x.certificate_status for s, x in by.items()}


def test_get_request_unquoted_slashes(hier):
    """RFC 6960 A.1: base64 may hold '/' and '+'; a client that does not URL-encode them must work too."""
    leaf = hier.leaf()
    for _ in range(200):
        der = ocsp_request(leaf.cert, hier.sub.cert, nonce=os.urandom(16))
        b64 = base64.b64encode(der).decode()
        if "/" in b64:
            break
    else:
        pytest.skip("no base64 with '/' found")
    r = hier.d.get(f"{ocsp_path(hier.d, hier.sub.id)}/{b64}")
    assert r.status_code == 200
    resp = ocsp.load_der_ocsp_response(r.content)
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, resp.response_status
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_unknown_serial(hier):
    rc, out = run_ocsp("-issuer", hier.sub.pem_path, "-serial", "0x7a5e1c0ffee", "-url", hier.url,
                       "-CAfile", hier.bundle)
    assert rc == 0 and "Response verify OK" in out, out
    assert re.search(r"0x7a5e1c0ffee: unknown", out, re.I), out
    # the same with cryptography: a certificate with a never-issued serial, SHA-256 CertID
    key = ec.generate_private_key(ec.SECP256R1())
    fake = (x509.CertificateBuilder().subject_name(hier.sub.cert.subject).issuer_name(hier.sub.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime(2020, 1, 1)).not_valid_after(datetime.datetime(2030, 1, 1))
            .sign(key, hashes.SHA256()))
    _, resp = post_ocsp(hier.d, hier.sub.id, ocsp_request(fake, hier.sub.cert, hash_alg=hashes.SHA256()))
    check_signed(resp, hier)
    assert resp.serial_number == fake.serial_number
    assert resp.hash_algorithm.name == "sha256"
    check_single(resp, fake.serial_number, hier, ocsp.OCSPCertStatus.UNKNOWN)


# ------------------------------------------------------------------ nonce
def test_nonce_echo(hier):
    leaf = hier.leaf()
    for n in (1, 16, 32):
        nonce = os.urandom(n)
        _, resp = post_ocsp(hier.d, hier.sub.id, ocsp_request(leaf.cert, hier.sub.cert, nonce=nonce))
        check_signed(resp, hier)
        assert nonce_of(resp) == nonce, f"{n}-octet nonce not echoed"
        assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    # two requests with different nonces get different, fresh responses
    _, a = post_ocsp(hier.d, hier.sub.id, ocsp_request(leaf.cert, hier.sub.cert, nonce=b"A" * 16))
    _, b = post_ocsp(hier.d, hier.sub.id, ocsp_request(leaf.cert, hier.sub.cert, nonce=b"B" * 16))
    assert nonce_of(a) == b"A" * 16 and nonce_of(b) == b"B" * 16


def test_nonce_too_long_is_malformed(hier):
    leaf = hier.leaf()
    r, resp = post_ocsp(hier.d, hier.sub.id, ocsp_request(leaf.cert, hier.sub.cert, nonce=os.urandom(33)))
    assert resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert r.content == MALFORMED, r.content.hex()


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("what", ["garbage", "truncated", "empty", "trailing", "not-der-sequence"])
def test_bad_requests_post(hier, what):
    good = ocsp_request(hier.leaf().cert, hier.sub.cert)
    body = {"garbage": os.urandom(200), "truncated": good[:len(good) // 2], "empty": b"",
            "trailing": good + b"\x00\x00", "not-der-sequence": b"\x04\x03abc"}[what]
    r, resp = post_ocsp(hier.d, hier.sub.id, body)
    assert resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST, resp.response_status
    assert r.content == MALFORMED, r.content.hex()


@pytest.mark.parametrize("b64", ["not*base64!", "AAAA", "MAA%3D"])
def test_bad_requests_get(hier, b64):
    r = hier.d.get(f"{ocsp_path(hier.d, hier.sub.id)}/{b64}")
    assert r.status_code == 200, f"GET bad OCSP request -> {r.status_code}"
    assert r.headers.get("Content-Type", "").startswith("application/ocsp-response")
    assert r.content == MALFORMED, r.content.hex()


def test_unauthorized(daemon, hier, tmp):
    leaf = hier.leaf()
    req = ocsp_request(leaf.cert, hier.sub.cert)
    no_ocsp = make_sub(daemon, tmp, hier.root, "nocsp", crl=True, ocsp_=False)
    other = daemon.creds["otheracct"]["accountId"]
    for ca_id, acct in (("no-such-ca", None), (no_ocsp.id, None), (hier.sub.id, "nosuchacct"),
                        (hier.sub.id, other), (hier.root.id, None)):
        r, resp = post_ocsp(daemon, ca_id, req, account=acct)
        assert resp.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED, (ca_id, acct, resp.response_status)
        assert r.content == UNAUTHORIZED
    # a certificate of a CA without OCSP has no OCSP URL
    nl = issue(daemon, no_ocsp, tmp)
    assert aia_urls(nl.cert)["ocsp"] == []
    # a CertID of another issuer sent to this responder is not answered as good
    r, resp = post_ocsp(daemon, hier.sub.id, ocsp_request(nl.cert, no_ocsp.cert))
    assert resp.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED, resp.response_status


# ------------------------------------------------------------------ status changes
def test_revoke_invalidates_cached_answer(hier):
    leaf = hier.leaf()
    req = ocsp_request(leaf.cert, hier.sub.cert)  # nonce-less: cacheable
    _, r1 = post_ocsp(hier.d, hier.sub.id, req)
    assert r1.certificate_status == ocsp.OCSPCertStatus.GOOD
    _, r1b = post_ocsp(hier.d, hier.sub.id, req)
    assert r1b.certificate_status == ocsp.OCSPCertStatus.GOOD
    revoke(hier.d, hier.sub.id, leaf.serial, "privilegeWithdrawn")  # no publishNow: OCSP is immediate anyway
    _, r2 = post_ocsp(hier.d, hier.sub.id, req)
    assert r2.certificate_status == ocsp.OCSPCertStatus.REVOKED, "stale cached 'good' after revocation"
    assert r2.revocation_reason == x509.ReasonFlags.privilege_withdrawn
    det = ok(hier.d.api("GET", f"/cas/{hier.sub.id}/certificates/{leaf.serial}"))
    assert r2.revocation_time == parse_time(det["revokedAt"])
    check_signed(r2, hier)
    _, g = get_ocsp(hier.d, hier.sub.id, req)
    assert g.certificate_status == ocsp.OCSPCertStatus.REVOKED


def test_revoke_racing_first_requests_leaves_no_stale_good(daemon, tmp):
    """The first requests for a certificate miss the answer cache and sign a response from the status they
    read; a revocation committed meanwhile purges the cache before they store. Their 'good' must not be
    cached after the purge: once the revocation has returned, every answer says revoked. Each round
    fires 8 concurrent first requests (half of them with 16 CertIDs, the leaf's first, so reading the statuses
    takes a while) together with the revocation; an RSA CA makes the responder's signature slower."""
    import threading
    h = Hier(daemon, tmp, key="RSA-2048+PKCS15-SHA256", prefix="race")
    others = [h.leaf() for _ in range(15)]  # 16 CertIDs: the most a request may carry
    stale = []
    for rnd in range(25):
        leaf = h.leaf()
        multi = h.tmp / f"race-{rnd}.der"
        args = ["-issuer", h.sub.pem_path]
        for c in [leaf] + others:
            args += ["-cert", c.pem_path]
        rc, out = run_ocsp(*args, "-no_nonce", "-reqout", multi)
        assert rc == 0, out
        reqs = {"multi": multi.read_bytes(), "single": ocsp_request(leaf.cert, h.sub.cert)}
        go = threading.Barrier(9)
        errors = []

        def ask(kind):
            try:
                go.wait()
                post_ocsp(h.d, h.sub.id, reqs[kind])
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
        ts = [threading.Thread(target=ask, args=("multi" if i % 2 else "single",)) for i in range(8)]
        for t in ts:
            t.start()
        go.wait()
        revoke(h.d, h.sub.id, leaf.serial, "keyCompromise")
        for t in ts:
            t.join()
        assert not errors, errors
        for kind, der in reqs.items():
            _, r = post_ocsp(h.d, h.sub.id, der)
            st = r.certificate_status if kind == "single" else next(
                x.certificate_status for x in r.responses if x.serial_number == leaf.cert.serial_number)
            if st != ocsp.OCSPCertStatus.REVOKED:
                stale.append((rnd, kind, st))
    assert not stale, f"answers still not 'revoked' after the revocation returned: {stale}"


@pytest.fixture
def ticking_daemon(tmp_path):
    """A daemon whose scheduler runs every second (responder renewal, CRLs)."""
    _require_binaries()
    d = ConfiguredDaemon(tmp_path / "pkiaasd-tick", ["scheduler_tick_s = 1"])
    d.bootstrap()
    d.start()
    yield d
    rc = d.stop()
    assert rc in (0, None), f"pkiaasd exited with {rc} on SIGTERM\n{d.tail()}"


def test_ca_in_its_last_week_keeps_one_responder(ticking_daemon, tmp_path):
    """A CA that expires within the responder's 7-day rollover period: its responder certificate already
    ends with the CA, so it is not renewed on every scheduler tick, and requests keep being answered by
    that one responder (the previous build issued a new responder certificate every tick and reloaded
    the responder state on every request)."""
    d = ticking_daemon
    root = make_root(d, tmp_path, "lwroot")
    ends = utcnow() + datetime.timedelta(days=3)
    sub = make_sub(d, tmp_path, root, "lwsub", expiryDate=rfc3339(ends))
    assert abs(sub.cert.not_valid_after - ends) <= datetime.timedelta(seconds=1)
    h = Hier.__new__(Hier)
    h.d, h.root, h.sub, h.tmp = d, root, sub, tmp_path
    leaf = issue(d, sub, tmp_path)
    req = ocsp_request(leaf.cert, sub.cert)
    seen = set()
    for _ in range(8):
        _, r = post_ocsp(d, sub.id, ocsp_request(leaf.cert, sub.cert, nonce=os.urandom(16)))
        rc = check_signed(r, h)
        assert r.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert rc.not_valid_after == sub.cert.not_valid_after, "the responder should end with its CA"
        seen.add(rc.serial_number)
        time.sleep(0.5)  # 4 s: four scheduler ticks
    _, cached = post_ocsp(d, sub.id, req)
    seen.add(check_signed(cached, h).serial_number)
    assert len(seen) == 1, f"{len(seen)} responder certificates answered within 4 s"
    listed = ok(d.api("GET", f"/cas/{sub.id}/certificates"))["certificates"]
    responders = [c for c in listed if c.get("profileId") == "ocsp-responder"]
    assert len(responders) == 1, f"{len(responders)} responder certificates issued for the CA"


def test_suspend_and_unsuspend(hier):
    leaf = hier.leaf()
    req = ocsp_request(leaf.cert, hier.sub.cert)
    _, r0 = post_ocsp(hier.d, hier.sub.id, req)
    assert r0.certificate_status == ocsp.OCSPCertStatus.GOOD
    suspend(hier.d, hier.sub.id, leaf.serial)
    _, r1 = post_ocsp(hier.d, hier.sub.id, req)
    assert r1.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert r1.revocation_reason == x509.ReasonFlags.certificate_hold
    out, _ = openssl_query(hier, [leaf])
    assert status_line(out, leaf) == "revoked" and "certificateHold" in out, out
    unsuspend(hier.d, hier.sub.id, leaf.serial)
    _, r2 = post_ocsp(hier.d, hier.sub.id, req)
    assert r2.certificate_status == ocsp.OCSPCertStatus.GOOD, "still revoked after unsuspend"
    out, _ = openssl_query(hier, [leaf])
    assert status_line(out, leaf) == "good"


# ------------------------------------------------------------------ PSS
def test_pss_ca_signs_with_pss(daemon, tmp):
    h = Hier(daemon, tmp, key="RSA-2048+PSS-SHA256", prefix="p")
    assert h.sub.cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256  # issued by an EC root
    leaf = h.leaf()
    out, der = openssl_query(h, [leaf])
    assert status_line(out, leaf) == "good"
    resp = ocsp.load_der_ocsp_response(der)
    rc = check_signed(resp, h, pss=True)
    assert rc.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS  # the PSS CA signed the responder cert
    check_single(resp, leaf.cert.serial_number, h, ocsp.OCSPCertStatus.GOOD)


# ------------------------------------------------------------------ HTTP
def test_cache_headers(hier):
    leaf = hier.leaf()
    for nonce in (None, os.urandom(16)):
        r, resp = post_ocsp(hier.d, hier.sub.id, ocsp_request(leaf.cert, hier.sub.cert, nonce=nonce))
        assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        cc = r.headers.get("Cache-Control", "")
        m = re.search(r"max-age=(\d+)", cc)
        assert m, f"Cache-Control {cc!r}"
        want = (resp.next_update - utcnow()).total_seconds()
        assert 0 < int(m.group(1)) and abs(int(m.group(1)) - want) < 120, (cc, want)
        assert http_time(r.headers["Last-Modified"]) == resp.this_update
        assert http_time(r.headers["Expires"]) == resp.next_update
    r, _ = post_ocsp(hier.d, hier.sub.id, b"junk")
    assert "max-age" not in r.headers.get("Cache-Control", ""), "an error response must not be cacheable"


def test_aia_urls_and_ca_issuers(hier):
    leaf = hier.leaf()
    aia = aia_urls(leaf.cert)
    d = hier.d
    assert aia["ocsp"] == [d.url + ocsp_path(d, hier.sub.id)]
    assert aia["caIssuers"] == [f"{d.url}/ca/{d.account}/{hier.sub.id}.crt"]
    assert crl_dp_urls(leaf.cert) == [f"{d.url}/crl/{d.account}/{hier.sub.id}/crl.crl"]
    r = d.get(f"/ca/{d.account}/{hier.sub.id}.crt")
    assert r.status_code == 200
    assert r.content == hier.sub.der, "caIssuers URL does not serve the CA certificate (DER)"
    x509.load_der_x509_certificate(r.content)
    assert d.get(f"/ca/{d.account}/no-such-ca.crt").status_code == 404
    assert ext_or_none(leaf.cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS).critical is False


# ------------------------------------------------------------------ last: a known daemon defect (see report)
def test_responder_certificate_included_once(hier):
    """RFC 6960 4.2.1 `certs`: the responder certificate, once (a duplicate only bloats every response)."""
    leaf = hier.leaf()
    _, resp = post_ocsp(hier.d, hier.sub.id, ocsp_request(leaf.cert, hier.sub.cert, nonce=os.urandom(8)))
    check_signed(resp, hier)
    assert len(resp.certificates) == 1, (
        f"responder certificate included {len(resp.certificates)} times in the response's certs")
