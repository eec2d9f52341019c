/* store: the one persistence interface. Backends (SQLite now, PostgreSQL
 * in src/store/pg/) implement `struct store_ops`; nothing outside src/store/ sees a
 * backend type. Every write op is one transaction: the row, its event and
 * its audit record commit together or not at all.
 *
 * Return codes: STORE_OK, or a negative STORE_E* value. Records returned to
 * callers own their heap fields; free them with the matching *_free(). */
#ifndef PKIAAS_STORE_STORE_H
#define PKIAAS_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    STORE_OK = 0,
    STORE_ENOTFOUND = -1,
    STORE_ECONFLICT = -2, /* unique constraint: already exists */
    STORE_ERESERVED = -3, /* identifier reserved after deletion */
    STORE_EIO = -4,       /* backend failure */
    STORE_EINVAL = -5,
    STORE_EQUOTA = -6,    /* purchased certificates exhausted */
    STORE_ESTATE = -7,    /* status transition not allowed */
    STORE_ELIMIT = -8,    /* rate limit reached */
};

#define STORE_ID_MAX 64
#define CRL_KEEP_DER 4
#define CRL_KEEP_DER_TEXT "4"

struct audit_rec {
    const char *actor;  /* e.g. "token:<name>", "system" */
    const char *action; /* e.g. "ca.create" */
    const char *target; /* e.g. "ca:root-1" */
    const char *detail; /* JSON text or NULL; never secrets */
    const char *ip;     /* source IP or NULL */
    const char *result; /* NULL = "success"; "denied", "failure", ... */
};

/* One stored audit record (audit_list / verification). */
struct audit_row {
    int64_t seq, at_ms;
    char *partition, *actor, *ip, *action, *target, *result, *detail, *prev_hash, *hash;
};
void audit_row_free(struct audit_row *r);
typedef int (*audit_cb)(const struct audit_row *r, void *ctx);

struct audit_filter {
    int64_t from_ms, to_ms; /* 0 = open */
    const char *actor, *action, *result;
    int64_t after_seq;      /* pagination */
    unsigned limit;         /* 0 = no limit */
};

struct audit_checkpoint {
    int64_t seq, at_ms;
    char hash[65];
    unsigned char *sig;
    size_t sig_len;
};

struct partition_rec {
    char id[STORE_ID_MAX + 1];
    char label[STORE_ID_MAX + 1];
    char region[16];
    char subscription_id[32];
    long long certs_purchased, cas_purchased; /* the subscription's inventory */
    int64_t created_at;
};

struct subscription_rec {
    char id[32];
    char status[16];   /* Assigned | Unassigned */
    char region[16];
    char partition_id[STORE_ID_MAX + 1]; /* "" while unassigned */
    char label[STORE_ID_MAX + 1];
    long long certs_purchased, cas_purchased, certs_issued, cas_active;
    int64_t created_at;
};

struct cagw_cred {
    char partition_id[STORE_ID_MAX + 1];
    char id[64];
    char name[129];
    char serial[48];
    unsigned char *cert_der;
    size_t cert_len;
    int64_t not_after;
    char status[12]; /* active | deleted */
    int64_t created_at;
};
void cagw_cred_free(struct cagw_cred *c);

struct cagw_grant {
    char ca_id[24];
    char *roles;
};

struct token_rec {
    char token_hash[65];
    char partition_id[STORE_ID_MAX + 1];
    char name[STORE_ID_MAX + 1];
    char *roles;
    int64_t created_at;
    int64_t revoked_at; /* 0 = live */
};
void token_rec_free(struct token_rec *t);

struct user_rec {
    char partition_id[STORE_ID_MAX + 1];
    char *email;
    char *password_hash;  /* NULL/"" while invited */
    char *roles;
    char *first_name, *last_name;
    char status[16];      /* invited | enrolling | active */
    bool must_change_password;
    unsigned char *totp_blob;
    size_t totp_len;
    int64_t totp_last_step;
    int failed_logins;
    int64_t locked_until;
    int64_t created_at;
    int64_t version; /* as read by user_get; user_put (update) needs it unchanged */
};
void user_rec_free(struct user_rec *u);
/* Whether a comma-separated role list names the Owners role. */
bool store_roles_have_owner(const char *csv);

struct session_rec {
    char partition_id[STORE_ID_MAX + 1];
    char email[256];
    char csrf[64];
    int64_t created_at, expires_at, revoked_at;
};

struct ca_rec {
    int64_t pk;
    char partition_id[STORE_ID_MAX + 1];
    char id[24];
    char *friendly_name;
    char type[16];   /* root | externalKey | intermediate | subord */
    char status[12]; /* active | pending | deleted */
    char parent_id[24];
    char key_label[64];
    unsigned char *key_blob;
    size_t key_blob_len;
    unsigned char *cert_der;
    size_t cert_len;
    unsigned char *csr_der;
    size_t csr_len;
    char *subject;
    int path_len; /* -1 = unlimited */
    bool crl_enabled;
    bool ocsp_enabled;
    int crl_shards;     /* 0/1 = one full CRL; N > 1 = partitioned CRLs */
    int64_t created_at;
    int64_t deleted_at; /* 0 = not deleted */
};
void ca_rec_free(struct ca_rec *c);

struct cert_rec {
    int64_t pk;
    char partition_id[STORE_ID_MAX + 1];
    int64_t issuer_ca_pk;
    char serial[48];
    char *subject;
    char *sans;
    int64_t not_before, not_after;
    char status[12];
    int revocation_reason; /* -1 = none */
    int64_t revoked_at, invalidity_date;
    char *status_comment; /* of the latest status change; NULL = none */
    char *profile_id;
    char *requester;
    bool is_ca;
    int crl_shard;     /* -1 = none */
    unsigned char *der;
    size_t der_len;
    int64_t created_at;
};
void cert_rec_free(struct cert_rec *c);

struct ca_list {
    struct ca_rec *items;
    size_t n;
};
void ca_list_free(struct ca_list *l);

struct profile_row {
    char id[STORE_ID_MAX + 1];
    char *json;
};
struct profile_rows {
    struct profile_row *items;
    size_t n;
};
void profile_rows_free(struct profile_rows *r);

struct cert_query {
    const char *status;       /* NULL = any */
    const char *profile_id;
    const char *text;         /* substring of subject or SANs */
    const char *serial;
    int64_t expires_before;   /* 0 = no bound (not_after <= x) */
    int64_t expires_after;    /* 0 = no bound (not_after > x) */
    int64_t cursor_not_after; /* keyset pagination: strictly after (na, serial) */
    const char *cursor_serial;
    bool include_ca;
    /* requester starts with either prefix (compared byte for byte, no
     * wildcards); both NULL = any requester */
    const char *requester_prefix[2];
    unsigned limit;
};

struct cert_list {
    struct cert_rec *items;
    size_t n;
};
void cert_list_free(struct cert_list *l);

struct inventory {
    long long certs_issued, certs_purchased, cas_active, cas_purchased;
};

struct crl_rec {
    int shard; /* -1 = full CRL */
    int64_t number, this_update, next_update, entries;
    unsigned char *der;
    size_t der_len;
};
void crl_rec_free(struct crl_rec *c);

/* One revoked (or on-hold) certificate, as the CRL builder streams them. */
struct revoked_entry {
    const char *serial; /* lowercase hex */
    int64_t revoked_at;
    int reason;         /* -1 none; 6 certificateHold */
    int64_t invalidity_date;
};
typedef int (*revoked_cb)(const struct revoked_entry *e, void *ctx);

struct responder_rec {
    unsigned char *key_blob;
    size_t key_blob_len;
    unsigned char *cert_der;
    size_t cert_len;
    int64_t not_after, created_at;
};
void responder_rec_free(struct responder_rec *r);

/* A protocol document (table `object`, migration 0010): protocol
 * configurations, their secrets, ACME accounts/orders/authorizations,
 * nonces. The owning module defines `json`; the store keeps identity, the
 * optional unique `lookup` key, `version` for optimistic updates, expiry. */
#define OBJ_ID_MAX 128
struct obj_rec {
    char partition_id[STORE_ID_MAX + 1]; /* "" = process-wide */
    char kind[24];
    char id[OBJ_ID_MAX + 1];
    char *parent;             /* NULL = none */
    char *lookup;             /* NULL = none; unique per (partition, kind) */
    char status[24];
    int64_t expires_at;       /* unix seconds; 0 = never */
    char *json;
    unsigned char *blob;      /* sealed secret material */
    size_t blob_len;
    int64_t version;          /* obj_put update: must match; incremented */
    int64_t created_at, updated_at;
};
void obj_rec_free(struct obj_rec *o);
void obj_list_free(struct obj_rec *items, size_t n);
enum obj_put_mode { OBJ_CREATE, OBJ_UPDATE };

struct store;

struct store_ops {
    const char *name;
    /* Other processes (nodes) may write the same store at once (PostgreSQL):
     * jobs take leases, and in-memory caches of status data check
     * store_epoch() instead of trusting local change notifications. */
    bool shared;
    void (*close)(struct store *s);
    int (*ping)(struct store *s);

    /* Tenancy: subscription + partition + owner + first API token, atomically.
     * STORE_ECONFLICT when the partition exists. */
    int (*partition_bootstrap)(struct store *s, const struct partition_rec *p, const struct user_rec *owner,
                               const struct token_rec *tok, const struct audit_rec *a);
    int (*partition_get)(struct store *s, const char *id, struct partition_rec *out);

    /* Supervisor: tokens, subscriptions (purchases) and their assignment to
     * a region, which creates the partition and its first owner (invited). */
    int (*supervisor_token_put)(struct store *s, const char *token_hash, const char *name);
    int (*supervisor_token_check)(struct store *s, const char *token_hash);
    /* Revokes the token with this hash (NULL: every token); *count says how
     * many were still valid. */
    int (*supervisor_token_revoke)(struct store *s, const char *token_hash, long *count);
    int (*subscription_create)(struct store *s, const struct subscription_rec *r);
    int (*subscription_list)(struct store *s, const char *search, struct subscription_rec **out, size_t *n);
    /* STORE_ENOTFOUND: no such subscription; STORE_ESTATE: already assigned;
     * STORE_ECONFLICT: partition id taken. */
    int (*subscription_assign)(struct store *s, const char *sub_id, const struct partition_rec *p,
                               const struct user_rec *owner, const char *actor, const struct audit_rec *a);
    int (*token_get)(struct store *s, const char *token_hash, struct token_rec *out);
    /* Users. user_put inserts (create) or replaces every mutable field of
     * the user as user_get read it: STORE_ECONFLICT when it was changed
     * since (its version moved; re-read and re-apply), STORE_ENOTFOUND when
     * it is gone. user_put and user_delete answer STORE_ESTATE, changing
     * nothing, when they would take the Owners role from the partition's
     * last Owner who is not merely invited (checked in the same transaction
     * as the change, so two concurrent demotions cannot both pass). */
    int (*user_get)(struct store *s, const char *partition, const char *email, struct user_rec *out);
    int (*user_put)(struct store *s, const struct user_rec *u, bool create, const struct audit_rec *a);
    int (*user_list)(struct store *s, const char *partition, struct user_rec **out, size_t *n);
    int (*user_delete)(struct store *s, const char *partition, const char *email, const struct audit_rec *a);
    /* Invitations: single use, expiring. invite_use marks it used (and fails
     * with STORE_ENOTFOUND when unknown, used or expired). */
    int (*invite_put)(struct store *s, const char *token_hash, const char *partition, const char *email,
                      int64_t expires_at);
    int (*invite_get)(struct store *s, const char *token_hash, int64_t now, char *partition, size_t plen,
                      char *email, size_t elen);
    int (*invite_use)(struct store *s, const char *token_hash, int64_t now);
    /* Sessions (the cookie value is stored hashed). */
    int (*session_put)(struct store *s, const char *id_hash, const struct session_rec *r);
    int (*session_get)(struct store *s, const char *id_hash, struct session_rec *out);
    int (*session_revoke)(struct store *s, const char *id_hash, int64_t now);
    /* CA Gateway: the partition's credentials CA, credentials (client
     * certificates) and their per-CA role grants. */
    int (*cagw_ca_get)(struct store *s, const char *partition, unsigned char **key_blob, size_t *kl,
                       unsigned char **cert, size_t *cl);
    int (*cagw_ca_put)(struct store *s, const char *partition, const unsigned char *key_blob, size_t kl,
                       const unsigned char *cert, size_t cl);
    /* create (STORE_ECONFLICT when the id is live) or replace the certificate (renew) */
    int (*cagw_cred_put)(struct store *s, const struct cagw_cred *c, bool create, const struct audit_rec *a);
    int (*cagw_cred_get)(struct store *s, const char *partition, const char *id, struct cagw_cred *out);
    int (*cagw_cred_by_serial)(struct store *s, const char *serial, struct cagw_cred *out);
    int (*cagw_cred_list)(struct store *s, const char *partition, struct cagw_cred **out, size_t *n);
    int (*cagw_cred_delete)(struct store *s, const char *partition, const char *id, const struct audit_rec *a);
    int (*cagw_grants_set)(struct store *s, const char *partition, const char *id, const struct cagw_grant *g,
                           size_t n, const struct audit_rec *a);
    int (*cagw_grants_get)(struct store *s, const char *partition, const char *id, struct cagw_grant **out,
                           size_t *n);
    /* API tokens: STORE_ECONFLICT when the name is taken in the partition. */
    int (*token_insert)(struct store *s, const struct token_rec *t, const struct audit_rec *a);
    int (*token_list)(struct store *s, const char *partition, struct token_rec **out, size_t *n);
    int (*token_revoke)(struct store *s, const char *partition, const char *name, int64_t now,
                        const struct audit_rec *a);

    /* CAs. ca_insert fails with STORE_ECONFLICT when a live CA has the id and
     * STORE_ERESERVED when one was deleted less than `reserve_s` ago. When
     * `cert` is given (a CA certificate issued by a CA of ours) its row is
     * inserted in the same transaction; cert->issuer_ca_pk is the parent's pk,
     * or 0 for a self-signed root (then the new CA's own pk is used). */
    int (*ca_insert)(struct store *s, struct ca_rec *c, const struct cert_rec *cert, int64_t now, int64_t reserve_s,
                     const struct audit_rec *a);
    int (*ca_get)(struct store *s, const char *partition, const char *id, struct ca_rec *out);
    int (*ca_list)(struct store *s, const char *partition, bool include_deleted, struct ca_list *out);
    /* Active CAs of every partition (for schedulers). */
    int (*ca_list_active_all)(struct store *s, struct ca_list *out);
    /* Pending → active with the imported certificate. */
    int (*ca_activate)(struct store *s, const char *partition, const char *id, const unsigned char *der, size_t len,
                       const struct audit_rec *a);
    /* Marks the CA and all live descendants deleted; returns their ids
     * (including the CA itself) in *ids (malloc'd array of malloc'd strings). */
    int (*ca_delete)(struct store *s, const char *partition, const char *id, int64_t now, char ***ids, size_t *nids,
                     const struct audit_rec *a);

    /* Inserts an issued certificate. With count_quota, the subscription's
     * issued counter is incremented in the same transaction and
     * STORE_EQUOTA returned when the purchase is exhausted. */
    int (*cert_insert)(struct store *s, struct cert_rec *c, bool count_quota, const struct audit_rec *a);
    int (*cert_list)(struct store *s, const char *partition, int64_t issuer_ca_pk, const struct cert_query *q,
                     struct cert_list *out);
    /* issued -> revoked|suspended, suspended -> revoked|issued; revoked is
     * final (STORE_ESTATE). reason -1 = none. */
    int (*cert_set_status)(struct store *s, const char *partition, int64_t issuer_ca_pk, const char *serial,
                           const char *status, int reason, int64_t at, int64_t invalidity,
                           const char *comment, const struct audit_rec *a);
    /* Revokes many certificates of a CA in one transaction; results[i]:
     * 0 revoked, 1 already revoked, 2 not found. One audit record each
     * (a's target is replaced by "cert:<ca_id>/<serial>"). */
    int (*cert_revoke_batch)(struct store *s, const char *partition, int64_t issuer_ca_pk, const char *ca_id,
                             const char *const *serials, size_t n, int reason, int64_t at, int64_t invalidity,
                             const struct audit_rec *a, int *results);
    int (*inventory)(struct store *s, const char *partition, struct inventory *out);

    /* Custom profiles (system ones live in code). */
    int (*profile_put)(struct store *s, const char *partition, const char *id, const char *group, const char *json,
                       bool create, const struct audit_rec *a);
    int (*profile_get)(struct store *s, const char *partition, const char *id, char **json);
    int (*profile_list)(struct store *s, const char *partition, struct profile_rows *out);
    /* STORE_ECONFLICT while a CA uses it. */
    int (*profile_delete)(struct store *s, const char *partition, const char *id, const struct audit_rec *a);
    int (*ca_profile_list)(struct store *s, const char *partition, int64_t ca_pk, char ***ids, size_t *n);
    /* Assigns (add) or unassigns a profile. With add and custom, the custom
     * profile must still exist when the assignment is written (STORE_ENOTFOUND
     * if it was deleted meanwhile); profile_delete answers STORE_ECONFLICT for
     * an assignment committed before it, whichever transaction started first. */
    int (*ca_profile_set)(struct store *s, const char *partition, int64_t ca_pk, const char *profile_id, bool add,
                          bool custom, const struct audit_rec *a);
    int (*cert_get)(struct store *s, const char *partition, int64_t issuer_ca_pk, const char *serial,
                    struct cert_rec *out);

    /* CRLs (the newest CRL_KEEP_DER of each scope keep their DER; the
     * history list keeps 100): reserve the next cRLNumber (strictly increasing per CA, never
     * reused even when a build fails), save a built CRL, read the latest,
     * list past numbers (newest first, at most `max`). */
    int (*crl_next_number)(struct store *s, const char *partition, int64_t ca_pk, int64_t *number);
    int (*crl_save)(struct store *s, const char *partition, int64_t ca_pk, const struct crl_rec *c);
    int (*crl_latest)(struct store *s, const char *partition, int64_t ca_pk, int shard, struct crl_rec *out);
    /* All scopes (full and shards) when shard < -1. Without the DER (der
     * NULL): cheap enough to learn the latest number of a large CRL. */
    int (*crl_list)(struct store *s, const char *partition, int64_t ca_pk, int shard, size_t max, struct crl_rec **out,
                    size_t *n);
    /* Streams revoked and suspended certificates of a CA (any order), of one
     * shard when shard >= 0; a non-zero callback return stops the walk and is
     * returned. */
    int (*cert_iter_revoked)(struct store *s, const char *partition, int64_t ca_pk, int shard, revoked_cb cb,
                             void *ctx);

    /* OCSP responder key + certificate of a CA (latest first). */
    int (*responder_get)(struct store *s, const char *partition, int64_t ca_pk, struct responder_rec *out);
    int (*responder_put)(struct store *s, const char *partition, int64_t ca_pk, const struct responder_rec *r,
                         const struct audit_rec *a);

    /* Rate limiting (GCRA): takes one request from the bucket `key`
     * (`limit` per `window_s`); STORE_ELIMIT with *retry_after_ms when the
     * bucket is empty (*first_reject set for the first refusal after an
     * accepted request, so callers can audit a burst once). Backends keep the state where every node sees it
     * (SQLite: one node, so in memory; PostgreSQL: in a table). now_ms is wall-clock time (CLOCK_REALTIME):
     * the one time base all nodes share (keep them NTP-synchronised). */
    int (*rate_take)(struct store *s, const char *key, int limit, int window_s, int64_t now_ms,
                     int64_t *retry_after_ms, bool *first_reject);

    /* Scheduled jobs run on one node at a time: STORE_OK when this process
     * holds the lease `job` for the next ttl_s seconds (taken when free or
     * expired, renewed when already ours), STORE_ECONFLICT while another node
     * holds it. SQLite (one node) always grants it. */
    int (*lease_take)(struct store *s, const char *job, int ttl_s);

    /* Audit (one chain per partition; "" = system). Records are appended by
     * the write ops themselves (their audit_rec argument) or by audit_append
     * for events with no other row (logins, denials, rate-limit hits). */
    int (*audit_append)(struct store *s, const char *partition, const struct audit_rec *a);
    /* Streams a partition's records in seq order through the filter. */
    int (*audit_iter)(struct store *s, const char *partition, const struct audit_filter *f, audit_cb cb,
                      void *ctx);
    int (*audit_checkpoint_put)(struct store *s, const char *partition, const struct audit_checkpoint *c);
    int (*audit_checkpoint_list)(struct store *s, const char *partition, struct audit_checkpoint **out, size_t *n);
    /* Partition signing key for checkpoints (sealed), created on first use. */
    int (*audit_key_get)(struct store *s, const char *partition, unsigned char **blob, size_t *blob_len,
                         unsigned char **pub, size_t *pub_len);
    int (*audit_key_put)(struct store *s, const char *partition, const unsigned char *blob, size_t blob_len,
                         const unsigned char *pub, size_t pub_len);
    /* Partitions with records newer than their last checkpoint. */
    int (*audit_partitions)(struct store *s, char ***ids, size_t *n);

    /* Protocol documents. obj_put OBJ_CREATE: STORE_ECONFLICT when the id or
     * lookup is taken (an expired row is replaced); OBJ_UPDATE: replaces
     * parent/lookup/status/expires/json/blob when o->version matches
     * (STORE_ECONFLICT otherwise, STORE_ENOTFOUND when gone) and sets
     * o->version to the new one. `a` (may be NULL) is audited in the same
     * transaction. Reads skip expired rows (expires_at <= now). */
    int (*obj_put)(struct store *s, struct obj_rec *o, enum obj_put_mode mode, const struct audit_rec *a);
    int (*obj_get)(struct store *s, const char *partition, const char *kind, const char *id, struct obj_rec *out);
    int (*obj_find)(struct store *s, const char *partition, const char *kind, const char *lookup,
                    struct obj_rec *out);
    /* Rows of a kind (of one parent when parent != NULL) ordered by id,
     * strictly after `after_id` (NULL = from the start), at most `limit`
     * (0 = all). */
    int (*obj_list)(struct store *s, const char *partition, const char *kind, const char *parent,
                    const char *after_id, unsigned limit, struct obj_rec **out, size_t *n);
    /* Deletes a live row (STORE_ENOTFOUND when absent or expired): also the
     * single-use "take" of a nonce. */
    int (*obj_delete)(struct store *s, const char *partition, const char *kind, const char *id,
                      const struct audit_rec *a);
    /* Drops expired rows of a kind (housekeeping). */
    int (*obj_purge)(struct store *s, const char *kind, int64_t now);
};

struct store {
    const struct store_ops *ops;
    void *impl;
};

/* Opens the backend named by a URI: "sqlite:/path/to/db" or a libpq URI
 * "postgresql://..." / "postgres://..." (migrations are applied). NULL with
 * a message in err on failure. */
struct store *store_open(const char *uri, char *err, size_t errlen);

/* Per-CA change counter for caches on several nodes (shared stores only):
 * bumped by the backend inside every status change of a certificate of the
 * CA (cert_set_status, cert_revoke_batch), or by store_epoch_bump for other
 * changes (ca_pk 0: the partition's CA list); store_epoch returns the current value (0 before the first
 * change, and always 0 on a store that is not shared), -1 on failure. Kept
 * as an `object` document (kind "ca-epoch"), so both backends have it. */
int store_epoch_bump(struct store *s, const char *partition, int64_t ca_pk);
int64_t store_epoch(struct store *s, const char *partition, int64_t ca_pk);
void store_close(struct store *s);
void store_free_ids(char **ids, size_t n);
/* For the backends: "%text%" for LIKE ... ESCAPE '\' in which the user's
 * own %, _ and \ match literally (malloc'd). NULL text gives NULL (no
 * filter); *ok is false when out of memory. */
char *store_like_pattern(const char *text, bool *ok);

#endif
