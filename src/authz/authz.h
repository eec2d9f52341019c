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

/* Operations, named after the guide's role tables ("Role permissions").
 * authz.c holds the one permission matrix; docs/roles.md is generated from
 * it (`pkiaasd roles --markdown`) and tests walk it over HTTP. */
enum authz_op {
    OP_SUBSCRIPTION_VIEW,   /* Checking your subscriptions */
    OP_SUBSCRIPTION_ASSIGN, /* Assigning subscriptions to partitions */
    OP_USER_INVITE,         /* Inviting users */
    OP_USER_ROLES,          /* Managing roles (and API tokens) */
    OP_CA_BROWSE,           /* Browsing CAs (and signing key details, inventory) */
    OP_CA_CREATE_ROOT,
    OP_CA_CREATE_INTERMEDIATE,
    OP_CA_CREATE_SUBORD,
    OP_CA_IMPORT_EXTERNAL,  /* Importing an external root CA; certifying a CA with it */
    OP_CA_DOWNLOAD,         /* Downloading a CA certificate */
    OP_CA_PROFILES,         /* Selecting CA profiles */
    OP_CA_DELETE,
    OP_PROFILE_BROWSE,      /* Browsing certificate profiles (read-only for issuers) */
    OP_PROFILE_MANAGE,      /* Customizing subscriber profiles */
    OP_CERT_BROWSE,         /* Browsing certificates (and CRL history) */
    OP_CERT_ISSUE_CSR,
    OP_CERT_ISSUE_P12,
    OP_CERT_STATUS,         /* Changing the certificate status (and publishing CRLs) */
    OP_CERT_DOWNLOAD,
    OP_ENROLL_READ,         /* inspecting enrollment (protocol) configurations */
    OP_ENROLL_CONFIGURE,    /* Configuring ACME / Intune / Jamf / ... */
    OP_CAGW_CREDENTIALS,    /* Managing CA Gateway credentials */
    OP_AUDIT_READ,          /* audit log and enrollment events */
    OP__COUNT
};

struct authz_op_info {
    enum authz_op op;
    const char *name;    /* stable identifier, e.g. "ca.create.root" */
    const char *group;   /* the guide's table: "CA management" ... */
    const char *label;   /* the guide's operation text */
    unsigned roles;      /* bit i set: role i allowed (order of authz_role_name) */
};

#define AUTHZ_ROLES 6
const char *authz_role_name(unsigned i); /* "Owners", "CA Administrators", ... */
const struct authz_op_info *authz_op_at(size_t i);
size_t authz_op_count(void);
/* Role bitmask from a comma-separated list of role names; -1 on an unknown
 * name. */
int authz_roles_parse(const char *csv, unsigned *mask);

struct principal {
    char partition[STORE_ID_MAX + 1];
    char actor[5 + 255 + 1]; /* "token:<name>" or "user:<email>" (session emails fit whole): safe to log and audit */
    char roles[256];
    char ip[48];                   /* source address of the request */
};

/* Recently verified tokens, so a busy client does not cost a store round
 * trip per request. Entries live AUTHZ_TOKEN_TTL_S seconds: a revoked token
 * stops working within that time. */
#define AUTHZ_TOKEN_TTL_S 10
/* The store_epoch id (in place of a CA pk) of a partition's API tokens:
 * bumped by every revocation, so other nodes' caches drop theirs at once. */
#define AUTHZ_TOKEN_EPOCH (-1)
struct token_cache;
struct token_cache *token_cache_new(void);
void token_cache_free(struct token_cache *c);
void token_cache_clear(struct token_cache *c);

/* Resolves the bearer token for `partition` (cache may be NULL). */
int authz_bearer(struct store *st, struct token_cache *cache, const char *authorization, const char *partition,
                 struct principal *out, struct err *e);
/* The single decision point: may this principal perform `op` in its
 * partition? */
bool authz_allow(const struct principal *p, enum authz_op op);

#endif
