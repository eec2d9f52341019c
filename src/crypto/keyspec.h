/* keyspec: the "Signing Key Details" table of the product guide.
 *
 * Each label fixes the CA key algorithm, the signature algorithm the CA uses,
 * and the key type / signature algorithm of its validation-authority (OCSP
 * responder) key. Post-quantum labels are listed but not yet supported: a
 * caller asking to generate one gets an error (see keyspec_generate). */
#ifndef PKIAAS_CRYPTO_KEYSPEC_H
#define PKIAAS_CRYPTO_KEYSPEC_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

enum keyspec_kind { KEYSPEC_RSA, KEYSPEC_EC, KEYSPEC_PQ };

struct keyspec {
    const char *label;
    const char *key_algorithm;  /* e.g. RSA2048, ECDSAP256 */
    const char *sig_algorithm;  /* e.g. sha256WithRSAEncryption */
    const char *va_key_type;
    const char *va_sig_algorithm;
    enum keyspec_kind kind;
    int bits;                   /* RSA modulus size */
    const char *curve;          /* EC group name */
    const char *md;             /* digest name */
    bool pss;
    const char *va_label;       /* classical label used for the VA key */
};

size_t keyspec_count(void);
const struct keyspec *keyspec_at(size_t i);
const struct keyspec *keyspec_find(const char *label);
static inline bool keyspec_supported(const struct keyspec *k) { return k->kind != KEYSPEC_PQ; }
/* Generates a fresh key pair for the label; NULL for unsupported labels. */
EVP_PKEY *keyspec_generate(const struct keyspec *k);
/* Describes a public key the way the guide names key types ("RSA2048",
 * "ECDSAP256"); writes into out. */
void keyspec_describe_key(const EVP_PKEY *pk, char *out, size_t n);

#endif
