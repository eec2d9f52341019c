/* masterkey: the 256-bit key that seals every private key and secret at
 * rest. Kept in a file of mode 0600 (64 hex characters); generated on first
 * start. A file readable by group or others is refused. */
#ifndef PKIAAS_CRYPTO_MASTERKEY_H
#define PKIAAS_CRYPTO_MASTERKEY_H

#include "crypto/keywrap.h"

#include <stddef.h>

int masterkey_load_or_create(const char *path, unsigned char key[MASTER_KEY_LEN], char *err, size_t errlen);

#endif
