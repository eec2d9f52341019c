/* validate: ACME challenge validation (RFC 8555 8.3 http-01, 8.4 dns-01,
 * RFC 8737 tls-alpn-01, RFC 8738 IP identifiers) on a pool of worker
 * threads fed from a bounded queue.
 *
 * Name resolution: with cfg->resolver set, every lookup (A/AAAA for the
 * host of http-01 and tls-alpn-01, TXT for dns-01) is sent to that server
 * only, through a per-job glibc resolver state (res_ninit + a single
 * nameserver + res_nquery; thread-safe because nothing is shared). Without
 * it, getaddrinfo() resolves hosts and res_nquery() with the system
 * configuration answers TXT queries. IP identifiers are never looked up.
 *
 * Addresses: the first IPv6 and the first IPv4 address are tried in that
 * order (as Let's Encrypt does); the IPv4 one is tried only when connecting
 * to the IPv6 one failed.
 *
 * Every network step is bounded by cfg->timeout_ms per attempt. Nothing a
 * peer sends is copied into a result beyond a short printable-ASCII
 * excerpt. */
#include "acme/validate.h"
#include "util/limits.h"

#include "util/codec.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <resolv.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_CAP 1024
#define WORKERS_MAX 64
#define HTTP_BODY_MAX LIMIT_ACME_HTTP01_BODY
/* Longest excerpt of peer-supplied text quoted in a detail message. */
#define EXCERPT_MAX 64
#define EXCERPT_BUF (EXCERPT_MAX + 4) /* + "..." + NUL */
#define ACME_ALPN "acme-tls/1"
#define ACME_ALPN_LEN 10
#define ACME_ID_OID "1.3.6.1.5.5.7.1.31" /* id-pe-acmeIdentifier */
#define SHA256_LEN 32
/* "x.x. ... .ip6.arpa" is 72 characters; in-addr.arpa names are shorter. */
#define REVNAME_BUF 80
#define MAX_ADDRS 2 /* first IPv6, first IPv4 */

struct job {
    enum validate_type type;
    bool is_ip;
    char *identifier;
    char *token;
    char *key_authz;
    validate_done done;
    void *arg;
};

struct validator {
    struct validate_cfg cfg; /* defaults applied; cfg.resolver not used */
    bool have_resolver;
    struct sockaddr_storage resolver; /* AF_INET or AF_INET6, port set */
    SSL_CTX *tls;                     /* tls-alpn-01 client context, shared */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *queue[QUEUE_CAP]; /* ring */
    size_t head, count;
    bool stopping;
    pthread_t *threads;
    int nthreads;
};

struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[INET6_ADDRSTRLEN];
};

struct addrs {
    size_t n;
    struct addr a[MAX_ADDRS];
};

/* Per-job resolver state, opened on first use. */
struct dns {
    const struct validator *v;
    struct __res_state st;
    bool open;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
    /* Never paired with curl_global_cleanup(): other modules may use curl
     * and the state lives until the process exits. */
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- results and messages ---------------------------------------------- */

static void fail(struct validate_result *r, const char *problem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct validate_result *r, const char *problem, const char *fmt, ...)
{
    va_list ap;
    r->valid = false;
    snprintf(r->problem, sizeof r->problem, "%s", problem);
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
}

static void succeed(struct validate_result *r)
{
    memset(r, 0, sizeof *r);
    r->valid = true;
}

/* A printable-ASCII excerpt of untrusted bytes: at most EXCERPT_MAX
 * characters, anything else shown as '?', and "..." when cut. */
static void excerpt(const unsigned char *p, size_t n, char out[EXCERPT_BUF])
{
    size_t k = n < EXCERPT_MAX ? n : EXCERPT_MAX;
    size_t i;
    for (i = 0; i < k; i++)
        out[i] = (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') ? (char)p[i] : '?';
    if (n > k) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

static const char *errstr(int e, char *buf, size_t n)
{
    return strerror_r(e, buf, n); /* GNU variant (_GNU_SOURCE) */
}

/* malloc'd printf; NULL on failure. */
static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sha256(const char *s, unsigned char out[SHA256_LEN])
{
    unsigned int len = 0;
    if (EVP_Digest(s, strlen(s), out, &len, EVP_sha256(), NULL) != 1 || len != SHA256_LEN)
        return -1;
    return 0;
}

/* ---- input checks -------------------------------------------------------- */

static bool dns_name_ok(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253 || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return s[n - 1] != '-';
}

static bool token_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Parses an IP literal into ss (port 0); 0 or -1. */
static int ip_parse(const char *s, struct addr *a)
{
    memset(a, 0, sizeof *a);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
    if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        a->len = sizeof *s4;
    } else if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        a->len = sizeof *s6;
    } else {
        return -1;
    }
    if (inet_ntop(a->ss.ss_family, a->ss.ss_family == AF_INET ? (void *)&s4->sin_addr : (void *)&s6->sin6_addr,
                  a->text, sizeof a->text) == NULL)
        return -1;
    return 0;
}

static void addr_set_port(struct addr *a, int port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
}

/* "ip:port", "[v6]:port", or a bare address (port 53). */
static int parse_resolver(const char *s, struct sockaddr_storage *out)
{
    int ret = -1;
    char *host = NULL;
    const char *port = NULL;
    struct addr a;

    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (!e)
            goto out;
        host = strndup(s + 1, (size_t)(e - s - 1));
        if (e[1] == ':')
            port = e + 2;
        else if (e[1] != '\0')
            goto out;
    } else {
        const char *c = strchr(s, ':');
        if (c && strchr(c + 1, ':') == NULL) {
            host = strndup(s, (size_t)(c - s));
            port = c + 1;
        } else {
            host = strdup(s); /* IPv4 without port, or a bare IPv6 address */
        }
    }
    if (!host || ip_parse(host, &a) != 0)
        goto out;
    long p = 53;
    if (port) {
        char *end = NULL;
        if (*port < '0' || *port > '9')
            goto out;
        errno = 0;
        p = strtol(port, &end, 10);
        if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
            goto out;
    }
    addr_set_port(&a, (int)p);
    memset(out, 0, sizeof *out);
    memcpy(out, &a.ss, a.len);
    ret = 0;
out:
    free(host);
    return ret;
}

/* RFC 8738 section 6: the reverse-mapping name of an IP literal. */
static int reverse_name(const char *ip, char out[REVNAME_BUF])
{
    unsigned char b[16];
    if (inet_pton(AF_INET, ip, b) == 1) {
        snprintf(out, REVNAME_BUF, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, b) == 1) {
        static const char hex[] = "0123456789abcdef";
        size_t k = 0;
        for (int i = 15; i >= 0; i--) {
            out[k++] = hex[b[i] & 0x0f];
            out[k++] = '.';
            out[k++] = hex[b[i] >> 4];
            out[k++] = '.';
        }
        memcpy(out + k, "ip6.arpa", sizeof "ip6.arpa");
        return 0;
    }
    return -1;
}

/* ---- DNS ----------------------------------------------------------------- */

static const char *herr_text(int h)
{
    switch (h) {
    case HOST_NOT_FOUND:
        return "NXDOMAIN";
    case NO_DATA:
        return "no records";
    case TRY_AGAIN:
        return "server failure or timeout";
    case NO_RECOVERY:
        return "query refused or answer malformed";
    default:
        return "lookup failed";
    }
}

/* Initialises d->st on first use. With a configured resolver, the system
 * name servers are replaced by that single server. glibc keeps IPv6 name
 * server addresses in separately allocated _u._ext.nsaddrs[] entries (an
 * IPv4 slot then has sin_family 0); res_nclose() frees the entries below
 * nscount, so the ones res_ninit() allocated are released here before
 * nscount shrinks to 1. glibc notices the state no longer matches
 * resolv.conf and uses it as set. */
static int dns_open(struct dns *d)
{
    const struct validator *v = d->v;
    if (d->open)
        return 0;
    memset(&d->st, 0, sizeof d->st);
    if (res_ninit(&d->st) != 0)
        return -1;
    d->open = true;
    /* Bounded time: with one name server glibc waits retrans seconds per
     * try, so a query takes at most retry * retrans ~ timeout_ms / 2 (a
     * host lookup makes two: AAAA and A). */
    int secs = v->cfg.timeout_ms / 4000;
    d->st.retrans = secs < 1 ? 1 : secs;
    d->st.retry = 2;
    d->st.options &= ~(unsigned long)RES_ROTATE;
    if (!v->have_resolver)
        return 0;
    for (int i = 0; i < d->st.nscount && i < MAXNS; i++) {
        free(d->st._u._ext.nsaddrs[i]);
        d->st._u._ext.nsaddrs[i] = NULL;
    }
    memset(&d->st.nsaddr_list[0], 0, sizeof d->st.nsaddr_list[0]);
    if (v->resolver.ss_family == AF_INET) {
        memcpy(&d->st.nsaddr_list[0], &v->resolver, sizeof(struct sockaddr_in));
    } else {
        struct sockaddr_in6 *s6 = malloc(sizeof *s6);
        if (!s6) {
            d->st.nscount = 0;
            return -1;
        }
        memcpy(s6, &v->resolver, sizeof *s6);
        d->st._u._ext.nsaddrs[0] = s6; /* nsaddr_list[0].sin_family stays 0 */
    }
    d->st._u._ext.nssocks[0] = -1;
    d->st._u._ext.nscount = 0; /* res_send rebuilds its private copy */
    d->st.nscount = 1;
    return 0;
}

static void dns_close(struct dns *d)
{
    if (d->open)
        res_nclose(&d->st);
    d->open = false;
}

/* One query into a malloc'd buffer; the answer length, or -1 with *herr. */
static int dns_query(struct dns *d, const char *name, int type, unsigned char **ans, int *herr)
{
    *ans = NULL;
    *herr = NETDB_INTERNAL;
    if (dns_open(d) != 0)
        return -1;
    unsigned char *buf = malloc(NS_MAXMSG);
    if (!buf)
        return -1;
    d->st.res_h_errno = 0;
    int n = res_nquery(&d->st, name, ns_c_in, type, buf, NS_MAXMSG);
    if (n < 0) {
        *herr = d->st.res_h_errno;
        free(buf);
        return -1;
    }
    *ans = buf;
    return n;
}

/* Appends the addresses of the given type from an answer; records the
 * first one only (the caller keeps one address per family). */
static int collect_addr(const unsigned char *ans, int len, int type, int port, struct addrs *out)
{
    ns_msg msg;
    if (ns_initparse(ans, len, &msg) != 0)
        return -1;
    int count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) != 0)
            return -1;
        if ((int)ns_rr_type(rr) != type || ns_rr_class(rr) != ns_c_in || out->n >= MAX_ADDRS)
            continue;
        struct addr *a = &out->a[out->n];
        memset(a, 0, sizeof *a);
        if (type == ns_t_a && ns_rr_rdlen(rr) == 4) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, ns_rr_rdata(rr), 4);
            a->len = sizeof *s4;
            if (!inet_ntop(AF_INET, &s4->sin_addr, a->text, sizeof a->text))
                return -1;
        } else if (type == ns_t_aaaa && ns_rr_rdlen(rr) == 16) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, ns_rr_rdata(rr), 16);
            a->len = sizeof *s6;
            if (!inet_ntop(AF_INET6, &s6->sin6_addr, a->text, sizeof a->text))
                return -1;
        } else {
            continue;
        }
        addr_set_port(a, port);
        out->n++;
        return 0;
    }
    return 0;
}

/* The addresses to try for host:port, IPv6 first; 0, or -1 with r set
 * (problem "dns"). */
static int resolve_host(struct dns *d, const char *prefix, const char *host, bool is_ip, int port, struct addrs *out,
                        struct validate_result *r)
{
    int ret = -1;
    unsigned char *ans = NULL;
    struct addrinfo *res = NULL;
    memset(out, 0, sizeof *out);

    if (is_ip) {
        if (ip_parse(host, &out->a[0]) != 0) {
            fail(r, "malformed", "%s: \"%s\" is not an IP address", prefix, host);
            goto out;
        }
        addr_set_port(&out->a[0], port);
        out->n = 1;
        ret = 0;
        goto out;
    }

    if (d->v->have_resolver) {
        int herr6 = 0, herr4 = 0;
        int n = dns_query(d, host, ns_t_aaaa, &ans, &herr6);
        if (n >= 0 && collect_addr(ans, n, ns_t_aaaa, port, out) != 0)
            herr6 = NO_RECOVERY;
        free(ans);
        ans = NULL;
        n = dns_query(d, host, ns_t_a, &ans, &herr4);
        if (n >= 0 && collect_addr(ans, n, ns_t_a, port, out) != 0)
            herr4 = NO_RECOVERY;
        if (out->n == 0) {
            if (herr6 == 0)
                herr6 = NO_DATA;
            if (herr4 == 0)
                herr4 = NO_DATA;
            fail(r, "dns", "%s: no A/AAAA records for %s (A: %s, AAAA: %s)", prefix, host, herr_text(herr4),
                 herr_text(herr6));
            goto out;
        }
        ret = 0;
        goto out;
    }

    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        fail(r, "dns", "%s: no A/AAAA records for %s (%s)", prefix, host,
             rc == EAI_NONAME || rc == EAI_NODATA ? "no such name or no address" : gai_strerror(rc));
        goto out;
    }
    for (int fam = 0; fam < 2; fam++) {
        int want = fam == 0 ? AF_INET6 : AF_INET;
        for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if (ai->ai_family != want || ai->ai_addrlen > sizeof(struct sockaddr_storage))
                continue;
            struct addr *a = &out->a[out->n];
            memset(a, 0, sizeof *a);
            memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
            a->len = ai->ai_addrlen;
            const void *p = want == AF_INET ? (const void *)&((struct sockaddr_in *)&a->ss)->sin_addr
                                            : (const void *)&((struct sockaddr_in6 *)&a->ss)->sin6_addr;
            if (!inet_ntop(want, p, a->text, sizeof a->text))
                continue;
            addr_set_port(a, port);
            out->n++;
            break;
        }
    }
    if (out->n == 0) {
        fail(r, "dns", "%s: no A/AAAA records for %s", prefix, host);
        goto out;
    }
    ret = 0;
out:
    free(ans);
    if (res)
        freeaddrinfo(res);
    return ret;
}

/* ---- http-01 ------------------------------------------------------------- */

struct body {
    unsigned char *p; /* HTTP_BODY_MAX bytes */
    size_t n;
    bool overflow;
};

static size_t body_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct body *b = ud;
    size_t n = size * nmemb;
    if (n > HTTP_BODY_MAX - b->n) {
        b->overflow = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    return n;
}

/* One GET against one address. *retry_next is set when the connection
 * could not be established (the next address may be tried). */
static void http01_attempt(const struct validator *v, const struct job *j, const struct addr *a,
                           struct validate_result *r, bool *retry_next)
{
    CURL *h = NULL;
    struct curl_slist *resolve = NULL;
    char *url = NULL, *pin = NULL;
    char errbuf[CURL_ERROR_SIZE];
    char ex[EXCERPT_BUF];
    struct body b = {0};
    bool v6lit = j->is_ip && strchr(j->identifier, ':') != NULL;
    int port = v->cfg.http01_port;
    /* the address actually dialled, quoted in messages for DNS names */
    char via[INET6_ADDRSTRLEN + 4] = "";

    *retry_next = false;
    errbuf[0] = '\0';
    url = xasprintf("http://%s%s%s:%d/.well-known/acme-challenge/%s", v6lit ? "[" : "", j->identifier,
                    v6lit ? "]" : "", port, j->token);
    b.p = malloc(HTTP_BODY_MAX);
    h = curl_easy_init();
    if (!url || !b.p || !h) {
        fail(r, "serverInternal", "http-01: out of memory");
        goto out;
    }
    if (!j->is_ip) {
        bool a6 = a->ss.ss_family == AF_INET6;
        snprintf(via, sizeof via, " (%s)", a->text);
        pin = xasprintf("%s:%d:%s%s%s", j->identifier, port, a6 ? "[" : "", a->text, a6 ? "]" : "");
        if (!pin || !(resolve = curl_slist_append(NULL, pin))) {
            fail(r, "serverInternal", "http-01: out of memory");
            goto out;
        }
    }
    long tmo = v->cfg.timeout_ms;
    bool ok = curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, tmo) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_PROXY, "") == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_USERAGENT, "pkiaas-acme-validator") == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_WRITEDATA, &b) == CURLE_OK &&
#if LIBCURL_VERSION_NUM >= 0x075500
              curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK &&
#endif
              (!resolve || curl_easy_setopt(h, CURLOPT_RESOLVE, resolve) == CURLE_OK);
    if (!ok) {
        fail(r, "serverInternal", "http-01: cannot set up the HTTP client");
        goto out;
    }

    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        status = 0;

    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && b.overflow)) {
        if (status != 200) {
            fail(r, "unauthorized", "http-01: GET %s%s returned %ld", url, via, status);
            goto out;
        }
        if (b.overflow) {
            fail(r, "unauthorized", "http-01: GET %s%s: response body exceeds %d bytes", url, via, HTTP_BODY_MAX);
            goto out;
        }
        size_t n = b.n;
        while (n > 0 && (b.p[n - 1] == ' ' || b.p[n - 1] == '\t' || b.p[n - 1] == '\r' || b.p[n - 1] == '\n'))
            n--;
        if (n != strlen(j->key_authz) || memcmp(b.p, j->key_authz, n) != 0) {
            excerpt(b.p, n, ex);
            fail(r, "unauthorized", "http-01: GET %s%s returned \"%s\", not the expected key authorization", url,
                 via, ex);
            goto out;
        }
        succeed(r);
        goto out;
    }

    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        *retry_next = true;
        fail(r, "connection", "http-01: GET %s%s: cannot connect: %s", url, via, why);
        break;
    case CURLE_OPERATION_TIMEDOUT: {
        curl_off_t connected = 0;
        if (curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connected) == CURLE_OK && connected == 0)
            *retry_next = true;
        fail(r, "connection", "http-01: GET %s%s: timed out: %s", url, via, why);
        break;
    }
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_PARTIAL_FILE:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_TOO_MANY_REDIRECTS:
        fail(r, "incorrectResponse", "http-01: GET %s%s: bad HTTP response: %s", url, via, why);
        break;
    default:
        fail(r, "connection", "http-01: GET %s%s failed: %s", url, via, why);
        break;
    }
out:
    if (h)
        curl_easy_cleanup(h);
    curl_slist_free_all(resolve);
    free(pin);
    free(url);
    free(b.p);
}

static void http01(struct dns *d, const struct job *j, struct validate_result *r)
{
    const struct validator *v = d->v;
    struct addrs as;
    if (!token_ok(j->token)) {
        fail(r, "malformed", "http-01: the token is not base64url");
        return;
    }
    if (resolve_host(d, "http-01", j->identifier, j->is_ip, v->cfg.http01_port, &as, r) != 0)
        return;
    for (size_t i = 0; i < as.n; i++) {
        bool retry_next = false;
        http01_attempt(v, j, &as.a[i], r, &retry_next);
        if (!retry_next)
            break;
    }
}

/* ---- tls-alpn-01 --------------------------------------------------------- */

/* Connects within the deadline; the socket is then blocking with send and
 * receive timeouts set to the time left. fd, or -1 with err filled. */
static int tcp_connect(const struct addr *a, int64_t deadline, char *err, size_t errsz)
{
    int ret = -1;
    char eb[128];
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errsz, "socket: %s", errstr(errno, eb, sizeof eb));
        goto out;
    }
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0) {
        if (errno != EINPROGRESS) {
            snprintf(err, errsz, "%s", errstr(errno, eb, sizeof eb));
            goto out;
        }
        for (;;) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                snprintf(err, errsz, "connection timed out");
                goto out;
            }
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int pr = poll(&p, 1, (int)left);
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr < 0) {
                snprintf(err, errsz, "poll: %s", errstr(errno, eb, sizeof eb));
                goto out;
            }
            if (pr == 0) {
                snprintf(err, errsz, "connection timed out");
                goto out;
            }
            break;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
            snprintf(err, errsz, "getsockopt: %s", errstr(errno, eb, sizeof eb));
            goto out;
        }
        if (soerr != 0) {
            snprintf(err, errsz, "%s", errstr(soerr, eb, sizeof eb));
            goto out;
        }
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        snprintf(err, errsz, "fcntl: %s", errstr(errno, eb, sizeof eb));
        goto out;
    }
    int64_t left = deadline - now_ms();
    if (left < 1)
        left = 1;
    struct timeval tv = {.tv_sec = (time_t)(left / 1000), .tv_usec = (suseconds_t)((left % 1000) * 1000)};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
        snprintf(err, errsz, "setsockopt: %s", errstr(errno, eb, sizeof eb));
        goto out;
    }
    ret = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return ret;
}

/* The RFC 8737 section 3 certificate checks; 0 = valid, else r is set. */
static int check_alpn_cert(X509 *cert, const struct job *j, const char *where, struct validate_result *r)
{
    int ret = -1, crit = -1;
    GENERAL_NAMES *gens = NULL;
    ASN1_OBJECT *oid = NULL;
    char ex[EXCERPT_BUF];
    unsigned char want[SHA256_LEN];

    gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (!gens) {
        fail(r, "unauthorized", "tls-alpn-01: %s: %s", where,
             crit == -2 ? "the certificate has more than one subjectAltName extension"
                        : "the certificate has no (valid) subjectAltName extension");
        goto out;
    }
    int nsan = sk_GENERAL_NAME_num(gens);
    if (nsan != 1) {
        fail(r, "unauthorized", "tls-alpn-01: %s: the certificate has %d subjectAltName entries, expected exactly one",
             where, nsan);
        goto out;
    }
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, 0);
    if (j->is_ip) {
        struct addr a;
        const unsigned char *ip;
        size_t iplen;
        if (ip_parse(j->identifier, &a) != 0)
            goto out_internal;
        if (a.ss.ss_family == AF_INET) {
            ip = (const unsigned char *)&((struct sockaddr_in *)&a.ss)->sin_addr;
            iplen = 4;
        } else {
            ip = (const unsigned char *)&((struct sockaddr_in6 *)&a.ss)->sin6_addr;
            iplen = 16;
        }
        if (g->type != GEN_IPADD) {
            fail(r, "unauthorized", "tls-alpn-01: %s: the certificate's subjectAltName is not an iPAddress", where);
            goto out;
        }
        const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
        int pl = ASN1_STRING_length(g->d.iPAddress);
        if (pl < 0 || (size_t)pl != iplen || memcmp(p, ip, iplen) != 0) {
            fail(r, "unauthorized", "tls-alpn-01: %s: the certificate's iPAddress does not match %s", where,
                 j->identifier);
            goto out;
        }
    } else {
        if (g->type != GEN_DNS) {
            fail(r, "unauthorized", "tls-alpn-01: %s: the certificate's subjectAltName is not a dNSName", where);
            goto out;
        }
        const unsigned char *p = ASN1_STRING_get0_data(g->d.dNSName);
        int pl = ASN1_STRING_length(g->d.dNSName);
        size_t il = strlen(j->identifier);
        if (pl < 0 || (size_t)pl != il || strncasecmp((const char *)p, j->identifier, il) != 0) {
            excerpt(p, pl < 0 ? 0 : (size_t)pl, ex);
            fail(r, "unauthorized", "tls-alpn-01: %s: the certificate's dNSName is \"%s\", expected %s", where, ex,
                 j->identifier);
            goto out;
        }
    }

    oid = OBJ_txt2obj(ACME_ID_OID, 1);
    if (!oid)
        goto out_internal;
    int idx = X509_get_ext_by_OBJ(cert, oid, -1);
    if (idx < 0) {
        fail(r, "unauthorized", "tls-alpn-01: %s: the certificate has no acmeIdentifier extension", where);
        goto out;
    }
    if (X509_get_ext_by_OBJ(cert, oid, idx) >= 0) {
        fail(r, "incorrectResponse", "tls-alpn-01: %s: the certificate has more than one acmeIdentifier extension",
             where);
        goto out;
    }
    X509_EXTENSION *ext = X509_get_ext(cert, idx);
    if (!ext)
        goto out_internal;
    if (X509_EXTENSION_get_critical(ext) != 1) {
        fail(r, "incorrectResponse", "tls-alpn-01: %s: the acmeIdentifier extension is not critical", where);
        goto out;
    }
    const ASN1_OCTET_STRING *val = X509_EXTENSION_get_data(ext);
    const unsigned char *d = val ? ASN1_STRING_get0_data(val) : NULL;
    int dl = val ? ASN1_STRING_length(val) : -1;
    /* DER: OCTET STRING (0x04), length 32, then the digest */
    if (!d || dl != 2 + SHA256_LEN || d[0] != 0x04 || d[1] != SHA256_LEN) {
        fail(r, "incorrectResponse",
             "tls-alpn-01: %s: the acmeIdentifier extension is not an OCTET STRING of %d bytes", where, SHA256_LEN);
        goto out;
    }
    if (sha256(j->key_authz, want) != 0)
        goto out_internal;
    if (CRYPTO_memcmp(d + 2, want, SHA256_LEN) != 0) {
        fail(r, "unauthorized",
             "tls-alpn-01: %s: the acmeIdentifier extension does not hold SHA-256 of the key authorization",
             where);
        goto out;
    }
    ret = 0;
    goto out;
out_internal:
    fail(r, "serverInternal", "tls-alpn-01: %s: internal error checking the certificate", where);
out:
    GENERAL_NAMES_free(gens);
    ASN1_OBJECT_free(oid);
    return ret;
}

static void tlsalpn01_attempt(const struct validator *v, const struct job *j, const struct addr *a,
                              struct validate_result *r, bool *retry_next)
{
    SSL *ssl = NULL;
    X509 *cert = NULL;
    int fd = -1;
    char err[160], rev[REVNAME_BUF], ex[EXCERPT_BUF];
    char where[320];
    const char *sni = j->identifier;
    bool v6lit = a->ss.ss_family == AF_INET6;

    *retry_next = false;
    ERR_clear_error();
    if (j->is_ip)
        snprintf(where, sizeof where, "%s%s%s:%d", v6lit ? "[" : "", a->text, v6lit ? "]" : "",
                 v->cfg.tlsalpn01_port);
    else
        snprintf(where, sizeof where, "%s:%d (%s)", j->identifier, v->cfg.tlsalpn01_port, a->text);
    if (j->is_ip) {
        if (reverse_name(j->identifier, rev) != 0) {
            fail(r, "malformed", "tls-alpn-01: \"%s\" is not an IP address", j->identifier);
            goto out;
        }
        sni = rev;
    }

    int64_t deadline = now_ms() + v->cfg.timeout_ms;
    fd = tcp_connect(a, deadline, err, sizeof err);
    if (fd < 0) {
        *retry_next = true;
        fail(r, "connection", "tls-alpn-01: cannot connect to %s: %s", where, err);
        goto out;
    }
    ssl = SSL_new(v->tls);
    if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, sni) != 1 ||
        SSL_set_alpn_protos(ssl, (const unsigned char *)"\x0a" ACME_ALPN, 1 + ACME_ALPN_LEN) != 0) {
        fail(r, "serverInternal", "tls-alpn-01: cannot set up the TLS client");
        goto out;
    }
    errno = 0;
    int rc = SSL_connect(ssl);
    if (rc != 1) {
        int e = SSL_get_error(ssl, rc);
        int saved = errno;
        unsigned long oe = ERR_peek_last_error();
        /* SO_RCVTIMEO/SO_SNDTIMEO expiring surfaces as EAGAIN, which the
         * socket BIO reports as "retry" (WANT_READ/WANT_WRITE). */
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
            (e == SSL_ERROR_SYSCALL && (saved == EAGAIN || saved == EWOULDBLOCK))) {
            fail(r, "connection", "tls-alpn-01: %s: timed out during the TLS handshake", where);
        } else if (oe != 0) {
            char eb[160];
            ERR_error_string_n(oe, eb, sizeof eb);
            fail(r, "tls", "tls-alpn-01: %s: TLS handshake failed: %s", where, eb);
        } else {
            fail(r, "tls", "tls-alpn-01: %s: TLS handshake failed (connection closed by the server)", where);
        }
        goto out;
    }
    const unsigned char *alpn = NULL;
    unsigned int alen = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    if (alen != ACME_ALPN_LEN || memcmp(alpn, ACME_ALPN, ACME_ALPN_LEN) != 0) {
        excerpt(alpn, alpn ? alen : 0, ex);
        fail(r, "tls", "tls-alpn-01: %s: the server did not negotiate ALPN \"" ACME_ALPN "\" (selected \"%s\")",
             where, ex);
        goto out;
    }
    cert = SSL_get1_peer_certificate(ssl);
    if (!cert) {
        fail(r, "tls", "tls-alpn-01: %s: the server presented no certificate", where);
        goto out;
    }
    if (check_alpn_cert(cert, j, where, r) != 0)
        goto out;
    succeed(r);
    /* Best-effort close_notify; the outcome no longer matters. */
    if (SSL_shutdown(ssl) < 0)
        ERR_clear_error();
out:
    X509_free(cert);
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    ERR_clear_error();
}

static void tlsalpn01(struct dns *d, const struct job *j, struct validate_result *r)
{
    const struct validator *v = d->v;
    struct addrs as;
    if (resolve_host(d, "tls-alpn-01", j->identifier, j->is_ip, v->cfg.tlsalpn01_port, &as, r) != 0)
        return;
    for (size_t i = 0; i < as.n; i++) {
        bool retry_next = false;
        tlsalpn01_attempt(v, j, &as.a[i], r, &retry_next);
        if (!retry_next)
            break;
    }
}

/* ---- dns-01 -------------------------------------------------------------- */

static void dns01(struct dns *d, const struct job *j, struct validate_result *r)
{
    char *name = NULL, *want = NULL;
    unsigned char *ans = NULL, *val = NULL;
    unsigned char h[SHA256_LEN];
    char ex[EXCERPT_BUF] = "";
    int herr = 0, ntxt = 0;

    if (j->is_ip) {
        fail(r, "malformed", "dns-01 cannot validate IP identifiers");
        goto out;
    }
    name = xasprintf("_acme-challenge.%s", j->identifier);
    if (!name || sha256(j->key_authz, h) != 0 || !(want = b64url_encode(h, sizeof h))) {
        fail(r, "serverInternal", "dns-01: out of memory");
        goto out;
    }
    int len = dns_query(d, name, ns_t_txt, &ans, &herr);
    if (len < 0) {
        fail(r, "dns", "dns-01: TXT lookup for %s failed: %s", name, herr_text(herr));
        goto out;
    }
    ns_msg msg;
    if (ns_initparse(ans, len, &msg) != 0) {
        fail(r, "dns", "dns-01: TXT lookup for %s: malformed answer", name);
        goto out;
    }
    size_t wl = strlen(want);
    int count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) != 0) {
            fail(r, "dns", "dns-01: TXT lookup for %s: malformed answer", name);
            goto out;
        }
        if (ns_rr_type(rr) != ns_t_txt || ns_rr_class(rr) != ns_c_in)
            continue;
        /* concatenate the record's character-strings */
        const unsigned char *p = ns_rr_rdata(rr);
        size_t rl = ns_rr_rdlen(rr), vl = 0, k = 0;
        free(val);
        val = malloc(rl + 1);
        if (!val) {
            fail(r, "serverInternal", "dns-01: out of memory");
            goto out;
        }
        while (k < rl) {
            size_t sl = p[k];
            if (sl > rl - k - 1)
                break; /* truncated string: the record is malformed */
            memcpy(val + vl, p + k + 1, sl);
            vl += sl;
            k += 1 + sl;
        }
        if (k != rl)
            continue;
        ntxt++;
        if (vl == wl && memcmp(val, want, wl) == 0) {
            succeed(r);
            goto out;
        }
        if (ntxt == 1)
            excerpt(val, vl, ex);
    }
    if (ntxt == 0) {
        fail(r, "dns", "dns-01: no TXT records at %s", name);
        goto out;
    }
    fail(r, "unauthorized", "dns-01: none of the %d TXT record(s) at %s matches (found \"%s\"%s)", ntxt, name, ex,
         ntxt > 1 ? ", ..." : "");
out:
    free(val);
    free(ans);
    free(want);
    free(name);
}

/* ---- workers and queue --------------------------------------------------- */

static void run_job(const struct validator *v, const struct job *j, struct validate_result *r)
{
    struct dns d = {.v = v};
    memset(r, 0, sizeof *r);
    if (j->is_ip) {
        struct addr a;
        if (ip_parse(j->identifier, &a) != 0) {
            fail(r, "malformed", "\"%s\" is not an IP address", j->identifier);
            goto out;
        }
    } else if (!dns_name_ok(j->identifier)) {
        char ex[EXCERPT_BUF];
        excerpt((const unsigned char *)j->identifier, strlen(j->identifier), ex);
        fail(r, "malformed", "\"%s\" is not a valid DNS name", ex);
        goto out;
    }
    switch (j->type) {
    case VALIDATE_HTTP01:
        http01(&d, j, r);
        break;
    case VALIDATE_DNS01:
        dns01(&d, j, r);
        break;
    case VALIDATE_TLSALPN01:
        tlsalpn01(&d, j, r);
        break;
    default:
        fail(r, "serverInternal", "unknown challenge type");
        break;
    }
out:
    dns_close(&d);
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->identifier);
    free(j->token);
    free(j->key_authz);
    free(j);
}

static void *worker(void *arg)
{
    struct validator *v = arg;
    sigset_t set;
    /* OpenSSL writes to sockets with write(): a peer closing early must
     * yield EPIPE, not kill the process. */
    if (sigemptyset(&set) != 0 || sigaddset(&set, SIGPIPE) != 0 || pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        log_warn("validate: cannot block SIGPIPE in a worker");
    for (;;) {
        if (pthread_mutex_lock(&v->mu) != 0)
            break;
        while (!v->stopping && v->count == 0)
            pthread_cond_wait(&v->cv, &v->mu);
        if (v->stopping) {
            pthread_mutex_unlock(&v->mu);
            break;
        }
        struct job *j = v->queue[v->head];
        v->queue[v->head] = NULL;
        v->head = (v->head + 1) % QUEUE_CAP;
        v->count--;
        pthread_mutex_unlock(&v->mu);

        struct validate_result r;
        run_job(v, j, &r);
        j->done(j->arg, &r);
        job_free(j);
    }
    OPENSSL_thread_stop();
    return NULL;
}

static SSL_CTX *tls_ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        goto fail;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        goto fail;
    /* The challenge certificate is self-signed by design: no chain check;
     * the checks that matter are made on the certificate itself. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

struct validator *validator_new(const struct validate_cfg *cfg)
{
    struct validator *v = NULL;
    bool mu_ok = false, cv_ok = false;

    if (pthread_once(&curl_once, curl_init) != 0 || curl_init_rc != CURLE_OK) {
        log_error("validate: curl_global_init failed");
        goto fail;
    }
    v = calloc(1, sizeof *v);
    if (!v)
        goto fail;
    if (cfg)
        v->cfg = *cfg;
    v->cfg.resolver = NULL; /* not kept: parsed below */
    if (v->cfg.http01_port <= 0 || v->cfg.http01_port > 65535)
        v->cfg.http01_port = 80;
    if (v->cfg.tlsalpn01_port <= 0 || v->cfg.tlsalpn01_port > 65535)
        v->cfg.tlsalpn01_port = 443;
    if (v->cfg.timeout_ms <= 0)
        v->cfg.timeout_ms = 10000;
    if (v->cfg.workers <= 0)
        v->cfg.workers = 4;
    if (v->cfg.workers > WORKERS_MAX)
        v->cfg.workers = WORKERS_MAX;
    if (cfg && cfg->resolver && cfg->resolver[0]) {
        if (parse_resolver(cfg->resolver, &v->resolver) != 0) {
            log_error("validate: invalid resolver address \"%s\" (want ip:port or [ipv6]:port)", cfg->resolver);
            goto fail;
        }
        v->have_resolver = true;
    }
    v->tls = tls_ctx_new();
    if (!v->tls) {
        log_openssl("validate: cannot create the TLS client context");
        goto fail;
    }
    if (pthread_mutex_init(&v->mu, NULL) != 0)
        goto fail;
    mu_ok = true;
    if (pthread_cond_init(&v->cv, NULL) != 0)
        goto fail;
    cv_ok = true;
    v->threads = calloc((size_t)v->cfg.workers, sizeof *v->threads);
    if (!v->threads)
        goto fail;
    for (int i = 0; i < v->cfg.workers; i++) {
        if (pthread_create(&v->threads[i], NULL, worker, v) != 0) {
            log_error("validate: cannot start worker thread %d", i);
            goto fail;
        }
        v->nthreads++;
    }
    return v;
fail:
    if (v && v->nthreads > 0) {
        validator_free(v); /* stops the threads already started */
        return NULL;
    }
    if (v) {
        if (cv_ok)
            pthread_cond_destroy(&v->cv);
        if (mu_ok)
            pthread_mutex_destroy(&v->mu);
        free(v->threads);
        SSL_CTX_free(v->tls);
        free(v);
    }
    return NULL;
}

void validator_free(struct validator *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->mu);
    v->stopping = true;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
    for (int i = 0; i < v->nthreads; i++)
        pthread_join(v->threads[i], NULL);

    /* No worker is left: complete what was still queued. */
    struct validate_result r;
    memset(&r, 0, sizeof r);
    fail(&r, "serverInternal", "validation cancelled: the server is shutting down");
    while (v->count > 0) {
        struct job *j = v->queue[v->head];
        v->queue[v->head] = NULL;
        v->head = (v->head + 1) % QUEUE_CAP;
        v->count--;
        j->done(j->arg, &r);
        job_free(j);
    }
    pthread_cond_destroy(&v->cv);
    pthread_mutex_destroy(&v->mu);
    free(v->threads);
    SSL_CTX_free(v->tls);
    free(v);
}

int validator_submit(struct validator *v, enum validate_type type, const char *identifier, bool is_ip,
                     const char *token, const char *key_authz, validate_done done, void *arg)
{
    int ret = -1;
    struct job *j = NULL;
    if (!v || !identifier || !token || !key_authz || !done)
        goto out;
    if (type != VALIDATE_HTTP01 && type != VALIDATE_DNS01 && type != VALIDATE_TLSALPN01)
        goto out;
    j = calloc(1, sizeof *j);
    if (!j)
        goto out;
    j->type = type;
    j->is_ip = is_ip;
    j->done = done;
    j->arg = arg;
    j->identifier = strdup(identifier);
    j->token = strdup(token);
    j->key_authz = strdup(key_authz);
    if (!j->identifier || !j->token || !j->key_authz)
        goto out;
    if (pthread_mutex_lock(&v->mu) != 0)
        goto out;
    if (v->stopping || v->count >= QUEUE_CAP) {
        pthread_mutex_unlock(&v->mu);
        goto out;
    }
    v->queue[(v->head + v->count) % QUEUE_CAP] = j;
    v->count++;
    j = NULL;
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->mu);
    ret = 0;
out:
    job_free(j);
    return ret;
}
