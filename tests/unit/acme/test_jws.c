/* acme/jws: flattened JWS parsing, JWK import/export, RFC 7638 thumbprints,
 * signature and MAC verification. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "acme/jws.h"
#include "util/codec.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 7638 section 3.1 example key. */
#define RFC7638_N                                                                                                  \
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3" \
    "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA" \
    "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-" \
    "kEgU8awapJzKnqDKgw"
#define RFC7638_TP "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

/* Keys are generated once for the whole suite (RSA generation is slow). */
static EVP_PKEY *K_RSA, *K_P256, *K_P384, *K_P521, *K_ED;

static int setup(void **state)
{
    (void)state;
    K_RSA = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    K_P256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    K_P384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    K_P521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    K_ED = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return K_RSA && K_P256 && K_P384 && K_P521 && K_ED ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(K_RSA);
    EVP_PKEY_free(K_P256);
    EVP_PKEY_free(K_P384);
    EVP_PKEY_free(K_P521);
    EVP_PKEY_free(K_ED);
    return 0;
}

static char *b64s(const char *s)
{
    char *r = b64url_encode((const unsigned char *)s, strlen(s));
    assert_non_null(r);
    return r;
}

/* A flattened JWS from a protected header text, a payload text and a raw
 * signature; the caller frees. */
static char *make_jws(const char *hdr, const char *payload, const unsigned char *sig, size_t siglen)
{
    char *h = b64s(hdr), *p = b64s(payload), *s = b64url_encode(sig, siglen);
    assert_non_null(s);
    json_t *o = json_pack("{s:s, s:s, s:s}", "protected", h, "payload", p, "signature", s);
    assert_non_null(o);
    char *t = json_dumps(o, JSON_COMPACT);
    assert_non_null(t);
    json_decref(o);
    free(h);
    free(p);
    free(s);
    return t;
}

/* Parses `text` expecting failure with `code`. */
static void parse_fails(const char *text, bool allow_mac, const char *code)
{
    struct jws j;
    struct err e = {0};
    assert_int_not_equal(jws_parse((const unsigned char *)text, strlen(text), allow_mac, &j, &e), 0);
    assert_string_equal(e.code, code);
    assert_int_equal(e.status, 400);
    assert_null(j.hdr);
    assert_null(j.payload);
    assert_null(j.sig);
    assert_null(j.signing_input);
    jws_free(&j); /* harmless after a failure */
}

/* A JWS signed by `key` with its JWK in the header. */
static char *sign_with_jwk(EVP_PKEY *key, const char *payload)
{
    json_t *hdr = json_pack("{s:o, s:s, s:s}", "jwk", jwk_from_pkey(key), "nonce", "n0nce",
                            "url", "https://ca.example/acme/new-account");
    assert_non_null(hdr);
    char *t = jws_sign(key, hdr, payload);
    assert_non_null(t);
    json_decref(hdr);
    return t;
}

static void roundtrip(EVP_PKEY *key, const char *alg)
{
    static const char *const payloads[] = {"{\"termsOfServiceAgreed\":true}", ""};
    for (size_t i = 0; i < 2; i++) {
        const char *payload = payloads[i];
        char *t = sign_with_jwk(key, payload);
        struct jws j;
        struct err e = {0};
        assert_int_equal(jws_parse((const unsigned char *)t, strlen(t), false, &j, &e), 0);
        assert_string_equal(j.alg, alg);
        assert_string_equal(j.nonce, "n0nce");
        assert_string_equal(j.url, "https://ca.example/acme/new-account");
        assert_null(j.kid);
        assert_non_null(j.jwk);
        assert_int_equal(j.payload_len, strlen(payload));
        assert_string_equal((const char *)j.payload, payload);
        assert_int_equal(j.signing_input_len, strlen(j.signing_input));

        EVP_PKEY *pub = jwk_to_pkey(j.jwk, &e);
        assert_non_null(pub);
        assert_int_equal(EVP_PKEY_eq(pub, key), 1);
        assert_int_equal(jws_verify(&j, pub, &e), 0);
        assert_int_equal(jws_verify(&j, key, &e), 0);

        /* the JWK round-trips to the same thumbprint */
        char tp1[44], tp2[44];
        json_t *jwk2 = jwk_from_pkey(pub);
        assert_non_null(jwk2);
        assert_int_equal(jwk_thumbprint(j.jwk, tp1), 0);
        assert_int_equal(jwk_thumbprint(jwk2, tp2), 0);
        assert_int_equal(strlen(tp1), 43);
        assert_string_equal(tp1, tp2);
        json_decref(jwk2);

        /* a MAC check of an asymmetric JWS is the wrong algorithm */
        assert_int_not_equal(jws_verify_hmac(&j, (const unsigned char *)"k", 1, &e), 0);
        assert_string_equal(e.code, "badSignatureAlgorithm");

        /* flipped signature bits never verify */
        for (size_t b = 0; b < j.sig_len; b += j.sig_len / 4 + 1) {
            j.sig[b] ^= 0x01;
            assert_int_not_equal(jws_verify(&j, pub, &e), 0);
            assert_string_equal(e.code, "malformed");
            assert_string_equal(e.msg, "JWS signature does not verify");
            j.sig[b] ^= 0x01;
        }
        /* truncated signature */
        j.sig_len--;
        assert_int_not_equal(jws_verify(&j, pub, &e), 0);
        assert_string_equal(e.code, "malformed");
        j.sig_len++;
        assert_int_equal(jws_verify(&j, pub, &e), 0);
        EVP_PKEY_free(pub);
        jws_free(&j);

        /* tampered payload: same protected header and signature */
        json_t *o = json_loads(t, 0, NULL);
        assert_non_null(o);
        char *evil = b64s("{\"termsOfServiceAgreed\":false}");
        assert_int_equal(json_object_set_new(o, "payload", json_string(evil)), 0);
        char *t2 = json_dumps(o, JSON_COMPACT);
        assert_non_null(t2);
        assert_int_equal(jws_parse((const unsigned char *)t2, strlen(t2), false, &j, &e), 0);
        assert_int_not_equal(jws_verify(&j, key, &e), 0);
        assert_string_equal(e.code, "malformed");
        assert_int_equal(e.status, 400);
        assert_string_equal(e.msg, "JWS signature does not verify");
        jws_free(&j);
        free(t2);
        free(evil);
        json_decref(o);
        free(t);
    }
}

static void test_roundtrip_rsa(void **state)
{
    (void)state;
    roundtrip(K_RSA, "RS256");
}

static void test_roundtrip_p256(void **state)
{
    (void)state;
    roundtrip(K_P256, "ES256");
}

static void test_roundtrip_p384(void **state)
{
    (void)state;
    roundtrip(K_P384, "ES384");
}

static void test_roundtrip_p521(void **state)
{
    (void)state;
    roundtrip(K_P521, "ES512");
}

static void test_roundtrip_ed25519(void **state)
{
    (void)state;
    roundtrip(K_ED, "EdDSA");
}

static void test_kid(void **state)
{
    (void)state;
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "kid", "https://ca.example/acme/acct/1", "nonce", "x", "url", "u");
    char *t = jws_sign(K_P256, hdr, "");
    assert_non_null(t);
    struct jws j;
    struct err e = {0};
    assert_int_equal(jws_parse((const unsigned char *)t, strlen(t), false, &j, &e), 0);
    assert_string_equal(j.kid, "https://ca.example/acme/acct/1");
    assert_null(j.jwk);
    assert_int_equal(j.payload_len, 0);
    assert_non_null(j.payload);
    assert_string_equal((const char *)j.payload, "");
    assert_int_equal(jws_verify(&j, K_P256, &e), 0);
    jws_free(&j);
    free(t);
    json_decref(hdr);
}

static void test_alg_mismatch(void **state)
{
    (void)state;
    struct jws j;
    struct err e = {0};
    /* ES256 header verified with an RSA key */
    char *t = sign_with_jwk(K_P256, "{}");
    assert_int_equal(jws_parse((const unsigned char *)t, strlen(t), false, &j, &e), 0);
    assert_string_equal(j.alg, "ES256");
    assert_int_not_equal(jws_verify(&j, K_RSA, &e), 0);
    assert_string_equal(e.code, "badSignatureAlgorithm");
    assert_int_equal(e.status, 400);
    /* and with a key of another curve */
    assert_int_not_equal(jws_verify(&j, K_P384, &e), 0);
    assert_string_equal(e.code, "badSignatureAlgorithm");
    assert_int_not_equal(jws_verify(&j, K_ED, &e), 0);
    assert_string_equal(e.code, "badSignatureAlgorithm");
    jws_free(&j);
    free(t);

    /* an algorithm we do not support, with a matching key type */
    unsigned char sig[256] = {1};
    t = make_jws("{\"alg\":\"PS256\",\"kid\":\"k\"}", "{}", sig, sizeof sig);
    assert_int_equal(jws_parse((const unsigned char *)t, strlen(t), false, &j, &e), 0);
    assert_int_not_equal(jws_verify(&j, K_RSA, &e), 0);
    assert_string_equal(e.code, "badSignatureAlgorithm");
    jws_free(&j);
    free(t);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    const unsigned char sig[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    char *t;

    /* alg none, with and without a signature */
    t = make_jws("{\"alg\":\"none\",\"kid\":\"k\"}", "{}", sig, sizeof sig);
    parse_fails(t, false, "badSignatureAlgorithm");
    parse_fails(t, true, "badSignatureAlgorithm");
    free(t);
    parse_fails("{\"protected\":\"eyJhbGciOiJub25lIiwia2lkIjoiayJ9\",\"payload\":\"\",\"signature\":\"\"}", false,
                "badSignatureAlgorithm");
    /* MAC algorithms only where allowed */
    t = make_jws("{\"alg\":\"HS256\",\"kid\":\"k\"}", "{}", sig, sizeof sig);
    parse_fails(t, false, "badSignatureAlgorithm");
    free(t);
    /* alg missing / not a string */
    t = make_jws("{\"kid\":\"k\"}", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    t = make_jws("{\"alg\":256,\"kid\":\"k\"}", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    /* both jwk and kid, neither */
    t = make_jws("{\"alg\":\"ES256\",\"kid\":\"k\",\"jwk\":{\"kty\":\"EC\"}}", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    t = make_jws("{\"alg\":\"ES256\",\"nonce\":\"n\"}", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    /* jwk not an object, kid / nonce / url not strings */
    t = make_jws("{\"alg\":\"ES256\",\"jwk\":\"key\"}", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    t = make_jws("{\"alg\":\"ES256\",\"kid\":1}", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    t = make_jws("{\"alg\":\"ES256\",\"kid\":\"k\",\"nonce\":1}", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    t = make_jws("{\"alg\":\"ES256\",\"kid\":\"k\",\"url\":null}", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    /* crit is not understood */
    t = make_jws("{\"alg\":\"ES256\",\"kid\":\"k\",\"crit\":[\"b64\"],\"b64\":false}", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    /* protected header not an object / not JSON */
    t = make_jws("[\"alg\",\"ES256\"]", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    t = make_jws("{\"alg\":\"ES256\",", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);
    /* duplicate keys in the protected header */
    t = make_jws("{\"alg\":\"ES256\",\"kid\":\"k\",\"alg\":\"none\"}", "{}", sig, sizeof sig);
    parse_fails(t, false, "malformed");
    free(t);

    /* outer object: duplicates, extra / missing members, wrong types */
    parse_fails("{\"protected\":\"eyJ9\",\"protected\":\"eyJ9\",\"payload\":\"\",\"signature\":\"AQID\"}", false,
                "malformed");
    parse_fails("{\"protected\":\"eyJ9\",\"header\":{},\"payload\":\"\",\"signature\":\"AQID\"}", false,
                "malformed");
    parse_fails("{\"protected\":\"eyJ9\",\"payload\":\"\",\"signature\":\"AQID\",\"x\":1}", false, "malformed");
    parse_fails("{\"protected\":\"eyJ9\",\"payload\":\"\"}", false, "malformed");
    parse_fails("{\"protected\":\"eyJ9\",\"payload\":{},\"signature\":\"AQID\"}", false, "malformed");
    parse_fails("{\"signatures\":[]}", false, "malformed");
    parse_fails("[]", false, "malformed");
    parse_fails("\"x\"", false, "malformed");
    parse_fails("", false, "malformed");
    parse_fails("{\"protected\":", false, "malformed");
    parse_fails("{} trailing", false, "malformed");
}

static void test_bad_base64url(void **state)
{
    (void)state;
    const unsigned char sig[8] = {0xfb, 0xff, 0xfe, 4, 5, 6, 7, 8};
    char *t = make_jws("{\"alg\":\"ES256\",\"kid\":\"k\"}", "{\"a\":\"?\?>>~~\"}", sig, sizeof sig);
    struct jws j;
    struct err e = {0};
    assert_int_equal(jws_parse((const unsigned char *)t, strlen(t), false, &j, &e), 0);
    jws_free(&j);
    json_t *o = json_loads(t, 0, NULL);
    assert_non_null(o);
    static const char *const members[] = {"protected", "payload", "signature"};
    for (size_t m = 0; m < 3; m++) {
        const char *good = json_string_value(json_object_get(o, members[m]));
        size_t gl = strlen(good);
        /* standard base64 characters, padding, whitespace, bad length */
        static const char *const mutations[] = {"+", "/", "=", " ", "\n", "!", "."};
        for (size_t k = 0; k < sizeof mutations / sizeof mutations[0]; k++) {
            char *bad = malloc(gl + 8);
            assert_non_null(bad);
            snprintf(bad, gl + 8, "%.*s%s%s", (int)(gl / 2), good, mutations[k], good + gl / 2);
            json_t *o2 = json_deep_copy(o);
            assert_non_null(o2);
            assert_int_equal(json_object_set_new(o2, members[m], json_string(bad)), 0);
            char *t2 = json_dumps(o2, JSON_COMPACT);
            assert_non_null(t2);
            parse_fails(t2, false, "malformed");
            free(t2);
            json_decref(o2);
            free(bad);
        }
        /* padding at the end */
        char *pad = malloc(gl + 3);
        assert_non_null(pad);
        snprintf(pad, gl + 3, "%s==", good);
        json_t *o3 = json_deep_copy(o);
        assert_int_equal(json_object_set_new(o3, members[m], json_string(pad)), 0);
        char *t3 = json_dumps(o3, JSON_COMPACT);
        parse_fails(t3, false, "malformed");
        free(t3);
        json_decref(o3);
        free(pad);
    }
    /* one character too many (length 4n+1 cannot be base64) */
    parse_fails("{\"protected\":\"eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQA\",\"payload\":\"\",\"signature\":\"AQID\"}",
                false, "malformed");
    parse_fails("{\"protected\":\"eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQ\",\"payload\":\"A\",\"signature\":\"AQID\"}",
                false, "malformed");
    /* non-canonical: unused low bits of the last character set ("AQ" is
     * 0x01; "AR" and "AB" decode to the same byte with bits left over,
     * as "AQE" / "AQF" for two bytes) */
    unsigned char *raw = NULL;
    size_t rl = 0;
    assert_int_equal(b64url_decode("AQ", 2, &raw, &rl), 0);
    assert_int_equal(rl, 1);
    free(raw);
    raw = NULL;
    assert_int_equal(b64url_decode("AR", 2, &raw, &rl), -1);
    assert_int_equal(b64url_decode("AB", 2, &raw, &rl), -1);
    assert_int_equal(b64url_decode("AQE", 3, &raw, &rl), 0);
    assert_int_equal(rl, 2);
    free(raw);
    raw = NULL;
    assert_int_equal(b64url_decode("AQF", 3, &raw, &rl), -1);
    parse_fails("{\"protected\":\"eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifR\",\"payload\":\"\",\"signature\":\"AQID\"}",
                false, "malformed");
    json_decref(o);
    free(t);
}

static void test_oversized(void **state)
{
    (void)state;
    /* a syntactically valid JWS padded with whitespace past the limit */
    char *t = sign_with_jwk(K_P256, "{}");
    size_t tl = strlen(t);
    struct jws j;
    struct err e = {0};
    unsigned char *big = malloc(JWS_MAX_BODY + 1);
    assert_non_null(big);
    memset(big, ' ', JWS_MAX_BODY + 1);
    memcpy(big, t, tl);
    assert_int_equal(jws_parse(big, JWS_MAX_BODY, false, &j, &e), 0); /* at the limit: fine */
    jws_free(&j);
    assert_int_not_equal(jws_parse(big, JWS_MAX_BODY + 1, false, &j, &e), 0);
    assert_string_equal(e.code, "malformed");
    assert_int_equal(e.status, 400);
    free(big);
    free(t);
}

static void test_hmac(void **state)
{
    (void)state;
    static const unsigned char key[] = "an EAB key of 32 bytes or so....";
    static const char *const algs[][2] = {{"HS256", "SHA256"}, {"HS384", "SHA384"}, {"HS512", "SHA512"}};
    json_t *jwk = jwk_from_pkey(K_P256);
    char *payload = json_dumps(jwk, JSON_COMPACT);
    assert_non_null(payload);
    for (size_t a = 0; a < 3; a++) {
        char hdr[160];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"eab-1\",\"url\":\"https://ca.example/acme/new-account\"}",
                 algs[a][0]);
        char *h = b64s(hdr), *p = b64s(payload);
        size_t inl = strlen(h) + 1 + strlen(p);
        char *input = malloc(inl + 1);
        assert_non_null(input);
        snprintf(input, inl + 1, "%s.%s", h, p);
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t macl = 0;
        assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, algs[a][1], NULL, key, sizeof key - 1,
                                  (const unsigned char *)input, inl, mac, sizeof mac, &macl));
        char *t = make_jws(hdr, payload, mac, macl);

        struct jws j;
        struct err e = {0};
        parse_fails(t, false, "badSignatureAlgorithm");
        assert_int_equal(jws_parse((const unsigned char *)t, strlen(t), true, &j, &e), 0);
        assert_string_equal(j.alg, algs[a][0]);
        assert_string_equal(j.kid, "eab-1");
        assert_int_equal(jws_verify_hmac(&j, key, sizeof key - 1, &e), 0);
        /* wrong key */
        assert_int_not_equal(jws_verify_hmac(&j, key, sizeof key - 2, &e), 0);
        assert_string_equal(e.code, "unauthorized");
        assert_int_equal(e.status, 401);
        assert_int_not_equal(jws_verify_hmac(&j, (const unsigned char *)"other", 5, &e), 0);
        assert_string_equal(e.code, "unauthorized");
        /* wrong MAC */
        j.sig[0] ^= 0x80;
        assert_int_not_equal(jws_verify_hmac(&j, key, sizeof key - 1, &e), 0);
        assert_string_equal(e.code, "unauthorized");
        assert_int_equal(e.status, 401);
        j.sig[0] ^= 0x80;
        j.sig_len--;
        assert_int_not_equal(jws_verify_hmac(&j, key, sizeof key - 1, &e), 0);
        assert_string_equal(e.code, "unauthorized");
        j.sig_len++;
        assert_int_equal(jws_verify_hmac(&j, key, sizeof key - 1, &e), 0);
        /* a MAC JWS is never an account-key signature */
        assert_int_not_equal(jws_verify(&j, K_P256, &e), 0);
        assert_string_equal(e.code, "badSignatureAlgorithm");
        jws_free(&j);
        free(t);
        free(input);
        free(h);
        free(p);
    }
    free(payload);
    json_decref(jwk);
}

static void test_thumbprint_rfc7638(void **state)
{
    (void)state;
    char tp[44];
    json_t *jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "n", RFC7638_N, "e", "AQAB", "alg", "RS256");
    assert_non_null(jwk);
    assert_int_equal(jwk_thumbprint(jwk, tp), 0);
    assert_string_equal(tp, RFC7638_TP);
    /* extra members and member order do not matter */
    assert_int_equal(json_object_set_new(jwk, "kid", json_string("2011-04-29")), 0);
    assert_int_equal(jwk_thumbprint(jwk, tp), 0);
    assert_string_equal(tp, RFC7638_TP);
    /* the key itself is acceptable, and exports to the same thumbprint */
    struct err e = {0};
    EVP_PKEY *pk = jwk_to_pkey(jwk, &e);
    assert_non_null(pk);
    assert_int_equal(EVP_PKEY_get_bits(pk), 2048);
    json_t *jwk2 = jwk_from_pkey(pk);
    assert_non_null(jwk2);
    assert_string_equal(json_string_value(json_object_get(jwk2, "n")), RFC7638_N);
    assert_string_equal(json_string_value(json_object_get(jwk2, "e")), "AQAB");
    assert_int_equal(jwk_thumbprint(jwk2, tp), 0);
    assert_string_equal(tp, RFC7638_TP);
    json_decref(jwk2);
    EVP_PKEY_free(pk);
    /* missing members / unknown types */
    json_object_del(jwk, "e");
    assert_int_not_equal(jwk_thumbprint(jwk, tp), 0);
    assert_int_equal(json_object_set_new(jwk, "e", json_integer(65537)), 0);
    assert_int_not_equal(jwk_thumbprint(jwk, tp), 0);
    json_decref(jwk);
    jwk = json_pack("{s:s, s:s}", "kty", "oct", "k", "AAAA");
    assert_int_not_equal(jwk_thumbprint(jwk, tp), 0);
    json_decref(jwk);
    assert_int_not_equal(jwk_thumbprint(NULL, tp), 0);

    /* EC and OKP: the exact canonical text, hashed here independently */
    jwk = json_pack("{s:s, s:s, s:s, s:s}", "y", "YY", "x", "XX", "kty", "EC", "crv", "P-256");
    assert_int_equal(jwk_thumbprint(jwk, tp), 0);
    const char canon_ec[] = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"XX\",\"y\":\"YY\"}";
    unsigned char md[32];
    unsigned int mdl = 0;
    assert_int_equal(EVP_Digest(canon_ec, strlen(canon_ec), md, &mdl, EVP_sha256(), NULL), 1);
    char *want = b64url_encode(md, sizeof md);
    assert_string_equal(tp, want);
    free(want);
    json_decref(jwk);
    jwk = json_pack("{s:s, s:s, s:s}", "x", "XX", "kty", "OKP", "crv", "Ed25519");
    assert_int_equal(jwk_thumbprint(jwk, tp), 0);
    const char canon_okp[] = "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"XX\"}";
    assert_int_equal(EVP_Digest(canon_okp, strlen(canon_okp), md, &mdl, EVP_sha256(), NULL), 1);
    want = b64url_encode(md, sizeof md);
    assert_string_equal(tp, want);
    free(want);
    json_decref(jwk);
}

static void jwk_fails(json_t *jwk, const char *code)
{
    struct err e = {0};
    EVP_PKEY *pk = jwk_to_pkey(jwk, &e);
    assert_null(pk);
    assert_string_equal(e.code, code);
    assert_int_equal(e.status, 400);
}

/* The JWK of `key` with member `name` replaced by `val` (NULL: removed). */
static json_t *jwk_with(EVP_PKEY *key, const char *name, json_t *val)
{
    json_t *jwk = jwk_from_pkey(key);
    assert_non_null(jwk);
    if (val)
        assert_int_equal(json_object_set_new(jwk, name, val), 0);
    else
        assert_int_equal(json_object_del(jwk, name), 0);
    return jwk;
}

static void test_jwk_ec_refusals(void **state)
{
    (void)state;
    json_t *jwk = jwk_from_pkey(K_P256);
    assert_non_null(jwk);
    const char *y = json_string_value(json_object_get(jwk, "y"));
    unsigned char *yb = NULL;
    size_t yl = 0;
    assert_int_equal(b64url_decode(y, strlen(y), &yb, &yl), 0);
    assert_int_equal(yl, 32);

    /* a point not on the curve: y changed */
    yb[31] ^= 0x01;
    char *bad = b64url_encode(yb, yl);
    json_t *j2 = jwk_with(K_P256, "y", json_string(bad));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    free(bad);
    yb[31] ^= 0x01;
    /* a coordinate of the wrong length (leading zero dropped / added) */
    bad = b64url_encode(yb + 1, yl - 1);
    j2 = jwk_with(K_P256, "y", json_string(bad));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    free(bad);
    /* y >= p */
    unsigned char ff[32];
    memset(ff, 0xff, sizeof ff);
    bad = b64url_encode(ff, sizeof ff);
    j2 = jwk_with(K_P256, "y", json_string(bad));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    /* the point at infinity cannot be written as x, y; all zeros is off the curve */
    memset(ff, 0, sizeof ff);
    free(bad);
    bad = b64url_encode(ff, sizeof ff);
    j2 = jwk_with(K_P256, "x", json_string(bad));
    assert_int_equal(json_object_set_new(j2, "y", json_string(bad)), 0);
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    free(bad);
    free(yb);

    /* a P-256 point claimed to be on P-384 */
    j2 = jwk_with(K_P256, "crv", json_string("P-384"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    j2 = jwk_with(K_P256, "crv", json_string("secp256k1"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    j2 = jwk_with(K_P256, "crv", NULL);
    jwk_fails(j2, "malformed");
    json_decref(j2);
    j2 = jwk_with(K_P256, "x", json_integer(1));
    jwk_fails(j2, "malformed");
    json_decref(j2);
    j2 = jwk_with(K_P256, "y", json_string("not base64!"));
    jwk_fails(j2, "malformed");
    json_decref(j2);
    j2 = jwk_with(K_P256, "y", NULL);
    jwk_fails(j2, "malformed");
    json_decref(j2);
    /* private key material */
    j2 = jwk_with(K_P256, "d", json_string("AAAA"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);

    /* the unmodified key is fine */
    struct err e = {0};
    EVP_PKEY *pk = jwk_to_pkey(jwk, &e);
    assert_non_null(pk);
    EVP_PKEY_free(pk);
    json_decref(jwk);
}

static void test_jwk_rsa_refusals(void **state)
{
    (void)state;
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(small);
    json_t *jwk = jwk_from_pkey(small);
    assert_non_null(jwk);
    jwk_fails(jwk, "badPublicKey");
    json_decref(jwk);
    EVP_PKEY_free(small);

    json_t *j2;
    /* exponent even, 1, with a leading zero */
    j2 = jwk_with(K_RSA, "e", json_string("AQAA"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    j2 = jwk_with(K_RSA, "e", json_string("AQ"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    j2 = jwk_with(K_RSA, "e", json_string("AAEAAQ"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    /* modulus with a leading zero octet */
    unsigned char *nb = NULL;
    size_t nl = 0;
    assert_int_equal(b64url_decode(RFC7638_N, strlen(RFC7638_N), &nb, &nl), 0);
    unsigned char *nz = malloc(nl + 1);
    assert_non_null(nz);
    nz[0] = 0;
    memcpy(nz + 1, nb, nl);
    char *nzs = b64url_encode(nz, nl + 1);
    jwk = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", nzs, "e", "AQAB");
    jwk_fails(jwk, "badPublicKey");
    json_decref(jwk);
    /* 2047-bit modulus (top bit cleared) */
    nb[0] &= 0x7f;
    char *short_n = b64url_encode(nb, nl);
    jwk = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", short_n, "e", "AQAB");
    jwk_fails(jwk, "badPublicKey");
    json_decref(jwk);
    free(short_n);
    free(nzs);
    free(nz);
    free(nb);
    /* private members, missing members, unknown types */
    j2 = jwk_with(K_RSA, "d", json_string("AQAB"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    j2 = jwk_with(K_RSA, "n", NULL);
    jwk_fails(j2, "malformed");
    json_decref(j2);
    j2 = jwk_with(K_RSA, "kty", json_string("oct"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    j2 = jwk_with(K_RSA, "kty", NULL);
    jwk_fails(j2, "malformed");
    json_decref(j2);
    j2 = json_array();
    jwk_fails(j2, "malformed");
    json_decref(j2);
}

static void test_jwk_okp(void **state)
{
    (void)state;
    json_t *j2 = jwk_with(K_ED, "crv", json_string("Ed448"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    j2 = jwk_with(K_ED, "x", json_string("AAAA"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    j2 = jwk_with(K_ED, "d", json_string("AAAA"));
    jwk_fails(j2, "badPublicKey");
    json_decref(j2);
    j2 = jwk_from_pkey(K_ED);
    assert_string_equal(json_string_value(json_object_get(j2, "kty")), "OKP");
    assert_string_equal(json_string_value(json_object_get(j2, "crv")), "Ed25519");
    assert_int_equal(json_object_size(j2), 3);
    json_decref(j2);
    /* EC coordinates are padded to the full size (P-521: 66 octets) */
    j2 = jwk_from_pkey(K_P521);
    assert_int_equal(strlen(json_string_value(json_object_get(j2, "x"))), 88);
    assert_int_equal(strlen(json_string_value(json_object_get(j2, "y"))), 88);
    json_decref(j2);
    /* unsupported key types have no JWK */
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
    assert_non_null(k);
    assert_null(jwk_from_pkey(k));
    assert_null(jws_sign(k, NULL, ""));
    EVP_PKEY_free(k);
    assert_null(jwk_from_pkey(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_rsa),
        cmocka_unit_test(test_roundtrip_p256),
        cmocka_unit_test(test_roundtrip_p384),
        cmocka_unit_test(test_roundtrip_p521),
        cmocka_unit_test(test_roundtrip_ed25519),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_alg_mismatch),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_bad_base64url),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_thumbprint_rfc7638),
        cmocka_unit_test(test_jwk_ec_refusals),
        cmocka_unit_test(test_jwk_rsa_refusals),
        cmocka_unit_test(test_jwk_okp),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
