/* libFuzzer: the DN string parser (RFC 4514 and the guide's forms) and
 * printing the result back. */
#include "x509/dn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), err[200];
    X509_NAME *n = NULL;
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    if (dn_parse(s, &n, err, sizeof err) == 0) {
        char *p = dn_print(n);
        X509_NAME *again = NULL;
        /* what we print, we parse */
        if (p && dn_parse(p, &again, err, sizeof err) != 0)
            abort();
        X509_NAME_free(again);
        free(p);
    }
    X509_NAME_free(n);
    free(s);
    return 0;
}
