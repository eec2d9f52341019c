/* issue_inproc: issues N certificates through the admin API's router,
 * in-process (fuzz/inproc.c: real store in a temporary directory, signer
 * process, same handler as the daemon; no sockets, no HTTP parsing).
 * Meant for instruction counts, which do not depend on machine load:
 *
 *   cmake -S . -B build -DPKIAAS_BENCH_INPROC=ON && cmake --build build
 *   valgrind --tool=callgrind --toggle-collect=bench_issue_loop \
 *       build/issue_inproc ec 200
 *
 * usage: issue_inproc ec|rsa [N]   (the issuing CA's key type; the CSR is
 * always the same P-256 request, as in bench/issue.sh) */
#include "inproc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void setup(const char *path, const char *json)
{
    int st = inproc_call("POST", path, "application/json", NULL, json, strlen(json), NULL, 0, NULL, NULL, NULL);
    if (st >= 300) {
        fprintf(stderr, "issue_inproc: setup %s -> %d\n", path, st);
        exit(1);
    }
}

static int issue_n(const char *path, const char *body, long n)
{
    for (long i = 0; i < n; i++) {
        int st = inproc_call("POST", path, "application/json", NULL, body, strlen(body), NULL, 0, NULL, NULL, NULL);
        if (st != 201) {
            fprintf(stderr, "issue_inproc: request %ld -> %d\n", i, st);
            return -1;
        }
    }
    return 0;
}

/* Separate (not inlined) so callgrind can collect only the measured loop. */
__attribute__((noinline)) int bench_issue_loop(const char *path, const char *body, long n);
__attribute__((noinline)) int bench_issue_loop(const char *path, const char *body, long n)
{
    return issue_n(path, body, n);
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "ec";
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 200;
    if ((strcmp(kind, "ec") != 0 && strcmp(kind, "rsa") != 0) || n <= 0) {
        fprintf(stderr, "usage: issue_inproc ec|rsa [N]\n");
        return 2;
    }
    inproc_init();
    setup("/api/v1/partitions/fz/cas", "{\"id\":\"broot\",\"type\":\"root\",\"signingKeyDetails\":\"ECDSAP256+SHA256\","
                                       "\"subject\":\"CN=Bench Root\"}");
    setup("/api/v1/partitions/fz/cas",
          "{\"id\":\"iss-ec\",\"type\":\"subord\",\"parentId\":\"broot\",\"signingKeyDetails\":\"ECDSAP256+SHA256\","
          "\"subject\":\"CN=Bench EC\",\"profiles\":[\"privatessl-tls-server\"]}");
    setup("/api/v1/partitions/fz/cas",
          "{\"id\":\"iss-rsa\",\"type\":\"subord\",\"parentId\":\"broot\",\"signingKeyDetails\":\"RSA-2048+PKCS15-SHA256\","
          "\"subject\":\"CN=Bench RSA\",\"profiles\":[\"privatessl-tls-server\"]}");
    EVP_PKEY *k = inproc_ec_key();
    char *csr = inproc_csr_pem(k, "bench.example.com", NULL);
    EVP_PKEY_free(k);
    json_t *j = csr ? json_pack("{s:s,s:s,s:[{s:s,s:s}]}", "profileId", "privatessl-tls-server", "csr", csr,
                                "subjectAltNames", "type", "dNSName", "value", "bench.example.com")
                    : NULL;
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    free(csr);
    if (!body)
        return 1;
    char path[96];
    snprintf(path, sizeof path, "/api/v1/partitions/fz/cas/%s/certificates", strcmp(kind, "ec") == 0 ? "iss-ec" : "iss-rsa");
    /* warm-up: CA caches, prepared statements */
    int rc = issue_n(path, body, 5);
    if (rc == 0)
        rc = bench_issue_loop(path, body, n);
    free(body);
    if (rc == 0)
        printf("issue_inproc: %ld certificates issued by %s\n", n, kind);
    return rc == 0 ? 0 : 1;
}
