/* inproc: see inproc.h. */
#include "inproc.h"

#include "api/api.h"
#include "ca/profile.h"
#include "daemon/bootstrap.h"
#include "daemon/context.h"
#include "util/log.h"

#include <ftw.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INPROC_MAX_KV 8

static struct app g_app;
static char g_auth[200];
static char g_dir[64];
static struct inproc_secrets g_secrets;
/* headers of the last response (inproc_last_header) */
static struct {
    char name[64];
    char *value;
} g_hdr[HTTP_MAX_HEADERS];
static unsigned g_nhdr;

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

int inproc_call(const char *method, const char *path, const char *ctype, const char *auth, const void *body,
                size_t len, const char *const (*query)[2], size_t nquery, json_t **out, unsigned char **raw,
                size_t *rawlen)
{
    struct http_kv kv[INPROC_MAX_KV];
    unsigned n = 0;
    const char *a = auth ? auth : g_auth;
    if (a[0])
        kv[n++] = (struct http_kv){'H', "Authorization", a};
    if (ctype)
        kv[n++] = (struct http_kv){'H', "Content-Type", ctype};
    for (size_t i = 0; i < nquery && n < INPROC_MAX_KV; i++)
        kv[n++] = (struct http_kv){'Q', query[i][0], query[i][1]};
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
            abort();
        memcpy(req.body.data, body, len);
        req.body.len = len;
    }
    router_dispatch(api_router(), &req, &resp);
    if (out) {
        json_error_t je;
        *out = resp.body ? json_loadb((const char *)resp.body, resp.len, 0, &je) : NULL;
    }
    if (raw) {
        *raw = NULL;
        *rawlen = 0;
        if (resp.body && resp.len) {
            if (!(*raw = malloc(resp.len)))
                abort();
            memcpy(*raw, resp.body, resp.len);
            *rawlen = resp.len;
        }
    }
    int st = resp.status;
    for (unsigned i = 0; i < g_nhdr; i++)
        free(g_hdr[i].value);
    g_nhdr = 0;
    for (unsigned i = 0; i < resp.nhdr && i < HTTP_MAX_HEADERS; i++) {
        snprintf(g_hdr[g_nhdr].name, sizeof g_hdr[g_nhdr].name, "%s", resp.hdr_name[i]);
        if (!(g_hdr[g_nhdr].value = strdup(resp.hdr_value[i] ? resp.hdr_value[i] : "")))
            abort();
        g_nhdr++;
    }
    if (getenv("PKIAAS_FUZZ_TRACE"))
        fprintf(stderr, "inproc: %s %.120s -> %d %.*s\n", method, path, st,
                resp.body && resp.status >= 300 ? (int)(resp.len < 200 ? resp.len : 200) : 0,
                resp.body ? (const char *)resp.body : "");
    resp_free(&resp);
    free(req.body.data);
    return st;
}

void inproc_dump(const char *env, unsigned char prefix, const unsigned char *msg, size_t len)
{
    static unsigned seq;
    const char *dir = getenv(env);
    char path[512];
    if (!dir || snprintf(path, sizeof path, "%s/msg-%u", dir, seq++) >= (int)sizeof path)
        return;
    FILE *f = fopen(path, "wb");
    if (f) {
        fputc(prefix, f);
        fwrite(msg, 1, len, f);
        fclose(f);
    }
}

const char *inproc_last_header(const char *name)
{
    for (unsigned i = 0; i < g_nhdr; i++)
        if (strcasecmp(g_hdr[i].name, name) == 0)
            return g_hdr[i].value;
    return NULL;
}

void inproc_check(int status, const char *where)
{
    if (status >= 500 && status != 503) {
        fprintf(stderr, "fuzz: %s answered %d\n", where, status);
        abort();
    }
}

static void setup_call(const char *method, const char *path, const char *json, json_t **out)
{
    int st = inproc_call(method, path, "application/json", NULL, json, strlen(json), NULL, 0, out, NULL, NULL);
    if (st >= 300) {
        fprintf(stderr, "fuzz setup: %s %s -> %d\n", method, path, st);
        abort();
    }
}

/* A credential of a configuration; its one-time secret goes to `secret`. */
static void credential(const char *config, const char *id, char *secret, size_t n)
{
    char path[160], body[96];
    json_t *r = NULL;
    snprintf(path, sizeof path, "/api/v1/partitions/fz/protocols/%s/credentials", config);
    snprintf(body, sizeof body, "{\"name\":\"fuzz\",\"id\":\"%s\"}", id);
    setup_call("POST", path, body, &r);
    const char *s = json_string_value(json_object_get(r, "secret"));
    if (!s || strlen(s) >= n)
        abort();
    snprintf(secret, n, "%s", s);
    json_decref(r);
}

X509 *inproc_ca_cert(const char *id)
{
    static X509 *certs[2];
    int i = strcmp(id, "root") == 0 ? 0 : 1;
    if (!certs[i]) {
        char path[96];
        unsigned char *pem = NULL;
        size_t n = 0;
        snprintf(path, sizeof path, "/api/v1/partitions/fz/cas/%s/certificate", i ? "sub" : "root");
        if (inproc_call("GET", path, NULL, NULL, NULL, 0, NULL, 0, NULL, &pem, &n) != 200)
            abort();
        BIO *b = BIO_new_mem_buf(pem, (int)n);
        certs[i] = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        free(pem);
        if (!certs[i])
            abort();
    }
    return certs[i];
}

EVP_PKEY *inproc_ec_key(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!k)
        abort();
    return k;
}

char *inproc_csr_pem(EVP_PKEY *key, const char *cn, const char *challenge)
{
    X509_REQ *r = X509_REQ_new();
    X509_NAME *nm = X509_NAME_new();
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL, *p = NULL;
    if (!r || !nm || !b ||
        X509_NAME_add_entry_by_txt(nm, "CN", V_ASN1_UTF8STRING, (const unsigned char *)cn, -1, -1, 0) != 1 ||
        X509_REQ_set_subject_name(r, nm) != 1 || X509_REQ_set_pubkey(r, key) != 1)
        goto out;
    if (challenge && X509_REQ_add1_attr_by_NID(r, NID_pkcs9_challengePassword, MBSTRING_UTF8,
                                               (const unsigned char *)challenge, -1) != 1)
        goto out;
    if (X509_REQ_sign(r, key, EVP_sha256()) <= 0 || PEM_write_bio_X509_REQ(b, r) != 1)
        goto out;
    long n = BIO_get_mem_data(b, &p);
    if (n > 0 && (out = malloc((size_t)n + 1))) {
        memcpy(out, p, (size_t)n);
        out[n] = 0;
    }
out:
    X509_REQ_free(r);
    X509_NAME_free(nm);
    BIO_free(b);
    ERR_clear_error();
    return out;
}

struct app *inproc_app(void)
{
    return &g_app;
}

const struct inproc_secrets *inproc_secrets(void)
{
    return &g_secrets;
}

void inproc_init(void)
{
    /* tmpfs when there is one: durable commits cost no disk flush there,
     * so the fuzzer spends its time in the code under test */
    char tmpl[64], err[256];
    snprintf(tmpl, sizeof tmpl, "/dev/shm/pkiaas-fuzz.XXXXXX");
    if (!mkdtemp(tmpl)) {
        snprintf(tmpl, sizeof tmpl, "/tmp/pkiaas-fuzz.XXXXXX");
        if (!mkdtemp(tmpl))
            abort();
    }
    snprintf(g_dir, sizeof g_dir, "%s", tmpl);
    atexit(cleanup);
    log_set_level(LOG_ERROR);
    config_defaults(&g_app.cfg);
    if (config_set(&g_app.cfg, "data_dir", tmpl, err, sizeof err) != 0 ||
        config_set(&g_app.cfg, "rate_limit_standard", "0", err, sizeof err) != 0 ||
        config_set(&g_app.cfg, "rate_limit_premium", "0", err, sizeof err) != 0 ||
        /* ACME validation never leaves the machine: no resolver answers */
        config_set(&g_app.cfg, "acme_resolver", "127.0.0.1:9", err, sizeof err) != 0 ||
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
               "{\"id\":\"root\",\"type\":\"root\",\"signingKeyDetails\":\"RSA-2048+PKCS15-SHA256\","
               "\"subject\":\"CN=Fuzz Root\"}", NULL);
    setup_call("POST", "/api/v1/partitions/fz/cas",
               "{\"id\":\"sub\",\"type\":\"subord\",\"parentId\":\"root\",\"signingKeyDetails\":\"RSA-2048+PKCS15-SHA256\","
               "\"subject\":\"CN=Fuzz Issuing\",\"enableCrl\":true,\"enableOcsp\":true,\"profiles\":[\"privatessl-tls-server\","
               "\"scep-tls-client\",\"est-tls-client\",\"cmp-tls-client\",\"mdmws-digital-signature\"]}", NULL);
    setup_call("POST", "/api/v1/partitions/fz/protocols",
               "{\"id\":\"acme\",\"type\":\"acme\",\"caId\":\"sub\",\"profileId\":\"privatessl-tls-server\","
               "\"eabRequired\":false}", NULL);
    setup_call("POST", "/api/v1/partitions/fz/protocols",
               "{\"id\":\"scep\",\"type\":\"scep\",\"caId\":\"sub\",\"profileId\":\"scep-tls-client\"}", NULL);
    setup_call("POST", "/api/v1/partitions/fz/protocols",
               "{\"id\":\"est\",\"type\":\"est\",\"caId\":\"sub\",\"profileId\":\"est-tls-client\"}", NULL);
    setup_call("POST", "/api/v1/partitions/fz/protocols",
               "{\"id\":\"cmp\",\"type\":\"cmp\",\"caId\":\"sub\",\"profileId\":\"cmp-tls-client\"}", NULL);
    setup_call("POST", "/api/v1/partitions/fz/protocols",
               "{\"id\":\"mdm\",\"type\":\"mdmws\",\"caId\":\"sub\",\"profileId\":\"mdmws-digital-signature\"}", NULL);
    credential("scep", "fuzz", g_secrets.scep_challenge, sizeof g_secrets.scep_challenge);
    credential("est", "fuzz", g_secrets.est_password, sizeof g_secrets.est_password);
    credential("cmp", "fuzz", g_secrets.cmp_secret, sizeof g_secrets.cmp_secret);
    setup_call("POST", "/api/v1/partitions/fz/protocols/mdm/digital-ids",
               "{\"name\":\"dev\",\"rdnFormat\":\"CN=<igusername>\",\"parentDn\":\"O=Fuzz\"}", NULL);
    /* the RA certificate exists before fuzzing starts */
    static const char *const q[][2] = {{"operation", "GetCACert"}};
    inproc_call("GET", "/scep/fz/scep/pkiclient.exe", NULL, "", NULL, 0, q, 1, NULL, NULL, NULL);
}
