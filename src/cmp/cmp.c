/* CMP server (RFC 4210, the lightweight profile of RFC 9483, HTTP transfer
 * of RFC 6712) for protocol configurations of type "cmp".
 *
 *   POST /cmp/{accountId}/{configId}   application/pkixcmp both ways
 *
 * Every HTTP request gets a fresh OSSL_CMP_SRV_CTX (OpenSSL 3.0's generic
 * CMP server): it checks the message protection, the proof of possession
 * and the transaction bookkeeping, and calls back into this file for the
 * decisions. Nothing is shared between requests but the store.
 *
 * Protection:
 *   - MAC (PasswordBasedMac): the senderKID names a credential of the
 *     configuration, whose secret is the MAC key; the answer is MAC-protected
 *     with the same secret. Allowed for ir, p10cr, genm and for certConf /
 *     error messages of such a transaction.
 *   - signature: by a certificate of the configuration's CA that is "issued"
 *     (not revoked, suspended or expired) in the store; the trust store is
 *     the CA chain. Required for cr, kur (signed by the certificate being
 *     updated) and rr (signed by the certificate being revoked); allowed for
 *     everything else. Answers are signed by the configuration's CMP
 *     responder certificate (ra_cert_get), issued by the same CA.
 *
 * Confirmation: when the client asks for implicit confirmation and the
 * configuration grants it ("implicitConfirm", default true) the transaction
 * ends with the ip/cp/kup. Otherwise the issued certificate waits for a
 * certConf: the request is kept as a CMP_TXN_KIND row, and the certConf is
 * answered by a fresh server context that first re-reads the original
 * request (without issuing again) so that OpenSSL's transaction checks
 * (transactionID, nonces, certReqId, certHash) run as in one session. A
 * certificate rejected in the certConf (or by an error message) is revoked.
 *
 * OpenSSL 3.0 has no accessors for a few fields this server needs (the
 * header's senderKID and protectionAlg, the template's publicKey, the
 * status in a PKIStatusInfo, the rr's crlEntryDetails). They are read with
 * small ASN.1 templates mirroring RFC 4210/4211 from OpenSSL's own DER
 * re-encoding of the already parsed structures (ASN1_item_d2i, never by
 * hand); the "VIEW" types below. */
#include "cmp/cmp.h"
#include "util/limits.h"

#include "api/api.h"
#include "ca/issue.h"
#include "ca/ra.h"
#include "proto/proto.h"
#include "util/codec.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "x509/csr.h"
#include "x509/dn.h"
#include "x509/san.h"

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/cmp.h>
#include <openssl/cmp_util.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CMP_BODY_MAX LIMIT_CMP_MESSAGE_BYTES /* a PKIMessage we read at all */
#define CMP_TID_MAX 48            /* transactionID bytes we keep state for */
#define CAP_OTHER 0               /* rate-limit classes (api.c) */
#define CAP_CERT 1
#define REASON_CESSATION 5        /* RFC 5280 cessationOfOperation */
#define SIGNER_CANDIDATES_MAX 16  /* extraCerts tried as the request's signer */

static const char ct_cmp[] = "application/pkixcmp";
static const char ct_text[] = "text/plain; charset=utf-8";

/* PKIBody CHOICE alternatives (RFC 4210 5.1.2) as OSSL_CMP_MSG_get_bodytype
 * returns them; OpenSSL 3.0 keeps the names private. */
enum {
    BODY_IR = 0,
    BODY_IP = 1,
    BODY_CR = 2,
    BODY_CP = 3,
    BODY_P10CR = 4,
    BODY_KUR = 7,
    BODY_KUP = 8,
    BODY_RR = 11,
    BODY_GENM = 21,
    BODY_ERROR = 23,
    BODY_CERTCONF = 24,
    BODY_PKICONF = 19,
    BODY_POLLREQ = 25,
};

/* ---- ASN.1 views (see the file comment) --------------------------------- */

/* PKIHeader (RFC 4210 5.1.1) */
typedef struct {
    ASN1_INTEGER *pvno;
    GENERAL_NAME *sender;
    GENERAL_NAME *recipient;
    ASN1_GENERALIZEDTIME *message_time;
    X509_ALGOR *protection_alg;
    ASN1_OCTET_STRING *sender_kid;
    ASN1_OCTET_STRING *recip_kid;
    ASN1_OCTET_STRING *transaction_id;
    ASN1_OCTET_STRING *sender_nonce;
    ASN1_OCTET_STRING *recip_nonce;
    STACK_OF(ASN1_UTF8STRING) *free_text;
    STACK_OF(ASN1_TYPE) *general_info;
} HDR_VIEW;

ASN1_SEQUENCE(HDR_VIEW) = {
    ASN1_SIMPLE(HDR_VIEW, pvno, ASN1_INTEGER),
    ASN1_SIMPLE(HDR_VIEW, sender, GENERAL_NAME),
    ASN1_SIMPLE(HDR_VIEW, recipient, GENERAL_NAME),
    ASN1_EXP_OPT(HDR_VIEW, message_time, ASN1_GENERALIZEDTIME, 0),
    ASN1_EXP_OPT(HDR_VIEW, protection_alg, X509_ALGOR, 1),
    ASN1_EXP_OPT(HDR_VIEW, sender_kid, ASN1_OCTET_STRING, 2),
    ASN1_EXP_OPT(HDR_VIEW, recip_kid, ASN1_OCTET_STRING, 3),
    ASN1_EXP_OPT(HDR_VIEW, transaction_id, ASN1_OCTET_STRING, 4),
    ASN1_EXP_OPT(HDR_VIEW, sender_nonce, ASN1_OCTET_STRING, 5),
    ASN1_EXP_OPT(HDR_VIEW, recip_nonce, ASN1_OCTET_STRING, 6),
    ASN1_EXP_SEQUENCE_OF_OPT(HDR_VIEW, free_text, ASN1_UTF8STRING, 7),
    ASN1_EXP_SEQUENCE_OF_OPT(HDR_VIEW, general_info, ASN1_ANY, 8),
} static_ASN1_SEQUENCE_END(HDR_VIEW)

/* CertTemplate (RFC 4211 5) */
typedef struct {
    ASN1_INTEGER *version;
    ASN1_INTEGER *serial;
    STACK_OF(ASN1_TYPE) *signing_alg;
    ASN1_TYPE *issuer;
    STACK_OF(ASN1_TYPE) *validity;
    ASN1_TYPE *subject;
    X509_PUBKEY *public_key;
    ASN1_BIT_STRING *issuer_uid;
    ASN1_BIT_STRING *subject_uid;
    STACK_OF(ASN1_TYPE) *extensions;
} TMPL_VIEW;

ASN1_SEQUENCE(TMPL_VIEW) = {
    ASN1_IMP_OPT(TMPL_VIEW, version, ASN1_INTEGER, 0),
    ASN1_IMP_OPT(TMPL_VIEW, serial, ASN1_INTEGER, 1),
    ASN1_IMP_SEQUENCE_OF_OPT(TMPL_VIEW, signing_alg, ASN1_ANY, 2),
    ASN1_EXP_OPT(TMPL_VIEW, issuer, ASN1_ANY, 3),
    ASN1_IMP_SEQUENCE_OF_OPT(TMPL_VIEW, validity, ASN1_ANY, 4),
    ASN1_EXP_OPT(TMPL_VIEW, subject, ASN1_ANY, 5),
    ASN1_IMP_OPT(TMPL_VIEW, public_key, X509_PUBKEY, 6),
    ASN1_IMP_OPT(TMPL_VIEW, issuer_uid, ASN1_BIT_STRING, 7),
    ASN1_IMP_OPT(TMPL_VIEW, subject_uid, ASN1_BIT_STRING, 8),
    ASN1_IMP_SEQUENCE_OF_OPT(TMPL_VIEW, extensions, ASN1_ANY, 9),
} static_ASN1_SEQUENCE_END(TMPL_VIEW)

/* PKIStatusInfo (RFC 4210 5.2.3) */
typedef struct {
    ASN1_INTEGER *status;
    STACK_OF(ASN1_UTF8STRING) *status_string;
    ASN1_BIT_STRING *fail_info;
} SI_VIEW;

ASN1_SEQUENCE(SI_VIEW) = {
    ASN1_SIMPLE(SI_VIEW, status, ASN1_INTEGER),
    ASN1_SEQUENCE_OF_OPT(SI_VIEW, status_string, ASN1_UTF8STRING),
    ASN1_OPT(SI_VIEW, fail_info, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(SI_VIEW)

/* RevDetails (RFC 4210 5.3.9) and a PKIMessage whose body is rr [11] */
typedef struct {
    ASN1_TYPE *cert_details;
    STACK_OF(X509_EXTENSION) *crl_entry_details;
} REVDETAILS_VIEW;

ASN1_SEQUENCE(REVDETAILS_VIEW) = {
    ASN1_SIMPLE(REVDETAILS_VIEW, cert_details, ASN1_ANY),
    ASN1_SEQUENCE_OF_OPT(REVDETAILS_VIEW, crl_entry_details, X509_EXTENSION),
} static_ASN1_SEQUENCE_END(REVDETAILS_VIEW)

typedef struct {
    ASN1_TYPE *header;
    OPENSSL_STACK *rr; /* of REVDETAILS_VIEW */
    ASN1_BIT_STRING *protection;
    STACK_OF(ASN1_TYPE) *extra_certs;
} RRMSG_VIEW;

ASN1_SEQUENCE(RRMSG_VIEW) = {
    ASN1_SIMPLE(RRMSG_VIEW, header, ASN1_ANY),
    ASN1_EXP_SEQUENCE_OF(RRMSG_VIEW, rr, REVDETAILS_VIEW, 11),
    ASN1_EXP_OPT(RRMSG_VIEW, protection, ASN1_BIT_STRING, 0),
    ASN1_EXP_SEQUENCE_OF_OPT(RRMSG_VIEW, extra_certs, ASN1_ANY, 1),
} static_ASN1_SEQUENCE_END(RRMSG_VIEW)

/* A certConf message, to count its CertStatus entries. */
typedef struct {
    ASN1_TYPE *header;
    STACK_OF(ASN1_TYPE) *statuses;
    ASN1_BIT_STRING *protection;
    STACK_OF(ASN1_TYPE) *extra_certs;
} CCMSG_VIEW;

ASN1_SEQUENCE(CCMSG_VIEW) = {
    ASN1_SIMPLE(CCMSG_VIEW, header, ASN1_ANY),
    ASN1_EXP_SEQUENCE_OF(CCMSG_VIEW, statuses, ASN1_ANY, 24),
    ASN1_EXP_OPT(CCMSG_VIEW, protection, ASN1_BIT_STRING, 0),
    ASN1_EXP_SEQUENCE_OF_OPT(CCMSG_VIEW, extra_certs, ASN1_ANY, 1),
} static_ASN1_SEQUENCE_END(CCMSG_VIEW)

/* Decodes DER produced by OpenSSL's i2d of a parsed structure with a view. */
static void *view_d2i(const unsigned char *der, int len, const ASN1_ITEM *it)
{
    const unsigned char *p = der;
    if (!der || len <= 0)
        return NULL;
    ASN1_VALUE *v = ASN1_item_d2i(NULL, &p, len, it);
    if (v && p != der + len) {
        ASN1_item_free(v, it);
        v = NULL;
    }
    return v;
}

static void view_free(void *v, const ASN1_ITEM *it)
{
    ASN1_item_free((ASN1_VALUE *)v, it);
}

static HDR_VIEW *hdr_view(const OSSL_CMP_MSG *m)
{
    unsigned char *der = NULL;
    OSSL_CMP_PKIHEADER *h = OSSL_CMP_MSG_get0_header(m);
    int n = h ? i2d_OSSL_CMP_PKIHEADER(h, &der) : -1;
    HDR_VIEW *v = n > 0 ? view_d2i(der, n, ASN1_ITEM_rptr(HDR_VIEW)) : NULL;
    OPENSSL_free(der);
    return v;
}

static TMPL_VIEW *tmpl_view(const OSSL_CRMF_CERTTEMPLATE *t)
{
    unsigned char *der = NULL;
    int n = t ? i2d_OSSL_CRMF_CERTTEMPLATE(t, &der) : -1;
    TMPL_VIEW *v = n > 0 ? view_d2i(der, n, ASN1_ITEM_rptr(TMPL_VIEW)) : NULL;
    OPENSSL_free(der);
    return v;
}

/* The PKIStatus of a PKIStatusInfo; -1 when unreadable. */
static long si_status(const OSSL_CMP_PKISI *si)
{
    unsigned char *der = NULL;
    int n = si ? i2d_OSSL_CMP_PKISI(si, &der) : -1;
    SI_VIEW *v = n > 0 ? view_d2i(der, n, ASN1_ITEM_rptr(SI_VIEW)) : NULL;
    long st = v ? ASN1_INTEGER_get(v->status) : -1;
    view_free(v, ASN1_ITEM_rptr(SI_VIEW));
    OPENSSL_free(der);
    return st;
}

/* The number of CertStatus entries of a certConf; -1 when unreadable. */
static int certconf_count(const OSSL_CMP_MSG *m)
{
    unsigned char *der = NULL;
    int n = i2d_OSSL_CMP_MSG(m, &der);
    CCMSG_VIEW *v = n > 0 ? view_d2i(der, n, ASN1_ITEM_rptr(CCMSG_VIEW)) : NULL;
    int count = v ? sk_ASN1_TYPE_num(v->statuses) : -1;
    view_free(v, ASN1_ITEM_rptr(CCMSG_VIEW));
    OPENSSL_free(der);
    return count;
}

/* The CRL reason code of the (single) rr entry: 0 when absent, -1 when
 * the entry cannot be read. */
static int rr_reason(const OSSL_CMP_MSG *m)
{
    unsigned char *der = NULL;
    int n = i2d_OSSL_CMP_MSG(m, &der);
    RRMSG_VIEW *v = n > 0 ? view_d2i(der, n, ASN1_ITEM_rptr(RRMSG_VIEW)) : NULL;
    int reason = -1;
    if (v && OPENSSL_sk_num(v->rr) == 1) {
        REVDETAILS_VIEW *d = OPENSSL_sk_value(v->rr, 0);
        int crit = -1;
        ASN1_ENUMERATED *r = d->crl_entry_details
                                 ? X509V3_get_d2i(d->crl_entry_details, NID_crl_reason, &crit, NULL)
                                 : NULL;
        if (r) {
            long l = ASN1_ENUMERATED_get(r);
            reason = l >= 0 && l <= 10 ? (int)l : -1;
        } else {
            reason = crit == -1 ? 0 : -1; /* -1: absent; else malformed or repeated */
        }
        ASN1_ENUMERATED_free(r);
    }
    view_free(v, ASN1_ITEM_rptr(RRMSG_VIEW));
    OPENSSL_free(der);
    return reason;
}

/* ---- settings (admin API) ----------------------------------------------- */

const char *const cmp_setting_keys[] = {"implicitConfirm", "confirmWaitSeconds", NULL};

int cmp_settings_apply(const json_t *body, json_t *doc, bool create, struct jerr *e)
{
    bool ic = true;
    const json_t *v = json_object_get(body, "implicitConfirm");
    if (v && !json_is_boolean(v)) {
        jerr_set(e, "implicitConfirm", "implicitConfirm: must be true or false");
        return -1;
    }
    const json_t *w = json_object_get(body, "confirmWaitSeconds");
    if (w && (!json_is_integer(w) || json_integer_value(w) < CMP_CONFIRM_WAIT_MIN_S ||
              json_integer_value(w) > CMP_CONFIRM_WAIT_MAX_S)) {
        jerr_set(e, "confirmWaitSeconds", "confirmWaitSeconds: a whole number of seconds from %d to %d",
                 CMP_CONFIRM_WAIT_MIN_S, CMP_CONFIRM_WAIT_MAX_S);
        return -1;
    }
    if (v)
        ic = json_is_true(v);
    if (v || create || !json_is_boolean(json_object_get(doc, "implicitConfirm")))
        json_object_set_new(doc, "implicitConfirm", json_boolean(ic));
    if (w || create || !json_is_integer(json_object_get(doc, "confirmWaitSeconds")))
        json_object_set_new(doc, "confirmWaitSeconds",
                            json_integer(w ? json_integer_value(w) : CMP_CONFIRM_WAIT_DEFAULT_S));
    return 0;
}

char *cmp_url(const char *https_base, const char *partition, const char *config)
{
    char *u = NULL;
    if (asprintf(&u, "%s/cmp/%s/%s", https_base, partition, config) < 0)
        return NULL;
    return u;
}


/* ---- per-request state -------------------------------------------------- */

enum need { NEED_MAC_OR_SIG, NEED_SIG };

struct cmp_call {
    struct api_ctx *ctx;
    struct http_req *req;
    struct proto_cfg cfg;
    bool cfg_loaded;
    struct ca_rec ca;             /* the configuration's CA */
    X509 *cacert;
    STACK_OF(X509) *chain;        /* the CA first, up to its root */
    HDR_VIEW *hdr;                /* of the request being answered */
    int type;                     /* its body type */
    bool mac;                     /* PasswordBasedMac protection */
    char kid[PROTO_CRED_ID_MAX + 1]; /* MAC: the credential (senderKID) */
    X509 *signer;                 /* signature: the protecting certificate */
    struct cert_rec signer_rec;   /* ... as the store has it */
    bool sig_checked, sig_ok;     /* the signature side of authorize() */
    char who[160];                /* requester for records and audit */
    int fail_bit;                 /* PKIFailureInfo bit of a refusal */
    char why[300];                /* and its reason */
    bool replay;                  /* re-reading the request of a certConf */
    struct obj_rec txn;           /* the transaction's row (see txn_reserve) */
    json_t *txn_doc;
    bool txn_open;                /* loaded in state "open" (certConf, error) */
    bool txn_expired;             /* it was open, but its confirmation deadline had passed */
    char serial[48];              /* issued in this request */
    char subject[256];            /* requested subject (for refusal events) */
    bool decided;                 /* a request callback ran (refusals audit themselves) */
};

static void call_free(struct cmp_call *c)
{
    if (c->cfg_loaded)
        proto_cfg_free(&c->cfg);
    ca_rec_free(&c->ca);
    X509_free(c->cacert);
    sk_X509_pop_free(c->chain, X509_free);
    view_free(c->hdr, ASN1_ITEM_rptr(HDR_VIEW));
    X509_free(c->signer);
    cert_rec_free(&c->signer_rec);
    obj_rec_free(&c->txn);
    json_decref(c->txn_doc);
    memset(c, 0, sizeof *c);
}

__attribute__((format(printf, 3, 4))) static void refuse(struct cmp_call *c, int bit, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    c->fail_bit = bit;
}

/* A refused certificate or revocation request as an enrollment event of
 * the configuration (audit action enroll.refused, result failure); the
 * actor is the authenticated requester, else just the configuration. */
static void audit_refusal(struct cmp_call *c, const char *reason)
{
    char target[96], actor[sizeof c->who];
    const ASN1_OCTET_STRING *t = c->hdr ? c->hdr->transaction_id : NULL;
    char *tid = t && ASN1_STRING_length(t) <= CMP_TID_MAX
                    ? hex_encode(ASN1_STRING_get0_data(t), (size_t)ASN1_STRING_length(t))
                    : NULL;
    const char *type = c->type == BODY_KUR ? "renew" : c->type == BODY_RR ? "revoke" : "issue";
    snprintf(target, sizeof target, "protocol:%s", c->cfg.id);
    if (c->who[0])
        snprintf(actor, sizeof actor, "%s", c->who);
    else
        snprintf(actor, sizeof actor, "cmp:%s", c->cfg.id);
    json_t *d = json_pack("{s:s,s:s,s:s,s:s}", "subject", c->subject, "type", type, "reason", reason,
                          "transactionId", tid ? tid : "");
    char *detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    struct audit_rec a = {actor, "enroll.refused", target, detail, c->req->ip, "failure"};
    c->ctx->store->ops->audit_append(c->ctx->store, c->cfg.partition, &a);
    free(detail);
    free(tid);
    log_info("cmp %s/%s: request refused: %s", c->cfg.partition, c->cfg.id, reason);
}

/* A rejection PKIStatusInfo with c->fail_bit and c->why. */
static OSSL_CMP_PKISI *rejection(struct cmp_call *c)
{
    audit_refusal(c, c->why);
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection, 1 << c->fail_bit, c->why);
}

__attribute__((format(printf, 3, 4))) static void text_error(struct http_resp *resp, int status, const char *fmt,
                                                             ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = 0;
    size_t len = strlen(msg);
    msg[len++] = '\n';
    resp_bytes(resp, status, ct_text, msg, len);
}

/* OpenSSL's CMP diagnostics go to our log: what a client got wrong at info,
 * the chatter at debug. */
static int cmp_log(const char *func, const char *file, int line, OSSL_CMP_severity level, const char *msg)
{
    (void)func;
    (void)file;
    (void)line;
    if (level <= OSSL_CMP_LOG_ERR)
        log_info("cmp: %s", msg);
    else if (level <= OSSL_CMP_LOG_INFO)
        log_debug("cmp: %s", msg);
    return 1;
}

static int quiet_log(const char *func, const char *file, int line, OSSL_CMP_severity level, const char *msg)
{
    (void)func;
    (void)file;
    (void)line;
    (void)level;
    (void)msg;
    return 1;
}

/* The store's form of a certificate's serial number. */
static int serial_of(const ASN1_INTEGER *sn, char *out, size_t n)
{
    BIGNUM *bn = sn ? ASN1_INTEGER_to_BN(sn, NULL) : NULL;
    char *hex = bn && !BN_is_negative(bn) ? BN_bn2hex(bn) : NULL;
    int rc = hex && api_serial_norm(hex, out, n) == 0 ? 0 : -1;
    OPENSSL_free(hex);
    BN_free(bn);
    return rc;
}

/* ---- protection and authorization --------------------------------------- */

/* The certificate among the message's extraCerts (now in the context's
 * untrusted list) that names the sender, was issued by the configuration's
 * CA and whose key verifies the message's signature. */
static X509 *find_signer(struct cmp_call *c, OSSL_CMP_CTX *cctx, const OSSL_CMP_MSG *req)
{
    STACK_OF(X509) *cands = OSSL_CMP_CTX_get0_untrusted(cctx);
    const X509_NAME *sender =
        c->hdr->sender && c->hdr->sender->type == GEN_DIRNAME ? c->hdr->sender->d.directoryName : NULL;
    X509 *found = NULL;
    int tried = 0;
    ERR_set_mark();
    for (int i = 0; sender && !found && i < sk_X509_num(cands) && tried < SIGNER_CANDIDATES_MAX; i++) {
        X509 *x = sk_X509_value(cands, i);
        if (X509_NAME_cmp(X509_get_subject_name(x), sender) != 0 || X509_check_issued(c->cacert, x) != X509_V_OK)
            continue;
        tried++;
        OSSL_CMP_CTX *t = OSSL_CMP_CTX_new(NULL, NULL);
        bool ok = t && OSSL_CMP_CTX_set_log_cb(t, quiet_log) == 1 && OSSL_CMP_CTX_set1_srvCert(t, x) == 1 &&
                  OSSL_CMP_validate_msg(t, req) == 1;
        OSSL_CMP_CTX_free(t);
        if (ok && X509_up_ref(x) == 1)
            found = x;
    }
    ERR_pop_to_mark();
    return found;
}

/* The signature side of authorize(): the protecting certificate is one
 * of the configuration's CA, "issued" in the store and not expired. */
static bool signer_ok(struct cmp_call *c, OSSL_CMP_CTX *cctx, const OSSL_CMP_MSG *req)
{
    struct api_ctx *ctx = c->ctx;
    char serial[48];
    unsigned char *der = NULL;
    if (!(c->signer = find_signer(c, cctx, req))) {
        refuse(c, 20 /* signerNotTrusted */,
               "the request is not signed by a certificate of CA '%s' included in extraCerts", c->ca.id);
        return false;
    }
    int dl = i2d_X509(c->signer, &der);
    bool same = dl > 0 && serial_of(X509_get0_serialNumber(c->signer), serial, sizeof serial) == 0 &&
                ctx->store->ops->cert_get(ctx->store, c->cfg.partition, c->ca.pk, serial, &c->signer_rec) ==
                    STORE_OK &&
                (size_t)dl == c->signer_rec.der_len && memcmp(der, c->signer_rec.der, (size_t)dl) == 0;
    OPENSSL_free(der);
    if (!same) {
        refuse(c, 20 /* signerNotTrusted */, "the signing certificate is not one of CA '%s'", c->ca.id);
        return false;
    }
    if (strcmp(c->signer_rec.status, "issued") != 0) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_certRevoked, "the signing certificate %s is %s", serial,
               c->signer_rec.status);
        return false;
    }
    if (X509_cmp_time(X509_get0_notAfter(c->signer), NULL) <= 0) {
        refuse(c, 20 /* signerNotTrusted */, "the signing certificate %s has expired", serial);
        return false;
    }
    snprintf(c->who, sizeof c->who, "cmp:%s/cert:%s", c->cfg.id, serial);
    return true;
}

/* Whether the request's protection (already verified by OpenSSL) is good
 * enough for what it asks; sets c->who (and c->signer, c->signer_rec for
 * signatures) or refuses. */
static bool authorize(struct cmp_call *c, OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, enum need need)
{
    if (c->mac) {
        if (need == NEED_SIG) {
            refuse(c, OSSL_CMP_PKIFAILUREINFO_wrongIntegrity,
                   "this request must be signed with a certificate of the configuration's CA; MAC protection is "
                   "for initial requests (ir, p10cr, genm)");
            return false;
        }
        snprintf(c->who, sizeof c->who, "cmp:%s/%s", c->cfg.id, c->kid);
        return true;
    }
    if (!c->sig_checked) {
        c->sig_checked = true;
        c->sig_ok = signer_ok(c, OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv), req);
    }
    return c->sig_ok;
}

/* ---- transactions -------------------------------------------------------- */

/* One row per transactionID of a certificate request (RFC 4210 5.1.1: a
 * server refuses an ID already in use), claimed before anything is issued
 * so that a replayed request finds it taken:
 *   pending  claimed, nothing issued (yet)
 *   open     issued, waiting for the certConf: the request and the
 *            senderNonce of the answer are kept to resume the transaction
 *   done     confirmed (explicitly or implicitly), rejected or failed
 * The claim is partition-wide ("tid/<hex>"; the row's parent names the
 * configuration): a certificate of the CA authenticates at every CMP
 * configuration of that CA, so a captured signed request replayed at a
 * second configuration must find its ID taken too. */

static int txn_id(const struct cmp_call *c, char *out, size_t n)
{
    const ASN1_OCTET_STRING *t = c->hdr->transaction_id;
    if (!t || ASN1_STRING_length(t) < 1 || ASN1_STRING_length(t) > CMP_TID_MAX)
        return -1;
    char *hex = hex_encode(ASN1_STRING_get0_data(t), (size_t)ASN1_STRING_length(t));
    int w = hex ? snprintf(out, n, "tid/%s", hex) : -1;
    free(hex);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

/* Claims the request's transactionID; refuses when it is taken. */
static bool txn_reserve(struct cmp_call *c)
{
    struct obj_rec *o = &c->txn;
    obj_rec_free(o);
    memset(o, 0, sizeof *o);
    json_decref(c->txn_doc);
    c->txn_doc = NULL;
    if (txn_id(c, o->id, sizeof o->id) != 0) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_badRequest, "a transactionID of 1 to %d bytes is required", CMP_TID_MAX);
        return false;
    }
    snprintf(o->partition_id, sizeof o->partition_id, "%s", c->cfg.partition);
    snprintf(o->kind, sizeof o->kind, "%s", CMP_TXN_KIND);
    snprintf(o->status, sizeof o->status, "pending");
    /* as long as any request with this ID can pass the messageTime window
     * (CMP_TXN_TTL_S back, CMP_MAX_SKEW_S ahead): a replay never outlives
     * its claim */
    o->expires_at = time_now() + CMP_TXN_TTL_S + CMP_MAX_SKEW_S;
    if (!(c->txn_doc = json_pack("{s:s}", "requester", c->who)) || !(o->parent = strdup(c->cfg.id)) ||
        !(o->json = json_dumps(c->txn_doc, JSON_COMPACT))) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_systemFailure, "out of memory");
        return false;
    }
    int st = c->ctx->store->ops->obj_put(c->ctx->store, o, OBJ_CREATE, NULL);
    if (st == STORE_ECONFLICT) {
        refuse(c, 21 /* transactionIdInUse */, "this transactionID has been used already");
        return false;
    }
    if (st != STORE_OK) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_systemUnavail, "the service is unavailable, retry later");
        return false;
    }
    return true;
}

/* Rewrites the claimed or loaded row. */
static void txn_write(struct cmp_call *c, const char *status, json_t *doc)
{
    char *js = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    int st = STORE_EIO;
    if (js) {
        free(c->txn.json);
        c->txn.json = js;
        snprintf(c->txn.status, sizeof c->txn.status, "%s", status);
        st = c->ctx->store->ops->obj_put(c->ctx->store, &c->txn, OBJ_UPDATE, NULL);
    }
    if (st != STORE_OK)
        log_warn("cmp %s/%s: cannot record transaction %s as %s (store %d)", c->cfg.partition, c->cfg.id,
                 c->txn.id, status, st);
}

/* The transaction is over: only the claim on its ID stays. */
static void txn_done(struct cmp_call *c)
{
    json_t *doc = json_pack("{s:s,s:s?}", "requester", c->who,
                            "serial", json_string_value(json_object_get(c->txn_doc, "serial")));
    txn_write(c, "done", doc);
    json_decref(doc);
}

/* The configuration's confirmWaitTime (seconds). */
static int64_t confirm_wait_s(const struct proto_cfg *cfg)
{
    json_int_t w = json_integer_value(json_object_get(cfg->doc, "confirmWaitSeconds"));
    return w >= CMP_CONFIRM_WAIT_MIN_S && w <= CMP_CONFIRM_WAIT_MAX_S ? (int64_t)w : CMP_CONFIRM_WAIT_DEFAULT_S;
}

/* Whether an open transaction's confirmation deadline has passed. */
static bool txn_late(const json_t *doc, int64_t now)
{
    json_int_t by = json_integer_value(json_object_get(doc, "confirmBy"));
    return by > 0 && now > by;
}

/* After the ip/cp/kup of c->serial: done when implicitly confirmed, else
 * open with what the certConf needs. */
static void txn_issued(struct cmp_call *c, const OSSL_CMP_MSG *rsp, bool confirmed)
{
    HDR_VIEW *rh = confirmed ? NULL : hdr_view(rsp);
    char *req64 = confirmed ? NULL : b64_encode(c->req->body.data, c->req->body.len);
    char *nonce = rh && rh->sender_nonce ? hex_encode(ASN1_STRING_get0_data(rh->sender_nonce),
                                                      (size_t)ASN1_STRING_length(rh->sender_nonce))
                                         : NULL;
    int64_t confirm_by = time_now() + confirm_wait_s(&c->cfg);
    json_t *doc = confirmed ? json_pack("{s:s,s:s}", "requester", c->who, "serial", c->serial)
                  : req64 && nonce ? json_pack("{s:s,s:s,s:s,s:s,s:I}", "requester", c->who, "serial", c->serial,
                                               "senderNonce", nonce, "request", req64, "confirmBy",
                                               (json_int_t)confirm_by)
                                   : NULL;
    /* the deadline's sweep must still find the row after a long stop */
    if (!confirmed && c->txn.expires_at < confirm_by + CMP_TXN_TTL_S + CMP_MAX_SKEW_S)
        c->txn.expires_at = confirm_by + CMP_TXN_TTL_S + CMP_MAX_SKEW_S;
    if (doc)
        txn_write(c, confirmed ? "done" : "open", doc);
    else
        log_warn("cmp %s/%s: cannot keep the transaction of %s; its certConf will fail", c->cfg.partition,
                 c->cfg.id, c->serial);
    json_decref(doc);
    free(req64);
    free(nonce);
    view_free(rh, ASN1_ITEM_rptr(HDR_VIEW));
}

/* Revokes the certificate of an open transaction that was rejected or never
 * confirmed (cessationOfOperation: it was never put to use). */
static void unconfirmed_revoke(struct api_ctx *ctx, const struct ca_rec *ca, const char *cfg_id, const char *sn,
                               const char *why, const char *actor, const char *ip)
{
    struct err e;
    memset(&e, 0, sizeof e);
    if (api_cert_set_status(ctx, ca, sn, "revoked", REASON_CESSATION, 0, why, actor, ip, true, &e) != 0)
        log_warn("cmp %s/%s: could not revoke %s after %s: %s", ca->partition_id, cfg_id, sn, why, e.msg);
    else
        log_info("cmp %s/%s: revoked %s: %s", ca->partition_id, cfg_id, sn, why);
}

/* The certificate of the open transaction, rejected by its requester or
 * confirmed too late. */
static void txn_revoke(struct cmp_call *c, const char *why)
{
    const char *sn = json_string_value(json_object_get(c->txn_doc, "serial"));
    if (sn)
        unconfirmed_revoke(c->ctx, &c->ca, c->cfg.id, sn, why, c->who[0] ? c->who : "system:cmp", c->req->ip);
}

/* certConf / error: the open transaction and, for a certConf, through the
 * fresh server context, its original request once more (see the file
 * comment). */
static void txn_resume(struct cmp_call *c, OSSL_CMP_SRV_CTX *srv)
{
    struct api_ctx *ctx = c->ctx;
    unsigned char *der = NULL, *nonce = NULL;
    size_t dl = 0, nl = 0;
    OSSL_CMP_MSG *orig = NULL, *r0 = NULL;
    ASN1_OCTET_STRING *ns = NULL;
    char id[OBJ_ID_MAX + 1];
    json_error_t je;
    if (txn_id(c, id, sizeof id) != 0 ||
        ctx->store->ops->obj_get(ctx->store, c->cfg.partition, CMP_TXN_KIND, id, &c->txn) != STORE_OK ||
        strcmp(c->txn.status, "open") != 0 || !c->txn.parent || strcmp(c->txn.parent, c->cfg.id) != 0 ||
        !c->txn.json || !(c->txn_doc = json_loads(c->txn.json, 0, &je)))
        goto out;
    if (txn_late(c->txn_doc, time_now())) {
        /* RFC 4210 5.1.1.2: past its confirmWaitTime the certificate is
         * revoked (the housekeeping would do it shortly anyway) and the
         * transaction is over */
        c->txn_expired = true;
        txn_revoke(c, "CMP: no certConf within the confirmation wait time");
        txn_done(c);
        goto out;
    }
    c->txn_open = true;
    if (c->type != BODY_CERTCONF)
        goto out;
    const char *r64 = json_string_value(json_object_get(c->txn_doc, "request"));
    const char *nh = json_string_value(json_object_get(c->txn_doc, "senderNonce"));
    const unsigned char *p;
    if (!r64 || !nh || b64_decode(r64, strlen(r64), &der, &dl) != 0 || hex_decode(nh, &nonce, &nl) != 0 ||
        dl > CMP_BODY_MAX || nl > INT_MAX || (p = der, !(orig = d2i_OSSL_CMP_MSG(NULL, &p, (long)dl))))
        goto out;
    c->replay = true;
    r0 = OSSL_CMP_SRV_process_request(srv, orig);
    c->replay = false;
    if (!(ns = ASN1_OCTET_STRING_new()) || ASN1_OCTET_STRING_set(ns, nonce, (int)nl) != 1 ||
        OSSL_CMP_CTX_set1_senderNonce(OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv), ns) != 1)
        log_warn("cmp %s/%s: cannot resume transaction %s", c->cfg.partition, c->cfg.id, id);
out:
    ERR_clear_error();
    ASN1_OCTET_STRING_free(ns);
    OSSL_CMP_MSG_free(r0);
    OSSL_CMP_MSG_free(orig);
    free(der);
    free(nonce);
}

/* ---- certificate requests (ir, cr, p10cr, kur) -------------------------- */

/* A certificate authenticates its own identity and nothing more: a request
 * signed with one (cr, kur, or an ir / p10cr without the MAC credential) is
 * for the signer's subject and names it already has. New identities come
 * through the configuration's MAC credential. Without this, any certificate
 * of the CA, whichever protocol issued it, would buy one for any name. */
#define SIGNED_FOR_SIGNER "a request signed with a certificate is for that certificate's identity: "

static bool profile_decides(int nid)
{
    return nid == NID_basic_constraints || nid == NID_key_usage || nid == NID_ext_key_usage ||
           nid == NID_subject_key_identifier || nid == NID_authority_key_identifier ||
           nid == NID_crl_distribution_points || nid == NID_info_access;
}

/* SANs and further extensions of a CRMF template as the issuance core
 * takes them; the profile decides key usage, constraints and identifiers,
 * so a template's versions of those are not requests. */
static int tmpl_exts(struct cmp_call *c, const X509_EXTENSIONS *exts, json_t **sans, json_t **extra)
{
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *x = sk_X509_EXTENSION_value(exts, i);
        ASN1_OBJECT *obj = X509_EXTENSION_get_object(x);
        int nid = OBJ_obj2nid(obj);
        if (profile_decides(nid))
            continue;
        if (nid == NID_subject_alt_name) {
            GENERAL_NAMES *gn = X509V3_EXT_d2i(x);
            json_t *j = gn ? san_to_json(gn) : NULL;
            GENERAL_NAMES_free(gn);
            if (!j || *sans) {
                json_decref(j);
                refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertTemplate,
                       "the template's subjectAltName extension is malformed or repeated");
                return -1;
            }
            *sans = j;
            continue;
        }
        char oid[100];
        const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(x);
        char *b64 = b64_encode(ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v));
        if (OBJ_obj2txt(oid, sizeof oid, obj, 1) <= 0 || (size_t)OBJ_obj2txt(NULL, 0, obj, 1) >= sizeof oid ||
            !b64 || (!*extra && !(*extra = json_array())) ||
            json_array_append_new(*extra, json_pack("{s:s,s:b,s:s}", "oid", oid, "critical",
                                                    X509_EXTENSION_get_critical(x) > 0, "value", b64)) != 0) {
            free(b64);
            refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertTemplate, "the template's extension %d cannot be read", i);
            return -1;
        }
        free(b64);
    }
    return 0;
}

/* The issuance error as a PKIFailureInfo bit. */
static int issue_fail_bit(const struct err *e)
{
    if (e->status == 409 || e->status == 422 || e->status == 429 || e->status == 503)
        return OSSL_CMP_PKIFAILUREINFO_systemUnavail;
    if (e->status >= 500)
        return OSSL_CMP_PKIFAILUREINFO_systemFailure;
    return OSSL_CMP_PKIFAILUREINFO_badCertTemplate;
}

/* The chain for extraCerts (without the root) or for caPubs (the root). */
static STACK_OF(X509) *chain_part(const STACK_OF(X509) *chain, bool roots)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    for (int i = 0; sk && i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        bool root = X509_check_issued(x, x) == X509_V_OK;
        if (root != roots)
            continue;
        if (X509_up_ref(x) != 1 || !sk_X509_push(sk, x)) {
            X509_free(x);
            sk_X509_pop_free(sk, X509_free);
            return NULL;
        }
    }
    return sk;
}

static OSSL_CMP_PKISI *cb_cert_request(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, int certReqId,
                                       const OSSL_CRMF_MSG *crm, const X509_REQ *p10cr, X509 **certOut,
                                       STACK_OF(X509) **chainOut, STACK_OF(X509) **caPubs)
{
    struct cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    struct api_ctx *ctx = c->ctx;
    struct issue_result res;
    struct err e;
    OSSL_CMP_PKISI *si = NULL;
    TMPL_VIEW *tv = NULL;
    EVP_PKEY *pub = NULL;
    GENERAL_NAMES *old_sans = NULL;
    json_t *sans = NULL, *extra = NULL;
    unsigned char *csr = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *chain = NULL, *roots = NULL;
    char renewal[sizeof c->who + 16];
    int type = OSSL_CMP_MSG_get_bodytype(req);
    (void)certReqId;
    memset(&res, 0, sizeof res);
    memset(&e, 0, sizeof e);
    if (c->replay) {
        /* re-reading the request of a certConf: nothing is issued again */
        si = OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection, 0, "already answered");
        goto out;
    }
    c->decided = true;
    const OSSL_CRMF_CERTTEMPLATE *tmpl = crm ? OSSL_CRMF_MSG_get0_tmpl(crm) : NULL;
    const X509_NAME *asked = p10cr ? X509_REQ_get_subject_name(p10cr)
                             : tmpl ? OSSL_CRMF_CERTTEMPLATE_get0_subject(tmpl)
                                    : NULL;
    char *dn = asked ? dn_print(asked) : NULL;
    snprintf(c->subject, sizeof c->subject, "%s", dn ? dn : "");
    free(dn);
    if (!authorize(c, srv, req, type == BODY_IR || type == BODY_P10CR ? NEED_MAC_OR_SIG : NEED_SIG))
        goto reject;
    /* Replay protection: a transactionID is claimed for CMP_TXN_TTL_S, so
     * a certificate request must carry a messageTime within that window
     * (and not beyond the clock skew ahead): without one, a request
     * captured over plain HTTP could be sent again once its claim expired. */
    time_t oldest = (time_t)(time_now() - CMP_TXN_TTL_S), latest = (time_t)(time_now() + CMP_MAX_SKEW_S);
    if (!c->hdr->message_time) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_badTime, "messageTime is required in certificate requests");
        goto reject;
    }
    if (X509_cmp_time(c->hdr->message_time, &oldest) < 0) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_badTime, "messageTime is more than %d minutes in the past",
               CMP_TXN_TTL_S / 60);
        goto reject;
    }
    if (X509_cmp_time(c->hdr->message_time, &latest) > 0) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_badTime, "messageTime is more than %d minutes in the future",
               CMP_MAX_SKEW_S / 60);
        goto reject;
    }
    /* the partition's certificate rate, for an authorised request */
    char ra[24];
    int limit = 0;
    bool premium = false;
    int saved_cap = c->req->capability;
    c->req->capability = CAP_CERT;
    bool limited = api_rate_limited(c->req, c->cfg.partition, ra, &limit, &premium);
    c->req->capability = saved_cap;
    if (limited) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_systemUnavail,
               "the partition's rate limit of %d certificate requests is reached; retry after %s s", limit, ra);
        goto reject;
    }
    if (!txn_reserve(c))
        goto reject;
    struct issue_req ir = {
        .partition = c->cfg.partition,
        .ca_id = c->cfg.ca_id,
        .profile_id = c->cfg.profile_id,
        .requester = c->who,
        .requester_ip = c->req->ip,
    };
    if (p10cr) {
        int n = i2d_X509_REQ(p10cr, &csr);
        if (n <= 0) {
            csr = NULL;
            refuse(c, OSSL_CMP_PKIFAILUREINFO_badDataFormat, "the PKCS#10 request cannot be encoded");
            goto reject;
        }
        ir.csr = csr;
        ir.csr_len = (size_t)n;
        char why[160];
        /* X509_REQ_get_extensions() takes a non-const request in OpenSSL 3.0; nothing is changed */
        if (!c->mac && csr_names_match_cert((X509_REQ *)p10cr, c->signer, false, why, sizeof why) != 0) {
            refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertTemplate, SIGNED_FOR_SIGNER "%s", why);
            goto reject;
        }
    } else {
        const OSSL_CRMF_CERTTEMPLATE *t = tmpl;
        if (!t || !(tv = tmpl_view(t))) {
            refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertTemplate, "the certificate template cannot be read");
            goto reject;
        }
        if (!tv->public_key || !(pub = X509_PUBKEY_get(tv->public_key))) {
            refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertTemplate,
                   "the template needs a publicKey of a supported algorithm (central key generation is not "
                   "offered)");
            goto reject;
        }
        const X509_NAME *iss = OSSL_CRMF_CERTTEMPLATE_get0_issuer(t);
        if (iss && X509_NAME_entry_count(iss) > 0 && X509_NAME_cmp(iss, X509_get_subject_name(c->cacert)) != 0) {
            refuse(c, OSSL_CMP_PKIFAILUREINFO_wrongAuthority, "the template names another issuer than CA '%s'",
                   c->ca.id);
            goto reject;
        }
        if (tmpl_exts(c, OSSL_CRMF_CERTTEMPLATE_get0_extensions(t), &sans, &extra) != 0)
            goto reject;
        const X509_NAME *subject = OSSL_CRMF_CERTTEMPLATE_get0_subject(t);
        if (type == BODY_KUR) {
            /* the certificate being updated is the one that signed the request */
            const OSSL_CRMF_CERTID *old = OSSL_CRMF_MSG_get0_regCtrl_oldCertID(crm);
            char oserial[48];
            if (!old) {
                /* RFC 9483 4.1.3: a kur carries the id-regCtrl-oldCertID control */
                refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertId,
                       "a key update request needs the oldCertID control naming the certificate it updates");
                goto reject;
            }
            if ((serial_of(OSSL_CRMF_CERTID_get0_serialNumber(old), oserial, sizeof oserial) != 0 ||
                        strcmp(oserial, c->signer_rec.serial) != 0 || !OSSL_CRMF_CERTID_get0_issuer(old) ||
                        X509_NAME_cmp(OSSL_CRMF_CERTID_get0_issuer(old), X509_get_issuer_name(c->signer)) != 0)) {
                refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertId,
                       "a key update request must be signed with the certificate it updates (oldCertID names "
                       "another one)");
                goto reject;
            }
            if (EVP_PKEY_eq(pub, X509_get0_pubkey(c->signer)) == 1) {
                refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertTemplate, "a key update request needs a new key");
                goto reject;
            }
            if (!subject || X509_NAME_entry_count(subject) == 0)
                subject = X509_get_subject_name(c->signer);
            if (!sans && (old_sans = X509_get_ext_d2i(c->signer, NID_subject_alt_name, NULL, NULL)) &&
                !(sans = san_to_json(old_sans))) {
                refuse(c, OSSL_CMP_PKIFAILUREINFO_systemFailure, "out of memory");
                goto reject;
            }
        }
        ir.pubkey = pub;
        ir.subject_name = subject;
        if (type == BODY_KUR) {
            /* the enrollment events tell renewals by the requester */
            snprintf(renewal, sizeof renewal, "%s/renewal", c->who);
            ir.requester = renewal;
        }
        if (!subject) {
            refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertTemplate, "the template has no subject");
            goto reject;
        }
        if (!c->mac) {
            int crit = -1;
            const X509_EXTENSIONS *te = OSSL_CRMF_CERTTEMPLATE_get0_extensions(t);
            GENERAL_NAMES *asked_sans = te ? X509V3_get_d2i(te, NID_subject_alt_name, &crit, NULL) : NULL;
            char why[160];
            int mismatch = names_match_cert(subject, asked_sans ? asked_sans : old_sans, c->signer, false, why,
                                            sizeof why);
            GENERAL_NAMES_free(asked_sans);
            if (mismatch != 0) {
                refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertTemplate, SIGNED_FOR_SIGNER "%s", why);
                goto reject;
            }
        }
        ir.sans = sans;
        ir.extensions = extra;
    }
    if (issue_certificate(&ctx->env, &ir, &res, &e) != 0) {
        refuse(c, issue_fail_bit(&e), "%s", e.status >= 500 && e.status != 503 ? "internal error" : e.msg);
        goto reject;
    }
    snprintf(c->serial, sizeof c->serial, "%s", res.serial);
    const unsigned char *q = res.der;
    if (!(cert = d2i_X509(NULL, &q, (long)res.der_len)) || !(chain = chain_part(c->chain, false)) ||
        (c->mac && type == BODY_IR && !(roots = chain_part(c->chain, true)))) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_systemFailure, "internal error");
        goto reject;
    }
    log_info("cmp %s/%s: issued %s to %s", c->cfg.partition, c->cfg.id, res.serial, c->who);
    *certOut = cert;
    *chainOut = chain;
    *caPubs = roots;
    cert = NULL;
    chain = roots = NULL;
    si = OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
    goto out;
reject:
    si = rejection(c);
out:
    X509_free(cert);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(roots, X509_free);
    view_free(tv, ASN1_ITEM_rptr(TMPL_VIEW));
    EVP_PKEY_free(pub);
    GENERAL_NAMES_free(old_sans);
    json_decref(sans);
    json_decref(extra);
    OPENSSL_free(csr);
    issue_result_free(&res);
    return si;
}

/* ---- revocation (rr) ---------------------------------------------------- */

static OSSL_CMP_PKISI *cb_rr(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, const X509_NAME *issuer,
                             const ASN1_INTEGER *serial)
{
    struct cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    struct err e;
    char sn[48];
    memset(&e, 0, sizeof e);
    c->decided = true;
    if (!authorize(c, srv, req, NEED_SIG))
        return rejection(c);
    if (!issuer || !serial || serial_of(serial, sn, sizeof sn) != 0) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertId, "certDetails must name the issuer and serialNumber");
        return rejection(c);
    }
    if (X509_NAME_cmp(issuer, X509_get_subject_name(c->cacert)) != 0) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_badCertId, "the certificate is not one of CA '%s'", c->ca.id);
        return rejection(c);
    }
    if (strcmp(sn, c->signer_rec.serial) != 0) {
        refuse(c, 23 /* notAuthorized */, "a revocation request must be signed with the certificate it revokes");
        return rejection(c);
    }
    int reason = rr_reason(req);
    if (reason < 0 || reason == 2 || reason == 6 || reason == 7 || reason == 8) {
        refuse(c, OSSL_CMP_PKIFAILUREINFO_badRequest,
               "reasonCode: one of unspecified, keyCompromise, affiliationChanged, superseded, "
               "cessationOfOperation, privilegeWithdrawn, aACompromise");
        return rejection(c);
    }
    if (api_cert_set_status(c->ctx, &c->ca, sn, "revoked", reason, 0, NULL, c->who, c->req->ip, true, &e) != 0) {
        refuse(c, e.status == 409 ? OSSL_CMP_PKIFAILUREINFO_certRevoked : OSSL_CMP_PKIFAILUREINFO_systemUnavail,
               "%s", e.status >= 500 && e.status != 503 ? "internal error" : e.msg);
        return rejection(c);
    }
    log_info("cmp %s/%s: revoked %s (reason %d) for %s", c->cfg.partition, c->cfg.id, sn, reason, c->who);
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
}

/* ---- general messages (genm) -------------------------------------------- */

/* An InfoTypeAndValue whose value is SEQUENCE OF Certificate (caCerts). */
static OSSL_CMP_ITAV *itav_certs(int nid, const STACK_OF(X509) *certs)
{
    STACK_OF(ASN1_TYPE) *seq = sk_ASN1_TYPE_new_null();
    ASN1_TYPE *v = NULL;
    OSSL_CMP_ITAV *itav = NULL;
    unsigned char *der = NULL;
    for (int i = 0; seq && i < sk_X509_num(certs); i++) {
        unsigned char *d = NULL;
        int n = i2d_X509(sk_X509_value(certs, i), &d);
        ASN1_STRING *s = n > 0 ? ASN1_STRING_new() : NULL;
        ASN1_TYPE *t = s ? ASN1_TYPE_new() : NULL;
        if (!t) {
            ASN1_STRING_free(s);
            OPENSSL_free(d);
            goto out;
        }
        ASN1_STRING_set0(s, d, n);
        ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);
        if (!sk_ASN1_TYPE_push(seq, t)) {
            ASN1_TYPE_free(t);
            goto out;
        }
    }
    int n = seq ? i2d_ASN1_SEQUENCE_ANY(seq, &der) : -1;
    ASN1_STRING *s = n > 0 ? ASN1_STRING_new() : NULL;
    if (!s || !(v = ASN1_TYPE_new())) {
        ASN1_STRING_free(s);
        goto out;
    }
    ASN1_STRING_set0(s, der, n);
    der = NULL;
    ASN1_TYPE_set(v, V_ASN1_SEQUENCE, s);
    if ((itav = OSSL_CMP_ITAV_create(OBJ_nid2obj(nid), v)))
        v = NULL;
out:
    OPENSSL_free(der);
    ASN1_TYPE_free(v);
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    return itav;
}

static int push_itav(STACK_OF(OSSL_CMP_ITAV) *out, OSSL_CMP_ITAV *itav)
{
    if (!itav)
        return -1;
    if (!sk_OSSL_CMP_ITAV_push(out, itav)) {
        OSSL_CMP_ITAV_free(itav);
        return -1;
    }
    return 0;
}

/* caCerts: the configuration's CA chain. rootCaKeyUpdate: no update is
 * pending (absent value). certReqTemplate: no template is required (absent
 * value, RFC 9483 4.3.3). Other types are not answered. An empty genm gets
 * caCerts. */
static int cb_genm(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, const STACK_OF(OSSL_CMP_ITAV) *in,
                   STACK_OF(OSSL_CMP_ITAV) **out)
{
    struct cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    STACK_OF(OSSL_CMP_ITAV) *sk = NULL;
    *out = NULL;
    if (!authorize(c, srv, req, NEED_MAC_OR_SIG)) {
        log_info("cmp %s/%s: genm refused: %s", c->cfg.partition, c->cfg.id, c->why);
        ERR_raise_data(ERR_LIB_CMP, CMP_R_REQUEST_NOT_ACCEPTED, "%s", c->why);
        return 0;
    }
    if (!(sk = sk_OSSL_CMP_ITAV_new_null()))
        goto fail;
    if (sk_OSSL_CMP_ITAV_num(in) == 0 && push_itav(sk, itav_certs(NID_id_it_caCerts, c->chain)) != 0)
        goto fail;
    for (int i = 0; i < sk_OSSL_CMP_ITAV_num(in) && i < 16; i++) {
        int nid = OBJ_obj2nid(OSSL_CMP_ITAV_get0_type(sk_OSSL_CMP_ITAV_value(in, i)));
        int rc = 0;
        if (nid == NID_id_it_caCerts)
            rc = push_itav(sk, itav_certs(nid, c->chain));
        else if (nid == NID_id_it_rootCaKeyUpdate || nid == NID_id_it_certReqTemplate)
            rc = push_itav(sk, OSSL_CMP_ITAV_create(OBJ_nid2obj(nid), NULL));
        if (rc != 0)
            goto fail;
    }
    *out = sk;
    return 1;
fail:
    sk_OSSL_CMP_ITAV_pop_free(sk, OSSL_CMP_ITAV_free);
    ERR_raise(ERR_LIB_CMP, ERR_R_MALLOC_FAILURE);
    return 0;
}

/* ---- confirmation (certConf, error) ------------------------------------- */

/* The confirming party is the requester of the transaction. */
static bool txn_owner(struct cmp_call *c, OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req)
{
    if (!authorize(c, srv, req, NEED_MAC_OR_SIG))
        return false;
    const char *who = json_string_value(json_object_get(c->txn_doc, "requester"));
    if (!who || strcmp(who, c->who) != 0) {
        refuse(c, 23 /* notAuthorized */, "the transaction was opened by another requester");
        return false;
    }
    return true;
}

static int cb_certconf(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, int certReqId,
                       const ASN1_OCTET_STRING *certHash, const OSSL_CMP_PKISI *si)
{
    struct cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    struct api_ctx *ctx = c->ctx;
    struct cert_rec cr;
    X509 *x = NULL;
    ASN1_OCTET_STRING *h = NULL;
    int rc = 0;
    (void)certReqId;
    memset(&cr, 0, sizeof cr);
    if (c->txn_expired) {
        log_info("cmp %s/%s: certConf after the confirmation wait time", c->cfg.partition, c->cfg.id);
        ERR_raise_data(ERR_LIB_CMP, CMP_R_REQUEST_NOT_ACCEPTED,
                       "the certConf came after the %lld s the CA waits for it; the certificate has been revoked",
                       (long long)confirm_wait_s(&c->cfg));
        goto out;
    }
    if (!c->txn_open) {
        ERR_raise(ERR_LIB_CMP, CMP_R_UNEXPECTED_PKIBODY);
        goto out;
    }
    if (!txn_owner(c, srv, req)) {
        log_info("cmp %s/%s: certConf refused: %s", c->cfg.partition, c->cfg.id, c->why);
        ERR_raise_data(ERR_LIB_CMP, CMP_R_REQUEST_NOT_ACCEPTED, "%s", c->why);
        goto out;
    }
    /* OpenSSL acts on the first CertStatus only: an "accepted" followed by
     * a "rejection" would confirm what the client rejected. One certificate
     * per transaction, one CertStatus (RFC 9483 4.1.1). */
    if (certconf_count(req) != 1) {
        log_info("cmp %s/%s: certConf with %d CertStatus entries refused", c->cfg.partition, c->cfg.id,
                 certconf_count(req));
        ERR_raise_data(ERR_LIB_CMP, CMP_R_REQUEST_NOT_ACCEPTED, "a certConf carries exactly one CertStatus");
        goto out;
    }
    const char *sn = json_string_value(json_object_get(c->txn_doc, "serial"));
    const unsigned char *q;
    if (!sn || ctx->store->ops->cert_get(ctx->store, c->cfg.partition, c->ca.pk, sn, &cr) != STORE_OK ||
        (q = cr.der, !(x = d2i_X509(NULL, &q, (long)cr.der_len)))) {
        ERR_raise(ERR_LIB_CMP, CMP_R_ERROR_PROCESSING_MESSAGE);
        goto out;
    }
    if (certHash) {
        if (!(h = X509_digest_sig(x, NULL, NULL)) || ASN1_OCTET_STRING_cmp(h, certHash) != 0) {
            ERR_raise(ERR_LIB_CMP, CMP_R_CERTHASH_UNMATCHED);
            goto out;
        }
    }
    if (si && si_status(si) != OSSL_CMP_PKISTATUS_accepted)
        txn_revoke(c, "CMP: the requester rejected the certificate in its certConf");
    else
        log_info("cmp %s/%s: %s confirmed by %s", c->cfg.partition, c->cfg.id, sn, c->who);
    txn_done(c);
    rc = 1;
out:
    ASN1_OCTET_STRING_free(h);
    X509_free(x);
    cert_rec_free(&cr);
    return rc;
}

static void cb_error(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, const OSSL_CMP_PKISI *statusInfo,
                     const ASN1_INTEGER *errorCode, const OSSL_CMP_PKIFREETEXT *errorDetails)
{
    struct cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    char buf[256];
    (void)errorCode;
    (void)errorDetails;
    const char *txt = statusInfo ? OSSL_CMP_snprint_PKIStatusInfo(statusInfo, buf, sizeof buf) : NULL;
    log_info("cmp %s/%s: error message from the client: %s", c->cfg.partition, c->cfg.id, txt ? txt : "-");
    if (c->txn_open && txn_owner(c, srv, req)) {
        txn_revoke(c, "CMP: the requester answered the certificate with an error message");
        txn_done(c);
    }
}

/* No request is ever answered with "waiting": there is nothing to poll. */
static int cb_pollreq(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, int certReqId, OSSL_CMP_MSG **certReq,
                      int64_t *check_after)
{
    (void)srv;
    (void)req;
    (void)certReqId;
    *certReq = NULL;
    *check_after = 0;
    ERR_raise(ERR_LIB_CMP, CMP_R_UNEXPECTED_PKIBODY);
    return 0;
}

/* ---- the endpoint --------------------------------------------------------- */

static bool is_cert_request(int type)
{
    return type == BODY_IR || type == BODY_CR || type == BODY_P10CR || type == BODY_KUR;
}

/* 1 and the 429 in resp when the partition is over its limit. */
static int cmp_rate_limited(struct http_req *req, struct http_resp *resp, const char *partition, int capability)
{
    char ra[24];
    int limit = 0;
    bool premium = false;
    int saved = req->capability;
    req->capability = capability;
    /* before authentication: a bucket per client address (strangers cannot
     * spend the partition's allowance); certificate requests also take the
     * partition's certificate bucket once authorised (cb_cert_request) */
    int over = api_rate_limited_client(req, partition, ra, &limit, &premium);
    req->capability = saved;
    if (!over)
        return 0;
    text_error(resp, 429, "rate limit of %d %s requests reached from this address; retry after %s s", limit,
               capability == CAP_CERT ? "certificate" : "other", ra);
    resp_header(resp, "Retry-After", ra);
    return 1;
}

static bool content_type_ok(const char *ct)
{
    size_t n = sizeof ct_cmp - 1;
    return ct && strncasecmp(ct, ct_cmp, n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

/* The server context for this request: callbacks, responder credentials,
 * the CA chain as trust anchors, the MAC secret when there is one. */
static OSSL_CMP_SRV_CTX *srv_new(struct cmp_call *c, EVP_PKEY *rakey, X509 *racert, const char *secret)
{
    OSSL_CMP_SRV_CTX *srv = OSSL_CMP_SRV_CTX_new(NULL, NULL);
    OSSL_CMP_CTX *cctx = srv ? OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv) : NULL;
    X509_STORE *ts = X509_STORE_new();
    bool ok = cctx && ts &&
              OSSL_CMP_SRV_CTX_init(srv, c, cb_cert_request, cb_rr, cb_genm, cb_error, cb_certconf, cb_pollreq) ==
                  1 &&
              OSSL_CMP_SRV_CTX_set_grant_implicit_confirm(srv, proto_bool(&c->cfg, "implicitConfirm", true)) == 1 &&
              OSSL_CMP_SRV_CTX_set_accept_unprotected(srv, 0) == 1 &&
              OSSL_CMP_SRV_CTX_set_send_unprotected_errors(srv, 0) == 1 &&
              OSSL_CMP_SRV_CTX_set_accept_raverified(srv, 0) == 1 && OSSL_CMP_CTX_set_log_cb(cctx, cmp_log) == 1 &&
              OSSL_CMP_CTX_set1_cert(cctx, racert) == 1 && OSSL_CMP_CTX_set1_pkey(cctx, rakey) == 1 &&
              OSSL_CMP_CTX_set1_untrusted(cctx, c->chain) == 1;
    for (int i = 0; ok && i < sk_X509_num(c->chain); i++)
        ok = X509_STORE_add_cert(ts, sk_X509_value(c->chain, i)) == 1;
    if (ok && OSSL_CMP_CTX_set0_trustedStore(cctx, ts) == 1)
        ts = NULL;
    else
        ok = false;
    if (ok && secret)
        ok = OSSL_CMP_CTX_set1_secretValue(cctx, (const unsigned char *)secret, (int)strlen(secret)) == 1 &&
             OSSL_CMP_CTX_set1_referenceValue(cctx, (const unsigned char *)c->kid, (int)strlen(c->kid)) == 1;
    X509_STORE_free(ts);
    if (!ok) {
        OSSL_CMP_SRV_CTX_free(srv);
        return NULL;
    }
    return srv;
}

/* The credential named by a MAC-protected request's senderKID; its secret
 * (NULL when unknown: the protection check then fails). */
static char *mac_secret(struct cmp_call *c)
{
    const ASN1_OCTET_STRING *kid = c->hdr->sender_kid;
    char *secret = NULL;
    int n = kid ? ASN1_STRING_length(kid) : 0;
    if (n < 1 || (size_t)n > PROTO_CRED_ID_MAX)
        return NULL;
    memcpy(c->kid, ASN1_STRING_get0_data(kid), (size_t)n);
    c->kid[n] = 0;
    if (strlen(c->kid) != (size_t)n || !proto_cred_id_valid(c->kid) ||
        proto_cred_secret(c->ctx->store, c->ctx->env.mkey, c->cfg.partition, c->cfg.id, c->kid, &secret) != 0) {
        log_info("cmp %s/%s: MAC-protected request with an unknown reference", c->cfg.partition, c->cfg.id);
        c->kid[0] = 0;
        return NULL;
    }
    return secret;
}

/* Whether the MAC of `msg` verifies with `secret`. Checked before the
 * server context gets the secret: a request with a wrong MAC is answered
 * like one with an unknown reference (signed by the responder, never MACed
 * with the real secret, and without telling which references exist). */
static bool mac_ok(const OSSL_CMP_MSG *msg, const char *secret)
{
    OSSL_CMP_CTX *t = OSSL_CMP_CTX_new(NULL, NULL);
    ERR_set_mark();
    bool ok = t && OSSL_CMP_CTX_set_log_cb(t, quiet_log) == 1 &&
              OSSL_CMP_CTX_set1_secretValue(t, (const unsigned char *)secret, (int)strlen(secret)) == 1 &&
              OSSL_CMP_validate_msg(t, msg) == 1;
    ERR_pop_to_mark();
    OSSL_CMP_CTX_free(t);
    return ok;
}

static void h_cmp(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct cmp_call c;
    struct err e;
    OSSL_CMP_MSG *msg = NULL, *rsp = NULL;
    OSSL_CMP_SRV_CTX *srv = NULL;
    EVP_PKEY *rakey = NULL;
    X509 *racert = NULL;
    char *secret = NULL;
    unsigned char *out = NULL;
    memset(&c, 0, sizeof c);
    memset(&e, 0, sizeof e);
    c.ctx = ctx;
    c.req = req;
    snprintf(req->partition, sizeof req->partition, "%.64s", req->params[0]);
    if (proto_cfg_load(ctx->store, req->params[0], req->params[1], "cmp", &c.cfg, &e) != 0) {
        if (e.status == 404)
            text_error(resp, 404, "no CMP configuration '%.32s' in account '%.64s'", req->params[1], req->params[0]);
        else
            text_error(resp, 503, "the CMP service is unavailable, retry later");
        goto out;
    }
    c.cfg_loaded = true;
    if (!content_type_ok(http_header(req, "Content-Type"))) {
        text_error(resp, 415, "Content-Type must be %s", ct_cmp);
        goto out;
    }
    if (req->body.len > CMP_BODY_MAX || req->body_truncated) {
        text_error(resp, 413, "a PKIMessage of at most %d bytes", CMP_BODY_MAX);
        goto out;
    }
    const unsigned char *p = req->body.data;
    if (req->body.len == 0 || !(msg = d2i_OSSL_CMP_MSG(NULL, &p, (long)req->body.len)) ||
        p != req->body.data + req->body.len || !(c.hdr = hdr_view(msg))) {
        text_error(resp, 400, "the body is not one DER-encoded PKIMessage");
        goto out;
    }
    c.type = OSSL_CMP_MSG_get_bodytype(msg);
    if (cmp_rate_limited(req, resp, c.cfg.partition, is_cert_request(c.type) ? CAP_CERT : CAP_OTHER))
        goto out;
    int s = ctx->store->ops->ca_get(ctx->store, c.cfg.partition, c.cfg.ca_id, &c.ca);
    if (s != STORE_OK || strcmp(c.ca.status, "active") != 0 || !(c.cacert = ca_cert(&c.ca)) ||
        !(c.chain = ca_chain(&ctx->env, &c.ca))) {
        text_error(resp, 503, "the CA of CMP configuration '%s' is not available", c.cfg.id);
        goto out;
    }
    if (ra_cert_get(&ctx->env, c.cfg.partition, c.cfg.ca_id, "cmp", c.cfg.id, &rakey, &racert, &e) != 0) {
        log_error("cmp %s/%s: no responder certificate: %s", c.cfg.partition, c.cfg.id, e.msg);
        text_error(resp, 503, "the CMP responder is not available, retry later");
        goto out;
    }
    c.mac = c.hdr->protection_alg && OBJ_obj2nid(c.hdr->protection_alg->algorithm) == NID_id_PasswordBasedMAC;
    if (c.mac && !(secret = mac_secret(&c))) {
        /* an unknown reference costs the same MAC computation as a known
         * one with a wrong secret: the answer time tells nothing either */
        unsigned char dummy[32];
        char hex[2 * sizeof dummy + 1];
        if (RAND_bytes(dummy, sizeof dummy) == 1) {
            for (size_t i = 0; i < sizeof dummy; i++)
                snprintf(hex + 2 * i, 3, "%02x", dummy[i]);
            (void)mac_ok(msg, hex);
        }
    } else if (c.mac && !mac_ok(msg, secret)) {
        log_info("cmp %s/%s: MAC-protected request with a wrong MAC for reference '%s'", c.cfg.partition, c.cfg.id,
                 c.kid);
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
        secret = NULL;
        c.kid[0] = 0;
    }
    if (!(srv = srv_new(&c, rakey, racert, secret))) {
        text_error(resp, 500, "internal error");
        goto out;
    }
    if (c.type == BODY_CERTCONF || c.type == BODY_ERROR)
        txn_resume(&c, srv);
    rsp = OSSL_CMP_SRV_process_request(srv, msg);
    if (!rsp) {
        log_openssl("cmp: no answer");
        text_error(resp, 400, "the request cannot be answered with a PKIMessage");
        goto out;
    }
    int rt = OSSL_CMP_MSG_get_bodytype(rsp);
    /* RFC 4210 5.3.18: a certConf with no CertStatus rejects every
     * certificate supplied. OpenSSL answers it with a pkiConf without asking
     * the certConf callback, so the rejection is carried out here. */
    if (c.type == BODY_CERTCONF && c.txn_open && rt == BODY_PKICONF && certconf_count(msg) == 0) {
        if (txn_owner(&c, srv, msg)) {
            txn_revoke(&c, "CMP: the requester rejected every certificate (an empty certConf)");
            txn_done(&c);
        } else {
            log_info("cmp %s/%s: empty certConf ignored: %s", c.cfg.partition, c.cfg.id, c.why);
        }
    }
    if ((is_cert_request(c.type) || c.type == BODY_RR) && !c.decided)
        audit_refusal(&c, c.mac && !secret ? "unknown reference or wrong MAC"
                                           : "the request failed the protocol checks (protection, proof of "
                                             "possession or form)");
    if (c.serial[0])
        txn_issued(&c, rsp,
                   !(rt == BODY_IP || rt == BODY_CP || rt == BODY_KUP) ||
                       OSSL_CMP_CTX_get_option(OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv), OSSL_CMP_OPT_IMPLICIT_CONFIRM) ==
                           1);
    int n = i2d_OSSL_CMP_MSG(rsp, &out);
    if (n <= 0) {
        out = NULL;
        text_error(resp, 500, "internal error");
        goto out;
    }
    resp_bytes(resp, 200, ct_cmp, out, (size_t)n);
out:
    ERR_clear_error();
    if (secret) {
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
    }
    OPENSSL_free(out);
    OSSL_CMP_MSG_free(rsp);
    OSSL_CMP_MSG_free(msg);
    OSSL_CMP_SRV_CTX_free(srv);
    EVP_PKEY_free(rakey);
    X509_free(racert);
    call_free(&c);
}

/* ---- housekeeping -------------------------------------------------------- */

/* The open transactions of one configuration past their deadline: their
 * certificates are revoked and the transactions ended. */
static void sweep_cfg(struct api_ctx *ctx, const char *part, const char *cfg_id, const char *ca_id, int64_t now)
{
    struct store *st = ctx->store;
    struct obj_rec *items = NULL;
    struct ca_rec ca;
    size_t n = 0;
    bool have_ca = false;
    memset(&ca, 0, sizeof ca);
    if (st->ops->obj_list(st, part, CMP_TXN_KIND, cfg_id, NULL, 0, &items, &n) != STORE_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        struct obj_rec *o = &items[i];
        json_error_t je;
        json_t *doc = strcmp(o->status, "open") == 0 && o->json ? json_loads(o->json, 0, &je) : NULL;
        const char *sn = json_string_value(json_object_get(doc, "serial"));
        const char *who = json_string_value(json_object_get(doc, "requester"));
        if (sn && txn_late(doc, now) &&
            (have_ca || (have_ca = st->ops->ca_get(st, part, ca_id, &ca) == STORE_OK))) {
            /* ended first: a certConf racing the sweep then finds it done */
            json_t *done = json_pack("{s:s?,s:s,s:s}", "requester", who, "serial", sn, "outcome", "unconfirmed");
            char *js = done ? json_dumps(done, JSON_COMPACT) : NULL;
            if (js) {
                free(o->json);
                o->json = js;
                snprintf(o->status, sizeof o->status, "done");
                if (st->ops->obj_put(st, o, OBJ_UPDATE, NULL) == STORE_OK)
                    unconfirmed_revoke(ctx, &ca, cfg_id, sn, "CMP: no certConf within the confirmation wait time",
                                       "system:cmp", NULL);
            }
            json_decref(done);
        }
        json_decref(doc);
    }
    obj_list_free(items, n);
    if (have_ca)
        ca_rec_free(&ca);
}

void cmp_housekeeping(struct api_ctx *ctx, int64_t *next_sweep)
{
    struct store *st = ctx->store;
    int64_t now = time_now();
    if (now >= *next_sweep) {
        *next_sweep = now + CMP_CONFIRM_SWEEP_S;
        /* the store lists by partition: walk those with active CAs */
        struct ca_list cl;
        if (st->ops->ca_list_active_all(st, &cl) == STORE_OK) {
            const char *last = "";
            for (size_t k = 0; k < cl.n; k++) {
                const char *part = cl.items[k].partition_id;
                struct obj_rec *items = NULL;
                size_t n = 0;
                if (strcmp(part, last) == 0)
                    continue;
                last = part;
                if (st->ops->obj_list(st, part, PROTO_KIND, NULL, NULL, 0, &items, &n) != STORE_OK)
                    continue;
                for (size_t i = 0; i < n; i++) {
                    struct proto_cfg cfg;
                    struct err e;
                    if (proto_cfg_load(st, part, items[i].id, "cmp", &cfg, &e) != 0)
                        continue;
                    sweep_cfg(ctx, part, cfg.id, cfg.ca_id, now);
                    proto_cfg_free(&cfg);
                }
                obj_list_free(items, n);
            }
            ca_list_free(&cl);
        }
    }
    st->ops->obj_purge(st, CMP_TXN_KIND, now);
}

const struct route cmp_routes[] = {
    {"POST", "/cmp/{}/{}", h_cmp, CAP_OTHER, LIMIT_CMP_MESSAGE_BYTES},
};
const size_t cmp_routes_count = sizeof cmp_routes / sizeof cmp_routes[0];
