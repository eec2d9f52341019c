#include "scep/mdmws.h"
#include "util/limits.h"

#include "api/api_json.h"
#include "authz/authz.h"
#include "ca/issue.h"
#include "util/codec.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "x509/dn.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHALLENGE_TTL_DEFAULT_MIN 60
#define VAR_MAX LIMIT_MDM_VARIABLE_BYTES /* bytes of one variable value */
#define VARS_MAX LIMIT_MDM_VARIABLES    /* variables in one request */
#define LIST_MAX 1000         /* certificates listed at most */
#define MDM_USER_MAX 64
#define MDM_PASS_MAX 256

static const char *const always_vars[] = {"igusername", "iggroup", "devicetype"};

const char *const mdmws_setting_keys[] = {"challengeTtlMinutes", NULL};

int mdmws_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e)
{
    long long ttl = CHALLENGE_TTL_DEFAULT_MIN;
    bool has = false;
    if (jget_int(body, "challengeTtlMinutes", 1, 7 * 24 * 60, &ttl, &has, e))
        return -1;
    if (has || create)
        json_object_set_new(doc, "challengeTtlMinutes", json_integer(ttl));
    return 0;
}

char *mdmws_scep_url(const char *https_base, const char *partition, const char *config)
{
    char *u = NULL;
    if (asprintf(&u, "%s/mdm/v2/scep/%s/%s", https_base, partition, config) < 0)
        return NULL;
    return u;
}

void mdm_grant_free(struct mdm_grant *g)
{
    free(g->subject);
    g->subject = NULL;
    obj_rec_free(&g->took);
    memset(&g->took, 0, sizeof g->took);
}

void mdmws_return_challenge(struct store *st, struct mdm_grant *g)
{
    if (!g->took.id[0])
        return;
    g->took.version = 0;
    if (st->ops->obj_put(st, &g->took, OBJ_CREATE, NULL) != STORE_OK)
        log_warn("mdmws %s: a challenge taken for a refused request could not be put back", g->took.partition_id);
    obj_rec_free(&g->took);
    memset(&g->took, 0, sizeof g->took);
}

/* ---- RDN formats ---------------------------------------------------------- */

/* RFC 4514 escaping of one attribute value. */
static int dn_escape_append(struct buf *b, const char *v)
{
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        bool esc = strchr(",+\"\\<>;=", c) != NULL || (i == 0 && (c == '#' || c == ' ')) || (i == n - 1 && c == ' ');
        if ((esc && buf_append(b, "\\", 1) != 0) || buf_append(b, &c, 1) != 0)
            return -1;
    }
    return 0;
}

static bool var_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Substitutes <variables> of `fmt` from `vars` (object of strings; NULL =
 * "x" for every variable, for validation) and appends ",parent". NULL with
 * the problem in e (field "variables" naming the missing one). */
static char *resolve_dn(const char *fmt, const char *parent, const json_t *vars, struct err *e)
{
    struct buf b = {0};
    char *out = NULL;
    const char *p = fmt;
    while (*p) {
        const char *lt = strchr(p, '<');
        if (!lt) {
            if (buf_append_str(&b, p) != 0)
                goto oom;
            break;
        }
        if (buf_append(&b, p, (size_t)(lt - p)) != 0)
            goto oom;
        const char *gt = strchr(lt, '>');
        if (!gt || !var_name_ok(lt + 1, (size_t)(gt - lt - 1))) {
            err_set(e, 400, "invalid_field", "rdnFormat", "rdnFormat: placeholders are <name> of a-z, 0-9 and '_'");
            goto out;
        }
        char name[40];
        snprintf(name, sizeof name, "%.*s", (int)(gt - lt - 1), lt + 1);
        const char *v = vars ? json_string_value(json_object_get(vars, name)) : "x";
        if (!v || !*v) {
            err_set(e, 400, "invalid_field", "variables", "variables.%s: required by the Digital ID's RDN format",
                    name);
            goto out;
        }
        if (dn_escape_append(&b, v) != 0)
            goto oom;
        p = gt + 1;
    }
    if (parent && *parent && (buf_append_str(&b, ",") != 0 || buf_append_str(&b, parent) != 0))
        goto oom;
    if (buf_append(&b, "", 1) != 0)
        goto oom;
    X509_NAME *nm = NULL;
    char dnerr[200];
    if (dn_parse((const char *)b.data, &nm, dnerr, sizeof dnerr) != 0) {
        err_set(e, 400, "invalid_field", vars ? "variables" : "rdnFormat", "subject: %s", dnerr);
        goto out;
    }
    X509_NAME_free(nm);
    out = (char *)b.data;
    b.data = NULL;
    goto out;
oom:
    err_set(e, 500, "internal", NULL, "out of memory");
out:
    buf_free(&b);
    return out;
}

/* ---- Digital IDs (admin API) ------------------------------------------------ */

static bool did_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 2 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              strchr(" ._-", s[i])))
            return false;
    return true;
}

static int load_cfg_admin(struct http_req *req, struct http_resp *resp, int op, struct principal *p,
                          struct proto_cfg *cfg)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    if (api_auth(req, resp, req->params[0], op, p) != 0)
        return -1;
    if (proto_cfg_load(ctx->store, p->partition, req->params[1], "mdmws", cfg, &e) != 0) {
        resp_err(resp, &e);
        return -1;
    }
    return 0;
}

static json_t *did_json(const struct obj_rec *o)
{
    json_error_t je;
    json_t *j = o->json ? json_loads(o->json, 0, &je) : NULL;
    if (!j)
        j = json_object();
    json_object_set_new(j, "createdAt", jtime(o->created_at));
    return j;
}

void api_digital_id_list(struct http_req *req, struct http_resp *resp)
{
    struct principal p;
    struct proto_cfg cfg;
    if (load_cfg_admin(req, resp, OP_ENROLL_READ, &p, &cfg) != 0)
        return;
    api_send_obj_list(req, resp, p.partition, MDM_DIGITAL_ID_KIND, cfg.id, "digitalIds", did_json);
    proto_cfg_free(&cfg);
}

/* The profile must be of group mdmws and assigned to the CA. */
static int profile_ok(struct api_ctx *ctx, const struct proto_cfg *cfg, const char *pid, struct err *e)
{
    struct ca_rec ca;
    char **ids = NULL;
    size_t n = 0;
    int rc = -1;
    const struct profile *pr = profile_resolve(ctx->store, cfg->partition, pid, e);
    memset(&ca, 0, sizeof ca);
    if (!pr || strcmp(pr->group, "mdmws") != 0) {
        err_set(e, 400, "invalid_field", "profileId", "profileId: a profile of group 'mdmws' is required");
        goto out;
    }
    if (ctx->store->ops->ca_get(ctx->store, cfg->partition, cfg->ca_id, &ca) != STORE_OK ||
        ctx->store->ops->ca_profile_list(ctx->store, cfg->partition, ca.pk, &ids, &n) != STORE_OK) {
        err_set(e, 400, "invalid_field", "caId", "the configuration's CA is not available");
        goto out;
    }
    for (size_t i = 0; i < n && rc != 0; i++)
        if (strcmp(ids[i], pid) == 0)
            rc = 0;
    if (rc != 0)
        err_set(e, 400, "invalid_field", "profileId", "profileId: '%s' is not assigned to CA '%s'", pid, cfg->ca_id);
out:
    store_free_ids(ids, n);
    ca_rec_free(&ca);
    profile_release(pr);
    return rc;
}

void api_digital_id_create(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct proto_cfg cfg;
    struct obj_rec o;
    struct jerr je;
    struct err e;
    json_t *body = NULL, *doc = NULL;
    char *check = NULL;
    static const char *const keys[] = {"name", "parentDn", "rdnFormat", "profileId", NULL};
    const char *name = NULL, *parent = NULL, *fmt = NULL, *pid = NULL;
    memset(&o, 0, sizeof o);
    memset(&je, 0, sizeof je);
    memset(&e, 0, sizeof e);
    if (load_cfg_admin(req, resp, OP_ENROLL_CONFIGURE, &p, &cfg) != 0)
        return;
    if (!(body = api_body_object(req, resp)))
        goto out;
    if (jcheck_keys(body, keys, &je) || jget_str(body, "name", 64, &name, &je) ||
        jget_str(body, "parentDn", 1024, &parent, &je) || jget_str(body, "rdnFormat", 1024, &fmt, &je) ||
        jget_str(body, "profileId", 64, &pid, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    if (!did_name_ok(name)) {
        resp_error(resp, 400, "invalid_field", "name", "name: 2-64 characters of letters, digits, ' ', '.', '_', '-'");
        goto out;
    }
    if (!fmt || !*fmt) {
        resp_error(resp, 400, "invalid_field", "rdnFormat", "rdnFormat: required, e.g. CN=<igusername>,OU=<iggroup>");
        goto out;
    }
    if (!pid)
        pid = cfg.profile_id;
    if (!(check = resolve_dn(fmt, parent, NULL, &e)) || profile_ok(ctx, &cfg, pid, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    doc = json_pack("{s:s,s:s,s:s,s:s,s:[s,s,s]}", "name", name, "parentDn", parent ? parent : "", "rdnFormat", fmt,
                    "profileId", pid, "alwaysPresentVariables", always_vars[0], always_vars[1], always_vars[2]);
    snprintf(o.partition_id, sizeof o.partition_id, "%s", p.partition);
    snprintf(o.kind, sizeof o.kind, "%s", MDM_DIGITAL_ID_KIND);
    snprintf(o.id, sizeof o.id, "%s/%s", cfg.id, name);
    o.parent = cfg.id;
    snprintf(o.status, sizeof o.status, "active");
    o.json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    char target[192];
    snprintf(target, sizeof target, "digital-id:%s", o.id);
    struct audit_rec a = {p.actor, "mdm.digital-id.create", target, o.json, p.ip, NULL};
    int r = o.json ? ctx->store->ops->obj_put(ctx->store, &o, OBJ_CREATE, &a) : STORE_EIO;
    if (r == STORE_ECONFLICT)
        resp_error(resp, 409, "conflict", "name", "Digital ID '%s' exists in configuration '%s'", name, cfg.id);
    else if (r != STORE_OK)
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
    else
        resp_json(resp, 201, did_json(&o));
out:
    free(check);
    o.parent = NULL;
    obj_rec_free(&o);
    json_decref(doc);
    json_decref(body);
    proto_cfg_free(&cfg);
}

void api_digital_id_delete(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct proto_cfg cfg;
    if (load_cfg_admin(req, resp, OP_ENROLL_CONFIGURE, &p, &cfg) != 0)
        return;
    char id[OBJ_ID_MAX + 1], target[192];
    if (!did_name_ok(req->params[2])) {
        resp_error(resp, 404, "not_found", "name", "no Digital ID '%.64s'", req->params[2]);
        goto out;
    }
    snprintf(id, sizeof id, "%s/%s", cfg.id, req->params[2]);
    snprintf(target, sizeof target, "digital-id:%s", id);
    struct audit_rec a = {p.actor, "mdm.digital-id.delete", target, NULL, p.ip, NULL};
    if (ctx->store->ops->obj_delete(ctx->store, p.partition, MDM_DIGITAL_ID_KIND, id, &a) != STORE_OK)
        resp_error(resp, 404, "not_found", "name", "no Digital ID '%s' in configuration '%s'", req->params[2], cfg.id);
    else
        resp_json(resp, 200, json_pack("{s:s,s:s}", "name", req->params[2], "status", "deleted"));
out:
    proto_cfg_free(&cfg);
}

/* ---- the MDM web service ----------------------------------------------------- */

struct mdm_req {
    struct proto_cfg cfg;
    char user[MDM_USER_MAX + 1];
};

/* Configuration + HTTP Basic credentials of the MDM. */
static int mdm_begin(struct http_req *req, struct http_resp *resp, struct mdm_req *m)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    char pass[MDM_PASS_MAX + 1];
    memset(m, 0, sizeof *m);
    snprintf(req->partition, sizeof req->partition, "%.64s", req->params[0]);
    if (proto_cfg_load(ctx->store, req->params[0], req->params[1], "mdmws", &m->cfg, &e) != 0) {
        resp_error(resp, 404, "not_found", "configId", "no MDM web service at this URL");
        return -1;
    }
    bool ok = proto_basic_auth(http_header(req, "Authorization"), m->user, sizeof m->user, pass, sizeof pass) == 0 &&
              proto_cred_check(ctx->store, ctx->env.mkey, m->cfg.partition, m->cfg.id, m->user, pass);
    OPENSSL_cleanse(pass, sizeof pass);
    if (!ok) {
        resp_error(resp, 401, "unauthorized", NULL, "HTTP Basic credentials of this configuration are required");
        resp_header(resp, "WWW-Authenticate", "Basic realm=\"pkiaas-mdm\"");
        proto_cfg_free(&m->cfg);
        return -1;
    }
    /* the partition's rate limits, as for every other interface (the
     * route's class: certificates for /pkcs12) */
    char ra[24];
    int limit = 0;
    bool premium = false;
    if (api_rate_limited(req, m->cfg.partition, ra, &limit, &premium)) {
        resp_error(resp, 429, "TooManyRequests", NULL, "rate limit of %d %s requests reached for this partition",
                   limit, api_capability_name(req->capability));
        resp_header(resp, "Retry-After", ra);
        proto_cfg_free(&m->cfg);
        return -1;
    }
    return 0;
}

/* Digital ID + variables -> subject and profile. */
static int resolve_request(struct api_ctx *ctx, const struct mdm_req *m, const json_t *body, char **subject,
                           char *profile, size_t pn, char *did_out, size_t dn, struct err *e)
{
    struct obj_rec o;
    json_t *d = NULL;
    int rc = -1;
    const char *did = json_string_value(json_object_get(body, "digitalId"));
    const json_t *vars = json_object_get(body, "variables");
    char id[OBJ_ID_MAX + 1];
    memset(&o, 0, sizeof o);
    if (!did || !did_name_ok(did)) {
        err_set(e, 400, "invalid_field", "digitalId", "digitalId: the name of one of the configuration's Digital IDs");
        return -1;
    }
    if (!json_is_object(vars) || json_object_size(vars) > VARS_MAX) {
        err_set(e, 400, "invalid_field", "variables", "variables: an object of at most %d strings", VARS_MAX);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)vars, k, v) {
        if (!var_name_ok(k, strlen(k)) || !json_is_string(v) || json_string_length(v) > VAR_MAX) {
            err_set(e, 400, "invalid_field", "variables", "variables.%.32s: a string of at most %d bytes", k, VAR_MAX);
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof always_vars / sizeof always_vars[0]; i++)
        if (!json_string_value(json_object_get(vars, always_vars[i])) ||
            !*json_string_value(json_object_get(vars, always_vars[i]))) {
            err_set(e, 400, "invalid_field", "variables", "variables.%s: required (always present)", always_vars[i]);
            return -1;
        }
    snprintf(id, sizeof id, "%s/%s", m->cfg.id, did);
    if (ctx->store->ops->obj_get(ctx->store, m->cfg.partition, MDM_DIGITAL_ID_KIND, id, &o) != STORE_OK) {
        err_set(e, 404, "not_found", "digitalId", "no Digital ID '%s' in configuration '%s'", did, m->cfg.id);
        return -1;
    }
    json_error_t je;
    d = o.json ? json_loads(o.json, 0, &je) : NULL;
    const char *fmt = json_string_value(json_object_get(d, "rdnFormat"));
    const char *pid = json_string_value(json_object_get(d, "profileId"));
    if (!fmt || !pid) {
        err_set(e, 500, "internal", NULL, "Digital ID '%s' is damaged", did);
        goto out;
    }
    char *raw = resolve_dn(fmt, json_string_value(json_object_get(d, "parentDn")), vars, e);
    if (!raw)
        goto out;
    /* in the one form every path names the end entity by (the issued
     * certificate's subject printed back), so a renewal finds it */
    *subject = proto_ee_identifier(raw);
    free(raw);
    if (!*subject) {
        err_set(e, 500, "internal", NULL, "out of memory");
        goto out;
    }
    snprintf(profile, pn, "%s", pid);
    snprintf(did_out, dn, "%s", did);
    rc = 0;
out:
    json_decref(d);
    obj_rec_free(&o);
    return rc;
}

static void challenge_key(const char *cfg, const char *challenge, char *out, size_t n)
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)challenge, strlen(challenge), h);
    char *hex = hex_encode(h, sizeof h);
    snprintf(out, n, "%s/%s", cfg, hex ? hex : "");
    free(hex);
}

static void h_challenge(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct mdm_req m;
    struct err e;
    struct obj_rec o;
    json_t *body = NULL, *doc = NULL;
    char *subject = NULL, *chal = NULL, profile[STORE_ID_MAX + 1], did[80];
    memset(&o, 0, sizeof o);
    memset(&e, 0, sizeof e);
    if (mdm_begin(req, resp, &m) != 0)
        return;
    if (!(body = api_body_object(req, resp)))
        goto out;
    if (resolve_request(ctx, &m, body, &subject, profile, sizeof profile, did, sizeof did, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    struct profile const *pr = profile_resolve(ctx->store, m.cfg.partition, profile, &e);
    bool p12 = pr && pr->pkcs12;
    profile_release(pr);
    if (p12) {
        resp_error(resp, 400, "invalid_field", "digitalId",
                   "Digital ID '%s' issues PKCS#12 (profile '%s'): use the pkcs12 operation", did, profile);
        goto out;
    }
    if (!(chal = random_token(24))) {
        resp_error(resp, 500, "internal", NULL, "random source failed");
        goto out;
    }
    json_int_t ttl = json_integer_value(json_object_get(m.cfg.doc, "challengeTtlMinutes"));
    int64_t expires = time_now() + (ttl > 0 ? ttl : CHALLENGE_TTL_DEFAULT_MIN) * 60;
    snprintf(o.partition_id, sizeof o.partition_id, "%s", m.cfg.partition);
    snprintf(o.kind, sizeof o.kind, "%s", MDM_CHALLENGE_KIND);
    challenge_key(m.cfg.id, chal, o.id, sizeof o.id);
    o.parent = m.cfg.id; /* deleted with the configuration */
    o.expires_at = expires;
    doc = json_pack("{s:s,s:s,s:s,s:s}", "digitalId", did, "profileId", profile, "subject", subject, "user", m.user);
    o.json = json_dumps(doc, JSON_COMPACT);
    char who[160], target[96];
    snprintf(who, sizeof who, "mdmws:%s/%s", m.cfg.id, m.user);
    snprintf(target, sizeof target, "protocol:%s", m.cfg.id);
    json_t *det = json_pack("{s:s,s:s}", "subject", subject, "digitalId", did);
    char *detail = det ? json_dumps(det, JSON_COMPACT) : NULL;
    json_decref(det);
    struct audit_rec a = {who, "mdm.challenge.issue", target, detail, req->ip, NULL};
    int r = o.json ? ctx->store->ops->obj_put(ctx->store, &o, OBJ_CREATE, &a) : STORE_EIO;
    free(detail);
    if (r != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    resp_json(resp, 201, json_pack("{s:s,s:o,s:s,s:o,s:s}", "challenge", chal, "expiresAt", jtime(expires), "subject",
                                   subject, "scepUrl",
                                   jtake(mdmws_scep_url(ctx->env.https_base, m.cfg.partition, m.cfg.id)),
                                   "digitalId", did));
out:
    if (chal)
        OPENSSL_cleanse(chal, strlen(chal));
    free(chal);
    free(subject);
    json_decref(doc);
    json_decref(body);
    o.parent = NULL; /* borrowed from the configuration */
    obj_rec_free(&o);
    proto_cfg_free(&m.cfg);
}

bool mdmws_challenge_live(struct store *st, const char *partition, const char *cfg, const char *challenge)
{
    struct obj_rec o;
    char id[OBJ_ID_MAX + 1];
    if (!challenge || !*challenge)
        return false;
    challenge_key(cfg, challenge, id, sizeof id);
    if (st->ops->obj_get(st, partition, MDM_CHALLENGE_KIND, id, &o) != STORE_OK)
        return false;
    obj_rec_free(&o);
    return true;
}

int mdmws_take_challenge(struct store *st, const char *partition, const char *cfg, const char *challenge,
                         struct mdm_grant *out)
{
    struct obj_rec o;
    char id[OBJ_ID_MAX + 1];
    json_t *d = NULL;
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!challenge || !*challenge)
        return -1;
    challenge_key(cfg, challenge, id, sizeof id);
    if (st->ops->obj_get(st, partition, MDM_CHALLENGE_KIND, id, &o) != STORE_OK)
        return -1;
    /* single use: whoever deletes it owns it */
    if (st->ops->obj_delete(st, partition, MDM_CHALLENGE_KIND, id, NULL) != STORE_OK)
        goto out;
    json_error_t je;
    d = o.json ? json_loads(o.json, 0, &je) : NULL;
    const char *s = json_string_value(json_object_get(d, "subject"));
    const char *p = json_string_value(json_object_get(d, "profileId"));
    const char *did = json_string_value(json_object_get(d, "digitalId"));
    if (!s || !p || !did || !(out->subject = strdup(s)))
        goto out;
    snprintf(out->profile_id, sizeof out->profile_id, "%s", p);
    snprintf(out->digital_id, sizeof out->digital_id, "%s", did);
    out->took = o; /* kept, to be put back if the request is refused */
    memset(&o, 0, sizeof o);
    rc = 0;
out:
    json_decref(d);
    obj_rec_free(&o);
    return rc;
}

static void h_pkcs12(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct mdm_req m;
    struct err e;
    struct issue_result res;
    json_t *body = NULL;
    char *subject = NULL, *ident = NULL, *p12 = NULL, profile[STORE_ID_MAX + 1], did[80], who[160];
    memset(&e, 0, sizeof e);
    memset(&res, 0, sizeof res);
    if (mdm_begin(req, resp, &m) != 0)
        return;
    if (!(body = api_body_object(req, resp)))
        goto out;
    if (resolve_request(ctx, &m, body, &subject, profile, sizeof profile, did, sizeof did, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    struct profile const *pr = profile_resolve(ctx->store, m.cfg.partition, profile, &e);
    bool p12_profile = pr && pr->pkcs12;
    profile_release(pr);
    if (!p12_profile) {
        resp_error(resp, 400, "invalid_field", "digitalId",
                   "Digital ID '%s' enrols by SCEP (profile '%s'): use the challenges operation", did, profile);
        goto out;
    }
    /* the end entity (its subject) may be deactivated or decommissioned */
    if (!(ident = proto_ee_identifier(subject))) {
        resp_error(resp, 500, "internal", NULL, "out of memory");
        goto out;
    }
    if (proto_ee_allowed(ctx->store, m.cfg.partition, m.cfg.id, ident) != 0) {
        resp_error(resp, 409, "conflict", "digitalId", "the end entity '%s' is deactivated or decommissioned",
                   subject);
        goto out;
    }
    const char *pw = json_string_value(json_object_get(body, "password"));
    const char *kt = json_string_value(json_object_get(body, "keyType"));
    snprintf(who, sizeof who, "mdmws:%s/%s", m.cfg.id, m.user);
    struct issue_req ir = {
        .partition = m.cfg.partition,
        .ca_id = m.cfg.ca_id,
        .profile_id = profile,
        .key_type = kt ? kt : "RSA-2048",
        .p12_password = pw,
        .subject = subject,
        .requester = who,
        .requester_ip = req->ip,
    };
    if (issue_certificate(&ctx->env, &ir, &res, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    /* recorded on the end entity, so its decommissioning revokes it */
    proto_ee_record(ctx->store, m.cfg.partition, m.cfg.id, ident, m.cfg.ca_id, res.serial, res.not_after);
    if (!(p12 = b64_encode(res.p12, res.p12_len))) {
        resp_error(resp, 500, "internal", NULL, "out of memory");
        goto out;
    }
    resp_json(resp, 201, json_pack("{s:s,s:s,s:o,s:s,s:s}", "serialNumber", res.serial, "pkcs12", p12, "notAfter",
                                   jtime(res.not_after), "subject", subject, "digitalId", did));
out:
    free(p12);
    free(subject);
    free(ident);
    json_decref(body);
    issue_result_free(&res);
    proto_cfg_free(&m.cfg);
}

static bool issued_here(const struct cert_rec *c, const char *cfg)
{
    char pfx[64], pfx2[64];
    snprintf(pfx, sizeof pfx, "mdmws:%s/", cfg);
    snprintf(pfx2, sizeof pfx2, "mdmws-scep:%s/", cfg);
    return c->requester && (strncmp(c->requester, pfx, strlen(pfx)) == 0 || strncmp(c->requester, pfx2, strlen(pfx2)) == 0);
}

static void h_revoke(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct mdm_req m;
    struct err e;
    struct ca_rec ca;
    struct cert_rec cr;
    json_t *body = NULL;
    char serial[48], who[160];
    memset(&e, 0, sizeof e);
    memset(&ca, 0, sizeof ca);
    memset(&cr, 0, sizeof cr);
    if (mdm_begin(req, resp, &m) != 0)
        return;
    if (req->body.len && !(body = api_body_object(req, resp)))
        goto out;
    const char *rname = json_string_value(json_object_get(body, "reason"));
    int reason = rname ? api_reason_code(rname) : 0;
    if (reason < 0) {
        resp_error(resp, 400, "invalid_field", "reason", "reason: an RFC 5280 reason name, e.g. keyCompromise");
        goto out;
    }
    if (api_serial_norm(req->params[2], serial, sizeof serial) != 0 ||
        ctx->store->ops->ca_get(ctx->store, m.cfg.partition, m.cfg.ca_id, &ca) != STORE_OK ||
        ctx->store->ops->cert_get(ctx->store, m.cfg.partition, ca.pk, serial, &cr) != STORE_OK ||
        !issued_here(&cr, m.cfg.id)) {
        resp_error(resp, 404, "not_found", "serialNumber", "no certificate %.48s issued through this configuration",
                   req->params[2]);
        goto out;
    }
    snprintf(who, sizeof who, "mdmws:%s/%s", m.cfg.id, m.user);
    if (api_cert_set_status(ctx, &ca, serial, "revoked", reason, 0, NULL, who, req->ip, true, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    resp_json(resp, 200, json_pack("{s:s,s:s}", "serialNumber", serial, "status", "revoked"));
out:
    json_decref(body);
    cert_rec_free(&cr);
    ca_rec_free(&ca);
    proto_cfg_free(&m.cfg);
}

/* GET .../certificates[?limit=N&cursor=C]: the certificates issued through
 * this configuration (by /pkcs12 or its SCEP endpoint), soonest to expire
 * first, at most `limit` (default and maximum LIST_MAX) a page; nextCursor
 * names the next page. The store filters by requester, so a CA with many
 * certificates from elsewhere hides none of these. */
static void h_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct mdm_req m;
    struct ca_rec ca;
    struct cert_list l;
    struct cert_query q;
    char pfx[64], pfx2[64], cursor_serial[48];
    memset(&ca, 0, sizeof ca);
    memset(&l, 0, sizeof l);
    memset(&q, 0, sizeof q);
    if (mdm_begin(req, resp, &m) != 0)
        return;
    const char *limit = http_query(req, "limit"), *cursor = http_query(req, "cursor");
    unsigned want = LIST_MAX;
    if (limit) {
        char *end = NULL;
        long v = strtol(limit, &end, 10);
        if (!end || *end || end == limit || v < 1 || v > LIST_MAX) {
            resp_error(resp, 400, "invalid_field", "limit", "limit: 1-%d", LIST_MAX);
            goto out;
        }
        want = (unsigned)v;
    }
    if (cursor && api_cert_cursor_parse(cursor, &q, cursor_serial, sizeof cursor_serial) != 0) {
        resp_error(resp, 400, "invalid_field", "cursor", "cursor: not a value returned as nextCursor");
        goto out;
    }
    /* the two requester forms issued_here() accepts */
    snprintf(pfx, sizeof pfx, "mdmws:%s/", m.cfg.id);
    snprintf(pfx2, sizeof pfx2, "mdmws-scep:%s/", m.cfg.id);
    q.requester_prefix[0] = pfx;
    q.requester_prefix[1] = pfx2;
    q.limit = want + 1; /* one more tells whether there is a next page */
    if (ctx->store->ops->ca_get(ctx->store, m.cfg.partition, m.cfg.ca_id, &ca) != STORE_OK ||
        ctx->store->ops->cert_list(ctx->store, m.cfg.partition, ca.pk, &q, &l) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n && i < want; i++) {
        const struct cert_rec *c = &l.items[i];
        if (!issued_here(c, m.cfg.id))
            continue; /* the store's filter, checked again */
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:o,s:o,s:s?,s:s?}", "serialNumber", c->serial, "status",
                                             c->status, "subject", c->subject ? c->subject : "", "notBefore",
                                             jtime(c->not_before), "notAfter", jtime(c->not_after), "profileId",
                                             c->profile_id, "requester", c->requester));
    }
    resp_json(resp, 200, json_pack("{s:o,s:o}", "certificates", arr, "nextCursor", api_cert_next_cursor(&l, want)));
out:
    cert_list_free(&l);
    ca_rec_free(&ca);
    proto_cfg_free(&m.cfg);
}

#define W "/mdm/v2/mdmws/{}/{}"
const struct route mdmws_routes[] = {
    {"POST", W "/challenges", h_challenge, 0, LIMIT_MDM_BODY_BYTES},
    {"POST", W "/pkcs12", h_pkcs12, 1, LIMIT_MDM_BODY_BYTES},
    {"GET", W "/certificates", h_list},
    {"POST", W "/certificates/{}/revoke", h_revoke, 0, LIMIT_MDM_BODY_BYTES},
};
const size_t mdmws_routes_count = sizeof mdmws_routes / sizeof mdmws_routes[0];
