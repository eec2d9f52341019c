/* profile: certificate profiles — parsing and strict validation of the
 * profile JSON (the guide's "Certificate profile fields" plus documented
 * extras), the built-in system profiles, and canonical JSON output.
 *
 * A parsed profile is immutable and may be shared between threads. */
#ifndef PKIAAS_CA_PROFILE_H
#define PKIAAS_CA_PROFILE_H

#include "util/duration.h"
#include "util/err.h"

#include <jansson.h>
#include <openssl/objects.h>
#include <stdbool.h>
#include <stddef.h>

#define PROFILE_ID_MAX 64
#define PROFILE_MAX_OIDS 32
/* longest dotted object identifier a profile (and so a request) may name */
#define PROFILE_OID_MAX 128

enum { CATYPE_ROOT = 1, CATYPE_INTERMEDIATE = 2, CATYPE_SUBORD = 4 };
enum {
    KT_RSA2048 = 1,
    KT_RSA3072 = 2,
    KT_RSA4096 = 4,
    KT_EC256 = 8,
    KT_EC384 = 16,
    KT_EC521 = 32,
    KT_ALL = 63,
};

struct profile {
    char id[PROFILE_ID_MAX + 1];
    char group[PROFILE_ID_MAX + 1];
    bool system;
    bool authority;
    unsigned ca_types;       /* CATYPE_* */
    struct duration validity;
    char validity_text[32];
    unsigned ku;             /* KU_* bits */
    char *eku[PROFILE_MAX_OIDS];
    size_t neku;
    char *allowed_ext[PROFILE_MAX_OIDS];
    size_t nallowed;
    char *policies[PROFILE_MAX_OIDS];
    size_t npolicies;
    bool ignore_unknown;
    bool ca;
    int path_len;            /* -1 none */
    bool ku_critical, eku_critical;
    bool supply_san, pkcs12, san_required;
    unsigned key_types;      /* KT_* */
    json_t *json;            /* canonical JSON, owned */
};

/* EKUs reserved for the CA's and the service's own certificates (OCSP
 * signing, anyExtendedKeyUsage, CMC CA/RA, Microsoft Certificate Request
 * Agent): never in a custom profile, nor requested in a CSR or request. */
bool profile_eku_reserved(const char *oid);

/* Validates and builds a profile. `system` marks built-in ones. Errors name
 * the field. */
struct profile *profile_from_json(const json_t *j, bool system, struct err *e);
void profile_free(struct profile *p);
bool profile_id_valid(const char *id);
unsigned profile_catype(const char *ca_type);
/* Key type of a public key as a KT_* bit (0 when not an accepted key). */
unsigned profile_key_type(const EVP_PKEY *pk);
const char *profile_key_type_name(unsigned kt);
bool profile_allows_ext(const struct profile *p, const char *oid);

/* System profiles, loaded once from the embedded JSON; process-lifetime,
 * read-only. */
int profiles_system_init(struct err *e);
const struct profile *profiles_system_find(const char *id);
size_t profiles_system_count(void);
const struct profile *profiles_system_at(size_t i);

#endif
