/* ocsp: the OCSP responder of each OCSP-enabled CA (RFC 6960 with the
 * RFC 5019 profile).
 *
 *  - Delegated responder: a certificate issued by the CA for a key of the
 *    CA's "VA key type" (signing-key-details table), with id-kp-OCSPSigning
 *    and id-pkix-ocsp-nocheck, valid 30 days, rolled over 7 days before it
 *    expires.
 *  - Requests: up to OCSP_MAX_IDS CertIDs (SHA-1 or SHA-256 hashes), nonce
 *    per RFC 8954 (1-32 octets, echoed), optional signature (verified when
 *    present; required when the CA is configured so).
 *  - Answers: good / revoked (time, reason; on-hold = certificateHold) /
 *    unknown, archiveCutoff, responder id by key. Garbage gets
 *    malformedRequest, foreign issuers unauthorized — never an HTTP error.
 *  - Nonce-less requests are answered from a per-CA cache of signed
 *    responses, dropped whenever a certificate of the CA changes status
 *    (on a shared store: whenever the CA's store_epoch moved, whichever
 *    node made the change). */
#ifndef PKIAAS_CA_OCSP_H
#define PKIAAS_CA_OCSP_H

#include "ca/ca.h"
#include "util/limits.h"

#include <stddef.h>
#include <stdint.h>

#define OCSP_MAX_IDS LIMIT_OCSP_IDS
#define OCSP_MAX_REQUEST LIMIT_OCSP_REQUEST_BYTES
#define OCSP_RESPONDER_DAYS 30
#define OCSP_ROLLOVER_DAYS 7
#define OCSP_VALIDITY_S (24 * 3600)

#include <openssl/ocsp.h>

/* RFC 8954 nonce rules: -1 malformed (not an OCTET STRING of 1-32 octets,
 * or given twice), 0 absent, 1 present and acceptable. */
int ocsp_nonce_check(OCSP_REQUEST *req);

/* Issues (or rolls over) the responder certificate of an OCSP-enabled CA. */
int ocsp_responder_ensure(const struct ca_env *env, const struct ca_rec *ca, struct err *e);

struct ocsp_cache;
struct ocsp_cache *ocsp_cache_new(void);
void ocsp_cache_free(struct ocsp_cache *c);
/* Drops every cached response of a CA (CA-level changes). */
void ocsp_cache_invalidate(struct ocsp_cache *c, int64_t ca_pk);
/* Drops the CA's responder state (and answers): the next request loads the
 * responder certificate afresh from the store. */
void ocsp_cache_reload(struct ocsp_cache *c, int64_t ca_pk);
/* Whether serial (hex) is the CA's current OCSP responder certificate. */
bool ocsp_responder_serial(const struct ca_env *env, const struct ca_rec *ca, const char *serial);
/* A certificate of the CA changed status: the cached answers that mention
 * it (and all multi-certificate ones) are re-signed at once with the new
 * status. */
void ocsp_cache_changed(struct ocsp_cache *c, const struct ca_env *env, int64_t ca_pk, const char *serial);
/* Re-signs cached answers a quarter of the way to their nextUpdate, so
 * popular requests are always answered from memory (scheduler). */
void ocsp_cache_refresh(struct ocsp_cache *c, const struct ca_env *env);

struct ocsp_answer {
    unsigned char *der; /* OCSPResponse, malloc'd */
    size_t len;
    int64_t this_update, next_update; /* 0 for error responses */
    int cached;
};

/* Always produces an OCSPResponse (error statuses included) unless out of
 * memory (-1). */
int ocsp_respond(const struct ca_env *env, struct ocsp_cache *cache, const char *partition, const char *ca_id,
                 const unsigned char *req, size_t len, struct ocsp_answer *out);

#endif
