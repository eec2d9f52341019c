"""Subject alternative names of type directoryName and registeredID through the admin REST API.

directoryName takes a DN in the syntax of the `subject` field (encoded as GEN_DIRNAME),
registeredID a dotted numeric OID (GEN_RID). Both appear in the certificate exactly, are shown in
GET /cas/{ca}/certificates/{serial}, merge with the CSR's names without duplicates, and bad values
answer 400 naming subjectAltNames[i].
"""
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID, ObjectIdentifier

from helpers import create_ca, expect_error, ext_or_none, uid

PROFILE = "privatessl-tls-server"
CN = "san-types.example.com"

DIR_TEXT = "CN=Dir Entry, OU=Ops, O=Acme\\, Inc., C=US"
# Encoded order: the last RDN of the string comes first.
DIR_NAME = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme, Inc."),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Ops"),
    x509.NameAttribute(NameOID.COMMON_NAME, "Dir Entry"),
])
RID = "1.2.3.4"


def ok(resp, status=200):
    assert resp.status_code == status, (f"{resp.request.method} {resp.request.url} -> {resp.status_code}: "
                                        f"{resp.text[:800]}")
    return resp.json()


@pytest.fixture(scope="module")
def ca(daemon):
    """root -> issuing subord with the TLS server profile assigned."""
    root = create_ca(daemon, id=uid("sroot"), friendlyName="SAN types root", type="root",
                     signingKeyDetails="ECDSAP256+SHA256", subject="CN=SAN Types Root,O=Test")
    sub = create_ca(daemon, id=uid("ssub"), friendlyName="SAN types sub", type="subord", parentId=root["id"],
                    signingKeyDetails="ECDSAP256+SHA256", subject="CN=SAN Types Sub,O=Test")
    ok(daemon.api("POST", f"/cas/{sub['id']}/profiles", json={"profileId": PROFILE}))
    return sub["id"]


def make_csr(extra_sans=()):
    key = ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CN)]))
    b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(CN), *extra_sans]), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def issue(daemon, ca_id, sans, csr=None, expect=201):
    r = daemon.api("POST", f"/cas/{ca_id}/certificates",
                   json={"profileId": PROFILE, "csr": csr or make_csr(), "subjectAltNames": sans})
    if expect != 201:
        return r
    out = ok(r, 201)
    return out, x509.load_pem_x509_certificate(out["certificate"].encode())


def san_list(cert):
    ext = ext_or_none(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert ext is not None, "no subjectAltName extension"
    return list(ext.value)


def test_directory_name_and_registered_id(daemon, ca):
    sans = [{"type": "directoryName", "value": DIR_TEXT}, {"type": "registeredID", "value": RID}]
    out, cert = issue(daemon, ca, sans)
    names = san_list(cert)
    assert [n for n in names if isinstance(n, x509.DirectoryName)] == [x509.DirectoryName(DIR_NAME)]
    assert [n for n in names if isinstance(n, x509.RegisteredID)] == [x509.RegisteredID(ObjectIdentifier(RID))]
    assert [n.value for n in names if isinstance(n, x509.DNSName)] == [CN]
    # the DER of the directoryName is the Name itself, RDN by RDN in that order
    dn = next(n for n in names if isinstance(n, x509.DirectoryName)).value
    assert [rdn.rfc4514_string() for rdn in dn.rdns] == ["C=US", "O=Acme\\, Inc.", "OU=Ops", "CN=Dir Entry"]

    details = ok(daemon.api("GET", f"/cas/{ca}/certificates/{out['serialNumber']}"))
    shown = details["subjectAltNames"]
    assert {"type": "directoryName", "value": DIR_TEXT} in shown, shown
    assert {"type": "registeredID", "value": RID} in shown, shown
    assert {"type": "dNSName", "value": CN} in shown, shown


def test_round_trip_details_back_into_request(daemon, ca):
    """What GET shows for a name can be sent again and gives the same certificate names."""
    sans = [{"type": "directoryName", "value": "CN=a+UID=b, DC=corp, DC=example"},
            {"type": "registeredID", "value": "1.3.6.1.4.1.99999.65535.7"}]
    out, cert = issue(daemon, ca, sans)
    shown = ok(daemon.api("GET", f"/cas/{ca}/certificates/{out['serialNumber']}"))["subjectAltNames"]
    again = [s for s in shown if s["type"] in ("directoryName", "registeredID")]
    assert again == sans
    _, cert2 = issue(daemon, ca, again)
    pick = (x509.DirectoryName, x509.RegisteredID)
    assert [n for n in san_list(cert) if isinstance(n, pick)] == [n for n in san_list(cert2) if isinstance(n, pick)]


def test_csr_and_request_names_merge_once(daemon, ca):
    csr = make_csr([x509.DirectoryName(DIR_NAME), x509.RegisteredID(ObjectIdentifier(RID)),
                    x509.RegisteredID(ObjectIdentifier("1.3.6.1.4.1.99999.1"))])
    sans = [{"type": "registeredID", "value": RID}, {"type": "directoryName", "value": DIR_TEXT}]
    _, cert = issue(daemon, ca, sans, csr=csr)
    names = san_list(cert)
    assert [n for n in names if isinstance(n, x509.DirectoryName)] == [x509.DirectoryName(DIR_NAME)]
    assert sorted(n.value.dotted_string for n in names if isinstance(n, x509.RegisteredID)) == \
        sorted([RID, "1.3.6.1.4.1.99999.1"])


@pytest.mark.parametrize("san, mention", [
    ({"type": "directoryName", "value": ""}, "directory name"),
    ({"type": "directoryName", "value": "   "}, "directory name"),
    ({"type": "directoryName", "value": "CN"}, "directory name"),
    ({"type": "directoryName", "value": "XX=1"}, "unknown attribute"),
    ({"type": "directoryName", "value": "C=USA"}, "directory name"),
    ({"type": "directoryName", "value": "CN=" + "a" * 5000}, "directory name"),
    ({"type": "registeredID", "value": ""}, "OID"),
    ({"type": "registeredID", "value": "1"}, "OID"),
    ({"type": "registeredID", "value": "1..2"}, "OID"),
    ({"type": "registeredID", "value": "1.2."}, "OID"),
    ({"type": "registeredID", "value": "1.02.3"}, "OID"),
    ({"type": "registeredID", "value": "3.1"}, "OID"),
    ({"type": "registeredID", "value": "commonName"}, "OID"),
    ({"type": "registeredID", "value": "sha256"}, "OID"),
    ({"type": "registeredID", "value": "1.2." + "3." * 100 + "4"}, "OID"),
], ids=lambda v: v if isinstance(v, str) else f"{v['type']}:{v['value'][:12]}")
def test_bad_values_400_naming_the_field(daemon, ca, san, mention):
    r = issue(daemon, ca, [{"type": "dNSName", "value": "ok.example.com"}, san], expect=400)
    err = expect_error(r, 400, mention=mention, code="invalid_field")
    assert err.get("field") == "subjectAltNames[1]", err
    assert "subjectAltNames[1]" in err["message"], err
