/* acme: the ACME server (RFC 8555, RFC 8737 tls-alpn-01, RFC 8738 IP
 * identifiers) for protocol configurations of type "acme", under
 * /acme/{accountId}/{configId}/. Accounts, orders and authorizations are
 * store documents (kinds below), so state survives restarts and is shared
 * by every node; nonces too. Certificates come from the issuance core
 * (issue_certificate) and status changes go through api_cert_set_status. */
#ifndef PKIAAS_ACME_ACME_H
#define PKIAAS_ACME_ACME_H

#include "acme/validate.h"
#include "http/router.h"
#include "util/json_util.h"

#include <jansson.h>

struct store;

#define ACME_KIND_ACCOUNT "acme-account"
#define ACME_KIND_ORDER "acme-order"
#define ACME_KIND_AUTHZ "acme-authz"
#define ACME_KIND_NONCE "acme-nonce"
#define ACME_KIND_EAB "acme-eab"

/* Copies the ACME settings of an admin API request body (eabRequired,
 * termsOfService, allowedDomains, allowedIpRanges) into `doc` after
 * validating them; -1 naming the field in e. Absent settings keep what doc
 * has (defaults on creation: EAB required, no identifier restriction). */
int acme_settings_apply(const json_t *body, json_t *doc, struct jerr *e);
/* The settings keys acme_settings_apply understands (NULL-terminated). */
extern const char *const acme_setting_keys[];
/* https://HOST/acme/{partition}/{config}/directory */
char *acme_directory_url(const char *https_base, const char *partition, const char *config);

/* Route table of the protocol (static storage). */
extern const struct route acme_routes[];
extern const size_t acme_routes_count;

/* Housekeeping from the scheduler: expired nonces, orders, authorizations. */
void acme_housekeeping(struct store *st);
/* A deleted configuration's accounts, their orders and authorizations go
 * with it: a later configuration with the same id (another CA, EAB now
 * required) must not honour them. */
void acme_forget_configuration(struct store *st, const char *partition, const char *cfg);

#endif
