/* libFuzzer: the SCEP server (RFC 8894) in-process, configuration "scep"
 * with a static challenge. The first input byte picks the form:
 *   0  the rest is a PKIMessage POSTed to PKIOperation;
 *   1  the rest, base64-encoded, is the `message` of a GET PKIOperation;
 *   2  a PKIMessage built from the input and correctly signed (by a
 *      self-signed RSA client certificate) and encrypted to the RA
 *      certificate, so the fuzzer reaches what comes after the signature
 *      check: byte 1 picks the messageType (PKCSReq, RenewalReq, CertPoll,
 *      GetCert, GetCRL, or an unknown one), byte 2 the content cipher
 *      (AES-128/256-CBC, DES3, AES-256-GCM) and the inner content — a CSR
 *      for the CN that is the rest with the right, a wrong or no challenge,
 *      or the rest as it is (raw PKCS#10, IssuerAndSubject,
 *      IssuerAndSerialNumber).
 * A 5xx other than 503 aborts; so does a 200 PKIOperation answer that is not
 * a CMS SignedData (every failure must be a CertRep). */
#include "inproc.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SCEP "/scep/fz/scep/pkiclient.exe"
#define OID_MESSAGE_TYPE "2.16.840.1.113733.1.9.2"
#define OID_PKI_STATUS "2.16.840.1.113733.1.9.3"
#define OID_SENDER_NONCE "2.16.840.1.113733.1.9.5"
#define OID_TRANSACTION_ID "2.16.840.1.113733.1.9.7"

static X509 *g_ra, *g_client;
static char g_last_status[8]; /* pkiStatus of the last CertRep */
static EVP_PKEY *g_rsa;

/* The RA certificate: the one certificate of GetCACert that is not a CA. */
static X509 *fetch_ra(void)
{
    static const char *const q[][2] = {{"operation", "GetCACert"}};
    unsigned char *raw = NULL;
    size_t n = 0;
    X509 *ra = NULL;
    if (inproc_call("GET", SCEP, NULL, "", NULL, 0, q, 1, NULL, &raw, &n) != 200)
        abort();
    const unsigned char *p = raw;
    PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)n);
    STACK_OF(X509) *certs = p7 && PKCS7_type_is_signed(p7) && p7->d.sign ? p7->d.sign->cert : NULL;
    for (int i = 0; i < sk_X509_num(certs); i++)
        if (X509_check_ca(sk_X509_value(certs, i)) == 0 && X509_up_ref(sk_X509_value(certs, i)) == 1) {
            ra = sk_X509_value(certs, i);
            break;
        }
    PKCS7_free(p7);
    free(raw);
    if (!ra)
        abort();
    return ra;
}

/* The client's self-signed signer certificate (as SCEP clients make one). */
static X509 *self_signed(EVP_PKEY *k)
{
    X509 *x = X509_new();
    X509_NAME *nm = X509_NAME_new();
    if (!x || !nm || X509_set_version(x, 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"scep fuzz client", -1, -1, 0) != 1 ||
        X509_set_subject_name(x, nm) != 1 || X509_set_issuer_name(x, nm) != 1 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) || !X509_gmtime_adj(X509_getm_notAfter(x), 86400) ||
        X509_set_pubkey(x, k) != 1 || X509_sign(x, k, EVP_sha256()) <= 0)
        abort();
    X509_NAME_free(nm);
    return x;
}

static int structured(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    inproc_init();
    g_ra = fetch_ra();
    if (!(g_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)))
        abort();
    g_client = self_signed(g_rsa);
    /* the harness itself works: a good PKCSReq gets SUCCESS, a wrong
     * challenge FAILURE */
    static const uint8_t good[] = "\x00\x01self-test.example", bad[] = "\x00\x05self-test.example";
    if (structured(good, sizeof good - 1) != 0 || strcmp(g_last_status, "0") != 0 ||
        structured(bad, sizeof bad - 1) != 0 || strcmp(g_last_status, "2") != 0) {
        fprintf(stderr, "fuzz_scep: self-test failed (pkiStatus '%s')\n", g_last_status);
        abort();
    }
    return 0;
}

/* The pkiStatus attribute of a CertRep ("" when absent). */
static void pki_status(CMS_ContentInfo *cms)
{
    g_last_status[0] = 0;
    STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
    CMS_SignerInfo *si = sk_CMS_SignerInfo_num(sis) == 1 ? sk_CMS_SignerInfo_value(sis, 0) : NULL;
    ASN1_OBJECT *o = OBJ_txt2obj(OID_PKI_STATUS, 1);
    int i = si && o ? CMS_signed_get_attr_by_OBJ(si, o, -1) : -1;
    X509_ATTRIBUTE *a = i >= 0 ? CMS_signed_get_attr(si, i) : NULL;
    ASN1_TYPE *t = a ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
    if (t && t->type == V_ASN1_PRINTABLESTRING && t->value.printablestring->length < (int)sizeof g_last_status) {
        memcpy(g_last_status, t->value.printablestring->data, (size_t)t->value.printablestring->length);
        g_last_status[t->value.printablestring->length] = 0;
    }
    ASN1_OBJECT_free(o);
}

/* Any 200 answer to a PKIOperation is a CertRep: a CMS SignedData. */
static void check_answer(int st, const unsigned char *raw, size_t n)
{
    inproc_check(st, SCEP);
    if (st != 200)
        return;
    BIO *b = BIO_new_mem_buf(raw, (int)n);
    CMS_ContentInfo *cms = b ? d2i_CMS_bio(b, NULL) : NULL;
    if (!cms || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        fprintf(stderr, "fuzz_scep: a 200 PKIOperation answer that is not a CertRep\n");
        abort();
    }
    pki_status(cms);
    CMS_ContentInfo_free(cms);
    BIO_free(b);
}

static void post(const unsigned char *msg, size_t len)
{
    static const char *const q[][2] = {{"operation", "PKIOperation"}};
    inproc_dump("FUZZ_SCEP_DUMP", 0, msg, len); /* seeds for form 0 */
    unsigned char *raw = NULL;
    size_t n = 0;
    int st = inproc_call("POST", SCEP, "application/x-pki-message", "", msg, len, q, 1, NULL, &raw, &n);
    check_answer(st, raw, n);
    free(raw);
}

/* DER of `cms` (malloc'd), or NULL. */
static unsigned char *cms_der(CMS_ContentInfo *cms, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    unsigned char *out = NULL;
    char *p = NULL;
    if (b && i2d_CMS_bio(b, cms) == 1) {
        long n = BIO_get_mem_data(b, &p);
        if (n > 0 && (out = malloc((size_t)n))) {
            memcpy(out, p, (size_t)n);
            *len = (size_t)n;
        }
    }
    BIO_free(b);
    return out;
}

/* The inner content of a structured message (malloc'd), or NULL to skip. */
static unsigned char *inner_of(unsigned kind, const uint8_t *data, size_t size, size_t *len)
{
    if (kind == 3) {
        unsigned char *c = malloc(size ? size : 1);
        if (!c)
            abort();
        memcpy(c, data, size);
        *len = size;
        return c;
    }
    char cn[65];
    size_t n = size < 64 ? size : 64;
    memcpy(cn, data, n);
    cn[n] = 0;
    if (n == 0 || strlen(cn) != n)
        return NULL;
    const char *challenge = kind == 0 ? inproc_secrets()->scep_challenge : kind == 1 ? "wrong challenge" : NULL;
    char *pem = inproc_csr_pem(g_rsa, cn, challenge);
    if (!pem)
        return NULL;
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509_REQ *r = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
    unsigned char *der = NULL;
    int dl = r ? i2d_X509_REQ(r, &der) : -1;
    X509_REQ_free(r);
    BIO_free(b);
    free(pem);
    if (dl <= 0)
        abort();
    unsigned char *c = malloc((size_t)dl);
    if (!c)
        abort();
    memcpy(c, der, (size_t)dl);
    OPENSSL_free(der);
    *len = (size_t)dl;
    return c;
}

static int structured(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const char *const types[] = {"19", "17", "20", "21", "22", "3", "99", "019"};
    const char *mt = types[data[0] % 8];
    unsigned csel = data[1] & 3, kind = (data[1] >> 2) & 3;
    data += 2;
    size -= 2;
    const EVP_CIPHER *ciphers[] = {EVP_aes_128_cbc(), EVP_aes_256_cbc(), EVP_des_ede3_cbc(), EVP_aes_256_gcm()};
    size_t ilen = 0, elen = 0, mlen = 0;
    unsigned char *inner = inner_of(kind, data, size, &ilen), *env = NULL, *msg = NULL;
    if (!inner)
        return 0;
    STACK_OF(X509) *rcpt = sk_X509_new_null();
    BIO *ib = BIO_new_mem_buf(inner, (int)ilen), *eb = NULL;
    CMS_ContentInfo *e = NULL, *s = NULL;
    if (!rcpt || !ib || !sk_X509_push(rcpt, g_ra) ||
        !(e = CMS_encrypt(rcpt, ib, ciphers[csel], CMS_BINARY)) || !(env = cms_der(e, &elen)) ||
        !(eb = BIO_new_mem_buf(env, (int)elen)) ||
        !(s = CMS_sign(NULL, NULL, NULL, NULL, CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP)))
        abort();
    CMS_SignerInfo *si = CMS_add1_signer(s, g_client, g_rsa, EVP_sha256(), CMS_BINARY | CMS_NOSMIMECAP);
    unsigned char nonce[16], h[32];
    char txid[2 * 16 + 1];
    EVP_Digest(data, size, h, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 16; i++)
        snprintf(txid + 2 * i, 3, "%02X", h[i]);
    memcpy(nonce, h + 16, 16);
    if (!si ||
        CMS_signed_add1_attr_by_txt(si, OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING, mt, (int)strlen(mt)) != 1 ||
        CMS_signed_add1_attr_by_txt(si, OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING, txid, (int)strlen(txid)) != 1 ||
        CMS_signed_add1_attr_by_txt(si, OID_SENDER_NONCE, V_ASN1_OCTET_STRING, nonce, (int)sizeof nonce) != 1 ||
        CMS_final(s, eb, NULL, CMS_BINARY) != 1 || !(msg = cms_der(s, &mlen)))
        abort();
    post(msg, mlen);
    free(msg);
    free(env);
    free(inner);
    CMS_ContentInfo_free(s);
    CMS_ContentInfo_free(e);
    BIO_free(eb);
    BIO_free(ib);
    sk_X509_free(rcpt);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 32768)
        return 0;
    unsigned mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        post(data, size);
    } else if (mode == 1) {
        char *b64 = malloc(4 * (size / 3 + 1) + 1);
        unsigned char *raw = NULL;
        size_t n = 0;
        if (!b64)
            abort();
        EVP_EncodeBlock((unsigned char *)b64, data, (int)size);
        const char *const q[][2] = {{"operation", "PKIOperation"}, {"message", b64}};
        int st = inproc_call("GET", SCEP, NULL, "", NULL, 0, q, 2, NULL, &raw, &n);
        check_answer(st, raw, n);
        free(raw);
        free(b64);
    } else {
        return structured(data, size);
    }
    return 0;
}
