/* Audit log over the admin API: reports (JSON / CSV), chain verification,
 * signed checkpoints and their public key, and the enrollment-events view. */
#include "api/api.h"

#include "audit/audit.h"
#include "authz/authz.h"
#include "util/buf.h"
#include "util/codec.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AUDIT_PAGE_MAX 1000

static void fmt_ms(int64_t ms, char *out, size_t n)
{
    char s[32];
    time_format_rfc3339(ms / 1000, s, sizeof s);
    /* 2026-11-23T12:00:00Z -> 2026-11-23T12:00:00.123Z */
    s[19] = 0;
    snprintf(out, n, "%s.%03lldZ", s, (long long)(ms % 1000));
}

struct collect {
    json_t *arr;
    struct buf *csv;
    int64_t last_seq;
    size_t count;
};

static void csv_field(struct buf *b, const char *v, bool last)
{
    buf_append_str(b, "\"");
    for (const char *c = v ? v : ""; *c; c++) {
        if (*c == '"')
            buf_append_str(b, "\"\"");
        else if ((unsigned char)*c < 0x20)
            buf_append_str(b, " ");
        else
            buf_append(b, c, 1);
    }
    buf_append_str(b, last ? "\"\r\n" : "\",");
}

static int collect_cb(const struct audit_row *r, void *ctx)
{
    struct collect *c = ctx;
    char t[40];
    fmt_ms(r->at_ms, t, sizeof t);
    c->last_seq = r->seq;
    c->count++;
    if (c->csv) {
        char seq[24];
        snprintf(seq, sizeof seq, "%lld", (long long)r->seq);
        csv_field(c->csv, seq, false);
        csv_field(c->csv, t, false);
        csv_field(c->csv, r->actor, false);
        csv_field(c->csv, r->ip, false);
        csv_field(c->csv, r->action, false);
        csv_field(c->csv, r->target, false);
        csv_field(c->csv, r->result, false);
        csv_field(c->csv, r->detail, false);
        csv_field(c->csv, r->hash, true);
        return 0;
    }
    json_t *d = r->detail ? json_loads(r->detail, 0, NULL) : NULL;
    json_array_append_new(c->arr, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s}", "seq", (json_int_t)r->seq,
                                            "time", t, "actor", r->actor, "sourceIp", r->ip, "action", r->action,
                                            "target", r->target, "result", r->result, "details",
                                            d ? d : (r->detail ? json_string(r->detail) : json_null()), "prevHash",
                                            r->prev_hash, "hash", r->hash));
    return 0;
}

static int parse_time_q(struct http_req *req, struct http_resp *resp, const char *name, int64_t *out)
{
    const char *v = http_query(req, name);
    int64_t t;
    *out = 0;
    if (!v)
        return 0;
    if (time_parse_rfc3339(v, &t) != 0) {
        resp_error(resp, 400, "invalid_field", name, "%s: an RFC 3339 date-time", name);
        return -1;
    }
    /* keep milliseconds: records carry them */
    int64_t ms = 0;
    const char *dot = strchr(v, '.');
    if (dot) {
        int k = 0;
        for (const char *c = dot + 1; *c >= '0' && *c <= '9'; c++, k++)
            if (k < 3)
                ms = ms * 10 + (*c - '0');
        for (; k < 3; k++)
            ms *= 10;
    }
    *out = t * 1000 + ms;
    return 0;
}

void api_audit_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct audit_filter f;
    struct buf csv;
    memset(&f, 0, sizeof f);
    if (api_auth(req, resp, req->params[0], OP_AUDIT_READ, &p) != 0)
        return;
    if (parse_time_q(req, resp, "from", &f.from_ms) || parse_time_q(req, resp, "to", &f.to_ms))
        return;
    f.actor = http_query(req, "actor");
    f.action = http_query(req, "action");
    f.result = http_query(req, "result");
    const char *after = http_query(req, "after"), *limit = http_query(req, "limit"), *fmt = http_query(req, "format");
    char *end = NULL;
    if (after) {
        long long v = strtoll(after, &end, 10);
        if (!end || *end || v < 0) {
            resp_error(resp, 400, "invalid_field", "after", "after: a record sequence number");
            return;
        }
        f.after_seq = v;
    }
    f.limit = 100;
    if (limit) {
        long v = strtol(limit, &end, 10);
        if (!end || *end || v < 1 || v > AUDIT_PAGE_MAX) {
            resp_error(resp, 400, "invalid_field", "limit", "limit: 1-%d", AUDIT_PAGE_MAX);
            return;
        }
        f.limit = (unsigned)v;
    }
    bool as_csv = fmt && strcmp(fmt, "csv") == 0;
    if (fmt && !as_csv && strcmp(fmt, "json") != 0) {
        resp_error(resp, 400, "invalid_field", "format", "format: json or csv");
        return;
    }
    struct collect c = {as_csv ? NULL : json_array(), NULL, 0, 0};
    buf_init(&csv, 64 * 1024 * 1024);
    if (as_csv) {
        buf_append_str(&csv, "seq,time,actor,sourceIp,action,target,result,details,hash\r\n");
        c.csv = &csv;
    }
    if (ctx->store->ops->audit_iter(ctx->store, p.partition, &f, collect_cb, &c) != STORE_OK) {
        json_decref(c.arr);
        buf_free(&csv);
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    if (as_csv) {
        size_t n;
        unsigned char *d = buf_take(&csv, &n);
        resp_take(resp, 200, "text/csv; charset=utf-8", d, n);
        resp_header(resp, "Content-Disposition", "attachment; filename=\"audit.csv\"");
        return;
    }
    resp_json(resp, 200, json_pack("{s:o,s:o}", "records", c.arr, "next",
                                   c.count == f.limit ? json_integer(c.last_seq) : json_null()));
}

void api_audit_verify(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct audit_verify_result r;
    if (api_auth(req, resp, req->params[0], OP_AUDIT_READ, &p) != 0)
        return;
    if (audit_verify(ctx->store, ctx->env.mkey, p.partition, &r) != 0) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    resp_json(resp, 200, json_pack("{s:b,s:I,s:I,s:o,s:o,s:I,s:o}", "ok", r.ok, "records", (json_int_t)r.records,
                                   "checkpoints", (json_int_t)r.checkpoints, "firstBadSeq",
                                   r.ok ? json_null() : json_integer(r.first_bad_seq), "problem",
                                   r.ok ? json_null() : json_string(r.problem), "gaps", (json_int_t)r.gaps,
                                   "firstGapSeq", r.gaps ? json_integer(r.first_gap_seq) : json_null()));
}

void api_audit_checkpoints(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct audit_checkpoint *cps = NULL;
    size_t n = 0;
    if (api_auth(req, resp, req->params[0], OP_AUDIT_READ, &p) != 0)
        return;
    /* Checkpoint the head now too, so a verifier always has a fresh one. */
    int64_t broken = 0;
    int cr = audit_checkpoint_now(ctx->store, ctx->env.mkey, p.partition, time_now_ms(), &broken);
    if (cr == AUDIT_EBROKEN) {
        resp_error(resp, 409, "conflict", NULL,
                   "the audit chain is broken at record %lld: no checkpoint is signed over it (see GET /audit/verify)",
                   (long long)broken);
        return;
    }
    if (cr != 0) {
        resp_error(resp, 503, "unavailable", NULL, "cannot sign a checkpoint");
        return;
    }
    if (ctx->store->ops->audit_checkpoint_list(ctx->store, p.partition, &cps, &n) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char *text = audit_checkpoint_text(p.partition, cps[i].seq, cps[i].hash, cps[i].at_ms);
        char *sig = b64_encode(cps[i].sig, cps[i].sig_len);
        json_array_append_new(a, json_pack("{s:I,s:I,s:s,s:s?,s:s?}", "seq", (json_int_t)cps[i].seq, "atMs",
                                           (json_int_t)cps[i].at_ms, "hash", cps[i].hash, "signature", sig,
                                           "signedText", text));
        free(text);
        free(sig);
        free(cps[i].sig);
    }
    free(cps);
    char *pem = audit_public_key_pem(ctx->store, ctx->env.mkey, p.partition);
    resp_json(resp, 200, json_pack("{s:o,s:s?,s:s}", "checkpoints", a, "publicKey", pem, "signatureAlgorithm",
                                   "ecdsa-with-SHA256"));
    free(pem);
}

/* ---- enrollment events: a view over the same log ------------------------ */

static const struct {
    const char *action, *type;
} event_types[] = {
    {"cert.issue", "issued"},        {"cert.issue.pkcs12", "issued-pkcs12"}, {"cert.revoke", "revoked"},
    {"cert.suspend", "suspended"},   {"cert.unsuspend", "unsuspended"},
};

struct events {
    json_t *arr;
    const char *type; /* filter or NULL */
    unsigned limit;
    size_t count;
    int64_t last_seq;
};

static int events_cb(const struct audit_row *r, void *ctx)
{
    struct events *ev = ctx;
    const char *type = NULL;
    for (size_t i = 0; i < sizeof event_types / sizeof event_types[0]; i++)
        if (strcmp(r->action, event_types[i].action) == 0)
            type = event_types[i].type;
    if (!type || (ev->type && strcmp(ev->type, type) != 0))
        return 0;
    char t[40], id[24];
    fmt_ms(r->at_ms, t, sizeof t);
    snprintf(id, sizeof id, "%llx", (unsigned long long)r->seq); /* event id as hex (guide) */
    json_t *d = r->detail ? json_loads(r->detail, 0, NULL) : NULL;
    const char *subject = json_string_value(json_object_get(d, "subject"));
    const char *profile = json_string_value(json_object_get(d, "profile"));
    /* target is "cert:<ca>/<serial>" */
    const char *slash = strchr(r->target, '/');
    json_array_append_new(ev->arr, json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s,s:s,s:s}", "eventId", id, "time", t, "type",
                                             type, "endEntity", subject, "profileId", profile, "serialNumber",
                                             slash ? slash + 1 : "", "status", r->result, "actor", r->actor));
    json_decref(d);
    ev->last_seq = r->seq;
    return ++ev->count >= ev->limit ? 1 : 0;
}

void api_events_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct audit_filter f;
    memset(&f, 0, sizeof f);
    if (api_auth(req, resp, req->params[0], OP_AUDIT_READ, &p) != 0)
        return;
    if (parse_time_q(req, resp, "from", &f.from_ms) || parse_time_q(req, resp, "to", &f.to_ms))
        return;
    const char *type = http_query(req, "type"), *after = http_query(req, "after"), *limit = http_query(req, "limit");
    bool known = !type;
    for (size_t i = 0; type && i < sizeof event_types / sizeof event_types[0]; i++)
        if (strcmp(type, event_types[i].type) == 0)
            known = true;
    if (!known) {
        resp_error(resp, 400, "invalid_field", "type",
                   "type: issued, issued-pkcs12, revoked, suspended or unsuspended");
        return;
    }
    char *end = NULL;
    struct events ev = {json_array(), type, 100, 0, 0};
    if (after) {
        long long v = strtoll(after, &end, 16);
        if (!end || *end || v < 0) {
            resp_error(resp, 400, "invalid_field", "after", "after: an eventId (hex)");
            json_decref(ev.arr);
            return;
        }
        f.after_seq = v;
    }
    if (limit) {
        long v = strtol(limit, &end, 10);
        if (!end || *end || v < 1 || v > AUDIT_PAGE_MAX) {
            resp_error(resp, 400, "invalid_field", "limit", "limit: 1-%d", AUDIT_PAGE_MAX);
            json_decref(ev.arr);
            return;
        }
        ev.limit = (unsigned)v;
    }
    int rc = ctx->store->ops->audit_iter(ctx->store, p.partition, &f, events_cb, &ev);
    if (rc != STORE_OK && rc != 1) {
        json_decref(ev.arr);
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    char next[24];
    snprintf(next, sizeof next, "%llx", (unsigned long long)ev.last_seq);
    resp_json(resp, 200, json_pack("{s:o,s:o}", "events", ev.arr, "next",
                                   ev.count >= ev.limit ? json_string(next) : json_null()));
}
