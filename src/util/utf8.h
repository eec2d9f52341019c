/* utf8: strict UTF-8 (RFC 3629) — no overlong forms, no surrogates, nothing
 * above U+10FFFF. One definition for every place that takes text from the
 * network (DN values, subject alternative names, JSON error messages). */
#ifndef PKIAAS_UTIL_UTF8_H
#define PKIAAS_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (1-4) of the valid sequence at p, of which n bytes may be read;
 * 0 when the bytes there are not valid UTF-8. */
size_t utf8_seq(const unsigned char *p, size_t n);
/* Whether the n bytes at p are valid UTF-8; the code points are counted
 * into *nchars when it is not NULL. */
bool utf8_valid(const unsigned char *p, size_t n, size_t *nchars);
/* Makes the NUL-terminated `s` valid UTF-8 in place: bytes that do not form
 * a valid sequence (from the network, or a multibyte character cut by
 * truncation) become '?', so the text can always go into a JSON document. */
void utf8_fix(char *s);

#endif
