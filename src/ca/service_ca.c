#include "ca/service_ca.h"

#include "crypto/signer.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "x509/certbuild.h"
#include "x509/ext.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RENEW_BEFORE_S (30 * 24 * 3600)

static char *path_join(const char *dir, const char *name)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    unsigned char tmp[4096];
    size_t n;
    if (!f)
        return -1;
    buf_init(&b, 1 << 20);
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (buf_append(&b, tmp, n) != 0) {
            fclose(f);
            buf_free(&b);
            return -1;
        }
    fclose(f);
    *out = buf_take(&b, len);
    return 0;
}

/* Atomic write with the given mode: temp file, fsync, rename. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    char *tmp = NULL;
    int fd = -1, rc = -1;
    if (asprintf(&tmp, "%s.tmp", path) < 0)
        return -1;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        goto out;
    if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0)
        goto out;
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0)
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

static EVP_PKEY *load_key(const char *path, const unsigned char *mkey, const char *aad)
{
    unsigned char *blob = NULL;
    size_t n = 0;
    if (read_file(path, &blob, &n) != 0)
        return NULL;
    EVP_PKEY *k = keywrap_open_pkey(mkey, blob, n, aad);
    free(blob);
    return k;
}

static int save_key(const char *path, const unsigned char *mkey, const char *aad, EVP_PKEY *k)
{
    unsigned char *blob = NULL;
    size_t n = 0;
    if (keywrap_seal_pkey(mkey, k, aad, &blob, &n) != 0)
        return -1;
    int rc = write_file(path, blob, n, 0600);
    free(blob);
    return rc;
}

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

static int save_cert(const char *path, X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p = NULL;
    int rc = -1;
    if (b && PEM_write_bio_X509(b, x) == 1) {
        long n = BIO_get_mem_data(b, &p);
        rc = write_file(path, p, (size_t)n, 0644);
    }
    BIO_free(b);
    return rc;
}

static X509 *issue(EVP_PKEY *pub, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, const char *san, int years)
{
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_NAME *name = X509_NAME_new();
    struct signer *s = signer_soft_new(issuer_key, "SHA256", false);
    unsigned char ski[SKI_LEN], aki[SKI_LEN];
    struct cert_template t;
    X509 *x = NULL;
    char err[128];
    memset(&t, 0, sizeof t);
    if (!exts || !name || !s || x509_ski_compute(pub, ski) || x509_ski_compute(issuer_key, aki) ||
        x509_serial_new(t.serial))
        goto out;
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"pkiaas", -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1)
        goto out;
    if (issuer) {
        if (ext_push(exts, ext_basic_constraints(false, -1)) || ext_push(exts, ext_key_usage(KU_DIGITAL_SIGNATURE)) ||
            ext_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage, "serverAuth")) ||
            ext_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san)))
            goto out;
    } else if (ext_push(exts, ext_basic_constraints(true, 0)) ||
               ext_push(exts, ext_key_usage(KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN))) {
        goto out;
    }
    if (ext_push(exts, ext_ski(ski)) || ext_push(exts, ext_aki(aki, SKI_LEN)))
        goto out;
    t.subject = name;
    t.issuer = issuer ? X509_get_subject_name(issuer) : name;
    t.pubkey = pub;
    t.not_before = time_now() - 60;
    t.not_after = issuer ? time_now() + 397 * 24 * 3600 : time_add_years(time_now(), years);
    t.exts = exts;
    x = certbuild_sign(&t, s, err, sizeof err);
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_NAME_free(name);
    signer_free(s);
    return x;
}

static char *pem_of(X509 *a, X509 *b, EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *p = NULL, *out = NULL;
    if (!bio)
        return NULL;
    if ((a && PEM_write_bio_X509(bio, a) != 1) || (b && PEM_write_bio_X509(bio, b) != 1) ||
        (k && PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1))
        goto out;
    long n = BIO_get_mem_data(bio, &p);
    if ((out = malloc((size_t)n + 1))) {
        memcpy(out, p, (size_t)n);
        out[n] = 0;
    }
out:
    BIO_free(bio);
    return out;
}

int service_ca_server_cert(const char *data_dir, const unsigned char mkey[MASTER_KEY_LEN], const char *https_host,
                           char **cert_pem, char **key_pem, char *err, size_t errlen)
{
    char *ca_path = path_join(data_dir, "service-ca.pem"), *cak_path = path_join(data_dir, "service-ca.key.sealed");
    char *srv_path = path_join(data_dir, "server.pem"), *srvk_path = path_join(data_dir, "server.key.sealed");
    X509 *ca = NULL, *srv = NULL;
    EVP_PKEY *cak = NULL, *srvk = NULL;
    char *san = NULL;
    int rc = -1;
    if (!ca_path || !cak_path || !srv_path || !srvk_path)
        goto out;
    ca = load_cert(ca_path);
    cak = load_key(cak_path, mkey, "service-ca");
    if (!ca || !cak || EVP_PKEY_eq(X509_get0_pubkey(ca), cak) != 1) {
        X509_free(ca);
        EVP_PKEY_free(cak);
        if (!(cak = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) ||
            !(ca = issue(cak, "pkiaas service CA", NULL, cak, NULL, 20))) {
            snprintf(err, errlen, "cannot create the service CA");
            goto out;
        }
        if (save_key(cak_path, mkey, "service-ca", cak) != 0 || save_cert(ca_path, ca) != 0) {
            snprintf(err, errlen, "cannot write the service CA under %s: %s", data_dir, strerror(errno));
            goto out;
        }
        unlink(srv_path); /* a new CA means a new server certificate */
    }
    srv = load_cert(srv_path);
    srvk = load_key(srvk_path, mkey, "server");
    int stale = !srv || !srvk || EVP_PKEY_eq(X509_get0_pubkey(srv), srvk) != 1 ||
                X509_cmp_time(X509_get0_notAfter(srv), &(time_t){time_now() + RENEW_BEFORE_S}) <= 0 ||
                (strspn(https_host, "0123456789.:") == strlen(https_host) ? X509_check_ip_asc(srv, https_host, 0) : X509_check_host(srv, https_host, 0, 0, NULL)) != 1;
    if (stale) {
        X509_free(srv);
        EVP_PKEY_free(srvk);
        srv = NULL;
        int is_ip = strspn(https_host, "0123456789.:") == strlen(https_host);
        if (asprintf(&san, "DNS:localhost,IP:127.0.0.1,IP:::1%s%s", is_ip ? ",IP:" : ",DNS:", https_host) < 0) {
            san = NULL;
            goto out;
        }
        if (!(srvk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) ||
            !(srv = issue(srvk, "localhost", ca, cak, san, 0))) {
            snprintf(err, errlen, "cannot issue the HTTPS server certificate");
            goto out;
        }
        if (save_key(srvk_path, mkey, "server", srvk) != 0 || save_cert(srv_path, srv) != 0) {
            snprintf(err, errlen, "cannot write the server certificate under %s", data_dir);
            goto out;
        }
    }
    if (!(*cert_pem = pem_of(srv, ca, NULL)) || !(*key_pem = pem_of(NULL, NULL, srvk))) {
        free(*cert_pem);
        *cert_pem = NULL;
        goto out;
    }
    rc = 0;
out:
    free(ca_path);
    free(cak_path);
    free(srv_path);
    free(srvk_path);
    free(san);
    X509_free(ca);
    X509_free(srv);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(srvk);
    return rc;
}
