/* scheduler: the background thread for status services. Each tick it
 * rebuilds CRLs that are older than the period or dirty for longer than the
 * revocation delay, and issues / rolls OCSP responder certificates. Slow
 * work never runs on request threads. With several nodes on one store only
 * the holder of the store's "scheduler" lease runs these jobs (and the
 * housekeeping hook); every node refreshes its own OCSP answer cache. */
#ifndef PKIAAS_CA_SCHEDULER_H
#define PKIAAS_CA_SCHEDULER_H

#include "ca/crl.h"
#include "store/store.h"

struct scheduler;

struct ocsp_cache;

struct scheduler_opts {
    const struct ca_env *env;
    struct crl_cache *crls;
    struct ocsp_cache *ocsp;
    int tick_s, crl_period_s, crl_delay_s;
    /* Further housekeeping each tick (protocol state expiry, Intune
     * revocation sync); may be NULL. */
    void (*housekeeping)(void *arg);
    void *housekeeping_arg;
};

struct scheduler *scheduler_start(const struct scheduler_opts *o);
void scheduler_stop(struct scheduler *s);
/* One pass (also used by tests through the daemon). */
void scheduler_run_once(const struct scheduler_opts *o);

#endif
