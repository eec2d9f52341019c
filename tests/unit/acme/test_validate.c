/* acme/validate: http-01 against an in-process HTTP server (good and wrong
 * key authorization, 404, closed port), tls-alpn-01 against an in-process
 * OpenSSL server (valid certificate, missing / non-critical / wrong
 * acmeIdentifier, wrong SAN), the bounded queue and shutdown, and, when
 * /usr/bin/pebble-challtestsrv is installed, dns-01 plus http-01 and
 * tls-alpn-01 for a DNS name through the configured resolver. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "acme/validate.h"
#include "util/codec.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TOKEN "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
#define KEYAUTHZ TOKEN ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
#define CHALLTESTSRV "/usr/bin/pebble-challtestsrv"

/* ---- helpers ------------------------------------------------------------- */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    struct validate_result r;
};

static void on_done(void *arg, const struct validate_result *r)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->r = *r;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Submits one job and waits for its outcome. */
static struct validate_result run(struct validator *v, enum validate_type t, const char *id, bool is_ip,
                                  const char *key_authz)
{
    struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(validator_submit(v, t, id, is_ip, TOKEN, key_authz, on_done, &w), 0);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (!w.r.valid)
        fprintf(stderr, "    -> %s: %s\n", w.r.problem, w.r.detail);
    return w.r;
}

static int listen_on(int family, const char *ip, int *port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;
    if (fd < 0)
        return -1;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &s4->sin_addr);
        len = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
        len = sizeof *s6;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* A port with nothing listening (bound once, then released). */
static int free_port(void)
{
    int port = 0;
    int fd = listen_on(AF_INET, "127.0.0.1", &port);
    assert_true(fd >= 0);
    close(fd);
    return port;
}

/* ---- HTTP server --------------------------------------------------------- */

struct http_srv {
    int lfd, port;
    int stop[2];
    pthread_t th;
    pthread_mutex_t mu;
    char body[256];  /* served at /.well-known/acme-challenge/TOKEN */
    char host[256];  /* Host header of the last request */
    int hits;
};

static void http_handle(struct http_srv *s, int fd)
{
    char req[4096];
    size_t n = 0;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (n < sizeof req - 1) {
        ssize_t k = recv(fd, req + n, sizeof req - 1 - n, 0);
        if (k <= 0)
            return;
        n += (size_t)k;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    pthread_mutex_lock(&s->mu);
    s->hits++;
    const char *h = strcasestr(req, "\r\nHost: ");
    s->host[0] = '\0';
    if (h) {
        h += 8;
        size_t hl = strcspn(h, "\r\n");
        snprintf(s->host, sizeof s->host, "%.*s", (int)hl, h);
    }
    char resp[1024];
    int rl;
    if (strncmp(req, "GET /.well-known/acme-challenge/" TOKEN " ", strlen("GET /.well-known/acme-challenge/" TOKEN " ")) == 0)
        rl = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n%s", strlen(s->body), s->body);
    else
        rl = snprintf(resp, sizeof resp, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
                      "not found");
    pthread_mutex_unlock(&s->mu);
    if (send(fd, resp, (size_t)rl, MSG_NOSIGNAL) < 0)
        return;
}

static void *http_main(void *arg)
{
    struct http_srv *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->lfd, .events = POLLIN}, {.fd = s->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        http_handle(s, fd);
        close(fd);
    }
    return NULL;
}

static void http_start(struct http_srv *s, int family, const char *ip)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = listen_on(family, ip, &s->port);
    assert_true(s->lfd >= 0);
    assert_int_equal(pipe(s->stop), 0);
    assert_int_equal(pthread_create(&s->th, NULL, http_main, s), 0);
}

static void http_stop(struct http_srv *s)
{
    assert_int_equal(write(s->stop[1], "x", 1), 1);
    pthread_join(s->th, NULL);
    close(s->stop[0]);
    close(s->stop[1]);
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
}

static void http_host(struct http_srv *s, char out[256])
{
    pthread_mutex_lock(&s->mu);
    memcpy(out, s->host, 256);
    pthread_mutex_unlock(&s->mu);
}

static void http_set_body(struct http_srv *s, const char *body)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->body, sizeof s->body, "%s", body);
    pthread_mutex_unlock(&s->mu);
}

/* ---- TLS server ---------------------------------------------------------- */

struct tls_srv {
    int lfd, port;
    int stop[2];
    pthread_t th;
    SSL_CTX *ctx;
    bool offer_alpn; /* select acme-tls/1 when offered */
    pthread_mutex_t mu;
    char sni[256]; /* SNI of the last handshake */
};

static const unsigned char ALPN_ACME[] = "\x0a" "acme-tls/1";

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    struct tls_srv *s = arg;
    unsigned char *o = NULL;
    if (!s->offer_alpn)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_select_next_proto(&o, outlen, ALPN_ACME, sizeof ALPN_ACME - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

/* Records the SNI while the ClientHello is processed, i.e. before the
 * client can see the handshake complete. */
static int on_sni(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    struct tls_srv *s = arg;
    const char *sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    pthread_mutex_lock(&s->mu);
    snprintf(s->sni, sizeof s->sni, "%s", sn ? sn : "");
    pthread_mutex_unlock(&s->mu);
    return SSL_TLSEXT_ERR_OK;
}

static void tls_sni(struct tls_srv *s, char out[256])
{
    pthread_mutex_lock(&s->mu);
    memcpy(out, s->sni, 256);
    pthread_mutex_unlock(&s->mu);
}

static void *tls_main(void *arg)
{
    struct tls_srv *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->lfd, .events = POLLIN}, {.fd = s->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL *ssl = SSL_new(s->ctx);
        if (ssl && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1) {
            /* wait for the client's close so its checks run on a live link */
            char b[16];
            (void)SSL_read(ssl, b, sizeof b);
        }
        SSL_free(ssl);
        ERR_clear_error();
        close(fd);
    }
    return NULL;
}

/* A self-signed challenge certificate: one SAN (dns or ip) and, when
 * key_authz is set, the acmeIdentifier extension over its SHA-256. */
static X509 *make_cert(EVP_PKEY *k, const char *dns, const char *ip, const char *key_authz, bool critical)
{
    X509 *x = X509_new();
    X509_NAME *nm = X509_NAME_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *g = GENERAL_NAME_new();
    assert_non_null(x);
    assert_non_null(nm);
    assert_non_null(gens);
    assert_non_null(g);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    assert_int_equal(X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"acme challenge", -1,
                                                -1, 0), 1);
    assert_int_equal(X509_set_subject_name(x, nm), 1);
    assert_int_equal(X509_set_issuer_name(x, nm), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    assert_int_equal(X509_set_pubkey(x, k), 1);
    if (dns) {
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        assert_int_equal(ASN1_STRING_set(s, dns, -1), 1);
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
    } else {
        unsigned char b[16];
        int len = 4;
        if (inet_pton(AF_INET, ip, b) != 1) {
            assert_int_equal(inet_pton(AF_INET6, ip, b), 1);
            len = 16;
        }
        ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();
        assert_int_equal(ASN1_OCTET_STRING_set(s, b, len), 1);
        GENERAL_NAME_set0_value(g, GEN_IPADD, s);
    }
    assert_true(sk_GENERAL_NAME_push(gens, g) > 0);
    assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT), 1);
    if (key_authz) {
        unsigned char h[32], *der = NULL;
        unsigned int hl = 0;
        assert_int_equal(EVP_Digest(key_authz, strlen(key_authz), h, &hl, EVP_sha256(), NULL), 1);
        ASN1_OCTET_STRING *inner = ASN1_OCTET_STRING_new(), *outer = ASN1_OCTET_STRING_new();
        assert_int_equal(ASN1_OCTET_STRING_set(inner, h, (int)hl), 1);
        int dl = i2d_ASN1_OCTET_STRING(inner, &der);
        assert_true(dl == 34);
        assert_int_equal(ASN1_OCTET_STRING_set(outer, der, dl), 1);
        ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
        assert_non_null(oid);
        X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, oid, critical ? 1 : 0, outer);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
        ASN1_OBJECT_free(oid);
        ASN1_OCTET_STRING_free(inner);
        ASN1_OCTET_STRING_free(outer);
        OPENSSL_free(der);
    }
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    GENERAL_NAMES_free(gens);
    X509_NAME_free(nm);
    return x;
}

static void tls_start(struct tls_srv *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->offer_alpn = true;
    s->lfd = listen_on(AF_INET, "127.0.0.1", &s->port);
    assert_true(s->lfd >= 0);
    assert_int_equal(pipe(s->stop), 0);
}

/* (Re)configures the certificate; the server thread is started by the
 * first call and restarted by later ones. */
static void tls_serve(struct tls_srv *s, const char *dns, const char *ip, const char *key_authz, bool critical)
{
    if (s->ctx) {
        assert_int_equal(write(s->stop[1], "x", 1), 1);
        pthread_join(s->th, NULL);
        char b;
        assert_int_equal(read(s->stop[0], &b, 1), 1);
        SSL_CTX_free(s->ctx);
    }
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    X509 *x = make_cert(k, dns, ip, key_authz, critical);
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(s->ctx);
    assert_int_equal(SSL_CTX_use_certificate(s->ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, k), 1);
    SSL_CTX_set_alpn_select_cb(s->ctx, alpn_select, s);
    SSL_CTX_set_tlsext_servername_callback(s->ctx, on_sni);
    SSL_CTX_set_tlsext_servername_arg(s->ctx, s);
    X509_free(x);
    EVP_PKEY_free(k);
    assert_int_equal(pthread_create(&s->th, NULL, tls_main, s), 0);
}

static void tls_stop(struct tls_srv *s)
{
    assert_int_equal(write(s->stop[1], "x", 1), 1);
    pthread_join(s->th, NULL);
    SSL_CTX_free(s->ctx);
    close(s->stop[0]);
    close(s->stop[1]);
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
}

/* ---- tests: http-01 ------------------------------------------------------ */

static void test_http01(void **state)
{
    (void)state;
    struct http_srv s;
    http_start(&s, AF_INET, "127.0.0.1");
    struct validate_cfg cfg = {.http01_port = s.port, .timeout_ms = 3000, .workers = 2};
    struct validator *v = validator_new(&cfg);
    assert_non_null(v);
    char want_host[64];
    snprintf(want_host, sizeof want_host, "127.0.0.1:%d", s.port);

    /* good, with a trailing newline (trimmed) */
    http_set_body(&s, KEYAUTHZ "\r\n");
    struct validate_result r = run(v, VALIDATE_HTTP01, "127.0.0.1", true, KEYAUTHZ);
    assert_true(r.valid);
    char host[256];
    http_host(&s, host);
    assert_string_equal(host, want_host);

    /* wrong content: the excerpt of what was found is quoted */
    http_set_body(&s, "something else\x01");
    r = run(v, VALIDATE_HTTP01, "127.0.0.1", true, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "unauthorized");
    assert_non_null(strstr(r.detail, "\"something else?\""));

    /* another key authorization than the one served */
    http_set_body(&s, KEYAUTHZ);
    r = run(v, VALIDATE_HTTP01, "127.0.0.1", true, TOKEN ".otherthumbprint");
    assert_false(r.valid);
    assert_string_equal(r.problem, "unauthorized");

    /* 404: another token than the one served */
    struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(validator_submit(v, VALIDATE_HTTP01, "127.0.0.1", true, "missing_token", KEYAUTHZ, on_done, &w),
                     0);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    assert_false(w.r.valid);
    assert_true(strcmp(w.r.problem, "unauthorized") == 0 || strcmp(w.r.problem, "incorrectResponse") == 0);
    assert_non_null(strstr(w.r.detail, "404"));
    assert_non_null(strstr(w.r.detail, "/.well-known/acme-challenge/missing_token"));

    validator_free(v);
    http_stop(&s);
}

static void test_http01_closed_port(void **state)
{
    (void)state;
    struct validate_cfg cfg = {.http01_port = free_port(), .timeout_ms = 3000, .workers = 1};
    struct validator *v = validator_new(&cfg);
    assert_non_null(v);
    struct validate_result r = run(v, VALIDATE_HTTP01, "127.0.0.1", true, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "connection");
    assert_true(strlen(r.detail) > 0);
    validator_free(v);
}

static void test_http01_ipv6(void **state)
{
    (void)state;
    struct http_srv s;
    int probe_port = 0, fd = listen_on(AF_INET6, "::1", &probe_port);
    if (fd < 0)
        skip();
    close(fd);
    http_start(&s, AF_INET6, "::1");
    struct validate_cfg cfg = {.http01_port = s.port, .timeout_ms = 3000, .workers = 1};
    struct validator *v = validator_new(&cfg);
    assert_non_null(v);
    http_set_body(&s, KEYAUTHZ);
    struct validate_result r = run(v, VALIDATE_HTTP01, "::1", true, KEYAUTHZ);
    assert_true(r.valid);
    char want_host[64];
    snprintf(want_host, sizeof want_host, "[::1]:%d", s.port);
    char host[256];
    http_host(&s, host);
    assert_string_equal(host, want_host);
    validator_free(v);
    http_stop(&s);
}

/* Malformed identifiers never reach the network. */
static void test_malformed(void **state)
{
    (void)state;
    struct validate_cfg cfg = {.http01_port = free_port(), .timeout_ms = 1000, .workers = 1};
    struct validator *v = validator_new(&cfg);
    assert_non_null(v);
    struct validate_result r = run(v, VALIDATE_HTTP01, "evil.test:1/x?", false, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "malformed");
    r = run(v, VALIDATE_HTTP01, "not-an-ip", true, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "malformed");
    r = run(v, VALIDATE_DNS01, "127.0.0.1", true, KEYAUTHZ);
    assert_false(r.valid);
    validator_free(v);

    struct validate_cfg bad = {.resolver = "not an address"};
    assert_null(validator_new(&bad));
    v = validator_new(NULL); /* defaults */
    assert_non_null(v);
    validator_free(v);
    validator_free(NULL);
}

/* A configured resolver that never answers (a UDP socket nobody reads):
 * the query goes there, and the outcome is a "dns" problem in bounded
 * time. IPv4 and, when available, IPv6 resolver addresses. */
static void test_resolver_unresponsive(void **state)
{
    (void)state;
    static const struct {
        int family;
        const char *ip, *host; /* host: as written in "host:port" */
    } cases[] = {{AF_INET, "127.0.0.1", "127.0.0.1"}, {AF_INET6, "::1", "[::1]"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = socket(cases[i].family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_storage ss;
        socklen_t len = cases[i].family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        memset(&ss, 0, sizeof ss);
        ss.ss_family = (sa_family_t)cases[i].family;
        void *a = cases[i].family == AF_INET ? (void *)&((struct sockaddr_in *)&ss)->sin_addr
                                            : (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        assert_int_equal(inet_pton(cases[i].family, cases[i].ip, a), 1);
        if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0) {
            assert_int_equal(cases[i].family, AF_INET6); /* no IPv6 here */
            if (fd >= 0)
                close(fd);
            continue;
        }
        assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
        int port = ntohs(cases[i].family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
        char resolver[64];
        snprintf(resolver, sizeof resolver, "%s:%d", cases[i].host, port);
        struct validate_cfg cfg = {.resolver = resolver, .timeout_ms = 1000, .workers = 1};
        struct validator *v = validator_new(&cfg);
        assert_non_null(v);
        time_t t0 = time(NULL);
        struct validate_result r = run(v, VALIDATE_DNS01, "x.test", false, KEYAUTHZ);
        assert_false(r.valid);
        assert_string_equal(r.problem, "dns");
        assert_true(time(NULL) - t0 <= 4);
        unsigned char q[512];
        assert_true(recv(fd, q, sizeof q, MSG_DONTWAIT) > 12); /* the query arrived here */
        validator_free(v);
        close(fd);
    }
}

/* ---- tests: tls-alpn-01 -------------------------------------------------- */

static void test_tlsalpn01(void **state)
{
    (void)state;
    struct tls_srv s;
    tls_start(&s);
    struct validate_cfg cfg = {.tlsalpn01_port = s.port, .timeout_ms = 3000, .workers = 2};
    struct validator *v = validator_new(&cfg);
    assert_non_null(v);

    tls_serve(&s, NULL, "127.0.0.1", KEYAUTHZ, true);
    struct validate_result r = run(v, VALIDATE_TLSALPN01, "127.0.0.1", true, KEYAUTHZ);
    assert_true(r.valid);
    char sni[256];
    tls_sni(&s, sni);
    assert_string_equal(sni, "1.0.0.127.in-addr.arpa");

    /* a key authorization the extension does not hash */
    r = run(v, VALIDATE_TLSALPN01, "127.0.0.1", true, TOKEN ".otherthumbprint");
    assert_false(r.valid);
    assert_string_equal(r.problem, "unauthorized");

    /* no acmeIdentifier extension */
    tls_serve(&s, NULL, "127.0.0.1", NULL, true);
    r = run(v, VALIDATE_TLSALPN01, "127.0.0.1", true, KEYAUTHZ);
    assert_false(r.valid);
    assert_non_null(strstr(r.detail, "acmeIdentifier"));

    /* not critical */
    tls_serve(&s, NULL, "127.0.0.1", KEYAUTHZ, false);
    r = run(v, VALIDATE_TLSALPN01, "127.0.0.1", true, KEYAUTHZ);
    assert_false(r.valid);
    assert_non_null(strstr(r.detail, "critical"));

    /* the SAN is a dNSName, not the IP */
    tls_serve(&s, "x.test", NULL, KEYAUTHZ, true);
    r = run(v, VALIDATE_TLSALPN01, "127.0.0.1", true, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "unauthorized");

    /* ALPN not negotiated */
    s.offer_alpn = false; /* read by the thread tls_serve starts */
    tls_serve(&s, NULL, "127.0.0.1", KEYAUTHZ, true);
    r = run(v, VALIDATE_TLSALPN01, "127.0.0.1", true, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "tls");

    validator_free(v);
    tls_stop(&s);

    /* nothing listening */
    cfg.tlsalpn01_port = free_port();
    v = validator_new(&cfg);
    assert_non_null(v);
    r = run(v, VALIDATE_TLSALPN01, "127.0.0.1", true, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "connection");
    validator_free(v);

    /* connected (kernel backlog) but the handshake never answers */
    int lfd = listen_on(AF_INET, "127.0.0.1", &cfg.tlsalpn01_port);
    assert_true(lfd >= 0);
    cfg.timeout_ms = 1000;
    v = validator_new(&cfg);
    assert_non_null(v);
    time_t t0 = time(NULL);
    r = run(v, VALIDATE_TLSALPN01, "127.0.0.1", true, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "connection");
    assert_non_null(strstr(r.detail, "timed out"));
    assert_true(time(NULL) - t0 <= 3);
    validator_free(v);
    close(lfd);
}

/* ---- tests: queue -------------------------------------------------------- */

struct counter {
    pthread_mutex_t mu;
    int total, cancelled, connection;
};

static void on_count(void *arg, const struct validate_result *r)
{
    struct counter *c = arg;
    pthread_mutex_lock(&c->mu);
    c->total++;
    if (!r->valid && strcmp(r->problem, "serverInternal") == 0)
        c->cancelled++;
    if (!r->valid && strcmp(r->problem, "connection") == 0)
        c->connection++;
    pthread_mutex_unlock(&c->mu);
}

/* One worker blocked on a server that never answers; the queue then
 * holds 1024 jobs, refuses the next, and validator_free cancels them. */
static void test_queue_full_and_free(void **state)
{
    (void)state;
    int port = 0;
    int lfd = listen_on(AF_INET, "127.0.0.1", &port); /* never accepted */
    assert_true(lfd >= 0);
    struct validate_cfg cfg = {.http01_port = port, .timeout_ms = 1000, .workers = 1};
    struct validator *v = validator_new(&cfg);
    assert_non_null(v);
    struct counter c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(validator_submit(v, VALIDATE_HTTP01, "127.0.0.1", true, TOKEN, KEYAUTHZ, on_count, &c), 0);
    usleep(300 * 1000); /* the worker takes it */
    int accepted = 0;
    for (int i = 0; i < 1100; i++) {
        if (validator_submit(v, VALIDATE_HTTP01, "127.0.0.1", true, TOKEN, KEYAUTHZ, on_count, &c) != 0)
            break;
        accepted++;
    }
    assert_int_equal(accepted, 1024);
    validator_free(v);
    assert_int_equal(c.total, 1025);
    assert_int_equal(c.cancelled, 1024);
    assert_int_equal(c.connection, 1);
    close(lfd);
}

/* ---- tests: through pebble-challtestsrv (DNS) ---------------------------- */

struct challtestsrv {
    pid_t pid;
    int dns_port, mgmt_port;
};

static int wait_port(int port, int ms)
{
    for (int t = 0; t < ms; t += 50) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (ok)
            return 0;
        usleep(50 * 1000);
    }
    return -1;
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static int mgmt_post(const struct challtestsrv *c, const char *path, const char *json)
{
    char url[128];
    long status = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", c->mgmt_port, path);
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    return rc == CURLE_OK && status == 200 ? 0 : -1;
}

static int challtestsrv_start(struct challtestsrv *c)
{
    char dns[32], mgmt[32];
    c->dns_port = free_port();
    c->mgmt_port = free_port();
    snprintf(dns, sizeof dns, "127.0.0.1:%d", c->dns_port);
    snprintf(mgmt, sizeof mgmt, "127.0.0.1:%d", c->mgmt_port);
    char *argv[] = {CHALLTESTSRV, "-dns01", dns, "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", mgmt,
                    NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&c->pid, CHALLTESTSRV, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    if (wait_port(c->mgmt_port, 10000) != 0)
        return -1;
    usleep(200 * 1000); /* the DNS listener starts alongside */
    return 0;
}

static void challtestsrv_stop(struct challtestsrv *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
}

/* The server of test_via_challtestsrv, also stopped by the group teardown
 * should an assertion leave the test early. */
static struct challtestsrv g_cts;

static int group_teardown(void **state)
{
    (void)state;
    challtestsrv_stop(&g_cts);
    return 0;
}

static char *txt_value(const char *key_authz)
{
    unsigned char h[32];
    unsigned int hl = 0;
    assert_int_equal(EVP_Digest(key_authz, strlen(key_authz), h, &hl, EVP_sha256(), NULL), 1);
    return b64url_encode(h, hl);
}

static void test_via_challtestsrv(void **state)
{
    (void)state;
    if (access(CHALLTESTSRV, X_OK) != 0)
        skip();
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    if (challtestsrv_start(&g_cts) != 0) {
        challtestsrv_stop(&g_cts);
        fail_msg("pebble-challtestsrv did not start");
    }
    char *want = txt_value(KEYAUTHZ), json[256];
    snprintf(json, sizeof json, "{\"host\":\"_acme-challenge.x.test.\",\"value\":\"%s\"}", want);
    assert_int_equal(mgmt_post(&g_cts, "/set-txt", json), 0);
    snprintf(json, sizeof json, "{\"host\":\"_acme-challenge.y.test.\",\"value\":\"not-it\"}");
    assert_int_equal(mgmt_post(&g_cts, "/set-txt", json), 0);
    free(want);

    struct http_srv hs;
    struct tls_srv ts;
    http_start(&hs, AF_INET, "127.0.0.1");
    http_set_body(&hs, KEYAUTHZ);
    tls_start(&ts);
    tls_serve(&ts, "x.test", NULL, KEYAUTHZ, true);

    char resolver[32];
    snprintf(resolver, sizeof resolver, "127.0.0.1:%d", g_cts.dns_port);
    struct validate_cfg cfg = {.resolver = resolver, .http01_port = hs.port, .tlsalpn01_port = ts.port,
                               .timeout_ms = 3000, .workers = 2};
    struct validator *v = validator_new(&cfg);
    assert_non_null(v);

    /* dns-01 */
    struct validate_result r = run(v, VALIDATE_DNS01, "x.test", false, KEYAUTHZ);
    assert_true(r.valid);
    r = run(v, VALIDATE_DNS01, "x.test", false, TOKEN ".otherthumbprint");
    assert_false(r.valid);
    assert_string_equal(r.problem, "unauthorized");
    r = run(v, VALIDATE_DNS01, "y.test", false, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "unauthorized");
    assert_non_null(strstr(r.detail, "not-it"));
    r = run(v, VALIDATE_DNS01, "nothing.test", false, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "dns");

    /* http-01 and tls-alpn-01 for a name: challtestsrv answers A 127.0.0.1
     * and AAAA ::1 for everything; ::1 refuses, 127.0.0.1 serves. */
    r = run(v, VALIDATE_HTTP01, "x.test", false, KEYAUTHZ);
    assert_true(r.valid);
    char want_host[64];
    snprintf(want_host, sizeof want_host, "x.test:%d", hs.port);
    char host[256];
    http_host(&hs, host);
    assert_string_equal(host, want_host);
    r = run(v, VALIDATE_TLSALPN01, "x.test", false, KEYAUTHZ);
    assert_true(r.valid);
    char sni[256];
    tls_sni(&ts, sni);
    assert_string_equal(sni, "x.test");
    r = run(v, VALIDATE_TLSALPN01, "X.Test", false, KEYAUTHZ); /* case-insensitive */
    assert_true(r.valid);
    r = run(v, VALIDATE_TLSALPN01, "z.test", false, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "unauthorized");
    validator_free(v);

    /* a resolver that does not answer */
    snprintf(resolver, sizeof resolver, "127.0.0.1:%d", free_port());
    cfg.timeout_ms = 1000;
    v = validator_new(&cfg);
    assert_non_null(v);
    r = run(v, VALIDATE_DNS01, "x.test", false, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "dns");
    r = run(v, VALIDATE_HTTP01, "x.test", false, KEYAUTHZ);
    assert_false(r.valid);
    assert_string_equal(r.problem, "dns");
    validator_free(v);

    tls_stop(&ts);
    http_stop(&hs);
    challtestsrv_stop(&g_cts);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http01),
        cmocka_unit_test(test_http01_closed_port),
        cmocka_unit_test(test_http01_ipv6),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_resolver_unresponsive),
        cmocka_unit_test(test_tlsalpn01),
        cmocka_unit_test(test_queue_full_and_free),
        cmocka_unit_test(test_via_challtestsrv),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
