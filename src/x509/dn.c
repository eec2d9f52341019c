#include "x509/dn.h"

#include "util/buf.h"
#include "util/utf8.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Total attribute/value pairs (counting every member of multi-valued RDNs). */
#define DN_MAX_AVAS 256
/* Longest attribute type text we accept (aliases or dotted OIDs). */
#define DN_MAX_TYPE 256
/* Default upper bound (characters) for attributes RFC 5280 gives none. */
#define DN_UB_DEFAULT 256

#define F_COUNTRY 0x01u /* exactly two ASCII letters */

struct dn_attr {
    const char *oid;
    const char *names[5]; /* names[0] is the canonical (printed) alias */
    int type;             /* V_ASN1_* string type used when encoding */
    unsigned max_chars;
    unsigned flags;
};

static const struct dn_attr dn_attrs[] = {
    {"2.5.4.3", {"CN", "CommonName"}, V_ASN1_UTF8STRING, 64, 0},
    {"2.5.4.4", {"SN", "SurName"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"2.5.4.5", {"SERIALNUMBER", "DeviceSerialNumber"}, V_ASN1_PRINTABLESTRING, 64, 0},
    {"2.5.4.6", {"C", "Country"}, V_ASN1_PRINTABLESTRING, 2, F_COUNTRY},
    {"2.5.4.7", {"L", "Locality"}, V_ASN1_UTF8STRING, 128, 0},
    {"2.5.4.8", {"ST", "S", "State"}, V_ASN1_UTF8STRING, 128, 0},
    {"2.5.4.9", {"STREET", "StreetAddress"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"2.5.4.10", {"O", "Org", "Organization"}, V_ASN1_UTF8STRING, 64, 0},
    {"2.5.4.11",
     {"OU", "OrganizationalUnit", "OrganizationUnit", "OrgUnit"},
     V_ASN1_UTF8STRING,
     64,
     0},
    {"2.5.4.12", {"T", "Title"}, V_ASN1_UTF8STRING, 64, 0},
    {"2.5.4.15", {"BUSINESSCATEGORY"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"2.5.4.17", {"POSTALCODE"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"2.5.4.42", {"G", "givenName"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"2.5.4.43", {"I", "Initials"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"2.5.4.97", {"ORGANIZATIONIDENTIFIER"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"0.9.2342.19200300.100.1.1", {"UID"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"0.9.2342.19200300.100.1.25", {"DC", "DomainComponent"}, V_ASN1_IA5STRING, DN_UB_DEFAULT, 0},
    {"1.2.840.113549.1.9.1", {"E", "Email"}, V_ASN1_IA5STRING, 255, 0},
    {"1.2.840.113549.1.9.2", {"unstructuredName"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"1.2.840.113549.1.9.8", {"unstructuredAddress"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"1.3.6.1.4.1.311.60.2.1.1",
     {"JurisdictionOfIncorporationLocalityName"},
     V_ASN1_UTF8STRING,
     128,
     0},
    {"1.3.6.1.4.1.311.60.2.1.2",
     {"JurisdictionOfIncorporationStateOrProvinceName"},
     V_ASN1_UTF8STRING,
     128,
     0},
    {"1.3.6.1.4.1.311.60.2.1.3",
     {"JurisdictionOfIncorporationCountryName"},
     V_ASN1_PRINTABLESTRING,
     2,
     F_COUNTRY},
    {"1.3.6.1.4.1.53087.1.2", {"TrademarkOfficeName"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"1.3.6.1.4.1.53087.1.3", {"TrademarkCountryOrRegionName"}, V_ASN1_UTF8STRING, 2, F_COUNTRY},
    {"1.3.6.1.4.1.53087.1.4", {"TrademarkRegistration"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"1.3.6.1.4.1.53087.1.5", {"LegalEntityIdentifier"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"1.3.6.1.4.1.53087.1.6", {"WordMark"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"1.3.6.1.4.1.53087.1.13", {"MarkType"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"1.3.6.1.4.1.53087.3.2", {"StatuteCountryName"}, V_ASN1_UTF8STRING, 2, F_COUNTRY},
    {"1.3.6.1.4.1.53087.3.3", {"StatuteStateOrProvinceName"}, V_ASN1_UTF8STRING, 128, 0},
    {"1.3.6.1.4.1.53087.3.4", {"StatuteLocalityName"}, V_ASN1_UTF8STRING, 128, 0},
    {"1.3.6.1.4.1.53087.3.5", {"StatuteCitation"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
    {"1.3.6.1.4.1.53087.3.6", {"StatuteURL"}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0},
};

#define DN_NATTRS (sizeof(dn_attrs) / sizeof(dn_attrs[0]))

/* Attribute used for OIDs not in the table. */
static const struct dn_attr dn_attr_unknown = {NULL, {NULL}, V_ASN1_UTF8STRING, DN_UB_DEFAULT, 0};

static const struct dn_attr *attr_by_alias(const char *t, size_t n)
{
    for (size_t i = 0; i < DN_NATTRS; i++)
        for (size_t j = 0; j < 5 && dn_attrs[i].names[j]; j++) {
            const char *a = dn_attrs[i].names[j];
            if (strlen(a) == n && strncasecmp(a, t, n) == 0)
                return &dn_attrs[i];
        }
    return NULL;
}

static const struct dn_attr *attr_by_oid(const char *oid)
{
    for (size_t i = 0; i < DN_NATTRS; i++)
        if (strcmp(dn_attrs[i].oid, oid) == 0)
            return &dn_attrs[i];
    return NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool is_space(char c)
{
    return c == ' ';
}

static bool is_rdn_sep(char c)
{
    return c == ',' || c == ';';
}

static bool is_type_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Characters that may follow a backslash literally. */
static bool is_escapable(char c)
{
    return c != '\0' && strchr(",+\"\\<>;=# ", c) != NULL;
}

static bool is_printable_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr(" '()+,-./:=?", c) != NULL);
}

bool dn_numericoid_valid(const char *s)
{
    size_t arcs = 0;
    const char *p = s;
    while (*p) {
        const char *start = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == start || (p - start > 1 && *start == '0'))
            return false;
        arcs++;
        if (*p == '.') {
            p++;
            if (!*p)
                return false;
        } else if (*p) {
            return false;
        }
    }
    return arcs >= 2;
}

/* Checks a decoded value against the attribute's rules. `tname` is the type
 * as written by the user (validated characters only). */
static int check_value(const struct dn_attr *a, const char *tname, const unsigned char *v, size_t n,
                       char *err, size_t errlen)
{
    size_t nchars = 0;
    if (n == 0) {
        set_err(err, errlen, "empty value for %s", tname);
        return -1;
    }
    if (!utf8_valid(v, n, &nchars)) {
        set_err(err, errlen, "invalid UTF-8 in value of %s", tname);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] == 0x7F) {
            set_err(err, errlen, "control character 0x%02X in value of %s", v[i], tname);
            return -1;
        }
    if (a->flags & F_COUNTRY) {
        bool ok = n == 2;
        for (size_t i = 0; ok && i < n; i++)
            ok = (v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z');
        if (!ok) {
            set_err(err, errlen, "%s must be exactly 2 ASCII letters", tname);
            return -1;
        }
    }
    if (nchars > a->max_chars) {
        set_err(err, errlen, "value of %s too long (%zu characters, maximum %u)", tname, nchars,
                a->max_chars);
        return -1;
    }
    if (a->type == V_ASN1_PRINTABLESTRING) {
        for (size_t i = 0; i < n; i++)
            if (!is_printable_char(v[i])) {
                set_err(err, errlen, "value of %s has a character not allowed in PrintableString",
                        tname);
                return -1;
            }
    } else if (a->type == V_ASN1_IA5STRING) {
        for (size_t i = 0; i < n; i++)
            if (v[i] >= 0x80) {
                set_err(err, errlen, "value of %s must be ASCII", tname);
                return -1;
            }
    }
    return 0;
}

/* Parses one value starting at s[*pos] (just after '=' and any spaces) into
 * val and *vlen, leaving *pos at the separator or end of string. */
static int parse_value(const char *s, size_t *pos, const char *tname, unsigned char *val,
                       size_t *vlen, char *err, size_t errlen)
{
    size_t i = *pos, n = 0, keep = 0;
    int rc = -1;
    bool quoted = false;

    if (s[i] == '#') {
        set_err(err, errlen, "BER-encoded (#hex) values are not supported (%s at position %zu)",
                tname, i + 1);
        goto out;
    }
    if (s[i] == '"') {
        quoted = true;
        i++;
    }
    for (;;) {
        char c = s[i];
        if (c == '\0') {
            if (quoted) {
                set_err(err, errlen, "unterminated quoted value for %s", tname);
                goto out;
            }
            break;
        }
        if (quoted && c == '"') {
            i++;
            while (is_space(s[i]))
                i++;
            if (s[i] != '\0' && !is_rdn_sep(s[i]) && s[i] != '+') {
                set_err(err, errlen, "unexpected character after quoted value at position %zu",
                        i + 1);
                goto out;
            }
            keep = n;
            break;
        }
        if (!quoted && (is_rdn_sep(c) || c == '+'))
            break;
        if (c == '\\') {
            char d = s[i + 1];
            if (d == '\0') {
                set_err(err, errlen, "unterminated escape at position %zu", i + 1);
                goto out;
            }
            if (is_escapable(d)) {
                val[n++] = (unsigned char)d;
                i += 2;
            } else if (hexval(d) >= 0 && hexval(s[i + 2]) >= 0) {
                val[n++] = (unsigned char)(hexval(d) << 4 | hexval(s[i + 2]));
                i += 3;
            } else {
                set_err(err, errlen, "invalid escape at position %zu", i + 1);
                goto out;
            }
            keep = n;
            continue;
        }
        if (!quoted && (c == '"' || c == '<' || c == '>')) {
            set_err(err, errlen, "unescaped '%c' in value of %s at position %zu", c, tname, i + 1);
            goto out;
        }
        val[n++] = (unsigned char)c;
        if (quoted || !is_space(c))
            keep = n;
        i++;
    }
    *vlen = keep; /* drops unescaped trailing spaces */
    *pos = i;
    rc = 0;
out:
    return rc;
}

/* Builds the final Name from `tmp` (entries in string order) by reversing
 * the RDN order while keeping each RDN's members in order. */
static X509_NAME *reverse_rdns(const X509_NAME *tmp)
{
    X509_NAME *name = X509_NAME_new();
    X509_NAME *ret = NULL;
    int end = X509_NAME_entry_count(tmp);
    if (!name)
        goto out;
    while (end > 0) {
        int set = X509_NAME_ENTRY_set(X509_NAME_get_entry(tmp, end - 1));
        int start = end - 1;
        while (start > 0 && X509_NAME_ENTRY_set(X509_NAME_get_entry(tmp, start - 1)) == set)
            start--;
        for (int i = start; i < end; i++)
            if (X509_NAME_add_entry(name, X509_NAME_get_entry(tmp, i), -1, i == start ? 0 : -1) !=
                1)
                goto out;
        end = start;
    }
    ret = name;
    name = NULL;
out:
    X509_NAME_free(name);
    return ret;
}

int dn_parse(const char *s, X509_NAME **out, char *err, size_t errlen)
{
    X509_NAME *tmp = NULL, *name = NULL;
    ASN1_OBJECT *obj = NULL;
    unsigned char *val = NULL;
    char *type = NULL, *canon = NULL;
    size_t len, pos = 0, rdns = 0, avas = 0;
    bool new_rdn = true;
    int rc = -1;

    if (err && errlen)
        err[0] = '\0';
    if (!out) {
        set_err(err, errlen, "no output");
        goto out;
    }
    *out = NULL;
    if (!s) {
        set_err(err, errlen, "empty DN");
        goto out;
    }
    len = strnlen(s, DN_MAX_STRING + 1);
    if (len > DN_MAX_STRING) {
        set_err(err, errlen, "DN longer than %d bytes", DN_MAX_STRING);
        goto out;
    }
    while (pos < len && is_space(s[pos]))
        pos++;
    if (pos == len) {
        set_err(err, errlen, "empty DN");
        goto out;
    }
    if (!(val = malloc(len + 1)) || !(type = malloc(len + 1)) || !(tmp = X509_NAME_new())) {
        set_err(err, errlen, "out of memory");
        goto out;
    }

    for (;;) {
        const struct dn_attr *a;
        size_t tstart, tlen, vlen = 0;

        /* attribute type */
        while (is_space(s[pos]))
            pos++;
        tstart = pos;
        while (s[pos] && s[pos] != '=' && !is_rdn_sep(s[pos]) && s[pos] != '+')
            pos++;
        tlen = pos - tstart;
        while (tlen > 0 && is_space(s[tstart + tlen - 1]))
            tlen--;
        if (tlen == 0) {
            if (s[pos] == '=')
                set_err(err, errlen, "empty attribute type at position %zu", pos + 1);
            else if (s[pos] == '\0')
                set_err(err, errlen, "missing attribute after separator at end of DN");
            else
                set_err(err, errlen, "empty RDN at position %zu", pos + 1);
            goto out;
        }
        for (size_t k = 0; k < tlen; k++)
            if (!is_type_char(s[tstart + k])) {
                set_err(err, errlen, "invalid character in attribute type at position %zu",
                        tstart + k + 1);
                goto out;
            }
        if (tlen > DN_MAX_TYPE) {
            set_err(err, errlen, "attribute type too long at position %zu", tstart + 1);
            goto out;
        }
        memcpy(type, s + tstart, tlen);
        type[tlen] = '\0';
        if (s[pos] != '=') {
            set_err(err, errlen, "missing '=' after attribute type '%s'", type);
            goto out;
        }
        pos++;

        /* resolve the type */
        if ((type[0] >= '0' && type[0] <= '9') || strncasecmp(type, "OID.", 4) == 0) {
            const char *oid = type[0] >= '0' && type[0] <= '9' ? type : type + 4;
            if (!dn_numericoid_valid(oid)) {
                set_err(err, errlen, "invalid OID '%s'", type);
                goto out;
            }
            a = attr_by_oid(oid);
            if (!a)
                a = &dn_attr_unknown;
            ASN1_OBJECT_free(obj);
            ERR_set_mark();
            obj = OBJ_txt2obj(oid, 1);
            ERR_pop_to_mark();
            if (!obj) {
                set_err(err, errlen, "invalid OID '%s'", type);
                goto out;
            }
        } else {
            if (!(a = attr_by_alias(type, tlen))) {
                set_err(err, errlen, "unknown attribute type '%s'", type);
                goto out;
            }
            ASN1_OBJECT_free(obj);
            if (!(obj = OBJ_txt2obj(a->oid, 1))) {
                set_err(err, errlen, "out of memory");
                goto out;
            }
        }

        /* value */
        while (is_space(s[pos]))
            pos++;
        if (parse_value(s, &pos, type, val, &vlen, err, errlen) != 0)
            goto out;
        if (check_value(a, type, val, vlen, err, errlen) != 0)
            goto out;

        if (new_rdn && ++rdns > DN_MAX_RDNS) {
            set_err(err, errlen, "too many RDNs (maximum %d)", DN_MAX_RDNS);
            goto out;
        }
        if (++avas > DN_MAX_AVAS) {
            set_err(err, errlen, "too many attributes (maximum %d)", DN_MAX_AVAS);
            goto out;
        }
        if (X509_NAME_add_entry_by_OBJ(tmp, obj, a->type, val, (int)vlen, -1, new_rdn ? 0 : -1) !=
            1) {
            set_err(err, errlen, "cannot encode value of %s", type);
            goto out;
        }

        if (s[pos] == '\0')
            break;
        new_rdn = s[pos] != '+';
        pos++;
    }

    if (!(name = reverse_rdns(tmp))) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    /* The bound holds for the canonical form too (longer aliases, ", "
     * between RDNs), so whatever is printed and stored parses again. */
    if (!(canon = dn_print(name))) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    if (strlen(canon) > DN_MAX_STRING) {
        set_err(err, errlen, "DN longer than %d bytes once written with canonical attribute names",
                DN_MAX_STRING);
        goto out;
    }
    *out = name;
    name = NULL;
    rc = 0;
out:
    X509_NAME_free(name);
    X509_NAME_free(tmp);
    ASN1_OBJECT_free(obj);
    free(canon);
    free(type);
    free(val);
    return rc;
}

/* Returns the dotted OID as a malloc'd string, or NULL. */
static char *obj_text(const ASN1_OBJECT *obj)
{
    char *p = NULL, *ret = NULL;
    int n = OBJ_obj2txt(NULL, 0, obj, 1);
    if (n <= 0 || !(p = malloc((size_t)n + 1)))
        goto out;
    if (OBJ_obj2txt(p, n + 1, obj, 1) != n)
        goto out;
    ret = p;
    p = NULL;
out:
    free(p);
    return ret;
}

static int append_escaped(struct buf *b, const unsigned char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = v[i];
        int r;
        if (c < 0x20 || c == 0x7F)
            r = buf_printf(b, "\\%02X", c);
        else if (strchr(",+\"\\<>;", c) || (i == 0 && (c == '#' || c == ' ')) ||
                 (i == n - 1 && c == ' '))
            r = buf_printf(b, "\\%c", c);
        else
            r = buf_append(b, &c, 1);
        if (r != 0)
            return -1;
    }
    return 0;
}

/* Fallback for values that cannot be converted to UTF-8: "#" + hex DER. */
static int append_hex_der(struct buf *b, const ASN1_STRING *str)
{
    ASN1_TYPE t;
    unsigned char *der = NULL;
    int n, rc = -1;
    t.type = ASN1_STRING_type(str);
    t.value.asn1_string = (ASN1_STRING *)str;
    if ((n = i2d_ASN1_TYPE(&t, &der)) <= 0)
        goto out;
    if (buf_append(b, "#", 1) != 0)
        goto out;
    for (int i = 0; i < n; i++)
        if (buf_printf(b, "%02X", der[i]) != 0)
            goto out;
    rc = 0;
out:
    OPENSSL_free(der);
    return rc;
}

static int append_entry(struct buf *b, const X509_NAME_ENTRY *ne)
{
    const ASN1_STRING *str = X509_NAME_ENTRY_get_data(ne);
    const struct dn_attr *a;
    unsigned char *u = NULL;
    char *oid = NULL;
    int n, rc = -1;

    if (!str || !(oid = obj_text(X509_NAME_ENTRY_get_object(ne))))
        goto out;
    a = attr_by_oid(oid);
    if (buf_append_str(b, a ? a->names[0] : oid) != 0 || buf_append(b, "=", 1) != 0)
        goto out;
    n = ASN1_STRING_to_UTF8(&u, str);
    if (n >= 0) {
        if (append_escaped(b, u, (size_t)n) != 0)
            goto out;
    } else if (append_hex_der(b, str) != 0) {
        goto out;
    }
    rc = 0;
out:
    OPENSSL_free(u);
    free(oid);
    return rc;
}

char *dn_print(const X509_NAME *name)
{
    struct buf b;
    char *ret = NULL;
    int end;

    buf_init(&b, 0);
    if (!name)
        goto out;
    end = X509_NAME_entry_count(name);
    while (end > 0) {
        int set = X509_NAME_ENTRY_set(X509_NAME_get_entry(name, end - 1));
        int start = end - 1;
        while (start > 0 && X509_NAME_ENTRY_set(X509_NAME_get_entry(name, start - 1)) == set)
            start--;
        if (b.len > 0 && buf_append(&b, ", ", 2) != 0)
            goto out;
        for (int i = start; i < end; i++) {
            if (i > start && buf_append(&b, "+", 1) != 0)
                goto out;
            if (append_entry(&b, X509_NAME_get_entry(name, i)) != 0)
                goto out;
        }
        end = start;
    }
    ret = (char *)buf_take(&b, NULL);
out:
    buf_free(&b);
    return ret;
}

char *dn_get_cn(const X509_NAME *name)
{
    const X509_NAME_ENTRY *ne;
    const ASN1_STRING *str;
    unsigned char *u = NULL;
    char *ret = NULL;
    int idx, n;

    if (!name)
        goto out;
    idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0)
        goto out;
    if (!(ne = X509_NAME_get_entry(name, idx)) || !(str = X509_NAME_ENTRY_get_data(ne)))
        goto out;
    if ((n = ASN1_STRING_to_UTF8(&u, str)) < 0)
        goto out;
    /* An embedded NUL would silently truncate the C string: refuse it. */
    if (memchr(u, 0, (size_t)n))
        goto out;
    if (!(ret = malloc((size_t)n + 1)))
        goto out;
    memcpy(ret, u, (size_t)n);
    ret[n] = '\0';
out:
    OPENSSL_free(u);
    return ret;
}
