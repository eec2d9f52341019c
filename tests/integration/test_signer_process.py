"""Key isolation: CA keys are generated and used in a separate signer
process that pkiaasd forks at start-up. The child holds nothing but its
channels (no store, no listeners), issuance and CRLs work through it, and it
goes away with the daemon, even when the daemon is SIGKILLed."""
import os
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding

from conftest import Daemon, _require_binaries
from helpers import create_ca


def signer_children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(fields[1]) == pid and comm == "pkiaas-signer":
            out.append(int(entry))
    return out


@pytest.fixture
def sd(tmp_path):
    _require_binaries()
    d = Daemon(tmp_path / "pkiaasd")
    d.bootstrap()
    d.start()
    yield d
    if d.proc is not None:
        d.stop()


def wait_signer(pid):
    """The signer children of pid, waiting up to 10 s for one: the child names itself just after the fork, which
    on a loaded machine can come after /healthz answers."""
    deadline = time.monotonic() + 10
    while not signer_children(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return signer_children(pid)


def test_signer_process_holds_the_keys(sd):
    d = sd
    kids = wait_signer(d.proc.pid)
    assert len(kids) == 1, "pkiaasd has no signer process"
    child = kids[0]
    # nothing but stdio and its channels: no database, no sockets to clients
    fds = os.listdir(f"/proc/{child}/fd")
    targets = [os.readlink(f"/proc/{child}/fd/{fd}") for fd in fds]
    assert not any("pkiaas.db" in t or "master.key" in t for t in targets), targets
    assert len([t for t in targets if t.startswith("socket:")]) == 32, targets  # SIGNERD_CHANNELS
    assert len([t for t in targets if "eventpoll" in t]) == 1, targets  # the workers' one epoll set
    assert len(fds) <= 36, targets  # stdin, stdout, stderr, the channels and the epoll set
    # CAs are generated and sign through it
    root = create_ca(d, id="sp-root", type="root", signingKeyDetails="ECDSAP256+SHA256", subject="CN=SP Root")
    create_ca(d, id="sp-sub", type="subord", parentId=root["id"], signingKeyDetails="RSA-2048+PSS-SHA256",
              subject="CN=SP Sub", enableCrl=True, profiles=["privatessl-tls-server"])
    r = d.api("GET", "/cas/sp-sub/chain")
    assert r.status_code == 200
    r = d.api("POST", "/cas/sp-sub/crl")
    assert r.status_code in (200, 201), r.text
    crl = x509.load_der_x509_crl(d.get(f"/crl/{d.account}/sp-sub/crl.crl").content)
    sub = x509.load_der_x509_certificate(d.api("GET", "/cas/sp-sub/certificate", params={"format": "der"}).content)
    assert crl.is_signature_valid(sub.public_key())
    # the daemon restarts with a new signer process; the old one is gone
    d.restart()
    assert wait_signer(d.proc.pid) and child not in signer_children(d.proc.pid)
    assert not os.path.exists(f"/proc/{child}")


def test_signer_dies_with_a_killed_daemon(sd):
    d = sd
    child = signer_children(d.proc.pid)[0]
    d.proc.kill()
    d.proc.wait()
    d.proc = None
    deadline = time.time() + 5
    while os.path.exists(f"/proc/{child}") and time.time() < deadline:
        time.sleep(0.05)
    # (a zombie reaped by init disappears too)
    assert not os.path.exists(f"/proc/{child}") or open(f"/proc/{child}/stat").read().split()[2] == "Z"


def test_ocsp_responder_key_lives_in_the_signer_process(sd, tmp_path):
    """The CA's delegated OCSP responder key is generated and used by the signer process too: answers verify
    with the responder certificate, and after the signer process was killed the new one signs with the same
    sealed responder key (never a response signed some other way)."""
    import signal

    from cryptography.x509 import ocsp

    from status_helpers import issue, make_root, make_sub, ocsp_request, post_ocsp
    d = sd
    root = make_root(d, tmp_path)
    sub = make_sub(d, tmp_path, root)
    first, second = issue(d, sub, tmp_path), issue(d, sub, tmp_path)
    _, resp = post_ocsp(d, sub.id, ocsp_request(first.cert, sub.cert))
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    key = resp.certificates[0].public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))
    else:
        key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), resp.signature_hash_algorithm)
    child = signer_children(d.proc.pid)[0]
    os.kill(child, signal.SIGKILL)
    deadline = time.time() + 5
    while os.path.exists(f"/proc/{child}") and open(f"/proc/{child}/stat").read().split()[2] != "Z" \
            and time.time() < deadline:
        time.sleep(0.05)
    # a serial never asked about: nothing cached, a signature is needed
    _, resp = post_ocsp(d, sub.id, ocsp_request(second.cert, sub.cert))
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, resp.response_status
    assert resp.certificates[0].public_key().public_numbers() == key.public_numbers()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))
    else:
        key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), resp.signature_hash_algorithm)
    assert signer_children(d.proc.pid) not in ([], [child])


def test_a_dead_signer_is_replaced(sd, tmp_path):
    """A signer process that dies (killed, out of memory) is replaced by the next request that finds it gone:
    issuance, CRLs and OCSP keep working with the same sealed keys, and the new process is as bare as the
    first. Before, nothing restarted it: OCSP answered `unauthorized`, CRLs 409 and issuance 500."""
    import signal

    from cryptography.x509 import ocsp

    from status_helpers import issue, make_root, make_sub, ocsp_request, post_ocsp
    d = sd
    root = make_root(d, tmp_path)
    sub = make_sub(d, tmp_path, root)
    spare = make_root(d, tmp_path, prefix="spare")
    first = issue(d, sub, tmp_path)
    for round_ in range(2):
        old = wait_signer(d.proc.pid)
        assert len(old) == 1, old
        os.kill(old[0], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{old[0]}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.05)
        if round_ == 0:  # a CA-level change makes the next use reload the CA through the signer
            assert d.api("DELETE", f"/cas/{spare.id}").status_code in (200, 204)
        second = issue(d, sub, tmp_path)
        sub.cert.public_key().verify(second.cert.signature, second.cert.tbs_certificate_bytes,
                                     ec.ECDSA(second.cert.signature_hash_algorithm))
        _, resp = post_ocsp(d, sub.id, ocsp_request(first.cert, sub.cert))
        assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
        r = d.api("POST", f"/cas/{sub.id}/crl")
        assert r.status_code in (200, 201), r.text
        new = wait_signer(d.proc.pid)
        assert len(new) == 1 and new != old, (old, new)
        assert not os.path.exists(f"/proc/{old[0]}"), "the dead signer was not reaped"
        fds = [os.readlink(f"/proc/{new[0]}/fd/{f}") for f in os.listdir(f"/proc/{new[0]}/fd")]
        assert not [f for f in fds if f.endswith(".db") or "TCP" in f], fds
