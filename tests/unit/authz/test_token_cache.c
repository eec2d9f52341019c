/* authz: the bearer-token cache. A token read from the store before a
 * revocation cleared the cache must not be cached after the clear (it would
 * keep working for AUTHZ_TOKEN_TTL_S); without a clear, the second use is
 * answered from the cache. The store is a stub whose token_get can clear
 * the cache while "reading", as a concurrent revocation would. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "authz/authz.h"
#include "store/store.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct token_cache *g_cache;
static int g_reads;
static int g_clear_on_read; /* the read during which the revocation lands */
static int g_revoked;

static int stub_token_get(struct store *s, const char *hash, struct token_rec *out)
{
    (void)s;
    memset(out, 0, sizeof(*out));
    snprintf(out->token_hash, sizeof out->token_hash, "%s", hash);
    snprintf(out->partition_id, sizeof out->partition_id, "p1");
    snprintf(out->name, sizeof out->name, "t1");
    out->roles = strdup("Owners");
    out->revoked_at = g_revoked ? 1000 : 0;
    if (++g_reads == g_clear_on_read) {
        /* read as live; now the revocation commits and clears the cache */
        g_revoked = 1;
        token_cache_clear(g_cache);
    }
    return out->roles ? STORE_OK : STORE_EIO;
}

static int setup(void **state)
{
    (void)state;
    g_cache = token_cache_new();
    g_reads = g_clear_on_read = g_revoked = 0;
    return g_cache ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    token_cache_free(g_cache);
    return 0;
}

static int use(struct store *st)
{
    struct principal p;
    struct err e;
    memset(&e, 0, sizeof e);
    return authz_bearer(st, g_cache, "Bearer pk_test_0123456789abcdef0123456789abcdef", "p1", &p, &e);
}

static void test_second_use_is_cached(void **state)
{
    (void)state;
    struct store_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.token_get = stub_token_get;
    struct store st = {&ops, NULL};
    assert_int_equal(use(&st), 0);
    assert_int_equal(use(&st), 0);
    assert_int_equal(g_reads, 1);
}

static void test_revocation_during_read_is_not_cached(void **state)
{
    (void)state;
    struct store_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.token_get = stub_token_get;
    struct store st = {&ops, NULL};
    g_clear_on_read = 1;
    assert_int_equal(use(&st), 0);  /* it was live when read */
    assert_int_equal(use(&st), -1); /* the revocation returned: refused */
    assert_int_equal(g_reads, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_second_use_is_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation_during_read_is_not_cached, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
