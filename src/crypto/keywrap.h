/* keywrap: AES-256-GCM sealing of private keys and server-side secrets
 * under the master key.
 *
 * Blob layout: "PKW1" | nonce (12) | ciphertext | tag (16). The associated
 * data (e.g. "ca-key:<partition>/<ca id>") binds a blob to the record it
 * belongs to, so a blob copied into another row fails to open. */
#ifndef PKIAAS_CRYPTO_KEYWRAP_H
#define PKIAAS_CRYPTO_KEYWRAP_H

#include <openssl/evp.h>
#include <stddef.h>

#define MASTER_KEY_LEN 32

int keywrap_seal(const unsigned char key[MASTER_KEY_LEN], const unsigned char *pt, size_t ptlen, const char *aad,
                 unsigned char **out, size_t *outlen);
/* -1 when the blob was altered, the AAD differs or the key is wrong. */
int keywrap_open(const unsigned char key[MASTER_KEY_LEN], const unsigned char *blob, size_t bloblen, const char *aad,
                 unsigned char **out, size_t *outlen);

/* Private key <-> sealed PKCS#8 DER. The plaintext DER is wiped. */
int keywrap_seal_pkey(const unsigned char key[MASTER_KEY_LEN], EVP_PKEY *pk, const char *aad, unsigned char **out,
                      size_t *outlen);
EVP_PKEY *keywrap_open_pkey(const unsigned char key[MASTER_KEY_LEN], const unsigned char *blob, size_t bloblen,
                            const char *aad);

#endif
