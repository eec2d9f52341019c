#include "http/server.h"
#include "util/limits.h"

#include "util/log.h"
#include "util/timeutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define CONN_TIMEOUT_S LIMIT_HTTP_CONN_TIMEOUT_S
#define CONN_LIMIT LIMIT_HTTP_CONNECTIONS
#define TLS_PRIORITIES                                                                                        \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:"     \
    "-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1:-SIGN-DSA-SHA1"
#define CONN_MEMORY LIMIT_HTTP_CONN_MEMORY

struct http_server {
    struct MHD_Daemon *http;
    struct MHD_Daemon *https;
    const struct router *router;
    void *app;
    size_t max_body;
    _Atomic long inflight;
};

struct conn_state {
    struct http_req req;
    double started;
    size_t max_body; /* the route's limit, or the server's */
    bool too_large;
};

/* In-process requests carry their values in req->kv (headers match
 * case-insensitively, like HTTP's). */
static const char *kv_get(const struct http_req *r, char kind, const char *name)
{
    for (unsigned i = 0; i < r->nkv; i++)
        if (r->kv[i].kind == kind &&
            (kind == 'H' ? strcasecmp(r->kv[i].name, name) == 0 : strcmp(r->kv[i].name, name) == 0))
            return r->kv[i].value;
    return NULL;
}

const char *http_header(struct http_req *r, const char *name)
{
    return r->conn ? MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name) : kv_get(r, 'H', name);
}

const char *http_query(struct http_req *r, const char *name)
{
    return r->conn ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name) : kv_get(r, 'Q', name);
}

static enum MHD_Result count_value(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)key;
    (void)value;
    (*(unsigned *)cls)++;
    return MHD_YES;
}

unsigned http_query_count(struct http_req *r)
{
    unsigned n = 0;
    if (r->conn) {
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, count_value, &n);
        return n;
    }
    for (unsigned i = 0; i < r->nkv; i++)
        n += r->kv[i].kind == 'Q';
    return n;
}

const char *http_cookie(struct http_req *r, const char *name)
{
    return r->conn ? MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name) : kv_get(r, 'C', name);
}

static enum MHD_Result queue(struct MHD_Connection *c, struct http_resp *rs, bool head, bool https)
{
    struct MHD_Response *m =
        MHD_create_response_from_buffer(head ? 0 : rs->len, head ? NULL : rs->body,
                                        head ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
    if (!m)
        return MHD_NO;
    if (!head)
        rs->body = NULL; /* MHD owns it now */
    if (rs->content_type)
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type);
    MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
    /* RFC 6797: browsers that reached us over HTTPS stay on it (the portal's
     * login and session cookie) */
    if (https)
        MHD_add_response_header(m, "Strict-Transport-Security", "max-age=31536000");
    MHD_add_response_header(m, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (unsigned i = 0; i < rs->nhdr; i++) {
        if (strcmp(rs->hdr_name[i], MHD_HTTP_HEADER_CACHE_CONTROL) == 0)
            MHD_del_response_header(m, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(m, rs->hdr_name[i], rs->hdr_value[i]);
    }
    enum MHD_Result r = MHD_queue_response(c, (unsigned)rs->status, m);
    MHD_destroy_response(m);
    return r;
}

/* The request line as logged: invitation tokens in the path are bearer
 * secrets and never reach the log. */
static void log_path(const char *url, char *out, size_t n)
{
    /* the API's enrolment calls and the portal's page the link opens */
    static const char *const pfxs[] = {"/api/v1/invitations/", "/invite/"};
    for (size_t i = 0; i < sizeof pfxs / sizeof pfxs[0]; i++) {
        size_t pl = strlen(pfxs[i]);
        if (strncmp(url, pfxs[i], pl) == 0) {
            const char *rest = strchr(url + pl, '/');
            snprintf(out, n, "%s<redacted>%s", pfxs[i], rest ? rest : "");
            return;
        }
    }
    snprintf(out, n, "%s", url);
}

/* Message framing headers of a request (RFC 9112 6.3), the Host header
 * (3.2) and whether every field name is a token (5.1). */
struct framing {
    int content_length, transfer_encoding, host;
    bool te_not_chunked, bad_name;
};

/* RFC 9110 5.6.2 tchar */
static bool token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct framing *f = cls;
    (void)kind;
    /* "Content-Length : 5" keeps its space in the name: it would match no
     * framing check here and be read differently elsewhere */
    f->bad_name |= !key || !token(key);
    if (key && strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
        f->host++;
    if (!key) {
    } else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->content_length++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encoding++;
        f->te_not_chunked |= !value || strcasecmp(value, "chunked") != 0;
    }
    return MHD_YES;
}

/* A request whose length two parties could read differently (a repeated
 * Content-Length, Content-Length with Transfer-Encoding, an encoding other
 * than chunked) is how a second request is hidden in a body behind a proxy
 * that reads it the other way: NULL when the framing is unambiguous, else
 * what is wrong. */
static const char *framing_problem(struct MHD_Connection *c, const char *version)
{
    struct framing f = {0, 0, 0, false, false};
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, &f);
    if (f.bad_name)
        return "a header field name holds whitespace or other characters outside a token (RFC 9112 5.1)";
    if (f.content_length > 1)
        return "the request has more than one Content-Length header (RFC 9112 6.3)";
    if (f.content_length && f.transfer_encoding)
        return "the request has both Content-Length and Transfer-Encoding (RFC 9112 6.3)";
    if (f.transfer_encoding > 1 || f.te_not_chunked)
        return "the only Transfer-Encoding accepted is a single \"chunked\" (RFC 9112 6.3)";
    if (f.host > 1 || (f.host == 0 && version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0))
        return "an HTTP/1.1 request has exactly one Host header (RFC 9112 3.2)";
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct http_server *s = cls;
    struct conn_state *st = *con_cls;
    if (!st) {
        if (!(st = calloc(1, sizeof(*st))))
            return MHD_NO;
        const struct route *rte = router_find(s->router, method, url);
        st->max_body = rte && rte->max_body && rte->max_body < s->max_body ? rte->max_body : s->max_body;
        buf_init(&st->req.body, st->max_body);
        st->req.conn = c;
        st->req.method = method;
        st->req.path = url;
        st->req.app = s->app;
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON)
                                                                 ->daemon,
                                                             MHD_DAEMON_INFO_FLAGS);
        st->req.https = di && (di->flags & MHD_USE_TLS);
        st->started = time_mono_ms();
        if (st->req.https) {
            /* The client certificate (requested, not verified by the TLS
             * layer: the application decides what it proves). */
            const union MHD_ConnectionInfo *gi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
            unsigned int np = 0;
            const gnutls_datum_t *peers =
                gi && gi->tls_session ? gnutls_certificate_get_peers((gnutls_session_t)gi->tls_session, &np) : NULL;
            if (peers && np > 0 && peers[0].size > 0 && peers[0].size <= 64 * 1024 &&
                (st->req.client_cert = malloc(peers[0].size))) {
                memcpy(st->req.client_cert, peers[0].data, peers[0].size);
                st->req.client_cert_len = peers[0].size;
            }
        }
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, st->req.ip, sizeof st->req.ip);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, st->req.ip, sizeof st->req.ip);
        }
        *con_cls = st;
        atomic_fetch_add(&s->inflight, 1);
        const char *bad = framing_problem(c, version);
        if (bad) {
            /* answered before the body is read, and the connection closed:
             * nothing after this request's headers is ever parsed */
            struct http_resp rs;
            memset(&rs, 0, sizeof rs);
            resp_error(&rs, 400, "bad_request", NULL, "%s", bad);
            resp_header(&rs, MHD_HTTP_HEADER_CONNECTION, "close");
            enum MHD_Result r = queue(c, &rs, false, st->req.https);
            char lp[512];
            log_path(url, lp, sizeof lp);
            log_request(method, lp, 400, time_mono_ms() - st->started, NULL);
            resp_free(&rs);
            return r;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!st->too_large && !st->req.body_truncated && buf_append(&st->req.body, upload, *upload_size) != 0) {
            /* past a route's own limit the handler says so in its protocol's
             * form; past the server's, the server answers */
            if (st->max_body < s->max_body)
                st->req.body_truncated = true;
            else
                st->too_large = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    struct http_resp rs;
    memset(&rs, 0, sizeof rs);
    if (st->too_large)
        resp_error(&rs, 413, "payload_too_large", NULL, "request body exceeds %zu bytes", st->max_body);
    else
        router_dispatch(s->router, &st->req, &rs);
    if (rs.status == 0)
        resp_error(&rs, 500, "internal", NULL, "handler produced no response");
    int status = rs.status;
    enum MHD_Result r = queue(c, &rs, strcmp(method, "HEAD") == 0, st->req.https);
    char lp[512];
    log_path(url, lp, sizeof lp);
    log_request(method, lp, status, time_mono_ms() - st->started, st->req.partition[0] ? st->req.partition : NULL);
    resp_free(&rs);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct conn_state *st = *con_cls;
    if (!st)
        return;
    buf_free(&st->req.body);
    free(st->req.client_cert);
    free(st);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

int http_parse_addr(const char *addr, char *host, size_t hostlen, unsigned short *port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr)
        return -1;
    size_t hl = (size_t)(colon - addr);
    const char *h = addr;
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= hostlen)
        return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (!end || *end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    *port = (unsigned short)p;
    return 0;
}

/* libmicrohttpd's own diagnostics (TLS handshake failures, ...) go through
 * our JSON logger: every stderr line stays one JSON object. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    log_msg(LOG_DEBUG, "http: %s", msg);
}

static struct MHD_Daemon *start_one(struct http_server *s, const struct http_server_opts *o, const char *addr,
                                    bool tls, char *err, size_t errlen)
{
    char host[256];
    unsigned short port;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (http_parse_addr(addr, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "bad listen address '%s' (expected host:port)", addr);
        return NULL;
    }
    /* threads == 0: a thread per connection, so a request that waits (for
     * the signer, for a commit) never holds up another connection's; else a
     * pool of that many threads, each serving many connections (epoll). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     (o->threads ? MHD_USE_EPOLL : MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        flags |= MHD_USE_IPv6;
    } else if (strcmp(host, "localhost") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        snprintf(err, errlen, "listen address '%s' must be an IP address", addr);
        return NULL;
    }
    if (tls)
        flags |= MHD_USE_TLS;
    /* options that depend on the mode and TLS, after the logger (MHD logs
     * option problems while it reads them) */
    struct MHD_OptionItem opts[8];
    size_t n = 0;
    if (o->threads)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, o->threads, NULL};
    /* one address cannot take every connection slot (slow clients holding
     * theirs open byte by byte) */
    if (o->max_conns_per_ip)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_conns_per_ip, NULL};
    if (tls) {
        /* BCP 195 / RFC 8996: TLS 1.2 and 1.3 only, AEAD ciphers, no SHA-1
         * signatures */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o->tls_cert_pem};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->tls_key_pem};
        if (o->tls_trust_pem)
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)o->tls_trust_pem};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONN_LIMIT, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!d)
        snprintf(err, errlen, "cannot listen on %s%s", addr, tls ? " (HTTPS)" : "");
    return d;
}

struct http_server *http_server_start(const struct http_server_opts *o, char *err, size_t errlen)
{
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->router = o->router;
    s->app = o->app;
    s->max_body = o->max_body;
    /* HTTPS first: once the plain listener answers /healthz, both accept. */
    if (o->https_addr && *o->https_addr && !(s->https = start_one(s, o, o->https_addr, true, err, errlen)))
        goto fail;
    if (o->http_addr && *o->http_addr && !(s->http = start_one(s, o, o->http_addr, false, err, errlen)))
        goto fail;
    return s;
fail:
    http_server_stop(s, 0);
    return NULL;
}

void http_server_stop(struct http_server *s, int grace_ms)
{
    if (!s)
        return;
    if (s->http)
        MHD_quiesce_daemon(s->http);
    if (s->https)
        MHD_quiesce_daemon(s->https);
    double until = time_mono_ms() + grace_ms;
    while (atomic_load(&s->inflight) > 0 && time_mono_ms() < until) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (s->http)
        MHD_stop_daemon(s->http);
    if (s->https)
        MHD_stop_daemon(s->https);
    free(s);
}
