#include "util/limits.h"
#include "util/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->http_addr = strdup("127.0.0.1:8080");
    c->https_addr = strdup("127.0.0.1:8443");
    c->region = strdup("us");
    c->regions = strdup("us,eu,pqlab");
    c->log_level = strdup("info");
    c->max_body = LIMIT_HTTP_BODY_DEFAULT;
    c->max_connections_per_ip = LIMIT_HTTP_CONNECTIONS_PER_IP;
    c->shutdown_grace_s = 4;
    c->crl_period_s = 86400;
    c->crl_delay_s = 900;
    c->scheduler_tick_s = 30;
    c->rate_limit_standard = 100;
    c->rate_limit_premium = 1000;
    c->rate_limit_window_s = 10;
    c->acme_http01_port = 80;
    c->acme_tlsalpn01_port = 443;
    c->acme_validation_timeout_ms = 10000;
    c->acme_validation_workers = 4;
}

static int set_str(char **dst, const char *v)
{
    char *d = strdup(v);
    if (!d)
        return -1;
    free(*dst);
    *dst = d;
    return 0;
}

static int parse_long(const char *v, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || !end || end == v || *end || x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

static bool public_url_ok(const char *v)
{
    const char *host = strncmp(v, "http://", 7) == 0 ? v + 7 : strncmp(v, "https://", 8) == 0 ? v + 8 : NULL;
    size_t n = strlen(v);
    if (!host || !*host || *host == '/' || v[n - 1] == '/')
        return false;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '?' || *p == '#' || *p == '"' ||
            *p == '\\' || *p == '<' || *p == '>')
            return false;
    return true;
}

int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        size_t off;
    } strs[] = {
        {"data_dir", offsetof(struct config, data_dir)},
        {"http", offsetof(struct config, http_addr)},
        {"https", offsetof(struct config, https_addr)},
        {"public_http_url", offsetof(struct config, public_http_url)},
        {"public_https_url", offsetof(struct config, public_https_url)},
        {"store", offsetof(struct config, store)},
        {"master_key_file", offsetof(struct config, master_key_file)},
        {"tls_cert_file", offsetof(struct config, tls_cert_file)},
        {"tls_key_file", offsetof(struct config, tls_key_file)},
        {"region", offsetof(struct config, region)},
        {"regions", offsetof(struct config, regions)},
        {"smtp_url", offsetof(struct config, smtp_url)},
        {"swagger_ui_dir", offsetof(struct config, swagger_ui_dir)},
        {"portal_dir", offsetof(struct config, portal_dir)},
        {"smtp_from", offsetof(struct config, smtp_from)},
        {"smtp_username", offsetof(struct config, smtp_username)},
        {"smtp_password", offsetof(struct config, smtp_password)},
        {"log_level", offsetof(struct config, log_level)},
        {"acme_resolver", offsetof(struct config, acme_resolver)},
    };
    /* the public base URLs go into every certificate's CRL and OCSP
     * addresses for good: "http(s)://host[:port][/path]", nothing else */
    if ((strcmp(key, "public_http_url") == 0 || strcmp(key, "public_https_url") == 0) && !public_url_ok(value)) {
        snprintf(err, errlen,
                 "bad value for '%s': an http:// or https:// URL without spaces, query, fragment or trailing '/'",
                 key);
        return -1;
    }
    if (strcmp(key, "log_level") == 0 && strcmp(value, "debug") != 0 && strcmp(value, "info") != 0 &&
        strcmp(value, "warn") != 0 && strcmp(value, "error") != 0) {
        snprintf(err, errlen, "bad value for 'log_level': debug, info, warn or error");
        return -1;
    }
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strcmp(key, strs[i].name) == 0)
            return set_str((char **)((char *)c + strs[i].off), value);
    long x;
    if (strcmp(key, "threads") == 0) {
        if (parse_long(value, 0, 256, &x) != 0)
            goto bad;
        c->threads = (int)x;
        return 0;
    }
    if (strcmp(key, "max_connections_per_ip") == 0) {
        if (parse_long(value, 0, LIMIT_HTTP_CONNECTIONS, &x) != 0)
            goto bad;
        c->max_connections_per_ip = (int)x;
        return 0;
    }
    if (strcmp(key, "max_body") == 0) {
        if (parse_long(value, 1024, 256L * 1024 * 1024, &x) != 0)
            goto bad;
        c->max_body = (size_t)x;
        return 0;
    }
    if (strcmp(key, "shutdown_grace_s") == 0) {
        if (parse_long(value, 0, 60, &x) != 0)
            goto bad;
        c->shutdown_grace_s = (int)x;
        return 0;
    }
    static const struct {
        const char *name;
        size_t off;
        long min, max;
    } ints[] = {
        {"crl_period_s", offsetof(struct config, crl_period_s), 60, 7 * 86400},
        {"crl_delay_s", offsetof(struct config, crl_delay_s), 0, 86400},
        {"scheduler_tick_s", offsetof(struct config, scheduler_tick_s), 1, 3600},
        {"ocsp_require_signed", offsetof(struct config, ocsp_require_signed), 0, 1},
        {"rate_limit_standard", offsetof(struct config, rate_limit_standard), 0, 100000000},
        {"rate_limit_premium", offsetof(struct config, rate_limit_premium), 0, 100000000},
        {"rate_limit_window_s", offsetof(struct config, rate_limit_window_s), 1, 3600},
        {"acme_http01_port", offsetof(struct config, acme_http01_port), 1, 65535},
        {"acme_tlsalpn01_port", offsetof(struct config, acme_tlsalpn01_port), 1, 65535},
        {"acme_validation_timeout_ms", offsetof(struct config, acme_validation_timeout_ms), 100, 120000},
        {"acme_validation_workers", offsetof(struct config, acme_validation_workers), 1, 64},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(key, ints[i].name) == 0) {
            if (parse_long(value, ints[i].min, ints[i].max, &x) != 0)
                goto bad;
            *(int *)((char *)c + ints[i].off) = (int)x;
            return 0;
        }
    snprintf(err, errlen, "unknown configuration key '%s'", key);
    return -1;
bad:
    snprintf(err, errlen, "bad value for '%s'", key);
    return -1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int rc = -1, lineno = 0;
    if (!f) {
        snprintf(err, errlen, "cannot open config %s: %s", path, strerror(errno));
        return -1;
    }
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
            goto out;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        if (v[0] == '"') {
            /* a quoted value, then at most a comment */
            char *close = strchr(v + 1, '"');
            char *rest = close ? trim(close + 1) : NULL;
            if (!close || (*rest && *rest != '#')) {
                snprintf(err, errlen, "%s:%d: unterminated quote, or text after the closing quote", path, lineno);
                goto out;
            }
            *close = 0;
            v++;
        } else {
            /* "# comment" after a value: a '#' after white space starts it */
            for (char *h = v; *h; h++)
                if (*h == '#' && h > v && (h[-1] == ' ' || h[-1] == '\t')) {
                    *h = 0;
                    v = trim(v);
                    break;
                }
        }
        char sub[200];
        if (config_set(c, k, v, sub, sizeof sub) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
            goto out;
        }
    }
    rc = 0;
out:
    free(line);
    fclose(f);
    return rc;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", a, b);
    return s;
}

int config_finish(struct config *c, char *err, size_t errlen)
{
    if (!c->data_dir || !*c->data_dir) {
        snprintf(err, errlen, "--data-dir is required");
        return -1;
    }
    if (!c->store) {
        char *p = join("sqlite:", c->data_dir);
        c->store = p ? join(p, "/pkiaas.db") : NULL;
        free(p);
        if (!c->store)
            return -1;
    }
    if (!c->master_key_file && !(c->master_key_file = join(c->data_dir, "/master.key")))
        return -1;
    if (!c->public_http_url && c->http_addr && *c->http_addr && !(c->public_http_url = join("http://", c->http_addr)))
        return -1;
    if (!c->public_https_url && c->https_addr && *c->https_addr &&
        !(c->public_https_url = join("https://", c->https_addr)))
        return -1;
    if (!c->public_http_url && !(c->public_http_url = strdup("http://localhost")))
        return -1;
    if (!c->public_https_url && !(c->public_https_url = strdup(c->public_http_url)))
        return -1;
    if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL)) {
        snprintf(err, errlen, "tls_cert_file and tls_key_file must be given together");
        return -1;
    }
    return 0;
}

void config_free(struct config *c)
{
    free(c->data_dir);
    free(c->http_addr);
    free(c->https_addr);
    free(c->public_http_url);
    free(c->public_https_url);
    free(c->store);
    free(c->master_key_file);
    free(c->tls_cert_file);
    free(c->tls_key_file);
    free(c->region);
    free(c->regions);
    free(c->smtp_url);
    free(c->swagger_ui_dir);
    free(c->portal_dir);
    free(c->smtp_from);
    if (c->smtp_password)
        memset(c->smtp_password, 0, strlen(c->smtp_password));
    free(c->smtp_username);
    free(c->smtp_password);
    free(c->acme_resolver);
    free(c->log_level);
    memset(c, 0, sizeof(*c));
}
