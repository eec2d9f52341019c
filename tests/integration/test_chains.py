"""CA hierarchies: root -> intermediate -> subord for every classical signing-key label.

Everything is checked on the bytes a client downloads (python3-cryptography and openssl),
and the server's JSON is checked against those bytes.
"""
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from helpers import (CLASSICAL, HEX_RE, KEY_TYPES, LABELS, SIG_OIDS, add_years, aia_urls, create_ca,
                     crl_dp_urls, download_chain, download_der, download_pem, expected_ski, ext_or_none,
                     fmt_time, get_ca, key_usage_names, openssl, openssl_text, parse_time, uid, utcnow)

DAY = datetime.timedelta(days=1)


def _create(d, **body):
    before = utcnow()
    info = create_ca(d, **body)
    after = utcnow() + datetime.timedelta(seconds=1)
    return info, before, after


def check_ca_cert(d, tmp_path, *, label, kind, info, der, requested, made, parent=None, issuer_label=None):
    """Checks one downloaded CA certificate against the contract and the JSON details.

    parent: None for a root, else dict(info=..., der=..., requested=...).
    made: (before, after) wall-clock bracket of the POST.
    """
    cert = x509.load_der_x509_certificate(der)
    ca_id = info["id"]
    acct = d.account
    issuer_label = issuer_label or label

    # --- version, serial
    assert cert.version == x509.Version.v3
    serial = cert.serial_number
    assert 0 < serial < 2 ** 128, f"serial {serial:x} is not a positive 16-byte value"
    assert serial.bit_length() > 100, f"serial {serial:x} too short to be 16 random bytes"

    # --- names
    cn, org = requested["cn"], requested.get("o")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
    if org:
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == org
    if parent is None:
        assert cert.issuer.public_bytes() == cert.subject.public_bytes()
    else:
        pcert = x509.load_der_x509_certificate(parent["der"])
        assert cert.issuer.public_bytes() == pcert.subject.public_bytes()
        assert cert.subject.public_bytes() != pcert.subject.public_bytes()

    # --- basicConstraints
    bc = ext_or_none(cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert bc is not None, "no basicConstraints"
    assert bc.critical, "basicConstraints not critical"
    assert bc.value.ca is True
    if kind == "subord":
        assert bc.value.path_length == 0
    elif kind == "root":
        assert bc.value.path_length == requested.get("pathLength")
    else:  # intermediate: it certifies CAs, so pathLen 0 would break its chains
        assert bc.value.path_length is None or bc.value.path_length >= 1

    # --- keyUsage, no EKU
    ku = ext_or_none(cert, ExtensionOID.KEY_USAGE)
    assert ku is not None and ku.critical, "keyUsage missing or not critical"
    assert sorted(key_usage_names(ku.value)) == sorted(["digitalSignature", "keyCertSign", "cRLSign"])
    assert ext_or_none(cert, ExtensionOID.EXTENDED_KEY_USAGE) is None, "CA certificate has an EKU"

    # --- SKI / AKI
    ski_ext = ext_or_none(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    assert ski_ext is not None and not ski_ext.critical
    ski = ski_ext.value.digest
    assert ski == expected_ski(cert.public_key()), "SKI is not SHA-256[:20] of the subjectPublicKey"
    aki_ext = ext_or_none(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    if parent is None:
        if aki_ext is not None:
            assert aki_ext.value.key_identifier == ski
    else:
        assert aki_ext is not None, "non-root CA certificate without AKI"
        assert not aki_ext.critical
        pski = x509.load_der_x509_certificate(parent["der"]).extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
        assert aki_ext.value.key_identifier == pski

    # --- signature algorithm (the issuer's label decides)
    sig_name = CLASSICAL[issuer_label][1]
    oid, hname = SIG_OIDS[sig_name]
    assert cert.signature_algorithm_oid.dotted_string == oid, (cert.signature_algorithm_oid, sig_name)
    pem_path = tmp_path / f"{ca_id}.pem"
    pem_path.write_bytes(download_pem(d, ca_id))
    text = openssl_text(pem_path)
    if "PSS" in sig_name:
        assert "rsassaPss" in text
        assert f"Hash Algorithm: {hname}" in text, text
        assert f"Mask Algorithm: mgf1 with {hname}" in text, text
    else:
        assert f"Signature Algorithm: {sig_name}" in text, text

    # --- key
    kind_, size = KEY_TYPES[CLASSICAL[label][0]]
    pub = cert.public_key()
    if kind_ == "rsa":
        assert isinstance(pub, rsa.RSAPublicKey)
        assert pub.key_size == size
    else:
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        assert pub.curve.name == size

    # --- validity
    before, after = made
    nb, na = cert.not_valid_before, cert.not_valid_after
    assert before - DAY <= nb <= after + datetime.timedelta(minutes=1), (nb, before)
    if requested.get("expiryDate"):
        assert na == parse_time(requested["expiryDate"])
    elif kind == "root":
        assert add_years(before, 20) - DAY <= na <= add_years(after, 20) + DAY, na
    else:
        assert add_years(before, 10) - DAY <= na <= add_years(after, 10) + DAY, na
    if parent is not None:
        pcert = x509.load_der_x509_certificate(parent["der"])
        assert na <= pcert.not_valid_after, "child outlives its parent"

    # --- CRL distribution point and AIA (they point at the issuer's resources)
    crl = crl_dp_urls(cert)
    aia = aia_urls(cert)
    if parent is not None:
        pid = parent["info"]["id"]
        parent_crl = parent["requested"].get("enableCrl", True)  # roots publish a CRL
        if parent_crl:
            assert crl is not None and len(crl) == 1, f"CRL DP expected, got {crl}"
            assert crl[0].startswith("http://"), crl
            assert crl[0].endswith(f"/crl/{acct}/{pid}/crl.crl"), crl
            assert not ext_or_none(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS).critical
        else:
            assert crl is None, f"CRL DP present although {pid} has no CRL: {crl}"
        assert aia is not None, "non-root CA certificate without AIA"
        assert len(aia["caIssuers"]) == 1 and aia["caIssuers"][0].endswith(f"/ca/{acct}/{pid}.crt"), aia
        assert aia["caIssuers"][0].startswith("http://"), aia
        assert aia["ocsp"] == [], f"CA certificate carries an OCSP URL: {aia}"
        # The caIssuers URL serves the issuer certificate (DER) to anyone.
        r = d.get(aia["caIssuers"][0][len(d.url):]) if aia["caIssuers"][0].startswith(d.url) else None
        assert r is not None, f"caIssuers URL {aia['caIssuers'][0]} is not on this daemon ({d.url})"
        assert r.status_code == 200, (aia["caIssuers"][0], r.status_code, r.text[:200])
        assert r.content == parent["der"], "caIssuers URL does not serve the issuer certificate (DER)"

    # --- JSON details vs the bytes
    assert info["sha256Fingerprint"] == hashlib.sha256(der).hexdigest()
    assert HEX_RE.match(info["serialNumber"]), info["serialNumber"]
    assert int(info["serialNumber"], 16) == serial
    assert info["subjectKeyIdentifier"] == ski.hex()
    if parent is not None:
        assert info["authorityKeyIdentifier"] == aki_ext.value.key_identifier.hex()
    assert info["publicKeyType"] == CLASSICAL[label][0]
    assert info["signatureAlgorithm"] == sig_name
    assert info["signingKeyDetails"] == label
    assert info["type"] == kind
    assert info["status"] == "active"
    assert info["parentId"] == (parent["info"]["id"] if parent else None)
    assert info["basicConstraints"] == {"ca": True, "pathLength": bc.value.path_length}
    assert sorted(info["keyUsages"]) == sorted(["digitalSignature", "keyCertSign", "cRLSign"])
    assert parse_time(info["validFrom"]) == nb
    assert parse_time(info["expiryDate"]) == na
    assert f"CN={cn}" in info["subject"]
    assert info["crlDistributionPoints"] == (crl or [])
    assert info["authorityInfoAccess"]["caIssuers"] == (aia["caIssuers"] if aia else [])
    assert info["authorityInfoAccess"]["ocsp"] == []
    if kind != "root":
        assert info["crlEnabled"] is requested["enableCrl"]
        assert info["ocspEnabled"] is requested.get("enableOcsp", False)
        if requested["enableCrl"]:
            assert info["urls"]["crl"].endswith(f"/crl/{acct}/{ca_id}/crl.crl"), info["urls"]
        else:
            assert info["urls"]["crl"] is None, info["urls"]
        if requested.get("enableOcsp"):
            assert info["urls"]["ocsp"].endswith(f"/ocsp/{acct}/{ca_id}"), info["urls"]
        else:
            assert info["urls"]["ocsp"] is None, info["urls"]
    assert info["deletedAt"] is None
    return cert


def _make_chain(d, label, idx):
    """root -> intermediate -> subord. CRL flags alternate so both cases occur for each type."""
    tag = label.split("+")[0].lower().replace("ecdsap", "ec")  # e.g. rsa-2048, ec256
    inter_crl = idx % 2 == 0
    sub_crl = not inter_crl
    sub_ocsp = idx % 3 == 0
    req = {
        "root": {"id": uid(f"r{idx}"), "friendlyName": f"Root {label}", "type": "root",
                 "signingKeyDetails": label, "subject": f"CN=Chain Root {tag},O=PKIaaS Test",
                 "cn": f"Chain Root {tag}", "o": "PKIaaS Test"},
    }
    req["inter"] = {"id": uid(f"i{idx}"), "friendlyName": f"Inter {label}", "type": "intermediate",
                    "parentId": req["root"]["id"], "signingKeyDetails": label,
                    "subject": f"CN=Chain Inter {tag},O=PKIaaS Test", "enableCrl": inter_crl, "enableOcsp": False,
                    "cn": f"Chain Inter {tag}", "o": "PKIaaS Test"}
    req["sub"] = {"id": uid(f"s{idx}"), "friendlyName": f"Issuing {label}", "type": "subord",
                  "parentId": req["inter"]["id"], "signingKeyDetails": label,
                  "subject": f"CN=Chain Issuing {tag}", "enableCrl": sub_crl, "enableOcsp": sub_ocsp,
                  "cn": f"Chain Issuing {tag}"}
    out = {}
    for role in ("root", "inter", "sub"):
        body = {k: v for k, v in req[role].items() if k not in ("cn", "o")}
        info, before, after = _create(d, **body)
        assert info["id"] == body["id"]
        out[role] = {"info": info, "requested": req[role], "made": (before, after)}
    return out


@pytest.mark.parametrize("label", LABELS)
def test_chains(daemon, tmp_path, label):
    idx = LABELS.index(label)
    chain = _make_chain(daemon, label, idx)
    ids = {role: chain[role]["info"]["id"] for role in chain}

    # Downloads: DER == PEM, GET == POST answer.
    for role, c in chain.items():
        der = download_der(daemon, ids[role])
        pem = download_pem(daemon, ids[role])
        assert x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER) == der
        c["der"] = der
        got = get_ca(daemon, ids[role])
        for k in ("sha256Fingerprint", "serialNumber", "subjectKeyIdentifier", "status", "type", "expiryDate"):
            assert got[k] == c["info"][k], (role, k)
        (tmp_path / f"{role}.pem").write_bytes(pem)

    # Chains are the CA certificate then its issuers, up to the root.
    assert download_chain(daemon, ids["root"]) == [chain["root"]["der"]]
    assert download_chain(daemon, ids["inter"]) == [chain["inter"]["der"], chain["root"]["der"]]
    sub_chain = download_chain(daemon, ids["sub"])
    assert sub_chain == [chain["sub"]["der"], chain["inter"]["der"], chain["root"]["der"]]

    # openssl accepts the path (plain and strict).
    for strict in ([], ["-x509_strict"]):
        cp = openssl("verify", *strict, "-CAfile", "root.pem", "-untrusted", "inter.pem", "sub.pem",
                     cwd=tmp_path, check=False)
        out = cp.stdout.decode()
        assert cp.returncode == 0 and "sub.pem: OK" in out, (strict, out, cp.stderr.decode())
    cp = openssl("verify", "-CAfile", "root.pem", "inter.pem", cwd=tmp_path, check=False)
    assert cp.returncode == 0 and "inter.pem: OK" in cp.stdout.decode(), cp.stderr.decode()
    cp = openssl("verify", "-CAfile", "root.pem", "root.pem", cwd=tmp_path, check=False)
    assert cp.returncode == 0 and "root.pem: OK" in cp.stdout.decode(), cp.stderr.decode()
    # ... and does not accept the issuing CA without its intermediate.
    cp = openssl("verify", "-CAfile", "root.pem", "sub.pem", cwd=tmp_path, check=False)
    assert cp.returncode != 0

    certs = {}
    certs["root"] = check_ca_cert(daemon, tmp_path, label=label, kind="root", info=chain["root"]["info"],
                                  der=chain["root"]["der"], requested=chain["root"]["requested"],
                                  made=chain["root"]["made"])
    certs["inter"] = check_ca_cert(daemon, tmp_path, label=label, kind="intermediate",
                                   info=chain["inter"]["info"], der=chain["inter"]["der"],
                                   requested=chain["inter"]["requested"], made=chain["inter"]["made"],
                                   parent=chain["root"])
    certs["sub"] = check_ca_cert(daemon, tmp_path, label=label, kind="subord", info=chain["sub"]["info"],
                                 der=chain["sub"]["der"], requested=chain["sub"]["requested"],
                                 made=chain["sub"]["made"], parent=chain["inter"])

    serials = {c.serial_number for c in certs.values()}
    assert len(serials) == 3, "serials repeat within a chain"
    skis = {c.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
            for c in certs.values()}
    assert len(skis) == 3, "keys repeat within a chain"

    listed = {c["id"]: c for c in daemon.api("GET", "/cas").json()["cas"]}
    for role in ids:
        assert listed[ids[role]]["sha256Fingerprint"] == chain[role]["info"]["sha256Fingerprint"]


def test_pathlen(daemon, tmp_path):
    root_req = {"id": uid("pl1"), "type": "root", "signingKeyDetails": "ECDSAP256+SHA256",
                "subject": "CN=PathLen One Root", "pathLength": 1}
    root, before, after = _create(daemon, **root_req)
    root_der = download_der(daemon, root["id"])
    check_ca_cert(daemon, tmp_path, label="ECDSAP256+SHA256", kind="root", info=root, der=root_der,
                  requested=dict(root_req, cn="PathLen One Root"), made=(before, after))
    bc = x509.load_der_x509_certificate(root_der).extensions.get_extension_for_oid(
        ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical and bc.value.ca and bc.value.path_length == 1
    assert root["basicConstraints"] == {"ca": True, "pathLength": 1}

    sub_req = {"id": uid("pl1s"), "type": "subord", "parentId": root["id"], "signingKeyDetails": "ECDSAP256+SHA256",
               "subject": "CN=PathLen Issuing", "enableCrl": True, "enableOcsp": True}
    sub, before, after = _create(daemon, **sub_req)
    sub_der = download_der(daemon, sub["id"])
    check_ca_cert(daemon, tmp_path, label="ECDSAP256+SHA256", kind="subord", info=sub, der=sub_der,
                  requested=dict(sub_req, cn="PathLen Issuing"), made=(before, after),
                  parent={"info": root, "der": root_der, "requested": root_req})
    (tmp_path / "root.pem").write_bytes(download_pem(daemon, root["id"]))
    (tmp_path / "sub.pem").write_bytes(download_pem(daemon, sub["id"]))
    cp = openssl("verify", "-x509_strict", "-CAfile", "root.pem", "sub.pem", cwd=tmp_path, check=False)
    assert cp.returncode == 0 and "sub.pem: OK" in cp.stdout.decode(), cp.stderr.decode()


def test_explicit_expiry(daemon, tmp_path):
    """expiryDate is honoured exactly; a default child validity never outlives a short-lived parent."""
    now = utcnow()
    root_exp = fmt_time(add_years(now, 3).replace(hour=0, minute=0, second=0))
    root_req = {"id": uid("exp"), "type": "root", "signingKeyDetails": "ECDSAP384+SHA384",
                "subject": "CN=Expiry Root", "expiryDate": root_exp}
    root, before, after = _create(daemon, **root_req)
    root_der = download_der(daemon, root["id"])
    rc = check_ca_cert(daemon, tmp_path, label="ECDSAP384+SHA384", kind="root", info=root, der=root_der,
                       requested=dict(root_req, cn="Expiry Root"), made=(before, after))
    assert fmt_time(rc.not_valid_after) == root_exp

    child_exp = fmt_time(add_years(now, 2).replace(hour=12, minute=0, second=0))
    inter_req = {"id": uid("expi"), "type": "intermediate", "parentId": root["id"],
                 "signingKeyDetails": "ECDSAP384+SHA384", "subject": "CN=Expiry Inter", "expiryDate": child_exp,
                 "enableCrl": False}
    inter, before, after = _create(daemon, **inter_req)
    inter_der = download_der(daemon, inter["id"])
    ic = check_ca_cert(daemon, tmp_path, label="ECDSAP384+SHA384", kind="intermediate", info=inter,
                       der=inter_der, requested=dict(inter_req, cn="Expiry Inter"), made=(before, after),
                       parent={"info": root, "der": root_der, "requested": root_req})
    assert fmt_time(ic.not_valid_after) == child_exp

    # No expiryDate under a root that expires in 3 years: either refused, or capped at the parent.
    r = daemon.api("POST", "/cas", json={"id": uid("expd"), "type": "subord", "parentId": root["id"],
                                         "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=Expiry Default",
                                         "enableCrl": True})
    if r.status_code == 201:
        der = download_der(daemon, r.json()["id"])
        assert x509.load_der_x509_certificate(der).not_valid_after <= rc.not_valid_after
    else:
        assert 400 <= r.status_code < 500, r.text
