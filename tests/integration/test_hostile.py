"""Hostile-input corpus over HTTP: for every route the daemon registers
(`pkiaasd routes`), wrong methods, broken and hostile bodies (truncated and
bomb JSON, duplicated keys, huge numbers, invalid UTF-8, NUL bytes, bodies
over the limit), hostile path parameters (traversal, overlong, invalid
UTF-8, NUL), huge headers, and raw-socket abuse (a connection that closes
without a byte, partial requests, 1,000 idle keep-alive connections). Every
answer must be a 4xx (or the protocol's own error inside a 200), never a
5xx; the daemon stays healthy and its memory bounded. The run prints one
summary line `N passed, N failed`."""
import os
import socket
import subprocess
import time

import pytest
import requests

import conftest
from conftest import Daemon, _require_binaries
from helpers import create_ca

SUB = "hz-sub"


@pytest.fixture(scope="module")
def hz(tmp_path_factory):
    _require_binaries()
    d = Daemon(tmp_path_factory.mktemp("pkiaasd-hostile"))
    d.bootstrap()
    d.start()
    root = create_ca(d, id="hz-root", type="root", signingKeyDetails="RSA-2048+PKCS15-SHA256", subject="CN=HZ Root")
    create_ca(d, id=SUB, type="subord", parentId=root["id"], signingKeyDetails="RSA-2048+PKCS15-SHA256",
              subject="CN=HZ Issuing", enableCrl=True, enableOcsp=True,
              profiles=["privatessl-tls-server", "scep-tls-client", "est-tls-client", "cmp-tls-client",
                        "mdmws-digital-signature"])
    for cid, typ, prof, extra in [("acme", "acme", "privatessl-tls-server", {"eabRequired": False}),
                                  ("scep", "scep", "scep-tls-client", {}), ("est", "est", "est-tls-client", {}),
                                  ("cmp", "cmp", "cmp-tls-client", {}), ("mdm", "mdmws", "mdmws-digital-signature", {})]:
        body = {"id": cid, "type": typ, "caId": SUB, "profileId": prof}
        body.update(extra)
        r = d.api("POST", "/protocols", json=body)
        assert r.status_code == 201, r.text
    yield d
    d.stop()


def routes():
    out = subprocess.run([str(conftest.PKIAASD), "routes"], capture_output=True, text=True, check=True).stdout
    return [tuple(l.split(" ", 1)) for l in out.strip().splitlines()]


def concrete(pattern, account, method):
    """A path for a route pattern, with parameters that reach the handler
    (and never name the fixtures for DELETE routes)."""
    parts = pattern.strip("/").split("/")
    out, seen = [], 0
    for i, p in enumerate(parts):
        if p not in ("{}", "{*}"):
            out.append(p)
            continue
        seen += 1
        prev = parts[i - 1] if i else ""
        if seen == 1 and parts[0] in ("api", "acme", "scep", "cmp", "ocsp", "crl", "ca", "mdm"):
            out.append(account)
        elif parts[0] == ".well-known":
            out.append(f"{account}~est")
        elif method == "DELETE":
            out.append("nosuch")
        elif prev == "cas" or parts[0] in ("ocsp", "crl", "ca") and seen == 2:
            out.append(SUB if parts[0] != "ca" else SUB + ".crt")
        elif prev == "protocols":
            out.append("est")
        elif parts[0] in ("acme", "scep", "cmp") and seen == 2:
            out.append(parts[0])
        elif parts[0] == "mdm" and seen == 2:
            out.append("mdm")
        elif p == "{*}":
            out.append("MEIwQDA%2B")
        else:
            out.append("nosuch")
    return "/" + "/".join(out)


BODIES = [
    ("empty", b""),
    ("truncated-json", b'{"a": [1, 2, {"b": '),
    ("not-json", b"\x00\x01\x02garbage\xff"),
    ("json-array", b"[]"),
    ("json-bomb", b"[" * 50000 + b"]" * 50000),
    ("dup-keys", b'{"id":"a","id":"b","profileId":"x","profileId":"y"}'),
    ("huge-number", b'{"pathLength": 1e999999, "limit": 99999999999999999999999999999}'),
    ("bad-utf8", b'{"id":"\xc3\x28\xa0\xa1","name":"\xed\xa0\x80"}'),
    ("nul-in-string", b'{"id":"a\\u0000b","subject":"CN=x\\u0000y"}'),
    ("wrong-types", b'{"id":1,"type":[],"caId":{},"profileId":true,"csr":5,"reason":{"x":1}}'),
    ("deep-object", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("der-ish", b"\x30\x84\xff\xff\xff\xff\x02\x01\x00"),
]


class Tally:
    def __init__(self):
        self.passed, self.failed, self.failures = 0, 0, []
        self.by_status = {}

    def check(self, what, status, also=()):
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status is not None and 400 <= status < 500 or status in (200, 201, 204) or status in also:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append(f"{what} -> {status}")


def raw(d, data, read=True, timeout=10):
    """Sends raw bytes on a new connection; returns the status code or None."""
    s = socket.create_connection(("127.0.0.1", d.http_port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return None
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        parts = buf.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    finally:
        s.close()


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_hostile_corpus(hz):
    d = hz
    t = Tally()
    s = requests.Session()
    s.trust_env = False
    s.headers["Authorization"] = f"Bearer {d.token}"
    rss0 = rss_kb(d.proc.pid)
    all_routes = routes()
    methods = {"GET", "POST", "PUT", "DELETE"}
    for method, pattern in all_routes:
        path = concrete(pattern, d.account, method)
        url = d.url + path
        # a method the route does not have
        for other in sorted(methods - {method} - {m for m, p in all_routes if p == pattern})[:1] + ["PATCH"]:
            r = s.request(other, url, timeout=30)
            t.check(f"{other} {path}", r.status_code)
        if method in ("POST", "PUT"):
            for name, body in BODIES:
                for ctype in ("application/json", "application/octet-stream"):
                    r = s.request(method, url, data=body, headers={"Content-Type": ctype}, timeout=60)
                    t.check(f"{method} {path} [{name}, {ctype}]", r.status_code)
        # hostile path parameters in place of the last parameter
        if "{}" in pattern:
            for bad in ("..%2F..%2Fetc%2Fpasswd", "..", "x" * 300, "%C3%28", "%00", "%2F", "%FF%FE"):
                head, _, _ = path.rpartition("/")
                tail_fixed = pattern.rstrip("/").endswith("{}")
                p2 = f"{head}/{bad}" if tail_fixed else path.replace("nosuch", bad, 1)
                r = s.request(method if method != "DELETE" else "GET", d.url + p2, timeout=30)
                t.check(f"{method} {p2[:120]}", r.status_code)
    # huge headers and query strings
    r = s.get(d.url + f"/api/v1/partitions/{d.account}/cas", headers={"X-Big": "a" * 70000}, timeout=30)
    t.check("70 KB header", r.status_code)
    # the per-connection memory (LIMIT_HTTP_CONN_MEMORY) still takes ordinary large headers:
    # 8 KB of headers on top of the bearer token, over HTTP and over HTTPS
    for base in (d.url, d.https_url):
        r = s.get(base + f"/api/v1/partitions/{d.account}/cas", headers={"X-Pad": "p" * 8192},
                  timeout=30, verify=str(d.service_ca) if base == d.https_url else True)
        assert r.status_code == 200, (base, r.status_code, r.text[:200])
    r = s.get(d.url + f"/api/v1/partitions/{d.account}/cas/{SUB}/certificates?q=" + "b" * 100000, timeout=30)
    t.check("100 KB query", r.status_code)
    # over the body limit
    r = s.post(d.url + f"/api/v1/partitions/{d.account}/cas", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
               headers={"Content-Type": "application/json"}, timeout=60)
    t.check("2 MiB body", r.status_code)
    # unauthenticated endpoints hold much less than the 1 MiB default
    # (each says so in its own protocol's form; OCSP answers malformedRequest)
    for path, size, sent, ctype in [
            ("/api/v1/login", 20 * 1024, "application/json", "application/json"),
            (f"/acme/{d.account}/acme/new-account", 70 * 1024, "application/jose+json", "application/problem+json"),
            (f"/cmp/{d.account}/cmp", 300 * 1024, "application/pkixcmp", "text/plain"),
            (f"/scep/{d.account}/scep/pkiclient.exe?operation=PKIOperation", 300 * 1024, "application/x-pki-message",
             "text/plain"),
            (f"/.well-known/est/{d.account}~est/simpleenroll", 300 * 1024, "application/pkcs10", "text/plain")]:
        base = d.https_url if path.startswith("/.well-known/est") else d.url  # EST enrols over TLS only
        r = requests.post(base + path, data=b"x" * size, headers={"Content-Type": sent}, timeout=30,
                          verify=str(d.service_ca))
        # (EST authenticates first: a stranger gets 401 either way)
        want = (413, 401) if path.startswith("/.well-known/est") else (413,)
        assert r.status_code in want and r.headers.get("Content-Type", "").startswith(ctype), (path, r.status_code,
                                                                                              r.headers)
        t.check(f"{size // 1024} KB to {path}", r.status_code)
    r = requests.post(d.url + f"/ocsp/{d.account}/{SUB}", data=b"x" * 70 * 1024,
                      headers={"Content-Type": "application/ocsp-request"}, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/ocsp-response" and \
        r.content[:5] == bytes.fromhex("3003 0a01 01".replace(" ", "")), (r.status_code, r.content[:8])
    t.check("70 KB OCSP request", r.status_code)
    # raw-socket abuse
    raw(d, b"", read=False)  # opens and closes without a byte
    # HTTP-level protocol errors are libmicrohttpd's own: a request line that
    # is not HTTP closes the connection; an unknown version is 505 (RFC 9110)
    t.check("raw: GARBAGE request line", raw(d, b"GARBAGE\r\n\r\n"), also=(None,))
    t.check("raw: bad version", raw(d, b"GET / HTTP/9.9\r\n\r\n"), also=(505,))
    t.check("raw: negative length",
            raw(d, b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"))
    t.check("raw: overflowing length",
            raw(d, b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"))
    t.check("raw: header without colon", raw(d, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBroken header\r\n\r\n"))
    # a partial request (slowloris) does not hold up others
    slow = socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
    slow.sendall(b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"")
    r = requests.get(d.url + "/healthz", timeout=10)
    t.check("healthz while a request hangs", r.status_code)
    slow.close()
    # 1,000 idle keep-alive connections, from four client addresses (one address may hold at most
    # max_connections_per_ip = 512 of them)
    idle = []
    for i in range(1000):
        c = socket.create_connection(("127.0.0.1", d.http_port), timeout=10,
                                     source_address=(f"127.0.0.{2 + i % 4}", 0))
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        idle.append(c)
    r = requests.get(d.url + "/healthz", timeout=30)
    t.check("healthz with 1,000 idle connections", r.status_code)
    for c in idle:
        c.close()
    time.sleep(0.5)
    r = requests.get(d.url + "/healthz", timeout=10)
    t.check("healthz afterwards", r.status_code)
    rss1 = rss_kb(d.proc.pid)
    print(f"\nhostile corpus: {t.passed} passed, {t.failed} failed (RSS {rss0 // 1024} -> {rss1 // 1024} MiB; "
          f"statuses {dict(sorted(t.by_status.items(), key=lambda kv: str(kv[0])))})")
    # the corpus reached the handlers: most answers are validation errors, not 404s
    assert t.by_status.get(400, 0) > t.by_status.get(404, 0), t.by_status
    assert t.passed + t.failed >= 300, t.passed + t.failed
    assert not t.failures, "\n".join(t.failures[:60])
    assert d.proc.poll() is None, "the daemon died"
    # ASan keeps freed memory in quarantine (256 MiB by default): the bound
    # that says something is the plain build's
    bound = 768 * 1024 if "ASAN_OPTIONS" in os.environ else 128 * 1024
    assert rss1 - rss0 < bound, f"RSS grew by {(rss1 - rss0) // 1024} MiB"


def _read_all(d, data, timeout=5):
    """Sends raw bytes on a new connection and reads until the server closes it (or the timeout)."""
    s = socket.create_connection(("127.0.0.1", d.http_port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    finally:
        s.close()
    return out


@pytest.mark.parametrize("framing", ["two Content-Length", "Content-Length and Transfer-Encoding",
                                     "Transfer-Encoding other than chunked"])
def test_ambiguous_framing_is_refused_and_closes(hz, framing):
    """RFC 9112 6.3: a request whose length could be read two ways is answered 400 and the connection closed, so
    a request hidden in its body (smuggled past a proxy that reads the length the other way) is never run."""
    d = hz
    smuggled = (b"GET /api/v1/partitions/%s/cas HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                b"Connection: close\r\n\r\n" % (d.account.encode(), d.token.encode()))
    head = b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if framing == "two Content-Length":
        req = head + b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
    elif framing == "Content-Length and Transfer-Encoding":
        req = head + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s" % (
            5 + len(smuggled), smuggled)
    else:
        req = head + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n%s" % smuggled
    out = _read_all(d, req)
    assert out.startswith(b"HTTP/1.1 400 "), out[:300]
    assert out.count(b"HTTP/1.1 ") == 1, out  # the hidden request got no answer
    assert b'"cas"' not in out
    # one Content-Length, or chunked alone, still work
    # (a new address each time: five failures at one address lock it, 429)
    import secrets
    body = b'{"partition":"x","email":"%s@b.c","password":"p"}' % secrets.token_hex(6).encode()
    ok1 = _read_all(d, head + b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    body = b'{"partition":"x","email":"%s@b.c","password":"p"}' % secrets.token_hex(6).encode()
    assert ok1.startswith(b"HTTP/1.1 401 ") or ok1.startswith(b"HTTP/1.1 400 "), ok1[:200]
    ok2 = _read_all(d, head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        len(body), body))
    assert ok2.startswith(b"HTTP/1.1 401 ") or ok2.startswith(b"HTTP/1.1 400 "), ok2[:200]
    assert b"bad_request" not in ok1 + ok2
