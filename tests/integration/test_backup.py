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
