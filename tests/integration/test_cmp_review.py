"""CMP findings of a review, each proven against the running daemon with requests written by `openssl cmp`
and then edited (tests/integration/cmp_msg.py): a captured signed request replayed at another configuration of
the same CA, a kur without oldCertID, a certConf with two CertStatus entries, and the answer time of an
unknown MAC reference."""
import hashlib
import statistics
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cmp_msg import (Msg, answer_to, cert_conf_body, cert_from_rep, content, elems, enc, error_info, integer,
                     load_key, octets, oid, rep_info, seq)
from test_cmp import cmp, enroll_mac, healthy, list_subject, mac_args, new_key, post_raw, run_cmp, sig_args  # noqa: F401


def test_signed_cr_replayed_at_another_configuration_issues_nothing(cmp):
    """docs/cmp.md: 'a replayed request (same transactionID) is rejected with transactionIdInUse and issues
    nothing' (RFC 4210 5.1.1). A certificate of the CA authenticates at every configuration of that CA, so the
    transactionID claim is partition-wide: the same captured cr, replayed byte for byte at a second
    configuration (here one with a TLS-server profile), is refused there too."""
    d = cmp.d
    r = d.api("POST", f"/cas/{cmp.sub['id']}/profiles", json={"profileId": "cmp-tls-server"})
    assert r.status_code in (200, 201, 204, 409), r.text
    r = d.api("POST", "/protocols", json={"id": "cmp-srv", "type": "cmp", "caId": cmp.sub["id"],
                                           "profileId": "cmp-tls-server"})
    assert r.status_code == 201, r.text

    _, kp1, _, cp1 = enroll_mac(cmp, "cmp-xcfg", "-implicit_confirm")
    req = cmp.work / "xcfg-cr.der"
    cp = run_cmp(cmp, "-cmd", "cr", *sig_args(cmp, cp1, kp1), "-newkey", new_key(cmp, "cmp-xcfg-2")[1],
                 "-certout", cmp.work / "xcfg2.pem", "-implicit_confirm", "-reqout", req)
    assert cp.returncode == 0, cp.log
    assert len(list_subject(cmp, "cmp-xcfg")) == 2  # the ir's and the cr's

    # the same bytes again at the same configuration: refused (transactionIdInUse)
    r = post_raw(cmp, req.read_bytes())
    assert rep_info(r.content) == (2, {21}), r.content.hex()
    # ... and at the other configuration of the same CA
    r = post_raw(cmp, req.read_bytes(), cfg="cmp-srv")
    assert r.status_code == 200
    status, der = cert_from_rep(r.content)
    recs = list_subject(cmp, "cmp-xcfg")
    if der is not None:
        eku = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        print("replay issued a certificate with EKU", list(eku))
    assert status == 2 and der is None and len(recs) == 2, (
        f"the replayed cr was issued again at another configuration: status {status}, {len(recs)} certificates")
    healthy(cmp)



def _req(env, name, cmd, *args):
    path = env.work / f"{name}-{cmd}.der"
    cp = run_cmp(env, "-cmd", cmd, *args, "-reqout", path, "-certout", env.work / "unused.pem",
                 "-server", "127.0.0.1:1", timeout=30)
    assert path.exists(), cp.log
    return Msg(path.read_bytes())


def test_kur_without_oldcertid_is_refused(cmp):
    """docs/cmp.md (protection table): kur 'by the certificate being updated (oldCertID must name it)';
    RFC 9483 4.1.3: the kur's controls MUST carry id-regCtrl-oldCertID. A kur whose CertRequest has no controls
    (POP and protection redone correctly) is granted anyway."""
    _, kp1, _, cp1 = enroll_mac(cmp, "cmp-kur-noold", "-implicit_confirm")
    k2, kp2 = new_key(cmp, "cmp-kur-noold-2")
    m = _req(cmp, "kur-noold", "kur", *sig_args(cmp, cp1, kp1), "-newkey", kp2, "-implicit_confirm")
    crm = elems(elems(content(content(m.body)))[0][2])        # certReq, popo
    creq = elems(crm[0][2])                                   # certReqId, certTemplate, controls
    assert len(creq) == 3, "openssl sends oldCertID in controls"
    newreq = seq(creq[0][1], creq[1][1])                      # without controls
    sig = k2.sign(newreq, ec.ECDSA(hashes.SHA256()))
    popo = enc(0xA1, seq(oid("1.2.840.10045.4.3.2")) + enc(0x03, b"\x00" + sig))
    m.body = enc(m.body[0], seq(seq(newreq, popo)))
    r = post_raw(cmp, m.fresh().sign(load_key(kp1)).der())
    assert r.status_code == 200
    status, der = cert_from_rep(r.content)
    assert status == 2 and der is None, f"kur without oldCertID granted (status {status})"
    assert len(list_subject(cmp, "cmp-kur-noold")) == 1
    healthy(cmp)


def _ir(env, name):
    m = _req(env, name, "ir", *mac_args(env), "-newkey", new_key(env, name)[1], "-subject", f"/CN={name}")
    r = post_raw(env, m.der())
    st, cert = cert_from_rep(r.content)
    assert st == 0, r.content.hex()
    return m, r.content, cert


def test_certconf_with_a_later_rejection_does_not_leave_the_certificate_valid(cmp):
    """RFC 9483 4.1.1: certConf carries exactly one CertStatus. A certConf with two CertStatus for the
    certificate (certReqId 0), 'accepted' then 'rejection', is answered pkiConf and only the first one is acted
    on (OpenSSL ignores the rest): the rejected certificate stays valid. The server counts the entries already
    (certconf_count) but only checks for zero."""
    m, rsp, cert = _ir(cmp, "cmp-cc-two")
    h = hashlib.sha256(cert).digest()
    cc = answer_to(m, rsp, cert_conf_body(cert, status=0, extra_status=[(2, 0, h)])).mac(cmp.secret)
    r = post_raw(cmp, cc.der())
    assert r.status_code == 200
    recs = list_subject(cmp, "cmp-cc-two")
    body = Msg(r.content).body_type
    assert body == 23 or recs[0]["status"] == "revoked", (
        f"answered body {body} and the certificate the certConf rejected is {recs[0]['status']}")
    healthy(cmp)


def _genm(env):
    path = env.work / "oracle-genm.der"
    run_cmp(env, "-cmd", "genm", *mac_args(env), "-reqout", path, "-server", "127.0.0.1:1", timeout=30)
    return Msg(path.read_bytes())


def _with_ref_and_iterations(base, ref, n):
    m = Msg(base.der()).fresh()
    alg = elems(content(content(m.field(0xA1))))  # OID, PBMParameter
    salt, owf, _, macalg = elems(alg[1][2])
    m.set_field(0xA1, enc(0xA1, seq(alg[0][1], seq(salt[1], owf[1], integer(n), macalg[1]))))
    m.set_field(0xA2, enc(0xA2, octets(ref)))
    return m.mac("not-the-secret").der()


def test_unknown_and_wrong_reference_take_the_same_time(cmp):
    """docs/cmp.md: 'A wrong secret and an unknown reference get the same answer ... and does not tell which
    references exist.' The answers are the same bytes-wise, but only a known reference makes the server run the
    PasswordBasedMac (mac_ok), whose iterationCount the client chooses (OpenSSL allows up to 100000): a wrong
    MAC for an existing reference is answered measurably later than one for an unknown reference."""
    base = _genm(cmp)
    diffs, unknown = [], []
    for _ in range(15):
        t = {}
        for ref in (b"ref1", b"nosuchref"):
            der = _with_ref_and_iterations(base, ref, 100000)
            t0 = time.perf_counter()
            r = post_raw(cmp, der)
            t[ref] = time.perf_counter() - t0
            assert error_info(r.content) == (2, {2}), r.content.hex()
        diffs.append(t[b"ref1"] - t[b"nosuchref"])
        unknown.append(t[b"nosuchref"])
    med, base = statistics.median(diffs), statistics.median(unknown)
    # relative to the answer time itself, so a slow (sanitizer, loaded) run does not decide it
    assert med < 0.3 * base, (f"an existing reference answers {med * 1000:.1f} ms later than an unknown one "
                              f"({base * 1000:.1f} ms)")
    healthy(cmp)
