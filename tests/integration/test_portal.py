"""The web portal: pkiaasd serves the built single-page app (ui/portal/dist)
at / and /portal/, GET /me tells it the caller's roles, and a headless
chromium (playwright-core from ui/portal/node_modules) walks the main flows
against a real daemon (ui/portal/tests/e2e.mjs). Screenshots go to
ui/test-results/ (git-ignored)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import PKIAASD as PKIASD, REPO, clean_env

PORTAL = REPO / "ui" / "portal"
RESULTS = REPO / "ui" / "test-results"
CHROMIUM = os.environ.get("PKIAAS_CHROMIUM", "/usr/bin/chromium")
E2E_TIMEOUT_S = 600


def _csr(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _external_root(tmp_path):
    """An on-premises root (key and self-signed certificate) the portal imports as externalKey."""
    import datetime
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "E2E On-prem Root")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "ext-root.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ext-root.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return {"cert": str(tmp_path / "ext-root.pem"), "key": str(tmp_path / "ext-root.key")}


def _built():
    if not (PORTAL / "dist" / "index.html").is_file():
        pytest.fail("ui/portal/dist is not built: run `make ui`")


def test_portal_served(daemon):
    _built()
    for path in ("/", "/portal", "/portal/", "/portal/cas/some-ca", "/portal/cas/", "/invite/abc123"):
        r = daemon.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        assert r.headers["Content-Type"] == "text/html; charset=utf-8", path
        assert "/portal/assets/" in r.text, path
        assert r.headers["Cache-Control"] == "no-cache", path
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    index = daemon.get("/").text
    js = index.split('src="/portal/', 1)[1].split('"', 1)[0]
    r = daemon.get(f"/portal/{js}")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/javascript"), r.headers
    assert "immutable" in r.headers["Cache-Control"]
    assert daemon.session.head(daemon.url + f"/portal/{js}").status_code == 200
    # not files: assets and paths with an extension that do not exist, hidden
    # files, traversal (encoded or not), odd characters
    for bad in ("/portal/assets/nope.js", "/portal/nope.css", "/portal/.env", "/portal/assets/.x",
                "/portal/..%2F..%2Fetc%2Fpasswd", "/portal/assets/..%2F..%2F..%2Fsrc%2Fapi%2Fapi.c",
                "/portal/a//b", "/portal/assets/nope.js/", "/portal/cas//", "/portal/%2e%2e/CMakeLists.txt", "/portal/x?y" + "z" * 300):
        r = daemon.get(bad)
        if bad.startswith("/portal/x?"):
            assert r.status_code == 200  # the query is not part of the path
            continue
        assert r.status_code == 404, (bad, r.status_code)
        assert "root:" not in r.text and "#include" not in r.text
    assert daemon.get("/portal/" + "a" * 300).status_code == 404
    # a NUL ends the path (libmicrohttpd decodes it): the entry page, never a file
    r = daemon.get("/portal/index.html%00.png")
    assert r.status_code in (200, 404) and r.headers["Content-Type"] != "image/png"
    assert daemon.session.post(daemon.url + "/portal/x").status_code == 405


def test_me(daemon):
    r = daemon.api("GET", "/me")
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["partition"] == daemon.account and me["kind"] == "token" and "Owners" in me["roles"], me
    assert {"ca.browse", "cert.issue.csr", "user.invite", "audit.read"} <= set(me["operations"]), me
    r = daemon.api("POST", "/tokens", json={"name": "portal-me-auditor", "roles": ["CA Auditors"]})
    assert r.status_code == 201, r.text
    tok = r.json()["token"]
    r = daemon.session.get(daemon.api_url("/me"), headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["roles"] == ["CA Auditors"] and "cert.browse" in me["operations"], me
    assert not {"cert.issue.csr", "cert.status", "ca.create.root", "user.invite"} & set(me["operations"]), me
    r = daemon.session.get(daemon.api_url("/me"), headers={"Authorization": "Bearer pk_nope"})
    assert r.status_code == 401


def test_portal_browser_flows(fresh_daemon, tmp_path):
    """Login with TOTP, CAs, issuance, revocation, ... in headless chromium."""
    _built()
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: scripts/deps.sh installs Debian's chromium")
    node = shutil.which("node")
    assert node, "node is needed for the browser tests (the Makefile's ui target needs it too)"
    assert (PORTAL / "node_modules" / "playwright-core").is_dir(), "run `make ui` (npm ci in ui/portal)"
    d = fresh_daemon
    creds = d.creds[d.partition]
    RESULTS.mkdir(parents=True, exist_ok=True)
    for old in list(RESULTS.glob("*.png")) + list(RESULTS.glob("dl-*")) + list(RESULTS.glob("issued.*")):
        old.unlink()
    cfg = {
        "url": d.url, "partition": d.account, "email": creds["owner"]["email"],
        "oneTimePassword": creds["owner"]["password"], "certsPurchased": creds["inventory"]["certificatesPurchased"],
        "csr": _csr("www.e2e.example"), "shots": str(RESULTS), "chromium": CHROMIUM,
        "auditorEmail": "auditor@e2e.example", "externalRoot": _external_root(tmp_path),
        "serviceCa": str(d.service_ca), "scepclient": shutil.which("scepclient"),
    }
    cp = subprocess.run([str(PKIASD), "supervisor-token", "--data-dir", str(d.data_dir), *d.store_args()],
                        capture_output=True,
                        text=True, timeout=60, env=clean_env())
    assert cp.returncode == 0, cp.stderr
    cfg["supervisorToken"] = json.loads(cp.stdout)["supervisorToken"]
    cfg_path = tmp_path / "e2e.json"
    cfg_path.write_text(json.dumps(cfg))
    env = clean_env()
    env["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    cp = subprocess.run([node, str(PORTAL / "tests" / "e2e.mjs"), str(cfg_path)], capture_output=True, text=True,
                        timeout=E2E_TIMEOUT_S, env=env, cwd=str(PORTAL))
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0 and "E2E PASSED" in cp.stdout, out[-6000:]
    assert "FAIL" not in cp.stdout, out[-6000:]
    for name in ("login", "home", "cas", "ca-certificates", "certificate", "profiles", "protocols", "users", "cagw",
                 "audit", "supervisor", "auditor-certificate", "mobile-home", "mobile-cas", "mobile-users"):
        assert (RESULTS / f"{name}.png").is_file(), name
    # what the browser downloaded is what the API holds
    pem = (RESULTS / "issued.pem").read_text()
    cert = x509.load_pem_x509_certificate(pem.encode())
    serial = format(cert.serial_number, "x")
    r = d.api("GET", f"/cas/e2e-issuing/certificates/{serial}")
    if r.status_code == 404:
        r = d.api("GET", f"/cas/e2e-issuing/certificates/00{serial}")
    assert r.status_code == 200 and r.json()["status"] == "revoked", r.text
    from cryptography.hazmat.primitives.serialization import pkcs12
    key, leaf, _ = pkcs12.load_key_and_certificates((RESULTS / "issued.p12").read_bytes(), b"p12 secret pass")
    assert key is not None and "p12.e2e.example" in leaf.subject.rfc4514_string()
    # the CA Gateway credential opens with the password shown once
    key, leaf, _ = pkcs12.load_key_and_certificates((RESULTS / "cagw.p12").read_bytes(),
                                                    (RESULTS / "cagw.p12.password").read_bytes())
    assert key is not None and leaf is not None
    # the CA under the external root was activated with the certificate the test signed
    r = d.api("GET", "/cas/e2e-onprem")
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
