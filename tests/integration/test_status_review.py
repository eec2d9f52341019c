"""CRL and OCSP findings of a review, each reproduced against the daemon first: a revocation pending at a
restart, the revocations of a deleted CA, and the forms of If-None-Match on the CRL endpoint."""
import json

import pytest
import requests
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtensionOID

from conftest import _require_binaries
from status_helpers import (ConfiguredDaemon, crl_serials, fetch_crl, issue, make_root, make_sub,
                            ocsp_request, post_ocsp, revoke, wait_for)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("status-review")


# ---------------------------------------------------------------- 1
@pytest.fixture
def delay_daemon(tmp_path):
    _require_binaries()
    d = ConfiguredDaemon(tmp_path / "pkiaasd-delay", ["crl_delay_s = 4", "scheduler_tick_s = 1"])
    d.bootstrap()
    d.start()
    yield d
    d.stop()


def test_pending_crl_rebuild_survives_restart(delay_daemon, tmp_path):
    """docs/status-services.md + configuration.md: after a revocation the CRL is rebuilt within crl_delay_s.
    The "dirty" mark lives in memory: a restart between the revocation and the rebuild used to leave the old
    CRL served until crl_period_s (24 h)."""
    d = delay_daemon
    root = make_root(d, tmp_path, "rsroot")
    sub = make_sub(d, tmp_path, root, "rssub", ocsp_=False)
    leaf = issue(d, sub, tmp_path)
    fetch_crl(d, sub.id)                      # a CRL exists (stored, nextUpdate in 7 days)
    revoke(d, sub.id, leaf.serial, "keyCompromise")   # no publishNow: due within crl_delay_s = 4 s
    d.restart()

    def listed():
        _, crl = fetch_crl(d, sub.id)
        return crl if leaf.cert.serial_number in crl_serials(crl) else None

    # 30 s: on PostgreSQL the new process first waits for the old one's scheduler lease (3 ticks + 10 s)
    wait_for(listed, 30, what="CRL listing a revocation made just before a restart (crl_delay_s = 4)")


# ---------------------------------------------------------------- 2
def test_deleted_ca_revocations_stay_published(daemon, tmp):
    """The guide: deleting a CA makes every certificate under it unusable. A leaf revoked for keyCompromise by
    an issuing CA that is then deleted: the deleted CA publishes nothing any more (its CRL distribution point
    answers 404, OCSP unauthorized), so its own certificate must be revoked at its parent, or the chain
    root -> sub -> leaf would still validate with the leaf's revocation published nowhere."""
    root = make_root(daemon, tmp, "dlroot")
    sub = make_sub(daemon, tmp, root, "dlsub")
    leaf = issue(daemon, sub, tmp)
    revoke(daemon, sub.id, leaf.serial, "keyCompromise", publish=True)
    cdp = leaf.cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value[0] \
        .full_name[0].value
    assert leaf.cert.serial_number in crl_serials(x509.load_der_x509_crl(requests.get(cdp, timeout=10).content))
    r = daemon.api("DELETE", f"/cas/{sub.id}")
    assert r.status_code == 200 and r.json()["parentRevocation"] == "revoked", r.text
    _, root_crl = fetch_crl(daemon, root.id)  # published at once: no publish call here
    sub_revoked_at_root = sub.cert.serial_number in crl_serials(root_crl)
    if sub_revoked_at_root:
        entry = root_crl.get_revoked_certificate_by_serial_number(sub.cert.serial_number)
        assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
            x509.ReasonFlags.cessation_of_operation
    r = requests.get(cdp, timeout=10)
    leaf_still_listed = r.status_code == 200 and \
        leaf.cert.serial_number in crl_serials(x509.load_der_x509_crl(r.content))
    _, resp = post_ocsp(daemon, sub.id, ocsp_request(leaf.cert, sub.cert))
    ocsp_says_revoked = resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL and \
        resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert sub_revoked_at_root or leaf_still_listed or ocsp_says_revoked, (
        f"after deleting {sub.id}: its CRL -> HTTP {r.status_code}, OCSP -> {resp.response_status}, and its "
        f"certificate is not on the root CRL: the leaf's keyCompromise revocation is published nowhere")


# ---------------------------------------------------------------- 3
@pytest.mark.parametrize("form", ["list", "weak", "star"])
def test_crl_if_none_match_forms(daemon, tmp, form):
    """RFC 9110 13.1.2: If-None-Match is a list of entity tags compared weakly, or '*'; a match answers 304
    (it used to compare the whole header, so only a lone strong tag got 304)."""
    root = make_root(daemon, tmp, "inroot")
    r, _ = fetch_crl(daemon, root.id)
    et = r.headers["ETag"]
    inm = {"list": f'"other", {et}', "weak": f"W/{et}", "star": "*"}[form]
    r2 = daemon.get(f"/crl/{daemon.account}/{root.id}/crl.crl", headers={"If-None-Match": inm})
    assert r2.status_code == 304, f"If-None-Match: {inm} -> {r2.status_code}"


def test_deleting_a_root_or_a_revoked_ca_says_so(daemon, tmp):
    root = make_root(daemon, tmp, "dl2root")
    sub = make_sub(daemon, tmp, root, "dl2sub")
    revoke(daemon, root.id, sub.serial, "superseded", publish=True)
    r = daemon.api("DELETE", f"/cas/{sub.id}")
    assert r.status_code == 200 and r.json()["parentRevocation"] == "already", r.text
    _, root_crl = fetch_crl(daemon, root.id)
    entry = root_crl.get_revoked_certificate_by_serial_number(sub.cert.serial_number)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.superseded
    r = daemon.api("DELETE", f"/cas/{root.id}")
    assert r.status_code == 200 and r.json()["parentRevocation"] == "none", r.text


def test_crl_publication_is_audited(daemon, tmp):
    """A CRL published on request is an operator's action: recorded like a status change."""
    root = make_root(daemon, tmp, "auroot")
    r = daemon.api("POST", f"/cas/{root.id}/crl")
    assert r.status_code == 200, r.text
    number = r.json()["crlNumber"]
    recs = daemon.api("GET", "/audit", params={"action": "crl.publish", "limit": 1000}).json()["records"]
    mine = [x for x in recs if x["target"] == f"crl:{root.id}"]
    assert len(mine) == 1 and mine[0]["result"] == "success" and mine[0]["actor"].startswith("token:"), recs
    details = mine[0]["details"] if isinstance(mine[0]["details"], dict) else json.loads(mine[0]["details"])
    assert details["crlNumber"] == number, mine
