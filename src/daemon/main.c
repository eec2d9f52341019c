/* pkiaasd: entry points only (serve, bootstrap). Logic lives in the
 * modules; this file parses flags, wires the context and waits for signals. */
#include "acme/acme.h"
#include "crypto/signerd.h"
#include "cmp/cmp.h"
#include "scep/intune.h"
#include "api/api.h"
#include <openssl/provider.h>
#include "authz/authz.h"
#include "ca/profile.h"
#include "ca/scheduler.h"
#include "ca/service_ca.h"
#include "daemon/bootstrap.h"
#include "daemon/context.h"
#include "http/server.h"
#include "crypto/secret.h"
#include "util/codec.h"
#include "util/log.h"
#include "util/ticker.h"
#include "util/timeutil.h"
#include "audit/audit.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  pkiaasd serve --data-dir DIR [--config FILE] [--http ADDR:PORT] [--https ADDR:PORT]\n"
               "  pkiaasd bootstrap --data-dir DIR --partition ID --owner-email EMAIL [--json] [--config FILE]\n"
               "                    [--certificates N (default 100000)] [--cas N (default 10)]\n"
               "  pkiaasd routes      (print the HTTP route table)\n"
               "  pkiaasd roles [--markdown|--json]  (print the permission matrix)\n"
               "  pkiaasd supervisor-token --data-dir DIR  (create a supervisor API token)\n"
               "  pkiaasd supervisor-token --data-dir DIR --revoke < TOKEN_FILE | --revoke-all\n"
               "  pkiaasd --version\n");
}

struct flags {
    const char *config, *data_dir, *http, *https, *partition, *email, *certs, *cas;
    int json, revoke, revoke_all;
};

static int parse_flags(int argc, char **argv, struct flags *f)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},    {"data-dir", required_argument, NULL, 'd'},
        {"http", required_argument, NULL, 'h'},      {"https", required_argument, NULL, 's'},
        {"partition", required_argument, NULL, 'p'}, {"owner-email", required_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},            {"certificates", required_argument, NULL, 'C'},
        {"cas", required_argument, NULL, 'A'},       {"revoke", no_argument, NULL, 'R'},
        {"revoke-all", no_argument, NULL, 'X'},      {NULL, 0, NULL, 0},
    };
    int ch;
    memset(f, 0, sizeof(*f));
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': f->config = optarg; break;
        case 'd': f->data_dir = optarg; break;
        case 'h': f->http = optarg; break;
        case 's': f->https = optarg; break;
        case 'p': f->partition = optarg; break;
        case 'e': f->email = optarg; break;
        case 'j': f->json = 1; break;
        case 'C': f->certs = optarg; break;
        case 'A': f->cas = optarg; break;
        case 'R': f->revoke = 1; break;
        case 'X': f->revoke_all = 1; break;
        default: return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

static int configure(struct app *a, const struct flags *f, char *err, size_t errlen)
{
    config_defaults(&a->cfg);
    if (f->config && config_load_file(&a->cfg, f->config, err, errlen) != 0)
        return -1;
    if ((f->data_dir && config_set(&a->cfg, "data_dir", f->data_dir, err, errlen) != 0) ||
        (f->http && config_set(&a->cfg, "http", f->http, err, errlen) != 0) ||
        (f->https && config_set(&a->cfg, "https", f->https, err, errlen) != 0))
        return -1;
    if (config_finish(&a->cfg, err, errlen) != 0)
        return -1;
    const char *lv = a->cfg.log_level;
    log_set_level(strcmp(lv, "debug") == 0 ? LOG_DEBUG : strcmp(lv, "warn") == 0 ? LOG_WARN
                                                     : strcmp(lv, "error") == 0 ? LOG_ERROR
                                                                                : LOG_INFO);
    return 0;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    size_t n = 0;
    if (!f)
        return NULL;
    if (getdelim(&s, &n, '\0', f) < 0) {
        free(s);
        s = NULL;
    }
    fclose(f);
    return s;
}

/* Protocol housekeeping on the scheduler thread. */
static void housekeeping(void *arg)
{
    struct app *a = arg;
    acme_housekeeping(a->api.store);
    cmp_housekeeping(&a->api, &a->cmp_sweep_at);
}

/* Intune revocation syncs call out to the configured services (up to 30 s
 * a call): on their own thread, so a slow or unanswering endpoint of one
 * partition's configuration never holds up CRLs, OCSP, checkpoints or the
 * scheduler lease. One node at a time (its own lease). */
static void intune_jobs(void *arg)
{
    struct api_ctx *api = arg;
    if (api->store->ops->lease_take && api->store->ops->lease_take(api->store, "intune-sync", 900) != STORE_OK)
        return;
    intune_revocation_sync_due(api);
}

static int cmd_serve(int argc, char **argv)
{
    struct flags f;
    struct app a;
    char err[512], *cert = NULL, *key = NULL;
    struct http_server *srv = NULL;
    struct scheduler *sched = NULL;
    struct ticker *intune_ticker = NULL;
    OSSL_PROVIDER *prov_default = NULL, *prov_legacy = NULL;
    struct signerd *signerd = NULL;
    char *trust = NULL;
    int rc = 1;
    memset(&a, 0, sizeof a);
    if (parse_flags(argc, argv, &f) != 0) {
        usage(stderr);
        return 2;
    }
    if (configure(&a, &f, err, sizeof err) != 0 || app_open(&a, err, sizeof err) != 0) {
        log_error("%s", err);
        goto out;
    }
    /* SCEP clients may still encrypt with DES (RFC 8894 lists des-CBC):
     * OpenSSL 3 keeps it in the legacy provider, loaded next to the
     * default one. Nothing else selects legacy algorithms. */
    prov_default = OSSL_PROVIDER_load(NULL, "default");
    prov_legacy = OSSL_PROVIDER_load(NULL, "legacy");
    if (!prov_default || !prov_legacy)
        log_warn("OpenSSL legacy provider not available: SCEP requests encrypted with single DES will fail");
    /* CA keys live in the signer process, forked now: before any thread,
     * listener or client exists */
    if (!(signerd = signerd_start(a.mkey))) {
        log_error("cannot start the signer process");
        goto out;
    }
    a.api.env.signerd = signerd;
    struct err perr;
    if (profiles_system_init(&perr) != 0) {
        log_error("%s", perr.msg);
        goto out;
    }
    /* Block the shutdown signals in every thread; the main thread waits. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (a.cfg.https_addr && *a.cfg.https_addr) {
        if (a.cfg.tls_cert_file) {
            if (!(cert = read_text(a.cfg.tls_cert_file)) || !(key = read_text(a.cfg.tls_key_file))) {
                log_error("cannot read tls_cert_file / tls_key_file");
                goto out;
            }
        } else {
            char host[256];
            unsigned short port;
            if (http_parse_addr(a.cfg.https_addr, host, sizeof host, &port) != 0) {
                log_error("bad https address '%s'", a.cfg.https_addr);
                goto out;
            }
            if (service_ca_server_cert(a.cfg.data_dir, a.mkey, host, &cert, &key, err, sizeof err) != 0) {
                log_error("%s", err);
                goto out;
            }
        }
    }
    /* Ask HTTPS clients for a certificate (CA Gateway credentials are
     * checked by the application, so any CA list will do here). */
    char *trust_path = NULL;
    if (asprintf(&trust_path, "%s/service-ca.pem", a.cfg.data_dir) >= 0) {
        trust = read_text(trust_path);
        free(trust_path);
    }
    /* an operator's own TLS certificate: no service CA was ever made, and
     * without a list the listener would ask for no certificate at all */
    if (!trust && cert && !(trust = strdup(cert))) {
        log_error("out of memory");
        goto out;
    }
    struct http_server_opts o = {
        .http_addr = a.cfg.http_addr,
        .https_addr = a.cfg.https_addr,
        .tls_cert_pem = cert,
        .tls_key_pem = key,
        .tls_trust_pem = trust,
        /* A request thread spends most of an issuance waiting (signer,
         * group commit). In a pool, a thread that waits holds up every
         * connection it owns: at 64 pool threads on 2 cores the CPUs idled
         * 14-20% under load, with a thread per connection 9-11%, and
         * certificates/s rose 9-27% (docs/benchmarks.md). `threads = N`
         * keeps a pool of N for operators who want a fixed number of
         * threads. */
        .threads = (unsigned)a.cfg.threads,
        .max_body = a.cfg.max_body,
        .max_conns_per_ip = (unsigned)a.cfg.max_connections_per_ip,
        .router = api_router(),
        .app = &a.api,
    };
    /* Everything a request can reach runs before the listeners open: a
     * request that arrives at once (a health check, a client retrying) finds
     * the ACME validator and the scheduler in place. */
    struct validate_cfg vc = {a.cfg.acme_http01_port, a.cfg.acme_tlsalpn01_port, a.cfg.acme_resolver,
                              a.cfg.acme_validation_timeout_ms, a.cfg.acme_validation_workers};
    if (!(a.api.acme_validator = validator_new(&vc))) {
        log_error("cannot start the ACME validation workers");
        goto out;
    }
    struct scheduler_opts so = {&a.api.env, a.api.crls, a.api.ocsp, a.cfg.scheduler_tick_s, a.cfg.crl_period_s,
                                a.cfg.crl_delay_s, housekeeping, &a};
    if (!(sched = scheduler_start(&so)) || !(intune_ticker = ticker_start(intune_jobs, &a.api, a.cfg.scheduler_tick_s))) {
        log_error("cannot start the scheduler");
        goto out;
    }
    /* access lines through the background writer from now on (the signer
     * process is already forked; it logs nothing) */
    if (log_writer_start() != 0)
        log_warn("access log writer not started: access lines are written one by one");
    if (!(srv = http_server_start(&o, err, sizeof err))) {
        log_error("%s", err);
        goto out;
    }
    log_info("pkiaasd %s serving http=%s https=%s data=%s", PKIAAS_VERSION, a.cfg.http_addr, a.cfg.https_addr,
             a.cfg.data_dir);
    int sig = 0;
    sigwait(&set, &sig);
    log_info("signal %d: shutting down", sig);
    http_server_stop(srv, a.cfg.shutdown_grace_s * 1000);
    srv = NULL;
    rc = 0;
out:
    http_server_stop(srv, 0);
    log_writer_stop(); /* every access line is out before the daemon exits */
    scheduler_stop(sched);
    ticker_stop(intune_ticker);
    /* a clean stop signs what the audit log holds since its last
     * checkpoint: a restart over an hour later then has no uncovered
     * records to report as a gap */
    if (rc == 0 && a.api.store)
        audit_checkpoint_all(a.api.store, a.api.env.mkey, time_now_ms());
    validator_free(a.api.acme_validator);
    a.api.acme_validator = NULL;
    a.api.env.signerd = NULL;
    signerd_stop(signerd);
    if (prov_legacy)
        OSSL_PROVIDER_unload(prov_legacy);
    if (prov_default)
        OSSL_PROVIDER_unload(prov_default);
    if (key) {
        OPENSSL_cleanse(key, strlen(key));
        free(key);
    }
    free(cert);
    free(trust);
    app_close(&a);
    return rc;
}

static int cmd_bootstrap(int argc, char **argv)
{
    struct flags f;
    struct app a;
    char err[512];
    int rc = 1;
    memset(&a, 0, sizeof a);
    if (parse_flags(argc, argv, &f) != 0 || !f.partition || !f.email) {
        usage(stderr);
        return 2;
    }
    long long certs = 100000, cas = 10;
    char *end = NULL;
    if (f.certs && ((certs = strtoll(f.certs, &end, 10)) < 1 || certs > 1000000000LL || *end)) {
        fprintf(stderr, "pkiaasd bootstrap: --certificates: 1 to 1000000000\n");
        return 2;
    }
    if (f.cas && ((cas = strtoll(f.cas, &end, 10)) < 1 || cas > 100000 || *end)) {
        fprintf(stderr, "pkiaasd bootstrap: --cas: 1 to 100000\n");
        return 2;
    }
    if (configure(&a, &f, err, sizeof err) != 0 || app_open(&a, err, sizeof err) != 0 ||
        bootstrap_partition(&a, f.partition, f.email, certs, cas, stdout, err, sizeof err) != 0) {
        fprintf(stderr, "pkiaasd bootstrap: %s\n", err);
        goto out;
    }
    rc = 0;
out:
    app_close(&a);
    return rc;
}

/* `--revoke`: the token to revoke, one line on stdin (never an argument,
 * which other users see in the process list). Returns its hash or NULL. */
static char *revoked_token_hash(void)
{
    char line[256], *hash = NULL;
    if (!fgets(line, sizeof line, stdin)) {
        fprintf(stderr, "pkiaasd supervisor-token --revoke: give the token on standard input\n");
        return NULL;
    }
    line[strcspn(line, "\r\n")] = 0;
    if (strncmp(line, "pks_", 4) != 0 || !(hash = secret_token_hash(line)))
        fprintf(stderr, "pkiaasd supervisor-token --revoke: not a supervisor token (pks_...)\n");
    OPENSSL_cleanse(line, sizeof line);
    return hash;
}

/* Creates a supervisor token (shown once, stored hashed), or revokes one
 * (--revoke, the token on stdin) or all of them (--revoke-all). */
static int cmd_supervisor_token(int argc, char **argv)
{
    struct flags f;
    struct app a;
    char err[512], *raw = NULL, *token = NULL, *hash = NULL;
    int rc = 1;
    memset(&a, 0, sizeof a);
    if (parse_flags(argc, argv, &f) != 0 || (f.revoke && f.revoke_all)) {
        usage(stderr);
        return 2;
    }
    if ((f.revoke && !(hash = revoked_token_hash())))
        return 1;
    if (configure(&a, &f, err, sizeof err) != 0 || app_open(&a, err, sizeof err) != 0) {
        fprintf(stderr, "pkiaasd supervisor-token: %s\n", err);
        goto out;
    }
    if (f.revoke || f.revoke_all) {
        long n = 0;
        if (a.api.store->ops->supervisor_token_revoke(a.api.store, hash, &n) != STORE_OK) {
            fprintf(stderr, "pkiaasd supervisor-token: cannot revoke\n");
            goto out;
        }
        printf("{\"revoked\": %ld}\n", n);
        if (f.revoke && n == 0)
            fprintf(stderr, "pkiaasd supervisor-token: no valid token matches (unknown, or revoked already)\n");
        rc = f.revoke && n == 0 ? 1 : 0;
        goto out;
    }
    if (!(raw = random_token(32)) || asprintf(&token, "pks_%s", raw) < 0 || !(hash = secret_token_hash(token)) ||
        a.api.store->ops->supervisor_token_put(a.api.store, hash, "supervisor") != STORE_OK) {
        fprintf(stderr, "pkiaasd supervisor-token: cannot create the token\n");
        goto out;
    }
    printf("{\"supervisorToken\": \"%s\"}\n", token);
    rc = 0;
out:
    if (token)
        OPENSSL_cleanse(token, strlen(token));
    free(raw);
    free(token);
    free(hash);
    app_close(&a);
    return rc;
}

/* The permission matrix, for docs/roles.md (--markdown) and tests (--json). */
static int cmd_roles(const char *fmt)
{
    if (strcmp(fmt, "--json") == 0) {
        json_t *ops = json_array();
        for (size_t i = 0; i < authz_op_count(); i++) {
            const struct authz_op_info *o = authz_op_at(i);
            json_t *roles = json_array();
            for (unsigned r = 0; r < AUTHZ_ROLES; r++)
                if (o->roles & (1u << r))
                    json_array_append_new(roles, json_string(authz_role_name(r)));
            json_array_append_new(ops, json_pack("{s:s,s:s,s:s,s:o}", "operation", o->name, "group", o->group,
                                                 "label", o->label, "roles", roles));
        }
        char *s = json_dumps(ops, JSON_INDENT(2));
        json_decref(ops);
        if (!s)
            return 1;
        printf("%s\n", s);
        free(s);
        return 0;
    }
    printf("# Roles and permissions\n\n"
           "Generated from the permission matrix in `src/authz/authz.c` by `pkiaasd roles --markdown`; do not edit.\n"
           "Every API call is decided by that one table (`authz_allow`). Rows follow the guide's role tables;\n"
           "rows marked *pkiaas:* are operations the guide implies without a table row.\n\n"
           "| group | operation | id |");
    for (unsigned r = 0; r < AUTHZ_ROLES; r++)
        printf(" %s |", authz_role_name(r));
    printf("\n|---|---|---|");
    for (unsigned r = 0; r < AUTHZ_ROLES; r++)
        printf(":-:|");
    printf("\n");
    for (size_t i = 0; i < authz_op_count(); i++) {
        const struct authz_op_info *o = authz_op_at(i);
        printf("| %s | %s | `%s` |", o->group, o->label, o->name);
        for (unsigned r = 0; r < AUTHZ_ROLES; r++)
            printf(" %s |", (o->roles & (1u << r)) ? "✓" : "✗");
        printf("\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* a replacement signer process (signerd.c): nothing else of the daemon */
    if (argc == 2 && strcmp(argv[1], "__signer") == 0)
        return signerd_exec_main();
    /* libcurl (SMTP relay) must be initialised before any thread starts */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0)
        return cmd_serve(argc, argv);
    if (strcmp(argv[1], "bootstrap") == 0)
        return cmd_bootstrap(argc, argv);
    if (strcmp(argv[1], "routes") == 0) {
        /* The route table, one "METHOD /pattern" per line: docs/openapi.yaml
         * is checked against it by the test suite. */
        const struct router *rt = api_router();
        for (size_t t = 0; t < rt->ntables; t++)
            for (size_t i = 0; i < *rt->tables[t].n; i++)
                printf("%s %s\n", rt->tables[t].routes[i].method, rt->tables[t].routes[i].pattern);
        return 0;
    }
    if (strcmp(argv[1], "supervisor-token") == 0)
        return cmd_supervisor_token(argc, argv);
    if (strcmp(argv[1], "roles") == 0)
        return cmd_roles(argc > 2 ? argv[2] : "--markdown");
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("pkiaasd %s\n", PKIAAS_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
