"""Deleting CAs, and restarting the daemon."""
import hashlib
import re

from cryptography import x509

from helpers import (create_ca, download_chain, download_der, download_pem, error_of, get_ca, list_cas,
                     openssl, uid)

EC = "ECDSAP256+SHA256"


def test_delete(daemon):
    d = daemon
    root = create_ca(d, id=uid("del-root"), type="root", signingKeyDetails=EC, subject="CN=Del Root")
    inter = create_ca(d, id=uid("del-int"), type="intermediate", parentId=root["id"], signingKeyDetails=EC,
                      subject="CN=Del Inter", enableCrl=True)
    sub = create_ca(d, id=uid("del-sub"), type="subord", parentId=inter["id"], signingKeyDetails=EC,
                    subject="CN=Del Sub", enableCrl=True, enableOcsp=True)
    other = create_ca(d, id=uid("del-oth"), type="subord", parentId=root["id"], signingKeyDetails=EC,
                      subject="CN=Del Other", enableCrl=False)
    keep = create_ca(d, id=uid("del-keep"), type="root", signingKeyDetails=EC, subject="CN=Del Keep")
    keep_sub = create_ca(d, id=uid("del-ks"), type="subord", parentId=keep["id"], signingKeyDetails=EC,
                         subject="CN=Del Keep Sub", enableCrl=False)
    family = {root["id"], inter["id"], sub["id"], other["id"]}

    # Deleting a leaf CA affects only itself.
    r = d.api("DELETE", f"/cas/{keep_sub['id']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == keep_sub["id"] and body["status"] == "deleted"
    assert set(body.get("affected", [])) <= {keep_sub["id"]}
    assert list_cas(d)[keep["id"]]["status"] == "active"

    # Deleting the root takes every descendant with it.
    r = d.api("DELETE", f"/cas/{root['id']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == root["id"]
    assert body["status"] == "deleted"
    assert set(body["affected"]) >= {inter["id"], sub["id"], other["id"]}, body
    assert set(body["affected"]) <= family, body

    active = list_cas(d)
    assert not family & set(active), "deleted CAs still listed without includeDeleted"
    assert keep["id"] in active and active[keep["id"]]["status"] == "active"
    everything = list_cas(d, include_deleted=True)
    for ca_id in family | {keep_sub["id"]}:
        assert ca_id in everything, f"{ca_id} missing with includeDeleted"
        assert everything[ca_id]["status"] == "deleted", everything[ca_id]
        assert everything[ca_id]["deletedAt"], everything[ca_id]
    # The certificate fingerprints stay on record.
    assert everything[sub["id"]]["sha256Fingerprint"] == sub["sha256Fingerprint"]

    # The id stays reserved for 24 hours.
    r = d.api("POST", "/cas", json={"id": root["id"], "type": "root", "signingKeyDetails": EC,
                                    "subject": "CN=Reuse"})
    assert r.status_code == 409, (r.status_code, r.text)
    err = error_of(r)
    assert err["code"] == "conflict"
    assert re.search(r"24\s*h", err["message"]), err["message"]
    r = d.api("POST", "/cas", json={"id": sub["id"], "type": "root", "signingKeyDetails": EC,
                                    "subject": "CN=Reuse"})
    assert r.status_code == 409, (r.status_code, r.text)

    # A deleted CA cannot be a parent.
    child_id = uid("del-ch")
    for parent in (root["id"], inter["id"]):
        r = d.api("POST", "/cas", json={"id": child_id, "type": "subord", "parentId": parent,
                                        "signingKeyDetails": EC, "subject": "CN=Orphan", "enableCrl": False})
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        assert "parent" in error_of(r)["message"].lower()
    assert child_id not in list_cas(d, include_deleted=True)

    # Deleting again is not a success.
    r = d.api("DELETE", f"/cas/{root['id']}")
    assert r.status_code in (404, 409), (r.status_code, r.text)
    error_of(r)


def test_parent_deleted_while_child_is_created(daemon):
    """The parent is checked before the child's key is generated (RSA-4096: seconds). Deleted meanwhile, the
    child must not appear as an active CA under a deleted parent: its creation is refused (409), or it was
    committed first and deleted with its parent."""
    import threading
    import time
    d = daemon
    for _ in range(2):
        root = create_ca(d, id=uid("race-root"), type="root", signingKeyDetails=EC, subject="CN=Race Root")
        child_id = uid("race-sub")
        out = {}

        def create():
            out["r"] = d.api("POST", "/cas", json={"id": child_id, "type": "subord", "parentId": root["id"],
                                                  "signingKeyDetails": "RSA-4096+PKCS15-SHA512",
                                                  "subject": "CN=Race Sub", "enableCrl": False})
        t = threading.Thread(target=create)
        t.start()
        time.sleep(0.15)  # the child's key is being generated
        assert d.api("DELETE", f"/cas/{root['id']}").status_code == 200
        t.join()
        cas = list_cas(d, include_deleted=True)
        assert cas[root["id"]]["status"] == "deleted"
        if out["r"].status_code == 201:
            assert cas[child_id]["status"] == "deleted", "an active CA under a deleted parent"
        else:
            assert out["r"].status_code == 409, out["r"].text
            assert error_of(out["r"]).get("field") == "parentId"
            assert child_id not in cas or cas[child_id]["status"] == "deleted"


def test_restart(fresh_daemon, tmp_path):
    d = fresh_daemon
    root = create_ca(d, id="rs-root", type="root", signingKeyDetails="RSA-2048+PSS-SHA256", subject="CN=RS Root")
    inter = create_ca(d, id="rs-int", type="intermediate", parentId="rs-root", signingKeyDetails=EC,
                      subject="CN=RS Inter", enableCrl=True)
    sub = create_ca(d, id="rs-sub", type="subord", parentId="rs-int", signingKeyDetails=EC,
                    subject="CN=RS Sub", enableCrl=False, enableOcsp=True)
    gone = create_ca(d, id="rs-gone", type="root", signingKeyDetails=EC, subject="CN=RS Gone")
    assert d.api("DELETE", "/cas/rs-gone").status_code == 200
    before = list_cas(d, include_deleted=True)
    ders = {i: download_der(d, i) for i in ("rs-root", "rs-int", "rs-sub")}
    chain_before = download_chain(d, "rs-sub")

    d.restart()  # asserts SIGTERM -> exit 0 and waits for /healthz

    after = list_cas(d, include_deleted=True)
    assert set(after) == set(before)
    for ca_id, ca in before.items():
        for k in ("status", "type", "parentId", "sha256Fingerprint", "serialNumber", "expiryDate", "subject",
                  "crlEnabled", "ocspEnabled"):
            assert after[ca_id].get(k) == ca.get(k), (ca_id, k, ca.get(k), after[ca_id].get(k))
    assert after["rs-gone"]["status"] == "deleted"
    for ca_id, der in ders.items():
        assert download_der(d, ca_id) == der
        assert hashlib.sha256(der).hexdigest() == before[ca_id]["sha256Fingerprint"]
    assert download_chain(d, "rs-sub") == chain_before

    # The CA keys still open after the restart: a new CA under each survives openssl's check.
    new_sub = create_ca(d, id="rs-sub2", type="subord", parentId="rs-int", signingKeyDetails=EC,
                        subject="CN=RS Sub Two", enableCrl=False)
    new_int = create_ca(d, id="rs-int2", type="intermediate", parentId="rs-root",
                        signingKeyDetails="RSA-2048+PSS-SHA256", subject="CN=RS Inter Two", enableCrl=False)
    assert new_sub["status"] == new_int["status"] == "active"
    (tmp_path / "root.pem").write_bytes(download_pem(d, "rs-root"))
    (tmp_path / "inter.pem").write_bytes(download_pem(d, "rs-int"))
    (tmp_path / "sub2.pem").write_bytes(download_pem(d, "rs-sub2"))
    (tmp_path / "int2.pem").write_bytes(download_pem(d, "rs-int2"))
    cp = openssl("verify", "-CAfile", "root.pem", "-untrusted", "inter.pem", "sub2.pem", "int2.pem",
                 cwd=tmp_path, check=False)
    out = cp.stdout.decode()
    assert cp.returncode == 0 and "sub2.pem: OK" in out and "int2.pem: OK" in out, out + cp.stderr.decode()
    # The deleted id is still reserved after the restart.
    r = d.api("POST", "/cas", json={"id": "rs-gone", "type": "root", "signingKeyDetails": EC, "subject": "CN=x"})
    assert r.status_code == 409, r.text

    # A second restart right away is also clean.
    d.restart()
    assert get_ca(d, "rs-sub2")["sha256Fingerprint"] == new_sub["sha256Fingerprint"]
    assert x509.load_der_x509_certificate(download_der(d, "rs-sub2")).serial_number == int(
        new_sub["serialNumber"], 16)
