/* dn: Distinguished Name strings <-> X509_NAME.
 *
 * Promises:
 *  - dn_parse() accepts RFC 4514 strings ("CN=Web, O=Acme\, Inc., C=US"),
 *    with the attribute aliases of the product guide's DN table (case-
 *    insensitive: CN/CommonName, SN/SurName, SERIALNUMBER/DeviceSerialNumber,
 *    C/Country, L/Locality, ST/S/State, STREET/StreetAddress,
 *    O/Org/Organization, OU/OrganizationalUnit/OrganizationUnit/OrgUnit,
 *    T/Title, BUSINESSCATEGORY, POSTALCODE, givenName/G, I/Initials,
 *    ORGANIZATIONIDENTIFIER, UID, DC/DomainComponent, Email/E,
 *    unstructuredName, unstructuredAddress, JurisdictionOfIncorporation*,
 *    Trademark*, LegalEntityIdentifier, WordMark, MarkType, Statute*) and
 *    dotted OIDs ("2.5.4.3=foo", "OID.2.5.4.3=foo"). Multi-valued RDNs use
 *    '+'. The string is written most-specific first (RFC 4514 order), so the
 *    last RDN in the string is the first in the encoded Name.
 *  - Errors are reported in `err` naming the offending attribute or position;
 *    the input is bounded (DN_MAX_STRING bytes, DN_MAX_RDNS RDNs, per-attribute
 *    upper bounds of RFC 5280 Appendix A where it defines them); the
 *    bound on bytes holds for the string dn_print() would give as well.
 *  - dn_print() renders the Name back in the same syntax with the canonical
 *    short alias, RFC 4514 escaping, ", " between RDNs.
 */
#ifndef PKIAAS_X509_DN_H
#define PKIAAS_X509_DN_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#define DN_MAX_STRING 4096
#define DN_MAX_RDNS 64

/* Returns 0 and sets *out (caller frees with X509_NAME_free), or -1 with a
 * message in err (always NUL-terminated when errlen > 0). An empty string is
 * an error. */
int dn_parse(const char *s, X509_NAME **out, char *err, size_t errlen);

/* Returns a malloc'd string, or NULL on allocation failure. */
char *dn_print(const X509_NAME *name);

/* Returns the value of the first CN in the name as a malloc'd UTF-8 string,
 * or NULL when there is none. */
char *dn_get_cn(const X509_NAME *name);

/* RFC 4514 numericoid ("1.2.840.113549"): decimal arcs without leading
 * zeros, at least two. */
bool dn_numericoid_valid(const char *s);

#endif
