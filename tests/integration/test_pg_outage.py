"""PostgreSQL unreachable under a running daemon (the cluster of the PostgreSQL run is paused and resumed with
scripts/pg-cluster.sh): status services must say "try later", never "this does not exist". Found by a review:
the public CRL answered 404 "no such CRL" (which an HTTP cache in front keeps) and OCSP answered unauthorized
(RFC 6960: the responder has no authority for this CA) while the admin API correctly answered 503; and the
first issuance after the server came back failed (its connection looked fine until a statement failed)."""
import os
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

import conftest
from conftest import Daemon, _require_binaries
from status_helpers import PROFILE, issue, make_root, make_sub, ocsp_request, post_ocsp, publish
from test_multinode import _csr_pem

pytestmark = pytest.mark.skipif(not conftest.ON_PG, reason="needs the PostgreSQL run's private cluster")
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pg-cluster.sh"


def _cluster_dir():
    """pg-cluster.sh puts the socket in DIR/sock and names it in the URL's host parameter."""
    q = urllib.parse.parse_qs(urllib.parse.urlparse(os.environ["PKIAAS_TEST_PG"]).query)
    return str(Path(q["host"][0]).parent)


def _pg(action):
    cp = subprocess.run(["bash", str(SCRIPT), action, _cluster_dir()], capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr


@pytest.fixture
def outage(tmp_path):
    _require_binaries()
    d = Daemon(tmp_path / "n")
    d.bootstrap()
    d.start()
    root = make_root(d, tmp_path)
    sub = make_sub(d, tmp_path, root)
    leaf = issue(d, sub, tmp_path)
    publish(d, sub.id)
    assert d.get(f"/crl/{d.account}/{sub.id}/crl.crl").status_code == 200
    _pg("pause")
    try:
        yield d, sub, leaf
    finally:
        _pg("resume")
        d.stop()


def test_crl_while_store_down_is_503(outage):
    d, sub, _ = outage
    assert d.api("GET", f"/cas/{sub.id}").status_code == 503
    r = d.get(f"/crl/{d.account}/{sub.id}/crl.crl")
    assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.text[:200])


def test_ocsp_while_store_down_is_trylater(outage):
    d, sub, leaf = outage
    _, resp = post_ocsp(d, sub.id, ocsp_request(leaf.cert, sub.cert))
    assert resp.response_status == ocsp.OCSPResponseStatus.TRY_LATER, resp.response_status


def test_first_issuance_after_a_restart_succeeds(tmp_path):
    """docs/operations.md: nodes reconnect by themselves; only requests in flight at the switch fail. Nothing is
    in flight here: the server is restarted while the daemon is idle, and the next issuance must work."""
    _require_binaries()
    d = Daemon(tmp_path / "r")
    d.bootstrap()
    d.start()
    try:
        root = make_root(d, tmp_path)
        sub = make_sub(d, tmp_path, root)
        body = {"profileId": PROFILE, "csr": _csr_pem("x.example"),
                "subjectAltNames": [{"type": "dNSName", "value": "x.example"}]}
        assert d.api("POST", f"/cas/{sub.id}/certificates", json=body).status_code == 201
        _pg("pause")
        _pg("resume")
        time.sleep(1.5)  # idle longer than the connection check's threshold
        r = d.api("POST", f"/cas/{sub.id}/certificates", json=body)
        assert r.status_code == 201, (r.status_code, r.text[:200])
        assert d.api("GET", f"/cas/{sub.id}").status_code == 200
    finally:
        d.stop()
