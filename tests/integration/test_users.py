"""Users and sessions: invitation -> password -> TOTP enrolment, login (cookie session + CSRF token), role-limited
calls, logout, TOTP replay and window, expired / used invitations, lockout, per-address login throttling, role
changes and deletions taking effect on live sessions, the bootstrap owner's first login, and what GET /users
must never reveal.

TOTP codes are computed here (RFC 6238 / RFC 4226 with hmac + hashlib, independent of the daemon's code). The
daemon accepts the current step +-1 and each step only once (and, after a step, no earlier one), so every user
object remembers the last step it used and `User.code()` hands out the next usable step - the current one, else
the next (time + 30 s) - and only sleeps when a user has used up the window.

Login attempts are throttled per source address (20 a minute), so each test talks to the daemon from a loopback
address of its own (127.77.x.y): the tests do not eat each other's budget, nor that of other suites using the
shared daemon from 127.0.0.1."""
import base64
import datetime
import hashlib
import hmac
import itertools
import json
import re
from conftest import db_exec
import struct
import time
import urllib.parse

import pytest
import requests
from requests.adapters import HTTPAdapter

from helpers import error_of, expect_error, uid

COOKIE = "pkiaas_session"
STEP_S = 30
SESSION_TTL_S = 8 * 3600
INVITE_TTL_S = 72 * 3600
LOGIN_FAILURE_MESSAGE = None  # filled by the first 401 seen; all later 401s must carry the same error object

_ip_counter = itertools.count(1)


# ------------------------------------------------------------------------------------------- TOTP (RFC 6238)
def b32_key(secret):
    s = secret.strip().replace(" ", "").upper()
    return base64.b32decode(s + "=" * (-len(s) % 8))


def totp(secret, step):
    """The 6-digit HOTP value of `step` (RFC 4226 dynamic truncation over HMAC-SHA1)."""
    mac = hmac.new(b32_key(secret), struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    (bin_code,) = struct.unpack(">I", mac[off:off + 4])
    return f"{(bin_code & 0x7FFFFFFF) % 1000000:06d}"


def test_totp_helper_matches_rfc6238_vectors():
    """Our generator against RFC 6238 Appendix B (SHA-1 seed "12345678901234567890", 8 digits -> last 6)."""
    secret = base64.b32encode(b"12345678901234567890").decode()
    for t, eight in [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
                     (1234567890, "89005924"), (2000000000, "69279037")]:
        assert totp(secret, t // 30) == eight[-6:], (t, totp(secret, t // 30))


def current_step():
    return int(time.time() // STEP_S)


def wrong_code(secret):
    """A well-formed code that matches none of the steps around now."""
    now = current_step()
    near = {totp(secret, s) for s in range(now - 3, now + 4)}
    c = int(totp(secret, now))
    while f"{c:06d}" in near:
        c = (c + 1) % 1000000
    return f"{c:06d}"


# ------------------------------------------------------------------------------------------- HTTP plumbing
class _SourceAdapter(HTTPAdapter):
    def __init__(self, ip, **kw):
        self._ip = ip
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self._ip, 0)
        super().init_poolmanager(*args, **kw)


class Client:
    """An anonymous HTTP client (no bearer token, no cookie jar) with a loopback source address of its own."""

    def __init__(self, d):
        n = next(_ip_counter)
        self.ip = f"127.77.{n // 250}.{n % 250 + 1}"
        self.d = d
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.mount("http://", _SourceAdapter(self.ip))

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 120)
        return self.http.request(method, self.d.url + path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, json=body, **kw)

    def login(self, user, code=None, password=None, partition=None, email=None):
        return self.post("/api/v1/login", {"partition": partition or user.partition, "email": email or user.email,
                                           "password": password if password is not None else user.password,
                                           "code": code if code is not None else user.code()})

    def session(self, user):
        """Logs `user` in; returns the BrowserSession."""
        r = self.login(user)
        assert r.status_code == 200, f"login of {user.email} -> {r.status_code}: {r.text[:500]}"
        return BrowserSession(self, r)


def set_cookie_header(r):
    """The raw Set-Cookie header of a response (exactly one expected)."""
    raw = r.raw.headers.getlist("Set-Cookie") if hasattr(r.raw.headers, "getlist") else [r.headers["Set-Cookie"]]
    assert len(raw) == 1, f"expected one Set-Cookie header, got {raw!r}"
    return raw[0]


def cookie_parts(header):
    """(name, value, {attribute lower-case: value or True}) of a raw Set-Cookie header."""
    first, *attrs = [p.strip() for p in header.split(";")]
    name, _, value = first.partition("=")
    out = {}
    for a in attrs:
        k, eq, v = a.partition("=")
        assert k.lower() not in out, f"attribute {k} twice in {header!r}"
        out[k.lower()] = v if eq else True
    return name, value, out


class BrowserSession:
    """What a browser holds after a login: the session cookie and the CSRF token."""

    def __init__(self, client, login_resp):
        self.client = client
        self.body = login_resp.json()
        name, self.sid, _ = cookie_parts(set_cookie_header(login_resp))
        assert name == COOKIE and self.sid, set_cookie_header(login_resp)
        self.csrf = self.body["csrfToken"]
        self.partition = self.body["partition"]

    def call(self, method, path, csrf=True, account=None, **kw):
        """`path` below /api/v1/partitions/{account}; csrf=True sends our token, a string sends that string,
        None sends no header. Never an Authorization header."""
        headers = {"Cookie": f"{COOKIE}={self.sid}"}
        if csrf is True:
            headers["X-CSRF-Token"] = self.csrf
        elif isinstance(csrf, str):
            headers["X-CSRF-Token"] = csrf
        headers.update(kw.pop("headers", {}))
        url = f"/api/v1/partitions/{account or self.partition}{path}"
        r = self.client.request(method, url, headers=headers, **kw)
        assert "Authorization" not in r.request.headers
        return r

    def logout(self, csrf=True):
        headers = {"Cookie": f"{COOKIE}={self.sid}"}
        if csrf is True:
            headers["X-CSRF-Token"] = self.csrf
        elif isinstance(csrf, str):
            headers["X-CSRF-Token"] = csrf
        return self.client.request("POST", "/api/v1/logout", headers=headers)


class User:
    def __init__(self, partition, email, password, first="Ada", last="Lovelace", roles=()):
        self.partition, self.email, self.password = partition, email, password
        self.first, self.last, self.roles = first, last, list(roles)
        self.secret = None
        self.token = None  # invitation token
        self.last_step = 0

    def code(self):
        """The code of the next step the daemon will still accept for this user (and marks it used):
        the previous step only when the step boundary is far, else the current one, else the next one
        (time + 30 s); sleeps only when all three are used up."""
        now = time.time()
        cur = int(now // STEP_S)
        into = now - cur * STEP_S
        candidates = ([cur - 1] if into < STEP_S - 6 else []) + [cur, cur + 1]
        for s in candidates:
            if s > self.last_step:
                self.last_step = s
                return totp(self.secret, s)
        time.sleep((cur + 1) * STEP_S - now + 0.5)  # cur+2 becomes acceptable once cur+1 is current
        return self.code()

    def replay(self):
        """The code of the step used last (the daemon must refuse it now)."""
        return totp(self.secret, self.last_step)


# ------------------------------------------------------------------------------------------- API helpers
def bearer_headers(d, partition):
    return {"Authorization": f"Bearer {d.creds[partition]['apiToken']}"}


def owner_api(d, method, path, partition=None, **kw):
    """A call with the partition's bootstrap API token (Owners)."""
    partition = partition or d.account
    headers = bearer_headers(d, partition)
    headers.update(kw.pop("headers", {}))
    return d.session.request(method, d.api_url(path, account=partition), headers=headers, **kw)


def new_email(tag):
    return f"{uid(tag)}@users.example"


def invite(d, user, expect=201):
    r = owner_api(d, "POST", "/users/invitations", partition=user.partition,
                  json={"email": user.email, "firstName": user.first, "lastName": user.last, "roles": user.roles})
    assert r.status_code == expect, f"invite {user.email} -> {r.status_code}: {r.text[:500]}"
    if expect != 201:
        return r
    body = r.json()
    m = re.fullmatch(r"https://[^/\s]+/invite/([A-Za-z0-9_-]{20,100})", body.get("inviteUrl", ""))
    assert m, f"inviteUrl {body.get('inviteUrl')!r} is not https://<host>/invite/<token>"
    user.token = m.group(1)
    return r


def accept(client, token, password):
    return client.post(f"/api/v1/invitations/{token}/accept", {"password": password})


def confirm(client, token, code):
    return client.post(f"/api/v1/invitations/{token}/confirm", {"code": code})


def do_accept(client, user):
    r = accept(client, user.token, user.password)
    assert r.status_code == 200, f"accept -> {r.status_code}: {r.text[:500]}"
    body = r.json()
    assert body.get("status") == "enrolling", body
    assert re.fullmatch(r"[A-Z2-7]+=*", body.get("totpSecret", "")), body
    user.secret = body["totpSecret"]
    user.last_step = 0
    return body


def enrol(d, client, roles=("Certificate Administrators",), partition=None, tag="user", password=None):
    """Invite + accept + confirm; returns the active User."""
    user = User(partition or d.account, new_email(tag), password or f"pw-{uid(tag)}-Long!", roles=roles)
    invite(d, user)
    do_accept(client, user)
    r = confirm(client, user.token, user.code())
    assert r.status_code == 200, f"confirm -> {r.status_code}: {r.text[:500]}"
    assert r.json().get("status") == "active", r.text
    return user


def list_users(d, partition=None):
    r = owner_api(d, "GET", "/users", partition=partition)
    assert r.status_code == 200, f"GET /users -> {r.status_code}: {r.text[:500]}"
    return r


def user_entry(d, email, partition=None):
    users = list_users(d, partition).json()["users"]
    hits = [u for u in users if u["email"] == email]
    assert len(hits) <= 1, hits
    return hits[0] if hits else None


def audit_records(d, action, partition=None, **filters):
    out, after = [], None
    for _ in range(50):
        params = {"action": action, "limit": 1000, **filters}
        if after is not None:
            params["after"] = after
        r = owner_api(d, "GET", "/audit", partition=partition, params=params)
        assert r.status_code == 200, f"GET /audit -> {r.status_code}: {r.text[:500]}"
        body = r.json()
        out += body["records"]
        if body.get("next") is None:
            return out
        after = body["next"]
    return out


def login_failure(r):
    """Asserts a 401 with the one message used for every kind of login failure."""
    global LOGIN_FAILURE_MESSAGE
    err = expect_error(r, 401)
    shape = (err["code"], err["message"], err.get("field"))
    if LOGIN_FAILURE_MESSAGE is None:
        LOGIN_FAILURE_MESSAGE = shape
    assert shape == LOGIN_FAILURE_MESSAGE, f"login failures differ: {shape} vs {LOGIN_FAILURE_MESSAGE}"
    return err


def parse_rfc3339(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def root_body(cid):
    return {"id": cid, "friendlyName": f"Root {cid}", "type": "root", "signingKeyDetails": "ECDSAP256+SHA256",
            "subject": f"CN=Root {cid},O=User Tests"}


def expire_invitation(d, email):
    """Moves the invitation's expiry into the past, straight in the daemon's store."""
    n = db_exec(d, "UPDATE invitation SET expires_at=? WHERE email=?", int(time.time()) - 60, email)
    assert n == 1, f"{n} invitation rows for {email}"


# ------------------------------------------------------------------------------------------- tests
def test_invitation_to_logout_full_flow(daemon):
    d, c = daemon, Client(daemon)
    user = User(d.account, new_email("flow"), "correct horse battery", first="Grace", last="Hopper",
                roles=["Certificate Administrators"])

    # -- invitation: link returned (and logged), 72 h validity
    t0 = time.time()
    body = invite(d, user).json()
    assert body["email"] == user.email
    assert abs(parse_rfc3339(body["expiresAt"]) - (t0 + INVITE_TTL_S)) < 120, body["expiresAt"]
    assert isinstance(body.get("delivery"), str) and body["delivery"], body
    assert body["inviteUrl"] in d.log_text(), "the invitation link is not in the daemon's log"
    e = user_entry(d, user.email)
    assert e == {"email": user.email, "firstName": "Grace", "lastName": "Hopper", "status": "invited",
                 "roles": ["Certificate Administrators"]}, e

    # -- accept: password set, TOTP secret + otpauth URI shown
    body = do_accept(c, user)
    assert len(b32_key(user.secret)) >= 16, f"TOTP secret of {len(b32_key(user.secret))} bytes only"
    uri = urllib.parse.urlsplit(body["otpauthUri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp"), body["otpauthUri"]
    assert urllib.parse.unquote(uri.path) == f"/pkiaas:{user.email}", body["otpauthUri"]
    q = dict(urllib.parse.parse_qsl(uri.query, strict_parsing=True))
    assert q == {"secret": user.secret, "issuer": "pkiaas", "algorithm": "SHA1", "digits": "6", "period": "30"}, q
    assert user_entry(d, user.email)["status"] == "enrolling"

    # enrolling users cannot log in yet
    r = c.login(user, code=wrong_code(user.secret))
    expect_error(r, 403, code="enrolment_required")

    # -- confirm with a TOTP code: active, invitation used up
    r = confirm(c, user.token, user.code())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active" and r.json()["email"] == user.email, r.text
    assert user_entry(d, user.email)["status"] == "active"

    # -- failures all look the same
    login_failure(c.login(user, password=user.password + "x", code=wrong_code(user.secret)))
    login_failure(c.login(user, code=wrong_code(user.secret)))
    login_failure(c.login(user, email=new_email("nobody"), code=wrong_code(user.secret)))
    login_failure(c.login(user, partition="otheracct", code=wrong_code(user.secret)))

    # -- login
    t0 = time.time()
    r = c.login(user)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["partition"] == d.account and body["email"] == user.email, body
    assert isinstance(body["csrfToken"], str) and len(body["csrfToken"]) >= 16, body
    assert abs(parse_rfc3339(body["expiresAt"]) - (t0 + SESSION_TTL_S)) < 120, body["expiresAt"]
    assert body["user"]["email"] == user.email and body["user"]["status"] == "active", body
    assert body["user"]["roles"] == ["Certificate Administrators"], body
    raw = set_cookie_header(r)
    name, value, attrs = cookie_parts(raw)
    assert name == COOKIE, raw
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,100}", value), raw
    assert attrs == {"path": "/", "max-age": str(SESSION_TTL_S), "httponly": True, "secure": True,
                     "samesite": "Strict"}, raw
    assert value not in r.text and body["csrfToken"] != value, "the session id leaks into the body"
    s = BrowserSession(c, r)

    # -- the session acts as the user, with the user's roles
    r = s.call("GET", "/cas")
    assert r.status_code == 200, r.text
    assert isinstance(r.json().get("cas"), list), r.text
    cid = uid("usr")
    r = s.call("POST", "/cas", json=root_body(cid))
    expect_error(r, 403, code="forbidden")
    assert owner_api(d, "GET", f"/cas/{cid}").status_code == 404, "the refused root CA exists anyway"
    expect_error(s.call("GET", "/users"), 403, code="forbidden")
    r = s.call("POST", "/users/invitations", json={"email": new_email("x"), "firstName": "A", "lastName": "B",
                                                   "roles": ["Owners"]})
    expect_error(r, 403, code="forbidden")
    # among other cookies, as a browser sends it
    r = c.request("GET", f"/api/v1/partitions/{d.account}/cas",
                  headers={"Cookie": f"theme=dark; {COOKIE}={value}; lang=en"})
    assert r.status_code == 200, r.text
    # no cookie at all: not authenticated
    expect_error(c.request("GET", f"/api/v1/partitions/{d.account}/cas"), 401)
    # a made-up cookie
    expect_error(c.request("GET", f"/api/v1/partitions/{d.account}/cas",
                           headers={"Cookie": f"{COOKIE}=A{value[1:]}" if value[0] != "A" else f"{COOKIE}=B{value[1:]}"}),
                 401)

    # -- logout: CSRF needed, then the cookie is dead
    expect_error(s.logout(csrf=None), 403, code="csrf")
    assert s.call("GET", "/cas").status_code == 200, "a refused logout ended the session"
    r = s.logout()
    assert r.status_code == 200, r.text
    name, value, attrs = cookie_parts(set_cookie_header(r))
    assert name == COOKIE and value == "" and attrs.get("max-age") == "0", set_cookie_header(r)
    expect_error(s.call("GET", "/cas"), 401)
    expect_error(s.call("POST", "/cas", json=root_body(uid("usr"))), 401)

    # -- audit trail
    target = f"user:{user.email}"
    assert [a for a in audit_records(d, "user.invite") if a["target"] == target], "no user.invite record"
    assert [a for a in audit_records(d, "user.enrol.password") if a["target"] == target], "no user.enrol.password"
    assert [a for a in audit_records(d, "user.enrol.totp") if a["target"] == target], "no user.enrol.totp"
    logins = audit_records(d, "auth.login", actor=user.email)
    results = [a["result"] for a in logins]
    assert results.count("success") == 1, results
    assert results.count("failure") >= 2, results  # wrong password, wrong code
    assert all(a["sourceIp"] == c.ip for a in logins), logins
    assert len(audit_records(d, "auth.logout", actor=user.email)) == 1


def test_wrong_and_out_of_window_totp(daemon):
    d, c = daemon, Client(daemon)
    user = User(d.account, new_email("badotp"), "a fine long password", roles=["CA Auditors"])
    invite(d, user)
    do_accept(c, user)
    for bad in [wrong_code(user.secret), "abcdef", totp(user.secret, current_step())[:5],
                totp(user.secret, current_step()) + "0", "", None, totp(user.secret, current_step() + 3),
                totp(user.secret, current_step() - 3)]:
        body = {"code": bad} if bad is not None else {}
        r = c.post(f"/api/v1/invitations/{user.token}/confirm", body)
        err = expect_error(r, 400)
        assert err.get("field") == "code", err
    assert user_entry(d, user.email)["status"] == "enrolling", "a wrong code activated the user"
    r = confirm(c, user.token, user.code())
    assert r.status_code == 200, f"wrong codes used up the invitation: {r.text}"

    # at login: a wrong code, and codes 3 steps away (outside +-1), are refused with the common message
    login_failure(c.login(user, code=wrong_code(user.secret)))
    login_failure(c.login(user, code=totp(user.secret, current_step() + 3)))
    login_failure(c.login(user, code=totp(user.secret, current_step() - 3)))
    login_failure(c.login(user, code="12345"))
    assert c.login(user).status_code == 200
    records = audit_records(d, "auth.login", actor=user.email)
    assert sorted(a["result"] for a in records) == ["failure"] * 4 + ["success"], records


def test_totp_code_replay_is_refused(daemon):
    d, c = daemon, Client(daemon)
    user = enrol(d, c, tag="replay")
    enrol_code = user.replay()
    # the code that confirmed the enrolment cannot log in
    login_failure(c.login(user, code=enrol_code))
    # a fresh step works once ...
    code = user.code()
    r = c.login(user, code=code)
    assert r.status_code == 200, r.text
    # ... and not twice
    login_failure(c.login(user, code=code))


def test_totp_code_replay_refused_in_parallel(daemon):
    """Two logins sent at once with the same fresh code (each spends ~0.1 s in scrypt after reading the user):
    exactly one opens a session. Before user updates named the version they read, both did."""
    import threading
    d = daemon
    user = enrol(d, Client(d), tag="preplay")
    for _ in range(3):
        code = user.code()
        clients = [Client(d) for _ in range(4)]
        go = threading.Barrier(len(clients))
        codes = []

        def attempt(cl):
            go.wait()
            codes.append(cl.login(user, code=code).status_code)
        ts = [threading.Thread(target=attempt, args=(cl,)) for cl in clients]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(codes) == [200, 401, 401, 401], f"one code, {codes.count(200)} sessions: {codes}"


def test_expired_invitation(daemon):
    d, c = daemon, Client(daemon)
    # expired before accepting
    user = User(d.account, new_email("expired"), "password of twelve+", roles=["CA Auditors"])
    invite(d, user)
    expire_invitation(d, user.email)
    expect_error(accept(c, user.token, user.password), 404, code="not_found")
    expect_error(confirm(c, user.token, "123456"), 404, code="not_found")
    assert user_entry(d, user.email)["status"] == "invited"

    # expired between accept and confirm
    user2 = User(d.account, new_email("expired2"), "password of twelve+", roles=["CA Auditors"])
    invite(d, user2)
    do_accept(c, user2)
    expire_invitation(d, user2.email)
    expect_error(confirm(c, user2.token, user2.code()), 404, code="not_found")
    assert user_entry(d, user2.email)["status"] == "enrolling"


def test_used_and_unknown_invitation(daemon):
    d, c = daemon, Client(daemon)
    user = enrol(d, c, tag="used")
    expect_error(accept(c, user.token, "another long password"), 404, code="not_found")
    expect_error(confirm(c, user.token, totp(user.secret, current_step() + 1)), 404, code="not_found")
    # the password was not changed by the refused accept
    assert c.login(user).status_code == 200
    # a token that never existed, and a malformed one
    expect_error(accept(c, "A" * 43, "another long password"), 404)
    expect_error(accept(c, "short", "another long password"), 404)


def test_password_length_rules(daemon):
    d, c = daemon, Client(daemon)
    user = User(d.account, new_email("pwlen"), "x", roles=["CA Auditors"])
    invite(d, user)
    for bad in ["a" * 11, "b" * 129, "", None, 123456789012345]:
        body = {"password": bad} if bad is not None else {}
        err = expect_error(c.post(f"/api/v1/invitations/{user.token}/accept", body), 400)
        assert err.get("field") == "password", err
    assert user_entry(d, user.email)["status"] == "invited", "a refused password started the enrolment"
    # the bounds themselves are fine (accepting again before the TOTP confirmation restarts the enrolment)
    for ok_pw in ["c" * 128, "d" * 12]:
        user.password = ok_pw
        do_accept(c, user)
    r = confirm(c, user.token, user.code())
    assert r.status_code == 200, r.text
    assert c.login(user).status_code == 200
    login_failure(c.login(user, password="c" * 128, code=wrong_code(user.secret)))


def test_duplicate_invitation_email(daemon):
    d, c = daemon, Client(daemon)
    user = User(d.account, new_email("dup"), "password of twelve+", roles=["CA Auditors"])
    invite(d, user)
    err = expect_error(invite(d, user, expect=409), 409, code="conflict")
    assert err.get("field") == "email", err
    do_accept(c, user)
    confirm(c, user.token, user.code())
    expect_error(invite(d, user, expect=409), 409)
    # the bootstrap owner's address is taken too
    owner = User(d.account, d.creds[d.account]["owner"]["email"], "x", roles=["Owners"])
    expect_error(invite(d, owner, expect=409), 409)
    # the same address in another partition is another user
    other = User("otheracct", user.email, "password of twelve+", roles=["CA Auditors"])
    invite(d, other)
    assert user_entry(d, user.email, partition="otheracct")["status"] == "invited"
    assert user_entry(d, user.email)["status"] == "active"


def test_invitation_input_validation(daemon):
    d = daemon
    base = {"email": new_email("val"), "firstName": "A", "lastName": "B", "roles": ["CA Auditors"]}
    for patch, field in [({"email": "not-an-address"}, "email"), ({"firstName": ""}, "firstName"),
                         ({"lastName": ""}, "lastName"), ({"roles": []}, "roles"), ({"roles": ["Kings"]}, "roles"),
                         ({"roles": ["Owners", "Owners"]}, "roles"), ({"roles": "Owners"}, "roles")]:
        r = owner_api(d, "POST", "/users/invitations", json={**base, **patch})
        err = expect_error(r, 400)
        assert err.get("field") == field, (patch, err)
    assert user_entry(d, base["email"]) is None


def test_csrf_required_for_state_changes(daemon):
    d, c = daemon, Client(daemon)
    owner = enrol(d, c, roles=["Owners"], tag="csrf")
    other = enrol(d, c, roles=["CA Auditors"], tag="csrf2")
    s = c.session(owner)
    s2 = c.session(other)
    victim = enrol(d, c, roles=["CA Auditors"], tag="victim")

    inv = {"email": new_email("viacsrf"), "firstName": "C", "lastName": "S", "roles": ["CA Auditors"]}
    for token in [None, "", "wrong-token", s2.csrf, s.csrf + "x", s.csrf[:-1]]:
        err = expect_error(s.call("POST", "/users/invitations", csrf=token, json=inv), 403)
        assert err["code"] == "csrf", (token, err)
        err = expect_error(s.call("PUT", f"/users/{victim.email}/roles", csrf=token, json={"roles": ["Owners"]}), 403)
        assert err["code"] == "csrf", (token, err)
        err = expect_error(s.call("DELETE", f"/users/{victim.email}", csrf=token), 403)
        assert err["code"] == "csrf", (token, err)
    assert user_entry(d, inv["email"]) is None, "an invitation without the CSRF token was created"
    e = user_entry(d, victim.email)
    assert e is not None and e["roles"] == ["CA Auditors"], e
    # GET needs no token; the right token lets the same requests through
    assert s.call("GET", "/users", csrf=None).status_code == 200
    r = s.call("POST", "/users/invitations", json=inv)
    assert r.status_code == 201, r.text
    r = s.call("PUT", f"/users/{victim.email}/roles", json={"roles": ["Protocol Auditors"]})
    assert r.status_code == 200 and r.json()["roles"] == ["Protocol Auditors"], r.text
    assert s.call("DELETE", f"/users/{victim.email}").status_code == 200
    assert user_entry(d, victim.email) is None
    # logout needs it too
    for token in [None, s2.csrf, "nope"]:
        expect_error(s.logout(csrf=token), 403, code="csrf")
    assert s.call("GET", "/users").status_code == 200


def test_session_cookie_does_not_cross_partitions(daemon):
    d, c = daemon, Client(daemon)
    user = enrol(d, c, roles=["Owners"], tag="xpart")
    s = c.session(user)
    assert s.call("GET", "/users").status_code == 200
    other_owner = d.creds["otheracct"]["owner"]["email"]
    probe = new_email("xpinv")
    for method, path, kw in [("GET", "/users", {}), ("GET", "/cas", {}), ("GET", "/audit", {}),
                             ("GET", "/tokens", {}),
                             ("POST", "/users/invitations", {"json": {"email": probe, "firstName": "X",
                                                                      "lastName": "Y", "roles": ["Owners"]}}),
                             ("DELETE", f"/users/{other_owner}", {})]:
        for account in ["otheracct", "nosuchpartition"]:
            r = s.call(method, path, account=account, **kw)
            assert r.status_code in (401, 404), f"{method} {account}{path} with an acme cookie -> {r.status_code}"
            error_of(r)
            assert other_owner not in r.text and '"users"' not in r.text and '"cas"' not in r.text, r.text
    assert user_entry(d, probe, partition="otheracct") is None
    assert user_entry(d, other_owner, partition="otheracct") is not None
    # the same email in the other partition does not make the cookie valid there either
    twin = User("otheracct", user.email, "password of twelve+", roles=["Owners"])
    invite(d, twin)
    expect_error(s.call("GET", "/users", account="otheracct"), (401, 404))
    assert s.call("GET", "/users").status_code == 200


def test_lockout_after_five_failures(fresh_daemon):
    d = fresh_daemon
    c = Client(d)
    user = enrol(d, c, tag="lock")
    bystander = enrol(d, c, tag="bystander")

    # four failures, then a success: no lock, and the counter starts again
    for _ in range(3):
        login_failure(c.login(user, password="wrong password!", code=wrong_code(user.secret)))
    login_failure(c.login(user, code=wrong_code(user.secret)))
    assert c.login(user).status_code == 200, "locked after four failures"
    # five more failures (wrong passwords and a wrong code): locked
    for _ in range(4):
        login_failure(c.login(user, password="wrong password!", code=wrong_code(user.secret)))
    login_failure(c.login(user, code=wrong_code(user.secret)))
    for attempt in ["right", "wrong"]:
        pw = user.password if attempt == "right" else "still wrong pw"
        code = totp(user.secret, current_step() + 1) if attempt == "right" else wrong_code(user.secret)
        r = c.login(user, password=pw, code=code)
        err = expect_error(r, 429)
        assert err["code"] == "TooManyRequests", err
        ra = r.headers.get("Retry-After")
        assert ra and ra.isdigit() and 840 <= int(ra) <= 900, f"Retry-After {ra!r}"
    # from another address too (it is the account that is locked)
    c2 = Client(d)
    expect_error(c2.login(user, code=totp(user.secret, current_step() + 1)), 429)
    # other users are not affected
    assert c.login(bystander).status_code == 200
    results = [a["result"] for a in audit_records(d, "auth.login", actor=user.email)]
    assert results.count("failure") >= 9 and results.count("success") == 1, results


def test_login_throttled_per_source_address(daemon):
    d = daemon
    c = Client(d)
    body = {"partition": d.account, "email": new_email("ghost"), "password": "not the password", "code": "000000"}
    t0 = time.monotonic()
    statuses = []
    for _ in range(40):
        # a new address each time: what limits these is the source address
        body["email"] = new_email("ghost")
        r = c.post("/api/v1/login", body)
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    elapsed = time.monotonic() - t0
    assert statuses[:20] == [401] * 20, statuses
    assert statuses[-1] == 429, f"no 429 after {len(statuses)} attempts in {elapsed:.1f} s"
    # 20 a minute: at most one more attempt for every 3 s spent
    assert len(statuses) - 1 <= 20 + int(elapsed / 3) + 1, (statuses, elapsed)
    err = expect_error(r, 429)
    assert err["code"] == "TooManyRequests", err
    ra = r.headers.get("Retry-After")
    assert ra and ra.isdigit() and 1 <= int(ra) <= 60, f"Retry-After {ra!r}"
    # the same applies to the setup endpoints, and another address is not affected
    expect_error(c.post("/api/v1/login/setup", {**body, "newPassword": "a brand new password"}), 429)
    login_failure(Client(d).post("/api/v1/login", body))


def test_role_change_applies_to_live_session(daemon):
    d, c = daemon, Client(daemon)
    user = enrol(d, c, roles=["Owners"], tag="roles")
    s = c.session(user)
    assert s.call("GET", "/users").status_code == 200
    r = owner_api(d, "PUT", f"/users/{user.email}/roles", json={"roles": ["Certificate Administrators"]})
    assert r.status_code == 200, r.text
    assert r.json()["roles"] == ["Certificate Administrators"] and r.json()["email"] == user.email, r.text
    # the very next request of the existing session has the new roles
    expect_error(s.call("GET", "/users"), 403, code="forbidden")
    assert s.call("GET", "/cas").status_code == 200
    expect_error(s.call("POST", "/cas", json=root_body(uid("rol"))), 403, code="forbidden")
    # and back
    r = owner_api(d, "PUT", f"/users/{user.email}/roles", json={"roles": ["CA Auditors", "Owners"]})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["roles"]) == ["CA Auditors", "Owners"], r.text
    assert s.call("GET", "/users").status_code == 200
    assert sorted(user_entry(d, user.email)["roles"]) == ["CA Auditors", "Owners"]
    # bad requests
    err = expect_error(owner_api(d, "PUT", f"/users/{user.email}/roles", json={"roles": ["Kings"]}), 400)
    assert err.get("field") == "roles", err
    expect_error(owner_api(d, "PUT", f"/users/{new_email('nobody')}/roles", json={"roles": ["Owners"]}), 404)
    assert s.call("GET", "/users").status_code == 200


def test_deleted_user_session_ends(daemon):
    d, c = daemon, Client(daemon)
    user = enrol(d, c, tag="deleted")
    s = c.session(user)
    assert s.call("GET", "/cas").status_code == 200
    r = owner_api(d, "DELETE", f"/users/{user.email}")
    assert r.status_code == 200, r.text
    expect_error(s.call("GET", "/cas"), 401)
    expect_error(s.call("POST", "/cas", json=root_body(uid("del"))), 401)
    assert user_entry(d, user.email) is None
    login_failure(c.login(user))
    expect_error(owner_api(d, "DELETE", f"/users/{user.email}"), 404)
    # the address can be invited again; once that new account is active, the old cookie still does nothing
    invite(d, user)
    do_accept(c, user)
    r = confirm(c, user.token, user.code())
    assert r.status_code == 200, r.text
    expect_error(s.call("GET", "/cas"), 401)
    assert c.session(user).call("GET", "/cas").status_code == 200


def test_bootstrap_owner_first_login(fresh_daemon):
    d = fresh_daemon
    c = Client(d)
    creds = d.creds[d.account]["owner"]
    email, one_time = creds["email"], creds["password"]
    owner = User(d.account, email, one_time)
    base = {"partition": d.account, "email": email}

    r = c.post("/api/v1/login", {**base, "password": one_time, "code": "000000"})
    expect_error(r, 403, code="enrolment_required")
    login_failure(c.post("/api/v1/login", {**base, "password": one_time + "x", "code": "000000"}))
    # setup: the one-time password is checked, the new password must be new and long enough
    login_failure(c.post("/api/v1/login/setup", {**base, "password": "not it at all", "newPassword": "x" * 20}))
    err = expect_error(c.post("/api/v1/login/setup", {**base, "password": one_time, "newPassword": one_time}), 400)
    assert err.get("field") == "newPassword", err
    err = expect_error(c.post("/api/v1/login/setup", {**base, "password": one_time, "newPassword": "short"}), 400)
    assert err.get("field") == "newPassword", err
    new_pw = "the owner's own password"
    r = c.post("/api/v1/login/setup", {**base, "password": one_time, "newPassword": new_pw})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "enrolling", body
    owner.secret, owner.password = body["totpSecret"], new_pw
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(body["otpauthUri"]).query))
    assert q.get("secret") == owner.secret, body
    # the one-time password is gone; the new one cannot log in before the TOTP confirmation
    login_failure(c.post("/api/v1/login/setup", {**base, "password": one_time, "newPassword": "y" * 20}))
    expect_error(c.login(owner, code=wrong_code(owner.secret)), 403, code="enrolment_required")
    err = expect_error(c.post("/api/v1/login/setup/confirm", {**base, "password": new_pw,
                                                             "code": wrong_code(owner.secret)}), 400)
    assert err.get("field") == "code", err
    r = c.post("/api/v1/login/setup/confirm", {**base, "password": new_pw, "code": owner.code()})
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    # done: setup cannot run again, the one-time password is dead, login works
    login_failure(c.post("/api/v1/login/setup", {**base, "password": new_pw, "newPassword": "z" * 20}))
    login_failure(c.login(owner, password=one_time, code=wrong_code(owner.secret)))
    s = c.session(owner)
    assert s.body["user"]["roles"] == ["Owners"], s.body
    r = s.call("GET", "/users")
    assert r.status_code == 200, r.text
    me = [u for u in r.json()["users"] if u["email"] == email]
    assert me and me[0]["status"] == "active", r.text
    actions = {a["action"] for a in audit_records(d, "user.enrol.totp", actor=email)} | \
        {a["action"] for a in audit_records(d, "user.enrol.password", actor=email)}
    assert actions == {"user.enrol.totp", "user.enrol.password"}, actions


def test_user_list_never_reveals_secrets(daemon):
    d, c = daemon, Client(daemon)
    active = enrol(d, c, roles=["Owners"], tag="secret", password="Sup3r-Secret-Passphrase")
    half = User(d.account, new_email("secret2"), "An0ther-Secret-Passphrase", roles=["CA Auditors"])
    invite(d, half)
    do_accept(c, half)
    s = c.session(active)
    secrets_ = [active.password, half.password, active.secret, half.secret, active.token, half.token,
                d.creds[d.account]["owner"]["password"], s.sid]
    for r in [list_users(d), s.call("GET", "/users")]:
        text = r.text
        low = text.lower()
        assert "scrypt" not in low and "$15$" not in text, text[:500]
        for sec in secrets_:
            assert sec not in text and sec.lower() not in low, f"a secret ({sec[:4]}...) is in GET /users"
        assert str(b32_key(active.secret).hex()) not in low
        users = r.json()["users"]
        for u in users:
            assert set(u) == {"email", "firstName", "lastName", "status", "roles"}, u
        emails = {u["email"]: u for u in users}
        assert emails[active.email]["status"] == "active" and emails[half.email]["status"] == "enrolling"
    # the login answer's user object neither
    assert set(s.body["user"]) == {"email", "firstName", "lastName", "status", "roles"}, s.body
    for sec in [active.password, active.secret]:
        assert sec not in json.dumps(s.body)


def test_expired_session(daemon):
    d, c = daemon, Client(daemon)
    user = enrol(d, c, tag="sessexp")
    s = c.session(user)
    assert s.call("GET", "/cas").status_code == 200
    n = db_exec(d, "UPDATE session SET expires_at=? WHERE partition_id=? AND email=?",
                int(time.time()) - 1, d.account, user.email)
    assert n == 1, n
    expect_error(s.call("GET", "/cas"), 401)


def test_old_invitation_link_dies_with_deleted_user(daemon):
    d, c = daemon, Client(daemon)
    user = User(d.account, new_email("oldlink"), "password of twelve+", roles=["CA Auditors"])
    invite(d, user)
    old = user.token
    assert owner_api(d, "DELETE", f"/users/{user.email}").status_code == 200
    expect_error(accept(c, old, "attacker's password"), (404, 409))
    invite(d, user)
    assert user.token != old
    expect_error(accept(c, old, "attacker's password"), 404)


@pytest.mark.parametrize("roles", [["Owners,CA Auditors"], ["Owners,"]])
def test_role_names_with_commas_are_refused(daemon, roles):
    d = daemon
    user = User(d.account, new_email("comma"), "x", roles=["CA Auditors"])
    invite(d, user)
    err = expect_error(owner_api(d, "PUT", f"/users/{user.email}/roles", json={"roles": roles}), 400)
    assert err.get("field") == "roles", err
    assert user_entry(d, user.email)["roles"] == ["CA Auditors"]
    email = new_email("comma")
    r = owner_api(d, "POST", "/users/invitations",
                  json={"email": email, "firstName": "A", "lastName": "B", "roles": roles})
    expect_error(r, 400)
    assert user_entry(d, email) is None


def test_last_owner_cannot_be_removed(daemon):
    d = daemon
    part = uid("lastown")
    d.bootstrap(part)
    first = f"owner@{part}.example"
    assert "Owners" in user_entry(d, first, partition=part)["roles"]
    # the only Owner: neither demoted nor deleted
    err = expect_error(owner_api(d, "PUT", f"/users/{first}/roles", partition=part,
                                 json={"roles": ["CA Auditors"]}), 409)
    assert err.get("field") == "email" and "last Owner" in err.get("message", ""), err
    expect_error(owner_api(d, "DELETE", f"/users/{first}", partition=part), 409)
    assert user_entry(d, first, partition=part)["roles"] == ["Owners"]
    # an Owner who has only been invited does not count yet
    second = User(part, new_email("own2"), f"pw-{uid('own2')}-Long!", roles=["Owners"])
    invite(d, second)
    expect_error(owner_api(d, "DELETE", f"/users/{first}", partition=part), 409)
    # once the second Owner is active, the first may step down; then the second is the last one
    c = Client(d)
    do_accept(c, second)
    r = confirm(c, second.token, second.code())
    assert r.status_code == 200, r.text
    r = owner_api(d, "PUT", f"/users/{first}/roles", partition=part, json={"roles": ["CA Auditors"]})
    assert r.status_code == 200, r.text
    expect_error(owner_api(d, "DELETE", f"/users/{second.email}", partition=part), 409)
    expect_error(owner_api(d, "PUT", f"/users/{second.email}/roles", partition=part,
                           json={"roles": ["Protocol Operators"]}), 409)
    # keeping the role while changing others is fine
    r = owner_api(d, "PUT", f"/users/{second.email}/roles", partition=part,
                  json={"roles": ["Owners", "CA Auditors"]})
    assert r.status_code == 200, r.text
    assert owner_api(d, "DELETE", f"/users/{first}", partition=part).status_code == 200
