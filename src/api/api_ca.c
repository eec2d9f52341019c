#include "api/api.h"
#include "api/api_json.h"

#include "authz/authz.h"
#include "ca/issue.h"
#include "ca/profile.h"
#include "crypto/keyspec.h"
#include "util/codec.h"
#include "util/json_util.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "x509/dn.h"
#include "x509/ext.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHAIN 16

static void cert_fields(json_t *o, X509 *x)
{
    char buf[320];
    const X509_ALGOR *alg = NULL;
    X509_get0_signature(NULL, &alg, x);
    json_object_set_new(o, "serialNumber", jtake(x509_serial_hex(x)));
    json_object_set_new(o, "sha256Fingerprint", jtake(x509_fingerprint_sha256(x)));
    json_object_set_new(o, "issuer", jtake(dn_print(X509_get_issuer_name(x))));
    json_object_set_new(o, "validFrom", jtime_asn1(X509_get0_notBefore(x)));
    json_object_set_new(o, "expiryDate", jtime_asn1(X509_get0_notAfter(x)));
    keyspec_describe_key(X509_get0_pubkey(x), buf, sizeof buf);
    json_object_set_new(o, "publicKeyType", json_string(buf));
    int nid = alg ? OBJ_obj2nid(alg->algorithm) : NID_undef;
    if (nid == NID_rsassaPss) {
        /* Name PSS by its hash as the guide does: sha256WithRSAPSS. */
        int mdnid = NID_undef, pknid = NID_undef;
        X509_get_signature_info(x, &mdnid, &pknid, NULL, NULL);
        snprintf(buf, sizeof buf, "%sWithRSAPSS", mdnid == NID_sha512 ? "sha512" : mdnid == NID_sha384 ? "sha384"
                                                                                                         : "sha256");
    } else {
        snprintf(buf, sizeof buf, "%s", nid != NID_undef ? OBJ_nid2ln(nid) : "unknown");
    }
    json_object_set_new(o, "signatureAlgorithm", json_string(buf));
    long pl = X509_get_pathlen(x);
    json_object_set_new(o, "basicConstraints",
                        json_pack("{s:b,s:o}", "ca", X509_check_ca(x) >= 1,
                                  "pathLength", pl >= 0 ? json_integer(pl) : json_null()));
    x509_ku_names(x, buf, sizeof buf);
    json_t *ku = json_array();
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(ku, json_string(t));
    json_object_set_new(o, "keyUsages", ku);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x), *ski = X509_get0_subject_key_id(x);
    json_object_set_new(o, "authorityKeyIdentifier",
                        aki ? jtake(hex_encode(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki)))
                            : json_null());
    json_object_set_new(o, "subjectKeyIdentifier",
                        ski ? jtake(hex_encode(ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski)))
                            : json_null());
    api_json_cert_urls(o, x);
}

static json_t *ca_json(const struct ca_env *env, const struct ca_rec *c)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_string(c->id));
    json_object_set_new(o, "friendlyName", json_string(c->friendly_name ? c->friendly_name : c->id));
    json_object_set_new(o, "type", json_string(c->type));
    json_object_set_new(o, "status", json_string(c->status));
    json_object_set_new(o, "parentId", c->parent_id[0] ? json_string(c->parent_id) : json_null());
    json_object_set_new(o, "signingKeyDetails", c->key_label[0] ? json_string(c->key_label) : json_null());
    json_object_set_new(o, "subject", json_string(c->subject ? c->subject : ""));
    static const char *const certkeys[] = {"serialNumber", "sha256Fingerprint", "issuer", "validFrom", "expiryDate",
                                           "publicKeyType", "signatureAlgorithm", "basicConstraints", "keyUsages",
                                           "authorityKeyIdentifier", "subjectKeyIdentifier",
                                           "crlDistributionPoints", "authorityInfoAccess"};
    X509 *x = ca_cert(c);
    if (x)
        cert_fields(o, x);
    else
        for (size_t i = 0; i < sizeof certkeys / sizeof certkeys[0]; i++)
            json_object_set_new(o, certkeys[i], json_null());
    X509_free(x);
    json_object_set_new(o, "crlEnabled", json_boolean(c->crl_enabled));
    json_object_set_new(o, "ocspEnabled", json_boolean(c->ocsp_enabled));
    json_object_set_new(o, "crlPartitions", json_integer(c->crl_shards > 1 ? c->crl_shards : 0));
    json_object_set_new(o, "urls", json_pack("{s:o,s:o,s:o}", "cagw", jtake(ca_url_cagw(env, c->partition_id, c->id)),
                                             "crl", c->crl_enabled ? jtake(ca_url_crl(env, c->partition_id, c->id))
                                                                   : json_null(),
                                             "ocsp", c->ocsp_enabled ? jtake(ca_url_ocsp(env, c->partition_id, c->id))
                                                                     : json_null()));
    json_object_set_new(o, "createdAt", jtime(c->created_at));
    json_object_set_new(o, "deletedAt", jtime(c->deleted_at));
    return o;
}

int api_load_ca(struct http_req *req, struct http_resp *resp, const char *partition, struct ca_rec *c,
                bool allow_deleted)
{
    struct api_ctx *ctx = req->app;
    const char *id = req->params[1];
    int s = ca_id_valid(id) ? ctx->store->ops->ca_get(ctx->store, partition, id, c) : STORE_ENOTFOUND;
    if (s == STORE_OK && (allow_deleted || strcmp(c->status, "deleted") != 0))
        return 0;
    if (s == STORE_OK)
        ca_rec_free(c);
    if (s == STORE_OK || s == STORE_ENOTFOUND)
        resp_error(resp, 404, "not_found", "caId", "no CA '%.32s' in this partition", id);
    else
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
    return -1;
}

void api_ca_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_list l;
    if (api_auth(req, resp, req->params[0], OP_CA_BROWSE, &p) != 0)
        return;
    const char *inc = http_query(req, "includeDeleted");
    bool include = inc && strcmp(inc, "true") == 0;
    if (ctx->store->ops->ca_list(ctx->store, p.partition, include, &l) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.n; i++)
        json_array_append_new(arr, ca_json(&ctx->env, &l.items[i]));
    ca_list_free(&l);
    resp_json(resp, 200, json_pack("{s:o}", "cas", arr));
}

void api_ca_create(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_create_req cr;
    struct ca_rec c;
    struct jerr je;
    struct err e;
    static const char *const keys[] = {"id", "friendlyName", "type", "parentId", "signingKeyDetails", "subject",
                                       "expiryDate", "pathLength", "enableCrl", "enableOcsp", "certificate", "profiles",
                                       "crlPartitions", NULL};
    json_t *j = NULL;
    const char *cert = NULL;
    long long pl = 0;
    memset(&cr, 0, sizeof cr);
    memset(&c, 0, sizeof c);
    if (api_auth(req, resp, req->params[0], OP_CA_BROWSE, &p) != 0)
        return;
    if (!(j = api_body_object(req, resp)))
        return;
    if (jcheck_keys(j, keys, &je) || jget_str(j, "id", 64, &cr.id, &je) ||
        jget_str(j, "friendlyName", 1024, &cr.friendly_name, &je) || jget_str(j, "type", 32, &cr.type, &je) ||
        jget_str(j, "parentId", 64, &cr.parent_id, &je) ||
        jget_str(j, "signingKeyDetails", 128, &cr.key_label, &je) ||
        jget_str(j, "subject", 8192, &cr.subject, &je) || jget_str(j, "expiryDate", 64, &cr.expiry, &je) ||
        jget_int(j, "pathLength", 0, 16, &pl, &cr.has_path_len, &je) ||
        jget_str(j, "certificate", 65536, &cert, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    cr.path_len = (int)pl;
    long long shards = 0;
    bool has_shards = false;
    if (jget_int(j, "crlPartitions", 0, 1024, &shards, &has_shards, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    cr.crl_shards = (int)shards;
    if (json_object_get(j, "enableCrl") && !json_is_null(json_object_get(j, "enableCrl"))) {
        if (jget_bool(j, "enableCrl", &cr.crl, &je)) {
            resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
            goto out;
        }
        cr.has_crl = true;
    }
    if (json_object_get(j, "enableOcsp") && !json_is_null(json_object_get(j, "enableOcsp"))) {
        if (jget_bool(j, "enableOcsp", &cr.ocsp, &je)) {
            resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
            goto out;
        }
        cr.has_ocsp = true;
    }
    if (cert) {
        cr.cert = (const unsigned char *)cert;
        cr.cert_len = strlen(cert);
    }
    const json_t *profiles = json_object_get(j, "profiles");
    if (profiles && !json_is_null(profiles) && (!json_is_array(profiles) || json_array_size(profiles) > 256)) {
        resp_error(resp, 400, "invalid_field", "profiles", "profiles: an array of profile ids");
        goto out;
    }
    size_t pi;
    json_t *pv;
    json_array_foreach(profiles, pi, pv) {
        struct err pe;
        const struct profile *pr = json_is_string(pv) ? profile_resolve(ctx->store, p.partition,
                                                                         json_string_value(pv), &pe)
                                                      : NULL;
        unsigned t = profile_catype(cr.type ? cr.type : "");
        if (!pr || !t || !(pr->ca_types & t)) {
            resp_error(resp, 400, "invalid_field", "profiles", "profiles[%zu]: %s", pi,
                       !pr ? "no such profile" : "the profile's allowedCATypes exclude this CA type");
            profile_release(pr);
            goto out;
        }
        profile_release(pr);
    }
    enum authz_op op = !cr.type                              ? OP_CA_CREATE_ROOT
                       : strcmp(cr.type, "intermediate") == 0 ? OP_CA_CREATE_INTERMEDIATE
                       : strcmp(cr.type, "subord") == 0       ? OP_CA_CREATE_SUBORD
                       : strcmp(cr.type, "externalKey") == 0  ? OP_CA_IMPORT_EXTERNAL
                                                              : OP_CA_CREATE_ROOT;
    if (api_require(req, resp, &p, op) != 0)
        goto out;
    if (profiles && json_array_size(profiles) && api_require(req, resp, &p, OP_CA_PROFILES) != 0)
        goto out;
    memset(&e, 0, sizeof e);
    cr.requester_ip = p.ip;
    if (ca_create(&ctx->env, p.partition, &cr, p.actor, &c, &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    json_array_foreach(profiles, pi, pv) {
        if (api_assign_profile(ctx, &p, &c, json_string_value(pv), &e) != 0) {
            resp_err(resp, &e);
            goto out;
        }
    }
    char loc[160];
    snprintf(loc, sizeof loc, "/api/v1/partitions/%s/cas/%s", p.partition, c.id);
    resp_json(resp, 201, ca_json(&ctx->env, &c));
    resp_header(resp, "Location", loc);
out:
    ca_rec_free(&c);
    json_decref(j);
}

void api_ca_get(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_rec c;
    if (api_auth(req, resp, req->params[0], OP_CA_BROWSE, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, true) != 0)
        return;
    resp_json(resp, 200, ca_json(&ctx->env, &c));
    ca_rec_free(&c);
}

/* The guide: deleting a CA makes every certificate under it unusable. Its
 * own certificate is revoked at its parent (cessationOfOperation, the
 * parent's CRL published at once), so relying parties that check
 * revocation reject the whole deleted subtree even though the deleted CA
 * itself publishes nothing any more. "revoked", "already" (it was not
 * "issued"), "none" (a root, an external parent, no certificate) or
 * "failed" (logged; the deletion stands). */
static const char *revoke_at_parent(struct api_ctx *ctx, const struct ca_rec *c, const struct principal *p)
{
    struct ca_rec parent;
    struct err e;
    const char *out = "none";
    X509 *x = NULL;
    char *serial = NULL;
    memset(&parent, 0, sizeof parent);
    memset(&e, 0, sizeof e);
    if (!c->parent_id[0] || !c->cert_der)
        return "none";
    const unsigned char *q = c->cert_der;
    if (ctx->store->ops->ca_get(ctx->store, c->partition_id, c->parent_id, &parent) != STORE_OK ||
        strcmp(parent.type, "externalKey") == 0 || !(x = d2i_X509(NULL, &q, (long)c->cert_len)) ||
        !(serial = x509_serial_hex(x)))
        goto out;
    if (api_cert_set_status(ctx, &parent, serial, "revoked", 5 /* cessationOfOperation */, 0,
                            "the CA was deleted", p->actor, p->ip, true, &e) == 0)
        out = "revoked";
    else if (e.status == 409)
        out = "already";
    else if (e.status != 404) {
        log_error("CA %s/%s deleted, but its certificate %s could not be revoked at %s: %s", c->partition_id, c->id,
                  serial, parent.id, e.msg);
        out = "failed";
    }
out:
    free(serial);
    X509_free(x);
    ca_rec_free(&parent);
    return out;
}

void api_ca_delete(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct err e;
    char **ids = NULL;
    size_t n = 0;
    if (api_auth(req, resp, req->params[0], OP_CA_DELETE, &p) != 0)
        return;
    if (!ca_id_valid(req->params[1])) {
        resp_error(resp, 404, "not_found", "caId", "no CA '%.32s' in this partition", req->params[1]);
        return;
    }
    /* the CA as it was: its parent and certificate, for the revocation below */
    struct ca_rec before;
    memset(&before, 0, sizeof before);
    bool had = ctx->store->ops->ca_get(ctx->store, p.partition, req->params[1], &before) == STORE_OK;
    if (ca_delete(&ctx->env, p.partition, req->params[1], p.actor, p.ip, &ids, &n, &e) != 0) {
        resp_err(resp, &e);
        if (had)
            ca_rec_free(&before);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(ids[i]));
    store_free_ids(ids, n);
    const char *at_parent = had ? revoke_at_parent(ctx, &before, &p) : "none";
    resp_json(resp, 200, json_pack("{s:s,s:s,s:o,s:s}", "id", req->params[1], "status", "deleted", "affected", a,
                                   "parentRevocation", at_parent));
    if (had)
        ca_rec_free(&before);
}

static int pem_append(X509 *x, struct buf *b)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *p = NULL;
    int rc = -1;
    if (bio && PEM_write_bio_X509(bio, x) == 1) {
        long n = BIO_get_mem_data(bio, &p);
        rc = buf_append(b, p, (size_t)n);
    }
    BIO_free(bio);
    return rc;
}

static void send_cert(struct http_resp *resp, const struct ca_rec *c, const char *format)
{
    if (!c->cert_der) {
        resp_error(resp, 409, "conflict", "caId", "CA '%s' is pending: it has no certificate yet", c->id);
        return;
    }
    if (format && strcmp(format, "der") == 0) {
        resp_bytes(resp, 200, "application/pkix-cert", c->cert_der, c->cert_len);
        return;
    }
    if (format && strcmp(format, "pem") != 0) {
        resp_error(resp, 400, "invalid_field", "format", "format: must be pem or der");
        return;
    }
    X509 *x = ca_cert(c);
    struct buf b;
    buf_init(&b, 0);
    if (!x || pem_append(x, &b) != 0) {
        resp_error(resp, 500, "internal", NULL, "cannot encode the certificate");
    } else {
        size_t n;
        unsigned char *d = buf_take(&b, &n);
        resp_take(resp, 200, "application/x-pem-file", d, n);
    }
    X509_free(x);
    buf_free(&b);
}

void api_ca_cert(struct http_req *req, struct http_resp *resp)
{
    struct principal p;
    struct ca_rec c;
    if (api_auth(req, resp, req->params[0], OP_CA_DOWNLOAD, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, false) != 0)
        return;
    send_cert(resp, &c, http_query(req, "format"));
    ca_rec_free(&c);
}

void api_ca_chain(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_rec c;
    struct buf b;
    if (api_auth(req, resp, req->params[0], OP_CA_DOWNLOAD, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, false) != 0)
        return;
    buf_init(&b, 0);
    for (int depth = 0; depth < MAX_CHAIN; depth++) {
        X509 *x = ca_cert(&c);
        if (!x) {
            resp_error(resp, 409, "conflict", "caId", "CA '%s' has no certificate yet", c.id);
            goto out;
        }
        int rc = pem_append(x, &b);
        X509_free(x);
        if (rc != 0)
            goto fail;
        if (!c.parent_id[0])
            break;
        char parent[sizeof c.parent_id];
        snprintf(parent, sizeof parent, "%s", c.parent_id);
        ca_rec_free(&c);
        if (ctx->store->ops->ca_get(ctx->store, p.partition, parent, &c) != STORE_OK)
            goto fail;
    }
    size_t n;
    unsigned char *d = buf_take(&b, &n);
    resp_take(resp, 200, "application/x-pem-file", d, n);
    goto out;
fail:
    resp_error(resp, 500, "internal", NULL, "cannot assemble the chain");
out:
    buf_free(&b);
    ca_rec_free(&c);
}

void api_ca_csr(struct http_req *req, struct http_resp *resp)
{
    struct principal p;
    struct ca_rec c;
    if (api_auth(req, resp, req->params[0], OP_CA_IMPORT_EXTERNAL, &p) != 0 ||
        api_load_ca(req, resp, p.partition, &c, false) != 0)
        return;
    if (!c.csr_der || strcmp(c.status, "pending") != 0) {
        resp_error(resp, 409, "conflict", "caId", "CA '%s' has no pending certificate request (only CAs under an "
                   "external root have one, until their certificate is imported)", c.id);
        ca_rec_free(&c);
        return;
    }
    const unsigned char *q = c.csr_der;
    X509_REQ *r = d2i_X509_REQ(NULL, &q, (long)c.csr_len);
    BIO *bio = BIO_new(BIO_s_mem());
    char *d = NULL;
    if (r && bio && PEM_write_bio_X509_REQ(bio, r) == 1) {
        long n = BIO_get_mem_data(bio, &d);
        resp_bytes(resp, 200, "application/pkcs10", d, (size_t)n);
    } else {
        resp_error(resp, 500, "internal", NULL, "cannot encode the CSR");
    }
    X509_REQ_free(r);
    BIO_free(bio);
    ca_rec_free(&c);
}

void api_ca_import(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct ca_rec c;
    struct err e;
    struct jerr je;
    const char *cert = NULL;
    static const char *const keys[] = {"certificate", NULL};
    memset(&c, 0, sizeof c);
    if (api_auth(req, resp, req->params[0], OP_CA_IMPORT_EXTERNAL, &p) != 0)
        return;
    json_t *j = api_body_object(req, resp);
    if (!j)
        return;
    if (jcheck_keys(j, keys, &je) || jget_str(j, "certificate", 65536, &cert, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    if (!cert) {
        resp_error(resp, 400, "invalid_field", "certificate", "certificate: required");
        goto out;
    }
    if (!ca_id_valid(req->params[1])) {
        resp_error(resp, 404, "not_found", "caId", "no CA '%.32s' in this partition", req->params[1]);
        goto out;
    }
    if (ca_import_cert(&ctx->env, p.partition, req->params[1], (const unsigned char *)cert, strlen(cert), p.actor, p.ip, &c,
                       &e) != 0) {
        resp_err(resp, &e);
        goto out;
    }
    resp_json(resp, 200, ca_json(&ctx->env, &c));
out:
    ca_rec_free(&c);
    json_decref(j);
}

/* AIA caIssuers target: GET /ca/{accountId}/{caId}.crt, DER, no auth. */
void api_public_ca_cert(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct ca_rec c;
    const char *file = req->params[1];
    size_t n = strlen(file);
    char id[24];
    if (n < 5 || n - 4 >= sizeof id || strcmp(file + n - 4, ".crt") != 0) {
        resp_error(resp, 404, "not_found", NULL, "no such certificate");
        return;
    }
    memcpy(id, file, n - 4);
    id[n - 4] = 0;
    snprintf(req->partition, sizeof req->partition, "%.64s", req->params[0]);
    if (!ca_id_valid(id) || ctx->store->ops->ca_get(ctx->store, req->params[0], id, &c) != STORE_OK) {
        resp_error(resp, 404, "not_found", NULL, "no such certificate");
        return;
    }
    if (!c.cert_der || strcmp(c.status, "deleted") == 0) {
        resp_error(resp, 404, "not_found", NULL, "no such certificate");
    } else {
        resp_bytes(resp, 200, "application/pkix-cert", c.cert_der, c.cert_len);
        resp_header(resp, "Cache-Control", "public, max-age=3600");
    }
    ca_rec_free(&c);
}
