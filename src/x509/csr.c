#include "x509/csr.h"

#include "util/codec.h"

#include <openssl/asn1t.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static X509_REQ *der_exact(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    X509_REQ *r = d2i_X509_REQ(NULL, &p, (long)len);
    if (r && p != der + len) {
        X509_REQ_free(r);
        r = NULL;
    }
    return r;
}

/* The request's DER (armour removed); *owned is what the caller frees. */
static int csr_der(const unsigned char *data, size_t len, const unsigned char **der, size_t *dlen,
                   unsigned char **owned, struct err *e)
{
    *der = NULL;
    *dlen = 0;
    *owned = NULL;
    if (!data || len == 0) {
        err_set(e, 400, "invalid_field", "csr", "csr: required");
        return -1;
    }
    if (len > CSR_MAX) {
        err_set(e, 400, "invalid_field", "csr", "csr: larger than %d bytes", CSR_MAX);
        return -1;
    }
    if (memmem(data, len, "-----BEGIN", 10)) {
        /* Decode the armour ourselves so the DER inside gets the same
         * exactness check as raw DER (no trailing bytes). */
        BIO *b = BIO_new_mem_buf(data, (int)len);
        char *name = NULL, *header = NULL;
        unsigned char *pem = NULL;
        long plen = 0;
        if (b && PEM_read_bio(b, &name, &header, &pem, &plen) == 1 && plen > 0 &&
            (strcmp(name, "CERTIFICATE REQUEST") == 0 || strcmp(name, "NEW CERTIFICATE REQUEST") == 0) &&
            (*owned = malloc((size_t)plen))) {
            memcpy(*owned, pem, (size_t)plen);
            *der = *owned;
            *dlen = (size_t)plen;
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(pem);
        BIO_free(b);
    } else if (data[0] == 0x30) {
        *der = data;
        *dlen = len;
    } else if (b64_decode((const char *)data, len, owned, dlen) == 0) {
        *der = *owned;
    } else {
        *dlen = 0;
    }
    ERR_clear_error();
    return 0;
}

/* The original intake: d2i_X509_REQ (whose public key goes through
 * OpenSSL's decoder framework), the digest check and X509_REQ_verify. */
static X509_REQ *csr_parse_der(const unsigned char *der, size_t dlen, struct err *e)
{
    X509_REQ *r = der && dlen ? der_exact(der, dlen) : NULL;
    ERR_clear_error();
    if (!r) {
        err_set(e, 400, "invalid_field", "csr", "csr: not a PKCS#10 request (PEM, DER or base64 DER)");
        return NULL;
    }
    EVP_PKEY *pk = X509_REQ_get0_pubkey(r);
    if (!pk) {
        err_set(e, 400, "invalid_field", "csr", "csr: the public key cannot be decoded or its algorithm is unsupported");
        goto fail;
    }
    /* Refuse broken digests outright (MD2/MD4/MD5): a collision-prone
     * proof of possession proves nothing. */
    int mdnid = NID_undef, pknid = NID_undef;
    const X509_ALGOR *salg = NULL;
    X509_REQ_get0_signature(r, NULL, &salg);
    if (!salg || OBJ_find_sigid_algs(OBJ_obj2nid(salg->algorithm), &mdnid, &pknid) != 1 || mdnid == NID_md5 ||
        mdnid == NID_md4 || mdnid == NID_md2) {
        if (OBJ_obj2nid(salg ? salg->algorithm : NULL) != NID_rsassaPss) {
            err_set(e, 400, "invalid_field", "csr",
                    "csr: signature algorithm not accepted (use SHA-256 or stronger with RSA or ECDSA)");
            goto fail;
        }
    }
    if (X509_REQ_verify(r, pk) != 1) {
        err_set(e, 400, "invalid_field", "csr",
                "csr: signature does not verify with the request's public key (proof of possession failed)");
        goto fail;
    }
    ERR_clear_error();
    return r;
fail:
    ERR_clear_error();
    X509_REQ_free(r);
    return NULL;
}

/* Fast intake. OpenSSL 3.0 decodes the public key of every X509_PUBKEY it
 * parses through its decoder framework (a decoder context built per key),
 * which was most of the cost of an issuance. Here the request is parsed
 * with templates of the same shape as X509_REQ's whose SubjectPublicKeyInfo
 * stays an algorithm and a BIT STRING; the key is imported with
 * EVP_PKEY_fromdata and the signature verified with ASN1_item_verify_ex over
 * the CertificationRequestInfo as received (what X509_REQ_verify does).
 *
 * It only ever answers "accepted": for anything it does not handle (other
 * key types or curves, explicit or odd parameters, a version other than 1,
 * a key or signature that does not check out) the original intake runs
 * from scratch and gives its own answer, so what is accepted and refused,
 * and with which message, stays exactly what it was. */
typedef struct {
    X509_ALGOR *algor;
    ASN1_BIT_STRING *public_key;
} PKIAAS_CSR_SPKI;

typedef struct {
    ASN1_ENCODING enc;
    ASN1_INTEGER *version;
    X509_NAME *subject;
    PKIAAS_CSR_SPKI *pubkey;
    STACK_OF(X509_ATTRIBUTE) *attributes;
} PKIAAS_CSR_INFO;

typedef struct {
    PKIAAS_CSR_INFO *info;
    X509_ALGOR *sig_alg;
    ASN1_BIT_STRING *signature;
} PKIAAS_CSR;

typedef struct {
    ASN1_INTEGER *n;
    ASN1_INTEGER *e;
} PKIAAS_RSA_PUB;

DECLARE_ASN1_ITEM(PKIAAS_CSR_SPKI)
DECLARE_ASN1_ITEM(PKIAAS_CSR_INFO)
DECLARE_ASN1_ITEM(PKIAAS_CSR)
DECLARE_ASN1_ITEM(PKIAAS_RSA_PUB)

ASN1_SEQUENCE(PKIAAS_CSR_SPKI) = {
    ASN1_SIMPLE(PKIAAS_CSR_SPKI, algor, X509_ALGOR),
    ASN1_SIMPLE(PKIAAS_CSR_SPKI, public_key, ASN1_BIT_STRING)
} ASN1_SEQUENCE_END(PKIAAS_CSR_SPKI)

/* As X509_REQ_INFO: the encoding is kept, so the signature is checked over
 * the bytes received. */
ASN1_SEQUENCE_enc(PKIAAS_CSR_INFO, enc, 0) = {
    ASN1_SIMPLE(PKIAAS_CSR_INFO, version, ASN1_INTEGER),
    ASN1_SIMPLE(PKIAAS_CSR_INFO, subject, X509_NAME),
    ASN1_SIMPLE(PKIAAS_CSR_INFO, pubkey, PKIAAS_CSR_SPKI),
    ASN1_IMP_SET_OF_OPT(PKIAAS_CSR_INFO, attributes, X509_ATTRIBUTE, 0)
} ASN1_SEQUENCE_END_enc(PKIAAS_CSR_INFO, PKIAAS_CSR_INFO)

ASN1_SEQUENCE(PKIAAS_CSR) = {
    ASN1_SIMPLE(PKIAAS_CSR, info, PKIAAS_CSR_INFO),
    ASN1_SIMPLE(PKIAAS_CSR, sig_alg, X509_ALGOR),
    ASN1_SIMPLE(PKIAAS_CSR, signature, ASN1_BIT_STRING)
} ASN1_SEQUENCE_END(PKIAAS_CSR)

/* RSAPublicKey (RFC 8017 A.1.1) */
ASN1_SEQUENCE(PKIAAS_RSA_PUB) = {
    ASN1_SIMPLE(PKIAAS_RSA_PUB, n, ASN1_INTEGER),
    ASN1_SIMPLE(PKIAAS_RSA_PUB, e, ASN1_INTEGER)
} ASN1_SEQUENCE_END(PKIAAS_RSA_PUB)

/* The BIT STRING's content when it has no unused bits, else NULL. */
static const unsigned char *whole_bits(const ASN1_BIT_STRING *bs, int *len)
{
    if (!bs || ASN1_STRING_type(bs) != V_ASN1_BIT_STRING || ((bs->flags & ASN1_STRING_FLAG_BITS_LEFT) && (bs->flags & 7)))
        return NULL;
    *len = ASN1_STRING_length(bs);
    return *len > 0 ? ASN1_STRING_get0_data(bs) : NULL;
}

static EVP_PKEY *key_fromdata(const char *type, const OSSL_PARAM *params)
{
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)params) != 1) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static const char *const CURVES[] = {"P-256", "P-384", "P-521"};
#define NCURVES (sizeof CURVES / sizeof *CURVES)

struct csr_keys {
    EVP_PKEY *params[NCURVES]; /* domain parameters only, as CURVES */
};

void csr_keys_free(struct csr_keys *k)
{
    for (size_t i = 0; k && i < NCURVES; i++)
        EVP_PKEY_free(k->params[i]);
    free(k);
}

struct csr_keys *csr_keys_new(void)
{
    struct csr_keys *k = calloc(1, sizeof(*k));
    EVP_PKEY_CTX *ctx = NULL;
    if (!k)
        return NULL;
    for (size_t i = 0; i < NCURVES; i++) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)CURVES[i], 0),
            OSSL_PARAM_END,
        };
        if (!(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) || EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, &k->params[i], EVP_PKEY_KEY_PARAMETERS, params) != 1)
            goto fail;
        EVP_PKEY_CTX_free(ctx);
        ctx = NULL;
    }
    return k;
fail:
    EVP_PKEY_CTX_free(ctx);
    csr_keys_free(k);
    ERR_clear_error();
    return NULL;
}

/* ECDSA on P-256/P-384/P-521 (named curve) or rsaEncryption (NULL or
 * absent parameters); NULL for anything else. */
static EVP_PKEY *spki_key(const PKIAAS_CSR_SPKI *spki, const struct csr_keys *keys)
{
    const ASN1_OBJECT *aobj = NULL;
    int ptype = V_ASN1_UNDEF, blen = 0;
    const void *pval = NULL;
    EVP_PKEY *pk = NULL;
    const unsigned char *bits = whole_bits(spki->public_key, &blen);
    if (!bits)
        return NULL;
    X509_ALGOR_get0(&aobj, &ptype, &pval, spki->algor);
    int nid = OBJ_obj2nid(aobj);
    if (nid == NID_X9_62_id_ecPublicKey) {
        int cnid = ptype == V_ASN1_OBJECT ? OBJ_obj2nid(pval) : NID_undef;
        int ci = cnid == NID_X9_62_prime256v1 ? 0 : cnid == NID_secp384r1 ? 1 : cnid == NID_secp521r1 ? 2 : -1;
        if (ci < 0)
            return NULL;
        const char *group = CURVES[ci];
        if (keys) {
            /* a copy of the curve's parameters plus the point (decoded and
             * checked to be on the curve as by EVP_PKEY_fromdata) */
            if (!(pk = EVP_PKEY_dup(keys->params[ci])) || EVP_PKEY_set1_encoded_public_key(pk, bits, (size_t)blen) != 1) {
                EVP_PKEY_free(pk);
                pk = NULL;
            }
            return pk;
        }
        OSSL_PARAM params[] = {
            OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0),
            OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)bits, (size_t)blen),
            OSSL_PARAM_END,
        };
        return key_fromdata("EC", params);
    }
    if (nid != NID_rsaEncryption || (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF))
        return NULL;
    const unsigned char *p = bits;
    PKIAAS_RSA_PUB *rp = (PKIAAS_RSA_PUB *)ASN1_item_d2i(NULL, &p, blen, ASN1_ITEM_rptr(PKIAAS_RSA_PUB));
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    if (!rp || p != bits + blen || ASN1_STRING_type(rp->n) != V_ASN1_INTEGER || ASN1_STRING_type(rp->e) != V_ASN1_INTEGER)
        goto out;
    if (!(n = ASN1_INTEGER_to_BN(rp->n, NULL)) || !(e = ASN1_INTEGER_to_BN(rp->e, NULL)) || BN_is_zero(n) ||
        BN_is_zero(e) || !(bld = OSSL_PARAM_BLD_new()) || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 || !(params = OSSL_PARAM_BLD_to_param(bld)))
        goto out;
    pk = key_fromdata("RSA", params);
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    ASN1_item_free((ASN1_VALUE *)rp, ASN1_ITEM_rptr(PKIAAS_RSA_PUB));
    return pk;
}

/* An X509_REQ with the received subject, attributes, SubjectPublicKeyInfo
 * (algorithm, parameters and key bits as they are; no key decoded inside)
 * and signature. */
static X509_REQ *req_from(const PKIAAS_CSR *c)
{
    X509_REQ *r = X509_REQ_new();
    const ASN1_OBJECT *aobj = NULL;
    int ptype = V_ASN1_UNDEF, blen = 0;
    const void *pval = NULL;
    ASN1_OBJECT *ocopy = NULL, *pobj = NULL;
    unsigned char *bcopy = NULL;
    X509_ALGOR *salg = NULL;
    ASN1_BIT_STRING *sig = NULL;
    const unsigned char *bits = whole_bits(c->info->pubkey->public_key, &blen);
    if (!r || !bits || X509_REQ_set_version(r, X509_REQ_VERSION_1) != 1 ||
        X509_REQ_set_subject_name(r, c->info->subject) != 1)
        goto fail;
    for (int i = 0; i < sk_X509_ATTRIBUTE_num(c->info->attributes); i++)
        if (X509_REQ_add1_attr(r, sk_X509_ATTRIBUTE_value(c->info->attributes, i)) != 1)
            goto fail;
    X509_ALGOR_get0(&aobj, &ptype, &pval, c->info->pubkey->algor);
    if (ptype == V_ASN1_OBJECT ? !(pobj = OBJ_dup(pval)) : ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
        goto fail;
    if (!(ocopy = OBJ_dup(aobj)) || !(bcopy = OPENSSL_memdup(bits, (size_t)blen)) ||
        X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(r), ocopy, ptype, pobj, bcopy, blen) != 1)
        goto fail;
    ocopy = pobj = NULL;
    bcopy = NULL;
    if (!(salg = X509_ALGOR_dup(c->sig_alg)) || X509_REQ_set1_signature_algo(r, salg) != 1 ||
        !(sig = ASN1_STRING_dup(c->signature)))
        goto fail;
    X509_REQ_set0_signature(r, sig);
    X509_ALGOR_free(salg);
    return r;
fail:
    ASN1_OBJECT_free(ocopy);
    ASN1_OBJECT_free(pobj);
    OPENSSL_free(bcopy);
    X509_ALGOR_free(salg);
    ASN1_BIT_STRING_free(sig);
    X509_REQ_free(r);
    return NULL;
}

/* The fast intake; NULL (and nothing set) when it does not accept. */
static X509_REQ *csr_parse_fast(const unsigned char *der, size_t dlen, const struct csr_keys *keys, EVP_PKEY **pub)
{
    const unsigned char *p = der;
    PKIAAS_CSR *c = NULL;
    EVP_PKEY *pk = NULL;
    X509_REQ *r = NULL;
    int mdnid = NID_undef, pknid = NID_undef;
    if (!der || dlen == 0 || dlen > LONG_MAX)
        goto out;
    c = (PKIAAS_CSR *)ASN1_item_d2i(NULL, &p, (long)dlen, ASN1_ITEM_rptr(PKIAAS_CSR));
    if (!c || p != der + dlen || ASN1_INTEGER_get(c->info->version) != X509_REQ_VERSION_1 ||
        ASN1_STRING_type(c->info->version) != V_ASN1_INTEGER)
        goto out;
    /* as csr_parse_der: no broken digests; RSA-PSS goes the original way */
    if (OBJ_find_sigid_algs(OBJ_obj2nid(c->sig_alg->algorithm), &mdnid, &pknid) != 1 || mdnid == NID_undef ||
        mdnid == NID_md5 || mdnid == NID_md4 || mdnid == NID_md2)
        goto out;
    if (!(pk = spki_key(c->info->pubkey, keys)) ||
        ASN1_item_verify_ex(ASN1_ITEM_rptr(PKIAAS_CSR_INFO), c->sig_alg, c->signature, c->info, NULL, pk, NULL,
                            NULL) != 1 ||
        !(r = req_from(c)))
        goto out;
    *pub = pk;
    pk = NULL;
out:
    EVP_PKEY_free(pk);
    ASN1_item_free((ASN1_VALUE *)c, ASN1_ITEM_rptr(PKIAAS_CSR));
    ERR_clear_error();
    return r;
}

X509_REQ *csr_parse(const unsigned char *data, size_t len, struct err *e)
{
    const unsigned char *der = NULL;
    unsigned char *owned = NULL;
    size_t dlen = 0;
    X509_REQ *r = NULL;
    if (csr_der(data, len, &der, &dlen, &owned, e) != 0)
        return NULL;
    r = csr_parse_der(der, dlen, e);
    free(owned);
    return r;
}

X509_REQ *csr_parse_key(const unsigned char *data, size_t len, const struct csr_keys *keys, EVP_PKEY **pub,
                        struct err *e)
{
    const unsigned char *der = NULL;
    unsigned char *owned = NULL;
    size_t dlen = 0;
    X509_REQ *r = NULL;
    *pub = NULL;
    if (csr_der(data, len, &der, &dlen, &owned, e) != 0)
        return NULL;
    if (!(r = csr_parse_fast(der, dlen, keys, pub)) && (r = csr_parse_der(der, dlen, e))) {
        EVP_PKEY *pk = X509_REQ_get0_pubkey(r);
        if (!pk || EVP_PKEY_up_ref(pk) != 1) {
            err_set(e, 500, "internal", "", "out of memory");
            X509_REQ_free(r);
            r = NULL;
        } else {
            *pub = pk;
        }
    }
    free(owned);
    return r;
}

/* ---- renewal names ------------------------------------------------------- */

int csr_sans(X509_REQ *csr, GENERAL_NAMES **out)
{
    int crit = -1, rc = -1;
    *out = NULL;
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *g = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL) : NULL;
    if (!g && crit != -1 && exts)
        goto out;
    *out = g;
    rc = 0;
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    ERR_clear_error();
    return rc;
}

static bool names_within(const GENERAL_NAMES *a, const GENERAL_NAMES *b)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(a); i++) {
        bool found = false;
        for (int j = 0; j < sk_GENERAL_NAME_num(b) && !found; j++)
            found = GENERAL_NAME_cmp(sk_GENERAL_NAME_value(a, i), sk_GENERAL_NAME_value(b, j)) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* Same attributes in the same RDN structure with the same values, byte for
 * byte once in UTF-8: no case folding or whitespace collapsing (as
 * X509_NAME_cmp does), only the ASN.1 string type may differ. */
static bool names_identical(const X509_NAME *a, const X509_NAME *b)
{
    int n = X509_NAME_entry_count(a);
    if (n != X509_NAME_entry_count(b))
        return false;
    for (int i = 0; i < n; i++) {
        const X509_NAME_ENTRY *x = X509_NAME_get_entry(a, i), *y = X509_NAME_get_entry(b, i);
        unsigned char *u = NULL, *v = NULL;
        if (OBJ_cmp(X509_NAME_ENTRY_get_object(x), X509_NAME_ENTRY_get_object(y)) != 0 ||
            X509_NAME_ENTRY_set(x) != X509_NAME_ENTRY_set(y))
            return false;
        int ul = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(x));
        int vl = ASN1_STRING_to_UTF8(&v, X509_NAME_ENTRY_get_data(y));
        bool same = ul >= 0 && ul == vl && memcmp(u, v, (size_t)ul) == 0;
        OPENSSL_free(u);
        OPENSSL_free(v);
        if (!same)
            return false;
    }
    return true;
}

int names_match_cert(const X509_NAME *subject, const GENERAL_NAMES *sans, X509 *cur, bool exact, char *why,
                     size_t wn)
{
    GENERAL_NAMES *xn = NULL;
    int crit = -1, rc = -1;
    if (!subject || X509_NAME_cmp(subject, X509_get_subject_name(cur)) != 0 ||
        (exact && !names_identical(subject, X509_get_subject_name(cur)))) {
        snprintf(why, wn, "the request's subject must equal the subject of the certificate being renewed");
        goto out;
    }
    xn = X509_get_ext_d2i(cur, NID_subject_alt_name, &crit, NULL);
    if (!names_within(sans, xn) || (exact && !names_within(xn, sans))) {
        snprintf(why, wn, exact ? "the request's subjectAltName must equal that of the certificate being renewed"
                                : "the request's subjectAltName names what the certificate being renewed does not");
        goto out;
    }
    rc = 0;
out:
    GENERAL_NAMES_free(xn);
    ERR_clear_error();
    return rc;
}

int csr_names_match_cert(X509_REQ *csr, X509 *cur, bool exact, char *why, size_t wn)
{
    GENERAL_NAMES *cn = NULL;
    int rc = -1;
    if (csr_sans(csr, &cn) != 0) {
        snprintf(why, wn, "the request's subjectAltName extension cannot be decoded");
        goto out;
    }
    rc = names_match_cert(X509_REQ_get_subject_name(csr), cn, cur, exact, why, wn);
out:
    GENERAL_NAMES_free(cn);
    return rc;
}
