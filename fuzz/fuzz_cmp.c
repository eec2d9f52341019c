/* libFuzzer: the CMP server (RFC 4210 / RFC 9483 over RFC 6712 HTTP)
 * in-process, configuration "cmp" with the MAC credential "fuzz". The first
 * input byte picks the form:
 *   0  the rest is a PKIMessage POSTed as application/pkixcmp;
 *   1  a whole transaction run by OpenSSL's own CMP client (MAC-protected
 *      with the right secret, so the fuzzer gets past the protection check):
 *      byte 1 picks ir / p10cr / genm and whether implicit confirmation is
 *      asked for, the rest is the subject CN and a DNS subjectAltName; the
 *      client's messages travel through the same router as the daemon's;
 *   2  like 1, but each request the client sends is cut or has one byte
 *      changed (position and value from byte 2 onwards) before the server
 *      sees it.
 * A 5xx other than 503 aborts, and so does a 200 that is not a PKIMessage. */
#include "inproc.h"

#include <openssl/cmp.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CMP "/cmp/fz/cmp"

static EVP_PKEY *g_key;
static int transaction(const uint8_t *data, size_t size);

/* Set for form 2: how the next request is damaged. */
struct damage {
    bool on;
    size_t pos;
    unsigned char val;
    bool cut;
};
static struct damage g_damage;

static int cmp_quiet(const char *func, const char *file, int line, OSSL_CMP_severity level, const char *msg)
{
    (void)func;
    (void)file;
    (void)line;
    (void)level;
    (void)msg;
    return 1;
}

/* One HTTP round trip; a 200 must carry a PKIMessage. Returns the answer
 * (NULL for any other status). */
static OSSL_CMP_MSG *round_trip(const unsigned char *der, size_t len)
{
    unsigned char *raw = NULL;
    size_t n = 0;
    OSSL_CMP_MSG *rep = NULL;
    int st = inproc_call("POST", CMP, "application/pkixcmp", "", der, len, NULL, 0, NULL, &raw, &n);
    inproc_check(st, CMP);
    if (st == 200) {
        const unsigned char *p = raw;
        if (!raw || !(rep = d2i_OSSL_CMP_MSG(NULL, &p, (long)n))) {
            fprintf(stderr, "fuzz_cmp: a 200 answer that is not a PKIMessage\n");
            abort();
        }
    }
    free(raw);
    return rep;
}

/* The client's transfer: DER over the in-process router, damaged on demand. */
static OSSL_CMP_MSG *transfer(OSSL_CMP_CTX *ctx, const OSSL_CMP_MSG *req)
{
    (void)ctx;
    unsigned char *der = NULL;
    int n = i2d_OSSL_CMP_MSG(req, &der);
    OSSL_CMP_MSG *rep = NULL;
    if (n <= 0)
        return NULL;
    size_t len = (size_t)n;
    if (g_damage.on) {
        size_t pos = g_damage.pos % len;
        if (g_damage.cut)
            len = pos;
        else
            der[pos] = g_damage.val;
    }
    inproc_dump("FUZZ_CMP_DUMP", 0, der, len); /* seeds for form 0 */
    rep = round_trip(der, len);
    OPENSSL_free(der);
    return rep;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    inproc_init();
    g_key = inproc_ec_key();
    /* the harness itself works: OpenSSL's client completes an ir (with
     * and without implicit confirmation), a p10cr and a genm */
    static const uint8_t ir[] = "\x00self-test.example|self-test.example", irc[] = "\x04self-test.example",
                         p10[] = "\x01p10.example", genm[] = "\x02";
    if (transaction(ir, sizeof ir - 1) != 1 || transaction(irc, sizeof irc - 1) != 1 ||
        transaction(p10, sizeof p10 - 1) != 1 || transaction(genm, sizeof genm - 1) != 1) {
        fprintf(stderr, "fuzz_cmp: self-test failed\n");
        abort();
    }
    return 0;
}

/* Returns 1 when the transaction produced a certificate (or genp). */
static int transaction(const uint8_t *data, size_t size)
{
    int got = 0;
    if (size < 1)
        return 0;
    unsigned cmd = data[0] % 3, implicit = (data[0] >> 2) & 1;
    data++;
    size--;
    char cn[65], dns[65];
    size_t n = size < 64 ? size : 64, dn = 0;
    memcpy(cn, data, n);
    cn[n] = 0;
    if (strlen(cn) != n)
        return 0;
    char *dot = strchr(cn, '|');
    if (dot) {
        /* "CN|dns" */
        *dot = 0;
        snprintf(dns, sizeof dns, "%s", dot + 1);
        dn = strlen(dns);
    }
    OSSL_CMP_CTX *ctx = OSSL_CMP_CTX_new(NULL, NULL);
    X509_NAME *subj = X509_NAME_new();
    GENERAL_NAME *gn = NULL;
    X509_REQ *p10 = NULL;
    if (!ctx || !subj || OSSL_CMP_CTX_set_log_cb(ctx, cmp_quiet) != 1 ||
        OSSL_CMP_CTX_set_transfer_cb(ctx, transfer) != 1 ||
        OSSL_CMP_CTX_set1_referenceValue(ctx, (const unsigned char *)"fuzz", 4) != 1 ||
        OSSL_CMP_CTX_set1_secretValue(ctx, (const unsigned char *)inproc_secrets()->cmp_secret,
                                      (int)strlen(inproc_secrets()->cmp_secret)) != 1 ||
        OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_IMPLICIT_CONFIRM, (int)implicit) != 1 ||
        OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_TOTAL_TIMEOUT, 0) != 1)
        abort();
    if (cn[0] && X509_NAME_add_entry_by_txt(subj, "CN", V_ASN1_UTF8STRING, (const unsigned char *)cn, -1, -1, 0) != 1)
        goto out;
    if (dn && (!(gn = GENERAL_NAME_new()) ||
               !(gn->d.dNSName = ASN1_IA5STRING_new()) ||
               ASN1_STRING_set(gn->d.dNSName, dns, (int)dn) != 1))
        goto out;
    if (gn)
        gn->type = GEN_DNS;
    if (cmd == 0) {
        if (EVP_PKEY_up_ref(g_key) != 1 || OSSL_CMP_CTX_set0_newPkey(ctx, 1, g_key) != 1)
            abort();
        /* a name OpenSSL cannot re-encode (invalid UTF-8) is not sent */
        if (OSSL_CMP_CTX_set1_subjectName(ctx, subj) != 1 || (gn && OSSL_CMP_CTX_push1_subjectAltName(ctx, gn) != 1))
            goto out;
        X509 *c = OSSL_CMP_exec_certreq(ctx, OSSL_CMP_IR, NULL);
        got = c != NULL;
        X509_free(c);
    } else if (cmd == 1) {
        if (!(p10 = X509_REQ_new()) || X509_REQ_set_subject_name(p10, subj) != 1 ||
            X509_REQ_set_pubkey(p10, g_key) != 1 || X509_REQ_sign(p10, g_key, EVP_sha256()) <= 0)
            goto out;
        if (OSSL_CMP_CTX_set1_p10CSR(ctx, p10) != 1)
            goto out;
        X509 *c = OSSL_CMP_exec_certreq(ctx, OSSL_CMP_P10CR, NULL);
        got = c != NULL;
        X509_free(c);
    } else {
        STACK_OF(OSSL_CMP_ITAV) *itavs = OSSL_CMP_exec_GENM_ses(ctx);
        got = itavs != NULL;
        sk_OSSL_CMP_ITAV_pop_free(itavs, OSSL_CMP_ITAV_free);
    }
out:
    ERR_clear_error();
    GENERAL_NAME_free(gn);
    X509_REQ_free(p10);
    X509_NAME_free(subj);
    OSSL_CMP_CTX_free(ctx);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    unsigned mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        OSSL_CMP_MSG_free(round_trip(data, size));
        return 0;
    }
    memset(&g_damage, 0, sizeof g_damage);
    if (mode == 2) {
        if (size < 4)
            return 0;
        g_damage.on = true;
        g_damage.pos = (size_t)data[0] << 8 | data[1];
        g_damage.val = data[2];
        g_damage.cut = data[3] & 1;
        data += 4;
        size -= 4;
    }
    transaction(data, size);
    g_damage.on = false;
    return 0;
}
