/* CA Gateway v1 endpoints (/cagw/v1/...): the Entrust-compatible REST API
 * for third-party tools. Authentication (mutual TLS with CAGW credentials)
 * and per-CA role checks live in api_cagw_auth.c; this file translates the
 * CAGW request and response shapes onto the issuance core
 * (issue_certificate), the one status path (api_cert_set_status), the
 * store and the audit log. docs/cagw.md documents the behaviour. */
#include "api/api_cagw.h"

#include "api/api_json.h"
#include "ca/ca_cache.h"
#include "ca/issue.h"
#include "ca/profile.h"
#include "util/buf.h"
#include "util/codec.h"
#include "util/duration.h"
#include "util/timeutil.h"
#include "x509/dn.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CAGW_BASE "/cagw/v1/certificate-authorities"
#define CAGW_CA CAGW_BASE "/{}"
#define CAGW_PAGE_MAX 50
#define CAGW_FIELDS_MAX 32
#define CAGW_FIELDS_LEN 2048
#define CAGW_SUBJECT_BATCH 200
#define CAGW_SUBJECT_MAX 100000
#define CAGW_CSR_MAX 65536
#define CAGW_COMMENT_MAX API_STATUS_COMMENT_MAX

/* Rate-limit class of certificate operations (CAP_CERT in api.c). */
#define CAGW_CAP_CERT 1

/* ---- errors ------------------------------------------------------------- */

static const char *code_for(int status)
{
    switch (status) {
    case 400: return "cagw-4001";
    case 401: return "cagw-4011";
    case 403: return "cagw-4031";
    case 404: return "cagw-4041";
    case 405: return "cagw-4051";
    case 409: return "cagw-4091";
    case 413: return "cagw-4131";
    case 422: return "cagw-4221";
    case 429: return "TooManyRequests";
    case 501: return "cagw-5011";
    case 503: return "cagw-5031";
    default: return status >= 500 ? "cagw-5001" : "cagw-4001";
    }
}

static void bad_request(struct http_resp *resp, const char *target, const char *value, const char *msg)
{
    cagw_error(resp, 400, "cagw-4001", target, value, "%s: %s", target, msg);
}

static void oom(struct http_resp *resp)
{
    cagw_error(resp, 500, "cagw-5001", NULL, NULL, "out of memory");
}

/* An error of the core (struct err) as a CAGW ErrorResponse; `target`
 * replaces the core's field name when given. */
static void fail_err(struct http_resp *resp, const struct err *e, const char *target)
{
    int st = e->status >= 400 && e->status <= 599 ? e->status : 500;
    const char *t = target ? target : (e->field[0] ? e->field : NULL);
    cagw_error(resp, st, code_for(st), t, NULL, "%s", e->msg);
}

/* ---- small JSON helpers ------------------------------------------------- */

static json_t *message(const char *text)
{
    return json_pack("{s:s,s:[]}", "message", text, "details");
}

static json_t *cert_data_der(const unsigned char *der, size_t len)
{
    char *b = b64_encode(der, len);
    json_t *o = b ? json_pack("{s:s}", "certificateData", b) : NULL;
    free(b);
    return o;
}

static json_t *cert_data(X509 *x)
{
    unsigned char *der = NULL;
    int n = x ? i2d_X509(x, &der) : -1;
    json_t *o = n > 0 ? cert_data_der(der, (size_t)n) : NULL;
    OPENSSL_free(der);
    return o;
}

/* [{"certificateData"}] for chain[from..] */
static json_t *chain_json(STACK_OF(X509) *chain, int from)
{
    json_t *a = json_array();
    for (int i = from; a && i < sk_X509_num(chain); i++) {
        json_t *c = cert_data(sk_X509_value(chain, i));
        if (!c || json_array_append_new(a, c) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static void fmt_time(int64_t t, char *out, size_t n)
{
    time_format_rfc3339(t, out, n);
}

static void fmt_ms(int64_t ms, char *out, size_t n)
{
    char s[32];
    time_format_rfc3339(ms / 1000, s, sizeof s);
    s[19] = 0; /* 2026-11-23T12:00:00Z -> 2026-11-23T12:00:00.123Z */
    snprintf(out, n, "%s.%03lldZ", s, (long long)(ms % 1000));
}

static int64_t asn1_epoch(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* "start/end" of a certificate. */
static json_t *validity_json(int64_t nb, int64_t na)
{
    char a[32], b[32], s[72];
    fmt_time(nb, a, sizeof a);
    fmt_time(na, b, sizeof b);
    snprintf(s, sizeof s, "%s/%s", a, b);
    return json_string(s);
}

static char *name_rfc2253(const X509_NAME *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL, *p = NULL;
    if (b && X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
        long len = BIO_get_mem_data(b, &p);
        if (len >= 0 && (out = malloc((size_t)len + 1))) {
            memcpy(out, p, (size_t)len);
            out[len] = 0;
        }
    }
    BIO_free(b);
    return out;
}

/* Typed members of request bodies. Absent or null leaves *out unset (0);
 * a wrong type answers 400 naming `target`. */
static int opt_str(struct http_resp *resp, const json_t *o, const char *key, const char *target, size_t max,
                   const char **out)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        bad_request(resp, target, NULL, "must be a string");
        return -1;
    }
    if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v)) {
        char m[64];
        snprintf(m, sizeof m, "at most %zu characters, no NUL", max);
        bad_request(resp, target, NULL, m);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int opt_obj(struct http_resp *resp, const json_t *o, const char *key, const char *target, const json_t **out)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        bad_request(resp, target, NULL, "must be an object");
        return -1;
    }
    *out = v;
    return 0;
}

static int opt_arr(struct http_resp *resp, const json_t *o, const char *key, const char *target, const json_t **out)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        bad_request(resp, target, NULL, "must be an array");
        return -1;
    }
    *out = v;
    return 0;
}

/* true / false, also as the strings "true" / "false" (clients send both). */
static int opt_bool(struct http_resp *resp, const json_t *o, const char *key, const char *target, bool *out)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0)) {
        *out = strcasecmp(s, "true") == 0;
        return 0;
    }
    bad_request(resp, target, s, "must be true or false");
    return -1;
}

/* Whether a Content-Type names JSON (parameters such as charset allowed). */
static bool json_content_type(const char *ct)
{
    static const char want[] = "application/json";
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

static json_t *body_object(struct http_req *req, struct http_resp *resp)
{
    json_error_t je;
    /* The client certificate is an ambient credential: a browser that holds
     * it presents it to any site's cross-origin form too. A form can post
     * text/plain that parses as JSON, but never application/json without a
     * CORS preflight, which this service never grants. */
    if (!json_content_type(http_header(req, "Content-Type"))) {
        cagw_error(resp, 415, "cagw-4151", NULL, NULL, "the body must be sent as Content-Type: application/json");
        return NULL;
    }
    if (req->body.len == 0) {
        cagw_error(resp, 400, "cagw-4001", NULL, NULL, "a JSON object body is required");
        return NULL;
    }
    json_t *j = json_loadb((const char *)req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        cagw_error(resp, 400, "cagw-4001", NULL, NULL, "malformed JSON at line %d column %d: %s", je.line,
                   je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        cagw_error(resp, 400, "cagw-4001", NULL, NULL, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- $fields ------------------------------------------------------------ */

/* Keeps only the dotted `paths` (relative to v); arrays apply them to each
 * element. NULL: nothing of v survives. */
static json_t *fields_keep(json_t *v, const char *const *paths, size_t n)
{
    if (json_is_array(v)) {
        json_t *a = json_array(), *el;
        size_t i;
        if (!a)
            return NULL;
        json_array_foreach(v, i, el) {
            json_t *k = fields_keep(el, paths, n);
            if (k && json_array_append_new(a, k) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    if (!json_is_object(v))
        return NULL; /* the path goes on below a scalar */
    json_t *o = json_object(), *val;
    const char *key;
    if (!o)
        return NULL;
    json_object_foreach(v, key, val) {
        size_t klen = strlen(key), ns = 0;
        const char *sub[CAGW_FIELDS_MAX];
        bool whole = false;
        for (size_t i = 0; i < n; i++) {
            if (strncmp(paths[i], key, klen) != 0)
                continue;
            if (paths[i][klen] == 0)
                whole = true;
            else if (paths[i][klen] == '.' && ns < CAGW_FIELDS_MAX)
                sub[ns++] = paths[i] + klen + 1;
        }
        if (whole) {
            json_object_set(o, key, val);
        } else if (ns) {
            json_t *k = fields_keep(val, sub, ns);
            if (k)
                json_object_set_new(o, key, k);
        }
    }
    return o;
}

static void fields_drop(json_t *v, const char *path)
{
    if (json_is_array(v)) {
        json_t *el;
        size_t i;
        json_array_foreach(v, i, el) fields_drop(el, path);
        return;
    }
    if (!json_is_object(v))
        return;
    const char *dot = strchr(path, '.');
    if (!dot) {
        json_object_del(v, path);
        return;
    }
    char key[128];
    size_t kl = (size_t)(dot - path);
    if (kl >= sizeof key)
        return;
    memcpy(key, path, kl);
    key[kl] = 0;
    fields_drop(json_object_get(v, key), dot + 1);
}

/* Applies "a.b,c,-d.e" to the response `o` (consumed); NULL with the
 * error answered. "type" is always kept so clients can dispatch. */
static json_t *fields_apply(struct http_resp *resp, json_t *o, const char *spec)
{
    const char *keep[CAGW_FIELDS_MAX], *drop[CAGW_FIELDS_MAX];
    size_t nk = 0, nd = 0;
    char *copy = NULL;
    json_t *out = NULL;
    size_t len = strlen(spec);
    if (len > CAGW_FIELDS_LEN) {
        bad_request(resp, "$fields", NULL, "too long");
        goto out;
    }
    if (!(copy = strdup(spec))) {
        oom(resp);
        goto out;
    }
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t tl = strlen(t);
        while (tl && t[tl - 1] == ' ')
            t[--tl] = 0;
        bool neg = *t == '-';
        if (neg)
            t++;
        if (!*t)
            continue;
        if (strstr(t, "..") || *t == '.' || t[strlen(t) - 1] == '.') {
            bad_request(resp, "$fields", t, "paths are dotted field names, e.g. caList.certificate.certificateData");
            goto out;
        }
        if ((neg ? nd : nk) >= CAGW_FIELDS_MAX) {
            bad_request(resp, "$fields", NULL, "too many paths");
            goto out;
        }
        if (neg)
            drop[nd++] = t;
        else
            keep[nk++] = t;
    }
    if (nk) {
        out = fields_keep(o, keep, nk);
        if (!out) {
            oom(resp);
            goto out;
        }
        json_t *type = json_object_get(o, "type");
        if (type && !json_object_get(out, "type"))
            json_object_set(out, "type", type);
    } else {
        out = json_incref(o);
    }
    for (size_t i = 0; i < nd; i++)
        fields_drop(out, drop[i]);
out:
    free(copy);
    json_decref(o);
    return out;
}

/* 200 with the body filtered by $fields (takes `o`). */
static void send_ok(struct http_req *req, struct http_resp *resp, json_t *o)
{
    if (!o) {
        oom(resp);
        return;
    }
    const char *spec = http_query(req, "$fields");
    if (!spec)
        spec = http_query(req, "%24fields");
    if (spec && *spec && strcmp(req->method, "POST") != 0) {
        if (!(o = fields_apply(resp, o, spec)))
            return;
    }
    resp_json(resp, 200, o);
}

/* ---- rate limiting ------------------------------------------------------ */

/* The partition's request allowance, shared with the admin API (same
 * buckets as api.c's rate_check: "<partition>/<class>", standard or premium
 * tier): a tool cannot exceed the partition's quota by switching APIs.
 * 0 = allowed; -1 = `resp` holds the 429. */
static int rate_limit(struct http_req *req, struct http_resp *resp, const char *partition)
{
    struct api_ctx *ctx = req->app;
    char ra[24];
    int limit = 0;
    bool premium = false;
    if (!api_rate_limited(req, partition, ra, &limit, &premium))
        return 0;
    cagw_error(resp, 429, "TooManyRequests", NULL, NULL,
               "rate limit of %d %s requests per %d s reached for this partition; retry after %s s", limit,
               api_capability_name(req->capability), ctx->rate_window_s, ra);
    resp_header(resp, "Retry-After", ra);
    return -1;
}

/* ---- request context ---------------------------------------------------- */

struct cagw_call {
    struct cagw_principal p;
    char ca_id[32];
    struct ca_runtime *rt; /* active CA with a certificate */
};

static void call_release(struct cagw_call *c)
{
    ca_runtime_release(c->rt);
    c->rt = NULL;
}

/* Answers 403 (and audits the refusal) unless the credential's roles on
 * the CA allow `op`. */
static int require(struct http_req *req, struct http_resp *resp, struct cagw_call *c, enum authz_op op)
{
    struct api_ctx *ctx = req->app;
    if (cagw_allowed(ctx, &c->p, c->ca_id, op))
        return 0;
    const struct authz_op_info *info = authz_op_at((size_t)op);
    char detail[64]; /* ca_id passed ca_id_valid(): no JSON escaping needed */
    snprintf(detail, sizeof detail, "{\"caId\":\"%s\"}", c->ca_id);
    struct audit_rec a = {c->p.actor, "authz.denied", info ? info->name : "?", detail, c->p.ip, "denied"};
    ctx->store->ops->audit_append(ctx->store, c->p.partition, &a);
    cagw_error(resp, 403, "cagw-4031", "caId", req->params[0],
               "the credential's roles on CA '%s' do not allow this operation (%s)", c->ca_id,
               info ? info->name : "?");
    return -1;
}

/* Authenticates, parses "{accountId}~{caIdentifier}" (params[0]) for the
 * caller's partition, loads the CA and checks `op` (skipped when op < 0).
 * Answers the error itself. */
static int begin(struct http_req *req, struct http_resp *resp, int op, struct cagw_call *c)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    memset(c, 0, sizeof *c);
    if (cagw_auth(req, resp, &c->p) != 0)
        return -1;
    snprintf(req->partition, sizeof req->partition, "%.64s", c->p.partition);
    if (rate_limit(req, resp, c->p.partition) != 0)
        return -1;
    const char *id = req->params[0];
    const char *tilde = id ? strrchr(id, '~') : NULL;
    size_t alen = tilde ? (size_t)(tilde - id) : 0;
    if (!tilde || alen != strlen(c->p.partition) || memcmp(id, c->p.partition, alen) != 0 ||
        strlen(tilde + 1) >= sizeof c->ca_id || !ca_id_valid(tilde + 1)) {
        cagw_error(resp, 404, "cagw-4041", "caId", id,
                   "no CA '%.80s' for this credential (CA ids are accountId~caIdentifier)", id ? id : "");
        return -1;
    }
    snprintf(c->ca_id, sizeof c->ca_id, "%s", tilde + 1);
    if (!(c->rt = ca_runtime_get(&ctx->env, c->p.partition, c->ca_id, &e))) {
        fail_err(resp, &e, "caId");
        return -1;
    }
    if (strcmp(c->rt->rec.status, "active") != 0 || !c->rt->cert) {
        cagw_error(resp, 404, "cagw-4041", "caId", id, "CA '%s' is not active", c->ca_id);
        call_release(c);
        return -1;
    }
    if (op >= 0 && require(req, resp, c, (enum authz_op)op) != 0) {
        call_release(c);
        return -1;
    }
    return 0;
}

/* ---- certificate authorities ------------------------------------------- */

static json_t *ca_json(const struct ca_runtime *rt, const char *partition)
{
    char id[STORE_ID_MAX + 40];
    snprintf(id, sizeof id, "%s~%s", partition, rt->rec.id);
    /* "chain": the CA's issuers (its parent first, up to the root); the CA
     * itself is "certificate". */
    return json_pack("{s:s,s:s,s:{s:s,s:s},s:o,s:o}", "id", id, "name",
                     rt->rec.friendly_name && *rt->rec.friendly_name ? rt->rec.friendly_name : rt->rec.id,
                     "properties", "connector-name", "pkiaas", "type", rt->rec.type, "chain",
                     chain_json(rt->chain, 1), "certificate", cert_data(rt->cert));
}

static void cagw_ca_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct cagw_principal p;
    struct ca_list l;
    json_t *arr = NULL;
    memset(&l, 0, sizeof l);
    if (cagw_auth(req, resp, &p) != 0)
        return;
    snprintf(req->partition, sizeof req->partition, "%.64s", p.partition);
    if (rate_limit(req, resp, p.partition) != 0)
        return;
    if (ctx->store->ops->ca_list(ctx->store, p.partition, false, &l) != STORE_OK) {
        cagw_error(resp, 503, "cagw-5031", NULL, NULL, "store unavailable");
        return;
    }
    if (!(arr = json_array())) {
        oom(resp);
        goto out;
    }
    for (size_t i = 0; i < l.n; i++) {
        const struct ca_rec *r = &l.items[i];
        struct err e;
        if (strcmp(r->status, "active") != 0 || !r->cert_der || !cagw_allowed(ctx, &p, r->id, OP_CA_BROWSE))
            continue;
        struct ca_runtime *rt = ca_runtime_get(&ctx->env, p.partition, r->id, &e);
        if (!rt)
            continue;
        json_t *o = rt->cert ? ca_json(rt, p.partition) : NULL;
        ca_runtime_release(rt);
        if (o && json_array_append_new(arr, o) != 0) {
            oom(resp);
            goto out;
        }
    }
    send_ok(req, resp, json_pack("{s:s,s:O}", "type", "CAListResponse", "caList", arr));
out:
    json_decref(arr);
    ca_list_free(&l);
}

static void cagw_ca_get(struct http_req *req, struct http_resp *resp)
{
    struct cagw_call c;
    if (begin(req, resp, OP_CA_BROWSE, &c) != 0)
        return;
    send_ok(req, resp, json_pack("{s:s,s:o}", "type", "CAResponse", "ca", ca_json(c.rt, c.p.partition)));
    call_release(&c);
}

/* The CA's own certificate revoked or suspended by its parent: it issues
 * nothing (the issuance core refuses). */
static bool ca_cert_withdrawn(const struct ca_runtime *rt)
{
    return strcmp(rt->cert_status, "revoked") == 0 || strcmp(rt->cert_status, "suspended") == 0;
}

static void cagw_ca_status(struct http_req *req, struct http_resp *resp)
{
    struct cagw_call c;
    if (begin(req, resp, OP_CA_BROWSE, &c) != 0)
        return;
    /* UP while the CA can serve: not expired, and its own certificate not
     * revoked or held by its parent (external roots only serve their
     * certificate and status information). */
    bool up = X509_cmp_time(X509_get0_notAfter(c.rt->cert), NULL) > 0 && !ca_cert_withdrawn(c.rt);
    send_ok(req, resp, json_pack("{s:s,s:s}", "type", "CAStatusResponse", "status", up ? "UP" : "DOWN"));
    call_release(&c);
}

static void cagw_ca_capabilities(struct http_req *req, struct http_resp *resp)
{
    struct cagw_call c;
    json_t *caps = NULL;
    if (begin(req, resp, OP_CA_BROWSE, &c) != 0)
        return;
    bool issuing = strcmp(c.rt->rec.type, "externalKey") != 0 && c.rt->signer && !ca_cert_withdrawn(c.rt);
    caps = json_array();
    static const char *const always[] = {"CertificateGet", "CertificateEvents", "Profiles", "RevokeAction",
                                         "HoldAction", "UnholdAction", "SubjectActions"};
    if (caps && issuing) {
        json_array_append_new(caps, json_string("Enrollment"));
        json_array_append_new(caps, json_string("EnrollmentX509"));
        json_array_append_new(caps, json_string("EnrollmentPEM"));
        if (strcmp(c.rt->rec.type, "root") != 0) /* the core refuses server-side keys on roots */
            json_array_append_new(caps, json_string("EnrollmentPKCS12"));
    }
    for (size_t i = 0; caps && i < sizeof always / sizeof always[0]; i++)
        json_array_append_new(caps, json_string(always[i]));
    send_ok(req, resp, caps ? json_pack("{s:s,s:o}", "type", "CapabilitiesResponse", "capabilities", caps) : NULL);
    call_release(&c);
}

/* ---- profiles ----------------------------------------------------------- */

static json_t *profile_json(const struct profile *pr)
{
    char kts[96] = "";
    for (unsigned b = 1; b <= KT_EC521; b <<= 1) {
        const char *n = (pr->key_types & b) ? profile_key_type_name(b) : NULL;
        if (n && strlen(kts) + strlen(n) + 2 < sizeof kts) {
            if (kts[0])
                strcat(kts, ",");
            strcat(kts, n);
        }
    }
    const char *desc = json_string_value(json_object_get(pr->json, "description"));
    json_t *props = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "description", desc ? desc : "", "group", pr->group,
                              "validityPeriod", pr->validity_text, "keyTypes", kts, "pkcs12",
                              pr->pkcs12 ? "true" : "false", "subjectAltName",
                              pr->san_required ? "required" : "optional");
    json_t *vars = json_array(), *sans = json_array();
    static const char *const var_names[] = {"cn", "o", "ou", "l", "st", "c", "e", "serialNumber"};
    static const char *const san_types[] = {"dNSName",           "iPAddress",     "rfc822Name",  "uniformResourceIdentifier",
                                            "userPrincipalName", "directoryName", "registeredID"};
    for (size_t i = 0; vars && i < sizeof var_names / sizeof var_names[0]; i++)
        json_array_append_new(vars, json_pack("{s:s,s:b}", "name", var_names[i], "required", 0));
    for (size_t i = 0; sans && i < sizeof san_types / sizeof san_types[0]; i++)
        json_array_append_new(sans, json_pack("{s:s,s:b}", "type", san_types[i], "required",
                                              i == 0 && pr->san_required));
    return json_pack("{s:s,s:s,s:o,s:[],s:[],s:o,s:o}", "id", pr->id, "name", pr->id, "properties", props,
                     "protocols", "requestedProperties", "subjectVariableRequirements", vars,
                     "subjectAltNameRequirements", sans);
}

static void cagw_profiles(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct cagw_call c;
    json_t *arr = NULL;
    if (begin(req, resp, OP_PROFILE_BROWSE, &c) != 0)
        return;
    if (!(arr = json_array())) {
        oom(resp);
        goto out;
    }
    for (size_t i = 0; i < c.rt->nprofiles; i++) {
        struct err e;
        const struct profile *pr = profile_resolve(ctx->store, c.p.partition, c.rt->profiles[i], &e);
        if (!pr)
            continue; /* deleted meanwhile: the cache catches up */
        json_t *o = profile_json(pr);
        profile_release(pr);
        if (!o || json_array_append_new(arr, o) != 0) {
            oom(resp);
            goto out;
        }
    }
    char m[64];
    snprintf(m, sizeof m, "%zu profile(s) available.", json_array_size(arr));
    send_ok(req, resp, json_pack("{s:s,s:O,s:o}", "type", "ProfilesResponse", "profiles", arr, "message", message(m)));
out:
    json_decref(arr);
    call_release(&c);
}

static void cagw_profile_get(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct cagw_call c;
    struct err e;
    if (begin(req, resp, OP_PROFILE_BROWSE, &c) != 0)
        return;
    const char *pid = req->params[1];
    const struct profile *pr = NULL;
    if (!ca_runtime_has_profile(c.rt, pid) || !(pr = profile_resolve(ctx->store, c.p.partition, pid, &e))) {
        cagw_error(resp, 404, "cagw-4041", "profileId", pid, "no profile '%.64s' on CA '%s'", pid, c.ca_id);
        goto out;
    }
    send_ok(req, resp, json_pack("{s:s,s:o,s:o}", "type", "ProfileResponse", "profile", profile_json(pr), "message",
                                 message("Profile found.")));
    profile_release(pr);
out:
    call_release(&c);
}

/* ---- enrollments -------------------------------------------------------- */

/* RFC 4514 escaping of one attribute value. */
static int dn_escape(struct buf *b, const char *v)
{
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        int r;
        if (ch < 0x20 || ch == 0x7F)
            r = buf_printf(b, "\\%02X", ch);
        else if (strchr(",+\"\\<>;=", ch) || (i == 0 && (ch == '#' || ch == ' ')) || (i == n - 1 && ch == ' '))
            r = buf_printf(b, "\\%c", ch);
        else
            r = buf_append(b, &ch, 1);
        if (r != 0)
            return -1;
    }
    return 0;
}

/* subjectVariables [{type, value}] -> a DN string in the given order
 * (RFC 4514: most specific first). NULL with the error answered. */
static char *subject_from_vars(struct http_resp *resp, const json_t *vars)
{
    struct buf b, one;
    char *out = NULL;
    size_t i;
    const json_t *v;
    buf_init(&b, DN_MAX_STRING);
    buf_init(&one, DN_MAX_STRING);
    json_array_foreach(vars, i, v) {
        char target[64], dnerr[200];
        const char *type = json_string_value(json_object_get(v, "type"));
        const char *value = json_string_value(json_object_get(v, "value"));
        snprintf(target, sizeof target, "subjectVariables[%zu].type", i);
        if (!json_is_object(v) || !type || !*type || strspn(type, "abcdefghijklmnopqrstuvwxyz"
                                                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.") !=
                                                          strlen(type)) {
            bad_request(resp, target, type, "an attribute name such as cn, o, ou, c, l, st, e, serialNumber");
            goto out;
        }
        snprintf(target, sizeof target, "subjectVariables[%zu].value", i);
        if (!value || !*value) {
            bad_request(resp, target, NULL, "must be a non-empty string");
            goto out;
        }
        /* aliases the DN parser does not know itself */
        const char *attr = strcasecmp(type, "emailAddress") == 0 ? "E" : type;
        buf_reset(&one);
        X509_NAME *chk = NULL;
        if (buf_printf(&one, "%s=", attr) != 0 || dn_escape(&one, value) != 0) {
            bad_request(resp, target, NULL, "too long");
            goto out;
        }
        if (dn_parse((const char *)one.data, &chk, dnerr, sizeof dnerr) != 0) {
            snprintf(target, sizeof target, "subjectVariables[%zu]", i);
            bad_request(resp, target, type, dnerr);
            goto out;
        }
        X509_NAME_free(chk);
        if ((b.len && buf_append_str(&b, ", ") != 0) || buf_append(&b, one.data, one.len) != 0) {
            bad_request(resp, "subjectVariables", NULL, "the subject is too long");
            goto out;
        }
    }
    size_t n;
    out = (char *)buf_take(&b, &n);
    if (!out)
        oom(resp);
out:
    buf_free(&b);
    buf_free(&one);
    return out;
}

/* subjectAltNames [{type, value}] -> the core's [{type, value}]. */
static json_t *sans_from_req(struct http_resp *resp, const json_t *arr)
{
    static const char *const ok[] = {"dNSName",           "iPAddress",     "rfc822Name",  "uniformResourceIdentifier",
                                     "userPrincipalName", "directoryName", "registeredID"};
    static const char *const unsupported[] = {"otherName", "x400Address", "ediPartyName"};
    json_t *out = json_array();
    size_t i;
    const json_t *v;
    if (!out) {
        oom(resp);
        return NULL;
    }
    json_array_foreach(arr, i, v) {
        char target[64];
        const char *type = json_string_value(json_object_get(v, "type"));
        const char *value = json_string_value(json_object_get(v, "value"));
        bool known = false;
        snprintf(target, sizeof target, "subjectAltNames[%zu].type", i);
        if (!json_is_object(v) || !type) {
            bad_request(resp, target, NULL, "each entry needs a type and a value");
            goto fail;
        }
        for (size_t k = 0; k < sizeof unsupported / sizeof unsupported[0]; k++)
            if (strcmp(type, unsupported[k]) == 0) {
                bad_request(resp, target, type, "this subject alternative name type is not supported");
                goto fail;
            }
        for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++)
            known = known || strcmp(type, ok[k]) == 0;
        if (!known) {
            bad_request(resp, target, type,
                        "must be dNSName, iPAddress, rfc822Name, uniformResourceIdentifier, userPrincipalName, "
                        "directoryName or registeredID");
            goto fail;
        }
        snprintf(target, sizeof target, "subjectAltNames[%zu].value", i);
        if (!value || !*value) {
            bad_request(resp, target, NULL, "must be a non-empty string");
            goto fail;
        }
        if (json_array_append_new(out, json_pack("{s:s,s:s}", "type", type, "value", value)) != 0) {
            oom(resp);
            goto fail;
        }
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

static bool is_duration(const char *s)
{
    struct duration d;
    return s[0] == 'P' && duration_parse(s, &d) == 0;
}

/* validityPeriod: "PT60M" (duration) -> *period; "start/end",
 * "start/P1Y3M", "P3M/end" -> na_out (RFC 3339), and for an explicit start
 * a future start -> nb_out (a past start means "from now"). */
static int parse_validity(struct http_resp *resp, const char *v, const char **period, char *na_out,
                          char *nb_out, size_t n)
{
    static const char target[] = "optionalCertificateRequestDetails.validityPeriod";
    static const char help[] = "an ISO 8601 duration (PT60M, P1Y) or interval (start/end, start/P1Y, P3M/end)";
    const char *slash = strchr(v, '/');
    char left[64], right[64];
    int64_t now = time_now(), na = 0, start = 0;
    struct duration d;
    if (!slash) {
        if (!is_duration(v)) {
            bad_request(resp, target, v, help);
            return -1;
        }
        *period = v;
        return 0;
    }
    size_t ll = (size_t)(slash - v), rl = strlen(slash + 1);
    if (ll == 0 || rl == 0 || ll >= sizeof left || rl >= sizeof right) {
        bad_request(resp, target, v, help);
        return -1;
    }
    memcpy(left, v, ll);
    left[ll] = 0;
    memcpy(right, slash + 1, rl + 1);
    bool ld = left[0] == 'P', rd = right[0] == 'P';
    if ((ld && rd) || (ld && !is_duration(left)) || (!ld && time_parse_rfc3339(left, &start) != 0)) {
        bad_request(resp, target, v, help);
        return -1;
    }
    if (rd) {
        if (duration_parse(right, &d) != 0) {
            bad_request(resp, target, v, help);
            return -1;
        }
        na = duration_add(start, &d);
    } else if (time_parse_rfc3339(right, &na) != 0) {
        bad_request(resp, target, v, help);
        return -1;
    }
    if (!ld && !rd && na <= start) {
        bad_request(resp, target, v, "the interval ends before it starts");
        return -1;
    }
    if (na <= now) {
        bad_request(resp, target, v, "the validity period ends in the past");
        return -1;
    }
    fmt_time(na, na_out, n);
    if (!ld && start > now) /* a start already past: valid from now, never backdated */
        fmt_time(start, nb_out, n);
    return 0;
}

/* The core's field names as CAGW request paths. */
static const char *cagw_field(const char *f, const char *subject_target, char *buf, size_t n)
{
    if (!f || !*f)
        return NULL;
    if (strcmp(f, "keyType") == 0)
        return "properties.keyType";
    if (strcmp(f, "p12Password") == 0)
        return "requiredFormat.protection.password";
    if (strcmp(f, "subject") == 0)
        return subject_target;
    if (strcmp(f, "validityPeriod") == 0 || strcmp(f, "notAfter") == 0 || strcmp(f, "notBefore") == 0)
        return "optionalCertificateRequestDetails.validityPeriod";
    if (strncmp(f, "extensions", 10) == 0) {
        snprintf(buf, n, "optionalCertificateRequestDetails.%s", f);
        return buf;
    }
    return f;
}

static void cagw_enroll(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct cagw_call c;
    struct issue_req ir;
    struct issue_result res;
    struct err e;
    json_t *body = NULL, *sans = NULL, *chain = NULL, *out = NULL;
    char *subject = NULL, *bodytext = NULL, *subj_s = NULL, *iss_s = NULL;
    const json_t *rf = NULL, *prot = NULL, *vars = NULL, *sanreq = NULL, *opt = NULL, *exts = NULL, *props = NULL;
    const char *format = "X509", *password = NULL, *ptype = NULL, *csr = NULL, *subject_dn = NULL,
               *validity = NULL, *key_type = NULL;
    bool use_san_csr = true, include_ca = false;
    char not_after[32], not_before[32] = "";
    X509 *x = NULL;
    memset(&ir, 0, sizeof ir);
    memset(&res, 0, sizeof res);
    if (begin(req, resp, -1, &c) != 0)
        return;
    if (!(body = body_object(req, resp)))
        goto out;
    if (opt_str(resp, body, "profileId", "profileId", PROFILE_ID_MAX, &ir.profile_id) != 0 ||
        opt_obj(resp, body, "requiredFormat", "requiredFormat", &rf) != 0 ||
        opt_str(resp, rf, "format", "requiredFormat.format", 16, &format) != 0 ||
        opt_obj(resp, rf, "protection", "requiredFormat.protection", &prot) != 0 ||
        opt_str(resp, prot, "type", "requiredFormat.protection.type", 64, &ptype) != 0 ||
        opt_str(resp, prot, "password", "requiredFormat.protection.password", 128, &password) != 0 ||
        opt_str(resp, body, "csr", "csr", CAGW_CSR_MAX, &csr) != 0 ||
        opt_arr(resp, body, "subjectVariables", "subjectVariables", &vars) != 0 ||
        opt_arr(resp, body, "subjectAltNames", "subjectAltNames", &sanreq) != 0 ||
        opt_obj(resp, body, "optionalCertificateRequestDetails", "optionalCertificateRequestDetails", &opt) != 0 ||
        opt_str(resp, opt, "subjectDn", "optionalCertificateRequestDetails.subjectDn", DN_MAX_STRING,
                &subject_dn) != 0 ||
        opt_str(resp, opt, "validityPeriod", "optionalCertificateRequestDetails.validityPeriod", 80, &validity) !=
            0 ||
        opt_bool(resp, opt, "useSANFromCSR", "optionalCertificateRequestDetails.useSANFromCSR", &use_san_csr) != 0 ||
        opt_arr(resp, opt, "extensions", "optionalCertificateRequestDetails.extensions", &exts) != 0 ||
        opt_bool(resp, body, "includeCa", "includeCa", &include_ca) != 0 ||
        opt_obj(resp, body, "properties", "properties", &props) != 0 ||
        opt_str(resp, props, "keyType", "properties.keyType", 16, &key_type) != 0)
        goto out;
    ir.ignore_csr_sans = !use_san_csr; /* absent: the CSR's SANs count */
    (void)include_ca;  /* the chain is always returned */
    if (!ir.profile_id || !*ir.profile_id) {
        bad_request(resp, "profileId", NULL, "required");
        goto out;
    }
    bool p12 = strcasecmp(format, "PKCS12") == 0;
    if (!p12 && strcasecmp(format, "X509") != 0 && strcasecmp(format, "PEM") != 0) {
        bad_request(resp, "requiredFormat.format", format, "must be X509, PEM or PKCS12");
        goto out;
    }
    if (ptype && strcmp(ptype, "PasswordProtection") != 0) {
        bad_request(resp, "requiredFormat.protection.type", ptype, "must be PasswordProtection");
        goto out;
    }
    if (require(req, resp, &c, p12 ? OP_CERT_ISSUE_P12 : OP_CERT_ISSUE_CSR) != 0)
        goto out;
    if (p12) {
        if (csr && *csr) {
            bad_request(resp, "csr", NULL, "PKCS12 enrollments generate the key on the server; omit the csr");
            goto out;
        }
        if (!password || !*password) {
            bad_request(resp, "requiredFormat.protection.password", NULL, "required for PKCS12");
            goto out;
        }
        ir.key_type = key_type && *key_type ? key_type : "EC-P256";
        ir.p12_password = password;
    } else {
        if (!csr || !*csr) {
            bad_request(resp, "csr", NULL, "required for X509 and PEM enrollments");
            goto out;
        }
        ir.csr = (const unsigned char *)csr;
        ir.csr_len = strlen(csr);
    }
    if (sanreq && !(sans = sans_from_req(resp, sanreq)))
        goto out;
    const char *subject_target = "optionalCertificateRequestDetails.subjectDn";
    if (subject_dn && *subject_dn) {
        ir.subject = subject_dn;
    } else if (vars && json_array_size(vars) > 0) {
        if (!(subject = subject_from_vars(resp, vars)))
            goto out;
        ir.subject = subject;
        subject_target = "subjectVariables";
    } else if (p12 && json_array_size(sans) > 0) {
        ir.subject = ""; /* empty subject, names in the SAN extension */
    } else if (!p12) {
        subject_target = "csr";
    }
    if (validity && *validity &&
        parse_validity(resp, validity, &ir.validity_period, not_after, not_before, sizeof not_after))
        goto out;
    if (validity && *validity && !ir.validity_period)
        ir.not_after = not_after;
    if (not_before[0])
        ir.not_before = not_before;
    ir.partition = c.p.partition;
    ir.ca_id = c.ca_id;
    ir.sans = sans;
    ir.extensions = exts;
    ir.requester = c.p.actor;
    ir.requester_ip = c.p.ip;
    if (issue_certificate(&ctx->env, &ir, &res, &e) != 0) {
        char fb[sizeof "optionalCertificateRequestDetails." + sizeof e.field];
        fail_err(resp, &e, cagw_field(e.field, subject_target, fb, sizeof fb));
        goto out;
    }
    const unsigned char *q = res.der;
    if (!(x = d2i_X509(NULL, &q, (long)res.der_len)) || !(chain = chain_json(res.chain, 0)) ||
        !(subj_s = dn_print(X509_get_subject_name(x))) || !(iss_s = dn_print(X509_get_issuer_name(x))))
        goto internal;
    if (p12)
        bodytext = b64_encode(res.p12, res.p12_len);
    else if (strcasecmp(format, "PEM") == 0)
        bodytext = pem_der("CERTIFICATE", res.der, res.der_len);
    else
        bodytext = b64_encode(res.der, res.der_len);
    if (!bodytext)
        goto internal;
    out = json_pack("{s:s,s:o,s:{s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:O,s:{}}}", "type", "EnrollmentResponse", "message",
                    message("Enrollment was successful."), "enrollment", "id", res.serial, "serialNumber",
                    res.serial, "subjectName", subj_s, "issuerName", iss_s, "validityPeriod",
                    validity_json(res.not_before, res.not_after), "status", "ISSUED", "body", bodytext, "chain",
                    chain, "properties");
    if (!out)
        goto internal;
    resp_json(resp, 200, out);
    goto out;
internal:
    cagw_error(resp, 500, "cagw-5001", NULL, NULL, "the certificate %s was issued but cannot be encoded",
               res.serial);
out:
    X509_free(x);
    free(bodytext);
    free(subj_s);
    free(iss_s);
    free(subject);
    json_decref(chain);
    json_decref(sans);
    json_decref(body);
    issue_result_free(&res);
    call_release(&c);
}

/* ---- certificates ------------------------------------------------------- */

static int load_cert(struct http_req *req, struct http_resp *resp, const struct cagw_call *c, const char *given,
                     struct cert_rec *cr)
{
    struct api_ctx *ctx = req->app;
    char serial[48];
    int s = api_serial_norm(given, serial, sizeof serial) == 0
                ? ctx->store->ops->cert_get(ctx->store, c->p.partition, c->rt->rec.pk, serial, cr)
                : STORE_ENOTFOUND;
    if (s == STORE_OK)
        return 0;
    if (s == STORE_ENOTFOUND)
        cagw_error(resp, 404, "cagw-4041", "serialNumber", given, "no certificate %.64s issued by CA '%s'", given,
                   c->ca_id);
    else
        cagw_error(resp, 503, "cagw-5031", NULL, NULL, "store unavailable");
    return -1;
}

static const char *const reason_names[] = {"unspecified", "keyCompromise", "caCompromise", "affiliationChanged",
                                           "superseded", "cessationOfOperation", "certificateHold", NULL,
                                           "removeFromCRL", "privilegeWithdrawn", "aACompromise"};

static const char *reason_name(int code)
{
    return code >= 0 && (size_t)code < sizeof reason_names / sizeof reason_names[0] ? reason_names[code] : NULL;
}

static json_t *cert_json(const struct cert_rec *cr, X509 *x)
{
    char *subj = dn_print(X509_get_subject_name(x)), *iss = dn_print(X509_get_issuer_name(x));
    char *rfc = name_rfc2253(X509_get_subject_name(x)), *spki = NULL;
    unsigned char *pk = NULL;
    int pkl = i2d_PUBKEY(X509_get0_pubkey(x), &pk);
    if (pkl > 0)
        spki = b64_encode(pk, (size_t)pkl);
    OPENSSL_free(pk);
    const char *alg = X509_get0_pubkey(x) ? EVP_PKEY_get0_type_name(X509_get0_pubkey(x)) : NULL;
    int signid = X509_get_signature_nid(x);
    int64_t now = time_now();
    const char *status = strcmp(cr->status, "revoked") == 0     ? "revoked"
                         : strcmp(cr->status, "suspended") == 0 ? "held"
                         : cr->not_after <= now                 ? "expired"
                                                                : "normal";
    json_t *rev = json_null();
    if (strcmp(cr->status, "revoked") == 0 || strcmp(cr->status, "suspended") == 0) {
        const char *rn = strcmp(cr->status, "suspended") == 0 ? "certificateHold" : reason_name(cr->revocation_reason);
        rev = json_pack("{s:s?,s:o,s:o,s:s?}", "reason", rn, "revocationDate", jtime(cr->revoked_at),
                        "compromiseDate", jtime(cr->invalidity_date), "comment", cr->status_comment);
    }
    char *der = b64_encode(cr->der, cr->der_len);
    json_t *o = json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:o,s:{s:s?,s:s?},s:s,s:s?,s:o}", "status", status,
                          "serialNumber", cr->serial, "issuerName", iss, "subjectName", subj,
                          "rfc2253EncodedSubjectName", rfc, "validityPeriod",
                          validity_json(asn1_epoch(X509_get0_notBefore(x)), asn1_epoch(X509_get0_notAfter(x))),
                          "subjectPublicKeyInfo", "publicKeyAlg", alg, "subjectPublicKey", spki,
                          "certificateSignatureAlg", signid != NID_undef ? OBJ_nid2ln(signid) : "unknown",
                          "certificateData", der, "revocationInfo", rev);
    free(der);
    free(subj);
    free(iss);
    free(rfc);
    free(spki);
    return o;
}

static void cagw_cert_get(struct http_req *req, struct http_resp *resp)
{
    struct cagw_call c;
    struct cert_rec cr;
    X509 *x = NULL;
    memset(&cr, 0, sizeof cr);
    if (begin(req, resp, OP_CERT_BROWSE, &c) != 0)
        return;
    if (load_cert(req, resp, &c, req->params[1], &cr) != 0)
        goto out;
    const unsigned char *q = cr.der;
    if (!(x = d2i_X509(NULL, &q, (long)cr.der_len))) {
        cagw_error(resp, 500, "cagw-5001", NULL, NULL, "stored certificate %s cannot be decoded", cr.serial);
        goto out;
    }
    send_ok(req, resp, json_pack("{s:s,s:o,s:o}", "type", "CertificateResponse", "certificate", cert_json(&cr, x),
                                 "chain", chain_json(c.rt->chain, 0)));
out:
    X509_free(x);
    cert_rec_free(&cr);
    call_release(&c);
}

/* ---- actions ------------------------------------------------------------ */

struct action {
    const char *type;    /* as requested */
    const char *to;      /* revoked | suspended | issued */
    int reason;          /* RFC 5280 code, -1 none */
    const char *reason_text;
    const char *comment;
    bool publish;        /* issueCrl */
    bool succeed_if_already;
};

/* Parses {"action": {...}}; answers the error itself. */
static int parse_action(struct http_resp *resp, const json_t *body, struct action *a)
{
    const json_t *ao = NULL;
    const char *reason = NULL;
    memset(a, 0, sizeof *a);
    a->reason = -1;
    a->succeed_if_already = true;
    if (opt_obj(resp, body, "action", "action", &ao) != 0)
        return -1;
    if (!ao) {
        bad_request(resp, "action", NULL, "required: {\"type\": \"RevokeAction\" | \"HoldAction\" | ...}");
        return -1;
    }
    if (opt_str(resp, ao, "type", "action.type", 64, &a->type) != 0 ||
        opt_str(resp, ao, "reason", "action.reason", 64, &reason) != 0 ||
        opt_str(resp, ao, "comment", "action.comment", CAGW_COMMENT_MAX, &a->comment) != 0 ||
        opt_bool(resp, ao, "issueCrl", "action.issueCrl", &a->publish) != 0 ||
        opt_bool(resp, ao, "succeedIfAlreadyInRequestedState", "action.succeedIfAlreadyInRequestedState",
                 &a->succeed_if_already) != 0)
        return -1;
    if (!a->type) {
        bad_request(resp, "action.type", NULL, "required");
        return -1;
    }
    if (a->comment && !api_comment_ok(a->comment)) {
        bad_request(resp, "action.comment", NULL, "at most 1024 bytes, no control characters");
        return -1;
    }
    if (strcmp(a->type, "RenewAction") == 0 || strcmp(a->type, "ReissueAction") == 0 ||
        strcmp(a->type, "ReactivateAction") == 0) {
        cagw_error(resp, 501, "cagw-5011", "action.type", a->type, "%s is not implemented; enroll a new certificate",
                   a->type);
        return -1;
    }
    if (reason && !*reason)
        reason = NULL;
    if (strcmp(a->type, "RevokeAction") == 0) {
        if (reason && strcasecmp(reason, "certificateHold") == 0) {
            a->to = "suspended";
            a->reason = 6;
        } else {
            a->to = "revoked";
            a->reason = 0;
            if (reason) {
                a->reason = -1;
                for (size_t i = 0; i < sizeof reason_names / sizeof reason_names[0]; i++)
                    if (reason_names[i] && i != 6 && i != 8 && strcasecmp(reason, reason_names[i]) == 0)
                        a->reason = (int)i;
                if (a->reason < 0) {
                    bad_request(resp, "action.reason", reason,
                                "unspecified, keyCompromise, caCompromise, affiliationChanged, superseded, "
                                "cessationOfOperation, certificateHold, privilegeWithdrawn or aACompromise");
                    return -1;
                }
            }
        }
    } else if (strcmp(a->type, "HoldAction") == 0) {
        a->to = "suspended";
        a->reason = 6;
    } else if (strcmp(a->type, "UnholdAction") == 0) {
        a->to = "issued";
    } else {
        bad_request(resp, "action.type", a->type,
                    "RevokeAction, HoldAction or UnholdAction (RenewAction, ReissueAction and ReactivateAction are "
                    "not implemented)");
        return -1;
    }
    a->reason_text = a->reason >= 0 ? reason_name(a->reason) : reason;
    return 0;
}

/* 0 changed, 1 already in the requested state, -1 error in e. */
static int apply_action(struct api_ctx *ctx, const struct cagw_call *c, const struct cert_rec *cr,
                        const struct action *a, bool publish, struct err *e)
{
    if (strcmp(cr->status, a->to) == 0) {
        if (!a->succeed_if_already) {
            err_set(e, 409, "conflict", "action.type", "certificate %s is already %s", cr->serial, a->to);
            return -1;
        }
        return 1;
    }
    if (strcmp(cr->status, "revoked") == 0) {
        err_set(e, 409, "conflict", "action.type", "certificate %s is revoked; revocation is final", cr->serial);
        return -1;
    }
    if (strcmp(a->to, "issued") == 0 && strcmp(cr->status, "suspended") != 0) {
        err_set(e, 409, "conflict", "action.type", "certificate %s is not on hold", cr->serial);
        return -1;
    }
    if (api_cert_set_status(ctx, &c->rt->rec, cr->serial, a->to, a->reason, 0, a->comment, c->p.actor, c->p.ip,
                            publish, e) !=
        0) {
        if (e->status == 409)
            err_field_set(e->field, sizeof e->field, "action.type");
        else if (e->status == 404)
            err_field_set(e->field, sizeof e->field, "serialNumber");
        return -1;
    }
    return 0;
}

static json_t *action_response(const struct action *a, json_t *props)
{
    char *id = random_hex(8);
    json_t *o = json_pack("{s:s,s:{s:s,s:s?,s:s,s:b,s:s?,s:s?,s:o}}", "type", "ActionResponse", "action", "type",
                          a->type, "id", id, "status", "COMPLETED", "succeedIfAlreadyInRequestedState",
                          a->succeed_if_already, "reason", a->reason_text, "comment", a->comment, "properties",
                          props ? props : json_object());
    free(id);
    return o;
}

static void cagw_cert_action(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct cagw_call c;
    struct cert_rec cr;
    struct action a;
    struct err e;
    json_t *body = NULL;
    memset(&cr, 0, sizeof cr);
    if (begin(req, resp, OP_CERT_STATUS, &c) != 0)
        return;
    if (!(body = body_object(req, resp)) || parse_action(resp, body, &a) != 0 ||
        load_cert(req, resp, &c, req->params[1], &cr) != 0)
        goto out;
    int r = apply_action(ctx, &c, &cr, &a, a.publish, &e);
    if (r < 0) {
        fail_err(resp, &e, NULL);
        goto out;
    }
    resp_json(resp, 200, action_response(&a, json_pack("{s:s}", "result", r == 1 ? "alreadyInRequestedState"
                                                                                  : "changed")));
out:
    json_decref(body);
    cert_rec_free(&cr);
    call_release(&c);
}

struct serials {
    char (*v)[48];
    size_t n, alloc;
};

static int serials_push(struct serials *s, const char *serial)
{
    if (s->n == s->alloc) {
        size_t na = s->alloc ? s->alloc * 2 : 64;
        void *p = realloc(s->v, na * sizeof *s->v);
        if (!p)
            return -1;
        s->v = p;
        s->alloc = na;
    }
    snprintf(s->v[s->n++], sizeof s->v[0], "%s", serial);
    return 0;
}

/* Serials of the CA's (non-CA) certificates whose subject equals `want`. */
/* A separator for longest_word: white space, and what RFC 4514 escapes in
 * the stored subject text. */
static bool word_sep(unsigned char c)
{
    return isspace(c) || strchr(",+\"\\<>;=#", c) != NULL;
}

/* The longest run of a subject's attribute values without a separator
 * (malloc'd; NULL when there is none, or out of memory). */
static char *longest_word(const X509_NAME *name)
{
    char *best = NULL;
    size_t bl = 0;
    for (int i = 0; i < X509_NAME_entry_count(name); i++) {
        unsigned char *u = NULL;
        int n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
        for (int a = 0; n > 0 && a < n;) {
            while (a < n && word_sep(u[a]))
                a++;
            int b = a;
            while (b < n && !word_sep(u[b]))
                b++;
            if ((size_t)(b - a) > bl) {
                char *w = strndup((const char *)u + a, (size_t)(b - a));
                if (w) {
                    free(best);
                    best = w;
                    bl = (size_t)(b - a);
                }
            }
            a = b;
        }
        OPENSSL_free(u);
    }
    return best;
}

static int subject_serials(struct api_ctx *ctx, const struct cagw_call *c, const X509_NAME *want, const char *text,
                           struct serials *out)
{
    struct cert_query q;
    char cursor[48] = "";
    size_t seen = 0;
    memset(&q, 0, sizeof q);
    q.text = text;
    q.include_ca = false;
    q.limit = CAGW_SUBJECT_BATCH;
    for (;;) {
        struct cert_list l;
        if (ctx->store->ops->cert_list(ctx->store, c->p.partition, c->rt->rec.pk, &q, &l) != STORE_OK)
            return -1;
        for (size_t i = 0; i < l.n; i++) {
            const unsigned char *p = l.items[i].der;
            X509 *x = d2i_X509(NULL, &p, (long)l.items[i].der_len);
            if (x && X509_NAME_cmp(X509_get_subject_name(x), want) == 0 && serials_push(out, l.items[i].serial)) {
                X509_free(x);
                cert_list_free(&l);
                return -1;
            }
            X509_free(x);
        }
        size_t got = l.n;
        if (got) {
            q.cursor_not_after = l.items[got - 1].not_after;
            snprintf(cursor, sizeof cursor, "%s", l.items[got - 1].serial);
            q.cursor_serial = cursor;
        }
        cert_list_free(&l);
        seen += got;
        if (got < q.limit || seen >= CAGW_SUBJECT_MAX)
            return 0;
    }
}

/* `with_suffix`: params[1] is "<DN>/actions" (the {*} route, for DNs that
 * hold a '/' once URL-decoded or exceed one path segment); else the DN. */
static void subject_action(struct http_req *req, struct http_resp *resp, bool with_suffix)
{
    struct api_ctx *ctx = req->app;
    struct cagw_call c;
    struct action a;
    struct err e;
    struct serials s = {NULL, 0, 0};
    json_t *body = NULL;
    char *dn = NULL, *text = NULL, dnerr[200];
    X509_NAME *want = NULL;
    size_t changed = 0, already = 0;
    const char *last = NULL;
    if (begin(req, resp, OP_CERT_STATUS, &c) != 0)
        return;
    const char *rest = req->params[1];
    size_t rl = strlen(rest), sl = with_suffix ? sizeof "/actions" - 1 : 0;
    if (with_suffix && (rl <= sl || strcmp(rest + rl - sl, "/actions") != 0)) {
        cagw_error(resp, 404, "cagw-4041", NULL, NULL, "no such endpoint: use .../subjects/{subjectDn}/actions");
        goto out;
    }
    if (rl - sl > DN_MAX_STRING || !(dn = strndup(rest, rl - sl))) {
        bad_request(resp, "subjectDn", NULL, "too long");
        goto out;
    }
    if (dn_parse(dn, &want, dnerr, sizeof dnerr) != 0) {
        bad_request(resp, "subjectDn", dn, dnerr);
        goto out;
    }
    if (!(body = body_object(req, resp)) || parse_action(resp, body, &a) != 0)
        goto out;
    if (!(text = dn_print(want))) {
        oom(resp);
        goto out;
    }
    /* the store narrows by one word of the subject (its search ignores
     * case), and X509_NAME_cmp decides: case and spacing of values do not
     * matter (RFC 5280 7.1) */
    char *word = longest_word(want);
    int sr = subject_serials(ctx, &c, want, word, &s);
    free(word);
    if (sr != 0) {
        cagw_error(resp, 503, "cagw-5031", NULL, NULL, "store unavailable");
        goto out;
    }
    if (s.n == 0) {
        cagw_error(resp, 404, "cagw-4041", "subjectDn", dn, "no certificate of CA '%s' has the subject '%.200s'",
                   c.ca_id, text);
        goto out;
    }
    for (size_t i = 0; i < s.n; i++) {
        struct cert_rec cr;
        if (ctx->store->ops->cert_get(ctx->store, c.p.partition, c.rt->rec.pk, s.v[i], &cr) != STORE_OK)
            continue; /* listed a moment ago; nothing to act on */
        int r = apply_action(ctx, &c, &cr, &a, false, &e);
        cert_rec_free(&cr);
        if (r < 0 && e.status == 409 && a.succeed_if_already) {
            /* e.g. a revoked one among held ones: leave it, report it */
            continue;
        }
        if (r < 0) {
            cagw_error(resp, e.status, code_for(e.status), e.field[0] ? e.field : NULL, s.v[i],
                       "%s (after %zu of %zu certificates changed)", e.msg, changed, s.n);
            goto out;
        }
        if (r == 0) {
            changed++;
            last = s.v[i];
        } else {
            already++;
        }
    }
    if (a.publish && last)
        api_status_changed(ctx, &c.rt->rec, last, true);
    char m[24], ch[24], al[24];
    snprintf(m, sizeof m, "%zu", s.n);
    snprintf(ch, sizeof ch, "%zu", changed);
    snprintf(al, sizeof al, "%zu", already);
    resp_json(resp, 200, action_response(&a, json_pack("{s:s,s:s,s:s,s:s}", "subjectDn", text, "matched", m,
                                                       "changed", ch, "alreadyInRequestedState", al)));
out:
    free(s.v);
    free(dn);
    free(text);
    X509_NAME_free(want);
    json_decref(body);
    call_release(&c);
}

static void cagw_subject_action(struct http_req *req, struct http_resp *resp)
{
    subject_action(req, resp, false);
}

static void cagw_subject_action_long(struct http_req *req, struct http_resp *resp)
{
    subject_action(req, resp, true);
}

/* ---- certificate events ------------------------------------------------- */

struct ev_row {
    int64_t seq, at_ms;
    const char *action; /* static */
    char serial[48];
    char *detail;
};

struct ev_collect {
    char prefix[64];
    size_t prefix_len;
    struct ev_row *rows;
    unsigned want, n;
    bool more, failed;
};

static const struct {
    const char *audit, *event;
} ev_map[] = {
    {"cert.issue", "issued"},     {"cert.issue.pkcs12", "issued"}, {"cert.revoke", "revoked"},
    {"cert.suspend", "held"},     {"cert.unsuspend", "unheld"},
};

/* Runs under the store's lock: copies what it needs, no store calls. */
static int ev_cb(const struct audit_row *r, void *vctx)
{
    struct ev_collect *ec = vctx;
    const char *ev = NULL;
    for (size_t i = 0; i < sizeof ev_map / sizeof ev_map[0]; i++)
        if (strcmp(r->action, ev_map[i].audit) == 0)
            ev = ev_map[i].event;
    if (!ev || (r->result && strcmp(r->result, "success") != 0) || !r->target ||
        strncmp(r->target, ec->prefix, ec->prefix_len) != 0 || strlen(r->target + ec->prefix_len) >= 48)
        return 0;
    if (ec->n == ec->want) {
        ec->more = true;
        return 1;
    }
    struct ev_row *row = &ec->rows[ec->n];
    row->seq = r->seq;
    row->at_ms = r->at_ms;
    row->action = ev;
    snprintf(row->serial, sizeof row->serial, "%s", r->target + ec->prefix_len);
    row->detail = r->detail ? strdup(r->detail) : NULL;
    if (r->detail && !row->detail) {
        ec->failed = true;
        return 1;
    }
    ec->n++;
    return 0;
}

static int time_q(struct http_req *req, struct http_resp *resp, const char *name, int64_t *out_ms)
{
    const char *v = http_query(req, name);
    int64_t t, ms = 0;
    if (!v || !*v)
        return 0;
    if (time_parse_rfc3339(v, &t) != 0) {
        bad_request(resp, name, v, "an RFC 3339 date-time such as 2024-01-01T00:00:00Z");
        return -1;
    }
    const char *dot = strchr(v, '.');
    if (dot) {
        int k = 0;
        for (const char *p = dot + 1; *p >= '0' && *p <= '9'; p++, k++)
            if (k < 3)
                ms = ms * 10 + (*p - '0');
        for (; k < 3; k++)
            ms *= 10;
    }
    *out_ms = t * 1000 + ms;
    return 0;
}

static void cagw_events(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct cagw_call c;
    struct audit_filter f;
    struct ev_collect ec;
    json_t *arr = NULL;
    memset(&f, 0, sizeof f);
    memset(&ec, 0, sizeof ec);
    if (begin(req, resp, OP_CERT_BROWSE, &c) != 0)
        return;
    if (time_q(req, resp, "startDate", &f.from_ms) != 0 || time_q(req, resp, "endDate", &f.to_ms) != 0)
        goto out;
    /* records are matched by the CA's id: only this CA's, so none of a
     * deleted CA that had the same id before it */
    int64_t born_ms = c.rt->rec.created_at * 1000;
    if (f.from_ms < born_ms)
        f.from_ms = born_ms;
    /* an end before the beginning of time is an empty range, not an open one */
    const char *end_q = http_query(req, "endDate");
    if (end_q && *end_q && f.to_ms <= 0)
        f.to_ms = 1;
    const char *size = http_query(req, "preferredPageSize"), *token = http_query(req, "nextPageIndex");
    ec.want = CAGW_PAGE_MAX;
    if (size && *size) {
        char *end = NULL;
        long v = strtol(size, &end, 10);
        if (!end || *end || v < 1) {
            bad_request(resp, "preferredPageSize", size, "a positive integer (at most 50 are returned)");
            goto out;
        }
        ec.want = v > CAGW_PAGE_MAX ? CAGW_PAGE_MAX : (unsigned)v;
    }
    if (token && *token && strcmp(token, "null") != 0) {
        unsigned char *raw = NULL;
        size_t rawlen = 0;
        char digits[24];
        char *end = NULL;
        long long seq = -1;
        if (strlen(token) <= 40 && b64url_decode(token, strlen(token), &raw, &rawlen) == 0 && rawlen > 0 &&
            rawlen < sizeof digits) {
            memcpy(digits, raw, rawlen);
            digits[rawlen] = 0;
            if (strspn(digits, "0123456789") == rawlen)
                seq = strtoll(digits, &end, 10);
        }
        free(raw);
        if (seq < 0) {
            bad_request(resp, "nextPageIndex", token, "not a value returned by this API");
            goto out;
        }
        f.after_seq = seq;
    }
    snprintf(ec.prefix, sizeof ec.prefix, "cert:%s/", c.ca_id);
    ec.prefix_len = strlen(ec.prefix);
    if (!(ec.rows = calloc(ec.want, sizeof *ec.rows)) || !(arr = json_array())) {
        oom(resp);
        goto out;
    }
    int rc = ctx->store->ops->audit_iter(ctx->store, c.p.partition, &f, ev_cb, &ec);
    if ((rc != STORE_OK && rc != 1) || ec.failed) {
        cagw_error(resp, 503, "cagw-5031", NULL, NULL, "store unavailable");
        goto out;
    }
    for (unsigned i = 0; i < ec.n; i++) {
        struct ev_row *row = &ec.rows[i];
        struct cert_rec cr;
        char t[40];
        char *der = NULL;
        fmt_ms(row->at_ms, t, sizeof t);
        if (ctx->store->ops->cert_get(ctx->store, c.p.partition, c.rt->rec.pk, row->serial, &cr) == STORE_OK) {
            der = b64_encode(cr.der, cr.der_len);
            cert_rec_free(&cr);
        }
        /* status changes record the reason name as the audit detail;
         * issuance records JSON (subject, profile) */
        bool change = strcmp(row->action, "revoked") == 0 || strcmp(row->action, "held") == 0;
        json_t *ev = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s?}", "action", row->action, "eventDate", t,
                               "serialNumber", row->serial, "certificate", der, "reason",
                               change ? row->detail : NULL, "detail", change ? NULL : row->detail);
        free(der);
        if (!ev || json_array_append_new(arr, ev) != 0) {
            oom(resp);
            goto out;
        }
    }
    json_t *next = json_null();
    if (ec.n) {
        char digits[24];
        snprintf(digits, sizeof digits, "%lld", (long long)ec.rows[ec.n - 1].seq);
        next = jtake(b64url_encode((const unsigned char *)digits, strlen(digits)));
    }
    send_ok(req, resp, json_pack("{s:s,s:O,s:o,s:b}", "type", "CertificateEventsResponse", "events", arr,
                                 "nextPageIndex", next, "morePages", ec.more));
out:
    for (unsigned i = 0; ec.rows && i < ec.n; i++)
        free(ec.rows[i].detail);
    free(ec.rows);
    json_decref(arr);
    call_release(&c);
}

/* ---- routes ------------------------------------------------------------- */

const struct route cagw_routes[] = {
    {"GET", CAGW_BASE, cagw_ca_list, 0},
    {"GET", CAGW_CA, cagw_ca_get, 0},
    {"GET", CAGW_CA "/status", cagw_ca_status, 0},
    {"GET", CAGW_CA "/capabilities", cagw_ca_capabilities, 0},
    {"GET", CAGW_CA "/profiles", cagw_profiles, 0},
    {"GET", CAGW_CA "/profiles/{}", cagw_profile_get, 0},
    {"POST", CAGW_CA "/enrollments", cagw_enroll, CAGW_CAP_CERT},
    {"GET", CAGW_CA "/certificates/{}", cagw_cert_get, 0},
    {"POST", CAGW_CA "/certificates/{}/actions", cagw_cert_action, CAGW_CAP_CERT},
    {"POST", CAGW_CA "/subjects/{}/actions", cagw_subject_action, CAGW_CAP_CERT},
    /* the same, for subject DNs with a '/' (sent as %2F) or longer than one
     * path segment: ".../subjects/<DN>/actions" as one capture */
    {"POST", CAGW_CA "/subjects/{*}", cagw_subject_action_long, CAGW_CAP_CERT},
    {"GET", CAGW_CA "/certificate-events", cagw_events, 0},
};
const size_t cagw_routes_count = sizeof cagw_routes / sizeof cagw_routes[0];
