#include "store/pg/store_pg.h"

#include "audit/audit.h"
#include "store/group_commit.h"
#include "store/migrations.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <libpq-fe.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A fixed pool of connections, opened lazily. An op takes one connection for
 * its whole transaction (READ COMMITTED); cross-node invariants come from
 * constraints and locks in the database, never from process memory:
 *  - serials: UNIQUE (issuer_ca_pk, serial); live ids: partial unique indexes;
 *  - cRLNumber: UPDATE ... RETURNING on the CA row (row lock);
 *  - quotas: the subscription row is locked before it is checked;
 *  - audit chain: appends take pg_advisory_xact_lock(partition), so the
 *    read of the head and the insert of the next link are serialised (a
 *    group commit batch reads each head once, under that lock, and links
 *    its records in memory);
 *  - rate limits and job leases: rows of rate_bucket / job_lease. */

#define POOL_SIZE 10
#define STMT_CACHE 128
#define MAX_PARAMS 20
/* Rows per multi-row INSERT of the group commit (14 parameters each: well
 * below the protocol's 65535). */
#define GC_ROWS 256
/* advisory lock namespaces (first key of the two-key form) */
#define LOCK_MIGRATE 0x706b6901
#define LOCK_AUDIT 0x706b6902
#define NOW_S "extract(epoch from now())::bigint"

struct pgc {
    PGconn *conn;
    bool busy;
    int64_t used_ms; /* monotonic time of its last use (live_conn) */
    /* Prepared statements by the address of their SQL literal (every
     * statement text here is a string literal, so the pointer is a stable
     * key); forgotten when the connection is re-established. */
    struct {
        const char *sql;
        char name[16];
    } stmts[STMT_CACHE];
    unsigned nstmt;
    /* The group commit's multi-row INSERTs, prepared per row count:
     * rows_prepared[kind][n] (kind 0 certificates, 1 audit records). */
    bool rows_prepared[2][GC_ROWS + 1];
};

struct pg {
    char *conninfo;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pgc conns[POOL_SIZE];
    char node[33]; /* this process's lease holder id */
    /* group commit: concurrent certificate inserts share one transaction
     * on one connection; each caller returns only after the COMMIT. The
     * leader has a connection of its own (used by one batch at a time), so
     * a batch never queues behind requests for the pool. */
    struct group_commit gc;
    struct pgc gc_conn;
};

#define PG(s) ((struct pg *)(s)->impl)

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_s(void)
{
    return now_ms() / 1000;
}

/* Opens (or re-opens) the connection; forgets its prepared statements. */
static int connect_conn(struct pg *g, struct pgc *c)
{
    if (c->conn)
        PQfinish(c->conn);
    memset(c->stmts, 0, sizeof c->stmts);
    c->nstmt = 0;
    memset(c->rows_prepared, 0, sizeof c->rows_prepared);
    c->conn = PQconnectdb(g->conninfo);
    if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
        log_error("postgresql: connect: %s", c->conn ? PQerrorMessage(c->conn) : "out of memory");
        return -1;
    }
    PQsetNoticeProcessor(c->conn, quiet_notice, NULL);
    return 0;
}

/* A connection that looks fine may be dead: PQstatus only learns it when
 * a statement fails (the server restarted while it sat idle). One that has
 * been idle for a while is checked with an empty query, and re-opened when
 * the server is gone, so the first request after a restart does not fail
 * for it. Busy connections are used back to back and never pay for this. */
#define PG_IDLE_CHECK_MS 1000
static int live_conn(struct pg *g, struct pgc *c)
{
    int64_t now = (int64_t)time_mono_ms();
    if (c->conn && PQstatus(c->conn) == CONNECTION_OK && now - c->used_ms >= PG_IDLE_CHECK_MS) {
        PGresult *r = PQexec(c->conn, "");
        PQclear(r);
    }
    c->used_ms = now;
    if ((!c->conn || PQstatus(c->conn) != CONNECTION_OK) && connect_conn(g, c) != 0)
        return -1;
    return 0;
}

static struct pgc *acquire(struct pg *g)
{
    struct pgc *c = NULL;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        for (size_t i = 0; i < POOL_SIZE && !c; i++)
            if (!g->conns[i].busy)
                c = &g->conns[i];
        if (c)
            break;
        pthread_cond_wait(&g->cv, &g->mu);
    }
    c->busy = true;
    pthread_mutex_unlock(&g->mu);
    if (live_conn(g, c) != 0) {
        pthread_mutex_lock(&g->mu);
        c->busy = false;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        return NULL;
    }
    return c;
}

/* Ends whatever the op left open (an uncommitted transaction is rolled
 * back) and returns the connection to the pool. */
static void release_conn(struct pg *g, struct pgc *c)
{
    if (!c)
        return;
    if (c->conn && PQstatus(c->conn) == CONNECTION_OK && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        PQclear(PQexec(c->conn, "ROLLBACK"));
    pthread_mutex_lock(&g->mu);
    c->busy = false;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static int simple(struct pgc *c, const char *cmd, const char *expect)
{
    PGresult *r = PQexec(c->conn, cmd);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK && (!expect || strcmp(PQcmdStatus(r), expect) == 0);
    if (!ok)
        log_error("postgresql: %s: %s", cmd, PQerrorMessage(c->conn));
    PQclear(r);
    return ok ? STORE_OK : STORE_EIO;
}

static int begin(struct pgc *c)
{
    return simple(c, "BEGIN", NULL);
}

/* COMMIT of a failed transaction reports "ROLLBACK": that is an error. */
static int commit(struct pgc *c)
{
    return simple(c, "COMMIT", "COMMIT");
}

static const char *prep(struct pgc *c, const char *sql)
{
    size_t h = ((uintptr_t)sql >> 3) % STMT_CACHE;
    for (size_t k = 0; k < STMT_CACHE; k++) {
        size_t i = (h + k) % STMT_CACHE;
        if (c->stmts[i].sql == sql)
            return c->stmts[i].name;
        if (!c->stmts[i].sql) {
            char name[16];
            snprintf(name, sizeof name, "s%u", c->nstmt);
            PGresult *r = PQprepare(c->conn, name, sql, 0, NULL);
            int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            if (!ok)
                log_error("postgresql prepare: %s", PQerrorMessage(c->conn));
            PQclear(r);
            if (!ok)
                return NULL;
            c->nstmt++;
            c->stmts[i].sql = sql;
            memcpy(c->stmts[i].name, name, sizeof name);
            return c->stmts[i].name;
        }
    }
    return NULL; /* more distinct statements than slots: a bug, caught by tests */
}

/* Runs a prepared statement. fmt has one letter per parameter:
 *   t  const char *          (NULL = SQL NULL)
 *   l  int64_t
 *   d  int
 *   m  int64_t, NULL when negative
 *   z  int64_t, NULL when zero
 *   b  const unsigned char *, size_t (binary bytea; NULL pointer = SQL NULL)
 * Returns STORE_OK, STORE_ECONFLICT (integrity constraint, SQLSTATE 23xxx)
 * or STORE_EIO. *out (when given) receives the result on success; *changes
 * the number of rows affected. */
static int vq(struct pgc *c, PGresult **out, long *changes, const char *sql, const char *fmt, va_list ap)
{
    const char *vals[MAX_PARAMS];
    int lens[MAX_PARAMS], fmts[MAX_PARAMS];
    char num[MAX_PARAMS][24];
    int n = 0, rc;
    if (out)
        *out = NULL;
    if (changes)
        *changes = 0;
    for (const char *f = fmt; *f; f++, n++) {
        if (n >= MAX_PARAMS)
            return STORE_EIO;
        vals[n] = NULL;
        lens[n] = 0;
        fmts[n] = 0;
        int64_t v;
        switch (*f) {
        case 't':
            vals[n] = va_arg(ap, const char *);
            break;
        case 'd':
            snprintf(num[n], sizeof num[n], "%d", va_arg(ap, int));
            vals[n] = num[n];
            break;
        case 'l':
        case 'm':
        case 'z':
            v = va_arg(ap, int64_t);
            if ((*f == 'm' && v < 0) || (*f == 'z' && v == 0))
                break;
            snprintf(num[n], sizeof num[n], "%lld", (long long)v);
            vals[n] = num[n];
            break;
        case 'b': {
            const unsigned char *p = va_arg(ap, const unsigned char *);
            size_t len = va_arg(ap, size_t);
            if (p) {
                vals[n] = (const char *)p;
                lens[n] = (int)len;
                fmts[n] = 1;
            }
            break;
        }
        default:
            return STORE_EIO;
        }
    }
    const char *name = prep(c, sql);
    if (!name)
        return STORE_EIO;
    PGresult *r = PQexecPrepared(c->conn, name, n, vals, lens, fmts, 0);
    ExecStatusType es = PQresultStatus(r);
    if (es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK) {
        rc = STORE_OK;
        if (changes)
            *changes = strtol(PQcmdTuples(r), NULL, 10);
    } else {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        rc = state && strncmp(state, "23", 2) == 0 ? STORE_ECONFLICT : STORE_EIO;
        if (rc == STORE_EIO)
            log_error("postgresql: %s", PQerrorMessage(c->conn));
    }
    if (out && rc == STORE_OK)
        *out = r;
    else
        PQclear(r);
    return rc;
}

static int q(struct pgc *c, PGresult **out, long *changes, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vq(c, out, changes, sql, fmt, ap);
    va_end(ap);
    return rc;
}

#define STREAM_BATCH 5000
#define STR_(x) #x
#define STR(x) STR_(x)

/* Streams the rows of `sql` (a "DECLARE pkiaas_cursor NO SCROLL CURSOR FOR
 * SELECT ..." statement with parameters as for q) in batches of
 * STREAM_BATCH, so memory stays bounded however many rows there are (a
 * CRL of a million entries). `row` returns non-zero to stop; that value is
 * returned. The caller's connection is held meanwhile: callbacks must not
 * wait on the store. */
static int q_stream(struct pgc *c, int (*row)(const PGresult *r, int i, void *ctx), void *ctx, const char *sql,
                    const char *fmt, ...)
{
    PGresult *r = NULL;
    int rc;
    va_list ap;
    if ((rc = begin(c)) != STORE_OK)
        return rc;
    va_start(ap, fmt);
    rc = vq(c, NULL, NULL, sql, fmt, ap);
    va_end(ap);
    while (rc == STORE_OK) {
        if ((rc = q(c, &r, NULL, "FETCH " STR(STREAM_BATCH) " FROM pkiaas_cursor", "")) != STORE_OK)
            break;
        int n = PQntuples(r);
        for (int i = 0; i < n && rc == STORE_OK; i++)
            rc = row(r, i, ctx);
        PQclear(r);
        r = NULL;
        if (n < STREAM_BATCH)
            break;
    }
    if (rc == STORE_OK)
        rc = commit(c); /* read-only: ends the transaction and the cursor */
    return rc;
}

/* ---- result columns ------------------------------------------------------ */

static int64_t gi(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* -1 for NULL */
static int gim(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? -1 : (int)strtol(PQgetvalue(r, row, col), NULL, 10);
}

static char *gdup(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static void gcopy(const PGresult *r, int row, int col, char *dst, size_t n)
{
    snprintf(dst, n, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* bytea in text results is "\x<hex>" (bytea_output = hex, the default).
 * NULL and empty values give NULL with *len 0, as in the SQLite backend. */
static unsigned char *gblob(const PGresult *r, int row, int col, size_t *len)
{
    *len = 0;
    if (PQgetisnull(r, row, col))
        return NULL;
    const char *v = PQgetvalue(r, row, col);
    size_t vl = strlen(v);
    if (vl < 4 || v[0] != '\\' || v[1] != 'x' || vl % 2 != 0)
        return NULL;
    size_t n = (vl - 2) / 2;
    unsigned char *d = malloc(n);
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(v[2 + 2 * i]), lo = hexval(v[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
            free(d);
            return NULL;
        }
        d[i] = (unsigned char)(hi << 4 | lo);
    }
    *len = n;
    return d;
}

/* A single-row read: STORE_ENOTFOUND when the query returned no row. Takes
 * the result by address: q() fills it while the arguments are evaluated. */
static int one(int rc, PGresult *const *r)
{
    if (rc != STORE_OK)
        return rc;
    return PQntuples(*r) > 0 ? STORE_OK : STORE_ENOTFOUND;
}

/* ---- audit chain --------------------------------------------------------- */

/* Appends to the partition's chain inside the caller's transaction. The
 * advisory lock (held to the end of the transaction) makes "read the head,
 * insert the next link" atomic across every node. */
static int audit_add(struct pgc *c, const char *partition, const struct audit_rec *a)
{
    if (!a)
        return STORE_OK;
    const char *part = partition ? partition : "";
    char prev[65] = AUDIT_GENESIS;
    char *h = NULL;
    PGresult *r = NULL;
    int64_t at = now_ms();
    const char *result = a->result ? a->result : "success";
    int rc = q(c, NULL, NULL, "SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))", "dt", LOCK_AUDIT, part);
    if (rc != STORE_OK)
        goto out;
    rc = q(c, &r, NULL, "SELECT hash FROM audit WHERE partition_id=$1::text ORDER BY seq DESC LIMIT 1", "t", part);
    if (rc != STORE_OK)
        goto out;
    if (PQntuples(r) > 0)
        gcopy(r, 0, 0, prev, sizeof prev);
    if (!(h = audit_record_hash(prev, part, at, a->actor, a->ip, a->action, a->target, result, a->detail))) {
        rc = STORE_EIO;
        goto out;
    }
    rc = q(c, NULL, NULL,
           "INSERT INTO audit(partition_id,at_ms,actor,source_ip,action,target,result,detail,prev_hash,hash) "
           "VALUES($1::text,$2::bigint,$3::text,$4::text,$5::text,$6::text,$7::text,$8::text,$9::text,$10::text)",
           "tlttttttt" "t", part, at, a->actor ? a->actor : "", a->ip ? a->ip : "", a->action ? a->action : "",
           a->target ? a->target : "", result, a->detail, prev, h);
out:
    PQclear(r);
    free(h);
    return rc;
}

static int pg_audit_append(struct store *s, const char *partition, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    int rc = STORE_EIO;
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK || (rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

struct audit_walk {
    audit_cb cb;
    void *ctx;
};

static int audit_row_cb(const PGresult *r, int i, void *arg)
{
    struct audit_walk *w = arg;
    struct audit_row row = {
        gi(r, i, 0),   gi(r, i, 2),   gdup(r, i, 1), gdup(r, i, 3), gdup(r, i, 4), gdup(r, i, 5),
        gdup(r, i, 6), gdup(r, i, 7), gdup(r, i, 8), gdup(r, i, 9), gdup(r, i, 10),
    };
    int cr = (row.partition && row.actor && row.ip && row.action && row.target && row.result && row.prev_hash &&
              row.hash)
                 ? w->cb(&row, w->ctx)
                 : STORE_EIO;
    audit_row_free(&row);
    return cr;
}

static int pg_audit_iter(struct store *s, const char *partition, const struct audit_filter *f, audit_cb cb,
                         void *ctx)
{
    struct pg *g = PG(s);
    struct audit_walk w = {cb, ctx};
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q_stream(c, audit_row_cb, &w,
                      "DECLARE pkiaas_cursor NO SCROLL CURSOR FOR "
                      "SELECT seq,partition_id,at_ms,actor,source_ip,action,target,result,detail,prev_hash,hash "
                      "FROM audit WHERE partition_id=$1::text AND seq > $2::bigint"
                      " AND ($3::bigint = 0 OR at_ms >= $3::bigint) AND ($4::bigint = 0 OR at_ms <= $4::bigint)"
                      " AND ($5::text IS NULL OR actor=$5::text) AND ($6::text IS NULL OR action=$6::text)"
                      " AND ($7::text IS NULL OR result=$7::text) ORDER BY seq LIMIT $8::bigint",
                      "tllltttz", partition ? partition : "", f->after_seq, f->from_ms, f->to_ms, f->actor,
                      f->action, f->result, (int64_t)f->limit);
    release_conn(g, c);
    return rc;
}

static int pg_audit_checkpoint_put(struct store *s, const char *partition, const struct audit_checkpoint *cp)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, NULL,
               "INSERT INTO audit_checkpoint(partition_id,seq,at_ms,hash,signature) "
               "VALUES($1::text,$2::bigint,$3::bigint,$4::text,$5::bytea) ON CONFLICT (partition_id,seq) DO UPDATE "
               "SET at_ms=EXCLUDED.at_ms, hash=EXCLUDED.hash, signature=EXCLUDED.signature",
               "tlltb", partition, cp->seq, cp->at_ms, cp->hash, cp->sig, cp->sig_len);
    release_conn(g, c);
    return rc;
}

static int pg_audit_checkpoint_list(struct store *s, const char *partition, struct audit_checkpoint **out,
                                    size_t *n)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct audit_checkpoint *items = NULL;
    int rc = STORE_EIO;
    *n = 0;
    *out = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    rc = q(c, &r, NULL, "SELECT seq,at_ms,hash,signature FROM audit_checkpoint WHERE partition_id=$1::text ORDER BY seq",
           "t", partition);
    if (rc != STORE_OK)
        goto out;
    int rows = PQntuples(r);
    if (rows > 0 && !(items = calloc((size_t)rows, sizeof(*items)))) {
        rc = STORE_EIO;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        struct audit_checkpoint *cp = &items[i];
        cp->seq = gi(r, i, 0);
        cp->at_ms = gi(r, i, 1);
        gcopy(r, i, 2, cp->hash, sizeof cp->hash);
        cp->sig = gblob(r, i, 3, &cp->sig_len);
    }
    *out = items;
    *n = (size_t)rows;
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_audit_key_get(struct store *s, const char *partition, unsigned char **blob, size_t *blob_len,
                            unsigned char **pub, size_t *pub_len)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL, "SELECT key_blob, public_der FROM audit_key WHERE partition_id=$1::text", "t",
                   partition),
                 &r);
    if (rc == STORE_OK) {
        *blob = gblob(r, 0, 0, blob_len);
        *pub = gblob(r, 0, 1, pub_len);
        if (!*blob || !*pub) {
            free(*blob);
            free(*pub);
            *blob = *pub = NULL;
            rc = STORE_EIO;
        }
    }
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_audit_key_put(struct store *s, const char *partition, const unsigned char *blob, size_t blob_len,
                            const unsigned char *pub, size_t pub_len)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, NULL,
               "INSERT INTO audit_key(partition_id,key_blob,public_der,created_at) "
               "VALUES($1::text,$2::bytea,$3::bytea,$4::bigint)",
               "tbbl", partition, blob, blob_len, pub, pub_len, time_now());
    release_conn(g, c);
    return rc;
}

/* A one-column text result as a malloc'd id array. */
static int ids_from(const PGresult *r, char ***ids, size_t *n)
{
    int rows = PQntuples(r);
    char **list = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*list));
    *n = 0;
    if (!list)
        return STORE_EIO;
    for (int i = 0; i < rows; i++) {
        if (!(list[i] = gdup(r, i, 0))) {
            store_free_ids(list, (size_t)i);
            return STORE_EIO;
        }
    }
    *ids = list;
    *n = (size_t)rows;
    return STORE_OK;
}

static int pg_audit_partitions(struct store *s, char ***ids, size_t *n)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    *n = 0;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL,
               "SELECT a.partition_id FROM audit a GROUP BY a.partition_id HAVING max(a.seq) > "
               "coalesce((SELECT max(seq) FROM audit_checkpoint c WHERE c.partition_id=a.partition_id),0)",
               "");
    if (rc == STORE_OK)
        rc = ids_from(r, ids, n);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

/* ---- tenancy ------------------------------------------------------------- */

static int pg_partition_bootstrap(struct store *s, const struct partition_rec *p, const struct user_rec *owner,
                                  const struct token_rec *tok, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = q(c, &r, NULL, "SELECT 1 FROM partition WHERE id=$1::text", "t", p->id)) != STORE_OK)
        goto out;
    if (PQntuples(r) > 0) {
        rc = STORE_ECONFLICT;
        goto out;
    }
    if ((rc = q(c, NULL, NULL,
                "INSERT INTO subscription(id,status,region,certs_purchased,cas_purchased,created_at) "
                "VALUES($1::text,'Assigned',$2::text,$3::bigint,$4::bigint,$5::bigint)",
                "ttlll", p->subscription_id, p->region, (int64_t)p->certs_purchased, (int64_t)p->cas_purchased,
                p->created_at)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, NULL,
                "INSERT INTO partition(id,label,region,subscription_id,created_at) "
                "VALUES($1::text,$2::text,$3::text,$4::text,$5::bigint)",
                "ttttl", p->id, p->label, p->region, p->subscription_id, p->created_at)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, NULL,
                "INSERT INTO app_user(partition_id,email,password_hash,roles,created_at) "
                "VALUES($1::text,$2::text,$3::text,$4::text,$5::bigint)",
                "ttttl", p->id, owner->email, owner->password_hash, owner->roles, owner->created_at)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, NULL,
                "INSERT INTO api_token(token_hash,partition_id,name,roles,created_at) "
                "VALUES($1::text,$2::text,$3::text,$4::text,$5::bigint)",
                "ttttl", tok->token_hash, p->id, tok->name, tok->roles, tok->created_at)) != STORE_OK)
        goto out;
    if ((rc = audit_add(c, p->id, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_partition_get(struct store *s, const char *id, struct partition_rec *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL, "SELECT id,label,region,subscription_id,created_at FROM partition WHERE id=$1::text",
                   "t", id),
                 &r);
    if (rc == STORE_OK) {
        memset(out, 0, sizeof(*out));
        gcopy(r, 0, 0, out->id, sizeof out->id);
        gcopy(r, 0, 1, out->label, sizeof out->label);
        gcopy(r, 0, 2, out->region, sizeof out->region);
        gcopy(r, 0, 3, out->subscription_id, sizeof out->subscription_id);
        out->created_at = gi(r, 0, 4);
    }
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_token_get(struct store *s, const char *hash, struct token_rec *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL,
                   "SELECT token_hash,partition_id,name,roles,created_at,revoked_at FROM api_token "
                   "WHERE token_hash=$1::text",
                   "t", hash),
                 &r);
    if (rc == STORE_OK) {
        memset(out, 0, sizeof(*out));
        gcopy(r, 0, 0, out->token_hash, sizeof out->token_hash);
        gcopy(r, 0, 1, out->partition_id, sizeof out->partition_id);
        gcopy(r, 0, 2, out->name, sizeof out->name);
        out->roles = gdup(r, 0, 3);
        out->created_at = gi(r, 0, 4);
        out->revoked_at = gi(r, 0, 5);
    }
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_token_insert(struct store *s, const struct token_rec *t, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = q(c, &r, NULL,
                "SELECT 1 FROM api_token WHERE partition_id=$1::text AND name=$2::text AND revoked_at IS NULL", "tt",
                t->partition_id, t->name)) != STORE_OK)
        goto out;
    if (PQntuples(r) > 0) {
        rc = STORE_ECONFLICT;
        goto out;
    }
    if ((rc = q(c, NULL, NULL,
                "INSERT INTO api_token(token_hash,partition_id,name,roles,created_at) "
                "VALUES($1::text,$2::text,$3::text,$4::text,$5::bigint)",
                "ttttl", t->token_hash, t->partition_id, t->name, t->roles, t->created_at)) != STORE_OK)
        goto out;
    if ((rc = audit_add(c, t->partition_id, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_token_list(struct store *s, const char *partition, struct token_rec **out, size_t *n)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct token_rec *items = NULL;
    *n = 0;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL,
               "SELECT name, roles, created_at, revoked_at FROM api_token WHERE partition_id=$1::text "
               "ORDER BY created_at, name",
               "t", partition);
    if (rc != STORE_OK)
        goto out;
    int rows = PQntuples(r);
    if (!(items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*items)))) {
        rc = STORE_EIO;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        struct token_rec *t = &items[i];
        snprintf(t->partition_id, sizeof t->partition_id, "%s", partition);
        gcopy(r, i, 0, t->name, sizeof t->name);
        t->roles = gdup(r, i, 1);
        t->created_at = gi(r, i, 2);
        t->revoked_at = gi(r, i, 3);
    }
    *out = items;
    *n = (size_t)rows;
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

/* The common shape of a write op: one statement that must change exactly one
 * row (else STORE_ENOTFOUND), its audit record, commit. */
static int pg_token_revoke(struct store *s, const char *partition, const char *name, int64_t now,
                           const struct audit_rec *a)
{
    struct pg *g = PG(s);
    long ch = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, &ch,
                "UPDATE api_token SET revoked_at=$1::bigint WHERE partition_id=$2::text AND name=$3::text AND "
                "revoked_at IS NULL",
                "ltt", now, partition, name)) != STORE_OK)
        goto out;
    if (ch == 0) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    if ((rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

/* ---- CA Gateway credentials ---------------------------------------------- */

static int pg_cagw_ca_get(struct store *s, const char *partition, unsigned char **key_blob, size_t *kl,
                          unsigned char **cert, size_t *cl)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL, "SELECT key_blob, cert_der FROM cagw_ca WHERE partition_id=$1::text", "t",
                   partition),
                 &r);
    if (rc == STORE_OK) {
        *key_blob = gblob(r, 0, 0, kl);
        *cert = gblob(r, 0, 1, cl);
        if (!*key_blob || !*cert) {
            free(*key_blob);
            free(*cert);
            *key_blob = *cert = NULL;
            rc = STORE_EIO;
        }
    }
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_cagw_ca_put(struct store *s, const char *partition, const unsigned char *key_blob, size_t kl,
                          const unsigned char *cert, size_t cl)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, NULL,
               "INSERT INTO cagw_ca(partition_id,key_blob,cert_der,created_at) "
               "VALUES($1::text,$2::bytea,$3::bytea,$4::bigint)",
               "tbbl", partition, key_blob, kl, cert, cl, time_now());
    release_conn(g, c);
    return rc;
}

#define CRED_COLS "partition_id,cred_id,name,serial,cert_der,not_after,status,created_at"

static void cred_from_row(const PGresult *r, int i, struct cagw_cred *x)
{
    memset(x, 0, sizeof(*x));
    gcopy(r, i, 0, x->partition_id, sizeof x->partition_id);
    gcopy(r, i, 1, x->id, sizeof x->id);
    gcopy(r, i, 2, x->name, sizeof x->name);
    gcopy(r, i, 3, x->serial, sizeof x->serial);
    x->cert_der = gblob(r, i, 4, &x->cert_len);
    x->not_after = gi(r, i, 5);
    gcopy(r, i, 6, x->status, sizeof x->status);
    x->created_at = gi(r, i, 7);
}

static int pg_cagw_cred_put(struct store *s, const struct cagw_cred *x, bool create, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    long ch = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if (create) {
        /* a deleted credential's id may be reused: drop the old row */
        if ((rc = q(c, NULL, NULL,
                    "DELETE FROM cagw_credential WHERE partition_id=$1::text AND cred_id=$2::text AND "
                    "status='deleted'",
                    "tt", x->partition_id, x->id)) != STORE_OK)
            goto out;
        rc = q(c, NULL, &ch,
               "INSERT INTO cagw_credential(" CRED_COLS ") VALUES($1::text,$2::text,$3::text,$4::text,$5::bytea,"
               "$6::bigint,'active',$7::bigint)",
               "ttttbll", x->partition_id, x->id, x->name, x->serial, x->cert_der, x->cert_len, x->not_after,
               x->created_at);
    } else {
        rc = q(c, NULL, &ch,
               "UPDATE cagw_credential SET name=$3::text, serial=$4::text, cert_der=$5::bytea, not_after=$6::bigint "
               "WHERE partition_id=$1::text AND cred_id=$2::text AND status='active'",
               "ttttbl", x->partition_id, x->id, x->name, x->serial, x->cert_der, x->cert_len, x->not_after);
    }
    if (rc != STORE_OK)
        goto out;
    if (!create && ch != 1) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    if ((rc = audit_add(c, x->partition_id, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

static int cred_query(struct store *s, struct cagw_cred *out, const char *sql, const char *k1, const char *k2)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(k2 ? q(c, &r, NULL, sql, "tt", k1, k2) : q(c, &r, NULL, sql, "t", k1), &r);
    if (rc == STORE_OK)
        cred_from_row(r, 0, out);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_cagw_cred_get(struct store *s, const char *partition, const char *id, struct cagw_cred *out)
{
    return cred_query(s, out,
                      "SELECT " CRED_COLS " FROM cagw_credential WHERE partition_id=$1::text AND cred_id=$2::text "
                      "AND status='active'",
                      partition, id);
}

static int pg_cagw_cred_by_serial(struct store *s, const char *serial, struct cagw_cred *out)
{
    return cred_query(s, out, "SELECT " CRED_COLS " FROM cagw_credential WHERE serial=$1::text AND status='active'",
                      serial, NULL);
}

static int pg_cagw_cred_list(struct store *s, const char *partition, struct cagw_cred **out, size_t *n)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct cagw_cred *items = NULL;
    *n = 0;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL,
               "SELECT " CRED_COLS " FROM cagw_credential WHERE partition_id=$1::text AND status='active' "
               "ORDER BY cred_id",
               "t", partition);
    if (rc != STORE_OK)
        goto out;
    int rows = PQntuples(r);
    if (!(items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*items)))) {
        rc = STORE_EIO;
        goto out;
    }
    for (int i = 0; i < rows; i++)
        cred_from_row(r, i, &items[i]);
    *out = items;
    *n = (size_t)rows;
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_cagw_cred_delete(struct store *s, const char *partition, const char *id, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    long ch = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, &ch,
                "UPDATE cagw_credential SET status='deleted' WHERE partition_id=$1::text AND cred_id=$2::text AND "
                "status='active'",
                "tt", partition, id)) != STORE_OK)
        goto out;
    if (ch != 1) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    if ((rc = q(c, NULL, NULL, "DELETE FROM cagw_grant WHERE partition_id=$1::text AND cred_id=$2::text", "tt",
                partition, id)) != STORE_OK)
        goto out;
    if ((rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

static int pg_cagw_grants_set(struct store *s, const char *partition, const char *id, const struct cagw_grant *gr,
                              size_t n, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, NULL, "DELETE FROM cagw_grant WHERE partition_id=$1::text AND cred_id=$2::text", "tt",
                partition, id)) != STORE_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if ((rc = q(c, NULL, NULL,
                    "INSERT INTO cagw_grant(partition_id,cred_id,ca_id,roles) VALUES($1::text,$2::text,$3::text,"
                    "$4::text) ON CONFLICT (partition_id,cred_id,ca_id) DO UPDATE SET roles=EXCLUDED.roles",
                    "tttt", partition, id, gr[i].ca_id, gr[i].roles)) != STORE_OK)
            goto out;
    }
    if ((rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

static int pg_cagw_grants_get(struct store *s, const char *partition, const char *id, struct cagw_grant **out,
                              size_t *n)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct cagw_grant *items = NULL;
    *n = 0;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL,
               "SELECT ca_id, roles FROM cagw_grant WHERE partition_id=$1::text AND cred_id=$2::text ORDER BY ca_id",
               "tt", partition, id);
    if (rc != STORE_OK)
        goto out;
    int rows = PQntuples(r);
    if (!(items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*items)))) {
        rc = STORE_EIO;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        gcopy(r, i, 0, items[i].ca_id, sizeof items[i].ca_id);
        items[i].roles = gdup(r, i, 1);
    }
    *out = items;
    *n = (size_t)rows;
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

/* ---- supervisor ---------------------------------------------------------- */

static int pg_supervisor_token_put(struct store *s, const char *token_hash, const char *name)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, NULL,
               "INSERT INTO supervisor_token(token_hash,name,created_at) VALUES($1::text,$2::text,$3::bigint)", "ttl",
               token_hash, name, time_now());
    release_conn(g, c);
    return rc;
}

static int pg_supervisor_token_check(struct store *s, const char *token_hash)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL, "SELECT 1 FROM supervisor_token WHERE token_hash=$1::text AND revoked_at IS NULL",
                   "t", token_hash),
                 &r);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_supervisor_token_revoke(struct store *s, const char *token_hash, long *count)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    *count = 0;
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, count,
               "UPDATE supervisor_token SET revoked_at=" NOW_S " WHERE revoked_at IS NULL"
               " AND ($1::text IS NULL OR token_hash=$1::text)",
               "t", token_hash);
    release_conn(g, c);
    return rc;
}

static int pg_subscription_create(struct store *s, const struct subscription_rec *x)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, NULL,
               "INSERT INTO subscription(id,status,region,certs_purchased,cas_purchased,created_at) "
               "VALUES($1::text,'Unassigned',NULL,$2::bigint,$3::bigint,$4::bigint)",
               "tlll", x->id, (int64_t)x->certs_purchased, (int64_t)x->cas_purchased, x->created_at);
    release_conn(g, c);
    return rc;
}

static int pg_subscription_list(struct store *s, const char *search, struct subscription_rec **out, size_t *n)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct subscription_rec *items = NULL;
    struct pgc *c = NULL;
    int rc = STORE_EIO;
    bool ok;
    char *like = store_like_pattern(search, &ok);
    *n = 0;
    if (!ok)
        return STORE_EIO;
    if (!(c = acquire(g)))
        goto out;
    rc = q(c, &r, NULL,
           "SELECT s.id, s.status, coalesce(s.region,''), coalesce(p.id,''), coalesce(p.label,''),"
           " s.certs_purchased, s.cas_purchased, s.certs_issued,"
           " (SELECT count(*) FROM ca WHERE ca.partition_id=p.id AND ca.type<>'externalKey' AND"
           "  (ca.status<>'deleted' OR ca.deleted_at > " NOW_S " - 86400)),"
           " s.created_at FROM subscription s LEFT JOIN partition p ON p.subscription_id=s.id"
           " WHERE $1::text IS NULL OR s.id LIKE $1::text ESCAPE '\\' OR p.id LIKE $1::text ESCAPE '\\'"
           " OR p.label LIKE $1::text ESCAPE '\\'"
           " ORDER BY s.created_at, s.id",
           "t", like);
    if (rc != STORE_OK)
        goto out;
    int rows = PQntuples(r);
    if (!(items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*items)))) {
        rc = STORE_EIO;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        struct subscription_rec *x = &items[i];
        gcopy(r, i, 0, x->id, sizeof x->id);
        gcopy(r, i, 1, x->status, sizeof x->status);
        gcopy(r, i, 2, x->region, sizeof x->region);
        gcopy(r, i, 3, x->partition_id, sizeof x->partition_id);
        gcopy(r, i, 4, x->label, sizeof x->label);
        x->certs_purchased = gi(r, i, 5);
        x->cas_purchased = gi(r, i, 6);
        x->certs_issued = gi(r, i, 7);
        x->cas_active = gi(r, i, 8);
        x->created_at = gi(r, i, 9);
    }
    *out = items;
    *n = (size_t)rows;
out:
    PQclear(r);
    release_conn(g, c);
    free(like);
    return rc;
}

static int pg_subscription_assign(struct store *s, const char *sub_id, const struct partition_rec *p,
                                  const struct user_rec *owner, const char *actor, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = one(q(c, &r, NULL, "SELECT status FROM subscription WHERE id=$1::text FOR UPDATE", "t", sub_id), &r)) !=
        STORE_OK)
        goto out;
    if (strcmp(PQgetvalue(r, 0, 0), "Unassigned") != 0) {
        rc = STORE_ESTATE;
        goto out;
    }
    if ((rc = q(c, NULL, NULL,
                "UPDATE subscription SET status='Assigned', region=$1::text, terms_accepted_at=$2::bigint, "
                "assigned_by=$3::text WHERE id=$4::text",
                "tltt", p->region, p->created_at, actor, sub_id)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, NULL,
                "INSERT INTO partition(id,label,region,subscription_id,created_at) "
                "VALUES($1::text,$2::text,$3::text,$4::text,$5::bigint)",
                "ttttl", p->id, p->label, p->region, sub_id, p->created_at)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, NULL,
                "INSERT INTO app_user(partition_id,email,password_hash,roles,first_name,last_name,status,"
                "must_change_password,created_at) VALUES($1::text,$2::text,'',$3::text,$4::text,$5::text,'invited',0,"
                "$6::bigint)",
                "tttttl", p->id, owner->email, owner->roles, owner->first_name ? owner->first_name : "",
                owner->last_name ? owner->last_name : "", p->created_at)) != STORE_OK)
        goto out;
    if ((rc = audit_add(c, p->id, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

/* ---- users, invitations, sessions ---------------------------------------- */

#define USER_COLS                                                                                                  \
    "partition_id,email,password_hash,roles,first_name,last_name,status,must_change_password,totp_blob,"          \
    "totp_last_step,failed_logins,locked_until,created_at"

static void user_from_row(const PGresult *r, int i, struct user_rec *u)
{
    memset(u, 0, sizeof(*u));
    gcopy(r, i, 0, u->partition_id, sizeof u->partition_id);
    u->email = gdup(r, i, 1);
    u->password_hash = gdup(r, i, 2);
    u->roles = gdup(r, i, 3);
    u->first_name = gdup(r, i, 4);
    u->last_name = gdup(r, i, 5);
    gcopy(r, i, 6, u->status, sizeof u->status);
    u->must_change_password = gi(r, i, 7) != 0;
    u->totp_blob = gblob(r, i, 8, &u->totp_len);
    u->totp_last_step = gi(r, i, 9);
    u->failed_logins = (int)gi(r, i, 10);
    u->locked_until = gi(r, i, 11);
    u->created_at = gi(r, i, 12);
    u->version = gi(r, i, 13);
}

static int pg_user_get(struct store *s, const char *partition, const char *email, struct user_rec *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL,
                   "SELECT " USER_COLS ", version FROM app_user WHERE partition_id=$1::text AND email=$2::text", "tt",
                   partition, email),
                 &r);
    if (rc == STORE_OK)
        user_from_row(r, 0, out);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

/* Inside a write transaction, before the change: STORE_ESTATE when giving
 * `email` the roles `roles` (NULL: deleting it) takes the Owners role from
 * the partition's last Owner who is not merely invited. Such changes lock
 * the partition row first, so two of them (on any nodes) run one after the
 * other and the second counts what the first committed. */
static int pg_keeps_an_owner(struct pgc *c, const char *partition, const char *email, const char *roles)
{
    PGresult *r = NULL;
    int rc = q(c, &r, NULL, "SELECT roles FROM app_user WHERE partition_id=$1::text AND email=$2::text", "tt",
               partition, email);
    bool had = rc == STORE_OK && PQntuples(r) > 0 && store_roles_have_owner(PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;
    if (rc != STORE_OK || !had || (roles && store_roles_have_owner(roles)))
        return rc;
    if ((rc = q(c, NULL, NULL, "SELECT 1 FROM partition WHERE id=$1::text FOR UPDATE", "t", partition)) != STORE_OK ||
        (rc = q(c, &r, NULL,
                "SELECT roles FROM app_user WHERE partition_id=$1::text AND email<>$2::text AND status<>'invited'",
                "tt", partition, email)) != STORE_OK)
        goto out;
    rc = STORE_ESTATE;
    for (int i = 0; rc == STORE_ESTATE && i < PQntuples(r); i++)
        if (store_roles_have_owner(PQgetvalue(r, i, 0)))
            rc = STORE_OK;
out:
    PQclear(r);
    return rc;
}

static int pg_user_put(struct store *s, const struct user_rec *u, bool create, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    long ch = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if (!create && (rc = pg_keeps_an_owner(c, u->partition_id, u->email, u->roles ? u->roles : "")) != STORE_OK)
        goto out;
    rc = q(c, NULL, &ch,
           create ? "INSERT INTO app_user(" USER_COLS ", version) VALUES($1::text,$2::text,$3::text,$4::text,"
                    "$5::text,$6::text,$7::text,$8::int,$9::bytea,$10::bigint,$11::int,$12::bigint,$13::bigint,"
                    "$14::bigint)"
                  : "UPDATE app_user SET password_hash=$3::text, roles=$4::text, first_name=$5::text, "
                    "last_name=$6::text, status=$7::text, must_change_password=$8::int, totp_blob=$9::bytea, "
                    "totp_last_step=$10::bigint, failed_logins=$11::int, locked_until=$12::bigint, "
                    "version=version+1 WHERE partition_id=$1::text AND email=$2::text AND $13::bigint IS NOT NULL "
                    "AND version=$14::bigint",
           "tttttttdbldlll", u->partition_id, u->email, u->password_hash ? u->password_hash : "",
           u->roles ? u->roles : "", u->first_name ? u->first_name : "", u->last_name ? u->last_name : "", u->status,
           (int)u->must_change_password, u->totp_blob, u->totp_len, u->totp_last_step, u->failed_logins,
           u->locked_until, u->created_at, u->version);
    if (rc != STORE_OK)
        goto out;
    if (!create && ch != 1) {
        /* gone, or changed since it was read */
        PGresult *ex = NULL;
        rc = one(q(c, &ex, NULL, "SELECT 1 FROM app_user WHERE partition_id=$1::text AND email=$2::text", "tt",
                   u->partition_id, u->email),
                 &ex);
        PQclear(ex);
        rc = rc == STORE_OK ? STORE_ECONFLICT : rc;
        goto out;
    }
    if ((rc = audit_add(c, u->partition_id, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

static int pg_user_list(struct store *s, const char *partition, struct user_rec **out, size_t *n)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct user_rec *items = NULL;
    *n = 0;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL, "SELECT " USER_COLS ", version FROM app_user WHERE partition_id=$1::text ORDER BY email", "t",
               partition);
    if (rc != STORE_OK)
        goto out;
    int rows = PQntuples(r);
    if (!(items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*items)))) {
        rc = STORE_EIO;
        goto out;
    }
    for (int i = 0; i < rows; i++)
        user_from_row(r, i, &items[i]);
    *out = items;
    *n = (size_t)rows;
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_user_delete(struct store *s, const char *partition, const char *email, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    long ch = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = pg_keeps_an_owner(c, partition, email, NULL)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, &ch, "DELETE FROM app_user WHERE partition_id=$1::text AND email=$2::text", "tt", partition,
                email)) != STORE_OK)
        goto out;
    if (ch != 1) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    /* pending invitation links and sessions die with the user */
    if ((rc = q(c, NULL, NULL,
                "UPDATE invitation SET used_at=" NOW_S " WHERE partition_id=$1::text AND email=$2::text AND "
                "used_at IS NULL",
                "tt", partition, email)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, NULL,
                "UPDATE session SET revoked_at=" NOW_S " WHERE partition_id=$1::text AND email=$2::text AND "
                "revoked_at IS NULL",
                "tt", partition, email)) != STORE_OK)
        goto out;
    if ((rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

static int pg_invite_put(struct store *s, const char *token_hash, const char *partition, const char *email,
                         int64_t expires_at)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, NULL,
               "INSERT INTO invitation(token_hash,partition_id,email,expires_at) "
               "VALUES($1::text,$2::text,$3::text,$4::bigint)",
               "tttl", token_hash, partition, email, expires_at);
    release_conn(g, c);
    return rc;
}

static int pg_invite_get(struct store *s, const char *token_hash, int64_t now, char *partition, size_t plen,
                         char *email, size_t elen)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL,
                   "SELECT partition_id, email FROM invitation WHERE token_hash=$1::text AND used_at IS NULL "
                   "AND expires_at > $2::bigint",
                   "tl", token_hash, now),
                 &r);
    if (rc == STORE_OK) {
        gcopy(r, 0, 0, partition, plen);
        gcopy(r, 0, 1, email, elen);
    }
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_invite_use(struct store *s, const char *token_hash, int64_t now)
{
    struct pg *g = PG(s);
    long ch = 0;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, &ch,
               "UPDATE invitation SET used_at=$2::bigint WHERE token_hash=$1::text AND used_at IS NULL AND "
               "expires_at > $2::bigint",
               "tl", token_hash, now);
    if (rc == STORE_OK && ch != 1)
        rc = STORE_ENOTFOUND;
    release_conn(g, c);
    return rc;
}

static int pg_session_put(struct store *s, const char *id_hash, const struct session_rec *x)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, NULL,
               "INSERT INTO session(id_hash,partition_id,email,csrf,created_at,expires_at) "
               "VALUES($1::text,$2::text,$3::text,$4::text,$5::bigint,$6::bigint)",
               "ttttll", id_hash, x->partition_id, x->email, x->csrf, x->created_at, x->expires_at);
    release_conn(g, c);
    return rc;
}

static int pg_session_get(struct store *s, const char *id_hash, struct session_rec *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL,
                   "SELECT partition_id,email,csrf,created_at,expires_at,revoked_at FROM session WHERE "
                   "id_hash=$1::text",
                   "t", id_hash),
                 &r);
    if (rc == STORE_OK) {
        memset(out, 0, sizeof(*out));
        gcopy(r, 0, 0, out->partition_id, sizeof out->partition_id);
        gcopy(r, 0, 1, out->email, sizeof out->email);
        gcopy(r, 0, 2, out->csrf, sizeof out->csrf);
        out->created_at = gi(r, 0, 3);
        out->expires_at = gi(r, 0, 4);
        out->revoked_at = gi(r, 0, 5);
    }
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_session_revoke(struct store *s, const char *id_hash, int64_t now)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, NULL, "UPDATE session SET revoked_at=$1::bigint WHERE id_hash=$2::text AND revoked_at IS NULL",
               "lt", now, id_hash);
    release_conn(g, c);
    return rc;
}

/* ---- CAs ----------------------------------------------------------------- */

#define CA_COLS                                                                                                    \
    "pk,partition_id,ca_id,friendly_name,type,status,parent_id,key_label,key_blob,cert_der,csr_der,subject,"      \
    "path_len,crl_enabled,ocsp_enabled,created_at,deleted_at,crl_shards"

static void ca_from_row(const PGresult *r, int i, struct ca_rec *x)
{
    memset(x, 0, sizeof(*x));
    x->pk = gi(r, i, 0);
    gcopy(r, i, 1, x->partition_id, sizeof x->partition_id);
    gcopy(r, i, 2, x->id, sizeof x->id);
    x->friendly_name = gdup(r, i, 3);
    gcopy(r, i, 4, x->type, sizeof x->type);
    gcopy(r, i, 5, x->status, sizeof x->status);
    gcopy(r, i, 6, x->parent_id, sizeof x->parent_id);
    gcopy(r, i, 7, x->key_label, sizeof x->key_label);
    x->key_blob = gblob(r, i, 8, &x->key_blob_len);
    x->cert_der = gblob(r, i, 9, &x->cert_len);
    x->csr_der = gblob(r, i, 10, &x->csr_len);
    x->subject = gdup(r, i, 11);
    x->path_len = gim(r, i, 12);
    x->crl_enabled = gi(r, i, 13) != 0;
    x->ocsp_enabled = gi(r, i, 14) != 0;
    x->created_at = gi(r, i, 15);
    x->deleted_at = gi(r, i, 16);
    x->crl_shards = (int)gi(r, i, 17);
}

static int cert_insert_tx(struct pgc *c, struct cert_rec *x)
{
    PGresult *r = NULL;
    int rc = q(c, &r, NULL,
               "INSERT INTO certificate(partition_id,issuer_ca_pk,serial,subject,sans,not_before,not_after,status,"
               "profile_id,requester,is_ca,der,created_at,crl_shard) VALUES($1::text,$2::bigint,$3::text,$4::text,"
               "$5::text,$6::bigint,$7::bigint,$8::text,$9::text,$10::text,$11::int,$12::bytea,$13::bigint,$14::int) "
               "RETURNING pk",
               "tlttt" "llttt" "dblm", x->partition_id, x->issuer_ca_pk, x->serial, x->subject ? x->subject : "",
               x->sans, x->not_before, x->not_after, x->status[0] ? x->status : "issued", x->profile_id,
               x->requester, (int)x->is_ca, x->der, x->der_len, x->created_at, (int64_t)x->crl_shard);
    if (rc == STORE_OK && PQntuples(r) == 1)
        x->pk = gi(r, 0, 0);
    else if (rc == STORE_OK)
        rc = STORE_EIO;
    PQclear(r);
    return rc;
}

/* Locks the partition's subscription row: quota checks and counter updates
 * of concurrent transactions (any node) queue here. */
static int lock_subscription(struct pgc *c, const char *partition)
{
    return q(c, NULL, NULL,
             "SELECT 1 FROM subscription WHERE id=(SELECT subscription_id FROM partition WHERE id=$1::text) "
             "FOR UPDATE",
             "t", partition);
}

static int pg_ca_insert(struct store *s, struct ca_rec *x, const struct cert_rec *cert, int64_t now,
                        int64_t reserve_s, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK || (rc = lock_subscription(c, x->partition_id)) != STORE_OK)
        goto out;
    /* The parent is still active now that the child is written (it was
     * checked before the key was generated, which takes seconds); CA
     * deletion takes the same subscription lock, so it sees this child. */
    if (x->parent_id[0]) {
        if ((rc = q(c, &r, NULL, "SELECT 1 FROM ca WHERE partition_id=$1::text AND ca_id=$2::text AND "
                                 "status='active'", "tt", x->partition_id, x->parent_id)) != STORE_OK)
            goto out;
        if (PQntuples(r) == 0) {
            rc = STORE_ESTATE;
            goto out;
        }
        PQclear(r);
        r = NULL;
    }
    if ((rc = q(c, &r, NULL,
                "SELECT status, deleted_at FROM ca WHERE partition_id=$1::text AND ca_id=$2::text "
                "AND (status<>'deleted' OR deleted_at>$3::bigint)",
                "ttl", x->partition_id, x->id, now - reserve_s)) != STORE_OK)
        goto out;
    if (PQntuples(r) > 0) {
        rc = strcmp(PQgetvalue(r, 0, 0), "deleted") == 0 ? STORE_ERESERVED : STORE_ECONFLICT;
        goto out;
    }
    PQclear(r);
    r = NULL;
    /* CA quota: live CAs plus those deleted less than 24 h ago (they still
     * count, guide "Deleting a CA") must stay below the purchase. External
     * roots are imported certificates, not CAs we operate: not counted. */
    if (strcmp(x->type, "externalKey") != 0) {
        if ((rc = q(c, &r, NULL,
                    "SELECT (SELECT count(*) FROM ca WHERE partition_id=$1::text AND type<>'externalKey' AND "
                    "(status<>'deleted' OR deleted_at > $2::bigint)) >= s.cas_purchased FROM partition p JOIN "
                    "subscription s ON s.id=p.subscription_id WHERE p.id=$1::text",
                    "tl", x->partition_id, now - reserve_s)) != STORE_OK)
            goto out;
        if (PQntuples(r) > 0 && strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
            rc = STORE_EQUOTA;
            goto out;
        }
        PQclear(r);
        r = NULL;
    }
    if ((rc = q(c, &r, NULL,
                "INSERT INTO ca(partition_id,ca_id,friendly_name,type,status,parent_id,key_label,key_blob,cert_der,"
                "csr_der,subject,path_len,crl_enabled,ocsp_enabled,created_at,crl_shards) VALUES($1::text,$2::text,"
                "$3::text,$4::text,$5::text,$6::text,$7::text,$8::bytea,$9::bytea,$10::bytea,$11::text,$12::int,"
                "$13::int,$14::int,$15::bigint,$16::int) RETURNING pk",
                "ttttttt" "bbbtmddld", x->partition_id, x->id, x->friendly_name ? x->friendly_name : x->id, x->type,
                x->status, x->parent_id[0] ? x->parent_id : NULL, x->key_label[0] ? x->key_label : NULL, x->key_blob,
                x->key_blob_len, x->cert_der, x->cert_len, x->csr_der, x->csr_len, x->subject ? x->subject : "",
                (int64_t)x->path_len, (int)x->crl_enabled, (int)x->ocsp_enabled, x->created_at,
                x->crl_shards)) != STORE_OK)
        goto out;
    if (PQntuples(r) != 1) {
        rc = STORE_EIO;
        goto out;
    }
    int64_t pk = gi(r, 0, 0);
    if (cert) {
        struct cert_rec cr = *cert;
        if (cr.issuer_ca_pk == 0)
            cr.issuer_ca_pk = pk;
        if ((rc = cert_insert_tx(c, &cr)) != STORE_OK)
            goto out;
    }
    if ((rc = audit_add(c, x->partition_id, a)) != STORE_OK)
        goto out;
    if ((rc = commit(c)) == STORE_OK)
        x->pk = pk;
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int ca_rows(const PGresult *r, struct ca_list *out)
{
    int rows = PQntuples(r);
    memset(out, 0, sizeof(*out));
    if (!(out->items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*out->items))))
        return STORE_EIO;
    for (int i = 0; i < rows; i++)
        ca_from_row(r, i, &out->items[i]);
    out->n = (size_t)rows;
    return STORE_OK;
}

static int pg_ca_get(struct store *s, const char *partition, const char *id, struct ca_rec *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    /* The live CA if there is one, else the most recently deleted. */
    int rc = one(q(c, &r, NULL,
                   "SELECT " CA_COLS " FROM ca WHERE partition_id=$1::text AND ca_id=$2::text "
                   "ORDER BY (status='deleted'), pk DESC LIMIT 1",
                   "tt", partition, id),
                 &r);
    if (rc == STORE_OK)
        ca_from_row(r, 0, out);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_ca_list(struct store *s, const char *partition, bool include_deleted, struct ca_list *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    memset(out, 0, sizeof(*out));
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL,
               "SELECT " CA_COLS " FROM ca WHERE partition_id=$1::text AND ($2::int <> 0 OR status<>'deleted') "
               "ORDER BY created_at, pk",
               "td", partition, (int)include_deleted);
    if (rc == STORE_OK)
        rc = ca_rows(r, out);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_ca_list_active_all(struct store *s, struct ca_list *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    memset(out, 0, sizeof(*out));
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL, "SELECT " CA_COLS " FROM ca WHERE status='active' AND type<>'externalKey' ORDER BY pk",
               "");
    if (rc == STORE_OK)
        rc = ca_rows(r, out);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_ca_activate(struct store *s, const char *partition, const char *id, const unsigned char *der,
                          size_t len, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    long ch = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, &ch,
                "UPDATE ca SET cert_der=$1::bytea, status='active' WHERE partition_id=$2::text AND ca_id=$3::text "
                "AND status='pending'",
                "btt", der, len, partition, id)) != STORE_OK)
        goto out;
    if (ch != 1) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    if ((rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

static int pg_ca_delete(struct store *s, const char *partition, const char *id, int64_t now, char ***ids,
                        size_t *nids, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    char **list = NULL;
    size_t n = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    /* the subscription lock first, as CA creation takes it: a child being
     * created now is either committed before this walk (and deleted with
     * its parent) or sees its parent deleted and is refused */
    if ((rc = begin(c)) != STORE_OK || (rc = lock_subscription(c, partition)) != STORE_OK)
        goto out;
    /* The CA and every live descendant, walking parent links. */
    if ((rc = q(c, &r, NULL,
                "WITH RECURSIVE sub(ca_id) AS ("
                "  SELECT ca_id FROM ca WHERE partition_id=$1::text AND ca_id=$2::text AND status<>'deleted'"
                "  UNION SELECT c.ca_id FROM ca c JOIN sub ON c.parent_id=sub.ca_id"
                "  WHERE c.partition_id=$1::text AND c.status<>'deleted')"
                " SELECT ca_id FROM sub",
                "tt", partition, id)) != STORE_OK ||
        (rc = ids_from(r, &list, &n)) != STORE_OK)
        goto out;
    if (n == 0) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = q(c, NULL, NULL,
                    "UPDATE ca SET status='deleted', deleted_at=$1::bigint WHERE partition_id=$2::text AND "
                    "ca_id=$3::text AND status<>'deleted'",
                    "ltt", now, partition, list[i])) != STORE_OK)
            goto out;
        /* CA Gateway grants end with their CA: a CA created later under
         * the same id is another CA */
        if ((rc = q(c, NULL, NULL, "DELETE FROM cagw_grant WHERE partition_id=$1::text AND ca_id=$2::text", "tt",
                    partition, list[i])) != STORE_OK)
            goto out;
    }
    if ((rc = audit_add(c, partition, a)) != STORE_OK || (rc = commit(c)) != STORE_OK)
        goto out;
    *ids = list;
    *nids = n;
    list = NULL;
out:
    PQclear(r);
    release_conn(g, c);
    store_free_ids(list, n);
    return rc;
}

/* ---- certificates -------------------------------------------------------- */

/* One certificate insert in the caller's transaction, as a single-insert
 * transaction does it: quota (+1), certificate row, audit record. */
static int cert_job_tx(struct pgc *c, struct cert_rec *x, bool count_quota, const struct audit_rec *a)
{
    long ch = 0;
    int rc;
    if (count_quota) {
        if ((rc = q(c, NULL, &ch,
                    "UPDATE subscription SET certs_issued = certs_issued + 1 WHERE id = (SELECT subscription_id "
                    "FROM partition WHERE id=$1::text) AND certs_issued < certs_purchased",
                    "t", x->partition_id)) != STORE_OK)
            return rc;
        if (ch != 1)
            return STORE_EQUOTA;
    }
    /* The issuing CA is not deleted: checked before signing, but a deletion
     * may have committed since. CA deletion takes the subscription row's
     * lock, which the quota update above holds now, so it cannot commit
     * between this check and ours. */
    if ((rc = q(c, NULL, &ch, "SELECT 1 FROM ca WHERE pk=$1::bigint AND status<>'deleted'", "l",
                x->issuer_ca_pk)) != STORE_OK)
        return rc;
    if (ch != 1)
        return STORE_ESTATE;
    if ((rc = cert_insert_tx(c, x)) != STORE_OK || (rc = audit_add(c, x->partition_id, a)) != STORE_OK)
        return rc;
    return STORE_OK;
}

/* Runs `head` VALUES (row),(row)... `tail`: nrows rows (1..GC_ROWS) of
 * ncols parameters, column k cast to types[k]; vals/lens/fmts hold
 * nrows*ncols entries, row by row (as for PQexecPrepared). Prepared once per
 * connection, kind (0 or 1: which statement this is) and row count. Codes
 * as for q(). */
static int q_rows(struct pgc *c, PGresult **out, int kind, const char *head, const char *tail,
                  const char *const *types, int ncols, int nrows, const char *const *vals, const int *lens,
                  const int *fmts)
{
    struct buf sql;
    PGresult *r = NULL;
    char name[24];
    int rc = STORE_EIO;
    buf_init(&sql, 0);
    *out = NULL;
    if (kind < 0 || kind > 1 || nrows < 1 || nrows > GC_ROWS)
        goto out;
    snprintf(name, sizeof name, "g%d_%d", kind, nrows);
    if (!c->rows_prepared[kind][nrows]) {
        if (buf_append_str(&sql, head) != 0 || buf_append_str(&sql, " VALUES") != 0)
            goto out;
        for (int i = 0; i < nrows; i++)
            for (int k = 0; k < ncols; k++)
                if (buf_printf(&sql, "%s$%d::%s%s", k ? "," : i ? ",(" : "(", i * ncols + k + 1, types[k],
                               k == ncols - 1 ? ")" : "") < 0)
                    goto out;
        if (buf_append_str(&sql, " ") != 0 || buf_append_str(&sql, tail) != 0)
            goto out;
        r = PQprepare(c->conn, name, (const char *)sql.data, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            log_error("postgresql prepare: %s", PQerrorMessage(c->conn));
            goto out;
        }
        PQclear(r);
        r = NULL;
        c->rows_prepared[kind][nrows] = true;
    }
    r = PQexecPrepared(c->conn, name, nrows * ncols, vals, lens, fmts, 0);
    ExecStatusType es = PQresultStatus(r);
    if (es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK) {
        rc = STORE_OK;
        *out = r;
        r = NULL;
    } else {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        rc = state && strncmp(state, "23", 2) == 0 ? STORE_ECONFLICT : STORE_EIO;
        if (rc == STORE_EIO)
            log_error("postgresql: %s", PQerrorMessage(c->conn));
    }
out:
    PQclear(r);
    buf_free(&sql);
    return rc;
}

/* A partition with jobs in a batch. */
struct gc_part {
    const char *id;
    long quota;       /* jobs counted against the purchase */
    bool audit;       /* jobs with an audit record */
    char *head;       /* the chain head, read under the partition's lock */
    const char *last; /* running head: head, or the hash of its latest job */
};

static int gc_part_cmp(const void *a, const void *b)
{
    return strcmp(((const struct gc_part *)a)->id, ((const struct gc_part *)b)->id);
}

#define CERT_NCOLS 14
#define AUDIT_NCOLS 10

/* Inserts the certificates of jobs[0..n) (n <= GC_ROWS) in one statement
 * and sets each cert_rec's pk. */
static int gc_insert_certs(struct pgc *c, struct gc_job **jobs, int n)
{
    static const char *const types[CERT_NCOLS] = {"text", "bigint", "text", "text", "text",   "bigint", "bigint",
                                                  "text", "text",   "text", "int",  "bytea", "bigint", "int"};
    const char **vals = calloc((size_t)n * CERT_NCOLS, sizeof(*vals));
    int *lens = calloc((size_t)n * CERT_NCOLS, sizeof(*lens));
    int *fmts = calloc((size_t)n * CERT_NCOLS, sizeof(*fmts));
    char(*num)[24] = calloc((size_t)n * 6, sizeof(*num));
    PGresult *r = NULL;
    int rc = STORE_EIO;
    if (!vals || !lens || !fmts || !num)
        goto out;
    for (int i = 0; i < n; i++) {
        const struct cert_rec *x = jobs[i]->c;
        const char **v = vals + (size_t)i * CERT_NCOLS;
        char(*nm)[24] = num + (size_t)i * 6;
        if (x->der_len > INT_MAX)
            goto out;
        snprintf(nm[0], sizeof nm[0], "%lld", (long long)x->issuer_ca_pk);
        snprintf(nm[1], sizeof nm[1], "%lld", (long long)x->not_before);
        snprintf(nm[2], sizeof nm[2], "%lld", (long long)x->not_after);
        snprintf(nm[3], sizeof nm[3], "%d", (int)x->is_ca);
        snprintf(nm[4], sizeof nm[4], "%lld", (long long)x->created_at);
        snprintf(nm[5], sizeof nm[5], "%d", x->crl_shard);
        v[0] = x->partition_id;
        v[1] = nm[0];
        v[2] = x->serial;
        v[3] = x->subject ? x->subject : "";
        v[4] = x->sans;
        v[5] = nm[1];
        v[6] = nm[2];
        v[7] = x->status[0] ? x->status : "issued";
        v[8] = x->profile_id;
        v[9] = x->requester;
        v[10] = nm[3];
        v[11] = (const char *)x->der;
        lens[(size_t)i * CERT_NCOLS + 11] = x->der ? (int)x->der_len : 0;
        fmts[(size_t)i * CERT_NCOLS + 11] = x->der ? 1 : 0;
        v[12] = nm[4];
        v[13] = x->crl_shard < 0 ? NULL : nm[5];
    }
    if ((rc = q_rows(c, &r, 0,
                     "INSERT INTO certificate(partition_id,issuer_ca_pk,serial,subject,sans,not_before,not_after,"
                     "status,profile_id,requester,is_ca,der,created_at,crl_shard)",
                     "RETURNING pk,issuer_ca_pk,serial", types, CERT_NCOLS, n, vals, lens, fmts)) != STORE_OK)
        goto out;
    rc = STORE_EIO;
    if (PQntuples(r) != n)
        goto out;
    /* Match the returned rows by (issuer, serial), unique: the order of
     * RETURNING is the order of VALUES in practice, but not a promise. */
    for (int i = 0; i < n; i++)
        jobs[i]->c->pk = 0;
    for (int k = 0; k < n; k++) {
        int64_t issuer = gi(r, k, 1);
        const char *serial = PQgetvalue(r, k, 2);
        int i = k;
        if (jobs[i]->c->issuer_ca_pk != issuer || strcmp(jobs[i]->c->serial, serial) != 0)
            for (i = 0; i < n; i++)
                if (jobs[i]->c->issuer_ca_pk == issuer && strcmp(jobs[i]->c->serial, serial) == 0)
                    break;
        if (i == n || jobs[i]->c->pk != 0)
            goto out;
        jobs[i]->c->pk = gi(r, k, 0);
    }
    rc = STORE_OK;
out:
    PQclear(r);
    free(vals);
    free(lens);
    free(fmts);
    free(num);
    return rc;
}

/* Inserts the audit records of jobs[0..n) (n <= GC_ROWS, each with one),
 * in order: seq follows the order of VALUES, which is the chain's order.
 * prev[i] and hash[i] are job i's links. */
static int gc_insert_audit(struct pgc *c, struct gc_job **jobs, const int64_t *at, const char *const *prev,
                           char *const *hash, int n)
{
    static const char *const types[AUDIT_NCOLS] = {"text", "bigint", "text", "text", "text",
                                                   "text", "text",   "text", "text", "text"};
    const char **vals = calloc((size_t)n * AUDIT_NCOLS, sizeof(*vals));
    char(*num)[24] = calloc((size_t)n, sizeof(*num));
    PGresult *r = NULL;
    int rc = STORE_EIO;
    if (!vals || !num)
        goto out;
    for (int i = 0; i < n; i++) {
        const struct audit_rec *a = jobs[i]->a;
        const char **v = vals + (size_t)i * AUDIT_NCOLS;
        snprintf(num[i], sizeof num[i], "%lld", (long long)at[i]);
        v[0] = jobs[i]->c->partition_id;
        v[1] = num[i];
        v[2] = a->actor ? a->actor : "";
        v[3] = a->ip ? a->ip : "";
        v[4] = a->action ? a->action : "";
        v[5] = a->target ? a->target : "";
        v[6] = a->result ? a->result : "success";
        v[7] = a->detail;
        v[8] = prev[i];
        v[9] = hash[i];
    }
    rc = q_rows(c, &r, 1,
                "INSERT INTO audit(partition_id,at_ms,actor,source_ip,action,target,result,detail,prev_hash,hash)", "",
                types, AUDIT_NCOLS, n, vals, NULL, NULL);
out:
    PQclear(r);
    free(vals);
    free(num);
    return rc;
}

/* Every job's issuing CA is not deleted: STORE_OK, STORE_ESTATE or an error. */
static int gc_issuers_live(struct pgc *c, struct gc_job **jobs, size_t n)
{
    struct buf arr;
    long ch = 0;
    int rc = STORE_EIO;
    buf_init(&arr, 0);
    if (buf_append_str(&arr, "{") != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        char num[32];
        snprintf(num, sizeof num, "%s%lld", i ? "," : "", (long long)jobs[i]->c->issuer_ca_pk);
        if (buf_append_str(&arr, num) != 0)
            goto out;
    }
    if (buf_append_str(&arr, "}") != 0 || buf_append(&arr, (const unsigned char *)"", 1) != 0)
        goto out;
    if ((rc = q(c, NULL, &ch, "SELECT 1 FROM ca WHERE pk = ANY($1::bigint[]) AND status='deleted'", "t",
                (const char *)arr.data)) != STORE_OK)
        goto out;
    rc = ch == 0 ? STORE_OK : STORE_ESTATE;
out:
    buf_free(&arr);
    return rc;
}

/* The whole batch in one transaction, with as few round trips as the
 * locks allow: one quota update per partition (by its number of counted
 * jobs), one multi-row INSERT of certificates, then per partition its
 * audit lock and chain head (read once, the running head kept here), and
 * one multi-row INSERT of audit records. Locks are taken in one order
 * (quota rows by partition id, then audit locks by partition id), as a
 * single insert takes them (quota, certificate, audit), so batches of
 * several nodes queue instead of deadlocking. STORE_OK only once
 * committed; any other result leaves the transaction to be rolled back. */
static int gc_fast(struct pgc *c, struct gc_job *batch, size_t n)
{
    struct gc_job **jobs = calloc(n, sizeof(*jobs));
    struct gc_part *parts = calloc(n, sizeof(*parts));
    size_t *pix = calloc(n, sizeof(*pix));
    int64_t *at = calloc(n, sizeof(*at));
    int64_t *pk0 = calloc(n, sizeof(*pk0)); /* the pks as given, restored on failure */
    const char **prev = calloc(n, sizeof(*prev)); /* borrowed: a head or a hash */
    char **hash = calloc(n, sizeof(*hash)); /* owned */
    struct gc_job **aj = calloc(n, sizeof(*aj)); /* the jobs with audit records */
    PGresult *r = NULL;
    size_t np = 0, na = 0;
    long ch = 0;
    int rc = STORE_EIO;
    if (!jobs || !parts || !pix || !at || !pk0 || !prev || !hash || !aj)
        goto out;
    size_t i = 0;
    for (struct gc_job *j = batch; j; j = j->next, i++) {
        jobs[i] = j;
        pk0[i] = j->c->pk;
        parts[i].id = j->c->partition_id;
    }
    qsort(parts, n, sizeof(*parts), gc_part_cmp);
    for (i = 0; i < n; i++)
        if (np == 0 || strcmp(parts[np - 1].id, parts[i].id) != 0)
            parts[np++].id = parts[i].id;
    for (i = 0; i < n; i++) {
        struct gc_part key = {.id = jobs[i]->c->partition_id};
        struct gc_part *p = bsearch(&key, parts, np, sizeof(*parts), gc_part_cmp);
        if (!p)
            goto out;
        pix[i] = (size_t)(p - parts);
        p->quota += jobs[i]->count_quota;
        p->audit |= jobs[i]->a != NULL;
    }
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    for (size_t k = 0; k < np; k++) {
        if (!parts[k].quota)
            continue;
        if ((rc = q(c, NULL, &ch,
                    "UPDATE subscription SET certs_issued = certs_issued + $2::bigint WHERE id = (SELECT "
                    "subscription_id FROM partition WHERE id=$1::text) AND certs_issued + $2::bigint <= "
                    "certs_purchased",
                    "tl", parts[k].id, (int64_t)parts[k].quota)) != STORE_OK)
            goto out;
        if (ch != 1) {
            rc = STORE_EQUOTA;
            goto out;
        }
    }
    /* no certificate of a CA deleted since it signed (see cert_job_tx); a
     * batch with one goes job by job, where that job alone fails */
    if ((rc = gc_issuers_live(c, jobs, n)) != STORE_OK)
        goto out;
    for (i = 0; i < n; i += GC_ROWS)
        if ((rc = gc_insert_certs(c, jobs + i, (int)(n - i < GC_ROWS ? n - i : GC_ROWS))) != STORE_OK)
            goto out;
    for (size_t k = 0; k < np; k++) {
        if (!parts[k].audit)
            continue;
        if ((rc = q(c, NULL, NULL, "SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))", "dt", LOCK_AUDIT,
                    parts[k].id)) != STORE_OK ||
            (rc = q(c, &r, NULL, "SELECT hash FROM audit WHERE partition_id=$1::text ORDER BY seq DESC LIMIT 1",
                    "t", parts[k].id)) != STORE_OK)
            goto out;
        parts[k].head = PQntuples(r) > 0 ? gdup(r, 0, 0) : strdup(AUDIT_GENESIS);
        PQclear(r);
        r = NULL;
        if (!parts[k].head) {
            rc = STORE_EIO;
            goto out;
        }
        parts[k].last = parts[k].head;
    }
    for (i = 0; i < n; i++) {
        const struct audit_rec *a = jobs[i]->a;
        struct gc_part *p = &parts[pix[i]];
        if (!a)
            continue;
        at[na] = now_ms();
        prev[na] = p->last;
        hash[na] = audit_record_hash(p->last, p->id, at[na], a->actor, a->ip, a->action, a->target,
                                     a->result ? a->result : "success", a->detail);
        if (!hash[na]) {
            rc = STORE_EIO;
            goto out;
        }
        p->last = hash[na];
        aj[na++] = jobs[i];
    }
    for (i = 0; i < na; i += GC_ROWS)
        if ((rc = gc_insert_audit(c, aj + i, at + i, prev + i, hash + i,
                                  (int)(na - i < GC_ROWS ? na - i : GC_ROWS))) != STORE_OK)
            goto out;
    if ((rc = commit(c)) != STORE_OK)
        goto out;
    for (i = 0; i < n; i++)
        jobs[i]->rc = STORE_OK;
out:
    if (rc != STORE_OK && jobs && pk0)
        for (i = 0; i < n && jobs[i]; i++)
            jobs[i]->c->pk = pk0[i];
    PQclear(r);
    if (parts)
        for (size_t k = 0; k < np; k++)
            free(parts[k].head);
    if (hash)
        for (i = 0; i < na; i++)
            free(hash[i]);
    free(jobs);
    free(parts);
    free(pix);
    free(at);
    free(pk0);
    free(prev);
    free(hash);
    free(aj);
    return rc;
}

/* The group commit's batch. A batch of one is a single insert in its own
 * transaction, as before. A larger one is first tried whole (gc_fast); if
 * anything fails (quota used up, a duplicate serial, any SQL error), it is
 * rolled back and rerun job by job, each in a savepoint, so each job
 * succeeds or fails exactly as it would alone; still one COMMIT. */
static void pg_gc_run(void *ctx, struct gc_job *batch)
{
    struct pg *g = ctx;
    struct pgc *c = &g->gc_conn;
    size_t n = 0;
    for (struct gc_job *j = batch; j; j = j->next) {
        j->rc = STORE_EIO;
        n++;
    }
    if (live_conn(g, c) != 0)
        return;
    if (n == 1) {
        if ((batch->rc = begin(c)) == STORE_OK &&
            (batch->rc = cert_job_tx(c, batch->c, batch->count_quota, batch->a)) == STORE_OK)
            batch->rc = commit(c);
        goto out;
    }
    if (gc_fast(c, batch, n) == STORE_OK)
        goto out;
    if (PQtransactionStatus(c->conn) != PQTRANS_IDLE && simple(c, "ROLLBACK", NULL) != STORE_OK)
        goto out;
    if (begin(c) != STORE_OK)
        goto out;
    for (struct gc_job *j = batch; j; j = j->next) {
        if (simple(c, "SAVEPOINT job", NULL) != STORE_OK) {
            j->rc = STORE_EIO;
            continue;
        }
        if ((j->rc = cert_job_tx(c, j->c, j->count_quota, j->a)) != STORE_OK &&
            simple(c, "ROLLBACK TO SAVEPOINT job", NULL) != STORE_OK)
            j->rc = STORE_EIO;
        if (simple(c, "RELEASE SAVEPOINT job", NULL) != STORE_OK)
            j->rc = STORE_EIO;
    }
    if (commit(c) != STORE_OK)
        for (struct gc_job *j = batch; j; j = j->next)
            j->rc = STORE_EIO;
out:
    /* Whatever is left open (a failed transaction) is rolled back. */
    if (PQstatus(c->conn) == CONNECTION_OK && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        PQclear(PQexec(c->conn, "ROLLBACK"));
}

static int pg_cert_insert(struct store *s, struct cert_rec *x, bool count_quota, const struct audit_rec *a)
{
    return group_commit_submit(&PG(s)->gc, x, count_quota, a);
}

#define CERT_COLS                                                                                                  \
    "pk,partition_id,issuer_ca_pk,serial,subject,sans,not_before,not_after,status,revocation_reason,revoked_at,"  \
    "invalidity_date,profile_id,requester,is_ca,der,created_at,crl_shard,status_comment"

static void cert_from_row(const PGresult *r, int i, struct cert_rec *x)
{
    memset(x, 0, sizeof(*x));
    x->pk = gi(r, i, 0);
    gcopy(r, i, 1, x->partition_id, sizeof x->partition_id);
    x->issuer_ca_pk = gi(r, i, 2);
    gcopy(r, i, 3, x->serial, sizeof x->serial);
    x->subject = gdup(r, i, 4);
    x->sans = gdup(r, i, 5);
    x->not_before = gi(r, i, 6);
    x->not_after = gi(r, i, 7);
    gcopy(r, i, 8, x->status, sizeof x->status);
    x->revocation_reason = gim(r, i, 9);
    x->revoked_at = gi(r, i, 10);
    x->invalidity_date = gi(r, i, 11);
    x->profile_id = gdup(r, i, 12);
    x->requester = gdup(r, i, 13);
    x->is_ca = gi(r, i, 14) != 0;
    x->der = gblob(r, i, 15, &x->der_len);
    x->created_at = gi(r, i, 16);
    x->crl_shard = gim(r, i, 17);
    x->status_comment = gdup(r, i, 18);
}

static int pg_cert_list(struct store *s, const char *partition, int64_t issuer_ca_pk, const struct cert_query *qy,
                        struct cert_list *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = NULL;
    int rc = STORE_EIO;
    bool ok;
    char *like = store_like_pattern(qy->text, &ok);
    memset(out, 0, sizeof(*out));
    if (!ok)
        return STORE_EIO;
    if (!(c = acquire(g)))
        goto out;
    /* Each optional filter is "($N IS NULL OR ...)" so one statement serves
     * every combination. LIKE wildcards in the user's text match literally. */
    rc = q(c, &r, NULL,
           "SELECT " CERT_COLS " FROM certificate WHERE partition_id=$1::text AND issuer_ca_pk=$2::bigint"
           " AND ($3::text IS NULL OR status=$3::text) AND ($4::text IS NULL OR profile_id=$4::text)"
           " AND ($5::text IS NULL OR subject ILIKE $5::text ESCAPE '\\' OR sans ILIKE $5::text ESCAPE '\\')"
           " AND ($6::text IS NULL OR serial=$6::text)"
           " AND ($7::bigint = 0 OR not_after <= $7::bigint) AND ($8::bigint = 0 OR not_after > $8::bigint)"
           " AND ($9::text IS NULL OR not_after > $10::bigint OR (not_after = $10::bigint AND serial > $9::text))"
           " AND ($11::int <> 0 OR is_ca = 0)"
           " AND (($13::text IS NULL AND $14::text IS NULL)"
           " OR left(requester, length($13::text))=$13::text OR left(requester, length($14::text))=$14::text)"
           " ORDER BY not_after, serial LIMIT $12::bigint",
           "tltttt" "lltldl" "tt", partition, issuer_ca_pk, qy->status, qy->profile_id, like, qy->serial,
           qy->expires_before, qy->expires_after, qy->cursor_serial, qy->cursor_not_after, (int)qy->include_ca,
           (int64_t)(qy->limit ? qy->limit : 50), qy->requester_prefix[0], qy->requester_prefix[1]);
    if (rc != STORE_OK)
        goto out;
    int rows = PQntuples(r);
    if (!(out->items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*out->items)))) {
        rc = STORE_EIO;
        goto out;
    }
    for (int i = 0; i < rows; i++)
        cert_from_row(r, i, &out->items[i]);
    out->n = (size_t)rows;
out:
    PQclear(r);
    release_conn(g, c);
    free(like);
    return rc;
}

/* The CA's change counter (store_epoch, kind "ca-epoch"), bumped inside
 * the status change's own transaction: other nodes' OCSP and CRL caches
 * cannot miss a change that committed. Lock order for status changes:
 * subscription, this row, certificates, audit. */
static int epoch_bump_tx(struct pgc *c, const char *partition, int64_t ca_pk)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)ca_pk);
    return q(c, NULL, NULL,
             "INSERT INTO object(partition_id,kind,id,json,version,created_at,updated_at) VALUES($1::text,"
             "'ca-epoch',$2::text,'{}',1," NOW_S "," NOW_S ") ON CONFLICT (partition_id,kind,id) DO UPDATE SET "
             "version=object.version+1, updated_at=EXCLUDED.updated_at",
             "tt", partition, id);
}

static int pg_cert_set_status(struct store *s, const char *partition, int64_t issuer_ca_pk, const char *serial,
                              const char *status, int reason, int64_t at, int64_t invalidity, const char *comment,
                              const struct audit_rec *a)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    int rc = STORE_EIO;
    bool revoke = strcmp(status, "revoked") == 0, back = strcmp(status, "issued") == 0;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    /* lock order everywhere: subscription, CA epoch, certificate, audit */
    if ((revoke && (rc = lock_subscription(c, partition)) != STORE_OK) ||
        (rc = epoch_bump_tx(c, partition, issuer_ca_pk)) != STORE_OK)
        goto out;
    if ((rc = one(q(c, &r, NULL,
                    "SELECT status, is_ca, coalesce(profile_id,''), (coalesce(requester,'')='system')::int FROM "
                    "certificate WHERE partition_id=$1::text AND issuer_ca_pk=$2::bigint AND serial=$3::text FOR "
                    "UPDATE",
                    "tlt", partition, issuer_ca_pk, serial),
                  &r)) != STORE_OK)
        goto out;
    const char *cur = PQgetvalue(r, 0, 0);
    bool ok = (strcmp(cur, "issued") == 0 && (revoke || strcmp(status, "suspended") == 0)) ||
              (strcmp(cur, "suspended") == 0 && (revoke || back));
    if (!ok) {
        rc = STORE_ESTATE;
        goto out;
    }
    /* Revoking frees purchased capacity (guide "Quotas"); CA certificates
     * and the service's own (OCSP responder, SCEP/CMP RA: requester
     * 'system') never took any. */
    if (revoke && gi(r, 0, 1) == 0 && gi(r, 0, 3) == 0 && strcmp(PQgetvalue(r, 0, 2), "ocsp-responder") != 0 &&
        (rc = q(c, NULL, NULL,
                "UPDATE subscription SET certs_issued = greatest(certs_issued - 1, 0) WHERE id = (SELECT "
                "subscription_id FROM partition WHERE id=$1::text)",
                "t", partition)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, NULL,
                "UPDATE certificate SET status=$1::text, revocation_reason=$2::int, revoked_at=$3::bigint, "
                "invalidity_date=$4::bigint, status_comment=$5::text WHERE partition_id=$6::text AND "
                "issuer_ca_pk=$7::bigint AND serial=$8::text",
                "tmmzttlt", status, (int64_t)(back ? -1 : reason), back ? (int64_t)-1 : at,
                back ? (int64_t)0 : invalidity, comment && *comment ? comment : NULL, partition, issuer_ca_pk,
                serial)) != STORE_OK)
        goto out;
    if ((rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_cert_revoke_batch(struct store *s, const char *partition, int64_t issuer_ca_pk, const char *ca_id,
                                const char *const *serials, size_t n, int reason, int64_t at, int64_t invalidity,
                                const struct audit_rec *a, int *results)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    char *target = NULL;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK || (rc = lock_subscription(c, partition)) != STORE_OK ||
        (rc = epoch_bump_tx(c, partition, issuer_ca_pk)) != STORE_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        PQclear(r);
        r = NULL;
        if ((rc = q(c, &r, NULL,
                    "SELECT status, is_ca, coalesce(profile_id,''), (coalesce(requester,'')='system')::int FROM "
                    "certificate WHERE partition_id=$1::text AND issuer_ca_pk=$2::bigint AND serial=$3::text FOR "
                    "UPDATE",
                    "tlt", partition, issuer_ca_pk, serials[i])) != STORE_OK)
            goto out;
        if (PQntuples(r) == 0) {
            results[i] = 2;
            continue;
        }
        if (strcmp(PQgetvalue(r, 0, 0), "revoked") == 0) {
            results[i] = 1;
            continue;
        }
        if ((rc = q(c, NULL, NULL,
                    "UPDATE certificate SET status='revoked', revocation_reason=$1::int, revoked_at=$2::bigint, "
                    "invalidity_date=$3::bigint, status_comment=NULL WHERE partition_id=$4::text AND "
                    "issuer_ca_pk=$5::bigint AND serial=$6::text",
                    "mlztlt", (int64_t)reason, at, invalidity, partition, issuer_ca_pk, serials[i])) != STORE_OK)
            goto out;
        /* revoking frees purchased capacity (not the service's own) */
        if (gi(r, 0, 1) == 0 && gi(r, 0, 3) == 0 && strcmp(PQgetvalue(r, 0, 2), "ocsp-responder") != 0 &&
            (rc = q(c, NULL, NULL,
                    "UPDATE subscription SET certs_issued = greatest(certs_issued - 1, 0) WHERE id = (SELECT "
                    "subscription_id FROM partition WHERE id=$1::text)",
                    "t", partition)) != STORE_OK)
            goto out;
        free(target);
        if (asprintf(&target, "cert:%s/%s", ca_id, serials[i]) < 0) {
            target = NULL;
            rc = STORE_EIO;
            goto out;
        }
        struct audit_rec ar = *a;
        ar.target = target;
        if ((rc = audit_add(c, partition, &ar)) != STORE_OK)
            goto out;
        results[i] = 0;
    }
    rc = commit(c);
out:
    free(target);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_inventory(struct store *s, const char *partition, struct inventory *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    /* A CA deleted less than 24 h ago still counts as active (guide:
     * "Deleting a CA"). */
    int rc = one(q(c, &r, NULL,
                   "SELECT s.certs_issued, s.certs_purchased, s.cas_purchased,"
                   " (SELECT count(*) FROM ca WHERE ca.partition_id=p.id AND (ca.status<>'deleted'"
                   "   OR ca.deleted_at > " NOW_S " - 86400))"
                   " FROM partition p JOIN subscription s ON s.id=p.subscription_id WHERE p.id=$1::text",
                   "t", partition),
                 &r);
    if (rc == STORE_OK) {
        out->certs_issued = gi(r, 0, 0);
        out->certs_purchased = gi(r, 0, 1);
        out->cas_purchased = gi(r, 0, 2);
        out->cas_active = gi(r, 0, 3);
    }
    PQclear(r);
    release_conn(g, c);
    return rc;
}

/* ---- profiles ------------------------------------------------------------ */

static int pg_profile_put(struct store *s, const char *partition, const char *id, const char *group,
                          const char *json, bool create, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    long ch = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, &ch,
                create ? "INSERT INTO profile(partition_id,profile_id,grp,json,created_at,updated_at) "
                         "VALUES($1::text,$2::text,$3::text,$4::text,$5::bigint,$5::bigint)"
                       : "UPDATE profile SET grp=$3::text, json=$4::text, updated_at=$5::bigint WHERE "
                         "partition_id=$1::text AND profile_id=$2::text",
                "ttttl", partition, id, group, json, time_now())) != STORE_OK)
        goto out;
    if (!create && ch != 1) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    if ((rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

static int pg_profile_get(struct store *s, const char *partition, const char *id, char **json)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL, "SELECT json FROM profile WHERE partition_id=$1::text AND profile_id=$2::text", "tt",
                   partition, id),
                 &r);
    if (rc == STORE_OK && !(*json = gdup(r, 0, 0)))
        rc = STORE_EIO;
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_profile_list(struct store *s, const char *partition, struct profile_rows *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    memset(out, 0, sizeof(*out));
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL,
               "SELECT profile_id, json FROM profile WHERE partition_id=$1::text ORDER BY grp, profile_id", "t",
               partition);
    if (rc != STORE_OK)
        goto out;
    int rows = PQntuples(r);
    if (!(out->items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*out->items)))) {
        rc = STORE_EIO;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        gcopy(r, i, 0, out->items[i].id, sizeof out->items[i].id);
        out->items[i].json = gdup(r, i, 1);
    }
    out->n = (size_t)rows;
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_profile_delete(struct store *s, const char *partition, const char *id, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    long ch = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    /* Delete first (the row lock waits for an assignment holding it), then
     * look for assignments: this statement sees any committed meanwhile. */
    if ((rc = q(c, NULL, &ch, "DELETE FROM profile WHERE partition_id=$1::text AND profile_id=$2::text", "tt",
                partition, id)) != STORE_OK)
        goto out;
    if (ch != 1) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    if ((rc = q(c, &r, NULL,
                "SELECT 1 FROM ca_profile cp JOIN ca ON ca.pk=cp.ca_pk WHERE cp.partition_id=$1::text AND "
                "cp.profile_id=$2::text AND ca.status<>'deleted' LIMIT 1",
                "tt", partition, id)) != STORE_OK)
        goto out;
    if (PQntuples(r) > 0) {
        rc = STORE_ECONFLICT;
        goto out;
    }
    if ((rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_ca_profile_list(struct store *s, const char *partition, int64_t ca_pk, char ***ids, size_t *n)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    *n = 0;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL,
               "SELECT profile_id FROM ca_profile WHERE partition_id=$1::text AND ca_pk=$2::bigint ORDER BY profile_id",
               "tl", partition, ca_pk);
    if (rc == STORE_OK)
        rc = ids_from(r, ids, n);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_ca_profile_set(struct store *s, const char *partition, int64_t ca_pk, const char *profile_id,
                             bool add, bool custom, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    long ch = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    /* The custom profile's row, share-locked: a profile_delete that deleted
     * it first makes this wait and then find nothing; one that comes later
     * waits for this commit and then sees the assignment (it deletes before
     * it looks for assignments). */
    if (add && custom) {
        if ((rc = q(c, NULL, &ch,
                    "SELECT 1 FROM profile WHERE partition_id=$1::text AND profile_id=$2::text FOR SHARE", "tt",
                    partition, profile_id)) != STORE_OK)
            goto out;
        if (ch != 1) {
            rc = STORE_ENOTFOUND;
            goto out;
        }
    }
    if ((rc = q(c, NULL, &ch,
                add ? "INSERT INTO ca_profile(partition_id,ca_pk,profile_id) VALUES($1::text,$2::bigint,$3::text) "
                      "ON CONFLICT DO NOTHING"
                    : "DELETE FROM ca_profile WHERE partition_id=$1::text AND ca_pk=$2::bigint AND "
                      "profile_id=$3::text",
                "tlt", partition, ca_pk, profile_id)) != STORE_OK)
        goto out;
    if (!add && ch != 1) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    if ((rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

static int pg_cert_get(struct store *s, const char *partition, int64_t issuer_ca_pk, const char *serial,
                       struct cert_rec *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL,
                   "SELECT " CERT_COLS " FROM certificate WHERE partition_id=$1::text AND issuer_ca_pk=$2::bigint "
                   "AND serial=$3::text",
                   "tlt", partition, issuer_ca_pk, serial),
                 &r);
    if (rc == STORE_OK)
        cert_from_row(r, 0, out);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

/* ---- status services ----------------------------------------------------- */

/* The UPDATE takes the CA row's lock: numbers are handed out one at a time
 * across nodes, strictly increasing and never reused. */
static int pg_crl_next_number(struct store *s, const char *partition, int64_t ca_pk, int64_t *number)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL,
                   "UPDATE ca SET crl_number = crl_number + 1 WHERE partition_id=$1::text AND pk=$2::bigint "
                   "RETURNING crl_number",
                   "tl", partition, ca_pk),
                 &r);
    if (rc == STORE_OK)
        *number = gi(r, 0, 0);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_crl_save(struct store *s, const char *partition, int64_t ca_pk, const struct crl_rec *x)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, NULL,
               "INSERT INTO crl(partition_id,ca_pk,number,this_update,next_update,entries,der,shard) "
               "VALUES($1::text,$2::bigint,$3::bigint,$4::bigint,$5::bigint,$6::bigint,$7::bytea,$8::int)",
               "tlllllbd", partition, ca_pk, x->number, x->this_update, x->next_update, x->entries, x->der,
               x->der_len, x->shard);
    /* Keep the newest 100 CRLs per CA in the history list, and the bytes of
     * only the newest CRL_KEEP_DER (a CA with many revocations publishes
     * megabytes each time; nothing serves an older one). */
    if (rc == STORE_OK) {
        q(c, NULL, NULL,
          "DELETE FROM crl WHERE ca_pk=$1::bigint AND shard=$2::int AND number < (SELECT min(number) FROM (SELECT "
          "number FROM crl WHERE ca_pk=$1::bigint AND shard=$2::int ORDER BY number DESC LIMIT 100) t)",
          "ld", ca_pk, x->shard);
        q(c, NULL, NULL,
          "UPDATE crl SET der='\\x'::bytea WHERE ca_pk=$1::bigint AND shard=$2::int AND length(der) > 0 AND number < "
          "(SELECT min(number) FROM (SELECT number FROM crl WHERE ca_pk=$1::bigint AND shard=$2::int ORDER BY number "
          "DESC LIMIT " CRL_KEEP_DER_TEXT ") t)",
          "ld", ca_pk, x->shard);
    }
    release_conn(g, c);
    return rc;
}

/* The rows of crl, newest first; der only when with_der. */
static int pg_crl_rows(struct store *s, const char *partition, int64_t ca_pk, int shard, size_t max, bool with_der,
                       struct crl_rec **out, size_t *n)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct crl_rec *items = NULL;
    *out = NULL;
    *n = 0;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL,
               with_der ? "SELECT number,this_update,next_update,entries,der,shard FROM crl WHERE partition_id=$1::text "
                          "AND ca_pk=$2::bigint AND ($4::int < -1 OR shard=$4::int) ORDER BY number DESC LIMIT $3::bigint"
                        : "SELECT number,this_update,next_update,entries,NULL::bytea,shard FROM crl WHERE "
                          "partition_id=$1::text AND ca_pk=$2::bigint AND ($4::int < -1 OR shard=$4::int) "
                          "ORDER BY number DESC LIMIT $3::bigint",
               "tlld", partition, ca_pk, (int64_t)max, shard);
    if (rc != STORE_OK)
        goto out;
    if (!(items = calloc(max ? max : 1, sizeof(*items)))) {
        rc = STORE_EIO;
        goto out;
    }
    for (int i = 0; i < PQntuples(r) && (size_t)i < max; i++) {
        struct crl_rec *x = &items[(*n)++];
        x->number = gi(r, i, 0);
        x->this_update = gi(r, i, 1);
        x->next_update = gi(r, i, 2);
        x->entries = gi(r, i, 3);
        x->der = gblob(r, i, 4, &x->der_len);
        x->shard = (int)gi(r, i, 5);
    }
    *out = items;
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_crl_list(struct store *s, const char *partition, int64_t ca_pk, int shard, size_t max,
                       struct crl_rec **out, size_t *n)
{
    return pg_crl_rows(s, partition, ca_pk, shard, max, false, out, n);
}

static int pg_crl_latest(struct store *s, const char *partition, int64_t ca_pk, int shard, struct crl_rec *out)
{
    struct crl_rec *items = NULL;
    size_t n = 0;
    int rc = pg_crl_rows(s, partition, ca_pk, shard, 1, true, &items, &n);
    if (rc == STORE_OK && n == 0)
        rc = STORE_ENOTFOUND;
    if (rc == STORE_OK)
        *out = items[0];
    free(items);
    return rc;
}

struct revoked_walk {
    revoked_cb cb;
    void *ctx;
};

static int revoked_row_cb(const PGresult *r, int i, void *arg)
{
    struct revoked_walk *w = arg;
    if (PQgetisnull(r, i, 0))
        return 0;
    struct revoked_entry e = {PQgetvalue(r, i, 0), gi(r, i, 1), gim(r, i, 2), gi(r, i, 3)};
    return w->cb(&e, w->ctx);
}

static int pg_cert_iter_revoked(struct store *s, const char *partition, int64_t ca_pk, int shard, revoked_cb cb,
                                void *ctx)
{
    struct pg *g = PG(s);
    struct revoked_walk w = {cb, ctx};
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q_stream(c, revoked_row_cb, &w,
                      "DECLARE pkiaas_cursor NO SCROLL CURSOR FOR "
                      "SELECT serial, revoked_at, revocation_reason, invalidity_date FROM certificate WHERE "
                      "partition_id=$1::text AND issuer_ca_pk=$2::bigint AND status IN ('revoked','suspended') "
                      "AND ($3::int < 0 OR crl_shard=$3::int)",
                      "tld", partition, ca_pk, shard);
    release_conn(g, c);
    return rc;
}

static int pg_responder_get(struct store *s, const char *partition, int64_t ca_pk, struct responder_rec *out)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL,
                   "SELECT key_blob, cert_der, not_after, created_at FROM ocsp_responder WHERE partition_id=$1::text "
                   "AND ca_pk=$2::bigint ORDER BY created_at DESC LIMIT 1",
                   "tl", partition, ca_pk),
                 &r);
    if (rc == STORE_OK) {
        memset(out, 0, sizeof(*out));
        out->key_blob = gblob(r, 0, 0, &out->key_blob_len);
        out->cert_der = gblob(r, 0, 1, &out->cert_len);
        out->not_after = gi(r, 0, 2);
        out->created_at = gi(r, 0, 3);
    }
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_responder_put(struct store *s, const char *partition, int64_t ca_pk, const struct responder_rec *rr,
                            const struct audit_rec *a)
{
    struct pg *g = PG(s);
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, NULL,
                "INSERT INTO ocsp_responder(ca_pk,partition_id,key_blob,cert_der,not_after,created_at) "
                "VALUES($1::bigint,$2::text,$3::bytea,$4::bytea,$5::bigint,$6::bigint)",
                "ltbbll", ca_pk, partition, rr->key_blob, rr->key_blob_len, rr->cert_der, rr->cert_len,
                rr->not_after, rr->created_at)) != STORE_OK)
        goto out;
    if ((rc = audit_add(c, partition, a)) != STORE_OK)
        goto out;
    rc = commit(c);
out:
    release_conn(g, c);
    return rc;
}

/* ---- rate limiting and job leases ---------------------------------------- */

/* GCRA over a shared row: the bucket is locked for the read-modify-write, so
 * requests through every node draw from the same budget. */
static int pg_rate_take(struct store *s, const char *key, int limit, int window_s, int64_t now,
                        int64_t *retry_after_ms, bool *first_reject)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    int rc = STORE_EIO;
    *first_reject = false;
    if (limit <= 0 || window_s <= 0)
        return STORE_OK;
    int64_t interval = (int64_t)window_s * 1000 / limit, window = (int64_t)window_s * 1000;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, NULL, "INSERT INTO rate_bucket(key,tat_ms,limited) VALUES($1::text,0,0) ON CONFLICT DO NOTHING",
                "t", key)) != STORE_OK)
        goto out;
    if ((rc = one(q(c, &r, NULL, "SELECT tat_ms, limited FROM rate_bucket WHERE key=$1::text FOR UPDATE", "t", key),
                  &r)) != STORE_OK) {
        rc = STORE_EIO;
        goto out;
    }
    int64_t tat = gi(r, 0, 0), next;
    bool limited = gi(r, 0, 1) != 0, refuse;
    if (tat < now)
        tat = now;
    next = tat + interval;
    refuse = next - now > window;
    if ((rc = q(c, NULL, NULL, "UPDATE rate_bucket SET tat_ms=$2::bigint, limited=$3::int WHERE key=$1::text", "tld",
                key, refuse ? gi(r, 0, 0) : next, (int)refuse)) != STORE_OK ||
        (rc = commit(c)) != STORE_OK)
        goto out;
    if (refuse) {
        *retry_after_ms = next - now - window;
        *first_reject = !limited;
        rc = STORE_ELIMIT;
    }
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

/* Taken when free, expired, or already ours (renewal); times on the
 * database's clock so nodes need not agree on theirs. */
static int pg_lease_take(struct store *s, const char *job, int ttl_s)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL,
               "INSERT INTO job_lease(name,holder,expires_at_ms) VALUES($1::text,$2::text,"
               "(extract(epoch from clock_timestamp())*1000)::bigint + $3::bigint * 1000) "
               "ON CONFLICT (name) DO UPDATE SET holder=EXCLUDED.holder, expires_at_ms=EXCLUDED.expires_at_ms "
               "WHERE job_lease.holder=EXCLUDED.holder OR "
               "job_lease.expires_at_ms <= (extract(epoch from clock_timestamp())*1000)::bigint RETURNING holder",
               "ttd", job, g->node, ttl_s);
    if (rc == STORE_OK && PQntuples(r) != 1)
        rc = STORE_ECONFLICT;
    PQclear(r);
    release_conn(g, c);
    return rc;
}

/* ---- protocol documents (object) ----------------------------------------- */

#define OBJ_COLS "partition_id,kind,id,parent,lookup,status,expires_at,json,blob,version,created_at,updated_at"

static void obj_from_row(const PGresult *r, int i, struct obj_rec *o)
{
    memset(o, 0, sizeof *o);
    gcopy(r, i, 0, o->partition_id, sizeof o->partition_id);
    gcopy(r, i, 1, o->kind, sizeof o->kind);
    gcopy(r, i, 2, o->id, sizeof o->id);
    o->parent = gdup(r, i, 3);
    o->lookup = gdup(r, i, 4);
    gcopy(r, i, 5, o->status, sizeof o->status);
    o->expires_at = gi(r, i, 6);
    o->json = gdup(r, i, 7);
    o->blob = gblob(r, i, 8, &o->blob_len);
    o->version = gi(r, i, 9);
    o->created_at = gi(r, i, 10);
    o->updated_at = gi(r, i, 11);
}

static int pg_obj_put(struct store *s, struct obj_rec *o, enum obj_put_mode mode, const struct audit_rec *a)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    long ch = 0;
    int rc = STORE_EIO;
    int64_t now = now_s();
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    if ((rc = begin(c)) != STORE_OK)
        goto out;
    if (mode == OBJ_CREATE) {
        /* an expired row under the same id or lookup gives way */
        if ((rc = q(c, NULL, NULL,
                    "DELETE FROM object WHERE partition_id=$1::text AND kind=$2::text AND (id=$3::text OR "
                    "lookup=$4::text) AND expires_at>0 AND expires_at<=$5::bigint",
                    "ttttl", o->partition_id, o->kind, o->id, o->lookup, now)) != STORE_OK)
            goto out;
        rc = q(c, NULL, &ch,
               "INSERT INTO object(" OBJ_COLS ") VALUES($1::text,$2::text,$3::text,$4::text,$5::text,$6::text,"
               "$7::bigint,$8::text,$9::bytea,1,$10::bigint,$10::bigint)",
               "tttttt" "ltbl", o->partition_id, o->kind, o->id, o->parent, o->lookup, o->status, o->expires_at,
               o->json, o->blob, o->blob_len, now);
    } else {
        rc = q(c, NULL, &ch,
               "UPDATE object SET parent=$4::text, lookup=$5::text, status=$6::text, expires_at=$7::bigint, "
               "json=$8::text, blob=$9::bytea, version=version+1, updated_at=$10::bigint WHERE partition_id=$1::text "
               "AND kind=$2::text AND id=$3::text AND version=$11::bigint",
               "tttttt" "ltbll", o->partition_id, o->kind, o->id, o->parent, o->lookup, o->status, o->expires_at,
               o->json, o->blob, o->blob_len, now, o->version);
    }
    if (rc != STORE_OK)
        goto out;
    if (mode == OBJ_UPDATE && ch != 1) {
        /* gone, or changed by someone else since it was read */
        if ((rc = q(c, &r, NULL, "SELECT 1 FROM object WHERE partition_id=$1::text AND kind=$2::text AND id=$3::text",
                    "ttt", o->partition_id, o->kind, o->id)) == STORE_OK)
            rc = PQntuples(r) > 0 ? STORE_ECONFLICT : STORE_ENOTFOUND;
        goto out;
    }
    if ((rc = audit_add(c, o->partition_id, a)) != STORE_OK || (rc = commit(c)) != STORE_OK)
        goto out;
    if (mode == OBJ_UPDATE) {
        o->version++;
    } else {
        o->version = 1;
        o->created_at = now;
    }
    o->updated_at = now;
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int obj_query(struct store *s, struct obj_rec *out, const char *sql, const char *partition, const char *kind,
                     const char *key)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = one(q(c, &r, NULL, sql, "tttl", partition, kind, key, now_s()), &r);
    if (rc == STORE_OK)
        obj_from_row(r, 0, out);
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_obj_get(struct store *s, const char *partition, const char *kind, const char *id, struct obj_rec *out)
{
    return obj_query(s, out,
                     "SELECT " OBJ_COLS " FROM object WHERE partition_id=$1::text AND kind=$2::text AND id=$3::text "
                     "AND (expires_at=0 OR expires_at>$4::bigint)",
                     partition, kind, id);
}

static int pg_obj_find(struct store *s, const char *partition, const char *kind, const char *lookup,
                       struct obj_rec *out)
{
    return obj_query(s, out,
                     "SELECT " OBJ_COLS " FROM object WHERE partition_id=$1::text AND kind=$2::text AND "
                     "lookup=$3::text AND (expires_at=0 OR expires_at>$4::bigint)",
                     partition, kind, lookup);
}

static int pg_obj_list(struct store *s, const char *partition, const char *kind, const char *parent,
                       const char *after_id, unsigned limit, struct obj_rec **out, size_t *n)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct obj_rec *items = NULL;
    *n = 0;
    *out = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL,
               "SELECT " OBJ_COLS " FROM object WHERE partition_id=$1::text AND kind=$2::text AND "
               "($3::text IS NULL OR parent=$3::text) AND ($4::text IS NULL OR id COLLATE \"C\" > $4::text) AND "
               "(expires_at=0 OR expires_at>$5::bigint) ORDER BY id COLLATE \"C\" LIMIT $6::bigint",
               "ttttlz", partition, kind, parent, after_id, now_s(), (int64_t)limit);
    if (rc != STORE_OK)
        goto out;
    int rows = PQntuples(r);
    if (!(items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*items)))) {
        rc = STORE_EIO;
        goto out;
    }
    for (int i = 0; i < rows; i++)
        obj_from_row(r, i, &items[i]);
    *out = items;
    *n = (size_t)rows;
out:
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static int pg_obj_delete(struct store *s, const char *partition, const char *kind, const char *id,
                         const struct audit_rec *a)
{
    struct pg *g = PG(s);
    long ch = 0;
    int rc = STORE_EIO;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    /* without an audit record the single DELETE is its own transaction */
    if (a && (rc = begin(c)) != STORE_OK)
        goto out;
    if ((rc = q(c, NULL, &ch,
                "DELETE FROM object WHERE partition_id=$1::text AND kind=$2::text AND id=$3::text AND "
                "(expires_at=0 OR expires_at>$4::bigint)",
                "tttl", partition, kind, id, now_s())) != STORE_OK)
        goto out;
    if (ch != 1) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    if (a && ((rc = audit_add(c, partition, a)) != STORE_OK || (rc = commit(c)) != STORE_OK))
        goto out;
out:
    release_conn(g, c);
    return rc;
}

static int pg_obj_purge(struct store *s, const char *kind, int64_t now)
{
    struct pg *g = PG(s);
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, NULL, NULL, "DELETE FROM object WHERE kind=$1::text AND expires_at>0 AND expires_at<=$2::bigint",
               "tl", kind, now);
    /* idle rate buckets (TAT in the past = full) carry no state: drop them */
    if (rc == STORE_OK)
        rc = q(c, NULL, NULL, "DELETE FROM rate_bucket WHERE tat_ms < $1::bigint", "l", now * 1000 - 3600 * 1000);
    release_conn(g, c);
    return rc;
}

/* ---- lifecycle ----------------------------------------------------------- */

static int pg_ping(struct store *s)
{
    struct pg *g = PG(s);
    PGresult *r = NULL;
    struct pgc *c = acquire(g);
    if (!c)
        return STORE_EIO;
    int rc = q(c, &r, NULL, "SELECT 1", "");
    PQclear(r);
    release_conn(g, c);
    return rc;
}

static void pg_close(struct store *s)
{
    struct pg *g = PG(s);
    if (g) {
        for (size_t i = 0; i < POOL_SIZE; i++)
            if (g->conns[i].conn)
                PQfinish(g->conns[i].conn);
        if (g->gc_conn.conn)
            PQfinish(g->gc_conn.conn);
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        group_commit_destroy(&g->gc);
        free(g->conninfo);
        free(g);
    }
    free(s);
}

static const struct store_ops pg_ops = {
    .name = "postgresql",
    .shared = true,
    .close = pg_close,
    .ping = pg_ping,
    .partition_bootstrap = pg_partition_bootstrap,
    .partition_get = pg_partition_get,
    .token_get = pg_token_get,
    .token_insert = pg_token_insert,
    .cagw_ca_get = pg_cagw_ca_get,
    .cagw_ca_put = pg_cagw_ca_put,
    .cagw_cred_put = pg_cagw_cred_put,
    .cagw_cred_get = pg_cagw_cred_get,
    .cagw_cred_by_serial = pg_cagw_cred_by_serial,
    .cagw_cred_list = pg_cagw_cred_list,
    .cagw_cred_delete = pg_cagw_cred_delete,
    .cagw_grants_set = pg_cagw_grants_set,
    .cagw_grants_get = pg_cagw_grants_get,
    .supervisor_token_put = pg_supervisor_token_put,
    .supervisor_token_check = pg_supervisor_token_check,
    .supervisor_token_revoke = pg_supervisor_token_revoke,
    .subscription_create = pg_subscription_create,
    .subscription_list = pg_subscription_list,
    .subscription_assign = pg_subscription_assign,
    .user_get = pg_user_get,
    .user_put = pg_user_put,
    .user_list = pg_user_list,
    .user_delete = pg_user_delete,
    .invite_put = pg_invite_put,
    .invite_get = pg_invite_get,
    .invite_use = pg_invite_use,
    .session_put = pg_session_put,
    .session_get = pg_session_get,
    .session_revoke = pg_session_revoke,
    .token_list = pg_token_list,
    .token_revoke = pg_token_revoke,
    .ca_insert = pg_ca_insert,
    .ca_get = pg_ca_get,
    .ca_list = pg_ca_list,
    .ca_activate = pg_ca_activate,
    .ca_list_active_all = pg_ca_list_active_all,
    .ca_delete = pg_ca_delete,
    .cert_insert = pg_cert_insert,
    .cert_get = pg_cert_get,
    .cert_list = pg_cert_list,
    .crl_next_number = pg_crl_next_number,
    .crl_save = pg_crl_save,
    .crl_latest = pg_crl_latest,
    .crl_list = pg_crl_list,
    .cert_iter_revoked = pg_cert_iter_revoked,
    .responder_get = pg_responder_get,
    .responder_put = pg_responder_put,
    .cert_set_status = pg_cert_set_status,
    .inventory = pg_inventory,
    .cert_revoke_batch = pg_cert_revoke_batch,
    .profile_put = pg_profile_put,
    .profile_get = pg_profile_get,
    .profile_list = pg_profile_list,
    .profile_delete = pg_profile_delete,
    .ca_profile_list = pg_ca_profile_list,
    .ca_profile_set = pg_ca_profile_set,
    .audit_append = pg_audit_append,
    .audit_iter = pg_audit_iter,
    .audit_checkpoint_put = pg_audit_checkpoint_put,
    .audit_checkpoint_list = pg_audit_checkpoint_list,
    .audit_key_get = pg_audit_key_get,
    .audit_key_put = pg_audit_key_put,
    .audit_partitions = pg_audit_partitions,
    .rate_take = pg_rate_take,
    .lease_take = pg_lease_take,
    .obj_put = pg_obj_put,
    .obj_get = pg_obj_get,
    .obj_find = pg_obj_find,
    .obj_list = pg_obj_list,
    .obj_delete = pg_obj_delete,
    .obj_purge = pg_obj_purge,
};

/* Applies every migration newer than the database's schema_version, each in
 * its own transaction, under a session advisory lock (nodes starting at the
 * same time migrate once, in turn). */
static int migrate(struct pgc *c, char *err, size_t errlen)
{
    PGresult *r = NULL;
    int rc = -1;
    bool locked = false;
    if (q(c, NULL, NULL, "SELECT pg_advisory_lock($1::int, 0)", "d", LOCK_MIGRATE) != STORE_OK)
        goto out;
    locked = true;
    if (simple(c,
               "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
               "applied_at BIGINT NOT NULL)",
               NULL) != STORE_OK ||
        q(c, &r, NULL, "SELECT coalesce(max(version),0) FROM schema_version", "") != STORE_OK)
        goto out;
    int64_t have = gi(r, 0, 0);
    for (unsigned i = 0; i < store_pg_migrations_count; i++) {
        const struct store_migration *m = &store_pg_migrations[i];
        if (m->version <= have)
            continue;
        if (begin(c) != STORE_OK || simple(c, m->sql, NULL) != STORE_OK ||
            q(c, NULL, NULL, "INSERT INTO schema_version(version,name,applied_at) VALUES($1::int,$2::text,$3::bigint)",
              "dtl", m->version, m->name, time_now()) != STORE_OK ||
            commit(c) != STORE_OK) {
            snprintf(err, errlen, "migration %s failed: %s", m->name, PQerrorMessage(c->conn));
            goto out;
        }
    }
    rc = 0;
out:
    if (rc != 0 && !err[0])
        snprintf(err, errlen, "schema migration failed: %s", PQerrorMessage(c->conn));
    if (PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        PQclear(PQexec(c->conn, "ROLLBACK"));
    if (locked)
        q(c, NULL, NULL, "SELECT pg_advisory_unlock($1::int, 0)", "d", LOCK_MIGRATE);
    PQclear(r);
    return rc;
}

struct store *store_pg_open(const char *conninfo, char *err, size_t errlen)
{
    struct store *s = calloc(1, sizeof(*s));
    struct pg *g = calloc(1, sizeof(*g));
    unsigned char rnd[16];
    if (err && errlen)
        err[0] = 0;
    if (!s || !g || !(g->conninfo = strdup(conninfo))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    s->ops = &pg_ops;
    s->impl = g;
    if (group_commit_init(&g->gc, pg_gc_run, g) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        snprintf(err, errlen, "no randomness for the node id");
        goto fail;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(g->node + 2 * i, 3, "%02x", rnd[i]);
    struct pgc *c = &g->conns[0];
    if (connect_conn(g, c) != 0) {
        /* libpq's message names host and database, never the password */
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", c->conn ? PQerrorMessage(c->conn) : "out of memory");
        goto fail;
    }
    if (migrate(c, err, errlen) != 0)
        goto fail;
    return s;
fail:
    if (s && g)
        pg_close(s);
    else {
        free(g);
        free(s);
    }
    return NULL;
}
