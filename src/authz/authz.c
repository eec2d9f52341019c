#include "authz/authz.h"

#include "crypto/secret.h"
#include "util/timeutil.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_MAX 256
#define CACHE_SLOTS 1024

struct tc_slot {
    char hash[65];
    struct principal p;
    int64_t expires;
    int64_t epoch; /* the partition's token counter when cached (shared stores) */
};

struct token_cache {
    pthread_mutex_t mu;
    struct tc_slot slots[CACHE_SLOTS];
    /* moves with every clear: a token read from the store before a clear
     * (a revocation) is not cached after it */
    uint64_t gen;
};

struct token_cache *token_cache_new(void)
{
    struct token_cache *c = calloc(1, sizeof(*c));
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

void token_cache_free(struct token_cache *c)
{
    if (c) {
        pthread_mutex_destroy(&c->mu);
        OPENSSL_cleanse(c, sizeof(*c));
        free(c);
    }
}

void token_cache_clear(struct token_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    OPENSSL_cleanse(c->slots, sizeof c->slots);
    c->gen++;
    pthread_mutex_unlock(&c->mu);
}

static struct tc_slot *tc_slot(struct token_cache *c, const char *hash)
{
    unsigned v = 0;
    for (int i = 0; i < 8; i++)
        v = v * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
    return &c->slots[v % CACHE_SLOTS];
}

int authz_bearer(struct store *st, struct token_cache *cache, const char *authorization, const char *partition,
                 struct principal *out, struct err *e)
{
    struct token_rec t;
    char *h = NULL;
    int rc = -1;
    memset(&t, 0, sizeof t);
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) {
        err_set(e, 401, "unauthorized", "", "missing bearer token (Authorization: Bearer <API token>)");
        return -1;
    }
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    size_t n = strnlen(tok, TOKEN_MAX + 1);
    if (n == 0 || n > TOKEN_MAX) {
        err_set(e, 401, "unauthorized", "", "invalid API token");
        return -1;
    }
    if (!(h = secret_token_hash(tok))) {
        err_set(e, 500, "internal", "", "hashing failed");
        return -1;
    }
    int64_t now = time_now();
    uint64_t gen = 0;
    /* Several nodes: a token revoked on another node moves the partition's
     * token counter, and a cached entry from before it is not used. Read
     * before the store, so an entry cached now is never newer than it. */
    int64_t epoch = cache && st->ops->shared ? store_epoch(st, partition, AUTHZ_TOKEN_EPOCH) : 0;
    if (cache) {
        pthread_mutex_lock(&cache->mu);
        gen = cache->gen;
        struct tc_slot *sl = tc_slot(cache, h);
        int hit = sl->expires > now && strcmp(sl->hash, h) == 0 && epoch >= 0 && sl->epoch == epoch;
        if (hit)
            *out = sl->p;
        pthread_mutex_unlock(&cache->mu);
        if (hit) {
            free(h);
            if (strcmp(out->partition, partition) != 0) {
                err_set(e, 404, "not_found", "", "no partition '%.64s' for this token", partition);
                return -1;
            }
            return 0;
        }
    }
    int s = st->ops->token_get(st, h, &t);
    if (s == STORE_ENOTFOUND || (s == STORE_OK && t.revoked_at)) {
        err_set(e, 401, "unauthorized", "", "invalid or revoked API token");
        goto out;
    }
    if (s != STORE_OK) {
        err_set(e, 503, "unavailable", "", "store unavailable");
        goto out;
    }
    if (strcmp(t.partition_id, partition) != 0) {
        err_set(e, 404, "not_found", "", "no partition '%.64s' for this token", partition);
        goto out;
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->partition, sizeof out->partition, "%s", t.partition_id);
    snprintf(out->actor, sizeof out->actor, "token:%s", t.name);
    snprintf(out->roles, sizeof out->roles, "%s", t.roles ? t.roles : "");
    if (cache) {
        pthread_mutex_lock(&cache->mu);
        if (cache->gen == gen) {
            struct tc_slot *sl = tc_slot(cache, h);
            snprintf(sl->hash, sizeof sl->hash, "%s", h);
            sl->p = *out;
            sl->expires = now + AUTHZ_TOKEN_TTL_S;
            sl->epoch = epoch;
        }
        pthread_mutex_unlock(&cache->mu);
    }
    rc = 0;
out:
    token_rec_free(&t);
    free(h);
    return rc;
}

enum { R_OWN = 1, R_CAA = 2, R_CRA = 4, R_CAU = 8, R_PO = 16, R_PA = 32, R_ALL = 63 };

static const char *const role_names[AUTHZ_ROLES] = {
    ROLE_OWNERS, ROLE_CA_ADMINS, ROLE_CERT_ADMINS, ROLE_CA_AUDITORS, ROLE_PROTO_OPERATORS, ROLE_PROTO_AUDITORS,
};

/* The permission matrix: exactly the guide's six role tables (where its
 * prose and tables disagree, the tables rule), plus the operations the
 * guide implies without a table row (marked "pkiaas:"). */
static const struct authz_op_info matrix[OP__COUNT] = {
    {OP_SUBSCRIPTION_VIEW, "subscription.view", "Subscription management", "Checking your subscriptions", R_OWN},
    {OP_SUBSCRIPTION_ASSIGN, "subscription.assign", "Subscription management",
     "Assigning subscriptions to partitions", R_OWN},
    {OP_USER_INVITE, "user.invite", "User management", "Inviting users", R_OWN},
    {OP_USER_ROLES, "user.roles", "User management", "Managing roles (pkiaas: and API tokens)", R_OWN},
    {OP_CA_BROWSE, "ca.browse", "CA management", "Browsing CAs", R_ALL},
    {OP_CA_CREATE_ROOT, "ca.create.root", "CA management", "Creating a root CA", R_OWN | R_CAA},
    {OP_CA_CREATE_INTERMEDIATE, "ca.create.intermediate", "CA management", "Creating an intermediate subordinate CA",
     R_OWN | R_CAA},
    {OP_CA_CREATE_SUBORD, "ca.create.subord", "CA management", "Creating an issuing subordinate CA", R_OWN | R_CAA},
    {OP_CA_IMPORT_EXTERNAL, "ca.import.external", "CA management",
     "Importing an external root CA (pkiaas: and certifying a CA with it)", R_OWN | R_CAA},
    {OP_CA_DOWNLOAD, "ca.download", "CA management", "Downloading a CA certificate", R_OWN | R_CAA | R_CRA},
    {OP_CA_PROFILES, "ca.profiles", "CA management", "Selecting CA profiles", R_OWN | R_CAA},
    {OP_CA_DELETE, "ca.delete", "CA management", "Deleting a CA", R_OWN | R_CAA},
    {OP_PROFILE_BROWSE, "profile.browse", "CA management", "pkiaas: Browsing certificate profiles", R_ALL},
    {OP_PROFILE_MANAGE, "profile.manage", "CA management", "pkiaas: Customizing subscriber profiles",
     R_OWN | R_CAA},
    {OP_CERT_BROWSE, "cert.browse", "Certificate management", "Browsing certificates", R_ALL},
    {OP_CERT_ISSUE_CSR, "cert.issue.csr", "Certificate management", "Issuing a certificate from CSR",
     R_OWN | R_CRA},
    {OP_CERT_ISSUE_P12, "cert.issue.p12", "Certificate management", "Issuing a certificate in a PKCS #12",
     R_OWN | R_CRA},
    {OP_CERT_STATUS, "cert.status", "Certificate management", "Changing the certificate status", R_OWN | R_CRA},
    {OP_CERT_DOWNLOAD, "cert.download", "Certificate management", "Downloading certificates", R_ALL},
    {OP_ENROLL_READ, "enroll.read", "Enrollment management", "pkiaas: Inspecting enrollment configurations", R_ALL},
    {OP_ENROLL_CONFIGURE, "enroll.configure", "Enrollment management",
     "Configuring ACME / Intune / Jamf / Workspace ONE / Ivanti / MaaS360", R_OWN | R_CAA | R_PO},
    {OP_CAGW_CREDENTIALS, "cagw.credentials", "CA Gateway management", "Managing CA Gateway credentials",
     R_OWN | R_CAA},
    {OP_AUDIT_READ, "audit.read", "Audit", "pkiaas: Reading the audit log and enrollment events",
     R_OWN | R_CAA | R_CAU | R_PA},
};

const char *authz_role_name(unsigned i)
{
    return i < AUTHZ_ROLES ? role_names[i] : NULL;
}

const struct authz_op_info *authz_op_at(size_t i)
{
    return i < OP__COUNT ? &matrix[i] : NULL;
}

size_t authz_op_count(void)
{
    return OP__COUNT;
}

int authz_roles_parse(const char *csv, unsigned *mask)
{
    *mask = 0;
    const char *r = csv;
    while (r && *r) {
        const char *end = strchr(r, ',');
        size_t len = end ? (size_t)(end - r) : strlen(r);
        unsigned bit = 0;
        for (unsigned i = 0; i < AUTHZ_ROLES; i++)
            if (strlen(role_names[i]) == len && strncmp(role_names[i], r, len) == 0)
                bit = 1u << i;
        if (!bit)
            return -1;
        *mask |= bit;
        r = end ? end + 1 : NULL;
    }
    return 0;
}

bool authz_allow(const struct principal *p, enum authz_op op)
{
    unsigned mask = 0;
    if ((unsigned)op >= OP__COUNT || authz_roles_parse(p->roles, &mask) != 0)
        return false;
    return (matrix[op].roles & mask) != 0;
}
