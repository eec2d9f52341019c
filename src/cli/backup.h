/* Local backup and restore of a SQLite store (no server involved).
 * cli_backup: a consistent copy of db_path (the daemon may be running) into
 * out_path. cli_restore: replaces db_path with a checked backup; the daemon
 * must be stopped. Both return 0, or -1 with a message in err; an existing
 * target file is replaced only with overwrite. */
#ifndef PKIAAS_CLI_BACKUP_H
#define PKIAAS_CLI_BACKUP_H

#include <stdbool.h>
#include <stddef.h>

int cli_backup(const char *db_path, const char *out_path, bool overwrite, char *err, size_t errlen);
int cli_restore(const char *backup_path, const char *db_path, bool overwrite, char *err, size_t errlen);

#endif
