/* x509/ext: SKI (RFC 7093 method 1) against an independently computed
 * vector, serial number properties, extension encodings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/codec.h"
#include "x509/ext.h"

#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Vector: SHA-256 over the 65-byte subjectPublicKey of this P-256 key,
 * leftmost 20 bytes, computed with a hand DER walk in Python's hashlib. */
static const char PUB[] = "-----BEGIN PUBLIC KEY-----\n"
                          "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEOMmNhA0/sKSMF4GIFreDplIA/HoE\n"
                          "/liCMctySEujfYRsxBRDn5mxhdN6/WLmPV1s4bVUv4uUbBu0FbjudUhsxA==\n"
                          "-----END PUBLIC KEY-----\n";
static const char PUB_SKI[] = "c82038edf0198fd3356a783ab0dbc88a64bf2d6f";

static EVP_PKEY *load_pub(void)
{
    BIO *b = BIO_new_mem_buf(PUB, -1);
    EVP_PKEY *k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    return k;
}

static void test_ski_vector(void **state)
{
    (void)state;
    EVP_PKEY *k = load_pub();
    unsigned char ski[SKI_LEN];
    assert_non_null(k);
    assert_int_equal(x509_ski_compute(k, ski), 0);
    char *hex = hex_encode(ski, SKI_LEN);
    assert_string_equal(hex, PUB_SKI);
    free(hex);

    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    unsigned char ski2[SKI_LEN];
    assert_int_equal(x509_ski_compute_spki(der, (size_t)n, ski2), 0);
    assert_memory_equal(ski, ski2, SKI_LEN);
    /* trailing garbage is refused */
    unsigned char *longer = malloc((size_t)n + 1);
    memcpy(longer, der, (size_t)n);
    longer[n] = 0;
    assert_int_not_equal(x509_ski_compute_spki(longer, (size_t)n + 1, ski2), 0);
    free(longer);
    OPENSSL_free(der);
    EVP_PKEY_free(k);
}

static void test_serials(void **state)
{
    (void)state;
    unsigned char a[SERIAL_LEN], b[SERIAL_LEN];
    int distinct_tail = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t before = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(x509_serial_new(a), 0);
        assert_int_equal(x509_serial_new(b), 0);
        assert_int_equal(a[0], 0x40); /* positive, non-zero: fixed 16-byte DER encoding */
        assert_memory_not_equal(a, b, SERIAL_LEN);
        /* bytes 1-6: milliseconds since the epoch, so serials sort by time */
        uint64_t ta = 0, tb = 0;
        for (int k = 1; k <= 6; k++) {
            ta = ta << 8 | a[k];
            tb = tb << 8 | b[k];
        }
        assert_true(ta >= before && tb >= ta && tb - before < 60000);
        if (memcmp(a + 7, b + 7, 4) != 0)
            distinct_tail++;
        /* round trip through an ASN1_INTEGER: exactly 16 content bytes */
        BIGNUM *bn = BN_bin2bn(a, SERIAL_LEN, NULL);
        ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);
        assert_int_equal(ASN1_STRING_length(ai), SERIAL_LEN);
        ASN1_INTEGER_free(ai);
        BN_free(bn);
    }
    assert_int_equal(distinct_tail, 2000); /* 72 random bits: a repeat of 32 of them would be a broken RNG */
}

static void test_key_usage_bits(void **state)
{
    (void)state;
    X509_EXTENSION *e = ext_key_usage(KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_non_null(e);
    assert_true(X509_EXTENSION_get_critical(e));
    ASN1_OCTET_STRING *d = X509_EXTENSION_get_data(e);
    /* BIT STRING, 2 content bytes: 1 unused bit, 1000 0110 */
    const unsigned char want[] = {0x03, 0x02, 0x01, 0x86};
    assert_int_equal(ASN1_STRING_length(d), sizeof want);
    assert_memory_equal(ASN1_STRING_get0_data(d), want, sizeof want);
    X509_EXTENSION_free(e);
}

static void test_basic_constraints(void **state)
{
    (void)state;
    X509_EXTENSION *e = ext_basic_constraints(true, 0);
    ASN1_OCTET_STRING *d = X509_EXTENSION_get_data(e);
    const unsigned char want[] = {0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x00};
    assert_true(X509_EXTENSION_get_critical(e));
    assert_int_equal(ASN1_STRING_length(d), sizeof want);
    assert_memory_equal(ASN1_STRING_get0_data(d), want, sizeof want);
    X509_EXTENSION_free(e);
    e = ext_basic_constraints(true, -1);
    d = X509_EXTENSION_get_data(e);
    const unsigned char want2[] = {0x30, 0x03, 0x01, 0x01, 0xff};
    assert_memory_equal(ASN1_STRING_get0_data(d), want2, sizeof want2);
    X509_EXTENSION_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ski_vector),
        cmocka_unit_test(test_serials),
        cmocka_unit_test(test_key_usage_bits),
        cmocka_unit_test(test_basic_constraints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
