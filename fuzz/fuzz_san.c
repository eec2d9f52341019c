/* libFuzzer: subject alternative names as requests carry them. The first
 * input byte: bit 0 allows wildcards; bit 1 picks the form —
 *   0  the rest is JSON, the "subjectAltNames" array of an issuance request
 *      (san_from_json);
 *   1  the rest is DER GeneralNames, as a CSR's extensionRequest carries
 *      them (san_merge_checked).
 * Whatever is accepted must survive the way back: san_to_json's output is
 * accepted again by san_from_json and names the same things (san_to_text
 * equal), and the names encode as DER. Otherwise the harness aborts. */
#include "x509/san.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const GENERAL_NAMES *names, bool wildcard)
{
    struct err e;
    memset(&e, 0, sizeof e);
    json_t *j = san_to_json(names);
    GENERAL_NAMES *again = sk_GENERAL_NAME_new_null();
    char *t1 = san_to_text(names), *t2 = NULL;
    unsigned char *der = NULL;
    if (!j || !again || !t1) {
        fprintf(stderr, "fuzz_san: accepted names cannot be rendered\n");
        abort();
    }
    if (san_from_json(j, again, wildcard, &e) != 0) {
        char *s = json_dumps(j, JSON_COMPACT);
        fprintf(stderr, "fuzz_san: rendered names are refused again: %s (%s)\n", e.msg, s ? s : "?");
        abort();
    }
    t2 = san_to_text(again);
    if (!t2 || strcmp(t1, t2) != 0) {
        fprintf(stderr, "fuzz_san: round trip changed the names: '%s' -> '%s'\n", t1, t2 ? t2 : "(null)");
        abort();
    }
    if (i2d_GENERAL_NAMES(names, &der) < 0) {
        fprintf(stderr, "fuzz_san: accepted names do not encode\n");
        abort();
    }
    OPENSSL_free(der);
    free(t1);
    free(t2);
    json_decref(j);
    GENERAL_NAMES_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool wildcard = data[0] & 1, der_form = data[0] & 2;
    data++;
    size--;
    struct err e;
    memset(&e, 0, sizeof e);
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    if (!names)
        abort();
    if (!der_form) {
        json_error_t je;
        json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
        if (j && san_from_json(j, names, wildcard, &e) == 0)
            round_trip(names, wildcard);
        json_decref(j);
    } else {
        const unsigned char *p = data;
        GENERAL_NAMES *src = d2i_GENERAL_NAMES(NULL, &p, (long)size);
        if (src && san_merge_checked(names, src, wildcard, &e) == 0)
            round_trip(names, wildcard);
        GENERAL_NAMES_free(src);
    }
    GENERAL_NAMES_free(names);
    return 0;
}
