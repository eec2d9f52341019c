/* http: request/response types shared by the server, the router and the
 * handlers. Handlers see only these, never libmicrohttpd. */
#ifndef PKIAAS_HTTP_HTTP_H
#define PKIAAS_HTTP_HTTP_H

#include "util/buf.h"
#include "util/limits.h"
#include "util/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_PARAMS LIMIT_HTTP_PARAMS
#define HTTP_MAX_SEGMENT LIMIT_HTTP_SEGMENT
#define HTTP_MAX_HEADERS 8

/* A header ('H'), query argument ('Q') or cookie ('C') of a request made
 * in-process (tests, fuzzing: conn is NULL). */
struct http_kv {
    char kind;
    const char *name, *value;
};

struct http_req {
    void *conn;              /* server-private; NULL for in-process requests */
    const struct http_kv *kv;/* in-process requests: their headers, query, cookies */
    unsigned nkv;
    const char *method;
    const char *path;
    struct buf body;
    bool body_truncated;     /* the body went past the route's own limit: the
                              * handler answers 413 in its protocol's form */
    const char *params[HTTP_MAX_PARAMS];
    unsigned nparams;
    bool https;
    char partition[72];      /* for the request log; set by handlers */
    char ip[48];             /* client address (text) */
    int capability;          /* of the matched route (rate-limit class) */
    unsigned char *client_cert; /* DER of the TLS client certificate, if any (owned by the server) */
    size_t client_cert_len;
    void *app;               /* the daemon context */
};

struct http_resp {
    int status;
    const char *content_type;
    unsigned char *body;     /* owned */
    size_t len;
    const char *hdr_name[HTTP_MAX_HEADERS];
    char *hdr_value[HTTP_MAX_HEADERS]; /* owned */
    unsigned nhdr;
};

/* Request accessors (implemented by the server). */
const char *http_header(struct http_req *r, const char *name);
const char *http_query(struct http_req *r, const char *name);
/* How many query arguments the request has. */
unsigned http_query_count(struct http_req *r);
const char *http_cookie(struct http_req *r, const char *name);
/* RFC 9110 13.1.2 If-None-Match: whether the header value (a list of
 * entity tags, strong or W/ weak, or "*") matches `etag` (a quoted strong
 * tag) by the weak comparison. NULL header: false. */
bool http_etag_matches(const char *if_none_match, const char *etag);

/* Response builders. Each replaces any earlier body. */
void resp_bytes(struct http_resp *r, int status, const char *ctype, const void *data, size_t len);
void resp_take(struct http_resp *r, int status, const char *ctype, unsigned char *data, size_t len);
/* Takes the reference to `j`. */
void resp_json(struct http_resp *r, int status, json_t *j);
void resp_error(struct http_resp *r, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void resp_err(struct http_resp *r, const struct err *e);
int resp_header(struct http_resp *r, const char *name, const char *value);
void resp_free(struct http_resp *r);

#endif
