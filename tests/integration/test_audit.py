"""Audit log v2: records of API operations (actor, source IP, result), report filters, pagination and CSV
export, chain verification (`pkiaas audit verify`) against tampering with the SQLite file, signed checkpoints
checked with `openssl dgst`, role gating, and the `pkiaas audit` / `pkiaas token` commands.

Tampering tests each run on a daemon of their own (`fresh_daemon`) and edit `pkiaas.db` with Python's sqlite3
module while the daemon runs (the store uses WAL, so that is safe)."""
import base64
import csv
import datetime
import hashlib
import io
import json
import secrets
import sqlite3
import time
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import conftest
from conftest import db_exec, sqlite_only
from helpers import expect_error, uid
from status_helpers import ok

GENESIS = "0" * 64
RECORD_KEYS = {"seq", "time", "actor", "sourceIp", "action", "target", "result", "details", "prevHash", "hash"}
CSV_HEADER = ["seq", "time", "actor", "sourceIp", "action", "target", "result", "details", "hash"]
EC = "ECDSAP256+SHA256"
PROFILE = "privatessl-tls-server"
EXIT_BROKEN = 4


# ------------------------------------------------------------------ helpers
def _name(prefix):
    return f"{prefix}-{secrets.token_hex(4)}"


def _session(token):
    s = conftest._TimeoutSession()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def _token(d, roles, prefix="aud"):
    """Creates an API token with `roles` (as the bootstrap Owners token); returns (name, secret)."""
    name = _name(prefix)
    body = ok(d.api("POST", "/tokens", json={"name": name, "roles": roles}), 201)
    return name, body["token"]


def _records(d, session=None, **params):
    """Every record matching `params` (one page of up to 1,000)."""
    params.setdefault("limit", 1000)
    s = session or d.session
    body = ok(s.get(d.api_url("/audit"), params=params))
    assert set(body) == {"records", "next"}, body
    for rec in body["records"]:
        assert set(rec) == RECORD_KEYS, rec
    return body["records"]


def _head_seq(d):
    """The newest record's seq in the partition (following `next` however long the log is)."""
    after, head = 0, 0
    while True:
        body = ok(d.api("GET", "/audit", params={"limit": 1000, "after": after}))
        if body["records"]:
            head = body["records"][-1]["seq"]
        if body["next"] is None:
            return head
        after = body["next"]


def _verify(d):
    body = ok(d.api("GET", "/audit/verify"))
    assert set(body) == {"ok", "records", "checkpoints", "firstBadSeq", "problem", "gaps", "firstGapSeq"}, body
    return body


def _cli_ok(cp, what):
    assert cp.returncode == 0, f"{what}: exit {cp.returncode}\nstdout: {cp.stdout}\nstderr: {cp.stderr}"
    return cp


def _ms(t):
    """Milliseconds since the epoch of a record time (2026-11-23T12:00:00.123Z)."""
    dt = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return round(dt.timestamp() * 1000)


def _rfc3339(secs):
    return datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_hash(prev, partition, at_ms, actor, ip, action, target, result, detail):
    """audit_record_hash (src/audit/audit.c): SHA-256 over "<len>:<bytes>" of each field."""
    h = hashlib.sha256()
    for f in (prev, partition, str(at_ms), actor or "", ip or "", action or "", target or "", result or "success",
              detail or ""):
        b = f.encode()
        h.update(f"{len(b)}:".encode() + b)
    return h.hexdigest()


def _db(d):
    return sqlite3.connect(str(d.data_dir / "pkiaas.db"), timeout=10)


def _db_exec(d, sql, *args):
    db_exec(d, sql, *args)  # either backend


def _db_rows(d):
    c = _db(d)
    try:
        c.row_factory = sqlite3.Row
        return [dict(r) for r in c.execute(
            "SELECT * FROM audit WHERE partition_id=? ORDER BY seq", (d.account,))]
    finally:
        c.close()


def _db_checkpoints(d):
    c = _db(d)
    try:
        return [tuple(r) for r in c.execute(
            "SELECT seq, hash FROM audit_checkpoint WHERE partition_id=? ORDER BY seq", (d.account,))]
    finally:
        c.close()


def _rewrite_chain(d, rows):
    """Stores `rows` (dicts of audit columns, in seq order) with every prev_hash / hash recomputed, as an attacker
    with write access to the database would."""
    prev = GENESIS
    with _db(d) as c:
        for r in rows:
            h = record_hash(prev, r["partition_id"], r["at_ms"], r["actor"], r["source_ip"], r["action"],
                            r["target"], r["result"], r["detail"])
            c.execute("UPDATE audit SET target=?, prev_hash=?, hash=? WHERE seq=?", (r["target"], prev, h, r["seq"]))
            r["prev_hash"], r["hash"] = prev, h
            prev = h
    c.close()


def _populate(d, n=4):
    """A few records in a fresh daemon's partition: token creations, one revocation, a failed authentication."""
    names = [_name("pop") for _ in range(n)]
    for name in names:
        ok(d.api("POST", "/tokens", json={"name": name, "roles": ["CA Auditors"]}), 201)
    ok(d.api("DELETE", f"/tokens/{names[0]}"))
    r = _session("pk_" + secrets.token_urlsafe(32)).get(d.api_url("/audit"))
    assert r.status_code == 401, r.text
    recs = _records(d)
    assert len(recs) >= n + 3, recs  # bootstrap + creations + revocation + auth.failed
    v = _verify(d)
    assert v["ok"] is True and v["records"] == len(recs), v
    cp = d.cli("audit", "verify")
    assert cp.returncode == 0 and cp.stdout.startswith("audit chain OK: "), (cp.stdout, cp.stderr)
    return recs


def _assert_broken(d, seq, mention):
    v = _verify(d)
    assert v["ok"] is False, v
    assert v["firstBadSeq"] == seq, v
    assert mention in v["problem"], v
    cp = d.cli("audit", "verify")
    assert cp.returncode == EXIT_BROKEN, (cp.returncode, cp.stdout, cp.stderr)
    assert cp.stdout.startswith(f"audit chain BROKEN at record {seq}: "), cp.stdout
    cp = d.cli("--json", "audit", "verify")
    assert cp.returncode == EXIT_BROKEN, (cp.returncode, cp.stdout, cp.stderr)
    assert json.loads(cp.stdout) == v
    return v


_KEY = ec.generate_private_key(ec.SECP256R1())


def _csr(cn):
    return x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(_KEY, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM).decode()


# ------------------------------------------------------------ records, filters
@pytest.fixture(scope="module")
def activity(daemon):
    """Operations done with an Owners token of their own (so `actor` isolates them), plus a forbidden call by a
    Certificate Administrators token and a call with a bad token."""
    d = daemon
    owner_name, owner_tok = _token(d, ["Owners"], "own")
    s = _session(owner_tok)
    actor = f"token:{owner_name}"
    before = _head_seq(d)
    root, sub = uid("audr"), uid("auds")
    ok(s.post(d.api_url("/cas"), json={"id": root, "type": "root", "signingKeyDetails": EC,
                                        "subject": f"CN={root}"}), 201)
    ok(s.post(d.api_url("/cas"), json={"id": sub, "type": "subord", "parentId": root, "signingKeyDetails": EC,
                                        "subject": f"CN={sub}", "profiles": [PROFILE]}), 201)
    cert = ok(s.post(d.api_url(f"/cas/{sub}/certificates"), json={"profileId": PROFILE, "csr": _csr("audit.test")}),
              201)
    serial = cert["serialNumber"]
    ok(s.post(d.api_url(f"/cas/{sub}/certificates/{serial}/revoke"), json={"reason": "keyCompromise"}))
    tok_name = _name("cra")
    cra_tok = ok(s.post(d.api_url("/tokens"), json={"name": tok_name, "roles": ["Certificate Administrators"]}),
                 201)["token"]
    expect_error(_session(cra_tok).get(d.api_url("/audit")), 403, code="forbidden")
    r = _session("pk_" + secrets.token_urlsafe(32)).get(d.api_url("/audit"))
    assert r.status_code == 401, r.text
    return {"d": d, "actor": actor, "session": s, "root": root, "sub": sub, "serial": serial,
            "tok_name": tok_name, "cra_actor": f"token:{tok_name}", "before": before}


def test_records_of_operations(activity):
    a, d = activity, activity["d"]
    mine = _records(d, actor=a["actor"])
    by_action = {}
    for rec in mine:
        by_action.setdefault(rec["action"], []).append(rec)
        assert rec["actor"] == a["actor"] and rec["result"] == "success", rec
        assert rec["seq"] > a["before"], rec
    # (creating a CA with profiles also records ca.profile.add)
    assert set(by_action) - {"ca.profile.add"} == {"ca.create", "cert.issue", "cert.revoke", "token.create"}, \
        sorted(by_action)
    assert sorted(r["target"] for r in by_action["ca.create"]) == sorted([f"ca:{a['root']}", f"ca:{a['sub']}"])
    issue, = by_action["cert.issue"]
    assert issue["target"] == f"cert:{a['sub']}/{a['serial']}", issue
    assert issue["details"] == {"profile": PROFILE, "serverSideKey": False, "subject": "CN=audit.test"}, issue
    revoke, = by_action["cert.revoke"]
    assert revoke["target"] == f"cert:{a['sub']}/{a['serial']}" and revoke["details"] == "keyCompromise", revoke
    tc, = by_action["token.create"]
    assert tc["target"] == f"token:{a['tok_name']}", tc
    for rec in (issue, revoke, tc):
        assert rec["sourceIp"] == "127.0.0.1", rec

    denied = _records(d, actor=a["cra_actor"])
    assert len(denied) == 1, denied
    assert denied[0]["action"] == "authz.denied" and denied[0]["result"] == "denied", denied
    assert denied[0]["target"] == "audit.read" and denied[0]["sourceIp"] == "127.0.0.1", denied

    failed = [r for r in _records(d, action="auth.failed", after=a["before"])]
    assert failed, "no auth.failed record for the bad token"
    for rec in failed:
        assert rec["actor"] == "anonymous" and rec["result"] == "failure", rec
        assert rec["sourceIp"] == "127.0.0.1", rec

    # The chain links every record to its predecessor.
    allrecs = _records(d, after=a["before"] - 1) if a["before"] > 1 else _records(d)
    for prev, cur in zip(allrecs, allrecs[1:]):
        assert cur["prevHash"] == prev["hash"], (prev, cur)
        assert cur["seq"] > prev["seq"]


def test_filters(activity):
    a, d = activity, activity["d"]
    mine = _records(d, actor=a["actor"])
    assert _records(d, actor=a["actor"], action="ca.create") == [r for r in mine if r["action"] == "ca.create"]
    assert _records(d, actor=a["actor"], action="cert.issue") == [r for r in mine if r["action"] == "cert.issue"]
    assert _records(d, actor=a["actor"], result="denied") == []
    denied = _records(d, result="denied", after=a["before"])
    assert denied and all(r["result"] == "denied" for r in denied), denied
    assert any(r["actor"] == a["cra_actor"] for r in denied), denied
    failed = _records(d, result="failure", after=a["before"])
    assert failed and all(r["result"] == "failure" for r in failed), failed
    assert _records(d, action="no.such-action") == []

    # from / to (inclusive, whole seconds: the daemon reads them to the second)
    times = [_ms(r["time"]) for r in mine]
    lo, hi = times[1] // 1000, times[-1] // 1000 + 1
    got = _records(d, actor=a["actor"], **{"from": _rfc3339(lo), "to": _rfc3339(hi)})
    assert got == [r for r, t in zip(mine, times) if lo * 1000 <= t <= hi * 1000], (lo, hi, got)
    assert _records(d, actor=a["actor"], to=_rfc3339(times[0] // 1000 - 1)) == []
    assert _records(d, actor=a["actor"], **{"from": _rfc3339(times[-1] // 1000 + 2)}) == []
    assert _records(d, actor=a["actor"], **{"from": _rfc3339(times[0] // 1000)}) == mine

    for params in ({"from": "yesterday"}, {"to": "2026-13-01T00:00:00Z"}, {"limit": 0}, {"limit": 1001},
                   {"after": "-1"}, {"format": "xml"}):
        expect_error(d.api("GET", "/audit", params=params), 400, code="invalid_field")


def test_to_is_inclusive_to_the_millisecond(activity):
    a, d = activity, activity["d"]
    mine = _records(d, actor=a["actor"])
    last = mine[-1]
    assert last in _records(d, actor=a["actor"], to=last["time"])
    first = mine[0]
    assert _records(d, actor=a["actor"], **{"from": first["time"]})[0] == first
    assert _records(d, **{"from": first["time"], "to": first["time"]}) == [first]


def test_pagination(activity):
    a, d = activity, activity["d"]
    mine = _records(d, actor=a["actor"])
    assert len(mine) >= 5
    pages, after = [], 0
    while True:
        body = ok(d.api("GET", "/audit", params={"actor": a["actor"], "limit": 2, "after": after}))
        pages.append(body["records"])
        assert len(body["records"]) <= 2
        if body["next"] is None:
            break
        assert body["next"] == body["records"][-1]["seq"], body
        after = body["next"]
        assert len(pages) < 50
    assert [r for p in pages for r in p] == mine
    assert len(pages) >= 3

    cp = _cli_ok(d.cli("--json", "audit", "list", "--actor", a["actor"], "--limit", "2", "--all"), "audit list --all")
    assert json.loads(cp.stdout) == {"records": mine, "next": None}
    cp = _cli_ok(d.cli("--json", "audit", "list", "--actor", a["actor"], "--limit", "2"), "audit list --limit 2")
    assert json.loads(cp.stdout)["records"] == mine[:2]
    cp = _cli_ok(d.cli("audit", "list", "--actor", a["actor"], "--limit", "2"), "audit list (table)")
    assert "--all" in cp.stderr
    cp = _cli_ok(d.cli("audit", "list", "--actor", a["actor"], "--all"), "audit list --all (table)")
    lines = cp.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "RESULT"], lines[0]
    assert len(lines) == 1 + len(mine)
    for line, rec in zip(lines[1:], mine):
        assert line.split() == [str(rec["seq"]), rec["time"], rec["actor"], rec["action"], rec["target"],
                                rec["result"]], line
    cp = _cli_ok(d.cli("audit", "list", "--actor", "token:nobody-" + secrets.token_hex(3)), "audit list (empty)")
    assert cp.stdout.strip() == "No audit records."


def _csv_rows(text):
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == CSV_HEADER, rows[0]
    return rows[1:]


def test_csv_export(activity):
    a, d = activity, activity["d"]
    mine = _records(d, actor=a["actor"])
    r = d.api("GET", "/audit", params={"actor": a["actor"], "format": "csv", "limit": 1000})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv"), r.headers
    rows = _csv_rows(r.text)
    assert len(rows) == len(mine)
    for row, rec in zip(rows, mine):
        f = dict(zip(CSV_HEADER, row))
        assert int(f["seq"]) == rec["seq"]
        for k in ("time", "actor", "sourceIp", "action", "target", "result", "hash"):
            assert f[k] == rec[k], (k, f, rec)
        if rec["details"] is None:
            assert f["details"] == ""
        elif isinstance(rec["details"], str):
            assert f["details"] == rec["details"]
        else:
            assert json.loads(f["details"]) == rec["details"]

    # The CLI writes the server's CSV; with --all, one header and every page.
    cp = _cli_ok(d.cli("audit", "list", "--actor", a["actor"], "--csv", "--limit", "2", "--all", text=False),
                 "audit list --csv")
    assert cp.stdout == r.content  # byte for byte (CRLF line ends kept)
    cp = _cli_ok(d.cli("audit", "list", "--actor", a["actor"], "--csv", "--limit", "2"), "audit list --csv (1 page)")
    assert _csv_rows(cp.stdout) == rows[:2]
    cp = d.cli("--json", "audit", "list", "--csv")
    assert cp.returncode == 2, (cp.returncode, cp.stderr)


# --------------------------------------------------------------- role gating
@pytest.mark.parametrize("role,allowed", [
    ("CA Auditors", True), ("Protocol Auditors", True), ("CA Administrators", True), ("Owners", True),
    ("Certificate Administrators", False), ("Protocol Operators", False)])
def test_role_gating(daemon, role, allowed):
    d = daemon
    name, tok = _token(d, [role], "rg")
    s = _session(tok)
    for path in ("/audit", "/audit/verify", "/audit/checkpoints", "/audit?format=csv"):
        r = s.get(d.api_url(path))
        if allowed:
            assert r.status_code == 200, (role, path, r.status_code, r.text[:300])
        else:
            expect_error(r, 403, code="forbidden")
    if not allowed:
        denied = _records(d, actor=f"token:{name}")
        assert len(denied) == 4 and all(r["action"] == "authz.denied" and r["result"] == "denied"
                                        and r["target"] == "audit.read" for r in denied), denied
    # The CLI reports a refusal as an API error (exit 1).
    cp = subprocess.run([str(conftest.PKIAAS), "--url", d.url, "--token", tok, "--partition", d.account,
                         "audit", "verify"], capture_output=True, text=True, timeout=60, env=conftest.clean_env())
    if allowed:
        assert cp.returncode == 0 and cp.stdout.startswith("audit chain OK"), (cp.returncode, cp.stdout, cp.stderr)
    else:
        assert cp.returncode == 1 and "(forbidden, HTTP 403)" in cp.stderr, (cp.returncode, cp.stderr)
    ok(d.api("DELETE", f"/tokens/{name}"))


# ------------------------------------------------------------ verify, checkpoints
def test_verify_ok(daemon):
    d = daemon
    v = _verify(d)
    assert v["ok"] is True and v["firstBadSeq"] is None and v["problem"] is None, v
    cp = _cli_ok(d.cli("audit", "verify"), "audit verify")
    first = cp.stdout.strip()
    assert first.startswith("audit chain OK: ") and first.endswith(" signed checkpoints"), first
    n = int(first.split()[3])
    assert n >= v["records"]
    cp = _cli_ok(d.cli("--json", "audit", "verify"), "audit verify --json")
    assert json.loads(cp.stdout)["ok"] is True


def test_checkpoints_verify_with_openssl(daemon, tmp_path):
    d = daemon
    out = tmp_path / "cps"
    cp = _cli_ok(d.cli("audit", "checkpoints", "-o", str(out)), "audit checkpoints -o")
    lines = cp.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "SIGNED", "AT", "HASH"], lines
    body = ok(d.api("GET", "/audit/checkpoints"))
    assert body["signatureAlgorithm"] == "ecdsa-with-SHA256"
    assert body["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    assert (out / "audit-key.pem").read_text() == body["publicKey"]
    cps = body["checkpoints"]
    assert cps, body
    head = _records(d, after=cps[-1]["seq"] - 1)
    assert len(head) == 1 and cps[-1]["hash"] == head[0]["hash"], (cps[-1], head)  # the head, just signed
    seqs = [c["seq"] for c in cps]
    assert seqs == sorted(seqs)
    written = sorted(p.name for p in out.iterdir())
    files = {f"checkpoint-{c['seq']}.{ext}" for c in cps[:-1] for ext in ("txt", "sig")}
    assert files <= set(written), (files, written)
    for c in cps[:-1]:  # the last one may be newer than the CLI's call
        txt, sig = out / f"checkpoint-{c['seq']}.txt", out / f"checkpoint-{c['seq']}.sig"
        assert txt.read_text() == c["signedText"]
        assert f"\nseq={c['seq']}\nhash={c['hash']}\n" in c["signedText"]
        assert c["signedText"].startswith(f"pkiaas-audit-checkpoint\npartition={d.account}\n")
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(out / "audit-key.pem"), "-signature",
                            str(sig), str(txt)], capture_output=True, text=True)
        assert r.returncode == 0 and "Verified OK" in r.stdout, (r.stdout, r.stderr)
    # A modified text does not verify.
    c = cps[0]
    txt, sig = out / f"checkpoint-{c['seq']}.txt", out / f"checkpoint-{c['seq']}.sig"
    txt.write_text(c["signedText"].replace(f"seq={c['seq']}\n", f"seq={c['seq'] + 1}\n"))
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(out / "audit-key.pem"), "-signature",
                        str(sig), str(txt)], capture_output=True, text=True)
    assert r.returncode != 0 and "Verified OK" not in r.stdout, (r.stdout, r.stderr)

    cp = _cli_ok(d.cli("--json", "audit", "checkpoints"), "audit checkpoints --json")
    assert set(json.loads(cp.stdout)) == {"checkpoints", "publicKey", "signatureAlgorithm"}


# ------------------------------------------------------------------ tampering
def test_tamper_update(fresh_daemon):
    d = fresh_daemon
    recs = _populate(d)
    victim = recs[2]
    _db_exec(d, "UPDATE audit SET target=? WHERE seq=?", "token:someone-else", victim["seq"])
    _assert_broken(d, victim["seq"], "do not match its hash")


def test_tamper_delete_middle(fresh_daemon):
    d = fresh_daemon
    recs = _populate(d)
    ok(d.api("GET", "/audit/checkpoints"))  # a signed checkpoint too: the gap is found first all the same
    _db_exec(d, "DELETE FROM audit WHERE seq=?", recs[2]["seq"])
    _assert_broken(d, recs[3]["seq"], "does not follow its predecessor")


@sqlite_only("forges and rewrites rows through Python's sqlite3 on the database file")
def test_tamper_forge_and_rewrite(fresh_daemon):
    d = fresh_daemon
    recs = _populate(d)
    ok(d.api("GET", "/audit/checkpoints"))  # signs the head
    cps = _db_checkpoints(d)
    assert cps[-1] == (recs[-1]["seq"], recs[-1]["hash"]), (cps, recs[-1])

    # A forged record appended after the last checkpoint, with a correct-looking chain link.
    rows = _db_rows(d)
    last = rows[-1]
    c = _db(d)
    seq = c.execute("SELECT max(seq) FROM audit").fetchone()[0] + 1
    c.close()
    forged = {"seq": seq, "partition_id": d.account, "at_ms": last["at_ms"] + 1, "actor": "token:bootstrap",
              "source_ip": "127.0.0.1", "action": "token.revoke", "target": "token:forged", "result": "success",
              "detail": None, "prev_hash": last["hash"]}
    forged["hash"] = record_hash(forged["prev_hash"], forged["partition_id"], forged["at_ms"], forged["actor"],
                                 forged["source_ip"], forged["action"], forged["target"], forged["result"], None)
    cols = list(forged)
    _db_exec(d, f"INSERT INTO audit({','.join(cols)}) VALUES({','.join('?' * len(cols))})",
             *[forged[k] for k in cols])
    # Beyond the last signed checkpoint the hash chain alone cannot tell (the limit of any unkeyed chain); this
    # also proves the recomputed hash matches the daemon's canonical form.
    v = _verify(d)
    assert v["ok"] is True and v["records"] == len(recs) + 1, v

    # Rewriting history consistently (an earlier record altered, every later hash recomputed) is caught by the
    # signed checkpoints.
    rows = _db_rows(d)
    idx = next(i for i, r in enumerate(rows) if r["action"] == "token.create")
    rows[idx]["target"] = "token:rewritten"
    _rewrite_chain(d, rows)
    first_cp = min(s for s, _ in cps if s >= rows[idx]["seq"])
    _assert_broken(d, first_cp, "differs from its signed checkpoint")

    # Moving the checkpoints along with the chain breaks their signatures.
    new_hash = {r["seq"]: r["hash"] for r in rows}
    with _db(d) as c:
        for s, _ in cps:
            c.execute("UPDATE audit_checkpoint SET hash=? WHERE partition_id=? AND seq=?", (new_hash[s], d.account, s))
    c.close()
    _assert_broken(d, first_cp, "signature does not verify")


@sqlite_only("rewrites rows and deletes checkpoints through Python's sqlite3 on the database file")
def test_checkpoint_over_unprotected_old_records_leaves_a_gap_record(fresh_daemon):
    """Records rewritten (hashes recomputed) and every checkpoint deleted: verification says records over an hour
    old are not covered. The next checkpoint used to be signed over that tail as if nothing had happened, after
    which verification passed: the rewrite was laundered by the daemon's own signature. Now the checkpoint first
    appends an audit.gap record naming the span, which its signature covers for good."""
    d = fresh_daemon
    _populate(d)
    ok(d.api("GET", "/audit/checkpoints"))
    rows = _db_rows(d)
    idx = next(i for i, r in enumerate(rows) if r["action"] == "token.create")
    rows[idx]["target"] = "token:rewritten"
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
    prev = GENESIS
    with _db(d) as c:
        for i, r in enumerate(rows):
            r["at_ms"] = two_hours_ago + i
            h = record_hash(prev, r["partition_id"], r["at_ms"], r["actor"], r["source_ip"], r["action"],
                            r["target"], r["result"], r["detail"])
            c.execute("UPDATE audit SET at_ms=?, target=?, prev_hash=?, hash=? WHERE seq=?",
                      (r["at_ms"], r["target"], prev, h, r["seq"]))
            prev = h
        c.execute("DELETE FROM audit_checkpoint WHERE partition_id=?", (d.account,))
    c.close()
    v = _verify(d)
    assert v["ok"] is False and "not covered by a signed checkpoint" in v["problem"], v

    ok(d.api("GET", "/audit/checkpoints"))  # the daemon signs the head again
    v = _verify(d)
    assert v["ok"] is True and v["gaps"] == 1, v
    gap = next(r for r in _records(d) if r["action"] == "audit.gap")
    assert v["firstGapSeq"] == gap["seq"], (v, gap)
    assert gap["actor"] == "system" and gap["target"] == f"audit:{rows[0]['seq']}-{rows[-1]['seq']}", gap
    details = gap["details"] if isinstance(gap["details"], dict) else json.loads(gap["details"])
    assert details["fromSeq"] == rows[0]["seq"] and details["toSeq"] == rows[-1]["seq"], gap
    cp = _cli_ok(d.cli("audit", "verify"), "audit verify")
    assert cp.stdout.startswith("audit chain OK: ") and "warning: 1 gap(s)" in cp.stderr, (cp.stdout, cp.stderr)
    # one gap record, not one per checkpoint
    ok(d.api("GET", "/audit/checkpoints"))
    assert _verify(d)["gaps"] == 1


@sqlite_only("reads the checkpoints through Python's sqlite3 on the database file")
def test_clean_stop_signs_a_final_checkpoint(fresh_daemon):
    """A restart over an hour after records that no checkpoint covered would report them as a gap: a clean stop
    signs what is there."""
    d = fresh_daemon
    _populate(d)
    head = _head_seq(d)
    assert d.stop() == 0
    assert _db_checkpoints(d)[-1][0] == head
    d.start()
    v = _verify(d)
    assert v["ok"] is True and v["gaps"] == 0, v


@sqlite_only("reads the checkpoints through Python's sqlite3 on the database file")
def test_tamper_truncate(fresh_daemon):
    d = fresh_daemon
    recs = _populate(d)
    ok(d.api("GET", "/audit/checkpoints"))  # signs the head
    head = recs[-1]["seq"]
    assert _db_checkpoints(d)[-1][0] == head
    _db_exec(d, "DELETE FROM audit WHERE partition_id=? AND seq>=?", d.account, recs[-2]["seq"])
    _assert_broken(d, head, "ends before a signed checkpoint")


@sqlite_only("cuts the log back through Python's sqlite3 on the database file")
def test_truncated_to_older_checkpoint_found_against_kept_copies(fresh_daemon, tmp_path):
    """A log cut back to an older checkpoint, the later checkpoints deleted with it, verifies on the server (nothing
    left in the database contradicts it); the checkpoints an auditor exported earlier do."""
    d = fresh_daemon
    kept = tmp_path / "kept"
    _populate(d)
    _cli_ok(d.cli("audit", "checkpoints", "-o", str(kept)), "audit checkpoints -o")
    older = _db_checkpoints(d)[-1]
    _populate(d)
    _cli_ok(d.cli("audit", "checkpoints", "-o", str(kept)), "audit checkpoints -o (again)")
    newer = _db_checkpoints(d)[-1]
    assert newer[0] > older[0]
    cp = _cli_ok(d.cli("audit", "verify", "--against", str(kept)), "audit verify --against (intact)")
    lines = cp.stdout.splitlines()
    assert lines[0].startswith("audit chain OK: "), cp.stdout
    n_kept = len(list(kept.glob("checkpoint-*.txt")))
    assert n_kept >= 2
    assert lines[1] == f"all {n_kept} checkpoints kept in the directory are still in the log", cp.stdout

    _db_exec(d, "DELETE FROM audit WHERE partition_id=? AND seq>?", d.account, older[0])
    _db_exec(d, "DELETE FROM audit_checkpoint WHERE partition_id=? AND seq>?", d.account, older[0])
    v = _verify(d)
    assert v["ok"] is True, v  # the server alone cannot tell
    cp = d.cli("audit", "verify", "--against", str(kept))
    assert cp.returncode == EXIT_BROKEN, (cp.returncode, cp.stdout, cp.stderr)
    assert cp.stdout.startswith(f"audit chain BROKEN at record {newer[0]}: a checkpoint kept outside the server "
                                "is no longer in its log"), cp.stdout
    cp = d.cli("--json", "audit", "verify", "--against", str(kept))
    assert cp.returncode == EXIT_BROKEN, (cp.returncode, cp.stdout, cp.stderr)
    body = json.loads(cp.stdout)
    assert body["ok"] is False and body["firstBadSeq"] == newer[0], body

    # A kept checkpoint that was altered locally is an error of its own, not a verdict on the server.
    txt = kept / f"checkpoint-{older[0]}.txt"
    txt.write_text(txt.read_text().replace("at_ms=", "at_ms=1"))
    cp = d.cli("audit", "verify", "--against", str(kept))
    assert cp.returncode == 1 and "does not verify with" in cp.stderr, (cp.returncode, cp.stdout, cp.stderr)


@sqlite_only("swaps the stored public key through Python's sqlite3 on the database file")
def test_stored_public_key_is_not_trusted(fresh_daemon, tmp_path):
    """Checkpoints are checked with the sealed key: a public key swapped in beside the log is reported, and the
    server keeps publishing the sealed key's public half."""
    d = fresh_daemon
    _populate(d)
    before = ok(d.api("GET", "/audit/checkpoints"))
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    _db_exec(d, "UPDATE audit_key SET public_der=? WHERE partition_id=?", other, d.account)
    first_cp = _db_checkpoints(d)[0][0]
    _assert_broken(d, first_cp, "public key stored beside the log is not the sealed key's")
    after = ok(d.api("GET", "/audit/checkpoints"))
    assert after["publicKey"] == before["publicKey"]
    pub = serialization.load_pem_public_key(after["publicKey"].encode())
    c = after["checkpoints"][-1]
    pub.verify(base64.b64decode(c["signature"]), c["signedText"].encode(), ec.ECDSA(hashes.SHA256()))


def test_no_checkpoint_over_a_broken_tail(fresh_daemon):
    """A record altered after the last checkpoint is never signed over: the request for a fresh checkpoint is
    refused with 409 naming the record, and no checkpoint is added."""
    d = fresh_daemon
    recs = _populate(d)
    ok(d.api("GET", "/audit/checkpoints"))
    n_before = len(ok(d.api("GET", "/audit/checkpoints"))["checkpoints"])
    ok(d.api("POST", "/tokens", json={"name": _name("tail"), "roles": ["CA Auditors"]}), 201)
    victim = _records(d)[-1]
    assert victim["seq"] > recs[-1]["seq"]
    _db_exec(d, "UPDATE audit SET target=? WHERE seq=?", "token:someone-else", victim["seq"])
    r = d.api("GET", "/audit/checkpoints")
    expect_error(r, 409, mention=f"broken at record {victim['seq']}", code="conflict")
    _assert_broken(d, victim["seq"], "do not match its hash")
    _db_exec(d, "UPDATE audit SET target=? WHERE seq=?", victim["target"], victim["seq"])
    assert len(ok(d.api("GET", "/audit/checkpoints"))["checkpoints"]) == n_before + 1


# ------------------------------------------------------------------ token CLI
def test_token_cli(daemon):
    d = daemon
    name = _name("cli")
    cp = _cli_ok(d.cli("token", "create", "--name", name, "--role", "CA Auditors", "--role", "Protocol Auditors"),
                 "token create")
    tok = cp.stdout.strip()
    assert cp.stdout == tok + "\n" and tok.startswith("pk_"), cp.stdout
    assert "warning" in cp.stderr and tok not in cp.stderr, cp.stderr
    s = _session(tok)
    assert s.get(d.api_url("/audit/verify")).status_code == 200
    expect_error(s.get(d.api_url("/tokens")), 403, code="forbidden")

    cp = _cli_ok(d.cli("token", "list"), "token list")
    assert cp.stdout.splitlines()[0].split() == ["NAME", "ROLES", "CREATED", "REVOKED"]
    line = next(l for l in cp.stdout.splitlines() if l.startswith(name + " "))
    assert "CA Auditors, Protocol Auditors" in line and tok not in cp.stdout, line
    cp = _cli_ok(d.cli("--json", "token", "list"), "token list --json")
    listed = {t["name"]: t for t in json.loads(cp.stdout)["tokens"]}
    assert listed[name]["roles"] == ["CA Auditors", "Protocol Auditors"] and listed[name]["revokedAt"] is None

    rec = _records(d, action="token.create", actor="token:bootstrap")[-1]
    assert rec["target"] == f"token:{name}" and rec["sourceIp"] == "127.0.0.1", rec

    cp = _cli_ok(d.cli("token", "revoke", name), "token revoke")
    assert name in cp.stdout
    expect_error(s.get(d.api_url("/audit")), 401)
    cp = d.cli("token", "revoke", name)
    assert cp.returncode == 1 and "HTTP 404" in cp.stderr, (cp.returncode, cp.stderr)
    rec = _records(d, action="token.revoke", actor="token:bootstrap")[-1]
    assert rec["target"] == f"token:{name}", rec

    # usage errors
    for args in (("token", "create", "--name", _name("x")), ("token", "create", "--role", "Owners"),
                 ("token", "revoke"), ("audit", "list", "--limit", "0"), ("audit", "verify", "extra"),
                 ("audit", "frob"), ("audit",)):
        cp = d.cli(*args)
        assert cp.returncode == 2, (args, cp.returncode, cp.stderr)
    cp = d.cli("token", "create", "--name", _name("bad"), "--role", "Kings")
    assert cp.returncode == 1 and "(invalid_field, HTTP 400)" in cp.stderr, (cp.returncode, cp.stderr)


@sqlite_only("cuts the log back through sqlite3")
def test_routine_export_keeps_the_evidence_of_a_cut_back(fresh_daemon, tmp_path):
    """`audit checkpoints -o DIR`, run regularly, never overwrites what an earlier run kept: after the log was
    cut back and grew again to the same sequence number, the export refuses (exit 4) and leaves the kept
    checkpoint as it was, so `audit verify --against DIR` still reports the rewrite."""
    d = fresh_daemon
    kept = tmp_path / "kept"
    _populate(d)
    assert d.cli("audit", "checkpoints", "-o", str(kept)).returncode == 0
    older = _db_checkpoints(d)[-1]
    _populate(d)
    cp = d.cli("audit", "checkpoints", "-o", str(kept))
    assert cp.returncode == 0, cp.stderr
    newer = _db_checkpoints(d)[-1]
    kept_txt = (kept / f"checkpoint-{newer[0]}.txt").read_bytes()
    # an export with nothing new changes nothing and succeeds
    assert d.cli("audit", "checkpoints", "-o", str(kept)).returncode == 0
    # someone with database access cuts the log back to the older checkpoint; new activity grows it back
    db_exec(d, "DELETE FROM audit WHERE partition_id=? AND seq>?", d.account, older[0])
    db_exec(d, "DELETE FROM audit_checkpoint WHERE partition_id=? AND seq>?", d.account, older[0])
    while _head_seq(d) < newer[0]:
        r = d.api("POST", "/tokens", json={"name": f"x-{secrets.token_hex(4)}", "roles": ["CA Auditors"]})
        assert r.status_code == 201, r.text
    cp = d.cli("audit", "checkpoints", "-o", str(kept))
    assert cp.returncode == 4, (cp.returncode, cp.stdout, cp.stderr)
    assert f"checkpoint {newer[0]}" in cp.stderr and "rewritten" in cp.stderr, cp.stderr
    assert (kept / f"checkpoint-{newer[0]}.txt").read_bytes() == kept_txt
    cp = d.cli("audit", "verify", "--against", str(kept))
    assert cp.returncode == 4, (cp.returncode, cp.stdout, cp.stderr)
