/* ACME server (RFC 8555). One file for the resource handlers; the JWS layer
 * is jws.c and challenge checks are validate.c.
 *
 * Every POST goes through acme_begin(): configuration lookup, content type,
 * JWS parse, `url` header, single-use nonce, key (jwk or kid), signature.
 * Every response carries a fresh Replay-Nonce and the directory Link.
 *
 * State: accounts, orders and authorizations are store documents whose JSON
 * this file owns:
 *   account: {jwk, contact[], tosAgreed, eab?, createdAt}
 *   order:   {account, status, expires, identifiers[], authorizations[],
 *             notBefore?, notAfter?, caId, serial?, error?}
 *   authz:   {account, order, identifier{type,value}, wildcard, status,
 *             expires, challenges[{type, token, status, validated?, error?}]}
 * Updates use the row version (optimistic concurrency) and retry. */
#include "acme/acme.h"
#include "util/limits.h"

#include "acme/jws.h"
#include "api/api.h"
#include "api/api_json.h"
#include "ca/issue.h"
#include "crypto/keywrap.h"
#include "proto/proto.h"
#include "util/codec.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/utf8.h"
#include "x509/san.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A challenge "processing" longer than this (validation takes seconds;
 * its node stopped meanwhile) may be asked for again. */
#define ACME_PROCESSING_STALE_S 120
#define NONCE_TTL_S LIMIT_ACME_NONCE_TTL_S
#define ORDER_TTL_S LIMIT_ACME_ORDER_TTL_S
#define RETAIN_S (90 * 86400) /* documents outlive their ACME expiry this long */
#define MAX_IDENTIFIERS LIMIT_ACME_IDENTIFIERS
#define MAX_CONTACTS LIMIT_ACME_CONTACTS
#define CONTACT_MAX LIMIT_ACME_CONTACT_BYTES
#define UPDATE_RETRIES 8
#define CAP_CERT 1 /* rate-limit class "certificate" (api.c) */

static const char *const problem_ns = "urn:ietf:params:acme:error:";

/* ---- small helpers ------------------------------------------------------ */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static json_t *jtime_s(int64_t t)
{
    return jtime(t);
}

static char *base_url(struct api_ctx *ctx, const char *partition, const char *cfg)
{
    char *u = NULL;
    if (asprintf(&u, "%s/acme/%s/%s", ctx->env.https_base, partition, cfg) < 0)
        return NULL;
    return u;
}

char *acme_directory_url(const char *https_base, const char *partition, const char *config)
{
    char *u = NULL;
    if (asprintf(&u, "%s/acme/%s/%s/directory", https_base, partition, config) < 0)
        return NULL;
    return u;
}

/* base + p1 + a + p2 + b (NULL parts skipped). */
static char *url_join(const char *base, const char *p1, const char *a, const char *p2, const char *b)
{
    char *u = NULL;
    if (asprintf(&u, "%s%s%s%s%s", base, p1 ? p1 : "", a ? a : "", p2 ? p2 : "", b ? b : "") < 0)
        return NULL;
    return u;
}

static void add_nonce(struct api_ctx *ctx, struct http_resp *resp)
{
    struct obj_rec o;
    memset(&o, 0, sizeof o);
    char *n = random_token(16);
    if (!n)
        return;
    snprintf(o.kind, sizeof o.kind, "%s", ACME_KIND_NONCE);
    snprintf(o.id, sizeof o.id, "%s", n);
    o.expires_at = now_s() + NONCE_TTL_S;
    if (ctx->store->ops->obj_put(ctx->store, &o, OBJ_CREATE, NULL) == STORE_OK)
        resp_header(resp, "Replay-Nonce", n);
    free(n);
}

static bool nonce_take(struct api_ctx *ctx, const char *nonce)
{
    if (!nonce || !*nonce || strlen(nonce) > 64)
        return false;
    return ctx->store->ops->obj_delete(ctx->store, "", ACME_KIND_NONCE, nonce, NULL) == STORE_OK;
}

static void link_index(struct http_resp *resp, const char *base)
{
    char *l = NULL;
    if (asprintf(&l, "<%s/directory>;rel=\"index\"", base) >= 0) {
        resp_header(resp, "Link", l);
        free(l);
    }
}

__attribute__((format(printf, 5, 6))) static void problem(struct api_ctx *ctx, struct http_resp *resp, int status,
                                                          const char *type, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    utf8_fix(detail);
    char t[96];
    snprintf(t, sizeof t, "%s%s", problem_ns, type);
    json_t *j = json_pack("{s:s,s:s,s:i}", "type", t, "detail", detail, "status", status);
    if (strcmp(type, "badSignatureAlgorithm") == 0)
        json_object_set_new(j, "algorithms", json_pack("[s,s,s,s,s]", JWS_ALGS));
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (body)
        resp_take(resp, status, "application/problem+json", (unsigned char *)body, strlen(body));
    else
        resp_bytes(resp, 500, "text/plain", "", 0);
    add_nonce(ctx, resp);
}

static void problem_err(struct api_ctx *ctx, struct http_resp *resp, const struct err *e)
{
    problem(ctx, resp, e->status ? e->status : 400, e->code[0] ? e->code : "malformed", "%s", e->msg);
}

static void reply_json(struct api_ctx *ctx, struct http_resp *resp, int status, json_t *j, const char *location)
{
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!body) {
        problem(ctx, resp, 500, "serverInternal", "out of memory");
        return;
    }
    resp_take(resp, status, "application/json", (unsigned char *)body, strlen(body));
    if (location)
        resp_header(resp, "Location", location);
    add_nonce(ctx, resp);
}

static json_t *doc_of(const struct obj_rec *o)
{
    json_error_t je;
    json_t *j = o->json ? json_loads(o->json, 0, &je) : NULL;
    return j ? j : json_object();
}

static int save_doc(struct api_ctx *ctx, struct obj_rec *o, json_t *doc, enum obj_put_mode mode,
                    const struct audit_rec *a)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s)
        return STORE_EIO;
    free(o->json);
    o->json = s;
    const char *st = json_string_value(json_object_get(doc, "status"));
    snprintf(o->status, sizeof o->status, "%s", st ? st : "");
    return ctx->store->ops->obj_put(ctx->store, o, mode, a);
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- settings (admin API) ----------------------------------------------- */

const char *const acme_setting_keys[] = {"eabRequired", "termsOfService", "allowedDomains", "allowedIpRanges", NULL};

/* "a.b.c" DNS name in LDH A-labels (no trailing dot), lowercase. */
static bool dns_name_ok(const char *s, bool allow_wild)
{
    size_t n = strlen(s);
    if (allow_wild && n > 2 && s[0] == '*' && s[1] == '.') {
        s += 2;
        n -= 2;
    }
    if (n == 0 || n > 253)
        return false;
    size_t label = 0, labels = 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            labels++;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && s[n - 1] != '-' && labels >= 2;
}

struct cidr {
    int af;
    unsigned char addr[16];
    int bits;
};

static int cidr_parse(const char *s, struct cidr *c)
{
    char buf[64];
    if (strlen(s) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", s);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = 0;
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->af = AF_INET;
        c->bits = 32;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->af = AF_INET6;
        c->bits = 128;
    } else {
        return -1;
    }
    if (slash) {
        char *end = NULL;
        long b = strtol(slash + 1, &end, 10);
        if (!*(slash + 1) || *end || b < 0 || b > c->bits)
            return -1;
        c->bits = (int)b;
    }
    return 0;
}

static bool cidr_match(const struct cidr *c, int af, const unsigned char *addr)
{
    if (c->af != af)
        return false;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, (size_t)full) != 0)
        return false;
    if (rest) {
        unsigned char m = (unsigned char)(0xff << (8 - rest));
        if ((c->addr[full] & m) != (addr[full] & m))
            return false;
    }
    return true;
}

static int str_array(const json_t *body, const char *key, size_t max, struct jerr *e, json_t **out)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_array(v) || json_array_size(v) > max) {
        jerr_set(e, key, "%s: an array of at most %zu strings", key, max);
        return -1;
    }
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > 253) {
            jerr_set(e, key, "%s[%zu]: a non-empty string", key, i);
            return -1;
        }
    }
    *out = v;
    return 0;
}

int acme_settings_apply(const json_t *body, json_t *doc, struct jerr *e)
{
    bool eab = true;
    const char *tos = NULL;
    json_t *doms = NULL, *ips = NULL;
    if (jget_str(body, "termsOfService", 1024, &tos, e))
        return -1;
    if (json_object_get(body, "eabRequired") && jget_bool(body, "eabRequired", &eab, e))
        return -1;
    if (str_array(body, "allowedDomains", 256, e, &doms) || str_array(body, "allowedIpRanges", 256, e, &ips))
        return -1;
    size_t i;
    json_t *s;
    json_array_foreach(doms, i, s) {
        const char *d = json_string_value(s);
        if (*d == '.')
            d++;
        if (!dns_name_ok(d, false) && !(strchr(d, '.') == NULL && *d)) {
            jerr_set(e, "allowedDomains", "allowedDomains[%zu]: a domain name in lowercase A-labels", i);
            return -1;
        }
    }
    json_array_foreach(ips, i, s) {
        struct cidr c;
        if (cidr_parse(json_string_value(s), &c) != 0) {
            jerr_set(e, "allowedIpRanges", "allowedIpRanges[%zu]: an IPv4 or IPv6 address or CIDR range", i);
            return -1;
        }
    }
    if (tos && strncmp(tos, "https://", 8) != 0 && strncmp(tos, "http://", 7) != 0 && *tos) {
        jerr_set(e, "termsOfService", "termsOfService: an http(s) URL");
        return -1;
    }
    /* null, like absence, leaves it as it is */
    const json_t *eab_in = json_object_get(body, "eabRequired");
    if ((eab_in && !json_is_null(eab_in)) || !json_object_get(doc, "eabRequired"))
        json_object_set_new(doc, "eabRequired", json_boolean(eab));
    if (tos)
        json_object_set_new(doc, "termsOfService", json_string(tos));
    if (doms)
        json_object_set(doc, "allowedDomains", doms);
    if (ips)
        json_object_set(doc, "allowedIpRanges", ips);
    if (!json_object_get(doc, "allowedDomains"))
        json_object_set_new(doc, "allowedDomains", json_array());
    if (!json_object_get(doc, "allowedIpRanges"))
        json_object_set_new(doc, "allowedIpRanges", json_array());
    return 0;
}

/* Identifier policy: empty lists allow everything of that type. */
static bool policy_allows(const struct proto_cfg *cfg, const char *type, const char *value)
{
    size_t i;
    json_t *s;
    if (strcmp(type, "dns") == 0) {
        json_t *doms = json_object_get(cfg->doc, "allowedDomains");
        if (json_array_size(doms) == 0)
            return true;
        const char *v = strncmp(value, "*.", 2) == 0 ? value + 2 : value;
        size_t vn = strlen(v);
        json_array_foreach(doms, i, s) {
            const char *d = json_string_value(s);
            if (*d == '.')
                d++;
            size_t dn = strlen(d);
            if (strcmp(v, d) == 0 || (vn > dn && v[vn - dn - 1] == '.' && strcmp(v + vn - dn, d) == 0))
                return true;
        }
        return false;
    }
    json_t *ips = json_object_get(cfg->doc, "allowedIpRanges");
    if (json_array_size(ips) == 0)
        return true;
    unsigned char a[16];
    int af = strchr(value, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(af, value, a) != 1)
        return false;
    json_array_foreach(ips, i, s) {
        struct cidr c;
        if (cidr_parse(json_string_value(s), &c) == 0 && cidr_match(&c, af, a))
            return true;
    }
    return false;
}

/* ---- request context ---------------------------------------------------- */

struct acme_req {
    struct proto_cfg cfg;
    char *base;          /* https://host/acme/{p}/{c} */
    struct jws jws;
    json_t *payload;     /* NULL for POST-as-GET */
    EVP_PKEY *key;       /* the signer's public key */
    bool by_jwk;
    struct obj_rec acct; /* when by kid (or found for jwk) */
    json_t *acct_doc;
    char thumb[44];
};

static void acme_req_free(struct acme_req *a)
{
    proto_cfg_free(&a->cfg);
    free(a->base);
    jws_free(&a->jws);
    json_decref(a->payload);
    EVP_PKEY_free(a->key);
    obj_rec_free(&a->acct);
    json_decref(a->acct_doc);
    memset(a, 0, sizeof *a);
}

/* Loads the configuration named by the route (params 0 and 1). */
static int load_cfg(struct http_req *req, struct http_resp *resp, struct acme_req *a)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    snprintf(req->partition, sizeof req->partition, "%.64s", req->params[0]);
    if (proto_cfg_load(ctx->store, req->params[0], req->params[1], "acme", &a->cfg, &e) != 0) {
        problem(ctx, resp, e.status == 404 ? 404 : 503, e.status == 404 ? "malformed" : "serverInternal",
                "%s", e.status == 404 ? "no ACME directory at this URL" : e.msg);
        return -1;
    }
    if (!(a->base = base_url(ctx, a->cfg.partition, a->cfg.id))) {
        problem(ctx, resp, 500, "serverInternal", "out of memory");
        return -1;
    }
    return 0;
}

static int load_account(struct api_ctx *ctx, struct acme_req *a, const char *id)
{
    obj_rec_free(&a->acct);
    json_decref(a->acct_doc);
    a->acct_doc = NULL;
    if (strlen(id) > OBJ_ID_MAX ||
        ctx->store->ops->obj_get(ctx->store, a->cfg.partition, ACME_KIND_ACCOUNT, id, &a->acct) != STORE_OK ||
        !a->acct.parent || strcmp(a->acct.parent, a->cfg.id) != 0) {
        obj_rec_free(&a->acct);
        memset(&a->acct, 0, sizeof a->acct);
        return -1;
    }
    a->acct_doc = doc_of(&a->acct);
    return 0;
}

enum key_mode { KEY_KID, KEY_JWK, KEY_EITHER };

/* The common front of every POST. On failure `resp` holds the problem. */
static int acme_begin(struct http_req *req, struct http_resp *resp, enum key_mode mode, bool want_payload,
                      struct acme_req *a)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    memset(a, 0, sizeof *a);
    memset(&e, 0, sizeof e);
    if (load_cfg(req, resp, a) != 0)
        return -1;
    link_index(resp, a->base);
    const char *ct = http_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/jose+json", 21) != 0) {
        problem(ctx, resp, 415, "malformed", "Content-Type must be application/jose+json");
        return -1;
    }
    if (req->body.len > JWS_MAX_BODY || req->body_truncated) {
        problem(ctx, resp, 413, "malformed", "request body larger than %d bytes", JWS_MAX_BODY);
        return -1;
    }
    if (jws_parse(req->body.data, req->body.len, false, &a->jws, &e) != 0) {
        problem_err(ctx, resp, &e);
        return -1;
    }
    /* url: exactly the URL this request was sent to (RFC 8555 6.4); the
     * one query any ACME resource here takes is the orders list's cursor,
     * which this server writes into its "next" links unescaped */
    char *want = NULL;
    const char *cursor = http_query(req, "cursor");
    if (asprintf(&want, "%s%s%s%s", ctx->env.https_base, req->path, cursor ? "?cursor=" : "", cursor ? cursor : "") <
        0)
        want = NULL;
    /* any other query argument would be left out of `want` and so pass */
    bool url_ok = want && a->jws.url && strcmp(want, a->jws.url) == 0 && http_query_count(req) == (cursor ? 1u : 0u);
    free(want);
    if (!url_ok) {
        problem(ctx, resp, 401, "unauthorized", "the JWS \"url\" header must be the request URL");
        return -1;
    }
    if (!a->jws.nonce) {
        problem(ctx, resp, 400, "badNonce", "the JWS protected header has no \"nonce\"");
        return -1;
    }
    if (!nonce_take(ctx, a->jws.nonce)) {
        problem(ctx, resp, 400, "badNonce", "the nonce is unknown, used or expired; retry with the fresh one");
        return -1;
    }
    if (a->jws.jwk) {
        if (mode == KEY_KID) {
            problem(ctx, resp, 400, "malformed", "this resource requires \"kid\" (an account URL), not \"jwk\"");
            return -1;
        }
        if (!(a->key = jwk_to_pkey(a->jws.jwk, &e))) {
            problem_err(ctx, resp, &e);
            return -1;
        }
        if (jwk_thumbprint(a->jws.jwk, a->thumb) != 0) {
            problem(ctx, resp, 400, "badPublicKey", "cannot compute the JWK thumbprint");
            return -1;
        }
        a->by_jwk = true;
    } else {
        if (mode == KEY_JWK) {
            problem(ctx, resp, 400, "malformed", "this resource requires \"jwk\", not \"kid\"");
            return -1;
        }
        size_t bl = strlen(a->base);
        const char *kid = a->jws.kid;
        if (strncmp(kid, a->base, bl) != 0 || strncmp(kid + bl, "/acct/", 6) != 0 ||
            load_account(ctx, a, kid + bl + 6) != 0) {
            problem(ctx, resp, 400, "accountDoesNotExist", "no account at \"kid\" in this directory");
            return -1;
        }
        if (strcmp(a->acct.status, "valid") != 0) {
            problem(ctx, resp, 401, "unauthorized", "the account is %s", a->acct.status);
            return -1;
        }
        json_t *jwk = json_object_get(a->acct_doc, "jwk");
        if (!(a->key = jwk_to_pkey(jwk, &e)) || jwk_thumbprint(jwk, a->thumb) != 0) {
            problem(ctx, resp, 500, "serverInternal", "the account key is damaged");
            return -1;
        }
    }
    if (jws_verify(&a->jws, a->key, &e) != 0) {
        problem_err(ctx, resp, &e);
        return -1;
    }
    if (a->jws.payload_len) {
        json_error_t je;
        a->payload = json_loadb((const char *)a->jws.payload, a->jws.payload_len, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(a->payload)) {
            problem(ctx, resp, 400, "malformed", "the JWS payload must be a JSON object");
            return -1;
        }
    }
    if (want_payload && !a->payload) {
        problem(ctx, resp, 400, "malformed", "this request needs a JSON payload (POST-as-GET is not allowed here)");
        return -1;
    }
    return 0;
}

static const char *acct_id(const struct acme_req *a)
{
    return a->acct.id;
}

static void requester(const struct acme_req *a, char *out, size_t n)
{
    snprintf(out, n, "acme:%s/%s", a->cfg.id, acct_id(a));
}

/* ---- directory, nonce --------------------------------------------------- */

static void h_directory(struct http_req *req, struct http_resp *resp)
{
    struct acme_req a;
    memset(&a, 0, sizeof a);
    if (load_cfg(req, resp, &a) != 0)
        goto out;
    json_t *meta = json_pack("{s:b}", "externalAccountRequired", proto_bool(&a.cfg, "eabRequired", true));
    const char *tos = proto_str(&a.cfg, "termsOfService");
    if (tos && *tos)
        json_object_set_new(meta, "termsOfService", json_string(tos));
    json_t *d = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "newNonce", jtake(url_join(a.base, "/new-nonce", NULL, NULL, NULL)),
                          "newAccount", jtake(url_join(a.base, "/new-account", NULL, NULL, NULL)), "newOrder",
                          jtake(url_join(a.base, "/new-order", NULL, NULL, NULL)), "revokeCert",
                          jtake(url_join(a.base, "/revoke-cert", NULL, NULL, NULL)), "keyChange",
                          jtake(url_join(a.base, "/key-change", NULL, NULL, NULL)), "meta", meta);
    char *body = json_dumps(d, JSON_INDENT(2));
    json_decref(d);
    if (body)
        resp_take(resp, 200, "application/json", (unsigned char *)body, strlen(body));
out:
    acme_req_free(&a);
}

static void h_new_nonce(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    memset(&a, 0, sizeof a);
    if (load_cfg(req, resp, &a) == 0) {
        resp_bytes(resp, strcmp(req->method, "HEAD") == 0 ? 200 : 204, NULL, "", 0);
        add_nonce(ctx, resp);
        link_index(resp, a.base);
    }
    acme_req_free(&a);
}

/* ---- accounts ----------------------------------------------------------- */

static json_t *account_json(const struct acme_req *a, const struct obj_rec *o, const json_t *doc)
{
    json_t *contact = json_object_get(doc, "contact");
    json_t *j = json_pack("{s:s,s:o,s:o,s:o}", "status", o->status, "contact",
                          contact ? json_incref(contact) : json_array(),
                          "orders", jtake(url_join(a->base, "/acct/", o->id, "/orders", NULL)), "createdAt",
                          jtime_s(o->created_at));
    if (json_is_true(json_object_get(doc, "tosAgreed")))
        json_object_set_new(j, "termsOfServiceAgreed", json_true());
    return j;
}

static int contacts_check(struct api_ctx *ctx, struct http_resp *resp, const json_t *c)
{
    if (!c)
        return 0;
    if (!json_is_array(c) || json_array_size(c) > MAX_CONTACTS) {
        problem(ctx, resp, 400, "invalidContact", "contact: an array of at most %d mailto: URLs", MAX_CONTACTS);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(c, i, v) {
        const char *s = json_string_value(v);
        if (!s || strncmp(s, "mailto:", 7) != 0) {
            problem(ctx, resp, 400, "unsupportedContact", "contact[%zu]: only mailto: URLs are supported", i);
            return -1;
        }
        size_t n = strlen(s);
        const char *at = strchr(s + 7, '@');
        bool ok = n > 9 && n <= CONTACT_MAX && at && at > s + 7 && at[1] && !strchr(s, ',') && !strchr(s, '?');
        for (size_t k = 0; ok && k < n; k++)
            ok = (unsigned char)s[k] > 0x20 && (unsigned char)s[k] < 0x7f;
        if (!ok) {
            problem(ctx, resp, 400, "invalidContact", "contact[%zu]: not a single e-mail address", i);
            return -1;
        }
    }
    return 0;
}

/* RFC 8555 7.3.4: the binding is a MAC'd JWS over the account key. */
static int eab_check(struct api_ctx *ctx, struct http_resp *resp, struct acme_req *a, const json_t *eab,
                     char *kid_out, size_t kn)
{
    struct jws in;
    struct err e;
    struct obj_rec k;
    unsigned char *key = NULL;
    size_t keylen = 0;
    int rc = -1;
    memset(&in, 0, sizeof in);
    memset(&k, 0, sizeof k);
    memset(&e, 0, sizeof e);
    if (!json_is_object(eab) || jws_parse_json(eab, true, &in, &e) != 0) {
        problem(ctx, resp, 400, "malformed", "externalAccountBinding: %s", e.msg[0] ? e.msg : "not a JWS");
        goto out;
    }
    if (strncmp(in.alg, "HS", 2) != 0) {
        problem(ctx, resp, 400, "badSignatureAlgorithm", "externalAccountBinding: alg must be HS256/HS384/HS512");
        goto out;
    }
    if (in.nonce || !in.kid || !in.url || strcmp(in.url, a->jws.url) != 0) {
        problem(ctx, resp, 400, "malformed",
                "externalAccountBinding: needs \"kid\" and the newAccount \"url\", and no \"nonce\"");
        goto out;
    }
    char thumb[44];
    json_error_t je;
    json_t *pj = json_loadb((const char *)in.payload, in.payload_len, 0, &je);
    bool same = pj && jwk_thumbprint(pj, thumb) == 0 && strcmp(thumb, a->thumb) == 0;
    json_decref(pj);
    if (!same) {
        problem(ctx, resp, 400, "malformed", "externalAccountBinding: the payload must be the account's JWK");
        goto out;
    }
    if (strlen(in.kid) > OBJ_ID_MAX ||
        ctx->store->ops->obj_get(ctx->store, a->cfg.partition, ACME_KIND_EAB, in.kid, &k) != STORE_OK || !k.parent ||
        strcmp(k.parent, a->cfg.id) != 0) {
        problem(ctx, resp, 401, "unauthorized", "externalAccountBinding: unknown EAB key id");
        goto out;
    }
    char aad[256];
    snprintf(aad, sizeof aad, "eab:%s/%s/%s", a->cfg.partition, a->cfg.id, k.id);
    if (keywrap_open(ctx->env.mkey, k.blob, k.blob_len, aad, &key, &keylen) != 0) {
        problem(ctx, resp, 500, "serverInternal", "the EAB key cannot be opened");
        goto out;
    }
    if (jws_verify_hmac(&in, key, keylen, &e) != 0) {
        problem(ctx, resp, 401, "unauthorized", "externalAccountBinding: the MAC does not verify");
        goto out;
    }
    snprintf(kid_out, kn, "%s", k.id);
    rc = 0;
out:
    if (key)
        OPENSSL_cleanse(key, keylen);
    free(key);
    obj_rec_free(&k);
    jws_free(&in);
    return rc;
}

static void h_new_account(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    struct obj_rec o;
    json_t *doc = NULL;
    char lookup[96], *loc = NULL;
    memset(&o, 0, sizeof o);
    if (acme_begin(req, resp, KEY_JWK, true, &a) != 0)
        goto out;
    snprintf(lookup, sizeof lookup, "%s:%s", a.cfg.id, a.thumb);
    if (ctx->store->ops->obj_find(ctx->store, a.cfg.partition, ACME_KIND_ACCOUNT, lookup, &a.acct) == STORE_OK) {
        /* an existing account for this key: 200 with its URL, unless it was
         * deactivated (RFC 8555 7.3.6: nothing more by that key) */
        if (strcmp(a.acct.status, "valid") != 0) {
            problem(ctx, resp, 401, "unauthorized", "the account of this key is %s", a.acct.status);
            goto out;
        }
        a.acct_doc = doc_of(&a.acct);
        loc = url_join(a.base, "/acct/", a.acct.id, NULL, NULL);
        reply_json(ctx, resp, 200, account_json(&a, &a.acct, a.acct_doc), loc);
        goto out;
    }
    if (json_is_true(json_object_get(a.payload, "onlyReturnExisting"))) {
        problem(ctx, resp, 400, "accountDoesNotExist", "no account exists for this key");
        goto out;
    }
    json_t *contact = json_object_get(a.payload, "contact");
    if (contacts_check(ctx, resp, contact) != 0)
        goto out;
    const char *tos = proto_str(&a.cfg, "termsOfService");
    bool agreed = json_is_true(json_object_get(a.payload, "termsOfServiceAgreed"));
    if (tos && *tos && !agreed) {
        problem(ctx, resp, 403, "userActionRequired", "agree to the terms of service at %s", tos);
        goto out;
    }
    char eab_kid[OBJ_ID_MAX + 1] = "";
    json_t *eab = json_object_get(a.payload, "externalAccountBinding");
    if (eab) {
        if (eab_check(ctx, resp, &a, eab, eab_kid, sizeof eab_kid) != 0)
            goto out;
    } else if (proto_bool(&a.cfg, "eabRequired", true)) {
        problem(ctx, resp, 400, "externalAccountRequired",
                "this directory requires an external account binding (EAB key id and HMAC key from the "
                "protocol configuration)");
        goto out;
    }
    char *id = random_token(12);
    if (!id) {
        problem(ctx, resp, 500, "serverInternal", "random source failed");
        goto out;
    }
    snprintf(o.partition_id, sizeof o.partition_id, "%s", a.cfg.partition);
    snprintf(o.kind, sizeof o.kind, "%s", ACME_KIND_ACCOUNT);
    snprintf(o.id, sizeof o.id, "%s", id);
    free(id);
    o.parent = strdup(a.cfg.id);
    o.lookup = strdup(lookup);
    doc = json_pack("{s:O,s:o,s:b,s:s}", "jwk", a.jws.jwk, "contact", contact ? json_incref(contact) : json_array(),
                    "tosAgreed", agreed, "status", "valid");
    if (eab_kid[0])
        json_object_set_new(doc, "eab", json_string(eab_kid));
    char target[256];
    snprintf(target, sizeof target, "acme-account:%s/%s", a.cfg.id, o.id);
    json_t *det = json_pack("{s:s,s:s?}", "thumbprint", a.thumb, "eabKeyId", eab_kid[0] ? eab_kid : NULL);
    char *detail = json_dumps(det, JSON_COMPACT);
    json_decref(det);
    struct audit_rec au = {"acme", "acme.account.create", target, detail, req->ip, NULL};
    int r = o.parent && o.lookup ? save_doc(ctx, &o, doc, OBJ_CREATE, &au) : STORE_EIO;
    free(detail);
    if (r == STORE_ECONFLICT) {
        problem(ctx, resp, 409, "malformed", "an account for this key was created concurrently; retry");
        goto out;
    }
    if (r != STORE_OK) {
        problem(ctx, resp, 503, "serverInternal", "store unavailable");
        goto out;
    }
    loc = url_join(a.base, "/acct/", o.id, NULL, NULL);
    reply_json(ctx, resp, 201, account_json(&a, &o, doc), loc);
out:
    free(loc);
    json_decref(doc);
    obj_rec_free(&o);
    acme_req_free(&a);
}

/* The account in the URL must be the signer's. */
static int own_account(struct api_ctx *ctx, struct http_resp *resp, struct acme_req *a, const char *id)
{
    if (strcmp(id, acct_id(a)) != 0) {
        problem(ctx, resp, 401, "unauthorized", "the account URL is not the signer's account");
        return -1;
    }
    return 0;
}

static void h_account(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    char *loc = NULL;
    if (acme_begin(req, resp, KEY_KID, false, &a) != 0 || own_account(ctx, resp, &a, req->params[2]) != 0)
        goto out;
    if (a.payload) {
        static const char *const keys[] = {"contact", "status", "termsOfServiceAgreed", "orders", NULL};
        (void)keys; /* unknown fields are ignored (RFC 8555 7.3.2) */
        json_t *contact = json_object_get(a.payload, "contact");
        const char *status = jstr(a.payload, "status");
        if (contacts_check(ctx, resp, contact) != 0)
            goto out;
        if (status && strcmp(status, "deactivated") != 0) {
            problem(ctx, resp, 400, "malformed", "status: only \"deactivated\" may be requested");
            goto out;
        }
        if (contact)
            json_object_set(a.acct_doc, "contact", contact);
        if (status)
            json_object_set_new(a.acct_doc, "status", json_string("deactivated"));
        char target[256];
        snprintf(target, sizeof target, "acme-account:%s/%s", a.cfg.id, a.acct.id);
        struct audit_rec au = {"acme", status ? "acme.account.deactivate" : "acme.account.update", target, NULL,
                               req->ip, NULL};
        int r = save_doc(ctx, &a.acct, a.acct_doc, OBJ_UPDATE, &au);
        if (r != STORE_OK) {
            problem(ctx, resp, r == STORE_ECONFLICT ? 409 : 503, "serverInternal",
                    "the account changed meanwhile; retry");
            goto out;
        }
    }
    loc = url_join(a.base, "/acct/", a.acct.id, NULL, NULL);
    reply_json(ctx, resp, 200, account_json(&a, &a.acct, a.acct_doc), loc);
out:
    free(loc);
    acme_req_free(&a);
}

static void h_key_change(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    struct jws in;
    struct err e;
    struct obj_rec other;
    EVP_PKEY *nk = NULL;
    json_t *ip = NULL;
    memset(&in, 0, sizeof in);
    memset(&e, 0, sizeof e);
    memset(&other, 0, sizeof other);
    if (acme_begin(req, resp, KEY_KID, true, &a) != 0)
        goto out;
    if (jws_parse_json(a.payload, false, &in, &e) != 0) {
        problem(ctx, resp, 400, "malformed", "inner JWS: %s", e.msg);
        goto out;
    }
    if (!in.jwk || in.nonce || !in.url || strcmp(in.url, a.jws.url) != 0) {
        problem(ctx, resp, 400, "malformed", "inner JWS: needs \"jwk\" and the same \"url\", and no \"nonce\"");
        goto out;
    }
    if (!(nk = jwk_to_pkey(in.jwk, &e)) || jws_verify(&in, nk, &e) != 0) {
        problem_err(ctx, resp, &e);
        goto out;
    }
    json_error_t je;
    ip = json_loadb((const char *)in.payload, in.payload_len, 0, &je);
    char *acct_url = url_join(a.base, "/acct/", a.acct.id, NULL, NULL);
    bool acct_ok = acct_url && json_is_string(json_object_get(ip, "account")) &&
                   strcmp(jstr(ip, "account"), acct_url) == 0;
    free(acct_url);
    char old_tp[44], new_tp[44];
    if (!acct_ok || !json_is_object(json_object_get(ip, "oldKey")) ||
        jwk_thumbprint(json_object_get(ip, "oldKey"), old_tp) != 0 || strcmp(old_tp, a.thumb) != 0) {
        problem(ctx, resp, 400, "malformed", "inner payload: \"account\" must be this account and \"oldKey\" its key");
        goto out;
    }
    if (jwk_thumbprint(in.jwk, new_tp) != 0) {
        problem(ctx, resp, 400, "badPublicKey", "cannot compute the new key's thumbprint");
        goto out;
    }
    char lookup[96];
    snprintf(lookup, sizeof lookup, "%s:%s", a.cfg.id, new_tp);
    if (ctx->store->ops->obj_find(ctx->store, a.cfg.partition, ACME_KIND_ACCOUNT, lookup, &other) == STORE_OK) {
        char *l = url_join(a.base, "/acct/", other.id, NULL, NULL);
        problem(ctx, resp, 409, "malformed", "the new key is already used by another account");
        if (l)
            resp_header(resp, "Location", l);
        free(l);
        goto out;
    }
    json_object_set(a.acct_doc, "jwk", in.jwk);
    free(a.acct.lookup);
    a.acct.lookup = strdup(lookup);
    char target[256];
    snprintf(target, sizeof target, "acme-account:%s/%s", a.cfg.id, a.acct.id);
    char detail[256];
    snprintf(detail, sizeof detail, "{\"oldThumbprint\":\"%s\",\"newThumbprint\":\"%s\"}", a.thumb, new_tp);
    struct audit_rec au = {"acme", "acme.account.key-change", target, detail, req->ip, NULL};
    int r = a.acct.lookup ? save_doc(ctx, &a.acct, a.acct_doc, OBJ_UPDATE, &au) : STORE_EIO;
    if (r != STORE_OK) {
        problem(ctx, resp, 409, "malformed", "the key change conflicted with another change; retry");
        goto out;
    }
    char *loc = url_join(a.base, "/acct/", a.acct.id, NULL, NULL);
    reply_json(ctx, resp, 200, account_json(&a, &a.acct, a.acct_doc), loc);
    free(loc);
out:
    json_decref(ip);
    EVP_PKEY_free(nk);
    obj_rec_free(&other);
    jws_free(&in);
    acme_req_free(&a);
}

/* ---- orders and authorizations ------------------------------------------ */

static json_t *authz_json(const struct acme_req *a, const struct obj_rec *o, const json_t *doc)
{
    json_t *ch = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "challenges"), i, c) {
        json_t *x = json_pack("{s:O,s:o,s:O,s:O}", "type", json_object_get(c, "type"), "url",
                              jtake(url_join(a->base, "/chall/", o->id, "/", jstr(c, "type"))), "token",
                              json_object_get(c, "token"), "status", json_object_get(c, "status"));
        if (json_object_get(c, "validated"))
            json_object_set(x, "validated", json_object_get(c, "validated"));
        if (json_object_get(c, "error"))
            json_object_set(x, "error", json_object_get(c, "error"));
        json_array_append_new(ch, x);
    }
    json_t *j = json_pack("{s:s,s:O,s:O,s:o}", "status", o->status, "expires", json_object_get(doc, "expires"),
                          "identifier", json_object_get(doc, "identifier"), "challenges", ch);
    if (json_is_true(json_object_get(doc, "wildcard")))
        json_object_set_new(j, "wildcard", json_true());
    return j;
}

static json_t *order_json(const struct acme_req *a, const struct obj_rec *o, const json_t *doc)
{
    json_t *authz = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(doc, "authorizations"), i, v)
        json_array_append_new(authz, jtake(url_join(a->base, "/authz/", json_string_value(v), NULL, NULL)));
    json_t *j = json_pack("{s:s,s:O,s:O,s:o,s:o}", "status", o->status, "expires", json_object_get(doc, "expires"),
                          "identifiers", json_object_get(doc, "identifiers"), "authorizations", authz, "finalize",
                          jtake(url_join(a->base, "/order/", o->id, "/finalize", NULL)));
    static const char *const opt[] = {"notBefore", "notAfter", "error"};
    for (size_t k = 0; k < sizeof opt / sizeof opt[0]; k++)
        if (json_object_get(doc, opt[k]))
            json_object_set(j, opt[k], json_object_get(doc, opt[k]));
    if (strcmp(o->status, "valid") == 0)
        json_object_set_new(j, "certificate", jtake(url_join(a->base, "/cert/", o->id, NULL, NULL)));
    return j;
}

static json_t *problem_json(const char *type, const char *detail)
{
    char t[96];
    snprintf(t, sizeof t, "%s%s", problem_ns, type);
    return json_pack("{s:s,s:s}", "type", t, "detail", detail);
}

/* Canonical identifier; -1 when unacceptable (message in msg). */
static int identifier_norm(const json_t *id, char *type, size_t tn, char *value, size_t vn, char *msg, size_t mn)
{
    const char *t = jstr(id, "type"), *v = jstr(id, "value");
    if (!json_is_object(id) || !t || !v || json_object_size(id) != 2) {
        snprintf(msg, mn, "an identifier is {\"type\", \"value\"}");
        return -1;
    }
    if (strlen(v) > 253) {
        snprintf(msg, mn, "identifier value too long");
        return -1;
    }
    if (strcmp(t, "dns") == 0) {
        char low[256];
        size_t n = strlen(v);
        for (size_t i = 0; i <= n; i++)
            low[i] = (char)tolower((unsigned char)v[i]);
        /* and by the issuance core's rule too (real A-labels, no IP
         * literal as a name), so an order never validates what finalize
         * would refuse, nor an address allowedIpRanges keeps out */
        if (!dns_name_ok(low, true) || !san_dns_valid(low, true)) {
            snprintf(msg, mn,
                     "\"%.80s\" is not a DNS name in A-labels (IDNA names must be given as xn--; addresses as "
                     "\"ip\" identifiers)",
                     v);
            return -1;
        }
        snprintf(type, tn, "dns");
        snprintf(value, vn, "%s", low);
        return 0;
    }
    if (strcmp(t, "ip") == 0) {
        unsigned char a[16];
        int af = strchr(v, ':') ? AF_INET6 : AF_INET;
        char txt[INET6_ADDRSTRLEN];
        if (inet_pton(af, v, a) != 1 || !inet_ntop(af, a, txt, sizeof txt)) {
            snprintf(msg, mn, "\"%.80s\" is not an IPv4 or IPv6 address", v);
            return -1;
        }
        snprintf(type, tn, "ip");
        snprintf(value, vn, "%s", txt);
        return 0;
    }
    snprintf(msg, mn, "identifier type \"%.20s\" is not supported (dns, ip)", t);
    return -2;
}

static int new_authz(struct api_ctx *ctx, const struct acme_req *a, const char *order_id, const char *type,
                     const char *value, int64_t expires, char **id_out)
{
    struct obj_rec o;
    memset(&o, 0, sizeof o);
    int rc = -1;
    bool wild = strncmp(value, "*.", 2) == 0;
    char *id = random_token(12);
    json_t *ch = json_array(), *doc = NULL;
    static const char *const dns_types[] = {"http-01", "dns-01", "tls-alpn-01"};
    static const char *const ip_types[] = {"http-01", "tls-alpn-01"};
    const char *const *types = strcmp(type, "ip") == 0 ? ip_types : dns_types;
    size_t nt = strcmp(type, "ip") == 0 ? 2 : 3;
    for (size_t i = 0; i < nt; i++) {
        if (wild && strcmp(types[i], "dns-01") != 0)
            continue; /* wildcards only by dns-01 (RFC 8555 7.1.3) */
        char *tok = random_token(32);
        if (!tok)
            goto out;
        json_array_append_new(ch, json_pack("{s:s,s:s,s:s}", "type", types[i], "token", tok, "status", "pending"));
        free(tok);
    }
    if (!id)
        goto out;
    doc = json_pack("{s:s,s:s,s:{s:s,s:s},s:b,s:s,s:o,s:O}", "account", a->acct.id, "order", order_id,
                    "identifier", "type", type, "value", wild ? value + 2 : value, "wildcard", wild, "status",
                    "pending", "expires", jtime_s(expires), "challenges", ch);
    snprintf(o.partition_id, sizeof o.partition_id, "%s", a->cfg.partition);
    snprintf(o.kind, sizeof o.kind, "%s", ACME_KIND_AUTHZ);
    snprintf(o.id, sizeof o.id, "%s", id);
    o.parent = strdup(order_id);
    o.expires_at = expires + RETAIN_S;
    json_object_set_new(doc, "expiresAt", json_integer(expires));
    if (o.parent && save_doc(ctx, &o, doc, OBJ_CREATE, NULL) == STORE_OK) {
        *id_out = id;
        id = NULL;
        rc = 0;
    }
out:
    free(id);
    json_decref(ch);
    json_decref(doc);
    obj_rec_free(&o);
    return rc;
}

static void h_new_order(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    struct obj_rec o;
    json_t *doc = NULL, *idents = json_array(), *authz = json_array();
    char *oid = NULL, *loc = NULL;
    memset(&o, 0, sizeof o);
    if (acme_begin(req, resp, KEY_KID, true, &a) != 0)
        goto out;
    json_t *ids = json_object_get(a.payload, "identifiers");
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > MAX_IDENTIFIERS) {
        problem(ctx, resp, 400, "malformed", "identifiers: an array of 1 to %d identifiers", MAX_IDENTIFIERS);
        goto out;
    }
    const char *nb = jstr(a.payload, "notBefore"), *na = jstr(a.payload, "notAfter");
    int64_t tnb = 0, tna = 0;
    if ((json_object_get(a.payload, "notBefore") && (!nb || time_parse_rfc3339(nb, &tnb) != 0)) ||
        (json_object_get(a.payload, "notAfter") && (!na || time_parse_rfc3339(na, &tna) != 0)) ||
        (tnb && tna && tna <= tnb)) {
        problem(ctx, resp, 400, "malformed", "notBefore/notAfter: RFC 3339 date-times, notBefore before notAfter");
        goto out;
    }
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        char t[8], v[256], msg[200];
        int r = identifier_norm(id, t, sizeof t, v, sizeof v, msg, sizeof msg);
        if (r != 0) {
            problem(ctx, resp, 400, r == -2 ? "unsupportedIdentifier" : "rejectedIdentifier", "identifiers[%zu]: %s",
                    i, msg);
            goto out;
        }
        if (!policy_allows(&a.cfg, t, v)) {
            problem(ctx, resp, 400, "rejectedIdentifier",
                    "identifiers[%zu]: \"%s\" is outside this directory's allowed %s", i, v,
                    strcmp(t, "ip") == 0 ? "IP ranges" : "domains");
            goto out;
        }
        bool dup = false;
        size_t k;
        json_t *x;
        json_array_foreach(idents, k, x) dup |= strcmp(jstr(x, "type"), t) == 0 && strcmp(jstr(x, "value"), v) == 0;
        if (!dup)
            json_array_append_new(idents, json_pack("{s:s,s:s}", "type", t, "value", v));
    }
    if (!(oid = random_token(12))) {
        problem(ctx, resp, 500, "serverInternal", "random source failed");
        goto out;
    }
    int64_t expires = now_s() + ORDER_TTL_S;
    json_array_foreach(idents, i, id) {
        char *aid = NULL;
        if (new_authz(ctx, &a, oid, jstr(id, "type"), jstr(id, "value"), expires, &aid) != 0) {
            problem(ctx, resp, 503, "serverInternal", "store unavailable");
            goto out;
        }
        json_array_append_new(authz, json_string(aid));
        free(aid);
    }
    doc = json_pack("{s:s,s:s,s:o,s:I,s:O,s:O,s:s}", "account", a.acct.id, "status", "pending", "expires",
                    jtime_s(expires), "expiresAt", (json_int_t)expires, "identifiers", idents, "authorizations",
                    authz, "caId", a.cfg.ca_id);
    if (nb)
        json_object_set_new(doc, "notBefore", json_string(nb));
    if (na)
        json_object_set_new(doc, "notAfter", json_string(na));
    snprintf(o.partition_id, sizeof o.partition_id, "%s", a.cfg.partition);
    snprintf(o.kind, sizeof o.kind, "%s", ACME_KIND_ORDER);
    snprintf(o.id, sizeof o.id, "%s", oid);
    o.parent = strdup(a.acct.id);
    o.expires_at = expires + RETAIN_S;
    if (!o.parent || save_doc(ctx, &o, doc, OBJ_CREATE, NULL) != STORE_OK) {
        problem(ctx, resp, 503, "serverInternal", "store unavailable");
        goto out;
    }
    loc = url_join(a.base, "/order/", o.id, NULL, NULL);
    reply_json(ctx, resp, 201, order_json(&a, &o, doc), loc);
out:
    free(loc);
    free(oid);
    json_decref(doc);
    json_decref(idents);
    json_decref(authz);
    obj_rec_free(&o);
    acme_req_free(&a);
}

/* Loads a document owned by the signer's account. */
static int load_owned(struct api_ctx *ctx, struct http_resp *resp, struct acme_req *a, const char *kind,
                      const char *id, struct obj_rec *o, json_t **doc)
{
    memset(o, 0, sizeof *o);
    *doc = NULL;
    if (strlen(id) <= OBJ_ID_MAX && ctx->store->ops->obj_get(ctx->store, a->cfg.partition, kind, id, o) == STORE_OK) {
        *doc = doc_of(o);
        const char *owner = jstr(*doc, "account");
        if (owner && strcmp(owner, acct_id(a)) == 0)
            return 0;
        json_decref(*doc);
        *doc = NULL;
        obj_rec_free(o);
        problem(ctx, resp, 401, "unauthorized", "this resource belongs to another account");
        return -1;
    }
    problem(ctx, resp, 404, "malformed", "no such %s", strcmp(kind, ACME_KIND_ORDER) == 0 ? "order" : "authorization");
    return -1;
}

/* Expiry is reported as status "invalid" (orders) / "expired" (authz). */
static bool doc_expired(const json_t *doc)
{
    json_int_t e = json_integer_value(json_object_get(doc, "expiresAt"));
    return e > 0 && e <= now_s();
}

/* pending -> ready when every authorization is valid; -> invalid when one
 * failed or expired. Saves the change (ignoring a lost race: the next read
 * recomputes). */
static void order_refresh(struct api_ctx *ctx, struct obj_rec *o, json_t *doc)
{
    const char *st = o->status;
    const char *next = NULL;
    bool ready = strcmp(st, "ready") == 0;
    if ((strcmp(st, "pending") == 0 || ready) && doc_expired(doc)) {
        next = "invalid";
    } else if (strcmp(st, "pending") == 0 || ready) {
        /* a ready order too: an authorization deactivated since makes it
         * invalid (RFC 8555 7.1.6, 7.5.2), so it is never finalized */
        bool all_valid = true, failed = false;
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(doc, "authorizations"), i, v) {
            struct obj_rec az;
            if (ctx->store->ops->obj_get(ctx->store, o->partition_id, ACME_KIND_AUTHZ, json_string_value(v), &az) !=
                STORE_OK) {
                failed = true;
                break;
            }
            all_valid &= strcmp(az.status, "valid") == 0;
            failed |= strcmp(az.status, "invalid") == 0 || strcmp(az.status, "deactivated") == 0 ||
                      strcmp(az.status, "revoked") == 0 || strcmp(az.status, "expired") == 0;
            obj_rec_free(&az);
        }
        next = failed ? "invalid" : all_valid && !ready ? "ready" : NULL;
        if (failed)
            json_object_set_new(doc, "error", problem_json("unauthorized", "an authorization of this order failed"));
    }
    if (next) {
        json_object_set_new(doc, "status", json_string(next));
        if (save_doc(ctx, o, doc, OBJ_UPDATE, NULL) != STORE_OK)
            snprintf(o->status, sizeof o->status, "%s", next); /* answer with the computed state */
    }
}

static void h_order(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    struct obj_rec o;
    json_t *doc = NULL;
    memset(&o, 0, sizeof o);
    if (acme_begin(req, resp, KEY_KID, false, &a) != 0 ||
        load_owned(ctx, resp, &a, ACME_KIND_ORDER, req->params[2], &o, &doc) != 0)
        goto out;
    order_refresh(ctx, &o, doc);
    if (strcmp(o.status, "processing") == 0)
        resp_header(resp, "Retry-After", "1");
    reply_json(ctx, resp, 200, order_json(&a, &o, doc), NULL);
out:
    json_decref(doc);
    obj_rec_free(&o);
    acme_req_free(&a);
}

static void h_orders(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    struct obj_rec *items = NULL;
    size_t n = 0;
    if (acme_begin(req, resp, KEY_KID, false, &a) != 0 || own_account(ctx, resp, &a, req->params[2]) != 0)
        goto out;
    const char *cursor = http_query(req, "cursor");
    if (ctx->store->ops->obj_list(ctx->store, a.cfg.partition, ACME_KIND_ORDER, a.acct.id,
                                  cursor && strlen(cursor) <= OBJ_ID_MAX ? cursor : NULL, 101, &items, &n) !=
        STORE_OK) {
        problem(ctx, resp, 503, "serverInternal", "store unavailable");
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n && i < 100; i++)
        json_array_append_new(arr, jtake(url_join(a.base, "/order/", items[i].id, NULL, NULL)));
    if (n > 100) {
        char *l = NULL;
        if (asprintf(&l, "<%s/acct/%s/orders?cursor=%s>;rel=\"next\"", a.base, a.acct.id, items[99].id) >= 0) {
            resp_header(resp, "Link", l);
            free(l);
        }
    }
    reply_json(ctx, resp, 200, json_pack("{s:o}", "orders", arr), NULL);
out:
    obj_list_free(items, n);
    acme_req_free(&a);
}

static void h_authz(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    struct obj_rec o;
    json_t *doc = NULL;
    memset(&o, 0, sizeof o);
    if (acme_begin(req, resp, KEY_KID, false, &a) != 0 ||
        load_owned(ctx, resp, &a, ACME_KIND_AUTHZ, req->params[2], &o, &doc) != 0)
        goto out;
    if (a.payload) {
        const char *st = jstr(a.payload, "status");
        if (!st || strcmp(st, "deactivated") != 0) {
            problem(ctx, resp, 400, "malformed", "status: only \"deactivated\" may be requested");
            goto out;
        }
        if (strcmp(o.status, "pending") != 0 && strcmp(o.status, "valid") != 0) {
            problem(ctx, resp, 400, "malformed", "an authorization that is %s cannot be deactivated", o.status);
            goto out;
        }
        json_object_set_new(doc, "status", json_string("deactivated"));
        if (save_doc(ctx, &o, doc, OBJ_UPDATE, NULL) != STORE_OK) {
            problem(ctx, resp, 409, "malformed", "the authorization changed meanwhile; retry");
            goto out;
        }
    } else if (strcmp(o.status, "pending") == 0 && doc_expired(doc)) {
        snprintf(o.status, sizeof o.status, "expired");
    }
    reply_json(ctx, resp, 200, authz_json(&a, &o, doc), NULL);
out:
    json_decref(doc);
    obj_rec_free(&o);
    acme_req_free(&a);
}

/* ---- challenges --------------------------------------------------------- */

struct vjob {
    struct api_ctx *ctx;
    char partition[STORE_ID_MAX + 1];
    char authz[OBJ_ID_MAX + 1];
    char type[16];
};

static void rfc3339_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Worker thread: record the outcome on the challenge and the authorization. */
static void validation_done(void *arg, const struct validate_result *r)
{
    struct vjob *j = arg;
    struct store *st = j->ctx->store;
    for (int attempt = 0; attempt < UPDATE_RETRIES; attempt++) {
        struct obj_rec o;
        if (st->ops->obj_get(st, j->partition, ACME_KIND_AUTHZ, j->authz, &o) != STORE_OK)
            break;
        json_t *doc = doc_of(&o);
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(doc, "challenges"), i, c) {
            if (strcmp(jstr(c, "type"), j->type) != 0)
                continue;
            json_object_set_new(c, "status", json_string(r->valid ? "valid" : "invalid"));
            if (r->valid) {
                char ts[32];
                rfc3339_now(ts, sizeof ts);
                json_object_set_new(c, "validated", json_string(ts));
            } else {
                json_object_set_new(c, "error", problem_json(r->problem[0] ? r->problem : "incorrectResponse",
                                                             r->detail));
            }
        }
        if (strcmp(o.status, "pending") == 0)
            json_object_set_new(doc, "status", json_string(r->valid ? "valid" : "invalid"));
        char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(doc);
        int rc = STORE_EIO;
        if (s) {
            free(o.json);
            o.json = s;
            if (strcmp(o.status, "pending") == 0)
                snprintf(o.status, sizeof o.status, "%s", r->valid ? "valid" : "invalid");
            rc = st->ops->obj_put(st, &o, OBJ_UPDATE, NULL);
        }
        obj_rec_free(&o);
        if (rc != STORE_ECONFLICT)
            break;
    }
    log_info("acme validation %s %s/%s: %s%s%s", j->type, j->partition, j->authz, r->valid ? "valid" : "invalid",
             r->valid ? "" : " - ", r->valid ? "" : r->detail);
    free(j);
}

static void h_challenge(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    struct obj_rec o;
    json_t *doc = NULL, *ch = NULL;
    char *up = NULL;
    memset(&o, 0, sizeof o);
    if (acme_begin(req, resp, KEY_KID, false, &a) != 0 ||
        load_owned(ctx, resp, &a, ACME_KIND_AUTHZ, req->params[2], &o, &doc) != 0)
        goto out;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "challenges"), i, c) if (strcmp(jstr(c, "type"), req->params[3]) == 0) ch = c;
    if (!ch) {
        problem(ctx, resp, 404, "malformed", "no %.16s challenge in this authorization", req->params[3]);
        goto out;
    }
    /* A payload ({}) asks for validation; POST-as-GET only reads. A
     * challenge left "processing" far longer than any validation takes (the
     * node validating it stopped) may be asked for again. */
    json_t *since = json_object_get(ch, "processingSince");
    bool stalled = strcmp(jstr(ch, "status"), "processing") == 0 &&
                   (!json_is_integer(since) || time_now() - json_integer_value(since) > ACME_PROCESSING_STALE_S);
    if (a.payload && (strcmp(jstr(ch, "status"), "pending") == 0 || stalled) && strcmp(o.status, "pending") == 0) {
        if (doc_expired(doc)) {
            problem(ctx, resp, 400, "malformed", "the authorization has expired");
            goto out;
        }
        if (!ctx->acme_validator) {
            problem(ctx, resp, 503, "serverInternal", "challenge validation is not running on this server");
            goto out;
        }
        json_object_set_new(ch, "status", json_string("processing"));
        json_object_set_new(ch, "processingSince", json_integer((json_int_t)time_now()));
        if (save_doc(ctx, &o, doc, OBJ_UPDATE, NULL) != STORE_OK) {
            problem(ctx, resp, 409, "malformed", "the authorization changed meanwhile; retry");
            goto out;
        }
        char kauth[160];
        snprintf(kauth, sizeof kauth, "%s.%s", jstr(ch, "token"), a.thumb);
        const json_t *ident = json_object_get(doc, "identifier");
        const char *ty = jstr(ch, "type");
        enum validate_type vt = strcmp(ty, "dns-01") == 0       ? VALIDATE_DNS01
                                : strcmp(ty, "tls-alpn-01") == 0 ? VALIDATE_TLSALPN01
                                                                 : VALIDATE_HTTP01;
        struct vjob *job = calloc(1, sizeof *job);
        if (job) {
            job->ctx = ctx;
            snprintf(job->partition, sizeof job->partition, "%s", a.cfg.partition);
            snprintf(job->authz, sizeof job->authz, "%s", o.id);
            snprintf(job->type, sizeof job->type, "%s", ty);
        }
        if (!job || validator_submit(ctx->acme_validator, vt, jstr(ident, "value"),
                                     strcmp(jstr(ident, "type"), "ip") == 0, jstr(ch, "token"), kauth,
                                     validation_done, job) != 0) {
            free(job);
            /* back to pending so the client may retry */
            json_object_set_new(ch, "status", json_string("pending"));
            json_object_del(ch, "processingSince");
            save_doc(ctx, &o, doc, OBJ_UPDATE, NULL);
            problem(ctx, resp, 503, "rateLimited", "the validation queue is full; retry shortly");
            resp_header(resp, "Retry-After", "5");
            goto out;
        }
    }
    json_t *x = json_pack("{s:O,s:o,s:O,s:O}", "type", json_object_get(ch, "type"), "url",
                          jtake(url_join(a.base, "/chall/", o.id, "/", jstr(ch, "type"))), "token",
                          json_object_get(ch, "token"), "status", json_object_get(ch, "status"));
    if (json_object_get(ch, "validated"))
        json_object_set(x, "validated", json_object_get(ch, "validated"));
    if (json_object_get(ch, "error"))
        json_object_set(x, "error", json_object_get(ch, "error"));
    if ((up = NULL, asprintf(&up, "<%s/authz/%s>;rel=\"up\"", a.base, o.id)) >= 0)
        resp_header(resp, "Link", up);
    /* validation takes milliseconds here: ask for the first poll soon
     * (clients such as lego otherwise wait 5 s) */
    if (strcmp(jstr(ch, "status"), "processing") == 0)
        resp_header(resp, "Retry-After", "1");
    reply_json(ctx, resp, 200, x, NULL);
out:
    free(up);
    json_decref(doc);
    obj_rec_free(&o);
    acme_req_free(&a);
}

/* ---- finalize and certificates ------------------------------------------- */

/* The CSR must name exactly the order's identifiers (SANs; a CN, if any,
 * must be one of them). */
static int csr_names_match(X509_REQ *csr, const json_t *idents, char *msg, size_t mn)
{
    int rc = -1;
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *gens = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;
    size_t nid = json_array_size(idents);
    bool *seen = calloc(nid ? nid : 1, sizeof(bool));
    if (!seen)
        goto out;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char v[256], *t = NULL;
        if (g->type == GEN_DNS) {
            const ASN1_IA5STRING *s = g->d.dNSName;
            if (s->length <= 0 || s->length > 253) {
                snprintf(msg, mn, "the CSR has an unusable dNSName");
                goto out;
            }
            for (int k = 0; k < s->length; k++)
                v[k] = (char)tolower(s->data[k]);
            v[s->length] = 0;
            t = "dns";
        } else if (g->type == GEN_IPADD) {
            int len = g->d.iPAddress->length;
            if ((len != 4 && len != 16) ||
                !inet_ntop(len == 4 ? AF_INET : AF_INET6, g->d.iPAddress->data, v, sizeof v)) {
                snprintf(msg, mn, "the CSR has an unusable iPAddress");
                goto out;
            }
            t = "ip";
        } else {
            snprintf(msg, mn, "the CSR requests a subjectAltName type ACME cannot validate");
            goto out;
        }
        bool found = false;
        size_t k;
        json_t *x;
        json_array_foreach(idents, k, x) if (strcmp(jstr(x, "type"), t) == 0 && strcmp(jstr(x, "value"), v) == 0)
        {
            found = true;
            seen[k] = true;
        }
        if (!found) {
            snprintf(msg, mn, "the CSR names \"%s\", which is not in the order", v);
            goto out;
        }
    }
    /* RFC 8555 7.4: each identifier in the commonName, a subjectAltName
     * or both; a commonName must be one of them */
    X509_NAME *sn = X509_REQ_get_subject_name(csr);
    int pos = -1;
    while ((pos = X509_NAME_get_index_by_NID(sn, NID_commonName, pos)) >= 0) {
        unsigned char *u = NULL;
        int ul = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(sn, pos)));
        bool ok = false;
        size_t k;
        json_t *x;
        if (ul > 0)
            json_array_foreach(idents, k, x) if (strlen(jstr(x, "value")) == (size_t)ul &&
                                                 strncasecmp(jstr(x, "value"), (char *)u, (size_t)ul) == 0)
            {
                ok = true;
                seen[k] = true;
            }
        OPENSSL_free(u);
        if (!ok) {
            snprintf(msg, mn, "the CSR's common name is not one of the order's identifiers");
            goto out;
        }
    }
    for (size_t k = 0; k < nid; k++)
        if (!seen[k]) {
            snprintf(msg, mn, "the CSR does not name \"%s\" of the order",
                     jstr(json_array_get(idents, k), "value"));
            goto out;
        }
    rc = 0;
out:
    free(seen);
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

static void h_finalize(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    struct obj_rec o;
    struct issue_result res;
    struct err e;
    json_t *doc = NULL, *sans = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    X509_REQ *csr = NULL;
    char msg[300], ra[24];
    memset(&o, 0, sizeof o);
    memset(&res, 0, sizeof res);
    memset(&e, 0, sizeof e);
    if (acme_begin(req, resp, KEY_KID, true, &a) != 0 ||
        load_owned(ctx, resp, &a, ACME_KIND_ORDER, req->params[2], &o, &doc) != 0)
        goto out;
    order_refresh(ctx, &o, doc);
    if (strcmp(o.status, "ready") != 0) {
        problem(ctx, resp, 403, "orderNotReady", "the order is %s, not ready", o.status);
        goto out;
    }
    int limit;
    bool premium;
    int saved_cap = req->capability;
    req->capability = CAP_CERT;
    if (api_rate_limited(req, a.cfg.partition, ra, &limit, &premium)) {
        req->capability = saved_cap;
        problem(ctx, resp, 429, "rateLimited", "certificate rate limit of %d per window reached; retry after %s s",
                limit, ra);
        resp_header(resp, "Retry-After", ra);
        goto out;
    }
    req->capability = saved_cap;
    const char *csr_b64 = jstr(a.payload, "csr");
    const unsigned char *p;
    if (!csr_b64 || b64url_decode(csr_b64, strlen(csr_b64), &der, &derlen) != 0 || derlen == 0 ||
        (p = der, !(csr = d2i_X509_REQ(NULL, &p, (long)derlen))) || p != der + derlen) {
        problem(ctx, resp, 400, "badCSR", "csr: base64url DER of a PKCS#10 request");
        goto out;
    }
    if (csr_names_match(csr, json_object_get(doc, "identifiers"), msg, sizeof msg) != 0) {
        problem(ctx, resp, 400, "badCSR", "%s", msg);
        goto out;
    }
    EVP_PKEY *ck = X509_REQ_get0_pubkey(csr);
    if (ck && EVP_PKEY_eq(ck, a.key) == 1) {
        problem(ctx, resp, 400, "badCSR", "the certificate key must not be the account key");
        goto out;
    }
    /* processing: a concurrent finalize of the same order loses the race */
    json_object_set_new(doc, "status", json_string("processing"));
    if (save_doc(ctx, &o, doc, OBJ_UPDATE, NULL) != STORE_OK) {
        problem(ctx, resp, 403, "orderNotReady", "the order is being finalized already");
        goto out;
    }
    sans = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(doc, "identifiers"), i, x)
        json_array_append_new(sans, json_pack("{s:s,s:s}", "type", strcmp(jstr(x, "type"), "ip") == 0 ? "ip" : "dns",
                                              "value", jstr(x, "value")));
    char who[160];
    requester(&a, who, sizeof who);
    struct issue_req ir = {
        .partition = a.cfg.partition,
        .ca_id = jstr(doc, "caId"),
        .profile_id = a.cfg.profile_id,
        .csr = der,
        .csr_len = derlen,
        .sans = sans,
        .not_before = jstr(doc, "notBefore"),
        .not_after = jstr(doc, "notAfter"),
        .ignore_csr_sans = true,
        .requester = who,
        .requester_ip = req->ip,
    };
    int rc = issue_certificate(&ctx->env, &ir, &res, &e);
    if (rc != 0) {
        json_object_set_new(doc, "status", json_string("invalid"));
        json_object_set_new(doc, "error", problem_json(e.status < 500 ? "badCSR" : "serverInternal", e.msg));
        save_doc(ctx, &o, doc, OBJ_UPDATE, NULL);
        problem(ctx, resp, e.status < 500 ? 400 : 500, e.status < 500 ? "badCSR" : "serverInternal", "%s", e.msg);
        goto out;
    }
    json_object_set_new(doc, "status", json_string("valid"));
    json_object_set_new(doc, "serial", json_string(res.serial));
    /* The order was claimed ("processing") by this request, so nothing else
     * updates it meanwhile; a failure here is the store's. The client must
     * not be told "valid" with a certificate URL that the order does not
     * lead to. */
    if (save_doc(ctx, &o, doc, OBJ_UPDATE, NULL) != STORE_OK) {
        log_error("acme: order %s: certificate %s issued but the order could not be marked valid", o.id, res.serial);
        problem(ctx, resp, 500, "serverInternal", "the order could not be updated; please place a new order");
        goto out;
    }
    char *loc = url_join(a.base, "/order/", o.id, NULL, NULL);
    reply_json(ctx, resp, 200, order_json(&a, &o, doc), loc);
    free(loc);
out:
    X509_REQ_free(csr);
    free(der);
    json_decref(sans);
    json_decref(doc);
    issue_result_free(&res);
    obj_rec_free(&o);
    acme_req_free(&a);
}

static int pem_append(struct buf *b, X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *p;
    int rc = -1;
    if (bio && PEM_write_bio_X509(bio, x) == 1) {
        long n = BIO_get_mem_data(bio, &p);
        rc = n > 0 ? buf_append(b, p, (size_t)n) : -1;
    }
    BIO_free(bio);
    return rc;
}

static void h_cert(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    struct obj_rec o;
    struct ca_rec ca;
    struct cert_rec cr;
    json_t *doc = NULL;
    STACK_OF(X509) *chain = NULL;
    X509 *leaf = NULL;
    struct buf b = {0};
    char *l = NULL;
    memset(&o, 0, sizeof o);
    memset(&ca, 0, sizeof ca);
    memset(&cr, 0, sizeof cr);
    bool with_root = req->nparams > 3; /* /cert/{id}/1: the alternate chain */
    if (with_root && strcmp(req->params[3], "1") != 0) {
        problem(ctx, resp, 404, "malformed", "no such certificate chain");
        return;
    }
    if (acme_begin(req, resp, KEY_KID, false, &a) != 0 ||
        load_owned(ctx, resp, &a, ACME_KIND_ORDER, req->params[2], &o, &doc) != 0)
        goto out;
    const char *serial = jstr(doc, "serial");
    if (strcmp(o.status, "valid") != 0 || !serial) {
        problem(ctx, resp, 404, "malformed", "the order has no certificate");
        goto out;
    }
    if (ctx->store->ops->ca_get(ctx->store, a.cfg.partition, jstr(doc, "caId"), &ca) != STORE_OK ||
        ctx->store->ops->cert_get(ctx->store, a.cfg.partition, ca.pk, serial, &cr) != STORE_OK) {
        problem(ctx, resp, 404, "malformed", "the certificate is no longer available");
        goto out;
    }
    const unsigned char *p = cr.der;
    if (!(leaf = d2i_X509(NULL, &p, (long)cr.der_len)) || !(chain = ca_chain(&ctx->env, &ca)) ||
        pem_append(&b, leaf) != 0) {
        problem(ctx, resp, 500, "serverInternal", "cannot assemble the chain");
        goto out;
    }
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        bool self = X509_check_issued(c, c) == X509_V_OK;
        if (self && !with_root && i > 0)
            continue; /* the default chain stops below the root */
        if (pem_append(&b, c) != 0) {
            problem(ctx, resp, 500, "serverInternal", "out of memory");
            goto out;
        }
    }
    resp_take(resp, 200, "application/pem-certificate-chain", b.data, b.len);
    b.data = NULL;
    if (!with_root && asprintf(&l, "<%s/cert/%s/1>;rel=\"alternate\"", a.base, o.id) >= 0)
        resp_header(resp, "Link", l);
    add_nonce(ctx, resp);
out:
    free(l);
    buf_free(&b);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    cert_rec_free(&cr);
    ca_rec_free(&ca);
    json_decref(doc);
    obj_rec_free(&o);
    acme_req_free(&a);
}

static void h_cert_alt(struct http_req *req, struct http_resp *resp)
{
    h_cert(req, resp);
}

/* The certificate `serial` with exactly these bytes, issued through this
 * directory: by its CA, or by a CA it used before its caId was changed
 * (the certificate's requester names the directory). */
static bool find_issued_here(struct api_ctx *ctx, const struct acme_req *a, const char *serial,
                             const unsigned char *der, size_t derlen, struct ca_rec *ca, struct cert_rec *cr)
{
    struct store *st = ctx->store;
    char pfx[64];
    snprintf(pfx, sizeof pfx, "acme:%s/", a->cfg.id);
    if (st->ops->ca_get(st, a->cfg.partition, a->cfg.ca_id, ca) == STORE_OK &&
        st->ops->cert_get(st, a->cfg.partition, ca->pk, serial, cr) == STORE_OK && cr->der_len == derlen &&
        memcmp(cr->der, der, derlen) == 0)
        return true;
    cert_rec_free(cr);
    ca_rec_free(ca);
    memset(cr, 0, sizeof *cr);
    memset(ca, 0, sizeof *ca);
    struct ca_list l;
    bool found = false;
    if (st->ops->ca_list(st, a->cfg.partition, false, &l) != STORE_OK)
        return false;
    for (size_t i = 0; i < l.n && !found; i++) {
        if (strcmp(l.items[i].id, a->cfg.ca_id) == 0 ||
            st->ops->cert_get(st, a->cfg.partition, l.items[i].pk, serial, cr) != STORE_OK)
            continue;
        if (cr->der_len == derlen && memcmp(cr->der, der, derlen) == 0 && cr->requester &&
            strncmp(cr->requester, pfx, strlen(pfx)) == 0 &&
            st->ops->ca_get(st, a->cfg.partition, l.items[i].id, ca) == STORE_OK) {
            found = true;
            break;
        }
        cert_rec_free(cr);
        memset(cr, 0, sizeof *cr);
    }
    ca_list_free(&l);
    return found;
}

/* RFC 8555 7.6: besides the account that ordered it, an account holding
 * valid, unexpired authorizations for every identifier of the certificate
 * may revoke it. Every subjectAltName must be a DNS name or IP address so
 * covered (a wildcard name by a wildcard authorization). */
static bool authorized_for_all(struct api_ctx *ctx, const struct acme_req *a, X509 *x)
{
    struct store *st = ctx->store;
    GENERAL_NAMES *gns = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    struct obj_rec *orders = NULL;
    size_t no = 0;
    int n = gns ? sk_GENERAL_NAME_num(gns) : 0;
    bool *covered = n > 0 ? calloc((size_t)n, sizeof *covered) : NULL;
    bool all = false;
    if (!covered || st->ops->obj_list(st, a->cfg.partition, ACME_KIND_ORDER, a->acct.id, NULL, 0, &orders, &no) !=
                        STORE_OK)
        goto out;
    int64_t now = now_s();
    for (size_t i = 0; i < no; i++) {
        struct obj_rec *azs = NULL;
        size_t nz = 0;
        if (st->ops->obj_list(st, a->cfg.partition, ACME_KIND_AUTHZ, orders[i].id, NULL, 0, &azs, &nz) != STORE_OK)
            continue;
        for (size_t k = 0; k < nz; k++) {
            json_t *d = doc_of(&azs[k]);
            const char *owner = jstr(d, "account"), *status = jstr(d, "status"), *type = NULL, *value = NULL;
            json_t *ident = json_object_get(d, "identifier");
            type = jstr(ident, "type");
            value = jstr(ident, "value");
            json_int_t exp = json_integer_value(json_object_get(d, "expiresAt"));
            bool wild = json_is_true(json_object_get(d, "wildcard"));
            if (owner && strcmp(owner, a->acct.id) == 0 && status && strcmp(status, "valid") == 0 && exp > now &&
                type && value) {
                for (int g = 0; g < n; g++) {
                    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gns, g);
                    char ip[INET6_ADDRSTRLEN] = "";
                    if (gn->type == GEN_DNS && strcmp(type, "dns") == 0) {
                        const char *dn = (const char *)ASN1_STRING_get0_data(gn->d.dNSName);
                        size_t dl = (size_t)ASN1_STRING_length(gn->d.dNSName);
                        bool w = dl > 2 && strncmp(dn, "*.", 2) == 0;
                        const char *base = w ? dn + 2 : dn;
                        size_t bl = w ? dl - 2 : dl;
                        covered[g] |= w == wild && strlen(value) == bl && strncasecmp(value, base, bl) == 0;
                    } else if (gn->type == GEN_IPADD && strcmp(type, "ip") == 0) {
                        int len = ASN1_STRING_length(gn->d.iPAddress);
                        const unsigned char *b = ASN1_STRING_get0_data(gn->d.iPAddress);
                        unsigned char want[16];
                        bool ok = (len == 4 && inet_ntop(AF_INET, b, ip, sizeof ip)) ||
                                  (len == 16 && inet_ntop(AF_INET6, b, ip, sizeof ip));
                        /* compared as addresses, whatever the spelling */
                        covered[g] |= ok && ((len == 4 && inet_pton(AF_INET, value, want) == 1) ||
                                             (len == 16 && inet_pton(AF_INET6, value, want) == 1)) &&
                                      memcmp(want, b, (size_t)len) == 0;
                    }
                }
            }
            json_decref(d);
        }
        obj_list_free(azs, nz);
    }
    all = true;
    for (int g = 0; g < n; g++)
        all &= covered[g];
out:
    free(covered);
    obj_list_free(orders, no);
    GENERAL_NAMES_free(gns);
    return all;
}

static void h_revoke(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct acme_req a;
    struct ca_rec ca;
    struct cert_rec cr;
    struct err e;
    unsigned char *der = NULL;
    size_t derlen = 0;
    X509 *x = NULL;
    memset(&ca, 0, sizeof ca);
    memset(&cr, 0, sizeof cr);
    memset(&e, 0, sizeof e);
    if (acme_begin(req, resp, KEY_EITHER, true, &a) != 0)
        goto out;
    const char *cb = jstr(a.payload, "certificate");
    const unsigned char *p;
    if (!cb || b64url_decode(cb, strlen(cb), &der, &derlen) != 0 || derlen == 0 ||
        (p = der, !(x = d2i_X509(NULL, &p, (long)derlen))) || p != der + derlen) {
        problem(ctx, resp, 400, "malformed", "certificate: base64url DER of the certificate to revoke");
        goto out;
    }
    int reason = 0;
    json_t *jr = json_object_get(a.payload, "reason");
    if (jr) {
        json_int_t v = json_is_integer(jr) ? json_integer_value(jr) : -1;
        if (v < 0 || v > 10 || v == 2 || v == 6 || v == 7 || v == 8) {
            problem(ctx, resp, 400, "badRevocationReason",
                    "reason: one of 0 unspecified, 1 keyCompromise, 3 affiliationChanged, 4 superseded, "
                    "5 cessationOfOperation, 9 privilegeWithdrawn, 10 aACompromise");
            goto out;
        }
        reason = (int)v;
    }
    /* the certificate must be one of this directory's CA */
    char serial[48];
    const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
    char *hex = NULL;
    BIGNUM *bn = ASN1_INTEGER_to_BN(sn, NULL);
    if (bn && (hex = BN_bn2hex(bn)) && api_serial_norm(hex, serial, sizeof serial) == 0 &&
        find_issued_here(ctx, &a, serial, der, derlen, &ca, &cr)) {
        /* found */
    } else {
        OPENSSL_free(hex);
        BN_free(bn);
        problem(ctx, resp, 404, "malformed", "this certificate was not issued through this directory's CA");
        goto out;
    }
    OPENSSL_free(hex);
    BN_free(bn);
    char who[160];
    if (a.by_jwk) {
        /* signed with the certificate's own key */
        if (EVP_PKEY_eq(X509_get0_pubkey(x), a.key) != 1) {
            /* or with the key of the account that ordered it */
            char lookup[96];
            snprintf(lookup, sizeof lookup, "%s:%s", a.cfg.id, a.thumb);
            if (ctx->store->ops->obj_find(ctx->store, a.cfg.partition, ACME_KIND_ACCOUNT, lookup, &a.acct) !=
                STORE_OK) {
                problem(ctx, resp, 403, "unauthorized", "the JWS key is neither the certificate's key nor an account's");
                goto out;
            }
            if (strcmp(a.acct.status, "valid") != 0) {
                problem(ctx, resp, 401, "unauthorized", "the account of this key is %s", a.acct.status);
                goto out;
            }
            requester(&a, who, sizeof who);
        } else {
            snprintf(who, sizeof who, "acme:%s/certificate-key", a.cfg.id);
        }
    } else {
        requester(&a, who, sizeof who);
    }
    if (strncmp(who, "acme:", 5) == 0 && !strstr(who, "/certificate-key")) {
        if ((!cr.requester || strcmp(cr.requester, who) != 0) && !authorized_for_all(ctx, &a, x)) {
            problem(ctx, resp, 403, "unauthorized",
                    "this account neither ordered the certificate nor holds valid authorizations for all of its "
                    "identifiers");
            goto out;
        }
    }
    if (strcmp(cr.status, "revoked") == 0) {
        problem(ctx, resp, 400, "alreadyRevoked", "the certificate is already revoked");
        goto out;
    }
    if (api_cert_set_status(ctx, &ca, serial, "revoked", reason, 0, NULL, who, req->ip, true, &e) != 0) {
        problem(ctx, resp, e.status == 409 ? 400 : e.status ? e.status : 500,
                e.status == 409 ? "alreadyRevoked" : "serverInternal", "%s", e.msg);
        goto out;
    }
    resp_bytes(resp, 200, NULL, "", 0);
    add_nonce(ctx, resp);
out:
    X509_free(x);
    free(der);
    cert_rec_free(&cr);
    ca_rec_free(&ca);
    acme_req_free(&a);
}

/* ---- routes -------------------------------------------------------------- */

#define A "/acme/{}/{}"
const struct route acme_routes[] = {
    {"GET", A "/directory", h_directory},
    {"GET", A "/new-nonce", h_new_nonce},
    {"POST", A "/new-account", h_new_account, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/new-order", h_new_order, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/revoke-cert", h_revoke, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/key-change", h_key_change, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/acct/{}", h_account, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/acct/{}/orders", h_orders, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/order/{}", h_order, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/order/{}/finalize", h_finalize, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/authz/{}", h_authz, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/chall/{}/{}", h_challenge, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/cert/{}", h_cert, 0, LIMIT_ACME_JWS_BYTES},
    {"POST", A "/cert/{}/{}", h_cert_alt, 0, LIMIT_ACME_JWS_BYTES},
};
const size_t acme_routes_count = sizeof acme_routes / sizeof acme_routes[0];

/* Deletes every object of `kind` whose parent is `parent`, and first, for
 * each, its children of `child_kind` (and theirs, of `grandchild_kind`). */
static void delete_tree(struct store *st, const char *partition, const char *kind, const char *parent,
                        const char *child_kind, const char *grandchild_kind)
{
    struct obj_rec *items = NULL;
    size_t n = 0;
    if (st->ops->obj_list(st, partition, kind, parent, NULL, 0, &items, &n) != STORE_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        if (child_kind)
            delete_tree(st, partition, child_kind, items[i].id, grandchild_kind, NULL);
        st->ops->obj_delete(st, partition, kind, items[i].id, NULL);
    }
    obj_list_free(items, n);
}

void acme_forget_configuration(struct store *st, const char *partition, const char *cfg)
{
    delete_tree(st, partition, ACME_KIND_ACCOUNT, cfg, ACME_KIND_ORDER, ACME_KIND_AUTHZ);
}

void acme_housekeeping(struct store *st)
{
    int64_t now = now_s();
    st->ops->obj_purge(st, ACME_KIND_NONCE, now);
    st->ops->obj_purge(st, ACME_KIND_ORDER, now);
    st->ops->obj_purge(st, ACME_KIND_AUTHZ, now);
}
