/* x509/certbuild: the TBSCertificate encoded from a template must be, byte
 * for byte, the one OpenSSL encodes for an X509 filled with the same values
 * through its own setters; the signed certificate must decode and verify
 * with the issuer's key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "x509/certbuild.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

static X509_NAME *name(const char *cn, const char *o)
{
    X509_NAME *n = X509_NAME_new();
    assert_non_null(n);
    if (o)
        assert_int_equal(X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)o, -1, -1, 0), 1);
    assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0), 1);
    return n;
}

/* OpenSSL's own TBS for the same values: X509 setters, i2d_re_X509_tbs. */
static int reference_tbs(const struct cert_template *t, struct signer *s, unsigned char **der)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_bin2bn(t->serial, SERIAL_LEN, NULL);
    ASN1_INTEGER *sn = BN_to_ASN1_INTEGER(bn, NULL);
    X509_ALGOR *alg = signer_algor(s);
    assert_non_null(x);
    assert_non_null(sn);
    assert_non_null(alg);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(X509_set_serialNumber(x, sn), 1);
    assert_int_equal(X509_set_issuer_name(x, t->issuer), 1);
    assert_int_equal(X509_set_subject_name(x, t->subject), 1);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)t->not_before));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)t->not_after));
    if (t->spki) {
        EVP_PKEY *k = X509_PUBKEY_get0(t->spki);
        assert_non_null(k);
        assert_int_equal(X509_set_pubkey(x, k), 1);
    } else {
        assert_int_equal(X509_set_pubkey(x, t->pubkey), 1);
    }
    for (int i = 0; t->exts && i < sk_X509_EXTENSION_num(t->exts); i++)
        assert_int_equal(X509_add_ext(x, sk_X509_EXTENSION_value(t->exts, i), -1), 1);
    assert_int_equal(X509_ALGOR_copy((X509_ALGOR *)X509_get0_tbs_sigalg(x), alg), 1);
    int n = i2d_re_X509_tbs(x, der);
    X509_ALGOR_free(alg);
    ASN1_INTEGER_free(sn);
    BN_free(bn);
    X509_free(x);
    return n;
}

static void check(EVP_PKEY *cakey, const char *md, bool pss, EVP_PKEY *subj, bool via_spki, bool with_exts,
                  int64_t nb, int64_t na)
{
    struct signer *s = signer_soft_new(cakey, md, pss);
    X509_NAME *issuer = name("Unit Issuing CA", "pkiaas"), *subject = name("host.example.com", NULL);
    X509_PUBKEY *spki = NULL;
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    assert_non_null(s);
    assert_non_null(exts);
    if (with_exts) {
        X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:FALSE");
        X509_EXTENSION *ku = X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, "critical,digitalSignature");
        X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:host.example.com");
        assert_true(bc && ku && san);
        sk_X509_EXTENSION_push(exts, bc);
        sk_X509_EXTENSION_push(exts, ku);
        sk_X509_EXTENSION_push(exts, san);
    }
    if (via_spki)
        assert_int_equal(X509_PUBKEY_set(&spki, subj), 1);
    struct cert_template t = {.subject = subject, .issuer = issuer, .pubkey = subj, .spki = spki,
                              .not_before = nb, .not_after = na, .exts = exts};
    for (int i = 0; i < SERIAL_LEN; i++)
        t.serial[i] = (unsigned char)(0x40 + i * 7);

    unsigned char *mine = NULL, *ref = NULL, *der = NULL;
    size_t mlen = 0, dlen = 0;
    assert_int_equal(certbuild_tbs_der(&t, s, &mine, &mlen), 0);
    int rlen = reference_tbs(&t, s, &ref);
    assert_true(rlen > 0);
    assert_int_equal(mlen, (size_t)rlen);
    assert_memory_equal(mine, ref, mlen);

    /* signed: decodes, carries the same TBS, verifies with the CA key */
    assert_int_equal(certbuild_sign_der(&t, s, &der, &dlen), 0);
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)dlen);
    assert_non_null(x);
    assert_ptr_equal(p, der + dlen);
    assert_int_equal(X509_verify(x, cakey), 1);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    assert_int_equal(X509_get_ext_count(x), with_exts ? 3 : 0);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), issuer), 0);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), subject), 0);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), subj), 1);
    unsigned char *tbs2 = NULL;
    int t2 = i2d_re_X509_tbs(x, &tbs2);
    assert_int_equal((size_t)t2, mlen);
    assert_memory_equal(tbs2, mine, mlen);

    /* and the decoded form through certbuild_sign */
    char err[128];
    X509 *y = certbuild_sign(&t, s, err, sizeof err);
    assert_non_null(y);
    assert_int_equal(X509_verify(y, cakey), 1);

    X509_free(y);
    OPENSSL_free(tbs2);
    X509_free(x);
    free(der);
    OPENSSL_free(ref);
    OPENSSL_free(mine);
    X509_PUBKEY_free(spki);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_NAME_free(subject);
    X509_NAME_free(issuer);
    signer_free(s);
}

static void test_ec_and_rsa(void **state)
{
    (void)state;
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *sub = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_true(ec && rsa && sub);
    const int64_t nb = 1767225600;       /* 2026-01-01: UTCTime */
    const int64_t na_utc = 1861920000;   /* 2029-01-01: UTCTime */
    const int64_t na_gen = 2556144000LL; /* 2051-01-01: GeneralizedTime */
    check(ec, "SHA256", false, sub, true, true, nb, na_utc);
    check(ec, "SHA384", false, sub, false, true, nb, na_gen);
    check(rsa, "SHA256", false, sub, true, true, nb, na_utc);
    check(rsa, "SHA256", true, ec, false, false, nb, na_gen); /* PSS; no extensions field at all */
    EVP_PKEY_free(sub);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ec_and_rsa),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
