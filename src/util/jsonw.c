#include "util/jsonw.h"

#include "util/buf.h"
#include "util/utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH_MAX 2048 /* jansson's JSON_PARSER_MAX_DEPTH default */

/* One pass: plain ASCII is copied in runs, multibyte sequences are checked
 * (utf8_seq) and copied, control characters, '"' and '\\' are escaped. */
static int put_string(struct buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    if (buf_append(b, "\"", 1) != 0)
        return -1;
    size_t run = 0, i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_seq(s + i, n - i);
            if (len == 0)
                return -1; /* not UTF-8: json_dumps refuses it too */
            i += len;
            continue;
        }
        if (buf_append(b, s + run, i - run) != 0)
            return -1;
        char esc[8];
        const char *e = esc;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default: snprintf(esc, sizeof esc, "\\u%04X", c); break;
        }
        if (buf_append_str(b, e) != 0)
            return -1;
        run = ++i;
    }
    if (buf_append(b, s + run, n - run) != 0)
        return -1;
    return buf_append(b, "\"", 1);
}

static int put(struct buf *b, const json_t *j, int depth)
{
    if (depth > DEPTH_MAX)
        return -1;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        if (buf_append(b, "{", 1) != 0)
            return -1;
        /* the iterator walks in insertion order, as json_dumps does */
        for (void *it = json_object_iter((json_t *)j); it; it = json_object_iter_next((json_t *)j, it)) {
            if ((it != json_object_iter((json_t *)j) && buf_append(b, ",", 1) != 0) ||
                put_string(b, json_object_iter_key(it), json_object_iter_key_len(it)) != 0 ||
                buf_append(b, ":", 1) != 0 || put(b, json_object_iter_value(it), depth + 1) != 0)
                return -1;
        }
        return buf_append(b, "}", 1);
    }
    case JSON_ARRAY: {
        if (buf_append(b, "[", 1) != 0)
            return -1;
        for (size_t i = 0; i < json_array_size(j); i++)
            if ((i && buf_append(b, ",", 1) != 0) || put(b, json_array_get(j, i), depth + 1) != 0)
                return -1;
        return buf_append(b, "]", 1);
    }
    case JSON_STRING:
        return put_string(b, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        return buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
    case JSON_TRUE:
        return buf_append(b, "true", 4);
    case JSON_FALSE:
        return buf_append(b, "false", 5);
    case JSON_NULL:
        return buf_append(b, "null", 4);
    default:
        return -1; /* reals: jansson's own formatting */
    }
}

char *jsonw_compact(const json_t *j, size_t *len)
{
    struct buf b;
    buf_init(&b, 0);
    /* an issued certificate's reply is ~4-5 KB: one allocation, no regrowth */
    if (buf_reserve(&b, 8192) != 0 || !j || (!json_is_object(j) && !json_is_array(j)) || put(&b, j, 1) != 0) {
        buf_free(&b);
        return NULL;
    }
    size_t n = 0;
    char *s = (char *)buf_take(&b, &n);
    if (len)
        *len = n;
    return s;
}
