#include "ca/scheduler.h"

#include "audit/audit.h"
#include "ca/ocsp.h"
#include "util/log.h"
#include "util/ticker.h"
#include "util/timeutil.h"

#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct scheduler {
    struct scheduler_opts o;
    struct ticker *t;
    bool started; /* the first pass (after start-up) has run */
};

/* Several nodes may share one store (PostgreSQL): the jobs of a tick run on
 * the node holding the "scheduler" lease, renewed every tick; when that node
 * stops, another takes over once the lease has expired. */
static bool lead(const struct scheduler_opts *o)
{
    struct store *st = o->env->store;
    int ttl = 3 * (o->tick_s > 0 ? o->tick_s : 1) + 10;
    return !st->ops->lease_take || st->ops->lease_take(st, "scheduler", ttl) == STORE_OK;
}

/* One pass; `first`: the first this node leads since it started. Returns
 * whether this node led it. */
static bool run_pass(const struct scheduler_opts *o, bool first)
{
    struct ca_list l;
    int64_t now = time_now();
    if (!lead(o)) {
        /* pre-signed OCSP answers live in each node's memory */
        if (o->ocsp)
            ocsp_cache_refresh(o->ocsp, o->env);
        return false;
    }
    if (o->housekeeping)
        o->housekeeping(o->housekeeping_arg);
    if (o->env->store->ops->ca_list_active_all(o->env->store, &l) != STORE_OK)
        return false;
    int64_t renewed = now;
    bool leading = true;
    for (size_t i = 0; i < l.n; i++) {
        struct ca_rec *ca = &l.items[i];
        struct err e;
        /* A long tick (many CAs, big CRLs) renews the lease as it goes, so it
         * cannot expire under us and let a second node run the same jobs;
         * if another node holds it after all, that node carries on. */
        if (time_now() - renewed >= (o->tick_s > 0 ? o->tick_s : 1)) {
            if (!lead(o)) {
                log_warn("scheduler: lease lost mid-tick after %zu of %zu CAs; another node leads", i, l.n);
                leading = false;
                break;
            }
            renewed = time_now();
        }
        if (ca->ocsp_enabled && ocsp_responder_ensure(o->env, ca, &e) != 0)
            log_error("scheduler: %s/%s: %s", ca->partition_id, ca->id, e.msg);
        if (!ca->crl_enabled)
            continue;
        /* shared store: status changes made on other nodes, by the counter */
        int64_t epoch = store_epoch(o->env->store, ca->partition_id, ca->pk);
        if (epoch > 0 && epoch != crl_cache_epoch(o->crls, ca->pk))
            crl_cache_mark_dirty(o->crls, ca->pk, now);
        struct crl_blob *cur = crl_cache_get(o->crls, o->env, ca, CRL_FULL, &e);
        /* A change marked before a stop or crash was only in memory: a
         * single store keeps no record of it. After start-up every CA's
         * stored CRL counts as dirty since it was built, so a change made
         * in the last crl_delay_s before the stop is published no later
         * than promised (at once when the CRL is older than that). */
        if (first && cur)
            crl_cache_mark_dirty(o->crls, ca->pk,
                                 cur->this_update > now - o->crl_delay_s ? cur->this_update : now - o->crl_delay_s);
        int64_t dirty = crl_cache_dirty_since(o->crls, ca->pk);
        bool due = !cur || now - cur->this_update >= o->crl_period_s || (dirty && now - dirty >= o->crl_delay_s);
        crl_blob_release(cur);
        if (!due)
            continue;
        struct crl_blob *b = crl_publish_all(o->crls, o->env, ca, &e);
        if (!b) {
            log_error("scheduler: CRL %s/%s: %s", ca->partition_id, ca->id, e.msg);
            continue;
        }
        if (epoch > 0)
            crl_cache_set_epoch(o->crls, ca->pk, epoch);
        crl_blob_release(b);
    }
    ca_list_free(&l);
    if (o->ocsp)
        ocsp_cache_refresh(o->ocsp, o->env);
    if (leading)
        audit_checkpoint_due(o->env->store, o->env->mkey, time_now() * 1000);
    return leading;
}

void scheduler_run_once(const struct scheduler_opts *o)
{
    (void)run_pass(o, false);
}

static void tick(void *arg)
{
    struct scheduler *s = arg;
    if (run_pass(&s->o, !s->started))
        s->started = true;
}

struct scheduler *scheduler_start(const struct scheduler_opts *o)
{
    struct scheduler *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->o = *o;
    if (!(s->t = ticker_start(tick, s, o->tick_s))) {
        free(s);
        return NULL;
    }
    return s;
}

void scheduler_stop(struct scheduler *s)
{
    if (!s)
        return;
    ticker_stop(s->t);
    free(s);
}
