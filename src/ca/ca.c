#include "ca/ca.h"

#include "ca/ca_cache.h"
#include "ca/ocsp.h"
#include "crypto/keyspec.h"
#include "crypto/signerd.h"
#include "util/log.h"
#include "util/codec.h"
#include "util/timeutil.h"
#include "x509/certbuild.h"
#include "x509/dn.h"
#include "x509/ext.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CA_KU (KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN)
#define MAX_CERT_INPUT (64 * 1024)
#define MAX_FRIENDLY_NAME 128

bool ca_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 2 || n > 18)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

char *ca_url_crl(const struct ca_env *env, const char *partition, const char *id)
{
    char *s = NULL;
    if (asprintf(&s, "%s/crl/%s/%s/crl.crl", env->http_base, partition, id) < 0)
        return NULL;
    return s;
}

char *ca_url_crl_shard(const struct ca_env *env, const char *partition, const char *id, int shard)
{
    char *s = NULL;
    if (asprintf(&s, "%s/crl/%s/%s/crl-%d.crl", env->http_base, partition, id, shard) < 0)
        return NULL;
    return s;
}

char *ca_url_ocsp(const struct ca_env *env, const char *partition, const char *id)
{
    char *s = NULL;
    if (asprintf(&s, "%s/ocsp/%s/%s", env->http_base, partition, id) < 0)
        return NULL;
    return s;
}

char *ca_url_issuer_cert(const struct ca_env *env, const char *partition, const char *id)
{
    char *s = NULL;
    if (asprintf(&s, "%s/ca/%s/%s.crt", env->http_base, partition, id) < 0)
        return NULL;
    return s;
}

char *ca_url_cagw(const struct ca_env *env, const char *partition, const char *id)
{
    char *s = NULL;
    if (asprintf(&s, "%s/cagw/v1/certificate-authorities/%s~%s", env->https_base, partition, id) < 0)
        return NULL;
    return s;
}

X509 *ca_parse_cert(const unsigned char *data, size_t len)
{
    X509 *x = NULL;
    if (!data || len == 0 || len > MAX_CERT_INPUT)
        return NULL;
    if (len > 10 && memmem(data, len, "-----BEGIN", 10)) {
        BIO *b = BIO_new_mem_buf(data, (int)len);
        if (b)
            x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        BIO_free(b);
        return x;
    }
    const unsigned char *p = data;
    x = d2i_X509(NULL, &p, (long)len);
    if (x && p != data + len) { /* trailing bytes: not a single DER certificate */
        X509_free(x);
        x = NULL;
    }
    if (!x) {
        /* base64 DER without armour */
        unsigned char *der = NULL;
        size_t dlen = 0;
        if (b64_decode((const char *)data, len, &der, &dlen) == 0) {
            p = der;
            x = d2i_X509(NULL, &p, (long)dlen);
            if (x && p != der + dlen) {
                X509_free(x);
                x = NULL;
            }
        }
        free(der);
    }
    return x;
}

X509 *ca_cert(const struct ca_rec *c)
{
    if (!c->cert_der)
        return NULL;
    const unsigned char *p = c->cert_der;
    return d2i_X509(NULL, &p, (long)c->cert_len);
}

static void key_aad(char *out, size_t n, const char *partition, const char *id, int64_t created)
{
    snprintf(out, n, "ca-key:%s/%s/%lld", partition, id, (long long)created);
}

int ca_key_opens(const unsigned char *mkey, const struct ca_rec *c)
{
    char aad[512];
    unsigned char *pt = NULL;
    size_t pl = 0;
    if (!c->key_blob || !c->key_blob_len)
        return -1;
    key_aad(aad, sizeof aad, c->partition_id, c->id, c->created_at);
    int ok = keywrap_open(mkey, c->key_blob, c->key_blob_len, aad, &pt, &pl) == 0;
    if (pt) {
        OPENSSL_cleanse(pt, pl);
        free(pt);
    }
    return ok;
}

struct signer *key_signer(const struct ca_env *env, const unsigned char *blob, size_t blob_len, const char *aad,
                          const char *md, bool pss)
{
    if (env->signerd) /* the key never enters this process */
        return signerd_signer(env->signerd, blob, blob_len, aad, md, pss);
    EVP_PKEY *pk = keywrap_open_pkey(env->mkey, blob, blob_len, aad);
    if (!pk)
        return NULL;
    struct signer *s = signer_soft_new(pk, md, pss);
    EVP_PKEY_free(pk);
    return s;
}

int key_generate(const struct ca_env *env, const struct keyspec *ks, const char *aad, unsigned char **blob,
                 size_t *blob_len, EVP_PKEY **pub)
{
    EVP_PKEY *k = NULL;
    *blob = NULL;
    *pub = NULL;
    if (env->signerd) /* generated and sealed in the signer process */
        return signerd_generate(env->signerd, ks->label, aad, blob, blob_len, pub);
    if (!(k = keyspec_generate(ks)) || keywrap_seal_pkey(env->mkey, k, aad, blob, blob_len) != 0) {
        EVP_PKEY_free(k);
        return -1;
    }
    *pub = k; /* holds the private half too: used in-process only without a signer process */
    return 0;
}

struct signer *ca_signer(const struct ca_env *env, const struct ca_rec *c)
{
    const struct keyspec *ks = keyspec_find(c->key_label);
    char aad[160];
    if (!ks || !c->key_blob)
        return NULL;
    key_aad(aad, sizeof aad, c->partition_id, c->id, c->created_at);
    return key_signer(env, c->key_blob, c->key_blob_len, aad, ks->md, ks->pss);
}

/* pathLenConstraint of a CA certificate: -1 unlimited. */
static int cert_path_len(X509 *x)
{
    long pl = X509_get_pathlen(x);
    return pl < 0 ? -1 : (int)pl;
}

static int check_ca_cert_shape(X509 *x, struct err *e, const char *field)
{
    if (X509_check_ca(x) < 1 || !(X509_get_extension_flags(x) & EXFLAG_CA)) {
        err_set(e, 400, "invalid_field", field, "%s: not a CA certificate (basicConstraints cA=TRUE is required)",
                field);
        return -1;
    }
    if (!(X509_get_extension_flags(x) & EXFLAG_KUSAGE) || !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN)) {
        err_set(e, 400, "invalid_field", field, "%s: the keyUsage extension must include keyCertSign", field);
        return -1;
    }
    if (X509_cmp_time(X509_get0_notAfter(x), NULL) <= 0) {
        err_set(e, 400, "invalid_field", field, "%s: certificate has expired", field);
        return -1;
    }
    /* RFC 5280 4.2: relying parties reject a certificate with a critical
     * extension they do not recognise, so every chain through it fails */
    if (X509_get_extension_flags(x) & EXFLAG_CRITICAL) {
        err_set(e, 400, "invalid_field", field, "%s: it has a critical extension that relying parties do not "
                "recognise (RFC 5280 4.2), so no chain through it would validate", field);
        return -1;
    }
    return 0;
}

/* Assembles and signs a CA certificate. `issuer` NULL means self-signed. */
static X509 *build_ca_cert(const struct ca_env *env, const char *partition, const X509_NAME *subject, EVP_PKEY *pub,
                           int path_len, int64_t nb, int64_t na, const struct ca_rec *issuer, X509 *issuer_cert,
                           struct signer *sig, struct err *e)
{
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    struct cert_template t;
    unsigned char ski[SKI_LEN];
    char *crl = NULL, *aia = NULL, *ocsp = NULL, msg[128];
    X509 *x = NULL;
    memset(&t, 0, sizeof t);
    if (!exts || x509_ski_compute(pub, ski) != 0 || x509_serial_new(t.serial) != 0)
        goto fail;
    if (ext_push(exts, ext_basic_constraints(true, path_len)) || ext_push(exts, ext_key_usage(CA_KU)) ||
        ext_push(exts, ext_ski(ski)))
        goto fail;
    if (issuer_cert) {
        const ASN1_OCTET_STRING *iski = X509_get0_subject_key_id(issuer_cert);
        unsigned char computed[SKI_LEN];
        if (iski) {
            if (ext_push(exts, ext_aki(ASN1_STRING_get0_data(iski), (size_t)ASN1_STRING_length(iski))))
                goto fail;
        } else if (x509_ski_compute(X509_get0_pubkey(issuer_cert), computed) != 0 ||
                   ext_push(exts, ext_aki(computed, SKI_LEN))) {
            goto fail;
        }
        if (issuer->crl_enabled) {
            if (!(crl = ca_url_crl(env, partition, issuer->id)) || ext_push(exts, ext_crl_dp(crl)))
                goto fail;
        }
        if (issuer->ocsp_enabled && !(ocsp = ca_url_ocsp(env, partition, issuer->id)))
            goto fail;
        if (!(aia = ca_url_issuer_cert(env, partition, issuer->id)) || ext_push(exts, ext_aia(ocsp, aia)))
            goto fail;
    } else if (ext_push(exts, ext_aki(ski, SKI_LEN))) {
        goto fail;
    }
    t.subject = subject;
    t.issuer = issuer_cert ? X509_get_subject_name(issuer_cert) : subject;
    t.pubkey = pub;
    t.not_before = nb;
    t.not_after = na;
    t.exts = exts;
    if (!(x = certbuild_sign(&t, sig, msg, sizeof msg)))
        goto fail;
    /* Final check before anyone sees it: the signature verifies under the
     * issuer key. */
    if (X509_verify(x, issuer_cert ? X509_get0_pubkey(issuer_cert) : pub) != 1) {
        X509_free(x);
        x = NULL;
        goto fail;
    }
    goto out;
fail:
    err_set(e, 500, "internal", "", "could not build the CA certificate");
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    free(crl);
    free(aia);
    free(ocsp);
    return x;
}

/* A PKCS#10 request for a CA whose certificate an external root signs. */
static X509_REQ *build_csr(const X509_NAME *subject, EVP_PKEY *key, int path_len, struct signer *sig)
{
    X509_REQ *r = X509_REQ_new(), *res = NULL;
    unsigned char *tbs = NULL, *der = NULL;
    size_t derlen = 0;
    if (!r || X509_REQ_set_version(r, X509_REQ_VERSION_1) != 1 || X509_REQ_set_subject_name(r, subject) != 1 ||
        X509_REQ_set_pubkey(r, key) != 1)
        goto out;
    /* Ask for what the CA certificate must contain. */
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    if (!exts)
        goto out;
    if (ext_push(exts, ext_basic_constraints(true, path_len)) || ext_push(exts, ext_key_usage(CA_KU)) ||
        X509_REQ_add_extensions(r, exts) != 1) {
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        goto out;
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    int n = i2d_re_X509_REQ_tbs(r, &tbs);
    if (n <= 0 || certbuild_signed_der(sig, tbs, (size_t)n, &der, &derlen) != 0)
        goto out;
    const unsigned char *p = der;
    res = d2i_X509_REQ(NULL, &p, (long)derlen);
out:
    X509_REQ_free(r);
    OPENSSL_free(tbs);
    free(der);
    return res;
}

static int der_of(X509 *x, unsigned char **der, size_t *len)
{
    unsigned char *p = NULL;
    int n = i2d_X509(x, &p);
    if (n <= 0)
        return -1;
    *der = malloc((size_t)n);
    if (!*der) {
        OPENSSL_free(p);
        return -1;
    }
    memcpy(*der, p, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(p);
    return 0;
}

static int store_err(int rc, const char *id, struct err *e)
{
    switch (rc) {
    case STORE_ECONFLICT:
        err_set(e, 409, "conflict", "id", "id: a CA with identifier '%s' already exists in this partition", id);
        break;
    case STORE_ERESERVED:
        err_set(e, 409, "conflict", "id",
                "id: identifier '%s' belonged to a CA deleted less than 24 hours ago; choose another or wait", id);
        break;
    case STORE_ENOTFOUND:
        err_set(e, 404, "not_found", "id", "CA '%s' not found", id);
        break;
    case STORE_EQUOTA:
        err_set(e, 422, "quota_exceeded", "", "the subscription's purchased CAs are all in use (deleted CAs count "
                "for 24 hours); purchase more to create '%s'", id);
        break;
    case STORE_ESTATE:
        err_set(e, 409, "conflict", "parentId", "parentId: the parent CA was deleted while '%s' was being created", id);
        break;
    default:
        err_set(e, 500, "internal", "", "storage failure");
        break;
    }
    return -1;
}

static void fill_cert_rec(struct cert_rec *cr, const char *partition, int64_t issuer_pk, X509 *x,
                          const unsigned char *der, size_t len, const char *actor, int64_t now)
{
    memset(cr, 0, sizeof(*cr));
    snprintf(cr->partition_id, sizeof cr->partition_id, "%s", partition);
    cr->issuer_ca_pk = issuer_pk;
    char *sn = x509_serial_hex(x);
    snprintf(cr->serial, sizeof cr->serial, "%s", sn ? sn : "");
    free(sn);
    cr->subject = dn_print(X509_get_subject_name(x));
    const ASN1_TIME *nb = X509_get0_notBefore(x), *na = X509_get0_notAfter(x);
    struct tm tm;
    if (ASN1_TIME_to_tm(nb, &tm) == 1)
        cr->not_before = (int64_t)timegm(&tm);
    if (ASN1_TIME_to_tm(na, &tm) == 1)
        cr->not_after = (int64_t)timegm(&tm);
    snprintf(cr->status, sizeof cr->status, "issued");
    cr->revocation_reason = -1;
    cr->requester = (char *)actor;
    cr->is_ca = true;
    cr->crl_shard = -1;
    cr->der = (unsigned char *)der;
    cr->der_len = len;
    cr->created_at = now;
}

static int create_external(const struct ca_env *env, const char *partition, const struct ca_create_req *req,
                           const char *actor, struct ca_rec *c, struct err *e)
{
    X509 *x = NULL;
    int rc = -1;
    if (req->key_label || req->subject || req->parent_id || req->has_path_len || req->expiry) {
        err_set(e, 400, "invalid_field", "type",
                "type: externalKey CAs take only id, friendlyName and certificate (subject, key and validity come "
                "from the certificate)");
        goto out;
    }
    if (!req->cert || req->cert_len == 0) {
        err_set(e, 400, "invalid_field", "certificate", "certificate: required for an externalKey CA");
        goto out;
    }
    if (!(x = ca_parse_cert(req->cert, req->cert_len))) {
        err_set(e, 400, "invalid_field", "certificate",
                "certificate: not a PEM or DER X.509 certificate (or longer than 64 KiB)");
        goto out;
    }
    if (check_ca_cert_shape(x, e, "certificate") != 0)
        goto out;
    /* a root: its own issuer, and its signature verifies with its key */
    if (X509_check_issued(x, x) != X509_V_OK || X509_verify(x, X509_get0_pubkey(x)) != 1) {
        err_set(e, 400, "invalid_field", "certificate",
                "certificate: not a self-signed root (its issuer must be its subject and its signature must "
                "verify with its own key)");
        goto out;
    }
    if (X509_cmp_time(X509_get0_notBefore(x), NULL) > 0) {
        err_set(e, 400, "invalid_field", "certificate", "certificate: not valid yet (notBefore is in the future)");
        goto out;
    }
    if (der_of(x, &c->cert_der, &c->cert_len) != 0 || !(c->subject = dn_print(X509_get_subject_name(x)))) {
        err_set(e, 500, "internal", "", "out of memory");
        goto out;
    }
    snprintf(c->status, sizeof c->status, "active");
    c->path_len = cert_path_len(x);
    struct audit_rec a = {actor, "ca.import_external", "ca", NULL, req->requester_ip, NULL};
    char target[64];
    snprintf(target, sizeof target, "ca:%s", c->id);
    a.target = target;
    int s = env->store->ops->ca_insert(env->store, c, NULL, c->created_at, CA_ID_RESERVE_S, &a);
    if (s != STORE_OK) {
        store_err(s, c->id, e);
        goto out;
    }
    rc = 0;
out:
    X509_free(x);
    return rc;
}

/* RFC 5280 4.1.2.6: a CA gives each subject it certifies its own DN. A
 * CA named like its parent would also be self-issued, which pathLen does
 * not count (6.1.4 (l)). 0, or -1 with a 409 (or 500) in e. */
static int subject_taken(const struct ca_env *env, const char *partition, const struct ca_rec *parent, X509 *pcert,
                         const X509_NAME *subject, struct err *e)
{
    struct ca_list l;
    int rc = 0;
    if (X509_NAME_cmp(subject, X509_get_subject_name(pcert)) == 0) {
        err_set(e, 409, "conflict", "subject", "subject: the same as its parent '%s''s", parent->id);
        return -1;
    }
    if (env->store->ops->ca_list(env->store, partition, false, &l) != STORE_OK) {
        err_set(e, 500, "internal", "", "internal error while creating the CA");
        return -1;
    }
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        const struct ca_rec *o = &l.items[i];
        X509_NAME *on = NULL;
        char dnerr[64];
        if (strcmp(o->parent_id, parent->id) != 0 || strcmp(o->status, "deleted") == 0 || !o->subject ||
            dn_parse(o->subject, &on, dnerr, sizeof dnerr) != 0)
            continue;
        if (X509_NAME_cmp(on, subject) == 0) {
            err_set(e, 409, "conflict", "subject", "subject: CA '%s' under '%s' already has this subject", o->id,
                    parent->id);
            rc = -1;
        }
        X509_NAME_free(on);
    }
    ca_list_free(&l);
    return rc;
}

int ca_create(const struct ca_env *env, const char *partition, const struct ca_create_req *req, const char *actor,
              struct ca_rec *out, struct err *e)
{
    struct ca_rec c, parent;
    X509_NAME *subject = NULL;
    X509 *pcert = NULL, *x = NULL;
    X509_REQ *csr = NULL;
    EVP_PKEY *key = NULL;
    struct signer *own = NULL, *psig = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    char dnerr[200], aad[160];
    int rc = -1;
    int64_t now = time_now();
    memset(&c, 0, sizeof c);
    memset(&parent, 0, sizeof parent);
    c.path_len = -1;

    if (!req->id) {
        err_set(e, 400, "invalid_field", "id", "id: required");
        goto out;
    }
    if (!ca_id_valid(req->id)) {
        err_set(e, 400, "invalid_field", "id",
                "id: must be 2-18 characters of lowercase letters, digits, '-' or '_'");
        goto out;
    }
    if (req->friendly_name && (strlen(req->friendly_name) == 0 || strlen(req->friendly_name) > MAX_FRIENDLY_NAME)) {
        err_set(e, 400, "invalid_field", "friendlyName", "friendlyName: must be 1-%d characters", MAX_FRIENDLY_NAME);
        goto out;
    }
    if (!req->type) {
        err_set(e, 400, "invalid_field", "type", "type: required (root, externalKey, intermediate or subord)");
        goto out;
    }
    bool is_root = strcmp(req->type, "root") == 0, is_ext = strcmp(req->type, "externalKey") == 0;
    bool is_inter = strcmp(req->type, "intermediate") == 0, is_sub = strcmp(req->type, "subord") == 0;
    if (!is_root && !is_ext && !is_inter && !is_sub) {
        err_set(e, 400, "invalid_field", "type", "type: must be root, externalKey, intermediate or subord");
        goto out;
    }
    snprintf(c.partition_id, sizeof c.partition_id, "%s", partition);
    snprintf(c.id, sizeof c.id, "%s", req->id);
    snprintf(c.type, sizeof c.type, "%s", req->type);
    c.created_at = now;
    if (!(c.friendly_name = strdup(req->friendly_name ? req->friendly_name : req->id)))
        goto oom;

    if (is_ext) {
        if (create_external(env, partition, req, actor, &c, e) != 0)
            goto out;
        *out = c;
        memset(&c, 0, sizeof c);
        rc = 0;
        goto out;
    }
    if (req->cert) {
        err_set(e, 400, "invalid_field", "certificate", "certificate: only accepted for externalKey CAs");
        goto out;
    }

    /* Signing key details */
    if (!req->key_label) {
        err_set(e, 400, "invalid_field", "signingKeyDetails", "signingKeyDetails: required");
        goto out;
    }
    const struct keyspec *ks = keyspec_find(req->key_label);
    if (!ks) {
        err_set(e, 400, "invalid_field", "signingKeyDetails",
                "signingKeyDetails: unknown label '%.64s' (GET signing-key-details lists them)", req->key_label);
        goto out;
    }
    if (!keyspec_supported(ks)) {
        err_set(e, 422, "unsupported", "signingKeyDetails",
                "signingKeyDetails: post-quantum label '%s' is not yet supported", ks->label);
        goto out;
    }
    snprintf(c.key_label, sizeof c.key_label, "%s", ks->label);

    /* Subject: only CN is mandatory */
    if (!req->subject || !*req->subject) {
        err_set(e, 400, "invalid_field", "subject", "subject: required (e.g. \"CN=My CA,O=Example,C=US\")");
        goto out;
    }
    if (dn_parse(req->subject, &subject, dnerr, sizeof dnerr) != 0) {
        err_set(e, 400, "invalid_field", "subject", "subject: %s", dnerr);
        goto out;
    }
    char *cn = dn_get_cn(subject);
    if (!cn) {
        err_set(e, 400, "invalid_field", "subject", "subject: the common name (CN) is mandatory");
        goto out;
    }
    free(cn);
    if (!(c.subject = dn_print(subject)))
        goto oom;

    /* Parent */
    if (is_root) {
        if (req->parent_id) {
            err_set(e, 400, "invalid_field", "parentId", "parentId: a root CA has no parent");
            goto out;
        }
        if (req->has_ocsp && req->ocsp) {
            err_set(e, 400, "invalid_field", "enableOcsp", "enableOcsp: only issuing (subord) CAs offer OCSP");
            goto out;
        }
    } else {
        if (!req->parent_id) {
            err_set(e, 400, "invalid_field", "parentId", "parentId: required for %s CAs", req->type);
            goto out;
        }
        int s = env->store->ops->ca_get(env->store, partition, req->parent_id, &parent);
        if (s == STORE_ENOTFOUND || (s == STORE_OK && strcmp(parent.status, "deleted") == 0)) {
            err_set(e, 400, "invalid_field", "parentId", "parentId: no CA '%.24s' in this partition",
                    req->parent_id);
            goto out;
        }
        if (s != STORE_OK)
            goto io;
        if (strcmp(parent.type, "subord") == 0) {
            err_set(e, 400, "invalid_field", "parentId",
                    "parentId: '%s' is an issuing CA; parents must be root, intermediate or externalKey CAs",
                    parent.id);
            goto out;
        }
        if (strcmp(parent.status, "active") != 0) {
            err_set(e, 409, "conflict", "parentId", "parentId: CA '%s' is %s and cannot sign", parent.id,
                    parent.status);
            goto out;
        }
        /* a parent whose own certificate its parent revoked or suspended
         * certifies nothing any more: it would not validate (RFC 5280 6.3),
         * and a compromised key must not mint CAs (the issuance core
         * refuses its end-entity certificates the same way) */
        struct ca_runtime *prt = ca_runtime_get(env, partition, parent.id, e);
        if (!prt)
            goto out;
        bool parent_revoked = strcmp(prt->cert_status, "revoked") == 0 || strcmp(prt->cert_status, "suspended") == 0;
        if (parent_revoked)
            err_set(e, 409, "conflict", "parentId", "parentId: CA '%s' cannot sign: its own certificate is %s",
                    parent.id, prt->cert_status);
        ca_runtime_release(prt);
        if (parent_revoked)
            goto out;
        if (is_inter && req->has_ocsp && req->ocsp) {
            err_set(e, 400, "invalid_field", "enableOcsp", "enableOcsp: only issuing (subord) CAs offer OCSP");
            goto out;
        }
        if (!(pcert = ca_cert(&parent)))
            goto io;
        if (subject_taken(env, partition, &parent, pcert, subject, e) != 0)
            goto out;
    }

    /* Path length: issuing CAs are 0; otherwise unlimited or requested, and
     * below the parent's constraint (RFC 5280 4.2.1.9). */
    int parent_pl = pcert ? cert_path_len(pcert) : -1;
    if (pcert && parent_pl == 0) {
        err_set(e, 400, "invalid_field", "parentId",
                "parentId: CA '%s' has pathLenConstraint 0 and cannot certify further CAs", parent.id);
        goto out;
    }
    if (is_sub) {
        if (req->has_path_len && req->path_len != 0) {
            err_set(e, 400, "invalid_field", "pathLength", "pathLength: issuing CAs always have pathLength 0");
            goto out;
        }
        c.path_len = 0;
    } else if (req->has_path_len) {
        if (req->path_len < 0 || req->path_len > 16 || (parent_pl > 0 && req->path_len > parent_pl - 1)) {
            err_set(e, 400, "invalid_field", "pathLength", "pathLength: must be between 0 and %d",
                    parent_pl > 0 ? parent_pl - 1 : 16);
            goto out;
        }
        c.path_len = req->path_len;
    } else if (parent_pl > 0) {
        c.path_len = parent_pl - 1;
    }

    /* Validity */
    int64_t parent_na = 0;
    if (pcert) {
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(pcert), &tm) != 1)
            goto io;
        parent_na = (int64_t)timegm(&tm);
    }
    int64_t na;
    if (req->expiry) {
        if (time_parse_rfc3339(req->expiry, &na) != 0) {
            err_set(e, 400, "invalid_field", "expiryDate",
                    "expiryDate: must be an RFC 3339 date-time such as 2045-01-31T00:00:00Z");
            goto out;
        }
        if (na <= now + 3600) {
            err_set(e, 400, "invalid_field", "expiryDate", "expiryDate: must be in the future");
            goto out;
        }
        if (pcert && na > parent_na) {
            char pa[32];
            time_format_rfc3339(parent_na, pa, sizeof pa);
            err_set(e, 400, "invalid_field", "expiryDate",
                    "expiryDate: a CA cannot outlive its parent '%s', which expires %s", parent.id, pa);
            goto out;
        }
    } else {
        na = time_add_years(now, is_root ? CA_ROOT_YEARS : CA_SUB_YEARS);
        if (pcert && na > parent_na)
            na = parent_na; /* the default never outlives the parent */
        if (na <= now + 3600) {
            err_set(e, 409, "conflict", "parentId", "parentId: CA '%s' expires too soon to certify a CA",
                    parent.id);
            goto out;
        }
    }

    c.crl_enabled = req->has_crl ? req->crl : true;
    if (req->crl_shards) {
        if (!is_sub || !c.crl_enabled || req->crl_shards < 2 || req->crl_shards > 1024) {
            err_set(e, 400, "invalid_field", "crlPartitions",
                    "crlPartitions: 2-1024, for issuing (subord) CAs with CRL enabled");
            goto out;
        }
        c.crl_shards = req->crl_shards;
    }
    c.ocsp_enabled = is_sub && req->has_ocsp && req->ocsp;

    /* Key */
    key_aad(aad, sizeof aad, partition, c.id, c.created_at);
    if (key_generate(env, ks, aad, &c.key_blob, &c.key_blob_len, &key) != 0 ||
        !(own = key_signer(env, c.key_blob, c.key_blob_len, aad, ks->md, ks->pss)))
        goto io;

    char target[64];
    snprintf(target, sizeof target, "ca:%s", c.id);
    struct audit_rec a = {actor, "ca.create", target, NULL, req->requester_ip, NULL};
    char detail[160];
    snprintf(detail, sizeof detail, "{\"type\":\"%s\",\"signingKeyDetails\":\"%s\"}", c.type, c.key_label);
    a.detail = detail;
    int s;
    if (pcert && strcmp(parent.type, "externalKey") == 0) {
        /* The external root signs: we keep the key and hand out a CSR. */
        if (!(csr = build_csr(subject, key, c.path_len, own)))
            goto io;
        unsigned char *p = NULL;
        int n = i2d_X509_REQ(csr, &p);
        if (n <= 0 || !(c.csr_der = malloc((size_t)n))) {
            OPENSSL_free(p);
            goto io;
        }
        memcpy(c.csr_der, p, (size_t)n);
        c.csr_len = (size_t)n;
        OPENSSL_free(p);
        snprintf(c.parent_id, sizeof c.parent_id, "%s", parent.id);
        snprintf(c.status, sizeof c.status, "pending");
        s = env->store->ops->ca_insert(env->store, &c, NULL, now, CA_ID_RESERVE_S, &a);
    } else {
        if (pcert) {
            if (!(psig = ca_signer(env, &parent)))
                goto io;
            snprintf(c.parent_id, sizeof c.parent_id, "%s", parent.id);
        }
        if (!(x = build_ca_cert(env, partition, subject, key, c.path_len, now - 60, na, pcert ? &parent : NULL, pcert,
                                pcert ? psig : own, e)))
            goto out;
        if (der_of(x, &der, &derlen) != 0)
            goto oom;
        c.cert_der = der;
        c.cert_len = derlen;
        der = NULL;
        snprintf(c.status, sizeof c.status, "active");
        struct cert_rec cr;
        fill_cert_rec(&cr, partition, pcert ? parent.pk : 0, x, c.cert_der, c.cert_len, actor, now);
        s = env->store->ops->ca_insert(env->store, &c, &cr, now, CA_ID_RESERVE_S, &a);
        free(cr.subject);
    }
    if (s != STORE_OK) {
        store_err(s, c.id, e);
        goto out;
    }
    ca_cache_invalidate(env, partition);
    /* OCSP-enabled CAs get their delegated responder at once; a failure
     * here is retried by the scheduler. */
    if (c.ocsp_enabled && strcmp(c.status, "active") == 0) {
        struct err oe;
        if (ocsp_responder_ensure(env, &c, &oe) != 0)
            log_error("CA %s/%s: %s (will retry)", partition, c.id, oe.msg);
    }
    *out = c;
    memset(&c, 0, sizeof c);
    rc = 0;
    goto out;
oom:
    err_set(e, 500, "internal", "", "out of memory");
    goto out;
io:
    err_set(e, 500, "internal", "", "internal error while creating the CA");
out:
    ca_rec_free(&c);
    ca_rec_free(&parent);
    X509_NAME_free(subject);
    X509_free(pcert);
    X509_free(x);
    X509_REQ_free(csr);
    EVP_PKEY_free(key);
    signer_free(own);
    signer_free(psig);
    free(der);
    return rc;
}

int ca_import_cert(const struct ca_env *env, const char *partition, const char *id, const unsigned char *data,
                   size_t len, const char *actor, const char *ip, struct ca_rec *out, struct err *e)
{
    struct ca_rec c, parent;
    X509 *x = NULL, *root = NULL;
    struct signer *own = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    int rc = -1;
    memset(&c, 0, sizeof c);
    memset(&parent, 0, sizeof parent);
    int s = env->store->ops->ca_get(env->store, partition, id, &c);
    if (s != STORE_OK || strcmp(c.status, "deleted") == 0) {
        store_err(s == STORE_OK ? STORE_ENOTFOUND : s, id, e);
        goto out;
    }
    if (strcmp(c.status, "pending") != 0) {
        err_set(e, 409, "conflict", "id", "CA '%s' is %s: only a pending CA takes an issued certificate", id,
                c.status);
        goto out;
    }
    if (!(x = ca_parse_cert(data, len))) {
        err_set(e, 400, "invalid_field", "certificate", "certificate: not a PEM or DER X.509 certificate");
        goto out;
    }
    if ((s = env->store->ops->ca_get(env->store, partition, c.parent_id, &parent)) != STORE_OK ||
        strcmp(parent.status, "active") != 0 || !(root = ca_cert(&parent))) {
        err_set(e, 409, "conflict", "parentId", "the parent CA of '%s' is no longer available", id);
        goto out;
    }
    if (!(own = ca_signer(env, &c))) {
        err_set(e, 500, "internal", "", "cannot open the CA key");
        goto out;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(x), own->pub) != 1) {
        err_set(e, 400, "invalid_field", "certificate",
                "certificate: its public key is not the key of CA '%s' (sign the CSR downloaded for this CA)", id);
        goto out;
    }
    if (check_ca_cert_shape(x, e, "certificate") != 0)
        goto out;
    if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(root)) != 0 ||
        X509_verify(x, X509_get0_pubkey(root)) != 1) {
        err_set(e, 400, "invalid_field", "certificate", "certificate: not signed by the external root CA '%s'",
                parent.id);
        goto out;
    }
    if (X509_cmp_time(X509_get0_notAfter(x), NULL) <= 0 ||
        ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(root)) > 0) {
        err_set(e, 400, "invalid_field", "certificate", "certificate: expires after its issuer or has expired");
        goto out;
    }
    if (X509_cmp_time(X509_get0_notBefore(x), NULL) > 0) {
        err_set(e, 400, "invalid_field", "certificate", "certificate: not valid yet (notBefore is in the future)");
        goto out;
    }
    /* the subject asked for in the CSR */
    const unsigned char *cp = c.csr_der;
    X509_REQ *csr = cp ? d2i_X509_REQ(NULL, &cp, (long)c.csr_len) : NULL;
    bool same_subject = csr && X509_NAME_cmp(X509_get_subject_name(x), X509_REQ_get_subject_name(csr)) == 0;
    X509_REQ_free(csr);
    if (!same_subject) {
        err_set(e, 400, "invalid_field", "certificate", "certificate: its subject is not the subject of the CSR of CA '%s'",
                id);
        goto out;
    }
    /* CRLs are signed with this key (RFC 5280 4.2.1.3) */
    if (c.crl_enabled && !(X509_get_key_usage(x) & KU_CRL_SIGN)) {
        err_set(e, 400, "invalid_field", "certificate",
                "certificate: the keyUsage extension must include cRLSign (CRLs are enabled for this CA)");
        goto out;
    }
    /* Path length (RFC 5280 4.2.1.9): the root allows this CA below it, and
     * this CA allows no more below it than it was created for (0 for an
     * issuing CA), so the CAs it certifies are bounded along the chain. */
    long root_pl = X509_get_pathlen(root), own_pl = X509_get_pathlen(x);
    if (root_pl == 0) {
        err_set(e, 400, "invalid_field", "certificate",
                "certificate: the root's pathLenConstraint 0 allows no CA certificate below it");
        goto out;
    }
    long bound = c.path_len;
    if (root_pl > 0 && (bound < 0 || root_pl - 1 < bound))
        bound = root_pl - 1;
    if (bound >= 0 && (own_pl < 0 || own_pl > bound)) {
        err_set(e, 400, "invalid_field", "certificate",
                "certificate: its pathLenConstraint must be at most %ld (%s)", bound,
                bound == c.path_len ? "what this CA was created for" : "below the root's");
        goto out;
    }
    if (der_of(x, &der, &derlen) != 0) {
        err_set(e, 500, "internal", "", "out of memory");
        goto out;
    }
    char target[64];
    snprintf(target, sizeof target, "ca:%s", id);
    struct audit_rec a = {actor, "ca.import_cert", target, NULL, ip, NULL};
    if ((s = env->store->ops->ca_activate(env->store, partition, id, der, derlen, &a)) != STORE_OK) {
        store_err(s, id, e);
        goto out;
    }
    ca_cache_invalidate(env, partition);
    ca_rec_free(&c);
    if (env->store->ops->ca_get(env->store, partition, id, out) != STORE_OK) {
        err_set(e, 500, "internal", "", "storage failure");
        goto out;
    }
    /* active now: its delegated OCSP responder at once, as ca_create does
     * (the scheduler retries a failure) */
    if (out->ocsp_enabled) {
        struct err oe;
        if (ocsp_responder_ensure(env, out, &oe) != 0)
            log_error("CA %s/%s: %s (will retry)", partition, id, oe.msg);
    }
    rc = 0;
out:
    ca_rec_free(&c);
    ca_rec_free(&parent);
    X509_free(x);
    X509_free(root);
    signer_free(own);
    free(der);
    return rc;
}

int ca_delete(const struct ca_env *env, const char *partition, const char *id, const char *actor, const char *ip,
              char ***ids, size_t *nids, struct err *e)
{
    char target[64];
    snprintf(target, sizeof target, "ca:%s", id);
    struct audit_rec a = {actor, "ca.delete", target, NULL, ip, NULL};
    int s = env->store->ops->ca_delete(env->store, partition, id, time_now(), ids, nids, &a);
    if (s != STORE_OK)
        return store_err(s, id, e);
    ca_cache_invalidate(env, partition);
    return 0;
}
