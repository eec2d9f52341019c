"""Issuance findings of a review, each reproduced against the daemon first: the string types of a CSR's
subject attributes, key usages that an EC key cannot have (RFC 5480), CA-only extensions in end-entity
profiles, and the PKCS#12 password counted in characters. Certificates are read with python3-cryptography."""
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtensionOID, NameOID

from helpers import create_ca, uid

PROFILES = ["privatessl-tls-server", "wstep-key-encipherment", "mdmws-p12-key-encipherment"]


@pytest.fixture(scope="module")
def sub(daemon):
    root = create_ca(daemon, id=uid("irroot"), type="root", signingKeyDetails="ECDSAP256+SHA256",
                     subject="CN=Review Root")
    s = create_ca(daemon, id=uid("irsub"), type="subord", parentId=root["id"], signingKeyDetails="ECDSAP256+SHA256",
                  subject="CN=Review Sub", profiles=PROFILES)
    return s["id"]


def issue(d, ca, **body):
    return d.api("POST", f"/cas/{ca}/certificates", json=body)


def csr_of(key, name=None):
    name = name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r.example.com")])
    return (x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM).decode())


def cert_of(r):
    assert r.status_code == 201, r.text
    return x509.load_pem_x509_certificate(r.json()["certificate"].encode())


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


# -- subject string types -------------------------------------------------------
STRING_TYPES = [
    (NameOID.COUNTRY_NAME, "US", _ASN1Type.PrintableString),
    (NameOID.SERIAL_NUMBER, "1234", _ASN1Type.PrintableString),
    (NameOID.EMAIL_ADDRESS, "a@example.com", _ASN1Type.IA5String),
    (NameOID.DOMAIN_COMPONENT, "example", _ASN1Type.IA5String),
]


@pytest.mark.parametrize("oid,val,want", STRING_TYPES, ids=[t[0]._name for t in STRING_TYPES])
def test_csr_subject_string_type(daemon, sub, oid, val, want):
    """RFC 5280 appendix A: X520countryName and X520SerialNumber are PrintableString, emailAddress and
    domainComponent IA5String; a CSR's UTF8String for them used to be copied into the certificate."""
    name = x509.Name([x509.NameAttribute(oid, val, _type=_ASN1Type.UTF8String),
                      x509.NameAttribute(NameOID.COMMON_NAME, "d.example.com")])
    c = cert_of(issue(daemon, sub, profileId="privatessl-tls-server", csr=csr_of(ec_key(), name)))
    got = c.subject.get_attributes_for_oid(oid)[0]
    assert got._type == want and got.value == val, (got._type, got.value)
    assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "d.example.com"


def test_csr_subject_bytes_kept_when_already_right(daemon, sub):
    """A usual CSR subject (UTF8String CN/O, PrintableString C, a multi-valued RDN) is certified byte for byte,
    in its order."""
    name = x509.Name([
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Org"),
                                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Unit")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "k.example.com")]),
    ])
    c = cert_of(issue(daemon, sub, profileId="privatessl-tls-server", csr=csr_of(ec_key(), name)))
    assert c.subject.public_bytes() == name.public_bytes()


# -- key usage and key type -----------------------------------------------------
def _ku(c):
    return c.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)


def test_ec_key_never_gets_key_encipherment(daemon, sub):
    """RFC 5480 3: keyEncipherment is not a key usage of an id-ecPublicKey key. The profile's RSA usages stay
    for RSA keys."""
    c = cert_of(issue(daemon, sub, profileId="privatessl-tls-server", csr=csr_of(ec_key())))
    ku = _ku(c)
    assert ku.value.digital_signature and not ku.value.key_encipherment and not ku.value.data_encipherment
    assert ku.critical is True
    c = cert_of(issue(daemon, sub, profileId="privatessl-tls-server",
                      csr=csr_of(rsa.generate_private_key(public_exponent=65537, key_size=2048))))
    assert _ku(c).value.digital_signature and _ku(c).value.key_encipherment


def test_encipherment_only_profiles_take_rsa_keys_only(daemon, sub):
    r = issue(daemon, sub, profileId="wstep-key-encipherment", csr=csr_of(ec_key()))
    assert r.status_code == 400 and r.json()["error"]["field"] == "csr", r.text
    r = issue(daemon, sub, profileId="mdmws-p12-key-encipherment", keyType="EC-P256", p12Password="password-123",
              subject="CN=p12.example.com")
    assert r.status_code == 400 and r.json()["error"]["field"] == "keyType", r.text
    # the same profile with an RSA key: keyEncipherment alone
    c = cert_of(issue(daemon, sub, profileId="wstep-key-encipherment",
                      csr=csr_of(rsa.generate_private_key(public_exponent=65537, key_size=2048))))
    ku = _ku(c).value
    assert ku.key_encipherment and not ku.digital_signature


def test_custom_profile_ec_keys_need_more_than_encipherment(daemon):
    r = daemon.api("POST", "/profiles", json={"id": uid("encec"), "sourceProfileId": "privatessl-tls-server",
                                              "usages": ["keyEncipherment", "1.3.6.1.5.5.7.3.1"],
                                              "key_types": ["RSA-2048", "EC-P256"]})
    assert r.status_code == 400 and r.json()["error"]["field"] == "key_types", r.text
    r = daemon.api("POST", "/profiles", json={"id": uid("encrsa"), "sourceProfileId": "privatessl-tls-server",
                                              "usages": ["keyEncipherment", "1.3.6.1.5.5.7.3.1"],
                                              "key_types": ["RSA-2048"]})
    assert r.status_code == 201, r.text


# -- CA-only extensions ---------------------------------------------------------
@pytest.mark.parametrize("oid", ["2.5.29.30", "2.5.29.33", "2.5.29.36", "2.5.29.54"])
def test_ca_only_extension_refused_in_subscriber_profile(daemon, oid):
    """RFC 5280 4.2.1.5/10/11/14: nameConstraints, policyMappings, policyConstraints and inhibitAnyPolicy belong
    in CA certificates; a subscriber profile allowing them used to copy a CSR's value into end-entity
    certificates."""
    r = daemon.api("POST", "/profiles", json={"id": uid("caonly"), "sourceProfileId": "privatessl-tls-server",
                                              "allowed_extensions": ["2.5.29.32", oid]})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["field"] == "allowed_extensions" and oid in err["message"], err


# -- PKCS#12 password -----------------------------------------------------------
def test_p12_password_length_in_characters(daemon, sub):
    """openapi.yaml: p12Password of 8-128 characters (it used to count bytes)."""
    body = {"profileId": "mdmws-p12-key-encipherment", "keyType": "RSA-2048", "subject": "CN=p12.example.com"}
    r = issue(daemon, sub, p12Password="é" * 100, **body)
    assert r.status_code == 201 and r.json().get("pkcs12"), r.text
    r = issue(daemon, sub, p12Password="\U0001F511\U0001F511", **body)  # 2 characters, 8 bytes
    assert r.status_code == 400 and r.json()["error"]["field"] == "p12Password", r.text
    r = issue(daemon, sub, p12Password="é" * 129, **body)
    assert r.status_code == 400 and r.json()["error"]["field"] == "p12Password", r.text
