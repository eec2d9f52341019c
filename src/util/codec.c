#include "util/codec.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

char *hex_encode(const unsigned char *p, size_t n)
{
    static const char d[] = "0123456789abcdef";
    char *s = malloc(n * 2 + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = d[p[i] >> 4];
        s[2 * i + 1] = d[p[i] & 15];
    }
    s[n * 2] = 0;
    return s;
}

char *hex_encode_colon(const unsigned char *p, size_t n)
{
    static const char d[] = "0123456789ABCDEF";
    char *s = malloc(n ? n * 3 : 1);
    if (!s)
        return NULL;
    s[0] = 0;
    for (size_t i = 0; i < n; i++) {
        s[3 * i] = d[p[i] >> 4];
        s[3 * i + 1] = d[p[i] & 15];
        s[3 * i + 2] = i + 1 < n ? ':' : 0;
    }
    return s;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *s, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(s);
    if (n % 2)
        return -1;
    unsigned char *p = malloc(n / 2 + 1);
    if (!p)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(p);
            return -1;
        }
        p[i] = (unsigned char)(hi << 4 | lo);
    }
    *out = p;
    *outlen = n / 2;
    return 0;
}

char *b64_encode(const unsigned char *p, size_t n)
{
    if (n > (size_t)1 << 30)
        return NULL;
    char *s = malloc(4 * ((n + 2) / 3) + 1);
    if (!s)
        return NULL;
    EVP_EncodeBlock((unsigned char *)s, p, (int)n);
    return s;
}

int b64_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen)
{
    /* Strip whitespace, then decode strictly. */
    char *clean = malloc(slen + 1);
    unsigned char *p = NULL;
    int rc = -1;
    size_t n = 0;
    if (!clean)
        goto out;
    for (size_t i = 0; i < slen; i++) {
        char c = s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/' || c == '='))
            goto out;
        clean[n++] = c;
    }
    if (n % 4 || n > (size_t)1 << 30)
        goto out;
    p = malloc(n / 4 * 3 + 1);
    if (!p)
        goto out;
    int len = n ? EVP_DecodeBlock(p, (unsigned char *)clean, (int)n) : 0;
    if (len < 0)
        goto out;
    /* EVP_DecodeBlock does not remove padding. */
    if (n >= 1 && clean[n - 1] == '=')
        len--;
    if (n >= 2 && clean[n - 2] == '=')
        len--;
    *out = p;
    *outlen = (size_t)len;
    p = NULL;
    rc = 0;
out:
    free(clean);
    free(p);
    return rc;
}

char *b64url_encode(const unsigned char *p, size_t n)
{
    char *s = b64_encode(p, n);
    if (!s)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '=')
            break;
        s[j++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    }
    s[j] = 0;
    return s;
}

int b64url_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen)
{
    if (slen % 4 == 1 || slen > (size_t)1 << 30)
        return -1;
    char *t = malloc(slen + 4);
    if (!t)
        return -1;
    size_t j = 0;
    for (size_t i = 0; i < slen; i++) {
        char c = s[i];
        if (c == '+' || c == '/' || c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            free(t);
            return -1;
        }
        t[j++] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    /* canonical only (RFC 4648 3.5): the bits of the last character that
     * encode nothing must be zero, or one value would have several
     * encodings (a JWK thumbprint taken over the text would then differ
     * for the same key) */
    if (slen % 4 >= 2) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *pos = strchr(alphabet, t[j - 1]);
        unsigned v = pos && t[j - 1] ? (unsigned)(pos - alphabet) : 0;
        if (v & (slen % 4 == 2 ? 0x0Fu : 0x03u)) {
            free(t);
            return -1;
        }
    }
    while (j % 4)
        t[j++] = '=';
    int rc = b64_decode(t, j, out, outlen);
    free(t);
    return rc;
}

int random_bytes(unsigned char *p, size_t n)
{
    if (n > (size_t)1 << 30)
        return -1;
    return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
}

char *random_token(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    char *s = NULL;
    if (p && random_bytes(p, n) == 0)
        s = b64url_encode(p, n);
    free(p);
    return s;
}

char *random_hex(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    char *s = NULL;
    if (p && random_bytes(p, n) == 0)
        s = hex_encode(p, n);
    free(p);
    return s;
}
