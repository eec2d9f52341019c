"""Late review findings (each failed on the build before its fix): CMP strangers cannot spend a partition's rate,
bulk revocation clears a suspension's comment, and a certificate's detail names its CRL and OCSP URLs."""
import subprocess

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import conftest
from helpers import create_ca, expect_error
from status_helpers import ConfiguredDaemon, issue, make_root, make_sub, ok


def test_strangers_cannot_spend_the_partitions_cmp_rate(tmp_path):
    """Unauthenticated CMP requests are throttled per client address, never against the partition's allowance:
    the owner still issues afterwards."""
    conftest._require_binaries()
    d = ConfiguredDaemon(tmp_path / "pkiaasd", ["rate_limit_standard = 5", "rate_limit_premium = 5",
                                                "rate_limit_window_s = 600"])
    d.bootstrap()
    d.start()
    try:
        root = create_ca(d, id="q-root", type="root", signingKeyDetails="ECDSAP256+SHA256", subject="CN=Q")
        create_ca(d, id="q-sub", type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
                  subject="CN=Q Issuing", profiles=["cmp-tls-client", "privatessl-tls-client"])
        assert d.api("POST", "/protocols", json={"id": "c1", "type": "cmp", "caId": "q-sub",
                                                  "profileId": "cmp-tls-client"}).status_code == 201
        # a stranger: an ir with a made-up reference and secret, never sent by openssl (-reqout only)
        key = ec.generate_private_key(ec.SECP256R1())
        kp = tmp_path / "k.pem"
        kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
        ir = tmp_path / "ir.der"
        subprocess.run(["openssl", "cmp", "-cmd", "ir", "-server", "127.0.0.1:1", "-path", "/x", "-ref", "nobody",
                        "-secret", "pass:guess", "-newkey", str(kp), "-subject", "/CN=stranger", "-reqout", str(ir),
                        "-certout", str(tmp_path / "x.pem")], capture_output=True, timeout=30, env=conftest.clean_env())
        der = ir.read_bytes()
        codes = []
        for _ in range(8):
            r = requests.post(f"{d.url}/cmp/{d.account}/c1", data=der, headers={"Content-Type": "application/pkixcmp"},
                              timeout=30, proxies={"http": None})
            codes.append(r.status_code)
        k2 = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "legit.example")]))
               .sign(k2, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
        r = d.api("POST", "/cas/q-sub/certificates", json={"profileId": "privatessl-tls-client", "csr": csr})
        assert codes[-1] == 429, codes  # the stranger's address is throttled ...
        assert r.status_code == 201, r.text  # ... and the partition's allowance is intact
    finally:
        d.stop()


def test_batch_revocation_clears_the_suspension_comment(daemon, tmp_path):
    d = daemon
    root = make_root(d, tmp_path, "bc")
    sub = make_sub(d, tmp_path, root, "bcs")
    a, b = issue(d, sub, tmp_path), issue(d, sub, tmp_path)
    for c in (a, b):
        ok(d.api("POST", f"/cas/{sub.id}/certificates/{c.serial}/suspend", json={"comment": "on hold pending review"}))
    ok(d.api("POST", f"/cas/{sub.id}/certificates/{a.serial}/revoke", json={"reason": "superseded"}))
    ok(d.api("POST", f"/cas/{sub.id}/certificates/revoke-batch", json={"serials": [b.serial], "reason": "superseded"}))
    for c in (a, b):
        rec = ok(d.api("GET", f"/cas/{sub.id}/certificates/{c.serial}"))
        assert rec["status"] == "revoked" and rec.get("statusComment") is None, rec


def test_certificate_detail_names_its_status_urls(daemon, tmp_path):
    """docs/api.md: a certificate's detail carries crlDistributionPoints and authorityInfoAccess, read from the
    certificate itself."""
    d = daemon
    root = make_root(d, tmp_path, "du")
    sub = make_sub(d, tmp_path, root, "dus")
    leaf = issue(d, sub, tmp_path)
    rec = ok(d.api("GET", f"/cas/{sub.id}/certificates/{leaf.serial}"))
    cdp = leaf.cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    aia = leaf.cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert rec["crlDistributionPoints"] == [p.full_name[0].value for p in cdp]
    ocsp_urls = [a.access_location.value for a in aia if a.access_method == x509.oid.AuthorityInformationAccessOID.OCSP]
    assert rec["authorityInfoAccess"]["ocsp"] == ocsp_urls and ocsp_urls
