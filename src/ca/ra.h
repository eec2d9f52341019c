/* ra: registration-authority certificates of protocol configurations (the
 * SCEP RA certificate that receives encrypted requests and signs replies,
 * the CMP responder that protects CMP messages). Part of the CA core like
 * the OCSP responder: an RSA-2048 key sealed with the master key and a
 * certificate from the configuration's CA, listed under the CA, not counted
 * against the purchase, re-issued RA_ROLLOVER_DAYS before it expires. */
#ifndef PKIAAS_CA_RA_H
#define PKIAAS_CA_RA_H

#include "ca/ca.h"
#include "util/err.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#define RA_DAYS 365
#define RA_ROLLOVER_DAYS 30

/* purpose: "scep" or "cmp" (names the certificate and its extensions: SCEP
 * gets digitalSignature + keyEncipherment, CMP adds the id-kp-cmcRA EKU).
 * On success *key and *cert are new references the caller frees. */
int ra_cert_get(const struct ca_env *env, const char *partition, const char *ca_id, const char *purpose,
                const char *cfg_id, EVP_PKEY **key, X509 **cert, struct err *e);

#endif
