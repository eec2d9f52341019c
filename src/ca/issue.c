#include "ca/issue.h"
#include "util/limits.h"

#include "ca/ca_cache.h"
#include "ca/crl.h"

#include "crypto/keyspec.h"
#include "util/codec.h"
#include "util/duration.h"
#include "util/log.h"
#include "util/utf8.h"
#include "util/timeutil.h"
#include "x509/certbuild.h"
#include "x509/csr.h"
#include "x509/dn.h"
#include "x509/ext.h"
#include "x509/san.h"

#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXT_VALUE LIMIT_EXT_VALUE_BYTES
#define P12_ITER 10000
#define MAX_CHAIN 16
#define NOT_BEFORE_SKEW_S 300

const struct profile *profile_resolve(struct store *st, const char *partition, const char *id, struct err *e)
{
    const struct profile *sp = profiles_system_find(id);
    char *json = NULL;
    if (sp)
        return sp;
    if (!profile_id_valid(id)) {
        err_set(e, 400, "invalid_field", "profileId", "profileId: no profile '%.64s'", id ? id : "");
        return NULL;
    }
    int s = st->ops->profile_get(st, partition, id, &json);
    if (s != STORE_OK) {
        if (s == STORE_ENOTFOUND)
            err_set(e, 400, "invalid_field", "profileId", "profileId: no profile '%s'", id);
        else
            err_set(e, 503, "unavailable", "", "store unavailable");
        return NULL;
    }
    json_t *j = json_loads(json, 0, NULL);
    free(json);
    struct profile *p = j ? profile_from_json(j, false, e) : NULL;
    json_decref(j);
    if (!p)
        err_set(e, 500, "internal", "", "stored profile '%s' is unreadable", id);
    return p;
}

void profile_release(const struct profile *p)
{
    if (p && !p->system)
        profile_free((struct profile *)p);
}

STACK_OF(X509) *ca_chain(const struct ca_env *env, const struct ca_rec *ca)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    struct ca_rec cur;
    char next[sizeof ca->parent_id];
    if (!sk)
        return NULL;
    X509 *x = ca_cert(ca);
    if (!x || !sk_X509_push(sk, x)) {
        X509_free(x);
        goto fail;
    }
    snprintf(next, sizeof next, "%s", ca->parent_id);
    for (int depth = 0; next[0] && depth < MAX_CHAIN; depth++) {
        if (env->store->ops->ca_get(env->store, ca->partition_id, next, &cur) != STORE_OK)
            goto fail;
        x = ca_cert(&cur);
        snprintf(next, sizeof next, "%s", cur.parent_id);
        ca_rec_free(&cur);
        if (!x || !sk_X509_push(sk, x)) {
            X509_free(x);
            goto fail;
        }
    }
    return sk;
fail:
    sk_X509_pop_free(sk, X509_free);
    return NULL;
}

void issue_result_free(struct issue_result *r)
{
    free(r->der);
    sk_X509_pop_free(r->chain, X509_free);
    ca_runtime_release(r->ca);
    if (r->p12) {
        OPENSSL_cleanse(r->p12, r->p12_len);
        free(r->p12);
    }
    memset(r, 0, sizeof(*r));
}

static X509_EXTENSION *ext_eku(char *const *oids, size_t n, bool critical)
{
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    X509_EXTENSION *x = NULL;
    if (!eku)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        ASN1_OBJECT *o = OBJ_txt2obj(oids[i], 1);
        if (!o || !sk_ASN1_OBJECT_push(eku, o)) {
            ASN1_OBJECT_free(o);
            goto out;
        }
    }
    x = X509V3_EXT_i2d(NID_ext_key_usage, critical, eku);
out:
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return x;
}

static X509_EXTENSION *ext_policies(char *const *oids, size_t n)
{
    CERTIFICATEPOLICIES *cp = sk_POLICYINFO_new_null();
    X509_EXTENSION *x = NULL;
    if (!cp)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        POLICYINFO *pi = POLICYINFO_new();
        if (!pi)
            goto out;
        ASN1_OBJECT_free(pi->policyid);
        if (!(pi->policyid = OBJ_txt2obj(oids[i], 1)) || !sk_POLICYINFO_push(cp, pi)) {
            POLICYINFO_free(pi);
            goto out;
        }
    }
    x = X509V3_EXT_i2d(NID_certificate_policies, 0, cp);
out:
    sk_POLICYINFO_pop_free(cp, POLICYINFO_free);
    return x;
}

/* Extensions the profile decides; a request may only supply them when the
 * profile lists them in allowed_extensions. */
static bool profile_controlled(int nid)
{
    return nid == NID_basic_constraints || nid == NID_key_usage || nid == NID_subject_key_identifier ||
           nid == NID_authority_key_identifier || nid == NID_crl_distribution_points || nid == NID_info_access ||
           nid == NID_subject_alt_name;
}

struct req_exts {
    STACK_OF(X509_EXTENSION) *extra; /* allowed, copied as given */
    X509_EXTENSION *eku;             /* allowed EKU override */
    X509_EXTENSION *policies;        /* allowed policies override */
};

static void req_exts_free(struct req_exts *r)
{
    sk_X509_EXTENSION_pop_free(r->extra, X509_EXTENSION_free);
    X509_EXTENSION_free(r->eku);
    X509_EXTENSION_free(r->policies);
    memset(r, 0, sizeof(*r));
}

/* Applies the allow-list to one requested extension (takes ownership). */
static int take_ext(struct req_exts *r, const struct profile *p, X509_EXTENSION *x, const char *field, bool from_csr,
                    struct err *e)
{
    char oid[PROFILE_OID_MAX + 2];
    ASN1_OBJECT *obj = X509_EXTENSION_get_object(x);
    int nid = OBJ_obj2nid(obj);
    int ol = OBJ_obj2txt(oid, sizeof oid, obj, 1);
    if (ol <= 0 || (size_t)ol >= sizeof oid) {
        X509_EXTENSION_free(x);
        err_set(e, 400, "invalid_field", field, "%s: extension object identifier longer than %d characters", field,
                PROFILE_OID_MAX);
        return -1;
    }
    bool allowed = profile_allows_ext(p, oid);
    /* CSRs routinely carry keyUsage / basicConstraints / EKU / SAN the
     * requester's tool put there; the profile and the CA decide those, so
     * they are not a reason to refuse (SANs are merged separately). */
    if (from_csr && (profile_controlled(nid) || (!allowed && nid == NID_ext_key_usage))) {
        X509_EXTENSION_free(x);
        return 0;
    }
    /* The CA writes these itself: taken from the request too, the
     * certificate would carry two (and a raw SAN would skip its checks). */
    if (profile_controlled(nid)) {
        X509_EXTENSION_free(x);
        err_set(e, 400, "invalid_field", field, "%s: extension %s is set by the CA%s", field, oid,
                nid == NID_subject_alt_name ? "; give subject alternative names in subjectAltNames" : "");
        return -1;
    }
    if (!allowed) {
        X509_EXTENSION_free(x);
        if (p->ignore_unknown && !profile_controlled(nid))
            return 0;
        err_set(e, 400, "invalid_field", field,
                "%s: extension %s is not allowed by profile '%s'%s", field, oid, p->id,
                profile_controlled(nid) ? " (the profile sets it)" : " (ignore_unknown_extensions is false)");
        return -1;
    }
    bool twice = (nid == NID_ext_key_usage && r->eku) || (nid == NID_certificate_policies && r->policies);
    for (int i = 0; !twice && i < sk_X509_EXTENSION_num(r->extra); i++)
        twice = OBJ_cmp(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(r->extra, i)), obj) == 0;
    if (twice) {
        X509_EXTENSION_free(x);
        err_set(e, 400, "invalid_field", field, "%s: extension %s given twice (in the CSR or the request)", field,
                oid);
        return -1;
    }
    /* The value must decode as the extension it claims to be (or at least
     * as one DER element for private extensions). */
    ASN1_OCTET_STRING *val = X509_EXTENSION_get_data(x);
    const unsigned char *vp = ASN1_STRING_get0_data(val);
    void *decoded = X509V3_EXT_d2i(x);
    bool ok;
    bool empty = false, reserved = false;
    if (decoded) {
        /* RFC 5280 4.2.1.4 / 4.2.1.12: SIZE (1..MAX) */
        if (nid == NID_ext_key_usage) {
            empty = sk_ASN1_OBJECT_num(decoded) < 1;
            /* no purpose that acts for the CA (an OCSP responder's, any) */
            for (int k = 0; k < sk_ASN1_OBJECT_num(decoded); k++) {
                char eo[PROFILE_OID_MAX + 1];
                if (OBJ_obj2txt(eo, sizeof eo, sk_ASN1_OBJECT_value(decoded, k), 1) > 0 && profile_eku_reserved(eo))
                    reserved = true;
            }
        }
        else if (nid == NID_certificate_policies)
            empty = sk_POLICYINFO_num(decoded) < 1;
        const X509V3_EXT_METHOD *m = X509V3_EXT_get(x);
        if (m && m->it)
            ASN1_item_free(decoded, ASN1_ITEM_ptr(m->it));
        else if (m && m->ext_free)
            m->ext_free(decoded);
        ok = true;
    } else if (X509V3_EXT_get(x)) {
        ok = false;
    } else {
        ASN1_TYPE *t = d2i_ASN1_TYPE(NULL, &vp, ASN1_STRING_length(val));
        ok = t && vp == ASN1_STRING_get0_data(val) + ASN1_STRING_length(val);
        ASN1_TYPE_free(t);
    }
    if (!ok) {
        X509_EXTENSION_free(x);
        err_set(e, 400, "invalid_field", field, "%s: the value of extension %s is not valid DER", field, oid);
        return -1;
    }
    if (empty) {
        X509_EXTENSION_free(x);
        err_set(e, 400, "invalid_field", field, "%s: extension %s must list at least one entry", field, oid);
        return -1;
    }
    if (reserved) {
        X509_EXTENSION_free(x);
        err_set(e, 400, "invalid_field", field,
                "%s: extendedKeyUsage may not ask for OCSP signing, anyExtendedKeyUsage, CMC CA/RA or Certificate "
                "Request Agent (reserved for the CA's and the service's own certificates)",
                field);
        return -1;
    }
    if (nid == NID_ext_key_usage && !r->eku) {
        r->eku = x;
        return 0;
    }
    if (nid == NID_certificate_policies && !r->policies) {
        r->policies = x;
        return 0;
    }
    if (!sk_X509_EXTENSION_push(r->extra, x)) {
        X509_EXTENSION_free(x);
        err_set(e, 500, "internal", "", "out of memory");
        return -1;
    }
    return 0;
}

static int request_exts(struct req_exts *r, const struct profile *p, const json_t *arr, struct err *e)
{
    size_t i;
    json_t *v;
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) > ISSUE_MAX_REQ_EXTS) {
        err_set(e, 400, "invalid_field", "extensions", "extensions: an array of at most %d {oid, critical, value}",
                ISSUE_MAX_REQ_EXTS);
        return -1;
    }
    json_array_foreach(arr, i, v) {
        char field[40];
        unsigned char *der = NULL;
        size_t dlen = 0;
        snprintf(field, sizeof field, "extensions[%zu]", i);
        const char *oid = json_string_value(json_object_get(v, "oid"));
        const char *val = json_string_value(json_object_get(v, "value"));
        const json_t *crit = json_object_get(v, "critical");
        if (!json_is_object(v) || !oid || !val || (crit && !json_is_boolean(crit))) {
            err_set(e, 400, "invalid_field", field, "%s: must be {\"oid\": \"2.5.29.32\", \"critical\": false, "
                    "\"value\": \"<base64 DER>\"}", field);
            return -1;
        }
        ASN1_OBJECT *obj = strlen(oid) <= PROFILE_OID_MAX ? OBJ_txt2obj(oid, 1) : NULL;
        if (!obj || strspn(oid, "0123456789.") != strlen(oid)) {
            ASN1_OBJECT_free(obj);
            err_set(e, 400, "invalid_field", field, "%s: oid must be a dotted object identifier", field);
            return -1;
        }
        if (strlen(val) > MAX_EXT_VALUE * 2 || b64_decode(val, strlen(val), &der, &dlen) != 0 || dlen == 0 ||
            dlen > MAX_EXT_VALUE) {
            ASN1_OBJECT_free(obj);
            free(der);
            err_set(e, 400, "invalid_field", field, "%s: value must be base64 DER of at most %d bytes", field,
                    MAX_EXT_VALUE);
            return -1;
        }
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        X509_EXTENSION *x = NULL;
        if (os && ASN1_OCTET_STRING_set(os, der, (int)dlen) == 1)
            x = X509_EXTENSION_create_by_OBJ(NULL, obj, json_is_true(crit), os);
        ASN1_OCTET_STRING_free(os);
        ASN1_OBJECT_free(obj);
        free(der);
        if (!x) {
            err_set(e, 500, "internal", "", "out of memory");
            return -1;
        }
        if (take_ext(r, p, x, field, false, e) != 0)
            return -1;
    }
    return 0;
}

static int csr_exts(struct req_exts *r, const struct profile *p, X509_REQ *csr, GENERAL_NAMES *sans,
                    bool use_sans, bool wildcard, struct err *e)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    int rc = 0;
    if (!exts && (X509_REQ_get_attr_by_NID(csr, NID_ext_req, -1) >= 0 ||
                  X509_REQ_get_attr_by_NID(csr, NID_ms_ext_req, -1) >= 0)) {
        /* present but not decodable: its SANs and extensions would be
         * dropped without a word */
        ERR_clear_error();
        err_set(e, 400, "invalid_field", "csr", "csr: the extensionRequest attribute is malformed");
        return -1;
    }
    for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *x = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(x)) == NID_subject_alt_name) {
            if (!use_sans)
                continue;
            GENERAL_NAMES *gn = X509V3_EXT_d2i(x);
            if (!gn) {
                err_set(e, 400, "invalid_field", "csr", "csr: the subjectAltName extension is malformed");
                rc = -1;
                break;
            }
            rc = san_merge_checked(sans, gn, wildcard, e);
            GENERAL_NAMES_free(gn);
            if (rc != 0)
                break;
            continue;
        }
        X509_EXTENSION *dup = X509_EXTENSION_dup(x);
        if (!dup) {
            err_set(e, 500, "internal", "", "out of memory");
            rc = -1;
            break;
        }
        if (take_ext(r, p, dup, "csr", true, e) != 0) {
            rc = -1;
            break;
        }
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

static bool profile_has_eku(const struct profile *p, const char *oid)
{
    for (size_t i = 0; i < p->neku; i++)
        if (strcmp(p->eku[i], oid) == 0)
            return true;
    return false;
}

static EVP_PKEY *gen_key(const char *kt)
{
    if (strcmp(kt, "RSA-2048") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (strcmp(kt, "RSA-3072") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
    if (strcmp(kt, "RSA-4096") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
    if (strcmp(kt, "EC-P256") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (strcmp(kt, "EC-P384") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if (strcmp(kt, "EC-P521") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    return NULL;
}

/* Last check before the signature: what is about to be encoded matches
 * the profile (want_ku: the profile's key usage for this key type). The extensions are decoded from their encoded values, as a
 * relying party would read them. Any mismatch is our bug, never the
 * requester's. */
static int lint(const struct cert_template *t, const struct profile *p, unsigned want_ku, X509 *issuer,
                int64_t ca_not_after, const char **why)
{
    int crit = -1;
    *why = NULL;
    for (int i = 0; i < sk_X509_EXTENSION_num(t->exts); i++)
        if (X509v3_get_ext_by_OBJ(t->exts, X509_EXTENSION_get_object(sk_X509_EXTENSION_value(t->exts, i)), i) >= 0)
            return *why = "an extension appears twice (RFC 5280 4.2)", -1;
    if (t->serial[0] == 0 || (t->serial[0] & 0x80))
        return *why = "serial number is not 16 positive bytes", -1;
    if (t->not_before >= t->not_after)
        return *why = "notBefore is not before notAfter", -1;
    if (t->not_after > ca_not_after)
        return *why = "notAfter is past the CA's", -1;
    BASIC_CONSTRAINTS *bc = X509V3_get_d2i(t->exts, NID_basic_constraints, &crit, NULL);
    bool bc_ok = bc && crit == 1 && (bc->ca != 0) == p->ca;
    BASIC_CONSTRAINTS_free(bc);
    if (!bc_ok)
        return *why = "basicConstraints missing, not critical or cA mismatch", -1;
    ASN1_BIT_STRING *ku = X509V3_get_d2i(t->exts, NID_key_usage, &crit, NULL);
    unsigned bits = 0;
    for (int b = 0; ku && b < 9; b++)
        if (ASN1_BIT_STRING_get_bit(ku, b))
            bits |= b < 8 ? (0x80u >> b) : 0x8000u;
    ASN1_BIT_STRING_free(ku);
    if (bits != want_ku || (crit == 1) != p->ku_critical)
        return *why = "keyUsage differs from the profile", -1;
    EXTENDED_KEY_USAGE *eku = X509V3_get_d2i(t->exts, NID_ext_key_usage, &crit, NULL);
    bool eku_ok = (p->neku == 0 && crit == -1) || (eku != NULL && sk_ASN1_OBJECT_num(eku) > 0);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    if (!eku_ok)
        return *why = "extendedKeyUsage missing", -1;
    unsigned char ski[SKI_LEN];
    ASN1_OCTET_STRING *xs = X509V3_get_d2i(t->exts, NID_subject_key_identifier, NULL, NULL);
    bool ski_ok = xs &&
                  (t->spki ? x509_ski_from_xpub(t->spki, ski) : x509_ski_compute(t->pubkey, ski)) == 0 &&
                  ASN1_STRING_length(xs) == SKI_LEN && memcmp(ASN1_STRING_get0_data(xs), ski, SKI_LEN) == 0;
    ASN1_OCTET_STRING_free(xs);
    if (!ski_ok)
        return *why = "subjectKeyIdentifier is not RFC 7093 method 1", -1;
    AUTHORITY_KEYID *aki = X509V3_get_d2i(t->exts, NID_authority_key_identifier, NULL, NULL);
    const ASN1_OCTET_STRING *iski = X509_get0_subject_key_id(issuer);
    bool aki_ok = aki && aki->keyid && (!iski || ASN1_OCTET_STRING_cmp(aki->keyid, iski) == 0);
    AUTHORITY_KEYID_free(aki);
    if (!aki_ok)
        return *why = "authorityKeyIdentifier does not match the issuer", -1;
    GENERAL_NAMES *gn = X509V3_get_d2i(t->exts, NID_subject_alt_name, &crit, NULL);
    bool empty_subject = X509_NAME_entry_count(t->subject) == 0;
    bool san_ok = !empty_subject || (gn && crit == 1);
    if (gn) {
        GENERAL_NAMES *tmp = GENERAL_NAMES_new();
        struct err e;
        san_ok = san_ok && tmp && san_merge_checked(tmp, gn, true, &e) == 0;
        GENERAL_NAMES_free(tmp);
    }
    GENERAL_NAMES_free(gn);
    if (!san_ok)
        return *why = "subjectAltName syntax or criticality", -1;
    if (X509_NAME_cmp(t->issuer, X509_get_subject_name(issuer)) != 0)
        return *why = "issuer name differs from the CA subject", -1;
    return 0;
}

static int make_p12(EVP_PKEY *key, X509 *cert, STACK_OF(X509) *chain, const char *pass, unsigned char **out,
                    size_t *len)
{
    /* AES-256-CBC with PBKDF2/HMAC-SHA-256 for key and certificates, SHA-256
     * MAC: what OpenSSL 3 and current Windows/macOS import. */
    PKCS12 *p12 = PKCS12_create_ex((char *)pass, "pkiaas", key, cert, chain, NID_aes_256_cbc, NID_aes_256_cbc,
                                   P12_ITER, P12_ITER, 0, NULL, NULL);
    unsigned char *p = NULL;
    int n;
    if (!p12)
        return -1;
    n = i2d_PKCS12(p12, &p);
    PKCS12_free(p12);
    if (n <= 0)
        return -1;
    *out = malloc((size_t)n);
    if (!*out) {
        OPENSSL_free(p);
        return -1;
    }
    memcpy(*out, p, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(p);
    return 0;
}

int issue_certificate(const struct ca_env *env, const struct issue_req *r, struct issue_result *out, struct err *e)
{
    struct ca_runtime *rt = NULL;
    const struct ca_rec *cap = NULL;
    const struct profile *p = NULL;
    X509_REQ *csr = NULL;
    EVP_PKEY *csr_pub = NULL; /* the CSR's subject key */
    EVP_PKEY *key = NULL; /* server-side key */
    EVP_PKEY *pub = NULL; /* borrowed */
    X509_NAME *subject = NULL;
    bool subject_borrowed = false; /* the CSR's or the request's own */
    char *subject_txt = NULL;      /* dn_print(subject), once */
    GENERAL_NAMES *sans = GENERAL_NAMES_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    struct req_exts rx = {sk_X509_EXTENSION_new_null(), NULL, NULL};
    X509 *cacert = NULL, *cert = NULL;
    struct signer *sig = NULL;
    char *crl = NULL, *ocsp = NULL, *aia = NULL, *sans_text = NULL;
    unsigned char *der = NULL;
    int rc = -1;
    int64_t now = time_now();
    memset(out, 0, sizeof(*out));
    if (!sans || !exts || !rx.extra)
        goto oom;

    /* CA (from the runtime cache: record, certificate, chain, signer) */
    int s;
    if (!(rt = ca_runtime_get(env, r->partition, r->ca_id, e)))
        goto out;
    cap = &rt->rec;
    if (strcmp(cap->status, "active") != 0 || strcmp(cap->type, "externalKey") == 0 || !rt->signer) {
        err_set(e, 409, "conflict", "caId", "CA '%s' cannot issue (%s%s)", cap->id, cap->status,
                strcmp(cap->type, "externalKey") == 0 ? ", external root" : "");
        goto out;
    }
    cacert = rt->cert;
    sig = rt->signer;
    if (strcmp(rt->cert_status, "revoked") == 0 || strcmp(rt->cert_status, "suspended") == 0) {
        /* whatever it signed now would not validate (RFC 5280 6.3) */
        err_set(e, 409, "conflict", "caId", "CA '%s' cannot issue: its own certificate is %s", cap->id,
                rt->cert_status);
        goto out;
    }
    if (rt->not_after <= now) {
        err_set(e, 409, "conflict", "caId", "CA '%s' has expired", cap->id);
        goto out;
    }

    /* Profile: exists, assigned to this CA, allowed for its type */
    if (!r->profile_id) {
        err_set(e, 400, "invalid_field", "profileId", "profileId: required");
        goto out;
    }
    if (!(p = profile_resolve(env->store, r->partition, r->profile_id, e)))
        goto out;
    if (!ca_runtime_has_profile(rt, p->id)) {
        err_set(e, 409, "conflict", "profileId", "profileId: profile '%s' is not assigned to CA '%s'", p->id, cap->id);
        goto out;
    }
    if (!(p->ca_types & profile_catype(cap->type))) {
        err_set(e, 409, "conflict", "profileId", "profileId: profile '%s' does not allow %s CAs", p->id, cap->type);
        goto out;
    }

    /* Key: CSR (proof of possession) or server-side generation */
    if ((r->csr != NULL) + (r->key_type != NULL) + (r->pubkey != NULL) > 1) {
        err_set(e, 400, "invalid_field", "keyType", "keyType: give either a csr or a keyType, not both");
        goto out;
    }
    if (r->csr) {
        if (r->p12_password) {
            err_set(e, 400, "invalid_field", "p12Password", "p12Password: only for server-side keys (keyType)");
            goto out;
        }
        if (!(csr = csr_parse_key(r->csr, r->csr_len, ca_cache_csr_keys(env->cache), &csr_pub, e)))
            goto out;
        pub = csr_pub;
    } else if (r->key_type) {
        if (strcmp(cap->type, "root") == 0) {
            err_set(e, 400, "invalid_field", "keyType", "keyType: root CAs cannot issue PKCS#12");
            goto out;
        }
        if (p->ca) {
            /* a CA's private key is never generated here and handed out */
            err_set(e, 400, "invalid_field", "keyType",
                    "keyType: profile '%s' issues CA certificates, which are issued from a CSR only", p->id);
            goto out;
        }
        /* counted in characters (code points), as the API documents it */
        size_t pw_chars = 0;
        if (!r->p12_password || !utf8_valid((const unsigned char *)r->p12_password, strlen(r->p12_password), &pw_chars) ||
            pw_chars < 8 || pw_chars > 128) {
            err_set(e, 400, "invalid_field", "p12Password", "p12Password: required, 8-128 characters of UTF-8");
            goto out;
        }
        const char *kt = r->key_type;
        unsigned bit = 0;
        for (unsigned b = 1; b <= KT_EC521; b <<= 1)
            if (profile_key_type_name(b) && strcmp(profile_key_type_name(b), kt) == 0)
                bit = b;
        if (!bit) {
            err_set(e, 400, "invalid_field", "keyType",
                    "keyType: must be RSA-2048, RSA-3072, RSA-4096, EC-P256, EC-P384 or EC-P521");
            goto out;
        }
        if (!(key = gen_key(kt)))
            goto internal;
        pub = key;
    } else if (r->pubkey) {
        if (r->p12_password) {
            err_set(e, 400, "invalid_field", "p12Password", "p12Password: only for server-side keys (keyType)");
            goto out;
        }
        pub = r->pubkey;
    } else {
        err_set(e, 400, "invalid_field", "csr", "csr: required (or keyType and p12Password for a server-side key)");
        goto out;
    }
    unsigned kt = profile_key_type(pub);
    if (!kt) {
        err_set(e, 400, "invalid_field", r->csr ? "csr" : "keyType",
                "%s: subject key must be RSA 2048/3072/4096 or ECDSA P-256/P-384/P-521", r->csr ? "csr" : "keyType");
        goto out;
    }
    if (!(p->key_types & kt)) {
        err_set(e, 400, "invalid_field", r->csr ? "csr" : "keyType", "%s: profile '%s' does not accept %s keys",
                r->csr ? "csr" : "keyType", p->id, profile_key_type_name(kt));
        goto out;
    }

    /* RFC 5480 3 / RFC 8813: keyEncipherment and dataEncipherment are RSA
     * key-transport usages; an EC (or any non-RSA) key's certificate never
     * carries them. A profile that offers nothing else needs an RSA key. */
    unsigned ku = p->ku;
    if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA) {
        ku &= ~(unsigned)(KU_KEY_ENCIPHERMENT | KU_DATA_ENCIPHERMENT);
        if (ku == 0 && p->ku != 0) {
            err_set(e, 400, "invalid_field", r->csr ? "csr" : "keyType",
                    "%s: profile '%s' is for key encipherment, which needs an RSA key (an %s key cannot encipher "
                    "keys: RFC 5480)",
                    r->csr ? "csr" : "keyType", p->id, profile_key_type_name(kt));
            goto out;
        }
    }

    /* Subject */
    if (r->subject) {
        char dnerr[200];
        if (*r->subject == 0) {
            subject = X509_NAME_new();
        } else if (dn_parse(r->subject, &subject, dnerr, sizeof dnerr) != 0) {
            err_set(e, 400, "invalid_field", "subject", "subject: %s", dnerr);
            goto out;
        }
    } else if (csr || r->subject_name) {
        /* The CSR's subject (or a CMP template's) is re-validated with our
         * DN rules through its RFC 4514 text, and the name parsed back from
         * that text is the one certified: same attributes in the same
         * order, each in the string type RFC 5280 appendix A gives it
         * (countryName and serialNumber PrintableString, emailAddress and
         * domainComponent IA5String) whatever the request used. */
        const X509_NAME *asked = csr ? X509_REQ_get_subject_name(csr) : r->subject_name;
        if (X509_NAME_entry_count(asked) == 0) {
            subject = (X509_NAME *)asked; /* only read */
            subject_borrowed = true;
            subject_txt = dn_print(subject);
        } else {
            char dnerr[200] = "cannot be written as an RFC 4514 string";
            subject_txt = dn_print(asked);
            if (!subject_txt || dn_parse(subject_txt, &subject, dnerr, sizeof dnerr) != 0) {
                err_set(e, 400, "invalid_field", csr ? "csr" : "subject", "%ssubject: %s", csr ? "csr: " : "",
                        dnerr);
                goto out;
            }
        }
    } else {
        err_set(e, 400, "invalid_field", "subject", "subject: required for server-side keys");
        goto out;
    }
    if (!subject)
        goto oom;

    /* SANs: request list, CSR extensionRequest, CN copies for supply-san */
    bool wildcard = profile_has_eku(p, "1.3.6.1.5.5.7.3.1");
    if (san_from_json(r->sans, sans, wildcard, e) != 0)
        goto out;
    X509_REQ *ext_src = csr ? csr : r->key_type ? r->template_csr : NULL;
    if (ext_src && csr_exts(&rx, p, ext_src, sans, !r->ignore_csr_sans, wildcard, e) != 0)
        goto out;
    if (request_exts(&rx, p, r->extensions, e) != 0)
        goto out;
    if (p->supply_san) {
        for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;) {
            unsigned char *cn = NULL;
            int n = ASN1_STRING_to_UTF8(&cn, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)));
            if (n > 0 && !san_contains_dns(sans, (char *)cn)) {
                if (!san_dns_valid((char *)cn, wildcard)) {
                    OPENSSL_free(cn);
                    err_set(e, 400, "invalid_field", "subject",
                            "subject: profile '%s' copies the CN into a DNS name, and the CN is not a DNS name",
                            p->id);
                    goto out;
                }
                if (san_add(sans, "dNSName", (char *)cn, wildcard, "subject", e) != 0) {
                    OPENSSL_free(cn);
                    goto out;
                }
            }
            OPENSSL_free(cn);
        }
    }
    bool empty_subject = X509_NAME_entry_count(subject) == 0;
    if (empty_subject && sk_GENERAL_NAME_num(sans) == 0) {
        err_set(e, 400, "invalid_field", "subject", "subject: empty subject needs at least one subjectAltName");
        goto out;
    }
    if (p->san_required && sk_GENERAL_NAME_num(sans) == 0) {
        err_set(e, 400, "invalid_field", "subjectAltNames", "subjectAltNames: profile '%s' requires at least one",
                p->id);
        goto out;
    }

    /* Validity: request, else profile, else 3 years; never past the CA */
    int64_t ca_na = rt->not_after, na;
    int64_t start = now; /* the validity period is counted from here */
    if (r->not_before) {
        /* a few minutes of client clock skew are forgiven, not backdating */
        if (time_parse_rfc3339(r->not_before, &start) != 0 || start < now - NOT_BEFORE_SKEW_S) {
            err_set(e, 400, "invalid_field", "notBefore", "notBefore: must be an RFC 3339 date-time, not in the past");
            goto out;
        }
        if (start >= ca_na) {
            err_set(e, 400, "invalid_field", "notBefore", "notBefore: after the CA certificate expires");
            goto out;
        }
        if (start < now)
            start = now;
    }
    if (r->not_after && r->validity_period) {
        err_set(e, 400, "invalid_field", "notAfter", "notAfter: give either notAfter or validityPeriod");
        goto out;
    }
    if (r->not_after) {
        if (time_parse_rfc3339(r->not_after, &na) != 0 || na <= start) {
            err_set(e, 400, "invalid_field", "notAfter", "notAfter: must be a future RFC 3339 date-time");
            goto out;
        }
    } else if (r->validity_period) {
        struct duration d;
        if (duration_parse(r->validity_period, &d) != 0) {
            err_set(e, 400, "invalid_field", "validityPeriod",
                    "validityPeriod: ISO 8601 duration such as P90D or P1Y (at most 100 years)");
            goto out;
        }
        na = duration_add(start, &d);
    } else if (p->validity_text[0]) {
        na = duration_add(start, &p->validity);
    } else {
        na = time_add_years(start, ISSUE_DEFAULT_YEARS);
    }
    if (na > ca_na) {
        na = ca_na;
        out->capped = true;
    }
    /* small backdate for relying parties' clock skew, unless a later start was asked for */
    int64_t nb = start > now ? start : now - 60;
    if (na <= nb) {
        err_set(e, 409, "conflict", "caId", "CA '%s' expires too soon to issue", cap->id);
        goto out;
    }

    /* Extensions, in a stable order */
    unsigned char ski[SKI_LEN];
    const ASN1_OCTET_STRING *caski = X509_get0_subject_key_id(cacert);
    unsigned char caski_buf[SKI_LEN];
    if ((csr ? x509_ski_from_xpub(X509_REQ_get_X509_PUBKEY(csr), ski) : x509_ski_compute(pub, ski)) != 0)
        goto internal;
    int path_len = p->ca ? p->path_len : -1;
    if (p->ca) {
        /* RFC 5280 4.2.1.9, 6.1.4 (l), (m): every CA above allows at most
         * its pathLenConstraint CA certificates below it. The issuing CA at
         * depth d of its chain (0: itself) is followed by d CA certificates
         * and this one, so this certificate may exist only if d + 1 <= L
         * for each, and its own pathLen is at most L - d - 1. */
        long bound = -1;
        for (int d = 0; d < sk_X509_num(rt->chain); d++) {
            long l = X509_get_pathlen(sk_X509_value(rt->chain, d));
            if (l < 0)
                continue;
            if (l < d + 1) {
                err_set(e, 409, "conflict", "profileId",
                        "CA '%s' cannot issue a CA certificate: the pathLenConstraint of %s allows no further CA "
                        "below it",
                        cap->id, d == 0 ? "this CA" : "a CA above it");
                goto out;
            }
            if (bound < 0 || l - d - 1 < bound)
                bound = l - d - 1;
        }
        if (bound >= 0 && (path_len < 0 || path_len > bound))
            path_len = (int)bound;
    }
    if (ext_push(exts, ext_basic_constraints(p->ca, path_len)))
        goto oom;
    X509_EXTENSION *kux = ext_key_usage(ku);
    if (!kux)
        goto oom;
    X509_EXTENSION_set_critical(kux, p->ku_critical);
    if (ext_push(exts, kux))
        goto oom;
    if (rx.eku) {
        if (!sk_X509_EXTENSION_push(exts, rx.eku))
            goto oom;
        rx.eku = NULL;
    } else if (p->neku && ext_push(exts, ext_eku(p->eku, p->neku, p->eku_critical))) {
        goto oom;
    }
    if (ext_push(exts, ext_ski(ski)))
        goto oom;
    if (caski) {
        if (ext_push(exts, ext_aki(ASN1_STRING_get0_data(caski), (size_t)ASN1_STRING_length(caski))))
            goto oom;
    } else if (x509_ski_compute(X509_get0_pubkey(cacert), caski_buf) != 0 || ext_push(exts, ext_aki(caski_buf, SKI_LEN))) {
        goto oom;
    }
    /* Serial first: a partitioned CA's shard derives from it and is fixed
     * here, in the certificate's CRL distribution point. */
    struct cert_template t;
    memset(&t, 0, sizeof t);
    if (x509_serial_new(t.serial) != 0)
        goto internal;
    /* CA certificates stay on the full CRL: a shard's CRL says it holds
     * only end-entity certificates (onlyContainsUserCerts), which RFC 5280
     * 6.3.3 makes unusable for a certificate with cA=TRUE */
    int shard = p->ca ? -1 : crl_shard_of(t.serial, SERIAL_LEN, cap->crl_shards);
    if (cap->crl_enabled &&
        (!(crl = shard >= 0 ? ca_url_crl_shard(env, r->partition, cap->id, shard) : ca_url_crl(env, r->partition, cap->id)) ||
         ext_push(exts, ext_crl_dp(crl))))
        goto oom;
    if (cap->ocsp_enabled && !(ocsp = ca_url_ocsp(env, r->partition, cap->id)))
        goto oom;
    if (!(aia = ca_url_issuer_cert(env, r->partition, cap->id)) || ext_push(exts, ext_aia(ocsp, aia)))
        goto oom;
    if (sk_GENERAL_NAME_num(sans) > 0 &&
        ext_push(exts, X509V3_EXT_i2d(NID_subject_alt_name, empty_subject ? 1 : 0, sans)))
        goto oom;
    if (rx.policies && p->npolicies) {
        /* The profile's policies plus the request's (docs/profiles.md). */
        CERTIFICATEPOLICIES *cp = X509V3_EXT_d2i(rx.policies);
        for (size_t i = 0; cp && i < p->npolicies; i++) {
            ASN1_OBJECT *o = OBJ_txt2obj(p->policies[i], 1);
            bool have = false;
            for (int k = 0; o && k < sk_POLICYINFO_num(cp); k++)
                if (OBJ_cmp(sk_POLICYINFO_value(cp, k)->policyid, o) == 0)
                    have = true;
            POLICYINFO *pi = o && !have ? POLICYINFO_new() : NULL;
            if (pi) {
                ASN1_OBJECT_free(pi->policyid);
                pi->policyid = o;
                o = NULL;
                if (!sk_POLICYINFO_push(cp, pi))
                    POLICYINFO_free(pi);
            }
            ASN1_OBJECT_free(o);
        }
        X509_EXTENSION *merged = cp ? X509V3_EXT_i2d(NID_certificate_policies,
                                                     X509_EXTENSION_get_critical(rx.policies), cp)
                                    : NULL;
        sk_POLICYINFO_pop_free(cp, POLICYINFO_free);
        if (ext_push(exts, merged))
            goto oom;
    } else if (rx.policies) {
        if (!sk_X509_EXTENSION_push(exts, rx.policies))
            goto oom;
        rx.policies = NULL;
    } else if (p->npolicies && ext_push(exts, ext_policies(p->policies, p->npolicies))) {
        goto oom;
    }
    while (sk_X509_EXTENSION_num(rx.extra) > 0) {
        X509_EXTENSION *x = sk_X509_EXTENSION_shift(rx.extra);
        if (!sk_X509_EXTENSION_push(exts, x)) {
            X509_EXTENSION_free(x);
            goto oom;
        }
    }

    /* Assemble, lint, sign */
    t.subject = subject;
    t.issuer = X509_get_subject_name(cacert);
    t.pubkey = pub;
    t.spki = csr ? X509_REQ_get_X509_PUBKEY(csr) : NULL;
    t.not_before = nb;
    t.not_after = na;
    t.exts = exts;
    const char *why = NULL;
    if (lint(&t, p, ku, cacert, ca_na, &why) != 0) {
        log_error("lint refused certificate for CA %s/%s profile %s: %s", r->partition, cap->id, p->id, why);
        err_set(e, 500, "internal", "", "internal error: the certificate failed its final profile check");
        goto out;
    }
    size_t dl = 0;
    if (certbuild_sign_der(&t, sig, &der, &dl) != 0)
        goto internal;

    /* Commit before anyone sees the certificate */
    struct cert_rec cr;
    memset(&cr, 0, sizeof cr);
    snprintf(cr.partition_id, sizeof cr.partition_id, "%s", r->partition);
    cr.issuer_ca_pk = cap->pk;
    char *sn = hex_encode(t.serial, SERIAL_LEN); /* positive, non-zero first byte: no 00 prefix */
    snprintf(cr.serial, sizeof cr.serial, "%s", sn ? sn : "");
    free(sn);
    cr.subject = subject_txt ? subject_txt : (subject_txt = dn_print(subject));
    cr.sans = sans_text = san_to_text(sans);
    cr.not_before = nb;
    cr.not_after = na;
    snprintf(cr.status, sizeof cr.status, "issued");
    cr.revocation_reason = -1;
    cr.profile_id = (char *)p->id;
    cr.requester = (char *)(r->requester ? r->requester : "unknown");
    cr.is_ca = p->ca;
    cr.crl_shard = shard;
    cr.der = der;
    cr.der_len = dl;
    cr.created_at = now;
    char target[96];
    snprintf(target, sizeof target, "cert:%s/%s", cap->id, cr.serial);
    /* the end entity's subject goes into the (JSON) detail for the
     * enrollment-events view; jansson escapes it */
    json_t *dj = json_pack("{s:s,s:b,s:s}", "profile", p->id, "serverSideKey", key != NULL, "subject",
                           cr.subject ? cr.subject : "");
    char *detail = dj ? json_dumps(dj, JSON_COMPACT) : NULL;
    json_decref(dj);
    struct audit_rec a = {cr.requester, key ? "cert.issue.pkcs12" : "cert.issue", target, detail, r->requester_ip, NULL};
    s = env->store->ops->cert_insert(env->store, &cr, !p->ca, &a);
    free(detail);
    if (s == STORE_EQUOTA) {
        err_set(e, 422, "quota_exceeded", "",
                "the subscription's purchased certificates are all issued; purchase more to continue");
        goto out;
    }
    if (s == STORE_ESTATE) {
        err_set(e, 409, "conflict", "caId", "CA '%s' was deleted while the certificate was being issued; nothing was "
                "issued", r->ca_id);
        goto out;
    }
    if (s != STORE_OK)
        goto unavailable;
    snprintf(out->serial, sizeof out->serial, "%s", cr.serial);

    if (!(out->chain = X509_chain_up_ref(rt->chain)))
        goto internal;
    if (key) {
        const unsigned char *q = der;
        if (!(cert = d2i_X509(NULL, &q, (long)dl)) ||
            make_p12(key, cert, out->chain, r->p12_password, &out->p12, &out->p12_len) != 0)
            goto internal;
    }
    out->ca = ca_runtime_ref(rt);
    out->der = der;
    out->der_len = dl;
    out->not_before = nb;
    out->not_after = na;
    der = NULL;
    rc = 0;
    goto out;
oom:
    err_set(e, 500, "internal", "", "out of memory");
    goto out;
unavailable:
    err_set(e, 503, "unavailable", "", "store unavailable");
    goto out;
internal:
    err_set(e, 500, "internal", "", "internal error while issuing");
out:
    if (rc != 0) {
        sk_X509_pop_free(out->chain, X509_free);
        out->chain = NULL;
    }
    ca_runtime_release(rt);
    profile_release(p);
    X509_REQ_free(csr);
    EVP_PKEY_free(csr_pub);
    EVP_PKEY_free(key);
    if (!subject_borrowed)
        X509_NAME_free(subject);
    free(subject_txt);
    GENERAL_NAMES_free(sans);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    req_exts_free(&rx);
    X509_free(cert);
    free(crl);
    free(ocsp);
    free(aia);
    free(sans_text);
    free(der);
    return rc;
}
