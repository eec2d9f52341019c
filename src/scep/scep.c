/* Placeholder until the protocol lands: no routes, no settings. */
#include "scep/scep.h"

#include <stdio.h>

const char *const scep_setting_keys[] = {NULL};

int scep_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e)
{
    (void)body;
    (void)doc;
    (void)create;
    (void)e;
    return 0;
}

char *scep_url(const char *https_base, const char *partition, const char *config)
{
    char *u = NULL;
    if (asprintf(&u, "%s/scep/%s/%s/pkiclient.exe", https_base, partition, config) < 0)
        return NULL;
    return u;
}

const struct route scep_routes[1] = {{0}};
const size_t scep_routes_count = 0;
