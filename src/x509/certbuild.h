/* certbuild: TBSCertificate assembly and signing through a signer.
 *
 * The only place that turns a certificate template into a signed DER
 * certificate: TBS is encoded, handed to signer_sign(), and the
 * Certificate SEQUENCE { tbs, signatureAlgorithm, signatureValue } is put
 * together here (RFC 5280 4.1). */
#ifndef PKIAAS_X509_CERTBUILD_H
#define PKIAAS_X509_CERTBUILD_H

#include "crypto/signer.h"
#include "x509/ext.h"

#include <openssl/x509.h>
#include <stdint.h>

struct cert_template {
    const X509_NAME *subject;
    const X509_NAME *issuer;
    EVP_PKEY *pubkey;
    const X509_PUBKEY *spki;   /* alternative to pubkey: copied as is (no re-encoding) */
    int64_t not_before;
    int64_t not_after;
    unsigned char serial[SERIAL_LEN];
    const STACK_OF(X509_EXTENSION) *exts; /* in the order they are encoded */
};

/* The TBSCertificate of t with the signer's signature algorithm, DER in
 * *der (OPENSSL_free). The template's objects are only read. */
int certbuild_tbs_der(const struct cert_template *t, struct signer *s, unsigned char **der, size_t *len);

/* The signed certificate as DER in *der (malloc'd). */
int certbuild_sign_der(const struct cert_template *t, struct signer *s, unsigned char **der, size_t *len);

/* The same, decoded: a new X509 (caller frees) or NULL with a message in err. */
X509 *certbuild_sign(const struct cert_template *t, struct signer *s, char *err, size_t errlen);

/* Wraps `tbs` with the signer's algorithm and signature: the generic
 * SIGNED{} construction shared by certificates, CRLs and CSRs.
 * *out is malloc'd DER. */
int certbuild_signed_der(struct signer *s, const unsigned char *tbs, size_t tbslen, unsigned char **out,
                         size_t *outlen);

#endif
