/* totp: RFC 6238 time-based one-time passwords (HMAC-SHA-1, 30 s steps,
 * 6 digits — what authenticator apps implement) and the RFC 4648 base32
 * form of the secret used in otpauth:// URIs. */
#ifndef PKIAAS_CRYPTO_TOTP_H
#define PKIAAS_CRYPTO_TOTP_H

#include <stddef.h>
#include <stdint.h>

#define TOTP_SECRET_LEN 20
#define TOTP_STEP_S 30

/* The 6-digit code for a time step (RFC 4226 dynamic truncation). */
uint32_t totp_code(const unsigned char *secret, size_t len, uint64_t step);
/* Accepts `code` for steps now-1..now+1 that are strictly after
 * `last_step` (a code is usable once). Returns the matched step, or -1. */
int64_t totp_verify(const unsigned char *secret, size_t len, const char *code, int64_t now, int64_t last_step);
/* Base32 without padding (malloc'd). */
char *base32_encode(const unsigned char *p, size_t n);

#endif
