/* err: a client-facing error: HTTP-style status, machine code, the field
 * at fault and a human message. Modules below the HTTP layer fill it; the
 * HTTP layer renders it as {"error":{"code","field","message"}}. */
#ifndef PKIAAS_UTIL_ERR_H
#define PKIAAS_UTIL_ERR_H

#include <stdio.h>

struct err {
    int status;      /* 400, 404, 409, 422, 500 ... */
    char code[32];   /* invalid_field, not_found, conflict, unsupported, internal */
    char field[64];
    char msg[320];
};

static inline void err_field_set(char *dst, size_t n, const char *f)
{
    snprintf(dst, n, "%s", f ? f : "");
}

#define err_set(e, st, cd, fld, ...)                                                                               \
    do {                                                                                                           \
        (e)->status = (st);                                                                                        \
        snprintf((e)->code, sizeof (e)->code, "%s", (cd));                                                         \
        err_field_set((e)->field, sizeof (e)->field, (fld));                                                       \
        snprintf((e)->msg, sizeof (e)->msg, __VA_ARGS__);                                                          \
    } while (0)

#endif
