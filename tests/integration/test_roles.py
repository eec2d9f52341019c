"""Roles: the permission matrix (`pkiaasd roles --json`) against the guide's role tables, walked over HTTP
with one API token per role, plus partition isolation and the generated docs/roles.md."""
import datetime
import json
import re
import secrets
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import conftest
from helpers import error_of, expect_error, uid
from status_helpers import PROFILE, issue, make_root, make_sub, ok

ROLES = ["Owners", "CA Administrators", "Certificate Administrators", "CA Auditors", "Protocol Operators",
         "Protocol Auditors"]
P12_PROFILE = "privatessl-p12-tls-server"
EXTRA_PROFILE = "privatessl-tls-client"  # assigned / unassigned by the ca.profiles probes

# ---------------------------------------------------------------------------------------------------------
# The guide's "Role permissions" tables, typed in by hand (one mark per role, in ROLES order:
# Owners, CA Administrators, Certificate Administrators, CA Auditors, Protocol Operators, Protocol Auditors).
# "R" is the guide's "Read-only". The second column is the matrix operation the row maps to.
Y, N, R = "✓", "✗", "R"
GUIDE = [
    # Subscription management
    ("Checking your subscriptions", "subscription.view", (Y, N, N, N, N, N)),
    ("Assigning subscriptions to partitions", "subscription.assign", (Y, N, N, N, N, N)),
    # User management
    ("Inviting users", "user.invite", (Y, N, N, N, N, N)),
    ("Managing roles", "user.roles", (Y, N, N, N, N, N)),
    # CA management
    ("Browsing CAs", "ca.browse", (Y, Y, Y, Y, Y, Y)),
    ("Creating a root CA", "ca.create.root", (Y, Y, N, N, N, N)),
    ("Creating an intermediate subordinate CA", "ca.create.intermediate", (Y, Y, N, N, N, N)),
    ("Creating an issuing subordinate CA", "ca.create.subord", (Y, Y, N, N, N, N)),
    ("Importing an external root CA", "ca.import.external", (Y, Y, N, N, N, N)),
    ("Downloading a CA certificate", "ca.download", (Y, Y, Y, N, N, N)),
    ("Selecting CA profiles", "ca.profiles", (Y, Y, N, N, N, N)),
    ("Deleting a CA", "ca.delete", (Y, Y, N, N, N, N)),
    # Certificate management
    ("Browsing certificates", "cert.browse", (Y, Y, Y, Y, Y, Y)),
    ("Issuing a certificate from CSR", "cert.issue.csr", (Y, N, Y, N, N, N)),
    ("Issuing a certificate in a PKCS #12", "cert.issue.p12", (Y, N, Y, N, N, N)),
    ("Changing the certificate status", "cert.status", (Y, N, Y, N, N, N)),
    ("Downloading certificates", "cert.download", (Y, Y, Y, Y, Y, Y)),
    # Enrollment management (six rows, one operation)
    ("Configuring ACME in PKIaaS", "enroll.configure", (Y, Y, R, R, Y, R)),
    ("Configuring Intune in PKIaaS", "enroll.configure", (Y, Y, R, R, Y, R)),
    ("Configuring Jamf in PKIaaS", "enroll.configure", (Y, Y, R, R, Y, R)),
    ("Configuring Workspace ONE in PKIaaS", "enroll.configure", (Y, Y, R, R, Y, R)),
    ("Configuring Ivanti in PKIaaS", "enroll.configure", (Y, Y, R, R, Y, R)),
    ("Configuring MDM IBM MaaS360 in PKIaaS", "enroll.configure", (Y, Y, R, R, Y, R)),
    # CA Gateway management
    ("Managing CA Gateway credentials", "cagw.credentials", (Y, Y, N, N, N, N)),
]

# Operations of the matrix that have no HTTP endpoint (yet): portal, subscriptions, enrollment, CAGW.
# (subscriptions belong to the supervisor API, outside partitions)
NO_ENDPOINT = {"subscription.view", "subscription.assign"}


def roles_json():
    cp = subprocess.run([str(conftest.PKIAASD), "roles", "--json"], capture_output=True, text=True, timeout=30,
                        env=conftest.clean_env())
    assert cp.returncode == 0, cp.stderr
    rows = json.loads(cp.stdout)
    assert isinstance(rows, list) and rows
    return rows


@pytest.fixture(scope="module")
def matrix():
    rows = roles_json()
    ids = [r["operation"] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicate operation ids: {ids}"
    for r in rows:
        assert set(r) == {"operation", "group", "label", "roles"}, r
        assert r["roles"], f"{r['operation']}: no role at all"
        assert set(r["roles"]) <= set(ROLES), f"{r['operation']}: unknown role in {r['roles']}"
        assert r["roles"] == [x for x in ROLES if x in r["roles"]], f"{r['operation']}: roles out of order"
        assert "Owners" in r["roles"], f"Owners can perform all operations, not {r['operation']}"
    return {r["operation"]: r for r in rows}


def allowed(matrix, op, role):
    return role in matrix[op]["roles"]


# ---------------------------------------------------------------------------------------------------------
def test_matrix_matches_guide_tables(matrix):
    mismatches = []
    for label, op, marks in GUIDE:
        assert op in matrix, f"guide row {label!r}: operation {op} missing from the matrix"
        for role, mark in zip(ROLES, marks):
            want = mark == Y
            if allowed(matrix, op, role) != want:
                mismatches.append(f"{op} ({label}) / {role}: guide {mark}, matrix "
                                  f"{'allows' if allowed(matrix, op, role) else 'denies'}")
            if op == "enroll.configure":  # the guide's Read-only / ✓ both mean the configuration can be read
                if allowed(matrix, "enroll.read", role) != (mark in (Y, R)):
                    mismatches.append(f"enroll.read / {role}: guide {mark}")
    assert not mismatches, "matrix differs from the guide:\n" + "\n".join(mismatches)

    # Every guide row's text appears in the matrix label; the matrix's own rows are marked "pkiaas:".
    guide_ops = {op for _, op, _ in GUIDE}
    for label, op, _ in GUIDE:
        if op != "enroll.configure":
            assert matrix[op]["label"].startswith(label), (op, matrix[op]["label"], label)
    for op, row in matrix.items():
        if op not in guide_ops:
            assert "pkiaas:" in row["label"], f"{op} is not a guide row but its label does not say pkiaas:"
    # Groups follow the guide's section names.
    for op in ("subscription.view", "subscription.assign"):
        assert matrix[op]["group"] == "Subscription management"
    for op in ("user.invite", "user.roles"):
        assert matrix[op]["group"] == "User management"
    for op in ("ca.browse", "ca.create.root", "ca.delete", "ca.download", "ca.profiles"):
        assert matrix[op]["group"] == "CA management"
    for op in ("cert.browse", "cert.issue.csr", "cert.issue.p12", "cert.status", "cert.download"):
        assert matrix[op]["group"] == "Certificate management"
    assert matrix["enroll.configure"]["group"] == "Enrollment management"
    assert matrix["cagw.credentials"]["group"] == "CA Gateway management"


def test_docs_roles_md_is_generated():
    cp = subprocess.run([str(conftest.PKIAASD), "roles", "--markdown"], capture_output=True, text=True, timeout=30,
                        env=conftest.clean_env())
    assert cp.returncode == 0, cp.stderr
    doc = (conftest.REPO / "docs" / "roles.md").read_text()
    assert doc == cp.stdout, "docs/roles.md is stale: regenerate it with `pkiaasd roles --markdown`"


def test_markdown_agrees_with_json(matrix):
    cp = subprocess.run([str(conftest.PKIAASD), "roles", "--markdown"], capture_output=True, text=True, timeout=30,
                        env=conftest.clean_env())
    rows = {}
    header = None
    for line in cp.stdout.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "group":
            header = cells
            continue
        rows[cells[2].strip("`")] = cells
    assert header and header[3:] == ROLES, header
    assert set(rows) == set(matrix)
    for op, cells in rows.items():
        assert [r for r, m in zip(ROLES, cells[3:]) if m == Y] == matrix[op]["roles"], op
        assert all(m in (Y, N) for m in cells[3:]), cells


# ---------------------------------------------------------------------------------------------------------
class Client:
    """Requests to one partition with one bearer token."""

    def __init__(self, d, token, account=None):
        self.d, self.token, self.account = d, token, account or d.account
        self.s = conftest._TimeoutSession()
        self.s.headers["Authorization"] = f"Bearer {token}"

    def api(self, method, path, account=None, **kw):
        return self.s.request(method, self.d.api_url(path, account or self.account), **kw)


def make_token(d, roles, name=None):
    name = name or f"t-{secrets.token_hex(6)}"
    r = d.api("POST", "/tokens", json={"name": name, "roles": list(roles)})
    body = ok(r, 201)
    assert body["name"] == name and body["roles"] == list(roles), body
    assert isinstance(body["token"], str) and len(body["token"]) >= 32, body
    return body["token"]


def _ext_root(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                                                       "Roles Test Ext")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _sign_ca_csr(csr_pem, root_key, root_cert):
    csr = x509.load_pem_x509_csr(csr_pem)
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(root_cert.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1000))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _csr(name):
    key = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


class State:
    """Fresh resources for one role's walk, all created with the Owners (bootstrap) token."""

    def __init__(self, d, tmp, tag):
        self.tag = tag
        self.root = make_root(d, tmp, prefix="rr")
        self.sub = make_sub(d, tmp, self.root, prefix="rs")  # CRL + OCSP, privatessl-tls-server
        ok(d.api("POST", f"/cas/{self.sub.id}/profiles", json={"profileId": P12_PROFILE}))
        self.leaf = issue(d, self.sub, tmp)       # browsed and downloaded
        self.leaf_rev = issue(d, self.sub, tmp)   # revoked
        self.leaf_susp = issue(d, self.sub, tmp)  # suspended, then unsuspended
        self.victim_ca = make_root(d, tmp, prefix="rv")
        self.prof_upd = f"roles-{tag}-upd-{secrets.token_hex(3)}"
        self.prof_del = f"roles-{tag}-del-{secrets.token_hex(3)}"
        for pid in (self.prof_upd, self.prof_del):
            ok(d.api("POST", "/profiles", json={"id": pid, "sourceProfileId": PROFILE}), 201)
        # An external root with a pending subordinate (CSR fetched and signed off-line by the test).
        self.ext_key, self.ext_cert = _ext_root(f"Roles Ext {tag} {secrets.token_hex(3)}")
        self.ext_id = uid("rx")
        ok(d.api("POST", "/cas", json={"id": self.ext_id, "friendlyName": "ext", "type": "externalKey",
                                      "certificate": _pem(self.ext_cert)}), 201)
        self.pend_id = uid("rp")
        pend = ok(d.api("POST", "/cas", json={
            "id": self.pend_id, "friendlyName": "pending", "type": "subord", "parentId": self.ext_id,
            "signingKeyDetails": "ECDSAP256+SHA256", "subject": f"CN=Pending {self.pend_id}",
            "enableCrl": True, "enableOcsp": False}), 201)
        assert pend["status"] == "pending", pend
        r = d.api("GET", f"/cas/{self.pend_id}/csr")
        assert r.status_code == 200, r.text
        self.pend_cert_pem = _sign_ca_csr(r.content, self.ext_key, self.ext_cert)
        # A second external root for the role's own import.
        _, self.ext2_cert = _ext_root(f"Roles Ext2 {tag} {secrets.token_hex(3)}")
        self.victim_token = f"victim-{tag}-{secrets.token_hex(3)}"
        make_token(d, ["CA Auditors"], self.victim_token)
        # two invited users: one gets new roles, the other is deleted
        self.user_roles = f"roles-{tag}-{secrets.token_hex(3)}@example.com"
        self.user_del = f"del-{tag}-{secrets.token_hex(3)}@example.com"
        for email in (self.user_roles, self.user_del):
            ok(d.api("POST", "/users/invitations", json={"email": email, "firstName": "R", "lastName": "W",
                                                          "roles": ["CA Auditors"]}), 201)
        # ACME configurations: one read/changed, one deleted; an EAB key to delete
        self.proto = f"p{tag}{secrets.token_hex(3)}"[:18]
        self.proto_del = f"d{tag}{secrets.token_hex(3)}"[:18]
        for pid in (self.proto, self.proto_del):
            ok(d.api("POST", "/protocols", json={"id": pid, "type": "acme", "caId": self.sub.id,
                                                 "profileId": PROFILE}), 201)
        self.eab_del = ok(d.api("POST", f"/protocols/{self.proto}/eab-keys", json={"name": "victim"}), 201)["keyId"]
        # an EST configuration with a credential to delete
        ok(d.api("POST", f"/cas/{self.sub.id}/profiles", json={"profileId": "est-tls-client"}))
        self.proto_est = f"e{tag}{secrets.token_hex(3)}"[:18]
        ok(d.api("POST", "/protocols", json={"id": self.proto_est, "type": "est", "caId": self.sub.id,
                                             "profileId": "est-tls-client"}), 201)
        self.cred_del = ok(d.api("POST", f"/protocols/{self.proto_est}/credentials", json={"name": "victim"}),
                           201)["id"]
        # an MDM configuration with a Digital ID to delete
        ok(d.api("POST", f"/cas/{self.sub.id}/profiles", json={"profileId": "mdmws-digital-signature"}))
        self.proto_mdm = f"m{tag}{secrets.token_hex(3)}"[:18]
        ok(d.api("POST", "/protocols", json={"id": self.proto_mdm, "type": "mdmws", "caId": self.sub.id,
                                             "profileId": "mdmws-digital-signature"}), 201)
        ok(d.api("POST", f"/protocols/{self.proto_mdm}/digital-ids", json={
            "name": "victim", "rdnFormat": "CN=<igusername>", "parentDn": "O=Roles"}), 201)


def probes(st):
    """(operations that must all be allowed, method, path, request kwargs, success status).

    Ordered so that every request finds the state it needs (e.g. suspend before unsuspend)."""
    sub, leaf = st.sub.id, st.leaf.serial
    p = []

    def add(ops, method, path, status=200, **kw):
        p.append((tuple(ops.split()), method, path, kw, status))

    # ca.browse
    add("ca.browse", "GET", "/cas")
    add("ca.browse", "GET", f"/cas/{sub}")
    add("ca.browse", "GET", "/signing-key-details")
    add("ca.browse", "GET", "/me")  # every role may ask who it is (the portal's role-aware hiding)
    add("ca.browse", "GET", "/inventory")
    add("ca.browse", "GET", f"/cas/{sub}/profiles")
    # CA creation, one per type
    add("ca.create.root", "POST", "/cas", 201, json={
        "id": uid("nr"), "friendlyName": "new root", "type": "root", "signingKeyDetails": "ECDSAP256+SHA256",
        "subject": "CN=Roles New Root"})
    add("ca.create.intermediate", "POST", "/cas", 201, json={
        "id": uid("ni"), "friendlyName": "new inter", "type": "intermediate", "parentId": st.root.id,
        "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=Roles New Inter", "enableCrl": False})
    add("ca.create.subord", "POST", "/cas", 201, json={
        "id": uid("ns"), "friendlyName": "new sub", "type": "subord", "parentId": st.root.id,
        "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=Roles New Sub", "enableCrl": False,
        "enableOcsp": False})
    # `profiles` in a creation body needs ca.profiles as well
    add("ca.create.subord ca.profiles", "POST", "/cas", 201, json={
        "id": uid("np"), "friendlyName": "new sub+p", "type": "subord", "parentId": st.root.id,
        "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=Roles New Sub P", "enableCrl": False,
        "enableOcsp": False, "profiles": [PROFILE]})
    # external roots: import, the pending CA's CSR, its certificate
    add("ca.import.external", "POST", "/cas", 201, json={
        "id": uid("nx"), "friendlyName": "new ext", "type": "externalKey", "certificate": _pem(st.ext2_cert)})
    add("ca.import.external", "GET", f"/cas/{st.pend_id}/csr")
    add("ca.import.external", "POST", f"/cas/{st.pend_id}/certificate", json={"certificate": st.pend_cert_pem})
    # ca.download
    add("ca.download", "GET", f"/cas/{sub}/certificate", params={"format": "pem"})
    add("ca.download", "GET", f"/cas/{sub}/chain")
    # ca.profiles
    add("ca.profiles", "POST", f"/cas/{sub}/profiles", json={"profileId": EXTRA_PROFILE})
    add("ca.profiles", "DELETE", f"/cas/{sub}/profiles/{EXTRA_PROFILE}")
    # ca.delete
    add("ca.delete", "DELETE", f"/cas/{st.victim_ca.id}")
    # profiles
    add("profile.browse", "GET", "/profiles")
    add("profile.browse", "GET", f"/profiles/{PROFILE}")
    add("profile.browse", "GET", f"/profiles/{st.prof_upd}")
    add("profile.manage", "POST", "/profiles", 201,
        json={"id": f"roles-{st.tag}-new-{secrets.token_hex(3)}", "sourceProfileId": PROFILE})
    add("profile.manage", "PUT", f"/profiles/{st.prof_upd}", json={"description": f"updated by {st.tag}"})
    add("profile.manage", "DELETE", f"/profiles/{st.prof_del}")
    # certificates
    add("cert.browse", "GET", f"/cas/{sub}/certificates")
    add("cert.browse", "GET", f"/cas/{sub}/certificates/{leaf}")
    add("cert.browse", "GET", f"/cas/{sub}/crl")
    add("cert.browse", "GET", f"/cas/{sub}/crls")
    name = f"{uid('r')}.example"
    add("cert.issue.csr", "POST", f"/cas/{sub}/certificates", 201, json={
        "profileId": PROFILE, "csr": _csr(name), "subjectAltNames": [{"type": "dNSName", "value": name}]})
    add("cert.issue.p12", "POST", f"/cas/{sub}/certificates", 201, json={
        "profileId": P12_PROFILE, "keyType": "EC-P256", "p12Password": "p12-" + secrets.token_hex(8),
        "subject": "CN=p12.roles.example", "subjectAltNames": [{"type": "dNSName", "value": "p12.roles.example"}]})
    add("cert.status", "POST", f"/cas/{sub}/certificates/{st.leaf_rev.serial}/revoke", json={"reason": "superseded"})
    add("cert.status", "POST", f"/cas/{sub}/certificates/{st.leaf_susp.serial}/suspend")
    add("cert.status", "POST", f"/cas/{sub}/certificates/{st.leaf_susp.serial}/unsuspend")
    add("cert.status", "POST", f"/cas/{sub}/crl")
    add("cert.status", "POST", f"/cas/{sub}/certificates/revoke-batch", json={"serials": ["ab12"]})
    add("cert.download", "GET", f"/cas/{sub}/certificates/{leaf}/download", params={"format": "pem"})
    add("cert.download", "GET", f"/cas/{sub}/certificates/{leaf}/download", params={"format": "chain"})
    # tokens
    add("user.roles", "GET", "/tokens")
    add("user.roles", "POST", "/tokens", 201, json={"name": f"made-by-{st.tag}-{secrets.token_hex(3)}",
                                                    "roles": ["CA Auditors"]})
    add("user.roles", "DELETE", f"/tokens/{st.victim_token}")
    # users
    add("user.invite", "POST", "/users/invitations", 201, json={
        "email": f"inv-{st.tag}-{secrets.token_hex(3)}@example.com", "firstName": "I", "lastName": "N",
        "roles": ["CA Auditors"]})
    add("user.roles", "GET", "/users")
    add("user.roles", "PUT", f"/users/{st.user_roles}/roles", json={"roles": ["Protocol Auditors"]})
    add("user.roles", "DELETE", f"/users/{st.user_del}")
    # audit
    add("audit.read", "GET", "/audit", params={"limit": "5"})
    add("audit.read", "GET", "/audit", params={"limit": "5", "format": "csv"})
    add("audit.read", "GET", "/audit/verify")
    add("audit.read", "GET", "/audit/checkpoints")
    add("audit.read", "GET", "/events", params={"limit": "5"})
    # enrollment protocol configurations
    add("enroll.read", "GET", "/protocols")
    add("enroll.read", "GET", f"/protocols/{st.proto}")
    add("enroll.read", "GET", f"/protocols/{st.proto}/eab-keys")
    add("enroll.configure", "POST", "/protocols", 201, json={
        "id": f"n{st.tag}{secrets.token_hex(3)}"[:18], "type": "acme", "caId": sub, "profileId": PROFILE})
    add("enroll.configure", "PUT", f"/protocols/{st.proto}", json={"description": f"updated by {st.tag}"})
    add("enroll.configure", "POST", f"/protocols/{st.proto}/eab-keys", 201, json={"name": "walk"})
    add("enroll.configure", "DELETE", f"/protocols/{st.proto}/eab-keys/{st.eab_del}")
    add("enroll.configure", "DELETE", f"/protocols/{st.proto_del}")
    add("enroll.read", "GET", f"/protocols/{st.proto_est}/credentials")
    add("enroll.configure", "POST", f"/protocols/{st.proto_est}/credentials", 201, json={"name": "walk"})
    add("enroll.configure", "DELETE", f"/protocols/{st.proto_est}/credentials/{st.cred_del}")
    add("enroll.read", "GET", f"/protocols/{st.proto_mdm}/digital-ids")
    add("enroll.configure", "POST", f"/protocols/{st.proto_mdm}/digital-ids", 201, json={
        "name": f"walk-{secrets.token_hex(3)}", "rdnFormat": "CN=<igusername>,OU=<iggroup>"})
    add("enroll.configure", "DELETE", f"/protocols/{st.proto_mdm}/digital-ids/victim")
    add("enroll.read", "GET", f"/protocols/{st.proto_mdm}/end-entities")
    add("enroll.read", "GET", f"/protocols/{st.proto_mdm}/end-entities/{'0' * 32}", 404)
    add("enroll.configure", "POST", f"/protocols/{st.proto_mdm}/end-entities/{'0' * 32}/deactivate", 404)
    add("audit.read", "GET", f"/protocols/{st.proto_mdm}/events")
    # CA Gateway credentials
    cred = f"c{st.tag}{secrets.token_hex(3)}"[:32]
    add("cagw.credentials", "GET", "/cagw-credentials")
    add("cagw.credentials", "POST", "/cagw-credentials", 201, json={
        "id": cred, "name": "roles walk", "grants": [{"caId": sub, "roles": ["Certificate Administrators"]}]})
    add("cagw.credentials", "PUT", f"/cagw-credentials/{cred}/grants", json={
        "grants": [{"caId": sub, "roles": ["CA Auditors"]}]})
    add("cagw.credentials", "POST", f"/cagw-credentials/{cred}/renew")
    add("cagw.credentials", "DELETE", f"/cagw-credentials/{cred}")
    return p


def _routes():
    cp = subprocess.run([str(conftest.PKIAASD), "routes"], capture_output=True, text=True, timeout=30,
                        env=conftest.clean_env())
    assert cp.returncode == 0, cp.stderr
    out = []
    for line in cp.stdout.splitlines():
        method, _, pattern = line.strip().partition(" ")
        if pattern.startswith("/api/v1/partitions/{}"):
            rest = pattern[len("/api/v1/partitions/{}"):]
            out.append((method, re.compile("^" + re.escape(rest).replace(r"\{\}", "[^/]+") + "$")))
    assert len(out) > 20, cp.stdout
    return out


def test_probes_cover_matrix_and_routes(daemon, tmp_path, matrix):
    """The walk below is complete: every operation with an endpoint and every admin route gets a probe."""
    st = State(daemon, tmp_path, "cover")
    ps = probes(st)
    probed = {op for ops, *_ in ps for op in ops}
    assert probed <= set(matrix), probed - set(matrix)
    assert probed | NO_ENDPOINT == set(matrix), (
        f"operations without a probe: {set(matrix) - probed - NO_ENDPOINT} (add one, or list it in NO_ENDPOINT)")
    assert not probed & NO_ENDPOINT
    for method, rx in _routes():
        assert any(m == method and rx.match(path) for _, m, path, _, _ in ps), f"no probe for {method} {rx.pattern}"


@pytest.mark.parametrize("role", ROLES)
def test_role_walks_matrix(daemon, tmp_path, matrix, role):
    d = daemon
    tag = re.sub(r"[^a-z]", "", role.lower())[:10]
    st = State(d, tmp_path, tag)
    c = Client(d, make_token(d, [role]))
    failures = []
    for ops, method, path, kw, status in probes(st):
        want = all(allowed(matrix, op, role) for op in ops)
        r = c.api(method, path, **kw)
        what = f"{role}: {method} {path} ({' + '.join(ops)}) -> {r.status_code}"
        if want:
            if r.status_code != status:
                failures.append(f"{what}, expected {status} (allowed): {r.text[:300]}")
        else:
            if r.status_code != 403:
                failures.append(f"{what}, expected 403 (denied): {r.text[:300]}")
                continue
            err = error_of(r)
            if err["code"] != "forbidden":
                failures.append(f"{what}: error.code {err['code']!r} != 'forbidden'")
            if set(r.json()) != {"error"} or b"BEGIN" in r.content:
                failures.append(f"{what}: a 403 carries data: {r.text[:300]}")
    assert not failures, "\n".join(failures)

    # Denied writes changed nothing; allowed ones took effect.
    def may(op):
        return allowed(matrix, op, role)

    victim = d.api("GET", "/cas", params={"includeDeleted": "true"}).json()["cas"]
    victim = {x["id"]: x for x in victim}[st.victim_ca.id]
    assert victim["status"] == ("deleted" if may("ca.delete") else "active"), victim["status"]
    rev = ok(d.api("GET", f"/cas/{st.sub.id}/certificates/{st.leaf_rev.serial}"))
    assert rev["status"] == ("revoked" if may("cert.status") else "issued"), rev["status"]
    assert ok(d.api("GET", f"/cas/{st.pend_id}"))["status"] == ("active" if may("ca.import.external") else "pending")
    r = d.api("GET", f"/profiles/{st.prof_del}")
    assert r.status_code == (404 if may("profile.manage") else 200), r.status_code
    upd = ok(d.api("GET", f"/profiles/{st.prof_upd}"))
    assert (upd.get("description") == f"updated by {tag}") == may("profile.manage"), upd.get("description")
    toks = {t["name"]: t for t in ok(d.api("GET", "/tokens"))["tokens"]}
    assert (toks[st.victim_token]["revokedAt"] is not None) == may("user.roles"), toks[st.victim_token]
    r = d.api("GET", f"/protocols/{st.proto_del}")
    assert r.status_code == (404 if may("enroll.configure") else 200), r.status_code
    pr = ok(d.api("GET", f"/protocols/{st.proto}"))
    assert (pr["description"] == f"updated by {tag}") == may("enroll.configure"), pr["description"]
    keys = [k["keyId"] for k in ok(d.api("GET", f"/protocols/{st.proto}/eab-keys"))["eabKeys"]]
    assert (st.eab_del not in keys) == may("enroll.configure"), keys
    assigned = ok(d.api("GET", f"/cas/{st.sub.id}/profiles"))["profiles"]
    assert EXTRA_PROFILE not in assigned and PROFILE in assigned and P12_PROFILE in assigned, assigned


def test_multiple_roles_union(daemon, tmp_path, matrix):
    """A token with two roles may do what either may."""
    d = daemon
    st = State(d, tmp_path, "union")
    c = Client(d, make_token(d, ["CA Auditors", "Certificate Administrators"]))
    assert c.api("GET", f"/cas/{st.sub.id}/certificate").status_code == 200          # Certificate Administrators
    name = f"{uid('u')}.example"
    r = c.api("POST", f"/cas/{st.sub.id}/certificates", json={
        "profileId": PROFILE, "csr": _csr(name), "subjectAltNames": [{"type": "dNSName", "value": name}]})
    assert r.status_code == 201, r.text
    expect_error(c.api("DELETE", f"/cas/{st.victim_ca.id}"), 403, code="forbidden")  # neither role
    expect_error(c.api("GET", "/tokens"), 403, code="forbidden")


# ---------------------------------------------------------------------------------------------------------
def _assert_not_found(r, what, secrets_=()):
    assert r.status_code == 404, f"{what}: expected 404, got {r.status_code}: {r.text[:300]}"
    err = error_of(r)
    assert err["code"] == "not_found", f"{what}: {err}"
    assert set(r.json()) == {"error"}, f"{what}: extra data {r.text[:300]}"
    assert b"BEGIN" not in r.content, what
    for s in secrets_:
        assert s not in r.text, f"{what}: response leaks {s!r}"


def test_cross_partition(daemon, tmp_path):
    d = daemon
    other = d.creds["otheracct"]
    b_acct, b_token = other["accountId"], other["apiToken"]
    assert b_acct != d.account
    st = State(d, tmp_path, "xpart")
    a_owner_made = make_token(d, ["Owners"])
    b = Client(d, b_token, account=b_acct)
    a = Client(d, a_owner_made)
    sub, leaf = st.sub.id, st.leaf.serial
    a_paths = [
        ("GET", "/cas", {}), ("GET", f"/cas/{sub}", {}), ("GET", f"/cas/{sub}/certificate", {}),
        ("GET", f"/cas/{sub}/chain", {}), ("GET", f"/cas/{sub}/profiles", {}), ("GET", "/inventory", {}),
        ("GET", "/signing-key-details", {}), ("GET", "/me", {}), ("GET", f"/cas/{sub}/certificates", {}),
        ("GET", f"/cas/{sub}/certificates/{leaf}", {}), ("GET", f"/cas/{sub}/certificates/{leaf}/download", {}),
        ("GET", f"/cas/{sub}/crl", {}), ("GET", f"/cas/{sub}/crls", {}), ("GET", f"/cas/{st.pend_id}/csr", {}),
        ("GET", "/profiles", {}), ("GET", f"/profiles/{st.prof_upd}", {}), ("GET", "/tokens", {}),
        ("POST", f"/cas/{sub}/certificates/{st.leaf_rev.serial}/revoke", {"json": {"reason": "superseded"}}),
        ("POST", f"/cas/{sub}/crl", {}), ("GET", "/audit", {}), ("GET", "/audit/checkpoints", {}),
        ("DELETE", f"/cas/{st.victim_ca.id}", {}),
        ("DELETE", f"/profiles/{st.prof_del}", {}), ("DELETE", f"/tokens/{st.victim_token}", {}),
        ("POST", "/tokens", {"json": {"name": "intruder", "roles": ["Owners"]}}),
        ("POST", "/cas", {"json": {"id": uid("xx"), "friendlyName": "x", "type": "root",
                                   "signingKeyDetails": "ECDSAP256+SHA256", "subject": "CN=x"}}),
    ]
    # B's Owners token on A's URLs: as if the partition did not exist.
    for method, path, kw in a_paths:
        _assert_not_found(b.api(method, path, account=d.account, **kw), f"B token on A {method} {path}",
                          (st.leaf.body["certificate"][:80],))
    # ... and exactly what a partition that does not exist answers.
    ghost = b.api("GET", "/cas", account="no-such-part")
    mine = b.api("GET", "/cas", account=d.account)
    assert (ghost.status_code, error_of(ghost)["code"]) == (mine.status_code, error_of(mine)["code"])

    # A's ids under B's URL with B's token: not found.
    for method, path, kw in a_paths:
        if path in ("/cas", "/inventory", "/signing-key-details", "/profiles", "/me") or \
                path.startswith(("/tokens", "/audit")):
            continue
        _assert_not_found(b.api(method, path, **kw), f"B token on B {method} {path}")
    # B's lists hold nothing of A's.
    r = b.api("GET", "/cas", params={"includeDeleted": "true"})
    assert r.status_code == 200, r.text
    assert not {sub, st.root.id, st.victim_ca.id, st.ext_id, st.pend_id} & {x["id"] for x in r.json()["cas"]}
    r = b.api("GET", "/profiles")
    assert r.status_code == 200 and st.prof_upd not in r.text and st.prof_del not in r.text
    r = b.api("GET", "/tokens")
    assert r.status_code == 200 and st.victim_token not in r.text
    # A's tokens on B's URLs.
    for c in (a, Client(d, d.token)):
        for method, path in (("GET", "/cas"), ("GET", "/tokens"), ("GET", "/inventory")):
            _assert_not_found(c.api(method, path, account=b_acct), f"A token on B {method} {path}")

    # Nothing happened to A.
    assert ok(d.api("GET", f"/cas/{st.victim_ca.id}"))["status"] == "active"
    assert ok(d.api("GET", f"/cas/{sub}/certificates/{st.leaf_rev.serial}"))["status"] == "issued"
    assert d.api("GET", f"/profiles/{st.prof_del}").status_code == 200
    toks = {t["name"]: t for t in ok(d.api("GET", "/tokens"))["tokens"]}
    assert toks[st.victim_token]["revokedAt"] is None and "intruder" not in toks
