/* jsonw_compact gives the bytes json_dumps(JSON_COMPACT) gives, for
 * thousands of generated documents (every control character, quotes,
 * backslashes, multibyte UTF-8, integers at the extremes, nesting, empty
 * containers), and refuses exactly what it leaves to jansson. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "util/jsonw.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* A string of up to 40 characters: ASCII (controls included) and 2-4 byte
 * UTF-8; with `bad`, one byte that breaks UTF-8. */
static size_t gen_text(char *out, bool bad)
{
    static const char *multi[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x94\x91", "\xe2\x80\xa8", "\xef\xbf\xbf"};
    size_t n = 0, len = next() % 41;
    for (size_t i = 0; i < len; i++) {
        uint32_t r = next() % 10;
        if (r < 7) {
            out[n++] = (char)(1 + next() % 127); /* 0x01-0x7f */
        } else if (r < 8) {
            out[n++] = "\"\\/\n\t"[next() % 5];
        } else {
            const char *m = multi[next() % 5];
            memcpy(out + n, m, strlen(m));
            n += strlen(m);
        }
    }
    if (bad)
        out[n++] = (char)0xc0; /* overlong lead byte: never valid */
    out[n] = 0;
    return n;
}

static json_t *gen(int depth, bool *bad, bool *real)
{
    char s[256];
    uint32_t r = next() % (depth > 4 ? 6 : 9);
    switch (r) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(next() & 1);
    case 2: {
        static const json_int_t ints[] = {0, -1, 1, INT64_MAX, INT64_MIN, 1234567890123LL};
        return json_integer(next() % 3 ? (json_int_t)(int32_t)next() : ints[next() % 6]);
    }
    case 3:
        if (next() % 50 == 0) {
            *real = true;
            return json_real(1.5);
        }
        /* fall through */
    case 4:
    case 5: {
        bool b = next() % 200 == 0;
        *bad |= b;
        size_t n = gen_text(s, b);
        return json_stringn_nocheck(s, n);
    }
    case 6:
    case 7: {
        json_t *o = json_object();
        for (uint32_t i = next() % 6; i > 0; i--) {
            /* keys stay valid: jansson 2.14 ignores a key it cannot dump and
             * writes broken JSON (test_fixed_cases) */
            size_t n = gen_text(s, false);
            /* a unique suffix: a key set twice would drop a value, and with it
             * what `bad` and `real` say of the document */
            static unsigned serial;
            n += (size_t)snprintf(s + n, sizeof s - n, "#%u", serial++);
            json_object_setn_new_nocheck(o, s, n, gen(depth + 1, bad, real));
        }
        return o;
    }
    default: {
        json_t *a = json_array();
        for (uint32_t i = next() % 6; i > 0; i--)
            json_array_append_new(a, gen(depth + 1, bad, real));
        return a;
    }
    }
}

static void test_matches_jansson(void **state)
{
    (void)state;
    int compared = 0, refused = 0;
    for (int i = 0; i < 20000; i++) {
        bool bad = false, real = false;
        json_t *root = next() & 1 ? json_object() : json_array();
        for (uint32_t k = next() % 5; k > 0; k--) {
            json_t *v = gen(1, &bad, &real);
            if (json_is_object(root)) {
                char key[8];
                snprintf(key, sizeof key, "k%u", k);
                json_object_set_new(root, key, v);
            } else {
                json_array_append_new(root, v);
            }
        }
        size_t n = 0;
        char *got = jsonw_compact(root, &n);
        char *want = json_dumps(root, JSON_COMPACT);
        if (got) {
            assert_false(bad);
            assert_false(real);
            assert_non_null(want);
            assert_int_equal(n, strlen(want));
            assert_string_equal(got, want);
            compared++;
        } else {
            assert_true(bad || real);
            if (bad)
                assert_null(want); /* jansson refuses invalid UTF-8 too */
            refused++;
        }
        free(got);
        free(want);
        json_decref(root);
    }
    assert_true(compared > 15000);
    assert_true(refused > 10);
}

static void test_fixed_cases(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:s,s:[],s:{},s:I,s:b,s:n}", "pem", "-----BEGIN X-----\nAB/+\n-----END X-----\n", "a",
                          "o", "i", (json_int_t)-42, "t", 1, "z");
    char *got = jsonw_compact(j, NULL);
    assert_string_equal(got, "{\"pem\":\"-----BEGIN X-----\\nAB/+\\n-----END X-----\\n\",\"a\":[],\"o\":{},\"i\":-42,"
                             "\"t\":true,\"z\":null}");
    free(got);
    json_decref(j);
    /* a key that is not UTF-8: refused (jansson would write {":true}) */
    json_t *o = json_object();
    json_object_setn_new_nocheck(o, "k\xc0", 2, json_true());
    assert_null(jsonw_compact(o, NULL));
    json_decref(o);
    json_t *s = json_string("top-level scalar");
    assert_null(jsonw_compact(s, NULL)); /* json_dumps refuses it too (no JSON_ENCODE_ANY) */
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_matches_jansson), cmocka_unit_test(test_fixed_cases)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
