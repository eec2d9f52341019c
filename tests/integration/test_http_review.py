"""HTTP-layer and web findings of a review, each reproduced against the daemon first: request smuggling through
whitespace before a header colon, Host header rules, TLS 1.0/1.1, HSTS, Swagger UI page headers, one client
address holding every connection, and a cross-site form acting on the CA Gateway."""
import base64
import socket
import ssl
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from status_helpers import make_root, make_sub, ok
from test_cagw import _csr_b64, PROFILE
from test_hostile import _read_all


def _smuggled(d):
    return (b"GET /api/v1/partitions/%s/cas HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            b"Connection: close\r\n\r\n" % (d.account.encode(), d.token.encode()))


def test_content_length_with_space_before_colon_is_rejected(daemon):
    """RFC 9112 5.1: 'A server MUST reject, with a response status code of 400 (Bad Request), any received request
    message that contains whitespace between a header field name and colon.' pkiaasd used to ignore
    "Content-Length :" entirely, treat the request as bodiless and run the body as a second request (a CL.0
    smuggling vector behind any proxy that honours that Content-Length)."""
    d = daemon
    hidden = _smuggled(d)
    req = (b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length : %d\r\n\r\n%s" % (len(hidden), hidden))
    out = _read_all(d, req)
    assert out.startswith(b"HTTP/1.1 400 "), out[:300]
    assert out.count(b"HTTP/1.1 ") == 1, out  # the body must never be run as a request
    assert b'"cas"' not in out, out


def test_transfer_encoding_with_space_before_colon_is_rejected(daemon):
    """RFC 9112 5.1 (as above) and 6.3: "Transfer-Encoding : chunked" next to a Content-Length must not pass the
    framing check; pkiaasd did not see the Transfer-Encoding, framed by Content-Length and ran what followed."""
    d = daemon
    hidden = _smuggled(d)
    req = (b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n%s" % hidden)
    out = _read_all(d, req)
    assert out.startswith(b"HTTP/1.1 400 "), out[:300]
    assert out.count(b"HTTP/1.1 ") == 1, out
    assert b'"cas"' not in out, out


@pytest.mark.parametrize("hosts", [b"", b"Host: a\r\nHost: b\r\n"], ids=["no Host", "two Host"])
def test_http11_host_header_rules(daemon, hosts):
    """RFC 9112 3.2: 'A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request message
    that lacks a Host header field and to any request message that contains more than one Host header field line'."""
    out = _read_all(daemon, b"GET /healthz HTTP/1.1\r\n" + hosts + b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLS1.0", "TLS1.1"])
def test_https_refuses_tls10_and_tls11(daemon, version):
    """RFC 8996 (BCP 195) section 5: TLS 1.0 and 1.1 'MUST NOT' be negotiated. The HTTPS listener (API, portal
    login, CA Gateway mTLS) used to complete handshakes and serve requests over both."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    negotiated = None
    try:
        with socket.create_connection(("127.0.0.1", daemon.https_port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                negotiated = s.version()
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                resp = s.recv(200)
    except (ssl.SSLError, ConnectionError, OSError):
        return  # refused: correct
    pytest.fail(f"HTTPS listener negotiated {negotiated} and answered {resp[:30]!r}")


def test_https_sets_hsts(daemon):
    """The portal (login with password + TOTP, session cookie) over HTTPS carries Strict-Transport-Security
    (RFC 6797); plain HTTP does not (a header over HTTP means nothing, RFC 6797 7.2)."""
    r = requests.get(daemon.https_url + "/", verify=str(daemon.service_ca), timeout=30)
    assert r.status_code == 200
    assert r.headers.get("Strict-Transport-Security") == "max-age=31536000", dict(r.headers)
    assert "Strict-Transport-Security" not in requests.get(daemon.url + "/", timeout=30).headers


def test_swagger_ui_page_has_security_headers(daemon):
    """The Swagger UI HTML is served from the portal's origin: it carries the portal pages' CSP, X-Frame-Options
    and Referrer-Policy (docs/portal.md 'Serving'), or it could be framed and run script under no CSP on the
    session cookie's origin."""
    r = requests.get(daemon.url + "/cagw/swagger-ui", timeout=30)
    if r.status_code == 404:
        pytest.skip("swagger-ui-dist not installed")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in r.headers.get("Content-Security-Policy", ""), dict(r.headers)
    assert r.headers.get("X-Frame-Options") == "DENY" and r.headers.get("Referrer-Policy") == "no-referrer"


def test_https_still_speaks_tls12_and_tls13(daemon):
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(daemon.service_ca))
        ctx.check_hostname = False
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", daemon.https_port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert s.recv(200).startswith(b"HTTP/1.1 200"), version
                assert "GCM" in s.cipher()[0] or "CHACHA20" in s.cipher()[0], s.cipher()


def _probe(d, src):
    try:
        c = socket.create_connection(("127.0.0.1", d.http_port), timeout=5, source_address=(src, 0))
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = c.recv(100)
        c.close()
        return r
    except OSError as e:
        return repr(e).encode()


def test_one_address_cannot_hold_every_connection(fresh_daemon):
    """A client address holds at most max_connections_per_ip (512) connections: slow clients trickling header
    bytes (each byte resets the 30 s inactivity timeout) from one address used to be able to take all 4,096
    slots, refusing everyone else. Here one address opens 700 such connections; beyond its 512 it is refused,
    and another address is still served."""
    d = fresh_daemon
    socks, refused = [], 0
    try:
        for _ in range(700):
            try:
                s = socket.create_connection(("127.0.0.1", d.http_port), timeout=5,
                                             source_address=("127.0.0.7", 0))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                socks.append(s)
            except OSError:
                refused += 1
        time.sleep(1)
        alive = 0
        for s in socks:
            try:
                s.sendall(b"a")
                s.settimeout(0.05)
                alive += s.recv(1) == b""  # closed by the server: recv returns b"" at once
            except socket.timeout:
                pass  # still open
            except OSError:
                alive += 1
        held = len(socks) - alive
        assert held <= 512, (held, refused)
        assert _probe(d, "127.0.0.8").startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()


def test_cagw_revoke_via_cross_site_text_plain_form(daemon, tmp_path):
    """The CA Gateway authenticates by TLS client certificate, which a browser holding the credential presents
    to a cross-site form too (SameSite does not apply). A text/plain form body that parses as JSON used to be
    acted on (here: a revocation); bodies must be sent as application/json, which no form can send."""
    d = daemon
    root = make_root(d, tmp_path, "csrfr")
    sub = make_sub(d, tmp_path, root, "csrfs")
    cid = f"csrf-{sub.id}"[:32]
    body = ok(d.api("POST", "/cagw-credentials", json={"id": cid, "name": cid,
              "grants": [{"caId": sub.id, "roles": ["Certificate Administrators"]}]}), 201)
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(body["pkcs12"]), body["password"].encode())
    cp, kp = tmp_path / "c.pem", tmp_path / "k.pem"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    s = requests.Session()
    s.trust_env = False
    s.cert = (str(cp), str(kp))
    s.verify = str(d.data_dir / "service-ca.pem")
    base = f"https://127.0.0.1:{d.https_port}/cagw/v1/certificate-authorities/{d.account}~{sub.id}"
    r = s.post(base + "/enrollments", json={"profileId": PROFILE, "requiredFormat": {"format": "PEM"},
                                             "csr": _csr_b64("victim.example.com")}, timeout=60)
    assert r.status_code == 200, r.text
    serial = r.json()["enrollment"]["serialNumber"]
    # what <form method=post enctype=text/plain action=...> with one field
    #   name='{"action":{"type":"RevokeAction","reason":"keyCompromise","comment":"'  value='x"}}'
    # on https://evil.example sends (browsers attach the installed client certificate; no preflight)
    form = b'{"action":{"type":"RevokeAction","reason":"keyCompromise","comment":"=x"}}\r\n'
    r = s.post(base + f"/certificates/{serial}/actions", data=form, timeout=60,
               headers={"Content-Type": "text/plain", "Origin": "https://evil.example",
                        "Sec-Fetch-Site": "cross-site"})
    st = s.get(base + f"/certificates/{serial}", timeout=60).json()["certificate"]["status"]
    assert r.status_code == 415 and st == "normal", (r.status_code, r.text[:300], st)
    # the same action as JSON (what a CA Gateway client sends) still works
    r = s.post(base + f"/certificates/{serial}/actions", timeout=60,
               json={"action": {"type": "RevokeAction", "reason": "keyCompromise", "comment": "x"}})
    assert r.status_code == 200, r.text
