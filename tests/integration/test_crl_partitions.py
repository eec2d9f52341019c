"""Partitioned CRLs (RFC 5280 5.2.5) and OCSP signed-request policy."""
import subprocess

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtensionOID, NameOID

from status_helpers import ConfiguredDaemon, issue, make_root, make_sub, ok, post_ocsp, revoke

SHARDS = 4


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("crlparts")


def cdp_url(cert):
    cdp = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    return cdp[0].full_name[0].value


def test_partitioned_crl(daemon, tmp):
    root = make_root(daemon, tmp, "proot")
    sub = make_sub(daemon, tmp, root, "psub", ocsp_=False, crlPartitions=SHARDS)
    assert sub.info["crlPartitions"] == SHARDS
    leaves = [issue(daemon, sub, tmp) for _ in range(12)]
    urls = {}
    for leaf in leaves:
        url = cdp_url(leaf.cert)
        prefix = f"{daemon.url}/crl/{daemon.account}/{sub.id}/crl-"
        assert url.startswith(prefix) and url.endswith(".crl"), url
        shard = int(url[len(prefix):-4])
        assert 0 <= shard < SHARDS
        # the shard is fixed by the serial: its last 32 bits (random; the first bytes are a timestamp)
        # modulo the count
        assert shard == (leaf.cert.serial_number & 0xFFFFFFFF) % SHARDS
        urls.setdefault(shard, []).append(leaf)
    revoked = leaves[0]
    revoke(daemon, sub.id, revoked.serial, reason="keyCompromise", publish=True)
    rshard_url = cdp_url(revoked.cert)
    for shard in range(SHARDS):
        url = f"{daemon.url}/crl/{daemon.account}/{sub.id}/crl-{shard}.crl"
        r = requests.get(url, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/pkix-crl"
        crl = x509.load_der_x509_crl(r.content)
        assert crl.is_signature_valid(sub.cert.public_key())
        idp = crl.extensions.get_extension_for_oid(ExtensionOID.ISSUING_DISTRIBUTION_POINT)
        assert idp.critical
        assert idp.value.full_name[0].value == url
        assert idp.value.only_contains_user_certs
        serials = {e.serial_number for e in crl}
        if url == rshard_url:
            assert serials == {revoked.cert.serial_number}
        else:
            assert revoked.cert.serial_number not in serials
        out = subprocess.run(["openssl", "crl", "-inform", "DER", "-CAfile", str(sub.pem_path), "-noout"],
                             input=r.content, capture_output=True)
        assert b"verify OK" in out.stdout + out.stderr
    # the full CRL lists it too, without an IDP
    full = x509.load_der_x509_crl(requests.get(f"{daemon.url}/crl/{daemon.account}/{sub.id}/crl.crl",
                                               timeout=10).content)
    assert revoked.cert.serial_number in {e.serial_number for e in full}
    with pytest.raises(x509.ExtensionNotFound):
        full.extensions.get_extension_for_oid(ExtensionOID.ISSUING_DISTRIBUTION_POINT)
    # out-of-range and malformed shard names
    for bad in (f"crl-{SHARDS}.crl", "crl-01.crl", "crl--1.crl", "crl-x.crl"):
        assert requests.get(f"{daemon.url}/crl/{daemon.account}/{sub.id}/{bad}", timeout=10).status_code == 404
    # crls list names the partitions
    crls = ok(daemon.api("GET", f"/cas/{sub.id}/crls"))["crls"]
    assert {c["partition"] for c in crls} >= set(range(SHARDS)) | {None}


def test_partitions_rejected_where_meaningless(daemon, tmp):
    root = make_root(daemon, tmp, "prej")
    for body in ({"crlPartitions": 1}, {"crlPartitions": 2000}, {"crlPartitions": 4, "enableCrl": False}):
        extra = dict(body)
        crl = extra.pop("enableCrl", True)
        r = daemon.api("POST", "/cas", json={"id": f"prej{len(str(body))}", "type": "subord", "parentId": root.id,
                                            "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=x",
                                            "enableCrl": crl, **extra})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["field"] == "crlPartitions"


def test_ocsp_require_signed(tmp_path):
    d = ConfiguredDaemon(tmp_path / "signed", ["ocsp_require_signed = 1"])
    d.bootstrap()
    d.start()
    try:
        root = make_root(d, tmp_path, "sroot")
        sub = make_sub(d, tmp_path, root, "ssub")
        leaf = issue(d, sub, tmp_path)
        req = ocsp.OCSPRequestBuilder().add_certificate(leaf.cert, sub.cert, hashes.SHA1()).build()
        _, resp = post_ocsp(d, sub.id, req.public_bytes(serialization.Encoding.DER))
        assert resp.response_status == ocsp.OCSPResponseStatus.SIG_REQUIRED
        # a signed request (openssl ocsp -signer) is answered
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "requester")])
        import datetime
        now = datetime.datetime.utcnow()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                .sign(key, hashes.SHA256()))
        (tmp_path / "req.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "req.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
        subprocess.run(["openssl", "ocsp", "-issuer", str(sub.pem_path), "-cert", str(leaf.pem_path),
                        "-signer", str(tmp_path / "req.pem"), "-signkey", str(tmp_path / "req.key"),
                        "-reqout", str(tmp_path / "signed.der")], check=True, capture_output=True)
        _, resp = post_ocsp(d, sub.id, (tmp_path / "signed.der").read_bytes())
        assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    finally:
        assert d.stop() in (0, None)
