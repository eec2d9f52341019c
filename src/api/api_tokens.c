/* API tokens for automation: created with a name and a role set, shown
 * once, stored as SHA-256, revocable. Owners only (OP_USER_ROLES). */
#include "api/api.h"

#include "authz/authz.h"
#include "crypto/secret.h"
#include "util/codec.h"
#include "util/json_util.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static bool token_name_valid(const char *n)
{
    size_t len = n ? strlen(n) : 0;
    if (len < 2 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '-' || n[i] == '_'))
            return false;
    return true;
}

static json_t *roles_json(const char *csv)
{
    json_t *a = json_array();
    char *dup = strdup(csv ? csv : "");
    for (char *save = NULL, *t = dup ? strtok_r(dup, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(a, json_string(t));
    free(dup);
    return a;
}

void api_token_create(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct jerr je;
    static const char *const keys[] = {"name", "roles", NULL};
    json_t *body = NULL;
    const char *name = NULL;
    char *raw = NULL, *token = NULL, *hash = NULL, *roles = NULL;
    if (api_auth(req, resp, req->params[0], OP_USER_ROLES, &p) != 0 || !(body = api_body_object(req, resp)))
        return;
    if (jcheck_keys(body, keys, &je) || jget_str(body, "name", 64, &name, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    if (!token_name_valid(name)) {
        resp_error(resp, 400, "invalid_field", "name", "name: 2-64 characters of a-z, 0-9, '-' or '_'");
        goto out;
    }
    const json_t *ra = json_object_get(body, "roles");
    if (!json_is_array(ra) || json_array_size(ra) == 0 || json_array_size(ra) > AUTHZ_ROLES) {
        resp_error(resp, 400, "invalid_field", "roles", "roles: a non-empty list of role names (e.g. \"%s\")",
                   authz_role_name(2));
        goto out;
    }
    size_t i;
    json_t *v;
    size_t need = 1;
    json_array_foreach(ra, i, v) need += (json_is_string(v) ? json_string_length(v) : 0) + 1;
    if (!(roles = calloc(1, need)))
        goto oom;
    json_array_foreach(ra, i, v) {
        unsigned m = 0;
        if (!json_is_string(v) || strchr(json_string_value(v), ',') ||
            authz_roles_parse(json_string_value(v), &m) != 0 || !m) {
            resp_error(resp, 400, "invalid_field", "roles", "roles[%zu]: unknown role (Owners, CA Administrators, "
                       "Certificate Administrators, CA Auditors, Protocol Operators, Protocol Auditors)", i);
            goto out;
        }
        if (i)
            strcat(roles, ",");
        strcat(roles, json_string_value(v));
    }
    if (!(raw = random_token(32)) || asprintf(&token, "pk_%s", raw) < 0 || !(hash = secret_token_hash(token)))
        goto oom;
    struct token_rec t;
    memset(&t, 0, sizeof t);
    snprintf(t.token_hash, sizeof t.token_hash, "%s", hash);
    snprintf(t.partition_id, sizeof t.partition_id, "%s", p.partition);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.roles = roles;
    t.created_at = time_now();
    char target[96];
    snprintf(target, sizeof target, "token:%s", name);
    struct audit_rec a = {p.actor, "token.create", target, NULL, p.ip, NULL};
    int s = ctx->store->ops->token_insert(ctx->store, &t, &a);
    if (s == STORE_ECONFLICT) {
        resp_error(resp, 409, "conflict", "name", "name: a live token named '%s' exists", name);
        goto out;
    }
    if (s != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    /* The token is shown here, once; only its hash is kept. */
    resp_json(resp, 201, json_pack("{s:s,s:o,s:s,s:s}", "name", name, "roles", roles_json(roles), "token", token,
                                   "note", "store this token now: it cannot be shown again"));
    goto out;
oom:
    resp_error(resp, 500, "internal", NULL, "out of memory");
out:
    if (token)
        OPENSSL_cleanse(token, strlen(token));
    if (raw)
        OPENSSL_cleanse(raw, strlen(raw));
    free(token);
    free(raw);
    free(hash);
    free(roles);
    json_decref(body);
}

void api_token_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct token_rec *items = NULL;
    size_t n = 0;
    if (api_auth(req, resp, req->params[0], OP_USER_ROLES, &p) != 0)
        return;
    if (ctx->store->ops->token_list(ctx->store, p.partition, &items, &n) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char c[32], r[32];
        time_format_rfc3339(items[i].created_at, c, sizeof c);
        time_format_rfc3339(items[i].revoked_at, r, sizeof r);
        json_array_append_new(a, json_pack("{s:s,s:o,s:s,s:o}", "name", items[i].name, "roles",
                                           roles_json(items[i].roles), "createdAt", c, "revokedAt",
                                           items[i].revoked_at ? json_string(r) : json_null()));
        token_rec_free(&items[i]);
    }
    free(items);
    resp_json(resp, 200, json_pack("{s:o}", "tokens", a));
}

void api_token_revoke(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    if (api_auth(req, resp, req->params[0], OP_USER_ROLES, &p) != 0)
        return;
    const char *name = req->params[1];
    char target[96];
    snprintf(target, sizeof target, "token:%.64s", name);
    struct audit_rec a = {p.actor, "token.revoke", target, NULL, p.ip, NULL};
    int s = token_name_valid(name) ? ctx->store->ops->token_revoke(ctx->store, p.partition, name, time_now(), &a)
                                   : STORE_ENOTFOUND;
    if (s == STORE_ENOTFOUND) {
        resp_error(resp, 404, "not_found", "name", "no live token '%.64s'", name);
        return;
    }
    if (s != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    token_cache_clear(ctx->tokens); /* revoked means unusable now, not in 10 s */
    /* and on the other nodes too (shared stores) */
    if (store_epoch_bump(ctx->store, p.partition, AUTHZ_TOKEN_EPOCH) != STORE_OK)
        log_warn("token revocation in %s: the other nodes' token caches were not told", p.partition);
    resp_json(resp, 200, json_pack("{s:s,s:b}", "name", name, "revoked", 1));
}
