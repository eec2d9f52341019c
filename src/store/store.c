#include "store/store.h"

#include "store/pg/store_pg.h"
#include "store/sqlite/store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store *store_open(const char *uri, char *err, size_t errlen)
{
    if (strncmp(uri, "sqlite:", 7) == 0)
        return store_sqlite_open(uri + 7, err, errlen);
    /* libpq takes the URI itself (credentials, host, database, options) */
    if (strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0)
        return store_pg_open(uri, err, errlen);
    /* never echo the URI: a PostgreSQL one may hold a password */
    snprintf(err, errlen, "unsupported store (expected sqlite:PATH or postgresql://...)");
    return NULL;
}

#define EPOCH_KIND "ca-epoch"

int store_epoch_bump(struct store *s, const char *partition, int64_t ca_pk)
{
    char json[] = "{}";
    int rc = STORE_ECONFLICT;
    if (!s->ops->shared)
        return STORE_OK;
    /* optimistic: a concurrent bump (another node) makes us read again */
    for (int attempt = 0; attempt < 8 && rc == STORE_ECONFLICT; attempt++) {
        struct obj_rec o;
        memset(&o, 0, sizeof o);
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)ca_pk);
        rc = s->ops->obj_get(s, partition, EPOCH_KIND, id, &o);
        if (rc == STORE_ENOTFOUND) {
            snprintf(o.partition_id, sizeof o.partition_id, "%s", partition);
            snprintf(o.kind, sizeof o.kind, "%s", EPOCH_KIND);
            snprintf(o.id, sizeof o.id, "%s", id);
            o.json = json;
            rc = s->ops->obj_put(s, &o, OBJ_CREATE, NULL);
            continue;
        }
        if (rc == STORE_OK)
            rc = s->ops->obj_put(s, &o, OBJ_UPDATE, NULL);
        obj_rec_free(&o);
    }
    return rc;
}

int64_t store_epoch(struct store *s, const char *partition, int64_t ca_pk)
{
    struct obj_rec o;
    char id[24];
    if (!s->ops->shared)
        return 0;
    snprintf(id, sizeof id, "%lld", (long long)ca_pk);
    int rc = s->ops->obj_get(s, partition, EPOCH_KIND, id, &o);
    if (rc == STORE_ENOTFOUND)
        return 0;
    if (rc != STORE_OK)
        return -1;
    int64_t v = o.version;
    obj_rec_free(&o);
    return v;
}

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}

void store_free_ids(char **ids, size_t n)
{
    for (size_t i = 0; ids && i < n; i++)
        free(ids[i]);
    free(ids);
}

bool store_roles_have_owner(const char *csv)
{
    /* comma-separated role names, spaces around them ignored */
    static const char owner[] = "Owners";
    const char *p = csv;
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && last[-1] == ' ')
            last--;
        if ((size_t)(last - p) == sizeof owner - 1 && memcmp(p, owner, sizeof owner - 1) == 0)
            return true;
        p = end;
    }
    return false;
}

void token_rec_free(struct token_rec *t)
{
    free(t->roles);
    t->roles = NULL;
}

void ca_rec_free(struct ca_rec *c)
{
    free(c->friendly_name);
    free(c->key_blob);
    free(c->cert_der);
    free(c->csr_der);
    free(c->subject);
    memset(c, 0, sizeof(*c));
}

void cert_rec_free(struct cert_rec *c)
{
    free(c->subject);
    free(c->sans);
    free(c->profile_id);
    free(c->requester);
    free(c->status_comment);
    free(c->der);
    memset(c, 0, sizeof(*c));
}

void ca_list_free(struct ca_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        ca_rec_free(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void profile_rows_free(struct profile_rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->items[i].json);
    free(r->items);
    r->items = NULL;
    r->n = 0;
}

void cert_list_free(struct cert_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        cert_rec_free(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void crl_rec_free(struct crl_rec *c)
{
    free(c->der);
    memset(c, 0, sizeof(*c));
}

void responder_rec_free(struct responder_rec *r)
{
    free(r->key_blob);
    free(r->cert_der);
    memset(r, 0, sizeof(*r));
}

void audit_row_free(struct audit_row *r)
{
    free(r->partition);
    free(r->actor);
    free(r->ip);
    free(r->action);
    free(r->target);
    free(r->result);
    free(r->detail);
    free(r->prev_hash);
    free(r->hash);
    memset(r, 0, sizeof(*r));
}

void user_rec_free(struct user_rec *u)
{
    free(u->email);
    free(u->password_hash);
    free(u->roles);
    free(u->first_name);
    free(u->last_name);
    free(u->totp_blob);
    memset(u, 0, sizeof(*u));
}

void cagw_cred_free(struct cagw_cred *c)
{
    free(c->cert_der);
    c->cert_der = NULL;
    c->cert_len = 0;
}

void obj_rec_free(struct obj_rec *o)
{
    if (!o)
        return;
    free(o->parent);
    free(o->lookup);
    free(o->json);
    free(o->blob);
    o->parent = o->lookup = o->json = NULL;
    o->blob = NULL;
}

void obj_list_free(struct obj_rec *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        obj_rec_free(&items[i]);
    free(items);
}

char *store_like_pattern(const char *text, bool *ok)
{
    *ok = true;
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *out = malloc(2 * n + 3), *w = out;
    if (!out) {
        *ok = false;
        return NULL;
    }
    *w++ = '%';
    for (const char *p = text; *p; p++) {
        if (*p == '%' || *p == '_' || *p == '\\')
            *w++ = '\\';
        *w++ = *p;
    }
    *w++ = '%';
    *w = 0;
    return out;
}
