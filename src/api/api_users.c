/* Users and sessions (portal identity): invitations, password + TOTP
 * enrolment, login with throttling, cookie sessions with CSRF tokens,
 * logout, role management. Passwords are stored as scrypt hashes, TOTP
 * secrets sealed under the master key; invitation links and session ids as
 * SHA-256 only. */
#include "api/api.h"

#include "authz/authz.h"
#include "crypto/secret.h"
#include "crypto/totp.h"
#include "util/codec.h"
#include "util/json_util.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define INVITE_TTL_S (72 * 3600)
#define SESSION_TTL_S (8 * 3600)
#define LOCK_AFTER 5
#define LOCK_S (15 * 60)
#define PASSWORD_MIN 12
#define PASSWORD_MAX 128
#define COOKIE "pkiaas_session"

static bool email_ok(const char *e)
{
    const char *at = e ? strchr(e, '@') : NULL;
    size_t n = e ? strlen(e) : 0;
    if (!at || at == e || n > 254 || strchr(at + 1, '@') || !strchr(at + 1, '.'))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)e[i] <= ' ' || (unsigned char)e[i] >= 0x7f || e[i] == '/' || e[i] == '"')
            return false;
    return true;
}

bool api_email_normalize(const char *in, char *out, size_t n)
{
    if (!email_ok(in) || strlen(in) >= n)
        return false;
    for (size_t i = 0;; i++) {
        char c = in[i];
        out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        if (!c)
            break;
    }
    return true;
}

/* Users are keyed by the lower-cased address. */
static void lower_copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
    for (char *c = dst; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
}

static int roles_csv(const json_t *ra, char **out, struct http_resp *resp)
{
    size_t i, need = 1;
    json_t *v;
    unsigned mask = 0;
    if (!json_is_array(ra) || json_array_size(ra) == 0 || json_array_size(ra) > AUTHZ_ROLES) {
        resp_error(resp, 400, "invalid_field", "roles", "roles: a non-empty list of role names");
        return -1;
    }
    json_array_foreach(ra, i, v) need += (json_is_string(v) ? json_string_length(v) : 0) + 1;
    if (!(*out = calloc(1, need)))
        return -1;
    json_array_foreach(ra, i, v) {
        unsigned m = 0;
        if (!json_is_string(v) || strchr(json_string_value(v), ',') ||
            authz_roles_parse(json_string_value(v), &m) != 0 || !m || (mask & m)) {
            resp_error(resp, 400, "invalid_field", "roles", "roles[%zu]: unknown or repeated role", i);
            free(*out);
            *out = NULL;
            return -1;
        }
        mask |= m;
        if (i)
            strcat(*out, ",");
        strcat(*out, json_string_value(v));
    }
    return 0;
}

static json_t *user_json(const struct user_rec *u)
{
    json_t *roles = json_array();
    char *dup = strdup(u->roles ? u->roles : "");
    for (char *save = NULL, *t = dup ? strtok_r(dup, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(roles, json_string(t));
    free(dup);
    return json_pack("{s:s,s:s,s:s,s:s,s:o}", "email", u->email, "firstName", u->first_name ? u->first_name : "",
                     "lastName", u->last_name ? u->last_name : "", "status", u->status, "roles", roles);
}

/* POST .../users/invitations */
void api_user_invite(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct jerr je;
    static const char *const keys[] = {"email", "firstName", "lastName", "roles", NULL};
    const char *email = NULL, *fn = NULL, *ln = NULL;
    char *roles = NULL, *tok = NULL, *hash = NULL, *url = NULL;
    json_t *body = NULL;
    if (api_auth(req, resp, req->params[0], OP_USER_INVITE, &p) != 0 || !(body = api_body_object(req, resp)))
        return;
    if (jcheck_keys(body, keys, &je) || jget_str(body, "email", 254, &email, &je) ||
        jget_str(body, "firstName", 64, &fn, &je) || jget_str(body, "lastName", 64, &ln, &je)) {
        resp_error(resp, 400, "invalid_field", je.field, "%s", je.msg);
        goto out;
    }
    /* addresses are compared case-insensitively: stored in lower case */
    char lower_email[256];
    if (!api_email_normalize(email, lower_email, sizeof lower_email)) {
        resp_error(resp, 400, "invalid_field", "email", "email: not a valid address");
        goto out;
    }
    email = lower_email;
    if (!fn || !*fn || !ln || !*ln) {
        resp_error(resp, 400, "invalid_field", !fn || !*fn ? "firstName" : "lastName", "%s: required",
                   !fn || !*fn ? "firstName" : "lastName");
        goto out;
    }
    if (roles_csv(json_object_get(body, "roles"), &roles, resp) != 0)
        goto out;
    struct user_rec u;
    memset(&u, 0, sizeof u);
    snprintf(u.partition_id, sizeof u.partition_id, "%s", p.partition);
    u.email = (char *)email;
    u.first_name = (char *)fn;
    u.last_name = (char *)ln;
    u.roles = roles;
    snprintf(u.status, sizeof u.status, "invited");
    u.created_at = time_now();
    char target[300];
    snprintf(target, sizeof target, "user:%s", email);
    struct audit_rec a = {p.actor, "user.invite", target, NULL, p.ip, NULL};
    int s = ctx->store->ops->user_put(ctx->store, &u, true, &a);
    if (s == STORE_ECONFLICT) {
        resp_error(resp, 409, "conflict", "email", "email: a user with this address exists in the partition");
        goto out;
    }
    if (s != STORE_OK)
        goto unavailable;
    if (!(tok = random_token(32)) || !(hash = secret_token_hash(tok)))
        goto unavailable;
    int64_t exp = time_now() + INVITE_TTL_S;
    if (ctx->store->ops->invite_put(ctx->store, hash, p.partition, email, exp) != STORE_OK)
        goto unavailable;
    if (asprintf(&url, "%s/invite/%s", ctx->env.https_base, tok) < 0) {
        url = NULL;
        goto unavailable;
    }
    char e[32];
    time_format_rfc3339(exp, e, sizeof e);
    if (ctx->mail.url) {
        /* The link travels by mail only: the inviter never sees it. */
        char *mailbody = NULL;
        if (asprintf(&mailbody, "Hello %s,\n\nyou are invited to the pkiaas partition %s.\nSet your password and "
                            "enrol your authenticator here (valid until %s):\n\n%s\n",
                     fn, p.partition, e, url) < 0)
            mailbody = NULL;
        int sent = mailbody ? mail_send_async(&ctx->mail, email, "Your pkiaas invitation", mailbody) : -1;
        if (mailbody)
            OPENSSL_cleanse(mailbody, strlen(mailbody));
        free(mailbody);
        if (sent != 0) {
            resp_error(resp, 502, "mail_failed", NULL, "the invitation mail could not be queued");
            goto out;
        }
        resp_json(resp, 201, json_pack("{s:s,s:s,s:s}", "email", email, "expiresAt", e, "delivery", "mailed"));
        goto out;
    }
    /* No SMTP relay configured: the link goes to the log and back to the
     * inviter (issue 5), who passes it on. */
    log_info("invitation for %s in partition %s: %s", email, p.partition, url);
    resp_json(resp, 201, json_pack("{s:s,s:s,s:s,s:s}", "email", email, "inviteUrl", url, "expiresAt", e, "delivery",
                                   "returned (no SMTP relay configured)"));
    goto out;
unavailable:
    resp_error(resp, 503, "unavailable", NULL, "store unavailable");
out:
    if (tok)
        OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    free(hash);
    free(url);
    free(roles);
    json_decref(body);
}

void api_user_list(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct user_rec *items = NULL;
    size_t n = 0;
    if (api_auth(req, resp, req->params[0], OP_USER_ROLES, &p) != 0)
        return;
    if (ctx->store->ops->user_list(ctx->store, p.partition, &items, &n) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, user_json(&items[i]));
        user_rec_free(&items[i]);
    }
    free(items);
    resp_json(resp, 200, json_pack("{s:o}", "users", a));
}

static bool csv_has_owner(const char *csv)
{
    unsigned m = 0, owner = 0;
    return csv && authz_roles_parse(ROLE_OWNERS, &owner) == 0 && authz_roles_parse(csv, &m) == 0 && (m & owner);
}

/* A partition keeps at least one Owner who has accepted their invitation:
 * 0 when `email` may lose the role (or is not an Owner), else a 409 has
 * been answered (503 when the store fails). */
#define LAST_OWNER_MSG                                                                                             \
    "%.254s is the partition's last Owner; make another user an Owner (who has accepted the invitation) first"

static int keep_an_owner(struct api_ctx *ctx, struct http_resp *resp, const char *partition, const char *email)
{
    struct user_rec *items = NULL;
    size_t n = 0;
    bool target_owner = false;
    int others = 0, rc = -1;
    if (ctx->store->ops->user_list(ctx->store, partition, &items, &n) != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!csv_has_owner(items[i].roles))
            continue;
        if (strcmp(items[i].email, email) == 0)
            target_owner = true;
        else if (strcmp(items[i].status, "invited") != 0)
            others++;
    }
    if (target_owner && others == 0) {
        resp_error(resp, 409, "conflict", "email", LAST_OWNER_MSG, email);
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        user_rec_free(&items[i]);
    free(items);
    return rc;
}

void api_user_roles(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    struct user_rec u;
    char *roles = NULL;
    json_t *body = NULL;
    memset(&u, 0, sizeof u);
    if (api_auth(req, resp, req->params[0], OP_USER_ROLES, &p) != 0 || !(body = api_body_object(req, resp)))
        return;
    char who[256];
    lower_copy(who, sizeof who, req->params[1]);
    if (ctx->store->ops->user_get(ctx->store, p.partition, who, &u) != STORE_OK) {
        resp_error(resp, 404, "not_found", "email", "no user '%.254s' in this partition", req->params[1]);
        goto out;
    }
    if (roles_csv(json_object_get(body, "roles"), &roles, resp) != 0)
        goto out;
    if (!csv_has_owner(roles) && keep_an_owner(ctx, resp, p.partition, u.email) != 0)
        goto out;
    free(u.roles);
    u.roles = roles;
    roles = NULL;
    char target[300];
    snprintf(target, sizeof target, "user:%s", u.email);
    struct audit_rec a = {p.actor, "user.roles", target, NULL, p.ip, NULL};
    int s = ctx->store->ops->user_put(ctx->store, &u, false, &a);
    if (s == STORE_ECONFLICT) {
        resp_error(resp, 409, "conflict", "email", "user '%.254s' changed meanwhile; read it again and retry",
                   u.email);
        goto out;
    }
    if (s == STORE_ESTATE) {
        resp_error(resp, 409, "conflict", "email", LAST_OWNER_MSG, u.email);
        goto out;
    }
    if (s != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    resp_json(resp, 200, user_json(&u));
out:
    free(roles);
    user_rec_free(&u);
    json_decref(body);
}

void api_user_delete(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct principal p;
    if (api_auth(req, resp, req->params[0], OP_USER_ROLES, &p) != 0)
        return;
    char target[300], who[256];
    lower_copy(who, sizeof who, req->params[1]);
    snprintf(target, sizeof target, "user:%.254s", who);
    struct audit_rec a = {p.actor, "user.delete", target, NULL, p.ip, NULL};
    if (keep_an_owner(ctx, resp, p.partition, who) != 0)
        return;
    int s = ctx->store->ops->user_delete(ctx->store, p.partition, who, &a);
    if (s == STORE_ENOTFOUND)
        resp_error(resp, 404, "not_found", "email", "no user '%.254s' in this partition", req->params[1]);
    else if (s == STORE_ESTATE)
        resp_error(resp, 409, "conflict", "email", LAST_OWNER_MSG, who);
    else if (s != STORE_OK)
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
    else
        resp_json(resp, 200, json_pack("{s:s,s:b}", "email", req->params[1], "deleted", 1));
}

/* ---- enrolment: password, then TOTP ------------------------------------ */

static bool password_ok(const char *pw, struct http_resp *resp, const char *field)
{
    size_t n = pw ? strlen(pw) : 0;
    if (n < PASSWORD_MIN || n > PASSWORD_MAX) {
        resp_error(resp, 400, "invalid_field", field, "%s: %d-%d characters", field, PASSWORD_MIN, PASSWORD_MAX);
        return false;
    }
    return true;
}

static void totp_aad(char *out, size_t n, const struct user_rec *u)
{
    snprintf(out, n, "totp:%s/%s", u->partition_id, u->email);
}

/* Sets the password, creates a TOTP secret and answers with the otpauth URI
 * (shown once). The user stays "enrolling" until a code is confirmed. */
static void start_enrolment(struct api_ctx *ctx, struct http_resp *resp, struct user_rec *u, const char *password,
                            const char *ip)
{
    unsigned char secret[TOTP_SECRET_LEN];
    unsigned char *blob = NULL;
    size_t bl = 0;
    char *hash = NULL, *b32 = NULL, *uri = NULL, aad[320];
    if (random_bytes(secret, sizeof secret) != 0 || !(hash = secret_password_hash(password)))
        goto fail;
    totp_aad(aad, sizeof aad, u);
    if (keywrap_seal(ctx->env.mkey, secret, sizeof secret, aad, &blob, &bl) != 0 ||
        !(b32 = base32_encode(secret, sizeof secret)))
        goto fail;
    free(u->password_hash);
    u->password_hash = hash;
    hash = NULL;
    free(u->totp_blob);
    u->totp_blob = blob;
    u->totp_len = bl;
    blob = NULL;
    u->totp_last_step = 0;
    u->must_change_password = false;
    snprintf(u->status, sizeof u->status, "enrolling");
    char target[300];
    snprintf(target, sizeof target, "user:%s", u->email);
    struct audit_rec a = {u->email, "user.enrol.password", target, NULL, ip, NULL};
    int s = ctx->store->ops->user_put(ctx->store, u, false, &a);
    if (s == STORE_ECONFLICT) {
        resp_error(resp, 409, "conflict", NULL, "the account changed meanwhile; try again");
        goto out;
    }
    if (s != STORE_OK)
        goto fail;
    if (asprintf(&uri, "otpauth://totp/pkiaas:%s?secret=%s&issuer=pkiaas&algorithm=SHA1&digits=6&period=30",
                 u->email, b32) < 0) {
        uri = NULL;
        goto fail;
    }
    resp_json(resp, 200, json_pack("{s:s,s:s,s:s}", "status", "enrolling", "totpSecret", b32, "otpauthUri", uri));
    goto out;
fail:
    resp_error(resp, 500, "internal", NULL, "enrolment failed");
out:
    OPENSSL_cleanse(secret, sizeof secret);
    if (b32)
        OPENSSL_cleanse(b32, strlen(b32));
    if (uri)
        OPENSSL_cleanse(uri, strlen(uri));
    free(b32);
    free(uri);
    free(hash);
    free(blob);
}

/* Checks a TOTP code, consuming it (replay protection). */
static bool totp_check(struct api_ctx *ctx, struct user_rec *u, const char *code)
{
    unsigned char *secret = NULL;
    size_t sl = 0;
    char aad[320];
    totp_aad(aad, sizeof aad, u);
    if (!u->totp_blob || keywrap_open(ctx->env.mkey, u->totp_blob, u->totp_len, aad, &secret, &sl) != 0)
        return false;
    int64_t step = totp_verify(secret, sl, code, time_now(), u->totp_last_step);
    OPENSSL_cleanse(secret, sl);
    free(secret);
    if (step < 0)
        return false;
    u->totp_last_step = step;
    return true;
}

static char *invite_hash(const char *tok)
{
    size_t n = strlen(tok);
    if (n < 20 || n > 100 || strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != n)
        return NULL;
    return secret_token_hash(tok);
}

/* The live invitation of params[0] (its partition and email) and the
 * request's JSON object body: the token hash (free it), or NULL when a
 * 404/400 has been answered. */
static char *invite_open(struct http_req *req, struct http_resp *resp, char *part, size_t pn, char *email, size_t en,
                         json_t **body)
{
    struct api_ctx *ctx = req->app;
    char *h = invite_hash(req->params[0]);
    if (!h || ctx->store->ops->invite_get(ctx->store, h, time_now(), part, pn, email, en) != STORE_OK) {
        resp_error(resp, 404, "not_found", "token", "invitation unknown, used or expired");
        free(h);
        return NULL;
    }
    if (!(*body = api_body_object(req, resp))) {
        free(h);
        return NULL;
    }
    return h;
}

/* POST /api/v1/invitations/{token}/accept {"password"} */
void api_invite_accept(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    char part[STORE_ID_MAX + 1], email[256];
    struct user_rec u;
    json_t *body = NULL;
    memset(&u, 0, sizeof u);
    char *h = invite_open(req, resp, part, sizeof part, email, sizeof email, &body);
    if (!h)
        goto out;
    const char *pw = json_string_value(json_object_get(body, "password"));
    if (!password_ok(pw, resp, "password"))
        goto out;
    if (ctx->store->ops->user_get(ctx->store, part, email, &u) != STORE_OK || strcmp(u.status, "active") == 0) {
        resp_error(resp, 409, "conflict", "token", "this invitation can no longer be accepted");
        goto out;
    }
    start_enrolment(ctx, resp, &u, pw, req->ip);
out:
    free(h);
    user_rec_free(&u);
    json_decref(body);
}

/* POST /api/v1/invitations/{token}/confirm {"code"}: activates the user and
 * uses up the invitation. */
void api_invite_confirm(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    char part[STORE_ID_MAX + 1], email[256];
    struct user_rec u;
    json_t *body = NULL;
    memset(&u, 0, sizeof u);
    char *h = invite_open(req, resp, part, sizeof part, email, sizeof email, &body);
    if (!h)
        goto out;
    if (ctx->store->ops->user_get(ctx->store, part, email, &u) != STORE_OK || strcmp(u.status, "enrolling") != 0) {
        resp_error(resp, 409, "conflict", "token", "set a password first (accept)");
        goto out;
    }
    if (!totp_check(ctx, &u, json_string_value(json_object_get(body, "code")))) {
        resp_error(resp, 400, "invalid_field", "code", "code: wrong or already used TOTP code");
        goto out;
    }
    snprintf(u.status, sizeof u.status, "active");
    char target[300];
    snprintf(target, sizeof target, "user:%s", u.email);
    struct audit_rec a = {u.email, "user.enrol.totp", target, NULL, req->ip, NULL};
    /* The user first (only if unchanged since read: a second confirmation
     * with the same code loses here), then the invitation: a failure between
     * leaves an active user whose invitation can no longer be used, never a
     * used invitation with a user stuck in enrolment. */
    if (ctx->store->ops->user_put(ctx->store, &u, false, &a) != STORE_OK) {
        resp_error(resp, 409, "conflict", "token", "invitation already used");
        goto out;
    }
    if (ctx->store->ops->invite_use(ctx->store, h, time_now()) != STORE_OK)
        log_warn("user %s: enrolled, but the invitation could not be marked used", u.email);
    resp_json(resp, 200, json_pack("{s:s,s:s,s:s}", "status", "active", "partition", part, "email", email));
out:
    free(h);
    user_rec_free(&u);
    json_decref(body);
}

/* ---- login / sessions ------------------------------------------------------ */

#define LOGIN_EMAIL_MAX 256

static int login_fields(struct http_req *req, struct http_resp *resp, json_t **body, const char **part,
                        const char **email, const char **pw, char email_buf[LOGIN_EMAIL_MAX])
{
    if (!(*body = api_body_object(req, resp)))
        return -1;
    *part = json_string_value(json_object_get(*body, "partition"));
    *email = json_string_value(json_object_get(*body, "email"));
    if (*email && strlen(*email) < LOGIN_EMAIL_MAX) {
        /* the same case folding as at invitation time */
        snprintf(email_buf, LOGIN_EMAIL_MAX, "%s", *email);
        for (char *c = email_buf; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        *email = email_buf;
    }
    *pw = json_string_value(json_object_get(*body, "password"));
    if (!*part || !*email || !*pw || strlen(*part) > STORE_ID_MAX || strlen(*email) > 254 ||
        strlen(*pw) > PASSWORD_MAX) {
        resp_error(resp, 400, "invalid_request", NULL, "partition, email and password are required");
        return -1;
    }
    /* throttle per source address: 20 attempts a minute */
    char key[96];
    int64_t retry = 0;
    snprintf(key, sizeof key, "login-ip/%s", req->ip);
    struct api_ctx *ctx = req->app;
    bool first = false;
    if (ctx->store->ops->rate_take(ctx->store, key, 20, 60, time_now_ms(), &retry, &first) == STORE_ELIMIT) {
        char ra[24];
        snprintf(ra, sizeof ra, "%lld", (long long)(retry / 1000 + 1));
        resp_error(resp, 429, "TooManyRequests", NULL, "too many login attempts from this address");
        resp_header(resp, "Retry-After", ra);
        return -1;
    }
    return 0;
}

/* Takes one of the account's LOCK_AFTER attempts before the password is
 * checked, so guesses sent in parallel cannot all be checked before any
 * failure is recorded: 0 (u re-read, holding the attempt), 1 when the
 * account is (now) locked, -1 when the store is unavailable. A login that
 * succeeds gives the attempts back (failed_logins = 0). */
static int take_attempt(struct api_ctx *ctx, struct user_rec *u, const char *part, const char *email)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        int64_t now = time_now();
        if (u->locked_until > now)
            return 1;
        bool lock = u->failed_logins >= LOCK_AFTER;
        if (lock) {
            u->locked_until = now + LOCK_S;
            u->failed_logins = 0;
        } else {
            u->failed_logins++;
        }
        struct audit_rec a = {email, "auth.locked", "user", NULL, NULL, NULL};
        int s = ctx->store->ops->user_put(ctx->store, u, false, lock ? &a : NULL);
        user_rec_free(u);
        if (s != STORE_OK && s != STORE_ECONFLICT)
            return -1;
        /* re-read either way: the version moved (ours, or another's) */
        if (ctx->store->ops->user_get(ctx->store, part, email, u) != STORE_OK)
            return -1;
        if (s == STORE_OK)
            return lock ? 1 : 0;
    }
    return -1;
}

/* Attempts at a partition/email that has no password to check (no such
 * account, or an invitation not yet accepted) are counted too, LOCK_AFTER
 * in a burst, so the lockout's 429 does not tell which accounts exist.
 * 1 and *retry_s when over, else 0 (a store that cannot count lets it by:
 * the answer is a 401 either way). */
static int ghost_attempt(struct api_ctx *ctx, const char *part, const char *email, int64_t *retry_s)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char key[64], *hex = NULL, *id = NULL;
    int64_t retry_ms = 0;
    bool first = false;
    int rc = 0;
    /* hashed: the store's rate keys are short; '\n' cannot be in either */
    if (asprintf(&id, "%s\n%s", part, email) < 0) {
        id = NULL;
        goto out;
    }
    if (EVP_Digest(id, strlen(id), md, &mdlen, EVP_sha256(), NULL) != 1 || !(hex = hex_encode(md, 16)))
        goto out;
    snprintf(key, sizeof key, "login-ghost/%s", hex);
    if (ctx->store->ops->rate_take(ctx->store, key, LOCK_AFTER, LOCK_S, time_now_ms(), &retry_ms, &first) ==
        STORE_ELIMIT) {
        *retry_s = retry_ms / 1000 + 1;
        rc = 1;
    }
out:
    free(hex);
    free(id);
    return rc;
}

/* The lockout's answer: 429 with the seconds until the next attempt. */
static void locked_answer(struct http_resp *resp, int64_t retry_s)
{
    char ra[24];
    resp_error(resp, 429, "TooManyRequests", NULL, "account locked after repeated failures; try again later");
    snprintf(ra, sizeof ra, "%lld", (long long)retry_s);
    resp_header(resp, "Retry-After", ra);
}

/* Verifies password (and lockout), each check taking one of the account's
 * attempts first. 0 = ok. */
static int check_password(struct api_ctx *ctx, struct http_req *req, struct http_resp *resp, struct user_rec *u,
                          const char *part, const char *email, const char *pw)
{
    int s = ctx->store->ops->user_get(ctx->store, part, email, u);
    /* Same answer for unknown users, invited ones (no password yet) and
     * wrong passwords: the same time spent (a real scrypt check) and the
     * same lockout after LOCK_AFTER attempts. */
    if (s != STORE_OK || !u->password_hash || !*u->password_hash) {
        int64_t retry_s = 0;
        (void)secret_password_verify(pw, "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        if (ghost_attempt(ctx, part, email, &retry_s)) {
            locked_answer(resp, retry_s);
            return -1;
        }
        resp_error(resp, 401, "unauthorized", NULL, "wrong email, password or code");
        return -1;
    }
    int t = take_attempt(ctx, u, part, email);
    if (t == 1) {
        int64_t now = time_now();
        locked_answer(resp, u->locked_until > now ? u->locked_until - now : LOCK_S);
        return -1;
    }
    if (t != 0) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        return -1;
    }
    if (!secret_password_verify(pw, u->password_hash)) {
        struct audit_rec a = {email, "auth.login", "user", NULL, req->ip, "failure"};
        ctx->store->ops->audit_append(ctx->store, part, &a);
        resp_error(resp, 401, "unauthorized", NULL, "wrong email, password or code");
        return -1;
    }
    return 0;
}

/* POST /api/v1/login/setup {"partition","email","password","newPassword"}:
 * the bootstrap owner's first step (one-time password → own password +
 * TOTP enrolment). POST /api/v1/login/setup/confirm {"...","code"} ends it. */
void api_login_setup(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct user_rec u;
    json_t *body = NULL;
    const char *part, *email, *pw;
    memset(&u, 0, sizeof u);
    char email_buf[LOGIN_EMAIL_MAX];
    if (login_fields(req, resp, &body, &part, &email, &pw, email_buf) != 0)
        goto out;
    /* the new password's own checks first: they spend no attempt */
    const char *npw = json_string_value(json_object_get(body, "newPassword"));
    if (!password_ok(npw, resp, "newPassword"))
        goto out;
    if (strcmp(npw, pw) == 0) {
        resp_error(resp, 400, "invalid_field", "newPassword", "newPassword: must differ from the one-time password");
        goto out;
    }
    if (check_password(ctx, req, resp, &u, part, email, pw) != 0)
        goto out;
    if (strcmp(u.status, "enrolling") != 0 || !u.must_change_password) {
        /* the answer a wrong password gets: this endpoint must not tell a
         * right password from a wrong one for accounts it is not for */
        resp_error(resp, 401, "unauthorized", NULL, "wrong email, password or code");
        goto out;
    }
    u.failed_logins = 0;
    start_enrolment(ctx, resp, &u, npw, req->ip);
out:
    user_rec_free(&u);
    json_decref(body);
}

void api_login_setup_confirm(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct user_rec u;
    json_t *body = NULL;
    const char *part, *email, *pw;
    memset(&u, 0, sizeof u);
    char email_buf[LOGIN_EMAIL_MAX];
    if (login_fields(req, resp, &body, &part, &email, &pw, email_buf) != 0 ||
        check_password(ctx, req, resp, &u, part, email, pw) != 0)
        goto out;
    if (strcmp(u.status, "enrolling") != 0 || u.must_change_password) {
        resp_error(resp, 401, "unauthorized", NULL, "wrong email, password or code");
        goto out;
    }
    if (!totp_check(ctx, &u, json_string_value(json_object_get(body, "code")))) {
        resp_error(resp, 400, "invalid_field", "code", "code: wrong or already used TOTP code");
        goto out;
    }
    snprintf(u.status, sizeof u.status, "active");
    u.failed_logins = 0;
    struct audit_rec a = {email, "user.enrol.totp", "user", NULL, req->ip, NULL};
    int s = ctx->store->ops->user_put(ctx->store, &u, false, &a);
    if (s == STORE_ECONFLICT) {
        resp_error(resp, 400, "invalid_field", "code", "code: wrong or already used TOTP code");
        goto out;
    }
    if (s != STORE_OK) {
        resp_error(resp, 503, "unavailable", NULL, "store unavailable");
        goto out;
    }
    resp_json(resp, 200, json_pack("{s:s}", "status", "active"));
out:
    user_rec_free(&u);
    json_decref(body);
}

/* POST /api/v1/login {"partition","email","password","code"} */
void api_login(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    struct user_rec u;
    json_t *body = NULL;
    const char *part, *email, *pw;
    char *sid = NULL, *sh = NULL, *csrf = NULL, *cookie = NULL;
    memset(&u, 0, sizeof u);
    char email_buf[LOGIN_EMAIL_MAX];
    if (login_fields(req, resp, &body, &part, &email, &pw, email_buf) != 0 ||
        check_password(ctx, req, resp, &u, part, email, pw) != 0)
        goto out;
    if (strcmp(u.status, "active") != 0) {
        /* the right password: its attempt is given back */
        u.failed_logins = 0;
        (void)ctx->store->ops->user_put(ctx->store, &u, false, NULL);
        resp_error(resp, 403, "enrolment_required", NULL,
                   u.must_change_password ? "set your password and TOTP first (POST /api/v1/login/setup)"
                                          : "confirm your TOTP enrolment first");
        goto out;
    }
    if (!totp_check(ctx, &u, json_string_value(json_object_get(body, "code")))) {
        /* the attempt was counted when it was taken */
        struct audit_rec a = {email, "auth.login", "user", "{\"reason\":\"totp\"}", req->ip, "failure"};
        ctx->store->ops->audit_append(ctx->store, part, &a);
        resp_error(resp, 401, "unauthorized", NULL, "wrong email, password or code");
        goto out;
    }
    u.failed_logins = 0;
    struct audit_rec a = {email, "auth.login", "user", NULL, req->ip, NULL};
    int ps = ctx->store->ops->user_put(ctx->store, &u, false, &a);
    if (ps == STORE_ECONFLICT) {
        /* another login (or a change) came first: the code it consumed, or
         * the roles it set, win; this attempt opens no session */
        resp_error(resp, 401, "unauthorized", NULL, "wrong email, password or code");
        goto out;
    }
    if (ps != STORE_OK)
        goto unavailable;
    struct session_rec sr;
    memset(&sr, 0, sizeof sr);
    if (!(sid = random_token(32)) || !(sh = secret_token_hash(sid)) || !(csrf = random_token(24)))
        goto unavailable;
    snprintf(sr.partition_id, sizeof sr.partition_id, "%s", part);
    snprintf(sr.email, sizeof sr.email, "%s", email);
    snprintf(sr.csrf, sizeof sr.csrf, "%s", csrf);
    sr.created_at = time_now();
    sr.expires_at = sr.created_at + SESSION_TTL_S;
    if (ctx->store->ops->session_put(ctx->store, sh, &sr) != STORE_OK)
        goto unavailable;
    if (asprintf(&cookie, COOKIE "=%s; Path=/; Max-Age=%d; HttpOnly; Secure; SameSite=Strict", sid, SESSION_TTL_S) <
        0) {
        cookie = NULL;
        goto unavailable;
    }
    char e[32];
    time_format_rfc3339(sr.expires_at, e, sizeof e);
    resp_json(resp, 200, json_pack("{s:s,s:s,s:s,s:s,s:o}", "partition", part, "email", email, "csrfToken", csrf,
                                   "expiresAt", e, "user", user_json(&u)));
    resp_header(resp, "Set-Cookie", cookie);
    goto out;
unavailable:
    resp_error(resp, 503, "unavailable", NULL, "store unavailable");
out:
    if (sid)
        OPENSSL_cleanse(sid, strlen(sid));
    if (cookie)
        OPENSSL_cleanse(cookie, strlen(cookie));
    free(sid);
    free(sh);
    free(csrf);
    free(cookie);
    user_rec_free(&u);
    json_decref(body);
}

/* The session cookie's value, or NULL. */
static const char *session_cookie(struct http_req *req)
{
    return http_cookie(req, COOKIE);
}

int api_session_principal(struct http_req *req, const char *partition, struct principal *p, struct err *e)
{
    struct api_ctx *ctx = req->app;
    const char *sid = session_cookie(req);
    struct session_rec sr;
    struct user_rec u;
    int rc = -1;
    memset(&u, 0, sizeof u);
    if (!sid || strlen(sid) > 100) {
        err_set(e, 401, "unauthorized", "", "missing bearer token or session");
        return -1;
    }
    char *h = secret_token_hash(sid);
    if (!h || ctx->store->ops->session_get(ctx->store, h, &sr) != STORE_OK || sr.revoked_at ||
        sr.expires_at <= time_now()) {
        err_set(e, 401, "unauthorized", "", "session expired or signed out");
        goto out;
    }
    if (strcmp(sr.partition_id, partition) != 0) {
        err_set(e, 404, "not_found", "", "no partition '%.64s' for this session", partition);
        goto out;
    }
    if (ctx->store->ops->user_get(ctx->store, sr.partition_id, sr.email, &u) != STORE_OK ||
        strcmp(u.status, "active") != 0) {
        err_set(e, 401, "unauthorized", "", "user no longer active");
        goto out;
    }
    /* CSRF: state-changing requests must echo the session's token. */
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        const char *t = http_header(req, "X-CSRF-Token");
        if (!t || strlen(t) != strlen(sr.csrf) || CRYPTO_memcmp(t, sr.csrf, strlen(sr.csrf)) != 0) {
            err_set(e, 403, "csrf", "", "missing or wrong X-CSRF-Token header");
            goto out;
        }
    }
    memset(p, 0, sizeof(*p));
    snprintf(p->partition, sizeof p->partition, "%s", sr.partition_id);
    snprintf(p->actor, sizeof p->actor, "user:%s", sr.email);
    snprintf(p->roles, sizeof p->roles, "%s", u.roles ? u.roles : "");
    rc = 0;
out:
    free(h);
    user_rec_free(&u);
    return rc;
}

/* POST /api/v1/logout (session cookie + X-CSRF-Token) */
void api_logout(struct http_req *req, struct http_resp *resp)
{
    struct api_ctx *ctx = req->app;
    const char *sid = session_cookie(req);
    struct session_rec sr;
    char *h = sid && strlen(sid) <= 100 ? secret_token_hash(sid) : NULL;
    if (!h || ctx->store->ops->session_get(ctx->store, h, &sr) != STORE_OK) {
        resp_error(resp, 401, "unauthorized", NULL, "no session");
        goto out;
    }
    if (sr.revoked_at || sr.expires_at <= time_now()) {
        resp_error(resp, 401, "unauthorized", NULL, "session already ended");
        goto out;
    }
    const char *t = http_header(req, "X-CSRF-Token");
    if (!t || strlen(t) != strlen(sr.csrf) || CRYPTO_memcmp(t, sr.csrf, strlen(sr.csrf)) != 0) {
        resp_error(resp, 403, "csrf", NULL, "missing or wrong X-CSRF-Token header");
        goto out;
    }
    ctx->store->ops->session_revoke(ctx->store, h, time_now());
    struct audit_rec a = {sr.email, "auth.logout", "user", NULL, req->ip, NULL};
    ctx->store->ops->audit_append(ctx->store, sr.partition_id, &a);
    resp_json(resp, 200, json_pack("{s:b}", "signedOut", 1));
    resp_header(resp, "Set-Cookie", COOKIE "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
out:
    free(h);
}
