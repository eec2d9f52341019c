#include "daemon/context.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "authz/authz.h"
#include "ca/ca_cache.h"
#include "ca/crl.h"
#include "ca/ocsp.h"
#include "crypto/masterkey.h"

int app_open(struct app *a, char *err, size_t errlen)
{
    if (mkdir(a->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create data directory %s: %s", a->cfg.data_dir, strerror(errno));
        return -1;
    }
    if (masterkey_load_or_create(a->cfg.master_key_file, a->mkey, err, errlen) != 0)
        return -1;
    if (!(a->api.store = store_open(a->cfg.store, err, errlen)))
        return -1;
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
