"""ACME with real clients someone else wrote: certbot (the seed's command),
lego (http-01, tls-alpn-01, dns-01 through pebble-challtestsrv) and uacme
(http-01 through a hook script). Every issued certificate is parsed with
python3-cryptography and checked against the CA's records."""
import os
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from conftest import clean_env
from helpers import uid
from test_acme import acme, load_chain  # noqa: F401  (module fixture)

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("certbot", "lego", "uacme",
                                                                   "pebble-challtestsrv")),
                                reason="ACME clients not installed (scripts/deps.sh installs them)")


@pytest.fixture
def port_free(acme):
    """certbot and lego answer http-01 on the validation port themselves."""
    acme.web.close()
    yield
    acme.web.open()


def sans_of(pem):
    leaf = load_chain(pem)[0]
    return leaf, sorted(leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
                        .get_values_for_type(x509.DNSName))


def run(cmd, env=None, timeout=180, cwd=None):
    e = clean_env()
    e.update(env or {})
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd)
    assert cp.returncode == 0, f"{cmd[0]} failed ({cp.returncode}):\n{cp.stdout[-3000:]}\n{cp.stderr[-3000:]}"
    return cp


def listed(acme, leaf):
    serial = format(leaf.serial_number, "x")
    r = acme.d.api("GET", "/cas/acme-issuing/certificates", params={"serial": serial})
    items = r.json()["certificates"]
    assert items, f"serial {serial} not in the CA's certificate list"
    return items[0]


def test_certbot_issue_renew_revoke(acme, tmp_path, port_free):
    name = f"{uid('cb')}.example.test"
    dirs = ["--config-dir", str(tmp_path / "etc"), "--work-dir", str(tmp_path / "work"), "--logs-dir",
            str(tmp_path / "logs")]
    env = {"REQUESTS_CA_BUNDLE": str(acme.d.service_ca)}
    # the seed's command, plus the test port and private directories
    run(["certbot", "certonly", "-d", name, "--server", acme.cfg["directoryUrl"], "--standalone",
         "--no-eff-email", "--agree-tos", "-m", "admin@example.test", "--eab-kid", acme.eab["keyId"],
         "--eab-hmac-key", acme.eab["hmacKey"], "--http-01-port", str(acme.http01), "--http-01-address",
         "127.0.0.1", "--non-interactive"] + dirs, env)
    live = tmp_path / "etc" / "live" / name
    pem = (live / "fullchain.pem").read_bytes()
    leaf, names = sans_of(pem)
    assert names == [name]
    assert listed(acme, leaf)["requester"].startswith("acme:acme1/")
    run(["certbot", "renew", "--force-renewal", "--non-interactive", "--no-random-sleep-on-renew", "--http-01-port", str(acme.http01),
         "--http-01-address", "127.0.0.1"] + dirs, env)
    leaf2, names2 = sans_of((live / "fullchain.pem").read_bytes())
    assert names2 == [name] and leaf2.serial_number != leaf.serial_number
    run(["certbot", "revoke", "--cert-path", str(live / "cert.pem"), "--server", acme.cfg["directoryUrl"],
         "--reason", "keycompromise", "--non-interactive", "--no-delete-after-revoke"] + dirs, env)
    item = listed(acme, leaf2)
    assert item["status"] == "revoked"
    r = acme.d.api("GET", f"/cas/acme-issuing/certificates/{item['serialNumber']}")
    assert r.json()["revocationReason"] == "keyCompromise"


def lego(acme, tmp_path, name, *challenge, env=None):
    cmd = ["lego", "--server", acme.cfg["directoryUrl"], "--email", "ops@example.test", "--accept-tos", "--eab",
           "--kid", acme.eab["keyId"], "--hmac", acme.eab["hmacKey"], "--domains", name, "--path",
           str(tmp_path / "lego"), "--key-type", "ec256"] + list(challenge) + ["run"]
    e = {"LEGO_CA_CERTIFICATES": str(acme.d.service_ca)}
    e.update(env or {})
    run(cmd, e)
    pem = (tmp_path / "lego" / "certificates" / f"{name.replace('*', '_')}.crt").read_bytes()
    leaf, names = sans_of(pem)
    assert names == [name]
    listed(acme, leaf)
    return leaf


def test_lego_http01(acme, tmp_path, port_free):
    lego(acme, tmp_path, f"{uid('lh')}.example.test", "--http", "--http.port", f"127.0.0.1:{acme.http01}")


def test_lego_tls_alpn01(acme, tmp_path):
    lego(acme, tmp_path, f"{uid('lt')}.example.test", "--tls", "--tls.port", f"127.0.0.1:{acme.tlsalpn}")


def test_lego_dns01(acme, tmp_path):
    hook = tmp_path / "dns-hook.sh"
    hook.write_text("#!/bin/sh\n"
                    "# lego exec provider: present|cleanup FQDN VALUE\n"
                    f"case \"$1\" in present) curl -sf -X POST -d \"{{\\\"host\\\":\\\"$2\\\",\\\"value\\\":\\\"$3\\\"}}\" "
                    f"{acme.cts.mgmt}/set-txt ;;\n"
                    f"cleanup) curl -sf -X POST -d \"{{\\\"host\\\":\\\"$2\\\"}}\" {acme.cts.mgmt}/clear-txt ;; esac\n")
    hook.chmod(0o755)
    name = f"{uid('ld')}.example.test"
    lego(acme, tmp_path, "*." + name, "--dns", "exec", "--dns.resolvers", f"127.0.0.1:{acme.cts.dns_port}",
         "--dns.disable-cp", env={"EXEC_PATH": str(hook)})


def _can_unshare():
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not _can_unshare(), reason="needs a private mount namespace (root) to give uacme the test CA")
def test_uacme_http01_hook(acme, tmp_path):
    hook = tmp_path / "http-hook.sh"
    hook.write_text("#!/bin/sh\n"
                    "# uacme hook: METHOD TYPE IDENT TOKEN AUTH\n"
                    "[ \"$2\" = http-01 ] || exit 1\n"
                    f"case \"$1\" in begin) printf '%s' \"$5\" > '{acme.webroot}'/\"$4\" ;;\n"
                    f"done|failed) rm -f '{acme.webroot}'/\"$4\" ;; esac\n")
    hook.chmod(0o755)
    conf = tmp_path / "uacme"
    name = f"{uid('ua')}.example.test"
    # uacme has no option for a CA file: libcurl reads Debian's bundle, so the
    # test runs it in a private mount namespace where that file is the test
    # service CA (the host's trust store is untouched)
    base = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec "$@"',
            str(acme.d.service_ca), "uacme", "-v", "-a", acme.cfg["directoryUrl"], "-c", str(conf), "-y"]
    env = {}
    run(base + ["-e", f"{acme.eab['keyId']}:{acme.eab['hmacKey']}", "new", "ops@example.test"], env)
    run(base + ["-h", str(hook), "issue", name], env)
    pem = (conf / name / "cert.pem").read_bytes()
    leaf, names = sans_of(pem)
    assert names == [name]
    assert listed(acme, leaf)["requester"].startswith("acme:acme1/")
