#include "daemon/context.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authz/authz.h"
#include "ca/ca.h"
#include "ca/ca_cache.h"
#include "ca/crl.h"
#include "ca/ocsp.h"
#include "crypto/keywrap.h"
#include "crypto/masterkey.h"

#define KEY_CHECK_KIND "master-key-check"
#define KEY_CHECK_AAD "pkiaas-master-key-check"

/* The store holds a value sealed under the master key the first time any
 * node opens it: a daemon started with another key (a restore without
 * master.key, a node given the wrong file) refuses to run instead of
 * answering /healthz and then failing on every CA key. 0, or -1 with err. */
static int check_master_key(struct store *st, const unsigned char *mkey, const char *path, char *err, size_t errlen)
{
    static const unsigned char probe[] = "pkiaas master key";
    for (int attempt = 0; attempt < 2; attempt++) {
        struct obj_rec o;
        memset(&o, 0, sizeof o);
        int g = st->ops->obj_get(st, "", KEY_CHECK_KIND, "v1", &o);
        if (g == STORE_OK) {
            unsigned char *pt = NULL;
            size_t pl = 0;
            int ok = o.blob && keywrap_open(mkey, o.blob, o.blob_len, KEY_CHECK_AAD, &pt, &pl) == 0 &&
                     pl == sizeof probe && memcmp(pt, probe, pl) == 0;
            free(pt);
            obj_rec_free(&o);
            if (ok)
                return 0;
            snprintf(err, errlen,
                     "the master key %s does not open this store's secrets (a wrong or missing key file: restore the "
                     "master.key that belongs with this data)",
                     path);
            return -1;
        }
        if (g != STORE_ENOTFOUND) {
            snprintf(err, errlen, "cannot read the store to check the master key");
            return -1;
        }
        /* No check recorded yet: a new store, or one written before the
         * check existed. The latter may hold CA keys sealed under another
         * master key; the first one found decides. */
        struct ca_list l;
        int opens = -1;
        if (st->ops->ca_list_active_all(st, &l) != STORE_OK) {
            snprintf(err, errlen, "cannot read the store to check the master key");
            return -1;
        }
        for (size_t i = 0; i < l.n && opens < 0; i++)
            opens = ca_key_opens(mkey, &l.items[i]);
        ca_list_free(&l);
        if (opens == 0) {
            snprintf(err, errlen,
                     "the master key %s does not open this store's CA keys (a wrong or missing key file: restore the "
                     "master.key that belongs with this data)",
                     path);
            return -1;
        }
        snprintf(o.kind, sizeof o.kind, "%s", KEY_CHECK_KIND);
        snprintf(o.id, sizeof o.id, "v1");
        if (keywrap_seal(mkey, probe, sizeof probe, KEY_CHECK_AAD, &o.blob, &o.blob_len) != 0) {
            snprintf(err, errlen, "cannot seal the master key check");
            return -1;
        }
        int put = st->ops->obj_put(st, &o, OBJ_CREATE, NULL);
        free(o.blob);
        if (put == STORE_OK)
            return 0;
        /* another node wrote it first: check against that one */
    }
    snprintf(err, errlen, "cannot record the master key check in the store");
    return -1;
}

int app_open(struct app *a, char *err, size_t errlen)
{
    struct stat ks;
    if (mkdir(a->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create data directory %s: %s", a->cfg.data_dir, strerror(errno));
        return -1;
    }
    bool key_existed = stat(a->cfg.master_key_file, &ks) == 0;
    if (masterkey_load_or_create(a->cfg.master_key_file, a->mkey, err, errlen) != 0)
        return -1;
    if (!(a->api.store = store_open(a->cfg.store, err, errlen))) {
        /* nor for a store that could not even be opened (a restore in
         * progress, the database down): the next start must not find a
         * made-up key that the store's own secrets refuse */
        if (!key_existed)
            unlink(a->cfg.master_key_file);
        return -1;
    }
    if (check_master_key(a->api.store, a->mkey, a->cfg.master_key_file, err, errlen) != 0) {
        /* a key just made up for a store that has one already is no use:
         * leave the place free for the right file */
        if (!key_existed)
            unlink(a->cfg.master_key_file);
        return -1;
    }
    a->api.env.store = a->api.store;
    a->api.env.mkey = a->mkey;
    a->api.env.http_base = a->cfg.public_http_url;
    a->api.env.https_base = a->cfg.public_https_url;
    a->api.env.ocsp_require_signed = a->cfg.ocsp_require_signed != 0;
    a->api.rate_standard = a->cfg.rate_limit_standard;
    a->api.rate_premium = a->cfg.rate_limit_premium;
    a->api.rate_window_s = a->cfg.rate_limit_window_s;
    a->api.crl_max_age_s = a->cfg.crl_delay_s;
    a->api.regions = a->cfg.regions;
    a->api.swagger_dir = a->cfg.swagger_ui_dir;
    a->api.portal_dir = a->cfg.portal_dir;
    a->api.mail.url = a->cfg.smtp_url;
    a->api.mail.from = a->cfg.smtp_from ? a->cfg.smtp_from : "pkiaas@localhost";
    a->api.mail.username = a->cfg.smtp_username;
    a->api.mail.password = a->cfg.smtp_password;
    if (!(a->api.crls = crl_cache_new()) || !(a->api.ocsp = ocsp_cache_new()) ||
        !(a->api.env.cache = ca_cache_new()) || !(a->api.tokens = token_cache_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void app_close(struct app *a)
{
    crl_cache_free(a->api.crls);
    ca_cache_free(a->api.env.cache);
    token_cache_free(a->api.tokens);
    a->api.tokens = NULL;
    a->api.env.cache = NULL;
    ocsp_cache_free(a->api.ocsp);
    a->api.crls = NULL;
    a->api.ocsp = NULL;
    store_close(a->api.store);
    a->api.store = NULL;
    OPENSSL_cleanse(a->mkey, sizeof a->mkey);
    config_free(&a->cfg);
}
