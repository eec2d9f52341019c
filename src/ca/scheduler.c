#include "ca/scheduler.h"

#include "audit/audit.h"
#include "ca/ocsp.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct scheduler {
    struct scheduler_opts o;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

void scheduler_run_once(const struct scheduler_opts *o)
{
    struct ca_list l;
    int64_t now = time_now();
    if (o->housekeeping)
        o->housekeeping(o->housekeeping_arg);
    if (o->env->store->ops->ca_list_active_all(o->env->store, &l) != STORE_OK)
        return;
    for (size_t i = 0; i < l.n; i++) {
        struct ca_rec *ca = &l.items[i];
        struct err e;
        if (ca->ocsp_enabled && ocsp_responder_ensure(o->env, ca, &e) != 0)
            log_error("scheduler: %s/%s: %s", ca->partition_id, ca->id, e.msg);
        if (!ca->crl_enabled)
            continue;
        struct crl_blob *cur = crl_cache_get(o->crls, o->env, ca, CRL_FULL, &e);
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
        crl_blob_release(b);
    }
    ca_list_free(&l);
    if (o->ocsp)
        ocsp_cache_refresh(o->ocsp, o->env);
    audit_checkpoint_due(o->env->store, o->env->mkey, time_now() * 1000);
}

static void *loop(void *arg)
{
    struct scheduler *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        scheduler_run_once(&s->o);
        pthread_mutex_lock(&s->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += s->o.tick_s;
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

struct scheduler *scheduler_start(const struct scheduler_opts *o)
{
    struct scheduler *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->o = *o;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->th, NULL, loop, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void scheduler_stop(struct scheduler *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
