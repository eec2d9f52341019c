/* crypto/keywrap: AES-256-GCM sealing round trip and tamper detection;
 * crypto/secret: password hashing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/keywrap.h"
#include "crypto/masterkey.h"
#include "crypto/secret.h"
#include "crypto/signer.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char K1[MASTER_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const unsigned char K2[MASTER_KEY_LEN] = {32, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 1};

static void test_roundtrip(void **state)
{
    (void)state;
    const char msg[] = "private key bytes";
    unsigned char *blob = NULL, *pt = NULL;
    size_t bl = 0, pl = 0;
    assert_int_equal(keywrap_seal(K1, (const unsigned char *)msg, sizeof msg, "aad-1", &blob, &bl), 0);
    assert_int_equal(bl, 4 + 12 + sizeof msg + 16);
    assert_null(memmem(blob, bl, msg, 8)); /* not in clear */
    assert_int_equal(keywrap_open(K1, blob, bl, "aad-1", &pt, &pl), 0);
    assert_int_equal(pl, sizeof msg);
    assert_memory_equal(pt, msg, sizeof msg);
    free(pt);
    /* two seals of the same plaintext differ (fresh nonce) */
    unsigned char *blob2 = NULL;
    size_t bl2 = 0;
    assert_int_equal(keywrap_seal(K1, (const unsigned char *)msg, sizeof msg, "aad-1", &blob2, &bl2), 0);
    assert_memory_not_equal(blob, blob2, bl);
    free(blob2);
    free(blob);
}

static void test_tamper(void **state)
{
    (void)state;
    const char msg[] = "0123456789abcdef0123456789abcdef";
    unsigned char *blob = NULL, *pt = NULL;
    size_t bl = 0, pl = 0;
    assert_int_equal(keywrap_seal(K1, (const unsigned char *)msg, sizeof msg, "ca-key:p/a", &blob, &bl), 0);
    for (size_t i = 0; i < bl; i++) {
        blob[i] ^= 0x01;
        assert_int_not_equal(keywrap_open(K1, blob, bl, "ca-key:p/a", &pt, &pl), 0);
        blob[i] ^= 0x01;
    }
    assert_int_not_equal(keywrap_open(K2, blob, bl, "ca-key:p/a", &pt, &pl), 0);  /* wrong key */
    assert_int_not_equal(keywrap_open(K1, blob, bl, "ca-key:p/b", &pt, &pl), 0);  /* moved to another row */
    assert_int_not_equal(keywrap_open(K1, blob, bl - 1, "ca-key:p/a", &pt, &pl), 0); /* truncated */
    assert_int_not_equal(keywrap_open(K1, blob, 10, "ca-key:p/a", &pt, &pl), 0);
    assert_int_equal(keywrap_open(K1, blob, bl, "ca-key:p/a", &pt, &pl), 0);
    free(pt);
    free(blob);
}

static void test_pkey_roundtrip_and_sign(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    unsigned char *blob = NULL, *sig = NULL;
    size_t bl = 0, sl = 0;
    assert_non_null(k);
    assert_int_equal(keywrap_seal_pkey(K1, k, "x", &blob, &bl), 0);
    EVP_PKEY *k2 = keywrap_open_pkey(K1, blob, bl, "x");
    assert_non_null(k2);
    assert_int_equal(EVP_PKEY_eq(k, k2), 1);
    assert_null(keywrap_open_pkey(K2, blob, bl, "x"));
    /* the software signer's signature verifies under the public key */
    struct signer *s = signer_soft_new(k2, "SHA256", false);
    assert_non_null(s);
    assert_int_equal(signer_sign(s, (const unsigned char *)"tbs", 3, &sig, &sl), 0);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit_ex(c, NULL, "SHA256", NULL, NULL, k, NULL), 1);
    assert_int_equal(EVP_DigestVerify(c, sig, sl, (const unsigned char *)"tbs", 3), 1);
    EVP_MD_CTX_free(c);
    X509_ALGOR *alg = signer_algor(s);
    assert_non_null(alg);
    const ASN1_OBJECT *oid = NULL;
    X509_ALGOR_get0(&oid, NULL, NULL, alg);
    assert_int_equal(OBJ_obj2nid(oid), NID_ecdsa_with_SHA256);
    X509_ALGOR_free(alg);
    signer_free(s);
    free(sig);
    free(blob);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
}

static void test_masterkey_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/pkiaas-mk-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/master.key", dir);
    unsigned char a[MASTER_KEY_LEN], b[MASTER_KEY_LEN];
    assert_int_equal(masterkey_load_or_create(path, a, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(masterkey_load_or_create(path, b, err, sizeof err), 0);
    assert_memory_equal(a, b, MASTER_KEY_LEN);
    chmod(path, 0644);
    assert_int_not_equal(masterkey_load_or_create(path, b, err, sizeof err), 0);
    assert_non_null(strstr(err, "0600"));
    unlink(path);
    rmdir(dir);
}

static void test_password_hash(void **state)
{
    (void)state;
    char *h = secret_password_hash("correct horse");
    assert_non_null(h);
    assert_non_null(strstr(h, "scrypt$"));
    assert_null(strstr(h, "correct"));
    assert_true(secret_password_verify("correct horse", h));
    assert_false(secret_password_verify("correct horsf", h));
    assert_false(secret_password_verify("correct horse", "scrypt$99$8$1$AAAA$AAAA"));
    free(h);
    char *p1 = secret_new_password(), *p2 = secret_new_password();
    assert_int_equal(strlen(p1), 20);
    assert_string_not_equal(p1, p2);
    free(p1);
    free(p2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_pkey_roundtrip_and_sign),
        cmocka_unit_test(test_masterkey_file),
        cmocka_unit_test(test_password_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
