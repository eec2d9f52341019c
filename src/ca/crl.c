#include "ca/crl.h"

#include "util/buf.h"
#include "util/codec.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "x509/certbuild.h"
#include "x509/ext.h"

#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CRL_MAX_BYTES ((size_t)512 * 1024 * 1024)

/* ---- minimal DER writer for the streamed parts ------------------------ */

static int der_hdr(struct buf *b, unsigned char tag, size_t len)
{
    unsigned char h[6];
    size_t n = 0;
    h[n++] = tag;
    if (len < 0x80) {
        h[n++] = (unsigned char)len;
    } else if (len <= 0xff) {
        h[n++] = 0x81;
        h[n++] = (unsigned char)len;
    } else if (len <= 0xffff) {
        h[n++] = 0x82;
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
    } else if (len <= 0xffffff) {
        h[n++] = 0x83;
        h[n++] = (unsigned char)(len >> 16);
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
    } else {
        h[n++] = 0x84;
        h[n++] = (unsigned char)(len >> 24);
        h[n++] = (unsigned char)(len >> 16);
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
    }
    return buf_append(b, h, n);
}

/* RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
static int der_time(struct buf *b, int64_t t, bool force_generalized)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char s[24];
    gmtime_r(&tt, &tm);
    if (!force_generalized && tm.tm_year + 1900 >= 1950 && tm.tm_year + 1900 < 2050) {
        /* UTCTime YYMMDDHHMMSSZ: the two-digit year is what 5280 mandates */
        strftime(s, sizeof s, "%Y%m%d%H%M%SZ", &tm);
        return der_hdr(b, 0x17, strlen(s) - 2) || buf_append(b, s + 2, strlen(s) - 2);
    }
    strftime(s, sizeof s, "%Y%m%d%H%M%SZ", &tm);
    return der_hdr(b, 0x18, strlen(s)) || buf_append(b, s, strlen(s));
}

static int der_wrap(struct buf *out, unsigned char tag, const struct buf *content)
{
    return der_hdr(out, tag, content->len) || buf_append(out, content->data, content->len);
}

/* One revokedCertificates entry. */
struct build {
    struct buf entries;
    size_t count;
    int failed;
};

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Appends DER for one entry. Entries are built in a small bounded array
 * (a serial is at most 20 octets, RFC 5280 4.1.2.2): no allocation per
 * entry, which matters at a million entries. */
int crl_encode_entry(const struct revoked_entry *re, struct buf *out)
{
    unsigned char sn[21], e[160];
    size_t n = strlen(re->serial), snlen = 0, k = 0;
    if (n == 0 || n % 2 || n / 2 > sizeof sn)
        goto bad;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(re->serial[i]), lo = hexval(re->serial[i + 1]);
        if (hi < 0 || lo < 0)
            goto bad;
        sn[snlen++] = (unsigned char)(hi << 4 | lo);
    }
    /* Minimal positive INTEGER (X.690 8.3.2): drop redundant leading zero
     * octets, keep one when the next octet has its top bit set. */
    size_t off = 0;
    while (off + 1 < snlen && sn[off] == 0 && !(sn[off + 1] & 0x80))
        off++;
    bool pad = (sn[off] & 0x80) != 0;
    size_t magnitude = snlen - off - (sn[off] == 0 && snlen - off > 1 ? 1 : 0);
    if (magnitude > 20 || re->reason > 10 || re->reason == 7 || re->reason < -1)
        goto bad; /* RFC 5280 4.1.2.2: at most 20 octets; 5.3.1: 7 is unused */
    struct buf tmp;
    buf_init(&tmp, sizeof e);
    /* body = INTEGER serial, Time revocationDate, [Extensions] */
    unsigned char body[128];
    size_t bl = 0;
    body[bl++] = 0x02;
    body[bl++] = (unsigned char)(snlen - off + pad);
    if (pad)
        body[bl++] = 0;
    memcpy(body + bl, sn + off, snlen - off);
    bl += snlen - off;
    if (der_time(&tmp, re->revoked_at, false) != 0 || bl + tmp.len > sizeof body)
        goto bad_tmp;
    memcpy(body + bl, tmp.data, tmp.len);
    bl += tmp.len;
    buf_reset(&tmp);
    unsigned char exts[64];
    size_t el = 0;
    /* reasonCode (2.5.29.21): absent for unspecified (RFC 5280 5.3.1) */
    if (re->reason > 0) {
        static const unsigned char rc[] = {0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01};
        memcpy(exts + el, rc, sizeof rc);
        el += sizeof rc;
        exts[el++] = (unsigned char)re->reason;
    }
    /* invalidityDate (2.5.29.24): always GeneralizedTime */
    if (re->invalidity_date > 0 && re->reason != 6) {
        if (der_time(&tmp, re->invalidity_date, true) != 0 || tmp.len != 17)
            goto bad_tmp;
        static const unsigned char id[] = {0x30, 0x18, 0x06, 0x03, 0x55, 0x1d, 0x18, 0x04, 0x11};
        memcpy(exts + el, id, sizeof id);
        el += sizeof id;
        memcpy(exts + el, tmp.data, tmp.len);
        el += tmp.len;
    }
    buf_free(&tmp);
    if (el) {
        body[bl++] = 0x30;
        body[bl++] = (unsigned char)el;
        memcpy(body + bl, exts, el);
        bl += el;
    }
    e[k++] = 0x30;
    e[k++] = (unsigned char)bl; /* bl < 128 always: short form */
    memcpy(e + k, body, bl);
    k += bl;
    return buf_append(out, e, k);
bad_tmp:
    buf_free(&tmp);
bad:
    return -1;
}

static int add_entry(const struct revoked_entry *re, void *ctx)
{
    struct build *bd = ctx;
    if (crl_encode_entry(re, &bd->entries) != 0) {
        bd->failed = 1;
        return -1;
    }
    bd->count++;
    return 0;
}

static int append_ext(struct buf *b, X509_EXTENSION *x)
{
    unsigned char *d = NULL;
    int n = x ? i2d_X509_EXTENSION(x, &d) : -1;
    int rc = n > 0 ? buf_append(b, d, (size_t)n) : -1;
    OPENSSL_free(d);
    X509_EXTENSION_free(x);
    return rc;
}

void crl_blob_release(struct crl_blob *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
        free(b->der);
        free(b);
    }
}

static struct crl_blob *blob_new(unsigned char *der, size_t len, int64_t number, int64_t tu, int64_t nu)
{
    struct crl_blob *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->der = der;
    b->len = len;
    b->number = number;
    b->this_update = tu;
    b->next_update = nu;
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL) == 1) {
        char *h = hex_encode(md, 16);
        if (h)
            snprintf(b->etag, sizeof b->etag, "\"%s\"", h);
        free(h);
    }
    return b;
}

/* Verifies the signature at the end of `der` (SIGNED{tbs}) over `tbs`,
 * with the algorithm identifier the signer announced (PSS parameters
 * included). The TBS is decoded only one level deep (SEQUENCE OF ANY), so
 * the revoked entries stay one opaque element. */
static int verify_tbs(EVP_PKEY *pub, const struct signer *sig, const unsigned char *tbs, size_t tbslen,
                      const unsigned char *der, size_t derlen)
{
    const unsigned char *p = der;
    long len = 0;
    int tag = 0, cls = 0, rc = -1;
    X509_ALGOR *alg = NULL;
    ASN1_BIT_STRING *sigbs = NULL;
    ASN1_SEQUENCE_ANY *seq = NULL;
    if (ASN1_get_object(&p, &len, &tag, &cls, (long)derlen) & 0x80)
        return -1;
    p += tbslen + sig->algid_len;
    if (p >= der + derlen)
        return -1;
    const unsigned char *bs = p;
    if ((ASN1_get_object(&p, &len, &tag, &cls, (long)(der + derlen - bs)) & 0x80) || tag != V_ASN1_BIT_STRING ||
        len < 2 || p + len != der + derlen || p[0] != 0)
        return -1;
    const unsigned char *q = tbs;
    if (!(alg = signer_algor(sig)) || !(sigbs = ASN1_BIT_STRING_new()) ||
        ASN1_BIT_STRING_set(sigbs, (unsigned char *)p + 1, (int)len - 1) != 1 ||
        !(seq = d2i_ASN1_SEQUENCE_ANY(NULL, &q, (long)tbslen)) || q != tbs + tbslen)
        goto out;
    rc = ASN1_item_verify(ASN1_ITEM_rptr(ASN1_SEQUENCE_ANY), alg, sigbs, seq, pub) == 1 ? 0 : -1;
out:
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    ASN1_BIT_STRING_free(sigbs);
    X509_ALGOR_free(alg);
    return rc;
}

int crl_shard_of(const unsigned char *serial, size_t len, int shards)
{
    /* the last 32 bits: the serial's random part (x509_serial_new) */
    uint32_t v = 0;
    for (size_t i = len >= 4 ? len - 4 : 0; i < len; i++)
        v = v << 8 | serial[i];
    return shards > 1 ? (int)(v % (uint32_t)shards) : -1;
}

static X509_EXTENSION *ext_idp(const char *url)
{
    ISSUING_DIST_POINT *idp = ISSUING_DIST_POINT_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *u = ASN1_IA5STRING_new();
    X509_EXTENSION *x = NULL;
    if (!idp || !gn || !u || ASN1_STRING_set(u, url, (int)strlen(url)) != 1)
        goto out;
    GENERAL_NAME_set0_value(gn, GEN_URI, u);
    u = NULL;
    if (!(idp->distpoint = DIST_POINT_NAME_new()) || !(idp->distpoint->name.fullname = GENERAL_NAMES_new()))
        goto out;
    idp->distpoint->type = 0;
    if (!sk_GENERAL_NAME_push(idp->distpoint->name.fullname, gn))
        goto out;
    gn = NULL;
    idp->onlyuser = 0xff; /* shards exist only on issuing CAs: end-entity certificates */
    x = X509V3_EXT_i2d(NID_issuing_distribution_point, 1, idp); /* critical: RFC 5280 5.2.5 */
out:
    ISSUING_DIST_POINT_free(idp);
    GENERAL_NAME_free(gn);
    ASN1_IA5STRING_free(u);
    return x;
}

struct crl_blob *crl_generate(const struct ca_env *env, const struct ca_rec *ca, int shard, struct err *e)
{
    struct build bd;
    struct buf tbs, inner, crlext, tmp;
    struct signer *sig = NULL;
    X509 *cert = NULL;
    unsigned char *name = NULL, *der = NULL;
    size_t derlen = 0;
    int64_t number = 0, now = time_now();
    struct crl_blob *res = NULL;
    ASN1_INTEGER *num = NULL;
    memset(&bd, 0, sizeof bd);
    buf_init(&bd.entries, CRL_MAX_BYTES);
    buf_init(&tbs, CRL_MAX_BYTES);
    buf_init(&inner, CRL_MAX_BYTES);
    buf_init(&crlext, 0);
    buf_init(&tmp, 0);
    double t0 = time_mono_ms();
    if (!(cert = ca_cert(ca)) || !(sig = ca_signer(env, ca))) {
        err_set(e, 409, "conflict", "caId", "CA '%s' cannot sign a CRL", ca->id);
        goto out;
    }
    if (env->store->ops->crl_next_number(env->store, ca->partition_id, ca->pk, &number) != STORE_OK)
        goto fail;
    if (env->store->ops->cert_iter_revoked(env->store, ca->partition_id, ca->pk, shard, add_entry, &bd) != STORE_OK ||
        bd.failed)
        goto fail;

    /* crlExtensions */
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(cert);
    unsigned char computed[SKI_LEN];
    if (!ski && x509_ski_compute(X509_get0_pubkey(cert), computed) != 0)
        goto fail;
    if (append_ext(&crlext, ski ? ext_aki(ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski))
                                : ext_aki(computed, SKI_LEN)))
        goto fail;
    if (!(num = ASN1_INTEGER_new()) || ASN1_INTEGER_set_int64(num, number) != 1 ||
        append_ext(&crlext, X509V3_EXT_i2d(NID_crl_number, 0, num)))
        goto fail;
    if (shard >= 0) {
        char *url = ca_url_crl_shard(env, ca->partition_id, ca->id, shard);
        int bad = !url || append_ext(&crlext, ext_idp(url));
        free(url);
        if (bad)
            goto fail;
    }
    {
        /* expiredCertsOnCRL: entries are kept after expiry, since the CA's
         * own notBefore. */
        struct tm tm;
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        ASN1_OBJECT *oid = OBJ_txt2obj("2.5.29.60", 1);
        X509_EXTENSION *x = NULL;
        if (ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm) == 1 && der_time(&tmp, (int64_t)timegm(&tm), true) == 0 &&
            os && oid && ASN1_OCTET_STRING_set(os, tmp.data, (int)tmp.len) == 1)
            x = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, os);
        ASN1_OCTET_STRING_free(os);
        ASN1_OBJECT_free(oid);
        if (append_ext(&crlext, x))
            goto fail;
    }

    /* TBSCertList */
    static const unsigned char v2[] = {0x02, 0x01, 0x01};
    int nl = i2d_X509_NAME(X509_get_subject_name(cert), &name);
    int64_t nu = now + CRL_VALIDITY_S;
    if (nl <= 0 || buf_append(&inner, v2, sizeof v2) || buf_append(&inner, sig->algid, sig->algid_len) ||
        buf_append(&inner, name, (size_t)nl) || der_time(&inner, now, false) || der_time(&inner, nu, false))
        goto fail;
    if (bd.count && der_wrap(&inner, 0x30, &bd.entries))
        goto fail;
    buf_free(&bd.entries);
    buf_reset(&tmp);
    if (der_wrap(&tmp, 0x30, &crlext) || der_wrap(&inner, 0xa0, &tmp) || der_wrap(&tbs, 0x30, &inner))
        goto fail;
    buf_free(&inner);
    if (certbuild_signed_der(sig, tbs.data, tbs.len, &der, &derlen) != 0)
        goto fail;
    /* Check the signature over the TBS bytes before anything ships. The
     * encoding itself is covered by tests that parse CRLs with OpenSSL and
     * python-cryptography; re-decoding here would build an object per
     * entry, which is what this builder exists to avoid. */
    if (verify_tbs(X509_get0_pubkey(cert), sig, tbs.data, tbs.len, der, derlen) != 0) {
        log_error("CRL for %s/%s failed its signature self-check", ca->partition_id, ca->id);
        goto fail;
    }
    struct crl_rec rec = {shard, number, now, nu, (int64_t)bd.count, der, derlen};
    if (env->store->ops->crl_save(env->store, ca->partition_id, ca->pk, &rec) != STORE_OK)
        goto fail;
    if (!(res = blob_new(der, derlen, number, now, nu)))
        goto fail;
    der = NULL;
    log_info("CRL %s/%s shard %d number %lld: %zu entries, %zu bytes, %.0f ms", ca->partition_id, ca->id, shard,
             (long long)number, bd.count, derlen, time_mono_ms() - t0);
    goto out;
fail:
    err_set(e, 500, "internal", "", "CRL generation failed");
out:
    buf_free(&bd.entries);
    buf_free(&tbs);
    buf_free(&inner);
    buf_free(&crlext);
    buf_free(&tmp);
    ASN1_INTEGER_free(num);
    OPENSSL_free(name);
    free(der);
    X509_free(cert);
    signer_free(sig);
    return res;
}

/* ---- cache ----------------------------------------------------------- */

struct slot {
    int64_t ca_pk;
    int shard;
    struct crl_blob *blob;
    int64_t dirty_since;
    uint64_t dirty_seq; /* full-CRL slot: moves with every status change */
    int64_t checked_at; /* shared stores: when the store was last asked for a newer CRL */
    int64_t epoch;      /* full-CRL slot: store_epoch of the CA when its CRLs were last published */
};

/* One per CA, held while any of its CRLs is built: a CRL's number is
 * reserved before its revoked list is read, so two builds at once could
 * give the higher number the older list. Never freed before the cache. */
struct build_lock {
    int64_t ca_pk;
    pthread_mutex_t mu;
    struct build_lock *next;
};

struct crl_cache {
    pthread_mutex_t mu;
    struct slot *slots;
    size_t n, cap;
    struct build_lock *builds;
};

struct crl_cache *crl_cache_new(void)
{
    struct crl_cache *c = calloc(1, sizeof(*c));
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

void crl_cache_free(struct crl_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        crl_blob_release(c->slots[i].blob);
    free(c->slots);
    while (c->builds) {
        struct build_lock *n = c->builds->next;
        pthread_mutex_destroy(&c->builds->mu);
        free(c->builds);
        c->builds = n;
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* The CA's build lock, locked; NULL when out of memory. */
static struct build_lock *build_begin(struct crl_cache *c, int64_t ca_pk)
{
    struct build_lock *b;
    pthread_mutex_lock(&c->mu);
    for (b = c->builds; b && b->ca_pk != ca_pk; b = b->next)
        ;
    if (!b && (b = calloc(1, sizeof(*b)))) {
        b->ca_pk = ca_pk;
        pthread_mutex_init(&b->mu, NULL);
        b->next = c->builds;
        c->builds = b;
    }
    pthread_mutex_unlock(&c->mu);
    if (b)
        pthread_mutex_lock(&b->mu);
    return b;
}

static struct slot *slot_for(struct crl_cache *c, int64_t pk, int shard, bool create)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].ca_pk == pk && c->slots[i].shard == shard)
            return &c->slots[i];
    if (!create)
        return NULL;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        struct slot *s = realloc(c->slots, ncap * sizeof(*s));
        if (!s)
            return NULL;
        c->slots = s;
        c->cap = ncap;
    }
    struct slot *s = &c->slots[c->n++];
    memset(s, 0, sizeof(*s));
    s->ca_pk = pk;
    s->shard = shard;
    return s;
}

void crl_cache_put(struct crl_cache *c, int64_t ca_pk, int shard, struct crl_blob *b)
{
    pthread_mutex_lock(&c->mu);
    struct slot *s = slot_for(c, ca_pk, shard, true);
    if (s) {
        /* never replace a newer CRL with an older one */
        if (!s->blob || s->blob->number < b->number) {
            crl_blob_release(s->blob);
            atomic_fetch_add(&b->refs, 1);
            s->blob = b;
        }
        s->checked_at = time_now();
    }
    pthread_mutex_unlock(&c->mu);
}

/* Dirtiness belongs to the CA (all its scopes): kept on the full-CRL slot
 * and cleared by crl_cache_clean once every scope has been rebuilt. */
void crl_cache_mark_dirty(struct crl_cache *c, int64_t ca_pk, int64_t now)
{
    pthread_mutex_lock(&c->mu);
    struct slot *s = slot_for(c, ca_pk, CRL_FULL, true);
    if (s) {
        if (!s->dirty_since)
            s->dirty_since = now;
        s->dirty_seq++;
    }
    pthread_mutex_unlock(&c->mu);
}

uint64_t crl_cache_dirty_seq(struct crl_cache *c, int64_t ca_pk)
{
    pthread_mutex_lock(&c->mu);
    struct slot *s = slot_for(c, ca_pk, CRL_FULL, false);
    uint64_t v = s ? s->dirty_seq : 0;
    pthread_mutex_unlock(&c->mu);
    return v;
}

void crl_cache_clean(struct crl_cache *c, int64_t ca_pk, uint64_t seq)
{
    pthread_mutex_lock(&c->mu);
    struct slot *s = slot_for(c, ca_pk, CRL_FULL, false);
    if (s && s->dirty_seq == seq)
        s->dirty_since = 0;
    pthread_mutex_unlock(&c->mu);
}

int64_t crl_cache_epoch(struct crl_cache *c, int64_t ca_pk)
{
    pthread_mutex_lock(&c->mu);
    struct slot *s = slot_for(c, ca_pk, CRL_FULL, false);
    int64_t v = s ? s->epoch : 0;
    pthread_mutex_unlock(&c->mu);
    return v;
}

void crl_cache_set_epoch(struct crl_cache *c, int64_t ca_pk, int64_t epoch)
{
    pthread_mutex_lock(&c->mu);
    struct slot *s = slot_for(c, ca_pk, CRL_FULL, true);
    if (s)
        s->epoch = epoch;
    pthread_mutex_unlock(&c->mu);
}

int64_t crl_cache_dirty_since(struct crl_cache *c, int64_t ca_pk)
{
    pthread_mutex_lock(&c->mu);
    struct slot *s = slot_for(c, ca_pk, CRL_FULL, false);
    int64_t d = s ? s->dirty_since : 0;
    pthread_mutex_unlock(&c->mu);
    return d;
}

struct crl_blob *crl_cache_get(struct crl_cache *c, const struct ca_env *env, const struct ca_rec *ca, int shard,
                               struct err *e)
{
    struct crl_blob *b = NULL, *cached = NULL;
    int64_t now = time_now();
    pthread_mutex_lock(&c->mu);
    struct slot *s = slot_for(c, ca->pk, shard, false);
    if (s && s->blob) {
        cached = s->blob;
        atomic_fetch_add(&cached->refs, 1);
        /* On a shared store another node may have published a newer CRL:
         * every CRL_SHARED_RECHECK_S one request asks the store, the others
         * keep getting the cached one meanwhile. */
        if (!env->store->ops->shared || now - s->checked_at < CRL_SHARED_RECHECK_S)
            b = cached;
        else
            s->checked_at = now;
    }
    pthread_mutex_unlock(&c->mu);
    if (b)
        return b;
    struct crl_rec rec;
    memset(&rec, 0, sizeof rec);
    if (cached) {
        /* the number first: the whole CRL (megabytes for a large one) is
         * read only when another node published a newer one */
        struct crl_rec *head = NULL;
        size_t nh = 0;
        bool newer = env->store->ops->crl_list(env->store, ca->partition_id, ca->pk, shard, 1, &head, &nh) ==
                         STORE_OK &&
                     nh == 1 && head[0].number > cached->number && head[0].next_update > now;
        for (size_t i = 0; i < nh; i++)
            crl_rec_free(&head[i]);
        free(head);
        if (!newer)
            return cached;
    }
    if (env->store->ops->crl_latest(env->store, ca->partition_id, ca->pk, shard, &rec) == STORE_OK &&
        rec.next_update > now) {
        if (cached && rec.number <= cached->number) {
            crl_rec_free(&rec);
            return cached;
        }
        b = blob_new(rec.der, rec.der_len, rec.number, rec.this_update, rec.next_update);
        if (!b)
            free(rec.der);
    } else {
        crl_rec_free(&rec);
        if (cached)
            return cached; /* the scheduler (of whichever node leads) renews it */
        /* Nothing to serve: build it, one request at a time (each build
         * holds the whole list in memory); those that waited take the
         * result. */
        struct build_lock *bl = build_begin(c, ca->pk);
        if (!bl) {
            err_set(e, 503, "unavailable", "", "out of memory");
            return NULL;
        }
        pthread_mutex_lock(&c->mu);
        struct slot *s2 = slot_for(c, ca->pk, shard, false);
        if (s2 && s2->blob) {
            b = s2->blob;
            atomic_fetch_add(&b->refs, 1);
        }
        pthread_mutex_unlock(&c->mu);
        if (!b && (b = crl_generate(env, ca, shard, e)))
            crl_cache_put(c, ca->pk, shard, b);
        pthread_mutex_unlock(&bl->mu);
        return b;
    }
    crl_blob_release(cached);
    if (b)
        crl_cache_put(c, ca->pk, shard, b);
    return b;
}

struct crl_blob *crl_publish_all(struct crl_cache *c, const struct ca_env *env, const struct ca_rec *ca,
                                 struct err *e)
{
    struct build_lock *bl = build_begin(c, ca->pk);
    if (!bl) {
        err_set(e, 503, "unavailable", "", "out of memory");
        return NULL;
    }
    /* A status change marked after this point may have been committed after
     * crl_generate read the revoked list: it keeps the CA dirty. */
    uint64_t seq = crl_cache_dirty_seq(c, ca->pk);
    struct crl_blob *full = crl_generate(env, ca, CRL_FULL, e);
    if (!full)
        goto out;
    crl_cache_put(c, ca->pk, CRL_FULL, full);
    for (int shard = 0; ca->crl_shards > 1 && shard < ca->crl_shards; shard++) {
        struct crl_blob *b = crl_generate(env, ca, shard, e);
        if (!b) {
            crl_blob_release(full);
            full = NULL;
            goto out;
        }
        crl_cache_put(c, ca->pk, shard, b);
        crl_blob_release(b);
    }
    crl_cache_clean(c, ca->pk, seq);
out:
    pthread_mutex_unlock(&bl->mu);
    return full;
}
