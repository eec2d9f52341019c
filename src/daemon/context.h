/* context: the configured daemon — the one piece of process-wide state.
 * Built once at start-up from the configuration and passed to every
 * request handler. */
#ifndef PKIAAS_DAEMON_CONTEXT_H
#define PKIAAS_DAEMON_CONTEXT_H

#include "api/api.h"
#include "crypto/keywrap.h"
#include "util/config.h"

struct app {
    struct config cfg;
    unsigned char mkey[MASTER_KEY_LEN];
    struct api_ctx api;
    int64_t cmp_sweep_at; /* housekeeping's pace for unconfirmed CMP certificates (scheduler thread) */
};

/* Creates the data directory (0700) if needed, loads or creates the master
 * key, opens the store. */
int app_open(struct app *a, char *err, size_t errlen);
void app_close(struct app *a);

#endif
