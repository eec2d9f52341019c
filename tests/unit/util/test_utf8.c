/* utf8_fix: any bytes become valid UTF-8 that jansson accepts, valid text
 * is left alone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "util/json_util.h"
#include "util/utf8.h"

#include <jansson.h>
#include <string.h>

static void check(const char *in, const char *want)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", in);
    utf8_fix(buf);
    assert_string_equal(buf, want);
    json_t *j = json_string(buf);
    assert_non_null(j); /* jansson takes it */
    json_decref(j);
}

static void test_valid_untouched(void **state)
{
    (void)state;
    check("plain ascii", "plain ascii");
    check("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");
}

static void test_invalid_replaced(void **state)
{
    (void)state;
    check("ord\xd2r", "ord?r");              /* lead byte without continuation */
    check("\x80\xbf", "??");                 /* stray continuations */
    check("a\xc3", "a?");                    /* cut at the end (truncation) */
    check("\xc0\xaf", "??");                 /* overlong '/' */
    check("\xe0\x80\xaf", "???");            /* overlong 3-byte */
    check("\xed\xa0\x80", "???");            /* UTF-16 surrogate */
    check("\xf4\x90\x80\x80", "????");       /* beyond U+10FFFF */
    check("\xff\xfe", "??");
}

static bool valid(const char *s)
{
    return utf8_valid((const unsigned char *)s, strlen(s), NULL);
}

/* utf8_valid is the one strict check DN values and SAN text go through */
static void test_strict_check(void **state)
{
    (void)state;
    size_t n = 0;
    assert_true(utf8_valid((const unsigned char *)"caf\xc3\xa9 \xf0\x9f\x94\x91", 10, &n));
    assert_int_equal(n, 6);
    assert_true(valid("\xe0\xa0\x80"));        /* U+0800, the first 3-byte */
    assert_true(valid("\xf4\x8f\xbf\xbf"));    /* U+10FFFF */
    assert_false(valid("\xc1\xbf"));            /* overlong 2-byte */
    assert_false(valid("\xe0\x9f\xbf"));        /* overlong 3-byte */
    assert_false(valid("\xf0\x8f\xbf\xbf"));    /* overlong 4-byte */
    assert_false(valid("\xed\xbf\xbf"));        /* low surrogate */
    assert_false(valid("\xf4\x90\x80\x80"));    /* beyond U+10FFFF */
    assert_false(valid("\xf5\x80\x80\x80"));
    assert_false(valid("\xe2\x82"));            /* cut */
    /* what the SAN fuzzer found: a UPN ending in a surrogate and an overlong
     * sequence was accepted from a CSR (then dropped from JSON output) */
    assert_false(valid("upn@x.g\xed\xa0\x80"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_untouched),
        cmocka_unit_test(test_invalid_replaced),
        cmocka_unit_test(test_strict_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
