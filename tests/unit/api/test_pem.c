/* pem_der writes the same bytes as OpenSSL's PEM_write_bio, for every
 * length across several line boundaries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "api/api_json.h"
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

static void test_pem_matches_openssl(void **state)
{
    (void)state;
    unsigned char buf[1200];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 151 + 7);
    const char *names[] = {"CERTIFICATE", "PKCS7", "X509 CRL"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        for (size_t n = 1; n <= sizeof buf; n++) {
            BIO *b = BIO_new(BIO_s_mem());
            assert_non_null(b);
            assert_true(PEM_write_bio(b, names[k], "", buf, (long)n) > 0);
            char *want = NULL;
            long wl = BIO_get_mem_data(b, &want);
            char *got = pem_der(names[k], buf, n);
            assert_non_null(got);
            assert_int_equal(strlen(got), (size_t)wl);
            assert_memory_equal(got, want, (size_t)wl);
            free(got);
            BIO_free(b);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_pem_matches_openssl)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
