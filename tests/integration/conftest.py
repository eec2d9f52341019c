"""Fixtures that run the real pkiaasd.

`daemon`       - one daemon for the whole session (fast; tests use unique CA ids).
`fresh_daemon` - a daemon of its own for tests that restart it or need a clean store.

With PKIAAS_TEST_PG set (a PostgreSQL cluster URL, see scripts/pg-cluster.sh and
`make integration-pg`) every Daemon gets a fresh database of its own on that cluster
(`store = postgresql://...` in its config, also used by `pkiaasd bootstrap`); tests
that read or edit the SQLite file itself are marked `sqlite_only`.

Both yield a `Daemon`: base URL, HTTPS URL, account id, token, a `requests.Session`
carrying the bearer token, `api(method, path, **kw)` for `/api/v1/partitions/{acct}` + path,
and `restart()`. The daemon's stderr goes to a file whose tail is attached to failing tests.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("PKIAAS_BUILD_DIR", REPO / "build"))
PKIAASD = BUILD / "pkiaasd"
PKIAAS = BUILD / "pkiaas"

READY_TIMEOUT_S = 15
STOP_TIMEOUT_S = 5
REQUEST_TIMEOUT_S = 120  # RSA-4096 key generation can take a while on a slow machine

_live = []  # every Daemon created during the session (for failure reports)

# PostgreSQL cluster URL (superuser): run every daemon on a database of its own there.
PG_URL = os.environ.get("PKIAAS_TEST_PG") or None
ON_PG = PG_URL is not None
_confs = {}  # data dir -> the Daemon's config file (bootstrap must use the same store)


def sqlite_only(reason):
    """Marks a test that needs the SQLite backend (it reads or edits the database file itself)."""
    return pytest.mark.skipif(ON_PG, reason=f"sqlite only: {reason}")


def _psql(url, *args, sql=None):
    return subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", url, *args], input=sql,
                          capture_output=True, text=True, timeout=60, env=clean_env())


def store_dump(d):
    """The daemon's whole store as bytes (the SQLite file, or pg_dump of its database): for checks that a
    secret never reaches the database in the clear."""
    if d.store is None:
        return (d.data_dir / "pkiaas.db").read_bytes()
    cp = subprocess.run(["pg_dump", "--no-owner", "-d", d.store], capture_output=True, timeout=120, env=clean_env())
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def store_holds(d, secret):
    """True when `secret` (bytes) is anywhere in the store, as raw bytes or (PostgreSQL dump) as bytea hex."""
    dump = store_dump(d)
    return secret in dump or (d.store is not None and secret.hex().encode() in dump)


def pg_new_database():
    """CREATE DATABASE on the test cluster; returns its URL."""
    name = f"pkiaas_{uuid.uuid4().hex[:20]}"
    cp = _psql(PG_URL, "-q", "-c", f'CREATE DATABASE "{name}"')
    assert cp.returncode == 0, f"CREATE DATABASE failed: {cp.stderr}"
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(PG_URL)._replace(path="/" + name))


def db_exec(d, sql, *args):
    """Runs one statement with `?` parameters on the daemon's store (SQLite file or its PostgreSQL
    database), as an operator or attacker with database access would; returns the row count."""
    if d.store is None:
        import sqlite3
        con = sqlite3.connect(str(d.data_dir / "pkiaas.db"), timeout=30)
        try:
            with con:
                return con.execute(sql, args).rowcount
        finally:
            con.close()
    # psql variables: values are quoted by psql (:'pN'), never spliced by hand
    parts = sql.split("?")
    assert len(parts) == len(args) + 1, "one argument per ?"
    text = parts[0] + "".join(f":'p{i}'{part}" for i, part in enumerate(parts[1:]))
    vargs = []
    for i, a in enumerate(args):
        vargs += ["-v", f"p{i}={a}"]
    cp = _psql(d.store, *vargs, "-f", "-", sql=text + ";\n")
    assert cp.returncode == 0, f"psql failed: {cp.stderr}"
    tag = cp.stdout.strip().splitlines()[-1].split()
    return int(tag[-1]) if tag and tag[-1].isdigit() else 0


def clean_env():
    """The environment for child processes: no proxies (the daemon is local)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in (
        "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy")}
    env.pop("PKIAAS_TOKEN", None)
    env.pop("PKIAAS_URL", None)
    env.pop("PKIAAS_PARTITION", None)
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_bootstrap(data_dir, partition, email=None):
    """Runs `pkiaasd bootstrap` (with the config of the Daemon owning data_dir, so on its store);
    returns the CompletedProcess (text mode)."""
    email = email or f"owner@{partition}.example"
    conf = _confs.get(str(Path(data_dir).resolve()))
    return subprocess.run(
        # Large enough purchases that the suites never hit the quotas
        # (tests of the quotas bootstrap their own small partitions).
        [str(PKIAASD), "bootstrap", "--data-dir", str(data_dir), "--partition", partition,
         "--owner-email", email, "--json", "--certificates", "999999", "--cas", "10000"]
        + (["--config", str(conf)] if conf else []),
        capture_output=True, text=True, timeout=60, env=clean_env())


class _TimeoutSession(requests.Session):
    """A session that never waits forever and ignores proxy settings."""

    def __init__(self):
        super().__init__()
        self.trust_env = False

    def request(self, method, url, **kw):
        kw.setdefault("timeout", REQUEST_TIMEOUT_S)
        return super().request(method, url, **kw)


class Daemon:
    def __init__(self, workdir, partition="acme", store=None):
        """store: a store URI to share (e.g. a second node on the same PostgreSQL database);
        default: SQLite in the data dir, or a fresh database when PKIAAS_TEST_PG is set."""
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = store or (pg_new_database() if ON_PG else None)
        self.conf_path = self.workdir / "base.conf"
        self.stderr_path = self.workdir / "pkiaasd.stderr"
        self.partition = partition
        self.proc = None
        self.http_port = self.https_port = None
        self.creds = {}
        self.account = self.token = None
        self.session = _TimeoutSession()
        self.extra_conf = ""  # further config lines (e.g. ACME validation ports)
        _live.append(self)
        _confs[str(self.data_dir.resolve())] = self.conf_path
        self.write_conf()

    def store_args(self):
        """Arguments that put another `pkiaasd` command (bootstrap, supervisor-token) on this daemon's store."""
        return ["--config", str(self.conf_path)] if self.store else []

    def write_conf(self):
        # The guide's rate limits (100 requests / 10 s) would throttle
        # the suite itself; test_rate_limits.py runs them on its own.
        store = f'store = "{self.store}"\n' if self.store else ""
        self.conf_path.write_text("rate_limit_standard = 0\nrate_limit_premium = 0\n" + store + self.extra_conf)

    # -- set-up ---------------------------------------------------------
    def bootstrap(self, partition=None):
        partition = partition or self.partition
        cp = run_bootstrap(self.data_dir, partition)
        assert cp.returncode == 0, f"bootstrap failed ({cp.returncode}): {cp.stderr}"
        creds = json.loads(cp.stdout)
        self.creds[partition] = creds
        if partition == self.partition:
            self.account = creds["accountId"]
            self.token = creds["apiToken"]
            self.session.headers["Authorization"] = f"Bearer {self.token}"
        return creds

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self):
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def service_ca(self):
        return self.data_dir / "service-ca.pem"

    def start(self, new_ports=False):
        assert self.proc is None, "daemon already running"
        last = None
        for attempt in range(3):
            if new_ports or attempt > 0 or self.http_port is None:
                self.http_port, self.https_port = free_port(), free_port()
                while self.https_port == self.http_port:
                    self.https_port = free_port()
            with open(self.stderr_path, "ab") as err:
                err.write(f"--- pkiaasd serve (attempt {attempt + 1}) http={self.http_port} "
                          f"https={self.https_port}\n".encode())
                err.flush()
                self.write_conf()
                base_conf = self.conf_path
                self.proc = subprocess.Popen(
                    [str(PKIAASD), "serve", "--config", str(base_conf), "--data-dir", str(self.data_dir),
                     "--http", f"127.0.0.1:{self.http_port}", "--https", f"127.0.0.1:{self.https_port}"],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=clean_env())
            last = self._wait_ready()
            if last is None:
                return
            # It exited early (port taken?) - try other ports.
            self.proc = None
        pytest.fail(f"pkiaasd did not become ready: {last}\n--- stderr tail ---\n{self.tail()}")

    def _wait_ready(self):
        """None when /healthz answers 200, else a reason (after killing a hung process)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        reason = "timeout"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                return f"exited with status {rc} before becoming ready"
            try:
                r = requests.get(self.url + "/healthz", timeout=2, proxies={"http": None, "https": None})
                if r.status_code == 200:
                    return None
                reason = f"/healthz answered {r.status_code}"
            except requests.RequestException as exc:
                reason = repr(exc)
            time.sleep(0.1)
        self.proc.kill()
        self.proc.wait()
        pytest.fail(f"pkiaasd not ready within {READY_TIMEOUT_S}s ({reason})\n--- stderr tail ---\n{self.tail()}")

    def stop(self):
        """SIGTERM; returns the exit status (kills and fails if it does not exit within 5 s)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"pkiaasd did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n{self.tail()}")

    def restart(self):
        rc = self.stop()
        assert rc == 0, f"pkiaasd exited with {rc} on SIGTERM\n{self.tail()}"
        self.start()

    # -- requests -------------------------------------------------------
    def api_url(self, path, account=None):
        return f"{self.url}/api/v1/partitions/{account or self.account}{path}"

    def api(self, method, path, **kw):
        return self.session.request(method, self.api_url(path), **kw)

    def get(self, path, **kw):
        """Unauthenticated GET of a path on the HTTP listener."""
        kw.setdefault("timeout", REQUEST_TIMEOUT_S)
        return requests.get(self.url + path, proxies={"http": None, "https": None}, **kw)

    def cli(self, *args, env_extra=None, timeout=REQUEST_TIMEOUT_S, with_creds=True, text=True, input=None):
        """Runs the `pkiaas` client against this daemon."""
        cmd = [str(PKIAAS)]
        if with_creds:
            cmd += ["--url", self.url, "--token", self.token, "--partition", self.account]
        cmd += list(args)
        env = clean_env()
        env.update(env_extra or {})
        return subprocess.run(cmd, capture_output=True, text=text, timeout=timeout, env=env,
                              input=input if input is not None else ("" if text else b""))

    # -- diagnostics ----------------------------------------------------
    def tail(self, n=60):
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no stderr file)"
        return "\n".join(lines[-n:])

    def log_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""


def _require_binaries():
    missing = [str(p) for p in (PKIAASD, PKIAAS) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"binaries not built: {missing} (set PKIAAS_BUILD_DIR)")


@pytest.fixture(scope="session")
def daemon(tmp_path_factory):
    _require_binaries()
    d = Daemon(tmp_path_factory.mktemp("pkiaasd-session"))
    d.bootstrap()
    d.bootstrap("otheracct")  # a second partition, for isolation checks
    d.start()
    yield d
    rc = d.stop()
    assert rc == 0, f"session pkiaasd exited with {rc} on SIGTERM\n{d.tail()}"


@pytest.fixture
def fresh_daemon(tmp_path):
    _require_binaries()
    d = Daemon(tmp_path / "pkiaasd")
    d.bootstrap()
    d.start()
    yield d
    rc = d.stop()
    assert rc in (0, None), f"pkiaasd exited with {rc} on SIGTERM\n{d.tail()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        funcargs = getattr(item, "funcargs", {}) or {}
        used = [v for v in funcargs.values() if isinstance(v, Daemon)]
        for d in used or []:
            report.sections.append((f"pkiaasd stderr tail ({d.stderr_path})", d.tail()))
