/* api_json: small JSON/PEM helpers shared by the API handlers. */
#ifndef PKIAAS_API_API_JSON_H
#define PKIAAS_API_API_JSON_H

#include <jansson.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 3339 string, or null for 0. */
json_t *jtime(int64_t t);
json_t *jtime_asn1(const ASN1_TIME *t);
/* A JSON string from a malloc'd C string, which it frees (NULL → null). */
json_t *jtake(char *s);
/* PEM armour around DER without decoding it (malloc'd). */
char *pem_der(const char *name, const unsigned char *der, size_t len);
/* PEM of a certificate (malloc'd). */
char *pem_x509(X509 *x);
/* Sets "crlDistributionPoints" (URIs) and "authorityInfoAccess" {"ocsp",
 * "caIssuers"} (URIs) of certificate x on o. */
void api_json_cert_urls(json_t *o, X509 *x);

#endif
