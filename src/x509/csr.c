#include "x509/csr.h"

#include "util/codec.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

static X509_REQ *der_exact(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    X509_REQ *r = d2i_X509_REQ(NULL, &p, (long)len);
    if (r && p != der + len) {
        X509_REQ_free(r);
        r = NULL;
    }
    return r;
}

X509_REQ *csr_parse(const unsigned char *data, size_t len, struct err *e)
{
    X509_REQ *r = NULL;
    unsigned char *der = NULL;
    size_t dlen = 0;
    if (!data || len == 0) {
        err_set(e, 400, "invalid_field", "csr", "csr: required");
        return NULL;
    }
    if (len > CSR_MAX) {
        err_set(e, 400, "invalid_field", "csr", "csr: larger than %d bytes", CSR_MAX);
        return NULL;
    }
    if (memmem(data, len, "-----BEGIN", 10)) {
        /* Decode the armour ourselves so the DER inside gets the same
         * exactness check as raw DER (no trailing bytes). */
        BIO *b = BIO_new_mem_buf(data, (int)len);
        char *name = NULL, *header = NULL;
        unsigned char *pem = NULL;
        long plen = 0;
        if (b && PEM_read_bio(b, &name, &header, &pem, &plen) == 1 &&
            (strcmp(name, "CERTIFICATE REQUEST") == 0 || strcmp(name, "NEW CERTIFICATE REQUEST") == 0))
            r = der_exact(pem, (size_t)plen);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(pem);
        BIO_free(b);
    } else if (data[0] == 0x30) {
        r = der_exact(data, len);
    } else if (b64_decode((const char *)data, len, &der, &dlen) == 0) {
        r = der_exact(der, dlen);
    }
    free(der);
    ERR_clear_error();
    if (!r) {
        err_set(e, 400, "invalid_field", "csr", "csr: not a PKCS#10 request (PEM, DER or base64 DER)");
        return NULL;
    }
    EVP_PKEY *pk = X509_REQ_get0_pubkey(r);
    if (!pk) {
        err_set(e, 400, "invalid_field", "csr", "csr: the public key cannot be decoded or its algorithm is unsupported");
        goto fail;
    }
    /* Refuse broken digests outright (MD2/MD4/MD5): a collision-prone
     * proof of possession proves nothing. */
    int mdnid = NID_undef, pknid = NID_undef;
    const X509_ALGOR *salg = NULL;
    X509_REQ_get0_signature(r, NULL, &salg);
    if (!salg || OBJ_find_sigid_algs(OBJ_obj2nid(salg->algorithm), &mdnid, &pknid) != 1 || mdnid == NID_md5 ||
        mdnid == NID_md4 || mdnid == NID_md2) {
        if (OBJ_obj2nid(salg ? salg->algorithm : NULL) != NID_rsassaPss) {
            err_set(e, 400, "invalid_field", "csr",
                    "csr: signature algorithm not accepted (use SHA-256 or stronger with RSA or ECDSA)");
            goto fail;
        }
    }
    if (X509_REQ_verify(r, pk) != 1) {
        err_set(e, 400, "invalid_field", "csr",
                "csr: signature does not verify with the request's public key (proof of possession failed)");
        goto fail;
    }
    ERR_clear_error();
    return r;
fail:
    ERR_clear_error();
    X509_REQ_free(r);
    return NULL;
}
