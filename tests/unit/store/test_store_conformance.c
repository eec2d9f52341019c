/* store: the conformance suite every backend must pass, run through the
 * store_ops table only. The store is PKIAAS_TEST_STORE (a store URI, e.g. a
 * fresh PostgreSQL database: `make integration-pg` sets it), else a SQLite
 * file in a temporary directory.
 *
 * Covers the documented return codes (conflicts, reservations, quotas,
 * status transitions, optimistic versions, expiry), byte-exact blobs, LIKE
 * text that matches literally, keyset pagination, rate limiting, and the
 * invariants several writers must keep: distinct serials, strictly
 * increasing cRLNumbers, a linear audit chain. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit/audit.h"
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct store *S;
static char tmpdir[64];
static int64_t NOW;
static const unsigned char no_mkey[MASTER_KEY_LEN]; /* no audit key is ever sealed here */

#define OPS (S->ops)

static int setup(void **state)
{
    char err[512], uri[256];
    const char *env = getenv("PKIAAS_TEST_STORE");
    (void)state;
    if (env && *env) {
        snprintf(uri, sizeof uri, "%s", env);
    } else {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/pkiaas-conf-XXXXXX");
        if (!mkdtemp(tmpdir))
            return -1;
        snprintf(uri, sizeof uri, "sqlite:%s/store.db", tmpdir);
    }
    if (!(S = store_open(uri, err, sizeof err))) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    NOW = (int64_t)time(NULL);
    return 0;
}

static int teardown(void **state)
{
    char path[128];
    (void)state;
    store_close(S);
    if (tmpdir[0]) {
        const char *files[] = {"store.db", "store.db-wal", "store.db-shm"};
        for (size_t i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
            unlink(path);
        }
        rmdir(tmpdir);
    }
    return 0;
}

/* A partition with its subscription, owner and first token. */
static void make_partition(const char *id, long long certs, long long cas)
{
    struct partition_rec p;
    struct user_rec u;
    struct token_rec t;
    struct audit_rec a = {"system", "partition.bootstrap", "partition", NULL, NULL, NULL};
    char email[128], hash[65];
    memset(&p, 0, sizeof p);
    memset(&u, 0, sizeof u);
    memset(&t, 0, sizeof t);
    snprintf(p.id, sizeof p.id, "%s", id);
    snprintf(p.label, sizeof p.label, "Label %s", id);
    snprintf(p.region, sizeof p.region, "eu");
    snprintf(p.subscription_id, sizeof p.subscription_id, "sub-%s", id);
    p.certs_purchased = certs;
    p.cas_purchased = cas;
    p.created_at = NOW;
    snprintf(email, sizeof email, "owner@%s.example", id);
    u.email = email;
    u.password_hash = "x";
    u.roles = "Owners";
    u.created_at = NOW;
    snprintf(hash, sizeof hash, "bootstrap-token-of-%s", id);
    snprintf(t.token_hash, sizeof t.token_hash, "%s", hash);
    snprintf(t.name, sizeof t.name, "bootstrap");
    t.roles = "Owners";
    t.created_at = NOW;
    assert_int_equal(OPS->partition_bootstrap(S, &p, &u, &t, &a), STORE_OK);
    assert_int_equal(OPS->partition_bootstrap(S, &p, &u, &t, &a), STORE_ECONFLICT);
}

static int64_t make_ca(const char *partition, const char *id, const char *parent, int *rc_out)
{
    struct ca_rec c;
    struct audit_rec a = {"token:t", "ca.create", "ca", NULL, NULL, NULL};
    unsigned char key[] = {0x00, 0x01, 0xff, 0x00, 0x7f};
    memset(&c, 0, sizeof c);
    snprintf(c.partition_id, sizeof c.partition_id, "%s", partition);
    snprintf(c.id, sizeof c.id, "%s", id);
    snprintf(c.type, sizeof c.type, "%s", parent ? "subord" : "root");
    snprintf(c.status, sizeof c.status, "active");
    if (parent)
        snprintf(c.parent_id, sizeof c.parent_id, "%s", parent);
    snprintf(c.key_label, sizeof c.key_label, "ECDSAP256+SHA256");
    c.key_blob = key;
    c.key_blob_len = sizeof key;
    c.subject = "CN=test";
    c.path_len = -1;
    c.crl_enabled = true;
    c.created_at = NOW;
    *rc_out = OPS->ca_insert(S, &c, NULL, NOW, 86400, &a);
    return c.pk;
}

static struct cert_rec cert_of(const char *partition, int64_t ca_pk, const char *serial, const char *subject)
{
    static unsigned char der[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    struct cert_rec c;
    memset(&c, 0, sizeof c);
    snprintf(c.partition_id, sizeof c.partition_id, "%s", partition);
    c.issuer_ca_pk = ca_pk;
    snprintf(c.serial, sizeof c.serial, "%s", serial);
    c.subject = (char *)subject;
    c.not_before = NOW;
    c.not_after = NOW + 86400;
    c.profile_id = "privatessl-tls-server";
    c.crl_shard = -1;
    c.der = der;
    c.der_len = sizeof der;
    c.created_at = NOW;
    return c;
}

static void test_tenancy_and_tokens(void **state)
{
    (void)state;
    struct partition_rec p;
    struct token_rec t, *list = NULL;
    struct audit_rec a = {"token:t", "token.create", "token:ci", NULL, NULL, NULL};
    size_t n = 0;
    make_partition("conf-a", 5, 3);
    assert_int_equal(OPS->partition_get(S, "conf-a", &p), STORE_OK);
    assert_string_equal(p.label, "Label conf-a");
    assert_int_equal(OPS->partition_get(S, "nope", &p), STORE_ENOTFOUND);

    memset(&t, 0, sizeof t);
    snprintf(t.token_hash, sizeof t.token_hash, "%064d", 1);
    snprintf(t.partition_id, sizeof t.partition_id, "conf-a");
    snprintf(t.name, sizeof t.name, "ci");
    t.roles = "CA Auditors";
    t.created_at = NOW;
    assert_int_equal(OPS->token_insert(S, &t, &a), STORE_OK);
    snprintf(t.token_hash, sizeof t.token_hash, "%064d", 2);
    assert_int_equal(OPS->token_insert(S, &t, &a), STORE_ECONFLICT); /* live name taken */
    assert_int_equal(OPS->token_revoke(S, "conf-a", "ci", NOW, &a), STORE_OK);
    assert_int_equal(OPS->token_revoke(S, "conf-a", "ci", NOW, &a), STORE_ENOTFOUND);
    assert_int_equal(OPS->token_insert(S, &t, &a), STORE_OK); /* the name is free again */
    struct token_rec got;
    assert_int_equal(OPS->token_get(S, t.token_hash, &got), STORE_OK);
    assert_string_equal(got.roles, "CA Auditors");
    assert_int_equal(got.revoked_at, 0);
    token_rec_free(&got);
    assert_int_equal(OPS->token_list(S, "conf-a", &list, &n), STORE_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        token_rec_free(&list[i]);
    free(list);
}

static void test_cas(void **state)
{
    (void)state;
    int rc;
    char **ids = NULL;
    size_t nids = 0;
    struct audit_rec a = {"token:t", "ca.delete", "ca", NULL, NULL, NULL};
    struct ca_rec got;
    make_partition("conf-b", 10, 3);
    int64_t root = make_ca("conf-b", "root1", NULL, &rc);
    assert_int_equal(rc, STORE_OK);
    assert_true(root > 0);
    make_ca("conf-b", "root1", NULL, &rc);
    assert_int_equal(rc, STORE_ECONFLICT);
    make_ca("conf-b", "sub1", "root1", &rc);
    assert_int_equal(rc, STORE_OK);
    make_ca("conf-b", "sub2", "root1", &rc);
    assert_int_equal(rc, STORE_OK);
    make_ca("conf-b", "sub3", "root1", &rc);
    assert_int_equal(rc, STORE_EQUOTA); /* 3 CAs purchased */

    assert_int_equal(OPS->ca_get(S, "conf-b", "root1", &got), STORE_OK);
    assert_int_equal(got.key_blob_len, 5);
    assert_memory_equal(got.key_blob, "\x00\x01\xff\x00\x7f", 5); /* bytes survive, zeros included */
    assert_int_equal(got.path_len, -1);
    assert_true(got.crl_enabled);
    ca_rec_free(&got);
    assert_int_equal(OPS->ca_get(S, "conf-b", "nope", &got), STORE_ENOTFOUND);
    assert_int_equal(OPS->ca_get(S, "conf-a", "root1", &got), STORE_ENOTFOUND); /* partitions are separate */

    assert_int_equal(OPS->ca_delete(S, "conf-b", "root1", NOW, &ids, &nids, &a), STORE_OK);
    assert_int_equal(nids, 3); /* the root and both subordinates */
    store_free_ids(ids, nids);
    assert_int_equal(OPS->ca_delete(S, "conf-b", "root1", NOW, &ids, &nids, &a), STORE_ENOTFOUND);
    make_ca("conf-b", "root1", NULL, &rc);
    assert_int_equal(rc, STORE_ERESERVED); /* deleted less than reserve_s ago */
    assert_int_equal(OPS->ca_get(S, "conf-b", "root1", &got), STORE_OK);
    assert_string_equal(got.status, "deleted");
    ca_rec_free(&got);
}

static void test_certificates(void **state)
{
    (void)state;
    int rc;
    struct audit_rec a = {"token:t", "cert.issue", "cert", NULL, NULL, NULL};
    make_partition("conf-c", 3, 5);
    int64_t ca = make_ca("conf-c", "issuing", NULL, &rc);
    assert_int_equal(rc, STORE_OK);
    const char *subjects[] = {"CN=100% sure", "CN=under_score", "CN=plain", "CN=extra"};
    const char *serials[] = {"0a", "0b", "0c", "0d"};
    const char *requesters[] = {"mdmws:cfg/u1", "mdmws-scep:cfg/x", "mdmws:cfgX/u1", NULL};
    for (int i = 0; i < 4; i++) {
        struct cert_rec c = cert_of("conf-c", ca, serials[i], subjects[i]);
        c.not_after = NOW + 1000 + i;
        c.requester = (char *)requesters[i];
        assert_int_equal(OPS->cert_insert(S, &c, true, &a), i < 3 ? STORE_OK : STORE_EQUOTA);
        if (i < 3)
            assert_true(c.pk > 0);
    }
    struct cert_rec dup = cert_of("conf-c", ca, "0a", "CN=dup");
    assert_int_equal(OPS->cert_insert(S, &dup, false, &a), STORE_ECONFLICT); /* serial unique per CA */
    struct inventory inv;
    assert_int_equal(OPS->inventory(S, "conf-c", &inv), STORE_OK);
    assert_int_equal(inv.certs_issued, 3);

    /* LIKE text matches literally: "%" and "_" are not wildcards */
    struct cert_query qy = {.text = "100%", .include_ca = true};
    struct cert_list l;
    assert_int_equal(OPS->cert_list(S, "conf-c", ca, &qy, &l), STORE_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].serial, "0a");
    cert_list_free(&l);
    qy.text = "a_n"; /* would match "plain" if _ were a wildcard */
    assert_int_equal(OPS->cert_list(S, "conf-c", ca, &qy, &l), STORE_OK);
    assert_int_equal(l.n, 0);
    cert_list_free(&l);
    /* keyset pagination in (not_after, serial) order */
    struct cert_query pg = {.include_ca = true, .limit = 2};
    assert_int_equal(OPS->cert_list(S, "conf-c", ca, &pg, &l), STORE_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[1].serial, "0b");
    pg.cursor_not_after = l.items[1].not_after;
    pg.cursor_serial = "0b";
    struct cert_list l2;
    assert_int_equal(OPS->cert_list(S, "conf-c", ca, &pg, &l2), STORE_OK);
    assert_int_equal(l2.n, 1);
    assert_string_equal(l2.items[0].serial, "0c");
    cert_list_free(&l);
    cert_list_free(&l2);
    /* requester prefixes: either one, byte for byte, no wildcards */
    struct cert_query rq = {.include_ca = true, .requester_prefix = {"mdmws:cfg/", "mdmws-scep:cfg/"}};
    assert_int_equal(OPS->cert_list(S, "conf-c", ca, &rq, &l), STORE_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].serial, "0a");
    assert_string_equal(l.items[1].serial, "0b");
    cert_list_free(&l);
    rq.requester_prefix[0] = NULL;
    rq.requester_prefix[1] = "mdmws:cfg";
    assert_int_equal(OPS->cert_list(S, "conf-c", ca, &rq, &l), STORE_OK);
    assert_int_equal(l.n, 2); /* 0a and 0c (cfgX) */
    assert_string_equal(l.items[1].serial, "0c");
    cert_list_free(&l);
    rq.requester_prefix[1] = "mdm%";
    assert_int_equal(OPS->cert_list(S, "conf-c", ca, &rq, &l), STORE_OK);
    assert_int_equal(l.n, 0);
    cert_list_free(&l);

    /* status transitions; revoking frees purchased capacity */
    assert_int_equal(OPS->cert_set_status(S, "conf-c", ca, "0a", "suspended", 6, NOW, 0, "hold", &a), STORE_OK);
    assert_int_equal(OPS->cert_set_status(S, "conf-c", ca, "0a", "issued", -1, NOW, 0, NULL, &a), STORE_OK);
    assert_int_equal(OPS->cert_set_status(S, "conf-c", ca, "0a", "revoked", 1, NOW, NOW - 10, "gone", &a),
                     STORE_OK);
    assert_int_equal(OPS->cert_set_status(S, "conf-c", ca, "0a", "issued", -1, NOW, 0, NULL, &a), STORE_ESTATE);
    assert_int_equal(OPS->cert_set_status(S, "conf-c", ca, "ff", "revoked", 1, NOW, 0, NULL, &a), STORE_ENOTFOUND);
    struct cert_rec got;
    assert_int_equal(OPS->cert_get(S, "conf-c", ca, "0a", &got), STORE_OK);
    assert_string_equal(got.status, "revoked");
    assert_int_equal(got.revocation_reason, 1);
    assert_int_equal(got.invalidity_date, NOW - 10);
    assert_string_equal(got.status_comment, "gone");
    assert_int_equal(got.der_len, 5);
    cert_rec_free(&got);
    assert_int_equal(OPS->inventory(S, "conf-c", &inv), STORE_OK);
    assert_int_equal(inv.certs_issued, 2);

    const char *batch[] = {"0a", "0b", "zz"};
    int results[3];
    assert_int_equal(OPS->cert_revoke_batch(S, "conf-c", ca, "issuing", batch, 3, 4, NOW, 0, &a, results), STORE_OK);
    assert_int_equal(results[0], 1);
    assert_int_equal(results[1], 0);
    assert_int_equal(results[2], 2);
}

static void test_crl_numbers(void **state)
{
    (void)state;
    int rc;
    make_partition("conf-d", 10, 5);
    int64_t ca = make_ca("conf-d", "crlca", NULL, &rc);
    assert_int_equal(rc, STORE_OK);
    int64_t prev = 0, n;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(OPS->crl_next_number(S, "conf-d", ca, &n), STORE_OK);
        assert_true(n > prev);
        prev = n;
        unsigned char der[] = {0x30, 0x00, (unsigned char)i};
        struct crl_rec c = {-1, n, NOW, NOW + 3600, 0, der, sizeof der};
        assert_int_equal(OPS->crl_save(S, "conf-d", ca, &c), STORE_OK);
    }
    struct crl_rec latest;
    assert_int_equal(OPS->crl_latest(S, "conf-d", ca, -1, &latest), STORE_OK);
    assert_int_equal(latest.number, prev);
    assert_int_equal(latest.der_len, 3);
    assert_int_equal(latest.der[2], 4);
    crl_rec_free(&latest);
    assert_int_equal(OPS->crl_latest(S, "conf-d", ca, 3, &latest), STORE_ENOTFOUND);
    struct crl_rec *items = NULL;
    size_t cnt = 0;
    /* the newest number alone, without the CRL itself */
    assert_int_equal(OPS->crl_list(S, "conf-d", ca, -1, 1, &items, &cnt), STORE_OK);
    assert_int_equal(cnt, 1);
    assert_int_equal(items[0].number, prev);
    assert_null(items[0].der);
    crl_rec_free(&items[0]);
    free(items);
    items = NULL;
    cnt = 0;
    assert_int_equal(OPS->crl_list(S, "conf-d", ca, -2, 3, &items, &cnt), STORE_OK);
    assert_int_equal(cnt, 3);
    assert_int_equal(items[0].number, prev);
    for (size_t i = 0; i < cnt; i++)
        crl_rec_free(&items[i]);
    free(items);
}

static void test_objects(void **state)
{
    (void)state;
    struct obj_rec o, got;
    unsigned char blob[] = {0x00, 0x00, 0x01};
    memset(&o, 0, sizeof o);
    snprintf(o.partition_id, sizeof o.partition_id, "conf-a");
    snprintf(o.kind, sizeof o.kind, "test");
    snprintf(o.id, sizeof o.id, "b");
    o.lookup = "key-b";
    o.json = "{\"x\":1}";
    o.blob = blob;
    o.blob_len = sizeof blob;
    assert_int_equal(OPS->obj_put(S, &o, OBJ_CREATE, NULL), STORE_OK);
    assert_int_equal(o.version, 1);
    assert_int_equal(OPS->obj_put(S, &o, OBJ_CREATE, NULL), STORE_ECONFLICT);
    struct obj_rec o2 = o;
    snprintf(o2.id, sizeof o2.id, "a");
    assert_int_equal(OPS->obj_put(S, &o2, OBJ_CREATE, NULL), STORE_ECONFLICT); /* lookup taken */
    o2.lookup = NULL;
    assert_int_equal(OPS->obj_put(S, &o2, OBJ_CREATE, NULL), STORE_OK);

    assert_int_equal(OPS->obj_find(S, "conf-a", "test", "key-b", &got), STORE_OK);
    assert_string_equal(got.id, "b");
    assert_int_equal(got.blob_len, 3);
    assert_memory_equal(got.blob, blob, 3);
    obj_rec_free(&got);

    /* optimistic update */
    o.json = "{\"x\":2}";
    assert_int_equal(OPS->obj_put(S, &o, OBJ_UPDATE, NULL), STORE_OK);
    assert_int_equal(o.version, 2);
    o.version = 1;
    assert_int_equal(OPS->obj_put(S, &o, OBJ_UPDATE, NULL), STORE_ECONFLICT);
    snprintf(o.id, sizeof o.id, "gone");
    assert_int_equal(OPS->obj_put(S, &o, OBJ_UPDATE, NULL), STORE_ENOTFOUND);

    struct obj_rec *items = NULL;
    size_t n = 0;
    assert_int_equal(OPS->obj_list(S, "conf-a", "test", NULL, NULL, 0, &items, &n), STORE_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].id, "a");
    obj_list_free(items, n);
    assert_int_equal(OPS->obj_list(S, "conf-a", "test", NULL, "a", 0, &items, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].id, "b");
    obj_list_free(items, n);

    /* expired rows are invisible and give way to a new one */
    struct obj_rec e;
    memset(&e, 0, sizeof e);
    snprintf(e.partition_id, sizeof e.partition_id, "conf-a");
    snprintf(e.kind, sizeof e.kind, "nonce");
    snprintf(e.id, sizeof e.id, "n1");
    e.expires_at = NOW - 5;
    assert_int_equal(OPS->obj_put(S, &e, OBJ_CREATE, NULL), STORE_OK);
    assert_int_equal(OPS->obj_get(S, "conf-a", "nonce", "n1", &got), STORE_ENOTFOUND);
    e.expires_at = NOW + 600;
    assert_int_equal(OPS->obj_put(S, &e, OBJ_CREATE, NULL), STORE_OK);
    /* single-use take */
    assert_int_equal(OPS->obj_delete(S, "conf-a", "nonce", "n1", NULL), STORE_OK);
    assert_int_equal(OPS->obj_delete(S, "conf-a", "nonce", "n1", NULL), STORE_ENOTFOUND);
    assert_int_equal(OPS->obj_purge(S, "nonce", NOW), STORE_OK);
}

static void test_rate_and_lease(void **state)
{
    (void)state;
    int64_t retry = 0, t = (int64_t)NOW * 1000;
    bool first = false;
    char key[64];
    snprintf(key, sizeof key, "conf:%lld", (long long)t);
    assert_int_equal(OPS->rate_take(S, key, 2, 10, t, &retry, &first), STORE_OK);
    assert_int_equal(OPS->rate_take(S, key, 2, 10, t, &retry, &first), STORE_OK);
    assert_int_equal(OPS->rate_take(S, key, 2, 10, t, &retry, &first), STORE_ELIMIT);
    assert_true(first);
    assert_true(retry > 0 && retry <= 5000);
    assert_int_equal(OPS->rate_take(S, key, 2, 10, t, &retry, &first), STORE_ELIMIT);
    assert_false(first);
    assert_int_equal(OPS->rate_take(S, key, 2, 10, t + 5000, &retry, &first), STORE_OK); /* refilled */
    assert_int_equal(OPS->rate_take(S, key, 0, 10, t, &retry, &first), STORE_OK);     /* no limit */
    assert_int_equal(OPS->lease_take(S, "conformance", 30), STORE_OK);
    assert_int_equal(OPS->lease_take(S, "conformance", 30), STORE_OK); /* renewal */
}

/* More keys busy at once than an in-memory limiter holds (the SQLite
 * backend keeps 4096 buckets): a new key is still limited, not let through
 * unlimited because no bucket is free. */
static void test_rate_many_keys(void **state)
{
    (void)state;
    int64_t retry = 0, t = (int64_t)NOW * 1000 + 7;
    bool first = false;
    char key[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "flood:%d", i);
        assert_int_equal(OPS->rate_take(S, key, 1, 60, t, &retry, &first), STORE_OK);
    }
    snprintf(key, sizeof key, "late:%lld", (long long)t);
    assert_int_equal(OPS->rate_take(S, key, 1, 60, t, &retry, &first), STORE_OK);
    assert_int_equal(OPS->rate_take(S, key, 1, 60, t, &retry, &first), STORE_ELIMIT);
    assert_true(first);
}

static void put_user(const char *email, const char *roles, const char *status)
{
    struct user_rec u;
    struct audit_rec a = {"token:t", "user.invite", "user", NULL, NULL, NULL};
    memset(&u, 0, sizeof u);
    snprintf(u.partition_id, sizeof u.partition_id, "conf-a");
    u.email = (char *)email;
    u.roles = (char *)roles;
    snprintf(u.status, sizeof u.status, "%s", status);
    u.created_at = NOW;
    assert_int_equal(OPS->user_put(S, &u, true, &a), STORE_OK);
}

static int set_roles(const char *email, const char *roles)
{
    struct user_rec u;
    struct audit_rec a = {"token:t", "user.roles", "user", NULL, NULL, NULL};
    assert_int_equal(OPS->user_get(S, "conf-a", email, &u), STORE_OK);
    free(u.roles);
    assert_non_null(u.roles = strdup(roles));
    int rc = OPS->user_put(S, &u, false, &a);
    user_rec_free(&u);
    return rc;
}

/* The partition keeps an Owner who is not merely invited: the store refuses
 * the change that would take the role from the last one. */
static void test_last_owner(void **state)
{
    (void)state;
    struct audit_rec a = {"token:t", "user.delete", "user", NULL, NULL, NULL};
    put_user("o1@example.com", "Owners", "active");
    put_user("o2@example.com", "CA Auditors, Owners", "enrolling");
    put_user("o3@example.com", "Owners", "invited");
    assert_int_equal(set_roles("owner@conf-a.example", "CA Auditors"), STORE_OK); /* the bootstrap Owner */
    assert_int_equal(set_roles("o1@example.com", "CA Auditors"), STORE_OK);
    /* o2 is the last Owner who accepted (o3 is only invited) */
    assert_int_equal(set_roles("o2@example.com", "CA Auditors"), STORE_ESTATE);
    assert_int_equal(OPS->user_delete(S, "conf-a", "o2@example.com", &a), STORE_ESTATE);
    assert_int_equal(set_roles("o2@example.com", "Owners,Certificate Administrators"), STORE_OK); /* still one */
    assert_int_equal(OPS->user_delete(S, "conf-a", "o3@example.com", &a), STORE_OK);
    assert_int_equal(set_roles("o1@example.com", "Owners"), STORE_OK);
    assert_int_equal(OPS->user_delete(S, "conf-a", "o2@example.com", &a), STORE_OK);
    assert_int_equal(OPS->user_delete(S, "conf-a", "o1@example.com", &a), STORE_ESTATE);
    struct user_rec u;
    assert_int_equal(OPS->user_get(S, "conf-a", "o1@example.com", &u), STORE_OK);
    assert_true(store_roles_have_owner(u.roles));
    user_rec_free(&u);
    assert_int_equal(set_roles("owner@conf-a.example", "Owners"), STORE_OK);
    assert_false(store_roles_have_owner("Ownersx, CA Auditors"));
    assert_true(store_roles_have_owner(" CA Auditors ,  Owners "));
}

static void test_users_sessions(void **state)
{
    (void)state;
    struct user_rec u, got;
    struct audit_rec a = {"token:t", "user.invite", "user", NULL, NULL, NULL};
    unsigned char totp[] = {1, 0, 2};
    memset(&u, 0, sizeof u);
    snprintf(u.partition_id, sizeof u.partition_id, "conf-a");
    u.email = "alice@example.com";
    u.roles = "CA Auditors";
    snprintf(u.status, sizeof u.status, "invited");
    u.created_at = NOW;
    assert_int_equal(OPS->user_put(S, &u, true, &a), STORE_OK);
    assert_int_equal(OPS->user_put(S, &u, true, &a), STORE_ECONFLICT);
    u.totp_blob = totp;
    u.totp_len = sizeof totp;
    u.failed_logins = 2;
    snprintf(u.status, sizeof u.status, "active");
    assert_int_equal(OPS->user_put(S, &u, false, &a), STORE_OK);
    assert_int_equal(OPS->user_get(S, "conf-a", "alice@example.com", &got), STORE_OK);
    assert_string_equal(got.status, "active");
    assert_int_equal(got.failed_logins, 2);
    assert_int_equal(got.totp_len, 3);
    assert_memory_equal(got.totp_blob, totp, 3);
    /* an update names the version it read: a second writer that read the
     * same version (two logins with one TOTP code, a login and a role
     * change) changes nothing */
    struct user_rec w1, w2;
    assert_int_equal(OPS->user_get(S, "conf-a", "alice@example.com", &w1), STORE_OK);
    assert_int_equal(OPS->user_get(S, "conf-a", "alice@example.com", &w2), STORE_OK);
    assert_int_equal(w1.version, got.version);
    w1.totp_last_step = 1000;
    assert_int_equal(OPS->user_put(S, &w1, false, &a), STORE_OK);
    w2.totp_last_step = 1000;
    assert_int_equal(OPS->user_put(S, &w2, false, &a), STORE_ECONFLICT);
    user_rec_free(&w2);
    assert_int_equal(OPS->user_get(S, "conf-a", "alice@example.com", &w2), STORE_OK);
    assert_true(w2.version > w1.version);
    assert_int_equal(w2.totp_last_step, 1000);
    user_rec_free(&w1);
    user_rec_free(&w2);
    struct user_rec gone = got;
    gone.email = "nobody@example.com";
    assert_int_equal(OPS->user_put(S, &gone, false, &a), STORE_ENOTFOUND);
    user_rec_free(&got);

    char part[STORE_ID_MAX + 1], email[256];
    assert_int_equal(OPS->invite_put(S, "inv1", "conf-a", "alice@example.com", NOW + 60), STORE_OK);
    assert_int_equal(OPS->invite_get(S, "inv1", NOW, part, sizeof part, email, sizeof email), STORE_OK);
    assert_string_equal(email, "alice@example.com");
    assert_int_equal(OPS->invite_use(S, "inv1", NOW), STORE_OK);
    assert_int_equal(OPS->invite_use(S, "inv1", NOW), STORE_ENOTFOUND);

    struct session_rec sr, sg;
    memset(&sr, 0, sizeof sr);
    snprintf(sr.partition_id, sizeof sr.partition_id, "conf-a");
    snprintf(sr.email, sizeof sr.email, "alice@example.com");
    snprintf(sr.csrf, sizeof sr.csrf, "csrf");
    sr.created_at = NOW;
    sr.expires_at = NOW + 60;
    assert_int_equal(OPS->session_put(S, "sess1", &sr), STORE_OK);
    assert_int_equal(OPS->user_delete(S, "conf-a", "alice@example.com", &a), STORE_OK);
    assert_int_equal(OPS->session_get(S, "sess1", &sg), STORE_OK);
    assert_true(sg.revoked_at > 0); /* sessions die with the user */
    assert_int_equal(OPS->user_delete(S, "conf-a", "alice@example.com", &a), STORE_ENOTFOUND);
}

/* ---- several writers at once ------------------------------------------------ */

#define THREADS 8
#define PER_THREAD 100

struct worker {
    int64_t ca;
    int index;
    int failures;
    int64_t numbers[PER_THREAD];
};

static void *writer(void *arg)
{
    struct worker *w = arg;
    struct audit_rec a = {"token:t", "cert.issue", "cert", NULL, NULL, NULL};
    for (int i = 0; i < PER_THREAD; i++) {
        char serial[32];
        snprintf(serial, sizeof serial, "%02x%04x", w->index, i);
        struct cert_rec c = cert_of("conf-e", w->ca, serial, "CN=concurrent");
        if (OPS->cert_insert(S, &c, true, &a) != STORE_OK)
            w->failures++;
        if (OPS->crl_next_number(S, "conf-e", w->ca, &w->numbers[i]) != STORE_OK)
            w->failures++;
    }
    return NULL;
}

static int cmp64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static void test_concurrent_writers(void **state)
{
    (void)state;
    int rc;
    make_partition("conf-e", THREADS * PER_THREAD, 5);
    int64_t ca = make_ca("conf-e", "busy", NULL, &rc);
    assert_int_equal(rc, STORE_OK);
    struct worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].ca = ca;
        w[i].index = i;
        assert_int_equal(pthread_create(&th[i], NULL, writer, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    /* every cRLNumber handed out once */
    int64_t *all = malloc(sizeof(int64_t) * THREADS * PER_THREAD);
    assert_non_null(all);
    for (int i = 0; i < THREADS; i++)
        memcpy(all + i * PER_THREAD, w[i].numbers, sizeof w[i].numbers);
    qsort(all, THREADS * PER_THREAD, sizeof *all, cmp64);
    for (int i = 1; i < THREADS * PER_THREAD; i++)
        assert_true(all[i] > all[i - 1]);
    free(all);
    /* the purchase is exhausted exactly; the audit chain is one line */
    struct inventory inv;
    assert_int_equal(OPS->inventory(S, "conf-e", &inv), STORE_OK);
    assert_int_equal(inv.certs_issued, THREADS * PER_THREAD);
    struct cert_rec c = cert_of("conf-e", ca, "ffff", "CN=one too many");
    struct audit_rec a = {"token:t", "cert.issue", "cert", NULL, NULL, NULL};
    assert_int_equal(OPS->cert_insert(S, &c, true, &a), STORE_EQUOTA);
    struct audit_verify_result vr;
    assert_int_equal(audit_verify(S, no_mkey, "conf-e", &vr), 0);
    assert_true(vr.ok);
    assert_int_equal(vr.records, 1 + 1 + THREADS * PER_THREAD); /* bootstrap, CA, certificates */
}

/* A batch that mixes good and failing inserts (a serial taken twice): every
 * job gets its own answer, the good ones are committed with their audit
 * records and the failing ones leave nothing behind. */
struct mixed {
    int64_t ca;
    int index;
    int ok, dup_refused, wrong;
};

static void *mixed_writer(void *arg)
{
    struct mixed *m = arg;
    struct audit_rec a = {"token:t", "cert.issue", "cert", NULL, NULL, NULL};
    for (int i = 0; i < 60; i++) {
        char serial[32];
        bool dup = i % 3 == 0; /* "0dup" exists already */
        snprintf(serial, sizeof serial, dup ? "0dup" : "%02x%04x", m->index, i);
        struct cert_rec c = cert_of("conf-m", m->ca, serial, "CN=mixed");
        int rc = OPS->cert_insert(S, &c, true, &a);
        if (rc == STORE_OK && !dup)
            m->ok++;
        else if (rc != STORE_OK && dup)
            m->dup_refused++;
        else
            m->wrong++;
    }
    return NULL;
}

static void test_concurrent_mixed_batches(void **state)
{
    (void)state;
    int rc;
    make_partition("conf-m", 10000, 5);
    int64_t ca = make_ca("conf-m", "mixed", NULL, &rc);
    assert_int_equal(rc, STORE_OK);
    struct cert_rec first = cert_of("conf-m", ca, "0dup", "CN=first");
    struct audit_rec a = {"token:t", "cert.issue", "cert", NULL, NULL, NULL};
    assert_int_equal(OPS->cert_insert(S, &first, true, &a), STORE_OK);
    struct mixed m[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&m[i], 0, sizeof m[i]);
        m[i].ca = ca;
        m[i].index = i;
        assert_int_equal(pthread_create(&th[i], NULL, mixed_writer, &m[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(m[i].wrong, 0);
        assert_int_equal(m[i].ok, 40);
        assert_int_equal(m[i].dup_refused, 20);
    }
    struct inventory inv;
    assert_int_equal(OPS->inventory(S, "conf-m", &inv), STORE_OK);
    assert_int_equal(inv.certs_issued, 1 + THREADS * 40); /* refused jobs took no quota */
    struct audit_verify_result vr;
    assert_int_equal(audit_verify(S, no_mkey, "conf-m", &vr), 0);
    assert_true(vr.ok);
    assert_int_equal(vr.records, 1 + 1 + 1 + THREADS * 40); /* bootstrap, CA, first, the good ones */
}

/* A certificate signed by a CA that was deleted meanwhile is not stored:
 * the issuing CA's state is checked inside the insert's transaction, and
 * the refused job takes no quota and leaves no audit record. */
static void test_cert_of_deleted_ca(void **state)
{
    (void)state;
    int rc;
    make_partition("conf-gone", 100, 5);
    int64_t ca = make_ca("conf-gone", "doomed", NULL, &rc);
    assert_int_equal(rc, STORE_OK);
    struct audit_rec a = {"token:t", "cert.issue", "cert", NULL, NULL, NULL};
    struct cert_rec before = cert_of("conf-gone", ca, "01", "CN=before");
    assert_int_equal(OPS->cert_insert(S, &before, true, &a), STORE_OK);
    char **ids = NULL;
    size_t nids = 0;
    struct audit_rec del = {"token:t", "ca.delete", "ca", NULL, NULL, NULL};
    assert_int_equal(OPS->ca_delete(S, "conf-gone", "doomed", NOW, &ids, &nids, &del), STORE_OK);
    store_free_ids(ids, nids);
    struct cert_rec after = cert_of("conf-gone", ca, "02", "CN=after");
    assert_int_equal(OPS->cert_insert(S, &after, true, &a), STORE_ESTATE);
    struct cert_rec svc = cert_of("conf-gone", ca, "03", "CN=service");
    assert_int_equal(OPS->cert_insert(S, &svc, false, &a), STORE_ESTATE);
    struct cert_rec got;
    assert_int_equal(OPS->cert_get(S, "conf-gone", ca, "02", &got), STORE_ENOTFOUND);
    struct inventory inv;
    assert_int_equal(OPS->inventory(S, "conf-gone", &inv), STORE_OK);
    assert_int_equal(inv.certs_issued, 1);
    struct audit_verify_result vr;
    assert_int_equal(audit_verify(S, no_mkey, "conf-gone", &vr), 0);
    assert_true(vr.ok);
    assert_int_equal(vr.records, 1 + 1 + 1 + 1); /* bootstrap, CA, the first certificate, the deletion */
}

/* Assigning a custom profile and deleting it, at once: afterwards either
 * the profile is gone and no CA has it, or it is assigned and still exists.
 * Sequentially, an assignment after the deletion is refused. */
struct prace {
    int64_t ca;
    char id[32];
    int assign_rc, delete_rc;
    pthread_barrier_t *go;
};

static void *prace_assign(void *arg)
{
    struct prace *r = arg;
    struct audit_rec a = {"token:t", "ca.profile.add", "p", NULL, NULL, NULL};
    pthread_barrier_wait(r->go);
    r->assign_rc = OPS->ca_profile_set(S, "conf-prof", r->ca, r->id, true, true, &a);
    return NULL;
}

static void *prace_delete(void *arg)
{
    struct prace *r = arg;
    struct audit_rec a = {"token:t", "profile.delete", "p", NULL, NULL, NULL};
    pthread_barrier_wait(r->go);
    r->delete_rc = OPS->profile_delete(S, "conf-prof", r->id, &a);
    return NULL;
}

static void test_profile_assign_vs_delete(void **state)
{
    (void)state;
    int rc;
    make_partition("conf-prof", 100, 5);
    int64_t ca = make_ca("conf-prof", "pca", NULL, &rc);
    assert_int_equal(rc, STORE_OK);
    struct audit_rec a = {"token:t", "profile.x", "p", NULL, NULL, NULL};
    assert_int_equal(OPS->profile_put(S, "conf-prof", "gone-before", "privatessl", "{}", true, &a), STORE_OK);
    assert_int_equal(OPS->profile_delete(S, "conf-prof", "gone-before", &a), STORE_OK);
    assert_int_equal(OPS->ca_profile_set(S, "conf-prof", ca, "gone-before", true, true, &a), STORE_ENOTFOUND);
    /* a system profile has no row: not checked */
    assert_int_equal(OPS->ca_profile_set(S, "conf-prof", ca, "privatessl-tls-server", true, false, &a), STORE_OK);
    pthread_barrier_t go;
    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    int both_ok = 0;
    for (int i = 0; i < 40; i++) {
        struct prace r;
        memset(&r, 0, sizeof r);
        r.ca = ca;
        r.go = &go;
        snprintf(r.id, sizeof r.id, "race-%d", i);
        assert_int_equal(OPS->profile_put(S, "conf-prof", r.id, "privatessl", "{}", true, &a), STORE_OK);
        pthread_t t1, t2;
        assert_int_equal(pthread_create(&t1, NULL, prace_assign, &r), 0);
        assert_int_equal(pthread_create(&t2, NULL, prace_delete, &r), 0);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        char *json = NULL;
        bool exists = OPS->profile_get(S, "conf-prof", r.id, &json) == STORE_OK;
        free(json);
        char **ids = NULL;
        size_t n = 0;
        assert_int_equal(OPS->ca_profile_list(S, "conf-prof", ca, &ids, &n), STORE_OK);
        bool assigned = false;
        for (size_t k = 0; k < n; k++)
            assigned |= strcmp(ids[k], r.id) == 0;
        store_free_ids(ids, n);
        if (r.assign_rc == STORE_OK && r.delete_rc == STORE_OK)
            both_ok++;
        /* assigned implies it exists */
        assert_true(!assigned || exists);
        assert_true((r.assign_rc == STORE_OK && r.delete_rc == STORE_ECONFLICT && assigned && exists) ||
                    (r.assign_rc == STORE_ENOTFOUND && r.delete_rc == STORE_OK && !assigned && !exists));
    }
    assert_int_equal(both_ok, 0);
    pthread_barrier_destroy(&go);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenancy_and_tokens),
        cmocka_unit_test(test_cas),
        cmocka_unit_test(test_certificates),
        cmocka_unit_test(test_rate_many_keys),
        cmocka_unit_test(test_crl_numbers),
        cmocka_unit_test(test_objects),
        cmocka_unit_test(test_rate_and_lease),
        cmocka_unit_test(test_users_sessions),
        cmocka_unit_test(test_last_owner),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_concurrent_mixed_batches),
        cmocka_unit_test(test_cert_of_deleted_ca),
        cmocka_unit_test(test_profile_assign_vs_delete),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
