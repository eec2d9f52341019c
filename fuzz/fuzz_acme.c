/* libFuzzer: the ACME server (RFC 8555) in-process, behind correctly signed
 * JWS, so the fuzzer works on what comes after the signature check: the
 * payloads. At start the harness reads the directory, creates an account
 * (ES256 key) and an order for fuzz.example — a self-test that must
 * succeed. Each input then picks a resource with its first byte (newAccount,
 * newOrder, finalize, the account, the authorization, a challenge,
 * revokeCert, keyChange, the orders list, the order) and a header variant
 * with its second (right nonce and url, a stale nonce, a wrong url, jwk
 * where kid belongs); the rest is the payload, signed with the account key.
 * After a request that may have changed the account, its orders or its
 * key (or made it unusable) the harness starts over with a new key, account
 * and order, so later inputs are not all answered "unauthorized".
 * Validation runs (one worker) but can reach nothing: no resolver answers.
 * A 5xx other than 503 aborts, and so does an error that is not an RFC 7807
 * problem document with an ACME error type. */
#include "inproc.h"

#include "acme/jws.h"
#include "acme/validate.h"
#include "daemon/context.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { R_NEW_ACCOUNT, R_NEW_ORDER, R_FINALIZE, R_ACCOUNT, R_AUTHZ, R_CHALLENGE, R_REVOKE, R_KEY_CHANGE, R_ORDERS,
       R_ORDER, R_COUNT };

static EVP_PKEY *g_key;
static char *g_url[R_COUNT];  /* absolute URLs */
static char g_nonce[128];
static char g_stale[128];     /* a nonce already used */

/* The path of an absolute URL of this server ("https://host/acme/..."). */
static const char *path_of(const char *url)
{
    const char *p = url ? strstr(url, "/acme/") : NULL;
    if (!p)
        abort();
    return p;
}

static void take_nonce(void)
{
    const char *n = inproc_last_header("Replay-Nonce");
    if (n && strlen(n) < sizeof g_nonce)
        snprintf(g_nonce, sizeof g_nonce, "%s", n);
}

static void fresh_nonce(void)
{
    if (g_nonce[0])
        return;
    if (inproc_call("HEAD", "/acme/fz/acme/new-nonce", NULL, "", NULL, 0, NULL, 0, NULL, NULL, NULL) != 200)
        abort();
    take_nonce();
}

/* One signed POST. variant: 0 right, 1 stale nonce, 2 wrong url, 3 jwk
 * instead of kid (or kid instead of jwk). Returns the status; *out gets
 * the JSON body when asked. */
static int post(unsigned r, unsigned variant, const char *payload, json_t **out)
{
    fresh_nonce();
    bool jwk = r == R_NEW_ACCOUNT || r == R_REVOKE;
    if (variant == 3)
        jwk = !jwk;
    json_t *hdr = json_pack("{s:s,s:s}", "nonce", variant == 1 && g_stale[0] ? g_stale : g_nonce, "url",
                            variant == 2 ? g_url[R_NEW_ORDER] : g_url[r]);
    if (!hdr)
        abort();
    if (jwk)
        json_object_set_new(hdr, "jwk", jwk_from_pkey(g_key));
    else
        json_object_set_new(hdr, "kid", json_string(g_url[R_ACCOUNT]));
    char *body = jws_sign(g_key, hdr, payload);
    json_decref(hdr);
    if (!body)
        abort();
    snprintf(g_stale, sizeof g_stale, "%s", g_nonce);
    g_nonce[0] = 0;
    unsigned char *raw = NULL;
    size_t n = 0;
    int st = inproc_call("POST", path_of(g_url[r]), "application/jose+json", "", body, strlen(body), NULL, 0, NULL,
                         &raw, &n);
    take_nonce();
    inproc_check(st, g_url[r]);
    json_error_t je;
    json_t *j = raw ? json_loadb((const char *)raw, n, 0, &je) : NULL;
    if (st >= 400) {
        const char *type = json_string_value(json_object_get(j, "type"));
        if (!type || strncmp(type, "urn:ietf:params:acme:error:", 27) != 0) {
            fprintf(stderr, "fuzz_acme: a %d from %s that is not an ACME problem document\n", st, g_url[r]);
            abort();
        }
    }
    if (out)
        *out = j;
    else
        json_decref(j);
    free(raw);
    free(body);
    return st;
}

static char *dup_or_die(const char *s)
{
    char *d = s ? strdup(s) : NULL;
    if (!d)
        abort();
    return d;
}

/* A new key, account, order, authorization and challenge (the URLs in
 * g_url); aborts when that fails — the harness must work. */
static void setup_account(void)
{
    json_t *acct = NULL, *order = NULL, *authz = NULL;
    EVP_PKEY_free(g_key);
    g_key = inproc_ec_key();
    for (unsigned i = R_FINALIZE; i < R_COUNT; i++)
        if (i != R_REVOKE && i != R_KEY_CHANGE) {
            free(g_url[i]);
            g_url[i] = NULL;
        }
    if (post(R_NEW_ACCOUNT, 0, "{\"termsOfServiceAgreed\":true}", &acct) != 201)
        abort();
    g_url[R_ACCOUNT] = dup_or_die(inproc_last_header("Location"));
    g_url[R_ORDERS] = dup_or_die(json_string_value(json_object_get(acct, "orders")));
    if (post(R_NEW_ORDER, 0, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"fuzz.example\"}]}", &order) != 201)
        abort();
    g_url[R_ORDER] = dup_or_die(inproc_last_header("Location"));
    g_url[R_FINALIZE] = dup_or_die(json_string_value(json_object_get(order, "finalize")));
    g_url[R_AUTHZ] = dup_or_die(json_string_value(json_array_get(json_object_get(order, "authorizations"), 0)));
    if (post(R_AUTHZ, 0, "", &authz) != 200)
        abort();
    g_url[R_CHALLENGE] = dup_or_die(json_string_value(
        json_object_get(json_array_get(json_object_get(authz, "challenges"), 0), "url")));
    json_decref(acct);
    json_decref(order);
    json_decref(authz);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    inproc_init();
    struct app *app = inproc_app();
    struct validate_cfg vc = {1, 1, "127.0.0.1:9", 200, 1};
    if (!(app->api.acme_validator = validator_new(&vc)))
        abort();
    json_t *dir = NULL;
    if (inproc_call("GET", "/acme/fz/acme/directory", NULL, "", NULL, 0, NULL, 0, &dir, NULL, NULL) != 200 || !dir)
        abort();
    g_url[R_NEW_ACCOUNT] = dup_or_die(json_string_value(json_object_get(dir, "newAccount")));
    g_url[R_NEW_ORDER] = dup_or_die(json_string_value(json_object_get(dir, "newOrder")));
    g_url[R_REVOKE] = dup_or_die(json_string_value(json_object_get(dir, "revokeCert")));
    g_url[R_KEY_CHANGE] = dup_or_die(json_string_value(json_object_get(dir, "keyChange")));
    json_decref(dir);
    setup_account(); /* also the self-test */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 32768)
        return 0;
    unsigned r = data[0] % R_COUNT, variant = data[1] % 8;
    if (variant > 3)
        variant = 0; /* mostly well-formed headers */
    char *payload = malloc(size - 1);
    if (!payload)
        abort();
    memcpy(payload, data + 2, size - 2);
    payload[size - 2] = 0; /* a NUL in the input ends the payload */
    int st = post(r, variant, payload, NULL);
    free(payload);
    /* changed what later inputs rely on: start over */
    if (st == 401 || st == 403 ||
        (st < 300 && (r == R_ACCOUNT || r == R_AUTHZ || r == R_KEY_CHANGE || r == R_FINALIZE ||
                      r == R_CHALLENGE)))
        setup_account();
    return 0;
}
