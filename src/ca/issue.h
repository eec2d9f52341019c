/* issue: the issuance core — the one path every protocol's certificate
 * takes (ARCHITECTURE.md "One path for every certificate").
 *
 *   request → authorize CA/profile → key (CSR with proof of possession, or
 *   server-side generation) → subject / SANs / extensions from the profile
 *   → validity (request, profile, default 3 years; capped at the CA) → lint
 *   → signer → store commit (certificate row + quota + audit in one
 *   transaction) → result.
 *
 * A certificate is returned only after its row is committed. Every refusal
 * caused by the request is a 4xx in `struct err` naming the field; a lint
 * failure is a logged 500 and nothing is signed. */
#ifndef PKIAAS_CA_ISSUE_H
#define PKIAAS_CA_ISSUE_H

#include "ca/ca.h"
#include "util/limits.h"
#include "ca/profile.h"

struct ca_runtime;

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>

#define ISSUE_DEFAULT_YEARS 3
#define ISSUE_MAX_REQ_EXTS LIMIT_REQ_EXTENSIONS

struct issue_req {
    const char *partition;
    const char *ca_id;
    const char *profile_id;
    const unsigned char *csr;   /* PEM / DER / base64; NULL for server-side keys */
    size_t csr_len;
    const char *key_type;       /* server-side key: RSA-2048 ... EC-P521 */
    EVP_PKEY *pubkey;           /* a subject public key whose possession the
                                 * protocol has already proven (CMP CRMF POPO
                                 * verified by OpenSSL's CMP server); instead
                                 * of csr / key_type. Borrowed. */
    const X509_NAME *subject_name; /* subject as a name (CMP templates) when
                                 * `subject` is NULL and there is no CSR */
    X509_REQ *template_csr;     /* server-side key (key_type) asked for with a
                                 * CSR (EST serverkeygen): its extensionRequest,
                                 * subjectAltName included, is taken exactly as
                                 * a CSR request's; its key is not used.
                                 * Borrowed. */
    const char *p12_password;
    const char *subject;        /* DN string; NULL = use the CSR's subject */
    const json_t *sans;         /* [{type, value}] */
    const json_t *extensions;   /* [{oid, critical, value(base64 DER)}] */
    const char *validity_period;/* ISO 8601 duration */
    const char *not_after;      /* RFC 3339 */
    const char *not_before;     /* RFC 3339; NULL = now. May lie in the future
                                 * (a certificate for later), not in the past */
    bool ignore_csr_sans;       /* drop the CSR's subjectAltName request; only
                                 * `sans` (and the subject CN rule) name it */
    const char *requester;      /* principal, for the record and audit */
    const char *requester_ip;   /* source address, for the audit */
};

struct issue_result {
    unsigned char *der;         /* the certificate */
    size_t der_len;
    int64_t not_before, not_after;
    STACK_OF(X509) *chain;      /* issuing CA first, up to the root */
    struct ca_runtime *ca;      /* the issuing CA's cache entry (held): its
                                 * chain_pem is `chain` in PEM */
    char serial[48];
    bool capped;                /* validity was cut at the CA's notAfter */
    unsigned char *p12;
    size_t p12_len;
};

int issue_certificate(const struct ca_env *env, const struct issue_req *r, struct issue_result *out, struct err *e);
void issue_result_free(struct issue_result *r);

/* Profile lookup within a partition: system profiles are shared (do not
 * free), custom ones are parsed from the store (free with profile_release). */
const struct profile *profile_resolve(struct store *st, const char *partition, const char *id, struct err *e);
void profile_release(const struct profile *p);

/* The CA chain (ca's certificate first, up to its root) as a new stack. */
STACK_OF(X509) *ca_chain(const struct ca_env *env, const struct ca_rec *ca);

#endif
