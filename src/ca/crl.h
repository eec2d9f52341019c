/* crl: full v2 CRLs per CA (RFC 5280 section 5), built by streaming the
 * revoked entries from the store straight into DER — no per-entry OpenSSL
 * objects, so a million entries stay within a few hundred MB — then signed
 * through the CA's signer.
 *
 * CRL extensions: authorityKeyIdentifier, cRLNumber (strictly increasing,
 * reserved in the store), expiredCertsOnCRL (2.5.29.60: revoked
 * certificates stay listed after they expire). Entry extensions: reasonCode
 * (absent for unspecified, per 5.3.1), invalidityDate; certificates on hold
 * are listed with reasonCode certificateHold.
 *
 * The cache holds the latest CRL of each CA for the download endpoint;
 * status changes mark a CA dirty and the scheduler rebuilds it (on a shared
 * store: changes made on any node, seen through store_epoch). */
#ifndef PKIAAS_CA_CRL_H
#define PKIAAS_CA_CRL_H

#include "ca/ca.h"

#include <stdatomic.h>
#include <stdint.h>

#define CRL_VALIDITY_S (7 * 24 * 3600)

struct crl_blob {
    _Atomic int refs;
    unsigned char *der;
    size_t len;
    int64_t number, this_update, next_update;
    char etag[48];
};
void crl_blob_release(struct crl_blob *b);

struct buf;
/* Appends the DER of one revokedCertificates entry (RFC 5280 5.1.2.6):
 * minimal INTEGER serial, UTCTime/GeneralizedTime revocation date, and the
 * entry extensions. -1 on a malformed serial. */
int crl_encode_entry(const struct revoked_entry *re, struct buf *out);

#define CRL_FULL (-1)
#define CRL_MAX_SHARDS 1024

/* Builds, signs and stores a new CRL of one scope (CRL_FULL, or a shard of
 * a partitioned CA: then with a critical issuingDistributionPoint naming the
 * shard's URL and onlyContainsUserCerts); returns it (caller releases). */
struct crl_blob *crl_generate(const struct ca_env *env, const struct ca_rec *ca, int shard, struct err *e);
/* Shard of a certificate serial (bytes) for a CA with `shards` partitions:
 * the last 32 bits of the serial (its random part) modulo shards. */
int crl_shard_of(const unsigned char *serial, size_t len, int shards);

struct crl_cache;
struct crl_cache *crl_cache_new(void);
void crl_cache_free(struct crl_cache *c);
/* Latest CRL of a CA: from memory, else the store, else built now. */
struct crl_blob *crl_cache_get(struct crl_cache *c, const struct ca_env *env, const struct ca_rec *ca, int shard,
                               struct err *e);
void crl_cache_put(struct crl_cache *c, int64_t ca_pk, int shard, struct crl_blob *b);
void crl_cache_mark_dirty(struct crl_cache *c, int64_t ca_pk, int64_t now);
/* Rebuilds every scope of a CA (the full CRL, then each shard), caches
 * them and clears the CA's dirty mark. Returns the full CRL (caller
 * releases) or NULL. */
struct crl_blob *crl_publish_all(struct crl_cache *c, const struct ca_env *env, const struct ca_rec *ca,
                                 struct err *e);

/* Every crl_cache_mark_dirty moves the CA's change sequence. A rebuild
 * reads it before it reads the revoked list and passes it to
 * crl_cache_clean, which clears the dirty mark only if no change was marked
 * since: a revocation committed while the CRL was being built (even within
 * the same second) leaves the CA dirty, so the next tick rebuilds it. */
uint64_t crl_cache_dirty_seq(struct crl_cache *c, int64_t ca_pk);
void crl_cache_clean(struct crl_cache *c, int64_t ca_pk, uint64_t seq);
/* Shared stores: the store_epoch of the CA at its last publication here
 * (0 = none); the scheduler marks the CA dirty when the store's moved. */
int64_t crl_cache_epoch(struct crl_cache *c, int64_t ca_pk);
void crl_cache_set_epoch(struct crl_cache *c, int64_t ca_pk, int64_t epoch);
/* Shared stores: how long a cached CRL is served before the store is asked
 * for a newer one (published by another node). */
#define CRL_SHARED_RECHECK_S 5
/* When the CA's cached CRL was marked dirty (0 = clean). */
int64_t crl_cache_dirty_since(struct crl_cache *c, int64_t ca_pk);

#endif
