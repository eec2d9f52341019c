#include "crypto/keywrap.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "PKW1"
#define NONCE_LEN 12
#define TAG_LEN 16
#define HDR_LEN (4 + NONCE_LEN)

int keywrap_seal(const unsigned char key[MASTER_KEY_LEN], const unsigned char *pt, size_t ptlen, const char *aad,
                 unsigned char **out, size_t *outlen)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    unsigned char *b = NULL;
    int n = 0, rc = -1;
    if (!c || ptlen > (1u << 30))
        goto out;
    size_t total = HDR_LEN + ptlen + TAG_LEN;
    if (!(b = malloc(total)))
        goto out;
    memcpy(b, MAGIC, 4);
    if (RAND_bytes(b + 4, NONCE_LEN) != 1)
        goto out;
    if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(c, NULL, NULL, key, b + 4) != 1)
        goto out;
    if (aad && EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) != 1)
        goto out;
    if (EVP_EncryptUpdate(c, b + HDR_LEN, &n, pt, (int)ptlen) != 1)
        goto out;
    int fin = 0;
    if (EVP_EncryptFinal_ex(c, b + HDR_LEN + n, &fin) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, b + HDR_LEN + ptlen) != 1)
        goto out;
    *out = b;
    *outlen = total;
    b = NULL;
    rc = 0;
out:
    free(b);
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int keywrap_open(const unsigned char key[MASTER_KEY_LEN], const unsigned char *blob, size_t bloblen, const char *aad,
                 unsigned char **out, size_t *outlen)
{
    EVP_CIPHER_CTX *c = NULL;
    unsigned char *p = NULL;
    int n = 0, rc = -1;
    if (bloblen < HDR_LEN + TAG_LEN || memcmp(blob, MAGIC, 4) != 0)
        goto out;
    size_t ctlen = bloblen - HDR_LEN - TAG_LEN;
    if (!(c = EVP_CIPHER_CTX_new()) || !(p = malloc(ctlen + 1)))
        goto out;
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(c, NULL, NULL, key, blob + 4) != 1)
        goto out;
    if (aad && EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) != 1)
        goto out;
    if (EVP_DecryptUpdate(c, p, &n, blob + HDR_LEN, (int)ctlen) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(blob + HDR_LEN + ctlen)) != 1)
        goto out;
    int fin = 0;
    if (EVP_DecryptFinal_ex(c, p + n, &fin) != 1)
        goto out;
    *out = p;
    *outlen = ctlen;
    p = NULL;
    rc = 0;
out:
    if (p) {
        OPENSSL_cleanse(p, bloblen >= HDR_LEN + TAG_LEN ? bloblen - HDR_LEN - TAG_LEN : 0);
        free(p);
    }
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int keywrap_seal_pkey(const unsigned char key[MASTER_KEY_LEN], EVP_PKEY *pk, const char *aad, unsigned char **out,
                      size_t *outlen)
{
    unsigned char *der = NULL;
    int n = i2d_PrivateKey(pk, &der);
    if (n <= 0)
        return -1;
    int rc = keywrap_seal(key, der, (size_t)n, aad, out, outlen);
    OPENSSL_clear_free(der, (size_t)n);
    return rc;
}

EVP_PKEY *keywrap_open_pkey(const unsigned char key[MASTER_KEY_LEN], const unsigned char *blob, size_t bloblen,
                            const char *aad)
{
    unsigned char *der = NULL;
    size_t n = 0;
    if (keywrap_open(key, blob, bloblen, aad, &der, &n) != 0)
        return NULL;
    const unsigned char *p = der;
    EVP_PKEY *pk = d2i_AutoPrivateKey(NULL, &p, (long)n);
    OPENSSL_cleanse(der, n);
    free(der);
    return pk;
}
