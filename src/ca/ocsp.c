#include "ca/ocsp.h"

#include "ca/ca.h"
#include "ca/ca_cache.h"
#include "ca/crl.h"
#include "ca/svc_cert.h"

#include "crypto/keyspec.h"
#include "util/codec.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "x509/certbuild.h"
#include "x509/dn.h"
#include "x509/ext.h"

#include <limits.h>
#include <openssl/asn1t.h>
#include <openssl/ocsp.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CACHE_MAX_PER_CA 200000
/* Cached answers re-signed inline after a status change (per change). */
#define OCSP_RESIGN_MAX 8

/* ---- responder certificate ---------------------------------------------- */

static void responder_aad(char *out, size_t n, const char *partition, const char *ca_id)
{
    snprintf(out, n, "ocsp-key:%s/%s", partition, ca_id);
}

/* notAfter of a certificate as Unix time; 0 if it cannot be read. */
static int64_t not_after_of(const X509 *x)
{
    struct tm tm;
    if (!x || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* Due for a new responder certificate: within the rollover period of its
 * end, unless it already ends with the CA (a new one could not end later). */
static bool responder_due(int64_t responder_not_after, int64_t ca_not_after, int64_t at)
{
    return responder_not_after <= at + OCSP_ROLLOVER_DAYS * 86400LL &&
           (ca_not_after == 0 || responder_not_after < ca_not_after);
}

/* The responder certificate is still "issued" under its CA (an operator
 * who revoked or suspended it, say after a key compromise, gets a new one:
 * relying parties never check a responder's status, id-pkix-ocsp-nocheck).
 * A certificate the store cannot tell about counts as issued. */
static bool responder_issued(const struct ca_env *env, const struct ca_rec *ca, const struct responder_rec *rr)
{
    const unsigned char *p = rr->cert_der;
    X509 *x = p ? d2i_X509(NULL, &p, (long)rr->cert_len) : NULL;
    char *serial = x ? x509_serial_hex(x) : NULL;
    struct cert_rec cr;
    bool issued = true;
    memset(&cr, 0, sizeof cr);
    if (serial && env->store->ops->cert_get(env->store, ca->partition_id, ca->pk, serial, &cr) == STORE_OK)
        issued = strcmp(cr.status, "issued") == 0;
    cert_rec_free(&cr);
    free(serial);
    X509_free(x);
    return issued;
}

bool ocsp_responder_serial(const struct ca_env *env, const struct ca_rec *ca, const char *serial)
{
    struct responder_rec rr;
    bool same = false;
    memset(&rr, 0, sizeof rr);
    if (env->store->ops->responder_get(env->store, ca->partition_id, ca->pk, &rr) == STORE_OK) {
        const unsigned char *p = rr.cert_der;
        X509 *x = p ? d2i_X509(NULL, &p, (long)rr.cert_len) : NULL;
        char *hex = x ? x509_serial_hex(x) : NULL;
        same = hex && serial && strcasecmp(hex, serial) == 0;
        free(hex);
        X509_free(x);
    }
    responder_rec_free(&rr);
    return same;
}

int ocsp_responder_ensure(const struct ca_env *env, const struct ca_rec *ca, struct err *e)
{
    struct responder_rec rr;
    const struct keyspec *ks = keyspec_find(ca->key_label), *va = ks ? keyspec_find(ks->va_label) : NULL;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    unsigned char *der = NULL;
    size_t dl = 0;
    char aad[160], dn[256];
    int rc = -1;
    int64_t now = time_now(), nb = 0;
    memset(&rr, 0, sizeof rr);
    if (!ca->ocsp_enabled)
        return 0;
    int64_t prior_created = 0;
    if (env->store->ops->responder_get(env->store, ca->partition_id, ca->pk, &rr) == STORE_OK) {
        X509 *cx = ca_cert(ca);
        bool due = responder_due(rr.not_after, not_after_of(cx), now) || !responder_issued(env, ca, &rr);
        X509_free(cx);
        prior_created = rr.created_at;
        if (!due) {
            responder_rec_free(&rr);
            return 0;
        }
    }
    responder_rec_free(&rr);
    responder_aad(aad, sizeof aad, ca->partition_id, ca->id);
    /* generated (and later used) in the signer process when there is one */
    if (!va || key_generate(env, va, aad, &rr.key_blob, &rr.key_blob_len, &key) != 0)
        goto fail;
    /* The guide's responder naming: CN=<account>_<ca>, OU=Validation Authorities, O=<account> */
    snprintf(dn, sizeof dn, "CN=%s_%s, OU=Validation Authorities, O=%s", ca->partition_id, ca->id, ca->partition_id);
    struct svc_cert_req sr = {dn, key, KU_DIGITAL_SIGNATURE, "OCSPSigning", true, OCSP_RESPONDER_DAYS,
                              "ocsp-responder", NULL};
    if (!(x = svc_cert_issue(env, ca, &sr, &der, &dl, &nb, &rr.not_after, e)))
        goto fail;
    rr.cert_der = der;
    rr.cert_len = dl;
    /* (CA, created_at) is the key, and the newest one serves: a second
     * replacement within the same second comes after the first */
    rr.created_at = now > prior_created ? now : prior_created + 1;
    char target[96];
    snprintf(target, sizeof target, "ca:%s/ocsp-responder", ca->id);
    struct audit_rec a = {"system", "ocsp.responder.issue", target, NULL};
    if (env->store->ops->responder_put(env->store, ca->partition_id, ca->pk, &rr, &a) != STORE_OK)
        goto fail;
    rr.cert_der = NULL;
    rc = 0;
    goto out;
fail:
    err_set(e, 500, "internal", "", "cannot issue the OCSP responder certificate");
out:
    free(rr.key_blob);
    OPENSSL_free(der);
    EVP_PKEY_free(key);
    X509_free(x);
    return rc;
}

/* ---- per-CA responder state and response cache --------------------------- */

struct cached {
    unsigned char key[32];
    unsigned char *der;
    size_t len;
    int64_t this_update, next_update;
    unsigned char *req;  /* the request, for refreshing ahead of nextUpdate */
    size_t req_len;
    char serial[48];     /* single-certificate requests: its serial */
    bool multi;          /* several certificates: dropped on any change */
};

struct ocsp_ca {
    int64_t ca_pk;
    char partition[STORE_ID_MAX + 1];
    char ca_id[24];
    X509 *issuer;
    X509 *responder;
    struct signer *rsigner; /* the responder key (in the signer process) */
    int64_t responder_not_after;
    int64_t responder_created; /* the store row's created_at: a newer row replaces it */
    int64_t issuer_not_after;
    int64_t recheck_at; /* when to look in the store again for a newer responder */
    int64_t archive_cutoff;
    int64_t epoch;      /* store_epoch the table was filled at (shared stores) */
    pthread_mutex_t mu; /* guards the table and gen */
    struct cached *tab;
    size_t cap, n;
    /* Moves whenever a status may have changed (and when the table is
     * emptied). An answer is stored only if gen has not moved since before
     * its status was read, so an answer signed from a read that a
     * revocation overtook is never cached after the revocation's purge. */
    uint64_t gen;
    struct ocsp_ca *next;
};

struct ocsp_cache {
    pthread_mutex_t mu;
    struct ocsp_ca *head;
    struct ocsp_ca *retired; /* replaced states; a request may still use one */
};

struct ocsp_cache *ocsp_cache_new(void)
{
    struct ocsp_cache *c = calloc(1, sizeof(*c));
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void table_clear(struct ocsp_ca *o)
{
    for (size_t i = 0; i < o->cap; i++) {
        free(o->tab[i].der);
        free(o->tab[i].req);
    }
    free(o->tab);
    o->tab = NULL;
    o->cap = o->n = 0;
    o->gen++;
}

static void ocsp_ca_free(struct ocsp_ca *o)
{
    table_clear(o);
    X509_free(o->issuer);
    X509_free(o->responder);
    signer_free(o->rsigner);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

void ocsp_cache_free(struct ocsp_cache *c)
{
    if (!c)
        return;
    while (c->head) {
        struct ocsp_ca *n = c->head->next;
        ocsp_ca_free(c->head);
        c->head = n;
    }
    while (c->retired) {
        struct ocsp_ca *n = c->retired->next;
        ocsp_ca_free(c->retired);
        c->retired = n;
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void ocsp_cache_invalidate(struct ocsp_cache *c, int64_t ca_pk)
{
    pthread_mutex_lock(&c->mu);
    for (struct ocsp_ca *o = c->head; o; o = o->next)
        if (o->ca_pk == ca_pk) {
            pthread_mutex_lock(&o->mu);
            table_clear(o);
            pthread_mutex_unlock(&o->mu);
        }
    pthread_mutex_unlock(&c->mu);
}

void ocsp_cache_reload(struct ocsp_cache *c, int64_t ca_pk)
{
    pthread_mutex_lock(&c->mu);
    for (struct ocsp_ca **pp = &c->head, *o; (o = *pp); pp = &o->next) {
        if (o->ca_pk != ca_pk)
            continue;
        /* retired as at a rollover: a request inside it finishes, the next
         * one loads the CA's responder afresh */
        *pp = o->next;
        pthread_mutex_lock(&o->mu);
        table_clear(o);
        pthread_mutex_unlock(&o->mu);
        o->next = c->retired;
        c->retired = o;
        break;
    }
    pthread_mutex_unlock(&c->mu);
}

static struct ocsp_ca *load_ca(const struct ca_env *env, const struct ca_rec *ca)
{
    struct responder_rec rr;
    struct ocsp_ca *o = calloc(1, sizeof(*o));
    const struct keyspec *ks = keyspec_find(ca->key_label), *va = ks ? keyspec_find(ks->va_label) : NULL;
    char aad[160];
    memset(&rr, 0, sizeof rr);
    if (!o || !va)
        goto fail;
    pthread_mutex_init(&o->mu, NULL);
    o->ca_pk = ca->pk;
    snprintf(o->partition, sizeof o->partition, "%s", ca->partition_id);
    snprintf(o->ca_id, sizeof o->ca_id, "%s", ca->id);
    if (env->store->ops->responder_get(env->store, ca->partition_id, ca->pk, &rr) != STORE_OK)
        goto fail;
    const unsigned char *p = rr.cert_der;
    responder_aad(aad, sizeof aad, ca->partition_id, ca->id);
    if (!(o->responder = d2i_X509(NULL, &p, (long)rr.cert_len)) ||
        !(o->rsigner = key_signer(env, rr.key_blob, rr.key_blob_len, aad, va->md, va->pss)) ||
        !(o->issuer = ca_cert(ca)))
        goto fail;
    o->responder_not_after = rr.not_after;
    o->responder_created = rr.created_at;
    o->issuer_not_after = not_after_of(o->issuer);
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notBefore(o->issuer), &tm) == 1)
        o->archive_cutoff = (int64_t)timegm(&tm);
    responder_rec_free(&rr);
    return o;
fail:
    responder_rec_free(&rr);
    if (o)
        ocsp_ca_free(o);
    return NULL;
}

/* The created_at of the CA's responder row in the store (0 if none). */
static int64_t stored_responder(const struct ca_env *env, const struct ca_rec *ca)
{
    struct responder_rec rr;
    int64_t created = 0;
    memset(&rr, 0, sizeof rr);
    if (env->store->ops->responder_get(env->store, ca->partition_id, ca->pk, &rr) == STORE_OK)
        created = rr.created_at;
    responder_rec_free(&rr);
    return created;
}

/* The state for a CA; reloaded when the store holds a newer responder: one
 * rolled over by the scheduler, or one that replaced a revoked responder
 * (on any node). The store is asked at most once a minute per CA, or at
 * once when `recheck` (another node changed a status of the CA). */
static struct ocsp_ca *get_ca(struct ocsp_cache *c, const struct ca_env *env, const struct ca_rec *ca, bool recheck)
{
    struct ocsp_ca *o, **pp;
    pthread_mutex_lock(&c->mu);
    for (pp = &c->head; (o = *pp); pp = &o->next)
        if (o->ca_pk == ca->pk)
            break;
    int64_t now = time_now();
    if (o && (recheck || now >= o->recheck_at)) {
        o->recheck_at = now + 60;
        bool due = responder_due(o->responder_not_after, o->issuer_not_after, now - 3600);
        int64_t created = stored_responder(env, ca);
        struct ocsp_ca *fresh = (due || created > o->responder_created) ? load_ca(env, ca) : NULL;
        if (fresh && fresh->responder_created > o->responder_created) {
            *pp = o->next;
            /* a request or the refresh may hold this state and be inside
             * its table right now: empty it under the table's own lock */
            pthread_mutex_lock(&o->mu);
            table_clear(o);
            pthread_mutex_unlock(&o->mu);
            o->next = c->retired;
            c->retired = o;
            o = fresh;
            o->next = c->head;
            c->head = o;
        } else if (fresh) {
            ocsp_ca_free(fresh); /* never shared */
        }
    }
    if (!o && (o = load_ca(env, ca))) {
        o->next = c->head;
        c->head = o;
    }
    pthread_mutex_unlock(&c->mu);
    return o; /* states are only freed by ocsp_cache_free */
}

static struct cached *slot(struct ocsp_ca *o, const unsigned char key[32])
{
    size_t i;
    memcpy(&i, key, sizeof i);
    for (size_t k = 0; k < o->cap; k++) {
        struct cached *s = &o->tab[(i + k) & (o->cap - 1)];
        if (!s->der || memcmp(s->key, key, 32) == 0)
            return s;
    }
    return NULL;
}

/* On a miss, *gen is the generation to pass to cache_store. */
static int cache_lookup(struct ocsp_ca *o, const unsigned char key[32], int64_t now, struct ocsp_answer *out,
                        uint64_t *gen)
{
    int hit = 0;
    pthread_mutex_lock(&o->mu);
    *gen = o->gen;
    struct cached *s = o->cap ? slot(o, key) : NULL;
    /* serve until half-way to nextUpdate, then sign afresh */
    if (s && s->der && now < s->this_update + (s->next_update - s->this_update) / 2 && (out->der = malloc(s->len))) {
        memcpy(out->der, s->der, s->len);
        out->len = s->len;
        out->this_update = s->this_update;
        out->next_update = s->next_update;
        out->cached = 1;
        hit = 1;
    }
    pthread_mutex_unlock(&o->mu);
    return hit;
}

static void cache_store(struct ocsp_ca *o, const unsigned char key[32], const struct ocsp_answer *a,
                        const unsigned char *reqder, size_t reqlen, const char *serial, bool multi, uint64_t gen)
{
    pthread_mutex_lock(&o->mu);
    if (o->gen != gen)
        goto out; /* a status changed since the answer's status was read */
    if (o->n >= CACHE_MAX_PER_CA)
        table_clear(o);
    if (o->n * 2 >= o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 1024;
        struct cached *old = o->tab, *nt = calloc(ncap, sizeof(*nt));
        size_t ocap = o->cap;
        if (!nt)
            goto out;
        o->tab = nt;
        o->cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].der)
                *slot(o, old[i].key) = old[i];
        free(old);
    }
    struct cached *s = slot(o, key);
    unsigned char *d = malloc(a->len), *rq = malloc(reqlen);
    if (!s || !d || !rq) {
        free(d);
        free(rq);
        goto out;
    }
    if (!s->der)
        o->n++;
    free(s->der);
    free(s->req);
    memcpy(s->key, key, 32);
    memcpy(d, a->der, a->len);
    memcpy(rq, reqder, reqlen);
    s->der = d;
    s->len = a->len;
    s->this_update = a->this_update;
    s->next_update = a->next_update;
    s->req = rq;
    s->req_len = reqlen;
    snprintf(s->serial, sizeof s->serial, "%s", serial ? serial : "");
    s->multi = multi;
out:
    pthread_mutex_unlock(&o->mu);
}

/* ---- request handling ------------------------------------------------------ */

static int error_response(int status, struct ocsp_answer *out)
{
    OCSP_RESPONSE *r = OCSP_response_create(status, NULL);
    unsigned char *p = NULL;
    int n = r ? i2d_OCSP_RESPONSE(r, &p) : -1;
    OCSP_RESPONSE_free(r);
    if (n <= 0)
        return -1;
    out->der = malloc((size_t)n);
    if (!out->der) {
        OPENSSL_free(p);
        return -1;
    }
    memcpy(out->der, p, (size_t)n);
    out->len = (size_t)n;
    OPENSSL_free(p);
    return 0;
}

/* RFC 8954: the nonce value is 1 to 32 octets. -1 malformed, 0 absent, 1 ok. */
int ocsp_nonce_check(OCSP_REQUEST *req)
{
    int idx = OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1);
    if (idx < 0)
        return 0;
    if (OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, idx) >= 0)
        return -1; /* twice */
    X509_EXTENSION *x = OCSP_REQUEST_get_ext(req, idx);
    ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(x);
    const unsigned char *p = ASN1_STRING_get0_data(v);
    long len = 0;
    int tag = 0, cls = 0;
    int r = ASN1_get_object(&p, &len, &tag, &cls, ASN1_STRING_length(v));
    if ((r & 0x80) || tag != V_ASN1_OCTET_STRING || cls != V_ASN1_UNIVERSAL ||
        p + len != ASN1_STRING_get0_data(v) + ASN1_STRING_length(v) || len < 1 || len > 32)
        return -1;
    return 1;
}

/* RFC 6960 4.2.1 ResponseData and BasicOCSPResponse, mirrored with
 * OpenSSL's ASN.1 templates: OpenSSL signs a BasicOCSPResponse only with an
 * EVP_PKEY in this process, while the responder key stays in the signer
 * process. The parts are OpenSSL's own types (OCSP_RESPID, OCSP_SINGLERESP,
 * extensions, certificates); OpenSSL encodes and parses everything. */
typedef struct {
    ASN1_INTEGER *version;
    OCSP_RESPID *responder_id;
    ASN1_GENERALIZEDTIME *produced_at;
    STACK_OF(OCSP_SINGLERESP) *responses;
    STACK_OF(X509_EXTENSION) *exts;
} RESPDATA_VIEW;

ASN1_SEQUENCE(RESPDATA_VIEW) = {
    ASN1_EXP_OPT(RESPDATA_VIEW, version, ASN1_INTEGER, 0),
    ASN1_SIMPLE(RESPDATA_VIEW, responder_id, OCSP_RESPID),
    ASN1_SIMPLE(RESPDATA_VIEW, produced_at, ASN1_GENERALIZEDTIME),
    ASN1_SEQUENCE_OF(RESPDATA_VIEW, responses, OCSP_SINGLERESP),
    ASN1_EXP_SEQUENCE_OF_OPT(RESPDATA_VIEW, exts, X509_EXTENSION, 1),
} ASN1_SEQUENCE_END(RESPDATA_VIEW)
IMPLEMENT_ASN1_ALLOC_FUNCTIONS(RESPDATA_VIEW)

typedef struct {
    RESPDATA_VIEW *tbs;
    X509_ALGOR *alg;
    ASN1_BIT_STRING *sig;
    STACK_OF(X509) *certs;
} BASICRESP_VIEW;

ASN1_SEQUENCE(BASICRESP_VIEW) = {
    ASN1_SIMPLE(BASICRESP_VIEW, tbs, RESPDATA_VIEW),
    ASN1_SIMPLE(BASICRESP_VIEW, alg, X509_ALGOR),
    ASN1_SIMPLE(BASICRESP_VIEW, sig, ASN1_BIT_STRING),
    ASN1_EXP_SEQUENCE_OF_OPT(BASICRESP_VIEW, certs, X509, 0),
} ASN1_SEQUENCE_END(BASICRESP_VIEW)
IMPLEMENT_ASN1_ALLOC_FUNCTIONS(BASICRESP_VIEW)

/* The signed form of `draft` (its responses and extensions): responderID
 * by key hash, producedAt now, signed by the responder through its signer,
 * the responder certificate included. A new OCSP_BASICRESP, NULL on error. */
static OCSP_BASICRESP *sign_basic(struct ocsp_ca *o, OCSP_BASICRESP *draft)
{
    BASICRESP_VIEW *v = BASICRESP_VIEW_new();
    unsigned char *tbs = NULL, *sig = NULL, *der = NULL;
    size_t siglen = 0;
    int tl, dl;
    OCSP_BASICRESP *bs = NULL;
    /* ASN1_item_new made the required parts: the (empty) responses, the
     * responderID, producedAt, the algorithm and the signature */
    if (!v || !v->tbs->responses ||
        OCSP_RESPID_set_by_key(v->tbs->responder_id, o->responder) != 1 ||
        !ASN1_GENERALIZEDTIME_set(v->tbs->produced_at, time_now()))
        goto out;
    for (int i = 0; i < OCSP_resp_count(draft); i++) {
        OCSP_SINGLERESP *one = ASN1_item_dup(ASN1_ITEM_rptr(OCSP_SINGLERESP), OCSP_resp_get0(draft, i));
        if (!one || !sk_OCSP_SINGLERESP_push(v->tbs->responses, one)) {
            OCSP_SINGLERESP_free(one);
            goto out;
        }
    }
    for (int i = 0; i < OCSP_BASICRESP_get_ext_count(draft); i++) {
        X509_EXTENSION *x = X509_EXTENSION_dup(OCSP_BASICRESP_get_ext(draft, i));
        if (!x || !X509v3_add_ext(&v->tbs->exts, x, -1)) {
            X509_EXTENSION_free(x);
            goto out;
        }
        X509_EXTENSION_free(x);
    }
    if ((tl = ASN1_item_i2d((ASN1_VALUE *)v->tbs, &tbs, ASN1_ITEM_rptr(RESPDATA_VIEW))) <= 0 ||
        signer_sign(o->rsigner, tbs, (size_t)tl, &sig, &siglen) != 0 || siglen > INT_MAX)
        goto out;
    X509_ALGOR_free(v->alg);
    if (!(v->alg = signer_algor(o->rsigner)) || ASN1_BIT_STRING_set(v->sig, sig, (int)siglen) != 1)
        goto out;
    v->sig->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    v->sig->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    if (!(v->certs = sk_X509_new_null()) || X509_up_ref(o->responder) != 1)
        goto out;
    if (!sk_X509_push(v->certs, o->responder)) {
        X509_free(o->responder);
        goto out;
    }
    if ((dl = ASN1_item_i2d((ASN1_VALUE *)v, &der, ASN1_ITEM_rptr(BASICRESP_VIEW))) <= 0)
        goto out;
    const unsigned char *p = der;
    bs = d2i_OCSP_BASICRESP(NULL, &p, dl);
out:
    OPENSSL_free(tbs);
    OPENSSL_free(der);
    free(sig);
    BASICRESP_VIEW_free(v);
    return bs;
}

static char *serial_hex(const ASN1_INTEGER *ai)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
    char *out = NULL;
    if (!bn || BN_is_negative(bn) || BN_num_bytes(bn) > 20) {
        BN_free(bn);
        return NULL;
    }
    int n = BN_num_bytes(bn);
    unsigned char b[22];
    b[0] = 0;
    BN_bn2bin(bn, b + 1);
    int lead = n == 0 || (b[1] & 0x80) ? 1 : 0;
    out = hex_encode(b + 1 - lead, (size_t)n + (size_t)lead);
    BN_free(bn);
    return out;
}

/* Parses, looks up and signs: the cache-miss path. Returns 0 with a signed
 * answer, or an OCSP error status (> 0), or -1 when out of memory. For
 * single-certificate requests the serial is reported for the cache. */
static int build_answer(const struct ca_env *env, struct ocsp_ca *o, const struct ca_rec *ca,
                        const unsigned char *reqder, size_t len, int64_t now, struct ocsp_answer *out, int *nonce,
                        char serial[48], bool *multi)
{
    OCSP_REQUEST *req = NULL;
    OCSP_BASICRESP *bs = NULL, *signed_bs = NULL;
    OCSP_RESPONSE *resp = NULL;
    ASN1_TIME *tu = NULL, *nu = NULL;
    unsigned char *p = NULL;
    int rc = OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
    serial[0] = 0;
    const unsigned char *q = reqder;
    if (!(req = d2i_OCSP_REQUEST(NULL, &q, (long)len)) || q != reqder + len)
        goto out;
    int nreq = OCSP_request_onereq_count(req);
    *nonce = ocsp_nonce_check(req);
    *multi = nreq > 1;
    if (nreq < 1 || nreq > OCSP_MAX_IDS || *nonce < 0)
        goto out;
    if (OCSP_request_is_signed(req)) {
        /* Verify the signature with the certificate the requester included;
         * we do not chain it (no requester trust store is configured). */
        X509_STORE *st = X509_STORE_new();
        int ok = st && OCSP_request_verify(req, NULL, st, OCSP_NOVERIFY) == 1;
        X509_STORE_free(st);
        if (!ok) {
            rc = OCSP_RESPONSE_STATUS_UNAUTHORIZED;
            goto out;
        }
    } else if (env->ocsp_require_signed) {
        rc = OCSP_RESPONSE_STATUS_SIGREQUIRED;
        goto out;
    }
    rc = -1;
    if (!(bs = OCSP_BASICRESP_new()) || !(tu = ASN1_TIME_set(NULL, (time_t)now)) ||
        !(nu = ASN1_TIME_set(NULL, (time_t)(now + OCSP_VALIDITY_S))))
        goto out;
    int matched = 0;
    for (int i = 0; i < nreq; i++) {
        OCSP_CERTID *cid = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i));
        ASN1_OBJECT *alg = NULL;
        ASN1_INTEGER *sn = NULL;
        OCSP_id_get0_info(NULL, &alg, NULL, &sn, cid);
        const EVP_MD *md = alg ? EVP_get_digestbyobj(alg) : NULL;
        OCSP_CERTID *ours = md ? OCSP_cert_to_id(md, NULL, o->issuer) : NULL;
        int same = ours && OCSP_id_issuer_cmp(ours, cid) == 0;
        OCSP_CERTID_free(ours);
        int st = V_OCSP_CERTSTATUS_UNKNOWN, reason = -1;
        ASN1_TIME *rev = NULL;
        if (same) {
            matched++;
            char *hex = serial_hex(sn);
            struct cert_rec cr;
            if (hex && env->store->ops->cert_get(env->store, ca->partition_id, ca->pk, hex, &cr) == STORE_OK) {
                /* reported for the cache: a certificate this CA issued */
                if (nreq == 1)
                    snprintf(serial, 48, "%s", hex);
                if (strcmp(cr.status, "issued") == 0) {
                    st = V_OCSP_CERTSTATUS_GOOD;
                } else {
                    st = V_OCSP_CERTSTATUS_REVOKED;
                    reason = strcmp(cr.status, "suspended") == 0 ? OCSP_REVOKED_STATUS_CERTIFICATEHOLD
                                                                 : cr.revocation_reason;
                    rev = ASN1_TIME_set(NULL, (time_t)cr.revoked_at);
                }
                cert_rec_free(&cr);
            }
            free(hex);
        }
        OCSP_SINGLERESP *single = OCSP_basic_add1_status(bs, cid, st, reason, rev, tu, nu);
        ASN1_TIME_free(rev);
        if (!single) {
            /* a CertID that parses but cannot be copied into an answer (its
             * hash algorithm's parameters do not re-encode): the request's
             * fault, not ours */
            rc = OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
            goto out;
        }
        if (same && o->archive_cutoff) {
            ASN1_GENERALIZEDTIME *ac = ASN1_GENERALIZEDTIME_set(NULL, (time_t)o->archive_cutoff);
            X509_EXTENSION *x = ac ? X509V3_EXT_i2d(NID_id_pkix_OCSP_archiveCutoff, 0, ac) : NULL;
            int ok = x && OCSP_SINGLERESP_add_ext(single, x, -1) == 1;
            X509_EXTENSION_free(x);
            ASN1_GENERALIZEDTIME_free(ac);
            if (!ok)
                goto out;
        }
    }
    if (!matched) {
        rc = OCSP_RESPONSE_STATUS_UNAUTHORIZED;
        goto out;
    }
    if (*nonce > 0 && OCSP_copy_nonce(bs, req) != 1)
        goto out;
    if (!(signed_bs = sign_basic(o, bs))) {
        /* the signer process is gone or refused: the client may retry */
        log_error("ocsp: cannot sign a response for CA %s (signer unavailable)", o->ca_id);
        rc = OCSP_RESPONSE_STATUS_TRYLATER;
        goto out;
    }
    if (!(resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, signed_bs)))
        goto out;
    int n = i2d_OCSP_RESPONSE(resp, &p);
    if (n <= 0 || !(out->der = malloc((size_t)n)))
        goto out;
    memcpy(out->der, p, (size_t)n);
    out->len = (size_t)n;
    out->this_update = now;
    out->next_update = now + OCSP_VALIDITY_S;
    rc = 0;
out:
    ASN1_TIME_free(tu);
    ASN1_TIME_free(nu);
    OPENSSL_free(p);
    OCSP_REQUEST_free(req);
    OCSP_BASICRESP_free(bs);
    OCSP_BASICRESP_free(signed_bs);
    OCSP_RESPONSE_free(resp);
    return rc;
}

int ocsp_respond(const struct ca_env *env, struct ocsp_cache *cache, const char *partition, const char *ca_id,
                 const unsigned char *reqder, size_t len, struct ocsp_answer *out)
{
    struct ca_runtime *rt = NULL;
    struct ocsp_ca *o = NULL;
    unsigned char key[32];
    char serial[48];
    bool multi = false;
    int nonce = 0, rc = -1, status = OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
    int64_t now = time_now();
    struct err ce;
    memset(out, 0, sizeof(*out));
    if (len == 0 || len > OCSP_MAX_REQUEST)
        goto error;
    /* The CA first (from the runtime cache), then the answer cache keyed by
     * the request bytes themselves: a repeated nonce-less request costs one
     * hash and one copy. Only nonce-less answers are ever stored, and a
     * request with a nonce has different bytes, so it can never hit. */
    status = OCSP_RESPONSE_STATUS_UNAUTHORIZED;
    memset(&ce, 0, sizeof ce);
    if (!(rt = ca_runtime_get(env, partition, ca_id, &ce))) {
        /* the store cannot be read: no verdict on the CA (RFC 6960 2.3) */
        if (ce.status == 503)
            status = OCSP_RESPONSE_STATUS_TRYLATER;
        else if (ce.status >= 500)
            status = OCSP_RESPONSE_STATUS_INTERNALERROR;
        goto error;
    }
    if (strcmp(rt->rec.status, "active") != 0 || !rt->rec.ocsp_enabled || !(o = get_ca(cache, env, &rt->rec, false)))
        goto error;
    if (EVP_Digest(reqder, len, key, NULL, EVP_sha256(), NULL) != 1)
        goto out;
    if (env->store->ops->shared) {
        /* another node may have changed a status: its counter moved */
        int64_t v = store_epoch(env->store, partition, o->ca_pk);
        pthread_mutex_lock(&o->mu);
        bool moved = v < 0 || v != o->epoch;
        if (moved) {
            table_clear(o);
            o->epoch = v;
        }
        pthread_mutex_unlock(&o->mu);
        /* the change may have been the responder's own revocation, and its
         * replacement: look for a newer responder now */
        struct ocsp_ca *again = moved ? get_ca(cache, env, &rt->rec, true) : o;
        if (!again)
            goto error;
        if (again != o) {
            pthread_mutex_lock(&again->mu);
            again->epoch = v;
            pthread_mutex_unlock(&again->mu);
            o = again;
        }
    }
    uint64_t gen = 0;
    if (cache_lookup(o, key, now, out, &gen)) {
        rc = 0;
        goto out;
    }
    int r = build_answer(env, o, &rt->rec, reqder, len, now, out, &nonce, serial, &multi);
    if (r > 0) {
        status = r;
        goto error;
    }
    /* Only answers about one certificate this CA issued are kept: an answer
     * for a made-up serial, or for several at once, is signed each time,
     * so strangers cannot fill memory (and the scheduler's re-signing)
     * with answers of their own invention. */
    if (r == 0 && nonce == 0 && !multi && serial[0])
        cache_store(o, key, out, reqder, len, serial, multi, gen);
    rc = r;
    goto out;
error:
    rc = error_response(status, out);
out:
    ca_runtime_release(rt);
    return rc;
}

void ocsp_cache_changed(struct ocsp_cache *c, const struct ca_env *env, int64_t ca_pk, const char *serial)
{
    /* Entries that mention the serial are taken out of the table and their
     * requests re-signed at once with the new status, so even the first
     * request after the change is answered from memory. */
    struct cached *redo = NULL;
    size_t nredo = 0;
    uint64_t gen = 0;
    struct ocsp_ca *target = NULL;
    pthread_mutex_lock(&c->mu);
    for (struct ocsp_ca *o = c->head; o; o = o->next) {
        if (o->ca_pk != ca_pk)
            continue;
        target = o;
        pthread_mutex_lock(&o->mu);
        /* Rebuild the table without them (open addressing cannot delete in
         * place). */
        struct cached *old = o->tab;
        size_t ocap = o->cap;
        o->tab = ocap ? calloc(ocap, sizeof(*o->tab)) : NULL;
        redo = ocap ? calloc(ocap, sizeof(*redo)) : NULL;
        o->n = 0;
        if (ocap && (!o->tab || !redo)) {
            free(o->tab);
            o->tab = old; /* out of memory: drop everything instead */
            o->cap = ocap;
            table_clear(o);
            pthread_mutex_unlock(&o->mu);
            continue;
        }
        for (size_t i = 0; i < ocap; i++) {
            if (!old[i].der)
                continue;
            if (old[i].multi || strcmp(old[i].serial, serial) == 0) {
                free(old[i].der);
                old[i].der = NULL;
                /* a few encodings of a request for it are re-signed now;
                 * any beyond that are only dropped (signed on their next
                 * request), so the change never waits on many signatures */
                if (!old[i].multi && nredo < OCSP_RESIGN_MAX)
                    redo[nredo++] = old[i]; /* keeps req for re-signing */
                else
                    free(old[i].req);
                continue;
            }
            *slot(o, old[i].key) = old[i];
            o->n++;
        }
        free(old);
        /* answers being signed from a status read before this change
         * (including into an empty table) are not stored */
        gen = ++o->gen;
        pthread_mutex_unlock(&o->mu);
        break;
    }
    pthread_mutex_unlock(&c->mu);
    struct err e;
    struct ca_runtime *rt = target && nredo ? ca_runtime_get(env, target->partition, target->ca_id, &e) : NULL;
    for (size_t i = 0; i < nredo; i++) {
        struct ocsp_answer a;
        int nonce = 0;
        bool multi = false;
        char sn[48];
        memset(&a, 0, sizeof a);
        if (rt && build_answer(env, target, &rt->rec, redo[i].req, redo[i].req_len, time_now(), &a, &nonce, sn,
                               &multi) == 0 &&
            nonce == 0)
            cache_store(target, redo[i].key, &a, redo[i].req, redo[i].req_len, sn, multi, gen);
        free(a.der);
        free(redo[i].req);
    }
    ca_runtime_release(rt);
    free(redo);
}

void ocsp_cache_refresh(struct ocsp_cache *c, const struct ca_env *env)
{
    int64_t now = time_now();
    /* Snapshot the CA states (never freed before the cache itself), so
     * request threads are not held up while we sign. */
    size_t n = 0, cap = 0;
    struct ocsp_ca **list = NULL;
    pthread_mutex_lock(&c->mu);
    for (struct ocsp_ca *o = c->head; o; o = o->next) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct ocsp_ca **nl = realloc(list, ncap * sizeof(*nl));
            if (!nl)
                break;
            list = nl;
            cap = ncap;
        }
        list[n++] = o;
    }
    pthread_mutex_unlock(&c->mu);
    for (size_t li = 0; li < n; li++) {
        struct ocsp_ca *o = list[li];
        struct err e;
        struct ca_runtime *rt = ca_runtime_get(env, o->partition, o->ca_id, &e);
        if (!rt)
            continue;
        /* Copy out the requests due for re-signing, sign without holding the
         * table lock, then store the fresh answers. */
        pthread_mutex_lock(&o->mu);
        uint64_t gen = o->gen; /* before any status is read for re-signing */
        size_t due = 0;
        for (size_t i = 0; i < o->cap; i++)
            if (o->tab[i].der && now >= o->tab[i].this_update + (o->tab[i].next_update - o->tab[i].this_update) / 4)
                due++;
        struct cached *work = due ? calloc(due, sizeof(*work)) : NULL;
        size_t k = 0;
        for (size_t i = 0; work && i < o->cap && k < due; i++) {
            struct cached *sl = &o->tab[i];
            if (!sl->der || now < sl->this_update + (sl->next_update - sl->this_update) / 4)
                continue;
            work[k] = *sl;
            work[k].der = NULL;
            if (!(work[k].req = malloc(sl->req_len)))
                break;
            memcpy(work[k].req, sl->req, sl->req_len);
            k++;
        }
        pthread_mutex_unlock(&o->mu);
        for (size_t i = 0; i < k; i++) {
            struct ocsp_answer a;
            int nonce = 0;
            bool multi = false;
            char serial[48];
            memset(&a, 0, sizeof a);
            if (build_answer(env, o, &rt->rec, work[i].req, work[i].req_len, now, &a, &nonce, serial, &multi) == 0 &&
                nonce == 0)
                cache_store(o, work[i].key, &a, work[i].req, work[i].req_len, serial, multi, gen);
            free(a.der);
            free(work[i].req);
        }
        free(work);
        ca_runtime_release(rt);
    }
    free(list);
}
