#include "api/api_json.h"

#include "util/timeutil.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

json_t *jtime(int64_t t)
{
    char b[32];
    if (!t)
        return json_null();
    time_format_rfc3339(t, b, sizeof b);
    return json_string(b);
}

json_t *jtime_asn1(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return json_null();
    return jtime((int64_t)timegm(&tm));
}

json_t *jtake(char *s)
{
    json_t *j = s ? json_string(s) : json_null();
    free(s);
    return j;
}

static char *bio_text(BIO *b)
{
    char *p = NULL, *out = NULL;
    long n = BIO_get_mem_data(b, &p);
    if (n >= 0 && (out = malloc((size_t)n + 1))) {
        memcpy(out, p, (size_t)n);
        out[n] = 0;
    }
    return out;
}

/* The same bytes PEM_write_bio writes (64-character lines, no headers),
 * straight into one buffer: this runs for every certificate and chain
 * member returned, and the memory BIO's growth showed up in profiles. */
char *pem_der(const char *name, const unsigned char *der, size_t len)
{
    size_t nl = strlen(name), lines = (len + 47) / 48;
    if (len > (size_t)INT_MAX / 2 || nl > 64)
        return NULL;
    size_t cap = 2 * (nl + 17) + lines * 65 + 1;
    char *out = malloc(cap), *p = out;
    if (!out)
        return NULL;
    p += sprintf(p, "-----BEGIN %s-----\n", name);
    for (size_t off = 0; off < len; off += 48) {
        size_t n = len - off < 48 ? len - off : 48;
        p += EVP_EncodeBlock((unsigned char *)p, der + off, (int)n);
        *p++ = '\n';
    }
    sprintf(p, "-----END %s-----\n", name);
    return out;
}

char *pem_x509(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = b && PEM_write_bio_X509(b, x) == 1 ? bio_text(b) : NULL;
    BIO_free(b);
    return out;
}

static json_t *uris_of(STACK_OF(GENERAL_NAME) *names)
{
    json_t *a = json_array();
    for (int i = 0; a && names && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_URI)
            json_array_append_new(a, json_stringn((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
                                                  (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier)));
    }
    return a;
}

void api_json_cert_urls(json_t *o, X509 *x)
{
    json_t *cdps = json_array();
    CRL_DIST_POINTS *dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
    for (int i = 0; dps && i < sk_DIST_POINT_num(dps); i++) {
        DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
        if (dp->distpoint && dp->distpoint->type == 0) {
            json_t *u = uris_of(dp->distpoint->name.fullname);
            json_array_extend(cdps, u);
            json_decref(u);
        }
    }
    CRL_DIST_POINTS_free(dps);
    json_object_set_new(o, "crlDistributionPoints", cdps);
    json_t *ocsp = json_array(), *issuers = json_array();
    AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(x, NID_info_access, NULL, NULL);
    for (int i = 0; aia && i < sk_ACCESS_DESCRIPTION_num(aia); i++) {
        ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, i);
        if (ad->location->type != GEN_URI)
            continue;
        json_t *u = json_stringn((const char *)ASN1_STRING_get0_data(ad->location->d.uniformResourceIdentifier),
                                 (size_t)ASN1_STRING_length(ad->location->d.uniformResourceIdentifier));
        json_array_append_new(OBJ_obj2nid(ad->method) == NID_ad_OCSP ? ocsp : issuers, u);
    }
    AUTHORITY_INFO_ACCESS_free(aia);
    json_object_set_new(o, "authorityInfoAccess", json_pack("{s:o,s:o}", "ocsp", ocsp, "caIssuers", issuers));
}
