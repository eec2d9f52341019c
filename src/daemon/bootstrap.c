#include "daemon/bootstrap.h"

#include "authz/authz.h"
#include "crypto/secret.h"
#include "util/codec.h"
#include "util/timeutil.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

bool bootstrap_partition_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n < 2 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0 && i + 1 < n)))
            return false;
    }
    return true;
}

static bool email_valid(const char *e)
{
    const char *at = strchr(e, '@');
    size_t n = strlen(e);
    if (!at || at == e || n > 254 || strchr(at + 1, '@') || !strchr(at + 1, '.') || at[1] == '.' || e[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)e[i] <= ' ' || e[i] == 0x7f)
            return false;
    return true;
}

int bootstrap_partition(struct app *a, const char *partition, const char *owner_email, long long certs,
                        long long cas, FILE *out, char *err, size_t errlen)
{
    struct partition_rec p;
    struct user_rec u;
    struct token_rec t;
    char *password = NULL, *pwhash = NULL, *token = NULL, *thash = NULL, *subid = NULL, *tokraw = NULL;
    int rc = -1;
    int64_t now = time_now();
    memset(&p, 0, sizeof p);
    memset(&u, 0, sizeof u);
    memset(&t, 0, sizeof t);
    if (!bootstrap_partition_id_valid(partition)) {
        snprintf(err, errlen, "--partition: must be 2-32 characters of lowercase letters, digits and inner '-'");
        goto out;
    }
    if (!email_valid(owner_email)) {
        snprintf(err, errlen, "--owner-email: not a valid email address");
        goto out;
    }
    if (!(password = secret_new_password()) || !(pwhash = secret_password_hash(password)) ||
        !(tokraw = random_token(32)) || !(subid = random_hex(5)))
        goto oom;
    /* Tokens carry a recognisable prefix so secret scanners can spot leaks. */
    if (asprintf(&token, "pk_%s", tokraw) < 0) {
        token = NULL;
        goto oom;
    }
    if (!(thash = secret_token_hash(token)))
        goto oom;
    snprintf(p.id, sizeof p.id, "%s", partition);
    snprintf(p.label, sizeof p.label, "%s", partition);
    snprintf(p.region, sizeof p.region, "%s", a->cfg.region);
    snprintf(p.subscription_id, sizeof p.subscription_id, "sub%s", subid);
    p.created_at = now;
    p.certs_purchased = certs;
    p.cas_purchased = cas;
    char email[256];
    snprintf(email, sizeof email, "%s", owner_email);
    for (char *c = email; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    u.email = email;
    u.password_hash = pwhash;
    u.roles = ROLE_OWNERS;
    u.created_at = now;
    snprintf(t.token_hash, sizeof t.token_hash, "%s", thash);
    snprintf(t.name, sizeof t.name, "bootstrap");
    t.roles = ROLE_OWNERS;
    t.created_at = now;
    struct audit_rec ar = {"system:bootstrap", "partition.bootstrap", "partition", NULL};
    int s = a->api.store->ops->partition_bootstrap(a->api.store, &p, &u, &t, &ar);
    if (s == STORE_ECONFLICT) {
        snprintf(err, errlen, "partition '%s' already exists in this data directory; bootstrap runs once per partition",
                 partition);
        goto out;
    }
    if (s != STORE_OK) {
        snprintf(err, errlen, "cannot store the partition");
        goto out;
    }
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s,s:b},s:s,s:s,s:{s:I,s:I,s:s}}", "accountId", p.id,
                          "subscriptionId", p.subscription_id, "region", p.region, "label", p.label, "owner", "email",
                          owner_email, "password", password, "mustChangePassword", 1, "apiToken", token, "apiUrl",
                          a->cfg.public_https_url, "inventory", "certificatesPurchased", (json_int_t)certs,
                          "casPurchased", (json_int_t)cas, "tier", certs >= 1000000 ? "premium" : "standard");
    char *s_out = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (!s_out)
        goto oom;
    fprintf(out, "%s\n", s_out);
    fflush(out);
    OPENSSL_cleanse(s_out, strlen(s_out));
    free(s_out);
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    if (password)
        OPENSSL_cleanse(password, strlen(password));
    if (token)
        OPENSSL_cleanse(token, strlen(token));
    if (tokraw)
        OPENSSL_cleanse(tokraw, strlen(tokraw));
    free(password);
    free(pwhash);
    free(token);
    free(tokraw);
    free(thash);
    free(subid);
    return rc;
}
