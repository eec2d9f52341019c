/* limits: the size, time and count limits on what the network can make the
 * daemon read, keep or wait for — in one place, each with the reason for
 * its value. Modules use these names; a limit that is a configuration
 * option (max_body, rate limits) has its default in util/config.c and is
 * listed here for reference only.
 *
 * Unauthenticated endpoints (protocols before their own authentication,
 * OCSP, CRL) get the smaller bounds: a stranger must not be able to make the
 * daemon parse or hold much. */
#ifndef PKIAAS_UTIL_LIMITS_H
#define PKIAAS_UTIL_LIMITS_H

/* ---- HTTP ------------------------------------------------------------------ */
/* Default request body limit (config `max_body`): the largest legitimate
 * bodies are batch revocations and PKCS#7 bundles, far below 1 MiB. */
#define LIMIT_HTTP_BODY_DEFAULT (1024 * 1024)
/* Idle / slow connection timeout: slowloris-style partial requests are
 * dropped after this long without progress. */
#define LIMIT_HTTP_CONN_TIMEOUT_S 30
/* Concurrent connections: beyond this libmicrohttpd refuses new ones. */
#define LIMIT_HTTP_CONNECTIONS 4096
/* default of max_connections_per_ip: slow clients of one address cannot
 * hold every slot */
#define LIMIT_HTTP_CONNECTIONS_PER_IP 512
/* libmicrohttpd's memory per connection: request line and headers, the
 * read buffer bodies stream through, the reply's headers. Ordinary large
 * headers (8 KiB beyond the usual ones) fit; larger ones get a 4xx.
 * libmicrohttpd zeroes the whole area after every request on a kept-alive
 * connection, so its size is paid per request (64 KiB cost ~1% of the CPU
 * under issuance load, and evicted the first-level cache each time). */
#define LIMIT_HTTP_CONN_MEMORY (16 * 1024)
/* Path parameters per route and their length: no route has more, no id is
 * longer (ids are at most 128 characters, base64 messages go in bodies). */
#define LIMIT_HTTP_PARAMS 6
#define LIMIT_HTTP_SEGMENT 256

/* Bodies of unauthenticated JSON endpoints (login, invitations): an
 * e-mail address, a password and a TOTP code. */
#define LIMIT_UNAUTH_JSON_BYTES (16 * 1024)
/* The MDM web service reads its JSON before checking credentials. */
#define LIMIT_MDM_BODY_BYTES (64 * 1024)

/* ---- certificate requests ----------------------------------------------------- */
/* A CSR: a 4096-bit RSA key with a few hundred SANs fits well inside. */
#define LIMIT_CSR_BYTES (64 * 1024)
/* Extensions a caller may add beside a CSR, and one value's DER. */
#define LIMIT_REQ_EXTENSIONS 16
#define LIMIT_EXT_VALUE_BYTES 4096

/* ---- ACME ---------------------------------------------------------------------- */
/* A JWS (newOrder with 100 identifiers is ~10 KiB; keyChange nests one JWS). */
#define LIMIT_ACME_JWS_BYTES (64 * 1024)
/* Identifiers per order and contacts per account (RFC 8555 sets none; these
 * match what public CAs allow). */
#define LIMIT_ACME_IDENTIFIERS 100
#define LIMIT_ACME_CONTACTS 8
#define LIMIT_ACME_CONTACT_BYTES 256
/* Nonces live an hour: clients fetch a fresh one per request. */
#define LIMIT_ACME_NONCE_TTL_S 3600
/* Orders and authorizations are valid a week, then expire. */
#define LIMIT_ACME_ORDER_TTL_S (7 * 86400)
/* http-01 response body read at most (a key authorization is ~90 bytes). */
#define LIMIT_ACME_HTTP01_BODY 8192

/* ---- SCEP / MDM ---------------------------------------------------------------- */
/* A pkiMessage: a CSR wrapped in EnvelopedData and SignedData, with the
 * signer certificate. */
#define LIMIT_SCEP_MESSAGE_BYTES (256 * 1024)
/* signingTime further than this from our clock is badTime. */
#define LIMIT_SCEP_TIME_SKEW_S 86400
/* CertPoll can find a transaction's certificate this long. */
#define LIMIT_SCEP_TXN_TTL_S (7 * 86400)
/* MDM web service: variables per request and bytes of each. */
#define LIMIT_MDM_VARIABLES 32
#define LIMIT_MDM_VARIABLE_BYTES 256
/* Replies of Intune's services and the time we wait for them. */
#define LIMIT_INTUNE_REPLY_BYTES (1024 * 1024)
#define LIMIT_INTUNE_TIMEOUT_S 30

/* ---- EST / CMP ----------------------------------------------------------------- */
/* An EST body: a base64 CSR (4/3 of the CSR limit, with line breaks). */
#define LIMIT_EST_BODY_BYTES (4 * LIMIT_CSR_BYTES)
/* The Authorization header bytes looked at (Basic user:password). */
#define LIMIT_AUTH_HEADER_BYTES 1024
/* A CMP PKIMessage: a request with extraCerts and protection. */
#define LIMIT_CMP_MESSAGE_BYTES (256 * 1024)
/* A CMP transaction (waiting for certConf, replay guard) is kept an hour. */
#define LIMIT_CMP_TXN_TTL_S 3600

/* ---- OCSP ---------------------------------------------------------------------- */
/* An OCSP request: 16 CertIDs with a signature is a few KiB. */
#define LIMIT_OCSP_REQUEST_BYTES 65536
#define LIMIT_OCSP_IDS 16

#endif
