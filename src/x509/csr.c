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
        BIO *b = BIO_new_mem_buf(data, (int)len);
        if (b)
            r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
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
