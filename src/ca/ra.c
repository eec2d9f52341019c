#include "ca/ra.h"

#include "ca/svc_cert.h"

#include "crypto/keyspec.h"
#include "crypto/keywrap.h"
#include "util/codec.h"
#include "util/timeutil.h"
#include "x509/ext.h"

#include <jansson.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RA_KIND "ra-cert"

static void ra_aad(char *out, size_t n, const char *partition, const char *id)
{
    snprintf(out, n, "ra-key:%s/%s", partition, id);
}

/* Loads a stored RA key + certificate still far from expiry and not
 * revoked or suspended (ca_pk: its CA's; 0 skips the status check). */
static int ra_load(const struct ca_env *env, const char *partition, int64_t ca_pk, const char *id, EVP_PKEY **key,
                   X509 **cert)
{
    struct obj_rec o;
    json_t *j = NULL;
    unsigned char *der = NULL;
    size_t dl = 0;
    int rc = -1;
    char aad[256];
    if (env->store->ops->obj_get(env->store, partition, RA_KIND, id, &o) != STORE_OK)
        return -1;
    json_error_t je;
    j = o.json ? json_loads(o.json, 0, &je) : NULL;
    const char *c64 = json_string_value(json_object_get(j, "cert"));
    int64_t na = json_integer_value(json_object_get(j, "notAfter"));
    if (!c64 || na <= time_now() + RA_ROLLOVER_DAYS * 86400LL || b64_decode(c64, strlen(c64), &der, &dl) != 0)
        goto out;
    const unsigned char *p = der;
    ra_aad(aad, sizeof aad, partition, id);
    if (!(*cert = d2i_X509(NULL, &p, (long)dl)))
        goto out;
    if (ca_pk) {
        /* an administrator revoked it: a new one takes its place */
        char *sn = x509_serial_hex(*cert);
        struct cert_rec cr;
        int gs = sn ? env->store->ops->cert_get(env->store, partition, ca_pk, sn, &cr) : STORE_EIO;
        bool live = gs == STORE_OK && strcmp(cr.status, "issued") == 0;
        if (gs == STORE_OK)
            cert_rec_free(&cr);
        free(sn);
        if (!live) {
            X509_free(*cert);
            *cert = NULL;
            goto out;
        }
    }
    if (!(*key = keywrap_open_pkey(env->mkey, o.blob, o.blob_len, aad))) {
        X509_free(*cert);
        *cert = NULL;
        goto out;
    }
    rc = 0;
out:
    free(der);
    json_decref(j);
    obj_rec_free(&o);
    return rc;
}

int ra_cert_get(const struct ca_env *env, const char *partition, const char *ca_id, const char *purpose,
                const char *cfg_id, EVP_PKEY **key, X509 **cert, struct err *e)
{
    struct ca_rec ca;
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    unsigned char *der = NULL;
    size_t dl = 0;
    int64_t nb = 0, na = 0;
    char *c64 = NULL, *detail = NULL;
    json_t *j = NULL;
    struct obj_rec o;
    char id[OBJ_ID_MAX + 1], aad[256], dn[320];
    int rc = -1;
    memset(&ca, 0, sizeof ca);
    memset(&o, 0, sizeof o);
    *key = NULL;
    *cert = NULL;
    snprintf(id, sizeof id, "%s/%s", purpose, cfg_id);
    if (env->store->ops->ca_get(env->store, partition, ca_id, &ca) != STORE_OK || strcmp(ca.status, "active") != 0) {
        err_set(e, 404, "not_found", "caId", "the configuration's CA '%s' is not active", ca_id);
        goto out;
    }
    if (ra_load(env, partition, ca.pk, id, key, cert) == 0) {
        rc = 0;
        goto out;
    }
    if (!(k = keyspec_generate(keyspec_find("RSA-2048+PKCS15-SHA256"))))
        goto fail;
    bool cmp = strcmp(purpose, "cmp") == 0;
    snprintf(dn, sizeof dn, "CN=%s_%s %s RA, OU=Registration Authorities, O=%s", partition, cfg_id,
             cmp ? "CMP" : "SCEP", partition);
    char target[160];
    snprintf(target, sizeof target, "protocol:%s/%s-ra", cfg_id, purpose);
    j = json_pack("{s:s}", "caId", ca.id);
    detail = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    j = NULL;
    struct audit_rec a = {"system", "ra.issue", target, detail, NULL, NULL};
    struct svc_cert_req sr = {dn, k, KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT,
                              cmp ? "1.3.6.1.5.5.7.3.28" : NULL, false, RA_DAYS, cmp ? "cmp-responder" : "scep-ra", &a};
    if (!(x = svc_cert_issue(env, &ca, &sr, &der, &dl, &nb, &na, e)) || !(c64 = b64_encode(der, dl)))
        goto fail;
    j = json_pack("{s:s,s:I,s:s}", "cert", c64, "notAfter", (json_int_t)na, "caId", ca.id);
    snprintf(o.partition_id, sizeof o.partition_id, "%s", partition);
    snprintf(o.kind, sizeof o.kind, "%s", RA_KIND);
    snprintf(o.id, sizeof o.id, "%s", id);
    o.json = json_dumps(j, JSON_COMPACT);
    ra_aad(aad, sizeof aad, partition, id);
    if (!o.json || keywrap_seal_pkey(env->mkey, k, aad, &o.blob, &o.blob_len) != 0)
        goto fail;
    /* replace any older one (rollover); when two requests raced to make
     * the first one, the loser uses the winner's */
    struct obj_rec old;
    if (env->store->ops->obj_get(env->store, partition, RA_KIND, id, &old) == STORE_OK) {
        o.version = old.version;
        obj_rec_free(&old);
        if (env->store->ops->obj_put(env->store, &o, OBJ_UPDATE, NULL) != STORE_OK)
            goto fail;
    } else if (env->store->ops->obj_put(env->store, &o, OBJ_CREATE, NULL) != STORE_OK) {
        if (ra_load(env, partition, ca.pk, id, key, cert) == 0)
            rc = 0;
        else
            err_set(e, 500, "internal", "", "cannot store the %s RA certificate", purpose);
        goto out;
    }
    *key = k;
    *cert = x;
    k = NULL;
    x = NULL;
    rc = 0;
    goto out;
fail:
    err_set(e, 500, "internal", "", "cannot issue the %s RA certificate", purpose);
out:
    free(detail);
    free(c64);
    json_decref(j);
    obj_rec_free(&o);
    OPENSSL_free(der);
    EVP_PKEY_free(k);
    X509_free(x);
    ca_rec_free(&ca);
    return rc;
}
