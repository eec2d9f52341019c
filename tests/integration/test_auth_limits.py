"""Login and authentication limits found by review: guesses sent in parallel cannot get past the five-attempt
lockout, the setup endpoints do not tell a right password from a wrong one, a supervisor-invited owner with capital
letters in the address can log in, strangers cannot grow a partition's audit log without bound, and a long
address is recorded whole. Each test failed on the build before its fix."""
import concurrent.futures
import json
import subprocess

import requests

import conftest
from helpers import uid
from test_users import Client, User, audit_records, confirm, do_accept, enrol, invite, new_email, wrong_code


def test_parallel_guesses_stay_within_the_lockout(fresh_daemon):
    d = fresh_daemon
    c0 = Client(d)
    user = enrol(d, c0, tag="race")
    clients = [Client(d) for _ in range(3)]  # 3 connections pools; the per-address limit is 20 a minute
    guesses = [f"wrong guess number {i:03d}" for i in range(44)] + [user.password]

    def attempt(i):
        return clients[i % len(clients)].post("/api/v1/login/setup", {
            "partition": user.partition, "email": user.email, "password": guesses[i], "newPassword": "x" * 20})

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(guesses)) as ex:
        statuses = [r.status_code for r in ex.map(attempt, range(len(guesses)))]
    checked = [s for s in statuses if s != 429]
    assert len(checked) <= 5, statuses  # each check took one of the five attempts first
    assert set(checked) <= {401}, statuses
    r = c0.login(user)
    assert r.status_code == 429 and "Retry-After" in r.headers, r.text


def test_setup_endpoints_do_not_confirm_a_password(daemon):
    d = daemon
    c = Client(d)
    user = enrol(d, c, tag="oracle")
    for path, extra in (("/api/v1/login/setup", {"newPassword": "whatever whatever"}),
                        ("/api/v1/login/setup/confirm", {"code": "000000"})):
        body = {"partition": user.partition, "email": user.email, **extra}
        right = c.post(path, {**body, "password": user.password})
        wrong = c.post(path, {**body, "password": "not the password at all"})
        assert right.status_code == wrong.status_code == 401, (path, right.text, wrong.text)
        assert right.json() == wrong.json()
    # the right password then still logs in (those attempts were not all spent)
    assert c.login(user).status_code == 200


def test_supervisor_owner_with_capitals_in_the_address_logs_in(fresh_daemon):
    d = fresh_daemon
    cp = subprocess.run([str(conftest.PKIAASD), "supervisor-token", "--data-dir", str(d.data_dir),
                         *d.store_args()], capture_output=True, text=True, timeout=60, env=conftest.clean_env())
    assert cp.returncode == 0, cp.stderr
    h = {"Authorization": f"Bearer {json.loads(cp.stdout)['supervisorToken']}"}
    base = f"{d.url}/api/v1/supervisor"
    s = requests.Session()
    s.trust_env = False
    sub = s.post(f"{base}/subscriptions", headers=h, json={"certificates": 1000, "cas": 3}).json()
    bad = s.post(f"{base}/subscriptions/{sub['id']}/assign", headers=h,
                 json={"region": "eu", "label": "Up", "acceptTerms": True, "ownerEmail": 'a"b@example.com',
                       "ownerFirstName": "B", "ownerLastName": "B"})
    assert bad.status_code == 400 and "ownerEmail" in bad.text, bad.text
    email = "Big.Boss@Example.COM"
    r = s.post(f"{base}/subscriptions/{sub['id']}/assign", headers=h,
               json={"region": "eu", "label": "Up", "acceptTerms": True, "ownerEmail": email,
                     "ownerFirstName": "B", "ownerLastName": "B"})
    assert r.status_code == 201, r.text
    assert r.json()["owner"]["email"] == email.lower()
    part = r.json()["partition"]["accountId"]
    c = Client(d)
    user = User(part, email, "a long password 123", roles=["Owners"])
    user.token = r.json()["owner"]["inviteUrl"].rsplit("/", 1)[1]
    do_accept(c, user)
    assert confirm(c, user.token, user.code()).status_code == 200
    assert c.login(user).status_code == 200, "the owner cannot log in with the address as invited"


def test_failed_authentications_are_bounded(fresh_daemon):
    d = fresh_daemon  # its own: the address stays throttled in the partition for a minute
    before = len(audit_records(d, "auth.failed"))
    s = requests.Session()
    s.trust_env = False
    statuses = [s.get(d.api_url("/cas"), headers={"Authorization": f"Bearer junk{i}"}).status_code
                for i in range(60)]
    assert statuses[:30] == [401] * 30, statuses
    assert set(statuses[30:]) == {429}, statuses
    added = len(audit_records(d, "auth.failed")) - before
    assert 30 <= added <= 31, added  # 30, then one saying the rest is not recorded
    # a valid token from the same address still works
    assert d.api("GET", "/cas").status_code == 200


def test_long_address_recorded_whole(daemon):
    d = daemon
    c = Client(d)
    local = "a" * 40 + uid("x").replace("-", "")[:8] + "b" * 20
    users = [User(d.account, f"{local}@{dom}.example", "password of twelve+", roles=["Owners"])
             for dom in ("one", "two")]
    for u in users:
        invite(d, u)
        do_accept(c, u)
        assert confirm(c, u.token, u.code()).status_code == 200
    for u in users:
        s = c.session(u)
        assert s.call("GET", "/me").json()["email"] == u.email
        r = s.call("POST", "/users/invitations", json={"email": new_email("lt"), "firstName": "a", "lastName": "b",
                                                       "roles": ["CA Auditors"]})
        assert r.status_code == 201, r.text
    actors = {a["actor"] for a in audit_records(d, "user.invite") if a["actor"].startswith("user:" + local)}
    assert actors == {f"user:{u.email}" for u in users}, actors


def test_lockout_does_not_tell_which_accounts_exist(fresh_daemon):
    """Five wrong passwords lock a real account (429); unknown and invited-but-not-enrolled addresses answer
    the same way after five attempts instead of 401 forever, so the lockout is no oracle for existence."""
    d = fresh_daemon
    c0 = Client(d)
    real = enrol(d, c0, tag="exists")
    invited = User(d.account, new_email("invited"), "password of twelve+", roles=["Owners"])
    invite(d, invited)
    seqs = {}
    for name, email in (("real", real.email), ("unknown", new_email("nobody")), ("invited", invited.email)):
        c = Client(d)
        body = {"partition": d.account, "email": email, "password": "not the password!", "code": "000000"}
        seqs[name] = [c.post("/api/v1/login", body) for _ in range(6)]
    codes = {k: [r.status_code for r in v] for k, v in seqs.items()}
    assert codes["real"] == [401] * 5 + [429], codes
    assert codes["unknown"] == codes["invited"] == codes["real"], codes
    last = {k: v[-1] for k, v in seqs.items()}
    assert last["unknown"].json() == last["real"].json() == last["invited"].json()
    assert all(int(r.headers["Retry-After"]) > 60 for r in last.values()), {k: r.headers for k, r in last.items()}
    # the invitation still works afterwards: counting attempts did not spend it
    do_accept(c0, invited)
    assert confirm(c0, invited.token, invited.code()).status_code == 200



def test_failed_authentications_do_not_tell_which_partitions_exist(fresh_daemon):
    """Junk tokens against a real partition turned into 429 after 30 a minute while a made-up partition
    answered 401 forever: anyone could tell which partitions exist. Both are limited the same way now."""
    d = fresh_daemon
    s = requests.Session()
    s.trust_env = False
    codes = {}
    for part in (d.account, "no-such-partition-x"):
        codes[part] = [s.get(f"{d.url}/api/v1/partitions/{part}/cas",
                             headers={"Authorization": f"Bearer junk{i}"}).status_code for i in range(35)]
    assert codes[d.account] == codes["no-such-partition-x"], codes
    assert codes[d.account][-1] == 429, codes
