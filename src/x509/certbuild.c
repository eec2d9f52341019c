#include "x509/certbuild.h"

#include <openssl/asn1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int certbuild_signed_der(struct signer *s, const unsigned char *tbs, size_t tbslen, unsigned char **out,
                         size_t *outlen)
{
    unsigned char *sig = NULL, *der = NULL;
    size_t siglen = 0;
    int rc = -1;
    if (signer_sign(s, tbs, tbslen, &sig, &siglen) != 0)
        goto out;
    if (siglen > (1u << 20) || tbslen > (1u << 30))
        goto out;
    /* BIT STRING: tag, length, unused-bits octet (0), signature */
    int bslen = ASN1_object_size(0, (int)siglen + 1, V_ASN1_BIT_STRING);
    int content = (int)tbslen + (int)s->algid_len + bslen;
    int total = ASN1_object_size(1, content, V_ASN1_SEQUENCE);
    if (bslen <= 0 || total <= 0 || !(der = malloc((size_t)total)))
        goto out;
    unsigned char *p = der;
    ASN1_put_object(&p, 1, content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(p, tbs, tbslen);
    p += tbslen;
    memcpy(p, s->algid, s->algid_len);
    p += s->algid_len;
    ASN1_put_object(&p, 0, (int)siglen + 1, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL);
    *p++ = 0;
    memcpy(p, sig, siglen);
    p += siglen;
    if (p - der != total)
        goto out;
    *out = der;
    *outlen = (size_t)total;
    der = NULL;
    rc = 0;
out:
    free(sig);
    free(der);
    return rc;
}

X509 *certbuild_prepare(const struct cert_template *t, struct signer *s)
{
    X509 *x = X509_new();
    ASN1_INTEGER *sn = NULL;
    X509_ALGOR *alg = NULL;
    BIGNUM *bn = NULL;
    int ok = 0;
    if (!x || X509_set_version(x, X509_VERSION_3) != 1)
        goto out;
    if (!(bn = BN_bin2bn(t->serial, SERIAL_LEN, NULL)) || !(sn = BN_to_ASN1_INTEGER(bn, NULL)) ||
        X509_set_serialNumber(x, sn) != 1)
        goto out;
    if (X509_set_issuer_name(x, t->issuer) != 1 || X509_set_subject_name(x, t->subject) != 1)
        goto out;
    /* ASN1_TIME_set picks UTCTime before 2050 and GeneralizedTime after, as
     * RFC 5280 4.1.2.5 requires. */
    if (!ASN1_TIME_set(X509_getm_notBefore(x), (time_t)t->not_before) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)t->not_after))
        goto out;
    if (t->spki) {
        /* Copy algorithm, parameters and key bits as they are. */
        const ASN1_OBJECT *kobj = NULL, *aobj = NULL;
        const unsigned char *bits = NULL;
        int blen = 0, ptype = V_ASN1_UNDEF;
        const void *pval = NULL;
        X509_ALGOR *kalg = NULL;
        if (X509_PUBKEY_get0_param((ASN1_OBJECT **)&kobj, &bits, &blen, &kalg, t->spki) != 1 || !kalg)
            goto out;
        X509_ALGOR_get0(&aobj, &ptype, &pval, kalg);
        void *pcopy = NULL;
        if (ptype == V_ASN1_OBJECT)
            pcopy = OBJ_dup(pval);
        else if (ptype == V_ASN1_SEQUENCE)
            pcopy = ASN1_STRING_dup(pval);
        else if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
            goto out;
        unsigned char *bcopy = OPENSSL_memdup(bits, (size_t)blen);
        ASN1_OBJECT *ocopy = OBJ_dup(kobj);
        if (!bcopy || !ocopy || (ptype == V_ASN1_OBJECT || ptype == V_ASN1_SEQUENCE ? !pcopy : 0) ||
            X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), ocopy, ptype, pcopy, bcopy, blen) != 1) {
            OPENSSL_free(bcopy);
            ASN1_OBJECT_free(ocopy);
            if (ptype == V_ASN1_OBJECT)
                ASN1_OBJECT_free(pcopy);
            else
                ASN1_STRING_free(pcopy);
            goto out;
        }
    } else if (X509_set_pubkey(x, t->pubkey) != 1) {
        goto out;
    }
    for (int i = 0; t->exts && i < sk_X509_EXTENSION_num(t->exts); i++)
        if (X509_add_ext(x, sk_X509_EXTENSION_value(t->exts, i), -1) != 1)
            goto out;
    /* The TBS carries the signature algorithm too (4.1.2.3); OpenSSL only
     * exposes it const because it normally fills it while signing. */
    if (!(alg = signer_algor(s)) || X509_ALGOR_copy((X509_ALGOR *)X509_get0_tbs_sigalg(x), alg) != 1)
        goto out;
    ok = 1;
out:
    ASN1_INTEGER_free(sn);
    BN_free(bn);
    X509_ALGOR_free(alg);
    if (!ok) {
        X509_free(x);
        x = NULL;
    }
    return x;
}

X509 *certbuild_finish(X509 *tbsx, struct signer *s)
{
    unsigned char *tbs = NULL, *der = NULL;
    size_t derlen = 0;
    X509 *res = NULL;
    int tbslen = i2d_re_X509_tbs(tbsx, &tbs);
    if (tbslen <= 0 || certbuild_signed_der(s, tbs, (size_t)tbslen, &der, &derlen) != 0)
        goto out;
    const unsigned char *p = der;
    res = d2i_X509(NULL, &p, (long)derlen);
    if (res && p != der + derlen) {
        X509_free(res);
        res = NULL;
    }
out:
    OPENSSL_free(tbs);
    free(der);
    return res;
}

int certbuild_finish_der(X509 *tbsx, struct signer *s, unsigned char **der, size_t *len)
{
    unsigned char *tbs = NULL;
    int tbslen = i2d_re_X509_tbs(tbsx, &tbs);
    int rc = tbslen > 0 ? certbuild_signed_der(s, tbs, (size_t)tbslen, der, len) : -1;
    OPENSSL_free(tbs);
    return rc;
}

X509 *certbuild_sign(const struct cert_template *t, struct signer *s, char *err, size_t errlen)
{
    X509 *x = certbuild_prepare(t, s), *res = NULL;
    if (!x) {
        snprintf(err, errlen, "certificate assembly failed");
        return NULL;
    }
    if (!(res = certbuild_finish(x, s)))
        snprintf(err, errlen, "signing failed");
    X509_free(x);
    return res;
}
