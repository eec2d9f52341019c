/* ca_cache: the in-memory view of a CA that the hot paths (issuance, OCSP,
 * CRL) need — its record, decoded certificate, chain, assigned profiles and
 * an open signer — so a request does no key unwrapping, no DER decoding and
 * no store round trip for them.
 *
 * Entries are reference counted and immutable. Any CA-level change
 * (create, delete, import, profile assignment) calls ca_cache_invalidate(),
 * which retires every entry of the partition; entries also expire after
 * CA_CACHE_TTL_S. On a shared store (several nodes) the change also bumps
 * the partition's store_epoch (ca_pk 0), and every lookup compares it, so
 * a CA deleted on one node stops issuing on the others at once. */
#ifndef PKIAAS_CA_CA_CACHE_H
#define PKIAAS_CA_CA_CACHE_H

#include "ca/ca.h"

#include <stdatomic.h>

#define CA_CACHE_TTL_S 30

struct ca_runtime {
    _Atomic int refs;
    struct ca_rec rec;     /* key_blob removed */
    X509 *cert;
    int64_t not_after;     /* cert's notAfter, seconds since the epoch */
    STACK_OF(X509) *chain; /* this CA first, up to the root */
    char **chain_pem;      /* the same certificates in PEM, encoded once */
    struct signer *signer; /* NULL for external / pending CAs */
    char **profiles;
    size_t nprofiles;
    int64_t loaded_at;
    unsigned gen;
    int64_t epoch; /* the partition's store_epoch before loading (shared stores) */
    /* The CA's own certificate as its parent in this partition records it:
     * "issued", "revoked" or "suspended" ("" when the parent is not managed
     * here, e.g. a root or an external root). A status change of a CA
     * certificate invalidates the partition's entries. */
    char cert_status[16];
};

struct ca_cache;
struct ca_cache *ca_cache_new(void);
void ca_cache_free(struct ca_cache *c);

/* A live (active or pending, not deleted) CA, or NULL with a 404/503 in e. */
struct ca_runtime *ca_runtime_get(const struct ca_env *env, const char *partition, const char *id, struct err *e);
void ca_runtime_release(struct ca_runtime *rt);
/* Another reference to an entry the caller holds. */
struct ca_runtime *ca_runtime_ref(struct ca_runtime *rt);
bool ca_runtime_has_profile(const struct ca_runtime *rt, const char *profile_id);
void ca_cache_invalidate(const struct ca_env *env, const char *partition);
/* The EC domain parameters CSR intake copies (x509/csr.h); NULL without a
 * cache. */
struct csr_keys;
const struct csr_keys *ca_cache_csr_keys(const struct ca_cache *c);

#endif
