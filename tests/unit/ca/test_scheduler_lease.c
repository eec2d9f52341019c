/* ca/scheduler: a tick that outlasts the lease period renews the
 * "scheduler" lease as it goes; when another node holds it by then, the
 * tick stops and leaves the leader-only jobs (audit checkpoints) to that
 * node. A store of stubs counts the calls. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ca/scheduler.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int leases, lease_ok_calls, audits;

static int stub_lease_take(struct store *s, const char *job, int ttl_s)
{
    (void)s;
    (void)ttl_s;
    assert_string_equal(job, "scheduler");
    return ++leases <= lease_ok_calls ? STORE_OK : STORE_ECONFLICT;
}

static int stub_ca_list_active_all(struct store *s, struct ca_list *out)
{
    (void)s;
    out->n = 3;
    out->items = calloc(out->n, sizeof(*out->items)); /* no CRL, no OCSP: nothing else is called */
    assert_non_null(out->items);
    return STORE_OK;
}

static int stub_audit_partitions(struct store *s, char ***ids, size_t *n)
{
    (void)s;
    audits++;
    *ids = NULL;
    *n = 0;
    return STORE_OK;
}

static void slow_housekeeping(void *arg)
{
    (void)arg;
    struct timespec ts = {1, 200 * 1000 * 1000}; /* longer than the 1 s tick */
    nanosleep(&ts, NULL);
}

static void run(int ok_calls, bool slow)
{
    static struct store_ops ops;
    static unsigned char mkey[64];
    memset(&ops, 0, sizeof ops);
    ops.lease_take = stub_lease_take;
    ops.ca_list_active_all = stub_ca_list_active_all;
    ops.audit_partitions = stub_audit_partitions;
    struct store st = {&ops, NULL};
    struct ca_env env = {.store = &st, .mkey = mkey};
    struct scheduler_opts o = {.env = &env, .tick_s = 1, .crl_period_s = 86400, .crl_delay_s = 900};
    if (slow)
        o.housekeeping = slow_housekeeping;
    leases = audits = 0;
    lease_ok_calls = ok_calls;
    scheduler_run_once(&o);
}

static void test_quick_tick_takes_the_lease_once(void **state)
{
    (void)state;
    run(100, false);
    assert_in_range(leases, 1, 2); /* 2 only when a second boundary fell inside the tick */
    assert_int_equal(audits, 1);
}

static void test_long_tick_renews_the_lease(void **state)
{
    (void)state;
    run(100, true);
    assert_in_range(leases, 2, 4); /* at the start, and once the tick outlasted tick_s */
    assert_int_equal(audits, 1);
}

static void test_lease_lost_mid_tick_stops_the_leader_jobs(void **state)
{
    (void)state;
    run(1, true);
    assert_int_equal(leases, 2);
    assert_int_equal(audits, 0); /* the node that holds the lease now checkpoints */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick_tick_takes_the_lease_once),
        cmocka_unit_test(test_long_tick_renews_the_lease),
        cmocka_unit_test(test_lease_lost_mid_tick_stops_the_leader_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
