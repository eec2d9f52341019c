"""Two daemons (nodes) on one PostgreSQL database (issue #11), as behind a load balancer.

- 5,000 certificates issued concurrently through both nodes while both publish CRLs: 5,000 distinct
  serials in the store, every certificate a client received stored, one strictly increasing cRLNumber
  sequence, a verifying audit chain, the purchase counter equal to the sum;
- rate limits hold on the sum of both nodes (the buckets live in the store);
- a revocation on one node is answered at once by the other's OCSP responder, and its CRL follows;
- scheduled jobs run on one node: the store's scheduler lease has one holder.

PostgreSQL only (PKIAAS_TEST_PG, see `make integration-pg`): SQLite is one node by design.
"""
import concurrent.futures
import subprocess
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

import conftest
from conftest import Daemon, _require_binaries
from status_helpers import (crl_number, crl_serials, fetch_crl, issue, make_root, make_sub, ocsp_request, ok,
                            post_ocsp, publish, revoke, wait_for)

pytestmark = pytest.mark.skipif(not conftest.ON_PG, reason="multi-node needs PostgreSQL (PKIAAS_TEST_PG)")

TOTAL = 5000
WORKERS = 16


def psql_value(store, sql):
    cp = subprocess.run(["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-d", store, "-c", sql],
                        capture_output=True, text=True, timeout=120, env=conftest.clean_env())
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.strip()


def _nodes(tmp_path, conf="", start_b=True):
    """Node A bootstraps the partition; node B shares its database and credentials."""
    _require_binaries()
    a = Daemon(tmp_path / "node-a")
    b = Daemon(tmp_path / "node-b", store=a.store)
    a.extra_conf = conf
    # every node opens the same sealed keys: one master key (an operator copies the file)
    b.extra_conf = conf + f'master_key_file = "{a.data_dir / "master.key"}"\n'
    a.bootstrap()
    b.account, b.token = a.account, a.token
    b.session.headers["Authorization"] = f"Bearer {b.token}"
    a.start()
    if start_b:
        b.start()
    return a, b


@pytest.fixture
def nodes(tmp_path):
    a, b = _nodes(tmp_path, "scheduler_tick_s = 1\ncrl_delay_s = 1\n")
    yield a, b
    for d in (a, b):
        rc = d.stop()
        assert rc in (0, None), f"pkiaasd exited with {rc}\n{d.tail()}"


def _csr_pem(name):
    key = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


def test_concurrent_issuance_through_two_nodes(nodes, tmp_path):
    a, b = nodes
    root = make_root(a, tmp_path, prefix="mn-root")
    sub = make_sub(a, tmp_path, root, prefix="mn-sub")
    body = {"profileId": "privatessl-tls-server", "csr": _csr_pem("multi.example"),
            "subjectAltNames": [{"type": "dNSName", "value": "multi.example"}]}
    received, errors, lock = [], [], threading.Lock()
    counter = iter(range(TOTAL))
    next_lock = threading.Lock()

    def worker(i):
        node = (a, b)[i % 2]  # a load balancer: half the clients on each node
        s = requests.Session()
        s.trust_env = False
        s.headers["Authorization"] = f"Bearer {node.token}"
        url = node.api_url(f"/cas/{sub.id}/certificates")
        while True:
            with next_lock:
                n = next(counter, None)
            if n is None:
                return
            r = s.post(url, json=body, timeout=60)
            with lock:
                if r.status_code == 201:
                    received.append(r.json()["serialNumber"])
                else:
                    errors.append((r.status_code, r.text[:200]))

    crl_numbers, stop = [], threading.Event()

    def publisher():
        i = 0
        while not stop.is_set():
            node = (a, b)[i % 2]
            i += 1
            crl_numbers.append(publish(node, sub.id)["crlNumber"])
            time.sleep(0.2)

    pub = threading.Thread(target=publisher)
    pub.start()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
        list(ex.map(worker, range(WORKERS)))
    elapsed = time.monotonic() - started
    stop.set()
    pub.join()

    assert not errors, f"{len(errors)} failed issuances, e.g. {errors[:3]}"
    assert len(received) == TOTAL and len(set(received)) == TOTAL
    pk = psql_value(a.store, f"SELECT pk FROM ca WHERE ca_id='{sub.id}' AND status='active'")
    count, distinct = psql_value(
        a.store, f"SELECT count(*), count(DISTINCT serial) FROM certificate WHERE issuer_ca_pk={int(pk)} "
                 "AND is_ca = 0 AND coalesce(profile_id,'') <> 'ocsp-responder'").split("|")
    assert int(count) == int(distinct) == TOTAL, (count, distinct)
    stored = set(psql_value(a.store, f"SELECT serial FROM certificate WHERE issuer_ca_pk={int(pk)}").split())
    assert set(received) <= stored

    # one cRLNumber sequence for the CA, whichever node built the CRL
    assert len(crl_numbers) >= 4
    assert len(set(crl_numbers)) == len(crl_numbers), crl_numbers
    db_numbers = [int(x) for x in psql_value(
        a.store, f"SELECT number FROM crl WHERE ca_pk={int(pk)} AND shard=-1 ORDER BY number").split()]
    assert set(crl_numbers) <= set(db_numbers)
    assert int(psql_value(a.store, f"SELECT crl_number FROM ca WHERE pk={int(pk)}")) == max(db_numbers)
    for node in (a, b):  # each node serves the latest, whichever node built it
        wait_for(lambda: crl_number(fetch_crl(node, sub.id)[1]) >= max(db_numbers), 15,
                 what="the latest CRL on both nodes")

    # the purchase counter is the sum; the audit chain stayed linear under both writers
    for node in (a, b):
        assert ok(node.api("GET", "/inventory"))["certificates"]["issued"] == TOTAL
        v = ok(node.api("GET", "/audit/verify"))
        assert v["ok"] is True and v["records"] >= TOTAL, v
    print(f"\nmulti-node: {TOTAL} certificates through 2 nodes in {elapsed:.1f}s "
          f"({TOTAL / elapsed:.0f}/s), CRL numbers {min(crl_numbers)}..{max(crl_numbers)}")


def test_revocation_seen_by_the_other_node(nodes, tmp_path):
    a, b = nodes
    root = make_root(a, tmp_path, prefix="mnr-root")
    sub = make_sub(a, tmp_path, root, prefix="mnr-sub")
    leaf = issue(a, sub, tmp_path)
    req = ocsp_request(leaf.cert, sub.cert)
    for _ in range(3):  # cached by node B's responder
        _, resp = post_ocsp(b, sub.id, req)
        assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    _, crl = fetch_crl(b, sub.id)
    assert leaf.cert.serial_number not in crl_serials(crl)

    revoke(a, sub.id, leaf.serial, publish=True)
    _, resp = post_ocsp(b, sub.id, req)
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED, "node B answered from a stale cache"
    wait_for(lambda: leaf.cert.serial_number in crl_serials(fetch_crl(b, sub.id)[1]), 15,
             what="node B serves the CRL node A published")

    # a revocation without publishNow: the scheduler of the leading node rebuilds the CRL
    leaf2 = issue(b, sub, tmp_path)
    revoke(b, sub.id, leaf2.serial)
    _, resp = post_ocsp(a, sub.id, ocsp_request(leaf2.cert, sub.cert))
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    for node in (a, b):
        wait_for(lambda: leaf2.cert.serial_number in crl_serials(fetch_crl(node, sub.id)[1]), 60,
                 what="the scheduled CRL lists a revocation made on either node")

    # one node holds the scheduler lease
    holders = psql_value(a.store, "SELECT count(DISTINCT holder) FROM job_lease WHERE name='scheduler'")
    assert holders == "1"


def test_ca_changes_seen_by_the_other_node(nodes, tmp_path):
    """CA-level changes (delete) reach the other node's CA cache at once, not after its 30 s TTL."""
    a, b = nodes
    root = make_root(a, tmp_path, prefix="mnc-root")
    sub = make_sub(a, tmp_path, root, prefix="mnc-sub")
    issue(b, sub, tmp_path)  # node B has the CA in its cache now
    assert ok(a.api("DELETE", f"/cas/{sub.id}"))["status"] == "deleted"
    r = b.api("POST", f"/cas/{sub.id}/certificates", json={
        "profileId": "privatessl-tls-server", "csr": _csr_pem("gone.example"),
        "subjectAltNames": [{"type": "dNSName", "value": "gone.example"}]})
    assert r.status_code == 404, f"node B issued from a CA deleted on node A: {r.status_code} {r.text[:200]}"


def test_scheduler_fails_over(tmp_path):
    """Node A starts first and leads; when it stops, node B takes the lease over once it has expired
    (3 ticks + 10 s) and B's scheduler publishes the CRL with a revocation made on B."""
    a, b = _nodes(tmp_path, "scheduler_tick_s = 1\ncrl_delay_s = 1\n", start_b=False)
    try:
        wait_for(lambda: psql_value(a.store, "SELECT count(*) FROM job_lease WHERE name='scheduler'") == "1", 10,
                 what="node A takes the scheduler lease")
        leader = psql_value(a.store, "SELECT holder FROM job_lease WHERE name='scheduler'")
        b.start()
        root = make_root(b, tmp_path, prefix="fo-root")
        sub = make_sub(b, tmp_path, root, prefix="fo-sub")
        leaf = issue(b, sub, tmp_path)
        time.sleep(2)
        assert psql_value(a.store, "SELECT holder FROM job_lease WHERE name='scheduler'") == leader, \
            "node B took the lease while node A was alive"
        assert a.stop() == 0
        revoke(b, sub.id, leaf.serial)
        wait_for(lambda: leaf.cert.serial_number in crl_serials(fetch_crl(b, sub.id)[1]), 40,
                 what="node B's scheduler (the new leader) publishes the revocation")
        assert psql_value(a.store, "SELECT holder FROM job_lease WHERE name='scheduler'") != leader
    finally:
        for node in (a, b):
            node.stop()


def test_rate_limit_holds_on_the_sum(tmp_path):
    limit, window = 100, 10
    a, b = _nodes(tmp_path, f"rate_limit_standard = {limit}\nrate_limit_window_s = {window}\n")
    try:
        sessions = []
        for node in (a, b):
            s = requests.Session()
            s.trust_env = False
            s.headers["Authorization"] = f"Bearer {node.token}"
            sessions.append((s, node.api_url("/cas")))

        def burst(i):
            s, url = sessions[i % 2]
            return s.get(url, timeout=60).status_code

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            statuses = list(ex.map(burst, range(3 * limit)))
        elapsed = time.monotonic() - started
        assert set(statuses) <= {200, 429}, set(statuses)
        passed = statuses.count(200)
        # one bucket for both nodes: the limit plus what refilled meanwhile (one node alone would let
        # 2 x limit through)
        assert passed <= limit + int(elapsed * limit / window) + 2, (passed, elapsed)
        assert statuses.count(429) > 0
    finally:
        for node in (a, b):
            node.stop()


def test_responder_revoked_on_one_node_is_replaced_on_both(nodes, tmp_path):
    """The OCSP responder's certificate revoked on node A (a key compromise): both nodes sign with the new
    responder from the next answer (B learns it by the CA's change counter)."""
    import os
    a, b = nodes
    root = make_root(a, tmp_path, prefix="rra")
    sub = make_sub(a, tmp_path, root, prefix="rrs")
    leaf = issue(a, sub, tmp_path)
    _, oa = post_ocsp(a, sub.id, ocsp_request(leaf.cert, sub.cert, nonce=os.urandom(8)))
    _, ob = post_ocsp(b, sub.id, ocsp_request(leaf.cert, sub.cert, nonce=os.urandom(8)))
    old = oa.certificates[0].serial_number
    assert ob.certificates[0].serial_number == old
    revoke(a, sub.id, format(old, "x"), "keyCompromise")
    for node in (a, b):
        _, o = post_ocsp(node, sub.id, ocsp_request(leaf.cert, sub.cert, nonce=os.urandom(8)))
        assert o.certificates[0].serial_number != old, "a node still signs with the revoked responder"
        assert o.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_token_revoked_on_one_node_stops_on_both(nodes):
    a, b = nodes
    tok = ok(a.api("POST", "/tokens", json={"name": "xnode", "roles": ["Owners"]}), 201)["token"]
    s = requests.Session()
    s.trust_env = False
    s.headers["Authorization"] = f"Bearer {tok}"
    assert s.get(b.api_url("/cas"), timeout=30).status_code == 200  # cached on B
    ok(a.api("DELETE", "/tokens/xnode"))
    assert s.get(a.api_url("/cas"), timeout=30).status_code == 401
    assert s.get(b.api_url("/cas"), timeout=30).status_code == 401, "node B still accepted the revoked token"
