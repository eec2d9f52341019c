/* utf8: see utf8.h. */
#include "util/utf8.h"

#include <string.h>

size_t utf8_seq(const unsigned char *p, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char c = p[0];
    size_t len;
    unsigned long cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (p[k] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

bool utf8_valid(const unsigned char *p, size_t n, size_t *nchars)
{
    size_t i = 0, count = 0;
    while (i < n) {
        size_t len = utf8_seq(p + i, n - i);
        if (len == 0)
            return false;
        i += len;
        count++;
    }
    if (nchars)
        *nchars = count;
    return true;
}

void utf8_fix(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        size_t len = utf8_seq(p, n);
        if (len == 0) {
            *p++ = '?';
            n--;
            continue;
        }
        p += len;
        n -= len;
    }
}
