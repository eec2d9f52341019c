#include "http/http.h"
#include "util/json_util.h"
#include "util/jsonw.h"
#include "util/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void resp_take(struct http_resp *r, int status, const char *ctype, unsigned char *data, size_t len)
{
    free(r->body);
    r->status = status;
    r->content_type = ctype;
    r->body = data;
    r->len = len;
}

void resp_bytes(struct http_resp *r, int status, const char *ctype, const void *data, size_t len)
{
    unsigned char *p = malloc(len ? len : 1);
    if (!p) {
        resp_take(r, 500, "text/plain", NULL, 0);
        return;
    }
    if (len)
        memcpy(p, data, len);
    resp_take(r, status, ctype, p, len);
}

void resp_json(struct http_resp *r, int status, json_t *j)
{
    size_t n = 0;
    char *s = j ? jsonw_compact(j, &n) : NULL;
    if (!s && j && (s = json_dumps(j, JSON_COMPACT))) /* what jsonw leaves to jansson */
        n = strlen(s);
    json_decref(j);
    if (!s) {
        resp_take(r, 500, "application/json", (unsigned char *)strdup("{\"error\":{\"code\":\"internal\"}}"), 29);
        return;
    }
    resp_take(r, status, "application/json", (unsigned char *)s, n);
}

void resp_error(struct http_resp *r, int status, const char *code, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_fix(msg); /* messages quote request bytes (paths, values) */
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", msg);
    if (e && field && *field) {
        char f[128];
        snprintf(f, sizeof f, "%s", field);
        utf8_fix(f);
        json_object_set_new(e, "field", json_string(f));
    }
    resp_json(r, status, e ? json_pack("{s:o}", "error", e) : NULL);
}

void resp_err(struct http_resp *r, const struct err *e)
{
    resp_error(r, e->status ? e->status : 500, e->code[0] ? e->code : "internal", e->field, "%s", e->msg);
}

int resp_header(struct http_resp *r, const char *name, const char *value)
{
    if (r->nhdr >= HTTP_MAX_HEADERS)
        return -1;
    char *v = strdup(value);
    if (!v)
        return -1;
    r->hdr_name[r->nhdr] = name;
    r->hdr_value[r->nhdr++] = v;
    return 0;
}

void resp_free(struct http_resp *r)
{
    free(r->body);
    for (unsigned i = 0; i < r->nhdr; i++)
        free(r->hdr_value[i]);
    memset(r, 0, sizeof(*r));
}

bool http_etag_matches(const char *inm, const char *etag)
{
    size_t el = strlen(etag);
    if (!inm)
        return false;
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*') /* "*": any current representation */
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2; /* weak comparison: the W/ prefix does not count */
        const char *start = p;
        if (*p != '"')
            return false; /* not an entity-tag list */
        p++;
        while (*p && *p != '"')
            p++;
        if (*p != '"')
            return false;
        p++;
        if ((size_t)(p - start) == el && memcmp(start, etag, el) == 0)
            return true;
    }
    return false;
}
