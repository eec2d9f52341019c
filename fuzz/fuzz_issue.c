/* libFuzzer: the issuance request as the admin API takes it, in-process.
 * The input is the JSON body (subject, subjectAltNames, extensions as
 * {oid, critical, value}, validityPeriod, notBefore/notAfter, ...); when it
 * is an object without "csr" or "profileId" the harness adds a valid CSR
 * (P-256, or RSA-2048 when the first byte's top bit is set) and a profile
 * picked by the first byte, so the fuzzer works on the
 * fields beside the CSR: the extension allow-list, SAN and DN validation,
 * validity arithmetic and the lint before signing.
 * A 5xx other than 503 aborts (a lint refusal is a 500: the request made
 * the core build a certificate that does not match its profile); so does a
 * 201 whose certificate does not parse or is not signed by the CA. */
#include "inproc.h"

#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ISSUE "/api/v1/partitions/fz/cas/sub/certificates"

static char *g_csr, *g_csr_rsa;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    inproc_init();
    EVP_PKEY *k = inproc_ec_key();
    if (!(g_csr = inproc_csr_pem(k, "issue.fuzz.example", NULL)))
        abort();
    EVP_PKEY_free(k);
    if (!(k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)) ||
        !(g_csr_rsa = inproc_csr_pem(k, "issue.fuzz.example", NULL)))
        abort();
    EVP_PKEY_free(k);
    return 0;
}

static void check_issued(const json_t *out)
{
    const char *pem = json_string_value(json_object_get(out, "certificate"));
    BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    if (!x || X509_verify(x, X509_get0_pubkey(inproc_ca_cert("sub"))) != 1) {
        fprintf(stderr, "fuzz_issue: a 201 whose certificate does not parse or verify\n");
        abort();
    }
    X509_free(x);
    BIO_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    static const char *const profiles[] = {"privatessl-tls-server", "scep-tls-client", "est-tls-client",
                                           "cmp-tls-client", "mdmws-digital-signature"};
    const char *profile = profiles[data[0] % 5], *csr = data[0] & 0x80 ? g_csr_rsa : g_csr;
    data++;
    size--;
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, 0, &je), *out = NULL;
    char *text = NULL;
    int st;
    if (json_is_object(body)) {
        if (!json_object_get(body, "csr"))
            json_object_set_new(body, "csr", json_string(csr));
        if (!json_object_get(body, "profileId"))
            json_object_set_new(body, "profileId", json_string(profile));
        if (!(text = json_dumps(body, JSON_COMPACT)))
            abort();
        st = inproc_call("POST", ISSUE, "application/json", NULL, text, strlen(text), NULL, 0, &out, NULL, NULL);
    } else {
        st = inproc_call("POST", ISSUE, "application/json", NULL, data, size, NULL, 0, &out, NULL, NULL);
    }
    inproc_check(st, ISSUE);
    if (st == 201)
        check_issued(out);
    json_decref(out);
    json_decref(body);
    free(text);
    return 0;
}
