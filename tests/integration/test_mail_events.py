"""Invitation mail through an SMTP relay (libcurl), the enrollment-events view
over the audit log, and audit records for rate-limit hits and CA changes."""
import json
import subprocess
import threading
import time
import warnings

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from status_helpers import ConfiguredDaemon, ok

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore  # noqa: E402  (Debian 12's Python 3.11 still ships smtpd)
    import smtpd  # noqa: E402

import conftest

PROFILE = "privatessl-tls-server"


class Relay(smtpd.SMTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), None)
        self.port = self.socket.getsockname()[1]
        self.messages = []

    def process_message(self, peer, mailfrom, rcpttos, data, **kw):
        self.messages.append((mailfrom, rcpttos, data))


@pytest.fixture
def relay():
    r = Relay()
    t = threading.Thread(target=asyncore.loop, kwargs={"timeout": 0.05}, daemon=True)
    t.start()
    yield r
    r.close()


def test_invitation_is_mailed(relay, tmp_path):
    d = ConfiguredDaemon(tmp_path / "mail", [f"smtp_url = smtp://127.0.0.1:{relay.port}",
                                             "smtp_from = pki@example.com", "rate_limit_standard = 0"])
    d.bootstrap()
    d.start()
    try:
        r = d.api("POST", "/users/invitations", json={"email": "bob@example.com", "firstName": "Bob",
                                                       "lastName": "B", "roles": ["CA Auditors"]})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["delivery"] == "mailed" and "inviteUrl" not in body  # the link travels by mail only
        deadline = time.time() + 10
        while not relay.messages and time.time() < deadline:
            time.sleep(0.1)
        assert relay.messages, "no mail reached the relay"
        mailfrom, rcpt, data = relay.messages[0]
        assert mailfrom == "pki@example.com" and rcpt == ["bob@example.com"]
        text = data.decode() if isinstance(data, bytes) else data
        link = [w for w in text.split() if "/invite/" in w][0]
        token = link.rsplit("/", 1)[1]
        acc = requests.post(f"{d.url}/api/v1/invitations/{token}/accept", json={"password": "twelve chars ok"})
        assert acc.status_code == 200, acc.text
        # the link is not in the daemon log when mailed
        assert token not in d.tail(100000)
    finally:
        assert d.stop() in (0, None)


def _csr(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


def test_enrollment_events_view(fresh_daemon):
    d = fresh_daemon
    ok(d.api("POST", "/cas", json={"id": "evroot", "type": "root", "signingKeyDetails": "ECDSAP256+SHA256",
                                   "subject": "CN=ev root"}), 201)
    ok(d.api("POST", "/cas", json={"id": "evsub", "type": "subord", "parentId": "evroot",
                                   "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=ev sub",
                                   "profiles": [PROFILE]}), 201)
    serials = [ok(d.api("POST", "/cas/evsub/certificates", json={"profileId": PROFILE, "csr": _csr(f"ev{i}.example")}),
                  201)["serialNumber"] for i in range(3)]
    ok(d.api("POST", f"/cas/evsub/certificates/{serials[0]}/revoke", json={"reason": "keyCompromise"}))
    ok(d.api("POST", f"/cas/evsub/certificates/{serials[1]}/suspend"))
    ev = ok(d.api("GET", "/events"))["events"]
    types = [e["type"] for e in ev]
    assert types == ["issued", "issued", "issued", "revoked", "suspended"], types
    first = ev[0]
    assert first["endEntity"] == "CN=ev0.example" and first["serialNumber"] == serials[0]
    assert first["profileId"] == PROFILE and first["status"] == "success"
    int(first["eventId"], 16)  # event ids are hex
    assert ok(d.api("GET", "/events", params={"type": "revoked"}))["events"][0]["serialNumber"] == serials[0]
    page = ok(d.api("GET", "/events", params={"limit": "2"}))
    assert len(page["events"]) == 2 and page["next"]
    rest = ok(d.api("GET", "/events", params={"after": page["next"]}))["events"]
    assert [e["eventId"] for e in page["events"] + rest] == [e["eventId"] for e in ev]
    assert d.api("GET", "/events", params={"type": "bogus"}).status_code == 400


def test_rate_limit_hits_and_ca_changes_are_audited(tmp_path):
    d = ConfiguredDaemon(tmp_path / "rl", ["rate_limit_standard = 5"])
    d.bootstrap()
    d.start()
    try:
        ok(d.api("POST", "/cas", json={"id": "aroot", "type": "root", "signingKeyDetails": "ECDSAP256+SHA256",
                                       "subject": "CN=a root"}), 201)
        codes = [d.api("GET", "/cas").status_code for _ in range(20)]
        assert 429 in codes
        time.sleep(2.5)
        recs = ok(d.api("GET", "/audit", params={"limit": "1000"}))["records"]
        hits = [r for r in recs if r["action"] == "ratelimit.hit"]
        assert len(hits) == 1, hits  # once per burst, not per refused request
        assert hits[0]["result"] == "denied" and hits[0]["sourceIp"] == "127.0.0.1"
        create = [r for r in recs if r["action"] == "ca.create"][0]
        assert create["sourceIp"] == "127.0.0.1" and create["target"] == "ca:aroot"
    finally:
        assert d.stop() in (0, None)
