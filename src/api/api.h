/* api: the admin REST API (portal + CLI) under /api/v1/partitions/{id}/...
 * and the unauthenticated service endpoints (/healthz, /version, CA
 * certificates for AIA). Handlers translate HTTP into calls on ca/, store/
 * and authz/; they never build certificates. */
#ifndef PKIAAS_API_API_H
#define PKIAAS_API_API_H

#include "ca/ca.h"
#include "http/router.h"
#include "store/store.h"
#include "util/mail.h"

#include <jansson.h>

struct crl_cache;
struct ocsp_cache;

struct api_ctx {
    struct store *store;
    struct ca_env env;
    struct crl_cache *crls;
    struct ocsp_cache *ocsp;
    struct token_cache *tokens;
    int rate_standard, rate_premium, rate_window_s; /* requests per window; 0 = off */
    int crl_max_age_s; /* HTTP caching of a served CRL: a new one can appear this soon after a change */
    const char *regions;        /* comma-separated regions a subscription may be assigned to */
    struct mail_relay mail;     /* url NULL: no relay configured */
    const char *swagger_dir;    /* swagger-ui-dist files; NULL = the build's ui/swagger */
    const char *portal_dir;     /* the built web portal; NULL = the build's ui/portal/dist */
    struct validator *acme_validator; /* ACME challenge workers; NULL: challenges stay pending */
};

/* A user's address as stored (users are keyed by it): checked (one '@', a
 * dot in the domain, printable ASCII without '"' or '/', at most 254
 * bytes) and lower-cased into out. false when it is not an address. */
bool api_email_normalize(const char *in, char *out, size_t n);

/* After any status change of a certificate issued by `ca`: the CRL is due
 * (now, when publish_now) and cached OCSP answers are dropped. */
void api_status_changed(struct api_ctx *ctx, const struct ca_rec *ca, const char *serial, bool publish_now);
/* The CRL half of it: the CA's CRL is due (built now when publish_now). */
void api_status_changed_crl(struct api_ctx *ctx, const struct ca_rec *ca, bool publish_now);
/* The one status path: issued -> revoked|suspended, suspended -> issued|
 * revoked, with audit, CRL and OCSP follow-up. reason: RFC 5280 code (-1
 * none); invalidity 0 = none; comment (NULL = none) is kept with the
 * certificate (at most API_STATUS_COMMENT_MAX bytes, checked by the caller
 * with api_comment_ok). 4xx/5xx in e. */
#define API_STATUS_COMMENT_MAX 1024
int api_cert_set_status(struct api_ctx *ctx, const struct ca_rec *c, const char *serial, const char *to, int reason,
                        int64_t invalidity, const char *comment, const char *actor, const char *ip, bool publish_now,
                        struct err *e);
/* The CA named by the route's params[1] in `partition` (deleted ones only
 * when allow_deleted). Answers 404 (or 503) itself and returns -1. */
int api_load_ca(struct http_req *req, struct http_resp *resp, const char *partition, struct ca_rec *c,
                bool allow_deleted);
/* A serial number as the store keeps it (lowercase hex of the INTEGER's
 * content octets, "00" before a first octet >= 0x80) from what people
 * type: any case, leading zeros or none, odd length, ':' separators.
 * -1 when it is not hex or too long. */
int api_serial_norm(const char *in, char *out, size_t n);
/* Certificate list pages. A cursor ("<notAfter>.<serial>", as
 * api_cert_next_cursor gives it) sets q's keyset position; serial_buf (n
 * bytes) keeps the serial q points to. -1 when it is not such a value. */
int api_cert_cursor_parse(const char *cursor, struct cert_query *q, char *serial_buf, size_t n);
/* The next page's cursor (a new JSON string) when the list read one row
 * more than `want`, else JSON null. */
json_t *api_cert_next_cursor(const struct cert_list *l, unsigned want);
/* A status comment is at most API_STATUS_COMMENT_MAX bytes of text without
 * control characters. */
bool api_comment_ok(const char *s);
/* RFC 5280 reason code of a name (unspecified, keyCompromise, ...), -1 when
 * unknown or not allowed for revocation. */
int api_reason_code(const char *name);

/* The route table of the daemon (static storage). */
const struct router *api_router(void);

/* Shared by handler files */
struct principal;
/* Authenticates the caller for `partition` and requires `op` (enum
 * authz_op); answers 401/403/404 itself. */
int api_auth(struct http_req *req, struct http_resp *resp, const char *partition, int op, struct principal *p);
/* Takes one request from the partition's bucket for the route's capability:
 * 1 when over the limit (Retry-After seconds in ra), else 0. */
int api_rate_limited(struct http_req *req, const char *partition, char ra[24], int *limit, bool *premium);
/* The same with a bucket per client address: for requests not yet
 * authenticated, which must not spend the partition's allowance. */
int api_rate_limited_client(struct http_req *req, const char *partition, char ra[24], int *limit, bool *premium);
const char *api_capability_name(int capability);
/* A further operation for an already authenticated principal. */
int api_require(struct http_req *req, struct http_resp *resp, const struct principal *p, int op);
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
void api_profile_list(struct http_req *req, struct http_resp *resp);
void api_profile_get(struct http_req *req, struct http_resp *resp);
void api_profile_clone(struct http_req *req, struct http_resp *resp);
void api_profile_update(struct http_req *req, struct http_resp *resp);
void api_profile_delete(struct http_req *req, struct http_resp *resp);
void api_ca_profiles_get(struct http_req *req, struct http_resp *resp);
void api_ca_profiles_add(struct http_req *req, struct http_resp *resp);
void api_ca_profiles_remove(struct http_req *req, struct http_resp *resp);
void api_cert_issue(struct http_req *req, struct http_resp *resp);
void api_cert_list(struct http_req *req, struct http_resp *resp);
void api_cert_get(struct http_req *req, struct http_resp *resp);
void api_cert_download(struct http_req *req, struct http_resp *resp);
void api_cert_revoke(struct http_req *req, struct http_resp *resp);
void api_cert_revoke_batch(struct http_req *req, struct http_resp *resp);
void api_cert_suspend(struct http_req *req, struct http_resp *resp);
void api_cert_unsuspend(struct http_req *req, struct http_resp *resp);
void api_inventory(struct http_req *req, struct http_resp *resp);
void api_token_create(struct http_req *req, struct http_resp *resp);
void api_token_list(struct http_req *req, struct http_resp *resp);
void api_token_revoke(struct http_req *req, struct http_resp *resp);
void api_audit_list(struct http_req *req, struct http_resp *resp);
void api_audit_verify(struct http_req *req, struct http_resp *resp);
void api_audit_checkpoints(struct http_req *req, struct http_resp *resp);
void api_events_list(struct http_req *req, struct http_resp *resp);
void api_user_invite(struct http_req *req, struct http_resp *resp);
void api_user_list(struct http_req *req, struct http_resp *resp);
void api_user_roles(struct http_req *req, struct http_resp *resp);
void api_user_delete(struct http_req *req, struct http_resp *resp);
void api_invite_accept(struct http_req *req, struct http_resp *resp);
void api_invite_confirm(struct http_req *req, struct http_resp *resp);
void api_login(struct http_req *req, struct http_resp *resp);
void api_login_setup(struct http_req *req, struct http_resp *resp);
void api_login_setup_confirm(struct http_req *req, struct http_resp *resp);
void api_logout(struct http_req *req, struct http_resp *resp);
/* Principal from the session cookie (with CSRF check on writes). */
int api_session_principal(struct http_req *req, const char *partition, struct principal *p, struct err *e);
void api_sup_subscriptions(struct http_req *req, struct http_resp *resp);
void api_sup_partitions(struct http_req *req, struct http_resp *resp);
void api_sup_subscription_create(struct http_req *req, struct http_resp *resp);
void api_sup_assign(struct http_req *req, struct http_resp *resp);
void api_cagw_cred_create(struct http_req *req, struct http_resp *resp);
void api_cagw_cred_list(struct http_req *req, struct http_resp *resp);
void api_cagw_cred_renew(struct http_req *req, struct http_resp *resp);
void api_cagw_cred_grants(struct http_req *req, struct http_resp *resp);
void api_cagw_cred_delete(struct http_req *req, struct http_resp *resp);
void api_openapi(struct http_req *req, struct http_resp *resp);
void api_swagger_index(struct http_req *req, struct http_resp *resp);
void api_swagger_file(struct http_req *req, struct http_resp *resp);
void api_portal_index(struct http_req *req, struct http_resp *resp);
void api_portal_file(struct http_req *req, struct http_resp *resp);
void api_me(struct http_req *req, struct http_resp *resp);
void api_public_crl(struct http_req *req, struct http_resp *resp);
void api_ocsp_post(struct http_req *req, struct http_resp *resp);
void api_ocsp_get(struct http_req *req, struct http_resp *resp);
void api_ca_crl_get(struct http_req *req, struct http_resp *resp);
void api_ca_crl_publish(struct http_req *req, struct http_resp *resp);
void api_ca_crls(struct http_req *req, struct http_resp *resp);
void api_proto_list(struct http_req *req, struct http_resp *resp);
void api_proto_create(struct http_req *req, struct http_resp *resp);
void api_proto_get(struct http_req *req, struct http_resp *resp);
void api_proto_update(struct http_req *req, struct http_resp *resp);
void api_proto_delete(struct http_req *req, struct http_resp *resp);
void api_eab_list(struct http_req *req, struct http_resp *resp);
void api_eab_create(struct http_req *req, struct http_resp *resp);
void api_eab_delete(struct http_req *req, struct http_resp *resp);
void api_cred_list(struct http_req *req, struct http_resp *resp);
void api_cred_create(struct http_req *req, struct http_resp *resp);
void api_cred_delete(struct http_req *req, struct http_resp *resp);
void api_ee_list(struct http_req *req, struct http_resp *resp);
/* Answers {"<field>": [map(row)...]} for the store documents of `kind`
 * under `parent` (protocol configurations' keys, credentials, ...). */
struct obj_rec;
void api_send_obj_list(struct http_req *req, struct http_resp *resp, const char *partition, const char *kind,
                       const char *parent, const char *field, json_t *(*map)(const struct obj_rec *o));
void api_ee_get(struct http_req *req, struct http_resp *resp);
void api_ee_action(struct http_req *req, struct http_resp *resp);
void api_proto_events(struct http_req *req, struct http_resp *resp);

/* Assigns a profile to a CA after checking allowedCATypes (used by CA
 * creation and the CA profiles endpoint). */
struct ca_rec;
int api_assign_profile(struct api_ctx *ctx, const struct principal *p, const struct ca_rec *c, const char *pid,
                       struct err *e);

#endif
