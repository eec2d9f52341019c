/* http_etag_matches: RFC 9110 13.1.2 If-None-Match lists, weak tags, "*". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "http/http.h"

#define TAG "\"abc123\""

static void test_matches(void **state)
{
    (void)state;
    assert_true(http_etag_matches(TAG, TAG));
    assert_true(http_etag_matches("W/" TAG, TAG));
    assert_true(http_etag_matches("\"x\", " TAG, TAG));
    assert_true(http_etag_matches("\"x\",W/" TAG ",\"y\"", TAG));
    assert_true(http_etag_matches("*", TAG));
    assert_true(http_etag_matches("  " TAG "  ", TAG));
}

static void test_no_match(void **state)
{
    (void)state;
    assert_false(http_etag_matches(NULL, TAG));
    assert_false(http_etag_matches("", TAG));
    assert_false(http_etag_matches("\"abc12\"", TAG));
    assert_false(http_etag_matches("\"abc1234\"", TAG));
    assert_false(http_etag_matches("abc123", TAG));          /* unquoted: not an entity tag */
    assert_false(http_etag_matches("\"abc123", TAG));        /* unterminated */
    assert_false(http_etag_matches("w/" TAG, TAG));          /* the prefix is case-sensitive */
    assert_false(http_etag_matches("\"x\", \"y\"", TAG));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_no_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
