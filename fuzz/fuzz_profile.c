/* libFuzzer: custom certificate profile JSON validation. */
#include "ca/profile.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    struct err e;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return 0;
    memset(&e, 0, sizeof e);
    struct profile *p = profile_from_json(j, false, &e);
    profile_free(p);
    json_decref(j);
    return 0;
}
