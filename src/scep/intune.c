#include "scep/intune.h"
#include "util/limits.h"

#include "crypto/keywrap.h"
#include "util/buf.h"
#include "util/codec.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INTUNE_API_VERSION "2018-02-20"
#define INTUNE_APP_ID "0000000a-0000-0000-c000-000000000000" /* the Intune service principal */
#define SCEP_SERVICE "ScepRequestValidationFEService"
#define PKI_SERVICE "PkiConnectorFEService"
#define HTTP_TIMEOUT_S LIMIT_INTUNE_TIMEOUT_S
#define HTTP_MAX_REPLY LIMIT_INTUNE_REPLY_BYTES
#define MAX_REVOCATIONS 500

const char *const intune_setting_keys[] = {"tenantId", "appId", "appKey", "tokenUrl", "graphUrl", "intuneUrl",
                                           "revocationSyncHours", NULL};

static bool guidish(const char *s)
{
    size_t n = strlen(s);
    if (n < 8 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F') ||
              s[i] == '-'))
            return false;
    return true;
}

static bool url_ok(const char *u)
{
    return strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0;
}

int intune_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e)
{
    const char *tenant = NULL, *app = NULL, *key = NULL;
    long long hours = 24;
    bool has_hours = false;
    static const char *const urls[] = {"tokenUrl", "graphUrl", "intuneUrl"};
    if (jget_str(body, "tenantId", 64, &tenant, e) || jget_str(body, "appId", 64, &app, e) ||
        jget_str(body, "appKey", 1024, &key, e) ||
        jget_int(body, "revocationSyncHours", 1, 24 * 30, &hours, &has_hours, e))
        return -1;
    if (tenant && !guidish(tenant)) {
        jerr_set(e, "tenantId", "tenantId: the Directory (tenant) ID, a GUID");
        return -1;
    }
    if (app && !guidish(app)) {
        jerr_set(e, "appId", "appId: the Application (client) ID, a GUID");
        return -1;
    }
    if (key && !*key) {
        jerr_set(e, "appKey", "appKey: must not be empty");
        return -1;
    }
    if (create && (!tenant || !app || !key || !*key)) {
        jerr_set(e, !tenant ? "tenantId" : !app ? "appId" : "appKey", "%s: required for an Intune configuration",
                 !tenant ? "tenantId" : !app ? "appId" : "appKey");
        return -1;
    }
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        const char *u = NULL, *was = json_string_value(json_object_get(doc, urls[i]));
        if (jget_str(body, urls[i], 512, &u, e))
            return -1;
        if (u && *u && !url_ok(u)) {
            jerr_set(e, urls[i], "%s: an http(s) URL", urls[i]);
            return -1;
        }
        /* the stored app key goes wherever these point: moving them needs
         * the key given again, by someone who has it */
        if (!create && u && strcmp(u, was ? was : "") != 0 && !key) {
            jerr_set(e, "appKey", "appKey: required again when %s changes (the stored key is sent there)", urls[i]);
            return -1;
        }
        if (u)
            json_object_set_new(doc, urls[i], json_string(u));
    }
    if (tenant)
        json_object_set_new(doc, "tenantId", json_string(tenant));
    if (app)
        json_object_set_new(doc, "appId", json_string(app));
    if (has_hours || create)
        json_object_set_new(doc, "revocationSyncHours", json_integer(hours));
    return 0;
}

void intune_key_aad(char *out, size_t n, const char *partition, const char *cfg_id)
{
    snprintf(out, n, "intune-key:%s/%s", partition, cfg_id);
}

/* ---- HTTP ------------------------------------------------------------------- */

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t len = sz * n;
    if (b->len + len > HTTP_MAX_REPLY || buf_append(b, p, len) != 0)
        return 0;
    return len;
}

/* One request; the JSON reply (when any) in *out. Returns the HTTP status,
 * or -1 on a transport failure. */
static long http_call(const char *method, const char *url, const char *bearer, const char *ctype, const char *body,
                      json_t **out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct buf b = {0};
    long status = -1;
    char *auth = NULL, *ct = NULL, *rid = NULL;
    *out = NULL;
    if (!c)
        return -1;
    rid = random_hex(16);
    if (bearer && asprintf(&auth, "Authorization: Bearer %s", bearer) < 0)
        auth = NULL;
    if (ctype && asprintf(&ct, "Content-Type: %s", ctype) < 0)
        ct = NULL;
    char ridh[96];
    snprintf(ridh, sizeof ridh, "client-request-id: %s", rid ? rid : "0");
    if (auth)
        h = curl_slist_append(h, auth);
    if (ct)
        h = curl_slist_append(h, ct);
    h = curl_slist_append(h, ridh);
    h = curl_slist_append(h, "api-version: " INTUNE_API_VERSION);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)HTTP_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "pkiaas/" PKIAAS_VERSION);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        json_error_t je;
        if (b.len)
            *out = json_loadb((const char *)b.data, b.len, 0, &je);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    buf_free(&b);
    free(auth);
    free(ct);
    free(rid);
    return status;
}

static char *url_escape(const char *s)
{
    char *e = curl_escape(s, 0), *r = e ? strdup(e) : NULL;
    curl_free(e);
    return r;
}

/* ---- the service -------------------------------------------------------------- */

struct session {
    char *app_key;
    char *scep_uri; /* validation service base */
};

static void session_free(struct session *s)
{
    if (s->app_key) {
        OPENSSL_cleanse(s->app_key, strlen(s->app_key));
        free(s->app_key);
    }
    free(s->scep_uri);
    memset(s, 0, sizeof *s);
}

static int app_key(struct api_ctx *ctx, const struct proto_cfg *cfg, char **out)
{
    const char *sealed = proto_str(cfg, "appKeySealed");
    unsigned char *blob = NULL, *pt = NULL;
    size_t bl = 0, pl = 0;
    char aad[256];
    int rc = -1;
    *out = NULL;
    intune_key_aad(aad, sizeof aad, cfg->partition, cfg->id);
    if (sealed && b64_decode(sealed, strlen(sealed), &blob, &bl) == 0 &&
        keywrap_open(ctx->env.mkey, blob, bl, aad, &pt, &pl) == 0 && (*out = malloc(pl + 1))) {
        memcpy(*out, pt, pl);
        (*out)[pl] = 0;
        rc = 0;
    }
    if (pt)
        OPENSSL_cleanse(pt, pl);
    free(pt);
    free(blob);
    return rc;
}

/* Azure AD client-credentials token for `scope`. */
static char *token(const struct proto_cfg *cfg, const char *key, const char *scope, struct err *e)
{
    char *url = NULL, *form = NULL, *id = NULL, *sec = NULL, *sc = NULL, *tok = NULL;
    json_t *r = NULL;
    const char *tu = proto_str(cfg, "tokenUrl");
    if (tu && *tu)
        url = strdup(tu);
    else if (asprintf(&url, "https://login.microsoftonline.com/%s/oauth2/v2.0/token", proto_str(cfg, "tenantId")) < 0)
        url = NULL;
    id = url_escape(proto_str(cfg, "appId"));
    sec = url_escape(key);
    sc = url_escape(scope);
    if (!url || !id || !sec || !sc ||
        asprintf(&form, "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s", id, sec, sc) < 0) {
        form = NULL;
        err_set(e, 500, "internal", NULL, "out of memory");
        goto out;
    }
    long st = http_call("POST", url, NULL, "application/x-www-form-urlencoded", form, &r);
    const char *at = json_string_value(json_object_get(r, "access_token"));
    if (st != 200 || !at) {
        err_set(e, 502, "intune_unavailable", NULL, "Azure AD token request failed (HTTP %ld)", st);
        goto out;
    }
    tok = strdup(at);
out:
    if (form)
        OPENSSL_cleanse(form, strlen(form));
    if (sec)
        OPENSSL_cleanse(sec, strlen(sec));
    free(form);
    free(url);
    free(id);
    free(sec);
    free(sc);
    json_decref(r);
    return tok;
}

/* The base URI of an Intune service: configured, or discovered through
 * Microsoft Graph (servicePrincipals of the Intune app, its endpoints). */
static char *service_uri(const struct proto_cfg *cfg, const char *key, const char *provider, struct err *e)
{
    const char *fixed = proto_str(cfg, "intuneUrl");
    char *tok = NULL, *url = NULL, *uri = NULL;
    json_t *r = NULL;
    if (fixed && *fixed)
        return strdup(fixed);
    const char *graph = proto_str(cfg, "graphUrl");
    if (!graph || !*graph)
        graph = "https://graph.microsoft.com";
    char scope[600];
    snprintf(scope, sizeof scope, "%s/.default", graph);
    if (!(tok = token(cfg, key, scope, e)))
        goto out;
    if (asprintf(&url, "%s/v1.0/servicePrincipals/appId=%s/endpoints", graph, INTUNE_APP_ID) < 0) {
        url = NULL;
        goto out;
    }
    long st = http_call("GET", url, tok, NULL, NULL, &r);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "value"), i, v) {
        const char *p = json_string_value(json_object_get(v, "providerName"));
        const char *u = json_string_value(json_object_get(v, "uri"));
        if (p && u && strcmp(p, provider) == 0 && url_ok(u)) {
            uri = strdup(u);
            break;
        }
    }
    if (!uri)
        err_set(e, 502, "intune_unavailable", NULL, "Intune service discovery failed (HTTP %ld, no %s)", st, provider);
out:
    if (tok)
        OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    free(url);
    json_decref(r);
    return uri;
}

/* POSTs an Intune action with a fresh token; the reply in *out. */
static long intune_post(const struct proto_cfg *cfg, const char *key, const char *base, const char *action,
                        json_t *body, json_t **out, struct err *e)
{
    char *tok = token(cfg, key, "https://api.manage.microsoft.com//.default", e), *url = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    long st = -1;
    *out = NULL;
    if (tok && text && asprintf(&url, "%s/%s?api-version=%s", base, action, INTUNE_API_VERSION) >= 0)
        st = http_call("POST", url, tok, "application/json", text, out);
    else
        url = NULL;
    if (tok)
        OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    free(url);
    free(text);
    return st;
}

static int open_session(struct api_ctx *ctx, const struct proto_cfg *cfg, const char *provider, struct session *s,
                        struct err *e)
{
    memset(s, 0, sizeof *s);
    if (app_key(ctx, cfg, &s->app_key) != 0) {
        err_set(e, 500, "internal", NULL, "the Intune app key cannot be opened");
        return -1;
    }
    if (!(s->scep_uri = service_uri(cfg, s->app_key, provider, e))) {
        session_free(s);
        return -1;
    }
    return 0;
}

int intune_validate(struct api_ctx *ctx, const struct proto_cfg *cfg, const char *txid, const unsigned char *csr,
                    size_t csr_len, struct err *e)
{
    struct session s;
    json_t *reply = NULL, *body = NULL;
    char *csr64 = b64_encode(csr, csr_len);
    int rc = -1;
    if (!csr64 || open_session(ctx, cfg, SCEP_SERVICE, &s, e) != 0) {
        free(csr64);
        return -1;
    }
    body = json_pack("{s:{s:s,s:s,s:s}}", "request", "transactionId", txid, "certificateRequest", csr64, "callerInfo",
                     "pkiaas/" PKIAAS_VERSION);
    long st = intune_post(cfg, s.app_key, s.scep_uri, "ScepActions/validateRequest", body, &reply, e);
    const char *code = json_string_value(json_object_get(reply, "code"));
    if (st == 200 && code && strcmp(code, "Success") == 0) {
        rc = 0;
    } else if (st == 200 || st == 400 || st == 403) {
        const char *d = json_string_value(json_object_get(reply, "errorDescription"));
        err_set(e, 403, "intune_refused", NULL, "Intune refused the request: %s%s%s", code ? code : "no code",
                d && *d ? " - " : "", d ? d : "");
    } else if (!e->msg[0]) {
        err_set(e, 502, "intune_unavailable", NULL, "Intune validation failed (HTTP %ld)", st);
    }
    json_decref(body);
    json_decref(reply);
    free(csr64);
    session_free(&s);
    return rc;
}

void intune_notify(struct api_ctx *ctx, const struct proto_cfg *cfg, const char *txid, const unsigned char *csr,
                   size_t csr_len, const struct issue_result *res, const char *error)
{
    struct session s;
    struct err e;
    json_t *reply = NULL, *body = NULL;
    char *csr64 = b64_encode(csr, csr_len);
    memset(&e, 0, sizeof e);
    if (!csr64 || open_session(ctx, cfg, SCEP_SERVICE, &s, &e) != 0) {
        log_warn("intune %s/%s: notification not sent: %s", cfg->partition, cfg->id, e.msg);
        free(csr64);
        return;
    }
    if (res) {
        unsigned char sha1[SHA_DIGEST_LENGTH];
        SHA1(res->der, res->der_len, sha1);
        char *thumb = hex_encode(sha1, sizeof sha1), expiry[40], issuer[512] = "";
        time_format_rfc3339(res->not_after, expiry, sizeof expiry);
        if (res->chain && sk_X509_num(res->chain) > 0)
            X509_NAME_oneline(X509_get_subject_name(sk_X509_value(res->chain, 0)), issuer, sizeof issuer);
        for (char *p = thumb; p && *p; p++)
            if (*p >= 'a' && *p <= 'f')
                *p = (char)(*p - 'a' + 'A');
        body = json_pack("{s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}}", "notification", "transactionId", txid,
                         "certificateRequest", csr64, "certificateThumbprint", thumb ? thumb : "",
                         "certificateSerialNumber", res->serial, "certificateExpirationDateUtc", expiry,
                         "issuingCertificateAuthority", issuer, "caConfiguration", cfg->id, "certificateAuthority",
                         cfg->ca_id, "callerInfo", "pkiaas/" PKIAAS_VERSION);
        free(thumb);
    } else {
        body = json_pack("{s:{s:s,s:s,s:I,s:s,s:s}}", "notification", "transactionId", txid, "certificateRequest",
                         csr64, "hResult", (json_int_t)0x80004005LL, "errorDescription", error ? error : "refused",
                         "callerInfo", "pkiaas/" PKIAAS_VERSION);
    }
    long st = intune_post(cfg, s.app_key, s.scep_uri,
                          res ? "ScepActions/successNotification" : "ScepActions/failureNotification", body, &reply,
                          &e);
    if (st != 200)
        log_warn("intune %s/%s: %s notification for %.40s answered HTTP %ld", cfg->partition, cfg->id,
                 res ? "success" : "failure", txid, st);
    json_decref(body);
    json_decref(reply);
    free(csr64);
    session_free(&s);
}

/* ---- revocation sync ---------------------------------------------------------- */

/* Two Intune configurations talk to the same Intune service: the same
 * tenant, application and endpoints (absent = the default ones). */
static bool same_service(const struct proto_cfg *x, const struct proto_cfg *y)
{
    static const char *const keys[] = {"tenantId", "appId", "tokenUrl", "graphUrl", "intuneUrl"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *a = json_string_value(json_object_get(x->doc, keys[i]));
        const char *b = json_string_value(json_object_get(y->doc, keys[i]));
        if (strcmp(a ? a : "", b ? b : "") != 0)
            return false;
    }
    return true;
}

/* The Intune service (or whoever answers at the configured URLs) speaks
 * only for what was enrolled through it: the certificate `serial` of the
 * CA must have been issued through an Intune configuration of this
 * partition ("intune:<id>[/...]") that talks to the same service as cfg.
 * A configuration pointed at another service cannot revoke the CA's other
 * certificates. */
static bool revocable_here(struct api_ctx *ctx, const struct proto_cfg *cfg, const struct ca_rec *ca,
                           const char *serial)
{
    struct cert_rec cr;
    struct proto_cfg other;
    struct err e;
    char id[PROTO_ID_MAX + 1];
    bool ok = false;
    memset(&cr, 0, sizeof cr);
    if (ctx->store->ops->cert_get(ctx->store, cfg->partition, ca->pk, serial, &cr) != STORE_OK || !cr.requester ||
        strncmp(cr.requester, "intune:", 7) != 0)
        goto out;
    size_t n = strcspn(cr.requester + 7, "/");
    if (n == 0 || n > PROTO_ID_MAX)
        goto out;
    memcpy(id, cr.requester + 7, n);
    id[n] = 0;
    if (strcmp(id, cfg->id) == 0) {
        ok = true;
    } else if (proto_cfg_load(ctx->store, cfg->partition, id, "intune", &other, &e) == 0) {
        ok = same_service(cfg, &other);
        proto_cfg_free(&other);
    }
out:
    cert_rec_free(&cr);
    return ok;
}

static void sync_one(struct api_ctx *ctx, const struct proto_cfg *cfg)
{
    struct session s;
    struct err e;
    struct ca_rec ca;
    json_t *reply = NULL, *body = NULL, *results = json_array();
    memset(&e, 0, sizeof e);
    memset(&ca, 0, sizeof ca);
    if (open_session(ctx, cfg, PKI_SERVICE, &s, &e) != 0) {
        log_warn("intune %s/%s: revocation sync: %s", cfg->partition, cfg->id, e.msg);
        json_decref(results);
        return;
    }
    if (ctx->store->ops->ca_get(ctx->store, cfg->partition, cfg->ca_id, &ca) != STORE_OK)
        goto out;
    char issuer[512] = "";
    X509 *cacert = ca_cert(&ca);
    if (cacert)
        X509_NAME_oneline(X509_get_subject_name(cacert), issuer, sizeof issuer);
    X509_free(cacert);
    body = json_pack("{s:{s:i,s:s}}", "downloadParameters", "maxRequests", MAX_REVOCATIONS, "issuerName", issuer);
    long st = intune_post(cfg, s.app_key, s.scep_uri, "CertificateAuthorityRequests/downloadRevocationRequests", body,
                          &reply, &e);
    if (st != 200) {
        log_warn("intune %s/%s: downloadRevocationRequests answered HTTP %ld", cfg->partition, cfg->id, st);
        goto out;
    }
    size_t i, done = 0;
    json_t *v;
    json_array_foreach(json_object_get(reply, "value"), i, v) {
        if (i >= MAX_REVOCATIONS)
            break;
        const char *ctxid = json_string_value(json_object_get(v, "requestContext"));
        const char *sn = json_string_value(json_object_get(v, "serialNumber"));
        char serial[48];
        struct err re;
        memset(&re, 0, sizeof re);
        int ok = -1;
        if (sn && api_serial_norm(sn, serial, sizeof serial) == 0) {
            char actor[128];
            snprintf(actor, sizeof actor, "intune:%s", cfg->id);
            if (!revocable_here(ctx, cfg, &ca, serial)) {
                snprintf(re.msg, sizeof re.msg, "not a certificate enrolled through this Intune service");
            } else {
                ok = api_cert_set_status(ctx, &ca, serial, "revoked", 0, 0, "revoked at Intune's request", actor,
                                         NULL, true, &re);
                if (ok != 0 && re.status == 409)
                    ok = 0; /* already revoked: done as far as Intune is concerned */
            }
        } else {
            snprintf(re.msg, sizeof re.msg, "bad serial number");
        }
        done += ok == 0;
        json_array_append_new(results, json_pack("{s:s,s:b,s:i,s:s}", "requestContext", ctxid ? ctxid : "",
                                                 "succeeded", ok == 0, "errorCode", ok == 0 ? 0 : 1, "errorMessage",
                                                 ok == 0 ? "" : re.msg));
    }
    if (json_array_size(results)) {
        json_t *up = json_pack("{s:O}", "results", results), *ur = NULL;
        st = intune_post(cfg, s.app_key, s.scep_uri, "CertificateAuthorityRequests/uploadRevocationResults", up, &ur,
                         &e);
        if (st != 200)
            log_warn("intune %s/%s: uploadRevocationResults answered HTTP %ld", cfg->partition, cfg->id, st);
        json_decref(up);
        json_decref(ur);
    }
    log_info("intune %s/%s: revocation sync: %zu of %zu requests carried out", cfg->partition, cfg->id, done,
             json_array_size(results));
out:
    json_decref(body);
    json_decref(reply);
    json_decref(results);
    ca_rec_free(&ca);
    session_free(&s);
}

void intune_revocation_sync_due(struct api_ctx *ctx)
{
    /* every partition's Intune configurations: the store lists by
     * partition, so walk the partitions that have active CAs */
    struct ca_list cl;
    if (ctx->store->ops->ca_list_active_all(ctx->store, &cl) != STORE_OK)
        return;
    char last[STORE_ID_MAX + 1] = "";
    int64_t now = time_now();
    for (size_t k = 0; k < cl.n; k++) {
        const char *part = cl.items[k].partition_id;
        if (strcmp(part, last) == 0)
            continue;
        snprintf(last, sizeof last, "%s", part);
        struct obj_rec *items = NULL;
        size_t n = 0;
        if (ctx->store->ops->obj_list(ctx->store, part, PROTO_KIND, NULL, NULL, 0, &items, &n) != STORE_OK)
            continue;
        for (size_t i = 0; i < n; i++) {
            struct proto_cfg cfg;
            struct err e;
            if (proto_cfg_load(ctx->store, part, items[i].id, "intune", &cfg, &e) != 0)
                continue;
            /* due? the last run is a store document so restarts keep the pace */
            struct obj_rec st;
            json_int_t hours = json_integer_value(json_object_get(cfg.doc, "revocationSyncHours"));
            int64_t period = (hours > 0 ? hours : 24) * 3600;
            bool due = true;
            memset(&st, 0, sizeof st);
            if (ctx->store->ops->obj_get(ctx->store, part, INTUNE_SYNC_KIND, cfg.id, &st) == STORE_OK) {
                due = st.updated_at + period <= now;
                if (due) {
                    st.expires_at = 0;
                    ctx->store->ops->obj_put(ctx->store, &st, OBJ_UPDATE, NULL);
                }
            } else {
                snprintf(st.partition_id, sizeof st.partition_id, "%s", part);
                snprintf(st.kind, sizeof st.kind, "%s", INTUNE_SYNC_KIND);
                snprintf(st.id, sizeof st.id, "%s", cfg.id);
                ctx->store->ops->obj_put(ctx->store, &st, OBJ_CREATE, NULL);
            }
            obj_rec_free(&st);
            if (due)
                sync_one(ctx, &cfg);
            proto_cfg_free(&cfg);
        }
        obj_list_free(items, n);
    }
    ca_list_free(&cl);
}
