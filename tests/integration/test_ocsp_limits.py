"""OCSP responder rules found by review (each failed on the build before its fix), checked on the DER answers with
python3-cryptography:
- a revoked (or suspended) responder certificate is replaced at once: answers are signed by a new one;
- only answers about one certificate the CA issued are cached: answers for made-up serials or several CertIDs are
  signed afresh each time, so strangers cannot fill memory or slow down every revocation;
- past the rate limit an OCSP client gets an OCSPResponse (tryLater), and the limit is per client address."""
import http.client
import os
import subprocess
import time

import requests
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from conftest import _require_binaries
from status_helpers import (ConfiguredDaemon, issue, make_root, make_sub, ocsp_path, ocsp_request, post_ocsp, revoke,
                            suspend)


def _post(d, ca_id, der):
    return requests.post(d.url + ocsp_path(d, ca_id), data=der, headers={"Content-Type": "application/ocsp-request"},
                         timeout=60, proxies={"http": None, "https": None})


def _openssl_request(tmp_path, name, *args):
    out = tmp_path / f"{name}.der"
    cp = subprocess.run(["openssl", "ocsp", *map(str, args), "-no_nonce", "-reqout", str(out)], capture_output=True,
                        timeout=60)
    assert out.exists(), cp.stderr
    return out.read_bytes()


def test_revoked_or_suspended_responder_is_replaced(daemon, tmp_path):
    d = daemon
    root = make_root(d, tmp_path, "rr")
    sub = make_sub(d, tmp_path, root, "rs")
    leaf = issue(d, sub, tmp_path)
    seen = []
    for change in (lambda serial: suspend(d, sub.id, serial), lambda serial: revoke(d, sub.id, serial, "keyCompromise")):
        _, o = post_ocsp(d, sub.id, ocsp_request(leaf.cert, sub.cert, nonce=os.urandom(8)))
        responder = o.certificates[0]
        seen.append(responder.serial_number)
        change(format(responder.serial_number, "x"))
        _, o2 = post_ocsp(d, sub.id, ocsp_request(leaf.cert, sub.cert, nonce=os.urandom(8)))
        new = o2.certificates[0]
        assert new.serial_number not in seen, "answers still signed by the revoked or suspended responder"
        # the new responder's answer verifies and still says good for the leaf
        assert o2.certificate_status == ocsp.OCSPCertStatus.GOOD
        key = new.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(o2.signature, o2.tbs_response_bytes, padding.PKCS1v15(), o2.signature_hash_algorithm)
        else:
            key.verify(o2.signature, o2.tbs_response_bytes, ec.ECDSA(o2.signature_hash_algorithm))
        assert new.issuer == sub.cert.subject


def _produced_twice(d, ca_id, der):
    """producedAt of the answers to the same request sent twice, 1.1 s apart: equal when the second was cached."""
    first = ocsp.load_der_ocsp_response(_post(d, ca_id, der).content)
    time.sleep(1.1)
    second = ocsp.load_der_ocsp_response(_post(d, ca_id, der).content)
    return first, first.produced_at, second.produced_at


def test_only_answers_about_issued_certificates_are_cached(daemon, tmp_path):
    d = daemon
    root = make_root(d, tmp_path, "cr")
    sub = make_sub(d, tmp_path, root, "cs")
    a, b = issue(d, sub, tmp_path), issue(d, sub, tmp_path)
    _, p1, p2 = _produced_twice(d, sub.id, ocsp_request(a.cert, sub.cert))
    assert p1 == p2  # one issued certificate: cached
    made_up = _openssl_request(tmp_path, "madeup", "-issuer", sub.pem_path, "-serial", "0x4242424242424242")
    o, p1, p2 = _produced_twice(d, sub.id, made_up)
    assert o.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    assert p2 > p1  # signed each time, never kept
    # several CertIDs: not kept either, so a revocation has none of them to re-sign
    multi = _openssl_request(tmp_path, "multi", "-issuer", sub.pem_path, "-cert", a.pem_path, "-cert", b.pem_path)
    _, p1, p2 = _produced_twice(d, sub.id, multi)
    assert p2 > p1
    for i in range(30):
        _post(d, sub.id, _openssl_request(tmp_path, f"m{i}", "-issuer", sub.pem_path, "-cert", a.pem_path,
                                          "-serial", hex(0x5000 + i)))
    t0 = time.monotonic()
    revoke(d, sub.id, b.serial, "superseded")
    assert time.monotonic() - t0 < 2.0
    _, after = post_ocsp(d, sub.id, ocsp_request(b.cert, sub.cert))
    assert after.certificate_status == ocsp.OCSPCertStatus.REVOKED


def test_rate_limited_ocsp_is_an_ocsp_answer_per_client(tmp_path):
    _require_binaries()
    d = ConfiguredDaemon(tmp_path / "pkiaasd", ["rate_limit_standard = 10", "rate_limit_premium = 10",
                                                "rate_limit_window_s = 600"])
    d.bootstrap()
    d.start()
    try:
        root = make_root(d, tmp_path, "rl")
        sub = make_sub(d, tmp_path, root, "rls")
        leaf = issue(d, sub, tmp_path)
        req = ocsp_request(leaf.cert, sub.cert)
        answers = [_post(d, sub.id, req) for _ in range(12)]
        limited = [r for r in answers if r.status_code == 429]
        assert limited, [r.status_code for r in answers]
        r = limited[-1]
        assert r.headers["Content-Type"].startswith("application/ocsp-response") and "Retry-After" in r.headers
        assert ocsp.load_der_ocsp_response(r.content).response_status == ocsp.OCSPResponseStatus.TRY_LATER
        # another relying party (another source address) is still answered
        c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=30, source_address=("127.0.0.2", 0))
        c.request("POST", ocsp_path(d, sub.id), body=req, headers={"Content-Type": "application/ocsp-request"})
        other = c.getresponse()
        body = other.read()
        c.close()
        assert other.status == 200, other.status
        assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD
    finally:
        d.stop()
