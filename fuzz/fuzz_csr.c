/* libFuzzer: CSR intake (PEM, DER or base64; proof of possession) as the
 * issuance core and every protocol see it. */
#include "x509/csr.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct err e;
    memset(&e, 0, sizeof e);
    X509_REQ *r = csr_parse(data, size, &e);
    X509_REQ_free(r);
    return 0;
}
