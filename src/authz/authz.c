#include "authz/authz.h"

#include "crypto/secret.h"
#include "util/timeutil.h"

#include <openssl/crypto.h>
#include <pthread.h>

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
};

struct token_cache {
    pthread_mutex_t mu;
    struct tc_slot slots[CACHE_SLOTS];
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
    if (cache) {
        pthread_mutex_lock(&cache->mu);
        struct tc_slot *sl = tc_slot(cache, h);
        int hit = sl->expires > now && strcmp(sl->hash, h) == 0;
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
        struct tc_slot *sl = tc_slot(cache, h);
        snprintf(sl->hash, sizeof sl->hash, "%s", h);
        sl->p = *out;
        sl->expires = now + AUTHZ_TOKEN_TTL_S;
        pthread_mutex_unlock(&cache->mu);
    }
    rc = 0;
out:
    token_rec_free(&t);
    free(h);
    return rc;
}

static bool has_role(const struct principal *p, const char *role)
{
    size_t n = strlen(role);
    const char *r = p->roles;
    while (r && *r) {
        const char *end = strchr(r, ',');
        size_t len = end ? (size_t)(end - r) : strlen(r);
        if (len == n && strncmp(r, role, n) == 0)
            return true;
        r = end ? end + 1 : NULL;
    }
    return false;
}

bool authz_allow(const struct principal *p, enum authz_action a)
{
    switch (a) {
    case AUTHZ_CA_READ:
        /* Every role may browse CAs (guide: "Browsing CAs" ✓ in all six tables). */
        return has_role(p, ROLE_OWNERS) || has_role(p, ROLE_CA_ADMINS) || has_role(p, ROLE_CERT_ADMINS) ||
               has_role(p, ROLE_CA_AUDITORS) || has_role(p, ROLE_PROTO_OPERATORS) ||
               has_role(p, ROLE_PROTO_AUDITORS);
    case AUTHZ_CA_WRITE:
        return has_role(p, ROLE_OWNERS) || has_role(p, ROLE_CA_ADMINS);
    case AUTHZ_CERT_ISSUE:
    case AUTHZ_CERT_MANAGE:
        return has_role(p, ROLE_OWNERS) || has_role(p, ROLE_CA_ADMINS) || has_role(p, ROLE_CERT_ADMINS);
    }
    return false;
}
