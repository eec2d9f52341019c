"""Shared helpers: a tiny DER walker, SKI computation, openssl wrappers, CA helpers."""
import base64
import datetime
import hashlib
import re
import secrets
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID

# label -> (keyAlgorithm, signatureAlgorithm, vaKeyType, vaSignatureAlgorithm)
CLASSICAL = {
    "RSA-2048+PKCS15-SHA256": ("RSA2048", "sha256WithRSAEncryption", "RSA2048", "sha256WithRSAEncryption"),
    "RSA-2048+PSS-SHA256": ("RSA2048", "sha256WithRSAPSS", "RSA2048", "sha256WithRSAPSS"),
    "RSA-3072+PKCS15-SHA256": ("RSA3072", "sha256WithRSAEncryption", "RSA2048", "sha256WithRSAEncryption"),
    "RSA-3072+PSS-SHA256": ("RSA3072", "sha256WithRSAPSS", "RSA2048", "sha256WithRSAPSS"),
    "RSA-4096+PKCS15-SHA512": ("RSA4096", "sha512WithRSAEncryption", "RSA2048", "sha256WithRSAEncryption"),
    "RSA-4096+PSS-SHA512": ("RSA4096", "sha512WithRSAPSS", "RSA2048", "sha256WithRSAPSS"),
    "ECDSAP256+SHA256": ("ECDSAP256", "ecdsa-with-SHA256", "RSA2048", "sha256WithRSAEncryption"),
    "ECDSAP384+SHA384": ("ECDSAP384", "ecdsa-with-SHA384", "RSA2048", "sha256WithRSAEncryption"),
    "ECDSAP521+SHA512": ("ECDSAP521", "ecdsa-with-SHA512", "RSA2048", "sha256WithRSAEncryption"),
}
LABELS = list(CLASSICAL)

# signature algorithm name -> (OID, hash name as openssl prints it)
SIG_OIDS = {
    "sha256WithRSAEncryption": ("1.2.840.113549.1.1.11", "sha256"),
    "sha512WithRSAEncryption": ("1.2.840.113549.1.1.13", "sha512"),
    "sha256WithRSAPSS": ("1.2.840.113549.1.1.10", "sha256"),
    "sha512WithRSAPSS": ("1.2.840.113549.1.1.10", "sha512"),
    "ecdsa-with-SHA256": ("1.2.840.10045.4.3.2", "sha256"),
    "ecdsa-with-SHA384": ("1.2.840.10045.4.3.3", "sha384"),
    "ecdsa-with-SHA512": ("1.2.840.10045.4.3.4", "sha512"),
}

# keyAlgorithm -> ("rsa", bits) | ("ec", curve name in cryptography)
KEY_TYPES = {
    "RSA2048": ("rsa", 2048),
    "RSA3072": ("rsa", 3072),
    "RSA4096": ("rsa", 4096),
    "ECDSAP256": ("ec", "secp256r1"),
    "ECDSAP384": ("ec", "secp384r1"),
    "ECDSAP521": ("ec", "secp521r1"),
}

ID_RE = re.compile(r"^[a-z0-9_-]{2,18}$")
HEX_RE = re.compile(r"^[0-9a-f]+$")


# --------------------------------------------------------------------- ids
def uid(prefix):
    """A fresh CA id: prefix + '-' + random hex, at most 18 characters."""
    prefix = prefix[:11]
    out = f"{prefix}-{secrets.token_hex(3)}"
    assert ID_RE.match(out), out
    return out


# --------------------------------------------------------------------- DER
def der_tlv(buf, pos):
    """(tag, content_start, content_end) of the DER element at `pos`."""
    tag = buf[pos]
    assert tag & 0x1F != 0x1F, "high tag numbers are not used here"
    pos += 1
    length = buf[pos]
    pos += 1
    if length & 0x80:
        n = length & 0x7F
        assert 1 <= n <= 4, "bad DER length"
        length = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    end = pos + length
    assert end <= len(buf), "DER element overruns its buffer"
    return tag, pos, end


def der_children(buf, start, end):
    """The (tag, content_start, content_end) of each element in buf[start:end]."""
    out = []
    pos = start
    while pos < end:
        tag, s, e = der_tlv(buf, pos)
        out.append((tag, s, e))
        pos = e
    assert pos == end
    return out


def spki_public_key_bits(spki_der):
    """The contents of the subjectPublicKey BIT STRING (without the unused-bits octet)."""
    tag, s, e = der_tlv(spki_der, 0)
    assert tag == 0x30 and e == len(spki_der), "SPKI is not one SEQUENCE"
    kids = der_children(spki_der, s, e)
    assert len(kids) == 2, "SPKI must hold AlgorithmIdentifier and BIT STRING"
    assert kids[0][0] == 0x30, "AlgorithmIdentifier is not a SEQUENCE"
    tag, bs, be = kids[1]
    assert tag == 0x03, "subjectPublicKey is not a BIT STRING"
    assert spki_der[bs] == 0, "subjectPublicKey has unused bits"
    return spki_der[bs + 1:be]


def spki_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def expected_ski(public_key):
    """RFC 7093 method 1: leftmost 160 bits of SHA-256 over the subjectPublicKey bits."""
    return hashlib.sha256(spki_public_key_bits(spki_der(public_key))).digest()[:20]


# --------------------------------------------------------------------- PEM / certs
PEM_CERT_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----\r?\n?", re.S)


def split_pem_bundle(data):
    """The DER of every certificate in a PEM bundle; asserts nothing else is in it."""
    if isinstance(data, str):
        data = data.encode()
    blocks = PEM_CERT_RE.findall(data)
    rest = PEM_CERT_RE.sub(b"", data)
    assert rest.strip() == b"", f"unexpected text in PEM bundle: {rest[:200]!r}"
    return [x509.load_pem_x509_certificate(b).public_bytes(serialization.Encoding.DER) for b in blocks]


def pem_of(der):
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def der_of(pem):
    if isinstance(pem, str):
        pem = pem.encode()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def ext_or_none(cert, oid):
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def key_usage_names(ku):
    names = []
    for attr, name in (("digital_signature", "digitalSignature"), ("content_commitment", "nonRepudiation"),
                       ("key_encipherment", "keyEncipherment"), ("data_encipherment", "dataEncipherment"),
                       ("key_agreement", "keyAgreement"), ("key_cert_sign", "keyCertSign"),
                       ("crl_sign", "cRLSign")):
        if getattr(ku, attr):
            names.append(name)
    if ku.key_agreement:
        if ku.encipher_only:
            names.append("encipherOnly")
        if ku.decipher_only:
            names.append("decipherOnly")
    return names


def crl_dp_urls(cert):
    ext = ext_or_none(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS)
    if ext is None:
        return None
    urls = []
    for dp in ext.value:
        for gn in dp.full_name or []:
            if isinstance(gn, x509.UniformResourceIdentifier):
                urls.append(gn.value)
    return urls


def aia_urls(cert):
    """{"ocsp": [...], "caIssuers": [...]} or None when the extension is absent."""
    ext = ext_or_none(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    if ext is None:
        return None
    out = {"ocsp": [], "caIssuers": []}
    for ad in ext.value:
        key = {"1.3.6.1.5.5.7.48.1": "ocsp", "1.3.6.1.5.5.7.48.2": "caIssuers"}.get(ad.access_method.dotted_string)
        assert key, f"unexpected AIA method {ad.access_method.dotted_string}"
        assert isinstance(ad.access_location, x509.UniformResourceIdentifier)
        out[key].append(ad.access_location.value)
    return out


def cn_of(name):
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else None


# --------------------------------------------------------------------- time
def parse_time(s):
    """RFC 3339 UTC 'YYYY-MM-DDTHH:MM:SSZ' -> naive UTC datetime."""
    assert isinstance(s, str) and s.endswith("Z"), f"not an RFC 3339 UTC time: {s!r}"
    return datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")


def fmt_time(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow():
    return datetime.datetime.utcnow().replace(microsecond=0)


def add_years(dt, n):
    try:
        return dt.replace(year=dt.year + n)
    except ValueError:  # 29 February
        return dt.replace(year=dt.year + n, day=28)


# --------------------------------------------------------------------- openssl
def openssl(*args, input=None, check=True, cwd=None):
    cp = subprocess.run(["openssl", *map(str, args)], capture_output=True, input=input, cwd=cwd, timeout=120)
    if check:
        assert cp.returncode == 0, (f"openssl {' '.join(map(str, args))} failed ({cp.returncode}):\n"
                                    f"{cp.stdout.decode(errors='replace')}\n{cp.stderr.decode(errors='replace')}")
    return cp


def openssl_text(pem_path):
    return openssl("x509", "-in", pem_path, "-noout", "-text").stdout.decode()


# --------------------------------------------------------------------- API
def error_of(resp):
    """The `error` object of a JSON error response (asserts the shape)."""
    ctype = resp.headers.get("Content-Type", "")
    assert "application/json" in ctype, f"error response is not JSON ({ctype!r}): {resp.text[:300]!r}"
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), f"no error object: {body!r}"
    err = body["error"]
    assert isinstance(err.get("code"), str) and err["code"], f"error.code missing: {body!r}"
    assert isinstance(err.get("message"), str) and err["message"], f"error.message missing: {body!r}"
    return err


def expect_error(resp, statuses, mention=None, code=None):
    if isinstance(statuses, int):
        statuses = (statuses,)
    assert resp.status_code in statuses, (
        f"expected HTTP {statuses}, got {resp.status_code}: {resp.text[:500]!r}")
    err = error_of(resp)
    if mention is not None:
        assert mention.lower() in err["message"].lower(), (
            f"error message {err['message']!r} does not mention {mention!r}")
    if code is not None:
        assert err["code"] == code, f"error.code {err['code']!r} != {code!r}"
    return err


def create_ca(d, expect=201, **body):
    r = d.api("POST", "/cas", json=body)
    assert r.status_code == expect, f"POST /cas {body!r} -> {r.status_code}: {r.text[:800]}"
    return r.json()


def get_ca(d, ca_id):
    r = d.api("GET", f"/cas/{ca_id}")
    assert r.status_code == 200, f"GET /cas/{ca_id} -> {r.status_code}: {r.text[:500]}"
    return r.json()


def list_cas(d, include_deleted=False):
    params = {"includeDeleted": "true"} if include_deleted else None
    r = d.api("GET", "/cas", params=params)
    assert r.status_code == 200, f"GET /cas -> {r.status_code}: {r.text[:500]}"
    body = r.json()
    assert isinstance(body.get("cas"), list), body
    return {c["id"]: c for c in body["cas"]}


def download_der(d, ca_id):
    r = d.api("GET", f"/cas/{ca_id}/certificate", params={"format": "der"})
    assert r.status_code == 200, f"DER download of {ca_id} -> {r.status_code}: {r.text[:300]}"
    assert r.headers.get("Content-Type", "").startswith("application/pkix-cert"), r.headers.get("Content-Type")
    return r.content


def download_pem(d, ca_id):
    r = d.api("GET", f"/cas/{ca_id}/certificate", params={"format": "pem"})
    assert r.status_code == 200, f"PEM download of {ca_id} -> {r.status_code}: {r.text[:300]}"
    assert r.headers.get("Content-Type", "").startswith("application/x-pem-file"), r.headers.get("Content-Type")
    return r.content


def download_chain(d, ca_id):
    r = d.api("GET", f"/cas/{ca_id}/chain")
    assert r.status_code == 200, f"chain of {ca_id} -> {r.status_code}: {r.text[:300]}"
    return split_pem_bundle(r.content)


def b64(der):
    return base64.b64encode(der).decode()
