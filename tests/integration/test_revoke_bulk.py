"""`pkiaas cert revoke-bulk`: batch revocation through POST .../certificates/revoke-batch.

Issues ~1,700 certificates (one CSR reused, 4 client threads), then checks the summary counts,
the CSV report, the published CRL, resuming after Ctrl-C, and the --profile / --subject selectors."""
import json
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import conftest
from helpers import uid
from status_helpers import PROFILE, crl_serials, fetch_crl, make_root, make_sub, ok

_KEY = ec.generate_private_key(ec.SECP256R1())


def csr_pem(cn):
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


def issue_many(d, ca_id, n, profile=PROFILE, cn="bulk.example.com", threads=4):
    """Issues n certificates from one CSR; returns their serials (lowercase hex, in no order)."""
    body = {"profileId": profile, "csr": csr_pem(cn), "subjectAltNames": [{"type": "dNSName", "value": cn}]}
    url = d.api_url(f"/cas/{ca_id}/certificates")
    local = threading.local()

    def one(_):
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
            s.trust_env = False
            s.headers["Authorization"] = f"Bearer {d.token}"
        r = s.post(url, json=body, timeout=60)
        assert r.status_code == 201, f"issue -> {r.status_code}: {r.text[:300]}"
        return r.json()["serialNumber"]

    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(one, range(n)))


def statuses(d, ca_id):
    """serial -> status for every certificate of the CA."""
    out, cursor = {}, None
    while True:
        params = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        body = ok(d.api("GET", f"/cas/{ca_id}/certificates", params=params))
        out.update({c["serialNumber"]: c["status"] for c in body["certificates"]})
        cursor = body["nextCursor"]
        if not cursor:
            return out


def bulk(d, *args, **kw):
    return d.cli("cert", "revoke-bulk", *args, **kw)


def read_report(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "serial,result", lines[:2]
    rows = [tuple(line.split(",")) for line in lines[1:]]
    assert all(len(r) == 2 for r in rows), rows[:5]
    return rows


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("revoke-bulk")


@pytest.fixture(scope="module")
def root(daemon, tmp):
    return make_root(daemon, tmp, "bkroot")


def test_serial_file_report_and_crl(daemon, root, tmp):
    d = daemon
    sub = make_sub(d, tmp, root, "bksub", ocsp_=False)
    serials = issue_many(d, sub.id, 1200)
    assert len(set(serials)) == 1200
    fresh, rest = serials[:1000], serials[1000:]
    pre = rest[:2]  # revoked before the bulk run
    for s in pre:
        ok(d.api("POST", f"/cas/{sub.id}/certificates/{s}/revoke", json={"reason": "keyCompromise"}))
    unknown = ["7f" + "ab" * 15, "1234" * 8, "0badc0ffee"]

    # Written forms: a few zero-padded / upper-case / odd-length; the report echoes them as given.
    forms = {s: s for s in fresh}
    forms[fresh[0]] = "00" + fresh[0].upper()
    forms[fresh[1]] = "0000" + fresh[1]
    forms[fresh[2]] = "0" + fresh[2].upper()          # odd length: the client normalises it
    forms[fresh[3]] = ":".join(fresh[3][i:i + 2] for i in range(0, 32, 2)).upper()  # openssl style
    forms[pre[0]] = "00" + pre[0].upper()
    forms[pre[1]] = pre[1]
    lines = ["# serials to revoke (superseded)", ""]
    lines += [forms[s] for s in fresh[:500]] + ["   ", "# second half"] + [forms[s] for s in fresh[500:]]
    lines += [forms[s] for s in pre] + unknown + [""]
    f = tmp / "serials.txt"
    f.write_text("\n".join(lines))
    report = tmp / "r.csv"

    # Not a terminal and no --yes: refused before anything is revoked.
    cp = bulk(d, "--ca", sub.id, "--serials", str(f), "--reason", "superseded")
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert "--yes" in cp.stderr

    t0 = time.monotonic()
    cp = bulk(d, "--ca", sub.id, "--serials", str(f), "--reason", "superseded", "--publish-now",
              "--report", str(report), "--batch", "300", "--yes")
    elapsed = time.monotonic() - t0
    assert cp.returncode == 0, f"exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
    assert cp.stdout.strip() == "revoked 1000, already revoked 2, not found 3, failed 0", cp.stdout
    assert elapsed < 20, f"1,005 serials took {elapsed:.1f}s"

    rows = read_report(report)
    assert len(rows) == 1005
    want = {forms[s]: "revoked" for s in fresh}
    want.update({forms[s]: "already_revoked" for s in pre})
    want.update({s: "not_found" for s in unknown})
    assert dict(rows) == want
    assert len({r[0] for r in rows}) == 1005  # each serial once

    # The CRL, published once at the end, lists exactly the revoked certificates.
    _, crl = fetch_crl(d, sub.id)
    assert crl_serials(crl) == {int(s, 16) for s in fresh + pre}
    reasons = {e.serial_number: e.extensions.get_extension_for_class(x509.CRLReason).value.reason
               for e in crl if int(format(e.serial_number, "x"), 16) in {int(s, 16) for s in fresh[:5]}}
    assert set(reasons.values()) == {x509.ReasonFlags.superseded}
    st = statuses(d, sub.id)
    assert sum(1 for v in st.values() if v == "revoked") == 1002
    assert all(st[s] == "issued" for s in rest[2:])

    # --json summary; a state file says the job is complete, so nothing is sent again.
    cp = bulk(d, "--json", "--ca", sub.id, "--serials", str(f), "--reason", "superseded", "--report",
              str(report), "--yes")
    assert cp.returncode == 0, cp.stderr
    assert "resuming after 1005 serials" in cp.stderr
    summary = json.loads(cp.stdout)
    assert (summary["revoked"], summary["alreadyRevoked"], summary["notFound"], summary["failed"]) == (1000, 2, 3, 0)
    assert len(read_report(report)) == 1005

    # A different list with the same state file is refused.
    g = tmp / "other.txt"
    g.write_text("\n".join(rest[2:4]) + "\n")
    cp = bulk(d, "--ca", sub.id, "--serials", str(g), "--reason", "superseded", "--report", str(report),
              "--yes")
    assert cp.returncode == 2 and "another selection" in cp.stderr, (cp.returncode, cp.stderr)

    # Bad input lines are reported with their line number; nothing is revoked.
    g.write_text(rest[2] + "\nnot-hex\n")
    cp = bulk(d, "--ca", sub.id, "--serials", str(g), "--reason", "superseded", "--yes")
    assert cp.returncode == 1 and ":2:" in cp.stderr, (cp.returncode, cp.stderr)
    assert statuses(d, sub.id)[rest[2]] == "issued"


def test_interrupt_and_resume(daemon, root, tmp):
    d = daemon
    sub = make_sub(d, tmp, root, "bkres", ocsp_=False)
    serials = issue_many(d, sub.id, 400)
    f = tmp / "resume.txt"
    f.write_text("\n".join(serials) + "\n")
    report = tmp / "resume.csv"
    state = tmp / "resume.state"
    args = ["--ca", sub.id, "--serials", str(f), "--reason", "cessationOfOperation", "--batch", "1",
            "--report", str(report), "--state", str(state), "--publish-now", "--yes"]
    cmd = [str(conftest.PKIAAS), "--url", d.url, "--token", d.token, "--partition", d.account,
           "cert", "revoke-bulk", *args]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=conftest.clean_env())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and p.poll() is None:
        if report.exists() and report.read_text().count("\n") >= 101:
            p.send_signal(signal.SIGINT)
            break
        time.sleep(0.005)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, f"exit {p.returncode} (not interrupted?)\n{out}\n{err}"
    assert "interrupted after" in err
    saved = json.loads(state.read_text())
    done = saved["processed"]
    assert 100 <= done < 400 and saved["batchesCompleted"] == done
    assert len(read_report(report)) == done
    assert saved["summary"]["revoked"] == done
    st = statuses(d, sub.id)
    assert sum(1 for v in st.values() if v == "revoked") == done  # state consistent with the server

    # Simulate a crash after the report was written but before the state was: the extra row goes.
    with open(report, "a") as fh:
        fh.write(f"{serials[done]},revoked\n")

    cp = bulk(d, *args[:-6], "--batch", "150", *args[-6:])  # another batch size resumes too
    assert cp.returncode == 0, f"exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
    assert f"resuming after {done} serials" in cp.stderr
    assert cp.stdout.strip() == "revoked 400, already revoked 0, not found 0, failed 0", cp.stdout
    rows = read_report(report)
    assert [r[0] for r in rows] == serials and {r[1] for r in rows} == {"revoked"}
    assert json.loads(state.read_text())["complete"] is True
    _, crl = fetch_crl(d, sub.id)
    assert crl_serials(crl) == {int(s, 16) for s in serials}


def test_profile_and_subject_selection(daemon, root, tmp):
    d = daemon
    prof = f"bulk-{uid('p')[2:]}"
    ok(d.api("POST", "/profiles", json={"id": prof, "sourceProfileId": PROFILE}), 201)
    sub = make_sub(d, tmp, root, "bkprof", ocsp_=False, profiles=(PROFILE, prof))
    plain = issue_many(d, sub.id, 30, cn="plain.example.com")
    custom = issue_many(d, sub.id, 20, profile=prof, cn="custom.example.com")
    named = issue_many(d, sub.id, 5, cn="who.example.com")
    similar = issue_many(d, sub.id, 5, cn="who.example.com.other")  # matches the search text, not the DN

    cp = bulk(d, "--json", "--ca", sub.id, "--profile", prof, "--reason", "keyCompromise", "--yes")
    assert cp.returncode == 0, f"exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
    s = json.loads(cp.stdout)
    assert (s["selected"], s["revoked"], s["alreadyRevoked"], s["notFound"], s["failed"]) == (20, 20, 0, 0, 0)
    st = statuses(d, sub.id)
    assert all(st[x] == "revoked" for x in custom)
    assert all(st[x] == "issued" for x in plain + named + similar)

    # --subject: exact DN (spacing / attribute case do not matter); suspended certificates count too.
    ok(d.api("POST", f"/cas/{sub.id}/certificates/{named[0]}/suspend"))
    cp = bulk(d, "--ca", sub.id, "--subject", "cn = who.example.com", "--reason", "affiliationChanged", "--yes")
    assert cp.returncode == 0, f"exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
    assert cp.stdout.strip() == "revoked 5, already revoked 0, not found 0, failed 0"
    st = statuses(d, sub.id)
    assert all(st[x] == "revoked" for x in named)
    assert all(st[x] == "issued" for x in plain + similar)

    # --issued-before a past date selects nothing; intersection of a file with --profile.
    cp = bulk(d, "--ca", sub.id, "--issued-before", "2001-01-01", "--reason", "superseded", "--yes")
    assert cp.returncode == 0 and cp.stdout.strip() == "revoked 0, already revoked 0, not found 0, failed 0"
    f = tmp / "mixed.txt"
    f.write_text("\n".join(plain[:3] + similar[:2]) + "\n")
    cp = bulk(d, "--ca", sub.id, "--serials", str(f), "--subject", "CN=who.example.com.other",
              "--reason", "superseded", "--yes")
    assert cp.returncode == 0 and cp.stdout.strip() == "revoked 2, already revoked 0, not found 0, failed 0", (
        cp.stdout, cp.stderr)
    st = statuses(d, sub.id)
    assert [st[x] for x in plain[:3]] == ["issued"] * 3 and [st[x] for x in similar[:2]] == ["revoked"] * 2

    # --serials - reads stdin.
    cp = bulk(d, "--ca", sub.id, "--serials", "-", "--reason", "superseded", "--yes",
              input="# from stdin\n" + "\n".join(x.upper() for x in plain[3:5]) + "\n")
    assert cp.returncode == 0 and cp.stdout.strip() == "revoked 2, already revoked 0, not found 0, failed 0", (
        cp.stdout, cp.stderr)
    assert [statuses(d, sub.id)[x] for x in plain[3:5]] == ["revoked"] * 2
