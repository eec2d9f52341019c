/* ca: CA hierarchy lifecycle (create root / intermediate / issuing CAs,
 * import external roots, certify subordinates of external roots, delete).
 *
 * Promises:
 *  - the only code that decides what goes into a CA certificate, following
 *    the guide's basic-ca-subord tables: basicConstraints cA=TRUE critical
 *    (pathLen 0 for issuing CAs), keyUsage digitalSignature+keyCertSign+
 *    cRLSign critical, no EKU, SKI per RFC 7093 method 1, AKI = issuer SKI,
 *    CRL DP / AIA from the issuer's CRL / OCSP settings;
 *  - a child never outlives its parent; identifiers follow the guide's rules
 *    and stay reserved for 24 h after deletion;
 *  - CA private keys exist in clear only in memory, sealed under the master
 *    key at rest;
 *  - every failure caused by the request is reported in `struct err` with a
 *    4xx status and the field at fault. */
#ifndef PKIAAS_CA_CA_H
#define PKIAAS_CA_CA_H

#include "crypto/keywrap.h"
#include "crypto/signer.h"
#include "store/store.h"
#include "util/err.h"

#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

#define CA_ROOT_YEARS 20
#define CA_SUB_YEARS 10
#define CA_ID_RESERVE_S (24 * 3600)

struct ca_cache;

struct signerd;
struct keyspec;

struct ca_env {
    struct store *store;
    struct ca_cache *cache;     /* may be NULL (tools, tests): no caching */
    const unsigned char *mkey;  /* MASTER_KEY_LEN bytes */
    const char *http_base;      /* e.g. http://127.0.0.1:8080 (CRL, OCSP, AIA) */
    const char *https_base;     /* e.g. https://127.0.0.1:8443 (API, CAGW) */
    bool ocsp_require_signed;   /* OCSP requests without a signature get sigRequired */
    struct signerd *signerd;    /* the CA key process; NULL (tools, tests): keys are used in-process */
};

struct ca_create_req {
    const char *id;
    const char *friendly_name;
    const char *type;           /* root | externalKey | intermediate | subord */
    const char *parent_id;
    const char *key_label;
    const char *subject;
    const char *expiry;         /* RFC 3339, optional */
    bool has_path_len;
    int path_len;
    bool has_crl, crl;
    bool has_ocsp, ocsp;
    int crl_shards;             /* 0 = one full CRL */
    const char *requester_ip;   /* for the audit record */
    const unsigned char *cert;  /* externalKey: PEM or DER */
    size_t cert_len;
};

bool ca_id_valid(const char *id);

/* On success fills *out (caller frees with ca_rec_free) and returns 0. */
int ca_create(const struct ca_env *env, const char *partition, const struct ca_create_req *req, const char *actor,
              struct ca_rec *out, struct err *e);
/* Certifies a pending CA with a certificate signed by its external parent. */
int ca_import_cert(const struct ca_env *env, const char *partition, const char *id, const unsigned char *data,
                   size_t len, const char *actor, const char *ip, struct ca_rec *out, struct err *e);
int ca_delete(const struct ca_env *env, const char *partition, const char *id, const char *actor, const char *ip,
              char ***ids, size_t *nids, struct err *e);

/* Decoding helpers (NULL when absent / malformed). */
X509 *ca_cert(const struct ca_rec *c);
/* 1 when the master key opens the CA's sealed key, 0 when it does not, -1
 * when the CA has no key of its own (an external root). */
int ca_key_opens(const unsigned char *mkey, const struct ca_rec *c);
/* A signer for the CA's key (caller frees), NULL for external / bad key. */
struct signer *ca_signer(const struct ca_env *env, const struct ca_rec *c);
/* Keys sealed under `aad` (CA keys "ca-key:…", OCSP responder keys
 * "ocsp-key:…"): generated and used in the signer process when the daemon
 * has one, in this process otherwise (tools, tests). key_generate returns
 * the sealed blob (malloc'd) and the public half; key_signer a signer. */
int key_generate(const struct ca_env *env, const struct keyspec *ks, const char *aad, unsigned char **blob,
                 size_t *blob_len, EVP_PKEY **pub);
struct signer *key_signer(const struct ca_env *env, const unsigned char *blob, size_t blob_len, const char *aad,
                          const char *md, bool pss);
/* Parses a certificate given as PEM or DER (bounded). */
X509 *ca_parse_cert(const unsigned char *data, size_t len);

/* URLs of a CA's services (malloc'd). */
char *ca_url_crl(const struct ca_env *env, const char *partition, const char *id);
char *ca_url_crl_shard(const struct ca_env *env, const char *partition, const char *id, int shard);
char *ca_url_ocsp(const struct ca_env *env, const char *partition, const char *id);
char *ca_url_issuer_cert(const struct ca_env *env, const char *partition, const char *id);
char *ca_url_cagw(const struct ca_env *env, const char *partition, const char *id);

#endif
