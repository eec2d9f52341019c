"""MDM Intune SCEP configurations. Intune itself cannot run here, so the
tests point the configuration at a local stand-in that follows Microsoft's
documented request and response shapes: the Azure AD client-credentials
token endpoint, Microsoft Graph service discovery
(servicePrincipals/appId=0000000a-.../endpoints), the SCEP validation
service (ScepActions/validateRequest, successNotification,
failureNotification) and the certificate-authority revocation requests
(CertificateAuthorityRequests/downloadRevocationRequests,
uploadRevocationResults). Devices are played by micromdm's scepclient."""
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_helpers import free_port
from conftest import Daemon, _require_binaries, clean_env, store_holds
from helpers import create_ca, uid

TENANT = "11111111-2222-3333-4444-555555555555"
APP = "66666666-7777-8888-9999-000000000000"
APP_KEY = "app-secret-value~" + "x" * 20
INTUNE_APP = "0000000a-0000-0000-c000-000000000000"
GOOD_CHALLENGE = "intune-signed-challenge-ok"


class IntuneStandIn:
    def __init__(self):
        self.port = free_port()
        self.calls = []  # (path, json body)
        self.revocations = []
        base = f"http://127.0.0.1:{self.port}"
        outer = self

        class H(BaseHTTPRequestHandler):
            def _send(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authed(self):
                return self.headers.get("Authorization", "").startswith("Bearer tok-")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n).decode()
                path = urllib.parse.urlparse(self.path).path
                if path == f"/{TENANT}/oauth2/v2.0/token":
                    f = urllib.parse.parse_qs(raw)
                    if f.get("client_id") != [APP] or f.get("client_secret") != [APP_KEY] or \
                            f.get("grant_type") != ["client_credentials"]:
                        return self._send(401, {"error": "invalid_client"})
                    outer.calls.append((path, f["scope"][0]))
                    return self._send(200, {"access_token": "tok-" + f["scope"][0], "token_type": "Bearer",
                                            "expires_in": 3599})
                if not self._authed():
                    return self._send(401, {"error": "no token"})
                body = json.loads(raw or "{}")
                outer.calls.append((path, body))
                if path == "/scep/ScepActions/validateRequest":
                    csr = x509.load_der_x509_csr(__import__("base64").b64decode(body["request"]["certificateRequest"]))
                    chal = csr.attributes.get_attribute_for_oid(x509.oid.AttributeOID.CHALLENGE_PASSWORD).value.decode()
                    ok = chal == GOOD_CHALLENGE and body["request"]["transactionId"]
                    return self._send(200, {"code": "Success" if ok else "ChallengePasswordInvalid",
                                            "errorDescription": "" if ok else "challenge not issued by Intune"})
                if path in ("/scep/ScepActions/successNotification", "/scep/ScepActions/failureNotification"):
                    return self._send(200, {"code": "Success", "errorDescription": ""})
                if path == "/pki/CertificateAuthorityRequests/downloadRevocationRequests":
                    return self._send(200, {"value": outer.revocations})
                if path == "/pki/CertificateAuthorityRequests/uploadRevocationResults":
                    return self._send(200, {"value": True})
                return self._send(404, {"error": "unknown " + path})

            def do_GET(self):
                if not self._authed():
                    return self._send(401, {"error": "no token"})
                if self.path == f"/v1.0/servicePrincipals/appId={INTUNE_APP}/endpoints":
                    outer.calls.append((self.path, None))
                    return self._send(200, {"value": [
                        {"providerName": "ScepRequestValidationFEService", "uri": base + "/scep"},
                        {"providerName": "PkiConnectorFEService", "uri": base + "/pki"}]})
                return self._send(404, {})

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.base = base

    def paths(self):
        return [p for p, _ in self.calls]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture(scope="module")
def intune(tmp_path_factory):
    _require_binaries()
    stand_in = IntuneStandIn()
    d = Daemon(tmp_path_factory.mktemp("pkiaasd-intune"))
    d.extra_conf = "scheduler_tick_s = 1\n"
    d.bootstrap()
    d.start()
    root = create_ca(d, id="in-root", type="root", signingKeyDetails="RSA-2048+PKCS15-SHA256", subject="CN=Intune Root")
    create_ca(d, id="in-sub", type="subord", parentId=root["id"], signingKeyDetails="RSA-2048+PKCS15-SHA256",
              subject="CN=Intune Issuing", profiles=["intune-digital-signature"], enableCrl=True)
    env = type("IntuneEnv", (), {})()
    env.d, env.stub = d, stand_in
    yield env
    d.stop()
    stand_in.close()


def make_cfg(env, cid):
    r = env.d.api("POST", "/protocols", json={
        "id": cid, "type": "intune", "caId": "in-sub", "profileId": "intune-digital-signature",
        "tenantId": TENANT, "appId": APP, "appKey": APP_KEY, "description": "Intune devices",
        "tokenUrl": f"{env.stub.base}/{TENANT}/oauth2/v2.0/token", "graphUrl": env.stub.base})
    assert r.status_code == 201, r.text
    return r.json()


def test_config_validation_and_secret_handling(intune):
    d = intune.d
    cfg = make_cfg(intune, "intune1")
    assert cfg["scepUrl"].endswith(f"/scep/{d.account}/intune1/pkiclient.exe")
    assert cfg["appKeySet"] is True and "appKey" not in cfg and "appKeySealed" not in cfg
    assert APP_KEY not in json.dumps(cfg)
    assert not store_holds(d, APP_KEY.encode())
    for body, field in [({"tenantId": "not a guid"}, "tenantId"), ({"appKey": None}, "appKey"),
                        ({"profileId": "scep-tls-client"}, "profileId")]:
        b = {"id": "bad1", "type": "intune", "caId": "in-sub", "profileId": "intune-digital-signature",
             "tenantId": TENANT, "appId": APP, "appKey": APP_KEY}
        b.update(body)
        b = {k: v for k, v in b.items() if v is not None}
        r = d.api("POST", "/protocols", json=b)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, (body, r.text)


def scepclient(env, tmp_path, challenge, cn):
    tmp_path.mkdir(parents=True, exist_ok=True)
    url = f"{env.d.url}/scep/{env.d.account}/intune1/pkiclient.exe"
    return subprocess.run(["scepclient", "-server-url", url, "-private-key", str(tmp_path / "k.key"), "-certificate",
                           str(tmp_path / "c.pem"), "-cn", cn, "-challenge", challenge],
                          capture_output=True, text=True, timeout=120, env=clean_env(), cwd=tmp_path)


@pytest.mark.skipif(not shutil.which("scepclient"), reason="scepclient not installed")
def test_enrolment_validated_by_intune_and_revocation_sync(intune, tmp_path):
    d, stub = intune.d, intune.stub
    # refused by Intune: failure CertRep, failure... no certificate
    cp = scepclient(intune, tmp_path / "bad", "forged-challenge", uid("dev"))
    assert cp.returncode != 0 and not (tmp_path / "bad" / "c.pem").exists()
    assert "/scep/ScepActions/validateRequest" in stub.paths()
    # accepted: issued, and Intune hears of it
    cn = uid("device")
    cp = scepclient(intune, tmp_path / "good", GOOD_CHALLENGE, cn)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "good" / "c.pem").read_bytes())
    assert cert.issuer.rfc4514_string() == "CN=Intune Issuing"
    serial = format(cert.serial_number, "x")
    notes = [b for p, b in stub.calls if p == "/scep/ScepActions/successNotification"]
    assert notes, stub.paths()
    assert notes[-1]["notification"]["certificateSerialNumber"].lstrip("0") == serial.lstrip("0")
    assert notes[-1]["notification"]["caConfiguration"] == "intune1"
    assert notes[-1]["notification"]["certificateThumbprint"] == \
        cert.fingerprint(__import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA1"]).SHA1()).hex().upper()
    # the token was asked for the Intune API scope and Graph discovery happened
    assert any(p.endswith("/oauth2/v2.0/token") for p in stub.paths())
    assert f"/v1.0/servicePrincipals/appId={INTUNE_APP}/endpoints" in stub.paths()
    r = d.api("GET", "/cas/in-sub/certificates", params={"serial": serial})
    assert r.json()["certificates"][0]["requester"] == "intune:intune1"

    # Intune asks for the revocation: a configuration whose sync is due
    # (its first) downloads the request, revokes, uploads the result
    stub.revocations = [{"requestContext": "ctx-1", "serialNumber": serial, "issuerName": "CN=Intune Issuing"},
                        {"requestContext": "ctx-2", "serialNumber": "zz-not-hex", "issuerName": "CN=Intune Issuing"}]
    make_cfg(intune, "intune2")
    deadline = time.time() + 20
    while time.time() < deadline:
        st = d.api("GET", f"/cas/in-sub/certificates/{serial}").json()["status"]
        if st == "revoked" and any(p.endswith("uploadRevocationResults") for p in stub.paths()):
            break
        time.sleep(0.3)
    assert st == "revoked"
    up = [b for p, b in stub.calls if p.endswith("uploadRevocationResults")][-1]["results"]
    by_ctx = {x["requestContext"]: x for x in up}
    assert by_ctx["ctx-1"]["succeeded"] is True
    assert by_ctx["ctx-2"]["succeeded"] is False and by_ctx["ctx-2"]["errorMessage"]
    assert requests.get(d.url + "/healthz").status_code == 200


def test_sync_revokes_only_what_its_intune_service_enrolled(intune):
    """The revocation sync revokes whatever serial the configured service names; a configuration pointed at a
    service of one's own (a Protocol Operator may create one) revoked any certificate of the CA. Now only
    certificates enrolled through a configuration talking to the same service are revoked; others are reported
    failed to the service and stay valid."""
    d, stub = intune.d, intune.stub
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, uid("api-issued"))]))
           .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
           .public_bytes(serialization.Encoding.PEM).decode())
    r = d.api("POST", "/cas/in-sub/certificates", json={"profileId": "intune-digital-signature", "csr": csr})
    assert r.status_code == 201, r.text
    serial = r.json()["serialNumber"]
    tok = d.api("POST", "/tokens", json={"name": uid("ops"), "roles": ["Protocol Operators"]}).json()["token"]
    ops = requests.Session()
    ops.trust_env = False
    ops.headers["Authorization"] = f"Bearer {tok}"
    assert ops.post(d.api_url(f"/cas/in-sub/certificates/{serial}/revoke"), json={}).status_code == 403
    ctx = uid("ctx")
    stub.revocations = [{"requestContext": ctx, "serialNumber": serial, "issuerName": "CN=Intune Issuing"}]
    r = ops.post(d.api_url("/protocols"), json={
        "id": uid("mine")[:18], "type": "intune", "caId": "in-sub", "profileId": "intune-digital-signature",
        "tenantId": TENANT, "appId": APP, "appKey": APP_KEY,
        "tokenUrl": f"{stub.base}/{TENANT}/oauth2/v2.0/token", "graphUrl": stub.base})
    assert r.status_code == 201, r.text
    deadline = time.time() + 20
    mine = []
    while time.time() < deadline and not mine:
        mine = [x for p, b in stub.calls if p.endswith("uploadRevocationResults")
                for x in b["results"] if x["requestContext"] == ctx]
        time.sleep(0.3)
    assert mine and mine[0]["succeeded"] is False and "Intune" in mine[0]["errorMessage"], mine
    assert d.api("GET", f"/cas/in-sub/certificates/{serial}").json()["status"] == "issued"


def test_moving_the_intune_endpoints_needs_the_app_key_again(intune):
    """The stored app key is sent to tokenUrl: an update that moves tokenUrl, graphUrl or intuneUrl must give
    the key again (else anyone allowed to edit configurations could send it to their own host), and an empty
    key is refused on update as on create."""
    d, stub = intune.d, intune.stub
    cid = uid("mv")[:18]
    make_cfg(intune, cid)
    for field in ("tokenUrl", "graphUrl", "intuneUrl"):
        r = d.api("PUT", f"/protocols/{cid}", json={field: "http://127.0.0.1:9/elsewhere"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "appKey", (field, r.text)
    r = d.api("PUT", f"/protocols/{cid}", json={"appKey": ""})
    assert r.status_code == 400 and r.json()["error"]["field"] == "appKey", r.text
    # the same URL again, or another field, needs no key; a move with the key is fine
    assert d.api("PUT", f"/protocols/{cid}", json={"graphUrl": stub.base, "description": "x"}).status_code == 200
    r = d.api("PUT", f"/protocols/{cid}", json={"graphUrl": stub.base + "/", "appKey": APP_KEY})
    assert r.status_code == 200, r.text


class Tarpit:
    """Accepts TCP connections and never answers."""

    def __init__(self):
        self.port = free_port()
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", self.port))
        self.s.listen(16)
        self.held = []
        self.hits = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            self.hits += 1
            self.held.append(c)

    def close(self):
        self.s.close()
        for c in self.held:
            c.close()


def test_a_slow_intune_service_holds_up_no_crl(tmp_path):
    """Intune revocation syncs ran on the scheduler thread: partition B's configuration whose token endpoint never
    answers held partition A's CRL back for 30 s per call. They run on their own thread now."""
    _require_binaries()
    pit = Tarpit()
    d = Daemon(tmp_path / "d")
    d.extra_conf = "scheduler_tick_s = 1\ncrl_delay_s = 2\n"
    d.bootstrap()
    other = d.bootstrap("tenantb")
    d.start()
    try:
        # partition A: a CA with a revoked certificate waiting for the automatic CRL (crl_delay_s = 2)
        root = create_ca(d, id="a-root", type="root", signingKeyDetails="ECDSAP256+SHA256", subject="CN=A Root")
        create_ca(d, id="a-sub", type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
                  subject="CN=A Sub", profiles=["privatessl-tls-server"], enableCrl=True)
        # partition B (another tenant): an Intune configuration whose token endpoint never answers
        sb = requests.Session()
        sb.headers["Authorization"] = f"Bearer {other['apiToken']}"
        bu = f"{d.url}/api/v1/partitions/{other['accountId']}"
        r = sb.post(bu + "/cas", json={"id": "b-root", "type": "root", "signingKeyDetails": "RSA-2048+PKCS15-SHA256",
                                        "subject": "CN=B Root"})
        assert r.status_code == 201, r.text
        r = sb.post(bu + "/cas", json={"id": "b-sub", "type": "subord", "parentId": "b-root",
                                        "signingKeyDetails": "RSA-2048+PKCS15-SHA256", "subject": "CN=B Sub",
                                        "profiles": ["intune-digital-signature"]})
        assert r.status_code == 201, r.text
        time.sleep(2)  # let the scheduler settle
        # A's certificate, revoked without publishNow: normally on the CRL within ~3 s
        name = uid("h") + ".example"
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
               .public_bytes(serialization.Encoding.PEM).decode())
        r = d.api("POST", "/cas/a-sub/certificates", json={"profileId": "privatessl-tls-server", "csr": csr,
                                                             "subjectAltNames": [{"type": "dNSName", "value": name}]})
        assert r.status_code == 201, r.text
        serial = int(r.json()["serialNumber"], 16)
        r = sb.post(bu + "/protocols", json={
            "id": "slow", "type": "intune", "caId": "b-sub", "profileId": "intune-digital-signature",
            "tenantId": TENANT, "appId": APP, "appKey": "k" * 20,
            "tokenUrl": f"http://127.0.0.1:{pit.port}/token", "intuneUrl": f"http://127.0.0.1:{pit.port}/x"})
        assert r.status_code == 201, r.text
        deadline = time.time() + 10
        while pit.hits == 0 and time.time() < deadline:
            time.sleep(0.2)
        assert pit.hits >= 1, "the first revocation sync did not start"
        assert d.api("POST", f"/cas/a-sub/certificates/{format(serial, 'x')}/revoke",
                     json={"reason": "keyCompromise"}).status_code == 200
        t0 = time.monotonic()
        listed_after = None
        while time.monotonic() - t0 < 45:
            crl = x509.load_der_x509_crl(d.get(f"/crl/{d.account}/a-sub/crl.crl").content)
            if any(e.serial_number == serial for e in crl):
                listed_after = time.monotonic() - t0
                break
            time.sleep(0.5)
                # crl_delay_s = 2 and a 1 s tick: it should be there within ~4 s; B's Intune sync holds it back
        assert listed_after is not None and listed_after <= 8, \
            f"partition A's CRL held back {listed_after} s by partition B's Intune sync"
    finally:
        pit.close()  # first: a sync waiting on it ends at once
        d.stop()
