"""Malformed and hostile issuance requests: each gets a 4xx JSON error, nothing is issued, and the
daemon keeps answering /healthz."""
import base64
import json
import os
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from helpers import create_ca, error_of, uid

PROFILE = "privatessl-tls-server"
NON_TLS = "smime-signing"


def ok(resp, status=200):
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:500]}"
    return resp.json()


def build_csr(key, cn="hostile.example.com", dns=("hostile.example.com",), algo=hashes.SHA256(), name=None):
    b = x509.CertificateSigningRequestBuilder().subject_name(
        name if name is not None else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), critical=False)
    return b.sign(key, algo).public_bytes(serialization.Encoding.DER)


def pem(der):
    b = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{b}-----END CERTIFICATE REQUEST-----\n"


def b64(der):
    return base64.b64encode(der).decode()


EC_KEY = ec.generate_private_key(ec.SECP256R1())
GOOD_DER = build_csr(EC_KEY)


def openssl_csr(tmp, keyfile, subj="/CN=hostile.example.com"):
    out = tmp / (keyfile.name + ".csr")
    cp = subprocess.run(["openssl", "req", "-new", "-key", str(keyfile), "-subj", subj, "-sha256", "-outform", "DER",
                         "-out", str(out)], capture_output=True, timeout=120)
    assert cp.returncode == 0, cp.stderr.decode()
    return out.read_bytes()


@pytest.fixture(scope="module")
def rsa8192_proc(tmp_path_factory):
    """Starts RSA-8192 key generation in the background (5 primes: a few seconds)."""
    tmp = tmp_path_factory.mktemp("rsa8192")
    key = tmp / "k8192.pem"
    proc = subprocess.Popen(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:8192",
                             "-pkeyopt", "rsa_keygen_primes:5", "-out", str(key)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield proc, key, tmp
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def ca(daemon, rsa8192_proc):
    root = create_ca(daemon, id=uid("hroot"), friendlyName="Hostile root", type="root",
                     signingKeyDetails="ECDSAP256+SHA256", subject="CN=Hostile Root")
    sub = create_ca(daemon, id=uid("hsub"), friendlyName="Hostile sub", type="subord", parentId=root["id"],
                    signingKeyDetails="ECDSAP256+SHA256", subject="CN=Hostile Sub", enableCrl=True,
                    enableOcsp=True, profiles=[PROFILE, NON_TLS])
    # Sanity: the well-formed request this file mutates is accepted.
    ok(daemon.api("POST", f"/cas/{sub['id']}/certificates", json={"profileId": PROFILE, "csr": pem(GOOD_DER)}), 201)
    return sub


def count(daemon, ca):
    body = ok(daemon.api("GET", f"/cas/{ca['id']}/certificates", params={"limit": 100}))
    return len(body["certificates"])


def post_hostile(daemon, ca, *, json_body=None, raw=None, statuses=(400,), field=None):
    """Sends one hostile request; asserts a 4xx JSON error, nothing issued, /healthz still 200."""
    before = count(daemon, ca)
    path = f"/cas/{ca['id']}/certificates"
    if raw is not None:
        r = daemon.api("POST", path, data=raw, headers={"Content-Type": "application/json"})
    else:
        r = daemon.api("POST", path, json=json_body)
    assert r.status_code in statuses, f"expected {statuses}, got {r.status_code}: {r.text[:500]!r}"
    assert 400 <= r.status_code < 500
    err = error_of(r)
    if field is not None:
        assert (err.get("field") or "").startswith(field), f"error.field {err.get('field')!r}, wanted {field!r}: {err}"
    h = daemon.get("/healthz")
    assert h.status_code == 200 and h.json().get("status") == "ok", "daemon unhealthy after a hostile request"
    assert count(daemon, ca) == before, "a hostile request issued a certificate"
    return err


def csr_req(csr, **extra):
    return {"profileId": PROFILE, "csr": csr, **extra}


# ------------------------------------------------------------------ broken encodings
def flip_signature_byte(der):
    """Flips a bit in the last byte of the signature BIT STRING (the DER's last byte)."""
    b = bytearray(der)
    b[-1] ^= 0x01
    return bytes(b)


BROKEN = {
    "bad-signature-der": lambda: b64(flip_signature_byte(GOOD_DER)),
    "bad-signature-pem": lambda: pem(flip_signature_byte(GOOD_DER)),
    "truncated-der": lambda: b64(GOOD_DER[: len(GOOD_DER) // 2]),
    "truncated-by-one": lambda: b64(GOOD_DER[:-1]),
    "trailing-garbage": lambda: b64(GOOD_DER + b"\x00garbage"),
    "trailing-garbage-pem": lambda: pem(GOOD_DER + b"\x05\x00"),
    "empty-string": lambda: "",
    "whitespace": lambda: "   \n  ",
    "random-bytes": lambda: b64(os.urandom(600)),
    "base64-garbage": lambda: "!!!not*base64$$$===",
    "pem-garbage-inside": lambda: "-----BEGIN CERTIFICATE REQUEST-----\nthis is !! not base64 @@\n"
                                  "-----END CERTIFICATE REQUEST-----\n",
    "pem-no-end": lambda: pem(GOOD_DER).split("-----END")[0],
    "pem-wrong-label": lambda: pem(GOOD_DER).replace("CERTIFICATE REQUEST", "PRIVATE KEY"),
    "der-length-overflow": lambda: b64(b"\x30\x84\xff\xff\xff\xff" + GOOD_DER[4:]),
    "nested-sequences": lambda: b64(b"\x30\x80" * 5000),
    "a-certificate": None,  # filled in below (a certificate is not a CSR)
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_csr_encoding(daemon, ca, name):
    if name == "a-certificate":
        r = daemon.api("GET", f"/cas/{ca['id']}/certificate", params={"format": "pem"})
        csr = r.text
    else:
        csr = BROKEN[name]()
    post_hostile(daemon, ca, json_body=csr_req(csr), field="csr")


# ------------------------------------------------------------------ hostile contents
def test_300_sans_in_extension_request(daemon, ca):
    der = build_csr(EC_KEY, dns=[f"h{i}.example.com" for i in range(300)])
    post_hostile(daemon, ca, json_body=csr_req(pem(der)))


def test_300_sans_in_request(daemon, ca):
    sans = [{"type": "dNSName", "value": f"r{i}.example.com"} for i in range(300)]
    post_hostile(daemon, ca, json_body=csr_req(pem(GOOD_DER), subjectAltNames=sans), field="subjectAltNames")


def test_10000_char_cn_in_csr(daemon, ca):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a" * 10000, _validate=False)])
    post_hostile(daemon, ca, json_body=csr_req(pem(build_csr(EC_KEY, name=name))), field="csr")


def test_10000_char_cn_subject(daemon, ca):
    post_hostile(daemon, ca, json_body=csr_req(pem(GOOD_DER), subject="CN=" + "a" * 10000), field="subject")


def test_nul_in_cn_subject(daemon, ca):
    post_hostile(daemon, ca, json_body=csr_req(pem(GOOD_DER), subject="CN=a\\00b"), field="subject")


def test_raw_nul_in_cn_subject(daemon, ca):
    post_hostile(daemon, ca, json_body=csr_req(pem(GOOD_DER), subject="CN=a\u0000b"))


def test_nul_in_cn_csr(daemon, ca):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil.example.com\x00.attacker.example")])
    post_hostile(daemon, ca, json_body=csr_req(pem(build_csr(EC_KEY, name=name, dns=()))), field="csr")


def _upn_csr(value_bytes):
    """A CSR whose subjectAltName holds a UPN otherName with these UTF8String bytes."""
    upn = x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"),
                         b"\x0c" + bytes([len(value_bytes)]) + value_bytes)
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upn holder")]))
    b = b.add_extension(x509.SubjectAlternativeName([upn]), critical=False)
    return pem(b.sign(EC_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


@pytest.mark.parametrize("value", [b"user@corp.g\xed\xa0\x80", b"user@corp.\xe0\x80\xaf", b"user@\xf4\x90\x80\x80"],
                         ids=["surrogate", "overlong", "beyond-10ffff"])
def test_invalid_utf8_upn_in_csr(daemon, ca, value):
    """Found by fuzz_san: a UPN from the CSR with a surrogate or an overlong sequence passed the UTF-8 check
    (and then vanished from the JSON views of the certificate). The same CSR with a valid UPN is issued."""
    good = daemon.api("POST", f"/cas/{ca['id']}/certificates",
                      json={"profileId": NON_TLS, "csr": _upn_csr(b"user@corp.example"), "useSubjectFromCsr": True})
    assert good.status_code == 201, good.text
    cert = x509.load_pem_x509_certificate(good.json()["certificate"].encode())
    others = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.OtherName)
    assert [o.value for o in others] == [b"\x0c\x11user@corp.example"]
    post_hostile(daemon, ca, json_body={"profileId": NON_TLS, "csr": _upn_csr(value), "useSubjectFromCsr": True},
                 field="csr")


def test_dsa_key(daemon, ca):
    key = dsa.generate_private_key(key_size=1024)
    post_hostile(daemon, ca, json_body=csr_req(pem(build_csr(key))), field="csr")


def test_dsa_key_openssl(daemon, ca, tmp_path):
    params = tmp_path / "dsa.param"
    key = tmp_path / "dsa.key"
    for cmd in (["openssl", "genpkey", "-genparam", "-algorithm", "DSA", "-pkeyopt", "dsa_paramgen_bits:1024",
                 "-out", str(params)],
                ["openssl", "genpkey", "-paramfile", str(params), "-out", str(key)]):
        cp = subprocess.run(cmd, capture_output=True, timeout=120)
        assert cp.returncode == 0, cp.stderr.decode()
    post_hostile(daemon, ca, json_body=csr_req(b64(openssl_csr(tmp_path, key))), field="csr")


def test_ed25519_key(daemon, ca):
    key = ed25519.Ed25519PrivateKey.generate()
    post_hostile(daemon, ca, json_body=csr_req(pem(build_csr(key, algo=None))), field="csr")


def test_rsa_1024(daemon, ca):
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    err = post_hostile(daemon, ca, json_body=csr_req(pem(build_csr(key))), field="csr")
    assert "2048" in err["message"]


def test_rsa_8192(daemon, ca, rsa8192_proc):
    proc, key, tmp = rsa8192_proc
    assert proc.wait(timeout=120) == 0, "RSA-8192 key generation failed"
    der = openssl_csr(tmp, key)
    post_hostile(daemon, ca, json_body=csr_req(b64(der)), field="csr")


def test_secp256k1(daemon, ca):
    key = ec.generate_private_key(ec.SECP256K1())
    post_hostile(daemon, ca, json_body=csr_req(pem(build_csr(key))), field="csr")


# ------------------------------------------------------------------ hostile bodies
def test_2mb_body_413(daemon, ca):
    body = json.dumps(csr_req("A" * (2 * 1024 * 1024))).encode()
    post_hostile(daemon, ca, raw=body, statuses=(413,))


@pytest.mark.parametrize("raw", [
    b'{"profileId":"privatessl-tls-server","profileId":"smime-signing","csr":"CSR"}',
    b'{"profileId":"privatessl-tls-server","csr":"CSR","csr":"CSR"}',
], ids=["dup-profileId", "dup-csr"])
def test_json_duplicate_keys(daemon, ca, raw):
    post_hostile(daemon, ca, raw=raw.replace(b"CSR", b64(GOOD_DER).encode()))


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b'"str"', b"{'a':1}", b"\xff\xfe{}",
                                 b'{"profileId":"privatessl-tls-server","csr":"\xff\xfe"}',
                                 b"[" * 100000 + b"]" * 100000,
                                 b'{"a":' * 50000 + b"1" + b"}" * 50000],
                         ids=["empty", "open-brace", "array", "null", "string", "single-quotes", "bad-utf8",
                              "bad-utf8-in-string", "deep-array", "deep-object"])
def test_bad_json(daemon, ca, raw):
    post_hostile(daemon, ca, raw=raw)


@pytest.mark.parametrize("csr", [12345, 1.5, True, None, [], {"pem": "x"}], ids=lambda v: type(v).__name__)
def test_csr_wrong_type(daemon, ca, csr):
    post_hostile(daemon, ca, json_body={"profileId": PROFILE, "csr": csr})


@pytest.mark.parametrize("body,field", [
    ({"profileId": 7}, "profileId"),
    ({"subjectAltNames": "www.example.com"}, "subjectAltNames"),
    ({"subjectAltNames": [{"type": "dNSName", "value": 5}]}, "subjectAltNames"),
    ({"subjectAltNames": [{"type": "dNSName"}]}, "subjectAltNames"),
    ({"subject": 5}, "subject"),
    ({"validityPeriod": 30}, "validityPeriod"),
    ({"extensions": [{"oid": "1." + "9" * 1000, "critical": False, "value": "DAA="}]}, "extensions"),
    ({"extensions": [{"oid": "2.5.29.32", "critical": False, "value": "%%%"}]}, "extensions"),
    ({"extensions": [{"oid": "2.5.29.32", "critical": False, "value": "DAA="}]}, "extensions"),
], ids=["profileId-number", "sans-string", "san-value-number", "san-no-value", "subject-number",
        "validity-number", "ext-long-oid", "ext-bad-base64", "ext-policies-not-policies"])
def test_bad_fields(daemon, ca, body, field):
    post_hostile(daemon, ca, json_body={"profileId": PROFILE, "csr": pem(GOOD_DER), **body}, field=field)


# ------------------------------------------------------------------ bad subject alternative names
@pytest.mark.parametrize("san,profile", [
    ({"type": "iPAddress", "value": "999.1.1.1"}, PROFILE),
    ({"type": "iPAddress", "value": "1.2.3"}, PROFILE),
    ({"type": "iPAddress", "value": "fe80::1::2"}, PROFILE),
    ({"type": "dNSName", "value": "-bad-.example"}, PROFILE),
    ({"type": "dNSName", "value": "*.example.com"}, NON_TLS),
    ({"type": "dNSName", "value": "a_b.example.com"}, PROFILE),
    ({"type": "dNSName", "value": "a..example.com"}, PROFILE),
    ({"type": "dNSName", "value": "x" * 64 + ".example.com"}, PROFILE),
    ({"type": "dNSName", "value": ""}, PROFILE),
    ({"type": "dNSName", "value": "bad\u0000.example.com"}, PROFILE),
    ({"type": "dNSName", "value": "*.*.example.com"}, PROFILE),
    ({"type": "rfc822Name", "value": "no-at-sign.example.com"}, PROFILE),
    ({"type": "rfc822Name", "value": "a@b@example.com"}, PROFILE),
    ({"type": "uniformResourceIdentifier", "value": "example.com/path"}, PROFILE),
    ({"type": "userPrincipalName", "value": "no-at"}, PROFILE),
    ({"type": "x400Address", "value": "whatever"}, PROFILE),
    ({"type": "DNS", "value": "www.example.com"}, PROFILE),
], ids=["ip-999", "ip-short", "ip6-double-colon", "dns-hyphens", "wildcard-non-tls", "dns-underscore",
        "dns-empty-label", "dns-long-label", "dns-empty", "dns-nul", "dns-double-wildcard", "email-no-at",
        "email-two-at", "uri-no-scheme", "upn-no-at", "unknown-type", "openssl-style-type"])
def test_bad_san(daemon, ca, san, profile):
    body = {"profileId": profile, "csr": pem(GOOD_DER), "subjectAltNames": [san]}
    # A NUL inside a JSON string may be refused by the JSON parser itself (no field then).
    post_hostile(daemon, ca, json_body=body, field=None if "\u0000" in san["value"] else "subjectAltNames")


def test_still_issues_after_all(daemon, ca):
    """After the barrage the CA still issues a normal certificate."""
    r = daemon.api("POST", f"/cas/{ca['id']}/certificates", json=csr_req(pem(GOOD_DER)))
    cert = x509.load_pem_x509_certificate(ok(r, 201)["certificate"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "hostile.example.com"
