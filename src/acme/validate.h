/* validate: ACME challenge validation (RFC 8555 section 8, RFC 8737) on
 * worker threads, so request threads never wait on the network.
 *
 * A job names the challenge type, the identifier and the expected key
 * authorization; a worker performs the check with timeouts and calls the
 * job's completion callback with the outcome (on the worker thread). The
 * module knows nothing about orders or the store. */
#ifndef PKIAAS_ACME_VALIDATE_H
#define PKIAAS_ACME_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

struct validate_cfg {
    int http01_port;       /* default 80 */
    int tlsalpn01_port;    /* default 443 */
    const char *resolver;  /* "ip:port" of the DNS server used for every
                            * lookup (A/AAAA for http-01 and tls-alpn-01,
                            * TXT for dns-01); NULL = the system resolver */
    int timeout_ms;        /* per attempt, default 10000 */
    int workers;           /* threads, default 4 */
};

enum validate_type { VALIDATE_HTTP01, VALIDATE_DNS01, VALIDATE_TLSALPN01 };

struct validate_result {
    bool valid;
    /* When !valid: the ACME problem type suffix ("connection", "dns",
     * "unauthorized", "incorrectResponse", "tls") and a message saying what
     * was seen (never longer than the buffer; no raw bytes from the peer
     * beyond a short, sanitised excerpt). */
    char problem[32];
    char detail[256];
};

typedef void (*validate_done)(void *arg, const struct validate_result *r);

struct validator;

struct validator *validator_new(const struct validate_cfg *cfg);
/* Stops the workers (jobs still queued are completed with valid=false,
 * problem "serverInternal") and frees. */
void validator_free(struct validator *v);

/* Queues a job; returns 0, or -1 when the queue is full (the caller answers
 * rateLimited / retries later).
 *   identifier: a DNS name (A-label, no trailing dot) or an IP address
 *     literal (v4 or v6; for http-01 only and tls-alpn-01 with the RFC 8738
 *     reverse name for SNI);
 *   token: the challenge token (base64url, checked by the caller);
 *   key_authz: "<token>.<account key thumbprint>".
 * http-01: GET http://<identifier>:<http01_port>/.well-known/acme-challenge/<token>
 *   (redirects not followed in this version; body up to 8 KiB, must equal
 *   key_authz after trimming trailing whitespace).
 * dns-01: TXT _acme-challenge.<identifier> must contain
 *   base64url(SHA-256(key_authz)).
 * tls-alpn-01: TLS to <identifier>:<tlsalpn01_port> with SNI = identifier
 *   and ALPN "acme-tls/1" only; the server must select acme-tls/1 and
 *   present a self-signed certificate whose only SAN is a dNSName equal to
 *   the identifier and which has a critical id-pe-acmeIdentifier
 *   (1.3.6.1.5.5.7.1.31) extension holding an OCTET STRING of
 *   SHA-256(key_authz). */
int validator_submit(struct validator *v, enum validate_type type, const char *identifier, bool is_ip,
                     const char *token, const char *key_authz, validate_done done, void *arg);

#endif
