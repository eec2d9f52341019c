/* ca/ocsp: RFC 8954 nonce rules on requests built with OpenSSL — the
 * extension value must be an OCTET STRING of 1 to 32 octets, given once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ca/ocsp.h"

#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <string.h>

/* A request with one CertID (hashes of made-up names/keys are fine: only
 * the extensions matter here). */
static OCSP_REQUEST *req_new(void)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    assert_non_null(req);
    OCSP_CERTID *id = OCSP_CERTID_new();
    assert_non_null(id);
    assert_non_null(OCSP_request_add0_id(req, id));
    return req;
}

static int check_len(int len)
{
    unsigned char val[64];
    for (int i = 0; i < (int)sizeof val; i++)
        val[i] = (unsigned char)(0xa0 + i);
    OCSP_REQUEST *req = req_new();
    assert_int_equal(OCSP_request_add1_nonce(req, val, len), 1);
    int rc = ocsp_nonce_check(req);
    OCSP_REQUEST_free(req);
    return rc;
}

/* Adds a nonce extension whose extnValue holds exactly `der`. */
static void add_raw_nonce(OCSP_REQUEST *req, const unsigned char *der, int len)
{
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    assert_non_null(os);
    assert_int_equal(ASN1_OCTET_STRING_set(os, der, len), 1);
    X509_EXTENSION *x = X509_EXTENSION_create_by_NID(NULL, NID_id_pkix_OCSP_Nonce, 0, os);
    assert_non_null(x);
    assert_int_equal(OCSP_REQUEST_add_ext(req, x, -1), 1);
    X509_EXTENSION_free(x);
    ASN1_OCTET_STRING_free(os);
}

static void test_absent(void **state)
{
    (void)state;
    OCSP_REQUEST *req = req_new();
    assert_int_equal(ocsp_nonce_check(req), 0);
    OCSP_REQUEST_free(req);
    /* no CertID at all: still only the extension counts */
    req = OCSP_REQUEST_new();
    assert_int_equal(ocsp_nonce_check(req), 0);
    OCSP_REQUEST_free(req);
}

static void test_lengths(void **state)
{
    (void)state;
    assert_int_equal(check_len(1), 1);
    assert_int_equal(check_len(16), 1);
    assert_int_equal(check_len(32), 1);
    assert_int_equal(check_len(33), -1);
    assert_int_equal(check_len(64), -1);
}

static void test_twice(void **state)
{
    (void)state;
    /* OCSP_request_add1_nonce replaces an existing nonce, so the second
     * one is appended by hand (same value, valid on its own) */
    static const unsigned char v[] = {0x04, 0x08, 1, 2, 3, 4, 5, 6, 7, 8};
    OCSP_REQUEST *req = req_new();
    assert_int_equal(OCSP_request_add1_nonce(req, (unsigned char *)v + 2, 8), 1);
    assert_int_equal(OCSP_REQUEST_get_ext_count(req), 1);
    add_raw_nonce(req, v, sizeof v);
    assert_int_equal(OCSP_REQUEST_get_ext_count(req), 2);
    assert_int_equal(ocsp_nonce_check(req), -1);
    OCSP_REQUEST_free(req);
}

static void test_raw_values(void **state)
{
    (void)state;
    /* an INTEGER instead of an OCTET STRING */
    static const unsigned char integer[] = {0x02, 0x01, 0x05};
    OCSP_REQUEST *req = req_new();
    add_raw_nonce(req, integer, sizeof integer);
    assert_int_equal(ocsp_nonce_check(req), -1);
    OCSP_REQUEST_free(req);

    /* a zero-length OCTET STRING */
    static const unsigned char empty[] = {0x04, 0x00};
    req = req_new();
    add_raw_nonce(req, empty, sizeof empty);
    assert_int_equal(ocsp_nonce_check(req), -1);
    OCSP_REQUEST_free(req);

    /* the old OpenSSL form: raw bytes, no inner OCTET STRING; 0x41 is
     * not a valid universal OCTET STRING tag */
    static const unsigned char raw[] = {0x41, 0x42, 0x43, 0x44};
    req = req_new();
    add_raw_nonce(req, raw, sizeof raw);
    assert_int_equal(ocsp_nonce_check(req), -1);
    OCSP_REQUEST_free(req);

    /* trailing bytes after the OCTET STRING */
    static const unsigned char trailing[] = {0x04, 0x01, 0xaa, 0x00};
    req = req_new();
    add_raw_nonce(req, trailing, sizeof trailing);
    assert_int_equal(ocsp_nonce_check(req), -1);
    OCSP_REQUEST_free(req);

    /* length running past the end */
    static const unsigned char truncated[] = {0x04, 0x05, 0xaa};
    req = req_new();
    add_raw_nonce(req, truncated, sizeof truncated);
    assert_int_equal(ocsp_nonce_check(req), -1);
    OCSP_REQUEST_free(req);

    /* a well-formed one crafted by hand: OCTET STRING of 1 octet */
    static const unsigned char one[] = {0x04, 0x01, 0xaa};
    req = req_new();
    add_raw_nonce(req, one, sizeof one);
    assert_int_equal(ocsp_nonce_check(req), 1);
    OCSP_REQUEST_free(req);
}

/* Other extensions do not disturb the check. */
static void test_other_extensions(void **state)
{
    (void)state;
    OCSP_REQUEST *req = req_new();
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    assert_non_null(os);
    assert_int_equal(ASN1_OCTET_STRING_set(os, (const unsigned char *)"\x05\x00", 2), 1); /* NULL */
    X509_EXTENSION *other = X509_EXTENSION_create_by_NID(NULL, NID_id_pkix_OCSP_serviceLocator, 0, os);
    assert_non_null(other);
    assert_int_equal(OCSP_REQUEST_add_ext(req, other, -1), 1);
    X509_EXTENSION_free(other);
    ASN1_OCTET_STRING_free(os);
    assert_int_equal(ocsp_nonce_check(req), 0);
    unsigned char v[4] = {9, 9, 9, 9};
    assert_int_equal(OCSP_request_add1_nonce(req, v, sizeof v), 1);
    assert_int_equal(ocsp_nonce_check(req), 1);
    OCSP_REQUEST_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_twice),
        cmocka_unit_test(test_raw_values),
        cmocka_unit_test(test_other_extensions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
