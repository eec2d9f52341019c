"""SCEP findings of a review, each reproduced against the daemon first: concurrent copies of one PKCSReq
issuing several certificates, an MD5-signed pkiMessage accepted, GetCRL of a large CRL answered with HTTP 500,
and an MDM one-time challenge spent by a request the issuance core refused."""
import hashlib
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import Daemon, _require_binaries, sqlite_only
from helpers import uid
from test_scep_rules import mdm  # noqa: F401 (the MDM configuration fixture)
from scep_msg import (_ias_like, _self_signed, build_msg, enrol, env, envelope, make_csr, make_env,  # noqa: F401
                      post, ra_of, rep_of)


def test_concurrent_replay_issues_one_certificate(env, tmp_path):
    """docs/scep.md: 'The same request again (a retry, or a captured one replayed) is answered with the certificate
    it already produced, never a second one.' Sent 12 times at once, one PKCSReq used to mint several
    certificates (the transaction was looked up before issuing and written after, with no claim in between).
    Five rounds, so that the race shows reliably on 2 cores."""
    ra = ra_of(env.url)
    dup = []
    for i in range(5):
        key = rsa.generate_private_key(65537, 2048)
        cn = uid("race")
        signer = _self_signed(key, cn)
        (tmp_path / str(i)).mkdir()
        e = envelope(tmp_path / str(i), make_csr(key, cn, env.chal), ra.public_bytes(serialization.Encoding.PEM))
        der = build_msg(signer, key, 19, e, hashlib.sha256(os.urandom(8)).hexdigest(), os.urandom(16))
        with ThreadPoolExecutor(12) as ex:
            reps = [rep_of(r, ra)[:2] for r in ex.map(lambda _: post(env.url, der), range(12))]
        # the copies that lose the transaction's claim are answered PENDING (RFC 8894 3.3.2: they poll)
        assert all(s in (("0", None), ("3", None)) for s in reps) and ("0", None) in reps, reps
        # once settled, the same request again gets the certificate it produced
        assert rep_of(post(env.url, der), ra)[:2] == ("0", None)
        listed = env.d.api("GET", f"/cas/{env.ca}/certificates", params={"q": f"CN={cn}"}).json()["certificates"]
        serials = sorted({c["serialNumber"] for c in listed if c["subject"] == f"CN={cn}"})
        if len(serials) != 1:
            dup.append((cn, serials))
    assert not dup, f"one request each, several certificates: {dup}"


def test_md5_signed_pkimessage_is_refused_with_badalg(env, tmp_path):
    """RFC 8894 2.9: implementations SHOULD NOT support MD5 (GetCACaps is unauthenticated, so offering it invites
    rollback); GetCACaps advertises only SHA-256/SHA-512 and the CSR parser already refuses broken digests. A
    pkiMessage whose signature uses MD5 is nevertheless verified and the certificate issued."""
    key = rsa.generate_private_key(65537, 2048)
    cn = uid("md5")
    signer = _self_signed(key, cn)
    ra = ra_of(env.url)
    e = envelope(tmp_path, make_csr(key, cn, env.chal), ra.public_bytes(serialization.Encoding.PEM))
    der = build_msg(signer, key, 19, e, hashlib.sha256(os.urandom(8)).hexdigest(), os.urandom(16), digest="md5")
    st = rep_of(post(env.url, der), ra)[:2]
    assert st == ("2", "0"), f"MD5-signed PKCSReq answered {st} (expected FAILURE badAlg)"


@sqlite_only("writes revoked rows into the database file")
def test_getcrl_of_a_large_crl_is_not_a_5xx(tmp_path):
    """RFC 8894 3.3.4 GetCRL of a CA with ~9,000 revoked certificates (a CRL of a few hundred kB, well within what
    the CA serves at its CRL distribution point) must be answered with a CertRep (the CRL, or a FAILURE), never an
    HTTP 5xx. Revoked rows are written straight into the store as bench/crl.sh does."""
    _require_binaries()
    d = Daemon(tmp_path / "d")
    d.bootstrap()
    d.start()
    try:
        e = make_env(d, "b")
        key, leaf, ra = enrol(e, tmp_path / "enrol")
        d.stop()
        db = sqlite3.connect(d.data_dir / "pkiaas.db")
        pk = db.execute("SELECT pk FROM ca WHERE ca_id=?", (e.ca,)).fetchone()[0]
        db.executemany(
            "INSERT INTO certificate(partition_id, issuer_ca_pk, serial, subject, not_before, not_after, status,"
            " revocation_reason, revoked_at, is_ca, der, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(d.account, pk, "40" + os.urandom(15).hex(), "CN=x", 0, 4102444800, "revoked", 1, 1700000000 + i, 0,
              b"\x00", 0) for i in range(9000)])
        db.commit()
        db.close()
        d.start()
        r = d.api("POST", f"/cas/{e.ca}/crl")
        assert r.status_code in (200, 201), r.text
        # the CRL itself is served fine over HTTP
        crl_len = len(requests.get(f"{d.url}/crl/{d.account}/{e.ca}/crl.crl").content)
        ra = ra_of(e.url)
        (tmp_path / "g").mkdir()
        env = envelope(tmp_path / "g", _ias_like(leaf), ra.public_bytes(serialization.Encoding.PEM))
        der = build_msg(leaf, key, 22, env, hashlib.sha256(os.urandom(8)).hexdigest(), os.urandom(16))
        r = post(e.url, der)
        assert r.status_code < 500, f"GetCRL -> HTTP {r.status_code} {r.text!r} (CRL at the CDP: {crl_len} bytes)"
        assert rep_of(r, ra)[:2] == ("0", None), "GetCRL of a large CRL is not answered with the CRL"
        assert requests.get(d.url + "/healthz").status_code == 200
    finally:
        d.stop()


def _req(mdm, tmp_path, key, challenge):
    signer = _self_signed(key, "ignored")
    ra = ra_of(mdm.url)
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = envelope(tmp_path, make_csr(key, "ignored", challenge), ra.public_bytes(serialization.Encoding.PEM))
    r = post(mdm.url, build_msg(signer, key, 19, env, hashlib.sha256(os.urandom(8)).hexdigest(), os.urandom(16)))
    return rep_of(r, ra)[:2]


def test_challenge_kept_when_issuance_refuses(mdm, tmp_path):
    r = requests.post(mdm.ws + "/challenges", auth=mdm.auth,
                      json={"digitalId": "device", "variables": {"igusername": uid("u"), "iggroup": "S",
                                                                 "devicetype": "iPhone"}})
    assert r.status_code == 201, r.text
    ch = r.json()["challenge"]
    # RSA-1024: refused by the profile (badRequest) - the request does not go ahead
    assert _req(mdm, tmp_path / "a", rsa.generate_private_key(65537, 1024), ch) == ("2", "2")
    # the device retries with a proper key and the same (unused) challenge
    st = _req(mdm, tmp_path / "b", rsa.generate_private_key(65537, 2048), ch)
    assert st == ("0", None), f"the one-time challenge was spent by a refused request: {st}"
