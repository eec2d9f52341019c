/* ext: identifiers and X.509v3 extension construction shared by CA,
 * end-entity, CRL and OCSP code.
 *
 * Each ext_* builder returns a new X509_EXTENSION (caller frees) or NULL. */
#ifndef PKIAAS_X509_EXT_H
#define PKIAAS_X509_EXT_H

#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stddef.h>

#define SKI_LEN 20
#define SERIAL_LEN 16

/* RFC 7093 section 2 method 1: leftmost 160 bits of SHA-256 over the
 * subjectPublicKey BIT STRING value (excluding tag, length and unused-bits). */
int x509_ski_compute(EVP_PKEY *pk, unsigned char out[SKI_LEN]);
/* Same, straight from an X509_PUBKEY (no key decoding or encoding). */
int x509_ski_from_xpub(const X509_PUBKEY *xpk, unsigned char out[SKI_LEN]);
/* Same, from the DER SubjectPublicKeyInfo. */
int x509_ski_compute_spki(const unsigned char *spki, size_t len, unsigned char out[SKI_LEN]);

/* A 16-byte serial: 0x40, then the milliseconds since the epoch (48 bits,
 * big-endian), then 9 CSPRNG bytes (72 bits of entropy; CA/Browser Forum BR
 * 7.1 asks for at least 64). Positive with a non-zero leading byte, so the
 * DER INTEGER is always exactly 16 bytes. Serials of one CA therefore sort
 * by issuance time: new ones land at the right edge of the store's
 * (issuer, serial) index instead of on a random page each (measured: fewer
 * pages written per committed certificate). The random part is the last
 * 9 bytes; anything that needs uniform bits (CRL shards) takes them there. */
int x509_serial_new(unsigned char out[SERIAL_LEN]);

/* Appends x to sk, taking ownership (x freed on failure). -1 when x is NULL
 * or the push fails, so builders can chain `ext_push(sk, ext_...(...))`. */
int ext_push(STACK_OF(X509_EXTENSION) *sk, X509_EXTENSION *x);

X509_EXTENSION *ext_basic_constraints(bool ca, int pathlen /* -1 = none */);
/* ku: bitmask of KU_* from x509v3.h (KU_DIGITAL_SIGNATURE...). */
X509_EXTENSION *ext_key_usage(unsigned ku);
X509_EXTENSION *ext_ski(const unsigned char ski[SKI_LEN]);
X509_EXTENSION *ext_aki(const unsigned char *keyid, size_t len);
X509_EXTENSION *ext_crl_dp(const char *url);
/* Either URL may be NULL (omitted); both NULL → NULL. */
X509_EXTENSION *ext_aia(const char *ocsp_url, const char *ca_issuers_url);

/* Lists KU bit names ("digitalSignature", ...) of a certificate as a
 * comma-separated string into out. */
void x509_ku_names(X509 *x, char *out, size_t n);
/* SHA-256 over the DER of a certificate, lowercase hex (malloc'd). */
char *x509_fingerprint_sha256(X509 *x);
/* Serial number as lowercase hex with a leading 00 when the top bit of the
 * first byte would otherwise be set (as the guide shows), malloc'd. */
char *x509_serial_hex(const X509 *x);

#endif
