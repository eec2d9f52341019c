"""Crash consistency: 8 concurrent REST clients issue certificates while the
daemon is killed with SIGKILL at random moments (several times) and
restarted; CRLs are published in between. Afterwards every certificate a
client received is in the store under its serial, no serial repeats, the
database passes SQLite's integrity check, the audit chain verifies, and the
cRLNumber never went back."""
import random
import sqlite3
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Daemon, _require_binaries
from helpers import create_ca

TARGET = 10000   # certificates received by clients across all runs
KILLS = 4
CLIENTS = 8


@pytest.fixture
def crashy(tmp_path):
    _require_binaries()
    d = Daemon(tmp_path / "pkiaasd")
    d.bootstrap()
    d.start()
    yield d
    if d.proc is not None:
        d.proc.kill()
        d.proc.wait()
        d.proc = None


def csr_pem():
    key = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crash.example")]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


def test_sigkill_during_issuance(crashy):
    d = crashy
    root = create_ca(d, id="cr-root", type="root", signingKeyDetails="ECDSAP256+SHA256", subject="CN=Crash Root")
    create_ca(d, id="cr-sub", type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
              subject="CN=Crash Issuing", enableCrl=True, profiles=["privatessl-tls-server"])
    body = {"profileId": "privatessl-tls-server", "csr": csr_pem(),
            "subjectAltNames": [{"type": "dNSName", "value": "crash.example"}]}
    received, lock = [], threading.Lock()
    stop = threading.Event()

    def client():
        s = requests.Session()
        s.trust_env = False
        while not stop.is_set():
            try:
                r = s.post(d.api_url("/cas/cr-sub/certificates"), json=body,
                           headers={"Authorization": f"Bearer {d.token}"}, timeout=10)
            except requests.RequestException:
                time.sleep(0.05)  # the daemon is down: wait for the restart
                continue
            if r.status_code == 201:
                cert = x509.load_pem_x509_certificate(r.json()["certificate"].encode())
                with lock:
                    received.append(format(cert.serial_number, "x"))

    crl_numbers = []

    def publish_crl():
        r = d.api("POST", "/cas/cr-sub/crl")
        if r.status_code in (200, 201):
            crl = x509.load_der_x509_crl(d.get(f"/crl/{d.account}/cr-sub/crl.crl").content)
            crl_numbers.append(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    rnd = random.Random(20261123)
    kills = 0
    deadline = time.time() + 600
    while time.time() < deadline:
        time.sleep(rnd.uniform(0.3, 2.0))
        with lock:
            have = len(received)
        if kills < KILLS and have < TARGET:
            publish_crl()
            d.proc.kill()  # SIGKILL: no shutdown path runs
            d.proc.wait()
            d.proc = None
            kills += 1
            d.start()
            publish_crl()
        elif have >= TARGET:
            break
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert kills == KILLS, f"only {kills} kills before {len(received)} certificates"
    assert len(received) >= TARGET, len(received)

    # every certificate a client received is stored, and no serial repeats
    assert len(set(received)) == len(received), "a serial was handed out twice"
    stored, cursor = [], None
    while True:
        params = {"limit": "500"}
        if cursor:
            params["cursor"] = cursor
        page = d.api("GET", "/cas/cr-sub/certificates", params=params).json()
        stored += [c["serialNumber"].lstrip("0") for c in page["certificates"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert len(set(stored)) == len(stored), "the store holds a serial twice"
    missing = {s.lstrip("0") for s in received} - set(stored)
    assert not missing, f"{len(missing)} certificates clients received are not in the store, e.g. {sorted(missing)[:3]}"

    # the audit chain verifies; cRLNumber never went back
    v = d.api("GET", "/audit/verify").json()
    assert v["ok"] is True, v
    assert crl_numbers == sorted(crl_numbers) and len(set(crl_numbers)) == len(crl_numbers), crl_numbers

    # SQLite's own check, with the daemon stopped
    assert d.stop() == 0
    db = sqlite3.connect(str(d.data_dir / "pkiaas.db"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    print(f"\ncrash: {len(received)} certificates received over {kills} SIGKILLs, all stored; "
          f"CRL numbers {crl_numbers[0]}..{crl_numbers[-1]}")
