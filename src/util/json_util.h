/* json_util: typed field access on request bodies with error messages that
 * name the offending field. Each getter returns 0 when the field is absent
 * (leaving *out untouched) or valid, -1 when present with the wrong type or
 * out of range, writing "<field>: <problem>" into err. */
#ifndef PKIAAS_UTIL_JSON_UTIL_H
#define PKIAAS_UTIL_JSON_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct jerr {
    char field[64];
    char msg[256];
};

void jerr_set(struct jerr *e, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Strings: borrowed pointer into the JSON object; `maxlen` bytes at most,
 * valid UTF-8 guaranteed by jansson, embedded NULs refused. */
int jget_str(const json_t *o, const char *key, size_t maxlen, const char **out, struct jerr *e);
int jget_bool(const json_t *o, const char *key, bool *out, struct jerr *e);
/* Integers within [min,max]; JSON null leaves *present false. */
int jget_int(const json_t *o, const char *key, long long min, long long max, long long *out, bool *present,
             struct jerr *e);

/* Refuses keys not in the NULL-terminated `allowed` list. */
int jcheck_keys(const json_t *o, const char *const *allowed, struct jerr *e);

#endif
