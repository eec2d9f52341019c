#include "api/api.h"
#include "api/api_json.h"

#include "authz/authz.h"
#include "ca/ca_cache.h"
#include "ca/issue.h"
#include "ca/ocsp.h"
#include "util/log.h"
#include "crypto/keyspec.h"
#include "util/codec.h"
#include "util/json_util.h"
#include "util/timeutil.h"
#include "x509/dn.h"
#include "x509/ext.h"
#include "x509/san.h"

#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 500

static const char *const reasons[] = {"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
                                      "superseded", "cessationOfOperation", "certificateHold", NULL,
                                      "removeFromCRL", "privilegeWithdrawn", "aACompromise"};

static int reason_code(const char *name)
{
    for (int i = 0; i < (int)(sizeof reasons / sizeof reasons[0]); i++)
        if (reasons[i] && strcmp(reasons[i], name) == 0 && i != 6 && i != 8)
            return i;
    return -1;
}

static bool serial_valid(const char *s)
{
    size_t n = strlen(s);
    return n >= 2 && n <= 42 && strspn(s, "0123456789abcdef") == n;
}

void api_cert_issue(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct issue_req ir;
    struct issue_result res;
    struct jerr je;
    struct err e;
    static const char *const keys[] = {"profileId", "csr", "keyType", "p12Password", "subject", "useSubjectFromCsr",
                                       "subjectAltNames", "useCsrSubjectAltNames", "extensions", "validityPeriod",
                                       "notBefore", "notAfter", NULL};
    json_t *body = NULL;
    const char *csr = NULL;
    bool use_csr_subject = false, use_csr_sans = true;
    memset(&ir, 0, sizeof ir);
    memset(&res, 0, sizeof res);
    if (api_auth(req, resp, req->params[0], OP_CERT_BROWSE, &p) != 0 || !(body = api_body_object(req, resp)))
        return;
    if (jcheck_keys(body, keys, &je) || jget_str(body, "profileId", 64, &ir.profile_id, &je) ||
        jget_str(body, "csr", 65536, &csr, &je) || jget_str(body, "keyType", 16, &ir.key_type, &je) ||
        jget_str(body, "p12Password", 512 /* bytes: 128 characters of up to 4 */, &ir.p12_password, &je) ||
        jget_str(body, "subject", 8192, &ir.subject, &je) ||
        jget_bool(body, "useSubjectFromCsr", &use_csr_subject, &je) ||
        jget_str(body, "validityPeriod", 32, &ir.validity_period, &je) ||
        jget_str(body, "notBefore", 40, &ir.not_before, &je) ||
        jget_str(body, "notAfter", 40, &ir.not_after, &je) ||
        jget_bool(body, "useCsrSubjectAltNames", &use_csr_sans, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    ir.ignore_csr_sans = !use_csr_sans;
    if (api_require(req, resp, &p, ir.key_type ? OP_CERT_ISSUE_P12 : OP_CERT_ISSUE_CSR) != 0)
        goto out;
    if (use_csr_subject && ir.subject) {
        resp_error(resp, 400, "invalid_field", "subject", "subject: give either subject or useSubjectFromCsr");
        goto out;
    }
    ir.partition = p.partition;
    ir.ca_id = req->params[1];
    if (csr) {
        ir.csr = (const unsigned char *)csr;
        ir.csr_len = strlen(csr);
    }
    ir.sans = json_object_get(body, "subjectAltNames");
    ir.extensions = json_object_get(body, "extensions");
    ir.requester = p.actor;
    ir.requester_ip = p.ip;
    if (issue_certificate(&ctx->env, &ir, &res, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    json_t *chain = json_array();
    for (int i = 0; i < sk_X509_num(res.chain); i++)
        json_array_append_new(chain, res.ca && res.ca->chain_pem ? json_string(res.ca->chain_pem[i])
                                                                 : jtake(pem_x509(sk_X509_value(res.chain, i))));
    json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:b}", "serialNumber", res.serial, "status", "issued",
                          "certificate", jtake(pem_der("CERTIFICATE", res.der, res.der_len)), "chain", chain,
                          "notBefore", jtime(res.not_before), "notAfter", jtime(res.not_after), "validityCapped",
                          res.capped);
    if (o && res.p12) {
        char *b64 = b64_encode(res.p12, res.p12_len);
        json_object_set_new(o, "pkcs12", jtake(b64));
    }
    resp_json(resp, 201, o);
out:
    issue_result_free(&res);
    json_decref(body);
}

static json_t *summary_json(const struct cert_rec *c)
{
    return json_pack("{s:s,s:s,s:s,s:s?,s:o,s:o,s:s?,s:b,s:s?}", "serialNumber", c->serial, "status", c->status,
                     "subject", c->subject ? c->subject : "", "subjectAltNames", c->sans, "notBefore",
                     jtime(c->not_before), "notAfter", jtime(c->not_after), "profileId", c->profile_id, "isCa",
                     c->is_ca, "requester", c->requester);
}

void api_cert_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_rec c;
    struct cert_query q;
    struct cert_list l;
    char serial[48] = "", cursor_serial[48] = "";
    memset(&q, 0, sizeof q);
    if (api_auth(req, resp, req->params[0], OP_CERT_BROWSE, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, false) != 0)
        return;
    const char *status = http_query(req, "status"), *limit = http_query(req, "limit");
    const char *within = http_query(req, "expiresWithin"), *expired = http_query(req, "expired");
    const char *ser = http_query(req, "serial"), *cursor = http_query(req, "cursor"), *text = http_query(req, "q");
    const char *inc = http_query(req, "includeCa");
    int64_t now = time_now();
    if (status && strcmp(status, "issued") != 0 && strcmp(status, "revoked") != 0 && strcmp(status, "suspended") != 0) {
        resp_error(resp, 400, "invalid_field", "status", "status: must be issued, revoked or suspended");
        goto out;
    }
    q.status = status;
    q.profile_id = http_query(req, "profile");
    if (text && strlen(text) > 256) {
        resp_error(resp, 400, "invalid_field", "q", "q: at most 256 characters");
        goto out;
    }
    q.text = text && *text ? text : NULL;
    if (ser) {
        if (api_serial_norm(ser, serial, sizeof serial) != 0) {
            resp_error(resp, 400, "invalid_field", "serial", "serial: hexadecimal (':' separators allowed)");
            goto out;
        }
        q.serial = serial;
    }
    if (within) {
        if (strcmp(within, "7") != 0 && strcmp(within, "30") != 0) {
            resp_error(resp, 400, "invalid_field", "expiresWithin", "expiresWithin: 7 or 30 (days)");
            goto out;
        }
        q.expires_after = now;
        q.expires_before = now + atoi(within) * 86400LL;
    }
    if (expired && strcmp(expired, "true") != 0 && strcmp(expired, "false") != 0) {
        resp_error(resp, 400, "invalid_field", "expired", "expired: true or false");
        goto out;
    }
    if (expired && strcmp(expired, "true") == 0) {
        if (within) {
            resp_error(resp, 400, "invalid_field", "expired", "expired: not together with expiresWithin");
            goto out;
        }
        q.expires_before = now;
        q.expires_after = 0;
    }
    q.limit = 50;
    if (limit) {
        char *end = NULL;
        long v = strtol(limit, &end, 10);
        if (!end || *end || v < 1 || v > LIST_MAX) {
            resp_error(resp, 400, "invalid_field", "limit", "limit: 1-%d", LIST_MAX);
            goto out;
        }
        q.limit = (unsigned)v;
    }
    if (cursor && api_cert_cursor_parse(cursor, &q, cursor_serial, sizeof cursor_serial) != 0) {
        resp_error(resp, 400, "invalid_field", "cursor", "cursor: not a value returned as nextCursor");
        goto out;
    }
    q.include_ca = !inc || strcmp(inc, "false") != 0;
    unsigned want = q.limit;
    q.limit = want + 1; /* one more tells whether there is a next page */
    if (ctx->store->ops->cert_list(ctx->store, p.partition, c.pk, &q, &l) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n && i < want; i++)
        json_array_append_new(arr, summary_json(&l.items[i]));
    json_t *next = api_cert_next_cursor(&l, want);
    cert_list_free(&l);
    resp_json(resp, 200, json_pack("{s:o,s:o}", "certificates", arr, "nextCursor", next));
out:
    ca_rec_free(&c);
}

int api_cert_cursor_parse(const char *cursor, struct cert_query *q, char *serial_buf, size_t n)
{
    /* cursor = "<notAfter>.<serial>" from a previous page */
    const char *dot = strchr(cursor, '.');
    char *end = NULL;
    long long na = dot ? strtoll(cursor, &end, 10) : -1;
    if (!dot || end != dot || na < 0 || strlen(dot + 1) >= n)
        return -1;
    snprintf(serial_buf, n, "%s", dot + 1);
    if (!serial_valid(serial_buf))
        return -1;
    q->cursor_not_after = na;
    q->cursor_serial = serial_buf;
    return 0;
}

json_t *api_cert_next_cursor(const struct cert_list *l, unsigned want)
{
    char cur[80];
    if (want == 0 || l->n <= want)
        return json_null();
    snprintf(cur, sizeof cur, "%lld.%s", (long long)l->items[want - 1].not_after, l->items[want - 1].serial);
    return json_string(cur);
}

/* Serial as the store keeps it: lowercase hex of the DER INTEGER content,
 * even length, "00" before a first nibble >= 8. Accepts upper/lower case,
 * any number of leading zeros and ':' separators. */
int api_serial_norm(const char *in, char *out, size_t n)
{
    char t[160];
    size_t k = 0;
    if (!in || strlen(in) >= sizeof t)
        return -1;
    for (const char *s = in; *s; s++) {
        char ch = *s;
        if (ch == ':')
            continue;
        if (ch >= 'A' && ch <= 'F')
            ch = (char)(ch - 'A' + 'a');
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return -1;
        t[k++] = ch;
    }
    t[k] = 0;
    const char *p = t;
    while (*p == '0')
        p++;
    size_t len = strlen(p);
    /* odd length: one nibble of padding (its byte is then < 0x10, positive);
     * a first byte >= 0x80 needs the 00 sign octet */
    const char *pad = len == 0 ? "00" : (len % 2) ? "0" : (*p >= '8' ? "00" : "");
    if (strlen(pad) + len + 1 > n || strlen(pad) + len > 42)
        return -1;
    snprintf(out, n, "%s%s", pad, p);
    return 0;
}

static int load_cert(struct http_req *req, struct http_resp *resp, const struct ca_rec *c, struct cert_rec *cr)
{
    struct api_ctx *ctx = req->app;
    char serial[48];
    int s = api_serial_norm(req->params[2], serial, sizeof serial) == 0
                ? ctx->store->ops->cert_get(ctx->store, c->partition_id, c->pk, serial, cr)
                : STORE_ENOTFOUND;
    if (s == STORE_OK)
        return 0;
    if (s == STORE_ENOTFOUND)
        resp_error(resp, 404, "not_found", "serial", "no certificate %.48s issued by CA '%s'", req->params[2], c->id);
    else
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
    return -1;
}

static json_t *cert_detail(const struct cert_rec *cr)
{
    const unsigned char *p = cr->der;
    X509 *x = d2i_X509(NULL, &p, (long)cr->der_len);
    json_t *o = summary_json(cr);
    char buf[512];
    if (!o || !x) {
        X509_free(x);
        return o;
    }
    json_object_set_new(o, "issuer", jtake(dn_print(X509_get_issuer_name(x))));
    json_object_set_new(o, "statusComment", cr->status_comment ? json_string(cr->status_comment) : json_null());
    GENERAL_NAMES *gn = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    json_object_set_new(o, "subjectAltNames", san_to_json(gn));
    GENERAL_NAMES_free(gn);
    keyspec_describe_key(X509_get0_pubkey(x), buf, sizeof buf);
    json_object_set_new(o, "publicKeyType", json_string(buf));
    int mdnid = NID_undef, pknid = NID_undef;
    const X509_ALGOR *alg = NULL;
    X509_get0_signature(NULL, &alg, x);
    int signid = alg ? OBJ_obj2nid(alg->algorithm) : NID_undef;
    X509_get_signature_info(x, &mdnid, &pknid, NULL, NULL);
    if (signid == NID_rsassaPss)
        snprintf(buf, sizeof buf, "%sWithRSAPSS", mdnid == NID_sha512 ? "sha512" : mdnid == NID_sha384 ? "sha384"
                                                                                                     : "sha256");
    else
        snprintf(buf, sizeof buf, "%s", signid != NID_undef ? OBJ_nid2ln(signid) : "unknown");
    json_object_set_new(o, "signatureAlgorithm", json_string(buf));
    x509_ku_names(x, buf, sizeof buf);
    json_t *ku = json_array();
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(ku, json_string(t));
    json_object_set_new(o, "keyUsages", ku);
    api_json_cert_urls(o, x);
    json_t *ekus = json_array();
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku); i++) {
        OBJ_obj2txt(buf, sizeof buf, sk_ASN1_OBJECT_value(eku, i), 1);
        json_array_append_new(ekus, json_string(buf));
    }
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    json_object_set_new(o, "extendedKeyUsages", ekus);
    long pl = X509_get_pathlen(x);
    json_object_set_new(o, "basicConstraints", json_pack("{s:b,s:o}", "ca", X509_check_ca(x) >= 1, "pathLength",
                                                         pl >= 0 ? json_integer(pl) : json_null()));
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x), *ski = X509_get0_subject_key_id(x);
    json_object_set_new(o, "authorityKeyIdentifier",
                        aki ? jtake(hex_encode(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki)))
                            : json_null());
    json_object_set_new(o, "subjectKeyIdentifier",
                        ski ? jtake(hex_encode(ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski)))
                            : json_null());
    json_object_set_new(o, "sha256Fingerprint", jtake(x509_fingerprint_sha256(x)));
    json_object_set_new(o, "revocationReason",
                        cr->revocation_reason >= 0 &&
                                (size_t)cr->revocation_reason < sizeof reasons / sizeof reasons[0] &&
                                reasons[cr->revocation_reason]
                            ? json_string(reasons[cr->revocation_reason])
                            : json_null());
    json_object_set_new(o, "revokedAt", jtime(cr->revoked_at));
    json_object_set_new(o, "invalidityDate", jtime(cr->invalidity_date));
    json_object_set_new(o, "requester", json_string(cr->requester ? cr->requester : ""));
    json_object_set_new(o, "createdAt", jtime(cr->created_at));
    X509_free(x);
    return o;
}

void api_cert_get(struct http_req *req, struct http_resp *resp)
{
    struct principal p;
    struct ca_rec c;
    struct cert_rec cr;
    if (api_auth(req, resp, req->params[0], OP_CERT_BROWSE, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, false) != 0)
        return;
    if (load_cert(req, resp, &c, &cr) == 0) {
        resp_json(resp, 200, cert_detail(&cr));
        cert_rec_free(&cr);
    }
    ca_rec_free(&c);
}

void api_cert_download(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_rec c;
    struct cert_rec cr;
    X509 *x = NULL;
    STACK_OF(X509) *chain = NULL;
    BIO *b = NULL;
    PKCS7 *p7 = NULL;
    if (api_auth(req, resp, req->params[0], OP_CERT_DOWNLOAD, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, false) != 0)
        return;
    if (load_cert(req, resp, &c, &cr) != 0) {
        ca_rec_free(&c);
        return;
    }
    const char *fmt = http_query(req, "format");
    const unsigned char *q = cr.der;
    if (!fmt || strcmp(fmt, "pem") == 0 || strcmp(fmt, "chain") == 0 || strcmp(fmt, "pkcs7") == 0) {
        if (!(x = d2i_X509(NULL, &q, (long)cr.der_len)) || !(b = BIO_new(BIO_s_mem())))
            goto fail;
        bool with_chain = fmt && (strcmp(fmt, "chain") == 0 || strcmp(fmt, "pkcs7") == 0);
        if (with_chain && !(chain = ca_chain(&ctx->env, &c)))
            goto fail;
        if (fmt && strcmp(fmt, "pkcs7") == 0) {
            STACK_OF(X509) *all = sk_X509_new_null();
            if (!all || !sk_X509_push(all, x)) {
                sk_X509_free(all);
                goto fail;
            }
            for (int i = 0; i < sk_X509_num(chain); i++)
                sk_X509_push(all, sk_X509_value(chain, i));
            p7 = PKCS7_new();
            int ok = p7 && PKCS7_set_type(p7, NID_pkcs7_signed) == 1 && PKCS7_content_new(p7, NID_pkcs7_data) == 1;
            for (int i = 0; ok && i < sk_X509_num(all); i++)
                ok = PKCS7_add_certificate(p7, sk_X509_value(all, i)) == 1;
            sk_X509_free(all);
            unsigned char *der = NULL;
            int n = ok ? i2d_PKCS7(p7, &der) : -1;
            if (n <= 0)
                goto fail;
            resp_bytes(resp, 200, "application/pkcs7-mime", der, (size_t)n);
            OPENSSL_free(der);
            goto out;
        }
        if (PEM_write_bio_X509(b, x) != 1)
            goto fail;
        for (int i = 0; chain && i < sk_X509_num(chain); i++)
            if (PEM_write_bio_X509(b, sk_X509_value(chain, i)) != 1)
                goto fail;
        char *d = NULL;
        long n = BIO_get_mem_data(b, &d);
        resp_bytes(resp, 200, "application/x-pem-file", d, (size_t)n);
    } else if (strcmp(fmt, "der") == 0) {
        resp_bytes(resp, 200, "application/pkix-cert", cr.der, cr.der_len);
    } else {
        resp_error(resp, 400, "invalid_field", "format", "format: pem, der, chain or pkcs7");
    }
    goto out;
fail:
    resp_error(resp, 500, "internal", NULL, "cannot encode the certificate");
out:
    PKCS7_free(p7);
    BIO_free(b);
    X509_free(x);
    sk_X509_pop_free(chain, X509_free);
    cert_rec_free(&cr);
    ca_rec_free(&c);
}

bool api_comment_ok(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (*p < 0x20 || *p == 0x7f || n >= API_STATUS_COMMENT_MAX)
            return false;
    return true;
}

/* After the CA's OCSP responder certificate was revoked or suspended: a new
 * responder is issued (ocsp_responder_ensure sees the old one is no longer
 * "issued") and this node's OCSP state reloaded; other nodes find the newer
 * responder when the CA's change counter moves. */
static void replace_responder(struct api_ctx *ctx, const struct ca_rec *c)
{
    struct err oe;
    struct ca_rec full; /* with its sealed key: the caller's copy may not carry it */
    memset(&oe, 0, sizeof oe);
    struct responder_rec before, after;
    memset(&before, 0, sizeof before);
    memset(&after, 0, sizeof after);
    if (ctx->store->ops->ca_get(ctx->store, c->partition_id, c->id, &full) != STORE_OK) {
        log_error("OCSP responder of %s/%s not replaced: the CA cannot be read", c->partition_id, c->id);
        return;
    }
    (void)ctx->store->ops->responder_get(ctx->store, c->partition_id, c->pk, &before);
    if (ocsp_responder_ensure(&ctx->env, &full, &oe) != 0)
        log_error("OCSP responder of %s/%s not replaced: %s", c->partition_id, c->id, oe.msg);
    (void)ctx->store->ops->responder_get(ctx->store, c->partition_id, c->pk, &after);
    if (after.created_at != before.created_at)
        ocsp_cache_reload(ctx->ocsp, c->pk);
    responder_rec_free(&before);
    responder_rec_free(&after);
    ca_rec_free(&full);
}

int api_cert_set_status(struct api_ctx *ctx, const struct ca_rec *c, const char *serial, const char *to, int reason,
                        int64_t invalidity, const char *comment, const char *actor, const char *ip, bool publish_now,
                        struct err *e)
{
    char target[192];
    snprintf(target, sizeof target, "cert:%s/%s", c->id, serial);
    const char *action = strcmp(to, "revoked") == 0 ? "cert.revoke"
                         : strcmp(to, "suspended") == 0 ? "cert.suspend"
                                                        : "cert.unsuspend";
    if (strcmp(to, "suspended") == 0)
        reason = 6; /* certificateHold */
    else if (strcmp(to, "issued") == 0)
        reason = -1;
    struct audit_rec a = {actor, action, target,
                          reason >= 0 && (size_t)reason < sizeof reasons / sizeof reasons[0] && reasons[reason]
                              ? reasons[reason]
                              : NULL,
                          ip, NULL};
    int s = ctx->store->ops->cert_set_status(ctx->store, c->partition_id, c->pk, serial, to, reason, time_now(),
                                             invalidity, comment, &a);
    if (s == STORE_ESTATE) {
        err_set(e, 409, "conflict", "serial", "certificate %s cannot become %s from its current status", serial, to);
        return -1;
    }
    if (s == STORE_ENOTFOUND) {
        err_set(e, 404, "not_found", "serial", "no certificate %s", serial);
        return -1;
    }
    if (s != STORE_OK) {
        err_set(e, 503, "unavailable", "", "store unavailable");
        return -1;
    }
    /* the CA's OCSP responder certificate revoked or suspended (a key
     * compromise, say): a new responder signs from now on */
    if (strcmp(to, "issued") != 0 && c->ocsp_enabled && ocsp_responder_serial(&ctx->env, c, serial))
        replace_responder(ctx, c);
    /* a CA certificate: that CA stops (or resumes) issuing */
    struct cert_rec cr;
    memset(&cr, 0, sizeof cr);
    if (ctx->store->ops->cert_get(ctx->store, c->partition_id, c->pk, serial, &cr) != STORE_OK || cr.is_ca)
        ca_cache_invalidate(&ctx->env, c->partition_id);
    cert_rec_free(&cr);
    api_status_changed(ctx, c, serial, publish_now);
    return 0;
}

int api_reason_code(const char *name)
{
    return reason_code(name);
}

static void status_change(struct http_req *req, struct http_resp *resp, const char *to)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_rec c;
    struct cert_rec cr;
    json_t *body = NULL;
    int reason = -1;
    int64_t inval = 0;
    if (api_auth(req, resp, req->params[0], OP_CERT_STATUS, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, false) != 0)
        return;
    memset(&cr, 0, sizeof cr);
    if (load_cert(req, resp, &c, &cr) != 0)
        goto out;
    if (req->body.len) {
        json_error_t je;
        body = json_loadb((const char *)req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(body)) {
            resp_error(resp, 400, "invalid_json", NULL, "the body must be a JSON object");
            goto out;
        }
    }
    /* a misspelt field must not become a final revocation for another
     * reason (revoked is final) */
    static const char *const revoke_keys[] = {"reason", "invalidityDate", "comment", "publishNow", NULL};
    static const char *const other_keys[] = {"comment", "publishNow", NULL};
    struct jerr kj;
    bool publish_now = false;
    if (body && (jcheck_keys(body, strcmp(to, "revoked") == 0 ? revoke_keys : other_keys, &kj) ||
                 jget_bool(body, "publishNow", &publish_now, &kj))) {
        resp_error(resp, 400, "invalid_field", kj.field, "%s", kj.msg);
        goto out;
    }
    if (strcmp(to, "revoked") == 0) {
        const json_t *rj = json_object_get(body, "reason"), *ij = json_object_get(body, "invalidityDate");
        const char *rs = json_string_value(rj), *inv = json_string_value(ij);
        if ((rj && !json_is_null(rj) && !rs) || (ij && !json_is_null(ij) && !inv)) {
            resp_error(resp, 400, "invalid_field", rs || !rj || json_is_null(rj) ? "invalidityDate" : "reason",
                       "%s: must be a string", rs || !rj || json_is_null(rj) ? "invalidityDate" : "reason");
            goto out;
        }
        reason = rs ? reason_code(rs) : 0;
        if (reason < 0) {
            resp_error(resp, 400, "invalid_field", "reason",
                       "reason: one of unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, "
                       "cessationOfOperation, privilegeWithdrawn, aACompromise");
            goto out;
        }
        if (inv && (time_parse_rfc3339(inv, &inval) != 0 || inval > time_now() || inval <= 0)) {
            resp_error(resp, 400, "invalid_field", "invalidityDate",
                       "invalidityDate: an RFC 3339 time in the past, after 1970-01-01T00:00:00Z");
            goto out;
        }
    } else if (strcmp(to, "suspended") == 0) {
        reason = 6; /* certificateHold */
    }
    const json_t *cj = json_object_get(body, "comment");
    const char *comment = json_string_value(cj);
    if ((cj && !json_is_null(cj) && !comment) || (comment && !api_comment_ok(comment))) {
        resp_error(resp, 400, "invalid_field", "comment",
                   "comment: a string of at most %d bytes without control characters", API_STATUS_COMMENT_MAX);
        goto out;
    }
    struct err e;
    if (api_cert_set_status(ctx, &c, cr.serial, to, reason, inval, comment, p.actor, p.ip, publish_now, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    cert_rec_free(&cr);
    if (load_cert(req, resp, &c, &cr) == 0)
        resp_json(resp, 200, cert_detail(&cr));
out:
    json_decref(body);
    cert_rec_free(&cr);
    ca_rec_free(&c);
}

/* POST .../cas/{caId}/certificates/revoke-batch
 * {"serials":[...≤1000],"reason","invalidityDate","publishNow"}: the same
 * status path per certificate; one CRL publication for the whole batch
 * when asked. Answers per-serial results. */
#define BATCH_MAX 1000
void api_cert_revoke_batch(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_rec c;
    json_t *body = NULL, *results = NULL;
    if (api_auth(req, resp, req->params[0], OP_CERT_STATUS, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, false) != 0)
        return;
    if (!(body = api_body_object(req, resp)))
        goto out;
    static const char *const keys[] = {"serials", "reason", "invalidityDate", "publishNow", NULL};
    struct jerr kj;
    bool publish_now = false;
    if (jcheck_keys(body, keys, &kj) || jget_bool(body, "publishNow", &publish_now, &kj)) {
        resp_error(resp, 400, "invalid_field", kj.field, "%s", kj.msg);
        goto out;
    }
    const json_t *sa = json_object_get(body, "serials");
    if (!json_is_array(sa) || json_array_size(sa) == 0 || json_array_size(sa) > BATCH_MAX) {
        resp_error(resp, 400, "invalid_field", "serials", "serials: 1-%d serial numbers (hex)", BATCH_MAX);
        goto out;
    }
    const json_t *rj = json_object_get(body, "reason"), *ij = json_object_get(body, "invalidityDate");
    const char *rs = json_string_value(rj), *inv = json_string_value(ij);
    if ((rj && !json_is_null(rj) && !rs) || (ij && !json_is_null(ij) && !inv)) {
        const char *f = rj && !json_is_null(rj) && !rs ? "reason" : "invalidityDate";
        resp_error(resp, 400, "invalid_field", f, "%s: must be a string", f);
        goto out;
    }
    int reason = rs ? reason_code(rs) : 0;
    int64_t inval = 0;
    if (reason < 0) {
        resp_error(resp, 400, "invalid_field", "reason", "reason: an RFC 5280 revocation reason name");
        goto out;
    }
    if (inv && (time_parse_rfc3339(inv, &inval) != 0 || inval > time_now() || inval <= 0)) {
        resp_error(resp, 400, "invalid_field", "invalidityDate",
                   "invalidityDate: an RFC 3339 time in the past, after 1970-01-01T00:00:00Z");
        goto out;
    }
    size_t n = json_array_size(sa), i;
    json_t *v;
    long revoked = 0, already = 0, missing = 0, failed = 0;
    char (*norm)[48] = calloc(n, sizeof(*norm));
    const char **ptrs = calloc(n, sizeof(*ptrs));
    int *res = calloc(n, sizeof(*res));
    if (!norm || !ptrs || !res) {
        free(norm);
        free(ptrs);
        free(res);
        resp_error(resp, 500, "internal", NULL, "out of memory");
        goto out;
    }
    json_array_foreach(sa, i, v) {
        /* any case, padding and ':' separators, as the store keeps it */
        if (!json_is_string(v) || api_serial_norm(json_string_value(v), norm[i], sizeof norm[i]) != 0) {
            char f[32];
            snprintf(f, sizeof f, "serials[%zu]", i);
            resp_error(resp, 400, "invalid_field", f, "%s: a serial number in hexadecimal (':' separators allowed)",
                       f);
            free(norm);
            free(ptrs);
            free(res);
            goto out;
        }
        ptrs[i] = norm[i];
    }
    struct audit_rec a = {p.actor, "cert.revoke", "", reasons[reason], p.ip, NULL};
    if (ctx->store->ops->cert_revoke_batch(ctx->store, p.partition, c.pk, c.id, ptrs, n, reason, time_now(), inval,
                                           &a, res) != STORE_OK) {
        for (i = 0; i < n; i++)
            res[i] = 3;
    }
    results = json_array();
    static const char *const outcome[] = {"revoked", "already_revoked", "not_found", "failed"};
    json_array_foreach(sa, i, v) {
        int r = res[i] >= 0 && res[i] <= 3 ? res[i] : 3;
        revoked += r == 0;
        already += r == 1;
        missing += r == 2;
        failed += r == 3;
        json_array_append_new(results, json_pack("{s:s,s:s}", "serial", json_is_string(v) ? json_string_value(v) : "",
                                                 "result", outcome[r]));
    }
    free(norm);
    free(ptrs);
    free(res);
    if (revoked > 0) {
        /* one CRL build and one OCSP cache drop for the whole batch (and
         * the CA cache: a revoked CA certificate stops its CA issuing) */
        ocsp_cache_invalidate(ctx->ocsp, c.pk);
        ca_cache_invalidate(&ctx->env, c.partition_id);
        /* the responder's certificate may have been in the batch */
        if (c.ocsp_enabled)
            replace_responder(ctx, &c);
        api_status_changed_crl(ctx, &c, publish_now);
    }
    resp_json(resp, 200, json_pack("{s:o,s:{s:i,s:i,s:i,s:i}}", "results", results, "summary", "revoked", (int)revoked,
                                   "alreadyRevoked", (int)already, "notFound", (int)missing, "failed", (int)failed));
    results = NULL;
out:
    json_decref(results);
    json_decref(body);
    ca_rec_free(&c);
}

void api_cert_revoke(struct http_req *req, struct http_resp *resp)
{
    status_change(req, resp, "revoked");
}

void api_cert_suspend(struct http_req *req, struct http_resp *resp)
{
    status_change(req, resp, "suspended");
}

void api_cert_unsuspend(struct http_req *req, struct http_resp *resp)
{
    status_change(req, resp, "issued");
}

void api_inventory(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct inventory inv;
    if (api_auth(req, resp, req->params[0], OP_CA_BROWSE, &p) != 0)
        return;
    if (ctx->store->ops->inventory(ctx->store, p.partition, &inv) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    resp_json(resp, 200, json_pack("{s:{s:I,s:I},s:{s:I,s:I}}", "certificates", "issued", inv.certs_issued,
                                   "purchased", inv.certs_purchased, "cas", "active", inv.cas_active, "purchased",
                                   inv.cas_purchased));
}
