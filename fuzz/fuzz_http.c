/* libFuzzer: the whole request path in-process — router, path parameters,
 * every protocol parser (SCEP, EST, CMP, ACME, OCSP) and the admin API —
 * on a real store with a bootstrapped partition, CAs and one configuration
 * of each protocol. The input picks a target (first byte), a content type
 * (second byte) and is otherwise the body; one target takes the path from
 * the input. Any answer is fine except a 5xx caused by the input: that
 * aborts (the hardening rule "bad input is a 4xx, never a 5xx"). */
#include "api/api.h"
#include "ca/profile.h"
#include "daemon/bootstrap.h"
#include "daemon/context.h"
#include "util/log.h"

#include <ftw.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct app g_app;
static char g_auth[200];
static char g_dir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The temporary data directory goes when the fuzzer exits. */
static void cleanup(void)
{
    if (g_dir[0])
        nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* One in-process request; returns the status. */
static int call(const char *method, const char *path, const char *ctype, const void *body, size_t len,
                const char *query_name, const char *query_value, json_t **out)
{
    struct http_kv kv[4];
    unsigned n = 0;
    kv[n++] = (struct http_kv){'H', "Authorization", g_auth};
    if (ctype)
        kv[n++] = (struct http_kv){'H', "Content-Type", ctype};
    if (query_name)
        kv[n++] = (struct http_kv){'Q', query_name, query_value};
    struct http_req req;
    struct http_resp resp;
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    req.method = method;
    req.path = path;
    req.kv = kv;
    req.nkv = n;
    req.https = true;
    snprintf(req.ip, sizeof req.ip, "127.0.0.1");
    req.app = &g_app.api;
    if (len) {
        req.body.data = malloc(len);
        if (!req.body.data)
            return 0;
        memcpy(req.body.data, body, len);
        req.body.len = len;
    }
    router_dispatch(api_router(), &req, &resp);
    if (out) {
        json_error_t je;
        *out = resp.body ? json_loadb((const char *)resp.body, resp.len, 0, &je) : NULL;
    }
    int st = resp.status;
    resp_free(&resp);
    free(req.body.data);
    return st;
}

static void setup_call(const char *method, const char *path, const char *json)
{
    int st = call(method, path, "application/json", json, strlen(json), NULL, NULL, NULL);
    if (st >= 300) {
        fprintf(stderr, "fuzz_http setup: %s %s -> %d\n", method, path, st);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char tmpl[] = "/tmp/pkiaas-fuzz-http.XXXXXX", err[256];
    if (!mkdtemp(tmpl))
        abort();
    snprintf(g_dir, sizeof g_dir, "%s", tmpl);
    atexit(cleanup);
    log_set_level(LOG_ERROR);
    config_defaults(&g_app.cfg);
    if (config_set(&g_app.cfg, "data_dir", tmpl, err, sizeof err) != 0 ||
        config_set(&g_app.cfg, "rate_limit_standard", "0", err, sizeof err) != 0 ||
        config_set(&g_app.cfg, "rate_limit_premium", "0", err, sizeof err) != 0 ||
        config_finish(&g_app.cfg, err, sizeof err) != 0 || app_open(&g_app, err, sizeof err) != 0)
        abort();
    struct err e;
    if (profiles_system_init(&e) != 0)
        abort();
    char *boot = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&boot, &blen);
    if (!f || bootstrap_partition(&g_app, "fz", "owner@fz.example", 1000000000LL, 1000, f, err, sizeof err) != 0)
        abort();
    fclose(f);
    json_error_t je;
    json_t *b = json_loads(boot, 0, &je);
    const char *tok = json_string_value(json_object_get(b, "apiToken"));
    if (!tok)
        abort();
    snprintf(g_auth, sizeof g_auth, "Bearer %s", tok);
    json_decref(b);
    free(boot);
    setup_call("POST", "/api/v1/partitions/fz/cas",
               "{\"id\":\"root\",\"type\":\"root\",\"signingKeyDetails\":\"RSA-2048+PKCS15-SHA256\",\"subject\":\"CN=Fuzz Root\"}");
    setup_call("POST", "/api/v1/partitions/fz/cas",
               "{\"id\":\"sub\",\"type\":\"subord\",\"parentId\":\"root\",\"signingKeyDetails\":\"RSA-2048+PKCS15-SHA256\","
               "\"subject\":\"CN=Fuzz Issuing\",\"enableCrl\":true,\"enableOcsp\":true,\"profiles\":[\"privatessl-tls-server\","
               "\"scep-tls-client\",\"est-tls-client\",\"cmp-tls-client\",\"mdmws-digital-signature\"]}");
    setup_call("POST", "/api/v1/partitions/fz/protocols",
               "{\"id\":\"acme\",\"type\":\"acme\",\"caId\":\"sub\",\"profileId\":\"privatessl-tls-server\",\"eabRequired\":false}");
    setup_call("POST", "/api/v1/partitions/fz/protocols",
               "{\"id\":\"scep\",\"type\":\"scep\",\"caId\":\"sub\",\"profileId\":\"scep-tls-client\"}");
    setup_call("POST", "/api/v1/partitions/fz/protocols",
               "{\"id\":\"est\",\"type\":\"est\",\"caId\":\"sub\",\"profileId\":\"est-tls-client\"}");
    setup_call("POST", "/api/v1/partitions/fz/protocols",
               "{\"id\":\"cmp\",\"type\":\"cmp\",\"caId\":\"sub\",\"profileId\":\"cmp-tls-client\"}");
    setup_call("POST", "/api/v1/partitions/fz/protocols",
               "{\"id\":\"mdm\",\"type\":\"mdmws\",\"caId\":\"sub\",\"profileId\":\"mdmws-digital-signature\"}");
    setup_call("POST", "/api/v1/partitions/fz/protocols/scep/credentials", "{\"name\":\"fuzz\"}");
    setup_call("POST", "/api/v1/partitions/fz/protocols/mdm/digital-ids",
               "{\"name\":\"dev\",\"rdnFormat\":\"CN=<igusername>\",\"parentDn\":\"O=Fuzz\"}");
    /* the RA certificate exists before fuzzing starts */
    call("GET", "/scep/fz/scep/pkiclient.exe", NULL, NULL, 0, "operation", "GetCACert", NULL);
    return 0;
}

struct target {
    const char *method, *path, *ctype, *qname, *qvalue;
};

static const struct target targets[] = {
    {"POST", "/scep/fz/scep/pkiclient.exe", "application/x-pki-message", "operation", "PKIOperation"},
    {"POST", "/.well-known/est/fz~est/simpleenroll", "application/pkcs10", NULL, NULL},
    {"POST", "/.well-known/est/fz~est/serverkeygen", "application/pkcs10", NULL, NULL},
    {"POST", "/cmp/fz/cmp", "application/pkixcmp", NULL, NULL},
    {"POST", "/acme/fz/acme/new-account", "application/jose+json", NULL, NULL},
    {"POST", "/acme/fz/acme/new-order", "application/jose+json", NULL, NULL},
    {"POST", "/ocsp/fz/sub", "application/ocsp-request", NULL, NULL},
    {"POST", "/api/v1/partitions/fz/cas/sub/certificates", "application/json", NULL, NULL},
    {"POST", "/api/v1/partitions/fz/profiles", "application/json", NULL, NULL},
    {"POST", "/api/v1/partitions/fz/protocols", "application/json", NULL, NULL},
    {"POST", "/mdm/v2/mdmws/fz/mdm/challenges", "application/json", NULL, NULL},
    {"POST", "/cagw/v1/certificate-authorities/sub/enrollments", "application/json", NULL, NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned sel = data[0], variant = data[1];
    data += 2;
    size -= 2;
    int st;
    const char *where;
    char path[512];
    if (sel % 16 == 15) {
        /* routing: the path (and the method) from the input */
        size_t n = size < sizeof path - 1 ? size : sizeof path - 1;
        memcpy(path, data, n);
        path[n] = 0;
        if (path[0] != '/' || strlen(path) != n)
            return 0;
        static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD"};
        st = call(methods[variant % 5], path, "application/json", NULL, 0, NULL, NULL, NULL);
        where = path;
    } else {
        const struct target *t = &targets[sel % (sizeof targets / sizeof targets[0])];
        const char *ctype = (variant & 3) == 3 ? "text/plain" : t->ctype;
        st = call(t->method, t->path, ctype, data, size, t->qname, t->qvalue, NULL);
        where = t->path;
    }
    if (st >= 500 && st != 503) {
        fprintf(stderr, "fuzz_http: %s answered %d\n", where, st);
        abort();
    }
    return 0;
}
