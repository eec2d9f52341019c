/* Placeholder until the protocol lands: no routes, no settings. */
#include "est/est.h"

#include <stdio.h>

const char *const est_setting_keys[] = {NULL};

int est_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e)
{
    (void)body;
    (void)doc;
    (void)create;
    (void)e;
    return 0;
}

char *est_url(const char *https_base, const char *partition, const char *config)
{
    char *u = NULL;
    if (asprintf(&u, "%s/.well-known/est/%s~%s", https_base, partition, config) < 0)
        return NULL;
    return u;
}

const struct route est_routes[1] = {{0}};
const size_t est_routes_count = 0;
