#include "ca/svc_cert.h"

#include "util/timeutil.h"
#include "x509/certbuild.h"
#include "x509/dn.h"
#include "x509/ext.h"

#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

X509 *svc_cert_issue(const struct ca_env *env, const struct ca_rec *ca, const struct svc_cert_req *r,
                     unsigned char **der, size_t *der_len, int64_t *not_before, int64_t *not_after, struct err *e)
{
    X509 *cacert = NULL, *x = NULL, *ret = NULL;
    X509_NAME *name = NULL;
    struct signer *sig = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    unsigned char *d = NULL;
    char dnerr[128], msg[128];
    int64_t now = time_now();
    *der = NULL;
    *der_len = 0;
    if (!(cacert = ca_cert(ca)) || !(sig = ca_signer(env, ca)) || dn_parse(r->dn, &name, dnerr, sizeof dnerr) != 0 ||
        !(exts = sk_X509_EXTENSION_new_null()))
        goto out;
    unsigned char ski[SKI_LEN], caski_buf[SKI_LEN];
    const ASN1_OCTET_STRING *caski = X509_get0_subject_key_id(cacert);
    /* a CA certificate from elsewhere (an external root's) may lack its
     * SKI: the key identifier is then computed, as for issued certificates */
    const unsigned char *aki = caski ? ASN1_STRING_get0_data(caski) : caski_buf;
    size_t aki_len = caski ? (size_t)ASN1_STRING_length(caski) : SKI_LEN;
    if (x509_ski_compute(r->key, ski) != 0 ||
        (!caski && x509_ski_compute(X509_get0_pubkey(cacert), caski_buf) != 0) ||
        ext_push(exts, ext_basic_constraints(false, -1)) ||
        ext_push(exts, ext_key_usage(r->ku)) ||
        (r->eku && ext_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage, r->eku))) ||
        (r->ocsp_nocheck && ext_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_id_pkix_OCSP_noCheck, "ignored"))) ||
        ext_push(exts, ext_ski(ski)) ||
        ext_push(exts, ext_aki(aki, aki_len)))
        goto out;
    struct cert_template t;
    memset(&t, 0, sizeof t);
    if (x509_serial_new(t.serial) != 0)
        goto out;
    t.subject = name;
    t.issuer = X509_get_subject_name(cacert);
    t.pubkey = r->key;
    t.not_before = now - 60;
    t.not_after = now + (int64_t)r->days * 86400;
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cacert), &tm) == 1 && (int64_t)timegm(&tm) < t.not_after)
        t.not_after = (int64_t)timegm(&tm);
    t.exts = exts;
    int dl;
    if (!(x = certbuild_sign(&t, sig, msg, sizeof msg)) || (dl = i2d_X509(x, &d)) <= 0)
        goto out;
    /* listed under the CA like any certificate, not counted as purchased */
    struct cert_rec cr;
    memset(&cr, 0, sizeof cr);
    snprintf(cr.partition_id, sizeof cr.partition_id, "%s", ca->partition_id);
    cr.issuer_ca_pk = ca->pk;
    char *sn = x509_serial_hex(x);
    snprintf(cr.serial, sizeof cr.serial, "%s", sn ? sn : "");
    free(sn);
    cr.subject = dn_print(name);
    cr.not_before = t.not_before;
    cr.not_after = t.not_after;
    snprintf(cr.status, sizeof cr.status, "issued");
    cr.revocation_reason = -1;
    cr.profile_id = (char *)r->profile_id;
    cr.crl_shard = -1; /* on the full CRL only */
    cr.requester = "system";
    cr.der = d;
    cr.der_len = (size_t)dl;
    cr.created_at = now;
    int s = env->store->ops->cert_insert(env->store, &cr, false, r->audit);
    free(cr.subject);
    if (s != STORE_OK)
        goto out;
    *der = d;
    *der_len = (size_t)dl;
    *not_before = t.not_before;
    *not_after = t.not_after;
    d = NULL;
    ret = x;
    x = NULL;
out:
    if (!ret)
        err_set(e, 500, "internal", "", "cannot issue the %s certificate", r->profile_id);
    OPENSSL_free(d);
    X509_free(cacert);
    X509_free(x);
    X509_NAME_free(name);
    signer_free(sig);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return ret;
}
