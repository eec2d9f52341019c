/* server: libmicrohttpd listeners (HTTP and HTTPS) with a thread per
 * connection or a thread pool, request size limits, per-request JSON log
 * lines and graceful shutdown. */
#ifndef PKIAAS_HTTP_SERVER_H
#define PKIAAS_HTTP_SERVER_H

#include "http/router.h"

#include <stddef.h>

struct http_server;

struct http_server_opts {
    const char *http_addr;   /* "host:port" or NULL/"" */
    const char *https_addr;
    const char *tls_cert_pem; /* chain, PEM */
    const char *tls_key_pem;
    const char *tls_trust_pem; /* set: HTTPS asks clients for a certificate (checked by the application) */
    unsigned threads;        /* 0: a thread per connection; N: a pool of N threads */
    unsigned max_conns_per_ip; /* connections one client address may hold; 0 = no limit */
    size_t max_body;
    const struct router *router;
    void *app;
};

struct http_server *http_server_start(const struct http_server_opts *o, char *err, size_t errlen);
/* Stops accepting, waits up to grace_ms for in-flight requests, stops. */
void http_server_stop(struct http_server *s, int grace_ms);

/* Splits "host:port" / "[v6]:port"; 0 on success. */
int http_parse_addr(const char *addr, char *host, size_t hostlen, unsigned short *port);

#endif
