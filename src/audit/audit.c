#include "audit/audit.h"

#include "util/codec.h"
#include "util/log.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* SHA-256 fetched once: an implicit fetch on every digest is a name lookup
 * under a lock, per audit record. */
static EVP_MD *sha256_md;
static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

char *audit_record_hash(const char *prev, const char *partition, int64_t at_ms, const char *actor, const char *ip,
                        const char *action, const char *target, const char *result, const char *detail)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    char at[32];
    snprintf(at, sizeof at, "%lld", (long long)at_ms);
    const char *fields[] = {prev, partition ? partition : "", at, actor ? actor : "", ip ? ip : "",
                            action ? action : "", target ? target : "", result ? result : "success",
                            detail ? detail : ""};
    enum { NF = sizeof fields / sizeof fields[0] };
    size_t lens[NF], total = 0;
    for (size_t i = 0; i < NF; i++) {
        lens[i] = strlen(fields[i]);
        total += 21 + 1 + lens[i]; /* decimal length, ':', bytes */
    }
    unsigned char md[32];
    char *buf = NULL, *out = NULL;
    size_t n = 0;
    if (pthread_once(&once, sha256_fetch) != 0 || !sha256_md || !(buf = malloc(total)))
        goto done;
    for (size_t i = 0; i < NF; i++) {
        /* "<len>:<bytes>": no field can imitate a boundary */
        int w = snprintf(buf + n, total - n, "%zu:", lens[i]);
        if (w < 0 || (size_t)w >= total - n)
            goto done;
        n += (size_t)w;
        memcpy(buf + n, fields[i], lens[i]);
        n += lens[i];
    }
    if (EVP_Digest(buf, n, md, NULL, sha256_md, NULL) == 1)
        out = hex_encode(md, sizeof md);
done:
    free(buf);
    return out;
}

char *audit_checkpoint_text(const char *partition, int64_t seq, const char *hash, int64_t at_ms)
{
    char *s = NULL;
    if (asprintf(&s, "pkiaas-audit-checkpoint\npartition=%s\nseq=%lld\nhash=%s\nat_ms=%lld\n", partition,
                 (long long)seq, hash, (long long)at_ms) < 0)
        return NULL;
    return s;
}

static void key_aad(char *out, size_t n, const char *partition)
{
    snprintf(out, n, "audit-key:%s", partition);
}

/* The partition's signing key, created on first use. */
static EVP_PKEY *signing_key(struct store *st, const unsigned char *mkey, const char *partition)
{
    unsigned char *blob = NULL, *pub = NULL, *nb = NULL;
    size_t bl = 0, pl = 0, nbl = 0;
    char aad[128];
    EVP_PKEY *k = NULL;
    key_aad(aad, sizeof aad, partition);
    if (st->ops->audit_key_get(st, partition, &blob, &bl, &pub, &pl) == STORE_OK) {
        k = keywrap_open_pkey(mkey, blob, bl, aad);
        goto out;
    }
    unsigned char *der = NULL;
    int dl, put = STORE_EIO;
    if (!(k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) || (dl = i2d_PUBKEY(k, &der)) <= 0 ||
        keywrap_seal_pkey(mkey, k, aad, &nb, &nbl) != 0 ||
        (put = st->ops->audit_key_put(st, partition, nb, nbl, der, (size_t)dl)) != STORE_OK) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    OPENSSL_free(der);
    /* another node created it first (shared store): use that one */
    if (put == STORE_ECONFLICT && st->ops->audit_key_get(st, partition, &blob, &bl, &pub, &pl) == STORE_OK)
        k = keywrap_open_pkey(mkey, blob, bl, aad);
out:
    free(blob);
    free(pub);
    free(nb);
    return k;
}

/* The sealed key, opened with the master key (NULL if none or it does not open). */
static EVP_PKEY *open_key(struct store *st, const unsigned char *mkey, const char *partition, unsigned char **pubder,
                          size_t *publen)
{
    unsigned char *blob = NULL, *pub = NULL;
    size_t bl = 0, pl = 0;
    char aad[128];
    EVP_PKEY *k = NULL;
    key_aad(aad, sizeof aad, partition);
    if (st->ops->audit_key_get(st, partition, &blob, &bl, &pub, &pl) == STORE_OK)
        k = keywrap_open_pkey(mkey, blob, bl, aad);
    free(blob);
    if (pubder) {
        *pubder = pub;
        *publen = pl;
        pub = NULL;
    }
    free(pub);
    return k;
}

static int verify_text(EVP_PKEY *k, const struct audit_checkpoint *cp, const char *partition)
{
    char *text = audit_checkpoint_text(partition, cp->seq, cp->hash, cp->at_ms);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = text && c && k && EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, k) == 1 &&
             EVP_DigestVerify(c, cp->sig, cp->sig_len, (unsigned char *)text, strlen(text)) == 1;
    EVP_MD_CTX_free(c);
    free(text);
    return ok ? 0 : -1;
}

/* The records since the last checkpoint: each must follow its predecessor
 * (the first one the checkpointed record) and match its hash, or the
 * checkpoint would sign a forged or rewritten tail. */
struct head {
    int64_t seq;
    char hash[65];
    char prev[65];
    long count_since;
    int64_t bad_seq;
    int64_t first_seq, first_at_ms; /* the oldest record the checkpoint would cover */
};

static int head_cb(const struct audit_row *r, void *ctx)
{
    struct head *h = ctx;
    char *rh = NULL;
    if (strcmp(r->prev_hash, h->prev) != 0 ||
        !(rh = audit_record_hash(r->prev_hash, r->partition, r->at_ms, r->actor, r->ip, r->action, r->target,
                                 r->result, r->detail)) ||
        strcmp(rh, r->hash) != 0) {
        free(rh);
        h->bad_seq = r->seq;
        return 1; /* stop */
    }
    free(rh);
    if (!h->count_since) {
        h->first_seq = r->seq;
        h->first_at_ms = r->at_ms;
    }
    h->seq = r->seq;
    snprintf(h->hash, sizeof h->hash, "%s", r->hash);
    snprintf(h->prev, sizeof h->prev, "%s", r->hash);
    h->count_since++;
    return 0;
}

/* A record more than an hour (the checkpoint interval) plus slack old that
 * no checkpoint covers: checkpoints were deleted (the records before them
 * possibly rewritten), or the service stopped for a while without its
 * final checkpoint. */
static bool stale(int64_t at_ms, int64_t now_ms)
{
    return at_ms < now_ms - AUDIT_CHECKPOINT_MAX_AGE_MS - AUDIT_STALE_SLACK_MS;
}

static int checkpoint(struct store *st, const unsigned char *mkey, const char *partition, int64_t now_ms,
                      bool force, bool gap_marked, int64_t *broken_seq)
{
    struct audit_checkpoint *cps = NULL;
    size_t ncp = 0;
    struct head h;
    EVP_PKEY *k = NULL;
    char *text = NULL;
    EVP_MD_CTX *c = NULL;
    unsigned char *sig = NULL;
    size_t sl = 0;
    int rc = -1;
    memset(&h, 0, sizeof h);
    snprintf(h.prev, sizeof h.prev, "%s", AUDIT_GENESIS);
    if (st->ops->audit_checkpoint_list(st, partition, &cps, &ncp) != STORE_OK)
        goto out;
    const struct audit_checkpoint *last = ncp ? &cps[ncp - 1] : NULL;
    struct audit_filter f = {0};
    if (last) {
        f.after_seq = last->seq;
        snprintf(h.prev, sizeof h.prev, "%s", last->hash);
    }
    int it = st->ops->audit_iter(st, partition, &f, head_cb, &h);
    if (it != STORE_OK && it != 1)
        goto out;
    if (h.bad_seq) {
        rc = AUDIT_EBROKEN;
        if (broken_seq)
            *broken_seq = h.bad_seq;
        log_error("audit: partition '%s': the chain is broken at record %lld; no checkpoint is signed over it "
                  "(see `pkiaas audit verify`)",
                  partition, (long long)h.bad_seq);
        goto out;
    }
    if (h.count_since == 0) {
        rc = 0; /* nothing new since the last checkpoint */
        goto out;
    }
    if (!force && h.count_since < AUDIT_CHECKPOINT_EVERY && last && now_ms - last->at_ms < AUDIT_CHECKPOINT_MAX_AGE_MS) {
        rc = 0;
        goto out;
    }
    if (!gap_marked && stale(h.first_at_ms, now_ms)) {
        /* Signing over such a tail would vouch for whatever it holds. It is
         * signed (the log must go on being checkpointed), but only after a
         * record saying so, which the signature then covers: verification
         * reports the gap for good, and whoever deleted checkpoints to have
         * rewritten records signed cannot make it go away. */
        char target[64], detail[160];
        snprintf(target, sizeof target, "audit:%lld-%lld", (long long)h.first_seq, (long long)h.seq);
        snprintf(detail, sizeof detail, "{\"fromSeq\":%lld,\"toSeq\":%lld,\"oldestAtMs\":%lld}",
                 (long long)h.first_seq, (long long)h.seq, (long long)h.first_at_ms);
        struct audit_rec a = {"system", AUDIT_GAP_ACTION, target, detail, NULL, NULL};
        log_error("audit: partition '%s': records %lld-%lld are over an hour old and no checkpoint covers them "
                  "(checkpoints deleted, or the service was stopped without its final checkpoint); the gap is "
                  "recorded in the log before it is signed",
                  partition, (long long)h.first_seq, (long long)h.seq);
        for (size_t i = 0; i < ncp; i++)
            free(cps[i].sig);
        free(cps);
        if (st->ops->audit_append(st, partition, &a) != STORE_OK)
            return -1;
        return checkpoint(st, mkey, partition, now_ms, true, true, broken_seq);
    }
    if (!(k = signing_key(st, mkey, partition)))
        goto out;
    /* the checkpoint this one extends must be genuine too */
    if (last && verify_text(k, last, partition) != 0) {
        rc = AUDIT_EBROKEN;
        if (broken_seq)
            *broken_seq = last->seq;
        log_error("audit: partition '%s': checkpoint %lld does not verify; no checkpoint is signed after it",
                  partition, (long long)last->seq);
        goto out;
    }
    if (!(text = audit_checkpoint_text(partition, h.seq, h.hash, now_ms)) || !(c = EVP_MD_CTX_new()) ||
        EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, k) != 1 ||
        EVP_DigestSign(c, NULL, &sl, (unsigned char *)text, strlen(text)) != 1 || !(sig = malloc(sl)) ||
        EVP_DigestSign(c, sig, &sl, (unsigned char *)text, strlen(text)) != 1)
        goto out;
    struct audit_checkpoint cp = {h.seq, now_ms, "", sig, sl};
    snprintf(cp.hash, sizeof cp.hash, "%s", h.hash);
    if (st->ops->audit_checkpoint_put(st, partition, &cp) != STORE_OK)
        goto out;
    /* a copy outside the database, for whoever keeps the daemon's log */
    log_info("audit: checkpoint partition=%s seq=%lld hash=%s at_ms=%lld", partition, (long long)h.seq, h.hash,
             (long long)now_ms);
    rc = 0;
out:
    for (size_t i = 0; i < ncp; i++)
        free(cps[i].sig);
    free(cps);
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
    free(text);
    free(sig);
    return rc;
}

int audit_checkpoint_now(struct store *st, const unsigned char mkey[MASTER_KEY_LEN], const char *partition,
                         int64_t now_ms, int64_t *broken_seq)
{
    return checkpoint(st, mkey, partition, now_ms, true, false, broken_seq);
}

/* One checkpoint pass over every partition with an audit log. */
static void checkpoint_each(struct store *st, const unsigned char *mkey, int64_t now_ms, bool force, const char *what)
{
    char **ids = NULL;
    size_t n = 0;
    if (st->ops->audit_partitions(st, &ids, &n) != STORE_OK)
        return;
    for (size_t i = 0; i < n; i++)
        if (checkpoint(st, mkey, ids[i], now_ms, force, false, NULL) == -1)
            log_error("audit: %s for partition '%s' failed", what, ids[i]);
    store_free_ids(ids, n);
}

void audit_checkpoint_due(struct store *st, const unsigned char mkey[MASTER_KEY_LEN], int64_t now_ms)
{
    checkpoint_each(st, mkey, now_ms, false, "checkpoint");
}

void audit_checkpoint_all(struct store *st, const unsigned char mkey[MASTER_KEY_LEN], int64_t now_ms)
{
    checkpoint_each(st, mkey, now_ms, true, "final checkpoint");
}

struct walk {
    int64_t stale_before_ms; /* records older than this must be checkpointed */
    int64_t first_stale_uncovered;
    struct audit_verify_result *r;
    char prev[65];
    struct audit_checkpoint *cps;
    size_t ncp, next_cp;
    EVP_PKEY *pub;
    const char *partition;
};

static int bad(struct walk *w, int64_t seq, const char *what)
{
    w->r->ok = false;
    w->r->first_bad_seq = seq;
    snprintf(w->r->problem, sizeof w->r->problem, "%s", what);
    return 1; /* stop the walk */
}

static int verify_cp(struct walk *w, const struct audit_checkpoint *cp)
{
    return verify_text(w->pub, cp, w->partition);
}

static int walk_cb(const struct audit_row *row, void *ctx)
{
    struct walk *w = ctx;
    if (strcmp(row->prev_hash, w->prev) != 0)
        return bad(w, row->seq, "the record does not follow its predecessor (a record before it was deleted, "
                                "inserted or altered)");
    char *h = audit_record_hash(row->prev_hash, row->partition, row->at_ms, row->actor, row->ip, row->action,
                                row->target, row->result, row->detail);
    int same = h && strcmp(h, row->hash) == 0;
    free(h);
    if (!same)
        return bad(w, row->seq, "the record's contents do not match its hash (altered)");
    /* checkpoints at or before this record */
    while (w->next_cp < w->ncp && w->cps[w->next_cp].seq <= row->seq) {
        const struct audit_checkpoint *cp = &w->cps[w->next_cp];
        if (cp->seq != row->seq)
            return bad(w, cp->seq, "a checkpointed record is missing (deleted)");
        if (strcmp(cp->hash, row->hash) != 0)
            return bad(w, cp->seq, "the chain differs from its signed checkpoint (records rewritten)");
        if (verify_cp(w, cp) != 0)
            return bad(w, cp->seq, "a checkpoint signature does not verify");
        w->r->checkpoints++;
        w->next_cp++;
    }
    if (row->action && strcmp(row->action, AUDIT_GAP_ACTION) == 0 && !w->r->gaps++)
        w->r->first_gap_seq = row->seq;
    if (row->at_ms < w->stale_before_ms && !w->first_stale_uncovered &&
        (w->ncp == 0 || row->seq > w->cps[w->ncp - 1].seq))
        w->first_stale_uncovered = row->seq;
    snprintf(w->prev, sizeof w->prev, "%s", row->hash);
    w->r->records++;
    return 0;
}

/* The public key as DER (malloc'd), or NULL. */
static unsigned char *pub_der(EVP_PKEY *k, size_t *len)
{
    unsigned char *der = NULL;
    int n = k ? i2d_PUBKEY(k, &der) : -1;
    if (n <= 0)
        return NULL;
    *len = (size_t)n;
    return der;
}

int audit_verify(struct store *st, const unsigned char mkey[MASTER_KEY_LEN], const char *partition,
                 struct audit_verify_result *r)
{
    struct walk w;
    unsigned char *stored_pub = NULL, *derived = NULL;
    size_t spl = 0, dl = 0;
    bool key_bad = false, pub_replaced = false;
    memset(r, 0, sizeof(*r));
    memset(&w, 0, sizeof w);
    r->ok = true;
    w.r = r;
    w.partition = partition;
    snprintf(w.prev, sizeof w.prev, "%s", AUDIT_GENESIS);
    if (st->ops->audit_checkpoint_list(st, partition, &w.cps, &w.ncp) != STORE_OK)
        return -1;
    /* Checkpoints are checked against the sealed key, which only this
     * service's master key opens, not against the public key stored beside
     * the log, which anyone who can write the database could replace. */
    w.pub = open_key(st, mkey, partition, &stored_pub, &spl);
    if (stored_pub && !w.pub)
        key_bad = true;
    else if (w.pub && (!(derived = pub_der(w.pub, &dl)) || dl != spl || memcmp(derived, stored_pub, dl) != 0))
        pub_replaced = true;
    struct audit_filter f = {0};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* a record more than an hour (plus slack for the scheduler) old must be
     * covered by a checkpoint: missing ones mean checkpoints were deleted */
    w.stale_before_ms = (int64_t)ts.tv_sec * 1000 - AUDIT_CHECKPOINT_MAX_AGE_MS - AUDIT_STALE_SLACK_MS;
    int rc = STORE_OK;
    if (key_bad && w.ncp)
        bad(&w, w.cps[0].seq, "the audit key does not open with this service's master key (key replaced)");
    else
        rc = st->ops->audit_iter(st, partition, &f, walk_cb, &w);
    if (rc == STORE_OK && r->ok && w.next_cp < w.ncp)
        bad(&w, w.cps[w.next_cp].seq, "the log ends before a signed checkpoint (records deleted at the end)");
    if (rc == STORE_OK && r->ok && w.first_stale_uncovered)
        bad(&w, w.first_stale_uncovered,
            "records older than an hour are not covered by a signed checkpoint (checkpoints deleted?)");
    if (rc == STORE_OK && r->ok && pub_replaced && w.ncp)
        bad(&w, w.cps[0].seq, "the audit public key stored beside the log is not the sealed key's (replaced)");
    for (size_t i = 0; i < w.ncp; i++)
        free(w.cps[i].sig);
    free(w.cps);
    EVP_PKEY_free(w.pub);
    free(stored_pub);
    OPENSSL_free(derived);
    return rc == STORE_OK || rc == 1 ? 0 : -1;
}

char *audit_public_key_pem(struct store *st, const unsigned char mkey[MASTER_KEY_LEN], const char *partition)
{
    char *out = NULL, *d = NULL;
    /* derived from the sealed key: what verifies the checkpoints */
    EVP_PKEY *k = open_key(st, mkey, partition, NULL, NULL);
    BIO *b = k ? BIO_new(BIO_s_mem()) : NULL;
    if (b && PEM_write_bio_PUBKEY(b, k) == 1) {
        long n = BIO_get_mem_data(b, &d);
        if (n > 0 && (out = malloc((size_t)n + 1))) {
            memcpy(out, d, (size_t)n);
            out[n] = 0;
        }
    }
    BIO_free(b);
    EVP_PKEY_free(k);
    return out;
}
