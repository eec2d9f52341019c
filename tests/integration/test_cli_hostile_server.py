"""The CLI against a crafted server: JSON from the network is untrusted. A server whose nextCursor cycles
("a", "b", "a", ...) sent `cert list --all` and `cert revoke-bulk` into endless requests; the client now stops
at the first cursor it has seen before (exit 1). Found by review; fails on the build before the fix."""
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import PKIAAS, clean_env


class _CyclingServer(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urlsplit(self.path)
        cur = parse_qs(u.query).get("cursor", [None])[0]
        self.server.hits += 1
        if u.path.endswith("/certificates"):
            body = {"certificates": [{"serialNumber": f"{self.server.hits:02x}", "status": "issued",
                                      "subject": "CN=x", "profileId": "p", "notAfter": "2030-01-01T00:00:00Z"}],
                    "nextCursor": "b" if cur == "a" else "a"}
        else:
            body = {"id": "sub-1", "status": "active"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    s = ThreadingHTTPServer(("127.0.0.1", 0), _CyclingServer)
    s.hits = 0
    t = threading.Thread(target=s.serve_forever, daemon=True)
    t.start()
    yield s
    s.shutdown()


@pytest.mark.parametrize("args", [("cert", "list", "sub-1", "--all"),
                                  ("cert", "revoke-bulk", "--ca", "sub-1", "--profile", "p", "--reason",
                                   "superseded", "--yes")], ids=["list", "revoke-bulk"])
def test_cursor_cycle_stops(server, args):
    try:
        cp = subprocess.run([str(PKIAAS), "--url", f"http://127.0.0.1:{server.server_address[1]}", "--token", "t",
                             "--partition", "p", *args], capture_output=True, text=True, timeout=20,
                            env=clean_env(), input="")
    except subprocess.TimeoutExpired:
        raise AssertionError(f"pages forever on a cursor cycle ({server.hits} requests)")
    assert cp.returncode == 1 and "returned before" in cp.stderr, (cp.returncode, cp.stderr)
    assert server.hits <= 10, server.hits
