/* util/duration: ISO 8601 durations and calendar arithmetic in UTC
 * (end-of-month clamping, leap years). Epoch values computed independently
 * with Python's calendar.timegm. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/duration.h"

#include <string.h>

#define T_2023_01_31 INT64_C(1675123200)
#define T_2023_02_28 INT64_C(1677542400)
#define T_2024_01_31 INT64_C(1706659200)
#define T_2024_02_29 INT64_C(1709164800)
#define T_2025_02_28 INT64_C(1740700800)
#define T_2024_01_31_102030 INT64_C(1706696430)
#define T_2024_02_29_102030 INT64_C(1709202030)
#define DAY INT64_C(86400)

static void expect(const char *s, int y, int m, int d, int64_t secs)
{
    struct duration du;
    memset(&du, 0x5a, sizeof du);
    assert_int_equal(duration_parse(s, &du), 0);
    assert_int_equal(du.years, y);
    assert_int_equal(du.months, m);
    assert_int_equal(du.days, d);
    assert_int_equal(du.seconds, secs);
}

static void test_parse_ok(void **state)
{
    (void)state;
    expect("P1Y", 1, 0, 0, 0);
    expect("P90D", 0, 0, 90, 0);
    expect("P1Y6M", 1, 6, 0, 0);
    expect("PT12H", 0, 0, 0, 12 * 3600);
    expect("P2W", 0, 0, 14, 0);
    expect("P1DT2H3M4S", 0, 0, 1, 2 * 3600 + 3 * 60 + 4);
    expect("PT30M", 0, 0, 0, 1800); /* M after T is minutes */
    expect("P1M", 0, 1, 0, 0);      /* M before T is months */
    expect("P100Y", 100, 0, 0, 0);  /* the limit itself */
    expect("P0Y1D", 0, 0, 1, 0);    /* zero components are fine when the total is not */
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",        "P",      "1Y",     "PT",      "P1H",    "P1M1Y",  "P-1D",   "P1.5Y",  "P101Y",
        "P1Y1Y",   "P1DT",   "PT1H1H", "PT1S1M",  "P1",     "PY",     "p1y",    "P1Y ",   " P1Y",
        "P0D",     "PT0S",   "P1D2",   "P1DT1D",  "PTT1H",  "P+1D",   "P1,5Y",  "P1X",    "P36600W",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct duration du;
        if (duration_parse(bad[i], &du) == 0)
            fail_msg("'%s' was accepted", bad[i]);
    }
    struct duration du;
    assert_int_not_equal(duration_parse(NULL, &du), 0);
}

static int64_t add(int64_t t, const char *s)
{
    struct duration du;
    assert_int_equal(duration_parse(s, &du), 0);
    return duration_add(t, &du);
}

static void test_add(void **state)
{
    (void)state;
    /* clamped to the end of a leap February */
    assert_int_equal(add(T_2024_01_31, "P1M"), T_2024_02_29);
    /* and of an ordinary one */
    assert_int_equal(add(T_2023_01_31, "P1M"), T_2023_02_28);
    /* leap day + 1 year */
    assert_int_equal(add(T_2024_02_29, "P1Y"), T_2025_02_28);
    /* time of day is kept */
    assert_int_equal(add(T_2024_01_31_102030, "P1M"), T_2024_02_29_102030);
    /* plain seconds / days */
    assert_int_equal(add(T_2024_01_31, "PT12H"), T_2024_01_31 + 43200);
    assert_int_equal(add(T_2024_01_31, "P90D"), T_2024_01_31 + 90 * DAY);
    assert_int_equal(add(T_2024_01_31, "P2W"), T_2024_01_31 + 14 * DAY);
    /* months first, then days: 2024-01-31 + P1M1D = 2024-03-01 */
    assert_int_equal(add(T_2024_01_31, "P1M1D"), T_2024_02_29 + DAY);
    /* 12 months = 1 year; 2023-01-31 + P13M = 2024-02-29 */
    assert_int_equal(add(T_2023_01_31, "P12M"), T_2024_01_31);
    assert_int_equal(add(T_2023_01_31, "P13M"), T_2024_02_29);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
