/* Status services over HTTP: CRL download (public), OCSP (public, POST and
 * GET), and the admin CRL endpoints. */
#include "api/api.h"

#include "authz/authz.h"
#include "ca/crl.h"
#include "ca/ocsp.h"
#include "util/codec.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void http_date(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

void api_status_changed(struct api_ctx *ctx, const struct ca_rec *ca, const char *serial, bool publish_now)
{
    ocsp_cache_changed(ctx->ocsp, &ctx->env, ca->pk, serial);
    api_status_changed_crl(ctx, ca, publish_now);
}

void api_status_changed_crl(struct api_ctx *ctx, const struct ca_rec *ca, bool publish_now)
{
    /* other nodes' OCSP and CRL caches (shared stores) see the change by
     * the CA's change counter, which the store bumped in the status
     * change's own transaction */
    if (!ca->crl_enabled)
        return;
    crl_cache_mark_dirty(ctx->crls, ca->pk, time_now());
    if (publish_now) {
        struct err e;
        memset(&e, 0, sizeof e);
        struct crl_blob *b = crl_publish_all(ctx->crls, &ctx->env, ca, &e);
        /* the change stands and the CA stays dirty, so the scheduler
         * publishes it within crl_delay_s; say why it was not at once */
        if (!b)
            log_warn("CRL %s/%s: publishing at once failed (%s); the scheduler will", ca->partition_id, ca->id,
                     e.msg);
        crl_blob_release(b);
    }
}

/* 0, -1 (no such active CA) or STORE_EIO-like -2 (the store cannot say). */
static int live_ca(struct api_ctx *ctx, const char *partition, const char *id, struct ca_rec *c)
{
    if (!ca_id_valid(id))
        return -1;
    int s = ctx->store->ops->ca_get(ctx->store, partition, id, c);
    if (s != STORE_OK)
        return s == STORE_ENOTFOUND ? -1 : -2;
    if (strcmp(c->status, "active") != 0) {
        ca_rec_free(c);
        return -1;
    }
    return 0;
}

/* "crl.crl" → CRL_FULL, "crl-<n>.crl" → shard n, else -2. */
static int crl_file_shard(const char *f)
{
    if (strcmp(f, "crl.crl") == 0)
        return CRL_FULL;
    int n = 0, used = 0;
    if (sscanf(f, "crl-%4d.crl%n", &n, &used) == 1 && (size_t)used == strlen(f) && n >= 0 && n < CRL_MAX_SHARDS) {
        char canon[32];
        snprintf(canon, sizeof canon, "crl-%d.crl", n);
        if (strcmp(canon, f) == 0)
            return n;
    }
    return -2;
}

/* GET /crl/{accountId}/{caId}/crl.crl (or crl-<shard>.crl) — DER, cacheable
 * for crl_max_age_s (never past nextUpdate). */
void api_public_crl(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct ca_rec c;
    struct err e;
    snprintf(req->partition, sizeof req->partition, "%.64s", req->params[0]);
    int shard = crl_file_shard(req->params[2]);
    int lc = shard < -1 ? -1 : live_ca(ctx, req->params[0], req->params[1], &c);
    if (lc == -2) {
        /* not a 404 a cache in front of us would keep */
        resp_error(resp, 503, "unavailable", NULL, "the store is unavailable, retry later");
        resp_header(resp, "Retry-After", "5");
        return;
    }
    if (lc != 0) {
        resp_error(resp, 404, "not_found", NULL, "no such CRL");
        return;
    }
    if (shard >= 0 && shard >= c.crl_shards) {
        resp_error(resp, 404, "not_found", NULL, "no such CRL partition");
        ca_rec_free(&c);
        return;
    }
    if (!c.crl_enabled) {
        resp_error(resp, 404, "not_found", NULL, "CRL is not enabled for this CA");
        ca_rec_free(&c);
        return;
    }
    struct crl_blob *b = crl_cache_get(ctx->crls, &ctx->env, &c, shard, &e);
    ca_rec_free(&c);
    if (!b) {
        resp_error(resp, 503, "unavailable", NULL, "CRL not available yet");
        return;
    }
    const char *inm = http_header(req, "If-None-Match");
    char lm[64], exp[64], cc[64];
    /* A CRL is valid to nextUpdate (7 days), but a newer one is published
     * within crl_delay_s of any status change: an HTTP cache may keep this
     * one that long at most, then revalidate (a 304 by ETag). */
    int64_t now = time_now(), age = b->next_update - now;
    if (age > ctx->crl_max_age_s)
        age = ctx->crl_max_age_s;
    if (age < 0)
        age = 0;
    http_date(b->this_update, lm, sizeof lm);
    http_date(now + age, exp, sizeof exp);
    snprintf(cc, sizeof cc, "public, max-age=%lld, no-transform", (long long)age);
    if (http_etag_matches(inm, b->etag))
        resp_bytes(resp, 304, NULL, "", 0);
    else
        resp_bytes(resp, 200, "application/pkix-crl", b->der, b->len);
    resp_header(resp, "ETag", b->etag);
    resp_header(resp, "Last-Modified", lm);
    resp_header(resp, "Expires", exp);
    resp_header(resp, "Cache-Control", cc);
    crl_blob_release(b);
}

static void send_ocsp(struct http_req *req, struct http_resp *resp, const unsigned char *der, size_t len)
{
    struct api_ctx *ctx = req->app;
    struct ocsp_answer a;
    snprintf(req->partition, sizeof req->partition, "%.64s", req->params[0]);
    if (ocsp_respond(&ctx->env, ctx->ocsp, req->params[0], req->params[1], der, len, &a) != 0) {
        resp_error(resp, 500, "internal", NULL, "out of memory");
        return;
    }
    resp_take(resp, 200, "application/ocsp-response", a.der, a.len);
    if (a.next_update) {
        /* RFC 5019 section 6.2 caching headers */
        char lm[64], exp[64], cc[96];
        http_date(a.this_update, lm, sizeof lm);
        http_date(a.next_update, exp, sizeof exp);
        int64_t age = a.next_update - time_now();
        snprintf(cc, sizeof cc, "max-age=%lld, public, no-transform, must-revalidate",
                 (long long)(age > 0 ? age : 0));
        resp_header(resp, "Last-Modified", lm);
        resp_header(resp, "Expires", exp);
        resp_header(resp, "Cache-Control", cc);
    }
}

void api_ocsp_post(struct http_req *req, struct http_resp *resp)
{
    /* an oversized request is still answered in OCSP: malformedRequest */
    if (req->body_truncated)
        send_ocsp(req, resp, (const unsigned char *)"", 0);
    else
        send_ocsp(req, resp, req->body.data, req->body.len);
}

/* GET /ocsp/{accountId}/{caId}/{base64 request} (RFC 6960 A.1: the path
 * holds the URL-decoded base64 DER; '/' characters survive in it). */
void api_ocsp_get(struct http_req *req, struct http_resp *resp)
{
    const char *b64 = req->params[2];
    unsigned char *der = NULL;
    size_t len = 0;
    if (strlen(b64) > OCSP_MAX_REQUEST * 2 || b64_decode(b64, strlen(b64), &der, &len) != 0) {
        /* still an OCSP answer: malformedRequest */
        send_ocsp(req, resp, (const unsigned char *)"", 0);
        return;
    }
    send_ocsp(req, resp, der, len);
    free(der);
}

static int admin_ca_as(struct http_req *req, struct http_resp *resp, int action, struct ca_rec *c,
                       struct principal *who)
{
    struct api_ctx *ctx = req->app;
    struct principal own, *pp = who ? who : &own;
    struct principal p;
    if (api_auth(req, resp, req->params[0], action, pp) != 0)
        return -1;
    p = *pp;
    int lc = live_ca(ctx, p.partition, req->params[1], c);
    if (lc == -2) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return -1;
    }
    if (lc != 0) {
        resp_error(resp, 404, "not_found", "caId", "no active CA '%.24s' in this partition", req->params[1]);
        return -1;
    }
    if (!c->crl_enabled) {
        resp_error(resp, 409, "conflict", "caId", "CRL is not enabled for CA '%s'", c->id);
        ca_rec_free(c);
        return -1;
    }
    return 0;
}

static int admin_ca(struct http_req *req, struct http_resp *resp, int action, struct ca_rec *c)
{
    return admin_ca_as(req, resp, action, c, NULL);
}

void api_ca_crl_get(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct ca_rec c;
    struct err e;
    if (admin_ca(req, resp, OP_CERT_BROWSE, &c) != 0)
        return;
    const char *sh = http_query(req, "partition");
    int shard = CRL_FULL;
    if (sh) {
        char *end = NULL;
        long v = strtol(sh, &end, 10);
        if (!end || *end || v < 0 || v >= c.crl_shards) {
            resp_error(resp, 400, "invalid_field", "partition", "partition: 0-%d for this CA", c.crl_shards - 1);
            ca_rec_free(&c);
            return;
        }
        shard = (int)v;
    }
    struct crl_blob *b = crl_cache_get(ctx->crls, &ctx->env, &c, shard, &e);
    ca_rec_free(&c);
    if (!b) {
        resp_err(resp, &e);
        return;
    }
    const char *fmt = http_query(req, "format");
    if (fmt && strcmp(fmt, "der") == 0) {
        resp_bytes(resp, 200, "application/pkix-crl", b->der, b->len);
    } else {
        const unsigned char *p = b->der;
        X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)b->len);
        BIO *bio = BIO_new(BIO_s_mem());
        char *d = NULL;
        if (crl && bio && PEM_write_bio_X509_CRL(bio, crl) == 1) {
            long n = BIO_get_mem_data(bio, &d);
            resp_bytes(resp, 200, "application/x-pem-file", d, (size_t)n);
        } else {
            resp_error(resp, 500, "internal", NULL, "cannot encode the CRL");
        }
        BIO_free(bio);
        X509_CRL_free(crl);
    }
    crl_blob_release(b);
}

void api_ca_crl_publish(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct ca_rec c;
    struct err e;
    struct principal p;
    if (admin_ca_as(req, resp, OP_CERT_STATUS, &c, &p) != 0)
        return;
    struct crl_blob *b = crl_publish_all(ctx->crls, &ctx->env, &c, &e);
    /* an operator's publication is theirs to answer for, like a status change */
    char target[64], detail[48];
    snprintf(target, sizeof target, "crl:%s", c.id);
    if (b)
        snprintf(detail, sizeof detail, "{\"crlNumber\":%lld}", (long long)b->number);
    struct audit_rec a = {p.actor, "crl.publish", target, b ? detail : NULL, p.ip, b ? NULL : "failure"};
    if (ctx->store->ops->audit_append(ctx->store, p.partition, &a) != STORE_OK)
        log_warn("CRL %s/%s: the publication could not be audited", p.partition, c.id);
    ca_rec_free(&c);
    if (!b) {
        resp_err(resp, &e);
        return;
    }
    char tu[32], nu[32];
    time_format_rfc3339(b->this_update, tu, sizeof tu);
    time_format_rfc3339(b->next_update, nu, sizeof nu);
    resp_json(resp, 200, json_pack("{s:I,s:s,s:s}", "crlNumber", (json_int_t)b->number, "thisUpdate", tu,
                                   "nextUpdate", nu));
    crl_blob_release(b);
}

void api_ca_crls(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct ca_rec c;
    struct crl_rec *items = NULL;
    size_t n = 0;
    if (admin_ca(req, resp, OP_CERT_BROWSE, &c) != 0)
        return;
    int s = ctx->store->ops->crl_list(ctx->store, c.partition_id, c.pk, -2, 100, &items, &n);
    ca_rec_free(&c);
    if (s != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char tu[32], nu[32];
        time_format_rfc3339(items[i].this_update, tu, sizeof tu);
        time_format_rfc3339(items[i].next_update, nu, sizeof nu);
        json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:I,s:o}", "crlNumber", (json_int_t)items[i].number,
                                           "thisUpdate", tu, "nextUpdate", nu, "entries",
                                           (json_int_t)items[i].entries, "partition",
                                           items[i].shard >= 0 ? json_integer(items[i].shard) : json_null()));
        crl_rec_free(&items[i]);
    }
    free(items);
    resp_json(resp, 200, json_pack("{s:o}", "crls", a));
}
