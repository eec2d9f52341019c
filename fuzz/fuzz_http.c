/* libFuzzer: the whole request path in-process — router, path parameters,
 * every protocol parser (SCEP, EST, CMP, ACME, OCSP) and the admin API —
 * on a real store with a bootstrapped partition, CAs and one configuration
 * of each protocol. The input picks a target (first byte), a content type
 * (second byte) and is otherwise the body; one target takes the path from
 * the input. Any answer is fine except a 5xx caused by the input: that
 * aborts (the hardening rule "bad input is a 4xx, never a 5xx"). */
#include "inproc.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    inproc_init();
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
        st = inproc_call(methods[variant % 5], path, "application/json", NULL, NULL, 0, NULL, 0, NULL, NULL, NULL);
        where = path;
    } else {
        const struct target *t = &targets[sel % (sizeof targets / sizeof targets[0])];
        const char *ctype = (variant & 3) == 3 ? "text/plain" : t->ctype;
        const char *const q[][2] = {{t->qname, t->qvalue}};
        st = inproc_call(t->method, t->path, ctype, NULL, data, size, q, t->qname ? 1 : 0, NULL, NULL, NULL);
        where = t->path;
    }
    inproc_check(st, where);
    return 0;
}
