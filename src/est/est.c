/* EST server (RFC 7030, with the clarifications of RFC 8951) for protocol
 * configurations of type "est".
 *
 * Endpoints under /.well-known/est/{accountId}~{configId}/ (the optional CA
 * label segment of RFC 7030 3.2.2 carries the partition and configuration):
 *
 *   GET  cacerts         certs-only CMC (degenerate PKCS#7) of the CA chain
 *   POST simpleenroll    PKCS#10 -> certs-only with the new certificate
 *   POST simplereenroll  the same, authenticated by the certificate renewed
 *   POST serverkeygen    PKCS#10 (subject, SANs) -> multipart/mixed with the
 *                        PKCS#8 private key and the certificate
 *   GET  csrattrs        CsrAttrs: the key and signature the profile prefers
 *
 * Bodies are base64 (line breaks allowed) both ways; every error body is
 * text/plain. Enrolment is HTTPS only and authenticated per configuration:
 * "basic" (HTTP Basic with the configuration's credentials) or
 * "certificate" (a TLS client certificate issued by the configuration's CA
 * or one of its trustedCaIds, valid and not revoked or suspended). The TLS
 * layer requests client certificates but does not verify them; this file
 * does, with X509_verify_cert and the store's status. Re-enrolment always
 * needs the certificate being renewed (issued by the configuration's CA).
 *
 * Certificates come from the issuance core only (issue_certificate), which
 * also writes the audit record. */
#include "est/est.h"
#include "util/limits.h"

#include "api/api.h"
#include "ca/issue.h"
#include "ca/profile.h"
#include "proto/proto.h"
#include "util/buf.h"
#include "util/codec.h"
#include "x509/csr.h"
#include "x509/dn.h"
#include "x509/ext.h"
#include "x509/san.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CAP_OTHER 0            /* rate-limit classes (api.c) */
#define CAP_CERT 1
#define EST_TRUSTED_MAX 16     /* trustedCaIds entries */
#define EST_AUTH_HDR_MAX LIMIT_AUTH_HEADER_BYTES /* Authorization header bytes we look at */
#define EST_BODY_MAX LIMIT_EST_BODY_BYTES
#define EST_REQUESTER_MAX 200
#define B64_LINE 64
#define BOUNDARY "est-pkiaas-part-boundary"

static const char ct_text[] = "text/plain; charset=utf-8";
#define CT_CERTS "application/pkcs7-mime; smime-type=certs-only"
static const char ct_certs[] = CT_CERTS;
static const char ct_csrattrs[] = "application/csrattrs";
static const char ct_multipart[] = "multipart/mixed; boundary=" BOUNDARY;

/* ---- settings (admin API) ----------------------------------------------- */

const char *const est_setting_keys[] = {"authentication", "trustedCaIds", NULL};

int est_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e)
{
    const char *auth = NULL;
    if (jget_str(body, "authentication", 32, &auth, e))
        return -1;
    if (auth && strcmp(auth, "basic") != 0 && strcmp(auth, "certificate") != 0) {
        jerr_set(e, "authentication", "authentication: one of basic, certificate");
        return -1;
    }
    json_t *ids = json_object_get(body, "trustedCaIds");
    if (ids) {
        if (!json_is_array(ids) || json_array_size(ids) > EST_TRUSTED_MAX) {
            jerr_set(e, "trustedCaIds", "trustedCaIds: an array of at most %d CA ids", EST_TRUSTED_MAX);
            return -1;
        }
        size_t i, j;
        json_t *s, *t;
        json_array_foreach(ids, i, s) {
            if (!json_is_string(s) || !ca_id_valid(json_string_value(s)) ||
                strlen(json_string_value(s)) != json_string_length(s)) {
                jerr_set(e, "trustedCaIds", "trustedCaIds[%zu]: a CA id (2-18 characters of a-z, 0-9, '_' and '-')",
                         i);
                return -1;
            }
            json_array_foreach(ids, j, t) {
                if (j < i && strcmp(json_string_value(s), json_string_value(t)) == 0) {
                    jerr_set(e, "trustedCaIds", "trustedCaIds[%zu]: '%s' is listed twice", i, json_string_value(s));
                    return -1;
                }
            }
        }
    }
    if (auth)
        json_object_set_new(doc, "authentication", json_string(auth));
    else if (create || !json_is_string(json_object_get(doc, "authentication")))
        json_object_set_new(doc, "authentication", json_string("basic"));
    if (ids)
        json_object_set_new(doc, "trustedCaIds", json_deep_copy(ids));
    else if (create || !json_is_array(json_object_get(doc, "trustedCaIds")))
        json_object_set_new(doc, "trustedCaIds", json_array());
    return 0;
}

char *est_url(const char *https_base, const char *partition, const char *config)
{
    char *u = NULL;
    if (asprintf(&u, "%s/.well-known/est/%s~%s", https_base, partition, config) < 0)
        return NULL;
    return u;
}

/* ---- responses ---------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void text_error(struct http_resp *resp, int status, const char *fmt,
                                                             ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof msg - 1, fmt, ap) < 0)
        msg[0] = 0;
    va_end(ap);
    size_t len = strlen(msg);
    msg[len++] = '\n';
    resp_bytes(resp, status, ct_text, msg, len);
}

/* base64 in lines of B64_LINE characters, each ended by CRLF (malloc'd). */
static char *b64_lines(const unsigned char *p, size_t n, size_t *outlen)
{
    char *flat = b64_encode(p, n), *out = NULL;
    if (!flat)
        return NULL;
    size_t fl = strlen(flat), lines = (fl + B64_LINE - 1) / B64_LINE;
    if ((out = malloc(fl + 2 * lines + 1))) {
        size_t o = 0;
        for (size_t i = 0; i < fl; i += B64_LINE) {
            size_t k = fl - i < B64_LINE ? fl - i : B64_LINE;
            memcpy(out + o, flat + i, k);
            o += k;
            out[o++] = '\r';
            out[o++] = '\n';
        }
        out[o] = 0;
        *outlen = o;
    }
    OPENSSL_cleanse(flat, fl);
    free(flat);
    return out;
}

/* A certs-only CMC Simple PKI Response (RFC 5272 4.1): SignedData without
 * content or signers, carrying `certs` in order. DER, OPENSSL_malloc'd. */
static int certs_only_der(STACK_OF(X509) *certs, unsigned char **der, size_t *len)
{
    PKCS7 *p7 = PKCS7_new();
    int rc = -1;
    *der = NULL;
    if (!p7 || !PKCS7_set_type(p7, NID_pkcs7_signed) || !PKCS7_content_new(p7, NID_pkcs7_data) ||
        PKCS7_set_detached(p7, 1) != 1)
        goto out;
    for (int i = 0; i < sk_X509_num(certs); i++)
        if (!PKCS7_add_certificate(p7, sk_X509_value(certs, i)))
            goto out;
    int n = i2d_PKCS7(p7, der);
    if (n <= 0) {
        *der = NULL;
        goto out;
    }
    *len = (size_t)n;
    rc = 0;
out:
    PKCS7_free(p7);
    ERR_clear_error();
    return rc;
}

/* The base64 certs-only response body of `certs` (malloc'd). */
static char *certs_only_b64(STACK_OF(X509) *certs, size_t *outlen)
{
    unsigned char *der = NULL;
    size_t dl = 0;
    if (certs_only_der(certs, &der, &dl) != 0)
        return NULL;
    char *s = b64_lines(der, dl, outlen);
    OPENSSL_free(der);
    return s;
}

static void reply_b64(struct http_resp *resp, const char *ctype, char *body, size_t len)
{
    resp_take(resp, 200, ctype, (unsigned char *)body, len);
    resp_header(resp, "Content-Transfer-Encoding", "base64");
}

/* ---- request context ---------------------------------------------------- */

struct est_req {
    struct proto_cfg cfg;
    bool loaded;
    bool cert_mode;                      /* authentication "certificate" */
    char who[EST_REQUESTER_MAX + 1];     /* credential id or certificate subject */
    char cur_profile[STORE_ID_MAX + 1];  /* profile of the verified client certificate */
};

static void est_req_free(struct est_req *r)
{
    if (r->loaded)
        proto_cfg_free(&r->cfg);
    memset(r, 0, sizeof *r);
}

static bool partition_id_ok(const char *s, size_t n)
{
    if (n < 1 || n > STORE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

/* The configuration named by the label segment "<accountId>~<configId>".
 * Answers 404 (or 503) itself. */
static int est_begin(struct http_req *req, struct http_resp *resp, struct est_req *r)
{
    struct api_ctx *ctx = req->app;
    char part[STORE_ID_MAX + 1], cfg[PROTO_ID_MAX + 1];
    struct err e;
    memset(r, 0, sizeof *r);
    const char *label = req->nparams > 0 ? req->params[0] : "";
    const char *tilde = strchr(label, '~');
    size_t pn = tilde ? (size_t)(tilde - label) : 0;
    if (!tilde || strchr(tilde + 1, '~') || !partition_id_ok(label, pn) || strlen(tilde + 1) > PROTO_ID_MAX ||
        !proto_id_valid(tilde + 1)) {
        text_error(resp, 404, "no EST service at this URL (expected /.well-known/est/<accountId>~<configId>/...)");
        return -1;
    }
    memcpy(part, label, pn);
    part[pn] = 0;
    snprintf(cfg, sizeof cfg, "%s", tilde + 1);
    snprintf(req->partition, sizeof req->partition, "%s", part);
    memset(&e, 0, sizeof e);
    if (proto_cfg_load(ctx->store, part, cfg, "est", &r->cfg, &e) != 0) {
        if (e.status == 404)
            text_error(resp, 404, "no EST configuration '%s' in account '%s'", cfg, part);
        else
            text_error(resp, 503, "the EST service is unavailable, retry later");
        return -1;
    }
    r->loaded = true;
    const char *auth = proto_str(&r->cfg, "authentication");
    r->cert_mode = auth && strcmp(auth, "certificate") == 0;
    return 0;
}

/* 1 and the 429 in resp when the partition is over its limit. */
static int est_rate_limited(struct http_req *req, struct http_resp *resp, const struct est_req *r, int capability)
{
    char ra[24];
    int limit = 0;
    bool premium = false;
    int saved = req->capability;
    req->capability = capability;
    int over = api_rate_limited(req, r->cfg.partition, ra, &limit, &premium);
    req->capability = saved;
    if (!over)
        return 0;
    text_error(resp, 429, "rate limit of %d %s requests reached for this account; retry after %s s", limit,
               capability == CAP_CERT ? "certificate" : "other", ra);
    resp_header(resp, "Retry-After", ra);
    return 1;
}

/* ---- authentication ----------------------------------------------------- */

static void basic_challenge(struct http_resp *resp, const char *why)
{
    text_error(resp, 401, "%s", why);
    resp_header(resp, "WWW-Authenticate", "Basic realm=\"estrealm\"");
}

/* HTTP Basic with a credential of the configuration (user = credential id,
 * password = its secret). Answers 401 itself. */
static int auth_basic(struct http_req *req, struct http_resp *resp, struct est_req *r)
{
    struct api_ctx *ctx = req->app;
    const char *h = http_header(req, "Authorization");
    char user[PROTO_CRED_ID_MAX + 1], pass[256];
    int rc = -1;
    if (!h) {
        basic_challenge(resp, "authentication required: HTTP Basic with an EST credential of this configuration");
        return -1;
    }
    if (strnlen(h, EST_AUTH_HDR_MAX + 1) > EST_AUTH_HDR_MAX ||
        proto_basic_auth(h, user, sizeof user, pass, sizeof pass) != 0) {
        basic_challenge(resp, "the Authorization header must be HTTP Basic with base64 of user:password");
        goto out;
    }
    if (!proto_cred_id_valid(user) ||
        !proto_cred_check(ctx->store, ctx->env.mkey, r->cfg.partition, r->cfg.id, user, pass)) {
        basic_challenge(resp, "authentication failed: unknown user or wrong password");
        goto out;
    }
    snprintf(r->who, sizeof r->who, "%s", user);
    rc = 0;
out:
    OPENSSL_cleanse(pass, sizeof pass);
    return rc;
}

/* The TLS client certificate of the request, verified: issued directly by
 * one of the CAs `ca_ids` of the configuration's partition (live, active),
 * currently valid, and recorded in the store with status "issued". On
 * success *leaf (caller frees) and r->who (its subject). -1 with the reason
 * (for the client) in why. */
static int verify_client_cert(struct http_req *req, struct est_req *r, const char *const *ca_ids, size_t n,
                              X509 **leaf, char *why, size_t wn)
{
    struct api_ctx *ctx = req->app;
    X509 *x = NULL, *cas[EST_TRUSTED_MAX + 1];
    int64_t pks[EST_TRUSTED_MAX + 1];
    size_t ncas = 0;
    X509_STORE *st = NULL;
    X509_STORE_CTX *sc = NULL;
    struct cert_rec cr;
    char *serial = NULL, *subj = NULL;
    int rc = -1;
    memset(&cr, 0, sizeof cr);
    *leaf = NULL;
    if (!req->https || !req->client_cert || req->client_cert_len == 0) {
        snprintf(why, wn, "a TLS client certificate is required");
        goto out;
    }
    const unsigned char *q = req->client_cert;
    if (req->client_cert_len > LONG_MAX || !(x = d2i_X509(NULL, &q, (long)req->client_cert_len)) ||
        q != req->client_cert + req->client_cert_len) {
        snprintf(why, wn, "the TLS client certificate cannot be decoded");
        goto out;
    }
    if (!(st = X509_STORE_new()) || !(sc = X509_STORE_CTX_new())) {
        snprintf(why, wn, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n && ncas < EST_TRUSTED_MAX + 1; i++) {
        struct ca_rec c;
        memset(&c, 0, sizeof c);
        if (!ca_id_valid(ca_ids[i]) ||
            ctx->store->ops->ca_get(ctx->store, r->cfg.partition, ca_ids[i], &c) != STORE_OK)
            continue;
        X509 *cx = strcmp(c.status, "active") == 0 ? ca_cert(&c) : NULL;
        int64_t pk = c.pk;
        ca_rec_free(&c);
        if (!cx)
            continue;
        if (X509_STORE_add_cert(st, cx) != 1) {
            X509_free(cx);
            ERR_clear_error(); /* the same CA listed twice */
            continue;
        }
        cas[ncas] = cx;
        pks[ncas++] = pk;
    }
    if (ncas == 0) {
        snprintf(why, wn, "no trusted CA is available for client certificates");
        goto out;
    }
    if (X509_STORE_CTX_init(sc, st, x, NULL) != 1) {
        snprintf(why, wn, "out of memory");
        goto out;
    }
    /* The issuing CA itself is the trust anchor (it may be a subordinate). */
    X509_STORE_CTX_set_flags(sc, X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_verify_cert(sc) != 1) {
        snprintf(why, wn, "the TLS client certificate is not trusted: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
        goto out;
    }
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(sc);
    X509 *issuer = chain && sk_X509_num(chain) >= 2 ? sk_X509_value(chain, 1) : NULL;
    int64_t issuer_pk = -1;
    for (size_t i = 0; issuer && i < ncas; i++)
        if (X509_cmp(issuer, cas[i]) == 0)
            issuer_pk = pks[i];
    if (issuer_pk < 0 || X509_check_ca(x) != 0) {
        snprintf(why, wn, "the TLS client certificate must be an end-entity certificate issued by a trusted CA");
        goto out;
    }
    char norm[48];
    if (!(serial = x509_serial_hex(x)) || api_serial_norm(serial, norm, sizeof norm) != 0 ||
        ctx->store->ops->cert_get(ctx->store, r->cfg.partition, issuer_pk, norm, &cr) != STORE_OK ||
        cr.der_len != req->client_cert_len || CRYPTO_memcmp(cr.der, req->client_cert, cr.der_len) != 0) {
        snprintf(why, wn, "the TLS client certificate is not a certificate of this account");
        goto out;
    }
    if (strcmp(cr.status, "issued") != 0) {
        snprintf(why, wn, "the TLS client certificate is %s", cr.status);
        goto out;
    }
    subj = dn_print(X509_get_subject_name(x));
    snprintf(r->who, sizeof r->who, "%s", subj && *subj ? subj : norm);
    snprintf(r->cur_profile, sizeof r->cur_profile, "%s", cr.profile_id ? cr.profile_id : "");
    *leaf = x;
    x = NULL;
    rc = 0;
out:
    for (size_t i = 0; i < ncas; i++)
        X509_free(cas[i]);
    X509_STORE_CTX_free(sc);
    X509_STORE_free(st);
    X509_free(x);
    free(serial);
    free(subj);
    cert_rec_free(&cr);
    ERR_clear_error();
    return rc;
}

/* Authenticates an enrolment (simpleenroll, serverkeygen) per the
 * configuration's mode. Answers 401/403 itself. */
static int auth_enroll(struct http_req *req, struct http_resp *resp, struct est_req *r)
{
    if (!r->cert_mode)
        return auth_basic(req, resp, r);
    const char *ids[EST_TRUSTED_MAX + 1];
    size_t n = 0;
    ids[n++] = r->cfg.ca_id;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(r->cfg.doc, "trustedCaIds"), i, s) {
        if (n < EST_TRUSTED_MAX + 1 && json_is_string(s))
            ids[n++] = json_string_value(s);
    }
    X509 *leaf = NULL;
    char why[256];
    if (verify_client_cert(req, r, ids, n, &leaf, why, sizeof why) != 0) {
        text_error(resp, 403, "client certificate authentication failed: %s", why);
        return -1;
    }
    /* a credential for a new enrolment is a client-authentication
     * certificate (extendedKeyUsage clientAuth, or none): a TLS server's or
     * an S/MIME certificate of the same CA is not one */
    int purpose = X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0);
    X509_free(leaf);
    if (purpose != 1) {
        text_error(resp, 403,
                   "client certificate authentication failed: the certificate is not for TLS client authentication "
                   "(its extendedKeyUsage lacks clientAuth)");
        return -1;
    }
    return 0;
}

/* ---- request body ------------------------------------------------------- */

/* The PKCS#10 request of the body (base64 DER), signature verified. DER in
 * *der (caller frees). Answers 400/415 itself. */
static X509_REQ *body_csr(struct http_req *req, struct http_resp *resp, unsigned char **der, size_t *dl)
{
    X509_REQ *csr = NULL;
    struct err e;
    *der = NULL;
    *dl = 0;
    const char *ct = http_header(req, "Content-Type");
    if (ct) {
        while (*ct == ' ')
            ct++;
        size_t k = strlen("application/pkcs10");
        if (strncasecmp(ct, "application/pkcs10", k) != 0 || (ct[k] && ct[k] != ';' && ct[k] != ' ')) {
            text_error(resp, 415, "Content-Type must be application/pkcs10 (base64 DER PKCS#10)");
            goto out;
        }
    }
    if (req->body.len == 0) {
        text_error(resp, 400, "empty body: expected a base64 DER PKCS#10 certification request");
        goto out;
    }
    if (req->body.len > EST_BODY_MAX || req->body_truncated) {
        text_error(resp, 413, "body too large: a PKCS#10 request is at most %d bytes", CSR_MAX);
        goto out;
    }
    if (b64_decode((const char *)req->body.data, req->body.len, der, dl) != 0) {
        text_error(resp, 400, "malformed base64: the body must be base64 (RFC 4648, line breaks allowed) of a DER "
                              "PKCS#10 request");
        goto out;
    }
    if (*dl == 0 || (*der)[0] != 0x30) {
        text_error(resp, 400, "malformed PKCS#10: the decoded body is not a DER certification request");
        goto out;
    }
    memset(&e, 0, sizeof e);
    if (!(csr = csr_parse(*der, *dl, &e))) {
        const char *m = strncmp(e.msg, "csr: ", 5) == 0 ? e.msg + 5 : e.msg;
        text_error(resp, 400, "malformed PKCS#10: %s", m);
        goto out;
    }
out:
    if (!csr) {
        free(*der);
        *der = NULL;
        *dl = 0;
    }
    return csr;
}

/* The subjectAltName names of a CSR: 0 with *out (NULL when absent), -1
 * when the extension cannot be decoded. */
/* ---- server-side key generation ----------------------------------------- */

/* The key to generate: the CSR key's type when the profile accepts it, else
 * the first of EC P-256, RSA-2048, EC P-384, RSA-3072, EC P-521, RSA-4096
 * that it does. */
static const char *keygen_type(const struct profile *p, X509_REQ *csr)
{
    static const unsigned pref[] = {KT_EC256, KT_RSA2048, KT_EC384, KT_RSA3072, KT_EC521, KT_RSA4096};
    unsigned kt = profile_key_type(X509_REQ_get0_pubkey(csr));
    if (kt && (p->key_types & kt) && profile_key_type_name(kt))
        return profile_key_type_name(kt);
    for (size_t i = 0; i < sizeof pref / sizeof pref[0]; i++)
        if (p->key_types & pref[i])
            return profile_key_type_name(pref[i]);
    return NULL;
}

/* The unencrypted PKCS#8 PrivateKeyInfo (DER) of the key in a PKCS#12. */
static int p12_key_pkcs8(const unsigned char *p12der, size_t n, const char *pass, unsigned char **der, size_t *dl)
{
    const unsigned char *q = p12der;
    PKCS12 *p12 = n <= LONG_MAX ? d2i_PKCS12(NULL, &q, (long)n) : NULL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *ca = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    int rc = -1;
    *der = NULL;
    if (!p12 || PKCS12_parse(p12, pass, &key, &cert, &ca) != 1 || !key || !(p8 = EVP_PKEY2PKCS8(key)))
        goto out;
    int l = i2d_PKCS8_PRIV_KEY_INFO(p8, der);
    if (l <= 0) {
        *der = NULL;
        goto out;
    }
    *dl = (size_t)l;
    rc = 0;
out:
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(key);
    X509_free(cert);
    sk_X509_pop_free(ca, X509_free);
    PKCS12_free(p12);
    ERR_clear_error();
    return rc;
}

/* multipart/mixed (RFC 7030 4.4.2): the key, then the certificate. Built
 * in one allocation so no reallocated copy of the key is left behind. */
static int keygen_body(const unsigned char *key, size_t kl, X509 *cert, unsigned char **out, size_t *outlen)
{
    static const char h1[] = "--" BOUNDARY "\r\nContent-Type: application/pkcs8\r\n"
                             "Content-Transfer-Encoding: base64\r\n\r\n";
    static const char h2[] = "--" BOUNDARY "\r\nContent-Type: " CT_CERTS "\r\n"
                             "Content-Transfer-Encoding: base64\r\n\r\n";
    static const char end[] = "--" BOUNDARY "--\r\n";
    STACK_OF(X509) *sk = sk_X509_new_null();
    char *kb = NULL, *cb = NULL;
    size_t kbl = 0, cbl = 0;
    unsigned char *p = NULL;
    int rc = -1;
    if (!sk || !sk_X509_push(sk, cert) || !(kb = b64_lines(key, kl, &kbl)) || !(cb = certs_only_b64(sk, &cbl)))
        goto out;
    size_t total = sizeof h1 - 1 + kbl + sizeof h2 - 1 + cbl + sizeof end - 1, o = 0;
    if (!(p = malloc(total)))
        goto out;
    memcpy(p + o, h1, sizeof h1 - 1);
    o += sizeof h1 - 1;
    memcpy(p + o, kb, kbl);
    o += kbl;
    memcpy(p + o, h2, sizeof h2 - 1);
    o += sizeof h2 - 1;
    memcpy(p + o, cb, cbl);
    o += cbl;
    memcpy(p + o, end, sizeof end - 1);
    *out = p;
    *outlen = total;
    rc = 0;
out:
    if (kb) {
        OPENSSL_cleanse(kb, kbl);
        free(kb);
    }
    free(cb);
    sk_X509_free(sk); /* the certificate is the caller's */
    return rc;
}

/* ---- enrolment ---------------------------------------------------------- */

enum est_op { EST_ENROLL, EST_REENROLL, EST_KEYGEN };

static void enroll(struct http_req *req, struct http_resp *resp, enum est_op op)
{
    struct api_ctx *ctx = req->app;
    struct est_req r;
    struct issue_result res;
    struct err e;
    X509_REQ *csr = NULL;
    X509 *cur = NULL, *issued = NULL;
    const struct profile *prof = NULL;
    unsigned char *der = NULL, *p8 = NULL, *body = NULL;
    size_t dl = 0, p8l = 0, bl = 0;
    char *pass = NULL;
    char why[256];
    memset(&res, 0, sizeof res);
    memset(&e, 0, sizeof e);
    if (est_begin(req, resp, &r) != 0)
        goto out;
    if (!req->https) {
        text_error(resp, 403, "EST enrolment is served over HTTPS only");
        goto out;
    }
    if (op == EST_REENROLL) {
        const char *ids[1] = {r.cfg.ca_id};
        if (verify_client_cert(req, &r, ids, 1, &cur, why, sizeof why) != 0) {
            text_error(resp, 403, "re-enrolment needs the certificate being renewed as TLS client certificate: %s",
                       why);
            goto out;
        }
    } else if (auth_enroll(req, resp, &r) != 0) {
        goto out;
    }
    if (est_rate_limited(req, resp, &r, CAP_CERT))
        goto out;
    if (!(csr = body_csr(req, resp, &der, &dl)))
        goto out;
    if (op == EST_REENROLL && csr_names_match_cert(csr, cur, true, why, sizeof why) != 0) {
        text_error(resp, 400, "%s", why);
        goto out;
    }
    /* re-enrolment renews a certificate as what it is: one issued under
     * this configuration's profile, not any certificate of the CA turned
     * into this profile's kind (another EKU) */
    if (op == EST_REENROLL && (!r.cur_profile[0] || strcmp(r.cur_profile, r.cfg.profile_id) != 0)) {
        text_error(resp, 403, "re-enrolment renews certificates of profile '%s'; this one is of profile '%s'",
                   r.cfg.profile_id, r.cur_profile[0] ? r.cur_profile : "(none)");
        goto out;
    }
    char who[EST_REQUESTER_MAX + 64];
    snprintf(who, sizeof who, "est:%s/%s", r.cfg.id, r.who);
    struct issue_req ir = {
        .partition = r.cfg.partition,
        .ca_id = r.cfg.ca_id,
        .profile_id = r.cfg.profile_id,
        .requester = who,
        .requester_ip = req->ip,
    };
    if (op == EST_KEYGEN) {
        if (!(prof = profile_resolve(ctx->store, r.cfg.partition, r.cfg.profile_id, &e))) {
            text_error(resp, e.status >= 500 ? 503 : 409, "the configuration's profile is not available");
            goto out;
        }
        if (!(ir.key_type = keygen_type(prof, csr))) {
            text_error(resp, 409, "profile '%s' accepts no key type the server can generate", prof->id);
            goto out;
        }
        /* RFC 7030 4.4.1.1/4.4.1.2: the client asks for the key encrypted
         * beyond TLS. Not offered; never answered in clear instead. */
        ASN1_OBJECT *dk = OBJ_txt2obj("1.2.840.113549.1.9.16.2.37", 1),  /* id-aa-decryptKeyID */
            *adk = OBJ_txt2obj("1.2.840.113549.1.9.16.2.54", 1);         /* id-aa-asymmDecryptKeyID */
        bool wants_encrypted = (dk && X509_REQ_get_attr_by_OBJ(csr, dk, -1) >= 0) ||
                               (adk && X509_REQ_get_attr_by_OBJ(csr, adk, -1) >= 0);
        ASN1_OBJECT_free(dk);
        ASN1_OBJECT_free(adk);
        if (wants_encrypted) {
            text_error(resp, 501,
                       "the request asks for the private key encrypted (DecryptKeyIdentifier / "
                       "AsymmetricDecryptKeyIdentifier), which this server does not offer: ask without it (the key "
                       "is then protected by TLS)");
            goto out;
        }
        if (!(pass = random_token(24))) {
            text_error(resp, 503, "random source failed, retry later");
            goto out;
        }
        /* RFC 7030 4.4.1: the CSR is treated as for simpleenroll (names and
         * extensions, with the same profile rules); only its key is not */
        ir.subject_name = X509_REQ_get_subject_name(csr);
        ir.template_csr = csr;
        ir.p12_password = pass;
    } else {
        ir.csr = der;
        ir.csr_len = dl;
    }
    if (issue_certificate(&ctx->env, &ir, &res, &e) != 0) {
        if (e.status >= 400 && e.status < 500)
            text_error(resp, e.status, "enrolment refused: %s", e.msg);
        else
            text_error(resp, 500, "the certificate could not be issued (internal error)");
        goto out;
    }
    const unsigned char *q = res.der;
    if (!(issued = d2i_X509(NULL, &q, (long)res.der_len))) {
        text_error(resp, 500, "internal error");
        goto out;
    }
    if (op == EST_KEYGEN) {
        if (p12_key_pkcs8(res.p12, res.p12_len, pass, &p8, &p8l) != 0 ||
            keygen_body(p8, p8l, issued, &body, &bl) != 0) {
            text_error(resp, 500, "internal error");
            goto out;
        }
        resp_take(resp, 200, ct_multipart, body, bl);
        body = NULL;
    } else {
        STACK_OF(X509) *sk = sk_X509_new_null();
        size_t n = 0;
        char *b = sk && sk_X509_push(sk, issued) ? certs_only_b64(sk, &n) : NULL;
        sk_X509_free(sk);
        if (!b) {
            text_error(resp, 500, "internal error");
            goto out;
        }
        reply_b64(resp, ct_certs, b, n);
    }
out:
    if (p8) {
        OPENSSL_cleanse(p8, p8l);
        OPENSSL_free(p8);
    }
    if (pass) {
        OPENSSL_cleanse(pass, strlen(pass));
        free(pass);
    }
    free(body);
    free(der);
    X509_REQ_free(csr);
    X509_free(cur);
    X509_free(issued);
    profile_release(prof);
    issue_result_free(&res);
    est_req_free(&r);
}

static void h_simpleenroll(struct http_req *req, struct http_resp *resp)
{
    enroll(req, resp, EST_ENROLL);
}

static void h_simplereenroll(struct http_req *req, struct http_resp *resp)
{
    enroll(req, resp, EST_REENROLL);
}

static void h_serverkeygen(struct http_req *req, struct http_resp *resp)
{
    enroll(req, resp, EST_KEYGEN);
}

/* ---- cacerts and csrattrs ------------------------------------------------ */

static void h_cacerts(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct est_req r;
    struct ca_rec c;
    STACK_OF(X509) *chain = NULL;
    memset(&c, 0, sizeof c);
    if (est_begin(req, resp, &r) != 0 || est_rate_limited(req, resp, &r, CAP_OTHER))
        goto out;
    int s = ctx->store->ops->ca_get(ctx->store, r.cfg.partition, r.cfg.ca_id, &c);
    if (s != STORE_OK && s != STORE_ENOTFOUND) {
        text_error(resp, 503, "the EST service is unavailable, retry later");
        goto out;
    }
    if (s != STORE_OK || strcmp(c.status, "active") != 0) {
        text_error(resp, 404, "the CA of EST configuration '%s' is not active", r.cfg.id);
        goto out;
    }
    if (!(chain = ca_chain(&ctx->env, &c))) {
        text_error(resp, 503, "the CA chain is unavailable, retry later");
        goto out;
    }
    size_t n = 0;
    char *b = certs_only_b64(chain, &n);
    if (!b) {
        text_error(resp, 500, "internal error");
        goto out;
    }
    reply_b64(resp, ct_certs, b, n);
out:
    sk_X509_pop_free(chain, X509_free);
    ca_rec_free(&c);
    est_req_free(&r);
}

/* DER TLV with a definite length (contents < 64 KiB). */
static int der_put(struct buf *b, unsigned char tag, const void *c, size_t n)
{
    unsigned char h[4];
    size_t hl = 0;
    h[hl++] = tag;
    if (n < 0x80) {
        h[hl++] = (unsigned char)n;
    } else if (n < 0x100) {
        h[hl++] = 0x81;
        h[hl++] = (unsigned char)n;
    } else if (n < 0x10000) {
        h[hl++] = 0x82;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    } else {
        return -1;
    }
    return buf_append(b, h, hl) || (n && buf_append(b, c, n)) ? -1 : 0;
}

static int der_oid(struct buf *b, const char *dotted)
{
    ASN1_OBJECT *o = OBJ_txt2obj(dotted, 1);
    unsigned char *d = NULL;
    int n = o ? i2d_ASN1_OBJECT(o, &d) : -1;
    int rc = n > 0 && buf_append(b, d, (size_t)n) == 0 ? 0 : -1;
    OPENSSL_free(d);
    ASN1_OBJECT_free(o);
    return rc;
}

/* Attribute ::= SEQUENCE { type OID, values SET { value } } with the value
 * given as DER. */
static int der_attr(struct buf *b, const char *type, const struct buf *value)
{
    struct buf set, seq;
    buf_init(&set, 0);
    buf_init(&seq, 0);
    int rc = der_put(&set, 0x31, value->data, value->len) || der_oid(&seq, type) ||
                     buf_append(&seq, set.data, set.len) || der_put(b, 0x30, seq.data, seq.len)
                 ? -1
                 : 0;
    buf_free(&set);
    buf_free(&seq);
    return rc;
}

/* CsrAttrs (RFC 7030 4.5.2) from the profile: the signature algorithm and
 * key the server prefers (EC P-256 over RSA when both are accepted), as
 * OIDs and an Attribute naming the curve or the RSA modulus size. */
static int csrattrs_der(const struct profile *p, struct buf *out)
{
    struct buf items, v;
    int rc = -1;
    buf_init(&items, 0);
    buf_init(&v, 0);
    unsigned kt = p ? p->key_types : 0;
    if (kt & (KT_EC256 | KT_EC384 | KT_EC521)) {
        const char *sig = kt & KT_EC256 ? "1.2.840.10045.4.3.2" : kt & KT_EC384 ? "1.2.840.10045.4.3.3"
                                                                                 : "1.2.840.10045.4.3.4";
        const char *curve = kt & KT_EC256 ? "1.2.840.10045.3.1.7" : kt & KT_EC384 ? "1.3.132.0.34" : "1.3.132.0.35";
        if (der_oid(&items, sig) || der_oid(&v, curve) || der_attr(&items, "1.2.840.10045.2.1", &v))
            goto out;
    } else if (kt & (KT_RSA2048 | KT_RSA3072 | KT_RSA4096)) {
        unsigned bits = kt & KT_RSA2048 ? 2048 : kt & KT_RSA3072 ? 3072 : 4096;
        unsigned char n[2] = {(unsigned char)(bits >> 8), (unsigned char)bits};
        if (der_oid(&items, "1.2.840.113549.1.1.11") || der_put(&v, 0x02, n, sizeof n) ||
            der_attr(&items, "1.2.840.113549.1.1.1", &v))
            goto out;
    }
    if (der_put(out, 0x30, items.data, items.len))
        goto out;
    rc = 0;
out:
    buf_free(&items);
    buf_free(&v);
    return rc;
}

static void h_csrattrs(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct est_req r;
    struct err e;
    struct buf der;
    const struct profile *p = NULL;
    buf_init(&der, 0);
    memset(&e, 0, sizeof e);
    if (est_begin(req, resp, &r) != 0 || est_rate_limited(req, resp, &r, CAP_OTHER))
        goto out;
    p = profile_resolve(ctx->store, r.cfg.partition, r.cfg.profile_id, &e); /* NULL: an empty list */
    size_t n = 0;
    char *b = csrattrs_der(p, &der) == 0 ? b64_lines(der.data, der.len, &n) : NULL;
    if (!b) {
        text_error(resp, 500, "internal error");
        goto out;
    }
    reply_b64(resp, ct_csrattrs, b, n);
out:
    profile_release(p);
    buf_free(&der);
    est_req_free(&r);
}

/* ---- routes -------------------------------------------------------------- */

#define E "/.well-known/est/{}"
const struct route est_routes[] = {
    {"GET", E "/cacerts", h_cacerts, CAP_OTHER},
    {"POST", E "/simpleenroll", h_simpleenroll, CAP_OTHER, LIMIT_EST_BODY_BYTES},
    {"POST", E "/simplereenroll", h_simplereenroll, CAP_OTHER, LIMIT_EST_BODY_BYTES},
    {"POST", E "/serverkeygen", h_serverkeygen, CAP_OTHER, LIMIT_EST_BODY_BYTES},
    {"GET", E "/csrattrs", h_csrattrs, CAP_OTHER},
};
const size_t est_routes_count = sizeof est_routes / sizeof est_routes[0];
