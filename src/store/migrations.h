/* Store migrations, embedded at build time from src/store/migrations/NNNN_name.sql
   (file names start with a zero-padded version number). */
#ifndef PKIAAS_STORE_MIGRATIONS_H
#define PKIAAS_STORE_MIGRATIONS_H

struct store_migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct store_migration store_migrations[];
extern const unsigned store_migrations_count;

/* PostgreSQL: src/store/migrations_pg/NNNN_name.sql, same version numbers
 * (0010 is the consolidated schema of SQLite versions 1..10). */
extern const struct store_migration store_pg_migrations[];
extern const unsigned store_pg_migrations_count;

#endif
