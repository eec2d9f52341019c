/* intune: the Microsoft Intune side of SCEP configurations of type
 * "intune" (third-party CA integration, "scep_challenge_provider").
 *
 * - Each PKCSReq is validated by Intune before issuance: an Azure AD token
 *   (client credentials of the configured app), discovery of the Intune
 *   SCEP validation service through Microsoft Graph, then
 *   ScepActions/validateRequest with the transaction id and the CSR.
 * - After issuance (or a refusal) Intune is told: successNotification /
 *   failureNotification.
 * - Periodically (revocationSyncHours, default 24) the revocation requests
 *   Intune holds for this CA are downloaded, carried out through the one
 *   status path, and their results uploaded.
 * Every URL is configurable (tokenUrl, graphUrl, intuneUrl) so operators
 * behind proxies and the tests (a local stand-in that follows Microsoft's
 * documented request and response shapes) can point elsewhere. */
#ifndef PKIAAS_SCEP_INTUNE_H
#define PKIAAS_SCEP_INTUNE_H

#include "api/api.h"
#include "ca/issue.h"
#include "proto/proto.h"
#include "util/json_util.h"

/* When a configuration's revocation sync last ran (object kind, id: the
 * configuration's). */
#define INTUNE_SYNC_KIND "intune-sync"

#include <jansson.h>
#include <stdbool.h>

extern const char *const intune_setting_keys[];
/* tenantId, appId (required on creation), tokenUrl, graphUrl, intuneUrl,
 * revocationSyncHours. The app key is sealed by the admin API (it needs the
 * master key) into doc "appKeySealed". */
int intune_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e);
/* AAD of the sealed app key. */
void intune_key_aad(char *out, size_t n, const char *partition, const char *cfg_id);

/* 0 when Intune accepts the request (the challenge inside the CSR is
 * Intune's); -1 with the reason in e otherwise. */
int intune_validate(struct api_ctx *ctx, const struct proto_cfg *cfg, const char *txid, const unsigned char *csr,
                    size_t csr_len, struct err *e);
/* Success (res != NULL) or failure notification; best effort, logged. */
void intune_notify(struct api_ctx *ctx, const struct proto_cfg *cfg, const char *txid, const unsigned char *csr,
                   size_t csr_len, const struct issue_result *res, const char *error);
/* Runs the revocation sync of every Intune configuration that is due
 * (scheduler housekeeping; `arg` is the struct api_ctx). */
void intune_revocation_sync_due(struct api_ctx *ctx);

#endif
