/* libFuzzer: the ACME JWS layer (flattened JWS, protected header, JWK
 * import, thumbprint, signature check) on arbitrary bytes. */
#include "acme/jws.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jws j;
    struct err e;
    memset(&e, 0, sizeof e);
    if (jws_parse(data, size, size % 2 == 1, &j, &e) != 0)
        return 0;
    if (j.jwk) {
        char tp[44];
        (void)jwk_thumbprint(j.jwk, tp);
        EVP_PKEY *k = jwk_to_pkey(j.jwk, &e);
        if (k) {
            (void)jws_verify(&j, k, &e);
            json_t *back = jwk_from_pkey(k);
            json_decref(back);
            EVP_PKEY_free(k);
        }
    }
    static const unsigned char key[32] = {1};
    (void)jws_verify_hmac(&j, key, sizeof key, &e);
    jws_free(&j);
    return 0;
}
