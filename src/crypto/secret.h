/* secret: generated secrets and their stored forms.
 *  - Passwords: scrypt (N=2^15, r=8, p=1) with a 16-byte salt, stored as
 *    "scrypt$15$8$1$<salt b64>$<hash b64>".
 *  - API tokens: high-entropy random strings; stored as SHA-256 hex (a slow
 *    hash adds nothing for 256-bit random tokens and would slow every call). */
#ifndef PKIAAS_CRYPTO_SECRET_H
#define PKIAAS_CRYPTO_SECRET_H

#include <stdbool.h>

char *secret_password_hash(const char *password);
bool secret_password_verify(const char *password, const char *stored);
char *secret_token_hash(const char *token);
/* A random password of 20 characters from an unambiguous alphabet. */
char *secret_new_password(void);

#endif
