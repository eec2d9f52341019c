#include "api/api.h"

#include "authz/authz.h"
#include "crypto/keyspec.h"

#include <string.h>

#define P "/api/v1/partitions/{}"

static const struct route routes[] = {
    {"GET", "/healthz", api_healthz},
    {"GET", "/version", api_version},
    {"GET", "/ca/{}/{}", api_public_ca_cert},
    {"GET", "/crl/{}/{}/{}", api_public_crl},
    {"POST", "/ocsp/{}/{}", api_ocsp_post},
    {"GET", "/ocsp/{}/{}/{*}", api_ocsp_get},
    {"GET", P "/signing-key-details", api_key_details},
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
    {"POST", P "/cas/{}/certificates", api_cert_issue},
    {"GET", P "/cas/{}/certificates", api_cert_list},
    {"GET", P "/cas/{}/certificates/{}", api_cert_get},
    {"GET", P "/cas/{}/certificates/{}/download", api_cert_download},
    {"POST", P "/cas/{}/certificates/{}/revoke", api_cert_revoke},
    {"POST", P "/cas/{}/certificates/{}/suspend", api_cert_suspend},
    {"POST", P "/cas/{}/certificates/{}/unsuspend", api_cert_unsuspend},
    {"GET", P "/inventory", api_inventory},
    {"GET", P "/cas/{}/crl", api_ca_crl_get},
    {"POST", P "/cas/{}/crl", api_ca_crl_publish},
    {"GET", P "/cas/{}/crls", api_ca_crls},
};

static const struct router router = {routes, sizeof routes / sizeof routes[0]};

const struct router *api_router(void)
{
    return &router;
}

int api_auth(struct http_req *req, struct http_resp *resp, const char *partition, int action, struct principal *p)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    snprintf(req->partition, sizeof req->partition, "%.64s", partition);
    if (authz_bearer(ctx->store, ctx->tokens, http_header(req, "Authorization"), partition, p, &e) != 0) {
        resp_err(resp, &e);
        if (e.status == 401)
            resp_header(resp, "WWW-Authenticate", "Bearer realm=\"pkiaas\"");
        return -1;
    }
    if (!authz_allow(p, (enum authz_action)action)) {
        resp_error(resp, 403, "forbidden", NULL, "your roles do not allow this operation");
        return -1;
    }
    return 0;
}

json_t *api_body_object(struct http_req *req, struct http_resp *resp)
{
    json_error_t je;
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
    if (api_auth(req, resp, req->params[0], AUTHZ_CA_READ, &p) != 0)
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
