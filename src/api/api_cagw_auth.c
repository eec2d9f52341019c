/* CA Gateway credentials: the partition's credentials CA, credential
 * creation (PKCS#12 + password shown once), renewal, per-CA role grants,
 * deletion — and the mutual-TLS authentication of /cagw/v1 requests. */
#include "api/api_cagw.h"

#include "crypto/keywrap.h"
#include "crypto/secret.h"
#include "crypto/signer.h"
#include "util/codec.h"
#include "util/json_util.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "x509/certbuild.h"
#include "x509/dn.h"
#include "x509/ext.h"

#include <openssl/crypto.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include "util/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRED_DAYS 365
#define CRED_CA_YEARS 10

void cagw_error(struct http_resp *resp, int status, const char *code, const char *target, const char *value,
                const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* both quote request bytes (ids, serials, DNs), which may not be UTF-8
     * or may be cut inside a character: JSON would refuse them (a 500) */
    utf8_fix(msg);
    char *val = value ? strdup(value) : NULL;
    if (val)
        utf8_fix(val);
    resp_json(resp, status, json_pack("{s:s,s:{s:s,s:[]},s:{s:s,s:s,s:s?,s:s?,s:[]}}", "type", "ErrorResponse",
                                      "message", "message", msg, "details", "error", "code", code, "message", msg,
                                      "target", target, "value", value && !val ? "" : val, "details"));
    free(val);
}

static void seal_aad(char *out, size_t n, const char *partition)
{
    snprintf(out, n, "cagw-ca:%s", partition);
}

/* The partition's credentials CA (created on first use). */
static int cred_ca(struct api_ctx *ctx, const char *partition, EVP_PKEY **key, X509 **cert)
{
    unsigned char *blob = NULL, *der = NULL;
    size_t bl = 0, dl = 0;
    char aad[128];
    int rc = -1;
    seal_aad(aad, sizeof aad, partition);
    if (ctx->store->ops->cagw_ca_get(ctx->store, partition, &blob, &bl, &der, &dl) == STORE_OK) {
        const unsigned char *p = der;
        *cert = d2i_X509(NULL, &p, (long)dl);
        *key = keywrap_open_pkey(ctx->env.mkey, blob, bl, aad);
        rc = *cert && *key ? 0 : -1;
        goto out;
    }
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    struct signer *s = k ? signer_soft_new(k, "SHA256", false) : NULL;
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_NAME *name = NULL;
    X509 *x = NULL;
    unsigned char ski[SKI_LEN], *sealed = NULL, *xder = NULL;
    size_t sl = 0;
    char dn[200], err[128];
    snprintf(dn, sizeof dn, "CN=%s CA Gateway credentials, O=%s", partition, partition);
    struct cert_template t;
    memset(&t, 0, sizeof t);
    if (!s || !exts || dn_parse(dn, &name, err, sizeof err) != 0 || x509_ski_compute(k, ski) != 0 ||
        x509_serial_new(t.serial) != 0 || ext_push(exts, ext_basic_constraints(true, 0)) ||
        ext_push(exts, ext_key_usage(KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE)) ||
        ext_push(exts, ext_ski(ski)) || ext_push(exts, ext_aki(ski, SKI_LEN)))
        goto built;
    t.subject = t.issuer = name;
    t.pubkey = k;
    t.not_before = time_now() - 60;
    t.not_after = time_add_years(time_now(), CRED_CA_YEARS);
    t.exts = exts;
    int n;
    if (!(x = certbuild_sign(&t, s, err, sizeof err)) || (n = i2d_X509(x, &xder)) <= 0 ||
        keywrap_seal_pkey(ctx->env.mkey, k, aad, &sealed, &sl) != 0 ||
        ctx->store->ops->cagw_ca_put(ctx->store, partition, sealed, sl, xder, (size_t)n) != STORE_OK)
        goto built;
    *key = k;
    *cert = x;
    k = NULL;
    x = NULL;
    rc = 0;
built:
    EVP_PKEY_free(k);
    X509_free(x);
    signer_free(s);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_NAME_free(name);
    free(sealed);
    OPENSSL_free(xder);
out:
    free(blob);
    free(der);
    return rc;
}

/* Issues a client certificate for credential `id`; fills c (serial, DER,
 * notAfter) and the PKCS#12 + password (malloc'd). */
static int issue_credential(struct api_ctx *ctx, const char *partition, struct cagw_cred *c, char **p12b64,
                            char **password)
{
    EVP_PKEY *cak = NULL, *k = NULL;
    X509 *cacert = NULL, *x = NULL;
    struct signer *s = NULL;
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509_NAME *name = NULL;
    PKCS12 *p12 = NULL;
    unsigned char *der = NULL, *pder = NULL, ski[SKI_LEN];
    char dn[300], err[128];
    int rc = -1;
    struct cert_template t;
    memset(&t, 0, sizeof t);
    snprintf(dn, sizeof dn, "CN=%s, OU=CA Gateway, O=%s", c->id, partition);
    if (!exts || !chain || cred_ca(ctx, partition, &cak, &cacert) != 0 ||
        !(k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) || !(s = signer_soft_new(cak, "SHA256", false)) ||
        dn_parse(dn, &name, err, sizeof err) != 0 || x509_ski_compute(k, ski) != 0 || x509_serial_new(t.serial) != 0)
        goto out;
    const ASN1_OCTET_STRING *caski = X509_get0_subject_key_id(cacert);
    if (!caski || ext_push(exts, ext_basic_constraints(false, -1)) ||
        ext_push(exts, ext_key_usage(KU_DIGITAL_SIGNATURE)) ||
        ext_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage, "clientAuth")) ||
        ext_push(exts, ext_ski(ski)) ||
        ext_push(exts, ext_aki(ASN1_STRING_get0_data(caski), (size_t)ASN1_STRING_length(caski))))
        goto out;
    t.subject = name;
    t.issuer = X509_get_subject_name(cacert);
    t.pubkey = k;
    t.not_before = time_now() - 60;
    t.not_after = time_now() + CRED_DAYS * 86400LL;
    t.exts = exts;
    if (!(x = certbuild_sign(&t, s, err, sizeof err)))
        goto out;
    int n = i2d_X509(x, &der);
    if (n <= 0 || !(c->cert_der = malloc((size_t)n)))
        goto out;
    memcpy(c->cert_der, der, (size_t)n);
    c->cert_len = (size_t)n;
    char *sn = hex_encode(t.serial, SERIAL_LEN);
    snprintf(c->serial, sizeof c->serial, "%s", sn ? sn : "");
    free(sn);
    c->not_after = t.not_after;
    if (!(*password = secret_new_password()) || !X509_up_ref(cacert) || !sk_X509_push(chain, cacert))
        goto out;
    char fname[80];
    snprintf(fname, sizeof fname, "pkcs12-%s", c->id);
    if (!(p12 = PKCS12_create_ex(*password, fname, k, x, chain, NID_aes_256_cbc, NID_aes_256_cbc, 10000, 10000, 0,
                                 NULL, NULL)))
        goto out;
    int pl = i2d_PKCS12(p12, &pder);
    if (pl <= 0 || !(*p12b64 = b64_encode(pder, (size_t)pl)))
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        free(*password);
        *password = NULL;
        free(c->cert_der);
        c->cert_der = NULL;
    }
    EVP_PKEY_free(cak);
    EVP_PKEY_free(k);
    X509_free(cacert);
    X509_free(x);
    signer_free(s);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    sk_X509_pop_free(chain, X509_free);
    X509_NAME_free(name);
    PKCS12_free(p12);
    OPENSSL_free(der);
    if (pder)
        OPENSSL_clear_free(pder, 1);
    return rc;
}

static bool cred_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 2 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-' || id[i] == '_'))
            return false;
    return true;
}

/* grants: [{"caId","roles":[...]}] → arrays (caller frees roles). */
static int parse_grants(struct api_ctx *ctx, const char *partition, const json_t *ga, struct cagw_grant **out,
                        size_t *n, struct http_resp *resp)
{
    size_t i;
    json_t *v;
    *out = NULL;
    *n = 0;
    if (!ga || json_is_null(ga))
        return 0;
    if (!json_is_array(ga) || json_array_size(ga) > 256) {
        resp_error(resp, 400, "invalid_field", "grants", "grants: [{\"caId\",\"roles\":[...]}]");
        return -1;
    }
    if (!(*out = calloc(json_array_size(ga) + 1, sizeof(**out))))
        return -1;
    json_array_foreach(ga, i, v) {
        const char *ca = json_string_value(json_object_get(v, "caId"));
        const json_t *ra = json_object_get(v, "roles");
        struct ca_rec c;
        if (!ca || !ca_id_valid(ca) || ctx->store->ops->ca_get(ctx->store, partition, ca, &c) != STORE_OK) {
            resp_error(resp, 400, "invalid_field", "grants", "grants[%zu].caId: no such CA", i);
            return -1;
        }
        bool deleted = strcmp(c.status, "deleted") == 0;
        ca_rec_free(&c);
        if (deleted) {
            resp_error(resp, 400, "invalid_field", "grants", "grants[%zu].caId: CA '%s' is deleted", i, ca);
            return -1;
        }
        if (!json_is_array(ra) || json_array_size(ra) == 0 || json_array_size(ra) > AUTHZ_ROLES) {
            resp_error(resp, 400, "invalid_field", "grants", "grants[%zu].roles: a non-empty list of roles", i);
            return -1;
        }
        size_t k, need = 1;
        json_t *r;
        json_array_foreach(ra, k, r) need += (json_is_string(r) ? json_string_length(r) : 0) + 1;
        struct cagw_grant *g = &(*out)[(*n)++];
        snprintf(g->ca_id, sizeof g->ca_id, "%s", ca);
        if (!(g->roles = calloc(1, need)))
            return -1;
        json_array_foreach(ra, k, r) {
            unsigned m = 0;
            if (!json_is_string(r) || strchr(json_string_value(r), ',') ||
                authz_roles_parse(json_string_value(r), &m) != 0 || !m) {
                resp_error(resp, 400, "invalid_field", "grants", "grants[%zu].roles[%zu]: unknown role", i, k);
                return -1;
            }
            if (k)
                strcat(g->roles, ",");
            strcat(g->roles, json_string_value(r));
        }
    }
    return 0;
}

static void free_grants(struct cagw_grant *g, size_t n)
{
    for (size_t i = 0; g && i < n; i++)
        free(g[i].roles);
    free(g);
}

static json_t *grants_json(struct api_ctx *ctx, const char *partition, const char *id)
{
    struct cagw_grant *g = NULL;
    size_t n = 0;
    json_t *a = json_array();
    if (ctx->store->ops->cagw_grants_get(ctx->store, partition, id, &g, &n) == STORE_OK)
        for (size_t i = 0; i < n; i++) {
            json_t *roles = json_array();
            char *dup = strdup(g[i].roles ? g[i].roles : "");
            for (char *save = NULL, *t = dup ? strtok_r(dup, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
                json_array_append_new(roles, json_string(t));
            free(dup);
            json_array_append_new(a, json_pack("{s:s,s:o}", "caId", g[i].ca_id, "roles", roles));
        }
    free_grants(g, n);
    return a;
}

static json_t *cred_json(struct api_ctx *ctx, const struct cagw_cred *c)
{
    char na[32], ca[32];
    time_format_rfc3339(c->not_after, na, sizeof na);
    time_format_rfc3339(c->created_at, ca, sizeof ca);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "id", c->id, "name", c->name, "serialNumber", c->serial,
                     "notAfter", na, "createdAt", ca, "grants", grants_json(ctx, c->partition_id, c->id));
}

static void send_new_credential(struct http_resp *resp, int status, json_t *o, char *p12, char *pw, const char *id)
{
    char fname[96];
    snprintf(fname, sizeof fname, "pkcs12-%s.p12", id);
    json_object_set_new(o, "pkcs12", json_string(p12));
    json_object_set_new(o, "password", json_string(pw));
    json_object_set_new(o, "fileName", json_string(fname));
    json_object_set_new(o, "note", json_string("the PKCS#12 and its password are shown once"));
    resp_json(resp, status, o);
}

void api_cagw_cred_create(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct cagw_cred c;
    struct cagw_grant *g = NULL;
    size_t ng = 0;
    char *p12 = NULL, *pw = NULL;
    json_t *body = NULL;
    memset(&c, 0, sizeof c);
    if (api_auth(req, resp, req->params[0], OP_CAGW_CREDENTIALS, &p) != 0 || !(body = api_body_object(req, resp)))
        return;
    const char *id = json_string_value(json_object_get(body, "id"));
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!cred_id_valid(id)) {
        resp_error(resp, 400, "invalid_field", "id", "id: 2-32 characters of a-z, 0-9, '-' or '_'");
        goto out;
    }
    if (name && strlen(name) > 128) {
        resp_error(resp, 400, "invalid_field", "name", "name: at most 128 characters");
        goto out;
    }
    if (parse_grants(ctx, p.partition, json_object_get(body, "grants"), &g, &ng, resp) != 0)
        goto out;
    snprintf(c.partition_id, sizeof c.partition_id, "%s", p.partition);
    snprintf(c.id, sizeof c.id, "%s", id);
    snprintf(c.name, sizeof c.name, "%s", name ? name : id);
    c.created_at = time_now();
    if (issue_credential(ctx, p.partition, &c, &p12, &pw) != 0) {
        resp_error(resp, 500, "internal", NULL, "cannot issue the credential");
        goto out;
    }
    char target[96];
    snprintf(target, sizeof target, "cagw-credential:%s", id);
    struct audit_rec a = {p.actor, "cagw.credential.create", target, NULL, p.ip, NULL};
    int s = ctx->store->ops->cagw_cred_put(ctx->store, &c, true, &a);
    if (s == STORE_ECONFLICT) {
        resp_error(resp, 409, "conflict", "id", "id: a credential '%s' exists", id);
        goto out;
    }
    if (s != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    struct audit_rec ga = {p.actor, "cagw.credential.grants", target, NULL, p.ip, NULL};
    if (ctx->store->ops->cagw_grants_set(ctx->store, p.partition, id, g, ng, &ga) != STORE_OK) {
        /* no credential without its grants: a retry must not find the id
         * taken by one whose certificate nobody received */
        struct audit_rec da = {p.actor, "cagw.credential.delete", target, "{\"reason\":\"grants not stored\"}",
                               p.ip, "failure"};
        if (ctx->store->ops->cagw_cred_delete(ctx->store, p.partition, id, &da) != STORE_OK)
            log_error("cagw credential %s/%s: created without its grants and not removed", p.partition, id);
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    send_new_credential(resp, 201, cred_json(ctx, &c), p12, pw, id);
out:
    if (pw)
        OPENSSL_cleanse(pw, strlen(pw));
    free(pw);
    free(p12);
    cagw_cred_free(&c);
    free_grants(g, ng);
    json_decref(body);
}

void api_cagw_cred_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct cagw_cred *items = NULL;
    size_t n = 0;
    if (api_auth(req, resp, req->params[0], OP_CAGW_CREDENTIALS, &p) != 0)
        return;
    if (ctx->store->ops->cagw_cred_list(ctx->store, p.partition, &items, &n) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, cred_json(ctx, &items[i]));
        cagw_cred_free(&items[i]);
    }
    free(items);
    resp_json(resp, 200, json_pack("{s:o}", "credentials", a));
}

void api_cagw_cred_renew(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct cagw_cred c;
    char *p12 = NULL, *pw = NULL;
    memset(&c, 0, sizeof c);
    if (api_auth(req, resp, req->params[0], OP_CAGW_CREDENTIALS, &p) != 0)
        return;
    if (!cred_id_valid(req->params[1]) ||
        ctx->store->ops->cagw_cred_get(ctx->store, p.partition, req->params[1], &c) != STORE_OK) {
        resp_error(resp, 404, "not_found", "id", "no credential '%.32s'", req->params[1]);
        return;
    }
    cagw_cred_free(&c);
    if (issue_credential(ctx, p.partition, &c, &p12, &pw) != 0) {
        resp_error(resp, 500, "internal", NULL, "cannot issue the credential");
        goto out;
    }
    char target[96];
    snprintf(target, sizeof target, "cagw-credential:%s", c.id);
    struct audit_rec a = {p.actor, "cagw.credential.renew", target, NULL, p.ip, NULL};
    if (ctx->store->ops->cagw_cred_put(ctx->store, &c, false, &a) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    send_new_credential(resp, 200, cred_json(ctx, &c), p12, pw, c.id);
out:
    if (pw)
        OPENSSL_cleanse(pw, strlen(pw));
    free(pw);
    free(p12);
    cagw_cred_free(&c);
}

void api_cagw_cred_grants(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct cagw_cred c;
    struct cagw_grant *g = NULL;
    size_t ng = 0;
    json_t *body = NULL;
    memset(&c, 0, sizeof c);
    if (api_auth(req, resp, req->params[0], OP_CAGW_CREDENTIALS, &p) != 0 || !(body = api_body_object(req, resp)))
        return;
    if (!cred_id_valid(req->params[1]) ||
        ctx->store->ops->cagw_cred_get(ctx->store, p.partition, req->params[1], &c) != STORE_OK) {
        resp_error(resp, 404, "not_found", "id", "no credential '%.32s'", req->params[1]);
        goto out;
    }
    if (parse_grants(ctx, p.partition, json_object_get(body, "grants"), &g, &ng, resp) != 0)
        goto out;
    char target[96];
    snprintf(target, sizeof target, "cagw-credential:%s", c.id);
    struct audit_rec a = {p.actor, "cagw.credential.grants", target, NULL, p.ip, NULL};
    if (ctx->store->ops->cagw_grants_set(ctx->store, p.partition, c.id, g, ng, &a) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    resp_json(resp, 200, cred_json(ctx, &c));
out:
    cagw_cred_free(&c);
    free_grants(g, ng);
    json_decref(body);
}

void api_cagw_cred_delete(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    if (api_auth(req, resp, req->params[0], OP_CAGW_CREDENTIALS, &p) != 0)
        return;
    char target[96];
    snprintf(target, sizeof target, "cagw-credential:%.32s", req->params[1]);
    struct audit_rec a = {p.actor, "cagw.credential.delete", target, NULL, p.ip, NULL};
    int s = cred_id_valid(req->params[1]) ? ctx->store->ops->cagw_cred_delete(ctx->store, p.partition,
                                                                               req->params[1], &a)
                                          : STORE_ENOTFOUND;
    if (s == STORE_ENOTFOUND)
        resp_error(resp, 404, "not_found", "id", "no credential '%.32s'", req->params[1]);
    else if (s != STORE_OK)
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
    else
        resp_json(resp, 200, json_pack("{s:s,s:b}", "id", req->params[1], "deleted", 1));
}

/* ---- authentication of /cagw/v1 requests --------------------------------- */

int cagw_auth(struct http_req *req, struct http_resp *resp, struct cagw_principal *out)
{
    struct api_ctx *ctx = req->app;
    struct cagw_cred c;
    X509 *x = NULL;
    int rc = -1;
    memset(&c, 0, sizeof c);
    if (!req->https || !req->client_cert) {
        cagw_error(resp, 401, "cagw-4011", "clientCertificate", NULL,
                   "a CA Gateway credential (TLS client certificate) is required");
        return -1;
    }
    const unsigned char *q = req->client_cert;
    char *serial = NULL;
    if (!(x = d2i_X509(NULL, &q, (long)req->client_cert_len)) || !(serial = x509_serial_hex(x)) ||
        ctx->store->ops->cagw_cred_by_serial(ctx->store, serial, &c) != STORE_OK ||
        c.cert_len != req->client_cert_len || CRYPTO_memcmp(c.cert_der, req->client_cert, c.cert_len) != 0 ||
        c.not_after <= time_now() || X509_cmp_time(X509_get0_notAfter(x), NULL) <= 0) {
        /* exact match with an active credential's certificate: renewed,
         * deleted, expired or foreign certificates are all refused */
        cagw_error(resp, 401, "cagw-4011", "clientCertificate", NULL,
                   "the client certificate is not an active CA Gateway credential");
        goto out;
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->partition, sizeof out->partition, "%s", c.partition_id);
    snprintf(out->credential, sizeof out->credential, "%s", c.id);
    snprintf(out->actor, sizeof out->actor, "cagw:%s", c.id);
    snprintf(out->ip, sizeof out->ip, "%s", req->ip);
    snprintf(req->partition, sizeof req->partition, "%s", c.partition_id);
    rc = 0;
out:
    free(serial);
    X509_free(x);
    cagw_cred_free(&c);
    return rc;
}

bool cagw_allowed(struct api_ctx *ctx, const struct cagw_principal *p, const char *ca_id, enum authz_op op)
{
    struct cagw_grant *g = NULL;
    size_t n = 0;
    bool ok = false;
    if (ctx->store->ops->cagw_grants_get(ctx->store, p->partition, p->credential, &g, &n) != STORE_OK)
        return false;
    for (size_t i = 0; i < n && !ok; i++) {
        if (strcmp(g[i].ca_id, ca_id) != 0)
            continue;
        struct principal pr;
        memset(&pr, 0, sizeof pr);
        snprintf(pr.partition, sizeof pr.partition, "%s", p->partition);
        snprintf(pr.roles, sizeof pr.roles, "%s", g[i].roles ? g[i].roles : "");
        ok = authz_allow(&pr, op);
    }
    free_grants(g, n);
    return ok;
}
