/* api_cagw: the Entrust-compatible CA Gateway v1 API (/cagw/v1/...), served
 * on the HTTPS listener and authenticated by mutual TLS with CAGW
 * credentials (api_cagw_auth.c). Handlers call the issuance core and the
 * status path; they never build certificates. */
#ifndef PKIAAS_API_API_CAGW_H
#define PKIAAS_API_API_CAGW_H

#include "api/api.h"
#include "authz/authz.h"

struct cagw_principal {
    char partition[STORE_ID_MAX + 1];
    char credential[64];
    char actor[96]; /* "cagw:<credential id>" */
    char ip[48];
};

/* Authenticates the request's TLS client certificate as an active CAGW
 * credential; on failure answers 401 with the CAGW ErrorResponse body. */
int cagw_auth(struct http_req *req, struct http_resp *resp, struct cagw_principal *out);
/* Is `op` allowed for this credential on CA `ca_id` (its per-CA roles)? */
bool cagw_allowed(struct api_ctx *ctx, const struct cagw_principal *p, const char *ca_id, enum authz_op op);
/* The CAGW error body: {"type":"ErrorResponse","message":{...},"error":{"code","message","target","value","details"}} */
void cagw_error(struct http_resp *resp, int status, const char *code, const char *target, const char *value,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Routes of the CAGW API (api_cagw.c). */
extern const struct route cagw_routes[];
extern const size_t cagw_routes_count;

#endif
