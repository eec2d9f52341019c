/* svc_cert: certificates a CA issues to its own services — the OCSP
 * responder, SCEP RA and CMP responder certificates. They are not customer
 * certificates (no profile, no purchase counted), but they are issued
 * certificates like any other: listed under the CA, on its CRL when
 * revoked. The caller keeps the key; this signs and records. */
#ifndef PKIAAS_CA_SVC_CERT_H
#define PKIAAS_CA_SVC_CERT_H

#include "ca/ca.h"
#include "util/err.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>

struct svc_cert_req {
    const char *dn;           /* subject, RFC 4514 */
    EVP_PKEY *key;            /* subject public key */
    unsigned ku;              /* KU_* bits */
    const char *eku;          /* extendedKeyUsage (X509V3 conf text) or NULL */
    bool ocsp_nocheck;        /* id-pkix-ocsp-nocheck */
    int days;                 /* validity, capped at the CA's notAfter */
    const char *profile_id;   /* recorded with the certificate, e.g. "ocsp-responder" */
    const struct audit_rec *audit; /* recorded with the certificate row (may be NULL) */
};

/* Signs with the CA and inserts the certificate row (not counted against
 * the purchase). Returns the certificate (caller frees) with its DER in
 * *der (OPENSSL_free) and validity in *not_before / *not_after. */
X509 *svc_cert_issue(const struct ca_env *env, const struct ca_rec *ca, const struct svc_cert_req *r,
                     unsigned char **der, size_t *der_len, int64_t *not_before, int64_t *not_after, struct err *e);

#endif
