/* csr: PKCS#10 decoding with proof of possession.
 *
 * Accepts PEM, DER or unarmoured base64 DER (at most CSR_MAX bytes). DER
 * must decode exactly (no trailing bytes). The request's self-signature is
 * always verified (RFC 2986 section 3: proof of possession). */
#ifndef PKIAAS_X509_CSR_H
#define PKIAAS_X509_CSR_H

#include "util/limits.h"
#include "util/err.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stddef.h>

#define CSR_MAX LIMIT_CSR_BYTES

X509_REQ *csr_parse(const unsigned char *data, size_t len, struct err *e);

/* Domain parameters of P-256, P-384 and P-521, built once: a request's EC
 * key is then a copy of them plus its point, instead of a curve built from
 * its name for every request. Immutable after csr_keys_new (shared between
 * threads); NULL from csr_keys_new when out of memory. */
struct csr_keys;
struct csr_keys *csr_keys_new(void);
void csr_keys_free(struct csr_keys *k);

/* The same, faster (no decoder framework for the usual RSA and ECDSA keys),
 * accepting and refusing exactly what csr_parse does. `keys` is optional.
 * The subject key goes to *pub (the caller's reference):
 * X509_REQ_get0_pubkey() on the result may be NULL, its
 * SubjectPublicKeyInfo is the request's as received. */
X509_REQ *csr_parse_key(const unsigned char *data, size_t len, const struct csr_keys *keys, EVP_PKEY **pub,
                        struct err *e);

/* The request's subjectAltName (NULL when it has none): 0, or -1 when its
 * extension request or SAN does not decode. */
int csr_sans(X509_REQ *csr, GENERAL_NAMES **out);

/* Renewal rule: the request has the subject of the certificate being
 * renewed (X509_NAME_cmp; when exact, RFC 7030 4.2.2, also the same values
 * byte for byte: no case or space differences, the string type aside) and,
 * when exact, exactly its subject alternative names; otherwise (SCEP
 * RenewalReq) no name the certificate does not have.
 * 0, or -1 with the reason in why. */
int csr_names_match_cert(X509_REQ *csr, X509 *cur, bool exact, char *why, size_t wn);
/* The same rule for a subject and subjectAltName given apart (a CRMF
 * template); sans may be NULL (no names). */
int names_match_cert(const X509_NAME *subject, const GENERAL_NAMES *sans, X509 *cur, bool exact, char *why,
                     size_t wn);

#endif
