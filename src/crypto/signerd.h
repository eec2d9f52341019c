/* signerd: CA private keys (and the CAs' OCSP responder keys) in a
 * separate process.
 *
 * pkiaasd forks the signer process at start-up, before any thread or
 * listener exists; the child keeps only the master key and a few socket
 * pairs (every other descriptor is closed). The network-facing process
 * never unseals a CA or responder key: it hands the sealed blob (with its
 * AAD) and a digest to the child, which unseals (once, then cached), signs
 * and returns the signature. These keys are generated there too. The child
 * answers only these requests, only for blobs whose AAD marks them as CA
 * keys ("ca-key:") or OCSP responder keys ("ocsp-key:"), with a typed,
 * length-capped message format; anything else is refused. A signer process
 * that dies is replaced: by then the daemon has threads, so the new one is
 * this program run again (fork, exec) rather than a plain fork.
 *
 * Each request is one SOCK_SEQPACKET message on one of SIGNERD_CHANNELS
 * socket pairs (a channel per concurrent caller; callers take a free one).
 * In the signer process one worker thread per CPU serves all channels from
 * one epoll set, so a worker that finishes a signature takes the next
 * waiting request without sleeping; unsealed keys and their prepared
 * signing contexts are cached there. */
#ifndef PKIAAS_CRYPTO_SIGNERD_H
#define PKIAAS_CRYPTO_SIGNERD_H

#include "crypto/keywrap.h"
#include "crypto/signer.h"

#include <stdbool.h>
#include <stddef.h>

/* 32: with 8, request threads queued for a free channel (futex waits and
 * extra context switches); 32 cut context switches per certificate from
 * ~5.6 to ~5.3 and the CPU per certificate by 5-18% in three paired runs
 * under bench/issue load (docs/benchmarks.md). Each channel is one socket
 * pair. */
#define SIGNERD_CHANNELS 32
#define SIGNERD_MSG_MAX (32 * 1024) /* a request or reply never exceeds this */

struct signerd;

/* Forks the signer process (call before starting threads). NULL on error. */
struct signerd *signerd_start(const unsigned char mkey[MASTER_KEY_LEN]);
/* Closes the channels and reaps the child. */
void signerd_stop(struct signerd *sd);
/* A signer process that dies is replaced on the next request that finds it
 * gone (that request is retried once): pkiaasd runs itself again as
 * `pkiaasd __signer`, whose main() calls this. Returns only on error. */
int signerd_exec_main(void);

/* A signer for a sealed CA key (md: SHA256/384/512; pss: RSASSA-PSS). */
struct signer *signerd_signer(struct signerd *sd, const unsigned char *blob, size_t blob_len, const char *aad,
                              const char *md, bool pss);
/* Generates a CA key of keyspec `label` in the signer process: the sealed
 * blob (malloc'd) and the public key. */
int signerd_generate(struct signerd *sd, const char *label, const char *aad, unsigned char **blob, size_t *blob_len,
                     EVP_PKEY **pub);

#endif
