"""The `pkiaas` command-line client against a running daemon."""
import hashlib
import json

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import free_port
from helpers import download_der, list_cas, split_pem_bundle


def _ok(cp, what):
    assert cp.returncode == 0, f"{what}: exit {cp.returncode}\nstdout: {cp.stdout}\nstderr: {cp.stderr}"
    return cp


def test_cli(daemon, tmp_path):
    d = daemon
    token = d.token

    cp = _ok(d.cli("--json", "ca", "list"), "ca list")
    listed = json.loads(cp.stdout)
    assert isinstance(listed.get("cas"), list)
    assert {c["id"] for c in listed["cas"]} == set(list_cas(d))

    cp = _ok(d.cli("--json", "ca", "create", "--id", "cli-root", "--type", "root", "--key", "ECDSAP256+SHA256",
                   "--subject", "CN=cli"), "ca create")
    created = json.loads(cp.stdout)
    assert created["id"] == "cli-root" and created["status"] == "active" and created["type"] == "root"
    assert created["signingKeyDetails"] == "ECDSAP256+SHA256"

    cp = _ok(d.cli("--json", "ca", "show", "cli-root"), "ca show")
    shown = json.loads(cp.stdout)
    assert shown["id"] == "cli-root"
    assert shown["sha256Fingerprint"] == created["sha256Fingerprint"]
    # Human output names the fields.
    cp = _ok(d.cli("ca", "show", "cli-root"), "ca show (human)")
    assert "cli-root" in cp.stdout and created["sha256Fingerprint"] in cp.stdout.replace(":", "").lower()

    cp = _ok(d.cli("ca", "download", "cli-root", "--format", "pem", text=False), "ca download pem")
    cert = x509.load_pem_x509_certificate(cp.stdout)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert hashlib.sha256(der).hexdigest() == created["sha256Fingerprint"]
    assert der == download_der(d, "cli-root")
    assert cert.subject.rfc4514_string() == "CN=cli"
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)

    out = tmp_path / "cli-root.cer"
    _ok(d.cli("ca", "download", "cli-root", "--format", "der", "-o", str(out)), "ca download der -o")
    assert out.read_bytes() == der

    # A child made through the CLI, with flags.
    cp = _ok(d.cli("--json", "ca", "create", "--id", "cli-sub", "--type", "subord", "--parent", "cli-root",
                   "--key", "ECDSAP384+SHA384", "--subject", "CN=cli sub,O=CLI", "--crl", "--ocsp",
                   "--name", "CLI Sub"), "ca create subord")
    sub = json.loads(cp.stdout)
    assert sub["parentId"] == "cli-root" and sub["crlEnabled"] is True and sub["ocspEnabled"] is True
    assert sub["friendlyName"] == "CLI Sub"
    cp = _ok(d.cli("ca", "download", "cli-sub", "--chain", text=False), "ca download --chain")
    chain = split_pem_bundle(cp.stdout)
    assert chain == [download_der(d, "cli-sub"), der]

    # Environment variables instead of flags; the token never shows in output.
    cp = _ok(d.cli("ca", "list", with_creds=False,
                   env_extra={"PKIAAS_URL": d.url, "PKIAAS_TOKEN": token, "PKIAAS_PARTITION": d.account}),
             "ca list via env")
    assert "cli-root" in cp.stdout and "cli-sub" in cp.stdout
    for col in ("ID", "TYPE", "STATUS", "PARENT", "SUBJECT", "EXPIRY"):
        assert col in cp.stdout, col
    assert token not in cp.stdout + cp.stderr

    cp = _ok(d.cli("--json", "ca", "delete", "cli-root", "--yes"), "ca delete")
    deleted = json.loads(cp.stdout)
    assert deleted["id"] == "cli-root" and deleted["status"] == "deleted"
    assert "cli-sub" in deleted["affected"]
    everything = list_cas(d, include_deleted=True)
    assert everything["cli-root"]["status"] == "deleted"
    assert everything["cli-sub"]["status"] == "deleted"

    # Errors.
    cp = d.cli("ca", "show", "nope")
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert cp.stderr.startswith("error:"), cp.stderr
    assert "404" in cp.stderr, cp.stderr
    assert token not in cp.stdout + cp.stderr

    cp = d.cli("ca", "show", "nope", with_creds=False,
               env_extra={"PKIAAS_URL": d.url, "PKIAAS_TOKEN": "pk_wrong", "PKIAAS_PARTITION": d.account})
    assert cp.returncode == 1 and cp.stderr.startswith("error:") and "401" in cp.stderr, cp.stderr

    cp = d.cli("ca", "frobnicate")
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    cp = d.cli("ca", "create", "--id", "x1", "--type", "root", "--bogus-flag")
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert "x1" not in list_cas(d, include_deleted=True)

    cp = d.cli("ca", "list", with_creds=False,
               env_extra={"PKIAAS_URL": f"http://127.0.0.1:{free_port()}", "PKIAAS_TOKEN": token,
                          "PKIAAS_PARTITION": d.account})
    assert cp.returncode == 3, (cp.returncode, cp.stderr)

    # Deleting without --yes and without a terminal is refused, and deletes nothing.
    _ok(d.cli("ca", "create", "--id", "cli-keep", "--type", "root", "--key", "ECDSAP256+SHA256",
              "--subject", "CN=keep"), "ca create cli-keep")
    cp = d.cli("ca", "delete", "cli-keep")
    assert cp.returncode != 0
    assert list_cas(d)["cli-keep"]["status"] == "active"


def test_cli_https(daemon):
    d = daemon
    base = ["--token", d.token, "--partition", d.account, "--json"]
    cp = d.cli("--url", d.https_url, "--cacert", str(d.service_ca), *base, "key-details", with_creds=False)
    assert cp.returncode == 0, cp.stderr
    assert any(k["label"] == "ECDSAP256+SHA256" for k in json.loads(cp.stdout)["signingKeyDetails"])
    # Without the service CA the TLS handshake fails: "server unreachable".
    cp = d.cli("--url", d.https_url, *base, "key-details", with_creds=False)
    assert cp.returncode == 3, (cp.returncode, cp.stderr)


def test_cli_protocols(daemon, tmp_path):
    """`pkiaas protocol ...`: create an ACME configuration from a JSON file,
    list and show it, make an EAB key (shown once) and delete it all."""
    d = daemon
    _ok(d.cli("ca", "create", "--id", "clip-root", "--type", "root", "--key", "ECDSAP256+SHA256",
              "--subject", "CN=CLI Protocols Root"), "ca create root")
    _ok(d.cli("ca", "create", "--id", "clip-sub", "--type", "subord", "--parent", "clip-root", "--key",
              "ECDSAP256+SHA256", "--subject", "CN=CLI Protocols Sub", "--profiles", "privatessl-tls-server"),
        "ca create sub")
    f = tmp_path / "acme.json"
    f.write_text(json.dumps({"id": "cli-acme", "type": "acme", "caId": "clip-sub",
                             "profileId": "privatessl-tls-server", "allowedDomains": ["example.test"]}))
    created = json.loads(_ok(d.cli("--json", "protocol", "create", "--json-file", str(f)), "protocol create").stdout)
    assert created["directoryUrl"].endswith(f"/acme/{d.account}/cli-acme/directory")
    listed = json.loads(_ok(d.cli("--json", "protocol", "list"), "protocol list").stdout)
    assert "cli-acme" in {p["id"] for p in listed["protocols"]}
    shown = json.loads(_ok(d.cli("--json", "protocol", "show", "cli-acme"), "protocol show").stdout)
    assert shown["allowedDomains"] == ["example.test"]
    key = json.loads(_ok(d.cli("--json", "protocol", "eab-key", "cli-acme", "--name", "from-cli"), "eab-key").stdout)
    assert key["keyId"] and key["hmacKey"] and key["name"] == "from-cli"
    r = d.api("GET", "/protocols/cli-acme/eab-keys")
    assert key["keyId"] in {k["keyId"] for k in r.json()["eabKeys"]} and key["hmacKey"] not in r.text
    cp = d.cli("protocol", "create")
    assert cp.returncode == 2 and "--json-file" in cp.stderr
    cp = d.cli("protocol", "show", "nosuch")
    assert cp.returncode == 1
    _ok(d.cli("protocol", "delete", "cli-acme"), "protocol delete")
    assert d.api("GET", "/protocols/cli-acme").status_code == 404


def test_p12_outputs_are_staged_before_issuing(daemon, tmp_path):
    """`cert issue --p12`: an -o in a directory that cannot be written is found before the server generates
    and issues anything (the key exists only in the answer); -o and --chain-out naming one file is refused;
    a symlink at -o is replaced, its target left alone; the PKCS#12 file is owner-only."""
    import os
    from cryptography.hazmat.primitives.serialization import pkcs12
    from helpers import create_ca, uid
    d = daemon
    root, sub = uid("stg-root"), uid("stg-sub")
    create_ca(d, id=root, type="root", signingKeyDetails="ECDSAP256+SHA256", subject=f"CN={root}")
    create_ca(d, id=sub, type="subord", parentId=root, signingKeyDetails="ECDSAP256+SHA256", subject=f"CN={sub}",
              enableOcsp=False, enableCrl=False, profiles=["privatessl-p12-tls-server"])
    pw = tmp_path / "pw"
    pw.write_text("password123\n")

    def issue(*extra):
        return d.cli("cert", "issue", sub, "--profile", "privatessl-p12-tls-server", "--p12", "--key-type",
                     "EC-P256", "--subject", "CN=app.example.com", "--p12-password-file", str(pw), *extra)

    def issued():
        return d.api("GET", f"/cas/{sub}/certificates").json()["certificates"]

    cp = issue("-o", str(tmp_path / "no-such-dir" / "app.p12"))
    assert cp.returncode == 1 and "no-such-dir" in cp.stderr, cp.stderr
    out = tmp_path / "app.p12"
    cp = issue("-o", str(out), "--chain-out", str(out))
    assert cp.returncode == 2 and "same file" in cp.stderr, cp.stderr
    assert issued() == [], "a certificate was issued although its output could not be kept"
    victim = tmp_path / "victim.conf"
    victim.write_text("important\n")
    out.symlink_to(victim)
    cp = issue("-o", str(out), "--chain-out", str(tmp_path / "chain.pem"))
    assert cp.returncode == 0, cp.stderr
    assert victim.read_text() == "important\n" and not out.is_symlink()
    assert (out.stat().st_mode & 0o777) == 0o600
    key, cert, _ = pkcs12.load_key_and_certificates(out.read_bytes(), b"password123")
    assert key is not None and len(issued()) == 1
    assert b"BEGIN CERTIFICATE" in (tmp_path / "chain.pem").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.p12", "chain.pem", "pw", "victim.conf"]


def test_command_groups_ask_for_a_subcommand():
    import subprocess
    from conftest import PKIAAS, clean_env
    for words, want in ((["protocol"], "'protocol' needs a subcommand"), (["ca"], "'ca' needs a subcommand"),
                        (["protocol", "bogus"], "unknown command 'protocol bogus'"),
                        (["bogus"], "unknown command 'bogus'")):
        cp = subprocess.run([str(PKIAAS), *words], capture_output=True, text=True, timeout=30, env=clean_env())
        assert cp.returncode == 2 and want in cp.stderr, (words, cp.stderr)
