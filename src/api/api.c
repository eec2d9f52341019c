#include "api/api.h"
#include "util/limits.h"
#include "util/timeutil.h"

#include "acme/acme.h"
#include "cmp/cmp.h"
#include "est/est.h"
#include "scep/mdmws.h"
#include "scep/scep.h"
#include "api/api_cagw.h"
#include "authz/authz.h"
#include "ca/ca_cache.h"
#include "crypto/keyspec.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define P "/api/v1/partitions/{}"

/* Rate-limit classes of the guide's quota table. */
enum { CAP_OTHER = 0, CAP_CERT, CAP_OCSP, CAP_CRL };

static const struct route routes[] = {
    {"GET", "/healthz", api_healthz},
    {"GET", "/version", api_version},
    {"GET", "/cagw/openapi.yaml", api_openapi},
    {"GET", "/cagw/swagger-ui", api_swagger_index},
    {"GET", "/cagw/swagger-ui/{}", api_swagger_file},
    {"GET", "/", api_portal_index},
    {"GET", "/portal", api_portal_index},
    {"GET", "/portal/", api_portal_index},
    {"GET", "/portal/{*}", api_portal_file},
    {"GET", "/invite/{}", api_portal_index},
    {"GET", "/ca/{}/{}", api_public_ca_cert},
    {"GET", "/crl/{}/{}/{}", api_public_crl, CAP_CRL},
    {"POST", "/ocsp/{}/{}", api_ocsp_post, CAP_OCSP, LIMIT_OCSP_REQUEST_BYTES},
    {"GET", "/ocsp/{}/{}/{*}", api_ocsp_get, CAP_OCSP},
    {"GET", P "/signing-key-details", api_key_details},
    {"GET", P "/me", api_me},
    {"GET", P "/cas", api_ca_list},
    {"POST", P "/cas", api_ca_create},
    {"GET", P "/cas/{}", api_ca_get},
    {"DELETE", P "/cas/{}", api_ca_delete},
    {"GET", P "/cas/{}/certificate", api_ca_cert},
    {"POST", P "/cas/{}/certificate", api_ca_import},
    {"GET", P "/cas/{}/chain", api_ca_chain},
    {"GET", P "/cas/{}/csr", api_ca_csr},
    {"GET", P "/cas/{}/profiles", api_ca_profiles_get},
    {"POST", P "/cas/{}/profiles", api_ca_profiles_add},
    {"DELETE", P "/cas/{}/profiles/{}", api_ca_profiles_remove},
    {"GET", P "/profiles", api_profile_list},
    {"POST", P "/profiles", api_profile_clone},
    {"GET", P "/profiles/{}", api_profile_get},
    {"PUT", P "/profiles/{}", api_profile_update},
    {"DELETE", P "/profiles/{}", api_profile_delete},
    {"POST", P "/cas/{}/certificates", api_cert_issue, CAP_CERT},
    {"GET", P "/cas/{}/certificates", api_cert_list},
    {"POST", P "/cas/{}/certificates/revoke-batch", api_cert_revoke_batch},
    {"GET", P "/cas/{}/certificates/{}", api_cert_get},
    {"GET", P "/cas/{}/certificates/{}/download", api_cert_download},
    {"POST", P "/cas/{}/certificates/{}/revoke", api_cert_revoke},
    {"POST", P "/cas/{}/certificates/{}/suspend", api_cert_suspend},
    {"POST", P "/cas/{}/certificates/{}/unsuspend", api_cert_unsuspend},
    {"GET", P "/inventory", api_inventory},
    {"GET", P "/audit", api_audit_list},
    {"GET", P "/audit/verify", api_audit_verify},
    {"GET", P "/audit/checkpoints", api_audit_checkpoints},
    {"GET", P "/events", api_events_list},
    {"POST", P "/users/invitations", api_user_invite},
    {"GET", P "/users", api_user_list},
    {"PUT", P "/users/{}/roles", api_user_roles},
    {"DELETE", P "/users/{}", api_user_delete},
    {"POST", "/api/v1/invitations/{}/accept", api_invite_accept, 0, LIMIT_UNAUTH_JSON_BYTES},
    {"POST", "/api/v1/invitations/{}/confirm", api_invite_confirm, 0, LIMIT_UNAUTH_JSON_BYTES},
    {"POST", "/api/v1/login", api_login, 0, LIMIT_UNAUTH_JSON_BYTES},
    {"POST", "/api/v1/login/setup", api_login_setup, 0, LIMIT_UNAUTH_JSON_BYTES},
    {"POST", "/api/v1/login/setup/confirm", api_login_setup_confirm, 0, LIMIT_UNAUTH_JSON_BYTES},
    {"POST", "/api/v1/logout", api_logout},
    {"GET", "/api/v1/supervisor/subscriptions", api_sup_subscriptions},
    {"POST", "/api/v1/supervisor/subscriptions", api_sup_subscription_create},
    {"POST", "/api/v1/supervisor/subscriptions/{}/assign", api_sup_assign},
    {"GET", "/api/v1/supervisor/partitions", api_sup_partitions},
    {"GET", P "/cagw-credentials", api_cagw_cred_list},
    {"POST", P "/cagw-credentials", api_cagw_cred_create},
    {"POST", P "/cagw-credentials/{}/renew", api_cagw_cred_renew},
    {"PUT", P "/cagw-credentials/{}/grants", api_cagw_cred_grants},
    {"DELETE", P "/cagw-credentials/{}", api_cagw_cred_delete},
    {"GET", P "/tokens", api_token_list},
    {"POST", P "/tokens", api_token_create},
    {"DELETE", P "/tokens/{}", api_token_revoke},
    {"GET", P "/cas/{}/crl", api_ca_crl_get},
    {"POST", P "/cas/{}/crl", api_ca_crl_publish},
    {"GET", P "/cas/{}/crls", api_ca_crls},
    {"GET", P "/protocols", api_proto_list},
    {"POST", P "/protocols", api_proto_create},
    {"GET", P "/protocols/{}", api_proto_get},
    {"PUT", P "/protocols/{}", api_proto_update},
    {"DELETE", P "/protocols/{}", api_proto_delete},
    {"GET", P "/protocols/{}/eab-keys", api_eab_list},
    {"POST", P "/protocols/{}/eab-keys", api_eab_create},
    {"DELETE", P "/protocols/{}/eab-keys/{}", api_eab_delete},
    {"GET", P "/protocols/{}/credentials", api_cred_list},
    {"POST", P "/protocols/{}/credentials", api_cred_create},
    {"DELETE", P "/protocols/{}/credentials/{}", api_cred_delete},
    {"GET", P "/protocols/{}/digital-ids", api_digital_id_list},
    {"POST", P "/protocols/{}/digital-ids", api_digital_id_create},
    {"DELETE", P "/protocols/{}/digital-ids/{}", api_digital_id_delete},
    {"GET", P "/protocols/{}/end-entities", api_ee_list},
    {"GET", P "/protocols/{}/end-entities/{}", api_ee_get},
    {"POST", P "/protocols/{}/end-entities/{}/{}", api_ee_action},
    {"GET", P "/protocols/{}/events", api_proto_events},
};

static const char *const cap_names[] = {"other", "certificate", "ocsp", "crl"};

/* Per partition and capability, `limit` requests per window (the guide's
 * quota table: standard 100 / 10 s, premium 1,000 / 10 s). Returns 1 when
 * the request is over the limit (with the Retry-After seconds in `ra`), 0
 * otherwise. The first refusal of a burst is audited. */
static int rate_limited_scoped(struct http_req *req, const char *partition, const char *client, char ra[24],
                               int *limit_out, bool *premium);

int api_rate_limited(struct http_req *req, const char *partition, char ra[24], int *limit_out, bool *premium)
{
    return rate_limited_scoped(req, partition, NULL, ra, limit_out, premium);
}

int api_rate_limited_client(struct http_req *req, const char *partition, char ra[24], int *limit_out, bool *premium)
{
    return rate_limited_scoped(req, partition, req->ip, ra, limit_out, premium);
}

/* The same, with a bucket per client address when `client` is given. */
static int rate_limited_scoped(struct http_req *req, const char *partition, const char *client, char ra[24],
                               int *limit_out, bool *premium)
{
    struct api_ctx *ctx = req->app;
    struct inventory inv;
    int limit = ctx->rate_standard;
    *premium = false;
    /* The tier follows the purchase (cheap for SQLite; a cache can come with
     * the PostgreSQL backend). */
    if (ctx->rate_premium != ctx->rate_standard &&
        ctx->store->ops->inventory(ctx->store, partition, &inv) == STORE_OK && inv.certs_purchased >= 1000000) {
        *premium = true;
        limit = ctx->rate_premium;
    }
    *limit_out = limit;
    if (limit <= 0)
        return 0;
    char key[160];
    snprintf(key, sizeof key, "%.64s/%s%s%.48s", partition, api_capability_name(req->capability), client ? "/" : "",
             client ? client : "");
    int64_t retry_ms = 0;
    int64_t now_ms = time_now_ms(); /* wall clock: buckets in a shared store are used by every node */
    bool first = false;
    if (ctx->store->ops->rate_take(ctx->store, key, limit, ctx->rate_window_s, now_ms, &retry_ms, &first) !=
        STORE_ELIMIT)
        return 0;
    if (first) {
        /* audited once per burst, not per refused request */
        char target[48];
        snprintf(target, sizeof target, "ratelimit:%s", api_capability_name(req->capability));
        struct audit_rec a = {"client", "ratelimit.hit", target, NULL, req->ip, "denied"};
        ctx->store->ops->audit_append(ctx->store, partition, &a);
    }
    snprintf(ra, 24, "%lld", (long long)((retry_ms + 999) / 1000 > 0 ? (retry_ms + 999) / 1000 : 1));
    snprintf(req->partition, sizeof req->partition, "%.64s", partition);
    return 1;
}

const char *api_capability_name(int capability)
{
    return capability >= 0 && (size_t)capability < sizeof cap_names / sizeof cap_names[0] ? cap_names[capability]
                                                                                           : "other";
}

/* 0 = allowed; 1 = `resp` holds the 429. */
static int rate_check(struct http_req *req, struct http_resp *resp, const char *partition)
{
    struct api_ctx *ctx = req->app;
    char ra[24];
    int limit = 0;
    bool premium = false;
    if (!api_rate_limited(req, partition, ra, &limit, &premium))
        return 0;
    resp_error(resp, 429, "TooManyRequests", NULL,
               "rate limit of %d %s requests per %d s reached for this partition (%s tier); retry after %s s", limit,
               api_capability_name(req->capability), ctx->rate_window_s, premium ? "premium" : "standard", ra);
    resp_header(resp, "Retry-After", ra);
    return 1;
}

/* Public status endpoints (OCSP, CRL, CA certificates) are limited per
 * partition here, for CAs that exist (a made-up account or CA fails fast
 * and never takes a bucket). Authenticated API calls are limited in
 * api_auth, after authentication, so strangers cannot exhaust a partition's
 * allowance. */
static int rate_limit(const struct route *r, struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    if (req->nparams < 2 || (strncmp(r->pattern, "/ocsp/", 6) != 0 && strncmp(r->pattern, "/crl/", 5) != 0 &&
                             strncmp(r->pattern, "/ca/", 4) != 0))
        return 0;
    char id[32];
    snprintf(id, sizeof id, "%s", req->params[1]);
    char *dot = strstr(id, ".crt");
    if (dot)
        *dot = 0;
    struct err e;
    struct ca_runtime *rt = ca_id_valid(id) ? ca_runtime_get(&ctx->env, req->params[0], id, &e) : NULL;
    if (!rt)
        return 0;
    ca_runtime_release(rt);
    /* A bucket per relying party (client address), not one for all: one
     * client cannot take OCSP and CRLs away from everybody else, which
     * soft-failing clients would read as "not revoked". */
    char ra[24];
    int limit = 0;
    bool premium = false;
    if (!rate_limited_scoped(req, req->params[0], req->ip, ra, &limit, &premium))
        return 0;
    if (strncmp(r->pattern, "/ocsp/", 6) == 0) {
        /* an OCSP client reads an OCSPResponse: tryLater (RFC 6960 4.2.1) */
        static const unsigned char try_later[] = {0x30, 0x03, 0x0a, 0x01, 0x03};
        resp_bytes(resp, 429, "application/ocsp-response", try_later, sizeof try_later);
    } else {
        resp_error(resp, 429, "TooManyRequests", NULL,
                   "rate limit of %d %s requests per %d s reached from this address (%s tier); retry after %s s",
                   limit, api_capability_name(req->capability), ctx->rate_window_s, premium ? "premium" : "standard",
                   ra);
    }
    resp_header(resp, "Retry-After", ra);
    return 1;
}

static const size_t routes_count = sizeof routes / sizeof routes[0];
static const struct route_table tables[] = {
    {routes, &routes_count},
    {cagw_routes, &cagw_routes_count},
    {acme_routes, &acme_routes_count},
    {scep_routes, &scep_routes_count},
    {mdmws_routes, &mdmws_routes_count},
    {est_routes, &est_routes_count},
    {cmp_routes, &cmp_routes_count},
};
static const struct router router = {tables, sizeof tables / sizeof tables[0], rate_limit};

const struct router *api_router(void)
{
    return &router;
}

/* Failed authentications recorded (and tolerated) per minute, address and
 * partition. */
#define AUTH_FAIL_LIMIT 30

int api_auth(struct http_req *req, struct http_resp *resp, const char *partition, int action, struct principal *p)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    snprintf(req->partition, sizeof req->partition, "%.64s", partition);
    const char *authz_hdr = http_header(req, "Authorization");
    int ok = !authz_hdr && http_cookie(req, "pkiaas_session")
                 ? api_session_principal(req, partition, p, &e)
                 : authz_bearer(ctx->store, ctx->tokens, authz_hdr, partition, p, &e);
    if (ok != 0) {
        if (e.status == 401) {
            /* failed authentication is security-relevant: record it, in the
             * partition named by the URL when it exists; but at most
             * AUTH_FAIL_LIMIT a minute per address and partition name (then
             * one record saying the rest is not), and past that the address
             * gets 429: strangers cannot grow the log without bound. The
             * limit holds whether the partition exists or not, so the 429
             * does not tell which partitions exist. */
            struct partition_rec pr;
            char key[160];
            int64_t retry = 0;
            bool first = false;
            snprintf(key, sizeof key, "authfail:%s:%s", partition, req->ip);
            int rl = ctx->store->ops->rate_take(ctx->store, key, AUTH_FAIL_LIMIT, 60, time_now_ms(), &retry, &first);
            if ((rl != STORE_ELIMIT || first) &&
                ctx->store->ops->partition_get(ctx->store, partition, &pr) == STORE_OK) {
                struct audit_rec a = {"anonymous", "auth.failed", "api",
                                      rl == STORE_ELIMIT ? "{\"further\":\"not recorded for up to a minute\"}" : NULL,
                                      req->ip, "failure"};
                ctx->store->ops->audit_append(ctx->store, partition, &a);
            }
            if (rl == STORE_ELIMIT) {
                char ra[24];
                snprintf(ra, sizeof ra, "%lld", (long long)(retry / 1000 + 1));
                resp_error(resp, 429, "TooManyRequests", NULL,
                           "too many failed authentications from this address; retry later");
                resp_header(resp, "Retry-After", ra);
                return -1;
            }
        }
        resp_err(resp, &e);
        if (e.status == 401)
            resp_header(resp, "WWW-Authenticate", "Bearer realm=\"pkiaas\"");
        return -1;
    }
    snprintf(p->ip, sizeof p->ip, "%s", req->ip);
    if (rate_check(req, resp, p->partition) != 0)
        return -1;
    return api_require(req, resp, p, (enum authz_op)action);
}

int api_require(struct http_req *req, struct http_resp *resp, const struct principal *p, int op)
{
    (void)req;
    if (authz_allow(p, (enum authz_op)op))
        return 0;
    const struct authz_op_info *info = authz_op_at((size_t)op);
    struct api_ctx *ctx = req->app;
    struct audit_rec a = {p->actor, "authz.denied", info ? info->name : "?", NULL, p->ip, "denied"};
    ctx->store->ops->audit_append(ctx->store, p->partition, &a);
    resp_error(resp, 403, "forbidden", NULL, "your roles do not allow this operation (%s)", info ? info->name : "?");
    return -1;
}

json_t *api_body_object(struct http_req *req, struct http_resp *resp)
{
    json_error_t je;
    if (req->body_truncated) {
        resp_error(resp, 413, "payload_too_large", NULL, "request body too large for this endpoint");
        return NULL;
    }
    if (req->body.len == 0) {
        resp_error(resp, 400, "invalid_request", NULL, "a JSON object body is required");
        return NULL;
    }
    /* JSON_REJECT_DUPLICATES: a key given twice is ambiguous, refuse it. */
    json_t *j = json_loadb((const char *)req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        resp_error(resp, 400, "invalid_json", NULL, "malformed JSON at line %d column %d: %s", je.line, je.column,
                   je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        resp_error(resp, 400, "invalid_json", NULL, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

void api_healthz(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    if (ctx->store->ops->ping(ctx->store) != STORE_OK) {
        resp_json(resp, 503, json_pack("{s:s}", "status", "unavailable"));
        return;
    }
    resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

void api_version(struct http_req *req, struct http_resp *resp)
{
    resp_json(resp, 200, json_pack("{s:s,s:s}", "name", "pkiaas", "version", PKIAAS_VERSION));
}

void api_key_details(struct http_req *req, struct http_resp *resp)
{
    struct principal p;
    if (api_auth(req, resp, req->params[0], OP_CA_BROWSE, &p) != 0)
        return;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < keyspec_count(); i++) {
        const struct keyspec *k = keyspec_at(i);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "label", k->label, "keyAlgorithm",
                                             k->key_algorithm, "signatureAlgorithm", k->sig_algorithm, "vaKeyType",
                                             k->va_key_type, "vaSignatureAlgorithm", k->va_sig_algorithm, "supported",
                                             keyspec_supported(k)));
    }
    resp_json(resp, 200, json_pack("{s:o}", "signingKeyDetails", arr));
}
