/* api: the admin REST API (portal + CLI) under /api/v1/partitions/{id}/...
 * and the unauthenticated service endpoints (/healthz, /version, CA
 * certificates for AIA). Handlers translate HTTP into calls on ca/, store/
 * and authz/; they never build certificates. */
#ifndef PKIAAS_API_API_H
#define PKIAAS_API_API_H

#include "ca/ca.h"
#include "http/router.h"
#include "store/store.h"

struct api_ctx {
    struct store *store;
    struct ca_env env;
};

/* The route table of the daemon (static storage). */
const struct router *api_router(void);

/* Shared by handler files */
struct principal;
int api_auth(struct http_req *req, struct http_resp *resp, const char *partition, int action, struct principal *p);
json_t *api_body_object(struct http_req *req, struct http_resp *resp);

void api_healthz(struct http_req *req, struct http_resp *resp);
void api_version(struct http_req *req, struct http_resp *resp);
void api_key_details(struct http_req *req, struct http_resp *resp);
void api_ca_list(struct http_req *req, struct http_resp *resp);
void api_ca_create(struct http_req *req, struct http_resp *resp);
void api_ca_get(struct http_req *req, struct http_resp *resp);
void api_ca_delete(struct http_req *req, struct http_resp *resp);
void api_ca_cert(struct http_req *req, struct http_resp *resp);
void api_ca_chain(struct http_req *req, struct http_resp *resp);
void api_ca_csr(struct http_req *req, struct http_resp *resp);
void api_ca_import(struct http_req *req, struct http_resp *resp);
void api_public_ca_cert(struct http_req *req, struct http_resp *resp);

#endif
