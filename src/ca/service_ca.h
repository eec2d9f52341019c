/* service_ca: the internal CA behind the daemon's own HTTPS certificate.
 *
 * On first start it creates, under the data directory, service-ca.pem (an
 * ECDSA P-256 root that clients can trust), its sealed key, and a server
 * certificate for "localhost", 127.0.0.1, ::1 and the configured HTTPS host.
 * Later starts reuse them, renewing the server certificate when it has less
 * than 30 days left. */
#ifndef PKIAAS_CA_SERVICE_CA_H
#define PKIAAS_CA_SERVICE_CA_H

#include "crypto/keywrap.h"

#include <stddef.h>

/* Outputs malloc'd PEM strings: the server certificate followed by the
 * service CA certificate, and the server private key. */
int service_ca_server_cert(const char *data_dir, const unsigned char mkey[MASTER_KEY_LEN], const char *https_host,
                           char **cert_pem, char **key_pem, char *err, size_t errlen);

#endif
