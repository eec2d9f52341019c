/* jws: ACME's JSON Web Signature layer. See jws.h for the contract.
 *
 * Everything parsed here is attacker-controlled: sizes are bounded, every
 * member is type-checked before use, base64url is decoded strictly (no
 * padding, no whitespace) and OpenSSL's error queue is cleared after every
 * failed operation so nothing leaks into unrelated code. */
#include "acme/jws.h"

#include "util/codec.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

#define ST_BAD 400
#define ST_UNAUTH 401
#define ST_INTERNAL 500

/* Largest RSA public exponent accepted, in octets (OpenSSL itself refuses
 * exponents over 64 bits for moduli above 3072 bits). */
#define RSA_MAX_E_OCTETS 8

/* The supported EC curves and their JWS algorithm. */
struct ec_curve {
    const char *crv;    /* JWK "crv" */
    const char *group;  /* OpenSSL group name */
    const char *alg;    /* JWS "alg" */
    const char *md;     /* digest of the JWS algorithm */
    size_t size;        /* coordinate / r / s size in octets */
};

static const struct ec_curve EC_CURVES[] = {
    {"P-256", "prime256v1", "ES256", "SHA256", 32},
    {"P-384", "secp384r1", "ES384", "SHA384", 48},
    {"P-521", "secp521r1", "ES512", "SHA512", 66},
};

static const struct ec_curve *curve_by_crv(const char *crv)
{
    for (size_t i = 0; i < sizeof EC_CURVES / sizeof EC_CURVES[0]; i++)
        if (strcmp(EC_CURVES[i].crv, crv) == 0)
            return &EC_CURVES[i];
    return NULL;
}

/* The curve of an EC key, NULL when it is not EC or not a supported curve. */
static const struct ec_curve *curve_of_pkey(EVP_PKEY *pk)
{
    char g[64];
    size_t gl = 0;
    if (!EVP_PKEY_is_a(pk, "EC"))
        return NULL;
    if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof g, &gl) != 1) {
        ERR_clear_error();
        return NULL;
    }
    for (size_t i = 0; i < sizeof EC_CURVES / sizeof EC_CURVES[0]; i++)
        if (strcmp(EC_CURVES[i].group, g) == 0)
            return &EC_CURVES[i];
    return NULL;
}

/* A JSON string without embedded NULs, or NULL (absent, wrong type or NUL
 * inside). */
static const char *jstr(const json_t *v)
{
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return NULL;
    return s;
}

/* Strict base64url decoding into a NUL-terminated buffer (an empty input
 * decodes to ""). */
static int b64url_dec(const char *s, size_t slen, unsigned char **out, size_t *outlen)
{
    unsigned char *raw = NULL, *p = NULL;
    size_t rl = 0;
    int rc = -1;
    if (b64url_decode(s, slen, &raw, &rl) != 0)
        goto out;
    p = malloc(rl + 1);
    if (!p)
        goto out;
    if (rl)
        memcpy(p, raw, rl);
    p[rl] = 0;
    *out = p;
    *outlen = rl;
    p = NULL;
    rc = 0;
out:
    free(raw);
    free(p);
    return rc;
}

static bool is_mac_alg(const char *alg)
{
    return strcmp(alg, "HS256") == 0 || strcmp(alg, "HS384") == 0 || strcmp(alg, "HS512") == 0;
}

int jws_parse(const unsigned char *body, size_t len, bool allow_mac, struct jws *out, struct err *e)
{
    json_t *obj = NULL;
    json_error_t jerr;
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!body || len == 0) {
        err_set(e, ST_BAD, "malformed", NULL, "request body is empty; a JWS is required");
        goto out;
    }
    if (len > JWS_MAX_BODY) {
        err_set(e, ST_BAD, "malformed", NULL, "JWS is larger than %d bytes", JWS_MAX_BODY);
        goto out;
    }
    obj = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        err_set(e, ST_BAD, "malformed", NULL, "request body is not valid JSON: %s", jerr.text);
        goto out;
    }
    rc = jws_parse_json(obj, allow_mac, out, e);
out:
    json_decref(obj);
    return rc;
}

int jws_parse_json(const json_t *obj, bool allow_mac, struct jws *out, struct err *e)
{
    static const char *const members[] = {"protected", "payload", "signature"};
    const json_t *v[3];
    size_t vl[3];
    unsigned char *hdrbytes = NULL;
    size_t hdrlen = 0;
    json_error_t jerr;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (!json_is_object(obj)) {
        err_set(e, ST_BAD, "malformed", NULL, "JWS must be a JSON object (flattened JSON serialization)");
        goto out;
    }
    for (size_t i = 0; i < 3; i++) {
        v[i] = json_object_get(obj, members[i]);
        if (!v[i]) {
            err_set(e, ST_BAD, "malformed", members[i], "JWS member \"%s\" is missing", members[i]);
            goto out;
        }
        if (!json_is_string(v[i])) {
            err_set(e, ST_BAD, "malformed", members[i], "JWS member \"%s\" must be a string", members[i]);
            goto out;
        }
        vl[i] = json_string_length(v[i]);
        if (vl[i] > JWS_MAX_BODY) {
            err_set(e, ST_BAD, "malformed", members[i], "JWS member \"%s\" is too long", members[i]);
            goto out;
        }
    }
    /* Only the three members: no unprotected "header", no "signatures"
     * (general serialization), nothing else. */
    if (json_object_size(obj) != 3) {
        if (json_object_get(obj, "header"))
            err_set(e, ST_BAD, "malformed", "header", "unprotected JWS header is not allowed");
        else if (json_object_get(obj, "signatures"))
            err_set(e, ST_BAD, "malformed", "signatures", "general JWS serialization is not allowed");
        else
            err_set(e, ST_BAD, "malformed", NULL,
                    "JWS may only have the members \"protected\", \"payload\" and \"signature\"");
        goto out;
    }

    /* protected header */
    const char *prot = json_string_value(v[0]);
    if (vl[0] == 0 || b64url_dec(prot, vl[0], &hdrbytes, &hdrlen) != 0) {
        err_set(e, ST_BAD, "malformed", "protected", "JWS protected header is not valid base64url");
        goto out;
    }
    out->hdr = json_loadb((const char *)hdrbytes, hdrlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!out->hdr) {
        err_set(e, ST_BAD, "malformed", "protected", "JWS protected header is not valid JSON: %s", jerr.text);
        goto out;
    }
    if (!json_is_object(out->hdr)) {
        err_set(e, ST_BAD, "malformed", "protected", "JWS protected header must be a JSON object");
        goto out;
    }
    const json_t *a = json_object_get(out->hdr, "alg");
    if (!a) {
        err_set(e, ST_BAD, "malformed", "alg", "JWS protected header has no \"alg\"");
        goto out;
    }
    out->alg = jstr(a);
    if (!out->alg) {
        err_set(e, ST_BAD, "malformed", "alg", "JWS \"alg\" must be a string");
        goto out;
    }
    if (strcmp(out->alg, "none") == 0) {
        err_set(e, ST_BAD, "badSignatureAlgorithm", "alg", "JWS algorithm \"none\" is not allowed");
        goto out;
    }
    if (!allow_mac && is_mac_alg(out->alg)) {
        err_set(e, ST_BAD, "badSignatureAlgorithm", "alg", "MAC algorithm \"%s\" is not allowed here", out->alg);
        goto out;
    }
    /* We implement no JWS extensions, so any "crit" must be refused (RFC
     * 7515 section 4.1.11). */
    if (json_object_get(out->hdr, "crit")) {
        err_set(e, ST_BAD, "malformed", "crit", "JWS \"crit\" header parameter is not supported");
        goto out;
    }
    const json_t *n = json_object_get(out->hdr, "nonce");
    if (n && !(out->nonce = jstr(n))) {
        err_set(e, ST_BAD, "malformed", "nonce", "JWS \"nonce\" must be a string");
        goto out;
    }
    const json_t *u = json_object_get(out->hdr, "url");
    if (u && !(out->url = jstr(u))) {
        err_set(e, ST_BAD, "malformed", "url", "JWS \"url\" must be a string");
        goto out;
    }
    const json_t *k = json_object_get(out->hdr, "kid");
    if (k && !(out->kid = jstr(k))) {
        err_set(e, ST_BAD, "malformed", "kid", "JWS \"kid\" must be a string");
        goto out;
    }
    json_t *jwk = json_object_get(out->hdr, "jwk");
    if (jwk && !json_is_object(jwk)) {
        err_set(e, ST_BAD, "malformed", "jwk", "JWS \"jwk\" must be a JSON object");
        goto out;
    }
    out->jwk = jwk;
    if (out->jwk && out->kid) {
        err_set(e, ST_BAD, "malformed", "jwk", "JWS protected header must not have both \"jwk\" and \"kid\"");
        goto out;
    }
    if (!allow_mac && !out->jwk && !out->kid) {
        err_set(e, ST_BAD, "malformed", "kid", "JWS protected header must have either \"jwk\" or \"kid\"");
        goto out;
    }

    /* payload ("" = POST-as-GET) */
    if (b64url_dec(json_string_value(v[1]), vl[1], &out->payload, &out->payload_len) != 0) {
        err_set(e, ST_BAD, "malformed", "payload", "JWS payload is not valid base64url");
        goto out;
    }
    /* signature */
    if (vl[2] == 0 || b64url_dec(json_string_value(v[2]), vl[2], &out->sig, &out->sig_len) != 0 ||
        out->sig_len == 0) {
        err_set(e, ST_BAD, "malformed", "signature", "JWS signature is not valid base64url");
        goto out;
    }
    /* signing input: the base64url texts as received */
    out->signing_input_len = vl[0] + 1 + vl[1];
    out->signing_input = malloc(out->signing_input_len + 1);
    if (!out->signing_input) {
        err_set(e, ST_INTERNAL, "serverInternal", NULL, "out of memory");
        goto out;
    }
    memcpy(out->signing_input, prot, vl[0]);
    out->signing_input[vl[0]] = '.';
    if (vl[1])
        memcpy(out->signing_input + vl[0] + 1, json_string_value(v[1]), vl[1]);
    out->signing_input[out->signing_input_len] = 0;
    rc = 0;
out:
    free(hdrbytes);
    if (rc != 0)
        jws_free(out);
    return rc;
}

void jws_free(struct jws *j)
{
    if (!j)
        return;
    json_decref(j->hdr);
    free(j->payload);
    free(j->signing_input);
    free(j->sig);
    memset(j, 0, sizeof *j);
}

/* ---- JWK ---------------------------------------------------------------- */

/* Decodes the base64url member `name` of a JWK. */
static int jwk_member(const json_t *jwk, const char *name, unsigned char **out, size_t *outlen, struct err *e)
{
    const json_t *v = json_object_get(jwk, name);
    if (!v) {
        err_set(e, ST_BAD, "malformed", "jwk", "JWK member \"%s\" is missing", name);
        return -1;
    }
    if (!json_is_string(v)) {
        err_set(e, ST_BAD, "malformed", "jwk", "JWK member \"%s\" must be a string", name);
        return -1;
    }
    size_t l = json_string_length(v);
    if (l == 0 || l > JWS_MAX_BODY || b64url_dec(json_string_value(v), l, out, outlen) != 0) {
        err_set(e, ST_BAD, "malformed", "jwk", "JWK member \"%s\" is not valid base64url", name);
        return -1;
    }
    return 0;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (!params)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx)
        goto out;
    if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pk);
        pk = NULL;
        goto out;
    }
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

static EVP_PKEY *jwk_rsa(const json_t *jwk, struct err *e)
{
    unsigned char *nb = NULL, *eb = NULL;
    size_t nl = 0, el = 0;
    BIGNUM *n = NULL, *ebn = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pk = NULL;

    if (jwk_member(jwk, "n", &nb, &nl, e) != 0 || jwk_member(jwk, "e", &eb, &el, e) != 0)
        goto out;
    /* RFC 7518 6.3.1: the minimum number of octets (no leading zeros); it
     * also keeps thumbprints unique per key. */
    if (nb[0] == 0 || eb[0] == 0) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "RSA JWK \"n\" and \"e\" must not have leading zero octets");
        goto out;
    }
    if (nl < 2048 / 8 || nl > 8192 / 8) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "RSA modulus must be 2048 to 8192 bits (got %zu)", nl * 8);
        goto out;
    }
    if (el > RSA_MAX_E_OCTETS) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "RSA public exponent is too large");
        goto out;
    }
    n = BN_bin2bn(nb, (int)nl, NULL);
    ebn = BN_bin2bn(eb, (int)el, NULL);
    if (!n || !ebn) {
        err_set(e, ST_INTERNAL, "serverInternal", "jwk", "out of memory");
        goto out;
    }
    int bits = BN_num_bits(n);
    if (bits < 2048 || bits > 8192) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "RSA modulus must be 2048 to 8192 bits (got %d)", bits);
        goto out;
    }
    if (!BN_is_odd(n)) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "RSA modulus must be odd");
        goto out;
    }
    if (!BN_is_odd(ebn) || BN_is_one(ebn)) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "RSA public exponent must be odd and greater than 1");
        goto out;
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, ebn) != 1) {
        err_set(e, ST_INTERNAL, "serverInternal", "jwk", "out of memory");
        goto out;
    }
    pk = pkey_fromdata("RSA", bld);
    if (!pk) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "RSA JWK is not a valid public key");
        goto out;
    }
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(ebn);
    free(nb);
    free(eb);
    return pk;
}

static EVP_PKEY *jwk_ec(const json_t *jwk, struct err *e)
{
    unsigned char *xb = NULL, *yb = NULL, *pt = NULL;
    size_t xl = 0, yl = 0;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY_CTX *cctx = NULL;
    EVP_PKEY *pk = NULL;
    const struct ec_curve *c = NULL;
    bool ok = false;

    const char *crv = jstr(json_object_get(jwk, "crv"));
    if (!crv) {
        err_set(e, ST_BAD, "malformed", "jwk", "EC JWK needs a string \"crv\"");
        goto out;
    }
    c = curve_by_crv(crv);
    if (!c) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "EC curve \"%.40s\" is not supported (P-256, P-384, P-521)", crv);
        goto out;
    }
    if (jwk_member(jwk, "x", &xb, &xl, e) != 0 || jwk_member(jwk, "y", &yb, &yl, e) != 0)
        goto out;
    if (xl != c->size || yl != c->size) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "%s coordinates must be %zu octets", c->crv, c->size);
        goto out;
    }
    pt = malloc(1 + 2 * c->size);
    if (!pt) {
        err_set(e, ST_INTERNAL, "serverInternal", "jwk", "out of memory");
        goto out;
    }
    pt[0] = 0x04; /* uncompressed */
    memcpy(pt + 1, xb, c->size);
    memcpy(pt + 1 + c->size, yb, c->size);
    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, c->group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * c->size) != 1) {
        err_set(e, ST_INTERNAL, "serverInternal", "jwk", "out of memory");
        goto out;
    }
    pk = pkey_fromdata("EC", bld);
    if (!pk) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "EC JWK is not a valid %s point", c->crv);
        goto out;
    }
    /* fromdata already refuses points off the curve; the full public check
     * also covers the point at infinity and the subgroup order. */
    cctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (!cctx) {
        err_set(e, ST_INTERNAL, "serverInternal", "jwk", "out of memory");
        goto out;
    }
    if (EVP_PKEY_public_check(cctx) != 1) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "EC JWK is not a valid %s point", c->crv);
        goto out;
    }
    ok = true;
out:
    if (!ok) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    EVP_PKEY_CTX_free(cctx);
    OSSL_PARAM_BLD_free(bld);
    free(pt);
    free(xb);
    free(yb);
    return pk;
}

static EVP_PKEY *jwk_okp(const json_t *jwk, struct err *e)
{
    unsigned char *xb = NULL;
    size_t xl = 0;
    EVP_PKEY *pk = NULL;

    const char *crv = jstr(json_object_get(jwk, "crv"));
    if (!crv) {
        err_set(e, ST_BAD, "malformed", "jwk", "OKP JWK needs a string \"crv\"");
        goto out;
    }
    if (strcmp(crv, "Ed25519") != 0) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "OKP curve \"%.40s\" is not supported (Ed25519)", crv);
        goto out;
    }
    if (jwk_member(jwk, "x", &xb, &xl, e) != 0)
        goto out;
    if (xl != 32) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "Ed25519 public key must be 32 octets");
        goto out;
    }
    pk = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, xb, xl);
    if (!pk) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "Ed25519 JWK is not a valid public key");
        goto out;
    }
out:
    free(xb);
    return pk;
}

EVP_PKEY *jwk_to_pkey(const json_t *jwk, struct err *e)
{
    /* RFC 7518 section 6: private key members of RSA / EC / OKP, and the
     * symmetric "k". */
    static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
    EVP_PKEY *pk = NULL;

    if (!json_is_object(jwk)) {
        err_set(e, ST_BAD, "malformed", "jwk", "JWK must be a JSON object");
        goto out;
    }
    for (size_t i = 0; i < sizeof private_members / sizeof private_members[0]; i++) {
        if (json_object_get(jwk, private_members[i])) {
            err_set(e, ST_BAD, "badPublicKey", "jwk", "JWK must not contain private key member \"%s\"",
                    private_members[i]);
            goto out;
        }
    }
    const json_t *ktyv = json_object_get(jwk, "kty");
    const char *kty = jstr(ktyv);
    if (!kty) {
        err_set(e, ST_BAD, "malformed", "jwk", "JWK needs a string \"kty\"");
        goto out;
    }
    if (strcmp(kty, "RSA") == 0)
        pk = jwk_rsa(jwk, e);
    else if (strcmp(kty, "EC") == 0)
        pk = jwk_ec(jwk, e);
    else if (strcmp(kty, "OKP") == 0)
        pk = jwk_okp(jwk, e);
    else
        err_set(e, ST_BAD, "badPublicKey", "jwk", "JWK key type \"%.40s\" is not supported (RSA, EC, OKP)", kty);
out:
    if (!pk)
        ERR_clear_error();
    return pk;
}

/* base64url of a big number, left-padded with zeros to `pad` octets (0 =
 * minimal length). */
static char *bn_b64url(const BIGNUM *bn, size_t pad)
{
    size_t l = pad ? pad : (size_t)BN_num_bytes(bn);
    unsigned char *b = NULL;
    char *s = NULL;
    if (l == 0 || l > 8192)
        goto out;
    b = malloc(l);
    if (!b)
        goto out;
    if (BN_bn2binpad(bn, b, (int)l) != (int)l)
        goto out;
    s = b64url_encode(b, l);
out:
    free(b);
    return s;
}

json_t *jwk_from_pkey(EVP_PKEY *pk)
{
    BIGNUM *b1 = NULL, *b2 = NULL;
    char *s1 = NULL, *s2 = NULL;
    json_t *jwk = NULL;
    const struct ec_curve *c = NULL;

    if (!pk)
        goto out;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &b1) != 1 ||
            EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &b2) != 1)
            goto out;
        s1 = bn_b64url(b1, 0);
        s2 = bn_b64url(b2, 0);
        if (!s1 || !s2)
            goto out;
        jwk = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", s1, "e", s2);
    } else if ((c = curve_of_pkey(pk)) != NULL) {
        if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &b1) != 1 ||
            EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &b2) != 1)
            goto out;
        s1 = bn_b64url(b1, c->size);
        s2 = bn_b64url(b2, c->size);
        if (!s1 || !s2)
            goto out;
        jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", c->crv, "x", s1, "y", s2);
    } else if (EVP_PKEY_is_a(pk, "ED25519")) {
        unsigned char raw[32];
        size_t rl = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(pk, raw, &rl) != 1 || rl != sizeof raw)
            goto out;
        s1 = b64url_encode(raw, rl);
        if (!s1)
            goto out;
        jwk = json_pack("{s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x", s1);
    }
out:
    if (!jwk)
        ERR_clear_error();
    BN_free(b1);
    BN_free(b2);
    free(s1);
    free(s2);
    return jwk;
}

int jwk_thumbprint(const json_t *jwk, char out[44])
{
    static const char *const rsa[] = {"e", "kty", "n", NULL};
    static const char *const ec[] = {"crv", "kty", "x", "y", NULL};
    static const char *const okp[] = {"crv", "kty", "x", NULL};
    const char *const *req = NULL;
    json_t *canon = NULL;
    char *text = NULL, *b64 = NULL;
    unsigned char md[32];
    unsigned int mdl = 0;
    int rc = -1;

    if (!json_is_object(jwk))
        goto out;
    const char *kty = jstr(json_object_get(jwk, "kty"));
    if (!kty)
        goto out;
    if (strcmp(kty, "RSA") == 0)
        req = rsa;
    else if (strcmp(kty, "EC") == 0)
        req = ec;
    else if (strcmp(kty, "OKP") == 0)
        req = okp;
    else
        goto out;
    canon = json_object();
    if (!canon)
        goto out;
    for (size_t i = 0; req[i]; i++) {
        const char *v = jstr(json_object_get(jwk, req[i]));
        if (!v || !*v || json_object_set_new(canon, req[i], json_string(v)) != 0)
            goto out;
    }
    /* Compact, sorted: {"e":"...","kty":"RSA","n":"..."} with no whitespace
     * (RFC 7638 section 3.3). */
    text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        goto out;
    if (EVP_Digest(text, strlen(text), md, &mdl, EVP_sha256(), NULL) != 1 || mdl != sizeof md)
        goto out;
    b64 = b64url_encode(md, sizeof md);
    if (!b64 || strlen(b64) != 43)
        goto out;
    memcpy(out, b64, 44);
    rc = 0;
out:
    if (rc != 0)
        ERR_clear_error();
    json_decref(canon);
    free(text);
    free(b64);
    return rc;
}

/* ---- verification ------------------------------------------------------- */

/* The JWS algorithm that goes with a key: its name, digest (NULL for
 * EdDSA) and, for ECDSA, the size of r and s. NULL alg for keys we do not
 * support. */
struct key_alg {
    const char *alg;
    const char *md;
    size_t ec_size;
};

static struct key_alg key_alg_of(EVP_PKEY *pk)
{
    struct key_alg ka = {NULL, NULL, 0};
    const struct ec_curve *c = NULL;
    if (!pk)
        return ka;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        ka.alg = "RS256";
        ka.md = "SHA256";
    } else if ((c = curve_of_pkey(pk)) != NULL) {
        ka.alg = c->alg;
        ka.md = c->md;
        ka.ec_size = c->size;
    } else if (EVP_PKEY_is_a(pk, "ED25519")) {
        ka.alg = "EdDSA";
    }
    return ka;
}

/* raw r||s (2 * size octets) to a DER ECDSA-Sig-Value. */
static int ecdsa_raw_to_der(const unsigned char *raw, size_t size, unsigned char **der, size_t *derlen)
{
    ECDSA_SIG *sig = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *p = NULL;
    int rc = -1;
    sig = ECDSA_SIG_new();
    r = BN_bin2bn(raw, (int)size, NULL);
    s = BN_bin2bn(raw + size, (int)size, NULL);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1)
        goto out;
    r = s = NULL; /* owned by sig now */
    int l = i2d_ECDSA_SIG(sig, &p);
    if (l <= 0)
        goto out;
    *der = p;
    *derlen = (size_t)l;
    p = NULL;
    rc = 0;
out:
    OPENSSL_free(p);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return rc;
}

/* DER ECDSA-Sig-Value to raw r||s, each padded to `size` octets. */
static int ecdsa_der_to_raw(const unsigned char *der, size_t derlen, size_t size, unsigned char *raw)
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    int rc = -1;
    if (!sig)
        goto out;
    const BIGNUM *r = ECDSA_SIG_get0_r(sig), *s = ECDSA_SIG_get0_s(sig);
    if (!r || !s || BN_bn2binpad(r, raw, (int)size) != (int)size ||
        BN_bn2binpad(s, raw + size, (int)size) != (int)size)
        goto out;
    rc = 0;
out:
    ECDSA_SIG_free(sig);
    return rc;
}

int jws_verify(const struct jws *j, EVP_PKEY *key, struct err *e)
{
    EVP_MD_CTX *md = NULL;
    unsigned char *der = NULL;
    const unsigned char *sig = NULL;
    size_t siglen = 0;
    int rc = -1;

    if (!j || !j->alg || !j->signing_input || !j->sig) {
        err_set(e, ST_BAD, "malformed", NULL, "JWS was not parsed");
        goto out;
    }
    struct key_alg ka = key_alg_of(key);
    if (!ka.alg) {
        err_set(e, ST_BAD, "badPublicKey", "jwk", "key type is not supported");
        goto out;
    }
    if (strcmp(j->alg, ka.alg) != 0) {
        err_set(e, ST_BAD, "badSignatureAlgorithm", "alg",
                "JWS algorithm \"%.40s\" does not match the account key (%s expected)", j->alg, ka.alg);
        goto out;
    }
    sig = j->sig;
    siglen = j->sig_len;
    if (ka.ec_size) {
        if (j->sig_len != 2 * ka.ec_size) {
            err_set(e, ST_BAD, "malformed", "signature", "JWS signature does not verify");
            goto out;
        }
        if (ecdsa_raw_to_der(j->sig, ka.ec_size, &der, &siglen) != 0) {
            err_set(e, ST_INTERNAL, "serverInternal", NULL, "cannot convert the ECDSA signature");
            goto out;
        }
        sig = der;
    }
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestVerifyInit_ex(md, NULL, ka.md, NULL, NULL, key, NULL) != 1) {
        err_set(e, ST_INTERNAL, "serverInternal", NULL, "cannot initialise signature verification");
        goto out;
    }
    if (EVP_DigestVerify(md, sig, siglen, (const unsigned char *)j->signing_input, j->signing_input_len) != 1) {
        err_set(e, ST_BAD, "malformed", "signature", "JWS signature does not verify");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        ERR_clear_error();
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return rc;
}

int jws_verify_hmac(const struct jws *j, const unsigned char *key, size_t keylen, struct err *e)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    const char *mdname = NULL;
    int rc = -1;

    if (!j || !j->alg || !j->signing_input || !j->sig) {
        err_set(e, ST_BAD, "malformed", NULL, "JWS was not parsed");
        goto out;
    }
    if (strcmp(j->alg, "HS256") == 0)
        mdname = "SHA256";
    else if (strcmp(j->alg, "HS384") == 0)
        mdname = "SHA384";
    else if (strcmp(j->alg, "HS512") == 0)
        mdname = "SHA512";
    else {
        err_set(e, ST_BAD, "badSignatureAlgorithm", "alg",
                "JWS algorithm \"%.40s\" is not a MAC algorithm (HS256, HS384, HS512)", j->alg);
        goto out;
    }
    if (!key || keylen == 0) {
        err_set(e, ST_UNAUTH, "unauthorized", NULL, "no MAC key");
        goto out;
    }
    if (!EVP_Q_mac(NULL, "HMAC", NULL, mdname, NULL, key, keylen, (const unsigned char *)j->signing_input,
                   j->signing_input_len, mac, sizeof mac, &maclen)) {
        err_set(e, ST_INTERNAL, "serverInternal", NULL, "cannot compute the HMAC");
        goto out;
    }
    if (j->sig_len != maclen || CRYPTO_memcmp(j->sig, mac, maclen) != 0) {
        err_set(e, ST_UNAUTH, "unauthorized", "signature", "JWS MAC does not verify");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        ERR_clear_error();
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

/* ---- signing (tests and clients) ----------------------------------------- */

char *jws_sign(EVP_PKEY *priv, json_t *hdr, const char *payload)
{
    json_t *h = NULL, *outj = NULL;
    char *htext = NULL, *hb64 = NULL, *pb64 = NULL, *input = NULL, *sb64 = NULL, *res = NULL;
    unsigned char *sig = NULL, *raw = NULL;
    size_t siglen = 0;
    EVP_MD_CTX *md = NULL;

    struct key_alg ka = key_alg_of(priv);
    if (!ka.alg)
        goto out;
    if (hdr && !json_is_object(hdr))
        goto out;
    h = hdr ? json_deep_copy(hdr) : json_object();
    if (!h || json_object_set_new(h, "alg", json_string(ka.alg)) != 0)
        goto out;
    htext = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
    if (!htext)
        goto out;
    if (!payload)
        payload = "";
    hb64 = b64url_encode((const unsigned char *)htext, strlen(htext));
    pb64 = b64url_encode((const unsigned char *)payload, strlen(payload));
    if (!hb64 || !pb64)
        goto out;
    size_t hl = strlen(hb64), pl = strlen(pb64);
    input = malloc(hl + 1 + pl + 1);
    if (!input)
        goto out;
    memcpy(input, hb64, hl);
    input[hl] = '.';
    memcpy(input + hl + 1, pb64, pl + 1);

    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit_ex(md, NULL, ka.md, NULL, NULL, priv, NULL) != 1)
        goto out;
    if (EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input, hl + 1 + pl) != 1)
        goto out;
    sig = malloc(siglen ? siglen : 1);
    if (!sig || EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, hl + 1 + pl) != 1)
        goto out;
    if (ka.ec_size) {
        raw = malloc(2 * ka.ec_size);
        if (!raw || ecdsa_der_to_raw(sig, siglen, ka.ec_size, raw) != 0)
            goto out;
        sb64 = b64url_encode(raw, 2 * ka.ec_size);
    } else {
        sb64 = b64url_encode(sig, siglen);
    }
    if (!sb64)
        goto out;
    outj = json_pack("{s:s, s:s, s:s}", "protected", hb64, "payload", pb64, "signature", sb64);
    if (!outj)
        goto out;
    res = json_dumps(outj, JSON_COMPACT);
out:
    if (!res)
        ERR_clear_error();
    EVP_MD_CTX_free(md);
    json_decref(h);
    json_decref(outj);
    free(htext);
    free(hb64);
    free(pb64);
    free(input);
    free(sig);
    free(raw);
    free(sb64);
    return res;
}
