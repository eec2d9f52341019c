#include "api/api.h"
#include "proto/proto.h"

#include "authz/authz.h"
#include "ca/ca_cache.h"
#include "ca/issue.h"
#include "ca/profile.h"

#include <stdlib.h>
#include <string.h>

static void audit_target(char *buf, size_t n, const char *kind, const char *id)
{
    snprintf(buf, n, "%s:%.64s", kind, id);
}

void api_profile_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct profile_rows rows;
    if (api_auth(req, resp, req->params[0], OP_PROFILE_BROWSE, &p) != 0)
        return;
    const char *group = http_query(req, "group");
    json_t *arr = json_array();
    for (size_t i = 0; i < profiles_system_count(); i++) {
        const struct profile *sp = profiles_system_at(i);
        if (!group || strcmp(group, sp->group) == 0)
            json_array_append(arr, sp->json);
    }
    if (ctx->store->ops->profile_list(ctx->store, p.partition, &rows) != STORE_OK) {
        json_decref(arr);
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    for (size_t i = 0; i < rows.n; i++) {
        json_t *j = json_loads(rows.items[i].json, 0, NULL);
        const char *g = json_string_value(json_object_get(j, "group"));
        if (j && (!group || (g && strcmp(group, g) == 0)))
            json_array_append(arr, j);
        json_decref(j);
    }
    profile_rows_free(&rows);
    resp_json(resp, 200, json_pack("{s:o}", "profiles", arr));
}

void api_profile_get(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct err e;
    if (api_auth(req, resp, req->params[0], OP_PROFILE_BROWSE, &p) != 0)
        return;
    const struct profile *pr = profile_resolve(ctx->store, p.partition, req->params[1], &e);
    if (!pr) {
        if (e.status == 400)
            resp_error(resp, 404, "not_found", "profileId", "no profile '%.64s'", req->params[1]);
        else
            resp_err(resp, &e);
        return;
    }
    resp_json(resp, 200, json_incref(pr->json));
    profile_release(pr);
}

/* Builds a custom profile from `base` (the source's canonical JSON or an
 * empty object) overlaid with the request's fields, validates it, stores
 * it. */
static void put_profile(struct http_req *req, struct http_resp *resp, bool create)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct err e;
    json_t *body = NULL, *merged = NULL;
    const struct profile *src = NULL;
    struct profile *np = NULL;
    char *text = NULL;
    if (api_auth(req, resp, req->params[0], OP_PROFILE_MANAGE, &p) != 0)
        return;
    if (!(body = api_body_object(req, resp)))
        return;
    const char *id = create ? json_string_value(json_object_get(body, "id")) : req->params[1];
    if (create) {
        const char *from = json_string_value(json_object_get(body, "sourceProfileId"));
        if (!from) {
            resp_error(resp, 400, "invalid_field", "sourceProfileId",
                       "sourceProfileId: required (the profile to clone)");
            goto out;
        }
        if (!(src = profile_resolve(ctx->store, p.partition, from, &e))) {
            resp_err(resp, &e);
            goto out;
        }
        if (src->authority) {
            resp_error(resp, 403, "read_only", "sourceProfileId",
                       "sourceProfileId: authority profiles cannot be cloned or modified");
            goto out;
        }
        if (!id || !profile_id_valid(id)) {
            resp_error(resp, 400, "invalid_field", "id", "id: must be 2-64 characters of lowercase letters, digits "
                       "and '-'");
            goto out;
        }
        if (profiles_system_find(id)) {
            resp_error(resp, 409, "conflict", "id", "id: '%s' is a system profile", id);
            goto out;
        }
        merged = json_deep_copy(src->json);
    } else {
        if (profiles_system_find(id)) {
            resp_error(resp, 403, "read_only", "profileId", "system profile '%s' is read-only; clone it instead", id);
            goto out;
        }
        if (!(src = profile_resolve(ctx->store, p.partition, id, &e))) {
            resp_error(resp, 404, "not_found", "profileId", "no custom profile '%.64s'", id);
            goto out;
        }
        merged = json_deep_copy(src->json);
        const char *bid = json_string_value(json_object_get(body, "id"));
        if (json_object_get(body, "id") && (!bid || strcmp(bid, id) != 0)) {
            resp_error(resp, 400, "invalid_field", "id", "id: cannot be changed");
            goto out;
        }
    }
    if (!merged)
        goto oom;
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "sourceProfileId") == 0 || strcmp(k, "system") == 0)
            continue;
        if (strcmp(k, "kind") == 0 && !json_equal(v, json_object_get(merged, "kind"))) {
            resp_error(resp, 400, "invalid_field", "kind", "kind: custom profiles are subscriber profiles");
            goto out;
        }
        json_object_set(merged, k, v);
    }
    json_object_set_new(merged, "id", json_string(id));
    json_object_del(merged, "system");
    if (!(np = profile_from_json(merged, false, &e))) {
        resp_err(resp, &e);
        goto out;
    }
    /* a protocol configuration takes profiles of its type's group only: a
     * profile it uses keeps its group (as it cannot be deleted) */
    if (!create && strcmp(np->group, src->group) != 0) {
        char cfg[32];
        int used = proto_profile_in_use(ctx->store, p.partition, id, NULL, cfg, sizeof cfg);
        if (used != 0) {
            if (used < 0)
                resp_error(resp, 503, "unavailable", NULL, "store unavailable");
            else
                resp_error(resp, 409, "conflict", "group",
                           "group: profile '%s' is used by protocol configuration '%s', which needs it in group '%s'",
                           id, cfg, src->group);
            goto out;
        }
    }
    if (!(text = json_dumps(np->json, JSON_COMPACT)))
        goto oom;
    char target[192];
    audit_target(target, sizeof target, "profile", np->id);
    struct audit_rec a = {p.actor, create ? "profile.clone" : "profile.update", target, NULL, p.ip, NULL};
    int s = ctx->store->ops->profile_put(ctx->store, p.partition, np->id, np->group, text, create, &a);
    if (s == STORE_ECONFLICT) {
        resp_error(resp, 409, "conflict", "id", "id: profile '%s' already exists", np->id);
        goto out;
    }
    if (s != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    resp_json(resp, create ? 201 : 200, json_incref(np->json));
    goto out;
oom:
    resp_error(resp, 500, "internal", NULL, "out of memory");
out:
    free(text);
    profile_free(np);
    profile_release(src);
    json_decref(merged);
    json_decref(body);
}

void api_profile_clone(struct http_req *req, struct http_resp *resp)
{
    put_profile(req, resp, true);
}

void api_profile_update(struct http_req *req, struct http_resp *resp)
{
    put_profile(req, resp, false);
}

void api_profile_delete(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    if (api_auth(req, resp, req->params[0], OP_PROFILE_MANAGE, &p) != 0)
        return;
    const char *id = req->params[1];
    if (profiles_system_find(id)) {
        resp_error(resp, 403, "read_only", "profileId", "system profile '%s' cannot be deleted", id);
        return;
    }
    char cfg[32];
    int used = profile_id_valid(id) ? proto_profile_in_use(ctx->store, p.partition, id, NULL, cfg, sizeof cfg) : 0;
    if (used != 0) {
        if (used < 0)
            resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        else
            resp_error(resp, 409, "conflict", "profileId",
                       "profile '%s' is used by protocol configuration '%s'; change or delete it first", id, cfg);
        return;
    }
    char target[192];
    audit_target(target, sizeof target, "profile", id);
    struct audit_rec a = {p.actor, "profile.delete", target, NULL, p.ip, NULL};
    int s = profile_id_valid(id) ? ctx->store->ops->profile_delete(ctx->store, p.partition, id, &a) : STORE_ENOTFOUND;
    if (s == STORE_ENOTFOUND)
        resp_error(resp, 404, "not_found", "profileId", "no custom profile '%.64s'", id);
    else if (s == STORE_ECONFLICT)
        resp_error(resp, 409, "conflict", "profileId", "profile '%s' is assigned to a CA; remove it from the CA first",
                   id);
    else if (s != STORE_OK)
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
    else
        resp_json(resp, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
}

static void send_ca_profiles(struct http_req *req, struct http_resp *resp, const struct ca_rec *c)
{
    struct api_ctx *ctx = req->app;
    char **ids = NULL;
    size_t n = 0;
    if (ctx->store->ops->ca_profile_list(ctx->store, c->partition_id, c->pk, &ids, &n) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(ids[i]));
    store_free_ids(ids, n);
    resp_json(resp, 200, json_pack("{s:s,s:o}", "caId", c->id, "profiles", a));
}

void api_ca_profiles_get(struct http_req *req, struct http_resp *resp)
{
    struct principal p;
    struct ca_rec c;
    if (api_auth(req, resp, req->params[0], OP_CA_BROWSE, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, false) != 0)
        return;
    send_ca_profiles(req, resp, &c);
    ca_rec_free(&c);
}

int api_assign_profile(struct api_ctx *ctx, const struct principal *p, const struct ca_rec *c, const char *pid,
                       struct err *e)
{
    const struct profile *pr = profile_resolve(ctx->store, p->partition, pid, e);
    if (!pr)
        return -1;
    unsigned t = profile_catype(c->type);
    int rc = -1;
    if (!t || !(pr->ca_types & t)) {
        err_set(e, 400, "invalid_field", "profileId", "profileId: profile '%s' does not allow %s CAs (allowedCATypes)",
                pr->id, c->type);
        goto out;
    }
    char target[192];
    snprintf(target, sizeof target, "ca:%s/profile:%s", c->id, pr->id);
    struct audit_rec a = {p->actor, "ca.profile.add", target, NULL, p->ip, NULL};
    int s = ctx->store->ops->ca_profile_set(ctx->store, p->partition, c->pk, pr->id, true, !pr->system, &a);
    if (s == STORE_ENOTFOUND) {
        err_set(e, 404, "not_found", "profileId", "profile '%s' was deleted", pr->id);
        goto out;
    }
    if (s != STORE_OK) {
        err_set(e, 503, "unavailable", "", "store unavailable");
        goto out;
    }
    ca_cache_invalidate(&ctx->env, p->partition);
    rc = 0;
out:
    profile_release(pr);
    return rc;
}

void api_ca_profiles_add(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_rec c;
    struct err e;
    json_t *body = NULL;
    if (api_auth(req, resp, req->params[0], OP_CA_PROFILES, &p) != 0 || !(body = api_body_object(req, resp)))
        return;
    if (api_load_ca(req, resp, p.partition, &c, false) != 0)
        goto out_body;
    const char *pid = json_string_value(json_object_get(body, "profileId"));
    if (!pid) {
        resp_error(resp, 400, "invalid_field", "profileId", "profileId: required");
        goto out;
    }
    if (api_assign_profile(ctx, &p, &c, pid, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    send_ca_profiles(req, resp, &c);
out:
    ca_rec_free(&c);
out_body:
    json_decref(body);
}

void api_ca_profiles_remove(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_rec c;
    if (api_auth(req, resp, req->params[0], OP_CA_PROFILES, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, false) != 0)
        return;
    char cfg[32];
    int used = proto_profile_in_use(ctx->store, p.partition, req->params[2], c.id, cfg, sizeof cfg);
    if (used != 0) {
        if (used < 0)
            resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        else
            resp_error(resp, 409, "conflict", "profileId",
                       "protocol configuration '%s' issues with profile '%.64s' from this CA; change or delete it "
                       "first",
                       cfg, req->params[2]);
        ca_rec_free(&c);
        return;
    }
    char target[192];
    snprintf(target, sizeof target, "ca:%s/profile:%.64s", c.id, req->params[2]);
    struct audit_rec a = {p.actor, "ca.profile.remove", target, NULL, p.ip, NULL};
    int s = ctx->store->ops->ca_profile_set(ctx->store, p.partition, c.pk, req->params[2], false, false, &a);
    ca_cache_invalidate(&ctx->env, p.partition);
    if (s == STORE_ENOTFOUND)
        resp_error(resp, 404, "not_found", "profileId", "profile '%.64s' is not assigned to CA '%s'", req->params[2],
                   c.id);
    else if (s != STORE_OK)
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
    else
        send_ca_profiles(req, resp, &c);
    ca_rec_free(&c);
}
