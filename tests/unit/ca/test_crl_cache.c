/* ca/crl: the CRL cache's dirty mark. A rebuild that started before a
 * status change was marked must not clear the mark, even when both happen
 * within the same second; a rebuild with no change since clears it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ca/crl.h"

static void test_clean_without_change(void **state)
{
    (void)state;
    struct crl_cache *c = crl_cache_new();
    assert_non_null(c);
    assert_int_equal(crl_cache_dirty_since(c, 7), 0);
    crl_cache_mark_dirty(c, 7, 1000);
    assert_int_equal(crl_cache_dirty_since(c, 7), 1000);
    uint64_t seq = crl_cache_dirty_seq(c, 7); /* the rebuild starts */
    crl_cache_clean(c, 7, seq);               /* and nothing changed meanwhile */
    assert_int_equal(crl_cache_dirty_since(c, 7), 0);
    crl_cache_free(c);
}

/* Already dirty (R1), the rebuild starts, R2 is committed and marked while
 * the revoked list is being read: the CA stays dirty. */
static void test_change_during_rebuild_keeps_dirty(void **state)
{
    (void)state;
    struct crl_cache *c = crl_cache_new();
    assert_non_null(c);
    crl_cache_mark_dirty(c, 7, 1000); /* R1 */
    uint64_t seq = crl_cache_dirty_seq(c, 7);
    crl_cache_mark_dirty(c, 7, 1005); /* R2, during the rebuild */
    crl_cache_clean(c, 7, seq);
    assert_int_not_equal(crl_cache_dirty_since(c, 7), 0);
    /* the next rebuild sees no further change and clears it */
    seq = crl_cache_dirty_seq(c, 7);
    crl_cache_clean(c, 7, seq);
    assert_int_equal(crl_cache_dirty_since(c, 7), 0);
    crl_cache_free(c);
}

/* Clean CA; the rebuild starts and a change is marked within the same
 * second: the time alone cannot tell them apart, the sequence does. */
static void test_same_second_change_keeps_dirty(void **state)
{
    (void)state;
    struct crl_cache *c = crl_cache_new();
    assert_non_null(c);
    uint64_t seq = crl_cache_dirty_seq(c, 9);
    crl_cache_mark_dirty(c, 9, 2000);
    crl_cache_clean(c, 9, seq);
    assert_int_equal(crl_cache_dirty_since(c, 9), 2000);
    /* another CA's rebuild does not touch it */
    crl_cache_clean(c, 8, crl_cache_dirty_seq(c, 8));
    assert_int_equal(crl_cache_dirty_since(c, 9), 2000);
    crl_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_without_change),
        cmocka_unit_test(test_change_during_rebuild_keeps_dirty),
        cmocka_unit_test(test_same_second_change_keeps_dirty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
