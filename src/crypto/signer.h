/* signer: the one interface certificate, CRL and OCSP code signs through.
 *
 * A signer turns to-be-signed bytes into a signature and announces its
 * AlgorithmIdentifier (DER). Certificate code never touches the private key:
 * it assembles TBS, calls signer_sign(), and wraps TBS + algorithm +
 * signature itself, so an HSM (PKCS#11) or post-quantum signer that is not
 * an OpenSSL EVP_PKEY drops in by providing another ops table.
 *
 * Signers are safe to use from several threads at once. */
#ifndef PKIAAS_CRYPTO_SIGNER_H
#define PKIAAS_CRYPTO_SIGNER_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

struct signer;

struct signer_ops {
    int (*sign)(struct signer *s, const unsigned char *tbs, size_t tbslen, unsigned char **sig, size_t *siglen);
    void (*destroy)(struct signer *s);
};

struct signer {
    const struct signer_ops *ops;
    unsigned char *algid;  /* DER AlgorithmIdentifier */
    size_t algid_len;
    EVP_PKEY *pub;         /* public half (for SKI, checks), owned */
    void *impl;
};

/* Software signer over an EVP_PKEY private key (reference taken, caller keeps
 * its own). md: "SHA256"/"SHA384"/"SHA512"; pss: RSASSA-PSS with MGF1 of the
 * same digest and salt length = digest length. */
struct signer *signer_soft_new(EVP_PKEY *key, const char *md, bool pss);
/* On success *sig is malloc'd. 0 / -1. */
int signer_sign(struct signer *s, const unsigned char *tbs, size_t tbslen, unsigned char **sig, size_t *siglen);
/* A fresh X509_ALGOR copy of the signer's algorithm identifier. */
X509_ALGOR *signer_algor(const struct signer *s);
void signer_free(struct signer *s);

#endif
