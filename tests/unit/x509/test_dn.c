#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "x509/dn.h"

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------- */

static X509_NAME *parse_ok(const char *s)
{
    X509_NAME *n = NULL;
    char err[256] = "";
    int rc = dn_parse(s, &n, err, sizeof(err));
    if (rc != 0)
        fail_msg("dn_parse(\"%s\") failed: %s", s, err);
    assert_non_null(n);
    return n;
}

static void entry_oid(const X509_NAME *n, int i, char *out, size_t outlen)
{
    const X509_NAME_ENTRY *ne = X509_NAME_get_entry(n, i);
    assert_non_null(ne);
    assert_true(OBJ_obj2txt(out, (int)outlen, X509_NAME_ENTRY_get_object(ne), 1) > 0);
}

static int entry_type(const X509_NAME *n, int i)
{
    const X509_NAME_ENTRY *ne = X509_NAME_get_entry(n, i);
    assert_non_null(ne);
    return ASN1_STRING_type(X509_NAME_ENTRY_get_data(ne));
}

static void assert_entry_value(const X509_NAME *n, int i, const char *want)
{
    const X509_NAME_ENTRY *ne = X509_NAME_get_entry(n, i);
    const ASN1_STRING *v;
    assert_non_null(ne);
    v = X509_NAME_ENTRY_get_data(ne);
    assert_int_equal(ASN1_STRING_length(v), (int)strlen(want));
    assert_memory_equal(ASN1_STRING_get0_data(v), want, strlen(want));
}

static void assert_same_der(const X509_NAME *a, const X509_NAME *b)
{
    unsigned char *da = NULL, *db = NULL;
    int la = i2d_X509_NAME(a, &da), lb = i2d_X509_NAME(b, &db);
    assert_true(la > 0);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, (size_t)la);
    OPENSSL_free(da);
    OPENSSL_free(db);
}

/* Parses s, checks the canonical print, and that the print re-parses to the
 * same DER. */
static void check_roundtrip(const char *s, const char *want)
{
    X509_NAME *a = parse_ok(s), *b;
    char *p = dn_print(a), *p2;
    assert_non_null(p);
    if (strcmp(p, want) != 0)
        fail_msg("dn_print(dn_parse(\"%s\")) = \"%s\", want \"%s\"", s, p, want);
    b = parse_ok(p);
    assert_same_der(a, b);
    p2 = dn_print(b);
    assert_non_null(p2);
    assert_string_equal(p, p2);
    free(p2);
    free(p);
    X509_NAME_free(b);
    X509_NAME_free(a);
}

static void check_rejected(const char *s)
{
    X509_NAME *n = (X509_NAME *)&n; /* must be reset to NULL */
    char err[256];
    memset(err, 'x', sizeof(err));
    int rc = dn_parse(s, &n, err, sizeof(err));
    if (rc != -1)
        fail_msg("dn_parse accepted malformed \"%.80s\"", s ? s : "(null)");
    assert_null(n);
    assert_non_null(memchr(err, '\0', sizeof(err)));
    if (err[0] == '\0')
        fail_msg("empty error message for \"%.80s\"", s ? s : "(null)");
}

static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *s = malloc(pl + n + sl + 1);
    assert_non_null(s);
    memcpy(s, prefix, pl);
    memset(s + pl, c, n);
    memcpy(s + pl + n, suffix, sl + 1);
    return s;
}

/* n RDNs "CN=a, CN=a, ..." */
static char *many_rdns(size_t n)
{
    char *s = malloc(n * 6 + 1);
    size_t off = 0;
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        memcpy(s + off, i ? ", CN=a" : "CN=a", i ? 6 : 4);
        off += i ? 6 : 4;
    }
    s[off] = '\0';
    return s;
}

/* ---- aliases ---------------------------------------------------------- */

struct alias_case {
    const char *alias;
    const char *oid;
    const char *canonical;
    const char *value;
};

static const struct alias_case alias_cases[] = {
    {"CN", "2.5.4.3", "CN", "x"},
    {"CommonName", "2.5.4.3", "CN", "x"},
    {"SN", "2.5.4.4", "SN", "x"},
    {"SurName", "2.5.4.4", "SN", "x"},
    {"SERIALNUMBER", "2.5.4.5", "SERIALNUMBER", "1234"},
    {"DeviceSerialNumber", "2.5.4.5", "SERIALNUMBER", "1234"},
    {"C", "2.5.4.6", "C", "US"},
    {"Country", "2.5.4.6", "C", "US"},
    {"L", "2.5.4.7", "L", "x"},
    {"Locality", "2.5.4.7", "L", "x"},
    {"ST", "2.5.4.8", "ST", "x"},
    {"S", "2.5.4.8", "ST", "x"},
    {"State", "2.5.4.8", "ST", "x"},
    {"STREET", "2.5.4.9", "STREET", "x"},
    {"StreetAddress", "2.5.4.9", "STREET", "x"},
    {"O", "2.5.4.10", "O", "x"},
    {"Org", "2.5.4.10", "O", "x"},
    {"Organization", "2.5.4.10", "O", "x"},
    {"OU", "2.5.4.11", "OU", "x"},
    {"OrganizationalUnit", "2.5.4.11", "OU", "x"},
    {"OrganizationUnit", "2.5.4.11", "OU", "x"},
    {"OrgUnit", "2.5.4.11", "OU", "x"},
    {"T", "2.5.4.12", "T", "x"},
    {"Title", "2.5.4.12", "T", "x"},
    {"BUSINESSCATEGORY", "2.5.4.15", "BUSINESSCATEGORY", "x"},
    {"POSTALCODE", "2.5.4.17", "POSTALCODE", "x"},
    {"givenName", "2.5.4.42", "G", "x"},
    {"G", "2.5.4.42", "G", "x"},
    {"I", "2.5.4.43", "I", "x"},
    {"Initials", "2.5.4.43", "I", "x"},
    {"ORGANIZATIONIDENTIFIER", "2.5.4.97", "ORGANIZATIONIDENTIFIER", "x"},
    {"UID", "0.9.2342.19200300.100.1.1", "UID", "x"},
    {"DC", "0.9.2342.19200300.100.1.25", "DC", "x"},
    {"DomainComponent", "0.9.2342.19200300.100.1.25", "DC", "x"},
    {"Email", "1.2.840.113549.1.9.1", "E", "a@b.example"},
    {"E", "1.2.840.113549.1.9.1", "E", "a@b.example"},
    {"unstructuredName", "1.2.840.113549.1.9.2", "unstructuredName", "x"},
    {"unstructuredAddress", "1.2.840.113549.1.9.8", "unstructuredAddress", "x"},
    {"JurisdictionOfIncorporationLocalityName", "1.3.6.1.4.1.311.60.2.1.1",
     "JurisdictionOfIncorporationLocalityName", "x"},
    {"JurisdictionOfIncorporationStateOrProvinceName", "1.3.6.1.4.1.311.60.2.1.2",
     "JurisdictionOfIncorporationStateOrProvinceName", "x"},
    {"JurisdictionOfIncorporationCountryName", "1.3.6.1.4.1.311.60.2.1.3",
     "JurisdictionOfIncorporationCountryName", "US"},
    {"TrademarkOfficeName", "1.3.6.1.4.1.53087.1.2", "TrademarkOfficeName", "x"},
    {"TrademarkCountryOrRegionName", "1.3.6.1.4.1.53087.1.3", "TrademarkCountryOrRegionName", "US"},
    {"TrademarkRegistration", "1.3.6.1.4.1.53087.1.4", "TrademarkRegistration", "x"},
    {"LegalEntityIdentifier", "1.3.6.1.4.1.53087.1.5", "LegalEntityIdentifier", "x"},
    {"WordMark", "1.3.6.1.4.1.53087.1.6", "WordMark", "x"},
    {"MarkType", "1.3.6.1.4.1.53087.1.13", "MarkType", "x"},
    {"StatuteCountryName", "1.3.6.1.4.1.53087.3.2", "StatuteCountryName", "US"},
    {"StatuteStateOrProvinceName", "1.3.6.1.4.1.53087.3.3", "StatuteStateOrProvinceName", "x"},
    {"StatuteLocalityName", "1.3.6.1.4.1.53087.3.4", "StatuteLocalityName", "x"},
    {"StatuteCitation", "1.3.6.1.4.1.53087.3.5", "StatuteCitation", "x"},
    {"StatuteURL", "1.3.6.1.4.1.53087.3.6", "StatuteURL", "x"},
};

static void test_every_alias(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(alias_cases) / sizeof(alias_cases[0]); i++) {
        const struct alias_case *c = &alias_cases[i];
        char in[256], want[256], oid[128];
        X509_NAME *n;
        snprintf(in, sizeof(in), "%s=%s", c->alias, c->value);
        snprintf(want, sizeof(want), "%s=%s", c->canonical, c->value);
        n = parse_ok(in);
        assert_int_equal(X509_NAME_entry_count(n), 1);
        entry_oid(n, 0, oid, sizeof(oid));
        if (strcmp(oid, c->oid) != 0)
            fail_msg("%s -> %s, want %s", c->alias, oid, c->oid);
        assert_entry_value(n, 0, c->value);
        X509_NAME_free(n);
        check_roundtrip(in, want);

        /* the dotted and OID.-prefixed forms are the same attribute */
        snprintf(in, sizeof(in), "OID.%s=%s", c->oid, c->value);
        check_roundtrip(in, want);
        snprintf(in, sizeof(in), "%s=%s", c->oid, c->value);
        check_roundtrip(in, want);
    }
}

static void test_case_insensitive(void **state)
{
    static const struct {
        const char *in;
        const char *oid;
    } cases[] = {
        {"cn=x", "2.5.4.3"},
        {"COMMONNAME=x", "2.5.4.3"},
        {"commonname=x", "2.5.4.3"},
        {"oRg=x", "2.5.4.10"},
        {"ou=x", "2.5.4.11"},
        {"ORGUNIT=x", "2.5.4.11"},
        {"c=US", "2.5.4.6"},
        {"EMAIL=a@b", "1.2.840.113549.1.9.1"},
        {"e=a@b", "1.2.840.113549.1.9.1"},
        {"GIVENNAME=x", "2.5.4.42"},
        {"serialNumber=1", "2.5.4.5"},
        {"dc=example", "0.9.2342.19200300.100.1.25"},
        {"uid=x", "0.9.2342.19200300.100.1.1"},
        {"statuteurl=x", "1.3.6.1.4.1.53087.3.6"},
        {"oid.2.5.4.3=x", "2.5.4.3"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char oid[128];
        X509_NAME *n = parse_ok(cases[i].in);
        entry_oid(n, 0, oid, sizeof(oid));
        assert_string_equal(oid, cases[i].oid);
        X509_NAME_free(n);
    }
}

/* ---- ordering --------------------------------------------------------- */

static void test_order(void **state)
{
    char oid[128];
    X509_NAME *n = parse_ok("CN=leaf, OU=unit, O=Org, C=US");
    char *p;
    (void)state;
    assert_int_equal(X509_NAME_entry_count(n), 4);
    entry_oid(n, 0, oid, sizeof(oid));
    assert_string_equal(oid, "2.5.4.6"); /* string's last RDN is encoded first */
    entry_oid(n, 1, oid, sizeof(oid));
    assert_string_equal(oid, "2.5.4.10");
    entry_oid(n, 2, oid, sizeof(oid));
    assert_string_equal(oid, "2.5.4.11");
    entry_oid(n, 3, oid, sizeof(oid));
    assert_string_equal(oid, "2.5.4.3");
    for (int i = 0; i < 4; i++)
        assert_int_equal(X509_NAME_ENTRY_set(X509_NAME_get_entry(n, i)), i);
    p = dn_print(n);
    assert_string_equal(p, "CN=leaf, OU=unit, O=Org, C=US");
    free(p);
    X509_NAME_free(n);

    /* ';' separates RDNs as well */
    check_roundtrip("CN=leaf;O=Org ; C=US", "CN=leaf, O=Org, C=US");
}

/* The DER Name equals what OpenSSL builds itself for the same RDN sequence. */
static void test_order_matches_openssl(void **state)
{
    X509_NAME *ours = parse_ok("CN=Web, O=Acme\\, Inc., C=US");
    X509_NAME *ref = X509_NAME_new();
    (void)state;
    assert_non_null(ref);
    assert_int_equal(X509_NAME_add_entry_by_txt(ref, "C", V_ASN1_PRINTABLESTRING,
                                                (const unsigned char *)"US", -1, -1, 0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_txt(ref, "O", V_ASN1_UTF8STRING,
                                                (const unsigned char *)"Acme, Inc.", -1, -1, 0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_txt(ref, "CN", V_ASN1_UTF8STRING,
                                                (const unsigned char *)"Web", -1, -1, 0),
                     1);
    assert_same_der(ours, ref);
    X509_NAME_free(ref);
    X509_NAME_free(ours);
}

/* ---- escaping --------------------------------------------------------- */

static void test_escaping_roundtrip(void **state)
{
    static const struct {
        const char *in;
        const char *printed;
        const char *value; /* decoded value of the single entry */
    } cases[] = {
        {"CN=a\\,b", "CN=a\\,b", "a,b"},
        {"CN=a\\+b", "CN=a\\+b", "a+b"},
        {"CN=a\\\"b", "CN=a\\\"b", "a\"b"},
        {"CN=back\\\\slash", "CN=back\\\\slash", "back\\slash"},
        {"CN=\\ lead", "CN=\\ lead", " lead"},
        {"CN=trail\\ ", "CN=trail\\ ", "trail "},
        {"CN=\\  both \\ ", "CN=\\  both \\ ", "  both  "},
        {"CN=a\\2Cb", "CN=a\\,b", "a,b"},
        {"CN=a\\2cb", "CN=a\\,b", "a,b"},
        {"CN=\\41\\42C", "CN=ABC", "ABC"},
        {"CN=Zo\xc3\xab", "CN=Zo\xc3\xab", "Zo\xc3\xab"},
        {"CN=Zo\\C3\\AB", "CN=Zo\xc3\xab", "Zo\xc3\xab"},
        {"CN=\xe6\x97\xa5\xe6\x9c\xac", "CN=\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac"},
        {"CN=\xf0\x9f\x94\x91", "CN=\xf0\x9f\x94\x91", "\xf0\x9f\x94\x91"},
        {"CN=\\#hash", "CN=\\#hash", "#hash"},
        {"CN=in#side", "CN=in#side", "in#side"},
        {"CN=x\\<y\\>z\\;", "CN=x\\<y\\>z\\;", "x<y>z;"},
        {"CN=a=b", "CN=a=b", "a=b"},
        {"CN=a\\=b", "CN=a=b", "a=b"},
        {"CN=\"quoted, value\"", "CN=quoted\\, value", "quoted, value"},
        {"CN=\" padded \"", "CN=\\ padded\\ ", " padded "},
        {"CN=\"a\\\"b\"", "CN=a\\\"b", "a\"b"},
        {"CN=\"a+b;c<d>\"", "CN=a\\+b\\;c\\<d\\>", "a+b;c<d>"},
        {"  CN  =  spaced out  ", "CN=spaced out", "spaced out"},
        {"CN=it's (ok)", "CN=it's (ok)", "it's (ok)"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        X509_NAME *n = parse_ok(cases[i].in);
        assert_int_equal(X509_NAME_entry_count(n), 1);
        assert_entry_value(n, 0, cases[i].value);
        X509_NAME_free(n);
        check_roundtrip(cases[i].in, cases[i].printed);
    }
    check_roundtrip("CN = a , O = b\\, c , C = US", "CN=a, O=b\\, c, C=US");
    check_roundtrip("CN=\"x\" , O=y", "CN=x, O=y");
}

/* Values that only come from foreign Names: control chars, leading '#', and
 * a string OpenSSL cannot convert to UTF-8 (a UTF8String holding invalid
 * UTF-8), which is printed as #hex of its DER encoding. */
static void test_print_foreign(void **state)
{
    X509_NAME *n = X509_NAME_new();
    char *p;
    (void)state;
    assert_non_null(n);
    assert_int_equal(X509_NAME_add_entry_by_NID(n, NID_commonName, V_ASN1_UTF8STRING,
                                                (const unsigned char *)"a\xff", 2, -1, 0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_NID(n, NID_organizationName, V_ASN1_UTF8STRING,
                                                (const unsigned char *)"#a\nb\0c ", 7, -1, 0),
                     1);
    p = dn_print(n);
    assert_non_null(p);
    assert_string_equal(p, "O=\\#a\\0Ab\\00c\\ , CN=#0C0261FF");
    free(p);
    X509_NAME_free(n);

    /* empty Name prints as empty string */
    n = X509_NAME_new();
    assert_non_null(n);
    p = dn_print(n);
    assert_non_null(p);
    assert_string_equal(p, "");
    free(p);
    X509_NAME_free(n);
    assert_null(dn_print(NULL));
}

/* ---- multi-valued RDNs ------------------------------------------------ */

static void test_multivalued(void **state)
{
    char oid[128];
    X509_NAME *n = parse_ok("CN=a+UID=b, O=Org");
    char *p;
    (void)state;
    assert_int_equal(X509_NAME_entry_count(n), 3);
    entry_oid(n, 0, oid, sizeof(oid));
    assert_string_equal(oid, "2.5.4.10");
    entry_oid(n, 1, oid, sizeof(oid));
    assert_string_equal(oid, "2.5.4.3");
    entry_oid(n, 2, oid, sizeof(oid));
    assert_string_equal(oid, "0.9.2342.19200300.100.1.1");
    assert_int_equal(X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 0)), 0);
    assert_int_equal(X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 1)), 1);
    assert_int_equal(X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 2)), 1);
    p = dn_print(n);
    assert_string_equal(p, "CN=a+UID=b, O=Org");
    free(p);
    X509_NAME_free(n);

    check_roundtrip("CN=a + UID=b + SN=c, O=x+OU=y, C=US", "CN=a+UID=b+SN=c, O=x+OU=y, C=US");
    check_roundtrip("OU=\"a+b\"+OU=c", "OU=a\\+b+OU=c");

    /* the RDN count in DER: 2 SETs for "CN=a+UID=b, O=Org" */
    n = parse_ok("CN=a+UID=b, O=Org");
    {
        unsigned char *der = NULL;
        const unsigned char *q;
        int len = i2d_X509_NAME(n, &der);
        X509_NAME *back;
        assert_true(len > 0);
        q = der;
        back = d2i_X509_NAME(NULL, &q, len);
        assert_non_null(back);
        assert_int_equal(X509_NAME_entry_count(back), 3);
        assert_int_equal(X509_NAME_ENTRY_set(X509_NAME_get_entry(back, 2)), 1);
        X509_NAME_free(back);
        OPENSSL_free(der);
    }
    X509_NAME_free(n);
}

/* ---- dotted OIDs ------------------------------------------------------ */

static void test_dotted_oid(void **state)
{
    char oid[128];
    X509_NAME *n;
    (void)state;
    check_roundtrip("2.5.4.3=foo", "CN=foo");
    check_roundtrip("OID.2.5.4.10=bar", "O=bar");
    check_roundtrip("1.2.3.4=baz, CN=x", "1.2.3.4=baz, CN=x");
    check_roundtrip("OID.1.3.6.1.4.1.99999.1=v", "1.3.6.1.4.1.99999.1=v");
    n = parse_ok("1.2.3.4=baz");
    entry_oid(n, 0, oid, sizeof(oid));
    assert_string_equal(oid, "1.2.3.4");
    assert_int_equal(entry_type(n, 0), V_ASN1_UTF8STRING);
    X509_NAME_free(n);
    /* known OIDs keep their attribute rules */
    n = parse_ok("2.5.4.6=US");
    assert_int_equal(entry_type(n, 0), V_ASN1_PRINTABLESTRING);
    X509_NAME_free(n);
    check_rejected("2.5.4.6=USA");
}

/* ---- string types ----------------------------------------------------- */

static void test_string_types(void **state)
{
    static const struct {
        const char *in;
        int type;
    } cases[] = {
        {"C=US", V_ASN1_PRINTABLESTRING},
        {"SERIALNUMBER=AB-12 3:4/5", V_ASN1_PRINTABLESTRING},
        {"JurisdictionOfIncorporationCountryName=DE", V_ASN1_PRINTABLESTRING},
        {"E=user@example.com", V_ASN1_IA5STRING},
        {"DC=example", V_ASN1_IA5STRING},
        {"CN=Web", V_ASN1_UTF8STRING},
        {"O=Acme", V_ASN1_UTF8STRING},
        {"OU=Unit", V_ASN1_UTF8STRING},
        {"L=Berlin", V_ASN1_UTF8STRING},
        {"UID=u1", V_ASN1_UTF8STRING},
        {"CN=Zo\xc3\xab", V_ASN1_UTF8STRING},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        X509_NAME *n = parse_ok(cases[i].in);
        if (entry_type(n, 0) != cases[i].type)
            fail_msg("%s: type %d, want %d", cases[i].in, entry_type(n, 0), cases[i].type);
        X509_NAME_free(n);
    }
}

/* ---- limits that must still be accepted ------------------------------- */

static void test_limits_accepted(void **state)
{
    char *s;
    X509_NAME *n;
    (void)state;

    s = repeat("CN=", 'a', 64, "");
    n = parse_ok(s);
    X509_NAME_free(n);
    free(s);

    /* 64 two-byte characters: bounds count characters, not bytes */
    s = malloc(3 + 128 + 1);
    assert_non_null(s);
    memcpy(s, "CN=", 3);
    for (int i = 0; i < 64; i++)
        memcpy(s + 3 + 2 * i, "\xc3\xa9", 2);
    s[3 + 128] = '\0';
    n = parse_ok(s);
    X509_NAME_free(n);
    free(s);

    s = repeat("L=", 'l', 128, "");
    n = parse_ok(s);
    X509_NAME_free(n);
    free(s);

    s = repeat("ST=", 's', 128, "");
    n = parse_ok(s);
    X509_NAME_free(n);
    free(s);

    s = repeat("E=", 'e', 255, "");
    n = parse_ok(s);
    X509_NAME_free(n);
    free(s);

    s = repeat("UID=", 'u', 256, "");
    n = parse_ok(s);
    X509_NAME_free(n);
    free(s);

    s = many_rdns(DN_MAX_RDNS);
    n = parse_ok(s);
    assert_int_equal(X509_NAME_entry_count(n), DN_MAX_RDNS);
    X509_NAME_free(n);
    free(s);

    /* exactly DN_MAX_STRING bytes */
    s = repeat("", ' ', DN_MAX_STRING - 4, "CN=a");
    assert_int_equal(strlen(s), DN_MAX_STRING);
    n = parse_ok(s);
    X509_NAME_free(n);
    free(s);
}

/* ---- malformed input -------------------------------------------------- */

static const char *const malformed[] = {
    "",
    "   ",
    "=foo",
    " = foo",
    "CN",
    "CN, O=x",
    "CN=",
    "CN=   ",
    "CN=\"\"",
    "CN=a,,O=b",
    "CN=a,",
    ",CN=a",
    "CN=a+",
    "+CN=a",
    "CN=a;;O=b",
    "CN=a\\",
    "CN=\\",
    "CN=\"abc",
    "CN=\"abc\\\"",
    "CN=\"abc\"x",
    "CN=\\G1",
    "CN=\\2",
    "CN=\\2G",
    "FOO=bar",
    "C N=x",
    "C\x01=x",
    "C=USA",
    "C=U",
    "C=U1",
    "C=\xc3\xbc\xc3\xbc",
    "Country=12",
    "JurisdictionOfIncorporationCountryName=USA",
    "TrademarkCountryOrRegionName=U5",
    "StatuteCountryName=U",
    "CN=\\00",
    "CN=a\\00b",
    "CN=a\\0Ab",
    "CN=a\\7Fb",
    "CN=a\001b",
    "CN=a\tb",
    "CN=\\C3\\28",
    "CN=\\ff",
    "CN=\xc3\x28",
    "CN=\xc0\xaf",
    "CN=\xed\xa0\x80",
    "CN=\xf4\x90\x80\x80",
    "CN=\xe6\x97",
    "CN=#0403616263",
    "CN= #0403616263",
    "CN=a<b",
    "CN=a>b",
    "CN=a\"b",
    "OID.=a",
    "OID.2.5..4=a",
    "OID.2.5.4.=a",
    "OID.CN=a",
    "2.5.4.03=a",
    "1=a",
    "9.1=a",
    "SERIALNUMBER=ab_c",
    "SERIALNUMBER=a@b",
    "SERIALNUMBER=Zo\xc3\xab",
    "E=zo\xc3\xab@example.com",
    "DC=ex\xc3\xa4mple",
};

static void test_malformed(void **state)
{
    size_t n = sizeof(malformed) / sizeof(malformed[0]);
    char *dyn[13];
    size_t nd = 0;
    (void)state;
    assert_true(n >= 30);
    for (size_t i = 0; i < n; i++)
        check_rejected(malformed[i]);

    dyn[nd++] = repeat("CN=", 'a', 10000 - 3, "");  /* 10,000-char DN */
    dyn[nd++] = repeat("", ' ', DN_MAX_STRING - 3, "CN=a"); /* 4097 bytes */
    dyn[nd++] = repeat("CN=", 'a', 65, "");          /* 65-char CN */
    dyn[nd++] = repeat("O=", 'o', 65, "");
    dyn[nd++] = repeat("OU=", 'u', 65, "");
    dyn[nd++] = repeat("T=", 't', 65, "");
    dyn[nd++] = repeat("L=", 'l', 129, "");
    dyn[nd++] = repeat("ST=", 's', 129, "");
    dyn[nd++] = repeat("SERIALNUMBER=", '1', 65, "");
    dyn[nd++] = repeat("E=", 'e', 256, "");
    dyn[nd++] = repeat("UID=", 'u', 257, "");
    dyn[nd++] = many_rdns(DN_MAX_RDNS + 1); /* 65 RDNs */
    /* 2,749 bytes as written, 6,249 once printed with the canonical alias
     * ORGANIZATIONIDENTIFIER: refused, or the stored form would not parse */
    dyn[nd] = malloc(250 * 11);
    assert_non_null(dyn[nd]);
    dyn[nd][0] = '\0';
    for (int i = 0; i < 250; i++)
        strcat(dyn[nd], i ? "+2.5.4.97=x" : "2.5.4.97=x");
    nd++;
    for (size_t i = 0; i < nd; i++) {
        check_rejected(dyn[i]);
        free(dyn[i]);
    }
    check_rejected(NULL);
}

static void test_error_messages(void **state)
{
    static const struct {
        const char *in;
        const char *needle;
    } cases[] = {
        {"FOO=bar", "unknown attribute type 'FOO'"},
        {"CN=a, Frobnicate=x", "'Frobnicate'"},
        {"CN=#0403616263", "not supported"},
        {"C=USA", "C"},
        {"Country=USA", "Country"},
        {"CN=", "CN"},
        {"CN", "'CN'"},
        {"CN=a,,O=b", "position"},
        {"=foo", "position"},
        {"CN=\\C3\\28", "UTF-8"},
    };
    X509_NAME *n = NULL;
    char err[256];
    char *s;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(dn_parse(cases[i].in, &n, err, sizeof(err)), -1);
        if (!strstr(err, cases[i].needle))
            fail_msg("error for \"%s\" is \"%s\", expected to contain \"%s\"", cases[i].in, err,
                     cases[i].needle);
    }

    /* an over-long CN names the attribute */
    s = repeat("CN=", 'a', 65, "");
    assert_int_equal(dn_parse(s, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "CN"));
    free(s);

    /* tiny and absent error buffers are handled */
    assert_int_equal(dn_parse("FOO=bar", &n, err, 4), -1);
    assert_int_equal(strlen(err), 3);
    assert_int_equal(dn_parse("FOO=bar", &n, NULL, 0), -1);
    assert_null(n);
    /* success clears the error buffer */
    strcpy(err, "stale");
    assert_int_equal(dn_parse("CN=x", &n, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    X509_NAME_free(n);
}

/* ---- dn_get_cn -------------------------------------------------------- */

static void test_get_cn(void **state)
{
    X509_NAME *n;
    char *cn;
    (void)state;

    n = parse_ok("CN=Zo\xc3\xab\\, Inc., O=Org, C=US");
    cn = dn_get_cn(n);
    assert_non_null(cn);
    assert_string_equal(cn, "Zo\xc3\xab, Inc.");
    free(cn);
    X509_NAME_free(n);

    /* first CN in the encoded Name, i.e. the string's last */
    n = parse_ok("CN=leaf, CN=root");
    cn = dn_get_cn(n);
    assert_string_equal(cn, "root");
    free(cn);
    X509_NAME_free(n);

    n = parse_ok("O=Org, C=US");
    assert_null(dn_get_cn(n));
    X509_NAME_free(n);

    assert_null(dn_get_cn(NULL));

    /* a foreign PrintableString / BMPString CN is converted to UTF-8 */
    n = X509_NAME_new();
    assert_non_null(n);
    assert_int_equal(X509_NAME_add_entry_by_NID(n, NID_commonName, V_ASN1_BMPSTRING,
                                                (const unsigned char *)"\x00h\x00i", 4, -1, 0),
                     1);
    cn = dn_get_cn(n);
    assert_string_equal(cn, "hi");
    free(cn);
    X509_NAME_free(n);

    /* an embedded NUL is refused rather than truncated */
    n = X509_NAME_new();
    assert_non_null(n);
    assert_int_equal(X509_NAME_add_entry_by_NID(n, NID_commonName, V_ASN1_UTF8STRING,
                                                (const unsigned char *)"evil\0.example", 13, -1, 0),
                     1);
    assert_null(dn_get_cn(n));
    X509_NAME_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_alias),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_order_matches_openssl),
        cmocka_unit_test(test_escaping_roundtrip),
        cmocka_unit_test(test_print_foreign),
        cmocka_unit_test(test_multivalued),
        cmocka_unit_test(test_dotted_oid),
        cmocka_unit_test(test_string_types),
        cmocka_unit_test(test_limits_accepted),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_get_cn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
