/* proto: protocol configurations (ACME now; SCEP, EST, CMP, MDM later) as
 * every protocol module and the admin API see them. A configuration names
 * its issuing CA and certificate profile; type-specific settings live in
 * its JSON document. Stored as `object` rows of kind "protocol"; secrets
 * that belong to a configuration (EAB keys, credentials) are rows of their
 * own kinds whose parent is the configuration id. */
#ifndef PKIAAS_PROTO_PROTO_H
#define PKIAAS_PROTO_PROTO_H

#include "store/store.h"
#include "util/err.h"

#include <jansson.h>
#include <stdbool.h>

#define PROTO_KIND "protocol"
#define PROTO_ID_MIN 2
#define PROTO_ID_MAX 18

struct proto_cfg {
    char partition[STORE_ID_MAX + 1];
    char id[PROTO_ID_MAX + 1];
    char type[16];              /* "acme" */
    char ca_id[24];
    char profile_id[STORE_ID_MAX + 1];
    json_t *doc;                /* the whole stored document (owned) */
    int64_t version;
    int64_t created_at;         /* tells it from an earlier configuration with the same id */
};

/* 2-18 characters of [a-z0-9_-]. */
bool proto_id_valid(const char *id);
/* The live configuration `id` of `partition`; 404 "not_found" in e. When
 * `type` is given, a configuration of another type is also not found. */
int proto_cfg_load(struct store *st, const char *partition, const char *id, const char *type,
                   struct proto_cfg *out, struct err *e);
void proto_cfg_free(struct proto_cfg *c);

/* 1 when a live configuration uses `profile_id` (through `ca_id`, or any
 * CA when ca_id is NULL), with its id in cfg_out; 0 when none; -1 on a
 * store failure. Profiles and CA profile assignments in use cannot go. */
int proto_profile_in_use(struct store *st, const char *partition, const char *profile_id, const char *ca_id,
                         char *cfg_out, size_t n);

/* Credentials of a configuration (EST Basic passwords, CMP MAC secrets,
 * SCEP static challenges): `object` rows of kind PROTO_CRED_KIND, id
 * "<configId>/<credentialId>", parent = configuration id, the secret sealed
 * with the master key (AAD "cred:<partition>/<id>"). The admin API creates
 * them (secret shown once); protocols read them here. */
#define PROTO_CRED_KIND "proto-cred"
#define PROTO_CRED_ID_MAX 64
bool proto_cred_id_valid(const char *id);
/* The secret of credential `cred_id` (malloc'd, NUL-terminated; wipe and
 * free it). -1 when unknown. */
int proto_cred_secret(struct store *st, const unsigned char *mkey, const char *partition, const char *cfg,
                      const char *cred_id, char **secret);
/* true when `secret` equals the credential's (constant time). */
bool proto_cred_check(struct store *st, const unsigned char *mkey, const char *partition, const char *cfg,
                      const char *cred_id, const char *secret);
/* true when `secret` equals any credential of the configuration (SCEP
 * challenges carry no identifier); its id goes to cred_out when given. */
bool proto_cred_match_any(struct store *st, const unsigned char *mkey, const char *partition, const char *cfg,
                          const char *secret, char *cred_out, size_t n);

/* End entities: each device or user that enrols through a configuration,
 * keyed by its certificate subject. `object` rows of kind PROTO_EE_KIND,
 * id "<configId>/<sha256(identifier) hex 32>", json {identifier, status
 * (active | inactive | decommissioned), certificates [serials], notAfter}. */
#define PROTO_EE_KIND "end-entity"
/* -1 when the end entity exists and is not active (it may not enrol or
 * renew); 0 otherwise (unknown entities are new, hence allowed). */
int proto_ee_allowed(struct store *st, const char *partition, const char *cfg, const char *identifier);
/* Records an issuance by CA `ca_id` for the end entity (created active
 * when new). The document keeps the newest 100 serials ("certificates")
 * and each one's CA ("certificateCas": serial -> CA id), since the
 * configuration may move to another CA later. */
void proto_ee_record(struct store *st, const char *partition, const char *cfg, const char *identifier,
                     const char *ca_id, const char *serial, int64_t not_after);
void proto_ee_id(const char *cfg, const char *identifier, char *out, size_t n);
/* The identifier of the end entity a subject DN names, as every path writes
 * it (dn_print of the parsed DN: an MDM grant's string and a certificate's
 * subject give the same one); malloc'd, NULL when out of memory. */
char *proto_ee_identifier(const char *dn);

/* HTTP Basic credentials from an Authorization header value: 0 with the
 * user and password copied (bounded, NUL-terminated); -1 when absent,
 * malformed or too long. */
int proto_basic_auth(const char *authorization, char *user, size_t un, char *pass, size_t pn);

/* Typed setting accessors on doc (defaults when absent). */
bool proto_bool(const struct proto_cfg *c, const char *key, bool dflt);
const char *proto_str(const struct proto_cfg *c, const char *key);

#endif
