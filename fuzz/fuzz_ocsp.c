/* libFuzzer: the OCSP responder (RFC 6960) in-process, behind the same
 * router as the daemon. The first input byte picks the form:
 *   0  the rest is an OCSPRequest POSTed as application/ocsp-request;
 *   1  the rest, base64-encoded, is the path of a GET request (RFC 6960 A.1);
 *   2  the rest is the GET path suffix itself (percent-escapes, slashes);
 *   3  a well-formed request built from the input: hash algorithm, one to
 *      four CertIDs (the good or the revoked certificate of the CA, or a
 *      serial from the input; right or wrong issuer hashes), an optional
 *      nonce of the input's length — for CertIDs of this CA and a nonce of
 *      1-32 bytes the answer must be a successful OCSPResponse whose
 *      signature verifies with the CA chain.
 * A 5xx other than 503 aborts; so does a 200 that is not an OCSPResponse. */
#include "inproc.h"

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ASN1_INTEGER *g_good, *g_revoked;

static ASN1_INTEGER *issue_one(const char *cn)
{
    EVP_PKEY *k = inproc_ec_key();
    char *csr = inproc_csr_pem(k, cn, NULL);
    if (!csr)
        abort();
    json_t *req = json_pack("{s:s,s:s,s:b}", "profileId", "privatessl-tls-server", "csr", csr, "useSubjectFromCsr", 1);
    char *body = json_dumps(req, JSON_COMPACT);
    json_t *out = NULL;
    BIGNUM *bn = NULL;
    if (!body || inproc_call("POST", "/api/v1/partitions/fz/cas/sub/certificates", "application/json", NULL, body,
                             strlen(body), NULL, 0, &out, NULL, NULL) != 201 ||
        !BN_hex2bn(&bn, json_string_value(json_object_get(out, "serialNumber"))))
        abort();
    ASN1_INTEGER *sn = BN_to_ASN1_INTEGER(bn, NULL);
    if (!sn)
        abort();
    BN_free(bn);
    json_decref(out);
    json_decref(req);
    free(body);
    free(csr);
    EVP_PKEY_free(k);
    return sn;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    inproc_init();
    g_good = issue_one("ocsp-good.example");
    g_revoked = issue_one("ocsp-revoked.example");
    BIGNUM *bn = ASN1_INTEGER_to_BN(g_revoked, NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL, path[160];
    if (!hex)
        abort();
    snprintf(path, sizeof path, "/api/v1/partitions/fz/cas/sub/certificates/%s/revoke", hex);
    static const char body[] = "{\"reason\":\"keyCompromise\"}";
    if (inproc_call("POST", path, "application/json", NULL, body, strlen(body), NULL, 0, NULL, NULL, NULL) >= 300)
        abort();
    OPENSSL_free(hex);
    BN_free(bn);
    return 0;
}

/* A 200 must carry an OCSPResponse; a successful one built by the harness
 * must verify against the CA chain. */
static void check_answer(int st, const unsigned char *raw, size_t n, bool must_succeed)
{
    inproc_check(st, "/ocsp/fz/sub");
    if (st != 200)
        return;
    const unsigned char *p = raw;
    OCSP_RESPONSE *r = raw ? d2i_OCSP_RESPONSE(NULL, &p, (long)n) : NULL;
    if (!r) {
        fprintf(stderr, "fuzz_ocsp: a 200 without an OCSPResponse\n");
        abort();
    }
    if (must_succeed) {
        OCSP_BASICRESP *bs = NULL;
        X509_STORE *st_ = X509_STORE_new();
        STACK_OF(X509) *chain = sk_X509_new_null();
        if (OCSP_response_status(r) != OCSP_RESPONSE_STATUS_SUCCESSFUL || !(bs = OCSP_response_get1_basic(r)) ||
            !st_ || !chain || X509_STORE_add_cert(st_, inproc_ca_cert("root")) != 1 ||
            !sk_X509_push(chain, inproc_ca_cert("sub")) || OCSP_basic_verify(bs, chain, st_, 0) != 1) {
            fprintf(stderr, "fuzz_ocsp: a well-formed request did not get a verifying successful response "
                    "(status %d)\n", OCSP_response_status(r));
            ERR_print_errors_fp(stderr);
            abort();
        }
        OCSP_BASICRESP_free(bs);
        X509_STORE_free(st_);
        sk_X509_free(chain);
    }
    OCSP_RESPONSE_free(r);
}

static int structured(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const char *const mds[] = {"SHA1", "SHA256", "SHA384", "SHA512"};
    EVP_MD *md = EVP_MD_fetch(NULL, mds[data[0] & 3], NULL);
    unsigned nids = 1 + ((data[0] >> 2) & 3), flags = data[1];
    data += 2;
    size -= 2;
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    X509 *ca = inproc_ca_cert("sub"), *root = inproc_ca_cert("root");
    unsigned char *der = NULL, *raw = NULL;
    size_t rawlen = 0;
    int dlen = 0, st;
    bool foreign = false;
    if (!md || !req)
        abort();
    for (unsigned i = 0; i < nids; i++) {
        unsigned sel = (flags >> (2 * i)) & 3;
        ASN1_INTEGER *own = NULL;
        const ASN1_INTEGER *sn = sel == 0 ? g_good : sel == 1 ? g_revoked : NULL;
        if (!sn) {
            /* a serial from the input: up to 24 bytes */
            size_t take = size < 24 ? size : 24;
            BIGNUM *bn = BN_bin2bn(data, (int)take, NULL);
            own = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
            BN_free(bn);
            if (!own)
                abort();
            sn = own;
        }
        /* sel 3: the root as issuer (a CertID this responder does not serve) */
        X509 *issuer = sel == 3 ? root : ca;
        foreign |= sel == 3;
        OCSP_CERTID *id = OCSP_cert_id_new(md, X509_get_subject_name(issuer), X509_get0_pubkey_bitstr(issuer), sn);
        ASN1_INTEGER_free(own);
        if (!id || !OCSP_request_add0_id(req, id))
            abort();
    }
    if (flags & 0x80) {
        /* a nonce of the input's length (0 = empty, which RFC 8954 forbids) */
        size_t nl = size < 128 ? size : 128;
        if (OCSP_request_add1_nonce(req, nl ? (unsigned char *)data : NULL, nl ? (int)nl : -1) != 1)
            abort();
    }
    if ((dlen = i2d_OCSP_REQUEST(req, &der)) <= 0)
        abort();
    st = inproc_call("POST", "/ocsp/fz/sub", "application/ocsp-request", "", der, (size_t)dlen, NULL, 0, NULL, &raw,
                     &rawlen);
    /* Only CertIDs of this CA and no oversized or empty nonce: must succeed
     * (a foreign CertID is answered "unauthorized", RFC 6960 2.3). */
    bool wellformed = !foreign && (!(flags & 0x80) || (size >= 1 && size <= 32));
    check_answer(st, raw, rawlen, wellformed && st == 200);
    OPENSSL_free(der);
    free(raw);
    OCSP_REQUEST_free(req);
    EVP_MD_free(md);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 4;
    data++;
    size--;
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    int st;
    if (mode == 0) {
        st = inproc_call("POST", "/ocsp/fz/sub", "application/ocsp-request", "", data, size, NULL, 0, NULL, &raw,
                         &rawlen);
        check_answer(st, raw, rawlen, false);
    } else if (mode == 1 || mode == 2) {
        if (size > 4096)
            return 0;
        char *path = malloc(16 + 4 * size + 8);
        if (!path)
            abort();
        int off = snprintf(path, 16, "/ocsp/fz/sub/");
        if (mode == 1) {
            EVP_EncodeBlock((unsigned char *)path + off, data, (int)size);
        } else {
            memcpy(path + off, data, size);
            path[off + size] = 0;
            if (strlen(path) != off + size) {
                free(path);
                return 0;
            }
        }
        st = inproc_call("GET", path, NULL, "", NULL, 0, NULL, 0, NULL, &raw, &rawlen);
        check_answer(st, raw, rawlen, false);
        free(path);
    } else {
        return structured(data, size);
    }
    free(raw);
    return 0;
}
