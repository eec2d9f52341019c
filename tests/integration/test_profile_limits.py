"""What a custom profile or a request may not ask for (found by review; each failed on the build before the fix):
extended key usages that act for the CA (OCSP signing, anyExtendedKeyUsage, CMC CA/RA, Microsoft Certificate
Request Agent) neither in a custom profile's usages nor in a CSR's or request's extendedKeyUsage, OIDs that name
no purpose, and a subscriber profile widened to root or intermediate CAs."""
import base64
import secrets

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from helpers import create_ca, expect_error, uid

SOURCE = "privatessl-tls-server"
EC = "ECDSAP256+SHA256"
RESERVED = ["1.3.6.1.5.5.7.3.9", "2.5.29.37.0", "1.3.6.1.5.5.7.3.27", "1.3.6.1.5.5.7.3.28",
            "1.3.6.1.4.1.311.20.2.1"]


def _pid(prefix):
    return f"{prefix}-{secrets.token_hex(4)}"


def _csr(ekus=None, cn="device-1"):
    key = rsa.generate_private_key(65537, 2048)  # scep-device-auth takes RSA keys
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if ekus:
        b = b.add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in ekus]), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def cas(daemon):
    root = create_ca(daemon, id=uid("plroot"), type="root", signingKeyDetails=EC, subject="CN=PL Root")
    sub = create_ca(daemon, id=uid("plsub"), type="subord", parentId=root["id"], signingKeyDetails=EC,
                    subject="CN=PL Sub", profiles=["scep-device-auth", SOURCE])
    return root, sub


@pytest.mark.parametrize("oid", RESERVED + ["2.5.29.19", "2.5.4.3"])
def test_custom_profile_usages_refuse_purposes_of_the_ca(daemon, oid):
    r = daemon.api("POST", "/profiles", json={"id": _pid("privatessl-eku"), "sourceProfileId": SOURCE,
                                               "usages": ["digitalSignature", oid]})
    err = expect_error(r, 400)
    assert err.get("field") == "usages" and oid in err["message"], err


@pytest.mark.parametrize("oid", RESERVED)
def test_requested_eku_cannot_act_for_the_ca(daemon, cas, oid):
    """scep-device-auth accepts an extendedKeyUsage from the request, but none that acts for the CA (an OCSP
    signing certificate would let its holder answer 'good' for revoked certificates): in the CSR or beside it."""
    _, sub = cas
    r = daemon.api("POST", f"/cas/{sub['id']}/certificates",
                   json={"profileId": "scep-device-auth", "csr": _csr([ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string,
                                                                      oid])})
    expect_error(r, 400, mention="extendedKeyUsage")
    der = x509.ExtendedKeyUsage([x509.ObjectIdentifier(oid)]).public_bytes()
    r = daemon.api("POST", f"/cas/{sub['id']}/certificates",
                   json={"profileId": "scep-device-auth", "csr": _csr(), "extensions": [
                       {"oid": "2.5.29.37", "critical": False, "value": base64.b64encode(der).decode()}]})
    expect_error(r, 400, mention="extendedKeyUsage")
    # an ordinary requested purpose still works
    r = daemon.api("POST", f"/cas/{sub['id']}/certificates",
                   json={"profileId": "scep-device-auth", "csr": _csr([ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string])})
    assert r.status_code == 201, r.text


def test_subscriber_profile_stays_with_issuing_cas(daemon, cas):
    root, _ = cas
    for types in (["root", "intermediate", "subord"], ["root"], ["intermediate", "subord"]):
        r = daemon.api("POST", "/profiles", json={"id": _pid("privatessl-wide"), "sourceProfileId": SOURCE,
                                                   "allowedCATypes": types})
        err = expect_error(r, 400)
        assert err.get("field") == "allowedCATypes", err
    assert daemon.api("POST", "/profiles", json={"id": _pid("privatessl-ok"), "sourceProfileId": SOURCE,
                                                  "allowedCATypes": ["subord"]}).status_code == 201
