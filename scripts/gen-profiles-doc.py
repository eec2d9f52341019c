#!/usr/bin/env python3
"""Generate docs/profiles.md from src/ca/profiles/system.json.

Usage:
  scripts/gen-profiles-doc.py            # (re)write docs/profiles.md
  scripts/gen-profiles-doc.py --check    # exit 1 if docs/profiles.md is out of date
  scripts/gen-profiles-doc.py --stdout   # print the generated Markdown

Options --json PATH and --out PATH override the default locations (relative to the
repository root, the parent of this script's directory).

The script also validates the profile file: every profile must have exactly the
documented keys with values of the right shape.  Validation errors exit with status 2.
Only the Python 3 standard library is used.
"""

import argparse
import difflib
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(ROOT, "src", "ca", "profiles", "system.json")
DEFAULT_OUT = os.path.join(ROOT, "docs", "profiles.md")

# --------------------------------------------------------------------------- names

KEY_USAGES = {
    "digitalSignature": "Digital Signature",
    "nonRepudiation": "Non-Repudiation",
    "keyEncipherment": "Key Encipherment",
    "dataEncipherment": "Data Encipherment",
    "keyAgreement": "Key Agreement",
    "keyCertSign": "Certificate Sign",
    "cRLSign": "CRL Sign",
    "encipherOnly": "Encipher Only",
    "decipherOnly": "Decipher Only",
}

EKU_NAMES = {
    "2.5.29.37.0": "Any Extended Key Usage",
    "1.3.6.1.5.5.7.3.1": "Server Authentication",
    "1.3.6.1.5.5.7.3.2": "Client Authentication",
    "1.3.6.1.5.5.7.3.3": "Code Signing",
    "1.3.6.1.5.5.7.3.4": "Email Protection",
    "1.3.6.1.5.5.7.3.5": "IPsec End System",
    "1.3.6.1.5.5.7.3.6": "IPsec Tunnel",
    "1.3.6.1.5.5.7.3.7": "IPsec User",
    "1.3.6.1.5.5.7.3.8": "Time Stamping",
    "1.3.6.1.5.5.7.3.9": "OCSP Signing",
    "1.3.6.1.5.5.7.3.17": "IPsec IKE",
    "1.3.6.1.5.5.7.3.36": "Document Signing",
    "1.3.6.1.5.2.3.4": "Kerberos PKINIT Client Authentication",
    "1.3.6.1.5.2.3.5": "Kerberos PKINIT KDC",
    "1.3.6.1.4.1.311.20.2.2": "Microsoft Smart Card Logon",
    "1.3.6.1.4.1.311.10.3.4": "Microsoft Encrypting File System",
    "1.3.6.1.4.1.311.10.3.12": "Microsoft Document Signing",
}

EXTENSION_NAMES = {
    "1.3.6.1.4.1.311.21.10": "Application Policies",
    "2.5.29.32": "Certificate Policies",
    "2.5.29.37": "Extended Key Usage",
    "1.3.6.1.4.1.311.20.2": "MSTemplateName",
    "1.3.6.1.4.1.311.21.7": "MSTemplateOID",
    "1.2.840.113549.1.9.15": "Smime Capabilities",
    "1.3.6.1.4.1.311.25.2": "szOID_NTDS_CA_SECURITY_EXT",
    "2.5.29.17": "Subject Alternative Name",
    "2.5.29.15": "Key Usage",
    "2.5.29.19": "Basic Constraints",
    "2.5.29.9": "Subject Directory Attributes",
    "1.3.6.1.5.5.7.1.1": "Authority Information Access",
    "1.3.6.1.5.5.7.1.24": "TLS Feature",
}

POLICY_NAMES = {
    "2.5.29.32.0": "anyPolicy",
    "2.23.146.1.2.1.0": "GSMA id-rspRole-ci",
    "2.23.146.1.2.1.1": "GSMA id-rspRole-euicc",
    "2.23.146.1.2.1.2": "GSMA id-rspRole-eum",
    "2.23.146.1.2.1.3": "GSMA id-rspRole-dp-tls",
    "2.23.146.1.2.1.4": "GSMA id-rspRole-dp-auth",
    "2.23.146.1.2.1.5": "GSMA id-rspRole-dp-pb",
    "2.23.146.1.2.1.6": "GSMA id-rspRole-ds-tls",
    "2.23.146.1.2.1.7": "GSMA id-rspRole-ds-auth",
}

ALL_KEY_TYPES = ["RSA-2048", "RSA-3072", "RSA-4096", "EC-P256", "EC-P384", "EC-P521"]
CA_TYPES = ["root", "intermediate", "subord"]

# Distinguished-name attribute aliases accepted by every profile (product guide, "Distinguished names").
DN_ALIASES = [
    ("CN, CommonName", "2.5.4.3"),
    ("SN, SurName", "2.5.4.4"),
    ("SERIALNUMBER, DeviceSerialNumber", "2.5.4.5"),
    ("C, Country", "2.5.4.6"),
    ("L, Locality", "2.5.4.7"),
    ("ST, S, State", "2.5.4.8"),
    ("STREET, StreetAddress", "2.5.4.9"),
    ("O, Org, Organization", "2.5.4.10"),
    ("OU, OrganizationalUnit, OrganizationUnit, OrgUnit", "2.5.4.11"),
    ("T, Title", "2.5.4.12"),
    ("BUSINESSCATEGORY", "2.5.4.15"),
    ("POSTALCODE", "2.5.4.17"),
    ("givenName, G", "2.5.4.42"),
    ("I, Initials", "2.5.4.43"),
    ("ORGANIZATIONIDENTIFIER", "2.5.4.97"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("DC, DomainComponent", "0.9.2342.19200300.100.1.25"),
    ("Email, E", "1.2.840.113549.1.9.1"),
    ("unstructuredName", "1.2.840.113549.1.9.2"),
    ("unstructuredAddress", "1.2.840.113549.1.9.8"),
    ("JurisdictionOfIncorporationLocalityName", "1.3.6.1.4.1.311.60.2.1.1"),
    ("JurisdictionOfIncorporationStateOrProvinceName", "1.3.6.1.4.1.311.60.2.1.2"),
    ("JurisdictionOfIncorporationCountryName", "1.3.6.1.4.1.311.60.2.1.3"),
    ("TrademarkOfficeName", "1.3.6.1.4.1.53087.1.2"),
    ("TrademarkCountryOrRegionName", "1.3.6.1.4.1.53087.1.3"),
    ("TrademarkRegistration", "1.3.6.1.4.1.53087.1.4"),
    ("LegalEntityIdentifier", "1.3.6.1.4.1.53087.1.5"),
    ("WordMark", "1.3.6.1.4.1.53087.1.6"),
    ("MarkType", "1.3.6.1.4.1.53087.1.13"),
    ("StatuteCountryName", "1.3.6.1.4.1.53087.3.2"),
    ("StatuteStateOrProvinceName", "1.3.6.1.4.1.53087.3.3"),
    ("StatuteLocalityName", "1.3.6.1.4.1.53087.3.4"),
    ("StatuteCitation", "1.3.6.1.4.1.53087.3.5"),
    ("StatuteURL", "1.3.6.1.4.1.53087.3.6"),
]

# --------------------------------------------------------------------------- groups

AUTHORITY_GROUPS = ["basic", "external", "intermediate", "issuing"]
SUBSCRIBER_GROUPS = ["cmp", "codesigning", "esim", "est", "intune", "mdmws", "mobile", "multiuse",
                     "privatessl", "scep", "smartcard", "smime", "v2g", "wstep"]

GROUP_INFO = {
    "basic": ("Basic intermediate CAs",
              "Certificates for intermediate subordinate CAs that may certify further intermediate or issuing CAs."),
    "external": ("CAs under an external root",
                 "Certificates for issuing CAs whose chain leads to an imported external root (`externalKey`), "
                 "for example an on-premises Microsoft root CA. The external root signs the CA's CSR itself; the "
                 "profile describes the certificate it must produce (cA=TRUE, keyCertSign) and can also be assigned "
                 "to root and intermediate CAs to issue such certificates in pkiaas."),
    "intermediate": ("Intermediate CAs",
                     "Certificates for intermediate subordinate CAs limited to certifying issuing CAs."),
    "issuing": ("Issuing CAs",
                "Certificates for issuing subordinate CAs, which certify end entities only. "
                "This profile is not exposed for cloning and cannot be configured."),
    "cmp": ("Certificate Management Protocol (CMP)",
            "Devices and services that enroll with CMP (RFC 4210 / RFC 9483 lightweight CMP), typically industrial "
            "and IoT equipment."),
    "codesigning": ("Code and document signing",
                    "Signing software, scripts, drivers and documents, and time-stamping signatures (RFC 3161). "
                    "RSA keys must be at least 3072 bits. Unknown request extensions are rejected."),
    "esim": ("eSIM remote provisioning (GSMA SGP.22)",
             "eUICC and SM-DP+ certificates for consumer eSIM remote SIM provisioning. GSMA SGP.22 uses ECDSA on "
             "256-bit curves (NIST P-256 or brainpoolP256r1); pkiaas supports NIST P-256, so these profiles accept "
             "EC-P256 keys only. Each profile carries its GSMA RSP role as a certificate policy."),
    "est": ("Enrollment over Secure Transport (EST)",
            "Devices and services that enroll with EST (RFC 7030)."),
    "intune": ("Microsoft Intune (SCEP)",
               "Devices managed by Microsoft Intune that enroll through SCEP. The Intune SCEP profile usually asks "
               "for the Client Authentication extended key usage in the request, which these profiles accept."),
    "mdmws": ("Mobile Device Management Web Services (MDMWS)",
              "Devices managed by an MDM provider (for example VMware Workspace ONE or Ivanti Neurons). "
              "`mdmws-p12-*` profiles are used with the PKI protocol for PKCS #12 enrollment (the key is generated "
              "server-side); every `mdmws` profile can be used with SCEP."),
    "mobile": ("Mobile devices",
               "Identity, Wi-Fi (EAP-TLS) and VPN certificates for phones and tablets."),
    "multiuse": ("Multi-use TLS",
                 "General-purpose TLS client and/or server certificates. `multiuse-p12-key-encipherment-client-server` "
                 "is the profile to use for LDAPS certificates of Active Directory domain controllers "
                 "(keep the expiry at or below 397 days and put the controller's FQDN in a DNS SAN)."),
    "privatessl": ("Private TLS/SSL",
                   "TLS certificates for private (internal) servers and clients. The `*-supply-san` profiles copy "
                   "the subject common names into DNS subject alternative names, for third-party services such as "
                   "Venafi that do not supply SANs."),
    "scep": ("Simple Certificate Enrollment Protocol (SCEP)",
             "Devices, routers and VPN gateways that enroll with SCEP (RFC 8894). SCEP relies on RSA keys, so these "
             "profiles accept RSA keys only."),
    "smartcard": ("Smart cards and tokens",
                  "Smart card logon (Windows and Kerberos PKINIT), signing and key-management certificates. "
                  "Logon profiles require a subject alternative name with the user principal name (UPN). "
                  "The Microsoft template and security (strong mapping) extensions are accepted in requests."),
    "smime": ("Secure email (S/MIME)",
              "Signing and encryption certificates for email. Every profile requires a subject alternative name "
              "with the mailbox address (rfc822Name). RSA keys are used for key transport (Key Encipherment) and "
              "EC keys for key agreement."),
    "v2g": ("Vehicle-to-grid (ISO 15118)",
            "Plug & Charge certificates for electric vehicles and charging stations. ISO 15118-2 mandates ECDSA "
            "on P-256 (secp256r1), so these profiles accept EC-P256 keys only. Unknown request extensions are "
            "rejected."),
    "wstep": ("Active Directory (WSTEP)",
              "Active Directory auto-enrollment through the WS-Trust X.509v3 Token Enrollment Extensions Protocol "
              "(MS-WSTEP), for users and machines of a Windows domain."),
}

GROUP_USE_CASES = {
    "wstep": ["CA Gateway API", "PKIaaS gateway", "On-prem Enrollment Gateway"],
}

PROFILE_KEYS = ["id", "group", "kind", "description", "allowedCATypes", "validity_period", "usages",
                "allowed_extensions", "ignore_unknown_extensions", "ca_constraint", "key_usage_critical",
                "extended_key_usage_critical", "supply_san", "pkcs12", "certificate_policies",
                "subject_alt_name", "key_types"]

OID_RE = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
DURATION_RE = re.compile(r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
ID_RE = re.compile(r"^[a-z0-9-]{2,64}$")


# --------------------------------------------------------------------------- validation

class ProfileError(Exception):
    pass


def validate(profiles):
    if not isinstance(profiles, list) or not profiles:
        raise ProfileError("the profile file must be a non-empty JSON array")
    seen = set()
    for i, p in enumerate(profiles):
        where = "profile #%d" % i
        if not isinstance(p, dict):
            raise ProfileError("%s: not an object" % where)
        if "id" in p:
            where = "profile %r" % p["id"]
        keys = list(p.keys())
        missing = [k for k in PROFILE_KEYS if k not in p]
        extra = [k for k in keys if k not in PROFILE_KEYS]
        if missing or extra:
            raise ProfileError("%s: missing keys %s, unknown keys %s" % (where, missing, extra))
        for k in ("id", "group"):
            if not isinstance(p[k], str) or not ID_RE.match(p[k]):
                raise ProfileError("%s: %s must be 2-64 chars of [a-z0-9-]" % (where, k))
        if p["id"] in seen:
            raise ProfileError("%s: duplicate id" % where)
        seen.add(p["id"])
        if p["kind"] not in ("authority", "subscriber"):
            raise ProfileError("%s: kind must be authority or subscriber" % where)
        groups = AUTHORITY_GROUPS if p["kind"] == "authority" else SUBSCRIBER_GROUPS
        if p["group"] not in groups:
            raise ProfileError("%s: group %r is not a %s group" % (where, p["group"], p["kind"]))
        if p["kind"] == "subscriber" and not p["id"].startswith(p["group"] + "-"):
            raise ProfileError("%s: subscriber profile ids must start with the group name" % where)
        if not isinstance(p["description"], str) or not p["description"].strip():
            raise ProfileError("%s: description must be a non-empty string" % where)
        cat = p["allowedCATypes"]
        if not isinstance(cat, list) or not cat or any(t not in CA_TYPES for t in cat) or len(set(cat)) != len(cat):
            raise ProfileError("%s: allowedCATypes must be a non-empty subset of %s" % (where, CA_TYPES))
        if p["kind"] == "subscriber" and cat != ["subord"]:
            raise ProfileError("%s: subscriber profiles are for subord CAs only" % where)
        if p["kind"] == "authority" and "subord" in cat:
            raise ProfileError("%s: subord CAs cannot issue CA certificates" % where)
        if not isinstance(p["validity_period"], str) or not DURATION_RE.match(p["validity_period"]):
            raise ProfileError("%s: validity_period must be an ISO 8601 duration" % where)
        us = p["usages"]
        if not isinstance(us, list) or not us:
            raise ProfileError("%s: usages must be a non-empty list" % where)
        for u in us:
            if not isinstance(u, str) or (u not in KEY_USAGES and not OID_RE.match(u)):
                raise ProfileError("%s: bad usage %r" % (where, u))
        if not any(u in KEY_USAGES for u in us):
            raise ProfileError("%s: usages must include at least one key usage" % where)
        for k in ("allowed_extensions", "certificate_policies"):
            v = p[k]
            if not isinstance(v, list) or any(not isinstance(o, str) or not OID_RE.match(o) for o in v):
                raise ProfileError("%s: %s must be a list of dotted OIDs" % (where, k))
            if len(set(v)) != len(v):
                raise ProfileError("%s: %s has duplicates" % (where, k))
        for k in ("ignore_unknown_extensions", "key_usage_critical", "extended_key_usage_critical",
                  "supply_san", "pkcs12"):
            if not isinstance(p[k], bool):
                raise ProfileError("%s: %s must be a boolean" % (where, k))
        cc = p["ca_constraint"]
        if not isinstance(cc, dict) or not isinstance(cc.get("cA"), bool) or \
                any(k not in ("cA", "pathLenConstraint") for k in cc):
            raise ProfileError("%s: ca_constraint must be {\"cA\": bool[, \"pathLenConstraint\": n]}" % where)
        if "pathLenConstraint" in cc:
            pl = cc["pathLenConstraint"]
            if not cc["cA"] or isinstance(pl, bool) or not isinstance(pl, int) or pl < 0:
                raise ProfileError("%s: pathLenConstraint needs cA=true and a non-negative integer" % where)
        if cc["cA"] != (p["kind"] == "authority"):
            raise ProfileError("%s: cA must be true exactly for authority profiles" % where)
        if p["kind"] == "authority" and "keyCertSign" not in us:
            raise ProfileError("%s: authority profiles need keyCertSign" % where)
        if p["kind"] == "subscriber" and ("keyCertSign" in us or "cRLSign" in us):
            raise ProfileError("%s: subscriber profiles cannot have keyCertSign or cRLSign" % where)
        if p["subject_alt_name"] not in ("optional", "required"):
            raise ProfileError("%s: subject_alt_name must be optional or required" % where)
        kt = p["key_types"]
        if not isinstance(kt, list) or not kt or any(t not in ALL_KEY_TYPES for t in kt) or len(set(kt)) != len(kt):
            raise ProfileError("%s: key_types must be a non-empty subset of %s" % (where, ALL_KEY_TYPES))


# --------------------------------------------------------------------------- formatting helpers

def human_duration(d):
    m = DURATION_RE.match(d)
    parts = []
    for n, unit in zip(m.groups(), ("year", "month", "week", "day", "hour", "minute", "second")):
        if n is not None:
            n = int(n)
            parts.append("%d %s%s" % (n, unit, "" if n == 1 else "s"))
    return ", ".join(parts) if parts else d


def ku_list(p):
    return [u for u in p["usages"] if u in KEY_USAGES]


def eku_list(p):
    return [u for u in p["usages"] if u not in KEY_USAGES]


def fmt_ku(p):
    return ", ".join(KEY_USAGES[u] for u in ku_list(p)) or "—"


def fmt_eku(p):
    ekus = eku_list(p)
    if not ekus:
        return "—"
    return ", ".join("%s (`%s`)" % (EKU_NAMES.get(o, "Unnamed"), o) for o in ekus)


def fmt_keys(p):
    if p["key_types"] == ALL_KEY_TYPES:
        return "All"
    return ", ".join(p["key_types"])


def yes_no(b):
    return "Yes" if b else "No"


def fmt_bc(cc):
    if not cc["cA"]:
        return "cA=FALSE"
    if "pathLenConstraint" in cc:
        return "cA=TRUE, pathLenConstraint=%d" % cc["pathLenConstraint"]
    return "cA=TRUE, no pathLenConstraint"


def fmt_oid(o, names):
    n = names.get(o)
    return "%s (`%s`)" % (n, o) if n else "`%s`" % o


def anchor(title):
    a = title.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def per_profile(profiles, fn):
    """Return [(value, [ids])] grouping profiles that share the same value, in profile order."""
    out = []
    for p in profiles:
        v = fn(p)
        for entry in out:
            if entry[0] == v:
                entry[1].append(p["id"])
                break
        else:
            out.append((v, [p["id"]]))
    return out


def shared_or_split(profiles, fn):
    groups = per_profile(profiles, fn)
    if len(groups) == 1:
        return groups[0][0]
    return "; ".join("%s: %s" % (", ".join("`%s`" % i for i in ids), v) for v, ids in groups)


# --------------------------------------------------------------------------- document

def intro(profiles):
    n_auth = sum(1 for p in profiles if p["kind"] == "authority")
    n_sub = len(profiles) - n_auth
    L = []
    L.append("# Certificate profiles")
    L.append("")
    L.append("<!-- Generated by scripts/gen-profiles-doc.py from src/ca/profiles/system.json. Do not edit by hand: -->")
    L.append("<!-- edit the JSON, run `python3 scripts/gen-profiles-doc.py`, and commit both files. -->")
    L.append("")
    L.append("Every certificate that pkiaas issues is issued in the context of a **certificate profile**: a named set of "
             "properties (key usages, extended key usages, default validity, accepted request extensions, basic "
             "constraints, subject alternative name rules and allowed key types) that the issuing CA applies to the "
             "request. Requests name the profile with `profileId`, and the profile must be assigned to the issuing CA.")
    L.append("")
    L.append("pkiaas ships %d **system profiles**: %d authority profiles, used by root and intermediate CAs to certify "
             "subordinate CAs, and %d subscriber profiles, used by issuing (`subord`) CAs to certify end entities. "
             "Profiles are organized into groups tuned to a use case. System profiles are read-only; subscriber "
             "profiles can be cloned into **custom profiles** (see [Cloning a profile](#cloning-a-profile)). "
             "Authority profiles cannot be cloned or modified." % (len(profiles), n_auth, n_sub))
    L.append("")
    L.append("- [Profile fields](#profile-fields)")
    L.append("- [Cloning a profile](#cloning-a-profile)")
    L.append("- [Certificate contents common to all profiles](#certificate-contents-common-to-all-profiles)")
    L.append("- [Distinguished names](#distinguished-names)")
    L.append("- [Authority certificate profiles](#authority-certificate-profiles)")
    for g in AUTHORITY_GROUPS:
        L.append("  - [%s](#%s)" % (g, anchor(g)))
    L.append("- [Subscriber certificate profiles](#subscriber-certificate-profiles)")
    for g in SUBSCRIBER_GROUPS:
        L.append("  - [%s](#%s)" % (g, anchor(g)))
    L.append("")

    L.append("## Profile fields")
    L.append("")
    L.append("A profile is a JSON object (see also [api.md](api.md#certificate-profiles)):")
    L.append("")
    L.append("| JSON field | Value |")
    L.append("|---|---|")
    rows = [
        ("id", "Unique identifier: 2 to 64 characters of `[a-z0-9-]`. Subscriber profile ids start with their group name."),
        ("group", "The one group the profile belongs to (2 to 64 characters of `[a-z0-9-]`)."),
        ("kind", "`authority` (certifies CAs) or `subscriber` (certifies end entities)."),
        ("description", "One-sentence summary."),
        ("allowedCATypes", "CA types the profile can be assigned to: `root`, `intermediate`, `subord`. Subscriber profiles: `[\"subord\"]`."),
        ("validity_period", "Default validity of issued certificates, as an ISO 8601 duration (`P1Y`, `P397D`, `P10Y`). A request may ask for another period; the validity never goes beyond the issuing CA's expiry."),
        ("usages", "Key usage names (`digitalSignature`, `nonRepudiation`, `keyEncipherment`, `dataEncipherment`, `keyAgreement`, `keyCertSign`, `cRLSign`, `encipherOnly`, `decipherOnly`) and extended key usage OIDs in dotted form. `keyEncipherment` and `dataEncipherment` are RSA key-transport usages: a certificate for an EC key leaves them out (RFC 5480 section 3), and a profile whose key usages are only these accepts RSA keys only."),
        ("allowed_extensions", "OIDs of the X.509 extensions accepted in requests."),
        ("ignore_unknown_extensions", "`true`: other request extensions are ignored; `false`: requests with other extensions are rejected."),
        ("ca_constraint", "Basic constraints of issued certificates (RFC 5280 section 4.2.1.9): `{\"cA\":false}` or `{\"cA\":true[,\"pathLenConstraint\":n]}`."),
        ("key_usage_critical", "Whether the Key Usage extension is critical."),
        ("extended_key_usage_critical", "Whether the Extended Key Usage extension is critical."),
        ("supply_san", "`true`: subject common names are copied into DNS subject alternative names."),
        ("pkcs12", "`true`: the profile is meant for server-side key generation, with the key and certificate returned as PKCS #12."),
        ("certificate_policies", "Policy OIDs always written to the Certificate Policies extension (usually empty)."),
        ("subject_alt_name", "`optional` or `required`: whether a request must supply at least one subject alternative name."),
        ("key_types", "Subscriber key types accepted: subset of `RSA-2048`, `RSA-3072`, `RSA-4096`, `EC-P256`, `EC-P384`, `EC-P521`."),
    ]
    for k, v in rows:
        L.append("| `%s` | %s |" % (k, v))
    L.append("")
    L.append("Example (`privatessl-tls-server`):")
    L.append("")
    L.append("```json")
    ex = next((p for p in profiles if p["id"] == "privatessl-tls-server"), profiles[0])
    L.append("{")
    L.append(",\n".join("  %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in ex.items()))
    L.append("}")
    L.append("```")
    L.append("")

    L.append("## Cloning a profile")
    L.append("")
    L.append("Clone a subscriber system profile (or a custom profile) to change its fields. The clone keeps the source's "
             "group unless you give another one. With the API (under `/api/v1/partitions/{accountId}`):")
    L.append("")
    L.append("```sh")
    L.append("curl -H \"Authorization: Bearer $PKIAAS_TOKEN\" -H 'Content-Type: application/json' \\")
    L.append("     -d '{\"id\":\"my-tls\",\"sourceProfileId\":\"privatessl-tls-server\",\"validity_period\":\"P90D\"}' \\")
    L.append("     \"$PKIAAS_URL/api/v1/partitions/$PKIAAS_PARTITION/profiles\"")
    L.append("```")
    L.append("")
    L.append("With the CLI:")
    L.append("")
    L.append("```sh")
    L.append("pkiaas profile clone --from privatessl-tls-server --id my-tls")
    L.append("```")
    L.append("")
    L.append("Then assign the profile to an issuing CA (`POST /cas/{caId}/profiles` with `{\"profileId\":\"my-tls\"}`). "
             "`PUT /profiles/{id}` replaces a custom profile's fields and `DELETE /profiles/{id}` removes it (refused while "
             "a CA uses it). System profiles cannot be changed or deleted.")
    L.append("")

    L.append("## Certificate contents common to all profiles")
    L.append("")
    L.append("Every issued certificate carries the extensions below. The group sections list the values that depend "
             "on the profile.")
    L.append("")
    L.append("| Extension | Critical | Value |")
    L.append("|---|---|---|")
    L.append("| Basic Constraints | Yes | From `ca_constraint`: cA=FALSE for subscriber profiles; cA=TRUE with the profile's pathLenConstraint for authority profiles. |")
    L.append("| Key Usage | Yes (`key_usage_critical`) | The key usage names of `usages`. |")
    L.append("| Extended Key Usage | `extended_key_usage_critical` (normally No) | The OIDs of `usages`; absent when the profile lists none. Never present in CA certificates. |")
    L.append("| Authority Key Identifier | No | Matches the subjectKeyIdentifier of the issuing CA certificate. |")
    L.append("| Subject Key Identifier | No | The leftmost 160 bits of the SHA-256 hash of the value of the BIT STRING subjectPublicKey (RFC 7093 section 2, method 1). |")
    L.append("| CRL Distribution Points | No | Present when the issuing CA publishes a CRL (CRL enabled on the CA). |")
    L.append("| Authority Information Access | No | caIssuers URL of the issuing CA certificate, always; OCSP URL when OCSP is enabled on the issuing CA. |")
    L.append("| Subject Alternative Name | No; Yes when the subject is empty (RFC 5280 section 4.2.1.6) | From the request's `subjectAltNames`, plus the subject common names for `supply_san` profiles. Required when `subject_alt_name` is `required`. |")
    L.append("| Certificate Policies | No | The profile's `certificate_policies`, plus policies from the request when the profile accepts `2.5.29.32`. Absent when empty. |")
    L.append("")
    L.append("Certificate fields:")
    L.append("")
    L.append("| Field | Value |")
    L.append("|---|---|")
    L.append("| Issuer | The subject of the issuing CA: a root or intermediate CA for authority profiles, an issuing subordinate CA for subscriber profiles. |")
    L.append("| Subject | No constraint (see [Distinguished names](#distinguished-names)). |")
    L.append("| Validity period | The profile's `validity_period` when the request does not specify one; never beyond the issuing CA's expiry (the response then reports `validityCapped`). |")
    L.append("")

    L.append("## Distinguished names")
    L.append("")
    L.append("There is no restriction on distinguished names (DNs) per certificate profile. All profiles accept the "
             "following attribute identifiers in subjects.")
    L.append("")
    L.append("| Alias | OID |")
    L.append("|---|---|")
    for a, o in DN_ALIASES:
        L.append("| %s | `%s` |" % (a, o))
    L.append("")
    return L


def group_section(group, gp):
    title, summary = GROUP_INFO[group]
    kind = gp[0]["kind"]
    L = []
    L.append("### %s" % group)
    L.append("")
    L.append("**%s.** %s" % (title, summary))
    L.append("")
    if group in GROUP_USE_CASES:
        L.append("All profiles of this group support the following use cases.")
        L.append("")
        for u in GROUP_USE_CASES[group]:
            L.append("- %s" % u)
        L.append("")

    L.append("| Profile | Description |")
    L.append("|---|---|")
    for p in gp:
        L.append("| `%s` | %s |" % (p["id"], p["description"]))
    L.append("")

    L.append("#### %s: key usages and settings" % group)
    L.append("")
    if kind == "authority":
        L.append("| Profile | CA types | Key usages | Basic constraints | Validity default | Key types |")
        L.append("|---|---|---|---|---|---|")
        for p in gp:
            L.append("| `%s` | %s | %s | %s | %s (`%s`) | %s |" % (
                p["id"], ", ".join(p["allowedCATypes"]), fmt_ku(p), fmt_bc(p["ca_constraint"]),
                human_duration(p["validity_period"]), p["validity_period"], fmt_keys(p)))
    else:
        L.append("| Profile | Key usages | Extended key usages | Validity default | PKCS#12 | Supply SAN | SAN required | Key types |")
        L.append("|---|---|---|---|---|---|---|---|")
        for p in gp:
            L.append("| `%s` | %s | %s | %s (`%s`) | %s | %s | %s | %s |" % (
                p["id"], fmt_ku(p), fmt_eku(p), human_duration(p["validity_period"]), p["validity_period"],
                yes_no(p["pkcs12"]), yes_no(p["supply_san"]), yes_no(p["subject_alt_name"] == "required"),
                fmt_keys(p)))
    L.append("")

    # Request extensions
    L.append("#### %s: request extensions" % group)
    L.append("")
    ext_groups = per_profile(gp, lambda p: tuple(p["allowed_extensions"]))
    for exts, ids in ext_groups:
        if len(ext_groups) == 1:
            who = "All %s profiles accept" % group if len(ids) > 1 else "The `%s` profile accepts" % ids[0]
        else:
            who = ", ".join("`%s`" % i for i in ids) + (" accept" if len(ids) > 1 else " accepts")
        if exts:
            L.append("%s the following non-critical extensions in requests." % who)
            L.append("")
            L.append("| Extension name | Extension OID |")
            L.append("|---|---|")
            for o in sorted(exts, key=lambda o: EXTENSION_NAMES.get(o, o).lower()):
                L.append("| %s | `%s` |" % (EXTENSION_NAMES.get(o, "Unnamed extension"), o))
        else:
            L.append("%s no extensions in requests." % who)
        L.append("")
    unk = per_profile(gp, lambda p: p["ignore_unknown_extensions"])
    if len(unk) == 1:
        L.append("Other request extensions are %s." % ("ignored" if unk[0][0] else "rejected (HTTP 400)"))
    else:
        for v, ids in unk:
            L.append("- %s: other request extensions are %s." % (", ".join("`%s`" % i for i in ids),
                                                                 "ignored" if v else "rejected (HTTP 400)"))
    L.append("")

    # Certificate extensions
    L.append("#### %s: certificate extensions" % group)
    L.append("")
    L.append("| Extension | Critical | Value |")
    L.append("|---|---|---|")
    L.append("| Authority Information Access | No | %s |" % (
        "caIssuers URL of the issuing CA certificate, always; OCSP URL when OCSP is enabled on the issuing CA"
        if kind == "subscriber" else
        "caIssuers URL of the issuing CA certificate, always; no OCSP URL (only issuing CAs run OCSP)"))
    L.append("| Authority Key Identifier | No | Matches the subjectKeyIdentifier of the signing certificate |")
    L.append("| Basic Constraints | Yes | %s |" % shared_or_split(gp, lambda p: fmt_bc(p["ca_constraint"])))
    pol = [p for p in gp if p["certificate_policies"] or "2.5.29.32" in p["allowed_extensions"]]
    if pol:
        def polval(p):
            parts = []
            if p["certificate_policies"]:
                parts.append(", ".join(fmt_oid(o, POLICY_NAMES) for o in p["certificate_policies"]))
            if "2.5.29.32" in p["allowed_extensions"]:
                parts.append("policies supplied in the request" if parts else "Policies supplied in the request")
            return " plus ".join(parts) if parts else "Absent"
        L.append("| Certificate Policies | No | %s |" % shared_or_split(gp, polval))
    L.append("| CRL Distribution Points | No | Present when CRL is enabled on the issuing CA |")
    if kind == "authority":
        L.append("| Extended Key Usage | — | Never present |")
    else:
        with_eku = [p for p in gp if eku_list(p)]
        req_eku = [p for p in gp if "2.5.29.37" in p["allowed_extensions"]]

        def ekuval(p):
            if eku_list(p):
                return "The profile's extended key usages (see the table above)"
            if "2.5.29.37" in p["allowed_extensions"]:
                return "Absent unless supplied in the request"
            return "Never present"
        crit = shared_or_split(gp, lambda p: yes_no(p["extended_key_usage_critical"]))
        if with_eku or req_eku:
            L.append("| Extended Key Usage | %s | %s |" % (crit, shared_or_split(gp, ekuval)))
        else:
            L.append("| Extended Key Usage | — | Never present |")
    L.append("| Key Usage | %s | %s |" % (
        shared_or_split(gp, lambda p: yes_no(p["key_usage_critical"])),
        "digitalSignature, keyCertSign, cRLSign" if kind == "authority" and
        all(ku_list(p) == ["digitalSignature", "keyCertSign", "cRLSign"] for p in gp)
        else "Per profile (see the table above)"))

    def sanval(p):
        v = "Required" if p["subject_alt_name"] == "required" else "No constraints"
        if p["supply_san"]:
            v += "; the subject common names are added as DNS names"
        return v
    L.append("| Subject Alternative Name | No (Yes when the subject is empty) | %s |" % shared_or_split(gp, sanval))
    L.append("| Subject Key Identifier | No | «The leftmost 160-bits of the SHA-256 hash of the value of the BIT STRING "
             "subjectPublicKey» as described in RFC 7093 section 2 |")
    L.append("")

    L.append("#### %s: certificate fields" % group)
    L.append("")
    L.append("| Field | Value |")
    L.append("|---|---|")
    if kind == "authority":
        L.append("| Issuer | Customer's online root or intermediate CA |")
    else:
        L.append("| Issuer | Customer's subordinate issuing CA |")
    L.append("| Subject | No constraint (see [Distinguished names](#distinguished-names)) |")
    vals = per_profile(gp, lambda p: p["validity_period"])
    if len(vals) == 1:
        d = vals[0][0]
        if kind == "authority":
            L.append("| Validity period | Less than or equal to %s; defaults to %s (`%s`) |" % (human_duration(d), human_duration(d), d))
        else:
            L.append("| Validity period | Defaults to %s (`%s`) if not specified |" % (human_duration(d), d))
    else:
        L.append("| Validity period | Defaults, if not specified: %s |" % "; ".join(
            "%s (`%s`) for %s" % (human_duration(d), d, ", ".join("`%s`" % i for i in ids)) for d, ids in vals))
    L.append("")
    return L


def generate(profiles):
    L = intro(profiles)
    by_group = {}
    for p in profiles:
        by_group.setdefault(p["group"], []).append(p)
    for g in by_group:
        by_group[g].sort(key=lambda p: p["id"])

    L.append("## Authority certificate profiles")
    L.append("")
    L.append("Profiles for certifying CAs, organized into the groups %s. They can be assigned to `root` and "
             "`intermediate` CAs and cannot be cloned or modified." % ", ".join("`%s`" % g for g in AUTHORITY_GROUPS))
    L.append("")
    for g in AUTHORITY_GROUPS:
        if g in by_group:
            L.extend(group_section(g, by_group[g]))
    L.append("## Subscriber certificate profiles")
    L.append("")
    L.append("Profiles for certifying end entities, organized into the groups %s. They can be assigned to issuing "
             "(`subord`) CAs and cloned into custom profiles." % ", ".join("`%s`" % g for g in SUBSCRIBER_GROUPS))
    L.append("")
    for g in SUBSCRIBER_GROUPS:
        if g in by_group:
            L.extend(group_section(g, by_group[g]))
    while L and L[-1] == "":
        L.pop()
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Generate docs/profiles.md from the system profiles.")
    ap.add_argument("--json", default=DEFAULT_JSON, help="profile file (default: src/ca/profiles/system.json)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="Markdown output (default: docs/profiles.md)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the output file is not up to date")
    ap.add_argument("--stdout", action="store_true", help="print the Markdown instead of writing it")
    args = ap.parse_args(argv)

    try:
        with open(args.json, encoding="utf-8") as f:
            profiles = json.load(f)
        validate(profiles)
    except (OSError, ValueError) as e:
        print("gen-profiles-doc: %s: %s" % (args.json, e), file=sys.stderr)
        return 2
    except ProfileError as e:
        print("gen-profiles-doc: %s: %s" % (args.json, e), file=sys.stderr)
        return 2

    text = generate(profiles)
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        try:
            with open(args.out, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            print("gen-profiles-doc: %s is out of date; run python3 scripts/gen-profiles-doc.py" % args.out,
                  file=sys.stderr)
            if current is not None:
                diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                            "%s (current)" % args.out, "%s (generated)" % args.out, n=1)
                sys.stderr.writelines(list(diff)[:40])
            return 1
        return 0
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
