/* audit: the tamper-evident audit log.
 *
 *  - Each record holds the SHA-256 of its predecessor in the same partition
 *    (audit_record_hash defines the canonical form), so editing, inserting
 *    or deleting a record breaks the chain at that point.
 *  - Because an attacker with database access could recompute an unkeyed
 *    chain, the head of each partition's chain is signed with the
 *    partition's audit key (ECDSA P-256, sealed under the master key) every
 *    AUDIT_CHECKPOINT_EVERY records and every hour: a checkpoint that no
 *    longer matches its record, or lies beyond the end of the log, exposes
 *    rewriting and truncation.
 *  - The signed bytes are audit_checkpoint_text(): anyone can check a
 *    checkpoint with `openssl dgst -sha256 -verify key.pem -signature sig`.
 *  - A checkpoint is signed only over a tail that verifies from the previous
 *    (verified) checkpoint, and each one is also written to the daemon's log:
 *    a copy outside the database, as are the checkpoints a client exports
 *    (`pkiaas audit checkpoints -o DIR`, then `audit verify --against DIR`),
 *    which is what exposes a log cut back to an older checkpoint.
 *  - Limits: records appended with correct hashes by someone with write
 *    access to the database after the last checkpoint are indistinguishable
 *    from genuine ones until a checkpoint is due; the checkpoint interval
 *    (AUDIT_CHECKPOINT_EVERY records, one hour) bounds that window, and a
 *    log whose hour-old records lack a checkpoint fails verification. A
 *    checkpoint signed over such records first appends an AUDIT_GAP_ACTION
 *    record, so the gap stays visible once it is covered.
 * This module holds no secrets beyond the moment of signing. */
#ifndef PKIAAS_AUDIT_AUDIT_H
#define PKIAAS_AUDIT_AUDIT_H

#include "crypto/keywrap.h"
#include "store/store.h"

#include <stdint.h>

#define AUDIT_CHECKPOINT_EVERY 100
#define AUDIT_CHECKPOINT_MAX_AGE_MS (3600 * 1000LL)
/* what a record may be older than the interval before its missing
 * checkpoint counts (a slow scheduler tick) */
#define AUDIT_STALE_SLACK_MS (15 * 60 * 1000LL)
/* The action of the record a checkpoint appends before it signs over
 * records older than that: a gap in the log's protection, reported by
 * audit_verify for good. */
#define AUDIT_GAP_ACTION "audit.gap"
#define AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* Lowercase hex SHA-256 of the length-prefixed fields (malloc'd). */
char *audit_record_hash(const char *prev, const char *partition, int64_t at_ms, const char *actor, const char *ip,
                        const char *action, const char *target, const char *result, const char *detail);
/* The exact bytes a checkpoint signature covers (malloc'd, NUL-terminated). */
char *audit_checkpoint_text(const char *partition, int64_t seq, const char *hash, int64_t at_ms);

/* Signs the chain heads that are due (scheduler). */
void audit_checkpoint_due(struct store *st, const unsigned char mkey[MASTER_KEY_LEN], int64_t now_ms);
/* Signs every partition's head that has records since its last checkpoint
 * (the daemon's clean stop: a restart more than an hour later finds no
 * uncovered record to report as a gap). */
void audit_checkpoint_all(struct store *st, const unsigned char mkey[MASTER_KEY_LEN], int64_t now_ms);
/* Returned when the records since the last checkpoint do not form a valid
 * chain (or that checkpoint does not verify): nothing is signed over them. */
#define AUDIT_EBROKEN (-2)
/* Signs the head of one partition now: 0, AUDIT_EBROKEN (the first bad
 * record's seq in *broken_seq if not NULL), or -1. */
int audit_checkpoint_now(struct store *st, const unsigned char mkey[MASTER_KEY_LEN], const char *partition,
                         int64_t now_ms, int64_t *broken_seq);

struct audit_verify_result {
    bool ok;
    long records, checkpoints;
    int64_t first_bad_seq; /* 0 when ok */
    char problem[200];
    long gaps;             /* AUDIT_GAP_ACTION records: spans signed only after they were an hour old */
    int64_t first_gap_seq; /* the first such record (0: none) */
};
/* Walks the partition's chain and checks every checkpoint with the sealed
 * audit key (opened with mkey; the stored public key must match it). */
int audit_verify(struct store *st, const unsigned char mkey[MASTER_KEY_LEN], const char *partition,
                 struct audit_verify_result *r);
/* PEM of the partition's checkpoint public key, derived from the sealed key
 * (malloc'd), NULL if none or it does not open. */
char *audit_public_key_pem(struct store *st, const unsigned char mkey[MASTER_KEY_LEN], const char *partition);

#endif
