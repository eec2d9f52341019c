#include "util/json_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void jerr_set(struct jerr *e, const char *field, const char *fmt, ...)
{
    if (!e)
        return;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    char tmp[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (field && *field)
        snprintf(e->msg, sizeof e->msg, "%s: %s", field, tmp);
    else
        snprintf(e->msg, sizeof e->msg, "%s", tmp);
}

int jget_str(const json_t *o, const char *key, size_t maxlen, const char **out, struct jerr *e)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        jerr_set(e, key, "must be a string");
        return -1;
    }
    size_t n = json_string_length(v);
    if (n > maxlen) {
        jerr_set(e, key, "must be at most %zu characters", maxlen);
        return -1;
    }
    if (strlen(json_string_value(v)) != n) {
        jerr_set(e, key, "must not contain NUL characters");
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int jget_bool(const json_t *o, const char *key, bool *out, struct jerr *e)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        jerr_set(e, key, "must be true or false");
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

int jget_int(const json_t *o, const char *key, long long min, long long max, long long *out, bool *present,
             struct jerr *e)
{
    json_t *v = json_object_get(o, key);
    if (present)
        *present = false;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        jerr_set(e, key, "must be an integer");
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < min || x > max) {
        jerr_set(e, key, "must be between %lld and %lld", min, max);
        return -1;
    }
    *out = x;
    if (present)
        *present = true;
    return 0;
}

int jcheck_keys(const json_t *o, const char *const *allowed, struct jerr *e)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0) {
                ok = 1;
                break;
            }
        if (!ok) {
            jerr_set(e, k, "unknown field");
            return -1;
        }
    }
    return 0;
}

