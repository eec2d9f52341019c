"""`pkiaas backup` / `pkiaas restore` of the SQLite store (docs/operations.md).

A backup taken while the daemon runs is consistent; restoring it (daemon stopped) brings back exactly that state:
what was created before the backup exists, what came after is gone, the audit chain verifies. Both refuse to
overwrite a file unless given --yes, and restore refuses a file that is not a pkiaas store.
"""
import subprocess

from conftest import PKIAAS, clean_env, sqlite_only
from helpers import create_ca, uid
from status_helpers import ok

pytestmark = sqlite_only("backs up and restores the SQLite file (PostgreSQL: pg_dump, see docs/operations.md)")


def _pkiaas(*args):
    return subprocess.run([str(PKIAAS), *args], capture_output=True, text=True, timeout=120, env=clean_env(),
                          input="")


def _root(d, cid):
    return create_ca(d, id=cid, type="root", signingKeyDetails="ECDSAP256+SHA256", subject=f"CN={cid}")


def test_backup_while_running_and_restore(fresh_daemon, tmp_path):
    d = fresh_daemon
    db = d.data_dir / "pkiaas.db"
    before, after = uid("bk-before"), uid("bk-after")
    _root(d, before)
    backup = tmp_path / "pkiaas.backup"

    cp = _pkiaas("backup", str(db), str(backup))
    assert cp.returncode == 0, cp.stderr
    assert "integrity check ok" in cp.stdout
    # never overwritten by accident
    cp = _pkiaas("backup", str(db), str(backup))
    assert cp.returncode == 1 and "--yes" in cp.stderr, cp.stderr

    _root(d, after)
    assert d.api("GET", f"/cas/{after}").status_code == 200

    assert d.stop() == 0
    cp = _pkiaas("restore", str(backup), str(db))
    assert cp.returncode == 1 and "--yes" in cp.stderr, cp.stderr
    cp = _pkiaas("restore", str(backup), str(db), "--yes")
    assert cp.returncode == 0, cp.stderr
    d.start()

    assert d.api("GET", f"/cas/{before}").status_code == 200
    assert d.api("GET", f"/cas/{after}").status_code == 404
    v = ok(d.api("GET", "/audit/verify"))
    assert v["ok"] is True, v


def test_restore_refuses_what_is_not_a_store(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    target = tmp_path / "target.db"
    cp = _pkiaas("restore", str(junk), str(target))
    assert cp.returncode == 1, cp.stdout
    assert not target.exists() or target.stat().st_size == 0
    cp = _pkiaas("backup", str(tmp_path / "missing.db"), str(tmp_path / "out.db"))
    assert cp.returncode == 1 and "cannot read" in cp.stderr, cp.stderr


def _store_ok(path):
    import sqlite3
    c = sqlite3.connect(str(path))
    try:
        return c.execute("SELECT max(version) FROM schema_version").fetchone()[0] > 0
    finally:
        c.close()


def test_failed_backup_keeps_the_previous_one(fresh_daemon, tmp_path):
    """`backup SRC OUT --yes` from a source that is not a store, or one that fails its integrity check, exits 1
    and leaves the previous backup in OUT as it was (the copy is made beside it and renamed over it last)."""
    d = fresh_daemon
    tmp_path = tmp_path / "backups"
    tmp_path.mkdir()
    out = tmp_path / "latest.db"
    assert _pkiaas("backup", str(d.data_dir / "pkiaas.db"), str(out)).returncode == 0
    good = out.read_bytes()
    assert _store_ok(out) and (out.stat().st_mode & 0o777) == 0o600
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"garbage" * 1000)
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(good)
    data = bytearray(good)
    ps = int.from_bytes(data[16:18], "big")
    for p in (2, 3, 4):
        data[p * ps + 8: p * ps + 200] = b"\xff" * 192
    corrupt.write_bytes(bytes(data))
    for src in (junk, corrupt):
        cp = _pkiaas("backup", str(src), str(out), "--yes")
        assert cp.returncode == 1, (src, cp.stdout, cp.stderr)
        assert out.read_bytes() == good, f"a failed backup from {src.name} changed the previous one"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.db", "junk.db", "latest.db"], \
            list(tmp_path.iterdir())  # no temporary file left behind
    assert _pkiaas("restore", str(out), str(tmp_path / "restored.db")).returncode == 0


WRITER = r"""
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
i = 0
while True:
    c.execute("INSERT INTO tick(v) VALUES (?)", (i,))  # one small commit, like an audit record
    i += 1
    time.sleep(0.02)
"""


def test_backup_finishes_while_another_process_writes(tmp_path):
    """Copying in page batches restarted from the first page after every write by another process: a 50 MB
    store written 50 times a second (a busy daemon) was never backed up."""
    import sqlite3
    import sys
    import time
    db = tmp_path / "pkiaas.db"
    c = sqlite3.connect(str(db), isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("CREATE TABLE schema_version(version INTEGER)")
    c.execute("INSERT INTO schema_version VALUES (14)")
    c.execute("CREATE TABLE blob(b BLOB)")
    c.execute("CREATE TABLE tick(v INTEGER)")
    c.execute("BEGIN")
    for _ in range(1500):
        c.execute("INSERT INTO blob VALUES (randomblob(32768))")
    c.execute("COMMIT")
    c.close()
    w = subprocess.Popen([sys.executable, "-c", WRITER, str(db)])
    try:
        time.sleep(0.5)
        try:
            cp = subprocess.run([str(PKIAAS), "backup", str(db), str(tmp_path / "out.db")], capture_output=True,
                                text=True, timeout=45, env=clean_env(), input="")
        except subprocess.TimeoutExpired:
            raise AssertionError("pkiaas backup did not finish in 45 s while another process writes")
        assert cp.returncode == 0, cp.stderr
        assert _store_ok(tmp_path / "out.db")
    finally:
        w.kill()
        w.wait()
