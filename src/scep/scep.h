/* scep: the SCEP server for protocol configurations of type "scep".
 * Protocol code calls the issuance core (issue_certificate) and the one
 * status path (api_cert_set_status); it never builds certificates. */
#ifndef PKIAAS_SCEP_SCEP_H
#define PKIAAS_SCEP_SCEP_H

#include "http/router.h"
#include "util/json_util.h"

#include <jansson.h>
#include <stdbool.h>

/* A SCEP transaction's record (object kind; parent: the configuration). */
#define SCEP_TXN_KIND "scep-txn"

/* Validates the SCEP settings of an admin API request body and copies them
 * into the configuration document `doc` (create: defaults for what is
 * absent). -1 naming the field in e. */
int scep_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e);
/* The settings keys scep_settings_apply understands (NULL-terminated). */
extern const char *const scep_setting_keys[];
/* The endpoint URL of a configuration (malloc'd). */
char *scep_url(const char *https_base, const char *partition, const char *config);

extern const struct route scep_routes[];
extern const size_t scep_routes_count;

#endif
