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

    # SQLite's own check, with the daemon stopped (PostgreSQL: its own crash recovery)
    assert d.stop() == 0
    if d.store is None:
        db = sqlite3.connect(str(d.data_dir / "pkiaas.db"))
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    print(f"\ncrash: {len(received)} certificates received over {kills} SIGKILLs, all stored; "
          f"CRL numbers {crl_numbers[0]}..{crl_numbers[-1]}")


@pytest.mark.skipif(not __import__("shutil").which("scepclient"), reason="scepclient not installed")
def test_sigkill_with_scep_acme_and_rest_clients(tmp_path):
    """8 concurrent clients of three protocols (4 REST, 2 SCEP with micromdm
    scepclient, 2 ACME with the test client, IP identifiers over http-01)
    while the daemon is SIGKILLed 3 times: every certificate any of them
    received is stored, and no serial repeats."""
    import subprocess

    from acme_helpers import Client, Http01Server, b64u, free_port, make_csr
    from conftest import clean_env
    _require_binaries()
    http01 = free_port()
    d = Daemon(tmp_path / "pkiaasd")
    d.extra_conf = f"acme_http01_port = {http01}\nacme_validation_timeout_ms = 3000\n"
    d.bootstrap()
    d.start()
    web = Http01Server(http01)
    try:
        root = create_ca(d, id="mx-root", type="root", signingKeyDetails="RSA-2048+PKCS15-SHA256", subject="CN=Mx Root")
        create_ca(d, id="mx-sub", type="subord", parentId=root["id"], signingKeyDetails="RSA-2048+PKCS15-SHA256",
                  subject="CN=Mx Issuing", profiles=["privatessl-tls-server", "scep-tls-client"])
        assert d.api("POST", "/protocols", json={"id": "acme", "type": "acme", "caId": "mx-sub",
                                                  "profileId": "privatessl-tls-server",
                                                  "eabRequired": False}).status_code == 201
        assert d.api("POST", "/protocols", json={"id": "scep", "type": "scep", "caId": "mx-sub",
                                                  "profileId": "scep-tls-client"}).status_code == 201
        challenge = d.api("POST", "/protocols/scep/credentials", json={"name": "crash"}).json()["secret"]
        received, lock, stop = {"rest": [], "scep": [], "acme": []}, threading.Lock(), threading.Event()

        def got(kind, serial):
            with lock:
                received[kind].append(format(serial, "x"))

        body = {"profileId": "privatessl-tls-server", "csr": csr_pem(),
                "subjectAltNames": [{"type": "dNSName", "value": "mixed.example"}]}

        def rest():
            s = requests.Session()
            s.trust_env = False
            while not stop.is_set():
                try:
                    r = s.post(d.api_url("/cas/mx-sub/certificates"), json=body,
                               headers={"Authorization": f"Bearer {d.token}"}, timeout=10)
                    if r.status_code == 201:
                        got("rest", x509.load_pem_x509_certificate(r.json()["certificate"].encode()).serial_number)
                except requests.RequestException:
                    time.sleep(0.05)

        def scep(n):
            i = 0
            while not stop.is_set():
                i += 1
                wd = tmp_path / f"scep-{n}-{i}"
                wd.mkdir()
                cp = subprocess.run(["scepclient", "-server-url", f"{d.url}/scep/{d.account}/scep/pkiclient.exe",
                                     "-private-key", "k.key", "-certificate", "c.pem", "-cn", f"dev-{n}-{i}",
                                     "-challenge", challenge], cwd=wd, capture_output=True, timeout=60,
                                    env=clean_env())
                if cp.returncode == 0 and (wd / "c.pem").exists():
                    got("scep", x509.load_pem_x509_certificate((wd / "c.pem").read_bytes()).serial_number)

        def acme():
            key = ec.generate_private_key(ec.SECP256R1())
            while not stop.is_set():
                try:
                    c = Client(f"{d.https_url}/acme/{d.account}/acme/directory", d.service_ca)
                    if c.register().status_code not in (200, 201):
                        continue
                    r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
                    if r.status_code != 201:
                        continue
                    order_url, order = r.headers["Location"], r.json()
                    az = c.post(order["authorizations"][0], None).json()
                    ch = next(x for x in az["challenges"] if x["type"] == "http-01")
                    web.tokens[ch["token"]] = c.key_authz(ch["token"])
                    c.post(ch["url"], {})
                    for _ in range(50):
                        if c.post(order_url, None).json()["status"] != "pending":
                            break
                        time.sleep(0.1)
                    r = c.post(order["finalize"], {"csr": b64u(make_csr(key, [], ips=["127.0.0.1"]))})
                    if r.status_code == 200 and r.json()["status"] == "valid":
                        pem = c.post(r.json()["certificate"], None).content
                        got("acme", x509.load_pem_x509_certificate(pem).serial_number)
                except (requests.RequestException, KeyError, ValueError, StopIteration, AssertionError):
                    time.sleep(0.1)

        threads = [threading.Thread(target=rest, daemon=True) for _ in range(4)]
        threads += [threading.Thread(target=scep, args=(n,), daemon=True) for n in range(2)]
        threads += [threading.Thread(target=acme, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        rnd = random.Random(1123)
        for _ in range(3):
            time.sleep(rnd.uniform(2.0, 4.0))
            d.proc.kill()
            d.proc.wait()
            d.proc = None
            d.start()
        deadline = time.time() + 60
        while time.time() < deadline and not all(len(v) >= 2 for v in received.values()):
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=90)
        counts = {k: len(v) for k, v in received.items()}
        assert all(n >= 1 for n in counts.values()), counts
        everything = received["rest"] + received["scep"] + received["acme"]
        assert len(set(everything)) == len(everything), "a serial was handed out twice"
        stored, cursor = [], None
        while True:
            params = {"limit": "500"}
            if cursor:
                params["cursor"] = cursor
            page = d.api("GET", "/cas/mx-sub/certificates", params=params).json()
            stored += [c["serialNumber"].lstrip("0") for c in page["certificates"]]
            cursor = page.get("nextCursor")
            if not cursor:
                break
        assert len(set(stored)) == len(stored)
        missing = {s.lstrip("0") for s in everything} - set(stored)
        assert not missing, f"{len(missing)} received certificates are not stored"
        assert d.api("GET", "/audit/verify").json()["ok"] is True
        print(f"\ncrash (mixed): received {counts} over 3 SIGKILLs, all stored, no serial twice")
    finally:
        web.close()
        if d.proc is not None:
            d.stop()
