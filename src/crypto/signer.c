#include "crypto/signer.h"

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

struct soft {
    EVP_PKEY *key;
    char md[16];
    bool pss;
    /* Initialised once; each signature works on a copy, which skips the
     * provider lookups of a fresh EVP_DigestSignInit (several microseconds
     * and a global lock in OpenSSL 3). Never modified after creation. */
    EVP_MD_CTX *tmpl;
};

static int soft_init(struct soft *k, EVP_MD_CTX *mctx, EVP_PKEY_CTX **pctx)
{
    if (EVP_DigestSignInit_ex(mctx, pctx, k->md, NULL, NULL, k->key, NULL) != 1)
        return -1;
    if (k->pss) {
        if (EVP_PKEY_CTX_set_rsa_padding(*pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(*pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md_name(*pctx, k->md, NULL) != 1)
            return -1;
    }
    return 0;
}

static int soft_sign(struct signer *s, const unsigned char *tbs, size_t tbslen, unsigned char **sig, size_t *siglen)
{
    struct soft *k = s->impl;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    unsigned char *out = NULL;
    size_t n = 0;
    int rc = -1;
    if (!mctx || EVP_MD_CTX_copy_ex(mctx, k->tmpl) != 1)
        goto out;
    if (EVP_DigestSign(mctx, NULL, &n, tbs, tbslen) != 1 || !(out = malloc(n)))
        goto out;
    if (EVP_DigestSign(mctx, out, &n, tbs, tbslen) != 1)
        goto out;
    *sig = out;
    *siglen = n;
    out = NULL;
    rc = 0;
out:
    free(out);
    EVP_MD_CTX_free(mctx);
    return rc;
}

static void soft_destroy(struct signer *s)
{
    struct soft *k = s->impl;
    if (k) {
        EVP_MD_CTX_free(k->tmpl);
        EVP_PKEY_free(k->key);
        free(k);
    }
}

static const struct signer_ops soft_ops = {soft_sign, soft_destroy};

/* Asks the provider for the AlgorithmIdentifier it will use, so PSS
 * parameters come out exactly as OpenSSL encodes them. */
static int soft_algid(struct soft *k, unsigned char **der, size_t *len)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char buf[256];
    int rc = -1;
    OSSL_PARAM params[2];
    if (!mctx || soft_init(k, mctx, &pctx) != 0)
        goto out;
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, buf, sizeof buf);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_PKEY_CTX_get_params(pctx, params) != 1 || !OSSL_PARAM_modified(&params[0]))
        goto out;
    if (!(*der = malloc(params[0].return_size)))
        goto out;
    memcpy(*der, buf, params[0].return_size);
    *len = params[0].return_size;
    rc = 0;
out:
    EVP_MD_CTX_free(mctx);
    return rc;
}

static EVP_PKEY *public_copy(EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0)
        return NULL;
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, n);
    OPENSSL_free(der);
    return pub;
}

struct signer *signer_soft_new(EVP_PKEY *key, const char *md, bool pss)
{
    struct signer *s = calloc(1, sizeof(*s));
    struct soft *k = calloc(1, sizeof(*k));
    if (!s || !k || !md || strlen(md) >= sizeof k->md)
        goto fail;
    s->ops = &soft_ops;
    s->impl = k;
    if (EVP_PKEY_up_ref(key) != 1)
        goto fail;
    k->key = key;
    strcpy(k->md, md);
    k->pss = pss;
    if (soft_algid(k, &s->algid, &s->algid_len) != 0)
        goto fail;
    EVP_PKEY_CTX *pctx = NULL;
    if (!(k->tmpl = EVP_MD_CTX_new()) || soft_init(k, k->tmpl, &pctx) != 0)
        goto fail;
    if (!(s->pub = public_copy(key)))
        goto fail;
    return s;
fail:
    if (s && s->impl)
        signer_free(s);
    else {
        free(k);
        free(s);
    }
    return NULL;
}

int signer_sign(struct signer *s, const unsigned char *tbs, size_t tbslen, unsigned char **sig, size_t *siglen)
{
    return s->ops->sign(s, tbs, tbslen, sig, siglen);
}

X509_ALGOR *signer_algor(const struct signer *s)
{
    const unsigned char *p = s->algid;
    return d2i_X509_ALGOR(NULL, &p, (long)s->algid_len);
}

void signer_free(struct signer *s)
{
    if (!s)
        return;
    if (s->ops && s->ops->destroy)
        s->ops->destroy(s);
    free(s->algid);
    EVP_PKEY_free(s->pub);
    free(s);
}
