/* pkiaas backup / restore: copies of the SQLite store through SQLite's
 * online backup API, which takes a consistent snapshot while the daemon
 * keeps writing (WAL). Both refuse to overwrite an existing file unless
 * asked, and check the result with PRAGMA integrity_check. PostgreSQL
 * stores are backed up with pg_dump (docs/operations.md). */
#include "cli/backup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUSY_RETRY_MS 50
#define BUSY_GIVE_UP_MS 30000

/* One consistent copy of src's main database into dst (replacing it), in
 * one step: copying page batches restarts from the first page whenever
 * another process writes between two batches, so a busy daemon's store
 * would never finish. A WAL source keeps taking writes meanwhile. */
static int copy_db(sqlite3 *src, sqlite3 *dst, char *err, size_t errlen)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    int rc, waited = 0;
    if (!b) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(dst));
        return -1;
    }
    while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        if (rc != SQLITE_OK) {
            if (waited >= BUSY_GIVE_UP_MS)
                break;
            sqlite3_sleep(BUSY_RETRY_MS);
            waited += BUSY_RETRY_MS;
        }
    }
    int fin = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE || fin != SQLITE_OK) {
        snprintf(err, errlen, "copy failed: %s", sqlite3_errstr(rc != SQLITE_DONE ? rc : fin));
        return -1;
    }
    return 0;
}

/* integrity_check "ok" and a schema_version table (it is a pkiaas store). */
static int check_db(sqlite3 *db, const char *what, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        /* not a verdict on the file: say what SQLite says (unreadable,
         * not a database, ...) */
        snprintf(err, errlen, "cannot check %s: %s", what, sqlite3_errmsg(db));
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_ROW || !sqlite3_column_text(st, 0) ||
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        snprintf(err, errlen, "%s fails its integrity check", what);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) <= 0) {
        snprintf(err, errlen, "%s is not a pkiaas store (no schema_version)", what);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

static int open_db(const char *path, int flags, sqlite3 **db, char *err, size_t errlen)
{
    if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, *db ? sqlite3_errmsg(*db) : "out of memory");
        return -1;
    }
    sqlite3_busy_timeout(*db, 5000);
    return 0;
}

/* Same file (or both unreadable to tell): copying a store onto itself
 * leaves no copy at all. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Creates (or empties) path readable by its owner only, before SQLite
 * opens it: a copy of the store holds password hashes and the audit log. */
static int create_private(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* A copy that stands alone: rollback journal, not WAL, so it opens
 * read-only (on a backup volume) with nothing beside it. */
static int standalone(sqlite3 *db, const char *what, char *err, size_t errlen)
{
    if (sqlite3_exec(db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot finish %s: %s", what, sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* Removes a temporary copy and the journal SQLite may have left beside it. */
static void remove_tmp(const char *tmp)
{
    static const char *const side[] = {"-journal", "-wal", "-shm"};
    char j[PATH_MAX + 16];
    unlink(tmp);
    for (size_t i = 0; i < sizeof side / sizeof side[0]; i++)
        if ((size_t)snprintf(j, sizeof j, "%s%s", tmp, side[i]) < sizeof j)
            unlink(j);
}

/* The copy is made in a new file beside `out_path` (owner-only, never a
 * file an attacker placed there) and renamed over it only once it passed
 * its checks: a failed backup leaves the previous one as it was. */
int cli_backup(const char *db_path, const char *out_path, bool overwrite, char *err, size_t errlen)
{
    sqlite3 *src = NULL, *dst = NULL;
    char tmp[PATH_MAX];
    bool made = false;
    int rc = -1, fd;
    if (same_file(db_path, out_path)) {
        snprintf(err, errlen, "%s is the store itself: back it up to another file", out_path);
        return -1;
    }
    if (!overwrite && access(out_path, F_OK) == 0) {
        snprintf(err, errlen, "%s exists (pass --yes to replace it)", out_path);
        return -1;
    }
    if (access(db_path, R_OK) != 0) {
        snprintf(err, errlen, "cannot read %s", db_path);
        return -1;
    }
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out_path) >= sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", out_path);
        return -1;
    }
    if ((fd = mkstemp(tmp)) < 0) { /* mode 0600, O_EXCL */
        snprintf(err, errlen, "cannot create a file beside %s: %s", out_path, strerror(errno));
        return -1;
    }
    made = true;
    close(fd);
    if (open_db(db_path, SQLITE_OPEN_READONLY, &src, err, errlen) != 0 ||
        open_db(tmp, SQLITE_OPEN_READWRITE, &dst, err, errlen) != 0 || copy_db(src, dst, err, errlen) != 0 ||
        standalone(dst, out_path, err, errlen) != 0 || check_db(dst, out_path, err, errlen) != 0)
        goto out;
    if (sqlite3_close(dst) != SQLITE_OK) {
        snprintf(err, errlen, "cannot finish %s: %s", out_path, sqlite3_errmsg(dst));
        goto out;
    }
    dst = NULL;
    if (rename(tmp, out_path) != 0) {
        snprintf(err, errlen, "cannot replace %s: %s", out_path, strerror(errno));
        goto out;
    }
    made = false;
    rc = 0;
out:
    sqlite3_close(src);
    sqlite3_close(dst);
    if (made)
        remove_tmp(tmp);
    return rc;
}

int cli_restore(const char *backup_path, const char *db_path, bool overwrite, char *err, size_t errlen)
{
    sqlite3 *src = NULL, *dst = NULL;
    int rc = -1;
    if (!overwrite && access(db_path, F_OK) == 0) {
        snprintf(err, errlen, "%s exists: stop the daemon and pass --yes to replace it", db_path);
        return -1;
    }
    if (access(backup_path, R_OK) != 0) {
        snprintf(err, errlen, "cannot read %s", backup_path);
        return -1;
    }
    if (same_file(backup_path, db_path)) {
        snprintf(err, errlen, "%s is the store itself", backup_path);
        return -1;
    }
    /* the backup is checked before anything is replaced */
    bool fresh = access(db_path, F_OK) != 0;
    if (open_db(backup_path, SQLITE_OPEN_READONLY, &src, err, errlen) != 0 ||
        check_db(src, backup_path, err, errlen) != 0 || (fresh && create_private(db_path, err, errlen) != 0) ||
        open_db(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &dst, err, errlen) != 0 ||
        copy_db(src, dst, err, errlen) != 0 || check_db(dst, db_path, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    sqlite3_close(src);
    sqlite3_close(dst);
    return rc;
}
