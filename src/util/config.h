/* config: daemon configuration. Every option has a default (see
 * docs/configuration.md); a config file holds `key = value` lines, `#`
 * comments, values optionally in double quotes. Command-line flags override
 * the file. */
#ifndef PKIAAS_UTIL_CONFIG_H
#define PKIAAS_UTIL_CONFIG_H

#include <stddef.h>

struct config {
    char *data_dir;
    char *http_addr;        /* "127.0.0.1:8080"; "" disables */
    char *https_addr;       /* "127.0.0.1:8443"; "" disables */
    char *public_http_url;  /* base of CRL/OCSP/AIA URLs; default http://<http_addr> */
    char *public_https_url; /* base of API/CAGW URLs; default https://<https_addr> */
    char *store;            /* "sqlite:<path>"; default sqlite:<data_dir>/pkiaas.db */
    char *master_key_file;  /* default <data_dir>/master.key */
    char *tls_cert_file;    /* optional operator-supplied HTTPS certificate (PEM) */
    char *tls_key_file;     /* ... and its key (PEM) */
    char *region;           /* default region for bootstrap: "us" */
    char *regions;          /* regions subscriptions may be assigned to: "us,eu,pqlab" */
    char *swagger_ui_dir;   /* swagger-ui-dist files (default: the source tree's ui/swagger/node_modules) */
    char *portal_dir;       /* the built web portal (default: the source tree's ui/portal/dist) */
    char *smtp_url;         /* SMTP relay for invitations; unset: links are logged and returned */
    char *smtp_from;
    char *smtp_username;
    char *smtp_password;
    char *log_level;        /* debug|info|warn|error */
    int threads;            /* HTTP thread pool size; 0 = a thread per connection */
    size_t max_body;        /* bytes; default 1 MiB */
    int max_connections_per_ip; /* HTTP connections one client address may hold (0 = no limit) */
    int shutdown_grace_s;   /* default 4 */
    int crl_period_s;       /* full CRL at least this often; default 86400 */
    int crl_delay_s;        /* after a revocation, CRL within; default 900 */
    int scheduler_tick_s;   /* default 30 */
    int ocsp_require_signed;/* 0/1: unsigned OCSP requests get sigRequired */
    int rate_limit_standard;/* requests per window per partition and capability; 0 = off (default 100) */
    int rate_limit_premium; /* the same for premium subscriptions (default 1000) */
    int rate_limit_window_s;/* default 10 */
    int acme_http01_port;   /* port of http-01 validation requests (default 80) */
    int acme_tlsalpn01_port;/* port of tls-alpn-01 validation (default 443) */
    char *acme_resolver;    /* "ip:port" DNS server for ACME validation; unset = system resolver */
    int acme_validation_timeout_ms; /* per attempt (default 10000) */
    int acme_validation_workers;    /* validation threads (default 4) */
};

/* Fills defaults. data_dir may be NULL at this point. */
void config_defaults(struct config *c);
/* Reads a file over the defaults; -1 with a message in err on bad syntax or
 * unknown keys. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);
/* Sets one option by name (used by the file loader and by CLI flags). */
int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen);
/* Derives the defaults that depend on data_dir / addresses. */
int config_finish(struct config *c, char *err, size_t errlen);
void config_free(struct config *c);

#endif
