/* PostgreSQL backend of the store: a pool of libpq connections (one
 * transaction per op, prepared statements per connection, reconnect on a
 * broken connection) and the state several nodes must share (rate-limit
 * buckets, job leases, per-partition serialised audit appends).
 * Internal to src/store/. */
#ifndef PKIAAS_STORE_PG_H
#define PKIAAS_STORE_PG_H

#include "store/store.h"

/* conninfo: a libpq URI ("postgresql://user@host:port/db?..."). Applies the
 * migrations of src/store/migrations_pg/ under an advisory lock, so nodes
 * starting together migrate once. */
struct store *store_pg_open(const char *conninfo, char *err, size_t errlen);

#endif
