#include "http/router.h"

#include <string.h>

/* Matches in place: path segments are compared without copying; captured
 * parameters point into `scratch`, a copy of the path with '/' replaced by
 * NULs (owned by the caller for the lifetime of the request). */
static int match(const char *pattern, char *scratch, size_t len, const char **params, unsigned *np)
{
    const char *p = pattern;
    size_t i = 0;
    *np = 0;
    if (scratch[0] != '/' || *p != '/')
        return 0;
    for (;;) {
        /* both at a '/' (or NUL in scratch after replacement) */
        p++;
        i++;
        const char *pend = strchr(p, '/');
        size_t plen = pend ? (size_t)(pend - p) : strlen(p);
        size_t start = i;
        while (i < len && scratch[i] != '/' && scratch[i] != 0)
            i++;
        size_t slen = i - start;
        if (plen == 3 && memcmp(p, "{*}", 3) == 0 && !pend) {
            /* the rest of the path, slashes included (e.g. base64 in OCSP GET) */
            if (start >= len || *np >= HTTP_MAX_PARAMS)
                return 0;
            params[(*np)++] = scratch + start;
            return 2;
        }
        if (plen == 2 && p[0] == '{' && p[1] == '}') {
            if (slen == 0 || slen > HTTP_MAX_SEGMENT || *np >= HTTP_MAX_PARAMS)
                return 0;
            params[(*np)++] = scratch + start;
        } else if (plen != slen || memcmp(p, scratch + start, slen) != 0) {
            return 0;
        }
        if (!pend)
            return i == len;
        if (i >= len)
            return 0;
        p = pend;
    }
}

const struct route *router_find(const struct router *rt, const char *method, const char *path)
{
    size_t len = strlen(path);
    char scratch[2048];
    if (len >= sizeof scratch)
        return NULL;
    for (size_t t = 0; t < rt->ntables; t++)
        for (size_t r = 0; r < *rt->tables[t].n; r++) {
            const struct route *route = &rt->tables[t].routes[r];
            const char *params[HTTP_MAX_PARAMS];
            unsigned np = 0;
            memcpy(scratch, path, len + 1);
            if (match(route->pattern, scratch, len, params, &np) &&
                (strcmp(route->method, method) == 0 ||
                 (strcmp(method, "HEAD") == 0 && strcmp(route->method, "GET") == 0)))
                return route;
        }
    return NULL;
}

void router_dispatch(const struct router *rt, struct http_req *req, struct http_resp *resp)
{
    size_t len = strlen(req->path);
    char scratch[2048];
    int path_matched = 0;
    if (len >= sizeof scratch) {
        resp_error(resp, 414, "uri_too_long", NULL, "request path is longer than %zu bytes", sizeof scratch - 1);
        return;
    }
    for (size_t t = 0; t < rt->ntables; t++)
    for (size_t r = 0; r < *rt->tables[t].n; r++) {
        const struct route *route = &rt->tables[t].routes[r];
        const char *params[HTTP_MAX_PARAMS];
        unsigned np = 0;
        memcpy(scratch, req->path, len + 1);
        int m = match(route->pattern, scratch, len, params, &np);
        if (!m)
            continue;
        path_matched = 1;
        int same = strcmp(route->method, req->method) == 0 ||
                   (strcmp(req->method, "HEAD") == 0 && strcmp(route->method, "GET") == 0);
        if (!same)
            continue;
        /* terminate captured segments (a trailing {*} keeps its slashes) */
        size_t stop = m == 2 ? (size_t)(params[np - 1] - scratch) : len;
        for (size_t i = 0; i < stop; i++)
            if (scratch[i] == '/')
                scratch[i] = 0;
        for (unsigned k = 0; k < np; k++)
            req->params[k] = params[k];
        req->nparams = np;
        req->capability = route->capability;
        if (rt->before && rt->before(route, req, resp) != 0)
            return;
        route->handler(req, resp);
        return;
    }
    if (path_matched)
        resp_error(resp, 405, "method_not_allowed", NULL, "method %s is not allowed on %s", req->method, req->path);
    else
        resp_error(resp, 404, "not_found", NULL, "no such endpoint: %s", req->path);
}
