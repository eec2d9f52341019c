#include "x509/certbuild.h"

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/bn.h>

#include <limits.h>
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

/* TBSCertificate (RFC 5280 4.1) over OpenSSL's own types, holding
 * pointers to the caller's objects: encoding it copies nothing but bytes,
 * where filling an X509 would duplicate both names and every extension. */
typedef struct {
    ASN1_INTEGER *version;
    ASN1_INTEGER *serial;
    X509_ALGOR *sigalg;
    X509_NAME *issuer;
    X509_VAL *validity;
    X509_NAME *subject;
    X509_PUBKEY *spki;
    STACK_OF(X509_EXTENSION) *exts;
} TBS_VIEW;

ASN1_SEQUENCE(TBS_VIEW) = {
    ASN1_EXP(TBS_VIEW, version, ASN1_INTEGER, 0),
    ASN1_SIMPLE(TBS_VIEW, serial, ASN1_INTEGER),
    ASN1_SIMPLE(TBS_VIEW, sigalg, X509_ALGOR),
    ASN1_SIMPLE(TBS_VIEW, issuer, X509_NAME),
    ASN1_SIMPLE(TBS_VIEW, validity, X509_VAL),
    ASN1_SIMPLE(TBS_VIEW, subject, X509_NAME),
    ASN1_SIMPLE(TBS_VIEW, spki, X509_PUBKEY),
    ASN1_EXP_SEQUENCE_OF_OPT(TBS_VIEW, exts, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END(TBS_VIEW)

int certbuild_tbs_der(const struct cert_template *t, struct signer *s, unsigned char **out, size_t *outlen)
{
    ASN1_INTEGER *version = ASN1_INTEGER_new(), *sn = NULL;
    X509_ALGOR *alg = NULL;
    X509_PUBKEY *own_spki = NULL;
    BIGNUM *bn = NULL;
    X509_VAL val = {NULL, NULL};
    unsigned char *der = NULL;
    int rc = -1, n;
    *out = NULL;
    *outlen = 0;
    if (!version || ASN1_INTEGER_set(version, X509_VERSION_3) != 1)
        goto out;
    /* BN round trip: the minimal two's-complement INTEGER whatever the bytes */
    if (!(bn = BN_bin2bn(t->serial, SERIAL_LEN, NULL)) || !(sn = BN_to_ASN1_INTEGER(bn, NULL)))
        goto out;
    if (!(alg = signer_algor(s)))
        goto out;
    /* ASN1_TIME_set picks UTCTime before 2050 and GeneralizedTime after, as
     * RFC 5280 4.1.2.5 requires. */
    if (!(val.notBefore = ASN1_TIME_set(NULL, (time_t)t->not_before)) ||
        !(val.notAfter = ASN1_TIME_set(NULL, (time_t)t->not_after)))
        goto out;
    /* An X509_PUBKEY from a request is encoded as it came (algorithm,
     * parameters and key bits untouched). */
    if (!t->spki && (!t->pubkey || X509_PUBKEY_set(&own_spki, t->pubkey) != 1))
        goto out;
    /* Encoding reads the borrowed objects only: both names come decoded
     * (cached encoding) or are the caller's own. */
    TBS_VIEW v = {
        .version = version,
        .serial = sn,
        .sigalg = alg,
        .issuer = (X509_NAME *)t->issuer,
        .validity = &val,
        .subject = (X509_NAME *)t->subject,
        .spki = t->spki ? (X509_PUBKEY *)t->spki : own_spki,
        /* extensions, when present, are SEQUENCE SIZE (1..MAX) */
        .exts = t->exts && sk_X509_EXTENSION_num(t->exts) > 0 ? (STACK_OF(X509_EXTENSION) *)t->exts : NULL,
    };
    if ((n = ASN1_item_i2d((ASN1_VALUE *)&v, &der, ASN1_ITEM_rptr(TBS_VIEW))) <= 0)
        goto out;
    *out = der;
    *outlen = (size_t)n;
    der = NULL;
    rc = 0;
out:
    OPENSSL_free(der);
    ASN1_INTEGER_free(version);
    ASN1_INTEGER_free(sn);
    BN_free(bn);
    X509_ALGOR_free(alg);
    X509_PUBKEY_free(own_spki);
    ASN1_TIME_free(val.notBefore);
    ASN1_TIME_free(val.notAfter);
    return rc;
}

int certbuild_sign_der(const struct cert_template *t, struct signer *s, unsigned char **der, size_t *len)
{
    unsigned char *tbs = NULL;
    size_t tbslen = 0;
    int rc = certbuild_tbs_der(t, s, &tbs, &tbslen) == 0 ? certbuild_signed_der(s, tbs, tbslen, der, len) : -1;
    OPENSSL_free(tbs);
    return rc;
}

X509 *certbuild_sign(const struct cert_template *t, struct signer *s, char *err, size_t errlen)
{
    unsigned char *der = NULL;
    size_t len = 0;
    X509 *res = NULL;
    if (certbuild_sign_der(t, s, &der, &len) != 0) {
        snprintf(err, errlen, "certificate assembly or signing failed");
        return NULL;
    }
    const unsigned char *p = der;
    if (len > LONG_MAX || !(res = d2i_X509(NULL, &p, (long)len)) || p != der + len) {
        X509_free(res);
        res = NULL;
        snprintf(err, errlen, "signed certificate does not decode");
    }
    free(der);
    return res;
}
