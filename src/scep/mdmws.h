/* mdmws: MDM integrations (Jamf, Workspace ONE, Ivanti, IBM MaaS360) for
 * protocol configurations of type "mdmws".
 *
 * Digital IDs (admin API, /protocols/{id}/digital-ids) describe the
 * certificates an MDM may ask for: a name, a parent DN, an RDN format with
 * <variable> placeholders (always igusername, iggroup, devicetype; the
 * renewal variable profileid when used) and a profile of group mdmws
 * assigned to the configuration's CA.
 *
 * The MDM web service under /mdm/v2/mdmws/{accountId}/{configId}/ (JSON,
 * HTTP Basic with the configuration's credentials) hands out one-time SCEP
 * challenges bound to a Digital ID and its variable values, issues PKCS#12
 * for mdmws-p12-* profiles, revokes, and lists what it issued. Devices
 * enrol at /mdm/v2/scep/{accountId}/{configId} (the SCEP engine), where the
 * challenge selects the subject and profile. */
#ifndef PKIAAS_SCEP_MDMWS_H
#define PKIAAS_SCEP_MDMWS_H

#include "api/api.h"
#include "http/router.h"
#include "proto/proto.h"
#include "util/json_util.h"

#include <jansson.h>
#include <stdbool.h>

#define MDM_DIGITAL_ID_KIND "mdm-digital-id"
#define MDM_CHALLENGE_KIND "mdm-challenge"

extern const char *const mdmws_setting_keys[];
int mdmws_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e);
char *mdmws_scep_url(const char *https_base, const char *partition, const char *config);

/* What a one-time challenge grants: filled by mdmws_take_challenge. */
struct mdm_grant {
    char digital_id[80];
    char profile_id[STORE_ID_MAX + 1];
    char *subject;       /* resolved DN (malloc'd) */
    struct obj_rec took; /* the challenge record as it was taken (for mdmws_return_challenge) */
};
void mdm_grant_free(struct mdm_grant *g);
/* Puts a taken challenge back (the request it was taken for was refused
 * after all): it stays usable until it would have expired. */
void mdmws_return_challenge(struct store *st, struct mdm_grant *g);
/* Whether a challenge of configuration `cfg` is live (nothing consumed). */
bool mdmws_challenge_live(struct store *st, const char *partition, const char *cfg, const char *challenge);
/* Consumes a challenge of configuration `cfg` (single use, expiring). */
int mdmws_take_challenge(struct store *st, const char *partition, const char *cfg, const char *challenge,
                         struct mdm_grant *out);

/* Admin API: Digital IDs of a configuration. */
void api_digital_id_list(struct http_req *req, struct http_resp *resp);
void api_digital_id_create(struct http_req *req, struct http_resp *resp);
void api_digital_id_delete(struct http_req *req, struct http_resp *resp);

extern const struct route mdmws_routes[];
extern const size_t mdmws_routes_count;

#endif
