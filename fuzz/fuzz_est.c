/* libFuzzer: the EST server (RFC 7030) in-process, authenticated with the
 * HTTP Basic credential of an "est" configuration. The first input byte
 * picks the form:
 *   0  the rest is a PKCS#10 DER, sent base64-encoded to /simpleenroll;
 *   1  the rest is the /simpleenroll body as it is (base64 parser);
 *   2  the rest is a PKCS#10 DER, sent base64-encoded to /serverkeygen;
 *   3  a valid CSR whose subject CN is the rest (UTF-8 or not), enrolled;
 *   4  the rest is the Authorization header of an otherwise valid enrolment;
 *   5  the rest is the path after /.well-known/est/ (GET, then POST).
 * A 5xx other than 503 aborts; a 200 from /simpleenroll must be a base64
 * certs-only PKCS#7 holding one certificate. */
#include "inproc.h"

#include <openssl/pkcs7.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define EST "/.well-known/est/fz~est"

static char g_basic[400];
static EVP_PKEY *g_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    inproc_init();
    char up[300];
    unsigned char b64[420];
    int n = snprintf(up, sizeof up, "fuzz:%s", inproc_secrets()->est_password);
    if (n <= 0 || (size_t)n >= sizeof up || EVP_EncodeBlock(b64, (unsigned char *)up, n) <= 0)
        abort();
    snprintf(g_basic, sizeof g_basic, "Basic %s", b64);
    g_key = inproc_ec_key();
    return 0;
}

static char *b64_of(const uint8_t *p, size_t n)
{
    char *s = malloc(4 * (n / 3 + 1) + 1);
    if (!s)
        abort();
    EVP_EncodeBlock((unsigned char *)s, p, (int)n);
    return s;
}

/* A 200 enrolment answer is base64 of a certs-only SignedData. */
static void check_certs_only(const unsigned char *raw, size_t n)
{
    unsigned char *der = malloc(n + 1);
    BIO *b = BIO_new_mem_buf(raw, (int)n), *f = BIO_new(BIO_f_base64());
    PKCS7 *p7 = NULL;
    if (!der || !b || !f)
        abort();
    BIO_set_flags(f, 0);
    BIO_push(f, b);
    int dl = BIO_read(f, der, (int)n);
    const unsigned char *p = der;
    if (dl > 0)
        p7 = d2i_PKCS7(NULL, &p, dl);
    if (!p7 || !PKCS7_type_is_signed(p7) || !p7->d.sign || sk_X509_num(p7->d.sign->cert) != 1) {
        fprintf(stderr, "fuzz_est: a 200 enrolment without a certs-only PKCS#7 of one certificate\n");
        abort();
    }
    PKCS7_free(p7);
    BIO_free_all(f);
    free(der);
}

static void enroll(const char *path, const char *auth, const char *body, size_t len)
{
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    int st = inproc_call("POST", path, "application/pkcs10", auth, body, len, NULL, 0, NULL, &raw, &rawlen);
    inproc_check(st, path);
    if (st == 200 && strstr(path, "simpleenroll"))
        check_certs_only(raw, rawlen);
    free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16384)
        return 0;
    unsigned mode = data[0] % 6;
    data++;
    size--;
    if (mode == 0 || mode == 2) {
        char *b = b64_of(data, size);
        enroll(mode == 0 ? EST "/simpleenroll" : EST "/serverkeygen", g_basic, b, strlen(b));
        free(b);
    } else if (mode == 1) {
        enroll(EST "/simpleenroll", g_basic, (const char *)data, size);
    } else if (mode == 3 || mode == 4) {
        char cn[65], *auth = NULL;
        size_t n = size < 64 ? size : 64;
        memcpy(cn, data, n);
        cn[n] = 0;
        if (mode == 3 && (n == 0 || strlen(cn) != n))
            return 0;
        char *pem = inproc_csr_pem(g_key, mode == 3 ? cn : "est.fuzz.example", NULL);
        if (!pem)
            return 0;
        if (mode == 4) {
            if (!(auth = malloc(size + 1)))
                abort();
            memcpy(auth, data, size);
            auth[size] = 0;
            if (strlen(auth) != size) {
                free(auth);
                free(pem);
                return 0;
            }
        }
        /* PEM armour off: the body is the base64 lines */
        char *s = strstr(pem, "-----\n"), *e = strstr(pem, "\n-----END");
        if (!s || !e)
            abort();
        s += 6;
        enroll(EST "/simpleenroll", mode == 4 ? auth : g_basic, s, (size_t)(e - s));
        free(auth);
        free(pem);
    } else {
        char *path = malloc(size + 32);
        if (!path)
            abort();
        int off = snprintf(path, 32, "/.well-known/est/");
        memcpy(path + off, data, size);
        path[off + size] = 0;
        if (strlen(path) == off + size) {
            inproc_check(inproc_call("GET", path, NULL, g_basic, NULL, 0, NULL, 0, NULL, NULL, NULL), path);
            inproc_check(inproc_call("POST", path, "application/pkcs10", g_basic, "MAA=", 4, NULL, 0, NULL, NULL, NULL),
                         path);
        }
        free(path);
    }
    return 0;
}
