/* buf: a growable byte buffer with an explicit size cap.
 *
 * Promises: data is always NUL-terminated (one spare byte beyond len) so a
 * buffer holding text can be used as a C string; appends fail (return -1)
 * instead of growing past `cap` bytes, so a peer can never make us allocate
 * more than the caller allowed. */
#ifndef PKIAAS_UTIL_BUF_H
#define PKIAAS_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    unsigned char *data;
    size_t len;
    size_t alloc;
    size_t cap; /* 0 = no cap */
};

void buf_init(struct buf *b, size_t cap);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Room for `extra` more bytes (within the cap) without further growth. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (who frees it) and resets the buffer. */
unsigned char *buf_take(struct buf *b, size_t *len);

#endif
