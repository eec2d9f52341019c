#include "crypto/signerd.h"

#include "crypto/keyspec.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

enum { OP_SIGN = 1, OP_INFO = 2, OP_GEN = 3 };

#define NAME_MAX_LEN 48
#define AAD_MAX 256
#define BLOB_MAX 16384
#define DIGEST_MAX 64
#define KEY_CACHE 64
/* The keys this process serves, by the prefix of their sealing AAD: CA
 * keys and the CAs' delegated OCSP responder keys. */
static const char *const served_prefixes[] = {"ca-key:", "ocsp-key:"};

static bool served(const char *aad)
{
    for (size_t i = 0; i < sizeof served_prefixes / sizeof served_prefixes[0]; i++)
        if (strncmp(aad, served_prefixes[i], strlen(served_prefixes[i])) == 0)
            return true;
    return false;
}

/* Request: header, then aad, blob, digest bytes. */
struct req_hdr {
    uint8_t op;
    uint8_t pss;
    char name[NAME_MAX_LEN]; /* digest name (SIGN, INFO) or keyspec label (GEN), NUL-terminated */
    uint16_t aad_len, blob_len, dig_len;
};

/* Reply: header, then part 1 (signature / algid / blob), part 2 (public key). */
struct rep_hdr {
    int32_t status; /* 0 ok, -1 refused or failed */
    uint16_t len1, len2;
};

struct signerd {
    int fd[SIGNERD_CHANNELS];
    pthread_mutex_t mu[SIGNERD_CHANNELS];
    pid_t pid;
    atomic_uint next; /* where a caller who found every channel busy waits */
    /* restarting a signer that died: */
    pthread_mutex_t life;       /* one restart at a time */
    unsigned gen;               /* bumped by each restart (read with any channel held) */
    const unsigned char *mkey;  /* the daemon's, outlives this */
    char exe[4096];             /* this program, run again as the new signer */
};

/* A signer that has not answered within this long is taken for hung
 * (stopped, deadlocked) and replaced like a dead one; the slowest request,
 * an RSA-4096 key generation, takes seconds. */
#define ANSWER_TIMEOUT_S 120

/* A channel: sv[0] the daemon's end (bounded wait for the answer), sv[1]
 * the signer's; both close-on-exec. 0, or -1 with nothing left open. */
static int channel_pair(int sv[2])
{
    struct timeval tv = {ANSWER_TIMEOUT_S, 0};
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    return 0;
}

/* Descriptors of a signer run by signerd_exec_main: the channels, then the
 * pipe the master key comes through. */
#define EXEC_FD0 3
#define EXEC_KEY_FD (EXEC_FD0 + SIGNERD_CHANNELS)

/* ---- the child ------------------------------------------------------------- */

#define SIG_VARIANTS 4 /* prepared signing contexts per key (digest x padding) */

/* An unsealed key, found by the exact bytes it was sent as (AAD, NUL, sealed
 * blob), with the signing contexts prepared for it: each signature works on
 * a copy of one, which skips the provider fetches of EVP_PKEY_sign_init and
 * of the digest (several microseconds and global locks in OpenSSL 3). */
struct cached_key {
    unsigned char *id;
    size_t id_len;
    EVP_PKEY *key;
    struct {
        char md[NAME_MAX_LEN];
        bool pss;
        size_t md_size;
        EVP_PKEY_CTX *ctx;
    } sig[SIG_VARIANTS];
};

struct child {
    const unsigned char *mkey;
    pthread_mutex_t mu; /* guards cache, next and open */
    struct cached_key cache[KEY_CACHE];
    unsigned next;
    int open; /* channels still open */
};

static void cached_key_clear(struct cached_key *e)
{
    free(e->id);
    EVP_PKEY_free(e->key);
    for (int i = 0; i < SIG_VARIANTS; i++)
        EVP_PKEY_CTX_free(e->sig[i].ctx);
    memset(e, 0, sizeof *e);
}

/* The cache entry for (aad, blob); call with c->mu held. */
static struct cached_key *cache_find(struct child *c, const char *aad, size_t al, const unsigned char *blob, size_t bl)
{
    for (unsigned i = 0; i < KEY_CACHE; i++) {
        struct cached_key *e = &c->cache[i];
        if (e->key && e->id_len == al + 1 + bl && memcmp(e->id, aad, al + 1) == 0 &&
            memcmp(e->id + al + 1, blob, bl) == 0)
            return e;
    }
    return NULL;
}

/* The key of a sealed blob (a new reference), unsealing it once. */
static EVP_PKEY *child_key(struct child *c, const char *aad, const unsigned char *blob, size_t bl)
{
    size_t al = strlen(aad);
    EVP_PKEY *k = NULL;
    unsigned char *id = NULL;
    if (!served(aad))
        return NULL; /* only CA and responder keys are served here */
    pthread_mutex_lock(&c->mu);
    struct cached_key *e = cache_find(c, aad, al, blob, bl);
    if (e && EVP_PKEY_up_ref(e->key) == 1)
        k = e->key;
    pthread_mutex_unlock(&c->mu);
    if (k)
        return k;
    if (!(k = keywrap_open_pkey(c->mkey, blob, bl, aad)))
        return NULL;
    if (!(id = malloc(al + 1 + bl)) || EVP_PKEY_up_ref(k) != 1) {
        free(id);
        return k; /* served, only not cached */
    }
    memcpy(id, aad, al + 1);
    memcpy(id + al + 1, blob, bl);
    pthread_mutex_lock(&c->mu);
    e = &c->cache[c->next++ % KEY_CACHE];
    cached_key_clear(e);
    *e = (struct cached_key){.id = id, .id_len = al + 1 + bl, .key = k};
    pthread_mutex_unlock(&c->mu);
    return k;
}

/* A context ready for EVP_PKEY_sign with key k, digest md_name, PKCS#1 v1.5
 * or PSS padding for RSA keys. */
static EVP_PKEY_CTX *sign_ctx_new(EVP_PKEY *k, const char *md_name, bool pss, size_t *md_size)
{
    EVP_PKEY_CTX *p = EVP_PKEY_CTX_new(k, NULL);
    EVP_MD *md = EVP_MD_fetch(NULL, md_name, NULL);
    if (!p || !md || EVP_PKEY_sign_init(p) != 1 || EVP_PKEY_CTX_set_signature_md(p, md) != 1)
        goto fail;
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA &&
        (EVP_PKEY_CTX_set_rsa_padding(p, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) != 1 ||
         (pss && (EVP_PKEY_CTX_set_rsa_pss_saltlen(p, RSA_PSS_SALTLEN_DIGEST) != 1 ||
                  EVP_PKEY_CTX_set_rsa_mgf1_md(p, md) != 1))))
        goto fail;
    *md_size = (size_t)EVP_MD_get_size(md);
    EVP_MD_free(md);
    return p;
fail:
    EVP_MD_free(md);
    EVP_PKEY_CTX_free(p);
    return NULL;
}

/* A copy of the prepared signing context for (aad, blob, md, pss) and the
 * digest's size, preparing (and caching) it on first use. The caller frees
 * it. */
static EVP_PKEY_CTX *child_sign_ctx(struct child *c, const char *aad, const unsigned char *blob, size_t bl,
                                    const char *md_name, bool pss, size_t *md_size)
{
    size_t al = strlen(aad);
    EVP_PKEY_CTX *d = NULL, *fresh = NULL;
    EVP_PKEY *k = NULL;
    pthread_mutex_lock(&c->mu);
    struct cached_key *e = cache_find(c, aad, al, blob, bl);
    for (int i = 0; e && i < SIG_VARIANTS && !d; i++)
        if (e->sig[i].ctx && e->sig[i].pss == pss && strcmp(e->sig[i].md, md_name) == 0) {
            d = EVP_PKEY_CTX_dup(e->sig[i].ctx);
            *md_size = e->sig[i].md_size;
        }
    pthread_mutex_unlock(&c->mu);
    if (d)
        return d;
    if (!(k = child_key(c, aad, blob, bl)) || !(fresh = sign_ctx_new(k, md_name, pss, md_size)))
        goto out;
    pthread_mutex_lock(&c->mu);
    d = EVP_PKEY_CTX_dup(fresh);
    e = cache_find(c, aad, al, blob, bl);
    for (int i = 0; e && fresh && i < SIG_VARIANTS; i++)
        if (!e->sig[i].ctx) {
            snprintf(e->sig[i].md, sizeof e->sig[i].md, "%s", md_name);
            e->sig[i].pss = pss;
            e->sig[i].md_size = *md_size;
            e->sig[i].ctx = fresh;
            fresh = NULL;
        }
    pthread_mutex_unlock(&c->mu);
out:
    EVP_PKEY_CTX_free(fresh);
    EVP_PKEY_free(k);
    return d;
}

static int child_sign(struct child *c, const char *aad, const unsigned char *blob, size_t bl, const char *md_name,
                      bool pss, const unsigned char *dig, size_t dl, unsigned char *out, size_t *outlen)
{
    size_t md_size = 0;
    EVP_PKEY_CTX *p = child_sign_ctx(c, aad, blob, bl, md_name, pss, &md_size);
    int rc = -1;
    if (p && md_size == dl && EVP_PKEY_sign(p, out, outlen, dig, dl) == 1)
        rc = 0;
    EVP_PKEY_CTX_free(p);
    return rc;
}

/* Appends one reply part; -1 when it does not fit. */
static int put(unsigned char *rep, size_t *len, uint16_t *field, const unsigned char *data, size_t n)
{
    if (*len + n > SIGNERD_MSG_MAX || n > UINT16_MAX)
        return -1;
    memcpy(rep + *len, data, n);
    *len += n;
    *field = (uint16_t)n;
    return 0;
}

static size_t child_handle(struct child *c, const unsigned char *msg, size_t n, unsigned char *rep)
{
    struct req_hdr h;
    struct rep_hdr r = {-1, 0, 0};
    size_t len = sizeof r;
    EVP_PKEY *k = NULL;
    unsigned char *der = NULL, *sealed = NULL;
    size_t sl = 0;
    struct signer *s = NULL;
    char aad[AAD_MAX + 1];
    if (n < sizeof h)
        goto out;
    memcpy(&h, msg, sizeof h);
    if (h.aad_len == 0 || h.aad_len > AAD_MAX || h.blob_len > BLOB_MAX || h.dig_len > DIGEST_MAX ||
        n != sizeof h + h.aad_len + h.blob_len + h.dig_len || !memchr(h.name, 0, sizeof h.name))
        goto out;
    const unsigned char *p = msg + sizeof h;
    memcpy(aad, p, h.aad_len);
    aad[h.aad_len] = 0;
    if (memchr(aad, 0, h.aad_len))
        goto out;
    const unsigned char *blob = p + h.aad_len, *dig = blob + h.blob_len;
    if (h.op == OP_SIGN) {
        unsigned char sig[1024];
        size_t siglen = sizeof sig;
        if (child_sign(c, aad, blob, h.blob_len, h.name, h.pss, dig, h.dig_len, sig, &siglen) != 0 ||
            put(rep, &len, &r.len1, sig, siglen) != 0)
            goto out;
    } else if (h.op == OP_INFO) {
        int dl;
        if (!(k = child_key(c, aad, blob, h.blob_len)) || !(s = signer_soft_new(k, h.name, h.pss)) ||
            (dl = i2d_PUBKEY(k, &der)) <= 0 || put(rep, &len, &r.len1, s->algid, s->algid_len) != 0 ||
            put(rep, &len, &r.len2, der, (size_t)dl) != 0)
            goto out;
    } else if (h.op == OP_GEN) {
        const struct keyspec *ks = keyspec_find(h.name);
        int dl;
        if (!served(aad) || !ks || !(k = keyspec_generate(ks)) ||
            keywrap_seal_pkey(c->mkey, k, aad, &sealed, &sl) != 0 || (dl = i2d_PUBKEY(k, &der)) <= 0 ||
            put(rep, &len, &r.len1, sealed, sl) != 0 || put(rep, &len, &r.len2, der, (size_t)dl) != 0)
            goto out;
    } else {
        goto out;
    }
    r.status = 0;
out:
    if (r.status != 0) {
        len = sizeof r;
        r.len1 = r.len2 = 0;
    }
    memcpy(rep, &r, sizeof r);
    signer_free(s);
    OPENSSL_free(der);
    free(sealed);
    EVP_PKEY_free(k);
    return len;
}

/* A worker: takes the next channel with a request waiting, answers it and
 * re-arms the channel. The channels share one epoll set, each armed for one
 * event at a time (EPOLLONESHOT), so a request is answered by exactly one
 * worker and a worker that finishes a signature picks up the next waiting
 * request without sleeping. */
struct worker {
    struct child *c;
    int ep;
};

static void *child_serve(void *arg)
{
    struct worker *w = arg;
    unsigned char *msg = malloc(SIGNERD_MSG_MAX + 1), *rep = malloc(SIGNERD_MSG_MAX);
    while (msg && rep) {
        struct epoll_event ev;
        int k = epoll_wait(w->ep, &ev, 1, -1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k != 1)
            break;
        int fd = ev.data.fd;
        ssize_t n;
        do
            n = recv(fd, msg, SIGNERD_MSG_MAX + 1, MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        bool gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
        if (n > 0) {
            size_t rl = child_handle(w->c, msg, (size_t)n, rep);
            gone = send(fd, rep, rl, MSG_NOSIGNAL) < 0;
        }
        if (gone) {
            /* the daemon closed the channel (or died): drop it; the last
             * worker to see every channel gone ends the process */
            epoll_ctl(w->ep, EPOLL_CTL_DEL, fd, NULL);
            close(fd);
            pthread_mutex_lock(&w->c->mu);
            bool last = --w->c->open == 0;
            pthread_mutex_unlock(&w->c->mu);
            if (last)
                break;
            continue;
        }
        ev.events = EPOLLIN | EPOLLONESHOT;
        if (epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev) != 0)
            break;
    }
    free(msg);
    free(rep);
    _exit(0); /* every channel is closed (or the set failed): nothing to serve */
}

static void child_main(int *fds, const unsigned char *mkey, bool pdeathsig)
{
    struct child c;
    struct worker w;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nw = ncpu < 1 ? 1 : ncpu > SIGNERD_CHANNELS ? SIGNERD_CHANNELS : (int)ncpu;
    pthread_t t;
    memset(&c, 0, sizeof c);
    c.mkey = mkey;
    c.open = SIGNERD_CHANNELS;
    pthread_mutex_init(&c.mu, NULL);
    /* ends with the daemon (a restarted signer: once every channel is
     * closed, as the daemon's exit does; the death signal follows the
     * thread that forked, a request thread there); shutdown signals are
     * the daemon's business */
    if (pdeathsig)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    prctl(PR_SET_NAME, "pkiaas-signer");
    w = (struct worker){&c, epoll_create1(EPOLL_CLOEXEC)};
    if (w.ep < 0)
        _exit(1);
    for (int i = 0; i < SIGNERD_CHANNELS; i++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.fd = fds[i]};
        if (epoll_ctl(w.ep, EPOLL_CTL_ADD, fds[i], &ev) != 0)
            _exit(1);
    }
    for (int i = 1; i < nw; i++)
        if (pthread_create(&t, NULL, child_serve, &w) != 0)
            _exit(1);
    child_serve(&w);
}

struct signerd *signerd_start(const unsigned char mkey[MASTER_KEY_LEN])
{
    struct signerd *sd = calloc(1, sizeof *sd);
    int child_fd[SIGNERD_CHANNELS];
    if (!sd)
        return NULL;
    ssize_t el = readlink("/proc/self/exe", sd->exe, sizeof sd->exe - 1);
    if (el <= 0 || (size_t)el >= sizeof sd->exe - 1) {
        free(sd);
        return NULL;
    }
    sd->exe[el] = 0;
    sd->mkey = mkey;
    pthread_mutex_init(&sd->life, NULL);
    for (int i = 0; i < SIGNERD_CHANNELS; i++) {
        int sv[2];
        if (channel_pair(sv) != 0) {
            for (int k = 0; k < i; k++) {
                close(sd->fd[k]);
                close(child_fd[k]);
            }
            free(sd);
            return NULL;
        }
        sd->fd[i] = sv[0];
        child_fd[i] = sv[1];
        pthread_mutex_init(&sd->mu[i], NULL);
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* keep only the channels: no store, no listeners, no logs */
        long maxfd = sysconf(_SC_OPEN_MAX);
        if (maxfd < 0 || maxfd > 65536)
            maxfd = 65536;
        for (int fd = 3; fd < maxfd; fd++) {
            bool keep = false;
            for (int i = 0; i < SIGNERD_CHANNELS; i++)
                keep |= fd == child_fd[i];
            if (!keep)
                close(fd);
        }
        child_main(child_fd, mkey, true);
    }
    for (int i = 0; i < SIGNERD_CHANNELS; i++)
        close(child_fd[i]);
    if (pid < 0) {
        signerd_stop(sd);
        return NULL;
    }
    sd->pid = pid;
    return sd;
}

void signerd_stop(struct signerd *sd)
{
    if (!sd)
        return;
    for (int i = 0; i < SIGNERD_CHANNELS; i++) {
        if (sd->fd[i] >= 0)
            close(sd->fd[i]);
        pthread_mutex_destroy(&sd->mu[i]);
    }
    if (sd->pid > 0)
        waitpid(sd->pid, NULL, 0);
    pthread_mutex_destroy(&sd->life);
    free(sd);
}

int signerd_exec_main(void)
{
    unsigned char mkey[MASTER_KEY_LEN];
    int fds[SIGNERD_CHANNELS];
    size_t got = 0;
    while (got < sizeof mkey) {
        ssize_t n = read(EXEC_KEY_FD, mkey + got, sizeof mkey - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 1;
        got += (size_t)n;
    }
    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536)
        maxfd = 65536;
    for (int fd = EXEC_KEY_FD; fd < maxfd; fd++)
        close(fd); /* the key pipe and anything else inherited */
    for (int i = 0; i < SIGNERD_CHANNELS; i++)
        fds[i] = EXEC_FD0 + i;
    child_main(fds, mkey, false);
    return 1;
}

/* Runs a new signer process in place of one that died: this program again
 * (fork, then only async-signal-safe calls until exec: the daemon has
 * threads by now), given new channels and the master key through a pipe.
 * Called with every channel held, so no caller uses the old descriptors. */
static int respawn(struct signerd *sd)
{
    int mine[SIGNERD_CHANNELS], theirs[SIGNERD_CHANNELS], kp[2] = {-1, -1}, made = 0, rc = -1;
    char *const argv[] = {sd->exe, "__signer", NULL};
    pid_t pid;
    for (; made < SIGNERD_CHANNELS; made++) {
        int sv[2];
        if (channel_pair(sv) != 0)
            goto out;
        mine[made] = sv[0];
        theirs[made] = sv[1];
    }
    if (pipe2(kp, O_CLOEXEC) != 0)
        goto out;
    if ((pid = fork()) < 0)
        goto out;
    if (pid == 0) {
        /* out of the way of the numbers they are given, then in place
         * (dup2 clears close-on-exec) */
        int hi = EXEC_KEY_FD + 1, moved[SIGNERD_CHANNELS + 1];
        for (int i = 0; i < SIGNERD_CHANNELS; i++)
            if ((moved[i] = fcntl(theirs[i], F_DUPFD_CLOEXEC, hi)) < 0)
                _exit(127);
        if ((moved[SIGNERD_CHANNELS] = fcntl(kp[0], F_DUPFD_CLOEXEC, hi)) < 0)
            _exit(127);
        for (int i = 0; i <= SIGNERD_CHANNELS; i++)
            if (dup2(moved[i], EXEC_FD0 + i) < 0)
                _exit(127);
        execv(sd->exe, argv);
        _exit(127);
    }
    for (size_t off = 0; off < MASTER_KEY_LEN;) {
        ssize_t n = write(kp[1], sd->mkey + off, MASTER_KEY_LEN - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            goto out;
        }
        off += (size_t)n;
    }
    for (int i = 0; i < SIGNERD_CHANNELS; i++) {
        close(sd->fd[i]);
        sd->fd[i] = mine[i];
    }
    made = 0; /* ours now */
    sd->pid = pid;
    sd->gen++;
    rc = 0;
out:
    for (int i = 0; i < made; i++) {
        close(mine[i]);
        close(theirs[i]);
    }
    if (rc == 0)
        for (int i = 0; i < SIGNERD_CHANNELS; i++)
            close(theirs[i]);
    if (kp[0] >= 0)
        close(kp[0]);
    if (kp[1] >= 0)
        close(kp[1]);
    return rc;
}

/* After a caller found the signer gone (generation `gen`): the first to
 * get here reaps it and runs a new one; the others find the generation
 * moved on. 0 when a signer newer than `gen` runs. */
static int revive(struct signerd *sd, unsigned gen)
{
    int rc = 0;
    pthread_mutex_lock(&sd->life);
    for (int i = 0; i < SIGNERD_CHANNELS; i++)
        pthread_mutex_lock(&sd->mu[i]);
    if (sd->gen == gen) {
        kill(sd->pid, SIGKILL); /* gone already, or not answering: either way */
        waitpid(sd->pid, NULL, 0);
        rc = respawn(sd);
        if (rc == 0)
            log_error("signer: the signer process had stopped; a new one (pid %d) was started", (int)sd->pid);
        else
            log_error("signer: the signer process had stopped and a new one could not be started");
    }
    for (int i = SIGNERD_CHANNELS - 1; i >= 0; i--)
        pthread_mutex_unlock(&sd->mu[i]);
    pthread_mutex_unlock(&sd->life);
    return rc;
}

/* ---- the daemon's side ------------------------------------------------------ */

/* One request / reply on a free channel. Returns the reply length or -1;
 * *gone when the signer process was found dead (the channel's other end
 * closed), with the generation it belonged to. */
static ssize_t call_once(struct signerd *sd, const unsigned char *req, size_t len, unsigned char *rep, bool *gone,
                         unsigned *gen)
{
    int ch = -1;
    for (int i = 0; i < SIGNERD_CHANNELS && ch < 0; i++)
        if (pthread_mutex_trylock(&sd->mu[i]) == 0)
            ch = i;
    if (ch < 0) {
        /* all busy: wait on each in turn, so waiters spread over every
         * channel instead of queueing on one */
        ch = (int)(atomic_fetch_add_explicit(&sd->next, 1, memory_order_relaxed) % SIGNERD_CHANNELS);
        pthread_mutex_lock(&sd->mu[ch]);
    }
    ssize_t n = -1;
    *gen = sd->gen;
    *gone = false;
    if (send(sd->fd[ch], req, len, MSG_NOSIGNAL) == (ssize_t)len) {
        do
            n = recv(sd->fd[ch], rep, SIGNERD_MSG_MAX, 0);
        while (n < 0 && errno == EINTR);
        /* EOF: it died; the timeout: it hangs */
        *gone = n == 0 || (n < 0 && (errno == ECONNRESET || errno == EAGAIN || errno == EWOULDBLOCK));
    } else {
        *gone = errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN;
    }
    pthread_mutex_unlock(&sd->mu[ch]);
    return n >= (ssize_t)sizeof(struct rep_hdr) ? n : -1;
}

/* A signer process that died (killed, out of memory) is replaced and the
 * request sent once more. */
static ssize_t call(struct signerd *sd, const unsigned char *req, size_t len, unsigned char *rep)
{
    bool gone = false;
    unsigned gen = 0;
    ssize_t n = call_once(sd, req, len, rep, &gone, &gen);
    if (n < 0 && gone && revive(sd, gen) == 0)
        n = call_once(sd, req, len, rep, &gone, &gen);
    return n;
}

static size_t build_req(unsigned char *buf, int op, const char *name, bool pss, const char *aad,
                        const unsigned char *blob, size_t bl, const unsigned char *dig, size_t dl)
{
    struct req_hdr h;
    size_t al = strlen(aad);
    memset(&h, 0, sizeof h);
    if (strlen(name) >= sizeof h.name || al == 0 || al > AAD_MAX || bl > BLOB_MAX || dl > DIGEST_MAX)
        return 0;
    h.op = (uint8_t)op;
    h.pss = pss;
    memcpy(h.name, name, strlen(name) + 1);
    h.aad_len = (uint16_t)al;
    h.blob_len = (uint16_t)bl;
    h.dig_len = (uint16_t)dl;
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, aad, al);
    if (bl)
        memcpy(buf + sizeof h + al, blob, bl);
    if (dl)
        memcpy(buf + sizeof h + al + bl, dig, dl);
    return sizeof h + al + bl + dl;
}

/* Sends a request and splits the reply into its two parts (pointers into rep). */
static int exchange(struct signerd *sd, const unsigned char *req, size_t len, unsigned char *rep,
                    const unsigned char **p1, size_t *l1, const unsigned char **p2, size_t *l2)
{
    struct rep_hdr r;
    ssize_t n = len ? call(sd, req, len, rep) : -1;
    if (n < 0)
        return -1;
    memcpy(&r, rep, sizeof r);
    if (r.status != 0 || (size_t)n != sizeof r + r.len1 + r.len2)
        return -1;
    *p1 = rep + sizeof r;
    *l1 = r.len1;
    *p2 = rep + sizeof r + r.len1;
    *l2 = r.len2;
    return 0;
}

struct remote {
    struct signerd *sd;
    unsigned char *blob;
    size_t blob_len;
    char aad[AAD_MAX + 1];
    char md[16];
    EVP_MD *mdf; /* md, fetched once */
    bool pss;
};

/* Largest request: header, AAD, sealed blob, digest (build_req checks each). */
#define REQ_MAX (sizeof(struct req_hdr) + AAD_MAX + BLOB_MAX + DIGEST_MAX)

static int remote_sign(struct signer *s, const unsigned char *tbs, size_t tbslen, unsigned char **sig, size_t *siglen)
{
    struct remote *r = s->impl;
    /* On the stack: this runs once per certificate and per OCSP response,
     * and two 32 KiB heap buffers per call showed up in profiles. */
    unsigned char dig[EVP_MAX_MD_SIZE], req[REQ_MAX], rep[SIGNERD_MSG_MAX];
    unsigned int dl = 0;
    const unsigned char *p1, *p2;
    size_t l1, l2;
    if (!r->mdf || EVP_Digest(tbs, tbslen, dig, &dl, r->mdf, NULL) != 1)
        return -1;
    size_t n = build_req(req, OP_SIGN, r->md, r->pss, r->aad, r->blob, r->blob_len, dig, dl);
    if (exchange(r->sd, req, n, rep, &p1, &l1, &p2, &l2) != 0 || !(*sig = malloc(l1 ? l1 : 1)))
        return -1;
    memcpy(*sig, p1, l1);
    *siglen = l1;
    return 0;
}

static void remote_destroy(struct signer *s)
{
    struct remote *r = s->impl;
    if (r) {
        EVP_MD_free(r->mdf);
        free(r->blob);
        free(r);
    }
}

static const struct signer_ops remote_ops = {remote_sign, remote_destroy};

struct signer *signerd_signer(struct signerd *sd, const unsigned char *blob, size_t blob_len, const char *aad,
                              const char *md, bool pss)
{
    struct signer *s = calloc(1, sizeof *s);
    struct remote *r = calloc(1, sizeof *r);
    unsigned char *req = malloc(SIGNERD_MSG_MAX), *rep = malloc(SIGNERD_MSG_MAX);
    const unsigned char *p1, *p2;
    size_t l1, l2;
    if (!s || !r || !req || !rep || strlen(md) >= sizeof r->md || strlen(aad) > AAD_MAX || blob_len > BLOB_MAX ||
        !(r->blob = malloc(blob_len ? blob_len : 1)))
        goto fail;
    s->ops = &remote_ops;
    s->impl = r;
    r->sd = sd;
    memcpy(r->blob, blob, blob_len);
    r->blob_len = blob_len;
    snprintf(r->aad, sizeof r->aad, "%s", aad);
    snprintf(r->md, sizeof r->md, "%s", md);
    r->pss = pss;
    if (!(r->mdf = EVP_MD_fetch(NULL, md, NULL)))
        goto fail;
    /* the AlgorithmIdentifier and the public key come from the child */
    size_t n = build_req(req, OP_INFO, md, pss, aad, blob, blob_len, NULL, 0);
    if (exchange(sd, req, n, rep, &p1, &l1, &p2, &l2) != 0 || !(s->algid = malloc(l1)))
        goto fail;
    memcpy(s->algid, p1, l1);
    s->algid_len = l1;
    const unsigned char *q = p2;
    if (!(s->pub = d2i_PUBKEY(NULL, &q, (long)l2)))
        goto fail;
    free(req);
    free(rep);
    return s;
fail:
    free(req);
    free(rep);
    if (s && s->impl)
        signer_free(s);
    else {
        free(r);
        free(s);
    }
    return NULL;
}

int signerd_generate(struct signerd *sd, const char *label, const char *aad, unsigned char **blob, size_t *blob_len,
                     EVP_PKEY **pub)
{
    unsigned char *req = malloc(SIGNERD_MSG_MAX), *rep = malloc(SIGNERD_MSG_MAX);
    const unsigned char *p1, *p2;
    size_t l1, l2;
    int rc = -1;
    *blob = NULL;
    *pub = NULL;
    size_t n = req && rep ? build_req(req, OP_GEN, label, false, aad, NULL, 0, NULL, 0) : 0;
    if (exchange(sd, req, n, rep, &p1, &l1, &p2, &l2) != 0 || !(*blob = malloc(l1)))
        goto out;
    memcpy(*blob, p1, l1);
    *blob_len = l1;
    const unsigned char *q = p2;
    if (!(*pub = d2i_PUBKEY(NULL, &q, (long)l2))) {
        free(*blob);
        *blob = NULL;
        goto out;
    }
    rc = 0;
out:
    free(req);
    free(rep);
    return rc;
}
