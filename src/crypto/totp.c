#include "crypto/totp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

uint32_t totp_code(const unsigned char *secret, size_t len, uint64_t step)
{
    unsigned char msg[8], mac[20];
    unsigned int maclen = 0;
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(step & 0xff);
        step >>= 8;
    }
    if (!HMAC(EVP_sha1(), secret, (int)len, msg, sizeof msg, mac, &maclen) || maclen != 20)
        return UINT32_MAX;
    unsigned off = mac[19] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) | ((uint32_t)mac[off + 2] << 8) |
                   mac[off + 3];
    return bin % 1000000;
}

int64_t totp_verify(const unsigned char *secret, size_t len, const char *code, int64_t now, int64_t last_step)
{
    if (!code || strlen(code) != 6 || strspn(code, "0123456789") != 6)
        return -1;
    uint32_t want = (uint32_t)strtoul(code, NULL, 10);
    int64_t step = now / TOTP_STEP_S, found = -1;
    for (int64_t s = step - 1; s <= step + 1; s++) {
        /* compare every candidate (constant work), keep the one that matches */
        uint32_t c = totp_code(secret, len, (uint64_t)s);
        unsigned char a[4] = {(unsigned char)(c >> 24), (unsigned char)(c >> 16), (unsigned char)(c >> 8),
                              (unsigned char)c};
        unsigned char b[4] = {(unsigned char)(want >> 24), (unsigned char)(want >> 16), (unsigned char)(want >> 8),
                              (unsigned char)want};
        if (CRYPTO_memcmp(a, b, 4) == 0 && s > last_step && found < 0)
            found = s;
    }
    return found;
}

char *base32_encode(const unsigned char *p, size_t n)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    char *out = malloc(n * 8 / 5 + 2);
    size_t o = 0;
    unsigned buffer = 0;
    int bits = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        buffer = (buffer << 8) | p[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = alpha[(buffer >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = alpha[(buffer << (5 - bits)) & 31];
    out[o] = 0;
    return out;
}
