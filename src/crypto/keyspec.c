#include "crypto/keyspec.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <stdio.h>
#include <string.h>

#define RSA_VA "RSA2048", "sha256WithRSAEncryption"
#define RSA_VA_PSS "RSA2048", "sha256WithRSAPSS"
#define PQ(l) {l, l, l, RSA_VA, KEYSPEC_PQ, 0, NULL, NULL, false, "RSA-2048+PKCS15-SHA256"}
#define PQ_PSS(l) {l, l, l, RSA_VA_PSS, KEYSPEC_PQ, 0, NULL, NULL, false, "RSA-2048+PSS-SHA256"}

/* Order and values exactly as in the guide's table. */
static const struct keyspec table[] = {
    {"RSA-2048+PKCS15-SHA256", "RSA2048", "sha256WithRSAEncryption", RSA_VA, KEYSPEC_RSA, 2048, NULL, "SHA256", false,
     "RSA-2048+PKCS15-SHA256"},
    {"RSA-2048+PSS-SHA256", "RSA2048", "sha256WithRSAPSS", RSA_VA_PSS, KEYSPEC_RSA, 2048, NULL, "SHA256", true,
     "RSA-2048+PSS-SHA256"},
    {"RSA-3072+PKCS15-SHA256", "RSA3072", "sha256WithRSAEncryption", RSA_VA, KEYSPEC_RSA, 3072, NULL, "SHA256", false,
     "RSA-2048+PKCS15-SHA256"},
    {"RSA-3072+PSS-SHA256", "RSA3072", "sha256WithRSAPSS", RSA_VA_PSS, KEYSPEC_RSA, 3072, NULL, "SHA256", true,
     "RSA-2048+PSS-SHA256"},
    {"RSA-4096+PKCS15-SHA512", "RSA4096", "sha512WithRSAEncryption", RSA_VA, KEYSPEC_RSA, 4096, NULL, "SHA512", false,
     "RSA-2048+PKCS15-SHA256"},
    {"RSA-4096+PSS-SHA512", "RSA4096", "sha512WithRSAPSS", RSA_VA_PSS, KEYSPEC_RSA, 4096, NULL, "SHA512", true,
     "RSA-2048+PSS-SHA256"},
    {"ECDSAP256+SHA256", "ECDSAP256", "ecdsa-with-SHA256", RSA_VA, KEYSPEC_EC, 0, "P-256", "SHA256", false,
     "RSA-2048+PKCS15-SHA256"},
    {"ECDSAP384+SHA384", "ECDSAP384", "ecdsa-with-SHA384", RSA_VA, KEYSPEC_EC, 0, "P-384", "SHA384", false,
     "RSA-2048+PKCS15-SHA256"},
    {"ECDSAP521+SHA512", "ECDSAP521", "ecdsa-with-SHA512", RSA_VA, KEYSPEC_EC, 0, "P-521", "SHA512", false,
     "RSA-2048+PKCS15-SHA256"},
    PQ("ML-DSA-44"),
    PQ("ML-DSA-65"),
    PQ("ML-DSA-87"),
    PQ("Hash-SLH-DSA-SHA2-128s-With-SHA256"),
    PQ("Hash-SLH-DSA-SHA2-128f-With-SHA256"),
    PQ("Hash-SLH-DSA-SHA2-192s-With-SHA512"),
    PQ("Hash-SLH-DSA-SHA2-192f-With-SHA512"),
    PQ("Hash-SLH-DSA-SHA2-256s-With-SHA512"),
    PQ("Hash-SLH-DSA-SHA2-256f-With-SHA512"),
    PQ("Hash-SLH-DSA-SHAKE-128s-With-SHAKE128"),
    PQ("Hash-SLH-DSA-SHAKE-128f-With-SHAKE128"),
    PQ("Hash-SLH-DSA-SHAKE-192s-With-SHAKE256"),
    PQ("Hash-SLH-DSA-SHAKE-192f-With-SHAKE256"),
    PQ("Hash-SLH-DSA-SHAKE-256s-With-SHAKE256"),
    PQ("Hash-SLH-DSA-SHAKE-256f-With-SHAKE256"),
    PQ("SPHINCS+-SHA2-128f-simple"),
    PQ("SPHINCS+-SHA2-128s-simple"),
    PQ("SPHINCS+-SHA2-192f-simple"),
    PQ("SPHINCS+-SHA2-192s-simple"),
    PQ("SPHINCS+-SHA2-256f-simple"),
    PQ("SPHINCS+-SHA2-256s-simple"),
    PQ("Falcon-512"),
    PQ("Falcon-1024"),
    PQ("MLDSA44-RSA2048-PKCS15"),
    PQ_PSS("MLDSA44-RSA2048-PSS"),
    PQ("MLDSA44-ECDSA-P256"),
    PQ("MLDSA65-RSA3072-PKCS15"),
    PQ_PSS("MLDSA65-RSA3072-PSS"),
    PQ("MLDSA65-RSA4096-PKCS15"),
    PQ_PSS("MLDSA65-RSA4096-PSS"),
    PQ("MLDSA65-ECDSA-P384"),
    PQ("MLDSA87-ECDSA-P384"),
};

size_t keyspec_count(void)
{
    return sizeof table / sizeof table[0];
}

const struct keyspec *keyspec_at(size_t i)
{
    return i < keyspec_count() ? &table[i] : NULL;
}

const struct keyspec *keyspec_find(const char *label)
{
    for (size_t i = 0; label && i < keyspec_count(); i++)
        if (strcmp(table[i].label, label) == 0)
            return &table[i];
    return NULL;
}

EVP_PKEY *keyspec_generate(const struct keyspec *k)
{
    if (!k)
        return NULL;
    switch (k->kind) {
    case KEYSPEC_RSA:
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)k->bits);
    case KEYSPEC_EC:
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", k->curve);
    default:
        return NULL;
    }
}

void keyspec_describe_key(const EVP_PKEY *pk, char *out, size_t n)
{
    int id = EVP_PKEY_get_base_id(pk);
    if (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS) {
        snprintf(out, n, "RSA%d", EVP_PKEY_get_bits(pk));
        return;
    }
    if (id == EVP_PKEY_EC) {
        char group[64] = "";
        size_t gl = 0;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &gl) != 1)
            group[0] = 0;
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
            snprintf(out, n, "ECDSAP256");
        else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
            snprintf(out, n, "ECDSAP384");
        else if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
            snprintf(out, n, "ECDSAP521");
        else
            snprintf(out, n, "EC-%s", group);
        return;
    }
    const char *nm = EVP_PKEY_get0_type_name(pk);
    snprintf(out, n, "%s", nm ? nm : "unknown");
}
