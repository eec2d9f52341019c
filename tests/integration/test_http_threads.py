"""HTTP threading (docs/configuration.md, `threads`): by default every
connection has a thread of its own, so a request that waits for the signer
or for a commit holds up no other client; `threads = N` keeps a fixed pool
of N threads instead. Both modes must take effect and serve concurrent
keep-alive clients correctly."""
import os
import socket
import threading

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Daemon, _require_binaries
from helpers import create_ca, download_der

HELD = 40  # keep-alive connections held open at once
CLIENTS, EACH = 8, 5  # concurrent issuing clients, certificates each


def task_count(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def hold_connections(d, n):
    """n keep-alive connections, each with one answered request (so the
    daemon has accepted and served it); the caller closes them."""
    conns = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        conns.append(c)
    for c in conns:
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = c.recv(4096)
            assert chunk, "the daemon closed a keep-alive connection"
            got += chunk
        assert got.startswith(b"HTTP/1.1 200"), got[:80]
    return conns


def csr_pem(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


@pytest.mark.parametrize("threads", [0, 2])
def test_http_threads(tmp_path, threads):
    _require_binaries()
    d = Daemon(tmp_path / "pkiaasd")
    if threads:
        d.extra_conf = f"threads = {threads}\n"
    d.bootstrap()
    d.start()
    try:
        pid = d.proc.pid
        before = task_count(pid)
        conns = hold_connections(d, HELD)
        during = task_count(pid)
        if threads:
            assert during <= before + 2, f"pool of {threads}: {before} -> {during} threads"
        else:
            # (a thread of the start-up health check may still be counted in `before`)
            assert during >= before + HELD - 2, f"a thread per connection: {before} -> {during} threads"
        for c in conns:
            c.close()

        root = create_ca(d, id="th-root", type="root", signingKeyDetails="ECDSAP256+SHA256", subject="CN=TH Root")
        create_ca(d, id="th-sub", type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
                  subject="CN=TH Issuing", profiles=["privatessl-tls-server"])
        issuer = x509.load_der_x509_certificate(download_der(d, "th-sub"))
        results, errors, lock = [], [], threading.Lock()

        def client(k):
            s = requests.Session()
            s.trust_env = False
            for i in range(EACH):
                cn = f"c{k}-{i}.threads.example"
                body = {"profileId": "privatessl-tls-server", "csr": csr_pem(cn),
                        "subjectAltNames": [{"type": "dNSName", "value": cn}]}
                try:
                    r = s.post(d.api_url("/cas/th-sub/certificates"), json=body,
                               headers={"Authorization": f"Bearer {d.token}"}, timeout=30)
                except requests.RequestException as e:
                    with lock:
                        errors.append(f"{cn}: {e}")
                    continue
                with lock:
                    if r.status_code != 201:
                        errors.append(f"{cn}: {r.status_code} {r.text[:200]}")
                    else:
                        results.append((cn, x509.load_pem_x509_certificate(r.json()["certificate"].encode())))

        workers = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(timeout=120)
        assert not errors, errors[:5]
        assert len(results) == CLIENTS * EACH
        assert len({c.serial_number for _, c in results}) == len(results), "a serial repeats"
        for cn, cert in results:
            assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
            assert cert.issuer.rfc4514_string() == "CN=TH Issuing"
            issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                       ec.ECDSA(cert.signature_hash_algorithm))
        assert d.get("/healthz").status_code == 200
    finally:
        rc = d.stop()
        assert rc in (0, None), f"pkiaasd exited with {rc} on SIGTERM\n{d.tail()}"
