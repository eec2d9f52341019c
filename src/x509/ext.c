#include "x509/ext.h"

#include "util/codec.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int x509_ski_compute(EVP_PKEY *pk, unsigned char out[SKI_LEN])
{
    X509_PUBKEY *xpk = NULL;
    const unsigned char *bits = NULL;
    int bitslen = 0, rc = -1;
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (X509_PUBKEY_set(&xpk, pk) != 1)
        goto out;
    if (X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, xpk) != 1)
        goto out;
    if (EVP_Digest(bits, (size_t)bitslen, md, &mdlen, EVP_sha256(), NULL) != 1)
        goto out;
    memcpy(out, md, SKI_LEN);
    rc = 0;
out:
    X509_PUBKEY_free(xpk);
    return rc;
}

int x509_ski_from_xpub(const X509_PUBKEY *xpk, unsigned char out[SKI_LEN])
{
    const unsigned char *bits = NULL;
    int bitslen = 0;
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, xpk) != 1 ||
        EVP_Digest(bits, (size_t)bitslen, md, &mdlen, EVP_sha256(), NULL) != 1)
        return -1;
    memcpy(out, md, SKI_LEN);
    return 0;
}

int x509_ski_compute_spki(const unsigned char *spki, size_t len, unsigned char out[SKI_LEN])
{
    const unsigned char *p = spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)len);
    int rc = pk && p == spki + len ? x509_ski_compute(pk, out) : -1;
    EVP_PKEY_free(pk);
    return rc;
}

int x509_serial_new(unsigned char out[SERIAL_LEN])
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
        return -1;
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    out[0] = 0x40; /* positive (RFC 5280 4.1.2.2), non-zero: fixed 16-byte encoding */
    for (int i = 6; i >= 1; i--, ms >>= 8)
        out[i] = (unsigned char)(ms & 0xff);
    return random_bytes(out + 7, SERIAL_LEN - 7);
}

int ext_push(STACK_OF(X509_EXTENSION) *sk, X509_EXTENSION *x)
{
    if (!x)
        return -1;
    if (!sk_X509_EXTENSION_push(sk, x)) {
        X509_EXTENSION_free(x);
        return -1;
    }
    return 0;
}

X509_EXTENSION *ext_basic_constraints(bool ca, int pathlen)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    X509_EXTENSION *e = NULL;
    if (!bc)
        return NULL;
    bc->ca = ca ? 0xFF : 0;
    if (ca && pathlen >= 0) {
        if (!(bc->pathlen = ASN1_INTEGER_new()) || ASN1_INTEGER_set(bc->pathlen, pathlen) != 1)
            goto out;
    }
    e = X509V3_EXT_i2d(NID_basic_constraints, 1, bc);
out:
    BASIC_CONSTRAINTS_free(bc);
    return e;
}

X509_EXTENSION *ext_key_usage(unsigned ku)
{
    /* KU_* values are the DER bit-string bytes (bit 0 = 0x80 of byte 0,
     * decipherOnly = 0x8000 in byte 1). */
    ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
    X509_EXTENSION *e = NULL;
    if (!bs)
        return NULL;
    for (int bit = 0; bit < 9; bit++) {
        unsigned mask = bit < 8 ? (0x80u >> bit) : 0x8000u;
        if ((ku & mask) && ASN1_BIT_STRING_set_bit(bs, bit, 1) != 1)
            goto out;
    }
    e = X509V3_EXT_i2d(NID_key_usage, 1, bs);
out:
    ASN1_BIT_STRING_free(bs);
    return e;
}

X509_EXTENSION *ext_ski(const unsigned char ski[SKI_LEN])
{
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *e = NULL;
    if (os && ASN1_OCTET_STRING_set(os, ski, SKI_LEN) == 1)
        e = X509V3_EXT_i2d(NID_subject_key_identifier, 0, os);
    ASN1_OCTET_STRING_free(os);
    return e;
}

X509_EXTENSION *ext_aki(const unsigned char *keyid, size_t len)
{
    AUTHORITY_KEYID *aki = AUTHORITY_KEYID_new();
    X509_EXTENSION *e = NULL;
    if (!aki)
        return NULL;
    if (!(aki->keyid = ASN1_OCTET_STRING_new()) || ASN1_OCTET_STRING_set(aki->keyid, keyid, (int)len) != 1)
        goto out;
    e = X509V3_EXT_i2d(NID_authority_key_identifier, 0, aki);
out:
    AUTHORITY_KEYID_free(aki);
    return e;
}

static GENERAL_NAME *uri_name(const char *url)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    if (!gn || !s || ASN1_STRING_set(s, url, (int)strlen(url)) != 1) {
        GENERAL_NAME_free(gn);
        ASN1_IA5STRING_free(s);
        return NULL;
    }
    GENERAL_NAME_set0_value(gn, GEN_URI, s);
    return gn;
}

X509_EXTENSION *ext_crl_dp(const char *url)
{
    CRL_DIST_POINTS *cdp = sk_DIST_POINT_new_null();
    DIST_POINT *dp = DIST_POINT_new();
    GENERAL_NAME *gn = uri_name(url);
    X509_EXTENSION *e = NULL;
    if (!cdp || !dp || !gn)
        goto out;
    if (!(dp->distpoint = DIST_POINT_NAME_new()))
        goto out;
    dp->distpoint->type = 0;
    if (!(dp->distpoint->name.fullname = GENERAL_NAMES_new()))
        goto out;
    if (!sk_GENERAL_NAME_push(dp->distpoint->name.fullname, gn))
        goto out;
    gn = NULL;
    if (!sk_DIST_POINT_push(cdp, dp))
        goto out;
    dp = NULL;
    e = X509V3_EXT_i2d(NID_crl_distribution_points, 0, cdp);
out:
    GENERAL_NAME_free(gn);
    DIST_POINT_free(dp);
    sk_DIST_POINT_pop_free(cdp, DIST_POINT_free);
    return e;
}

static int aia_push(AUTHORITY_INFO_ACCESS *aia, int nid, const char *url)
{
    ACCESS_DESCRIPTION *ad = ACCESS_DESCRIPTION_new();
    if (!ad)
        return -1;
    GENERAL_NAME_free(ad->location);
    ad->location = uri_name(url);
    ASN1_OBJECT_free(ad->method);
    ad->method = OBJ_nid2obj(nid);
    if (!ad->location || !sk_ACCESS_DESCRIPTION_push(aia, ad)) {
        ACCESS_DESCRIPTION_free(ad);
        return -1;
    }
    return 0;
}

X509_EXTENSION *ext_aia(const char *ocsp_url, const char *ca_issuers_url)
{
    AUTHORITY_INFO_ACCESS *aia = NULL;
    X509_EXTENSION *e = NULL;
    if (!ocsp_url && !ca_issuers_url)
        return NULL;
    if (!(aia = sk_ACCESS_DESCRIPTION_new_null()))
        return NULL;
    if (ocsp_url && aia_push(aia, NID_ad_OCSP, ocsp_url) != 0)
        goto out;
    if (ca_issuers_url && aia_push(aia, NID_ad_ca_issuers, ca_issuers_url) != 0)
        goto out;
    e = X509V3_EXT_i2d(NID_info_access, 0, aia);
out:
    sk_ACCESS_DESCRIPTION_pop_free(aia, ACCESS_DESCRIPTION_free);
    return e;
}

void x509_ku_names(X509 *x, char *out, size_t n)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {KU_DIGITAL_SIGNATURE, "digitalSignature"}, {KU_NON_REPUDIATION, "nonRepudiation"},
        {KU_KEY_ENCIPHERMENT, "keyEncipherment"},   {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
        {KU_KEY_AGREEMENT, "keyAgreement"},         {KU_KEY_CERT_SIGN, "keyCertSign"},
        {KU_CRL_SIGN, "cRLSign"},                   {KU_ENCIPHER_ONLY, "encipherOnly"},
        {KU_DECIPHER_ONLY, "decipherOnly"},
    };
    uint32_t ku = X509_get_key_usage(x);
    size_t used = 0;
    out[0] = 0;
    if (ku == UINT32_MAX)
        return;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(ku & names[i].bit))
            continue;
        int k = snprintf(out + used, n - used, "%s%s", used ? "," : "", names[i].name);
        if (k < 0 || (size_t)k >= n - used)
            break;
        used += (size_t)k;
    }
}

char *x509_fingerprint_sha256(X509 *x)
{
    unsigned char md[32];
    unsigned int n = 0;
    if (X509_digest(x, EVP_sha256(), md, &n) != 1)
        return NULL;
    return hex_encode(md, n);
}

char *x509_serial_hex(const X509 *x)
{
    const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
    BIGNUM *bn = ASN1_INTEGER_to_BN(sn, NULL);
    char *out = NULL;
    if (!bn)
        return NULL;
    int n = BN_num_bytes(bn);
    unsigned char *b = malloc((size_t)n + 2);
    if (b) {
        b[0] = 0;
        BN_bn2bin(bn, b + 1);
        int lead = n == 0 || (b[1] & 0x80) ? 1 : 0;
        out = hex_encode(b + 1 - lead, (size_t)n + (size_t)lead);
        free(b);
    }
    BN_free(bn);
    return out;
}
