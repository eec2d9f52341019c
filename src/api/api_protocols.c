/* Enrollment protocol configurations (/protocols) and their External
 * Account Binding keys. A configuration ties a protocol endpoint to one
 * issuing CA and one certificate profile assigned to that CA; the
 * protocol module validates its own settings (acme_settings_apply). Only
 * Owners and Protocol Operators change configurations (OP_ENROLL_CONFIGURE);
 * the other roles read them (OP_ENROLL_READ). EAB HMAC keys are shown once
 * and kept sealed with the master key (the server needs them to verify
 * bindings, so hashing is not an option). */
#include "acme/acme.h"
#include "cmp/cmp.h"
#include "est/est.h"
#include "scep/intune.h"
#include "scep/mdmws.h"
#include "scep/scep.h"
#include "api/api.h"
#include "api/api_json.h"
#include "authz/authz.h"
#include "ca/issue.h"
#include "crypto/keywrap.h"
#include "proto/proto.h"
#include "util/codec.h"
#include "util/timeutil.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EAB_NAME_MIN 2
#define EAB_NAME_MAX 18
#define EAB_KEY_BYTES 32

static int acme_apply(const json_t *body, json_t *doc, bool create, struct jerr *e)
{
    (void)create;
    return acme_settings_apply(body, doc, e);
}

/* The protocol types: the profile group each needs, its settings and the
 * name and builder of its endpoint URL. */
static const struct proto_type {
    const char *type;
    const char *group;
    int (*apply)(const json_t *body, json_t *doc, bool create, struct jerr *e);
    const char *const *keys;
    const char *url_name;
    char *(*url)(const char *https_base, const char *partition, const char *config);
} proto_types[] = {
    {"acme", "privatessl", acme_apply, acme_setting_keys, "directoryUrl", acme_directory_url},
    {"scep", "scep", scep_settings_apply, scep_setting_keys, "scepUrl", scep_url},
    {"intune", "intune", intune_settings_apply, intune_setting_keys, "scepUrl", scep_url},
    {"mdmws", "mdmws", mdmws_settings_apply, mdmws_setting_keys, "scepUrl", mdmws_scep_url},
    {"est", "est", est_settings_apply, est_setting_keys, "estUrl", est_url},
    {"cmp", "cmp", cmp_settings_apply, cmp_setting_keys, "cmpUrl", cmp_url},
};

static const struct proto_type *type_find(const char *t)
{
    for (size_t i = 0; t && i < sizeof proto_types / sizeof proto_types[0]; i++)
        if (strcmp(proto_types[i].type, t) == 0)
            return &proto_types[i];
    return NULL;
}

static bool type_known(const char *t)
{
    return type_find(t) != NULL;
}

/* The profile group a protocol type requires of its profile. */
static const char *type_group(const char *t)
{
    const struct proto_type *pt = type_find(t);
    return pt ? pt->group : t;
}

/* Answers {"<field>": [map(row)...]} for the `kind` rows under `parent`. */
void api_send_obj_list(struct http_req *req, struct http_resp *resp, const char *partition, const char *kind,
                       const char *parent, const char *field, json_t *(*map)(const struct obj_rec *o))
{
    struct api_ctx *ctx = req->app;
    struct obj_rec *items = NULL;
    size_t n = 0;
    if (ctx->store->ops->obj_list(ctx->store, partition, kind, parent, NULL, 0, &items, &n) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, map(&items[i]));
    obj_list_free(items, n);
    resp_json(resp, 200, json_pack("{s:o}", field, arr));
}

static json_t *cfg_json(struct api_ctx *ctx, const struct obj_rec *o)
{
    json_error_t je;
    json_t *j = o->json ? json_loads(o->json, 0, &je) : NULL;
    if (!j)
        j = json_object();
    if (json_object_get(j, "appKeySealed")) {
        json_object_del(j, "appKeySealed");
        json_object_set_new(j, "appKeySet", json_true());
    }
    json_object_set_new(j, "createdAt", jtime(o->created_at));
    json_object_set_new(j, "updatedAt", jtime(o->updated_at));
    const struct proto_type *pt = type_find(json_string_value(json_object_get(j, "type")));
    if (pt)
        json_object_set_new(j, pt->url_name, jtake(pt->url(ctx->env.https_base, o->partition_id, o->id)));
    if (pt && strcmp(pt->type, "mdmws") == 0) {
        char *u = NULL;
        if (asprintf(&u, "%s/mdm/v2/mdmws/%s/%s", ctx->env.https_base, o->partition_id, o->id) >= 0)
            json_object_set_new(j, "mdmWebServiceUrl", jtake(u));
    }
    return j;
}

/* The CA must be live and have the profile assigned; the profile must be
 * of the type's group. */
static int check_ca_profile(struct api_ctx *ctx, const char *partition, const char *type, const char *ca_id,
                            const char *profile_id, struct err *e)
{
    struct ca_rec c;
    char **ids = NULL;
    size_t n = 0;
    int rc = -1;
    const struct profile *pr = NULL;
    memset(&c, 0, sizeof c);
    if (!ca_id_valid(ca_id) || ctx->store->ops->ca_get(ctx->store, partition, ca_id, &c) != STORE_OK ||
        strcmp(c.status, "active") != 0) {
        err_set(e, 400, "invalid_field", "caId", "caId: no active CA '%.32s' in this partition", ca_id);
        goto out;
    }
    if (!(pr = profile_resolve(ctx->store, partition, profile_id, e))) {
        err_set(e, 400, "invalid_field", "profileId", "profileId: no profile '%.64s'", profile_id);
        goto out;
    }
    if (strcmp(pr->group, type_group(type)) != 0) {
        err_set(e, 400, "invalid_field", "profileId", "profileId: a %s configuration needs a profile of group '%s' ('%s' is '%s')",
                type, type_group(type), pr->id, pr->group);
        goto out;
    }
    if (ctx->store->ops->ca_profile_list(ctx->store, partition, c.pk, &ids, &n) != STORE_OK) {
        err_set(e, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    bool assigned = false;
    for (size_t i = 0; i < n; i++)
        assigned |= strcmp(ids[i], profile_id) == 0;
    if (!assigned) {
        err_set(e, 400, "invalid_field", "profileId",
                "profileId: profile '%s' is not assigned to CA '%s' (add it to the CA's profiles first)", profile_id,
                ca_id);
        goto out;
    }
    rc = 0;
out:
    store_free_ids(ids, n);
    profile_release(pr);
    ca_rec_free(&c);
    return rc;
}

static const char *const base_keys[] = {"id", "type", "description", "caId", "profileId"};

/* Validates `body` onto `doc` (create: every required field; update:
 * what is given). */
static int apply_body(struct api_ctx *ctx, const char *partition, const json_t *body, json_t *doc, bool create,
                      struct err *e)
{
    struct jerr je;
    const char *allowed[32];
    size_t na = 0;
    for (size_t i = 0; i < sizeof base_keys / sizeof base_keys[0]; i++)
        allowed[na++] = base_keys[i];
    const char *bt = json_string_value(json_object_get(body, "type"));
    const struct proto_type *pt = type_find(create ? bt : json_string_value(json_object_get(doc, "type")));
    for (size_t i = 0; pt && pt->keys[i] && na < 31; i++)
        allowed[na++] = pt->keys[i];
    allowed[na] = NULL;
    const char *id = NULL, *type = NULL, *desc = NULL, *ca = NULL, *prof = NULL;
    memset(&je, 0, sizeof je);
    if (jcheck_keys(body, allowed, &je) || jget_str(body, "id", 64, &id, &je) ||
        jget_str(body, "type", 16, &type, &je) || jget_str(body, "description", 1024, &desc, &je) ||
        jget_str(body, "caId", 64, &ca, &je) || jget_str(body, "profileId", 64, &prof, &je)) {
        err_set(e, 400, "invalid_field", je.field, "%s", je.msg);
        return -1;
    }
    if (create) {
        if (!id || !proto_id_valid(id)) {
            err_set(e, 400, "invalid_field", "id", "id: 2-18 characters of a-z, 0-9, '_' and '-'");
            return -1;
        }
        if (!type || !type_known(type)) {
            err_set(e, 400, "invalid_field", "type", "type: one of: acme, scep, intune, mdmws, est, cmp");
            return -1;
        }
        if (!ca || !prof) {
            err_set(e, 400, "invalid_field", ca ? "profileId" : "caId", "%s: required",
                    ca ? "profileId" : "caId");
            return -1;
        }
        json_object_set_new(doc, "id", json_string(id));
        json_object_set_new(doc, "type", json_string(type));
    } else {
        const char *cur_id = json_string_value(json_object_get(doc, "id"));
        const char *cur_type = json_string_value(json_object_get(doc, "type"));
        if ((id && strcmp(id, cur_id ? cur_id : "") != 0) || (type && strcmp(type, cur_type ? cur_type : "") != 0)) {
            err_set(e, 400, "invalid_field", id ? "id" : "type", "%s: cannot be changed", id ? "id" : "type");
            return -1;
        }
        type = cur_type;
    }
    if (desc)
        json_object_set_new(doc, "description", json_string(desc));
    if (ca)
        json_object_set_new(doc, "caId", json_string(ca));
    if (prof)
        json_object_set_new(doc, "profileId", json_string(prof));
    if (!json_object_get(doc, "description"))
        json_object_set_new(doc, "description", json_string(""));
    if (check_ca_profile(ctx, partition, type ? type : "", json_string_value(json_object_get(doc, "caId")),
                         json_string_value(json_object_get(doc, "profileId")), e) != 0)
        return -1;
    if (pt && pt->apply(body, doc, create, &je) != 0) {
        err_set(e, 400, "invalid_field", je.field, "%s", je.msg);
        return -1;
    }
    /* the Intune app key: a secret the server uses later, so sealed with
     * the master key, never returned */
    const char *appkey = json_string_value(json_object_get(body, "appKey"));
    if (pt && strcmp(pt->type, "intune") == 0 && appkey) {
        char aad[256];
        unsigned char *blob = NULL;
        size_t bl = 0;
        char *b64 = NULL;
        intune_key_aad(aad, sizeof aad, partition, json_string_value(json_object_get(doc, "id")));
        if (keywrap_seal(ctx->env.mkey, (const unsigned char *)appkey, strlen(appkey), aad, &blob, &bl) != 0 ||
            !(b64 = b64_encode(blob, bl))) {
            free(blob);
            err_set(e, 500, "internal", NULL, "could not seal the app key");
            return -1;
        }
        json_object_set_new(doc, "appKeySealed", json_string(b64));
        free(blob);
        free(b64);
    }
    return 0;
}

void api_proto_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct obj_rec *items = NULL;
    size_t n = 0;
    if (api_auth(req, resp, req->params[0], OP_ENROLL_READ, &p) != 0)
        return;
    if (ctx->store->ops->obj_list(ctx->store, p.partition, PROTO_KIND, NULL, NULL, 0, &items, &n) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, cfg_json(ctx, &items[i]));
    obj_list_free(items, n);
    resp_json(resp, 200, json_pack("{s:o}", "protocols", arr));
}

void api_proto_create(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct err e;
    struct obj_rec o;
    json_t *body = NULL, *doc = NULL;
    memset(&o, 0, sizeof o);
    if (api_auth(req, resp, req->params[0], OP_ENROLL_CONFIGURE, &p) != 0)
        return;
    if (!(body = api_body_object(req, resp)))
        return;
    doc = json_object();
    if (apply_body(ctx, p.partition, body, doc, true, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    snprintf(o.partition_id, sizeof o.partition_id, "%s", p.partition);
    snprintf(o.kind, sizeof o.kind, "%s", PROTO_KIND);
    snprintf(o.id, sizeof o.id, "%s", json_string_value(json_object_get(doc, "id")));
    o.parent = (char *)json_string_value(json_object_get(doc, "caId"));
    snprintf(o.status, sizeof o.status, "active");
    o.json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    char target[192];
    snprintf(target, sizeof target, "protocol:%s", o.id);
    struct audit_rec a = {p.actor, "protocol.create", target, o.json, p.ip, NULL};
    int r = o.json ? ctx->store->ops->obj_put(ctx->store, &o, OBJ_CREATE, &a) : STORE_EIO;
    if (r == STORE_ECONFLICT) {
        resp_error(resp, 409, "conflict", "id", "a protocol configuration '%s' already exists", o.id);
        goto out;
    }
    if (r != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    char loc[256];
    snprintf(loc, sizeof loc, "/api/v1/partitions/%s/protocols/%s", p.partition, o.id);
    resp_json(resp, 201, cfg_json(ctx, &o));
    resp_header(resp, "Location", loc);
out:
    o.parent = NULL; /* borrowed from doc */
    obj_rec_free(&o);
    json_decref(doc);
    json_decref(body);
}

static int load_obj(struct http_req *req, struct http_resp *resp, const char *partition, struct obj_rec *o)
{
    struct api_ctx *ctx = req->app;
    memset(o, 0, sizeof *o);
    int r = proto_id_valid(req->params[1])
                ? ctx->store->ops->obj_get(ctx->store, partition, PROTO_KIND, req->params[1], o)
                : STORE_ENOTFOUND;
    if (r == STORE_OK)
        return 0;
    if (r == STORE_ENOTFOUND)
        resp_error(resp, 404, "not_found", "configId", "no protocol configuration '%.32s' in this partition",
                   req->params[1]);
    else
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
    return -1;
}

void api_proto_get(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct obj_rec o;
    if (api_auth(req, resp, req->params[0], OP_ENROLL_READ, &p) != 0 || load_obj(req, resp, p.partition, &o) != 0)
        return;
    resp_json(resp, 200, cfg_json(ctx, &o));
    obj_rec_free(&o);
}

void api_proto_update(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct err e;
    struct obj_rec o;
    json_t *body = NULL, *doc = NULL;
    json_error_t je;
    if (api_auth(req, resp, req->params[0], OP_ENROLL_CONFIGURE, &p) != 0)
        return;
    if (!(body = api_body_object(req, resp)))
        return;
    if (load_obj(req, resp, p.partition, &o) != 0)
        goto out_body;
    if (!(doc = o.json ? json_loads(o.json, 0, &je) : NULL)) {
        resp_error(resp, 500, "internal", NULL, "stored configuration is damaged");
        goto out;
    }
    if (apply_body(ctx, p.partition, body, doc, false, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    free(o.json);
    o.json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    free(o.parent);
    o.parent = strdup(json_string_value(json_object_get(doc, "caId")));
    char target[192];
    snprintf(target, sizeof target, "protocol:%s", o.id);
    struct audit_rec a = {p.actor, "protocol.update", target, o.json, p.ip, NULL};
    int r = o.json && o.parent ? ctx->store->ops->obj_put(ctx->store, &o, OBJ_UPDATE, &a) : STORE_EIO;
    if (r == STORE_ECONFLICT)
        resp_error(resp, 409, "conflict", NULL, "the configuration changed meanwhile; read it again and retry");
    else if (r == STORE_ENOTFOUND)
        resp_error(resp, 404, "not_found", "configId", "no protocol configuration '%s'", o.id);
    else if (r != STORE_OK)
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
    else
        resp_json(resp, 200, cfg_json(ctx, &o));
out:
    json_decref(doc);
    obj_rec_free(&o);
out_body:
    json_decref(body);
}

void api_proto_delete(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct obj_rec o;
    if (api_auth(req, resp, req->params[0], OP_ENROLL_CONFIGURE, &p) != 0 || load_obj(req, resp, p.partition, &o) != 0)
        return;
    char target[192];
    snprintf(target, sizeof target, "protocol:%s", o.id);
    struct audit_rec a = {p.actor, "protocol.delete", target, NULL, p.ip, NULL};
    int r = ctx->store->ops->obj_delete(ctx->store, p.partition, PROTO_KIND, o.id, &a);
    if (r == STORE_OK) {
        /* its EAB keys, credentials, MDM Digital IDs and one-time
         * challenges go with it: a secret must never work for a later
         * configuration that reuses the id; so do its end entities and
         * SCEP transactions, which such a configuration must not inherit
         * (a device deactivated there, a transaction answered there) */
        static const char *const secret_kinds[] = {ACME_KIND_EAB,       PROTO_CRED_KIND, MDM_DIGITAL_ID_KIND,
                                                   MDM_CHALLENGE_KIND, PROTO_EE_KIND,   SCEP_TXN_KIND};
        for (size_t k = 0; k < sizeof secret_kinds / sizeof secret_kinds[0]; k++) {
            struct obj_rec *keys = NULL;
            size_t n = 0;
            if (ctx->store->ops->obj_list(ctx->store, p.partition, secret_kinds[k], o.id, NULL, 0, &keys, &n) ==
                STORE_OK)
                for (size_t i = 0; i < n; i++)
                    ctx->store->ops->obj_delete(ctx->store, p.partition, secret_kinds[k], keys[i].id, NULL);
            obj_list_free(keys, n);
        }
        ctx->store->ops->obj_delete(ctx->store, p.partition, INTUNE_SYNC_KIND, o.id, NULL);
        acme_forget_configuration(ctx->store, p.partition, o.id);
        resp_json(resp, 200, json_pack("{s:s,s:s}", "id", o.id, "status", "deleted"));
    } else if (r == STORE_ENOTFOUND) {
        resp_error(resp, 404, "not_found", "configId", "no protocol configuration '%s'", o.id);
    } else {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
    }
    obj_rec_free(&o);
}

/* ---- EAB keys --------------------------------------------------------- */

/* n random bytes as base64url that does not start with '-' or '_': key
 * ids and secrets are pasted into command lines (certbot --eab-kid ...),
 * where a leading '-' reads as an option, so such draws are repeated. The
 * bytes go to `raw` too when given (the HMAC key itself). NULL on failure. */
static char *cli_safe_token(size_t n, unsigned char *raw)
{
    unsigned char buf[64];
    if (n > sizeof buf)
        return NULL;
    for (int tries = 0; tries < 64; tries++) {
        char *t = random_bytes(buf, n) == 0 ? b64url_encode(buf, n) : NULL;
        if (!t)
            break;
        if (isalnum((unsigned char)t[0])) {
            if (raw)
                memcpy(raw, buf, n);
            OPENSSL_cleanse(buf, sizeof buf);
            return t;
        }
        OPENSSL_cleanse(t, strlen(t));
        free(t);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return NULL;
}

/* Seals `secret` with `aad` and stores `o` (partition, kind and id set by
 * the caller) as a live secret of configuration `cfg` with its friendly
 * name, audited as `action` on `target`. A store code; STORE_EINVAL when
 * sealing failed. o->parent borrows `cfg`. */
static int put_secret(struct api_ctx *ctx, const struct principal *p, struct obj_rec *o, const char *cfg,
                      const unsigned char *secret, size_t len, const char *aad, const char *name, const char *action,
                      const char *target)
{
    if (keywrap_seal(ctx->env.mkey, secret, len, aad, &o->blob, &o->blob_len) != 0)
        return STORE_EINVAL;
    o->parent = (char *)cfg;
    snprintf(o->status, sizeof o->status, "active");
    json_t *doc = json_pack("{s:s}", "name", name);
    o->json = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    struct audit_rec a = {p->actor, action, target, o->json, p->ip, NULL};
    return o->json ? ctx->store->ops->obj_put(ctx->store, o, OBJ_CREATE, &a) : STORE_EIO;
}

static json_t *eab_json(const struct obj_rec *k)
{
    json_error_t je;
    json_t *d = k->json ? json_loads(k->json, 0, &je) : NULL;
    json_t *j = json_pack("{s:s,s:O?,s:o}", "keyId", k->id, "name", json_object_get(d, "name"), "createdAt",
                          jtime(k->created_at));
    json_decref(d);
    return j;
}

static int acme_cfg_for_eab(struct http_req *req, struct http_resp *resp, int op, struct principal *p,
                            struct proto_cfg *cfg)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    if (api_auth(req, resp, req->params[0], op, p) != 0)
        return -1;
    if (proto_cfg_load(ctx->store, p->partition, req->params[1], "acme", cfg, &e) != 0) {
        resp_err(resp, &e);
        return -1;
    }
    return 0;
}

void api_eab_list(struct http_req *req, struct http_resp *resp)
{
    struct principal p;
    struct proto_cfg cfg;
    if (acme_cfg_for_eab(req, resp, OP_ENROLL_READ, &p, &cfg) != 0)
        return;
    api_send_obj_list(req, resp, p.partition, ACME_KIND_EAB, cfg.id, "eabKeys", eab_json);
    proto_cfg_free(&cfg);
}

void api_eab_create(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct proto_cfg cfg;
    struct obj_rec o;
    struct jerr je;
    json_t *body = NULL;
    unsigned char key[EAB_KEY_BYTES];
    char *kid = NULL, *hmac = NULL;
    static const char *const keys[] = {"name", NULL};
    const char *name = NULL;
    memset(&o, 0, sizeof o);
    memset(&je, 0, sizeof je);
    if (acme_cfg_for_eab(req, resp, OP_ENROLL_CONFIGURE, &p, &cfg) != 0)
        return;
    if (!(body = api_body_object(req, resp)))
        goto out;
    if (jcheck_keys(body, keys, &je) || jget_str(body, "name", EAB_NAME_MAX, &name, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    if (!name || strlen(name) < EAB_NAME_MIN) {
        resp_error(resp, 400, "invalid_field", "name", "name: a friendly name of 2-18 characters is required");
        goto out;
    }
    for (const char *c = name; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            resp_error(resp, 400, "invalid_field", "name", "name: control characters are not allowed");
            goto out;
        }
    if (!(kid = cli_safe_token(16, NULL)) || !(hmac = cli_safe_token(sizeof key, key))) {
        resp_error(resp, 500, "internal", NULL, "random source failed");
        goto out;
    }
    char aad[256], target[192];
    snprintf(aad, sizeof aad, "eab:%s/%s/%s", p.partition, cfg.id, kid);
    snprintf(target, sizeof target, "eab:%s/%s", cfg.id, kid);
    snprintf(o.partition_id, sizeof o.partition_id, "%s", p.partition);
    snprintf(o.kind, sizeof o.kind, "%s", ACME_KIND_EAB);
    snprintf(o.id, sizeof o.id, "%s", kid);
    int r = put_secret(ctx, &p, &o, cfg.id, key, sizeof key, aad, name, "acme.eab.create", target);
    if (r != STORE_OK) {
        if (r == STORE_EINVAL)
            resp_error(resp, 500, "internal", NULL, "could not seal the key");
        else
            resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    /* the HMAC key is shown here and never again */
    json_t *j = eab_json(&o);
    json_object_set_new(j, "hmacKey", json_string(hmac));
    json_object_set_new(j, "directoryUrl", jtake(acme_directory_url(ctx->env.https_base, p.partition, cfg.id)));
    json_object_set_new(j, "notice", json_string("the HMAC key is shown only once; store it now"));
    resp_json(resp, 201, j);
out:
    OPENSSL_cleanse(key, sizeof key);
    if (hmac)
        OPENSSL_cleanse(hmac, strlen(hmac));
    free(hmac);
    free(kid);
    o.parent = NULL;
    obj_rec_free(&o);
    json_decref(body);
    proto_cfg_free(&cfg);
}

void api_eab_delete(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct proto_cfg cfg;
    struct obj_rec o;
    memset(&o, 0, sizeof o);
    if (acme_cfg_for_eab(req, resp, OP_ENROLL_CONFIGURE, &p, &cfg) != 0)
        return;
    const char *kid = req->params[2];
    if (strlen(kid) > OBJ_ID_MAX ||
        ctx->store->ops->obj_get(ctx->store, p.partition, ACME_KIND_EAB, kid, &o) != STORE_OK || !o.parent ||
        strcmp(o.parent, cfg.id) != 0) {
        resp_error(resp, 404, "not_found", "keyId", "no EAB key '%.32s' in configuration '%s'", kid, cfg.id);
        goto out;
    }
    char target[192];
    snprintf(target, sizeof target, "eab:%s/%s", cfg.id, o.id);
    struct audit_rec a = {p.actor, "acme.eab.delete", target, NULL, p.ip, NULL};
    if (ctx->store->ops->obj_delete(ctx->store, p.partition, ACME_KIND_EAB, o.id, &a) != STORE_OK) {
        resp_error(resp, 404, "not_found", "keyId", "no EAB key '%.32s'", kid);
        goto out;
    }
    resp_json(resp, 200, json_pack("{s:s,s:s}", "keyId", o.id, "status", "deleted"));
out:
    obj_rec_free(&o);
    proto_cfg_free(&cfg);
}

/* ---- credentials of a configuration ------------------------------------- */
/* Generic secrets a protocol checks (EST HTTP Basic passwords, CMP MAC
 * secrets, SCEP static challenges): created with a name, the secret shown
 * once, stored sealed with the master key (proto.h reads them). */

static int cfg_for_cred(struct http_req *req, struct http_resp *resp, int op, struct principal *p,
                        struct proto_cfg *cfg)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    if (api_auth(req, resp, req->params[0], op, p) != 0)
        return -1;
    if (proto_cfg_load(ctx->store, p->partition, req->params[1], NULL, cfg, &e) != 0) {
        resp_err(resp, &e);
        return -1;
    }
    if (strcmp(cfg->type, "acme") == 0) {
        resp_error(resp, 400, "invalid_request", "configId",
                   "ACME configurations use EAB keys (/eab-keys), not credentials");
        proto_cfg_free(cfg);
        return -1;
    }
    return 0;
}

static json_t *cred_json(const struct obj_rec *k)
{
    json_error_t je;
    json_t *d = k->json ? json_loads(k->json, 0, &je) : NULL;
    const char *slash = strchr(k->id, '/');
    json_t *j = json_pack("{s:s,s:O?,s:o}", "id", slash ? slash + 1 : k->id, "name", json_object_get(d, "name"),
                          "createdAt", jtime(k->created_at));
    json_decref(d);
    return j;
}

void api_cred_list(struct http_req *req, struct http_resp *resp)
{
    struct principal p;
    struct proto_cfg cfg;
    if (cfg_for_cred(req, resp, OP_ENROLL_READ, &p, &cfg) != 0)
        return;
    api_send_obj_list(req, resp, p.partition, PROTO_CRED_KIND, cfg.id, "credentials", cred_json);
    proto_cfg_free(&cfg);
}

void api_cred_create(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct proto_cfg cfg;
    struct obj_rec o;
    struct jerr je;
    json_t *body = NULL;
    char *secret = NULL, *gen_id = NULL;
    static const char *const keys[] = {"name", "id", NULL};
    const char *name = NULL, *cid = NULL;
    memset(&o, 0, sizeof o);
    memset(&je, 0, sizeof je);
    if (cfg_for_cred(req, resp, OP_ENROLL_CONFIGURE, &p, &cfg) != 0)
        return;
    if (!(body = api_body_object(req, resp)))
        goto out;
    if (jcheck_keys(body, keys, &je) || jget_str(body, "name", 64, &name, &je) ||
        jget_str(body, "id", PROTO_CRED_ID_MAX, &cid, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    if (!name || strlen(name) < 2) {
        resp_error(resp, 400, "invalid_field", "name", "name: 2-64 characters");
        goto out;
    }
    if (cid && strcmp(cfg.type, "mdmws") == 0 && strlen(cid) > 18) {
        resp_error(resp, 400, "invalid_field", "id", "id: an MDM user name of 2-18 characters");
        goto out;
    }
    if (cid && !proto_cred_id_valid(cid)) {
        resp_error(resp, 400, "invalid_field", "id", "id: 2-%d characters of a-z, A-Z, 0-9, '.', '_' and '-'",
                   PROTO_CRED_ID_MAX);
        goto out;
    }
    if (!cid && !(cid = gen_id = random_hex(8))) {
        resp_error(resp, 500, "internal", NULL, "random source failed");
        goto out;
    }
    if (!(secret = cli_safe_token(24, NULL))) {
        resp_error(resp, 500, "internal", NULL, "random source failed");
        goto out;
    }
    snprintf(o.partition_id, sizeof o.partition_id, "%s", p.partition);
    snprintf(o.kind, sizeof o.kind, "%s", PROTO_CRED_KIND);
    snprintf(o.id, sizeof o.id, "%s/%s", cfg.id, cid);
    char aad[256], target[192];
    snprintf(aad, sizeof aad, "cred:%s/%s", p.partition, o.id);
    snprintf(target, sizeof target, "credential:%s", o.id);
    int r = put_secret(ctx, &p, &o, cfg.id, (const unsigned char *)secret, strlen(secret), aad, name,
                       "protocol.credential.create", target);
    if (r == STORE_EINVAL) {
        resp_error(resp, 500, "internal", NULL, "could not seal the secret");
        goto out;
    }
    if (r == STORE_ECONFLICT) {
        resp_error(resp, 409, "conflict", "id", "credential '%s' exists in configuration '%s'", cid, cfg.id);
        goto out;
    }
    if (r != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    json_t *j = cred_json(&o);
    json_object_set_new(j, "secret", json_string(secret));
    json_object_set_new(j, "notice", json_string("the secret is shown only once; store it now"));
    resp_json(resp, 201, j);
out:
    if (secret)
        OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
    free(gen_id);
    o.parent = NULL;
    obj_rec_free(&o);
    json_decref(body);
    proto_cfg_free(&cfg);
}

void api_cred_delete(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct proto_cfg cfg;
    if (cfg_for_cred(req, resp, OP_ENROLL_CONFIGURE, &p, &cfg) != 0)
        return;
    char id[OBJ_ID_MAX + 1];
    const char *cid = req->params[2];
    if (!proto_cred_id_valid(cid)) {
        resp_error(resp, 404, "not_found", "credentialId", "no credential '%.32s'", cid);
        goto out;
    }
    snprintf(id, sizeof id, "%s/%s", cfg.id, cid);
    char target[192];
    snprintf(target, sizeof target, "credential:%s", id);
    struct audit_rec a = {p.actor, "protocol.credential.delete", target, NULL, p.ip, NULL};
    if (ctx->store->ops->obj_delete(ctx->store, p.partition, PROTO_CRED_KIND, id, &a) != STORE_OK) {
        resp_error(resp, 404, "not_found", "credentialId", "no credential '%s' in configuration '%s'", cid, cfg.id);
        goto out;
    }
    resp_json(resp, 200, json_pack("{s:s,s:s}", "id", cid, "status", "deleted"));
out:
    proto_cfg_free(&cfg);
}

/* ---- end entities and enrollment events ------------------------------------ */

static json_t *ee_json(const struct obj_rec *o)
{
    json_error_t je;
    json_t *d = o->json ? json_loads(o->json, 0, &je) : NULL;
    const char *slash = strchr(o->id, '/');
    json_int_t na = json_integer_value(json_object_get(d, "notAfter"));
    json_t *j = json_pack("{s:s,s:O?,s:s,s:O?,s:o,s:o,s:o}", "id", slash ? slash + 1 : o->id, "identifier",
                          json_object_get(d, "identifier"), "status", o->status, "certificates",
                          json_object_get(d, "certificates"), "expiration", jtime(na), "createdAt",
                          jtime(o->created_at), "updatedAt", jtime(o->updated_at));
    json_decref(d);
    return j;
}

void api_ee_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct proto_cfg cfg;
    struct err e;
    if (api_auth(req, resp, req->params[0], OP_ENROLL_READ, &p) != 0)
        return;
    if (proto_cfg_load(ctx->store, p.partition, req->params[1], NULL, &cfg, &e) != 0) {
        resp_err(resp, &e);
        return;
    }
    api_send_obj_list(req, resp, p.partition, PROTO_EE_KIND, cfg.id, "endEntities", ee_json);
    proto_cfg_free(&cfg);
}

static int ee_load(struct http_req *req, struct http_resp *resp, int op, struct principal *p, struct proto_cfg *cfg,
                   struct obj_rec *o)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    char id[OBJ_ID_MAX + 1];
    memset(o, 0, sizeof *o);
    if (api_auth(req, resp, req->params[0], op, p) != 0)
        return -1;
    if (proto_cfg_load(ctx->store, p->partition, req->params[1], NULL, cfg, &e) != 0) {
        resp_err(resp, &e);
        return -1;
    }
    const char *eid = req->params[2];
    size_t n = strlen(eid);
    bool hex = n == 32;
    for (size_t i = 0; hex && i < n; i++)
        hex = (eid[i] >= '0' && eid[i] <= '9') || (eid[i] >= 'a' && eid[i] <= 'f');
    snprintf(id, sizeof id, "%s/%s", cfg->id, eid);
    if (!hex || ctx->store->ops->obj_get(ctx->store, p->partition, PROTO_EE_KIND, id, o) != STORE_OK) {
        resp_error(resp, 404, "not_found", "endEntityId", "no end entity '%.40s' in configuration '%s'", eid, cfg->id);
        proto_cfg_free(cfg);
        return -1;
    }
    return 0;
}

void api_ee_get(struct http_req *req, struct http_resp *resp)
{
    struct principal p;
    struct proto_cfg cfg;
    struct obj_rec o;
    if (ee_load(req, resp, OP_ENROLL_READ, &p, &cfg, &o) != 0)
        return;
    resp_json(resp, 200, ee_json(&o));
    obj_rec_free(&o);
    proto_cfg_free(&cfg);
}

/* activate | deactivate | decommission (permanent: its certificates are
 * revoked with cessationOfOperation). */
void api_ee_action(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct proto_cfg cfg;
    struct obj_rec o;
    struct ca_rec ca;
    json_t *d = NULL;
    const char *action = req->params[3];
    memset(&ca, 0, sizeof ca);
    if (strcmp(action, "activate") != 0 && strcmp(action, "deactivate") != 0 && strcmp(action, "decommission") != 0) {
        resp_error(resp, 404, "not_found", NULL, "actions: activate, deactivate, decommission");
        return;
    }
    if (ee_load(req, resp, OP_ENROLL_CONFIGURE, &p, &cfg, &o) != 0)
        return;
    if (strcmp(o.status, "decommissioned") == 0) {
        resp_error(resp, 409, "conflict", "status", "the end entity is decommissioned (permanent)");
        goto out;
    }
    bool decommission = strcmp(action, "decommission") == 0;
    const char *to = decommission ? "decommissioned" : strcmp(action, "activate") == 0 ? "active" : "inactive";
    json_error_t je;
    d = o.json ? json_loads(o.json, 0, &je) : NULL;
    size_t revoked = 0, here = 0;
    if (decommission) {
        /* each certificate at the CA that issued it: the configuration may
         * have moved to another CA since (older records name none: the
         * configuration's CA) */
        const json_t *cas = json_object_get(d, "certificateCas");
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(d, "certificates"), i, v) {
            struct err e;
            const char *serial = json_string_value(v);
            const char *cid = serial ? json_string_value(json_object_get(cas, serial)) : NULL;
            if (!serial)
                continue;
            if (!cid)
                cid = cfg.ca_id;
            if (strcmp(ca.id, cid) != 0) {
                if (here)
                    api_status_changed_crl(ctx, &ca, true);
                here = 0;
                ca_rec_free(&ca);
                memset(&ca, 0, sizeof ca);
                if (ctx->store->ops->ca_get(ctx->store, p.partition, cid, &ca) != STORE_OK) {
                    ca_rec_free(&ca);
                    memset(&ca, 0, sizeof ca);
                    continue;
                }
            }
            if (api_cert_set_status(ctx, &ca, serial, "revoked", 5, 0, "end entity decommissioned", p.actor, p.ip,
                                    false, &e) == 0) {
                revoked++;
                here++;
            }
        }
        if (here)
            api_status_changed_crl(ctx, &ca, true);
    }
    snprintf(o.status, sizeof o.status, "%s", to);
    char target[192], detail[96];
    snprintf(target, sizeof target, "end-entity:%s", o.id);
    snprintf(detail, sizeof detail, "{\"status\":\"%s\",\"revoked\":%zu}", to, revoked);
    char act[40];
    snprintf(act, sizeof act, "end-entity.%s", action);
    struct audit_rec a = {p.actor, act, target, detail, p.ip, NULL};
    if (ctx->store->ops->obj_put(ctx->store, &o, OBJ_UPDATE, &a) != STORE_OK) {
        resp_error(resp, 409, "conflict", NULL, "the end entity changed meanwhile; retry");
        goto out;
    }
    json_t *j = ee_json(&o);
    json_object_set_new(j, "revokedCertificates", json_integer((json_int_t)revoked));
    resp_json(resp, 200, j);
out:
    json_decref(d);
    ca_rec_free(&ca);
    obj_rec_free(&o);
    proto_cfg_free(&cfg);
}

struct ev_walk {
    const char *cfg;
    json_t *arr;
    unsigned limit;
    int64_t last;
};

/* Is the audit record about configuration `cfg`? Requesters are
 * "<type>:<cfg>" or "<type>:<cfg>/<who>"; refusals and challenges target
 * "protocol:<cfg>". */
static bool ev_mine(const struct audit_row *r, const char *cfg)
{
    size_t n = strlen(cfg);
    const char *colon = r->actor ? strchr(r->actor, ':') : NULL;
    if (colon && strncmp(colon + 1, cfg, n) == 0 && (colon[1 + n] == 0 || colon[1 + n] == '/')) {
        static const char *const kinds[] = {"acme", "scep", "intune", "mdmws", "mdmws-scep", "est", "cmp"};
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if ((size_t)(colon - r->actor) == strlen(kinds[i]) && strncmp(r->actor, kinds[i], strlen(kinds[i])) == 0)
                return true;
    }
    return r->target && strncmp(r->target, "protocol:", 9) == 0 && strcmp(r->target + 9, cfg) == 0;
}

static int ev_cb(const struct audit_row *r, void *arg)
{
    struct ev_walk *w = arg;
    const char *type = NULL;
    if (!ev_mine(r, w->cfg))
        return 0;
    json_error_t je;
    json_t *d = r->detail ? json_loads(r->detail, 0, &je) : NULL;
    if (strcmp(r->action, "cert.issue") == 0 || strcmp(r->action, "cert.issue.pkcs12") == 0)
        type = r->actor && strstr(r->actor, "/renewal") ? "renew" : "issue";
    else if (strcmp(r->action, "cert.revoke") == 0)
        type = "revoke";
    else if (strcmp(r->action, "mdm.challenge.issue") == 0)
        type = "challenge";
    else if (strcmp(r->action, "enroll.refused") == 0)
        type = json_string_value(json_object_get(d, "type")) ? json_string_value(json_object_get(d, "type")) : "issue";
    if (type) {
        char id[24], t[40];
        snprintf(id, sizeof id, "%llx", (unsigned long long)r->seq);
        time_format_rfc3339(r->at_ms / 1000, t, sizeof t);
        const char *slash = r->target ? strchr(r->target, '/') : NULL;
        bool failed = r->result && strcmp(r->result, "success") != 0;
        json_array_append_new(
            w->arr, json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?,s:s,s:s?}", "eventId", id, "time", t, "type", type, "status",
                              failed ? "failed" : "done", "endEntity", json_string_value(json_object_get(d, "subject")),
                              "serialNumber", strncmp(r->target, "cert:", 5) == 0 && slash ? slash + 1 : NULL,
                              "actor", r->actor, "reason", json_string_value(json_object_get(d, "reason"))));
    }
    json_decref(d);
    w->last = r->seq;
    return json_array_size(w->arr) >= w->limit ? 1 : 0;
}

void api_proto_events(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct proto_cfg cfg;
    struct err e;
    struct audit_filter f;
    memset(&f, 0, sizeof f);
    if (api_auth(req, resp, req->params[0], OP_AUDIT_READ, &p) != 0)
        return;
    if (proto_cfg_load(ctx->store, p.partition, req->params[1], NULL, &cfg, &e) != 0) {
        resp_err(resp, &e);
        return;
    }
    const char *after = http_query(req, "after"), *limit = http_query(req, "limit");
    struct ev_walk w = {cfg.id, json_array(), 100, 0};
    char *end = NULL;
    if (after) {
        long long v = strtoll(after, &end, 16);
        if (!end || *end || v < 0) {
            resp_error(resp, 400, "invalid_field", "after", "after: an eventId (hex)");
            goto out;
        }
        f.after_seq = v;
    }
    if (limit) {
        long v = strtol(limit, &end, 10);
        if (!end || *end || v < 1 || v > 1000) {
            resp_error(resp, 400, "invalid_field", "limit", "limit: 1-1000");
            goto out;
        }
        w.limit = (unsigned)v;
    }
    int rc = ctx->store->ops->audit_iter(ctx->store, p.partition, &f, ev_cb, &w);
    if (rc != STORE_OK && rc != 1) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    char next[24];
    snprintf(next, sizeof next, "%llx", (unsigned long long)w.last);
    resp_json(resp, 200, json_pack("{s:O,s:o}", "events", w.arr,
                                   "next", json_array_size(w.arr) >= w.limit ? json_string(next) : json_null()));
out:
    json_decref(w.arr);
    proto_cfg_free(&cfg);
}
