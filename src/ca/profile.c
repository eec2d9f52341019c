#include "ca/profile.h"

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char profiles_system_json[];

static const struct {
    const char *name;
    unsigned bit;
} ku_names[] = {
    {"digitalSignature", KU_DIGITAL_SIGNATURE}, {"nonRepudiation", KU_NON_REPUDIATION},
    {"keyEncipherment", KU_KEY_ENCIPHERMENT},   {"dataEncipherment", KU_DATA_ENCIPHERMENT},
    {"keyAgreement", KU_KEY_AGREEMENT},         {"keyCertSign", KU_KEY_CERT_SIGN},
    {"cRLSign", KU_CRL_SIGN},                   {"encipherOnly", KU_ENCIPHER_ONLY},
    {"decipherOnly", KU_DECIPHER_ONLY},
};

static const struct {
    const char *name;
    unsigned bit;
} kt_names[] = {
    {"RSA-2048", KT_RSA2048}, {"RSA-3072", KT_RSA3072}, {"RSA-4096", KT_RSA4096},
    {"EC-P256", KT_EC256},    {"EC-P384", KT_EC384},    {"EC-P521", KT_EC521},
};

bool profile_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 2 || n > PROFILE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
            return false;
    return true;
}

unsigned profile_catype(const char *t)
{
    if (!t)
        return 0;
    if (strcmp(t, "root") == 0)
        return CATYPE_ROOT;
    if (strcmp(t, "intermediate") == 0)
        return CATYPE_INTERMEDIATE;
    if (strcmp(t, "subord") == 0)
        return CATYPE_SUBORD;
    return 0;
}

const char *profile_key_type_name(unsigned kt)
{
    for (size_t i = 0; i < sizeof kt_names / sizeof kt_names[0]; i++)
        if (kt_names[i].bit == kt)
            return kt_names[i].name;
    return NULL;
}

unsigned profile_key_type(const EVP_PKEY *pk)
{
    int id = EVP_PKEY_get_base_id(pk);
    if (id == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(pk);
        return bits == 2048 ? KT_RSA2048 : bits == 3072 ? KT_RSA3072 : bits == 4096 ? KT_RSA4096 : 0;
    }
    if (id == EVP_PKEY_EC) {
        char g[64];
        size_t gl = 0;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof g, &gl) != 1)
            return 0;
        if (strcmp(g, "prime256v1") == 0 || strcmp(g, "P-256") == 0)
            return KT_EC256;
        if (strcmp(g, "secp384r1") == 0 || strcmp(g, "P-384") == 0)
            return KT_EC384;
        if (strcmp(g, "secp521r1") == 0 || strcmp(g, "P-521") == 0)
            return KT_EC521;
    }
    return 0;
}

/* Extended key usages that make a certificate act for the CA or the
 * service: an OCSP responder's, anyExtendedKeyUsage, the CMC RA and CA
 * purposes (this service's SCEP/CMP responders), and Microsoft's
 * Certificate Request Agent (enrolling on behalf of others). */
static const char *const reserved_ekus[] = {
    "1.3.6.1.5.5.7.3.9",        /* id-kp-OCSPSigning */
    "2.5.29.37.0",              /* anyExtendedKeyUsage */
    "1.3.6.1.5.5.7.3.27",       /* id-kp-cmcCA */
    "1.3.6.1.5.5.7.3.28",       /* id-kp-cmcRA */
    "1.3.6.1.4.1.311.20.2.1",   /* Microsoft Certificate Request Agent */
};

bool profile_eku_reserved(const char *oid)
{
    for (size_t i = 0; oid && i < sizeof reserved_ekus / sizeof reserved_ekus[0]; i++)
        if (strcmp(oid, reserved_ekus[i]) == 0)
            return true;
    return false;
}

static bool oid_valid(const char *s)
{
    /* dotted decimal, first arc 0-2, at least two arcs, no leading zeros */
    size_t n = strlen(s);
    if (n < 3 || n > PROFILE_OID_MAX || s[0] < '0' || s[0] > '2' || s[1] != '.')
        return false;
    int arcs = 1;
    for (size_t i = 2; i < n; i++) {
        if (s[i] == '.') {
            if (s[i - 1] == '.' || i + 1 == n)
                return false;
            arcs++;
        } else if (s[i] < '0' || s[i] > '9') {
            return false;
        } else if (s[i] == '0' && s[i - 1] == '.' && i + 1 < n && s[i + 1] != '.') {
            return false;
        }
    }
    ASN1_OBJECT *o = OBJ_txt2obj(s, 1);
    bool ok = o != NULL && arcs >= 2;
    ASN1_OBJECT_free(o);
    return ok;
}

bool profile_allows_ext(const struct profile *p, const char *oid)
{
    for (size_t i = 0; i < p->nallowed; i++)
        if (strcmp(p->allowed_ext[i], oid) == 0)
            return true;
    return false;
}

void profile_free(struct profile *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->neku; i++)
        free(p->eku[i]);
    for (size_t i = 0; i < p->nallowed; i++)
        free(p->allowed_ext[i]);
    for (size_t i = 0; i < p->npolicies; i++)
        free(p->policies[i]);
    json_decref(p->json);
    free(p);
}

static int oid_list(const json_t *j, const char *field, char **out, size_t *n, struct err *e)
{
    const json_t *a = json_object_get(j, field);
    size_t i;
    json_t *v;
    *n = 0;
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > PROFILE_MAX_OIDS) {
        err_set(e, 400, "invalid_field", field, "%s: must be an array of at most %d OIDs", field, PROFILE_MAX_OIDS);
        return -1;
    }
    json_array_foreach(a, i, v) {
        if (!json_is_string(v) || !oid_valid(json_string_value(v))) {
            err_set(e, 400, "invalid_field", field, "%s[%zu]: not a dotted object identifier", field, i);
            return -1;
        }
        for (size_t k = 0; k < *n; k++)
            if (strcmp(out[k], json_string_value(v)) == 0) {
                err_set(e, 400, "invalid_field", field, "%s[%zu]: duplicate OID %s", field, i, out[k]);
                return -1;
            }
        if (!(out[(*n)++] = strdup(json_string_value(v))))
            return -1;
    }
    return 0;
}

static int get_bool(const json_t *j, const char *k, bool dflt, bool *out, struct err *e)
{
    const json_t *v = json_object_get(j, k);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v)) {
        err_set(e, 400, "invalid_field", k, "%s: must be true or false", k);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static const char *const profile_keys[] = {
    "id", "group", "kind", "system", "description", "allowedCATypes", "validity_period", "usages",
    "allowed_extensions", "ignore_unknown_extensions", "ca_constraint", "key_usage_critical",
    "extended_key_usage_critical", "supply_san", "pkcs12", "certificate_policies", "subject_alt_name", "key_types",
    NULL,
};

struct profile *profile_from_json(const json_t *j, bool system, struct err *e)
{
    struct profile *p = calloc(1, sizeof(*p));
    const char *k;
    json_t *v;
    size_t i;
    if (!p) {
        err_set(e, 500, "internal", "", "out of memory");
        return NULL;
    }
    p->system = system;
    p->path_len = -1;
    if (!json_is_object(j)) {
        err_set(e, 400, "invalid_json", "", "a profile must be a JSON object");
        goto fail;
    }
    json_object_foreach((json_t *)j, k, v) {
        bool known = false;
        for (const char *const *q = profile_keys; *q; q++)
            if (strcmp(*q, k) == 0)
                known = true;
        if (!known) {
            err_set(e, 400, "invalid_field", k, "%.60s: unknown profile field", k);
            goto fail;
        }
    }
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *group = json_string_value(json_object_get(j, "group"));
    if (!profile_id_valid(id)) {
        err_set(e, 400, "invalid_field", "id", "id: must be 2-64 characters of lowercase letters, digits and '-'");
        goto fail;
    }
    if (!profile_id_valid(group)) {
        err_set(e, 400, "invalid_field", "group",
                "group: must be 2-64 characters of lowercase letters, digits and '-'");
        goto fail;
    }
    snprintf(p->id, sizeof p->id, "%s", id);
    snprintf(p->group, sizeof p->group, "%s", group);
    const char *kind = json_string_value(json_object_get(j, "kind"));
    if (kind && strcmp(kind, "authority") != 0 && strcmp(kind, "subscriber") != 0) {
        err_set(e, 400, "invalid_field", "kind", "kind: must be subscriber or authority");
        goto fail;
    }
    p->authority = kind && strcmp(kind, "authority") == 0;
    const json_t *desc = json_object_get(j, "description");
    if (desc && !json_is_null(desc) && (!json_is_string(desc) || json_string_length(desc) > 512)) {
        err_set(e, 400, "invalid_field", "description", "description: must be a string of at most 512 characters");
        goto fail;
    }

    const json_t *types = json_object_get(j, "allowedCATypes");
    if (!json_is_array(types) || json_array_size(types) == 0) {
        err_set(e, 400, "invalid_field", "allowedCATypes",
                "allowedCATypes: select at least one of root, intermediate, subord");
        goto fail;
    }
    json_array_foreach(types, i, v) {
        unsigned t = profile_catype(json_string_value(v));
        if (!t) {
            err_set(e, 400, "invalid_field", "allowedCATypes", "allowedCATypes[%zu]: must be root, intermediate or subord",
                    i);
            goto fail;
        }
        p->ca_types |= t;
    }
    /* end-entity certificates come from issuing (subord) CAs only, as the
     * system subscriber profiles say: a custom one may not widen that */
    if (!system && !p->authority && p->ca_types != profile_catype("subord")) {
        err_set(e, 400, "invalid_field", "allowedCATypes",
                "allowedCATypes: subscriber profiles are for issuing CAs only ([\"subord\"])");
        goto fail;
    }

    const char *vp = json_string_value(json_object_get(j, "validity_period"));
    if (!vp || strlen(vp) >= sizeof p->validity_text || duration_parse(vp, &p->validity) != 0) {
        err_set(e, 400, "invalid_field", "validity_period",
                "validity_period: required ISO 8601 duration such as P1Y, P90D or P1Y6M (at most 100 years, %zu "
                "characters)", sizeof p->validity_text - 1);
        goto fail;
    }
    snprintf(p->validity_text, sizeof p->validity_text, "%s", vp);

    const json_t *us = json_object_get(j, "usages");
    if (!json_is_array(us) || json_array_size(us) == 0 || json_array_size(us) > PROFILE_MAX_OIDS) {
        err_set(e, 400, "invalid_field", "usages", "usages: required list of key usage names and EKU OIDs");
        goto fail;
    }
    json_array_foreach(us, i, v) {
        const char *u = json_string_value(v);
        bool found = false;
        for (size_t n = 0; u && n < sizeof ku_names / sizeof ku_names[0]; n++)
            if (strcmp(ku_names[n].name, u) == 0) {
                p->ku |= ku_names[n].bit;
                found = true;
            }
        if (found)
            continue;
        if (!u || !oid_valid(u)) {
            err_set(e, 400, "invalid_field", "usages",
                    "usages[%zu]: '%.40s' is neither a key usage name (digitalSignature, keyEncipherment, ...) nor an "
                    "EKU OID",
                    i, u ? u : "?");
            goto fail;
        }
        if (!system && profile_eku_reserved(u)) {
            err_set(e, 400, "invalid_field", "usages",
                    "usages[%zu]: %s is reserved for the CA's and the service's own certificates", i, u);
            goto fail;
        }
        /* the X.500 attribute and X.509 extension arcs name no purpose */
        if (!system && (strncmp(u, "2.5.4.", 6) == 0 || strncmp(u, "2.5.29.", 7) == 0)) {
            err_set(e, 400, "invalid_field", "usages",
                    "usages[%zu]: %s is an X.500 attribute or X.509 extension identifier, not an extended key usage",
                    i, u);
            goto fail;
        }
        for (size_t n = 0; n < p->neku; n++)
            if (strcmp(p->eku[n], u) == 0) {
                err_set(e, 400, "invalid_field", "usages", "usages[%zu]: duplicate %s", i, u);
                goto fail;
            }
        if (!(p->eku[p->neku++] = strdup(u)))
            goto oom;
    }
    if (!p->ku) {
        err_set(e, 400, "invalid_field", "usages", "usages: at least one key usage is required");
        goto fail;
    }
    if (oid_list(j, "allowed_extensions", p->allowed_ext, &p->nallowed, e) ||
        oid_list(j, "certificate_policies", p->policies, &p->npolicies, e))
        goto fail;
    if (get_bool(j, "ignore_unknown_extensions", true, &p->ignore_unknown, e) ||
        get_bool(j, "key_usage_critical", true, &p->ku_critical, e) ||
        get_bool(j, "extended_key_usage_critical", false, &p->eku_critical, e) ||
        get_bool(j, "supply_san", false, &p->supply_san, e) || get_bool(j, "pkcs12", false, &p->pkcs12, e))
        goto fail;

    const json_t *cc = json_object_get(j, "ca_constraint");
    if (cc && !json_is_null(cc)) {
        const char *ck;
        json_t *cv;
        if (!json_is_object(cc)) {
            err_set(e, 400, "invalid_field", "ca_constraint",
                    "ca_constraint: must be an object {\"cA\": bool, \"pathLenConstraint\": int}");
            goto fail;
        }
        json_object_foreach((json_t *)cc, ck, cv) {
            if (strcmp(ck, "cA") != 0 && strcmp(ck, "pathLenConstraint") != 0) {
                err_set(e, 400, "invalid_field", "ca_constraint", "ca_constraint.%.40s: unknown field", ck);
                goto fail;
            }
        }
        const json_t *ca = json_object_get(cc, "cA"), *pl = json_object_get(cc, "pathLenConstraint");
        if (ca && !json_is_boolean(ca)) {
            err_set(e, 400, "invalid_field", "ca_constraint", "ca_constraint.cA: must be true or false");
            goto fail;
        }
        p->ca = json_is_true(ca);
        if (pl && !json_is_null(pl)) {
            if (!json_is_integer(pl) || json_integer_value(pl) < 0 || json_integer_value(pl) > 16 || !p->ca) {
                err_set(e, 400, "invalid_field", "ca_constraint",
                        "ca_constraint.pathLenConstraint: 0-16, and only with cA true (RFC 5280 4.2.1.9)");
                goto fail;
            }
            p->path_len = (int)json_integer_value(pl);
        }
    }
    if (p->ca != p->authority) {
        err_set(e, 400, "invalid_field", "ca_constraint",
                "ca_constraint: cA must be true exactly for authority profiles (kind)");
        goto fail;
    }
    if (p->ca && (p->ku & KU_KEY_CERT_SIGN) == 0) {
        err_set(e, 400, "invalid_field", "usages", "usages: CA profiles need keyCertSign (RFC 5280 4.2.1.3)");
        goto fail;
    }
    if (!p->ca && (p->ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN))) {
        err_set(e, 400, "invalid_field", "usages",
                "usages: keyCertSign and cRLSign are only for CA profiles (cA true)");
        goto fail;
    }
    /* RFC 5280 4.2.1.5, 4.2.1.10, 4.2.1.11, 4.2.1.14: extensions that only
     * a CA certificate may carry are never copied into an end-entity one */
    static const char *const ca_only[] = {"2.5.29.30", "2.5.29.33", "2.5.29.36", "2.5.29.54"};
    for (size_t ai = 0; !p->ca && ai < p->nallowed; ai++)
        for (size_t ci = 0; ci < sizeof ca_only / sizeof ca_only[0]; ci++)
            if (strcmp(p->allowed_ext[ai], ca_only[ci]) == 0) {
                err_set(e, 400, "invalid_field", "allowed_extensions",
                        "allowed_extensions[%zu]: %s (%s) belongs in CA certificates only (RFC 5280)", ai,
                        ca_only[ci],
                        ci == 0   ? "nameConstraints"
                        : ci == 1 ? "policyMappings"
                        : ci == 2 ? "policyConstraints"
                                  : "inhibitAnyPolicy");
                goto fail;
            }
    const char *san = json_string_value(json_object_get(j, "subject_alt_name"));
    if (json_object_get(j, "subject_alt_name") && !json_is_null(json_object_get(j, "subject_alt_name")) &&
        (!san || (strcmp(san, "optional") != 0 && strcmp(san, "required") != 0))) {
        err_set(e, 400, "invalid_field", "subject_alt_name", "subject_alt_name: must be optional or required");
        goto fail;
    }
    p->san_required = san && strcmp(san, "required") == 0;
    const json_t *kts = json_object_get(j, "key_types");
    if (!kts || json_is_null(kts)) {
        p->key_types = KT_ALL;
    } else if (!json_is_array(kts) || json_array_size(kts) == 0) {
        err_set(e, 400, "invalid_field", "key_types", "key_types: a non-empty list such as [\"EC-P256\",\"RSA-2048\"]");
        goto fail;
    } else {
        json_array_foreach(kts, i, v) {
            unsigned bit = 0;
            for (size_t n = 0; n < sizeof kt_names / sizeof kt_names[0]; n++)
                if (json_is_string(v) && strcmp(kt_names[n].name, json_string_value(v)) == 0)
                    bit = kt_names[n].bit;
            if (!bit) {
                err_set(e, 400, "invalid_field", "key_types",
                        "key_types[%zu]: must be RSA-2048, RSA-3072, RSA-4096, EC-P256, EC-P384 or EC-P521", i);
                goto fail;
            }
            p->key_types |= bit;
        }
        /* RFC 5480 3: an EC key's certificate never carries keyEncipherment or
         * dataEncipherment; issuance leaves them out for EC keys, so a
         * profile with no other key usage has nothing to offer an EC key */
        unsigned enc = KU_KEY_ENCIPHERMENT | KU_DATA_ENCIPHERMENT;
        if ((p->key_types & (KT_EC256 | KT_EC384 | KT_EC521)) && p->ku && (p->ku & ~enc) == 0) {
            err_set(e, 400, "invalid_field", "key_types",
                    "key_types: EC keys cannot be used for key encipherment alone (RFC 5480); list RSA key types "
                    "only, or add a usage such as digitalSignature or keyAgreement");
            goto fail;
        }
    }

    /* Canonical JSON: every field explicit. */
    json_t *uj = json_array(), *ctj = json_array(), *ktj = json_array();
    for (size_t n = 0; n < sizeof ku_names / sizeof ku_names[0]; n++)
        if (p->ku & ku_names[n].bit)
            json_array_append_new(uj, json_string(ku_names[n].name));
    for (size_t n = 0; n < p->neku; n++)
        json_array_append_new(uj, json_string(p->eku[n]));
    if (p->ca_types & CATYPE_ROOT)
        json_array_append_new(ctj, json_string("root"));
    if (p->ca_types & CATYPE_INTERMEDIATE)
        json_array_append_new(ctj, json_string("intermediate"));
    if (p->ca_types & CATYPE_SUBORD)
        json_array_append_new(ctj, json_string("subord"));
    for (size_t n = 0; n < sizeof kt_names / sizeof kt_names[0]; n++)
        if (p->key_types & kt_names[n].bit)
            json_array_append_new(ktj, json_string(kt_names[n].name));
    json_t *ae = json_array(), *po = json_array();
    for (size_t n = 0; n < p->nallowed; n++)
        json_array_append_new(ae, json_string(p->allowed_ext[n]));
    for (size_t n = 0; n < p->npolicies; n++)
        json_array_append_new(po, json_string(p->policies[n]));
    json_t *cj = p->ca ? (p->path_len >= 0 ? json_pack("{s:b,s:i}", "cA", 1, "pathLenConstraint", p->path_len)
                                           : json_pack("{s:b}", "cA", 1))
                       : json_pack("{s:b}", "cA", 0);
    p->json = json_pack("{s:s,s:s,s:s,s:b,s:s,s:o,s:s,s:o,s:o,s:b,s:o,s:b,s:b,s:b,s:b,s:o,s:s,s:o}", "id", p->id,
                        "group", p->group, "kind", p->authority ? "authority" : "subscriber", "system", p->system,
                        "description", desc && json_is_string(desc) ? json_string_value(desc) : "", "allowedCATypes",
                        ctj, "validity_period", p->validity_text, "usages", uj, "allowed_extensions", ae,
                        "ignore_unknown_extensions", p->ignore_unknown, "ca_constraint", cj, "key_usage_critical",
                        p->ku_critical, "extended_key_usage_critical", p->eku_critical, "supply_san", p->supply_san,
                        "pkcs12", p->pkcs12, "certificate_policies", po, "subject_alt_name",
                        p->san_required ? "required" : "optional", "key_types", ktj);
    if (!p->json)
        goto oom;
    return p;
oom:
    err_set(e, 500, "internal", "", "out of memory");
fail:
    profile_free(p);
    return NULL;
}

/* ---- system profiles: parsed once, then read-only ---------------------- */

struct sysprofiles {
    struct profile **items;
    size_t n;
};

static struct sysprofiles sys;
static pthread_once_t sys_once = PTHREAD_ONCE_INIT;
static struct err sys_err;

static void sys_load(void)
{
    json_error_t je;
    json_t *arr = json_loads(profiles_system_json, 0, &je);
    size_t i;
    json_t *v;
    if (!json_is_array(arr)) {
        err_set(&sys_err, 500, "internal", "", "system profiles: %s", je.text);
        goto out;
    }
    sys.items = calloc(json_array_size(arr) + 1, sizeof(*sys.items));
    if (!sys.items)
        goto out;
    json_array_foreach(arr, i, v) {
        struct err e;
        struct profile *p = profile_from_json(v, true, &e);
        if (!p) {
            err_set(&sys_err, 500, "internal", "", "system profile #%zu: %.200s", i, e.msg);
            goto out;
        }
        sys.items[sys.n++] = p;
    }
out:
    json_decref(arr);
}

int profiles_system_init(struct err *e)
{
    pthread_once(&sys_once, sys_load);
    if (sys_err.status) {
        *e = sys_err;
        return -1;
    }
    return 0;
}

const struct profile *profiles_system_find(const char *id)
{
    pthread_once(&sys_once, sys_load);
    for (size_t i = 0; id && i < sys.n; i++)
        if (strcmp(sys.items[i]->id, id) == 0)
            return sys.items[i];
    return NULL;
}

size_t profiles_system_count(void)
{
    pthread_once(&sys_once, sys_load);
    return sys.n;
}

const struct profile *profiles_system_at(size_t i)
{
    pthread_once(&sys_once, sys_load);
    return i < sys.n ? sys.items[i] : NULL;
}
