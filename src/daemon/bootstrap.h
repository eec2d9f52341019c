/* bootstrap: first-run provisioning of a partition (subscription assigned
 * to the default region, owner user with a one-time password, an API token
 * for automation). Prints one JSON object; secrets appear there once and are
 * stored only hashed. */
#ifndef PKIAAS_DAEMON_BOOTSTRAP_H
#define PKIAAS_DAEMON_BOOTSTRAP_H

#include "daemon/context.h"

#include <stdio.h>

/* certs / cas: the subscription's purchased inventory (the guide's
 * quotas; premium tier from 1,000,000 certificates). */
int bootstrap_partition(struct app *a, const char *partition, const char *owner_email, long long certs,
                        long long cas, FILE *out, char *err, size_t errlen);
bool bootstrap_partition_id_valid(const char *id);

#endif
