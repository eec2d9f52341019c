/* Supervisor API (/api/v1/supervisor/...): subscriptions (purchased
 * inventory) and their assignment to a region, which creates a partition
 * with an invited owner. Supervisor tokens are separate from partition
 * users: `pkiaasd supervisor-token` makes one. */
#include "api/api.h"

#include "crypto/secret.h"
#include "util/codec.h"
#include "util/json_util.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INVITE_TTL_S (72 * 3600)

static int supervisor_auth(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    const char *h = http_header(req, "Authorization");
    int ok = 0;
    if (h && strncasecmp(h, "Bearer ", 7) == 0 && strlen(h + 7) > 0 && strlen(h + 7) < 256) {
        char *hash = secret_token_hash(h + 7);
        ok = hash && ctx->store->ops->supervisor_token_check(ctx->store, hash) == STORE_OK;
        free(hash);
    }
    if (!ok) {
        resp_error(resp, 401, "unauthorized", NULL, "a supervisor token is required");
        resp_header(resp, "WWW-Authenticate", "Bearer realm=\"pkiaas-supervisor\"");
        return -1;
    }
    return 0;
}

static json_t *sub_json(struct api_ctx *ctx, const struct subscription_rec *r)
{
    char *url = NULL;
    if (r->partition_id[0] && asprintf(&url, "%s/?partition=%s", ctx->env.https_base, r->partition_id) < 0)
        url = NULL;
    json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:{s:I,s:I,s:I,s:I},s:s}", "id", r->id, "status", r->status,
                          "region", r->region[0] ? json_string(r->region) : json_null(), "partition",
                          r->partition_id[0] ? json_string(r->partition_id) : json_null(), "label",
                          r->label[0] ? json_string(r->label) : json_null(), "url",
                          url ? json_string(url) : json_null(), "inventory", "certificatesIssued",
                          (json_int_t)r->certs_issued, "certificatesPurchased", (json_int_t)r->certs_purchased,
                          "casActive", (json_int_t)r->cas_active, "casPurchased", (json_int_t)r->cas_purchased,
                          "tier", r->certs_purchased >= 1000000 ? "premium" : "standard");
    free(url);
    return o;
}

/* Supervisor authentication, then the subscriptions matching ?search=
 * (at most 64 characters). -1 when an error has been answered. */
static int sup_list(struct http_req *req, struct http_resp *resp, struct subscription_rec **items, size_t *n)
{
    struct api_ctx *ctx = req->app;
    if (supervisor_auth(req, resp) != 0)
        return -1;
    const char *search = http_query(req, "search");
    if (search && strlen(search) > 64) {
        resp_error(resp, 400, "invalid_field", "search", "search: at most 64 characters");
        return -1;
    }
    if (ctx->store->ops->subscription_list(ctx->store, search, items, n) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return -1;
    }
    return 0;
}

void api_sup_subscriptions(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct subscription_rec *items = NULL;
    size_t n = 0;
    if (sup_list(req, resp, &items, &n) != 0)
        return;
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, sub_json(ctx, &items[i]));
    free(items);
    resp_json(resp, 200, json_pack("{s:o}", "subscriptions", a));
}

/* Partitions are the assigned subscriptions (with search). */
void api_sup_partitions(struct http_req *req, struct http_resp *resp)
{
    struct subscription_rec *items = NULL;
    size_t n = 0;
    if (sup_list(req, resp, &items, &n) != 0)
        return;
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        if (items[i].partition_id[0])
            json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s}", "accountId", items[i].partition_id, "label",
                                               items[i].label, "region", items[i].region, "subscriptionId",
                                               items[i].id));
    free(items);
    resp_json(resp, 200, json_pack("{s:o}", "partitions", a));
}

void api_sup_subscription_create(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct jerr je;
    static const char *const keys[] = {"certificates", "cas", NULL};
    long long certs = 0, cas = 0;
    bool hc = false, ha = false;
    char *hex = NULL;
    json_t *body = NULL;
    if (supervisor_auth(req, resp) != 0 || !(body = api_body_object(req, resp)))
        return;
    if (jcheck_keys(body, keys, &je) || jget_int(body, "certificates", 1, 1000000000LL, &certs, &hc, &je) ||
        jget_int(body, "cas", 1, 100000, &cas, &ha, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    if (!hc || !ha) {
        resp_error(resp, 400, "invalid_field", hc ? "cas" : "certificates", "%s: required", hc ? "cas" : "certificates");
        goto out;
    }
    struct subscription_rec r;
    memset(&r, 0, sizeof r);
    if (!(hex = random_hex(8))) {
        resp_error(resp, 500, "internal", NULL, "out of memory");
        goto out;
    }
    snprintf(r.id, sizeof r.id, "%.16s", hex);
    snprintf(r.status, sizeof r.status, "Unassigned");
    r.certs_purchased = certs;
    r.cas_purchased = cas;
    r.created_at = time_now();
    if (ctx->store->ops->subscription_create(ctx->store, &r) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    resp_json(resp, 201, sub_json(ctx, &r));
out:
    free(hex);
    json_decref(body);
}

static bool region_allowed(struct api_ctx *ctx, const char *region)
{
    /* regions: comma-separated list from the configuration */
    const char *r = ctx->regions;
    size_t n = strlen(region);
    while (r && *r && n) {
        const char *end = strchr(r, ',');
        size_t len = end ? (size_t)(end - r) : strlen(r);
        if (len == n && strncmp(r, region, n) == 0)
            return true;
        r = end ? end + 1 : NULL;
    }
    return false;
}

void api_sup_assign(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct jerr je;
    static const char *const keys[] = {"region", "label", "acceptTerms", "ownerEmail", "ownerFirstName",
                                       "ownerLastName", NULL};
    const char *region = NULL, *label = NULL, *email = NULL, *fn = NULL, *ln = NULL;
    bool terms = false;
    char *hex = NULL, *tok = NULL, *th = NULL, *link = NULL;
    json_t *body = NULL;
    if (supervisor_auth(req, resp) != 0 || !(body = api_body_object(req, resp)))
        return;
    if (jcheck_keys(body, keys, &je) || jget_str(body, "region", 16, &region, &je) ||
        jget_str(body, "label", 64, &label, &je) || jget_bool(body, "acceptTerms", &terms, &je) ||
        jget_str(body, "ownerEmail", 254, &email, &je) || jget_str(body, "ownerFirstName", 64, &fn, &je) ||
        jget_str(body, "ownerLastName", 64, &ln, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    if (!terms) {
        resp_error(resp, 400, "invalid_field", "acceptTerms", "acceptTerms: the terms must be accepted (true)");
        goto out;
    }
    if (!region || !region_allowed(ctx, region)) {
        resp_error(resp, 400, "invalid_field", "region", "region: one of %s", ctx->regions);
        goto out;
    }
    if (!label || !*label) {
        resp_error(resp, 400, "invalid_field", "label", "label: required");
        goto out;
    }
    char owner_email[256];
    if (!email || !api_email_normalize(email, owner_email, sizeof owner_email)) {
        resp_error(resp, 400, "invalid_field", "ownerEmail", "ownerEmail: the address of the partition's first owner");
        goto out;
    }
    email = owner_email; /* lower-cased, as every user's address is kept */
    struct partition_rec p;
    struct user_rec owner;
    memset(&p, 0, sizeof p);
    memset(&owner, 0, sizeof owner);
    /* internal id: "sub" + 10 hex, as the guide shows */
    if (!(hex = random_hex(5)))
        goto internal;
    snprintf(p.id, sizeof p.id, "sub%s", hex);
    snprintf(p.label, sizeof p.label, "%s", label);
    snprintf(p.region, sizeof p.region, "%s", region);
    p.created_at = time_now();
    snprintf(owner.partition_id, sizeof owner.partition_id, "%s", p.id);
    owner.email = (char *)email;
    owner.first_name = (char *)(fn ? fn : "");
    owner.last_name = (char *)(ln ? ln : "");
    owner.roles = "Owners";
    struct audit_rec a = {"supervisor", "subscription.assign", req->params[0], NULL, req->ip, NULL};
    int s = ctx->store->ops->subscription_assign(ctx->store, req->params[0], &p, &owner, "supervisor", &a);
    if (s == STORE_ENOTFOUND) {
        resp_error(resp, 404, "not_found", "subscriptionId", "no subscription '%.32s'", req->params[0]);
        goto out;
    }
    if (s == STORE_ESTATE) {
        resp_error(resp, 409, "conflict", "subscriptionId", "subscription '%.32s' is already assigned",
                   req->params[0]);
        goto out;
    }
    if (s != STORE_OK)
        goto internal;
    if (!(tok = random_token(32)) || !(th = secret_token_hash(tok)) ||
        ctx->store->ops->invite_put(ctx->store, th, p.id, email, time_now() + INVITE_TTL_S) != STORE_OK ||
        asprintf(&link, "%s/invite/%s", ctx->env.https_base, tok) < 0)
        goto internal;
    log_info("owner invitation for %s in new partition %s: %s", email, p.id, link);
    resp_json(resp, 201, json_pack("{s:{s:s,s:s,s:s,s:s},s:{s:s,s:s}}", "partition", "accountId", p.id, "label",
                                   p.label, "region", p.region, "subscriptionId", req->params[0], "owner", "email",
                                   email, "inviteUrl", link));
    goto out;
internal:
    resp_error(resp, 500, "internal", NULL, "assignment failed");
out:
    if (tok)
        OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    free(th);
    free(link);
    free(hex);
    json_decref(body);
}
