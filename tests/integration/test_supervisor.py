"""Supervisor: subscriptions, assignment to a region, partitions — a separate
account from partition users."""
import json
import re
import subprocess

import requests

import conftest


def supervisor_token(daemon):
    cp = subprocess.run([str(conftest.PKIAASD), "supervisor-token", "--data-dir", str(daemon.data_dir),
                         *daemon.store_args()],
                        capture_output=True, text=True, timeout=60, env=conftest.clean_env())
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)["supervisorToken"]


def test_subscription_lifecycle(fresh_daemon):
    d = fresh_daemon
    tok = supervisor_token(d)
    h = {"Authorization": f"Bearer {tok}"}
    base = f"{d.url}/api/v1/supervisor"
    # partition tokens are not supervisor tokens, and vice versa
    assert requests.get(f"{base}/subscriptions", headers={"Authorization": f"Bearer {d.token}"}).status_code == 401
    assert requests.get(f"{d.url}/api/v1/partitions/{d.account}/cas", headers=h).status_code == 401
    subs = requests.get(f"{base}/subscriptions", headers=h).json()["subscriptions"]
    assert [s["partition"] for s in subs] == [d.account] and subs[0]["status"] == "Assigned"
    r = requests.post(f"{base}/subscriptions", headers=h, json={"certificates": 1000000, "cas": 3})
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["status"] == "Unassigned" and sub["tier"] == "premium" and sub["partition"] is None
    assert sub["inventory"] == {"certificatesIssued": 0, "certificatesPurchased": 1000000, "casActive": 0,
                                "casPurchased": 3}
    body = {"region": "eu", "label": "Ottawa1", "acceptTerms": True, "ownerEmail": "own@example.com",
            "ownerFirstName": "O", "ownerLastName": "W"}
    for bad, field in (({"acceptTerms": False}, "acceptTerms"), ({"region": "mars"}, "region"),
                       ({"label": ""}, "label"), ({"extra": 1}, "extra")):
        r = requests.post(f"{base}/subscriptions/{sub['id']}/assign", headers=h, json={**body, **bad})
        assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text
    r = requests.post(f"{base}/subscriptions/{sub['id']}/assign", headers=h, json=body)
    assert r.status_code == 201, r.text
    part = r.json()["partition"]
    assert re.fullmatch(r"sub[0-9a-f]{10}", part["accountId"]) and part["region"] == "eu"
    assert "/invite/" in r.json()["owner"]["inviteUrl"]
    assert requests.post(f"{base}/subscriptions/{sub['id']}/assign", headers=h, json=body).status_code == 409
    assert requests.post(f"{base}/subscriptions/nope/assign", headers=h, json=body).status_code == 404
    found = requests.get(f"{base}/partitions", headers=h, params={"search": "Ottawa"}).json()["partitions"]
    assert [p["accountId"] for p in found] == [part["accountId"]]
    subs = {s["id"]: s for s in requests.get(f"{base}/subscriptions", headers=h).json()["subscriptions"]}
    assert subs[sub["id"]]["status"] == "Assigned" and subs[sub["id"]]["region"] == "eu"
    # the owner invitation works: accept sets a password and starts TOTP enrolment
    token = r.json()["owner"]["inviteUrl"].rsplit("/", 1)[1]
    acc = requests.post(f"{d.url}/api/v1/invitations/{token}/accept", json={"password": "a long password 123"})
    assert acc.status_code == 200 and acc.json()["otpauthUri"].startswith("otpauth://totp/pkiaas:own%40example.com") \
        or acc.json()["otpauthUri"].startswith("otpauth://totp/pkiaas:own@example.com"), acc.text


def test_supervisor_tokens_can_be_revoked(fresh_daemon):
    """A leaked supervisor token is revoked with `pkiaasd supervisor-token --revoke` (the token on stdin): the
    next request with it gets 401 while another token keeps working; `--revoke-all` ends them all."""
    d = fresh_daemon
    leaked, other = supervisor_token(d), supervisor_token(d)
    base = f"{d.url}/api/v1/supervisor/subscriptions"

    def status(tok):
        return requests.get(base, headers={"Authorization": f"Bearer {tok}"}).status_code

    def revoke(*args, stdin=""):
        return subprocess.run([str(conftest.PKIAASD), "supervisor-token", "--data-dir", str(d.data_dir),
                               *d.store_args(), *args], input=stdin, capture_output=True, text=True, timeout=60,
                              env=conftest.clean_env())

    assert status(leaked) == status(other) == 200
    cp = revoke("--revoke", stdin=leaked + "\n")
    assert cp.returncode == 0 and json.loads(cp.stdout) == {"revoked": 1}, (cp.stdout, cp.stderr)
    assert leaked not in cp.stdout + cp.stderr
    assert status(leaked) == 401 and status(other) == 200
    cp = revoke("--revoke", stdin=leaked + "\n")  # again: nothing left to revoke
    assert cp.returncode == 1 and json.loads(cp.stdout) == {"revoked": 0}, (cp.stdout, cp.stderr)
    assert revoke("--revoke", stdin="not-a-token\n").returncode == 1
    cp = revoke("--revoke-all")
    assert cp.returncode == 0 and json.loads(cp.stdout) == {"revoked": 1}, (cp.stdout, cp.stderr)
    assert status(other) == 401
