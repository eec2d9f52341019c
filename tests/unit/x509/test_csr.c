/* x509/csr: csr_parse_key (the issuance core's fast intake) accepts and
 * refuses exactly what csr_parse does, with the same message, and yields
 * the same request: checked on requests of every supported key type, on
 * ones the fast path hands back (PSS, MD5, Ed25519, explicit curve
 * parameters, version 2, bad signatures) and on every single-byte mutation
 * of a P-256 and an RSA request. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "x509/csr.h"

#include <openssl/core_names.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int der_eq(const unsigned char *a, int na, const unsigned char *b, int nb)
{
    return na == nb && na > 0 && memcmp(a, b, (size_t)na) == 0;
}

#define I2D_EQ(fn, x, y)                                                                                           \
    do {                                                                                                           \
        unsigned char *da_ = NULL, *db_ = NULL;                                                                    \
        int na_ = fn(x, &da_), nb_ = fn(y, &db_);                                                                  \
        assert_true(der_eq(da_, na_, db_, nb_));                                                                   \
        OPENSSL_free(da_);                                                                                         \
        OPENSSL_free(db_);                                                                                         \
    } while (0)

static int i2d_exts(STACK_OF(X509_EXTENSION) *x, unsigned char **out)
{
    return i2d_X509_EXTENSIONS((X509_EXTENSIONS *)x, out);
}

static struct csr_keys *g_keys;

/* Both intakes (the fast one with and without the EC parameter copies) on
 * the same input; returns whether it was accepted. */
static int same_keys(const unsigned char *d, size_t n, const struct csr_keys *keys)
{
    struct err e1, e2;
    EVP_PKEY *pk = NULL;
    memset(&e1, 0, sizeof e1);
    memset(&e2, 0, sizeof e2);
    X509_REQ *r1 = csr_parse(d, n, &e1);
    X509_REQ *r2 = csr_parse_key(d, n, keys, &pk, &e2);
    assert_int_equal(r1 != NULL, r2 != NULL);
    assert_int_equal(r2 != NULL, pk != NULL);
    if (!r1) {
        assert_int_equal(e1.status, e2.status);
        assert_string_equal(e1.code, e2.code);
        assert_string_equal(e1.msg, e2.msg);
        return 0;
    }
    assert_int_equal(X509_REQ_get_version(r1), X509_REQ_get_version(r2));
    I2D_EQ(i2d_X509_NAME, X509_REQ_get_subject_name(r1), X509_REQ_get_subject_name(r2));
    I2D_EQ(i2d_X509_PUBKEY, X509_REQ_get_X509_PUBKEY(r1), X509_REQ_get_X509_PUBKEY(r2));
    assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(r1), pk), 1);
    assert_int_equal(X509_REQ_get_attr_count(r1), X509_REQ_get_attr_count(r2));
    for (int i = 0; i < X509_REQ_get_attr_count(r1); i++)
        I2D_EQ(i2d_X509_ATTRIBUTE, X509_REQ_get_attr(r1, i), X509_REQ_get_attr(r2, i));
    STACK_OF(X509_EXTENSION) *x1 = X509_REQ_get_extensions(r1), *x2 = X509_REQ_get_extensions(r2);
    assert_int_equal(sk_X509_EXTENSION_num(x1), sk_X509_EXTENSION_num(x2));
    if (sk_X509_EXTENSION_num(x1) > 0)
        I2D_EQ(i2d_exts, x1, x2);
    sk_X509_EXTENSION_pop_free(x1, X509_EXTENSION_free);
    sk_X509_EXTENSION_pop_free(x2, X509_EXTENSION_free);
    X509_REQ_free(r1);
    X509_REQ_free(r2);
    EVP_PKEY_free(pk);
    return 1;
}

static int same(const unsigned char *d, size_t n)
{
    int a = same_keys(d, n, NULL);
    assert_int_equal(same_keys(d, n, g_keys), a);
    return a;
}

/* A signed request (DER, malloc'd) for `key`, with a SAN request. */
static unsigned char *make_csr(EVP_PKEY *key, const EVP_MD *md, int version, bool pss, size_t *len)
{
    X509_REQ *r = X509_REQ_new();
    X509_NAME *nm = X509_NAME_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:csr.test.example");
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL, *out = NULL;
    assert_non_null(r);
    assert_non_null(san);
    assert_int_equal(X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)"csr.test", -1, -1, 0), 1);
    assert_int_equal(X509_REQ_set_subject_name(r, nm), 1);
    assert_int_equal(X509_REQ_set_version(r, version), 1);
    assert_int_equal(X509_REQ_set_pubkey(r, key), 1);
    assert_true(sk_X509_EXTENSION_push(exts, san) > 0);
    assert_int_equal(X509_REQ_add_extensions(r, exts), 1);
    assert_int_equal(EVP_DigestSignInit(mctx, &pctx, md, NULL, key), 1);
    if (pss)
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
    assert_true(X509_REQ_sign_ctx(r, mctx) > 0);
    int n = i2d_X509_REQ(r, &der);
    assert_true(n > 0);
    out = malloc((size_t)n);
    assert_non_null(out);
    memcpy(out, der, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(der);
    EVP_MD_CTX_free(mctx);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_NAME_free(nm);
    X509_REQ_free(r);
    return out;
}

static EVP_PKEY *ec_key(const char *curve)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    assert_non_null(k);
    return k;
}

static EVP_PKEY *rsa_key(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(k);
    return k;
}

/* expect: 1 accepted, 0 refused, -1 either (as long as both agree) */
static void check_one(EVP_PKEY *k, const EVP_MD *md, int version, bool pss, int expect)
{
    size_t n = 0;
    unsigned char *d = make_csr(k, md, version, pss, &n);
    int got = same(d, n);
    if (expect >= 0)
        assert_int_equal(got, expect);
    /* as PEM and as base64 too */
    BIO *b = BIO_new(BIO_s_mem());
    const unsigned char *q = d;
    X509_REQ *r = d2i_X509_REQ(NULL, &q, (long)n);
    char *pem = NULL;
    assert_non_null(r);
    assert_int_equal(PEM_write_bio_X509_REQ(b, r), 1);
    long pl = BIO_get_mem_data(b, &pem);
    assert_int_equal(same((const unsigned char *)pem, (size_t)pl), got);
    X509_REQ_free(r);
    BIO_free(b);
    free(d);
}

static void test_key_types(void **state)
{
    (void)state;
    const char *curves[] = {"P-256", "P-384", "P-521", "secp256k1"};
    for (size_t i = 0; i < sizeof curves / sizeof *curves; i++) {
        EVP_PKEY *k = ec_key(curves[i]);
        check_one(k, EVP_sha256(), X509_REQ_VERSION_1, false, 1);
        check_one(k, EVP_sha384(), X509_REQ_VERSION_1, false, 1);
        EVP_PKEY_free(k);
    }
    EVP_PKEY *k = rsa_key();
    check_one(k, EVP_sha256(), X509_REQ_VERSION_1, false, 1);
    check_one(k, EVP_sha256(), X509_REQ_VERSION_1, true, 1); /* PSS */
    check_one(k, EVP_md5(), X509_REQ_VERSION_1, false, 0);
    check_one(k, EVP_sha256(), 1, false, -1); /* version 2: whatever the original says */
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k);
    size_t n = 0;
    unsigned char *d = make_csr(k, NULL, X509_REQ_VERSION_1, false, &n);
    same(d, n);
    free(d);
    EVP_PKEY_free(k);
}

static void test_explicit_curve(void **state)
{
    (void)state;
    EVP_PKEY *k = ec_key("P-256");
    assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_ENCODING, OSSL_PKEY_EC_ENCODING_EXPLICIT), 1);
    size_t n = 0;
    unsigned char *d = make_csr(k, EVP_sha256(), X509_REQ_VERSION_1, false, &n);
    same(d, n);
    free(d);
    assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_ENCODING, OSSL_PKEY_EC_ENCODING_GROUP), 1);
    assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"), 1);
    d = make_csr(k, EVP_sha256(), X509_REQ_VERSION_1, false, &n);
    assert_int_equal(same(d, n), 1);
    free(d);
    EVP_PKEY_free(k);
}

/* Every byte of the request changed (three ways), and every truncation. */
static void mutate_all(EVP_PKEY *k)
{
    size_t n = 0;
    unsigned char *d = make_csr(k, EVP_sha256(), X509_REQ_VERSION_1, false, &n);
    unsigned char *m = malloc(n);
    assert_non_null(m);
    assert_int_equal(same(d, n), 1);
    for (size_t i = 0; i < n; i++) {
        static const unsigned char flips[] = {0x01, 0x80, 0xff};
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(m, d, n);
            m[i] ^= flips[f];
            same(m, n);
        }
        same(d, i);
    }
    free(m);
    free(d);
}

static void test_mutations_p256(void **state)
{
    (void)state;
    EVP_PKEY *k = ec_key("P-256");
    mutate_all(k);
    EVP_PKEY_free(k);
}

static void test_mutations_rsa(void **state)
{
    (void)state;
    EVP_PKEY *k = rsa_key();
    mutate_all(k);
    EVP_PKEY_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_types),
        cmocka_unit_test(test_explicit_curve),
        cmocka_unit_test(test_mutations_p256),
        cmocka_unit_test(test_mutations_rsa),
    };
    if (!(g_keys = csr_keys_new()))
        return 1;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    csr_keys_free(g_keys);
    return rc;
}
