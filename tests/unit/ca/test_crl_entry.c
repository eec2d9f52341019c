/* ca/crl: one revokedCertificates entry (RFC 5280 5.1.2.6) against byte
 * vectors derived by hand from the ASN.1, then re-read with OpenSSL's own
 * parser (d2i_X509_REVOKED) as an independent check.
 *
 *   revokedCertificates SEQUENCE OF SEQUENCE {
 *       userCertificate    CertificateSerialNumber,   -- INTEGER
 *       revocationDate     Time,                      -- UTCTime < 2050
 *       crlEntryExtensions Extensions OPTIONAL }
 *   reasonCode     2.5.29.21 (55 1d 15): ENUMERATED, absent for
 *                  unspecified (5.3.1)
 *   invalidityDate 2.5.29.24 (55 1d 18): GeneralizedTime (5.3.2) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ca/crl.h"
#include "store/store.h"
#include "util/buf.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define T_2026_01_02_030405 INT64_C(1767323045)
#define T_2025_12_31 INT64_C(1767139200)
#define T_2050_01_01 INT64_C(2524608000)
#define T_2049_12_31_235959 INT64_C(2524607999)

static size_t unhex(const char *h, unsigned char *out, size_t max)
{
    size_t n = 0;
    for (const char *p = h; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v = 0;
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        assert_true(n < max);
        out[n++] = (unsigned char)v;
        p += 2;
    }
    return n;
}

/* Encodes `re` into a fresh buffer and compares with the expected hex. */
static void expect_der(const struct revoked_entry *re, const char *hex)
{
    unsigned char want[256];
    size_t wl = unhex(hex, want, sizeof want);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(crl_encode_entry(re, &b), 0);
    assert_int_equal(b.len, wl);
    assert_memory_equal(b.data, want, wl);
    buf_free(&b);
}

static int64_t asn1_time_epoch(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    return (int64_t)timegm(&tm);
}

/* Independent parse: serial (as hex), revocation date, reason (-1 absent),
 * invalidity date (0 absent). */
static void cross_check(const struct revoked_entry *re, const char *serial_hex, int want_reason,
                        int64_t want_invalidity, int want_time_type)
{
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(crl_encode_entry(re, &b), 0);
    const unsigned char *p = b.data;
    X509_REVOKED *r = d2i_X509_REVOKED(NULL, &p, (long)b.len);
    assert_non_null(r);
    assert_ptr_equal(p, b.data + b.len); /* nothing left over */

    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
    assert_non_null(bn);
    assert_false(BN_is_negative(bn));
    BIGNUM *want = NULL;
    assert_true(BN_hex2bn(&want, serial_hex) > 0);
    assert_int_equal(BN_cmp(bn, want), 0);
    BN_free(want);
    BN_free(bn);

    const ASN1_TIME *rd = X509_REVOKED_get0_revocationDate(r);
    assert_int_equal(ASN1_STRING_type(rd), want_time_type);
    assert_int_equal(asn1_time_epoch(rd), re->revoked_at);

    int crit = -2;
    ASN1_ENUMERATED *rc = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &crit, NULL);
    if (want_reason < 0) {
        assert_null(rc);
        assert_int_equal(crit, -1); /* -1: not found */
    } else {
        assert_non_null(rc);
        assert_int_equal(crit, 0); /* non-critical */
        assert_int_equal(ASN1_ENUMERATED_get(rc), want_reason);
        ASN1_ENUMERATED_free(rc);
    }
    crit = -2;
    ASN1_GENERALIZEDTIME *inv = X509_REVOKED_get_ext_d2i(r, NID_invalidity_date, &crit, NULL);
    if (want_invalidity == 0) {
        assert_null(inv);
    } else {
        assert_non_null(inv);
        assert_int_equal(crit, 0);
        assert_int_equal(ASN1_STRING_type(inv), V_ASN1_GENERALIZEDTIME);
        assert_int_equal(asn1_time_epoch(inv), want_invalidity);
        ASN1_GENERALIZEDTIME_free(inv);
    }
    X509_REVOKED_free(r);
    buf_free(&b);
}

/* (a) no reason: serial 1, UTCTime, no extensions.
 *   30 12                                  SEQUENCE, 18 bytes
 *      02 01 01                            INTEGER 1
 *      17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a
 *                                          UTCTime "260102030405Z" (13) */
static void test_plain(void **state)
{
    (void)state;
    struct revoked_entry re = {.serial = "01", .revoked_at = T_2026_01_02_030405, .reason = -1};
    expect_der(&re, "30 12 02 01 01 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a");
    cross_check(&re, "01", -1, 0, V_ASN1_UTCTIME);
}

/* (b) unspecified (0): the reasonCode is left out, same bytes as (a). */
static void test_unspecified(void **state)
{
    (void)state;
    struct revoked_entry re = {.serial = "01", .revoked_at = T_2026_01_02_030405, .reason = 0};
    expect_der(&re, "30 12 02 01 01 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a");
    cross_check(&re, "01", -1, 0, V_ASN1_UTCTIME);
}

/* (c) keyCompromise (1) + invalidityDate 2025-12-31T00:00:00Z.
 *   30 3a                                  SEQUENCE, 58 bytes
 *      02 01 01                            INTEGER 1
 *      17 0d "260102030405Z"               UTCTime
 *      30 26                               Extensions, 38 bytes
 *         30 0a                            Extension, 10 bytes
 *            06 03 55 1d 15                OID reasonCode
 *            04 03 0a 01 01                OCTET STRING { ENUMERATED 1 }
 *         30 18                            Extension, 24 bytes
 *            06 03 55 1d 18                OID invalidityDate
 *            04 11                         OCTET STRING, 17 bytes
 *               18 0f "20251231000000Z"    GeneralizedTime (15) */
static void test_key_compromise_invalidity(void **state)
{
    (void)state;
    struct revoked_entry re = {
        .serial = "01", .revoked_at = T_2026_01_02_030405, .reason = 1, .invalidity_date = T_2025_12_31};
    expect_der(&re, "30 3a 02 01 01 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a"
                    " 30 26"
                    " 30 0a 06 03 55 1d 15 04 03 0a 01 01"
                    " 30 18 06 03 55 1d 18 04 11 18 0f 32 30 32 35 31 32 33 31 30 30 30 30 30 30 5a");
    cross_check(&re, "01", 1, T_2025_12_31, V_ASN1_UTCTIME);
}

/* unspecified with an invalidity date: only the invalidityDate extension.
 *   30 2e 02 01 01 17 0d ... 30 1a <invalidityDate as above> */
static void test_unspecified_invalidity(void **state)
{
    (void)state;
    struct revoked_entry re = {
        .serial = "01", .revoked_at = T_2026_01_02_030405, .reason = 0, .invalidity_date = T_2025_12_31};
    expect_der(&re, "30 2e 02 01 01 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a"
                    " 30 1a"
                    " 30 18 06 03 55 1d 18 04 11 18 0f 32 30 32 35 31 32 33 31 30 30 30 30 30 30 5a");
    cross_check(&re, "01", -1, T_2025_12_31, V_ASN1_UTCTIME);
}

/* (d) certificateHold (6): reasonCode 6, and no invalidityDate even when
 * one is recorded (a held certificate has not been found compromised).
 *   30 20 02 01 01 17 0d ... 30 0c 30 0a 06 03 55 1d 15 04 03 0a 01 06 */
static void test_hold(void **state)
{
    (void)state;
    struct revoked_entry re = {
        .serial = "01", .revoked_at = T_2026_01_02_030405, .reason = 6, .invalidity_date = T_2025_12_31};
    expect_der(&re, "30 20 02 01 01 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a"
                    " 30 0c 30 0a 06 03 55 1d 15 04 03 0a 01 06");
    cross_check(&re, "01", 6, 0, V_ASN1_UTCTIME);
}

/* (e) minimal positive INTEGER (X.690 8.3.2). */
static void test_serial_encoding(void **state)
{
    (void)state;
    struct revoked_entry re = {.serial = "80ff", .revoked_at = T_2026_01_02_030405, .reason = -1};
    /* high bit set: a 00 pad keeps it positive */
    expect_der(&re, "30 14 02 03 00 80 ff 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a");
    cross_check(&re, "80ff", -1, 0, V_ASN1_UTCTIME);
    /* redundant leading zero dropped */
    re.serial = "0001";
    expect_der(&re, "30 12 02 01 01 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a");
    cross_check(&re, "01", -1, 0, V_ASN1_UTCTIME);
    /* needed leading zero kept */
    re.serial = "00ff";
    expect_der(&re, "30 13 02 02 00 ff 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a");
    cross_check(&re, "ff", -1, 0, V_ASN1_UTCTIME);
    /* several redundant zeros before a high-bit octet: exactly one stays */
    re.serial = "000080";
    expect_der(&re, "30 13 02 02 00 80 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a");
    /* zero itself is one 00 octet */
    re.serial = "0000";
    expect_der(&re, "30 12 02 01 00 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a");
    /* a typical 16-octet serial with the top bit clear: no pad */
    re.serial = "7f0102030405060708090a0b0c0d0e0f";
    expect_der(&re, "30 21 02 10 7f 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
                    " 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a");
    cross_check(&re, "7f0102030405060708090a0b0c0d0e0f", -1, 0, V_ASN1_UTCTIME);
}

/* (f) RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
 *   30 14 02 01 01 18 0f "20500101000000Z" */
static void test_time_switch(void **state)
{
    (void)state;
    struct revoked_entry re = {.serial = "01", .revoked_at = T_2050_01_01, .reason = -1};
    expect_der(&re, "30 14 02 01 01 18 0f 32 30 35 30 30 31 30 31 30 30 30 30 30 30 5a");
    cross_check(&re, "01", -1, 0, V_ASN1_GENERALIZEDTIME);
    /* last second of 2049: still UTCTime "491231235959Z" */
    re.revoked_at = T_2049_12_31_235959;
    expect_der(&re, "30 12 02 01 01 17 0d 34 39 31 32 33 31 32 33 35 39 35 39 5a");
    cross_check(&re, "01", -1, 0, V_ASN1_UTCTIME);
}

/* (g) malformed serials fail and leave the output untouched. The longest
 * accepted input is a 20-octet serial with its 00 pad (21 octets). */
static void test_bad_serials(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_append(&b, "x", 1), 0);
    static const char *bad[] = {
        "", "abc", "zz", "0g", " 1", "01 ",
        "00ff0102030405060708090a0b0c0d0e0f1011121314", /* 22 octets */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct revoked_entry re = {.serial = bad[i], .revoked_at = T_2026_01_02_030405, .reason = -1};
        assert_int_equal(crl_encode_entry(&re, &b), -1);
        assert_int_equal(b.len, 1);
    }
    buf_free(&b);

    /* 00 + 20 octets with the top bit set: the padded 20-octet serial */
    struct revoked_entry re = {.serial = "00ff0102030405060708090a0b0c0d0e0f10111213",
                               .revoked_at = T_2026_01_02_030405,
                               .reason = -1};
    expect_der(&re, "30 26 02 15 00 ff 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13"
                    " 17 0d 32 36 30 31 30 32 30 33 30 34 30 35 5a");
    cross_check(&re, "ff0102030405060708090a0b0c0d0e0f10111213", -1, 0, V_ASN1_UTCTIME);
}

/* Entries are appended (the CRL builder streams them into one buffer), and
 * a capped buffer refuses instead of growing. */
static void test_append_and_cap(void **state)
{
    (void)state;
    struct revoked_entry a = {.serial = "01", .revoked_at = T_2026_01_02_030405, .reason = -1};
    struct revoked_entry c = {
        .serial = "02", .revoked_at = T_2026_01_02_030405, .reason = 1, .invalidity_date = T_2025_12_31};
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(crl_encode_entry(&a, &b), 0);
    assert_int_equal(crl_encode_entry(&c, &b), 0);
    assert_int_equal(b.len, 20 + 60);
    const unsigned char *p = b.data;
    X509_REVOKED *r1 = d2i_X509_REVOKED(NULL, &p, (long)b.len);
    X509_REVOKED *r2 = d2i_X509_REVOKED(NULL, &p, (long)(b.data + b.len - p));
    assert_non_null(r1);
    assert_non_null(r2);
    assert_ptr_equal(p, b.data + b.len);
    assert_int_equal(ASN1_INTEGER_get(X509_REVOKED_get0_serialNumber(r1)), 1);
    assert_int_equal(ASN1_INTEGER_get(X509_REVOKED_get0_serialNumber(r2)), 2);
    X509_REVOKED_free(r1);
    X509_REVOKED_free(r2);
    buf_free(&b);

    buf_init(&b, 10);
    assert_int_equal(crl_encode_entry(&a, &b), -1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_unspecified),
        cmocka_unit_test(test_key_compromise_invalidity),
        cmocka_unit_test(test_unspecified_invalidity),
        cmocka_unit_test(test_hold),
        cmocka_unit_test(test_serial_encoding),
        cmocka_unit_test(test_time_switch),
        cmocka_unit_test(test_bad_serials),
        cmocka_unit_test(test_append_and_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
