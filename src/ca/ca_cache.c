#include "ca/ca_cache.h"

#include "ca/issue.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "x509/csr.h"
#include "x509/ext.h"

#include <openssl/pem.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct entry {
    char partition[STORE_ID_MAX + 1];
    char id[24];
    struct ca_runtime *rt;
};

struct ca_cache {
    pthread_mutex_t mu;
    struct entry *items;
    size_t n, cap;
    unsigned gen;
    struct csr_keys *csr_keys; /* immutable after ca_cache_new */
};

struct ca_cache *ca_cache_new(void)
{
    struct ca_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (!(c->csr_keys = csr_keys_new())) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void rt_free(struct ca_runtime *rt)
{
    ca_rec_free(&rt->rec);
    X509_free(rt->cert);
    for (int i = 0; rt->chain_pem && i < sk_X509_num(rt->chain); i++)
        free(rt->chain_pem[i]);
    free(rt->chain_pem);
    sk_X509_pop_free(rt->chain, X509_free);
    signer_free(rt->signer);
    store_free_ids(rt->profiles, rt->nprofiles);
    free(rt);
}

struct ca_runtime *ca_runtime_ref(struct ca_runtime *rt)
{
    atomic_fetch_add(&rt->refs, 1);
    return rt;
}

/* The chain in PEM (one string per certificate, as PEM_write_bio_X509
 * writes it): every issuance response carries it. */
static char **chain_pem(STACK_OF(X509) *chain)
{
    int n = sk_X509_num(chain);
    char **v = n > 0 ? calloc((size_t)n, sizeof(*v)) : NULL;
    BIO *b = NULL;
    if (!v || !(b = BIO_new(BIO_s_mem())))
        goto fail;
    for (int i = 0; i < n; i++) {
        char *p = NULL;
        long len;
        if (BIO_reset(b) != 1 || PEM_write_bio_X509(b, sk_X509_value(chain, i)) != 1 ||
            (len = BIO_get_mem_data(b, &p)) < 0 || !(v[i] = malloc((size_t)len + 1)))
            goto fail;
        memcpy(v[i], p, (size_t)len);
        v[i][len] = 0;
    }
    BIO_free(b);
    return v;
fail:
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
    BIO_free(b);
    return NULL;
}

void ca_runtime_release(struct ca_runtime *rt)
{
    if (rt && atomic_fetch_sub(&rt->refs, 1) == 1)
        rt_free(rt);
}

void ca_cache_free(struct ca_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        ca_runtime_release(c->items[i].rt);
    free(c->items);
    csr_keys_free(c->csr_keys);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const struct csr_keys *ca_cache_csr_keys(const struct ca_cache *c)
{
    return c ? c->csr_keys : NULL;
}

bool ca_runtime_has_profile(const struct ca_runtime *rt, const char *pid)
{
    for (size_t i = 0; i < rt->nprofiles; i++)
        if (strcmp(rt->profiles[i], pid) == 0)
            return true;
    return false;
}

/* rt->cert_status from the parent's record of the CA's certificate: 0, or
 * -1 when the store cannot tell. */
static int own_cert_status(const struct ca_env *env, struct ca_runtime *rt)
{
    struct ca_rec parent;
    struct cert_rec cr;
    char *serial = NULL;
    int rc = -1;
    memset(&parent, 0, sizeof parent);
    memset(&cr, 0, sizeof cr);
    int s = env->store->ops->ca_get(env->store, rt->rec.partition_id, rt->rec.parent_id, &parent);
    if (s == STORE_ENOTFOUND) {
        rc = 0;
        goto out;
    }
    if (s != STORE_OK || !(serial = x509_serial_hex(rt->cert)))
        goto out;
    s = env->store->ops->cert_get(env->store, rt->rec.partition_id, parent.pk, serial, &cr);
    if (s == STORE_OK)
        snprintf(rt->cert_status, sizeof rt->cert_status, "%s", cr.status);
    rc = s == STORE_OK || s == STORE_ENOTFOUND ? 0 : -1; /* not found: an external parent's */
out:
    free(serial);
    cert_rec_free(&cr);
    ca_rec_free(&parent);
    return rc;
}

static struct ca_runtime *load(const struct ca_env *env, const char *partition, const char *id, struct err *e)
{
    struct ca_runtime *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        err_set(e, 500, "internal", "", "out of memory");
        return NULL;
    }
    atomic_init(&rt->refs, 1);
    int s = env->store->ops->ca_get(env->store, partition, id, &rt->rec);
    if (s == STORE_ENOTFOUND || (s == STORE_OK && strcmp(rt->rec.status, "deleted") == 0)) {
        err_set(e, 404, "not_found", "caId", "no CA '%.24s' in this partition", id);
        goto fail;
    }
    if (s != STORE_OK)
        goto unavailable;
    if (rt->rec.cert_der) {
        if (!(rt->cert = ca_cert(&rt->rec)) || !(rt->chain = ca_chain(env, &rt->rec)) ||
            !(rt->chain_pem = chain_pem(rt->chain)))
            goto internal;
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(rt->cert), &tm) != 1)
            goto internal;
        rt->not_after = (int64_t)timegm(&tm);
        if (rt->rec.key_blob && !(rt->signer = ca_signer(env, &rt->rec)))
            goto internal;
        if (rt->rec.parent_id[0] && own_cert_status(env, rt) != 0)
            goto unavailable;
    }
    free(rt->rec.key_blob); /* the signer holds the key; no sealed copy needed */
    rt->rec.key_blob = NULL;
    rt->rec.key_blob_len = 0;
    if (env->store->ops->ca_profile_list(env->store, partition, rt->rec.pk, &rt->profiles, &rt->nprofiles) !=
        STORE_OK)
        goto unavailable;
    rt->loaded_at = time_now();
    return rt;
unavailable:
    err_set(e, 503, "unavailable", "", "store unavailable");
    goto fail;
internal:
    err_set(e, 500, "internal", "", "CA '%s' cannot be loaded", id);
fail:
    rt_free(rt);
    return NULL;
}

struct ca_runtime *ca_runtime_get(const struct ca_env *env, const char *partition, const char *id, struct err *e)
{
    struct ca_cache *c = env->cache;
    struct ca_runtime *rt = NULL;
    if (!ca_id_valid(id)) {
        err_set(e, 404, "not_found", "caId", "no CA '%.24s' in this partition", id ? id : "");
        return NULL;
    }
    if (!c)
        return load(env, partition, id, e);
    int64_t now = time_now();
    /* read before loading: a change made meanwhile shows as a newer epoch */
    int64_t epoch = store_epoch(env->store, partition, 0);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) {
        struct entry *en = &c->items[i];
        if (strcmp(en->id, id) == 0 && strcmp(en->partition, partition) == 0) {
            if (en->rt->gen == c->gen && now - en->rt->loaded_at < CA_CACHE_TTL_S && epoch >= 0 &&
                en->rt->epoch == epoch) {
                rt = en->rt;
                atomic_fetch_add(&rt->refs, 1);
            }
            break;
        }
    }
    unsigned gen = c->gen;
    pthread_mutex_unlock(&c->mu);
    if (rt)
        return rt;
    if (!(rt = load(env, partition, id, e)))
        return NULL;
    rt->gen = gen;
    rt->epoch = epoch;
    pthread_mutex_lock(&c->mu);
    size_t i;
    for (i = 0; i < c->n; i++)
        if (strcmp(c->items[i].id, id) == 0 && strcmp(c->items[i].partition, partition) == 0)
            break;
    if (i == c->n && c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        struct entry *ni = realloc(c->items, ncap * sizeof(*ni));
        if (ni) {
            c->items = ni;
            c->cap = ncap;
        }
    }
    if (i < c->cap && gen == c->gen) {
        if (i == c->n) {
            c->n++;
            snprintf(c->items[i].partition, sizeof c->items[i].partition, "%s", partition);
            snprintf(c->items[i].id, sizeof c->items[i].id, "%s", id);
        } else {
            ca_runtime_release(c->items[i].rt);
        }
        c->items[i].rt = rt;
        atomic_fetch_add(&rt->refs, 1);
    }
    pthread_mutex_unlock(&c->mu);
    return rt;
}

void ca_cache_invalidate(const struct ca_env *env, const char *partition)
{
    struct ca_cache *c = env->cache;
    /* other nodes' caches (shared stores): ca_pk 0 is the partition's CA-level counter */
    if (store_epoch_bump(env->store, partition, 0) != STORE_OK)
        log_warn("CA change in %s: the change counter was not bumped", partition);
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->gen++; /* simplest correct rule: every CA-level change retires all entries */
    pthread_mutex_unlock(&c->mu);
}
