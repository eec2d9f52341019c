/* x509/san: DNS name rules (LDH, IDNA A-labels, wildcards), per-type
 * validation in san_add, the SAN_MAX limit, text/JSON rendering and the
 * checked merge of CSR names; directoryName and registeredID. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "x509/dn.h"
#include "x509/san.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_dns_valid(void **state)
{
    (void)state;
    static const char *good[] = {
        "example.com", "a-b.example", "xn--bcher-kva.example", "localhost", "EXAMPLE.com", "a.b.c.d.e",
        "0.example", "x1-2-3.example", "XN--BCHER-KVA.example", "xn--nxasmq6b.example", "xn--55qx5d.cn",
        "123.example",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!san_dns_valid(good[i], false))
            fail_msg("'%s' refused", good[i]);
        assert_true(san_dns_valid(good[i], true));
    }

    /* wildcards: only the whole leftmost label, only when allowed */
    assert_false(san_dns_valid("*.example.com", false));
    assert_true(san_dns_valid("*.example.com", true));
    static const char *bad_wild[] = {"*.", "*", "*.com.", "a.*.example", "*a.example", "a*.example",
                                     "**.example", "*.*.example"};
    for (size_t i = 0; i < sizeof bad_wild / sizeof bad_wild[0]; i++)
        if (san_dns_valid(bad_wild[i], true))
            fail_msg("'%s' accepted as a wildcard", bad_wild[i]);

    static const char *bad[] = {
        "", "-a.example", "a-.example", "a..b", "example.com.", ".example.com", ".", "ex ample.com",
        "_srv.example", "ab--cd.example", "bücher.example", "a_b.example", "a/b.example", "a@b.example",
        /* "xn--" labels that are no A-label: U+0080, undecodable Punycode,
         * a trailing hyphen, an IDNA2008-disallowed code point (U+1F4A9) */
        "xn--a.example.com", "xn--zzzzzzzz.example.com", "xn--abc-.example", "xn--ls8h.example",
        /* an all-numeric last label: an IPv4 address is an iPAddress entry */
        "1.2.3.4", "host.123",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (san_dns_valid(bad[i], false) || san_dns_valid(bad[i], true))
            fail_msg("'%s' accepted", bad[i]);
    }

    /* label length: 63 ok, 64 not */
    char name[300];
    memset(name, 'a', 63);
    strcpy(name + 63, ".example");
    assert_true(san_dns_valid(name, false));
    memset(name, 'a', 64);
    strcpy(name + 64, ".example");
    assert_false(san_dns_valid(name, false));

    /* total length: 253 ok, 254 not (labels of 49 + dot = 50 each) */
    size_t n = 0;
    for (int i = 0; i < 5; i++) {
        memset(name + n, 'a' + i, 49);
        n += 49;
        name[n++] = '.';
    }
    /* 250 so far; 3 more characters makes 253 */
    memcpy(name + n, "abc", 4);
    assert_int_equal(strlen(name), 253);
    assert_true(san_dns_valid(name, false));
    memcpy(name + n, "abcd", 5);
    assert_int_equal(strlen(name), 254);
    assert_false(san_dns_valid(name, false));
}

struct case_ {
    const char *type, *value;
    bool ok;
};

static void test_add_types(void **state)
{
    (void)state;
    static const struct case_ cases[] = {
        {"dNSName", "www.example.com", true},
        {"dNSName", "*.example.com", false}, /* wildcards not allowed in this call */
        {"dNSName", "a..b", false},
        {"iPAddress", "192.0.2.1", true},
        {"iPAddress", "2001:db8::1", true},
        {"iPAddress", "999.1.1.1", false},
        {"iPAddress", "192.0.2", false},
        {"iPAddress", "example.com", false},
        {"rfc822Name", "a@example.com", true},
        {"rfc822Name", "a@", false},
        {"rfc822Name", "@example.com", false},
        {"rfc822Name", "a b@example.com", false},
        {"rfc822Name", "a@-bad.example", false},
        {"uniformResourceIdentifier", "https://x.example/p", true},
        {"uniformResourceIdentifier", "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", true},
        {"uniformResourceIdentifier", "noscheme", false},
        {"uniformResourceIdentifier", "http://a b", false},
        {"uniformResourceIdentifier", "1http://x.example", false},
        {"uniformResourceIdentifier", "http:", false},
        /* with an authority: a fully qualified host name or an IP address (RFC 5280 4.2.1.6) */
        {"uniformResourceIdentifier", "https://*.example.com/", false},
        {"uniformResourceIdentifier", "https://user@x.example/", false},
        {"uniformResourceIdentifier", "https:///path", false},
        {"uniformResourceIdentifier", "https://x.example:8443/p?q#f", true},
        {"uniformResourceIdentifier", "https://x.example:/p", false},
        {"uniformResourceIdentifier", "https://x.example:84a3/p", false},
        {"uniformResourceIdentifier", "https://192.0.2.1/p", true},
        {"uniformResourceIdentifier", "https://[2001:db8::1]:443/p", true},
        {"uniformResourceIdentifier", "https://[2001:db8::zz]/p", false},
        {"uniformResourceIdentifier", "spiffe://trust.example/ns/prod/sa/web", true},
        {"uniformResourceIdentifier", "mailto:a@example.com", true},
        {"userPrincipalName", "u@corp.example", true},
        {"userPrincipalName", "jürgen@corp.example", true}, /* UTF-8 allowed in a UPN */
        {"userPrincipalName", "u", false},
        {"userPrincipalName", "u\xff@corp.example", false}, /* not UTF-8 */
        /* short aliases */
        {"dns", "alias.example", true},
        {"ip", "198.51.100.7", true},
        {"email", "b@example.org", true},
        {"uri", "ldap://x.example", true},
        {"upn", "v@corp.example", true},
        {"directoryName", "CN=Dir, O=Acme\\, Inc., C=US", true},
        {"directoryName", "", false},
        {"directoryName", "   ", false},
        {"directoryName", "CN", false},
        {"directoryName", "NOPE=x", false},
        {"directoryName", "C=USA", false},
        {"directoryName", "CN=a,", false},
        {"registeredID", "1.2.3.4", true},
        {"registeredID", "2.999.1", true},
        {"registeredID", "1.3.6.1.4.1.311.20.2.3", true},
        {"registeredID", "", false},
        {"registeredID", "1", false},
        {"registeredID", "1.", false},
        {"registeredID", ".1.2", false},
        {"registeredID", "1..2", false},
        {"registeredID", "1.02", false},
        {"registeredID", "3.1", false},
        {"registeredID", "1.40", false},
        {"registeredID", "1.2.a", false},
        {"registeredID", " 1.2.3", false},
        {"registeredID", "commonName", false},
        {"registeredID", "CN", false},
        {"registeredID", "sha256", false},
        {"registeredID", "OID.1.2.3", false},
        {"registeredID", "-1.2", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        GENERAL_NAMES *gns = GENERAL_NAMES_new();
        struct err e;
        memset(&e, 0, sizeof e);
        int rc = san_add(gns, cases[i].type, cases[i].value, false, "subjectAltNames[0]", &e);
        if (cases[i].ok) {
            if (rc != 0)
                fail_msg("%s '%s' refused: %s", cases[i].type, cases[i].value, e.msg);
            assert_int_equal(sk_GENERAL_NAME_num(gns), 1);
        } else {
            if (rc == 0)
                fail_msg("%s '%s' accepted", cases[i].type, cases[i].value);
            assert_int_equal(sk_GENERAL_NAME_num(gns), 0);
            assert_int_equal(e.status, 400);
            assert_string_equal(e.code, "invalid_field");
            assert_string_equal(e.field, "subjectAltNames[0]");
            assert_non_null(strstr(e.msg, "subjectAltNames[0]"));
        }
        GENERAL_NAMES_free(gns);
    }

    /* the encodings: IPs as 4/16 octets, UPN as otherName UTF8String */
    GENERAL_NAMES *gns = GENERAL_NAMES_new();
    struct err e;
    assert_int_equal(san_add(gns, "iPAddress", "192.0.2.1", false, "f", &e), 0);
    assert_int_equal(san_add(gns, "iPAddress", "2001:db8::1", false, "f", &e), 0);
    assert_int_equal(san_add(gns, "userPrincipalName", "u@corp.example", false, "f", &e), 0);
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gns, 0);
    assert_int_equal(g->type, GEN_IPADD);
    assert_int_equal(ASN1_STRING_length(g->d.iPAddress), 4);
    assert_memory_equal(ASN1_STRING_get0_data(g->d.iPAddress), "\xc0\x00\x02\x01", 4);
    g = sk_GENERAL_NAME_value(gns, 1);
    assert_int_equal(ASN1_STRING_length(g->d.iPAddress), 16);
    assert_memory_equal(ASN1_STRING_get0_data(g->d.iPAddress),
                        "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01", 16);
    g = sk_GENERAL_NAME_value(gns, 2);
    assert_int_equal(g->type, GEN_OTHERNAME);
    char oid[64];
    OBJ_obj2txt(oid, sizeof oid, g->d.otherName->type_id, 1);
    assert_string_equal(oid, "1.3.6.1.4.1.311.20.2.3");
    assert_int_equal(g->d.otherName->value->type, V_ASN1_UTF8STRING);
    GENERAL_NAMES_free(gns);
}

static void test_add_wildcard_and_unknown(void **state)
{
    (void)state;
    GENERAL_NAMES *gns = GENERAL_NAMES_new();
    struct err e;
    memset(&e, 0, sizeof e);
    assert_int_equal(san_add(gns, "dNSName", "*.example.com", true, "f", &e), 0);
    assert_int_equal(san_add(gns, "dNSName", "*.example.com", false, "f", &e), -1);
    assert_non_null(strstr(e.msg, "no wildcards"));

    memset(&e, 0, sizeof e);
    assert_int_equal(san_add(gns, "dns2", "a.example", false, "subjectAltNames[3]", &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.msg, "dns2"));
    assert_string_equal(e.field, "subjectAltNames[3]");

    memset(&e, 0, sizeof e);
    assert_int_equal(san_add(gns, NULL, "a.example", false, "f", &e), -1);
    assert_int_equal(san_add(gns, "dNSName", NULL, false, "f", &e), -1);
    assert_int_equal(sk_GENERAL_NAME_num(gns), 1);
    GENERAL_NAMES_free(gns);
}

static void test_dirname_rid(void **state)
{
    (void)state;
    GENERAL_NAMES *gns = GENERAL_NAMES_new();
    struct err e;
    memset(&e, 0, sizeof e);
    assert_int_equal(san_add(gns, "directoryName", "CN=Dir, OU=Ops+L=Here, O=Acme\\, Inc., C=US", false, "f", &e),
                     0);
    assert_int_equal(san_add(gns, "registeredID", "1.2.3.4", false, "f", &e), 0);

    /* the encodings: GEN_DIRNAME holding the same Name dn_parse builds
     * (last RDN of the string first), GEN_RID the OID */
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gns, 0);
    assert_int_equal(g->type, GEN_DIRNAME);
    X509_NAME *want = NULL;
    char why[128];
    assert_int_equal(dn_parse("CN=Dir, OU=Ops+L=Here, O=Acme\\, Inc., C=US", &want, why, sizeof why), 0);
    assert_int_equal(X509_NAME_cmp(g->d.directoryName, want), 0);
    assert_int_equal(X509_NAME_entry_count(g->d.directoryName), 5);
    assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(g->d.directoryName, 0))),
                     NID_countryName);
    X509_NAME_free(want);
    g = sk_GENERAL_NAME_value(gns, 1);
    assert_int_equal(g->type, GEN_RID);
    char oid[64];
    OBJ_obj2txt(oid, sizeof oid, g->d.registeredID, 1);
    assert_string_equal(oid, "1.2.3.4");

    /* round trip through text and JSON, and back through san_from_json */
    char *t = san_to_text(gns);
    assert_string_equal(t, "directoryName:CN=Dir, OU=Ops+L=Here, O=Acme\\, Inc., C=US,registeredID:1.2.3.4");
    free(t);
    json_t *j = san_to_json(gns);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "[{\"type\":\"directoryName\",\"value\":\"CN=Dir, OU=Ops+L=Here, O=Acme\\\\, Inc., "
                           "C=US\"},{\"type\":\"registeredID\",\"value\":\"1.2.3.4\"}]");
    free(s);
    GENERAL_NAMES *again = GENERAL_NAMES_new();
    assert_int_equal(san_from_json(j, again, false, &e), 0);
    assert_int_equal(sk_GENERAL_NAME_num(again), 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(GENERAL_NAME_cmp(sk_GENERAL_NAME_value(again, i), sk_GENERAL_NAME_value(gns, i)), 0);
    GENERAL_NAMES_free(again);
    json_decref(j);

    /* a big arc survives unchanged */
    assert_int_equal(san_add(gns, "registeredID", "2.25.329800735698586629295641978511506172918", false, "f", &e),
                     0);
    j = san_to_json(gns);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 2), "value")),
                        "2.25.329800735698586629295641978511506172918");
    json_decref(j);

    /* bounded input: 128 bytes ok, 129 refused; a long DN refused */
    char big[8192];
    strcpy(big, "1.2");
    while (strlen(big) < 126)
        strcat(big, ".1");
    assert_int_equal(strlen(big), 127);
    strcat(big, "9");
    assert_int_equal(strlen(big), 128);
    assert_int_equal(san_add(gns, "registeredID", big, false, "f", &e), 0);
    strcat(big, "9");
    memset(&e, 0, sizeof e);
    assert_int_equal(san_add(gns, "registeredID", big, false, "subjectAltNames[7]", &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.field, "subjectAltNames[7]");
    assert_non_null(strstr(e.msg, "subjectAltNames[7]"));
    assert_non_null(strstr(e.msg, "OID"));
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big, "CN=", 3);
    memset(&e, 0, sizeof e);
    assert_int_equal(san_add(gns, "directoryName", big, false, "subjectAltNames[8]", &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "invalid_field");
    assert_string_equal(e.field, "subjectAltNames[8]");
    assert_non_null(strstr(e.msg, "directory name"));

    /* the DN parser's reason is passed on */
    memset(&e, 0, sizeof e);
    assert_int_equal(san_add(gns, "directoryName", "", false, "subjectAltNames[9]", &e), -1);
    assert_non_null(strstr(e.msg, "empty DN"));
    memset(&e, 0, sizeof e);
    assert_int_equal(san_add(gns, "directoryName", "XX=1", false, "subjectAltNames[9]", &e), -1);
    assert_non_null(strstr(e.msg, "unknown attribute type"));
    assert_int_equal(sk_GENERAL_NAME_num(gns), 4);
    GENERAL_NAMES_free(gns);
}

static void test_max(void **state)
{
    (void)state;
    GENERAL_NAMES *gns = GENERAL_NAMES_new();
    struct err e;
    char name[32];
    for (int i = 0; i < SAN_MAX; i++) {
        snprintf(name, sizeof name, "h%d.example", i);
        assert_int_equal(san_add(gns, "dNSName", name, false, "f", &e), 0);
    }
    assert_int_equal(sk_GENERAL_NAME_num(gns), SAN_MAX);
    memset(&e, 0, sizeof e);
    assert_int_equal(san_add(gns, "dNSName", "one-more.example", false, "f", &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.msg, "256"));
    assert_int_equal(sk_GENERAL_NAME_num(gns), SAN_MAX);
    GENERAL_NAMES_free(gns);
}

static GENERAL_NAMES *mix(void)
{
    GENERAL_NAMES *gns = GENERAL_NAMES_new();
    struct err e;
    assert_int_equal(san_add(gns, "dNSName", "a.example", false, "f", &e), 0);
    assert_int_equal(san_add(gns, "iPAddress", "192.0.2.1", false, "f", &e), 0);
    assert_int_equal(san_add(gns, "iPAddress", "2001:db8::1", false, "f", &e), 0);
    assert_int_equal(san_add(gns, "rfc822Name", "a@example.com", false, "f", &e), 0);
    assert_int_equal(san_add(gns, "uniformResourceIdentifier", "https://x.example/p", false, "f", &e), 0);
    assert_int_equal(san_add(gns, "userPrincipalName", "u@corp.example", false, "f", &e), 0);
    return gns;
}

static void test_text_json(void **state)
{
    (void)state;
    GENERAL_NAMES *gns = mix();
    char *t = san_to_text(gns);
    assert_non_null(t);
    assert_string_equal(t, "dNSName:a.example,iPAddress:192.0.2.1,iPAddress:2001:db8::1,"
                           "rfc822Name:a@example.com,uniformResourceIdentifier:https://x.example/p,"
                           "userPrincipalName:u@corp.example");
    free(t);

    json_t *j = san_to_json(gns);
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "[{\"type\":\"dNSName\",\"value\":\"a.example\"},"
                           "{\"type\":\"iPAddress\",\"value\":\"192.0.2.1\"},"
                           "{\"type\":\"iPAddress\",\"value\":\"2001:db8::1\"},"
                           "{\"type\":\"rfc822Name\",\"value\":\"a@example.com\"},"
                           "{\"type\":\"uniformResourceIdentifier\",\"value\":\"https://x.example/p\"},"
                           "{\"type\":\"userPrincipalName\",\"value\":\"u@corp.example\"}]");
    free(s);
    json_decref(j);

    assert_true(san_contains_dns(gns, "a.example"));
    assert_true(san_contains_dns(gns, "A.EXAMPLE"));
    assert_false(san_contains_dns(gns, "a.example.com"));
    assert_false(san_contains_dns(gns, "192.0.2.1"));
    GENERAL_NAMES_free(gns);

    /* empty: "" and [] */
    gns = GENERAL_NAMES_new();
    t = san_to_text(gns);
    assert_non_null(t);
    assert_string_equal(t, "");
    free(t);
    j = san_to_json(gns);
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
    GENERAL_NAMES_free(gns);
}

static void test_json_input(void **state)
{
    (void)state;
    GENERAL_NAMES *gns = GENERAL_NAMES_new();
    struct err e;
    json_t *a = json_loads("[{\"type\":\"dNSName\",\"value\":\"a.example\"},"
                           "{\"type\":\"iPAddress\",\"value\":\"192.0.2.1\"}]",
                           0, NULL);
    assert_int_equal(san_from_json(a, gns, false, &e), 0);
    assert_int_equal(sk_GENERAL_NAME_num(gns), 2);
    json_decref(a);

    memset(&e, 0, sizeof e);
    a = json_loads("[{\"type\":\"dNSName\",\"value\":\"ok.example\"},{\"type\":\"ip\",\"value\":\"x\"}]", 0, NULL);
    assert_int_equal(san_from_json(a, gns, false, &e), -1);
    assert_string_equal(e.field, "subjectAltNames[1]");
    json_decref(a);

    /* embedded NUL */
    a = json_loads("[{\"type\":\"dNSName\",\"value\":\"a\\u0000.example\"}]", JSON_ALLOW_NUL, NULL);
    assert_non_null(a);
    assert_int_equal(san_from_json(a, gns, false, &e), -1);
    json_decref(a);

    a = json_loads("{\"type\":\"dNSName\"}", 0, NULL);
    assert_int_equal(san_from_json(a, gns, false, &e), -1);
    json_decref(a);
    assert_int_equal(san_from_json(NULL, gns, false, &e), 0);
    GENERAL_NAMES_free(gns);
}

static void test_merge(void **state)
{
    (void)state;
    GENERAL_NAMES *dst = GENERAL_NAMES_new();
    struct err e;
    assert_int_equal(san_add(dst, "dNSName", "a.example", false, "f", &e), 0);
    assert_int_equal(san_add(dst, "iPAddress", "192.0.2.1", false, "f", &e), 0);

    /* src repeats both names, repeats one of its own and adds two new ones */
    GENERAL_NAMES *src = mix();
    assert_int_equal(san_add(src, "dNSName", "b.example", false, "f", &e), 0);
    assert_int_equal(san_add(src, "dNSName", "b.example", false, "f", &e), 0);
    assert_int_equal(san_merge_checked(dst, src, false, &e), 0);
    char *t = san_to_text(dst);
    assert_string_equal(t, "dNSName:a.example,iPAddress:192.0.2.1,iPAddress:2001:db8::1,"
                           "rfc822Name:a@example.com,uniformResourceIdentifier:https://x.example/p,"
                           "userPrincipalName:u@corp.example,dNSName:b.example");
    free(t);
    /* merging again changes nothing */
    assert_int_equal(san_merge_checked(dst, src, false, &e), 0);
    assert_int_equal(sk_GENERAL_NAME_num(dst), 7);
    GENERAL_NAMES_free(src);

    /* names from a CSR are re-validated: a wildcard needs allow_wildcard,
     * a malformed dNSName is refused */
    src = GENERAL_NAMES_new();
    assert_int_equal(san_add(src, "dNSName", "*.example.com", true, "f", &e), 0);
    memset(&e, 0, sizeof e);
    assert_int_equal(san_merge_checked(dst, src, false, &e), -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(san_merge_checked(dst, src, true, &e), 0);
    assert_true(san_contains_dns(dst, "*.example.com"));
    GENERAL_NAMES_free(src);

    src = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    assert_int_equal(ASN1_STRING_set(s, "bad..name", -1), 1);
    GENERAL_NAME_set0_value(gn, GEN_DNS, s);
    assert_true(sk_GENERAL_NAME_push(src, gn) > 0);
    assert_int_equal(san_merge_checked(dst, src, true, &e), -1);

    /* an unsupported form (an otherName other than a UPN) is refused */
    GENERAL_NAMES_free(src);
    src = GENERAL_NAMES_new();
    gn = GENERAL_NAME_new();
    ASN1_TYPE *ot = ASN1_TYPE_new();
    ASN1_UTF8STRING *u = ASN1_UTF8STRING_new();
    assert_int_equal(ASN1_STRING_set(u, "x", 1), 1);
    ASN1_TYPE_set(ot, V_ASN1_UTF8STRING, u);
    assert_int_equal(GENERAL_NAME_set0_othername(gn, OBJ_txt2obj("1.2.3.4", 1), ot), 1);
    assert_true(sk_GENERAL_NAME_push(src, gn) > 0);
    memset(&e, 0, sizeof e);
    assert_int_equal(san_merge_checked(dst, src, true, &e), -1);
    assert_string_equal(e.field, "csr");
    GENERAL_NAMES_free(src);
    assert_int_equal(san_merge_checked(dst, NULL, true, &e), 0);
    GENERAL_NAMES_free(dst);

    /* directoryName and registeredID from a CSR: re-validated, merged, and
     * names already present (or repeated) appear once */
    dst = GENERAL_NAMES_new();
    assert_int_equal(san_add(dst, "directoryName", "CN=Dir, O=Acme, C=US", false, "f", &e), 0);
    src = GENERAL_NAMES_new();
    X509_NAME *xn = X509_NAME_new();
    /* built directly, with PrintableString values, most general RDN first */
    assert_int_equal(X509_NAME_add_entry_by_txt(xn, "C", MBSTRING_ASC, (const unsigned char *)"US", -1, -1, 0), 1);
    assert_int_equal(X509_NAME_add_entry_by_txt(xn, "O", MBSTRING_ASC, (const unsigned char *)"Acme", -1, -1, 0), 1);
    assert_int_equal(X509_NAME_add_entry_by_txt(xn, "CN", MBSTRING_ASC, (const unsigned char *)"Dir", -1, -1, 0), 1);
    gn = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(gn, GEN_DIRNAME, xn);
    assert_true(sk_GENERAL_NAME_push(src, gn) > 0);
    for (int i = 0; i < 2; i++) {
        gn = GENERAL_NAME_new();
        GENERAL_NAME_set0_value(gn, GEN_RID, OBJ_txt2obj("1.2.3.4", 1));
        assert_true(sk_GENERAL_NAME_push(src, gn) > 0);
    }
    assert_int_equal(san_add(src, "directoryName", "CN=Other, C=DE", false, "f", &e), 0);
    assert_int_equal(san_merge_checked(dst, src, false, &e), 0);
    t = san_to_text(dst);
    assert_string_equal(t, "directoryName:CN=Dir, O=Acme, C=US,registeredID:1.2.3.4,directoryName:CN=Other, C=DE");
    free(t);
    assert_int_equal(san_merge_checked(dst, src, false, &e), 0);
    assert_int_equal(sk_GENERAL_NAME_num(dst), 3);
    GENERAL_NAMES_free(src);

    /* malformed ones from a CSR are refused: an empty Name, a DN the parser
     * cannot take back (#hex fallback), an over-long registeredID */
    src = GENERAL_NAMES_new();
    gn = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(gn, GEN_DIRNAME, X509_NAME_new());
    assert_true(sk_GENERAL_NAME_push(src, gn) > 0);
    memset(&e, 0, sizeof e);
    assert_int_equal(san_merge_checked(dst, src, true, &e), -1);
    assert_int_equal(e.status, 400);
    GENERAL_NAMES_free(src);
    src = GENERAL_NAMES_new();
    xn = X509_NAME_new();
    assert_int_equal(X509_NAME_add_entry_by_txt(xn, "CN", V_ASN1_BMPSTRING, (const unsigned char *)"\xd8\x00", 2, -1, 0),
                     1);
    gn = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(gn, GEN_DIRNAME, xn);
    assert_true(sk_GENERAL_NAME_push(src, gn) > 0);
    memset(&e, 0, sizeof e);
    assert_int_equal(san_merge_checked(dst, src, true, &e), -1);
    assert_int_equal(e.status, 400);
    GENERAL_NAMES_free(src);
    src = GENERAL_NAMES_new();
    char longoid[200] = "1.2";
    while (strlen(longoid) < 150)
        strcat(longoid, ".12345");
    gn = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(gn, GEN_RID, OBJ_txt2obj(longoid, 1));
    assert_non_null(gn->d.registeredID);
    assert_true(sk_GENERAL_NAME_push(src, gn) > 0);
    memset(&e, 0, sizeof e);
    assert_int_equal(san_merge_checked(dst, src, true, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.field, "csr.subjectAltName");
    GENERAL_NAMES_free(src);
    assert_int_equal(sk_GENERAL_NAME_num(dst), 3);
    GENERAL_NAMES_free(dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns_valid),
        cmocka_unit_test(test_add_types),
        cmocka_unit_test(test_add_wildcard_and_unknown),
        cmocka_unit_test(test_dirname_rid),
        cmocka_unit_test(test_max),
        cmocka_unit_test(test_text_json),
        cmocka_unit_test(test_json_input),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
