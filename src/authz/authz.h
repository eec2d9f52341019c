/* authz: who is calling, and may they do this.
 *
 * Principals come from API tokens (Authorization: Bearer) now; portal
 * sessions, CAGW credentials and protocol clients are later kinds. Every
 * API handler resolves a principal for the partition in the URL and asks
 * authz_allow() before acting. A token of another partition is answered as
 * if the partition did not exist (404), so partitions cannot be probed. */
#ifndef PKIAAS_AUTHZ_AUTHZ_H
#define PKIAAS_AUTHZ_AUTHZ_H

#include "store/store.h"
#include "util/err.h"

#include <stdbool.h>

#define ROLE_OWNERS "Owners"
#define ROLE_CA_ADMINS "CA Administrators"
#define ROLE_CERT_ADMINS "Certificate Administrators"
#define ROLE_CA_AUDITORS "CA Auditors"
#define ROLE_PROTO_OPERATORS "Protocol Operators"
#define ROLE_PROTO_AUDITORS "Protocol Auditors"

enum authz_action {
    AUTHZ_CA_READ,  /* browse CAs, download certificates */
    AUTHZ_CA_WRITE, /* create, import, delete CAs; profiles */
    AUTHZ_CERT_ISSUE,  /* issue certificates */
    AUTHZ_CERT_MANAGE, /* revoke, suspend, unsuspend */
};

struct principal {
    char partition[STORE_ID_MAX + 1];
    char actor[STORE_ID_MAX + 16]; /* "token:<name>" — safe to log and audit */
    char roles[256];
};

/* Recently verified tokens, so a busy client does not cost a store round
 * trip per request. Entries live AUTHZ_TOKEN_TTL_S seconds: a revoked token
 * stops working within that time. */
#define AUTHZ_TOKEN_TTL_S 10
struct token_cache;
struct token_cache *token_cache_new(void);
void token_cache_free(struct token_cache *c);

/* Resolves the bearer token for `partition` (cache may be NULL). */
int authz_bearer(struct store *st, struct token_cache *cache, const char *authorization, const char *partition,
                 struct principal *out, struct err *e);
bool authz_allow(const struct principal *p, enum authz_action a);

#endif
