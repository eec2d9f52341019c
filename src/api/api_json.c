#include "api/api_json.h"

#include "util/timeutil.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
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
