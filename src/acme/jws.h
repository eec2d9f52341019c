/* jws: the JSON Web Signature layer of ACME (RFC 8555 section 6.2, RFC
 * 7515 flattened JSON serialization, RFC 7517 JWK, RFC 7638 thumbprints).
 *
 * Every byte here comes from the network: parsing is bounded, every field is
 * type-checked, and failures fill `struct err` with the ACME problem type in
 * e->code (the suffix after "urn:ietf:params:acme:error:", e.g. "malformed",
 * "badSignatureAlgorithm", "badPublicKey") and a human message in e->msg;
 * e->status is the HTTP status (400, or 401 for "unauthorized"). */
#ifndef PKIAAS_ACME_JWS_H
#define PKIAAS_ACME_JWS_H

#include "util/err.h"
#include "util/limits.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

/* Algorithms accepted for account keys, as listed in badSignatureAlgorithm
 * problems ("algorithms" field). EdDSA (Ed25519) is offered because OpenSSL
 * 3.0 has it. */
#define JWS_ALGS "RS256", "ES256", "ES384", "ES512", "EdDSA"
#define JWS_MAX_BODY LIMIT_ACME_JWS_BYTES /* a JWS larger than this is refused */

struct jws {
    json_t *hdr;                /* decoded protected header (owned) */
    const char *alg;            /* from hdr */
    const char *nonce;          /* from hdr, NULL when absent */
    const char *url;            /* from hdr, NULL when absent */
    const char *kid;            /* from hdr, NULL when absent */
    json_t *jwk;                /* from hdr (borrowed from hdr), NULL when absent */
    unsigned char *payload;     /* decoded payload (owned, NUL-terminated) */
    size_t payload_len;         /* 0 for POST-as-GET (payload "") */
    char *signing_input;        /* "<protected b64>.<payload b64>" (owned) */
    size_t signing_input_len;
    unsigned char *sig;         /* decoded signature (owned) */
    size_t sig_len;
};

/* Parses a flattened JWS JSON object {protected, payload, signature} (no
 * "header" member allowed, no general serialization). Checks: all three are
 * base64url strings, the protected header is a JSON object with a string
 * "alg" (not "none", not a MAC algorithm unless allow_mac), exactly one of
 * "jwk" / "kid" unless allow_mac (then neither is required). Does not check
 * nonce/url presence; the caller does. */
int jws_parse(const unsigned char *body, size_t len, bool allow_mac, struct jws *out, struct err *e);
/* Parses from an already decoded JSON object (the inner JWS of a key change
 * or an EAB binding). */
int jws_parse_json(const json_t *obj, bool allow_mac, struct jws *out, struct err *e);
void jws_free(struct jws *j);

/* A public key from a JWK: RSA (n, e; modulus 2048..8192 bits), EC (crv
 * P-256/P-384/P-521 with x, y of the right length, point on the curve), OKP
 * (crv Ed25519, x). Private members ("d", ...) are refused. NULL with
 * e->code "badPublicKey" or "malformed". */
EVP_PKEY *jwk_to_pkey(const json_t *jwk, struct err *e);
/* The JWK of a public key (RSA, EC P-256/384/521, Ed25519), with only the
 * required members; NULL for other key types. */
json_t *jwk_from_pkey(EVP_PKEY *pk);
/* RFC 7638 thumbprint: base64url (unpadded) of SHA-256 over the canonical
 * JSON of the required members in lexicographic order. 0 on success;
 * out receives 43 characters and a NUL. */
int jwk_thumbprint(const json_t *jwk, char out[44]);

/* Verifies j->sig over j->signing_input with `key`. The "alg" must match
 * the key: RS256 for RSA (PKCS#1 v1.5 + SHA-256), ES256/ES384/ES512 for EC
 * P-256/P-384/P-521 (signature is raw r||s of 64/96/132 bytes, converted
 * to DER for OpenSSL), EdDSA for Ed25519. A mismatch or unsupported alg is
 * "badSignatureAlgorithm"; a wrong signature is "malformed" with message
 * "JWS signature does not verify". */
int jws_verify(const struct jws *j, EVP_PKEY *key, struct err *e);
/* Verifies a MAC-protected JWS (External Account Binding, RFC 8555
 * 7.3.4): alg HS256/HS384/HS512, HMAC over signing_input with `key`,
 * constant-time compare. Failure: "unauthorized" (status 401) for a wrong
 * MAC, "badSignatureAlgorithm" for another alg. */
int jws_verify_hmac(const struct jws *j, const unsigned char *key, size_t keylen, struct err *e);

/* For tests and clients: signs `payload` (may be "" for POST-as-GET) with
 * a private key, producing a flattened JWS JSON text. `hdr` is the
 * protected header without "alg" (added from the key). Returns malloc'd
 * NUL-terminated JSON, or NULL. */
char *jws_sign(EVP_PKEY *priv, json_t *hdr, const char *payload);

#endif
