#include "store/sqlite/store_sqlite.h"

#include "audit/audit.h"
#include "store/group_commit.h"
#include "store/migrations.h"
#include "util/codec.h"
#include "util/timeutil.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One connection serialised by a mutex: every op is short, and a single
 * writer is what SQLite allows anyway. Reads could use a pool of read
 * connections under WAL if profiling ever shows the lock. */
#define STMT_CACHE 128
#define RATE_SLOTS 4096

struct rate_slot {
    char key[96];
    int64_t tat_ms; /* GCRA theoretical arrival time */
    bool limited;   /* refusing since the last accepted request */
};

struct sq {
    sqlite3 *db;
    pthread_mutex_t mu;
    /* Prepared statements by the address of their SQL literal: every
     * statement text here is a string literal, so the pointer is a stable
     * key. Used only under `mu`. */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } stmts[STMT_CACHE];
    pthread_mutex_t rate_mu;
    struct rate_slot *rate; /* open addressing, RATE_SLOTS */
    /* group commit: concurrent certificate inserts share one transaction
     * (and one fsync); each still succeeds or fails on its own through a
     * savepoint, and each caller returns only after the COMMIT. */
    struct group_commit gc;
};

#define SQ(s) ((struct sq *)(s)->impl)

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "{\"level\":\"error\",\"msg\":\"sqlite: %s\"}\n", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int begin(sqlite3 *db)
{
    return exec(db, "BEGIN IMMEDIATE");
}

static int commit(sqlite3 *db)
{
    return exec(db, "COMMIT");
}

static void rollback(sqlite3 *db)
{
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* Room for element n of a growing array (doubling): returns the array to
 * use from now on, or NULL (the old one is then still valid and owned by
 * the caller). */
static void *grow(void *items, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return items;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(items, ncap * elem);
    if (p)
        *cap = ncap;
    return p;
}

static sqlite3_stmt *prep(struct sq *q, const char *sql)
{
    size_t h = ((uintptr_t)sql >> 3) % STMT_CACHE;
    for (size_t k = 0; k < STMT_CACHE; k++) {
        size_t i = (h + k) % STMT_CACHE;
        if (q->stmts[i].sql == sql)
            return q->stmts[i].st;
        if (!q->stmts[i].sql) {
            sqlite3_stmt *st = NULL;
            if (sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
                fprintf(stderr, "{\"level\":\"error\",\"msg\":\"sqlite prepare: %s\"}\n", sqlite3_errmsg(q->db));
                return NULL;
            }
            q->stmts[i].sql = sql;
            q->stmts[i].st = st;
            return st;
        }
    }
    return NULL; /* more distinct statements than slots: a bug, caught by tests */
}

/* Returns a cached statement to its idle state. */
static void release(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

static char *col_strdup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t n)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, n, "%s", t ? (const char *)t : "");
}

static unsigned char *col_blob(sqlite3_stmt *st, int i, size_t *len)
{
    int n = sqlite3_column_bytes(st, i);
    const void *p = sqlite3_column_blob(st, i);
    *len = 0;
    if (!p || n <= 0)
        return NULL;
    unsigned char *d = malloc((size_t)n);
    if (d) {
        memcpy(d, p, (size_t)n);
        *len = (size_t)n;
    }
    return d;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

static int bind_blob(sqlite3_stmt *st, int i, const unsigned char *p, size_t n)
{
    return p ? sqlite3_bind_blob(st, i, p, (int)n, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return STORE_OK;
    if (rc == SQLITE_CONSTRAINT)
        return STORE_ECONFLICT;
    return STORE_EIO;
}

/* ---- audit chain ------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A partition's chain head carried from one append to the next inside one
 * transaction (a group commit batch holds the store lock, so nothing else
 * appends meanwhile): the next append need not read it back. */
struct audit_head {
    char partition[STORE_ID_MAX + 1];
    char hash[65];
    bool valid;
};

/* Appends to the partition's chain inside the caller's transaction. With
 * `head` (may be NULL), the head is taken from it when it is this
 * partition's, and left there afterwards. */
static int audit_append_at(struct sq *q, const char *partition, const struct audit_rec *a, struct audit_head *head)
{
    if (!a)
        return STORE_OK;
    const char *part = partition ? partition : "";
    char prev[65] = AUDIT_GENESIS;
    char *h = NULL;
    int rc = STORE_EIO;
    int64_t at = now_ms();
    sqlite3_stmt *st;
    if (head && head->valid && strcmp(head->partition, part) == 0) {
        memcpy(prev, head->hash, sizeof prev);
    } else {
        if (!(st = prep(q, "SELECT hash FROM audit WHERE partition_id=? ORDER BY seq DESC LIMIT 1")))
            return STORE_EIO;
        bind_text(st, 1, part);
        if (sqlite3_step(st) == SQLITE_ROW)
            col_copy(st, 0, prev, sizeof prev);
        release(st);
    }
    if (head)
        head->valid = false; /* until this append has succeeded */
    const char *result = a->result ? a->result : "success";
    if (!(h = audit_record_hash(prev, part, at, a->actor, a->ip, a->action, a->target, result, a->detail)))
        return STORE_EIO;
    st = prep(q, "INSERT INTO audit(partition_id,at_ms,actor,source_ip,action,target,result,detail,prev_hash,hash) "
                 "VALUES(?,?,?,?,?,?,?,?,?,?)");
    if (!st)
        goto out;
    bind_text(st, 1, part);
    sqlite3_bind_int64(st, 2, at);
    bind_text(st, 3, a->actor ? a->actor : "");
    bind_text(st, 4, a->ip ? a->ip : "");
    bind_text(st, 5, a->action ? a->action : "");
    bind_text(st, 6, a->target ? a->target : "");
    bind_text(st, 7, result);
    bind_text(st, 8, a->detail);
    bind_text(st, 9, prev);
    bind_text(st, 10, h);
    rc = step_done(st);
    release(st);
    if (rc == STORE_OK && head && strlen(part) < sizeof head->partition && strlen(h) < sizeof head->hash) {
        memcpy(head->partition, part, strlen(part) + 1);
        memcpy(head->hash, h, strlen(h) + 1);
        head->valid = true;
    }
out:
    free(h);
    return rc;
}

static int audit_append(struct sq *q, const char *partition, const struct audit_rec *a)
{
    return audit_append_at(q, partition, a, NULL);
}

static int sq_audit_append(struct store *s, const char *partition, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    if ((rc = audit_append(q, partition, a)) != STORE_OK || commit(q->db) != 0) {
        rollback(q->db);
        rc = rc == STORE_OK ? STORE_EIO : rc;
    }
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_audit_iter(struct store *s, const char *partition, const struct audit_filter *f, audit_cb cb,
                         void *ctx)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT seq,partition_id,at_ms,actor,source_ip,action,target,result,detail,prev_hash,"
                               "hash FROM audit WHERE partition_id=?1 AND seq > ?2"
                               " AND (?3 = 0 OR at_ms >= ?3) AND (?4 = 0 OR at_ms <= ?4)"
                               " AND (?5 IS NULL OR actor=?5) AND (?6 IS NULL OR action=?6)"
                               " AND (?7 IS NULL OR result=?7) ORDER BY seq LIMIT ?8");
    if (!st)
        goto out;
    bind_text(st, 1, partition ? partition : "");
    sqlite3_bind_int64(st, 2, f->after_seq);
    sqlite3_bind_int64(st, 3, f->from_ms);
    sqlite3_bind_int64(st, 4, f->to_ms);
    bind_text(st, 5, f->actor);
    bind_text(st, 6, f->action);
    bind_text(st, 7, f->result);
    sqlite3_bind_int64(st, 8, f->limit ? (sqlite3_int64)f->limit : -1);
    rc = STORE_OK;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct audit_row row = {
            sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 2), col_strdup(st, 1), col_strdup(st, 3),
            col_strdup(st, 4),           col_strdup(st, 5),           col_strdup(st, 6), col_strdup(st, 7),
            col_strdup(st, 8),           col_strdup(st, 9),           col_strdup(st, 10),
        };
        int cr = (row.partition && row.actor && row.ip && row.action && row.target && row.result && row.prev_hash &&
                  row.hash)
                     ? cb(&row, ctx)
                     : STORE_EIO;
        audit_row_free(&row);
        if (cr != 0) {
            rc = cr;
            break;
        }
    }
    if (rc == STORE_OK && r != SQLITE_DONE)
        rc = STORE_EIO;
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_audit_checkpoint_put(struct store *s, const char *partition, const struct audit_checkpoint *c)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "INSERT OR REPLACE INTO audit_checkpoint(partition_id,seq,at_ms,hash,signature) "
                               "VALUES(?,?,?,?,?)");
    if (st) {
        bind_text(st, 1, partition);
        sqlite3_bind_int64(st, 2, c->seq);
        sqlite3_bind_int64(st, 3, c->at_ms);
        bind_text(st, 4, c->hash);
        bind_blob(st, 5, c->sig, c->sig_len);
        rc = step_done(st);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_audit_checkpoint_list(struct store *s, const char *partition, struct audit_checkpoint **out, size_t *n)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    struct audit_checkpoint *items = NULL;
    *n = 0;
    *out = NULL;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT seq,at_ms,hash,signature FROM audit_checkpoint WHERE partition_id=? "
                               "ORDER BY seq");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(items, &cap, *n, sizeof(*items));
        if (!g)
            break;
        items = g;
        struct audit_checkpoint *c = &items[(*n)++];
        c->seq = sqlite3_column_int64(st, 0);
        c->at_ms = sqlite3_column_int64(st, 1);
        col_copy(st, 2, c->hash, sizeof c->hash);
        c->sig = col_blob(st, 3, &c->sig_len);
    }
    if (r == SQLITE_DONE) {
        rc = STORE_OK;
        *out = items;
        items = NULL;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    if (items) {
        for (size_t i = 0; i < *n; i++)
            free(items[i].sig);
        free(items);
        *n = 0;
    }
    return rc;
}

static int sq_audit_key_get(struct store *s, const char *partition, unsigned char **blob, size_t *blob_len,
                            unsigned char **pub, size_t *pub_len)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT key_blob, public_der FROM audit_key WHERE partition_id=?");
    if (st) {
        bind_text(st, 1, partition);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            *blob = col_blob(st, 0, blob_len);
            *pub = col_blob(st, 1, pub_len);
            rc = *blob && *pub ? STORE_OK : STORE_EIO;
        } else {
            rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
        }
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_audit_key_put(struct store *s, const char *partition, const unsigned char *blob, size_t blob_len,
                            const unsigned char *pub, size_t pub_len)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "INSERT INTO audit_key(partition_id,key_blob,public_der,created_at) VALUES(?,?,?,?)");
    if (st) {
        bind_text(st, 1, partition);
        bind_blob(st, 2, blob, blob_len);
        bind_blob(st, 3, pub, pub_len);
        sqlite3_bind_int64(st, 4, time_now());
        rc = step_done(st);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_audit_partitions(struct store *s, char ***ids, size_t *n)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    char **list = NULL;
    *n = 0;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT a.partition_id FROM audit a GROUP BY a.partition_id HAVING max(a.seq) > "
                               "coalesce((SELECT max(seq) FROM audit_checkpoint c WHERE c.partition_id=a.partition_id),0)");
    if (!st)
        goto out;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(list, &cap, *n, sizeof(*list));
        if (!g)
            break;
        list = g;
        if (!(list[*n] = col_strdup(st, 0)))
            break;
        (*n)++;
    }
    if (r == SQLITE_DONE) {
        rc = STORE_OK;
        *ids = list;
        list = NULL;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    if (list) {
        store_free_ids(list, *n);
        *n = 0;
    }
    return rc;
}

/* ---- tenancy ---------------------------------------------------------- */

static int sq_partition_bootstrap(struct store *s, const struct partition_rec *p, const struct user_rec *owner,
                                  const struct token_rec *tok, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    sqlite3_stmt *st = NULL;
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "SELECT 1 FROM partition WHERE id=?");
    if (!st)
        goto fail;
    bind_text(st, 1, p->id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        rc = STORE_ECONFLICT;
        goto fail;
    }
    release(st);
    st = prep(q, "INSERT INTO subscription(id,status,region,certs_purchased,cas_purchased,created_at) "
                     "VALUES(?,'Assigned',?,?,?,?)");
    if (!st)
        goto fail;
    bind_text(st, 1, p->subscription_id);
    bind_text(st, 2, p->region);
    sqlite3_bind_int64(st, 3, p->certs_purchased);
    sqlite3_bind_int64(st, 4, p->cas_purchased);
    sqlite3_bind_int64(st, 5, p->created_at);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = prep(q, "INSERT INTO partition(id,label,region,subscription_id,created_at) VALUES(?,?,?,?,?)");
    if (!st)
        goto fail;
    bind_text(st, 1, p->id);
    bind_text(st, 2, p->label);
    bind_text(st, 3, p->region);
    bind_text(st, 4, p->subscription_id);
    sqlite3_bind_int64(st, 5, p->created_at);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = prep(q, "INSERT INTO app_user(partition_id,email,password_hash,roles,created_at) VALUES(?,?,?,?,?)");
    if (!st)
        goto fail;
    bind_text(st, 1, p->id);
    bind_text(st, 2, owner->email);
    bind_text(st, 3, owner->password_hash);
    bind_text(st, 4, owner->roles);
    sqlite3_bind_int64(st, 5, owner->created_at);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = prep(q, "INSERT INTO api_token(token_hash,partition_id,name,roles,created_at) VALUES(?,?,?,?,?)");
    if (!st)
        goto fail;
    bind_text(st, 1, tok->token_hash);
    bind_text(st, 2, p->id);
    bind_text(st, 3, tok->name);
    bind_text(st, 4, tok->roles);
    sqlite3_bind_int64(st, 5, tok->created_at);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = NULL;
    if ((rc = audit_append(q, p->id, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_partition_get(struct store *s, const char *id, struct partition_rec *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT id,label,region,subscription_id,created_at FROM partition WHERE id=?");
    if (!st)
        goto out;
    bind_text(st, 1, id);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        col_copy(st, 0, out->id, sizeof out->id);
        col_copy(st, 1, out->label, sizeof out->label);
        col_copy(st, 2, out->region, sizeof out->region);
        col_copy(st, 3, out->subscription_id, sizeof out->subscription_id);
        out->created_at = sqlite3_column_int64(st, 4);
        rc = STORE_OK;
    } else {
        rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_token_get(struct store *s, const char *hash, struct token_rec *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT token_hash,partition_id,name,roles,created_at,revoked_at "
                                   "FROM api_token WHERE token_hash=?");
    if (!st)
        goto out;
    bind_text(st, 1, hash);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        col_copy(st, 0, out->token_hash, sizeof out->token_hash);
        col_copy(st, 1, out->partition_id, sizeof out->partition_id);
        col_copy(st, 2, out->name, sizeof out->name);
        out->roles = col_strdup(st, 3);
        out->created_at = sqlite3_column_int64(st, 4);
        out->revoked_at = sqlite3_column_int64(st, 5);
        rc = STORE_OK;
    } else {
        rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_token_insert(struct store *s, const struct token_rec *t, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "SELECT 1 FROM api_token WHERE partition_id=? AND name=? AND revoked_at IS NULL");
    if (!st)
        goto fail;
    bind_text(st, 1, t->partition_id);
    bind_text(st, 2, t->name);
    if (sqlite3_step(st) == SQLITE_ROW) {
        rc = STORE_ECONFLICT;
        goto fail;
    }
    release(st);
    st = prep(q, "INSERT INTO api_token(token_hash,partition_id,name,roles,created_at) VALUES(?,?,?,?,?)");
    if (!st)
        goto fail;
    bind_text(st, 1, t->token_hash);
    bind_text(st, 2, t->partition_id);
    bind_text(st, 3, t->name);
    bind_text(st, 4, t->roles);
    sqlite3_bind_int64(st, 5, t->created_at);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = NULL;
    if ((rc = audit_append(q, t->partition_id, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_token_list(struct store *s, const char *partition, struct token_rec **out, size_t *n)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    struct token_rec *items = NULL;
    *n = 0;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT name, roles, created_at, revoked_at FROM api_token WHERE partition_id=? "
                               "ORDER BY created_at, name");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(items, &cap, *n, sizeof(*items));
        if (!g)
            break;
        items = g;
        struct token_rec *t = &items[(*n)++];
        memset(t, 0, sizeof(*t));
        snprintf(t->partition_id, sizeof t->partition_id, "%s", partition);
        col_copy(st, 0, t->name, sizeof t->name);
        t->roles = col_strdup(st, 1);
        t->created_at = sqlite3_column_int64(st, 2);
        t->revoked_at = sqlite3_column_int64(st, 3);
    }
    if (r == SQLITE_DONE) {
        rc = STORE_OK;
        *out = items;
        items = NULL;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    if (items) {
        for (size_t i = 0; i < *n; i++)
            token_rec_free(&items[i]);
        free(items);
        *n = 0;
    }
    return rc;
}

static int sq_token_revoke(struct store *s, const char *partition, const char *name, int64_t now,
                           const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "UPDATE api_token SET revoked_at=? WHERE partition_id=? AND name=? AND revoked_at IS NULL");
    if (!st)
        goto fail;
    sqlite3_bind_int64(st, 1, now);
    bind_text(st, 2, partition);
    bind_text(st, 3, name);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    if (sqlite3_changes(q->db) == 0) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    release(st);
    st = NULL;
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* ---- CA Gateway credentials ---------------------------------------------- */

static int sq_cagw_ca_get(struct store *s, const char *partition, unsigned char **key_blob, size_t *kl,
                          unsigned char **cert, size_t *cl)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT key_blob, cert_der FROM cagw_ca WHERE partition_id=?");
    if (st) {
        bind_text(st, 1, partition);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            *key_blob = col_blob(st, 0, kl);
            *cert = col_blob(st, 1, cl);
            rc = *key_blob && *cert ? STORE_OK : STORE_EIO;
        } else {
            rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
        }
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_cagw_ca_put(struct store *s, const char *partition, const unsigned char *key_blob, size_t kl,
                          const unsigned char *cert, size_t cl)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "INSERT INTO cagw_ca(partition_id,key_blob,cert_der,created_at) VALUES(?,?,?,?)");
    if (st) {
        bind_text(st, 1, partition);
        bind_blob(st, 2, key_blob, kl);
        bind_blob(st, 3, cert, cl);
        sqlite3_bind_int64(st, 4, time_now());
        rc = step_done(st);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

#define CRED_COLS "partition_id,cred_id,name,serial,cert_der,not_after,status,created_at"

static void cred_from_row(sqlite3_stmt *st, struct cagw_cred *c)
{
    memset(c, 0, sizeof(*c));
    col_copy(st, 0, c->partition_id, sizeof c->partition_id);
    col_copy(st, 1, c->id, sizeof c->id);
    col_copy(st, 2, c->name, sizeof c->name);
    col_copy(st, 3, c->serial, sizeof c->serial);
    c->cert_der = col_blob(st, 4, &c->cert_len);
    c->not_after = sqlite3_column_int64(st, 5);
    col_copy(st, 6, c->status, sizeof c->status);
    c->created_at = sqlite3_column_int64(st, 7);
}

static int sq_cagw_cred_put(struct store *s, const struct cagw_cred *c, bool create, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    if (create) {
        /* a deleted credential's id may be reused: drop the old row */
        st = prep(q, "DELETE FROM cagw_credential WHERE partition_id=? AND cred_id=? AND status='deleted'");
        if (!st)
            goto fail;
        bind_text(st, 1, c->partition_id);
        bind_text(st, 2, c->id);
        if ((rc = step_done(st)) != STORE_OK)
            goto fail;
        release(st);
    }
    st = prep(q, create ? "INSERT INTO cagw_credential(" CRED_COLS ") VALUES(?1,?2,?3,?4,?5,?6,'active',?7)"
                        : "UPDATE cagw_credential SET name=?3, serial=?4, cert_der=?5, not_after=?6 WHERE "
                          "partition_id=?1 AND cred_id=?2 AND status='active'");
    if (!st)
        goto fail;
    bind_text(st, 1, c->partition_id);
    bind_text(st, 2, c->id);
    bind_text(st, 3, c->name);
    bind_text(st, 4, c->serial);
    bind_blob(st, 5, c->cert_der, c->cert_len);
    sqlite3_bind_int64(st, 6, c->not_after);
    if (create)
        sqlite3_bind_int64(st, 7, c->created_at);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    if (!create && sqlite3_changes(q->db) != 1) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    release(st);
    st = NULL;
    if ((rc = audit_append(q, c->partition_id, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int cred_one(struct sq *q, sqlite3_stmt *st, struct cagw_cred *out)
{
    int r = sqlite3_step(st), rc;
    if (r == SQLITE_ROW) {
        cred_from_row(st, out);
        rc = STORE_OK;
    } else {
        rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    }
    release(st);
    (void)q;
    return rc;
}

static int sq_cagw_cred_get(struct store *s, const char *partition, const char *id, struct cagw_cred *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT " CRED_COLS " FROM cagw_credential WHERE partition_id=? AND cred_id=? AND "
                               "status='active'");
    if (st) {
        bind_text(st, 1, partition);
        bind_text(st, 2, id);
        rc = cred_one(q, st, out);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_cagw_cred_by_serial(struct store *s, const char *serial, struct cagw_cred *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT " CRED_COLS " FROM cagw_credential WHERE serial=? AND status='active'");
    if (st) {
        bind_text(st, 1, serial);
        rc = cred_one(q, st, out);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_cagw_cred_list(struct store *s, const char *partition, struct cagw_cred **out, size_t *n)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    struct cagw_cred *items = NULL;
    *n = 0;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT " CRED_COLS " FROM cagw_credential WHERE partition_id=? AND status='active' "
                               "ORDER BY cred_id");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(items, &cap, *n, sizeof(*items));
        if (!g)
            break;
        items = g;
        cred_from_row(st, &items[(*n)++]);
    }
    if (r == SQLITE_DONE) {
        rc = STORE_OK;
        *out = items;
        items = NULL;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    if (items) {
        for (size_t i = 0; i < *n; i++)
            cagw_cred_free(&items[i]);
        free(items);
        *n = 0;
    }
    return rc;
}

static int sq_cagw_cred_delete(struct store *s, const char *partition, const char *id, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "UPDATE cagw_credential SET status='deleted' WHERE partition_id=? AND cred_id=? AND status='active'");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, id);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    if (sqlite3_changes(q->db) != 1) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    release(st);
    st = prep(q, "DELETE FROM cagw_grant WHERE partition_id=? AND cred_id=?");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, id);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = NULL;
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_cagw_grants_set(struct store *s, const char *partition, const char *id, const struct cagw_grant *g,
                              size_t n, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "DELETE FROM cagw_grant WHERE partition_id=? AND cred_id=?");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, id);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    for (size_t i = 0; i < n; i++) {
        st = prep(q, "INSERT OR REPLACE INTO cagw_grant(partition_id,cred_id,ca_id,roles) VALUES(?,?,?,?)");
        if (!st)
            goto fail;
        bind_text(st, 1, partition);
        bind_text(st, 2, id);
        bind_text(st, 3, g[i].ca_id);
        bind_text(st, 4, g[i].roles);
        if ((rc = step_done(st)) != STORE_OK)
            goto fail;
        release(st);
    }
    st = NULL;
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_cagw_grants_get(struct store *s, const char *partition, const char *id, struct cagw_grant **out,
                              size_t *n)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    struct cagw_grant *items = NULL;
    *n = 0;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT ca_id, roles FROM cagw_grant WHERE partition_id=? AND cred_id=? ORDER BY ca_id");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    bind_text(st, 2, id);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(items, &cap, *n, sizeof(*items));
        if (!g)
            break;
        items = g;
        struct cagw_grant *x = &items[(*n)++];
        col_copy(st, 0, x->ca_id, sizeof x->ca_id);
        x->roles = col_strdup(st, 1);
    }
    if (r == SQLITE_DONE) {
        rc = STORE_OK;
        *out = items;
        items = NULL;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    if (items) {
        for (size_t i = 0; i < *n; i++)
            free(items[i].roles);
        free(items);
        *n = 0;
    }
    return rc;
}

/* ---- supervisor ------------------------------------------------------------ */

static int sq_supervisor_token_put(struct store *s, const char *token_hash, const char *name)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "INSERT INTO supervisor_token(token_hash,name,created_at) VALUES(?,?,?)");
    if (st) {
        bind_text(st, 1, token_hash);
        bind_text(st, 2, name);
        sqlite3_bind_int64(st, 3, time_now());
        rc = step_done(st);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_supervisor_token_check(struct store *s, const char *token_hash)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT 1 FROM supervisor_token WHERE token_hash=? AND revoked_at IS NULL");
    if (st) {
        bind_text(st, 1, token_hash);
        int r = sqlite3_step(st);
        rc = r == SQLITE_ROW ? STORE_OK : r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_supervisor_token_revoke(struct store *s, const char *token_hash, long *count)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    *count = 0;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "UPDATE supervisor_token SET revoked_at=?1 WHERE revoked_at IS NULL"
                               " AND (?2 IS NULL OR token_hash=?2)");
    if (st) {
        sqlite3_bind_int64(st, 1, time_now());
        bind_text(st, 2, token_hash);
        rc = step_done(st);
        if (rc == STORE_OK)
            *count = sqlite3_changes(q->db);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_subscription_create(struct store *s, const struct subscription_rec *r)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "INSERT INTO subscription(id,status,region,certs_purchased,cas_purchased,created_at) "
                               "VALUES(?,'Unassigned',NULL,?,?,?)");
    if (st) {
        bind_text(st, 1, r->id);
        sqlite3_bind_int64(st, 2, r->certs_purchased);
        sqlite3_bind_int64(st, 3, r->cas_purchased);
        sqlite3_bind_int64(st, 4, r->created_at);
        rc = step_done(st);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_subscription_list(struct store *s, const char *search, struct subscription_rec **out, size_t *n)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    struct subscription_rec *items = NULL;
    char *like = NULL;
    *n = 0;
    bool ok;
    if (!(like = store_like_pattern(search, &ok)) && !ok)
        return STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT s.id, s.status, coalesce(s.region,''), coalesce(p.id,''), coalesce(p.label,''),"
                               " s.certs_purchased, s.cas_purchased, s.certs_issued,"
                               " (SELECT count(*) FROM ca WHERE ca.partition_id=p.id AND ca.type<>'externalKey' AND"
                               "  (ca.status<>'deleted' OR ca.deleted_at > strftime('%s','now') - 86400)),"
                               " s.created_at FROM subscription s LEFT JOIN partition p ON p.subscription_id=s.id"
                               " WHERE ?1 IS NULL OR s.id LIKE ?1 ESCAPE '\\' OR p.id LIKE ?1 ESCAPE '\\'"
                               " OR p.label LIKE ?1 ESCAPE '\\'"
                               " ORDER BY s.created_at, s.id");
    if (!st)
        goto out;
    bind_text(st, 1, like);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(items, &cap, *n, sizeof(*items));
        if (!g)
            break;
        items = g;
        struct subscription_rec *x = &items[(*n)++];
        memset(x, 0, sizeof(*x));
        col_copy(st, 0, x->id, sizeof x->id);
        col_copy(st, 1, x->status, sizeof x->status);
        col_copy(st, 2, x->region, sizeof x->region);
        col_copy(st, 3, x->partition_id, sizeof x->partition_id);
        col_copy(st, 4, x->label, sizeof x->label);
        x->certs_purchased = sqlite3_column_int64(st, 5);
        x->cas_purchased = sqlite3_column_int64(st, 6);
        x->certs_issued = sqlite3_column_int64(st, 7);
        x->cas_active = sqlite3_column_int64(st, 8);
        x->created_at = sqlite3_column_int64(st, 9);
    }
    if (r == SQLITE_DONE) {
        rc = STORE_OK;
        *out = items;
        items = NULL;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    free(items);
    free(like);
    if (rc != STORE_OK)
        *n = 0;
    return rc;
}

static int sq_subscription_assign(struct store *s, const char *sub_id, const struct partition_rec *p,
                                  const struct user_rec *owner, const char *actor, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "SELECT status FROM subscription WHERE id=?");
    if (!st)
        goto fail;
    bind_text(st, 1, sub_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    char status[16];
    col_copy(st, 0, status, sizeof status);
    release(st);
    if (strcmp(status, "Unassigned") != 0) {
        rc = STORE_ESTATE;
        goto fail;
    }
    st = prep(q, "UPDATE subscription SET status='Assigned', region=?, terms_accepted_at=?, assigned_by=? WHERE id=?");
    if (!st)
        goto fail;
    bind_text(st, 1, p->region);
    sqlite3_bind_int64(st, 2, p->created_at);
    bind_text(st, 3, actor);
    bind_text(st, 4, sub_id);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = prep(q, "INSERT INTO partition(id,label,region,subscription_id,created_at) VALUES(?,?,?,?,?)");
    if (!st)
        goto fail;
    bind_text(st, 1, p->id);
    bind_text(st, 2, p->label);
    bind_text(st, 3, p->region);
    bind_text(st, 4, sub_id);
    sqlite3_bind_int64(st, 5, p->created_at);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = prep(q, "INSERT INTO app_user(partition_id,email,password_hash,roles,first_name,last_name,status,"
                 "must_change_password,created_at) VALUES(?,?,'',?,?,?,'invited',0,?)");
    if (!st)
        goto fail;
    bind_text(st, 1, p->id);
    bind_text(st, 2, owner->email);
    bind_text(st, 3, owner->roles);
    bind_text(st, 4, owner->first_name ? owner->first_name : "");
    bind_text(st, 5, owner->last_name ? owner->last_name : "");
    sqlite3_bind_int64(st, 6, p->created_at);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = NULL;
    if ((rc = audit_append(q, p->id, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* ---- users, invitations, sessions ------------------------------------------ */

#define USER_COLS                                                                                                  \
    "partition_id,email,password_hash,roles,first_name,last_name,status,must_change_password,totp_blob,"          \
    "totp_last_step,failed_logins,locked_until,created_at"

static void user_from_row(sqlite3_stmt *st, struct user_rec *u)
{
    memset(u, 0, sizeof(*u));
    col_copy(st, 0, u->partition_id, sizeof u->partition_id);
    u->email = col_strdup(st, 1);
    u->password_hash = col_strdup(st, 2);
    u->roles = col_strdup(st, 3);
    u->first_name = col_strdup(st, 4);
    u->last_name = col_strdup(st, 5);
    col_copy(st, 6, u->status, sizeof u->status);
    u->must_change_password = sqlite3_column_int(st, 7) != 0;
    u->totp_blob = col_blob(st, 8, &u->totp_len);
    u->totp_last_step = sqlite3_column_int64(st, 9);
    u->failed_logins = sqlite3_column_int(st, 10);
    u->locked_until = sqlite3_column_int64(st, 11);
    u->created_at = sqlite3_column_int64(st, 12);
    u->version = sqlite3_column_int64(st, 13);
}

static int sq_user_get(struct store *s, const char *partition, const char *email, struct user_rec *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT " USER_COLS ", version FROM app_user WHERE partition_id=? AND email=?");
    if (st) {
        bind_text(st, 1, partition);
        bind_text(st, 2, email);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            user_from_row(st, out);
            rc = STORE_OK;
        } else {
            rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
        }
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* Inside a write transaction, before the change: STORE_ESTATE when giving
 * `email` the roles `roles` (NULL: deleting it) takes the Owners role from
 * the partition's last Owner who is not merely invited. */
static int sq_keeps_an_owner(struct sq *q, const char *partition, const char *email, const char *roles)
{
    sqlite3_stmt *st = prep(q, "SELECT roles FROM app_user WHERE partition_id=? AND email=?");
    if (!st)
        return STORE_EIO;
    bind_text(st, 1, partition);
    bind_text(st, 2, email);
    bool had = sqlite3_step(st) == SQLITE_ROW &&
               store_roles_have_owner((const char *)sqlite3_column_text(st, 0));
    release(st);
    if (!had || (roles && store_roles_have_owner(roles)))
        return STORE_OK;
    if (!(st = prep(q, "SELECT roles FROM app_user WHERE partition_id=? AND email<>? AND status<>'invited'")))
        return STORE_EIO;
    bind_text(st, 1, partition);
    bind_text(st, 2, email);
    int rc = STORE_ESTATE, r;
    while (rc == STORE_ESTATE && (r = sqlite3_step(st)) == SQLITE_ROW)
        if (store_roles_have_owner((const char *)sqlite3_column_text(st, 0)))
            rc = STORE_OK;
    release(st);
    return rc;
}

static int sq_user_put(struct store *s, const struct user_rec *u, bool create, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    if (!create && (rc = sq_keeps_an_owner(q, u->partition_id, u->email, u->roles ? u->roles : "")) != STORE_OK)
        goto fail;
    rc = STORE_EIO;
    st = prep(q, create ? "INSERT INTO app_user(" USER_COLS ", version) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,"
                          "?13,?14)"
                        : "UPDATE app_user SET password_hash=?3, roles=?4, first_name=?5, last_name=?6, status=?7, "
                          "must_change_password=?8, totp_blob=?9, totp_last_step=?10, failed_logins=?11, "
                          "locked_until=?12, version=version+1 WHERE partition_id=?1 AND email=?2 AND "
                          "?13 IS NOT NULL AND version=?14");
    if (!st)
        goto fail;
    bind_text(st, 1, u->partition_id);
    bind_text(st, 2, u->email);
    bind_text(st, 3, u->password_hash ? u->password_hash : "");
    bind_text(st, 4, u->roles ? u->roles : "");
    bind_text(st, 5, u->first_name ? u->first_name : "");
    bind_text(st, 6, u->last_name ? u->last_name : "");
    bind_text(st, 7, u->status);
    sqlite3_bind_int(st, 8, u->must_change_password);
    bind_blob(st, 9, u->totp_blob, u->totp_len);
    sqlite3_bind_int64(st, 10, u->totp_last_step);
    sqlite3_bind_int(st, 11, u->failed_logins);
    sqlite3_bind_int64(st, 12, u->locked_until);
    sqlite3_bind_int64(st, 13, u->created_at);
    sqlite3_bind_int64(st, 14, u->version);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    if (!create && sqlite3_changes(q->db) != 1) {
        /* gone, or changed since it was read */
        release(st);
        st = prep(q, "SELECT 1 FROM app_user WHERE partition_id=? AND email=?");
        if (!st)
            goto fail;
        bind_text(st, 1, u->partition_id);
        bind_text(st, 2, u->email);
        rc = sqlite3_step(st) == SQLITE_ROW ? STORE_ECONFLICT : STORE_ENOTFOUND;
        goto fail;
    }
    release(st);
    st = NULL;
    if ((rc = audit_append(q, u->partition_id, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_user_list(struct store *s, const char *partition, struct user_rec **out, size_t *n)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    struct user_rec *items = NULL;
    *n = 0;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT " USER_COLS ", version FROM app_user WHERE partition_id=? ORDER BY email");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(items, &cap, *n, sizeof(*items));
        if (!g)
            break;
        items = g;
        user_from_row(st, &items[(*n)++]);
    }
    if (r == SQLITE_DONE) {
        rc = STORE_OK;
        *out = items;
        items = NULL;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    if (items) {
        for (size_t i = 0; i < *n; i++)
            user_rec_free(&items[i]);
        free(items);
        *n = 0;
    }
    return rc;
}

static int sq_user_delete(struct store *s, const char *partition, const char *email, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    if ((rc = sq_keeps_an_owner(q, partition, email, NULL)) != STORE_OK)
        goto fail;
    rc = STORE_EIO;
    st = prep(q, "DELETE FROM app_user WHERE partition_id=? AND email=?");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, email);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    if (sqlite3_changes(q->db) != 1) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    release(st);
    /* pending invitation links die with the user */
    st = prep(q, "UPDATE invitation SET used_at=strftime('%s','now') WHERE partition_id=? AND email=? AND "
                 "used_at IS NULL");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, email);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = prep(q, "UPDATE session SET revoked_at=strftime('%s','now') WHERE partition_id=? AND email=? AND "
                 "revoked_at IS NULL");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, email);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = NULL;
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_invite_put(struct store *s, const char *token_hash, const char *partition, const char *email,
                         int64_t expires_at)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "INSERT INTO invitation(token_hash,partition_id,email,expires_at) VALUES(?,?,?,?)");
    if (st) {
        bind_text(st, 1, token_hash);
        bind_text(st, 2, partition);
        bind_text(st, 3, email);
        sqlite3_bind_int64(st, 4, expires_at);
        rc = step_done(st);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_invite_get(struct store *s, const char *token_hash, int64_t now, char *partition, size_t plen,
                         char *email, size_t elen)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT partition_id, email FROM invitation WHERE token_hash=? AND used_at IS NULL "
                               "AND expires_at > ?");
    if (st) {
        bind_text(st, 1, token_hash);
        sqlite3_bind_int64(st, 2, now);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            col_copy(st, 0, partition, plen);
            col_copy(st, 1, email, elen);
            rc = STORE_OK;
        } else {
            rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
        }
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_invite_use(struct store *s, const char *token_hash, int64_t now)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "UPDATE invitation SET used_at=?2 WHERE token_hash=?1 AND used_at IS NULL AND "
                               "expires_at > ?2");
    if (st) {
        bind_text(st, 1, token_hash);
        sqlite3_bind_int64(st, 2, now);
        rc = step_done(st);
        if (rc == STORE_OK && sqlite3_changes(q->db) != 1)
            rc = STORE_ENOTFOUND;
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_session_put(struct store *s, const char *id_hash, const struct session_rec *r)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "INSERT INTO session(id_hash,partition_id,email,csrf,created_at,expires_at) "
                               "VALUES(?,?,?,?,?,?)");
    if (st) {
        bind_text(st, 1, id_hash);
        bind_text(st, 2, r->partition_id);
        bind_text(st, 3, r->email);
        bind_text(st, 4, r->csrf);
        sqlite3_bind_int64(st, 5, r->created_at);
        sqlite3_bind_int64(st, 6, r->expires_at);
        rc = step_done(st);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_session_get(struct store *s, const char *id_hash, struct session_rec *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT partition_id,email,csrf,created_at,expires_at,revoked_at FROM session WHERE "
                               "id_hash=?");
    if (st) {
        bind_text(st, 1, id_hash);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            memset(out, 0, sizeof(*out));
            col_copy(st, 0, out->partition_id, sizeof out->partition_id);
            col_copy(st, 1, out->email, sizeof out->email);
            col_copy(st, 2, out->csrf, sizeof out->csrf);
            out->created_at = sqlite3_column_int64(st, 3);
            out->expires_at = sqlite3_column_int64(st, 4);
            out->revoked_at = sqlite3_column_int64(st, 5);
            rc = STORE_OK;
        } else {
            rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
        }
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_session_revoke(struct store *s, const char *id_hash, int64_t now)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "UPDATE session SET revoked_at=? WHERE id_hash=? AND revoked_at IS NULL");
    if (st) {
        sqlite3_bind_int64(st, 1, now);
        bind_text(st, 2, id_hash);
        rc = step_done(st);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* ---- CAs ----------------------------------------------------------------- */

#define CA_COLS                                                                                                    \
    "pk,partition_id,ca_id,friendly_name,type,status,parent_id,key_label,key_blob,cert_der,csr_der,subject,"      \
    "path_len,crl_enabled,ocsp_enabled,created_at,deleted_at,crl_shards"

static void ca_from_row(sqlite3_stmt *st, struct ca_rec *c)
{
    memset(c, 0, sizeof(*c));
    c->pk = sqlite3_column_int64(st, 0);
    col_copy(st, 1, c->partition_id, sizeof c->partition_id);
    col_copy(st, 2, c->id, sizeof c->id);
    c->friendly_name = col_strdup(st, 3);
    col_copy(st, 4, c->type, sizeof c->type);
    col_copy(st, 5, c->status, sizeof c->status);
    col_copy(st, 6, c->parent_id, sizeof c->parent_id);
    col_copy(st, 7, c->key_label, sizeof c->key_label);
    c->key_blob = col_blob(st, 8, &c->key_blob_len);
    c->cert_der = col_blob(st, 9, &c->cert_len);
    c->csr_der = col_blob(st, 10, &c->csr_len);
    c->subject = col_strdup(st, 11);
    c->path_len = sqlite3_column_type(st, 12) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 12);
    c->crl_enabled = sqlite3_column_int(st, 13) != 0;
    c->ocsp_enabled = sqlite3_column_int(st, 14) != 0;
    c->created_at = sqlite3_column_int64(st, 15);
    c->deleted_at = sqlite3_column_int64(st, 16);
    c->crl_shards = sqlite3_column_int(st, 17);
}

static int cert_insert_locked(struct sq *q, struct cert_rec *c)
{
    sqlite3_stmt *st = prep(q, "INSERT INTO certificate(partition_id,issuer_ca_pk,serial,subject,sans,not_before,"
                                "not_after,status,revocation_reason,revoked_at,invalidity_date,profile_id,requester,"
                                "is_ca,der,created_at,crl_shard) VALUES(?,?,?,?,?,?,?,?,NULL,NULL,NULL,?,?,?,?,?,?)");
    if (!st)
        return STORE_EIO;
    bind_text(st, 1, c->partition_id);
    sqlite3_bind_int64(st, 2, c->issuer_ca_pk);
    bind_text(st, 3, c->serial);
    bind_text(st, 4, c->subject ? c->subject : "");
    bind_text(st, 5, c->sans);
    sqlite3_bind_int64(st, 6, c->not_before);
    sqlite3_bind_int64(st, 7, c->not_after);
    bind_text(st, 8, c->status[0] ? c->status : "issued");
    bind_text(st, 9, c->profile_id);
    bind_text(st, 10, c->requester);
    sqlite3_bind_int(st, 11, c->is_ca);
    bind_blob(st, 12, c->der, c->der_len);
    sqlite3_bind_int64(st, 13, c->created_at);
    if (c->crl_shard >= 0)
        sqlite3_bind_int(st, 14, c->crl_shard);
    else
        sqlite3_bind_null(st, 14);
    int rc = step_done(st);
    release(st);
    if (rc == STORE_OK)
        c->pk = sqlite3_last_insert_rowid(q->db);
    return rc;
}

static int sq_ca_insert(struct store *s, struct ca_rec *c, const struct cert_rec *cert, int64_t now,
                        int64_t reserve_s, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    sqlite3_stmt *st = NULL;
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    if (c->parent_id[0]) {
        /* the parent is still active now that the child is written (it was
         * checked before the key was generated, which takes seconds) */
        if (!(st = prep(q, "SELECT 1 FROM ca WHERE partition_id=? AND ca_id=? AND status='active'")))
            goto fail;
        bind_text(st, 1, c->partition_id);
        bind_text(st, 2, c->parent_id);
        bool live = sqlite3_step(st) == SQLITE_ROW;
        release(st);
        st = NULL;
        if (!live) {
            rc = STORE_ESTATE;
            goto fail;
        }
    }
    st = prep(q, "SELECT status, deleted_at FROM ca WHERE partition_id=? AND ca_id=? "
                     "AND (status<>'deleted' OR deleted_at>?)");
    if (!st)
        goto fail;
    bind_text(st, 1, c->partition_id);
    bind_text(st, 2, c->id);
    sqlite3_bind_int64(st, 3, now - reserve_s);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *status = sqlite3_column_text(st, 0);
        rc = status && strcmp((const char *)status, "deleted") == 0 ? STORE_ERESERVED : STORE_ECONFLICT;
        goto fail;
    }
    release(st);
    /* CA quota: live CAs plus those deleted less than 24 h ago (they still
     * count, guide "Deleting a CA") must stay below the purchase. External
     * roots are imported certificates, not CAs we operate: not counted. */
    if (strcmp(c->type, "externalKey") != 0) {
        st = prep(q, "SELECT (SELECT count(*) FROM ca WHERE partition_id=?1 AND type<>'externalKey' AND "
                     "(status<>'deleted' OR deleted_at > ?2)) >= s.cas_purchased FROM partition p JOIN subscription s "
                     "ON s.id=p.subscription_id WHERE p.id=?1");
        if (!st)
            goto fail;
        bind_text(st, 1, c->partition_id);
        sqlite3_bind_int64(st, 2, now - reserve_s);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0)) {
            rc = STORE_EQUOTA;
            goto fail;
        }
        release(st);
    }
    st = prep(q, "INSERT INTO ca(partition_id,ca_id,friendly_name,type,status,parent_id,key_label,key_blob,"
                     "cert_der,csr_der,subject,path_len,crl_enabled,ocsp_enabled,created_at,crl_shards) "
                     "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!st)
        goto fail;
    bind_text(st, 1, c->partition_id);
    bind_text(st, 2, c->id);
    bind_text(st, 3, c->friendly_name ? c->friendly_name : c->id);
    bind_text(st, 4, c->type);
    bind_text(st, 5, c->status);
    bind_text(st, 6, c->parent_id[0] ? c->parent_id : NULL);
    bind_text(st, 7, c->key_label[0] ? c->key_label : NULL);
    bind_blob(st, 8, c->key_blob, c->key_blob_len);
    bind_blob(st, 9, c->cert_der, c->cert_len);
    bind_blob(st, 10, c->csr_der, c->csr_len);
    bind_text(st, 11, c->subject ? c->subject : "");
    if (c->path_len >= 0)
        sqlite3_bind_int(st, 12, c->path_len);
    else
        sqlite3_bind_null(st, 12);
    sqlite3_bind_int(st, 13, c->crl_enabled);
    sqlite3_bind_int(st, 14, c->ocsp_enabled);
    sqlite3_bind_int64(st, 15, c->created_at);
    sqlite3_bind_int(st, 16, c->crl_shards);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = NULL;
    c->pk = sqlite3_last_insert_rowid(q->db);
    if (cert) {
        struct cert_rec cr = *cert;
        if (cr.issuer_ca_pk == 0)
            cr.issuer_ca_pk = c->pk;
        if ((rc = cert_insert_locked(q, &cr)) != STORE_OK)
            goto fail;
    }
    if ((rc = audit_append(q, c->partition_id, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_ca_get(struct store *s, const char *partition, const char *id, struct ca_rec *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    /* The live CA if there is one, else the most recently deleted. */
    sqlite3_stmt *st = prep(q, "SELECT " CA_COLS " FROM ca WHERE partition_id=? AND ca_id=? "
                                   "ORDER BY (status='deleted'), pk DESC LIMIT 1");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    bind_text(st, 2, id);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        ca_from_row(st, out);
        rc = STORE_OK;
    } else {
        rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_ca_list(struct store *s, const char *partition, bool include_deleted, struct ca_list *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    size_t cap = 0;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, include_deleted
                                       ? "SELECT " CA_COLS " FROM ca WHERE partition_id=? ORDER BY created_at, pk"
                                       : "SELECT " CA_COLS " FROM ca WHERE partition_id=? AND status<>'deleted' "
                                         "ORDER BY created_at, pk");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(out->items, &cap, out->n, sizeof(*out->items));
        if (!g)
            goto fail;
        out->items = g;
        ca_from_row(st, &out->items[out->n++]);
    }
    if (r != SQLITE_DONE)
        goto fail;
    rc = STORE_OK;
    goto done;
fail:
    ca_list_free(out);
done:
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_ca_list_active_all(struct store *s, struct ca_list *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT " CA_COLS " FROM ca WHERE status='active' AND type<>'externalKey' "
                                   "ORDER BY pk");
    if (!st)
        goto out;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(out->items, &cap, out->n, sizeof(*out->items));
        if (!g)
            break;
        out->items = g;
        ca_from_row(st, &out->items[out->n++]);
    }
    if (r == SQLITE_DONE)
        rc = STORE_OK;
    else
        ca_list_free(out);
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_ca_activate(struct store *s, const char *partition, const char *id, const unsigned char *der,
                          size_t len, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "UPDATE ca SET cert_der=?, status='active' WHERE partition_id=? AND ca_id=? "
                     "AND status='pending'");
    if (!st)
        goto fail;
    bind_blob(st, 1, der, len);
    bind_text(st, 2, partition);
    bind_text(st, 3, id);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    if (sqlite3_changes(q->db) != 1) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    release(st);
    st = NULL;
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_ca_delete(struct store *s, const char *partition, const char *id, int64_t now, char ***ids,
                        size_t *nids, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    char **list = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    /* The CA and every live descendant, walking parent links. */
    st = prep(q, "WITH RECURSIVE sub(ca_id) AS ("
                     "  SELECT ca_id FROM ca WHERE partition_id=?1 AND ca_id=?2 AND status<>'deleted'"
                     "  UNION SELECT c.ca_id FROM ca c JOIN sub ON c.parent_id=sub.ca_id"
                     "  WHERE c.partition_id=?1 AND c.status<>'deleted')"
                     " SELECT ca_id FROM sub");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        void *g = grow(list, &cap, n, sizeof(*list));
        if (!g)
            goto fail;
        list = g;
        if (!(list[n] = col_strdup(st, 0)))
            goto fail;
        n++;
    }
    release(st);
    st = NULL;
    if (n == 0) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        st = prep(q, "UPDATE ca SET status='deleted', deleted_at=? WHERE partition_id=? AND ca_id=? "
                         "AND status<>'deleted'");
        if (!st)
            goto fail;
        sqlite3_bind_int64(st, 1, now);
        bind_text(st, 2, partition);
        bind_text(st, 3, list[i]);
        if ((rc = step_done(st)) != STORE_OK)
            goto fail;
        release(st);
        st = NULL;
    }
        /* CA Gateway grants end with their CA: a CA created later under the
     * same id is another CA */
    for (size_t i = 0; i < n; i++) {
        st = prep(q, "DELETE FROM cagw_grant WHERE partition_id=? AND ca_id=?");
        if (!st)
            goto fail;
        bind_text(st, 1, partition);
        bind_text(st, 2, list[i]);
        if ((rc = step_done(st)) != STORE_OK)
            goto fail;
        release(st);
        st = NULL;
    }
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    if (commit(q->db) != 0) {
        rc = STORE_EIO;
        goto fail;
    }
    *ids = list;
    *nids = n;
    list = NULL;
    rc = STORE_OK;
    goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    store_free_ids(list, n);
    return rc;
}

/* ---- certificates -------------------------------------------------------- */

static int quota_take(struct sq *q, const char *partition)
{
    sqlite3_stmt *st = prep(q, "UPDATE subscription SET certs_issued = certs_issued + 1 "
                                "WHERE id = (SELECT subscription_id FROM partition WHERE id=?) "
                                "AND certs_issued < certs_purchased");
    if (!st)
        return STORE_EIO;
    bind_text(st, 1, partition);
    int rc = step_done(st);
    release(st);
    if (rc == STORE_OK && sqlite3_changes(q->db) != 1)
        rc = STORE_EQUOTA;
    return rc;
}

/* The group commit's transaction control, as cached statements (compiled
 * once instead of by sqlite3_exec for every batch and every job, inside the
 * store lock). prep() caches by address: these are the only copies. */
static const char SQL_GC_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_GC_COMMIT[] = "COMMIT";
static const char SQL_GC_SAVEPOINT[] = "SAVEPOINT job";
static const char SQL_GC_ROLLBACK_TO[] = "ROLLBACK TO job";
static const char SQL_GC_RELEASE[] = "RELEASE job";

/* Runs a cached statement without result rows: 0, or -1 (logged). */
static int run_cached(struct sq *q, const char *sql)
{
    sqlite3_stmt *st = prep(q, sql);
    int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (st)
        sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "{\"level\":\"error\",\"msg\":\"sqlite: %s: %s\"}\n", sql, sqlite3_errmsg(q->db));
        return -1;
    }
    return 0;
}

/* The issuing CA is not deleted (it was checked before signing, but a
 * deletion may have committed since): STORE_OK, or STORE_ESTATE. */
static int issuer_live(struct sq *q, int64_t ca_pk)
{
    sqlite3_stmt *st = prep(q, "SELECT 1 FROM ca WHERE pk=? AND status<>'deleted'");
    if (!st)
        return STORE_EIO;
    sqlite3_bind_int64(st, 1, ca_pk);
    int r = sqlite3_step(st);
    release(st);
    return r == SQLITE_ROW ? STORE_OK : r == SQLITE_DONE ? STORE_ESTATE : STORE_EIO;
}

/* One job's writes: quota, certificate row, audit record. *live_pk (when
 * given) is an issuer already found live in this transaction: a batch of
 * one CA's certificates looks it up once. */
static int gc_job_run(struct sq *q, struct gc_job *j, struct audit_head *head, int64_t *live_pk)
{
    int rc;
    if (!live_pk || *live_pk != j->c->issuer_ca_pk) {
        if ((rc = issuer_live(q, j->c->issuer_ca_pk)) != STORE_OK)
            return rc;
        if (live_pk)
            *live_pk = j->c->issuer_ca_pk;
    }
    if ((j->count_quota && (rc = quota_take(q, j->c->partition_id)) != STORE_OK) ||
        (rc = cert_insert_locked(q, j->c)) != STORE_OK ||
        (rc = audit_append_at(q, j->c->partition_id, j->a, head)) != STORE_OK)
        return rc;
    return STORE_OK;
}

/* Commits a batch in one transaction. First optimistically, every job
 * straight into the transaction (no savepoints: nothing to journal); if any
 * job fails (quota used up, a duplicate serial, ...), the whole transaction
 * is rolled back and the batch runs again with a savepoint per job, so each
 * job still succeeds or fails on its own. */
static void gc_run_batch(void *ctx, struct gc_job *batch)
{
    struct sq *q = ctx;
    pthread_mutex_lock(&q->mu);
    /* the fast path carries the audit chain head from job to job; the
     * fallback (savepoints, jobs rolled back) reads it each time */
    struct audit_head head = {.valid = false};
    int64_t live_pk = 0;
    bool fast = run_cached(q, SQL_GC_BEGIN) == 0;
    for (struct gc_job *j = batch; fast && j; j = j->next)
        fast = (j->rc = gc_job_run(q, j, &head, &live_pk)) == STORE_OK;
    if (fast && run_cached(q, SQL_GC_COMMIT) == 0)
        goto unlock;
    rollback(q->db);
    int began = run_cached(q, SQL_GC_BEGIN) == 0;
    for (struct gc_job *j = batch; j; j = j->next) {
        if (!began || run_cached(q, SQL_GC_SAVEPOINT) != 0) {
            j->rc = STORE_EIO;
            continue;
        }
        if ((j->rc = gc_job_run(q, j, NULL, NULL)) != STORE_OK)
            run_cached(q, SQL_GC_ROLLBACK_TO);
        run_cached(q, SQL_GC_RELEASE);
    }
    if (began && run_cached(q, SQL_GC_COMMIT) != 0) {
        rollback(q->db);
        for (struct gc_job *j = batch; j; j = j->next)
            j->rc = STORE_EIO;
    }
unlock:
    pthread_mutex_unlock(&q->mu);
}

static int sq_cert_insert(struct store *s, struct cert_rec *c, bool count_quota, const struct audit_rec *a)
{
    return group_commit_submit(&SQ(s)->gc, c, count_quota, a);
}

#define CERT_COLS                                                                                                  \
    "pk,partition_id,issuer_ca_pk,serial,subject,sans,not_before,not_after,status,revocation_reason,revoked_at,"  \
    "invalidity_date,profile_id,requester,is_ca,der,created_at,crl_shard,status_comment"

static void cert_from_row(sqlite3_stmt *st, struct cert_rec *out)
{
    memset(out, 0, sizeof(*out));
    out->pk = sqlite3_column_int64(st, 0);
    col_copy(st, 1, out->partition_id, sizeof out->partition_id);
    out->issuer_ca_pk = sqlite3_column_int64(st, 2);
    col_copy(st, 3, out->serial, sizeof out->serial);
    out->subject = col_strdup(st, 4);
    out->sans = col_strdup(st, 5);
    out->not_before = sqlite3_column_int64(st, 6);
    out->not_after = sqlite3_column_int64(st, 7);
    col_copy(st, 8, out->status, sizeof out->status);
    out->revocation_reason = sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 9);
    out->revoked_at = sqlite3_column_int64(st, 10);
    out->invalidity_date = sqlite3_column_int64(st, 11);
    out->profile_id = col_strdup(st, 12);
    out->requester = col_strdup(st, 13);
    out->is_ca = sqlite3_column_int(st, 14) != 0;
    out->der = col_blob(st, 15, &out->der_len);
    out->created_at = sqlite3_column_int64(st, 16);
    out->crl_shard = sqlite3_column_type(st, 17) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 17);
    out->status_comment = col_strdup(st, 18);
}

static int sq_cert_list(struct store *s, const char *partition, int64_t issuer_ca_pk, const struct cert_query *qy,
                        struct cert_list *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    char *like = NULL;
    memset(out, 0, sizeof(*out));
    bool ok;
    if (!(like = store_like_pattern(qy->text, &ok)) && !ok)
        return STORE_EIO;
    pthread_mutex_lock(&q->mu);
    /* Each optional filter is "(?N IS NULL OR ...)" so one statement
     * serves every combination. LIKE wildcards in the user's text match
     * literally (store_like_pattern). */
    sqlite3_stmt *st = prep(q,
                            "SELECT " CERT_COLS " FROM certificate WHERE partition_id=?1 AND issuer_ca_pk=?2"
                            " AND (?3 IS NULL OR status=?3) AND (?4 IS NULL OR profile_id=?4)"
                            " AND (?5 IS NULL OR subject LIKE ?5 ESCAPE '\\' OR sans LIKE ?5 ESCAPE '\\')"
                            " AND (?6 IS NULL OR serial=?6)"
                            " AND (?7 = 0 OR not_after <= ?7) AND (?8 = 0 OR not_after > ?8)"
                            " AND (?9 IS NULL OR not_after > ?10 OR (not_after = ?10 AND serial > ?9))"
                            " AND (?11 OR is_ca = 0)"
                            " AND ((?13 IS NULL AND ?14 IS NULL)"
                            " OR substr(requester,1,length(?13))=?13 OR substr(requester,1,length(?14))=?14)"
                            " ORDER BY not_after, serial LIMIT ?12");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    sqlite3_bind_int64(st, 2, issuer_ca_pk);
    bind_text(st, 3, qy->status);
    bind_text(st, 4, qy->profile_id);
    bind_text(st, 5, like);
    bind_text(st, 6, qy->serial);
    sqlite3_bind_int64(st, 7, qy->expires_before);
    sqlite3_bind_int64(st, 8, qy->expires_after);
    bind_text(st, 9, qy->cursor_serial);
    sqlite3_bind_int64(st, 10, qy->cursor_not_after);
    sqlite3_bind_int(st, 11, qy->include_ca);
    sqlite3_bind_int(st, 12, (int)(qy->limit ? qy->limit : 50));
    bind_text(st, 13, qy->requester_prefix[0]);
    bind_text(st, 14, qy->requester_prefix[1]);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(out->items, &cap, out->n, sizeof(*out->items));
        if (!g)
            break;
        out->items = g;
        cert_from_row(st, &out->items[out->n++]);
    }
    if (r == SQLITE_DONE)
        rc = STORE_OK;
    else
        cert_list_free(out);
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    free(like);
    return rc;
}

static int sq_cert_set_status(struct store *s, const char *partition, int64_t issuer_ca_pk, const char *serial,
                              const char *status, int reason, int64_t at, int64_t invalidity,
                              const char *comment, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "SELECT status FROM certificate WHERE partition_id=? AND issuer_ca_pk=? AND serial=?");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    sqlite3_bind_int64(st, 2, issuer_ca_pk);
    bind_text(st, 3, serial);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    char cur[16];
    col_copy(st, 0, cur, sizeof cur);
    release(st);
    st = NULL;
    bool ok = (strcmp(cur, "issued") == 0 && (strcmp(status, "revoked") == 0 || strcmp(status, "suspended") == 0)) ||
              (strcmp(cur, "suspended") == 0 && (strcmp(status, "revoked") == 0 || strcmp(status, "issued") == 0));
    if (!ok) {
        rc = STORE_ESTATE;
        goto fail;
    }
    bool back = strcmp(status, "issued") == 0;
    /* Revoking frees purchased capacity (guide "Quotas"); CA certificates
     * and the service's own (OCSP responder, SCEP/CMP RA: requester
     * 'system') never took any. */
    if (strcmp(status, "revoked") == 0) {
        st = prep(q, "UPDATE subscription SET certs_issued = max(certs_issued - 1, 0) WHERE id = (SELECT "
                     "subscription_id FROM partition WHERE id=?1) AND EXISTS (SELECT 1 FROM certificate WHERE "
                     "partition_id=?1 AND issuer_ca_pk=?2 AND serial=?3 AND is_ca=0 AND "
                     "coalesce(profile_id,'')<>'ocsp-responder' AND coalesce(requester,'')<>'system')");
        if (!st)
            goto fail;
        bind_text(st, 1, partition);
        sqlite3_bind_int64(st, 2, issuer_ca_pk);
        bind_text(st, 3, serial);
        if ((rc = step_done(st)) != STORE_OK)
            goto fail;
        release(st);
        st = NULL;
    }
    st = prep(q, "UPDATE certificate SET status=?, revocation_reason=?, revoked_at=?, invalidity_date=?, "
                 "status_comment=? WHERE partition_id=? AND issuer_ca_pk=? AND serial=?");
    if (!st)
        goto fail;
    bind_text(st, 1, status);
    if (back || reason < 0)
        sqlite3_bind_null(st, 2);
    else
        sqlite3_bind_int(st, 2, reason);
    if (back)
        sqlite3_bind_null(st, 3);
    else
        sqlite3_bind_int64(st, 3, at);
    if (back || !invalidity)
        sqlite3_bind_null(st, 4);
    else
        sqlite3_bind_int64(st, 4, invalidity);
    if (comment && *comment)
        bind_text(st, 5, comment);
    else
        sqlite3_bind_null(st, 5);
    bind_text(st, 6, partition);
    sqlite3_bind_int64(st, 7, issuer_ca_pk);
    bind_text(st, 8, serial);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = NULL;
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_cert_revoke_batch(struct store *s, const char *partition, int64_t issuer_ca_pk, const char *ca_id,
                                const char *const *serials, size_t n, int reason, int64_t at, int64_t invalidity,
                                const struct audit_rec *a, int *results)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    for (size_t i = 0; i < n; i++) {
        st = prep(q, "SELECT status, is_ca, coalesce(profile_id,''), coalesce(requester,'')='system' FROM "
                     "certificate WHERE partition_id=? AND issuer_ca_pk=? AND serial=?");
        if (!st)
            goto fail;
        bind_text(st, 1, partition);
        sqlite3_bind_int64(st, 2, issuer_ca_pk);
        bind_text(st, 3, serials[i]);
        if (sqlite3_step(st) != SQLITE_ROW) {
            results[i] = 2;
            release(st);
            continue;
        }
        char cur[16], prof[80];
        col_copy(st, 0, cur, sizeof cur);
        int is_ca = sqlite3_column_int(st, 1), svc = sqlite3_column_int(st, 3);
        col_copy(st, 2, prof, sizeof prof);
        release(st);
        if (strcmp(cur, "revoked") == 0) {
            results[i] = 1;
            continue;
        }
        /* the comment of an earlier suspension does not describe this change */
        st = prep(q, "UPDATE certificate SET status='revoked', revocation_reason=?1, revoked_at=?2, "
                     "invalidity_date=?3, status_comment=NULL WHERE partition_id=?4 AND issuer_ca_pk=?5 AND "
                     "serial=?6");
        if (!st)
            goto fail;
        if (reason < 0)
            sqlite3_bind_null(st, 1);
        else
            sqlite3_bind_int(st, 1, reason);
        sqlite3_bind_int64(st, 2, at);
        if (invalidity)
            sqlite3_bind_int64(st, 3, invalidity);
        else
            sqlite3_bind_null(st, 3);
        bind_text(st, 4, partition);
        sqlite3_bind_int64(st, 5, issuer_ca_pk);
        bind_text(st, 6, serials[i]);
        if ((rc = step_done(st)) != STORE_OK)
            goto fail;
        release(st);
        st = NULL;
        if (!is_ca && !svc && strcmp(prof, "ocsp-responder") != 0) {
            /* revoking frees purchased capacity (not the service's own) */
            st = prep(q, "UPDATE subscription SET certs_issued = max(certs_issued - 1, 0) WHERE id = (SELECT "
                         "subscription_id FROM partition WHERE id=?)");
            if (!st)
                goto fail;
            bind_text(st, 1, partition);
            if ((rc = step_done(st)) != STORE_OK)
                goto fail;
            release(st);
            st = NULL;
        }
        char target[128];
        snprintf(target, sizeof target, "cert:%s/%s", ca_id, serials[i]);
        struct audit_rec ar = *a;
        ar.target = target;
        if ((rc = audit_append(q, partition, &ar)) != STORE_OK)
            goto fail;
        results[i] = 0;
    }
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_inventory(struct store *s, const char *partition, struct inventory *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    /* A CA deleted less than 24 h ago still counts as active (guide:
     * "Deleting a CA"). */
    sqlite3_stmt *st = prep(q, "SELECT s.certs_issued, s.certs_purchased, s.cas_purchased,"
                                   " (SELECT count(*) FROM ca WHERE ca.partition_id=p.id AND (ca.status<>'deleted'"
                                   "   OR ca.deleted_at > strftime('%s','now') - 86400))"
                                   " FROM partition p JOIN subscription s ON s.id=p.subscription_id WHERE p.id=?");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        out->certs_issued = sqlite3_column_int64(st, 0);
        out->certs_purchased = sqlite3_column_int64(st, 1);
        out->cas_purchased = sqlite3_column_int64(st, 2);
        out->cas_active = sqlite3_column_int64(st, 3);
        rc = STORE_OK;
    } else {
        rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* ---- profiles ------------------------------------------------------------ */

static int sq_profile_put(struct store *s, const char *partition, const char *id, const char *group,
                          const char *json, bool create, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, create ? "INSERT INTO profile(partition_id,profile_id,grp,json,created_at,updated_at) "
                              "VALUES(?1,?2,?3,?4,?5,?5)"
                            : "UPDATE profile SET grp=?3, json=?4, updated_at=?5 WHERE partition_id=?1 AND "
                              "profile_id=?2");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, id);
    bind_text(st, 3, group);
    bind_text(st, 4, json);
    sqlite3_bind_int64(st, 5, time_now());
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    if (!create && sqlite3_changes(q->db) != 1) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    release(st);
    st = NULL;
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_profile_get(struct store *s, const char *partition, const char *id, char **json)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT json FROM profile WHERE partition_id=? AND profile_id=?");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    bind_text(st, 2, id);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        rc = (*json = col_strdup(st, 0)) ? STORE_OK : STORE_EIO;
    else
        rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_profile_list(struct store *s, const char *partition, struct profile_rows *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT profile_id, json FROM profile WHERE partition_id=? ORDER BY grp, "
                                   "profile_id");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(out->items, &cap, out->n, sizeof(*out->items));
        if (!g)
            break;
        out->items = g;
        struct profile_row *row = &out->items[out->n++];
        col_copy(st, 0, row->id, sizeof row->id);
        row->json = col_strdup(st, 1);
    }
    if (r == SQLITE_DONE)
        rc = STORE_OK;
    else
        profile_rows_free(out);
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_profile_delete(struct store *s, const char *partition, const char *id, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "SELECT 1 FROM ca_profile cp JOIN ca ON ca.pk=cp.ca_pk WHERE cp.partition_id=? AND "
                     "cp.profile_id=? AND ca.status<>'deleted' LIMIT 1");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        rc = STORE_ECONFLICT;
        goto fail;
    }
    release(st);
    st = prep(q, "DELETE FROM profile WHERE partition_id=? AND profile_id=?");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, id);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    if (sqlite3_changes(q->db) != 1) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    release(st);
    st = NULL;
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_ca_profile_list(struct store *s, const char *partition, int64_t ca_pk, char ***ids, size_t *n)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    size_t cap = 0;
    char **list = NULL;
    *n = 0;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT profile_id FROM ca_profile WHERE partition_id=? AND ca_pk=? ORDER BY "
                                   "profile_id");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    sqlite3_bind_int64(st, 2, ca_pk);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(list, &cap, *n, sizeof(*list));
        if (!g)
            break;
        list = g;
        if (!(list[*n] = col_strdup(st, 0)))
            break;
        (*n)++;
    }
    if (r == SQLITE_DONE) {
        rc = STORE_OK;
        *ids = list;
        list = NULL;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    if (list) {
        store_free_ids(list, *n);
        *n = 0;
    }
    return rc;
}

static int sq_ca_profile_set(struct store *s, const char *partition, int64_t ca_pk, const char *profile_id, bool add,
                             bool custom, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    if (add && custom) {
        /* under the store lock, as profile_delete runs: one or the other */
        if (!(st = prep(q, "SELECT 1 FROM profile WHERE partition_id=? AND profile_id=?")))
            goto fail;
        bind_text(st, 1, partition);
        bind_text(st, 2, profile_id);
        bool exists = sqlite3_step(st) == SQLITE_ROW;
        release(st);
        st = NULL;
        if (!exists) {
            rc = STORE_ENOTFOUND;
            goto fail;
        }
    }
    st = prep(q, add ? "INSERT OR IGNORE INTO ca_profile(partition_id,ca_pk,profile_id) VALUES(?,?,?)"
                         : "DELETE FROM ca_profile WHERE partition_id=? AND ca_pk=? AND profile_id=?");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    sqlite3_bind_int64(st, 2, ca_pk);
    bind_text(st, 3, profile_id);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    if (!add && sqlite3_changes(q->db) != 1) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    release(st);
    st = NULL;
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_cert_get(struct store *s, const char *partition, int64_t issuer_ca_pk, const char *serial,
                       struct cert_rec *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT " CERT_COLS " FROM certificate WHERE partition_id=? AND issuer_ca_pk=? "
                                   "AND serial=?");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    sqlite3_bind_int64(st, 2, issuer_ca_pk);
    bind_text(st, 3, serial);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        cert_from_row(st, out);
        rc = STORE_OK;
    } else {
        rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* ---- status services ---------------------------------------------------- */

static int sq_crl_next_number(struct store *s, const char *partition, int64_t ca_pk, int64_t *number)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "UPDATE ca SET crl_number = crl_number + 1 WHERE partition_id=? AND pk=? RETURNING crl_number");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    sqlite3_bind_int64(st, 2, ca_pk);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    *number = sqlite3_column_int64(st, 0);
    release(st);
    st = NULL;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_crl_save(struct store *s, const char *partition, int64_t ca_pk, const struct crl_rec *c)
{
    struct sq *q = SQ(s);
    pthread_mutex_lock(&q->mu);
    int rc = STORE_EIO;
    sqlite3_stmt *st = prep(q, "INSERT INTO crl(partition_id,ca_pk,number,this_update,next_update,entries,der,"
                               "shard) VALUES(?,?,?,?,?,?,?,?)");
    if (st) {
        bind_text(st, 1, partition);
        sqlite3_bind_int64(st, 2, ca_pk);
        sqlite3_bind_int64(st, 3, c->number);
        sqlite3_bind_int64(st, 4, c->this_update);
        sqlite3_bind_int64(st, 5, c->next_update);
        sqlite3_bind_int64(st, 6, c->entries);
        bind_blob(st, 7, c->der, c->der_len);
        sqlite3_bind_int(st, 8, c->shard);
        rc = step_done(st);
        release(st);
    }
    /* Keep the newest 100 CRLs per CA in the history list, and the bytes of
     * only the newest CRL_KEEP_DER (a CA with many revocations publishes
     * megabytes each time; nothing serves an older one). */
    if (rc == STORE_OK && (st = prep(q, "DELETE FROM crl WHERE ca_pk=? AND shard=? AND number < (SELECT min(number) "
                                        "FROM (SELECT number FROM crl WHERE ca_pk=?1 AND shard=?2 ORDER BY number "
                                        "DESC LIMIT 100))"))) {
        sqlite3_bind_int64(st, 1, ca_pk);
        sqlite3_bind_int(st, 2, c->shard);
        step_done(st);
        release(st);
    }
    if (rc == STORE_OK && (st = prep(q, "UPDATE crl SET der=x'' WHERE ca_pk=?1 AND shard=?2 AND length(der) > 0 AND "
                                        "number < (SELECT min(number) FROM (SELECT number FROM crl WHERE ca_pk=?1 AND "
                                        "shard=?2 ORDER BY number DESC LIMIT " CRL_KEEP_DER_TEXT "))"))) {
        sqlite3_bind_int64(st, 1, ca_pk);
        sqlite3_bind_int(st, 2, c->shard);
        step_done(st);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* The rows of crl, newest first; der only when with_der. */
static int sq_crl_rows(struct store *s, const char *partition, int64_t ca_pk, int shard, size_t max, bool with_der,
                       struct crl_rec **out, size_t *n)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, with_der ? "SELECT number,this_update,next_update,entries,der,shard FROM crl WHERE "
                                          "partition_id=?1 AND ca_pk=?2 AND (?4 < -1 OR shard=?4) "
                                          "ORDER BY number DESC LIMIT ?3"
                                        : "SELECT number,this_update,next_update,entries,NULL,shard FROM crl WHERE "
                                          "partition_id=?1 AND ca_pk=?2 AND (?4 < -1 OR shard=?4) "
                                          "ORDER BY number DESC LIMIT ?3");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    sqlite3_bind_int64(st, 2, ca_pk);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    sqlite3_bind_int(st, 4, shard);
    struct crl_rec *items = calloc(max ? max : 1, sizeof(*items));
    if (!items)
        goto done;
    while (*n < max && (r = sqlite3_step(st)) == SQLITE_ROW) {
        struct crl_rec *c = &items[(*n)++];
        c->number = sqlite3_column_int64(st, 0);
        c->this_update = sqlite3_column_int64(st, 1);
        c->next_update = sqlite3_column_int64(st, 2);
        c->entries = sqlite3_column_int64(st, 3);
        c->der = col_blob(st, 4, &c->der_len);
        c->shard = sqlite3_column_int(st, 5);
    }
    *out = items;
    rc = STORE_OK;
done:
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_crl_list(struct store *s, const char *partition, int64_t ca_pk, int shard, size_t max,
                       struct crl_rec **out, size_t *n)
{
    return sq_crl_rows(s, partition, ca_pk, shard, max, false, out, n);
}

static int sq_crl_latest(struct store *s, const char *partition, int64_t ca_pk, int shard, struct crl_rec *out)
{
    struct crl_rec *items = NULL;
    size_t n = 0;
    int rc = sq_crl_rows(s, partition, ca_pk, shard, 1, true, &items, &n);
    if (rc == STORE_OK && n == 0)
        rc = STORE_ENOTFOUND;
    if (rc == STORE_OK)
        *out = items[0];
    free(items);
    return rc;
}

static int sq_cert_iter_revoked(struct store *s, const char *partition, int64_t ca_pk, int shard, revoked_cb cb,
                                void *ctx)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r;
    pthread_mutex_lock(&q->mu);
    /* status <> 'issued' is revoked or suspended (the column's CHECK), and
     * the term of the partial index certificate_revoked (migration 0012) */
    sqlite3_stmt *st = prep(q, "SELECT serial, revoked_at, revocation_reason, invalidity_date FROM certificate "
                                   "WHERE partition_id=?1 AND issuer_ca_pk=?2 AND status <> 'issued' "
                               "AND (?3 < 0 OR crl_shard=?3)");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    sqlite3_bind_int64(st, 2, ca_pk);
    sqlite3_bind_int(st, 3, shard);
    rc = STORE_OK;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct revoked_entry e = {
            (const char *)sqlite3_column_text(st, 0),
            sqlite3_column_int64(st, 1),
            sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 2),
            sqlite3_column_int64(st, 3),
        };
        if (!e.serial)
            continue;
        if ((rc = cb(&e, ctx)) != 0)
            break;
    }
    if (rc == STORE_OK && r != SQLITE_DONE)
        rc = STORE_EIO;
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_responder_get(struct store *s, const char *partition, int64_t ca_pk, struct responder_rec *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT key_blob, cert_der, not_after, created_at FROM ocsp_responder WHERE "
                                   "partition_id=? AND ca_pk=? ORDER BY created_at DESC LIMIT 1");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    sqlite3_bind_int64(st, 2, ca_pk);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        out->key_blob = col_blob(st, 0, &out->key_blob_len);
        out->cert_der = col_blob(st, 1, &out->cert_len);
        out->not_after = sqlite3_column_int64(st, 2);
        out->created_at = sqlite3_column_int64(st, 3);
        rc = STORE_OK;
    } else {
        rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_responder_put(struct store *s, const char *partition, int64_t ca_pk, const struct responder_rec *rr,
                            const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    st = prep(q, "INSERT INTO ocsp_responder(ca_pk,partition_id,key_blob,cert_der,not_after,created_at) "
                     "VALUES(?,?,?,?,?,?)");
    if (!st)
        goto fail;
    sqlite3_bind_int64(st, 1, ca_pk);
    bind_text(st, 2, partition);
    bind_blob(st, 3, rr->key_blob, rr->key_blob_len);
    bind_blob(st, 4, rr->cert_der, rr->cert_len);
    sqlite3_bind_int64(st, 5, rr->not_after);
    sqlite3_bind_int64(st, 6, rr->created_at);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = NULL;
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* ---- rate limiting ------------------------------------------------------- */

static int sq_rate_take(struct store *s, const char *key, int limit, int window_s, int64_t now_ms,
                        int64_t *retry_after_ms, bool *first_reject)
{
    struct sq *q = SQ(s);
    if (limit <= 0 || window_s <= 0)
        return STORE_OK;
    uint64_t h = 1469598103934665603ull;
    for (const char *c = key; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ull;
    int64_t interval = (int64_t)window_s * 1000 / limit, window = (int64_t)window_s * 1000;
    int rc = STORE_OK;
    pthread_mutex_lock(&q->rate_mu);
    struct rate_slot *sl = NULL, *reuse = NULL, *oldest = NULL;
    for (size_t k = 0; k < RATE_SLOTS; k++) {
        struct rate_slot *c = &q->rate[(h + k) % RATE_SLOTS];
        if (c->key[0] && (!oldest || c->tat_ms < oldest->tat_ms))
            oldest = c;
        if (!c->key[0]) {
            if (!reuse)
                reuse = c;
            break; /* end of the probe chain: the key is not present */
        }
        if (strcmp(c->key, key) == 0) {
            sl = c;
            break;
        }
        if (!reuse && c->tat_ms < now_ms)
            reuse = c; /* an idle bucket (TAT in the past = full): same as no state */
    }
    /* Every bucket busy (thousands of keys within one window, e.g. logins
     * from as many addresses): the one closest to idle gives way. Letting
     * the key through unlimited would switch limiting off for everyone
     * once the table is full; refusing it would let such a flood refuse
     * every new client. */
    if (!sl && !reuse)
        reuse = oldest;
    if (!sl && reuse) {
        sl = reuse;
        sl->tat_ms = 0;
        sl->limited = false;
    }
    *first_reject = false;
    if (sl) {
        snprintf(sl->key, sizeof sl->key, "%s", key);
        int64_t tat = sl->tat_ms > now_ms ? sl->tat_ms : now_ms;
        int64_t next = tat + interval;
        if (next - now_ms > window) {
            *retry_after_ms = next - now_ms - window;
            *first_reject = !sl->limited;
            sl->limited = true;
            rc = STORE_ELIMIT;
        } else {
            sl->tat_ms = next;
            sl->limited = false;
        }
    }
    pthread_mutex_unlock(&q->rate_mu);
    return rc;
}

/* One process owns the database file: every job lease is ours. */
static int sq_lease_take(struct store *s, const char *job, int ttl_s)
{
    (void)s;
    (void)job;
    (void)ttl_s;
    return STORE_OK;
}

/* ---- protocol documents (object) ------------------------------------ */

#define OBJ_COLS "partition_id,kind,id,parent,lookup,status,expires_at,json,blob,version,created_at,updated_at"

static void obj_from_row(sqlite3_stmt *st, struct obj_rec *o)
{
    memset(o, 0, sizeof *o);
    col_copy(st, 0, o->partition_id, sizeof o->partition_id);
    col_copy(st, 1, o->kind, sizeof o->kind);
    col_copy(st, 2, o->id, sizeof o->id);
    o->parent = col_strdup(st, 3);
    o->lookup = col_strdup(st, 4);
    col_copy(st, 5, o->status, sizeof o->status);
    o->expires_at = sqlite3_column_int64(st, 6);
    o->json = col_strdup(st, 7);
    o->blob = col_blob(st, 8, &o->blob_len);
    o->version = sqlite3_column_int64(st, 9);
    o->created_at = sqlite3_column_int64(st, 10);
    o->updated_at = sqlite3_column_int64(st, 11);
}

static int64_t now_s(void)
{
    return now_ms() / 1000;
}

static int sq_obj_put(struct store *s, struct obj_rec *o, enum obj_put_mode mode, const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    int64_t now = now_s();
    pthread_mutex_lock(&q->mu);
    if (begin(q->db) != 0)
        goto unlock;
    if (mode == OBJ_CREATE) {
        /* an expired row under the same id or lookup gives way */
        st = prep(q, "DELETE FROM object WHERE partition_id=?1 AND kind=?2 AND (id=?3 OR lookup=?4) AND "
                     "expires_at>0 AND expires_at<=?5");
        if (!st)
            goto fail;
        bind_text(st, 1, o->partition_id);
        bind_text(st, 2, o->kind);
        bind_text(st, 3, o->id);
        bind_text(st, 4, o->lookup);
        sqlite3_bind_int64(st, 5, now);
        if ((rc = step_done(st)) != STORE_OK)
            goto fail;
        release(st);
        st = prep(q, "INSERT INTO object(" OBJ_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,1,?10,?10)");
    } else {
        st = prep(q, "UPDATE object SET parent=?4, lookup=?5, status=?6, expires_at=?7, json=?8, blob=?9, "
                     "version=version+1, updated_at=?10 WHERE partition_id=?1 AND kind=?2 AND id=?3 AND version=?11");
    }
    if (!st)
        goto fail;
    bind_text(st, 1, o->partition_id);
    bind_text(st, 2, o->kind);
    bind_text(st, 3, o->id);
    bind_text(st, 4, o->parent);
    bind_text(st, 5, o->lookup);
    bind_text(st, 6, o->status);
    sqlite3_bind_int64(st, 7, o->expires_at);
    bind_text(st, 8, o->json);
    bind_blob(st, 9, o->blob, o->blob_len);
    sqlite3_bind_int64(st, 10, now);
    if (mode == OBJ_UPDATE)
        sqlite3_bind_int64(st, 11, o->version);
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = NULL;
    if (mode == OBJ_UPDATE && sqlite3_changes(q->db) != 1) {
        /* gone, or changed by someone else since it was read */
        st = prep(q, "SELECT 1 FROM object WHERE partition_id=? AND kind=? AND id=?");
        if (!st)
            goto fail;
        bind_text(st, 1, o->partition_id);
        bind_text(st, 2, o->kind);
        bind_text(st, 3, o->id);
        rc = sqlite3_step(st) == SQLITE_ROW ? STORE_ECONFLICT : STORE_ENOTFOUND;
        goto fail;
    }
    if ((rc = audit_append(q, o->partition_id, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK) {
        if (mode == OBJ_UPDATE)
            o->version++;
        else {
            o->version = 1;
            o->created_at = now;
        }
        o->updated_at = now;
        goto unlock;
    }
fail:
    release(st);
    rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int obj_one(sqlite3_stmt *st, struct obj_rec *out)
{
    int r = sqlite3_step(st), rc;
    if (r == SQLITE_ROW) {
        obj_from_row(st, out);
        rc = STORE_OK;
    } else {
        rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    }
    release(st);
    return rc;
}

static int sq_obj_get(struct store *s, const char *partition, const char *kind, const char *id, struct obj_rec *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT " OBJ_COLS " FROM object WHERE partition_id=? AND kind=? AND id=? AND "
                               "(expires_at=0 OR expires_at>?)");
    if (st) {
        bind_text(st, 1, partition);
        bind_text(st, 2, kind);
        bind_text(st, 3, id);
        sqlite3_bind_int64(st, 4, now_s());
        rc = obj_one(st, out);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_obj_find(struct store *s, const char *partition, const char *kind, const char *lookup,
                       struct obj_rec *out)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT " OBJ_COLS " FROM object WHERE partition_id=? AND kind=? AND lookup=? AND "
                               "(expires_at=0 OR expires_at>?)");
    if (st) {
        bind_text(st, 1, partition);
        bind_text(st, 2, kind);
        bind_text(st, 3, lookup);
        sqlite3_bind_int64(st, 4, now_s());
        rc = obj_one(st, out);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_obj_list(struct store *s, const char *partition, const char *kind, const char *parent,
                       const char *after_id, unsigned limit, struct obj_rec **out, size_t *n)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO, r = SQLITE_ERROR;
    size_t cap = 0;
    struct obj_rec *items = NULL;
    *n = 0;
    *out = NULL;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "SELECT " OBJ_COLS " FROM object WHERE partition_id=?1 AND kind=?2 AND "
                               "(?3 IS NULL OR parent=?3) AND (?4 IS NULL OR id>?4) AND "
                               "(expires_at=0 OR expires_at>?5) ORDER BY id LIMIT ?6");
    if (!st)
        goto out;
    bind_text(st, 1, partition);
    bind_text(st, 2, kind);
    bind_text(st, 3, parent);
    bind_text(st, 4, after_id);
    sqlite3_bind_int64(st, 5, now_s());
    sqlite3_bind_int64(st, 6, limit ? (int64_t)limit : -1);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        void *g = grow(items, &cap, *n, sizeof(*items));
        if (!g)
            break;
        items = g;
        obj_from_row(st, &items[(*n)++]);
    }
    if (r == SQLITE_DONE) {
        rc = STORE_OK;
        *out = items;
        items = NULL;
    }
    release(st);
out:
    pthread_mutex_unlock(&q->mu);
    if (items) {
        obj_list_free(items, *n);
        *n = 0;
    }
    return rc;
}

static int sq_obj_delete(struct store *s, const char *partition, const char *kind, const char *id,
                         const struct audit_rec *a)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (a && begin(q->db) != 0)
        goto unlock;
    st = prep(q, "DELETE FROM object WHERE partition_id=? AND kind=? AND id=? AND (expires_at=0 OR expires_at>?)");
    if (!st)
        goto fail;
    bind_text(st, 1, partition);
    bind_text(st, 2, kind);
    bind_text(st, 3, id);
    sqlite3_bind_int64(st, 4, now_s());
    if ((rc = step_done(st)) != STORE_OK)
        goto fail;
    release(st);
    st = NULL;
    if (sqlite3_changes(q->db) != 1) {
        rc = STORE_ENOTFOUND;
        goto fail;
    }
    if (!a)
        goto unlock; /* autocommit: the single DELETE is its own transaction */
    if ((rc = audit_append(q, partition, a)) != STORE_OK)
        goto fail;
    rc = commit(q->db) == 0 ? STORE_OK : STORE_EIO;
    if (rc == STORE_OK)
        goto unlock;
fail:
    release(st);
    if (a)
        rollback(q->db);
unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_obj_purge(struct store *s, const char *kind, int64_t now)
{
    struct sq *q = SQ(s);
    int rc = STORE_EIO;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prep(q, "DELETE FROM object WHERE kind=? AND expires_at>0 AND expires_at<=?");
    if (st) {
        bind_text(st, 1, kind);
        sqlite3_bind_int64(st, 2, now);
        rc = step_done(st);
        release(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_ping(struct store *s)
{
    struct sq *q = SQ(s);
    pthread_mutex_lock(&q->mu);
    int rc = exec(q->db, "SELECT 1") == 0 ? STORE_OK : STORE_EIO;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static void sq_close(struct store *s)
{
    struct sq *q = SQ(s);
    if (q) {
        for (size_t i = 0; i < STMT_CACHE; i++)
            if (q->stmts[i].st)
                sqlite3_finalize(q->stmts[i].st);
        sqlite3_close(q->db);
        pthread_mutex_destroy(&q->mu);
        group_commit_destroy(&q->gc);
        pthread_mutex_destroy(&q->rate_mu);
        free(q->rate);
        free(q);
    }
    free(s);
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .ping = sq_ping,
    .partition_bootstrap = sq_partition_bootstrap,
    .partition_get = sq_partition_get,
    .token_get = sq_token_get,
    .token_insert = sq_token_insert,
    .cagw_ca_get = sq_cagw_ca_get,
    .cagw_ca_put = sq_cagw_ca_put,
    .cagw_cred_put = sq_cagw_cred_put,
    .cagw_cred_get = sq_cagw_cred_get,
    .cagw_cred_by_serial = sq_cagw_cred_by_serial,
    .cagw_cred_list = sq_cagw_cred_list,
    .cagw_cred_delete = sq_cagw_cred_delete,
    .cagw_grants_set = sq_cagw_grants_set,
    .cagw_grants_get = sq_cagw_grants_get,
    .supervisor_token_put = sq_supervisor_token_put,
    .supervisor_token_check = sq_supervisor_token_check,
    .supervisor_token_revoke = sq_supervisor_token_revoke,
    .subscription_create = sq_subscription_create,
    .subscription_list = sq_subscription_list,
    .subscription_assign = sq_subscription_assign,
    .user_get = sq_user_get,
    .user_put = sq_user_put,
    .user_list = sq_user_list,
    .user_delete = sq_user_delete,
    .invite_put = sq_invite_put,
    .invite_get = sq_invite_get,
    .invite_use = sq_invite_use,
    .session_put = sq_session_put,
    .session_get = sq_session_get,
    .session_revoke = sq_session_revoke,
    .token_list = sq_token_list,
    .token_revoke = sq_token_revoke,
    .ca_insert = sq_ca_insert,
    .ca_get = sq_ca_get,
    .ca_list = sq_ca_list,
    .ca_activate = sq_ca_activate,
    .ca_list_active_all = sq_ca_list_active_all,
    .ca_delete = sq_ca_delete,
    .cert_insert = sq_cert_insert,
    .cert_get = sq_cert_get,
    .cert_list = sq_cert_list,
    .crl_next_number = sq_crl_next_number,
    .crl_save = sq_crl_save,
    .crl_latest = sq_crl_latest,
    .crl_list = sq_crl_list,
    .cert_iter_revoked = sq_cert_iter_revoked,
    .responder_get = sq_responder_get,
    .responder_put = sq_responder_put,
    .cert_set_status = sq_cert_set_status,
    .inventory = sq_inventory,
    .cert_revoke_batch = sq_cert_revoke_batch,
    .profile_put = sq_profile_put,
    .profile_get = sq_profile_get,
    .profile_list = sq_profile_list,
    .profile_delete = sq_profile_delete,
    .ca_profile_list = sq_ca_profile_list,
    .ca_profile_set = sq_ca_profile_set,
    .audit_append = sq_audit_append,
    .audit_iter = sq_audit_iter,
    .audit_checkpoint_put = sq_audit_checkpoint_put,
    .audit_checkpoint_list = sq_audit_checkpoint_list,
    .audit_key_get = sq_audit_key_get,
    .audit_key_put = sq_audit_key_put,
    .audit_partitions = sq_audit_partitions,
    .rate_take = sq_rate_take,
    .lease_take = sq_lease_take,
    .obj_put = sq_obj_put,
    .obj_get = sq_obj_get,
    .obj_find = sq_obj_find,
    .obj_list = sq_obj_list,
    .obj_delete = sq_obj_delete,
    .obj_purge = sq_obj_purge,
};

static int migrate(struct sq *q, char *err, size_t errlen)
{
    if (exec(q->db, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "applied_at INTEGER NOT NULL)") != 0)
        goto fail;
    for (unsigned i = 0; i < store_migrations_count; i++) {
        const struct store_migration *m = &store_migrations[i];
        sqlite3_stmt *st = prep(q, "SELECT 1 FROM schema_version WHERE version=?");
        if (!st)
            goto fail;
        sqlite3_bind_int(st, 1, m->version);
        int have = sqlite3_step(st) == SQLITE_ROW;
        release(st);
        if (have)
            continue;
        if (begin(q->db) != 0)
            goto fail;
        if (exec(q->db, m->sql) != 0) {
            rollback(q->db);
            snprintf(err, errlen, "migration %s failed", m->name);
            return -1;
        }
        st = prep(q, "INSERT INTO schema_version(version,name,applied_at) VALUES(?,?,?)");
        if (!st) {
            rollback(q->db);
            goto fail;
        }
        sqlite3_bind_int(st, 1, m->version);
        bind_text(st, 2, m->name);
        sqlite3_bind_int64(st, 3, time_now());
        int rc = step_done(st);
        release(st);
        if (rc != STORE_OK || commit(q->db) != 0) {
            rollback(q->db);
            goto fail;
        }
    }
    return 0;
fail:
    snprintf(err, errlen, "schema migration failed: %s", sqlite3_errmsg(q->db));
    return -1;
}

struct store *store_sqlite_open(const char *path, char *err, size_t errlen)
{
    struct store *s = calloc(1, sizeof(*s));
    struct sq *q = calloc(1, sizeof(*q));
    if (!s || !q)
        goto fail;
    pthread_mutex_init(&q->mu, NULL);
    pthread_mutex_init(&q->rate_mu, NULL);
    s->ops = &sqlite_ops;
    s->impl = q;
    if (group_commit_init(&q->gc, gc_run_batch, q) != 0)
        goto fail;
    if (!(q->rate = calloc(RATE_SLOTS, sizeof(*q->rate))))
        goto fail;
    s->impl = q;
    if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path, q->db ? sqlite3_errmsg(q->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(q->db, 5000);
    /* WAL + synchronous=FULL: a committed row survives power loss, which is
     * what "returned only after committed" needs. A 32 MiB page cache (the
     * default is 2 MiB) keeps the hot index pages of a busy CA in memory, so
     * a commit reads nothing back from the file; statement journals stay in
     * memory (temp_store) instead of spilling into temporary files. */
    if (exec(q->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
                    "PRAGMA cache_size=-32768; PRAGMA temp_store=MEMORY;") != 0) {
        snprintf(err, errlen, "cannot configure database %s", path);
        goto fail;
    }
    if (migrate(q, err, errlen) != 0)
        goto fail;
    return s;
fail:
    if (s && q)
        sq_close(s);
    else {
        free(q);
        free(s);
    }
    return NULL;
}
