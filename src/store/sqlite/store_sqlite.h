/* SQLite backend of the store (WAL, foreign keys, busy timeout, migrations).
 * Internal to src/store/. */
#ifndef PKIAAS_STORE_SQLITE_H
#define PKIAAS_STORE_SQLITE_H

#include "store/store.h"

struct store *store_sqlite_open(const char *path, char *err, size_t errlen);

#endif
