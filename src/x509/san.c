#include "x509/san.h"

#include "util/buf.h"
#include "x509/dn.h"
#include "util/utf8.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UPN_OID "1.3.6.1.4.1.311.20.2.3"
/* Longest registeredID (dotted OID text) accepted. */
#define RID_MAX_LEN 128

/* An "xn--" label that is a real A-label (RFC 5890 2.3.2.1): it decodes
 * (Punycode) to a U-label that IDNA2008 permits and encodes back to the
 * same label, so neither undecodable Punycode nor a disguised ASCII or
 * disallowed code point passes. */
static bool a_label_ok(const char *s, size_t n)
{
    char lower[64], *u = NULL, *back = NULL;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + ('a' - 'A') : s[i]);
    lower[n] = 0;
    bool ok = idn2_to_unicode_8z8z(lower, &u, 0) == IDN2_OK && u &&
              idn2_to_ascii_8z(u, &back, IDN2_NO_TR46) == IDN2_OK && back && strcmp(back, lower) == 0;
    idn2_free(u);
    idn2_free(back);
    return ok;
}

static bool label_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    /* "xn--" A-labels are LDH and pass; other "??--" reserved forms are
     * refused (RFC 5891 4.2.3.1). */
    if (n >= 4 && s[2] == '-' && s[3] == '-')
        return strncasecmp(s, "xn", 2) == 0 && a_label_ok(s, n);
    return true;
}

bool san_dns_valid(const char *name, bool allow_wildcard)
{
    size_t n = strlen(name);
    if (n == 0 || n > 253)
        return false;
    if (name[n - 1] == '.')
        return false; /* no absolute form in certificates */
    const char *p = name;
    if (p[0] == '*') {
        if (!allow_wildcard || p[1] != '.')
            return false;
        p += 2;
    }
    int labels = 0;
    bool numeric = false; /* the last label so far is all digits */
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (!label_ok(p, len))
            return false;
        numeric = strspn(p, "0123456789") >= len;
        labels++;
        p += len;
        if (*p == '.')
            p++;
        if (dot && !*p)
            return false;
    }
    /* an all-numeric last label is no host name (an IPv4 address goes in an
     * iPAddress entry) */
    return labels >= (name[0] == '*' ? 2 : 1) && !numeric;
}

static bool email_valid(const char *v)
{
    const char *at = strrchr(v, '@');
    if (!at || at == v || strlen(v) > 254 || at - v > 64)
        return false;
    for (const char *c = v; c < at; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || *c == '@' || *c == ',' || *c == '<' ||
            *c == '>' || *c == '"' || *c == '(' || *c == ')' || *c == '[' || *c == ']' || *c == ';' ||
            *c == ':' || *c == '\\')
            return false;
    return san_dns_valid(at + 1, false);
}

static bool uri_valid(const char *v)
{
    size_t n = strlen(v);
    if (n < 3 || n > 2048)
        return false;
    const char *colon = strchr(v, ':');
    if (!colon || colon == v)
        return false;
    if (!((v[0] >= 'a' && v[0] <= 'z') || (v[0] >= 'A' && v[0] <= 'Z')))
        return false;
    for (const char *c = v; c < colon; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '+' ||
              *c == '-' || *c == '.'))
            return false;
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || *c == '"' || *c == '<' || *c == '>' ||
            *c == '\\' || *c == '{' || *c == '}' || *c == '|' || *c == '^' || *c == '`')
            return false;
    if (colon[1] == 0)
        return false;
    if (colon[1] != '/' || colon[2] != '/')
        return true; /* no authority (urn:, mailto:, ...) */
    /* RFC 5280 4.2.1.6: with an authority, the host is a fully qualified
     * domain name or an IP address (no wildcard, no user information) */
    const char *h = colon + 3, *end = h + strcspn(h, "/?#");
    if (memchr(h, '@', (size_t)(end - h)))
        return false;
    char host[256];
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb || (size_t)(rb - h - 1) >= sizeof host || (rb[1] != ':' && rb + 1 != end))
            return false;
        memcpy(host, h + 1, (size_t)(rb - h - 1));
        host[rb - h - 1] = 0;
        unsigned char a6[16];
        return inet_pton(AF_INET6, host, a6) == 1;
    }
    const char *port = memchr(h, ':', (size_t)(end - h));
    const char *hend = port ? port : end;
    if (hend == h || (size_t)(hend - h) >= sizeof host)
        return false;
    if (port && (port + 1 == end || strspn(port + 1, "0123456789") < (size_t)(end - port - 1)))
        return false;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = 0;
    unsigned char a4[4];
    return inet_pton(AF_INET, host, a4) == 1 || san_dns_valid(host, false);
}

/* Non-empty strict UTF-8 of at most maxlen bytes, no control characters. */
static bool text_valid(const char *s, size_t maxlen)
{
    size_t n = strlen(s);
    if (n == 0 || n > maxlen || !utf8_valid((const unsigned char *)s, n, NULL))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static GENERAL_NAME *gn_ia5(int type, const char *v)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    if (!gn || !s || ASN1_STRING_set(s, v, (int)strlen(v)) != 1) {
        GENERAL_NAME_free(gn);
        ASN1_IA5STRING_free(s);
        return NULL;
    }
    GENERAL_NAME_set0_value(gn, type, s);
    return gn;
}

static GENERAL_NAME *gn_ip(const char *v)
{
    unsigned char buf[16];
    int len = 0;
    if (inet_pton(AF_INET, v, buf) == 1)
        len = 4;
    else if (inet_pton(AF_INET6, v, buf) == 1)
        len = 16;
    else
        return NULL;
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    if (!gn || !os || ASN1_OCTET_STRING_set(os, buf, len) != 1) {
        GENERAL_NAME_free(gn);
        ASN1_OCTET_STRING_free(os);
        return NULL;
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
    return gn;
}

static GENERAL_NAME *gn_upn(const char *v)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_TYPE *t = ASN1_TYPE_new();
    ASN1_UTF8STRING *u = ASN1_UTF8STRING_new();
    ASN1_OBJECT *oid = OBJ_txt2obj(UPN_OID, 1);
    if (!gn || !t || !u || !oid || ASN1_STRING_set(u, v, (int)strlen(v)) != 1)
        goto fail;
    ASN1_TYPE_set(t, V_ASN1_UTF8STRING, u);
    u = NULL;
    if (GENERAL_NAME_set0_othername(gn, oid, t) != 1)
        goto fail;
    return gn;
fail:
    GENERAL_NAME_free(gn);
    ASN1_TYPE_free(t);
    ASN1_UTF8STRING_free(u);
    ASN1_OBJECT_free(oid);
    return NULL;
}

/* registeredID syntax: a numericoid (dn_numericoid_valid) of at most
 * RID_MAX_LEN bytes whose first arc is 0..2 (second < 40 under 0 and 1). */
static bool rid_syntax_ok(const char *v)
{
    size_t n = strnlen(v, RID_MAX_LEN + 1);
    if (n == 0 || n > RID_MAX_LEN || !dn_numericoid_valid(v) || v[0] > '2' || v[1] != '.')
        return false;
    const char *second = v + 2;
    size_t len = strspn(second, "0123456789");
    return v[0] == '2' || len < 2 || (len == 2 && second[0] < '4');
}

/* Returns the dotted text of an OID (malloc'd) or NULL. */
static char *oid_text(const ASN1_OBJECT *obj)
{
    int n = obj ? OBJ_obj2txt(NULL, 0, obj, 1) : -1;
    if (n <= 0)
        return NULL;
    char *t = malloc((size_t)n + 1);
    if (t && OBJ_obj2txt(t, n + 1, obj, 1) != n) {
        free(t);
        t = NULL;
    }
    return t;
}

/* *bad is set when the value is refused (as opposed to out of memory). */
static GENERAL_NAME *gn_rid(const char *v, bool *bad)
{
    *bad = true;
    if (!rid_syntax_ok(v))
        return NULL;
    ERR_set_mark();
    ASN1_OBJECT *oid = OBJ_txt2obj(v, 1); /* numeric only: no names */
    ERR_pop_to_mark();
    if (!oid)
        return NULL;
    char *back = oid_text(oid);
    if (!back || strcmp(back, v) != 0) {
        *bad = back != NULL;
        free(back);
        ASN1_OBJECT_free(oid);
        return NULL;
    }
    free(back);
    *bad = false;
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (!gn) {
        ASN1_OBJECT_free(oid);
        return NULL;
    }
    GENERAL_NAME_set0_value(gn, GEN_RID, oid);
    return gn;
}

static GENERAL_NAME *gn_dirname(X509_NAME *name)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (!gn) {
        X509_NAME_free(name);
        return NULL;
    }
    GENERAL_NAME_set0_value(gn, GEN_DIRNAME, name);
    return gn;
}

int san_add(GENERAL_NAMES *names, const char *type, const char *value, bool allow_wildcard, const char *field,
            struct err *e)
{
    GENERAL_NAME *gn = NULL;
    if (sk_GENERAL_NAME_num(names) >= SAN_MAX) {
        err_set(e, 400, "invalid_field", field, "%s: at most %d subject alternative names", field, SAN_MAX);
        return -1;
    }
    if (!type || !value) {
        err_set(e, 400, "invalid_field", field, "%s: each entry needs a type and a value", field);
        return -1;
    }
    if (strcmp(type, "dNSName") == 0 || strcmp(type, "dns") == 0) {
        if (!san_dns_valid(value, allow_wildcard)) {
            err_set(e, 400, "invalid_field", field,
                    "%s: '%.80s' is not a valid DNS name (ASCII/IDNA A-labels%s)", field, value,
                    allow_wildcard ? ", wildcard only as the whole leftmost label" : ", no wildcards in this profile");
            return -1;
        }
        gn = gn_ia5(GEN_DNS, value);
    } else if (strcmp(type, "iPAddress") == 0 || strcmp(type, "ip") == 0) {
        if (!(gn = gn_ip(value))) {
            err_set(e, 400, "invalid_field", field, "%s: '%.64s' is not an IPv4 or IPv6 address", field, value);
            return -1;
        }
    } else if (strcmp(type, "rfc822Name") == 0 || strcmp(type, "email") == 0) {
        if (!email_valid(value)) {
            err_set(e, 400, "invalid_field", field, "%s: '%.80s' is not a valid email address", field, value);
            return -1;
        }
        gn = gn_ia5(GEN_EMAIL, value);
    } else if (strcmp(type, "uniformResourceIdentifier") == 0 || strcmp(type, "uri") == 0) {
        if (!uri_valid(value)) {
            err_set(e, 400, "invalid_field", field, "%s: '%.80s' is not an absolute ASCII URI", field, value);
            return -1;
        }
        gn = gn_ia5(GEN_URI, value);
    } else if (strcmp(type, "userPrincipalName") == 0 || strcmp(type, "upn") == 0) {
        if (!text_valid(value, 256) || !strchr(value, '@')) {
            err_set(e, 400, "invalid_field", field, "%s: a UPN looks like user@domain (UTF-8, at most 256 bytes)",
                    field);
            return -1;
        }
        gn = gn_upn(value);
    } else if (strcmp(type, "directoryName") == 0) {
        char why[160] = "";
        X509_NAME *dn = NULL;
        if (dn_parse(value, &dn, why, sizeof why) != 0 || X509_NAME_entry_count(dn) == 0) {
            X509_NAME_free(dn);
            err_set(e, 400, "invalid_field", field, "%s: '%.80s' is not a valid directory name (%s)", field, value,
                    why[0] ? why : "empty DN");
            return -1;
        }
        gn = gn_dirname(dn);
    } else if (strcmp(type, "registeredID") == 0) {
        bool bad = false;
        if (!(gn = gn_rid(value, &bad)) && bad) {
            err_set(e, 400, "invalid_field", field,
                    "%s: '%.80s' is not a dotted numeric OID (like 1.2.3.4, at most %d bytes)", field, value,
                    RID_MAX_LEN);
            return -1;
        }
    } else {
        err_set(e, 400, "invalid_field", field,
                "%s: type '%.40s' unsupported (dNSName, iPAddress, rfc822Name, uniformResourceIdentifier, "
                "userPrincipalName, directoryName, registeredID)",
                field, type);
        return -1;
    }
    if (!gn || !sk_GENERAL_NAME_push(names, gn)) {
        GENERAL_NAME_free(gn);
        err_set(e, 500, "internal", "", "out of memory");
        return -1;
    }
    return 0;
}

int san_from_json(const json_t *arr, GENERAL_NAMES *names, bool allow_wildcard, struct err *e)
{
    size_t i;
    json_t *v;
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr)) {
        err_set(e, 400, "invalid_field", "subjectAltNames", "subjectAltNames: must be an array of {type, value}");
        return -1;
    }
    if (json_array_size(arr) > SAN_MAX) {
        err_set(e, 400, "invalid_field", "subjectAltNames", "subjectAltNames: at most %d entries", SAN_MAX);
        return -1;
    }
    json_array_foreach(arr, i, v) {
        char field[48];
        snprintf(field, sizeof field, "subjectAltNames[%zu]", i);
        if (!json_is_object(v) || json_object_size(v) != 2 || !json_is_string(json_object_get(v, "type")) ||
            !json_is_string(json_object_get(v, "value"))) {
            err_set(e, 400, "invalid_field", field, "%s: must be {\"type\": string, \"value\": string}", field);
            return -1;
        }
        const json_t *val = json_object_get(v, "value");
        if (strlen(json_string_value(val)) != json_string_length(val)) {
            err_set(e, 400, "invalid_field", field, "%s: NUL characters are not allowed", field);
            return -1;
        }
        if (san_add(names, json_string_value(json_object_get(v, "type")), json_string_value(val), allow_wildcard,
                    field, e) != 0)
            return -1;
    }
    return 0;
}

static char *asn1_text(const ASN1_STRING *s)
{
    int n = ASN1_STRING_length(s);
    const unsigned char *d = ASN1_STRING_get0_data(s);
    if (n < 0 || memchr(d, 0, (size_t)n))
        return NULL;
    char *t = malloc((size_t)n + 1);
    if (t) {
        memcpy(t, d, (size_t)n);
        t[n] = 0;
    }
    return t;
}

/* type name and printable value of one name; *value malloc'd. */
static const char *gn_describe(const GENERAL_NAME *gn, char **value)
{
    *value = NULL;
    switch (gn->type) {
    case GEN_DNS:
        *value = asn1_text(gn->d.dNSName);
        return "dNSName";
    case GEN_EMAIL:
        *value = asn1_text(gn->d.rfc822Name);
        return "rfc822Name";
    case GEN_URI:
        *value = asn1_text(gn->d.uniformResourceIdentifier);
        return "uniformResourceIdentifier";
    case GEN_IPADD: {
        char buf[64];
        int n = ASN1_STRING_length(gn->d.iPAddress);
        const unsigned char *d = ASN1_STRING_get0_data(gn->d.iPAddress);
        if ((n == 4 && inet_ntop(AF_INET, d, buf, sizeof buf)) || (n == 16 && inet_ntop(AF_INET6, d, buf, sizeof buf)))
            *value = strdup(buf);
        return "iPAddress";
    }
    case GEN_DIRNAME:
        *value = dn_print(gn->d.directoryName);
        return "directoryName";
    case GEN_RID:
        *value = oid_text(gn->d.registeredID);
        return "registeredID";
    case GEN_OTHERNAME: {
        char oid[64];
        OBJ_obj2txt(oid, sizeof oid, gn->d.otherName->type_id, 1);
        if (strcmp(oid, UPN_OID) == 0 && gn->d.otherName->value->type == V_ASN1_UTF8STRING)
            *value = asn1_text(gn->d.otherName->value->value.utf8string);
        return "userPrincipalName";
    }
    default:
        return NULL;
    }
}

int san_merge_checked(GENERAL_NAMES *dst, const GENERAL_NAMES *src, bool allow_wildcard, struct err *e)
{
    for (int i = 0; src && i < sk_GENERAL_NAME_num(src); i++) {
        char *v = NULL;
        const char *type = gn_describe(sk_GENERAL_NAME_value(src, i), &v);
        if (!type || !v) {
            free(v);
            err_set(e, 400, "invalid_field", "csr",
                    "csr: subjectAltName entry %d has an unsupported or malformed name form", i);
            return -1;
        }
        int dup = 0;
        for (int k = 0; k < sk_GENERAL_NAME_num(dst); k++)
            if (GENERAL_NAME_cmp(sk_GENERAL_NAME_value(dst, k), sk_GENERAL_NAME_value(src, i)) == 0)
                dup = 1;
        int rc = dup ? 0 : san_add(dst, type, v, allow_wildcard, "csr.subjectAltName", e);
        free(v);
        if (rc != 0)
            return -1;
    }
    return 0;
}

char *san_to_text(const GENERAL_NAMES *names)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        char *v = NULL;
        const char *type = gn_describe(sk_GENERAL_NAME_value(names, i), &v);
        if (type && v)
            buf_printf(&b, "%s%s:%s", b.len ? "," : "", type, v);
        free(v);
    }
    size_t n;
    return (char *)buf_take(&b, &n);
}

json_t *san_to_json(const GENERAL_NAMES *names)
{
    json_t *a = json_array();
    for (int i = 0; a && names && i < sk_GENERAL_NAME_num(names); i++) {
        char *v = NULL;
        const char *type = gn_describe(sk_GENERAL_NAME_value(names, i), &v);
        if (type && v)
            json_array_append_new(a, json_pack("{s:s,s:s}", "type", type, "value", v));
        free(v);
    }
    return a;
}

bool san_contains_dns(const GENERAL_NAMES *names, const char *dns)
{
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS && (size_t)ASN1_STRING_length(gn->d.dNSName) == strlen(dns) &&
            strncasecmp((const char *)ASN1_STRING_get0_data(gn->d.dNSName), dns, strlen(dns)) == 0)
            return true;
    }
    return false;
}
