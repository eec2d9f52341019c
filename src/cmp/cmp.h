/* cmp: the CMP server for protocol configurations of type "cmp".
 * Protocol code calls the issuance core (issue_certificate) and the one
 * status path (api_cert_set_status); it never builds certificates. */
#ifndef PKIAAS_CMP_CMP_H
#define PKIAAS_CMP_CMP_H

#include "http/router.h"
#include "util/limits.h"
#include "store/store.h"
#include "util/json_util.h"

#include <jansson.h>
#include <stdbool.h>

/* Validates the CMP settings of an admin API request body and copies them
 * into the configuration document `doc` (create: defaults for what is
 * absent). -1 naming the field in e. */
int cmp_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e);
/* The settings keys cmp_settings_apply understands (NULL-terminated). */
extern const char *const cmp_setting_keys[];
/* The endpoint URL of a configuration (malloc'd). */
char *cmp_url(const char *https_base, const char *partition, const char *config);

extern const struct route cmp_routes[];
extern const size_t cmp_routes_count;

/* Open CMP transactions (an issued certificate waiting for its certConf)
 * are `object` rows of this kind, id "<configId>/<hex transactionID>",
 * living CMP_TXN_TTL_S seconds. */
#define CMP_TXN_KIND "cmp-txn"
#define CMP_TXN_TTL_S LIMIT_CMP_TXN_TTL_S
/* how far ahead of our clock a request's messageTime may be */
#define CMP_MAX_SKEW_S 300

/* How long an issued certificate waits for its certConf when implicit
 * confirmation is not granted (RFC 4210 5.1.1.2 confirmWaitTime): after it
 * the certificate is revoked and a late certConf is refused. Per
 * configuration ("confirmWaitSeconds"); the maximum keeps the deadline
 * inside the transaction row's life. */
#define CMP_CONFIRM_WAIT_DEFAULT_S 300
#define CMP_CONFIRM_WAIT_MIN_S 5
#define CMP_CONFIRM_WAIT_MAX_S 3600
/* how often the housekeeping looks for unconfirmed certificates */
#define CMP_CONFIRM_SWEEP_S 5

struct api_ctx;
/* Drops expired transaction rows and revokes the certificates of open
 * transactions whose confirmation deadline has passed (call from the
 * daemon's housekeeping, on one node; `next_sweep` is the caller's pace
 * keeper, 0 at first). */
void cmp_housekeeping(struct api_ctx *ctx, int64_t *next_sweep);

#endif
