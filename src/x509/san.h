/* san: subject alternative names — validation and encoding.
 *
 * Types (the request's "type" strings): dNSName (IDNA A-labels, LDH, a
 * leading "*." only when wildcards are allowed), iPAddress (IPv4/IPv6),
 * rfc822Name, uniformResourceIdentifier (absolute URI), userPrincipalName
 * (otherName 1.3.6.1.4.1.311.20.2.3, UTF8String), directoryName (a DN in the
 * syntax of x509/dn.h, non-empty; rendered back with dn_print) and
 * registeredID (dotted numeric OID, at most 128 bytes). At most SAN_MAX
 * names. */
#ifndef PKIAAS_X509_SAN_H
#define PKIAAS_X509_SAN_H

#include "util/err.h"

#include <jansson.h>
#include <openssl/x509v3.h>
#include <stdbool.h>

#define SAN_MAX 256

bool san_dns_valid(const char *name, bool allow_wildcard);
/* Appends to `names` (validated); `field` names the request field in errors. */
int san_add(GENERAL_NAMES *names, const char *type, const char *value, bool allow_wildcard, const char *field,
            struct err *e);
int san_from_json(const json_t *arr, GENERAL_NAMES *names, bool allow_wildcard, struct err *e);
/* Re-validates names taken from a CSR's extensionRequest. */
int san_merge_checked(GENERAL_NAMES *dst, const GENERAL_NAMES *src, bool allow_wildcard, struct err *e);
/* "dns:a.example,ip:192.0.2.1,..." (malloc'd) for search and display. */
char *san_to_text(const GENERAL_NAMES *names);
/* JSON array of {"type","value"}. */
json_t *san_to_json(const GENERAL_NAMES *names);
bool san_contains_dns(const GENERAL_NAMES *names, const char *dns);

#endif
