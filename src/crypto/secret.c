#include "crypto/secret.h"

#include "util/codec.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRYPT_LOGN 15
#define SCRYPT_R 8
#define SCRYPT_P 1
#define HASH_LEN 32

static int scrypt(const char *pw, const unsigned char *salt, size_t saltlen, unsigned logn, unsigned r, unsigned p,
                  unsigned char out[HASH_LEN])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    int rc = -1;
    uint64_t n = (uint64_t)1 << logn;
    uint32_t rr = r, pp = p;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pw, strlen(pw)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &pp),
        OSSL_PARAM_construct_end(),
    };
    if (ctx && EVP_KDF_derive(ctx, out, HASH_LEN, params) == 1)
        rc = 0;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rc;
}

char *secret_password_hash(const char *password)
{
    unsigned char salt[16], h[HASH_LEN];
    char *s64 = NULL, *h64 = NULL, *out = NULL;
    if (random_bytes(salt, sizeof salt) != 0 || scrypt(password, salt, sizeof salt, SCRYPT_LOGN, SCRYPT_R, SCRYPT_P, h))
        goto out;
    if (!(s64 = b64_encode(salt, sizeof salt)) || !(h64 = b64_encode(h, sizeof h)))
        goto out;
    if (asprintf(&out, "scrypt$%d$%d$%d$%s$%s", SCRYPT_LOGN, SCRYPT_R, SCRYPT_P, s64, h64) < 0)
        out = NULL;
out:
    OPENSSL_cleanse(h, sizeof h);
    free(s64);
    free(h64);
    return out;
}

bool secret_password_verify(const char *password, const char *stored)
{
    unsigned logn, r, p;
    char s64[64], h64[64];
    unsigned char *salt = NULL, *want = NULL, got[HASH_LEN];
    size_t saltlen = 0, wantlen = 0;
    bool ok = false;
    if (!password || !stored ||
        sscanf(stored, "scrypt$%u$%u$%u$%63[^$]$%63s", &logn, &r, &p, s64, h64) != 5 || logn < 10 || logn > 20 ||
        r < 1 || r > 32 || p < 1 || p > 16)
        goto out;
    if (b64_decode(s64, strlen(s64), &salt, &saltlen) != 0 || b64_decode(h64, strlen(h64), &want, &wantlen) != 0 ||
        wantlen != HASH_LEN)
        goto out;
    if (scrypt(password, salt, saltlen, logn, r, p, got) != 0)
        goto out;
    ok = CRYPTO_memcmp(got, want, HASH_LEN) == 0;
out:
    OPENSSL_cleanse(got, sizeof got);
    free(salt);
    free(want);
    return ok;
}

char *secret_token_hash(const char *token)
{
    unsigned char md[32];
    unsigned int n = 0;
    if (EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL) != 1)
        return NULL;
    return hex_encode(md, n);
}

char *secret_new_password(void)
{
    static const char alpha[] = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    const unsigned limit = 256 - 256 % (sizeof alpha - 1); /* rejection sampling: no modulo bias */
    unsigned char r[64];
    size_t n = 0;
    char *s = malloc(21);
    if (!s)
        return NULL;
    while (n < 20) {
        if (random_bytes(r, sizeof r) != 0) {
            free(s);
            return NULL;
        }
        for (size_t i = 0; i < sizeof r && n < 20; i++)
            if (r[i] < limit)
                s[n++] = alpha[r[i] % (sizeof alpha - 1)];
    }
    s[20] = 0;
    OPENSSL_cleanse(r, sizeof r);
    return s;
}
