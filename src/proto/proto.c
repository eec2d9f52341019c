#include "proto/proto.h"

#include "crypto/keywrap.h"
#include "util/codec.h"
#include "x509/dn.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

bool proto_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < PROTO_ID_MIN || n > PROTO_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

int proto_cfg_load(struct store *st, const char *partition, const char *id, const char *type,
                   struct proto_cfg *out, struct err *e)
{
    struct obj_rec o;
    int rc = -1;
    memset(out, 0, sizeof *out);
    memset(&o, 0, sizeof o);
    if (!proto_id_valid(id)) {
        err_set(e, 404, "not_found", "configId", "no protocol configuration '%.32s' in this partition", id);
        return -1;
    }
    int r = st->ops->obj_get(st, partition, PROTO_KIND, id, &o);
    if (r != STORE_OK) {
        if (r == STORE_ENOTFOUND)
            err_set(e, 404, "not_found", "configId", "no protocol configuration '%s' in this partition", id);
        else
            err_set(e, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    json_error_t je;
    out->doc = o.json ? json_loads(o.json, 0, &je) : NULL;
    const char *t = json_string_value(json_object_get(out->doc, "type"));
    const char *ca = json_string_value(json_object_get(out->doc, "caId"));
    const char *pr = json_string_value(json_object_get(out->doc, "profileId"));
    if (!out->doc || !t || !ca || !pr) {
        err_set(e, 500, "internal", NULL, "protocol configuration '%s' is damaged", id);
        goto out;
    }
    if (type && strcmp(t, type) != 0) {
        err_set(e, 404, "not_found", "configId", "no %s configuration '%s' in this partition", type, id);
        goto out;
    }
    snprintf(out->partition, sizeof out->partition, "%s", partition);
    snprintf(out->id, sizeof out->id, "%s", id);
    snprintf(out->type, sizeof out->type, "%s", t);
    snprintf(out->ca_id, sizeof out->ca_id, "%s", ca);
    snprintf(out->profile_id, sizeof out->profile_id, "%s", pr);
    out->version = o.version;
    out->created_at = o.created_at;
    rc = 0;
out:
    obj_rec_free(&o);
    if (rc != 0)
        proto_cfg_free(out);
    return rc;
}

void proto_cfg_free(struct proto_cfg *c)
{
    if (c) {
        json_decref(c->doc);
        c->doc = NULL;
    }
}

bool proto_bool(const struct proto_cfg *c, const char *key, bool dflt)
{
    json_t *v = json_object_get(c->doc, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

const char *proto_str(const struct proto_cfg *c, const char *key)
{
    return json_string_value(json_object_get(c->doc, key));
}

int proto_profile_in_use(struct store *st, const char *partition, const char *profile_id, const char *ca_id,
                         char *cfg_out, size_t n)
{
    struct obj_rec *items = NULL;
    size_t cnt = 0;
    int rc = 0;
    if (st->ops->obj_list(st, partition, PROTO_KIND, ca_id, NULL, 0, &items, &cnt) != STORE_OK)
        return -1;
    for (size_t i = 0; i < cnt && rc == 0; i++) {
        json_error_t je;
        json_t *d = items[i].json ? json_loads(items[i].json, 0, &je) : NULL;
        const char *pid = json_string_value(json_object_get(d, "profileId"));
        if (pid && strcmp(pid, profile_id) == 0) {
            snprintf(cfg_out, n, "%s", items[i].id);
            rc = 1;
        }
        json_decref(d);
    }
    obj_list_free(items, cnt);
    return rc;
}

bool proto_cred_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 2 || n > PROTO_CRED_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static int open_secret(const unsigned char *mkey, const char *partition, const struct obj_rec *o, char **secret)
{
    char aad[256];
    unsigned char *pt = NULL;
    size_t n = 0;
    snprintf(aad, sizeof aad, "cred:%s/%s", partition, o->id);
    if (keywrap_open(mkey, o->blob, o->blob_len, aad, &pt, &n) != 0)
        return -1;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, pt, n);
        s[n] = 0;
    }
    OPENSSL_cleanse(pt, n);
    free(pt);
    *secret = s;
    return s ? 0 : -1;
}

int proto_cred_secret(struct store *st, const unsigned char *mkey, const char *partition, const char *cfg,
                      const char *cred_id, char **secret)
{
    struct obj_rec o;
    char id[OBJ_ID_MAX + 1];
    *secret = NULL;
    if (!proto_cred_id_valid(cred_id) || !proto_id_valid(cfg))
        return -1;
    snprintf(id, sizeof id, "%s/%s", cfg, cred_id);
    if (st->ops->obj_get(st, partition, PROTO_CRED_KIND, id, &o) != STORE_OK)
        return -1;
    int rc = open_secret(mkey, partition, &o, secret);
    obj_rec_free(&o);
    return rc;
}

static bool same_secret(const char *a, const char *b)
{
    size_t n = strlen(a);
    return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

bool proto_cred_check(struct store *st, const unsigned char *mkey, const char *partition, const char *cfg,
                      const char *cred_id, const char *secret)
{
    char *s = NULL;
    if (!secret || proto_cred_secret(st, mkey, partition, cfg, cred_id, &s) != 0)
        return false;
    bool ok = same_secret(s, secret);
    OPENSSL_cleanse(s, strlen(s));
    free(s);
    return ok;
}

bool proto_cred_match_any(struct store *st, const unsigned char *mkey, const char *partition, const char *cfg,
                          const char *secret, char *cred_out, size_t n)
{
    struct obj_rec *items = NULL;
    size_t cnt = 0;
    bool ok = false;
    if (!secret || st->ops->obj_list(st, partition, PROTO_CRED_KIND, cfg, NULL, 0, &items, &cnt) != STORE_OK)
        return false;
    for (size_t i = 0; i < cnt && !ok; i++) {
        char *s = NULL;
        if (open_secret(mkey, partition, &items[i], &s) != 0)
            continue;
        if (same_secret(s, secret)) {
            ok = true;
            const char *slash = strchr(items[i].id, '/');
            if (cred_out)
                snprintf(cred_out, n, "%s", slash ? slash + 1 : items[i].id);
        }
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
    obj_list_free(items, cnt);
    return ok;
}

int proto_basic_auth(const char *authorization, char *user, size_t un, char *pass, size_t pn)
{
    unsigned char *dec = NULL;
    size_t dl = 0;
    int rc = -1;
    if (!authorization || strncasecmp(authorization, "Basic ", 6) != 0)
        return -1;
    const char *b = authorization + 6;
    while (*b == ' ')
        b++;
    size_t bl = strlen(b);
    if (bl == 0 || bl > 1024 || b64_decode(b, bl, &dec, &dl) != 0)
        return -1;
    unsigned char *colon = memchr(dec, ':', dl);
    if (!colon || memchr(dec, 0, dl))
        goto out;
    size_t ul = (size_t)(colon - dec), pl = dl - ul - 1;
    if (ul == 0 || ul >= un || pl >= pn)
        goto out;
    memcpy(user, dec, ul);
    user[ul] = 0;
    memcpy(pass, colon + 1, pl);
    pass[pl] = 0;
    rc = 0;
out:
    OPENSSL_cleanse(dec, dl);
    free(dec);
    return rc;
}

char *proto_ee_identifier(const char *dn)
{
    X509_NAME *n = NULL;
    char err[64];
    if (!dn)
        return NULL;
    if (dn_parse(dn, &n, err, sizeof err) != 0)
        return strdup(dn);
    char *s = dn_print(n);
    X509_NAME_free(n);
    return s;
}

void proto_ee_id(const char *cfg, const char *identifier, char *out, size_t n)
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)identifier, strlen(identifier), h);
    char *hex = hex_encode(h, 16);
    snprintf(out, n, "%s/%s", cfg, hex ? hex : "");
    free(hex);
}

int proto_ee_allowed(struct store *st, const char *partition, const char *cfg, const char *identifier)
{
    struct obj_rec o;
    char id[OBJ_ID_MAX + 1];
    proto_ee_id(cfg, identifier, id, sizeof id);
    if (st->ops->obj_get(st, partition, PROTO_EE_KIND, id, &o) != STORE_OK)
        return 0;
    int rc = strcmp(o.status, "active") == 0 ? 0 : -1;
    obj_rec_free(&o);
    return rc;
}

void proto_ee_record(struct store *st, const char *partition, const char *cfg, const char *identifier,
                     const char *ca_id, const char *serial, int64_t not_after)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        struct obj_rec o;
        json_t *d = NULL;
        bool create = false;
        memset(&o, 0, sizeof o);
        char id[OBJ_ID_MAX + 1];
        proto_ee_id(cfg, identifier, id, sizeof id);
        if (st->ops->obj_get(st, partition, PROTO_EE_KIND, id, &o) == STORE_OK) {
            json_error_t je;
            d = o.json ? json_loads(o.json, 0, &je) : NULL;
        } else {
            create = true;
            snprintf(o.partition_id, sizeof o.partition_id, "%s", partition);
            snprintf(o.kind, sizeof o.kind, "%s", PROTO_EE_KIND);
            snprintf(o.id, sizeof o.id, "%s", id);
            o.parent = strdup(cfg);
            snprintf(o.status, sizeof o.status, "active");
        }
        if (!d)
            d = json_pack("{s:s,s:[]}", "identifier", identifier, "certificates");
        json_t *certs = json_object_get(d, "certificates");
        if (!json_is_array(certs)) {
            certs = json_array();
            json_object_set_new(d, "certificates", certs);
        }
        json_t *cas = json_object_get(d, "certificateCas");
        if (!json_is_object(cas)) {
            cas = json_object();
            json_object_set_new(d, "certificateCas", cas);
        }
        json_array_append_new(certs, json_string(serial));
        json_object_set_new(cas, serial, json_string(ca_id));
        while (json_array_size(certs) > 100) { /* the newest hundred */
            const char *old = json_string_value(json_array_get(certs, 0));
            if (old)
                json_object_del(cas, old);
            json_array_remove(certs, 0);
        }
        json_int_t cur = json_integer_value(json_object_get(d, "notAfter"));
        if (not_after > cur)
            json_object_set_new(d, "notAfter", json_integer(not_after));
        free(o.json);
        o.json = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        int r = o.json ? st->ops->obj_put(st, &o, create ? OBJ_CREATE : OBJ_UPDATE, NULL) : STORE_EIO;
        obj_rec_free(&o);
        if (r != STORE_ECONFLICT)
            return;
    }
}
