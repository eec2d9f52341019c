/* SCEP server (RFC 8894) for protocol configurations of type "scep".
 *
 * GetCACaps, GetCACert (RA certificate + CA chain) and PKIOperation over GET
 * and POST. A PKIOperation is a CMS SignedData whose signed attributes carry
 * the SCEP fields and whose content is an EnvelopedData for the RA: the
 * signature is checked (proof of possession of the requester's key), the
 * envelope opened with the RA key, and the request handled. Every answer to
 * a request we can parse is a CertRep signed by the RA; failures carry a
 * failInfo (badAlg, badMessageCheck, badRequest, badTime, badCertId) and
 * never an HTTP 5xx. Certificates come from the issuance core. */
#include "scep/scep.h"
#include "util/limits.h"

#include "scep/intune.h"
#include "scep/mdmws.h"

#include "api/api.h"
#include "ca/crl.h"
#include "ca/issue.h"
#include "ca/ra.h"
#include "proto/proto.h"
#include "util/codec.h"
#include "util/log.h"
#include "x509/csr.h"
#include "util/timeutil.h"
#include "x509/dn.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCEP_MAX_MSG LIMIT_SCEP_MESSAGE_BYTES /* a PKIOperation larger than this is refused */
#define SCEP_TIME_SKEW_S LIMIT_SCEP_TIME_SKEW_S /* signingTime further off than this: badTime */
#define SCEP_TXN_TTL_S LIMIT_SCEP_TXN_TTL_S /* transactionID -> certificate, for CertPoll */

/* RFC 8894 message types, statuses and failInfo values. */
enum { MT_CERTREP = 3, MT_RENEWAL = 17, MT_PKCSREQ = 19, MT_CERTPOLL = 20, MT_GETCERT = 21, MT_GETCRL = 22 };
enum { FAIL_BADALG = 0, FAIL_BADMESSAGECHECK = 1, FAIL_BADREQUEST = 2, FAIL_BADTIME = 3, FAIL_BADCERTID = 4 };

#define OID_MESSAGE_TYPE "2.16.840.1.113733.1.9.2"
#define OID_PKI_STATUS "2.16.840.1.113733.1.9.3"
#define OID_FAIL_INFO "2.16.840.1.113733.1.9.4"
#define OID_SENDER_NONCE "2.16.840.1.113733.1.9.5"
#define OID_RECIPIENT_NONCE "2.16.840.1.113733.1.9.6"
#define OID_TRANSACTION_ID "2.16.840.1.113733.1.9.7"

const char *const scep_setting_keys[] = {NULL};

int scep_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e)
{
    (void)body;
    (void)doc;
    (void)create;
    (void)e;
    return 0;
}

char *scep_url(const char *https_base, const char *partition, const char *config)
{
    char *u = NULL;
    if (asprintf(&u, "%s/scep/%s/%s/pkiclient.exe", https_base, partition, config) < 0)
        return NULL;
    return u;
}

/* Configuration types served by this engine: plain SCEP (static
 * challenges), MDM Intune (challenges validated by Intune) and the other
 * MDMs (one-time challenges from the MDM web service, mdmws.c). */
static bool scep_type(const char *t)
{
    return strcmp(t, "scep") == 0 || strcmp(t, "intune") == 0 || strcmp(t, "mdmws") == 0;
}

/* ---- request context ---------------------------------------------------- */

struct scep_req {
    struct proto_cfg cfg;
    struct ca_rec ca;
    EVP_PKEY *ra_key;
    X509 *ra_cert;
    STACK_OF(X509) *chain; /* CA first */
};

static void scep_req_free(struct scep_req *s)
{
    proto_cfg_free(&s->cfg);
    ca_rec_free(&s->ca);
    EVP_PKEY_free(s->ra_key);
    X509_free(s->ra_cert);
    sk_X509_pop_free(s->chain, X509_free);
    memset(s, 0, sizeof *s);
}

static void text(struct http_resp *resp, int status, const char *msg)
{
    resp_bytes(resp, status, "text/plain", msg, strlen(msg));
}

/* Configuration, its CA, RA key and certificate, CA chain. */
static int scep_load(struct http_req *req, struct http_resp *resp, struct scep_req *s)
{
    struct api_ctx *ctx = req->app;
    struct err e;
    memset(s, 0, sizeof *s);
    memset(&e, 0, sizeof e);
    snprintf(req->partition, sizeof req->partition, "%.64s", req->params[0]);
    if (proto_cfg_load(ctx->store, req->params[0], req->params[1], NULL, &s->cfg, &e) != 0 || !scep_type(s->cfg.type)) {
        text(resp, e.status == 503 ? 503 : 404, e.status == 503 ? "unavailable\n" : "no SCEP service at this URL\n");
        return -1;
    }
    if (ctx->store->ops->ca_get(ctx->store, s->cfg.partition, s->cfg.ca_id, &s->ca) != STORE_OK ||
        strcmp(s->ca.status, "active") != 0) {
        text(resp, 503, "the configuration's CA is not active\n");
        return -1;
    }
    if (ra_cert_get(&ctx->env, s->cfg.partition, s->cfg.ca_id, "scep", s->cfg.id, &s->ra_key, &s->ra_cert, &e) != 0 ||
        !(s->chain = ca_chain(&ctx->env, &s->ca))) {
        log_error("scep %s/%s: %s", s->cfg.partition, s->cfg.id, e.msg[0] ? e.msg : "no CA chain");
        text(resp, 503, "the RA certificate is not available\n");
        return -1;
    }
    return 0;
}

/* ---- GetCACaps / GetCACert ----------------------------------------------- */

static void get_ca_caps(struct http_resp *resp)
{
    static const char caps[] = "POSTPKIOperation\nRenewal\nSHA-256\nSHA-512\nAES\nDES3\nSCEPStandard\n";
    resp_bytes(resp, 200, "text/plain", caps, sizeof caps - 1);
}

/* Degenerate PKCS#7 SignedData holding certificates and/or a CRL. */
static int degenerate(STACK_OF(X509) *certs, X509_CRL *crl, unsigned char **der, int *len)
{
    PKCS7 *p7 = PKCS7_new();
    int ok = p7 && PKCS7_set_type(p7, NID_pkcs7_signed) == 1 && PKCS7_content_new(p7, NID_pkcs7_data) == 1;
    for (int i = 0; ok && i < sk_X509_num(certs); i++)
        ok = PKCS7_add_certificate(p7, sk_X509_value(certs, i)) == 1;
    if (ok && crl)
        ok = PKCS7_add_crl(p7, crl) == 1;
    *der = NULL;
    if (ok)
        *len = i2d_PKCS7(p7, der);
    PKCS7_free(p7);
    return ok && *len > 0 ? 0 : -1;
}

static void get_ca_cert(struct scep_req *s, struct http_resp *resp)
{
    STACK_OF(X509) *all = sk_X509_new_null();
    unsigned char *der = NULL;
    int len = 0;
    /* the RA certificate first, then the CA and its parents */
    int ok = all && sk_X509_push(all, s->ra_cert) > 0;
    for (int i = 0; ok && i < sk_X509_num(s->chain); i++)
        ok = sk_X509_push(all, sk_X509_value(s->chain, i)) > 0;
    if (ok && degenerate(all, NULL, &der, &len) == 0)
        resp_bytes(resp, 200, "application/x-x509-ca-ra-cert", der, (size_t)len);
    else
        text(resp, 500, "cannot build the certificate list\n");
    OPENSSL_free(der);
    sk_X509_free(all); /* borrowed certificates */
}

/* ---- PKIOperation --------------------------------------------------------- */

struct pkimsg {
    int type;
    char txid[129];
    unsigned char nonce[256]; /* senderNonce, echoed as recipientNonce (16 bytes in practice; longer ones kept too) */
    int nonce_len;
    X509 *signer;           /* the requester's certificate (self-signed or the one being renewed) */
    unsigned char *inner;   /* decrypted content */
    size_t inner_len;
    const EVP_CIPHER *cipher; /* the request's content encryption, reused for the reply */
    bool auth_env;          /* AuthEnvelopedData (AES-GCM) */
};

static void pkimsg_free(struct pkimsg *m)
{
    X509_free(m->signer);
    free(m->inner);
    memset(m, 0, sizeof *m);
}

static ASN1_OBJECT *oid(const char *txt)
{
    return OBJ_txt2obj(txt, 1);
}

/* A signed attribute as a string of the given ASN.1 type (NULL when absent). */
static const ASN1_STRING *attr_str(CMS_SignerInfo *si, const char *oid_txt, int type)
{
    ASN1_OBJECT *o = oid(oid_txt);
    const ASN1_STRING *v = o ? CMS_signed_get0_data_by_OBJ(si, o, -3, type) : NULL;
    ASN1_OBJECT_free(o);
    return v;
}

static int copy_printable(const ASN1_STRING *v, char *out, size_t n)
{
    if (!v || v->length <= 0 || (size_t)v->length >= n)
        return -1;
    for (int i = 0; i < v->length; i++)
        if (v->data[i] < 0x20 || v->data[i] > 0x7e)
            return -1;
    memcpy(out, v->data, (size_t)v->length);
    out[v->length] = 0;
    return 0;
}

static BIO *bio_of(const unsigned char *p, size_t n)
{
    return n > INT_MAX ? NULL : BIO_new_mem_buf(p, (int)n);
}

/* The bytes of a memory BIO, at most `max` (the request's limit for what
 * came in; replies carry whole CRLs and are bounded by SCEP_MAX_REPLY). */
#define SCEP_MAX_REPLY (512L * 1024 * 1024)
static int bio_take(BIO *b, long max, unsigned char **out, size_t *len)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    *out = NULL;
    *len = 0;
    if (n < 0 || n > max)
        return -1;
    if (!(*out = malloc(n ? (size_t)n : 1)))
        return -1;
    if (n) /* an empty BIO has no buffer at all (p stays NULL) */
        memcpy(*out, p, (size_t)n);
    *len = (size_t)n;
    return 0;
}

/* Opens the envelope for the RA; fail receives the failInfo on error. */
static int open_envelope(struct scep_req *s, struct pkimsg *m, const unsigned char *env, size_t env_len, int *fail)
{
    BIO *in = bio_of(env, env_len), *out = BIO_new(BIO_s_mem());
    CMS_ContentInfo *cms = NULL;
    PKCS7 *p7 = NULL;
    int rc = -1;
    *fail = FAIL_BADMESSAGECHECK;
    if (!in || !out || !(cms = d2i_CMS_bio(in, NULL)))
        goto out;
    int t = OBJ_obj2nid(CMS_get0_type(cms));
    if (t == NID_pkcs7_enveloped) {
        /* the content-encryption algorithm, to answer in kind */
        const unsigned char *p = env;
        if ((p7 = d2i_PKCS7(NULL, &p, (long)env_len)) && p7->d.enveloped && p7->d.enveloped->enc_data &&
            p7->d.enveloped->enc_data->algorithm)
            m->cipher = EVP_get_cipherbyobj(p7->d.enveloped->enc_data->algorithm->algorithm);
        if (!m->cipher) {
            *fail = FAIL_BADALG;
            goto out;
        }
    } else if (t == NID_id_smime_ct_authEnvelopedData) {
        m->auth_env = true;
        m->cipher = EVP_aes_256_gcm();
    } else {
        goto out;
    }
    int ok = CMS_decrypt(cms, s->ra_key, s->ra_cert, NULL, out, CMS_BINARY) == 1;
    if (!ok) {
        log_openssl("scep: opening the envelope");
        /* the cipher or key transport we could not handle, or not for us */
        *fail = FAIL_BADMESSAGECHECK;
        goto out;
    }
    if (bio_take(out, SCEP_MAX_MSG, &m->inner, &m->inner_len) != 0)
        goto out;
    rc = 0;
out:
    PKCS7_free(p7);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    BIO_free(out);
    return rc;
}

/* Parses and checks a PKIOperation. Returns 0 (message complete), 1 (the
 * SCEP fields are known but the message is bad: answer FAILURE with *fail)
 * or -1 (not a SCEP message at all: HTTP 400). */
static int parse_pkimsg(struct scep_req *s, const unsigned char *body, size_t len, struct pkimsg *m, int *fail)
{
    BIO *in = bio_of(body, len), *content = BIO_new(BIO_s_mem());
    CMS_ContentInfo *cms = NULL;
    STACK_OF(X509) *certs = NULL;
    unsigned char *env = NULL;
    size_t env_len = 0;
    int rc = -1;
    memset(m, 0, sizeof *m);
    if (!in || !content || !(cms = d2i_CMS_bio(in, NULL)) || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
        goto out;
    STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
    if (sk_CMS_SignerInfo_num(sis) != 1)
        goto out;
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, 0);
    char mt[8];
    if (copy_printable(attr_str(si, OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING), m->txid, sizeof m->txid) != 0 ||
        copy_printable(attr_str(si, OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING), mt, sizeof mt) != 0 ||
        !mt[0] || strspn(mt, "0123456789") != strlen(mt))
        goto out;
    m->type = atoi(mt);
    const ASN1_STRING *nonce = attr_str(si, OID_SENDER_NONCE, V_ASN1_OCTET_STRING);
    if (nonce && nonce->length > 0 && (size_t)nonce->length <= sizeof m->nonce) {
        memcpy(m->nonce, nonce->data, (size_t)nonce->length);
        m->nonce_len = nonce->length;
    }
    /* from here on the requester gets a CertRep */
    rc = 1;
    *fail = FAIL_BADMESSAGECHECK;
    certs = CMS_get1_certs(cms);
    for (int i = 0; i < sk_X509_num(certs); i++)
        if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(certs, i)) == 0 && X509_up_ref(sk_X509_value(certs, i)) == 1) {
            m->signer = sk_X509_value(certs, i);
            break;
        }
    if (!m->signer || !X509_get0_pubkey(m->signer) || EVP_PKEY_get_base_id(X509_get0_pubkey(m->signer)) != EVP_PKEY_RSA) {
        /* the reply is encrypted to this certificate: RSA key transport only */
        *fail = m->signer ? FAIL_BADALG : FAIL_BADMESSAGECHECK;
        goto out;
    }
    /* RFC 8894 2.9: MD5 (and anything weaker) is not supported; GetCACaps
     * offers SHA-256 and SHA-512, SHA-1 stays acceptable for old clients */
    X509_ALGOR *dalg = NULL;
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dalg, NULL);
    int dn = dalg ? OBJ_obj2nid(dalg->algorithm) : NID_undef;
    if (dn != NID_sha1 && dn != NID_sha224 && dn != NID_sha256 && dn != NID_sha384 && dn != NID_sha512) {
        *fail = FAIL_BADALG;
        goto out;
    }
    int ok = CMS_verify(cms, certs, NULL, NULL, content, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1;
    if (!ok) {
        log_openssl("scep: request signature");
        goto out;
    }
    /* signingTime, when present, must be near our clock */
    int idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
    if (idx >= 0) {
        ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, idx), 0);
        struct tm tm;
        if (t && (t->type == V_ASN1_UTCTIME || t->type == V_ASN1_GENERALIZEDTIME) &&
            ASN1_TIME_to_tm((ASN1_TIME *)t->value.asn1_string, &tm) == 1) {
            int64_t st = (int64_t)timegm(&tm), now = time_now();
            if (st > now + SCEP_TIME_SKEW_S || st < now - SCEP_TIME_SKEW_S) {
                *fail = FAIL_BADTIME;
                goto out;
            }
        }
    }
    if (m->type == MT_PKCSREQ || m->type == MT_RENEWAL || m->type == MT_CERTPOLL || m->type == MT_GETCERT ||
        m->type == MT_GETCRL) {
        if (bio_take(content, SCEP_MAX_MSG, &env, &env_len) != 0 || env_len == 0 || open_envelope(s, m, env, env_len, fail) != 0)
            goto out;
    } else {
        *fail = FAIL_BADREQUEST;
        goto out;
    }
    rc = 0;
out:
    free(env);
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    BIO_free(content);
    return rc;
}

/* Adds a signed attribute holding one string of ASN.1 `type`. */
static int add_attr(CMS_SignerInfo *si, const char *oid_txt, int type, const void *data, int len)
{
    ASN1_OBJECT *o = oid(oid_txt);
    ASN1_STRING *v = ASN1_STRING_type_new(type);
    int ok = o && v && ASN1_STRING_set(v, data, len) == 1 && CMS_signed_add1_attr_by_OBJ(si, o, type, v, -1) == 1;
    ASN1_STRING_free(v);
    ASN1_OBJECT_free(o);
    return ok ? 0 : -1;
}

/* The CertRep: status 0 success (with the degenerate PKCS#7 `payload`
 * encrypted to the requester), 2 failure (with failInfo), 3 pending. */
static int cert_rep(struct scep_req *s, const struct pkimsg *m, int status, int fail, const unsigned char *payload,
                    size_t plen, unsigned char **out, size_t *out_len)
{
    CMS_ContentInfo *rep = NULL, *env = NULL;
    BIO *data = NULL, *pbio = NULL, *envbio = BIO_new(BIO_s_mem()), *der = BIO_new(BIO_s_mem());
    STACK_OF(X509) *recips = sk_X509_new_null();
    unsigned char snonce[16];
    int rc = -1;
    unsigned int flags = CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP;
    if (!envbio || !der || !recips || RAND_bytes(snonce, sizeof snonce) != 1)
        goto out;
    if (status == 0) {
        if (!(pbio = bio_of(payload, plen)) || sk_X509_push(recips, m->signer) <= 0)
            goto out;
        /* an AEAD cipher (AES-GCM) makes AuthEnvelopedData (RFC 5083) */
        if (!(env = CMS_encrypt(recips, pbio, m->cipher, CMS_BINARY)))
            goto out;
        if (i2d_CMS_bio(envbio, env) != 1)
            goto out;
        char *p = NULL;
        long n = BIO_get_mem_data(envbio, &p);
        if (n <= 0 || !(data = BIO_new_mem_buf(p, (int)n)))
            goto out;
    } else {
        flags |= CMS_DETACHED; /* no pkcsPKIEnvelope on failure / pending */
        if (!(data = BIO_new(BIO_s_mem())))
            goto out;
    }
    if (!(rep = CMS_sign(NULL, NULL, NULL, NULL, flags)))
        goto out;
    CMS_SignerInfo *si = CMS_add1_signer(rep, s->ra_cert, s->ra_key, EVP_sha256(), flags);
    char st[4], mt[4], fi[4];
    snprintf(st, sizeof st, "%d", status);
    snprintf(mt, sizeof mt, "%d", MT_CERTREP);
    snprintf(fi, sizeof fi, "%d", fail);
    if (!si || add_attr(si, OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING, mt, -1) != 0 ||
        add_attr(si, OID_PKI_STATUS, V_ASN1_PRINTABLESTRING, st, -1) != 0 ||
        add_attr(si, OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING, m->txid, -1) != 0 ||
        add_attr(si, OID_SENDER_NONCE, V_ASN1_OCTET_STRING, snonce, sizeof snonce) != 0 ||
        (m->nonce_len && add_attr(si, OID_RECIPIENT_NONCE, V_ASN1_OCTET_STRING, m->nonce, m->nonce_len) != 0) ||
        (status == 2 && add_attr(si, OID_FAIL_INFO, V_ASN1_PRINTABLESTRING, fi, -1) != 0))
        goto out;
    if (CMS_final(rep, data, NULL, flags) != 1 || i2d_CMS_bio(der, rep) != 1 ||
        bio_take(der, SCEP_MAX_REPLY, out, out_len) != 0)
        goto out;
    rc = 0;
out:
    sk_X509_free(recips);
    CMS_ContentInfo_free(rep);
    CMS_ContentInfo_free(env);
    BIO_free(data);
    BIO_free(pbio);
    BIO_free(envbio);
    BIO_free(der);
    return rc;
}

static void send_rep(struct scep_req *s, struct http_resp *resp, const struct pkimsg *m, int status, int fail,
                     const unsigned char *payload, size_t plen)
{
    unsigned char *der = NULL;
    size_t n = 0;
    if (cert_rep(s, m, status, fail, payload, plen, &der, &n) != 0) {
        log_openssl("scep: building the CertRep");
        /* what cannot be sent is a failure the client can read */
        if (status == 2 || cert_rep(s, m, 2, FAIL_BADREQUEST, NULL, 0, &der, &n) != 0) {
            text(resp, 500, "cannot build the reply\n");
            return;
        }
    }
    resp_take(resp, 200, "application/x-pki-message", der, n);
}

static void txn_key(const struct scep_req *s, const char *txid, char *out, size_t n)
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)txid, strlen(txid), h);
    char *hex = hex_encode(h, 16);
    snprintf(out, n, "%s/%s", s->cfg.id, hex ? hex : "");
    free(hex);
}

/* The certificate (with its chain) as the degenerate PKCS#7 payload. */
static int cert_payload(struct scep_req *s, const unsigned char *der, size_t len, unsigned char **out, int *olen)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    STACK_OF(X509) *certs = sk_X509_new_null();
    int rc = -1;
    if (x && certs && sk_X509_push(certs, x) > 0) {
        for (int i = 0; i < sk_X509_num(s->chain); i++)
            sk_X509_push(certs, sk_X509_value(s->chain, i));
        rc = degenerate(certs, NULL, out, olen);
    }
    sk_X509_free(certs);
    X509_free(x);
    return rc;
}

/* The CSR's challengePassword (NULL when absent). */
static char *challenge_of(X509_REQ *csr)
{
    int idx = X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1);
    X509_ATTRIBUTE *at = idx >= 0 ? X509_REQ_get_attr(csr, idx) : NULL;
    ASN1_TYPE *t = at ? X509_ATTRIBUTE_get0_type(at, 0) : NULL;
    if (!t || (t->type != V_ASN1_PRINTABLESTRING && t->type != V_ASN1_UTF8STRING && t->type != V_ASN1_IA5STRING))
        return NULL;
    const ASN1_STRING *v = t->value.asn1_string;
    if (v->length <= 0 || v->length > 255 || memchr(v->data, 0, (size_t)v->length))
        return NULL;
    char *s = malloc((size_t)v->length + 1);
    if (s) {
        memcpy(s, v->data, (size_t)v->length);
        s[v->length] = 0;
    }
    return s;
}

/* Whether a certificate's requester is this configuration (any of the
 * ways it enrols: challenge, Intune, MDM grant or PKCS#12, renewal). */
static bool issued_by_config(const struct scep_req *s, const char *requester)
{
    char a[96], b[96];
    if (!requester)
        return false;
    snprintf(a, sizeof a, "%s:%s", s->cfg.type, s->cfg.id);
    snprintf(b, sizeof b, "mdmws-scep:%s/", s->cfg.id);
    size_t al = strlen(a);
    return (strncmp(requester, a, al) == 0 && (requester[al] == 0 || requester[al] == '/')) ||
           (strcmp(s->cfg.type, "mdmws") == 0 && strncmp(requester, b, strlen(b)) == 0);
}

/* RenewalReq: the signer certificate must be ours, current and issued;
 * its record (requester, profile) goes to *out. */
static int renewal_signer_ok(struct api_ctx *ctx, struct scep_req *s, X509 *signer, struct cert_rec *out)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *vc = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    struct cert_rec cr;
    int ok = 0;
    memset(&cr, 0, sizeof cr);
    if (!st || !vc || !untrusted)
        goto out;
    for (int i = 0; i < sk_X509_num(s->chain); i++) {
        X509 *c = sk_X509_value(s->chain, i);
        if (X509_check_issued(c, c) == X509_V_OK)
            X509_STORE_add_cert(st, c);
        else
            sk_X509_push(untrusted, c);
    }
    if (X509_STORE_CTX_init(vc, st, signer, untrusted) != 1)
        goto out;
    if (X509_verify_cert(vc) != 1)
        goto out;
    char *hex = NULL, serial[48];
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(signer), NULL);
    unsigned char *der = NULL;
    int dl = i2d_X509(signer, &der);
    /* the very certificate this CA issued (same bytes), still issued */
    if (bn && (hex = BN_bn2hex(bn)) && api_serial_norm(hex, serial, sizeof serial) == 0 &&
        ctx->store->ops->cert_get(ctx->store, s->cfg.partition, s->ca.pk, serial, &cr) == STORE_OK &&
        strcmp(cr.status, "issued") == 0 && dl > 0 && cr.der && cr.der_len == (size_t)dl &&
        memcmp(cr.der, der, (size_t)dl) == 0) {
        ok = 1;
        *out = cr;
        memset(&cr, 0, sizeof cr);
    }
    OPENSSL_free(der);
    OPENSSL_free(hex);
    BN_free(bn);
out:
    cert_rec_free(&cr);
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(vc);
    X509_STORE_free(st);
    return ok;
}

/* A refused enrolment: the failure CertRep, and an enrollment event in the
 * audit log (actor = the would-be requester, result failure). */
static void refuse(struct http_req *req, struct http_resp *resp, struct scep_req *s, const struct pkimsg *m, int fail,
                   const char *who, const char *ident, const char *reason)
{
    struct api_ctx *ctx = req->app;
    char target[96];
    snprintf(target, sizeof target, "protocol:%s", s->cfg.id);
    json_t *d = json_pack("{s:s,s:s,s:s,s:s}", "subject", ident ? ident : "", "type",
                          m->type == MT_RENEWAL ? "renew" : "issue", "reason", reason, "transactionId", m->txid);
    char *detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    struct audit_rec a = {who && *who ? who : "scep", "enroll.refused", target, detail, req->ip, "failure"};
    ctx->store->ops->audit_append(ctx->store, s->cfg.partition, &a);
    free(detail);
    log_info("scep %s/%s: transaction %.40s refused: %s", s->cfg.partition, s->cfg.id, m->txid, reason);
    send_rep(s, resp, m, 2, fail, NULL, 0);
}

/* Lowercase hex SHA-256 of `len` bytes into out[65]. */
static void sha256_hex(const unsigned char *p, size_t len, char out[65])
{
    unsigned char md[32];
    out[0] = 0;
    if (EVP_Digest(p, len, md, NULL, EVP_sha256(), NULL) == 1)
        for (int i = 0; i < 32; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The SHA-256 of a certificate's SubjectPublicKeyInfo (hex). */
static void key_hash(X509 *x, char out[65])
{
    unsigned char *der = NULL;
    int n = x ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : -1;
    out[0] = 0;
    if (n > 0)
        sha256_hex(der, (size_t)n, out);
    OPENSSL_free(der);
}

/* The CertRep with the certificate of serial `serial`: 0, or -1 (nothing
 * sent). */
/* A transaction claimed by a request that is still being issued; a claim
 * older than SCEP_CLAIM_S was left by a request that never finished (the
 * daemon stopped under it) and may be claimed again. */
#define SCEP_CLAIM_S 120
static bool claim_live(const struct obj_rec *o)
{
    return strcmp(o->status, "pending") == 0 && time_now() - o->updated_at < SCEP_CLAIM_S;
}

static int send_issued(struct api_ctx *ctx, struct http_resp *resp, struct scep_req *s, struct pkimsg *m,
                       const char *serial)
{
    struct cert_rec cr;
    unsigned char *payload = NULL;
    int plen = 0, rc = -1;
    memset(&cr, 0, sizeof cr);
    if (serial && ctx->store->ops->cert_get(ctx->store, s->cfg.partition, s->ca.pk, serial, &cr) == STORE_OK &&
        cert_payload(s, cr.der, cr.der_len, &payload, &plen) == 0) {
        send_rep(s, resp, m, 0, 0, payload, (size_t)plen);
        rc = 0;
    }
    OPENSSL_free(payload);
    cert_rec_free(&cr);
    return rc;
}

static void do_enroll(struct http_req *req, struct http_resp *resp, struct scep_req *s, struct pkimsg *m)
{
    struct api_ctx *ctx = req->app;
    struct issue_result res;
    struct err e;
    struct cert_rec signer_rec;
    struct obj_rec prior, claim;
    bool claimed = false;
    unsigned char *payload = NULL;
    int plen = 0;
    char *chal = NULL, *ident = NULL, who[160] = "", cred[80] = "", txkey[OBJ_ID_MAX + 1], csr_hash[65],
         signer_hash[65];
    const unsigned char *p = m->inner;
    X509_REQ *csr = d2i_X509_REQ(NULL, &p, (long)m->inner_len);
    bool intune = strcmp(s->cfg.type, "intune") == 0, intune_validated = false;
    json_t *pj = NULL;
    struct mdm_grant grant;
    memset(&grant, 0, sizeof grant);
    memset(&res, 0, sizeof res);
    memset(&e, 0, sizeof e);
    memset(&signer_rec, 0, sizeof signer_rec);
    memset(&prior, 0, sizeof prior);
    memset(&claim, 0, sizeof claim);
    snprintf(who, sizeof who, "%s:%s", s->cfg.type, s->cfg.id);
    if (!csr || p != m->inner + m->inner_len) {
        refuse(req, resp, s, m, FAIL_BADREQUEST, who, NULL, "the envelope does not hold a PKCS#10 request");
        goto out;
    }
    /* RFC 8894 2.3: a PKCSReq is signed with the requester's transient
     * certificate for the request's own key (else a request re-signed on
     * the way would have its answer encrypted to someone else) */
    if (m->type == MT_PKCSREQ && EVP_PKEY_eq(X509_get0_pubkey(m->signer), X509_REQ_get0_pubkey(csr)) != 1) {
        refuse(req, resp, s, m, FAIL_BADMESSAGECHECK, who, NULL,
               "the request is not signed with the key of its PKCS#10 request");
        goto out;
    }
    sha256_hex(m->inner, m->inner_len, csr_hash);
    key_hash(m->signer, signer_hash);
    /* The same request again (a retry, or a capture replayed) gets the
     * certificate its transaction produced, never a second one. A
     * transactionID alone does not make a repeat: RFC 8894 3.2.1.1 derives
     * it from the key, so a renewal with the same key reuses it. */
    txn_key(s, m->txid, txkey, sizeof txkey);
    bool txn_known = ctx->store->ops->obj_get(ctx->store, s->cfg.partition, SCEP_TXN_KIND, txkey, &prior) == STORE_OK;
    if (txn_known) {
        json_error_t je;
        pj = prior.json ? json_loads(prior.json, 0, &je) : NULL;
        const char *h = json_string_value(json_object_get(pj, "csrHash"));
        const char *k = json_string_value(json_object_get(pj, "signerKeyHash"));
        json_t *t = json_object_get(pj, "messageType");
        if (h && k && json_is_integer(t) && json_integer_value(t) == m->type && strcmp(h, csr_hash) == 0 &&
            strcmp(k, signer_hash) == 0) {
            const char *sn = json_string_value(json_object_get(pj, "serial"));
            if (sn && send_issued(ctx, resp, s, m, sn) == 0)
                goto out;
            if (!sn && claim_live(&prior)) {
                /* the same request is being issued right now: the client
                 * polls (CertPoll) for what it produces */
                send_rep(s, resp, m, 3, 0, NULL, 0);
                goto out;
            }
        }
    }
    /* Who is asking, checked before anything is spent */
    if (m->type == MT_RENEWAL) {
        ident = dn_print(X509_get_subject_name(m->signer));
        if (!renewal_signer_ok(ctx, s, m->signer, &signer_rec)) {
            refuse(req, resp, s, m, FAIL_BADMESSAGECHECK, who, ident,
                   "renewal not signed by a current certificate of this CA");
            goto out;
        }
        /* a renewal renews a certificate of this configuration: another
         * protocol's, configuration's or the API's would skip this one's
         * challenge (or Intune's validation) */
        /* and by this configuration, not an earlier one that had its id */
        if (!issued_by_config(s, signer_rec.requester) || signer_rec.created_at < s->cfg.created_at) {
            refuse(req, resp, s, m, FAIL_BADMESSAGECHECK, who, ident,
                   "renewal signed by a certificate not issued through this configuration");
            goto out;
        }
        /* a renewal renews an identity: the certificate that signs it
         * proves only its own subject and names (RFC 8894 3.3.1.2) */
        char why[128];
        if (csr_names_match_cert(csr, m->signer, false, why, sizeof why) != 0) {
            refuse(req, resp, s, m, FAIL_BADREQUEST, who, ident, why);
            goto out;
        }
        snprintf(who, sizeof who, "%s:%s/renewal", s->cfg.type, s->cfg.id);
    } else if (strcmp(s->cfg.type, "mdmws") == 0) {
        /* a one-time challenge from the MDM web service fixes subject and
         * profile; it is spent only once the request may go ahead */
        chal = challenge_of(csr);
        if (!chal || !mdmws_challenge_live(ctx->store, s->cfg.partition, s->cfg.id, chal)) {
            refuse(req, resp, s, m, FAIL_BADREQUEST, who, NULL,
                   chal ? "MDM challenge unknown, used or expired" : "no MDM challenge");
            goto out;
        }
    } else if (intune) {
        /* the challenge is Intune's: Intune validates the whole request */
        if (intune_validate(ctx, &s->cfg, m->txid, m->inner, m->inner_len, &e) != 0) {
            refuse(req, resp, s, m, FAIL_BADREQUEST, who, NULL, e.msg);
            goto out;
        }
        intune_validated = m->type == MT_PKCSREQ;
        snprintf(who, sizeof who, "intune:%s", s->cfg.id);
    } else {
        chal = challenge_of(csr);
        if (!chal || !proto_cred_match_any(ctx->store, ctx->env.mkey, s->cfg.partition, s->cfg.id, chal, cred,
                                           sizeof cred)) {
            refuse(req, resp, s, m, FAIL_BADREQUEST, who, NULL, chal ? "wrong challenge" : "no challenge");
            goto out;
        }
        snprintf(who, sizeof who, "scep:%s/%s", s->cfg.id, cred);
    }
    /* the partition's certificate rate: counted for authorised requests
     * only (strangers with a wrong challenge cannot spend it), before the
     * single-use MDM challenge is taken */
    char ra[24];
    int limit;
    bool premium;
    int cap = req->capability;
    req->capability = 1; /* certificate class */
    bool limited = api_rate_limited(req, s->cfg.partition, ra, &limit, &premium);
    req->capability = cap;
    if (limited) {
        if (intune_validated)
            intune_notify(ctx, &s->cfg, m->txid, m->inner, m->inner_len, NULL, "rate limit reached");
        refuse(req, resp, s, m, FAIL_BADREQUEST, who, NULL, "rate limit reached");
        resp_header(resp, "Retry-After", ra);
        goto out;
    }
    /* The transaction is claimed before anything is spent or issued: of
     * concurrent copies of one request (a capture replayed in parallel)
     * exactly one issues; the others are answered PENDING and their
     * CertPoll finds the certificate. */
    memset(&claim, 0, sizeof claim);
    snprintf(claim.partition_id, sizeof claim.partition_id, "%s", s->cfg.partition);
    snprintf(claim.kind, sizeof claim.kind, "%s", SCEP_TXN_KIND);
    snprintf(claim.id, sizeof claim.id, "%s", txkey);
    snprintf(claim.status, sizeof claim.status, "pending");
    claim.expires_at = time_now() + SCEP_TXN_TTL_S;
    json_t *cj = json_pack("{s:s,s:s,s:i}", "csrHash", csr_hash, "signerKeyHash", signer_hash, "messageType", m->type);
    claim.json = cj ? json_dumps(cj, JSON_COMPACT) : NULL;
    json_decref(cj);
    if (!claim.json || !(claim.parent = strdup(s->cfg.id))) { /* deleted with the configuration */
        send_rep(s, resp, m, 2, FAIL_BADREQUEST, NULL, 0);
        goto out;
    }
    claim.version = txn_known ? prior.version : 0;
    /* a new request under a known transactionID replaces it */
    int cst = ctx->store->ops->obj_put(ctx->store, &claim, txn_known ? OBJ_UPDATE : OBJ_CREATE, NULL);
    if (cst == STORE_ECONFLICT || cst == STORE_ENOTFOUND) {
        log_info("scep %s/%s: transaction %.40s claimed by a concurrent request", s->cfg.partition, s->cfg.id,
                 m->txid);
        send_rep(s, resp, m, 3, 0, NULL, 0);
        goto out;
    }
    if (cst != STORE_OK) {
        refuse(req, resp, s, m, FAIL_BADREQUEST, who, NULL, "the service is unavailable, retry later");
        goto out;
    }
    claimed = true;
    if (m->type != MT_RENEWAL && strcmp(s->cfg.type, "mdmws") == 0) {
        if (mdmws_take_challenge(ctx->store, s->cfg.partition, s->cfg.id, chal, &grant) != 0) {
            refuse(req, resp, s, m, FAIL_BADREQUEST, who, NULL, "MDM challenge unknown, used or expired");
            goto out;
        }
        ident = proto_ee_identifier(grant.subject);
        snprintf(who, sizeof who, "mdmws-scep:%s/%s", s->cfg.id, grant.digital_id);
    }
    if (!ident)
        ident = dn_print(X509_REQ_get_subject_name(csr));
    if (!ident || proto_ee_allowed(ctx->store, s->cfg.partition, s->cfg.id, ident) != 0) {
        if (intune_validated)
            intune_notify(ctx, &s->cfg, m->txid, m->inner, m->inner_len, NULL,
                          "the end entity is deactivated or decommissioned");
        refuse(req, resp, s, m, FAIL_BADREQUEST, who, ident, "the end entity is deactivated or decommissioned");
        goto out;
    }
    struct issue_req ir = {
        .partition = s->cfg.partition,
        .ca_id = s->cfg.ca_id,
        /* a renewal renews the certificate as what it is */
        .profile_id = grant.subject                              ? grant.profile_id
                      : signer_rec.profile_id && *signer_rec.profile_id ? signer_rec.profile_id
                                                                        : s->cfg.profile_id,
        .subject = grant.subject,
        /* an MDM grant fixes the identity: the CSR's own names are not
         * the MDM's to vouch for */
        .ignore_csr_sans = grant.subject != NULL,
        .csr = m->inner,
        .csr_len = m->inner_len,
        .requester = who,
        .requester_ip = req->ip,
    };
    if (issue_certificate(&ctx->env, &ir, &res, &e) != 0) {
        if (intune_validated)
            intune_notify(ctx, &s->cfg, m->txid, m->inner, m->inner_len, NULL, e.msg);
        refuse(req, resp, s, m, FAIL_BADREQUEST, who, ident, e.msg);
        goto out;
    }
    proto_ee_record(ctx->store, s->cfg.partition, s->cfg.id, ident, s->cfg.ca_id, res.serial, res.not_after);
    /* the claimed transaction now names its certificate, for CertPoll
     * retries and repeats of the same request (its digest, its key) */
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:i}", "serial", res.serial, "caId", s->cfg.ca_id, "csrHash", csr_hash,
                          "signerKeyHash", signer_hash, "messageType", m->type);
    char *js = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (js) {
        free(claim.json);
        claim.json = js;
        snprintf(claim.status, sizeof claim.status, "issued");
    }
    if (!js || ctx->store->ops->obj_put(ctx->store, &claim, OBJ_UPDATE, NULL) != STORE_OK)
        log_warn("scep %s/%s: transaction %.40s not recorded", s->cfg.partition, s->cfg.id, m->txid);
    claimed = false; /* settled: kept */
    if (cert_payload(s, res.der, res.der_len, &payload, &plen) != 0) {
        if (intune_validated)
            intune_notify(ctx, &s->cfg, m->txid, m->inner, m->inner_len, NULL, "the response cannot be built");
        send_rep(s, resp, m, 2, FAIL_BADREQUEST, NULL, 0);
        goto out;
    }
    send_rep(s, resp, m, 0, 0, payload, (size_t)plen);
    if (intune_validated)
        intune_notify(ctx, &s->cfg, m->txid, m->inner, m->inner_len, &res, NULL);
out:
    if (claimed) {
        /* refused after the claim: nothing was issued, the transactionID
         * and an MDM challenge taken for it are free again */
        ctx->store->ops->obj_delete(ctx->store, s->cfg.partition, SCEP_TXN_KIND, txkey, NULL);
        mdmws_return_challenge(ctx->store, &grant);
    }
    obj_rec_free(&claim);
    free(ident);
    mdm_grant_free(&grant);
    OPENSSL_free(payload);
    free(chal);
    X509_REQ_free(csr);
    issue_result_free(&res);
    cert_rec_free(&signer_rec);
    json_decref(pj);
    obj_rec_free(&prior);
}

/* CertPoll (GetCertInitial): we never leave requests pending, so a poll
 * finds the certificate its transaction produced, or nothing. */
static void do_poll(struct http_req *req, struct http_resp *resp, struct scep_req *s, struct pkimsg *m)
{
    struct api_ctx *ctx = req->app;
    struct obj_rec o;
    struct cert_rec cr;
    unsigned char *payload = NULL;
    int plen = 0;
    char key[OBJ_ID_MAX + 1];
    memset(&cr, 0, sizeof cr);
    txn_key(s, m->txid, key, sizeof key);
    if (ctx->store->ops->obj_get(ctx->store, s->cfg.partition, SCEP_TXN_KIND, key, &o) != STORE_OK) {
        send_rep(s, resp, m, 2, FAIL_BADCERTID, NULL, 0);
        return;
    }
    json_error_t je;
    json_t *j = o.json ? json_loads(o.json, 0, &je) : NULL;
    const char *serial = json_string_value(json_object_get(j, "serial"));
    /* the transaction's own requester only (RFC 8894 3.3.3): its key signs
     * the poll, and the answer is encrypted to it */
    const char *want = json_string_value(json_object_get(j, "signerKeyHash"));
    char have[65];
    key_hash(m->signer, have);
    if (!want || strcmp(want, have) != 0)
        serial = NULL;
    else if (!serial && claim_live(&o)) {
        send_rep(s, resp, m, 3, 0, NULL, 0); /* still being issued */
        json_decref(j);
        obj_rec_free(&o);
        return;
    }
    if (serial && ctx->store->ops->cert_get(ctx->store, s->cfg.partition, s->ca.pk, serial, &cr) == STORE_OK &&
        cert_payload(s, cr.der, cr.der_len, &payload, &plen) == 0)
        send_rep(s, resp, m, 0, 0, payload, (size_t)plen);
    else
        send_rep(s, resp, m, 2, FAIL_BADCERTID, NULL, 0);
    OPENSSL_free(payload);
    cert_rec_free(&cr);
    json_decref(j);
    obj_rec_free(&o);
}

/* GetCert / GetCRL: IssuerAndSerialNumber of one of our certificates. */
static void do_get(struct http_req *req, struct http_resp *resp, struct scep_req *s, struct pkimsg *m)
{
    struct api_ctx *ctx = req->app;
    struct cert_rec cr;
    unsigned char *payload = NULL;
    int plen = 0;
    X509_CRL *x = NULL;
    char *hex = NULL, serial[48];
    BIGNUM *bn = NULL;
    memset(&cr, 0, sizeof cr);
    const unsigned char *p = m->inner;
    PKCS7_ISSUER_AND_SERIAL *ias = d2i_PKCS7_ISSUER_AND_SERIAL(NULL, &p, (long)m->inner_len);
    X509 *cacert = sk_X509_value(s->chain, 0);
    if (!ias || !cacert || X509_NAME_cmp(ias->issuer, X509_get_subject_name(cacert)) != 0) {
        send_rep(s, resp, m, 2, FAIL_BADCERTID, NULL, 0);
        goto out;
    }
    if (m->type == MT_GETCRL) {
        /* the CA's current full CRL (built now when there is none yet) */
        struct err e;
        struct crl_blob *b = s->ca.crl_enabled ? crl_cache_get(ctx->crls, &ctx->env, &s->ca, CRL_FULL, &e) : NULL;
        const unsigned char *q = b ? b->der : NULL;
        if (b)
            x = d2i_X509_CRL(NULL, &q, (long)b->len);
        crl_blob_release(b);
        if (!x || degenerate(NULL, x, &payload, &plen) != 0) {
            send_rep(s, resp, m, 2, FAIL_BADCERTID, NULL, 0);
            goto out;
        }
        send_rep(s, resp, m, 0, 0, payload, (size_t)plen);
        goto out;
    }
    if (!(bn = ASN1_INTEGER_to_BN(ias->serial, NULL)) || !(hex = BN_bn2hex(bn)) ||
        api_serial_norm(hex, serial, sizeof serial) != 0 ||
        ctx->store->ops->cert_get(ctx->store, s->cfg.partition, s->ca.pk, serial, &cr) != STORE_OK ||
        cert_payload(s, cr.der, cr.der_len, &payload, &plen) != 0) {
        send_rep(s, resp, m, 2, FAIL_BADCERTID, NULL, 0);
        goto out;
    }
    send_rep(s, resp, m, 0, 0, payload, (size_t)plen);
out:
    OPENSSL_free(hex);
    BN_free(bn);
    X509_CRL_free(x);
    OPENSSL_free(payload);
    cert_rec_free(&cr);
    PKCS7_ISSUER_AND_SERIAL_free(ias);
}

static void pki_operation(struct http_req *req, struct http_resp *resp, struct scep_req *s, const unsigned char *msg,
                          size_t len)
{
    struct pkimsg m;
    int fail = FAIL_BADREQUEST;
    if (len == 0 || len > SCEP_MAX_MSG) {
        text(resp, len ? 413 : 400, len ? "message too large\n" : "empty message\n");
        return;
    }
    int r = parse_pkimsg(s, msg, len, &m, &fail);
    if (r < 0) {
        text(resp, 400, "not a SCEP pkiMessage (CMS SignedData with messageType and transactionID)\n");
    } else if (r > 0) {
        if (!m.signer) {
            /* nothing to encrypt a reply to and no key to trust: refuse plainly */
            text(resp, 400, "the pkiMessage carries no usable signer certificate\n");
        } else {
            log_info("scep %s/%s: transaction %.40s: failInfo %d", s->cfg.partition, s->cfg.id, m.txid, fail);
            send_rep(s, resp, &m, 2, fail, NULL, 0);
        }
    } else if (m.type == MT_PKCSREQ || m.type == MT_RENEWAL) {
        do_enroll(req, resp, s, &m);
    } else if (m.type == MT_CERTPOLL) {
        do_poll(req, resp, s, &m);
    } else {
        do_get(req, resp, s, &m);
    }
    pkimsg_free(&m);
}

static void h_scep(struct http_req *req, struct http_resp *resp)
{
    struct scep_req s;
    unsigned char *msg = NULL;
    size_t mlen = 0;
    const char *op = http_query(req, "operation");
    if (!op) {
        text(resp, 400, "operation is required (GetCACaps, GetCACert, PKIOperation)\n");
        return;
    }
    if (strcmp(op, "GetCACaps") == 0) {
        struct api_ctx *ctx = req->app;
        struct proto_cfg cfg;
        struct err e;
        if (proto_cfg_load(ctx->store, req->params[0], req->params[1], NULL, &cfg, &e) != 0) {
            text(resp, 404, "no SCEP service at this URL\n");
            return;
        }
        bool ok = scep_type(cfg.type);
        proto_cfg_free(&cfg);
        if (!ok) {
            text(resp, 404, "no SCEP service at this URL\n");
            return;
        }
        get_ca_caps(resp);
        return;
    }
    if (strcmp(op, "GetCACert") != 0 && strcmp(op, "PKIOperation") != 0) {
        text(resp, 400, "unknown operation (GetCACaps, GetCACert, PKIOperation)\n");
        return;
    }
    if (scep_load(req, resp, &s) != 0)
        goto out;
    if (strcmp(op, "GetCACert") == 0) {
        get_ca_cert(&s, resp);
        goto out;
    }
    if (strcmp(req->method, "POST") == 0) {
        if (req->body_truncated) {
            text(resp, 413, "message too large\n");
            goto out;
        }
        pki_operation(req, resp, &s, req->body.data, req->body.len);
        goto out;
    }
    /* GET: base64 in the `message` parameter ('+' may arrive as ' ') */
    const char *m64 = http_query(req, "message");
    size_t n = m64 ? strlen(m64) : 0;
    if (!n || n > SCEP_MAX_MSG * 4 / 3 + 4) {
        text(resp, 400, "message: base64 of the pkiMessage is required\n");
        goto out;
    }
    char *fixed = strdup(m64);
    if (fixed)
        for (char *c = fixed; *c; c++)
            if (*c == ' ')
                *c = '+';
    if (!fixed || b64_decode(fixed, n, &msg, &mlen) != 0) {
        free(fixed);
        text(resp, 400, "message: not valid base64\n");
        goto out;
    }
    free(fixed);
    pki_operation(req, resp, &s, msg, mlen);
out:
    free(msg);
    scep_req_free(&s);
}

#define S "/scep/{}/{}"
const struct route scep_routes[] = {
    {"GET", S "/pkiclient.exe", h_scep},
    {"POST", S "/pkiclient.exe", h_scep, 0, LIMIT_SCEP_MESSAGE_BYTES},
    {"GET", S, h_scep},
    {"POST", S, h_scep, 0, LIMIT_SCEP_MESSAGE_BYTES},
    {"GET", "/mdm/v2/scep/{}/{}", h_scep},
    {"POST", "/mdm/v2/scep/{}/{}", h_scep, 0, LIMIT_SCEP_MESSAGE_BYTES},
    {"GET", "/mdm/v2/scep/{}/{}/pkiclient.exe", h_scep},
    {"POST", "/mdm/v2/scep/{}/{}/pkiclient.exe", h_scep, 0, LIMIT_SCEP_MESSAGE_BYTES},
};
const size_t scep_routes_count = sizeof scep_routes / sizeof scep_routes[0];
