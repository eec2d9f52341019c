/* codec: hex and base64 / base64url encoding over OpenSSL's EVP encoder.
 * All returned strings are malloc'd and owned by the caller. Decoders reject
 * any character outside the alphabet (whitespace is allowed only by
 * b64_decode, which accepts PEM-style line breaks). */
#ifndef PKIAAS_UTIL_CODEC_H
#define PKIAAS_UTIL_CODEC_H

#include <stddef.h>

char *hex_encode(const unsigned char *p, size_t n);               /* lowercase */
char *hex_encode_colon(const unsigned char *p, size_t n);         /* AA:BB:.. */
int hex_decode(const char *s, unsigned char **out, size_t *outlen);
char *b64_encode(const unsigned char *p, size_t n);               /* no newlines */
int b64_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen);
char *b64url_encode(const unsigned char *p, size_t n);            /* unpadded */
int b64url_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen);
/* Random bytes from the OpenSSL CSPRNG; -1 on failure. */
int random_bytes(unsigned char *p, size_t n);
/* `n` random bytes as a base64url token / hex string. */
char *random_token(size_t n);
char *random_hex(size_t n);

#endif
