/* Placeholder until the protocol lands: no routes, no settings. */
#include "cmp/cmp.h"

#include <stdio.h>

const char *const cmp_setting_keys[] = {NULL};

int cmp_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e)
{
    (void)body;
    (void)doc;
    (void)create;
    (void)e;
    return 0;
}

char *cmp_url(const char *https_base, const char *partition, const char *config)
{
    char *u = NULL;
    if (asprintf(&u, "%s/cmp/%s/%s", https_base, partition, config) < 0)
        return NULL;
    return u;
}

const struct route cmp_routes[1] = {{0}};
const size_t cmp_routes_count = 0;
