/* router: maps METHOD + path pattern to a handler. Patterns are literal
 * segments and "{}" placeholders, which capture one non-empty path segment
 * of at most HTTP_MAX_SEGMENT bytes into req->params. A path that matches a
 * pattern under another method answers 405; no match answers 404. */
#ifndef PKIAAS_HTTP_ROUTER_H
#define PKIAAS_HTTP_ROUTER_H

#include "http/http.h"

typedef void (*http_handler)(struct http_req *req, struct http_resp *resp);

struct route {
    const char *method;
    const char *pattern;
    http_handler handler;
    int capability; /* application-defined class (rate limiting), 0 = default */
    size_t max_body; /* body limit of this route when below the server's (0 = the server's);
                      * unauthenticated endpoints use it to hold less for strangers */
};

struct route_table {
    const struct route *routes;
    const size_t *n;
};

struct router {
    const struct route_table *tables; /* searched in order */
    size_t ntables;
    /* Called after a route matched and before its handler; returning
     * non-zero means `resp` holds the answer (e.g. 429) and the handler is
     * skipped. May be NULL. */
    int (*before)(const struct route *r, struct http_req *req, struct http_resp *resp);
};

/* The route a request will reach (NULL: 404 or 405), for decisions taken
 * before the body is read. */
const struct route *router_find(const struct router *rt, const char *method, const char *path);

/* Dispatches; fills resp for 404/405 itself. */
void router_dispatch(const struct router *rt, struct http_req *req, struct http_resp *resp);

#endif
