/* inproc: a pkiaasd application inside a fuzzer process — a real store in a
 * temporary directory (removed at exit), a bootstrapped partition "fz", a
 * root and an issuing CA "sub" (CRL and OCSP on) and one configuration per
 * protocol, each with a credential. Requests go through the same router as
 * the daemon's HTTP server, without sockets. */
#ifndef PKIAAS_FUZZ_INPROC_H
#define PKIAAS_FUZZ_INPROC_H

#include <jansson.h>

struct app;
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>

/* Secrets of the credentials created at set-up: the SCEP challenge, the EST
 * user "fuzz" and the CMP reference "fuzz". */
struct inproc_secrets {
    char scep_challenge[128];
    char est_password[128];
    char cmp_secret[128];
};

/* Sets everything up once (aborts on failure: a broken harness must not
 * pass for a clean run). */
void inproc_init(void);
const struct inproc_secrets *inproc_secrets(void);
/* The application (for harnesses that start a component of their own). */
struct app *inproc_app(void);

/* One request (traced on stderr when PKIAAS_FUZZ_TRACE is set). `auth` NULL = the partition owner's API token; "" = none;
 * otherwise the Authorization header as given. `query` is "name=value"
 * pairs as an array of two-element rows, `nquery` of them. The body is
 * copied. Returns the status; *out (optional) receives the response body as
 * JSON or NULL; *raw and *rawlen (optional) a malloc'd copy of the body. */
int inproc_call(const char *method, const char *path, const char *ctype, const char *auth, const void *body,
                size_t len, const char *const (*query)[2], size_t nquery, json_t **out, unsigned char **raw,
                size_t *rawlen);

/* A CA certificate, "root" or "sub", fetched once through the API. */
X509 *inproc_ca_cert(const char *id);
/* A PKCS#10 request in PEM for `key` with subject CN=`cn` (a UTF8String of
 * those bytes) and, when given, a challengePassword attribute (malloc'd);
 * NULL when OpenSSL cannot encode such a request (e.g. invalid UTF-8). */
char *inproc_csr_pem(EVP_PKEY *key, const char *cn, const char *challenge);
/* A fresh EC P-256 key. */
EVP_PKEY *inproc_ec_key(void);

/* Seed making: when the environment variable `env` names a directory,
 * writes `prefix` followed by the message there (one file per call). */
void inproc_dump(const char *env, unsigned char prefix, const unsigned char *msg, size_t len);

/* A header of the last response (case-insensitive name), NULL if absent;
 * valid until the next call. */
const char *inproc_last_header(const char *name);

/* Aborts (a finding) when `status` is a 5xx other than 503: bad input must
 * be answered with a 4xx or the protocol's own error. */
void inproc_check(int status, const char *where);

#endif
