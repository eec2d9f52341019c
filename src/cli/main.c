/* pkiaas: command-line client for the pkiaas admin REST API (docs/api.md).
 *
 * Exit status: 0 success, 1 API or local error, 2 usage error, 3 the server
 * could not be reached, 4 `audit verify` found the audit chain broken. The
 * API token in use is never printed (`token create` prints the new token it
 * was asked to create, once). */
#include "cli/backup.h"
#include "cli/http_client.h"
#include "util/buf.h"
#include "util/codec.h"
#include "util/timeutil.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define EXIT_API 1
#define EXIT_USAGE 2
#define EXIT_CONN 3
#define EXIT_AUDIT_BROKEN 4

#define DEFAULT_URL "http://127.0.0.1:8080"
#define MAX_CERT_FILE ((size_t)1024 * 1024)
#define MAX_JSON_FILE ((size_t)1024 * 1024)
#define MAX_PASSWORD 128
#define END ((const char *)NULL)

/* ---- options ------------------------------------------------------------ */

enum opt_id {
    O_URL,
    O_TOKEN,
    O_PARTITION,
    O_JSON,
    O_CACERT,
    O_INSECURE,
    O_HELP,
    O_INCLUDE_DELETED,
    O_ID,
    O_TYPE,
    O_NAME,
    O_PARENT,
    O_KEY,
    O_SUBJECT,
    O_EXPIRY,
    O_PATH_LENGTH,
    O_CRL,
    O_OCSP,
    O_CERT,
    O_OUTPUT,
    O_YES,
    O_FORMAT,
    O_CHAIN,
    O_PROFILES,
    O_GROUP,
    O_FROM,
    O_VALIDITY,
    O_USAGES,
    O_ALLOWED_EXT,
    O_IGNORE_UNKNOWN,
    O_JSON_FILE,
    O_PROFILE,
    O_CSR,
    O_USE_CSR_SUBJECT,
    O_SAN,
    O_NOT_AFTER,
    O_CHAIN_OUT,
    O_P12,
    O_KEY_TYPE,
    O_P12_PASSWORD,
    O_P12_PASSWORD_FILE,
    O_STATUS,
    O_SEARCH,
    O_SERIAL,
    O_EXPIRES_WITHIN,
    O_EXPIRED,
    O_LIMIT,
    O_ALL,
    O_REASON,
    O_INVALIDITY_DATE,
    O_TO,
    O_ACTOR,
    O_ACTION,
    O_RESULT,
    O_CSV,
    O_ROLE,
    O_CA,
    O_SERIALS,
    O_ISSUED_BEFORE,
    O_PUBLISH_NOW,
    O_BATCH,
    O_REPORT,
    O_STATE,
    O_AGAINST,
    O_COUNT
};

_Static_assert(O_COUNT <= 64, "option bits must fit in an unsigned long long");
#define BIT(o) (1ULL << (o))
#define GLOBAL_OPTS                                                                                                    \
    (BIT(O_URL) | BIT(O_TOKEN) | BIT(O_PARTITION) | BIT(O_JSON) | BIT(O_CACERT) | BIT(O_INSECURE) | BIT(O_HELP))

struct optdef {
    const char *name;
    char short_name;
    int has_arg;
    enum opt_id id;
};

static const struct optdef optdefs[] = {
    {"url", 0, 1, O_URL},
    {"token", 0, 1, O_TOKEN},
    {"partition", 0, 1, O_PARTITION},
    {"json", 0, 0, O_JSON},
    {"cacert", 0, 1, O_CACERT},
    {"insecure", 0, 0, O_INSECURE},
    {"help", 'h', 0, O_HELP},
    {"include-deleted", 0, 0, O_INCLUDE_DELETED},
    {"id", 0, 1, O_ID},
    {"type", 0, 1, O_TYPE},
    {"name", 0, 1, O_NAME},
    {"parent", 0, 1, O_PARENT},
    {"key", 0, 1, O_KEY},
    {"subject", 0, 1, O_SUBJECT},
    {"expiry", 0, 1, O_EXPIRY},
    {"path-length", 0, 1, O_PATH_LENGTH},
    {"crl", 0, 0, O_CRL},
    {"ocsp", 0, 0, O_OCSP},
    {"cert", 0, 1, O_CERT},
    {"output", 'o', 1, O_OUTPUT},
    {"yes", 'y', 0, O_YES},
    {"format", 0, 1, O_FORMAT},
    {"chain", 0, 0, O_CHAIN},
    {"profiles", 0, 1, O_PROFILES},
    {"group", 0, 1, O_GROUP},
    {"from", 0, 1, O_FROM},
    {"validity", 0, 1, O_VALIDITY},
    {"usages", 0, 1, O_USAGES},
    {"allowed-extensions", 0, 1, O_ALLOWED_EXT},
    {"ignore-unknown", 0, 1, O_IGNORE_UNKNOWN},
    {"json-file", 0, 1, O_JSON_FILE},
    {"profile", 0, 1, O_PROFILE},
    {"csr", 0, 1, O_CSR},
    {"use-csr-subject", 0, 0, O_USE_CSR_SUBJECT},
    {"san", 0, 1, O_SAN},
    {"not-after", 0, 1, O_NOT_AFTER},
    {"chain-out", 0, 1, O_CHAIN_OUT},
    {"p12", 0, 0, O_P12},
    {"key-type", 0, 1, O_KEY_TYPE},
    {"p12-password", 0, 1, O_P12_PASSWORD},
    {"p12-password-file", 0, 1, O_P12_PASSWORD_FILE},
    {"status", 0, 1, O_STATUS},
    {"search", 0, 1, O_SEARCH},
    {"serial", 0, 1, O_SERIAL},
    {"expires-within", 0, 1, O_EXPIRES_WITHIN},
    {"expired", 0, 0, O_EXPIRED},
    {"limit", 0, 1, O_LIMIT},
    {"all", 0, 0, O_ALL},
    {"reason", 0, 1, O_REASON},
    {"invalidity-date", 0, 1, O_INVALIDITY_DATE},
    {"to", 0, 1, O_TO},
    {"actor", 0, 1, O_ACTOR},
    {"action", 0, 1, O_ACTION},
    {"result", 0, 1, O_RESULT},
    {"csv", 0, 0, O_CSV},
    {"role", 0, 1, O_ROLE},
    {"ca", 0, 1, O_CA},
    {"serials", 0, 1, O_SERIALS},
    {"issued-before", 0, 1, O_ISSUED_BEFORE},
    {"publish-now", 0, 0, O_PUBLISH_NOW},
    {"batch", 0, 1, O_BATCH},
    {"report", 0, 1, O_REPORT},
    {"state", 0, 1, O_STATE},
    {"against", 0, 1, O_AGAINST},
};

struct args {
    const char *val[O_COUNT];
    int seen[O_COUNT];
    const char **pos; /* positional words, argc entries allocated */
    int npos;
    const char **sans; /* every --san value, in order (the option repeats) */
    int nsans;
    const char **roles; /* every --role value, in order (the option repeats) */
    int nroles;
};

struct ctx {
    struct cli_conn conn;
    char *partition; /* URL-encoded */
    int json;
};

struct cmd {
    const char *w1, *w2, *w3; /* command words; w2/w3 NULL for shorter commands */
    int min_args, max_args;
    unsigned long long opts;
    int (*fn)(struct ctx *x, const struct args *a, const char *const *argv);
    const char *usage;
    bool local; /* works on local files: no server, token or partition */
};

static const char usage_text[] =
    "usage: pkiaas [--url URL] [--token TOKEN] [--partition ACCOUNT] [--json]\n"
    "              [--cacert FILE | --insecure] <command>\n"
    "\n"
    "commands:\n"
    "  ca list [--include-deleted]\n"
    "  ca show CA_ID\n"
    "  ca create --id ID --type root|intermediate|subord|externalKey [--name FRIENDLY]\n"
    "            [--parent ID] [--key LABEL] [--subject DN] [--expiry RFC3339]\n"
    "            [--path-length N] [--crl] [--ocsp] [--cert FILE] [--profiles P1,P2]\n"
    "  ca import-cert CA_ID FILE\n"
    "  ca csr CA_ID [-o FILE]\n"
    "  ca delete CA_ID [--yes]\n"
    "  ca download CA_ID [--format pem|der] [--chain] [-o FILE]\n"
    "  ca profiles CA_ID\n"
    "  ca profiles add CA_ID PROFILE_ID\n"
    "  ca profiles remove CA_ID PROFILE_ID\n"
    "  profile list [--group G]\n"
    "  profile show PROFILE_ID\n"
    "  profile clone --from SRC --id NEW [--group G] [--validity DURATION] [--usages A,B,OID]\n"
    "            [--allowed-extensions OID,...] [--ignore-unknown true|false] [--json-file FILE]\n"
    "  profile update PROFILE_ID [--group G] [--validity DURATION] [--usages A,B,OID]\n"
    "            [--allowed-extensions OID,...] [--ignore-unknown true|false] [--json-file FILE]\n"
    "  profile delete PROFILE_ID\n"
    "  cert issue CA_ID --profile P --csr FILE [--subject DN | --use-csr-subject]\n"
    "            [--san TYPE:VALUE]... [--validity DURATION | --not-after RFC3339]\n"
    "            [-o FILE] [--chain-out FILE]\n"
    "  cert issue CA_ID --profile P --p12 --key-type TYPE --subject DN\n"
    "            [--p12-password PW | --p12-password-file FILE] [--san TYPE:VALUE]...\n"
    "            [--validity DURATION | --not-after RFC3339] [-o FILE] [--chain-out FILE]\n"
    "  cert list CA_ID [--status issued|revoked|suspended] [--profile P] [--search TEXT]\n"
    "            [--serial HEX] [--expires-within 7|30] [--expired] [--limit N] [--all]\n"
    "  cert show CA_ID SERIAL\n"
    "  cert download CA_ID SERIAL [--format pem|der|chain|pkcs7] [-o FILE]\n"
    "  cert revoke CA_ID SERIAL [--reason REASON] [--invalidity-date RFC3339]\n"
    "  cert revoke-bulk --ca CA_ID (--serials FILE | --subject DN | --profile P |\n"
    "            --issued-before DATE)... --reason REASON [--invalidity-date RFC3339]\n"
    "            [--publish-now] [--batch N] [--report FILE.csv] [--state FILE] [--yes]\n"
    "  cert suspend CA_ID SERIAL\n"
    "  cert unsuspend CA_ID SERIAL\n"
    "  protocol list\n"
    "  protocol show CONFIG_ID\n"
    "  protocol create --json-file FILE\n"
    "  protocol delete CONFIG_ID\n"
    "  protocol eab-key CONFIG_ID --name NAME             (ACME: key id + HMAC key, shown once)\n"
    "  protocol credential CONFIG_ID --name NAME [--id USER]  (SCEP/EST/CMP/MDM secret, shown once)\n"
    "  inventory\n"
    "  key-details\n"
    "  audit list [--from RFC3339] [--to RFC3339] [--actor A] [--action A] [--result R]\n"
    "            [--limit N] [--all] [--csv]\n"
    "  audit verify [--against DIR]\n"
    "  audit checkpoints [-o DIR]\n"
    "  token create --name NAME --role ROLE [--role ROLE]...\n"
    "  token list\n"
    "  token revoke NAME\n"
    "  backup DB_FILE OUT_FILE [--yes]       (SQLite store: consistent copy, daemon may run)\n"
    "  restore BACKUP_FILE DB_FILE [--yes]   (SQLite store: daemon stopped)\n"
    "\n"
    "environment: PKIAAS_URL (default " DEFAULT_URL "), PKIAAS_TOKEN, PKIAAS_PARTITION\n"
    "exit status: 0 ok, 1 API or local error, 2 usage error, 3 server unreachable,\n"
    "             4 audit verify found the audit chain broken,\n"
    "             130 cert revoke-bulk interrupted (re-run it to resume)\n";

static int usage_error(const char *cmd_usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd_usage, const char *fmt, ...)
{
    va_list ap;
    fputs("pkiaas: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cmd_usage)
        fprintf(stderr, "usage: pkiaas %s\n", cmd_usage);
    else
        fputs("usage: pkiaas [options] <command> [args]; run 'pkiaas --help' for details\n", stderr);
    return EXIT_USAGE;
}

static const struct optdef *find_long(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(optdefs) / sizeof(optdefs[0]); i++)
        if (strlen(optdefs[i].name) == n && strncmp(optdefs[i].name, name, n) == 0)
            return &optdefs[i];
    return NULL;
}

static const struct optdef *find_short(char c)
{
    for (size_t i = 0; i < sizeof(optdefs) / sizeof(optdefs[0]); i++)
        if (optdefs[i].short_name && optdefs[i].short_name == c)
            return &optdefs[i];
    return NULL;
}

/* Options may appear anywhere (before or after the command words); "--" ends
 * option parsing. Accepts --opt VALUE, --opt=VALUE, -o VALUE and -oVALUE. */
static int parse_args(int argc, char **argv, struct args *a)
{
    int rc = EXIT_USAGE;
    int only_pos = 0;

    memset(a, 0, sizeof(*a));
    a->pos = calloc((size_t)argc + 1, sizeof(*a->pos));
    a->sans = calloc((size_t)argc + 1, sizeof(*a->sans));
    a->roles = calloc((size_t)argc + 1, sizeof(*a->roles));
    if (!a->pos || !a->sans || !a->roles) {
        fprintf(stderr, "error: out of memory\n");
        rc = EXIT_API;
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const struct optdef *d = NULL;
        const char *inline_val = NULL;

        if (only_pos || arg[0] != '-' || arg[1] == 0) {
            a->pos[a->npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            d = find_long(name, eq ? (size_t)(eq - name) : strlen(name));
            if (eq)
                inline_val = eq + 1;
        } else {
            d = find_short(arg[1]);
            if (arg[2])
                inline_val = arg + 2;
        }
        if (!d) {
            /* Never echo an inline value: it could be a mistyped --token=. */
            size_t n = strcspn(arg, "=");
            rc = usage_error(NULL, "unknown option '%.*s'", n > INT_MAX ? INT_MAX : (int)n, arg);
            goto out;
        }
        if (d->has_arg) {
            if (!inline_val) {
                if (i + 1 >= argc) {
                    rc = usage_error(NULL, "option '%s' needs a value", arg);
                    goto out;
                }
                inline_val = argv[++i];
            }
            a->val[d->id] = inline_val;
            if (d->id == O_SAN)
                a->sans[a->nsans++] = inline_val;
            if (d->id == O_ROLE)
                a->roles[a->nroles++] = inline_val;
        } else if (inline_val) {
            rc = usage_error(NULL, "option '%s' takes no value", arg);
            goto out;
        }
        a->seen[d->id] = 1;
    }
    rc = 0;
out:
    return rc;
}

/* ---- output helpers ------------------------------------------------------ */

/* Server strings go to a terminal: replace control characters. */
static void put_clean(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, f);
    }
}

/* Display width, counting UTF-8 code points. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Short text for a scalar JSON value: strings as-is, null/missing "-". */
static const char *scalar_text(const json_t *v)
{
    if (!v || json_is_null(v))
        return "-";
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_true(v))
        return "yes";
    if (json_is_false(v))
        return "no";
    return NULL;
}

static int print_json(const json_t *j)
{
    int rc = EXIT_API;
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s) {
        fprintf(stderr, "error: cannot format JSON\n");
        goto out;
    }
    if (puts(s) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(s);
    return rc;
}

/* Prints any JSON value on the current line (no newline). */
static void put_value(const json_t *v)
{
    const char *t = scalar_text(v);
    if (t) {
        put_clean(stdout, t);
    } else if (json_is_integer(v)) {
        printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        printf("%g", json_real_value(v));
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        if (json_array_size(v) == 0)
            fputs("-", stdout);
        json_array_foreach(v, i, e) {
            if (i)
                fputs(", ", stdout);
            put_value(e);
        }
    } else if (json_is_object(v) && json_object_size(v) == 2 && get_str(v, "type") && get_str(v, "value")) {
        /* a subject alternative name: "dNSName:www.example.com" */
        put_clean(stdout, get_str(v, "type"));
        fputc(':', stdout);
        put_clean(stdout, get_str(v, "value"));
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        put_clean(stdout, s ? s : "?");
        free(s);
    }
}

struct column {
    const char *title;
    const char *key;
};

/* A table of `rows` (array of objects), one column per `cols` entry. */
static int print_table(const json_t *rows, const struct column *cols, size_t ncols)
{
    int rc = EXIT_API;
    size_t *width = calloc(ncols, sizeof(*width));
    size_t i, c;
    json_t *row;

    if (!width) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    for (c = 0; c < ncols; c++)
        width[c] = text_width(cols[c].title);
    json_array_foreach(rows, i, row) {
        for (c = 0; c < ncols; c++) {
            const char *t = scalar_text(json_object_get(row, cols[c].key));
            size_t w = text_width(t ? t : "?");
            if (w > width[c])
                width[c] = w;
        }
    }
    for (c = 0; c < ncols; c++) {
        fputs(cols[c].title, stdout);
        if (c + 1 < ncols)
            printf("%*s", (int)(width[c] - text_width(cols[c].title) + 2), "");
    }
    fputc('\n', stdout);
    json_array_foreach(rows, i, row) {
        for (c = 0; c < ncols; c++) {
            const char *t = scalar_text(json_object_get(row, cols[c].key));
            if (!t)
                t = "?";
            put_clean(stdout, t);
            if (c + 1 < ncols)
                printf("%*s", (int)(width[c] - text_width(t) + 2), "");
        }
        fputc('\n', stdout);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(width);
    return rc;
}

/* Labels for `Field: value` output of CAs, profiles, certificates and the
 * inventory; keys not listed are shown as they are. */
static const struct {
    const char *key, *label;
} field_labels[] = {
    {"id", "ID"},
    {"friendlyName", "Friendly name"},
    {"type", "Type"},
    {"status", "Status"},
    {"parentId", "Parent"},
    {"signingKeyDetails", "Signing key"},
    {"subject", "Subject"},
    {"issuer", "Issuer"},
    {"serialNumber", "Serial number"},
    {"sha256Fingerprint", "SHA-256 fingerprint"},
    {"validFrom", "Valid from"},
    {"expiryDate", "Expiry date"},
    {"publicKeyType", "Public key type"},
    {"signatureAlgorithm", "Signature algorithm"},
    {"basicConstraints", "Basic constraints"},
    {"keyUsages", "Key usages"},
    {"authorityKeyIdentifier", "Authority key ID"},
    {"subjectKeyIdentifier", "Subject key ID"},
    {"crlDistributionPoints", "CRL distribution points"},
    {"authorityInfoAccess", "Authority info access"},
    {"crlEnabled", "CRL enabled"},
    {"ocspEnabled", "OCSP enabled"},
    {"urls", "URLs"},
    {"createdAt", "Created at"},
    {"deletedAt", "Deleted at"},
    /* profiles */
    {"group", "Group"},
    {"kind", "Kind"},
    {"system", "System"},
    {"description", "Description"},
    {"allowedCATypes", "Allowed CA types"},
    {"validity_period", "Validity period"},
    {"usages", "Usages"},
    {"allowed_extensions", "Allowed extensions"},
    {"ignore_unknown_extensions", "Ignore unknown extensions"},
    {"ca_constraint", "CA constraint"},
    {"key_usage_critical", "Key usage critical"},
    {"extended_key_usage_critical", "Extended key usage critical"},
    {"supply_san", "Supply SAN"},
    {"pkcs12", "PKCS#12"},
    {"certificate_policies", "Certificate policies"},
    {"subject_alt_name", "Subject alt name"},
    {"key_types", "Key types"},
    /* certificates */
    {"subjectAltNames", "Subject alt names"},
    {"notBefore", "Not before"},
    {"notAfter", "Not after"},
    {"profileId", "Profile"},
    {"isCa", "CA certificate"},
    {"requester", "Requester"},
    {"extendedKeyUsages", "Extended key usages"},
    {"revocationReason", "Revocation reason"},
    {"revokedAt", "Revoked at"},
    {"invalidityDate", "Invalidity date"},
    {"validityCapped", "Validity capped"},
};

static const char *field_label(const char *key)
{
    for (size_t i = 0; i < sizeof(field_labels) / sizeof(field_labels[0]); i++)
        if (strcmp(field_labels[i].key, key) == 0)
            return field_labels[i].label;
    return key;
}

/* `Field: value` lines for every field of an object (`what` names it in
 * errors), in server order; nested objects get indented `key: value` lines. */
static int print_fields(const json_t *obj, const char *what)
{
    int rc = EXIT_API;
    const char *key;
    json_t *v;
    size_t lw = 0;

    if (!json_is_object(obj)) {
        fprintf(stderr, "error: unexpected response: %s is not a JSON object\n", what);
        goto out;
    }
    json_object_foreach((json_t *)obj, key, v) {
        size_t w = text_width(field_label(key));
        if (w > lw)
            lw = w;
    }
    json_object_foreach((json_t *)obj, key, v) {
        const char *label = field_label(key);
        put_clean(stdout, label);
        fputc(':', stdout);
        if (json_is_object(v) && json_object_size(v) > 0) {
            const char *k2;
            json_t *v2;
            fputc('\n', stdout);
            json_object_foreach(v, k2, v2) {
                fputs("  ", stdout);
                put_clean(stdout, k2);
                fputs(": ", stdout);
                put_value(v2);
                fputc('\n', stdout);
            }
            continue;
        }
        printf("%*s", (int)(lw - text_width(label) + 1), "");
        put_value(v);
        fputc('\n', stdout);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    return rc;
}

static int print_ca(const json_t *ca)
{
    return print_fields(ca, "CA");
}

static int is_stdout(const char *path)
{
    return !path || strcmp(path, "-") == 0;
}

/* Writes raw bytes to `path` (mode 0600 when `owner_only`, for key material),
 * or stdout when path is NULL or "-". */
static int write_output_mode(const char *path, const unsigned char *p, size_t n, int owner_only)
{
    int rc = EXIT_API;
    FILE *f = NULL;
    int to_stdout = is_stdout(path);

    if (to_stdout) {
        f = stdout;
    } else if (owner_only) {
        /* not through a symlink someone placed where the key is to go */
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        /* an existing file keeps its mode on open: make it owner-only
         * before a private key goes into it */
        if (fd >= 0 && fchmod(fd, 0600) != 0) {
            close(fd);
            fd = -1;
        }
        if (fd >= 0 && !(f = fdopen(fd, "wb")))
            close(fd);
    } else {
        f = fopen(path, "wb");
    }
    if (!f) {
        fprintf(stderr, "error: cannot open '%s': %s\n", path, strerror(errno));
        goto out;
    }
    if ((n && fwrite(p, 1, n, f) != n) || fflush(f) != 0) {
        fprintf(stderr, "error: cannot write '%s': %s\n", to_stdout ? "stdout" : path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f && !to_stdout && fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "error: cannot write '%s': %s\n", path, strerror(errno));
        rc = EXIT_API;
    }
    return rc;
}

static int write_output(const char *path, const unsigned char *p, size_t n)
{
    return write_output_mode(path, p, n, 0);
}

/* ---- requests ------------------------------------------------------------- */

/* Prints `error: <message> (<code>, HTTP <status>)` for a failed response. */
static void report_http_error(const struct http_response *r)
{
    json_t *j = json_loadb((const char *)r->body, r->len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *msg = get_str(e, "message");
    const char *code = get_str(e, "code");

    fputs("error: ", stderr);
    if (msg || code) {
        put_clean(stderr, msg ? msg : code);
        fputs(" (", stderr);
        if (code) {
            put_clean(stderr, code);
            fputs(", ", stderr);
        }
        fprintf(stderr, "HTTP %ld)\n", r->status);
    } else if (r->status >= 300 && r->status < 400) {
        fprintf(stderr, "unexpected redirect (HTTP %ld); check --url\n", r->status);
    } else {
        fprintf(stderr, "server returned HTTP %ld without a JSON error body\n", r->status);
    }
    json_decref(j);
}

/* Performs one request; anything but a 2xx answer is reported and turned into
 * an exit code. On 0, *r holds the response. */
static int api(const struct ctx *x, const char *method, const char *path, const char *body,
               struct http_response *r)
{
    int rc = http_request(&x->conn, method, path, body, r);
    if (rc == HTTP_ERR_TRANSPORT)
        return EXIT_CONN;
    if (rc != HTTP_OK)
        return EXIT_API;
    if (r->status < 200 || r->status >= 300) {
        report_http_error(r);
        http_response_free(r);
        return EXIT_API;
    }
    return 0;
}

/* As api(), for endpoints answering JSON; *out is the decoded body. */
static int api_json(const struct ctx *x, const char *method, const char *path, const json_t *body, json_t **out)
{
    int rc;
    struct http_response r = {0};
    char *req = NULL;
    json_error_t err;

    *out = NULL;
    if (body) {
        req = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!req) {
            fprintf(stderr, "error: cannot encode request\n");
            rc = EXIT_API;
            goto out;
        }
    }
    rc = api(x, method, path, req, &r);
    if (rc)
        goto out;
    *out = json_loadb((const char *)r.body, r.len, 0, &err);
    if (!*out) {
        fprintf(stderr, "error: server returned invalid JSON (HTTP %ld): %s\n", r.status, err.text);
        rc = EXIT_API;
        goto out;
    }
out:
    http_response_free(&r);
    if (req)
        OPENSSL_cleanse(req, strlen(req)); /* may hold a PKCS#12 password */
    free(req);
    return rc;
}

/* Builds "/api/v1/partitions/{p}" + suffix, or with a CA segment:
 * "/api/v1/partitions/{p}/cas/{ca}" + suffix. */
static char *make_path(const struct ctx *x, const char *ca_id, const char *suffix)
{
    struct buf b;
    char *esc = NULL;
    char *res = NULL;

    buf_init(&b, 0);
    if (buf_printf(&b, "/api/v1/partitions/%s", x->partition) != 0)
        goto out;
    if (ca_id) {
        esc = http_escape(ca_id);
        if (!esc || buf_printf(&b, "/cas/%s", esc) != 0)
            goto out;
    }
    if (suffix && buf_append_str(&b, suffix) != 0)
        goto out;
    res = (char *)buf_take(&b, NULL);
out:
    if (!res)
        fprintf(stderr, "error: out of memory\n");
    free(esc);
    buf_free(&b);
    return res;
}

/* Builds "/api/v1/partitions/{p}" followed by the END-terminated arguments,
 * which alternate between literal text and a segment to percent-encode:
 * api_path(x, "/cas/", ca, "/certificates", END). */
static char *api_path(const struct ctx *x, ...)
{
    struct buf b;
    va_list ap;
    const char *s;
    char *res = NULL;
    int i = 0, ok;

    buf_init(&b, 0);
    ok = buf_printf(&b, "/api/v1/partitions/%s", x->partition) == 0;
    va_start(ap, x);
    while (ok && (s = va_arg(ap, const char *)) != NULL) {
        if (i++ % 2 == 0) {
            ok = buf_append_str(&b, s) == 0;
        } else {
            char *esc = http_escape(s);
            ok = esc && buf_append_str(&b, esc) == 0;
            free(esc);
        }
    }
    va_end(ap);
    if (ok)
        res = (char *)buf_take(&b, NULL);
    if (!res)
        fprintf(stderr, "error: out of memory\n");
    buf_free(&b);
    return res;
}

/* Appends "?key=value" or "&key=value" (value percent-encoded) to *path. */
static int add_query(char **path, const char *key, const char *val)
{
    struct buf b;
    char *esc = http_escape(val);
    char *res = NULL;

    buf_init(&b, 0);
    if (esc && buf_printf(&b, "%s%c%s=%s", *path, strchr(*path, '?') ? '&' : '?', key, esc) == 0)
        res = (char *)buf_take(&b, NULL);
    free(esc);
    buf_free(&b);
    if (!res) {
        fprintf(stderr, "error: out of memory\n");
        return -1;
    }
    free(*path);
    *path = res;
    return 0;
}

/* ---- certificate files -------------------------------------------------- */

static int read_file(const char *path, struct buf *b)
{
    int rc = EXIT_API;
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    unsigned char chunk[8192];
    size_t n;

    if (!f) {
        fprintf(stderr, "error: cannot open '%s': %s\n", path, strerror(errno));
        goto out;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(b, chunk, n) != 0) {
            fprintf(stderr, "error: '%s' is too large (limit %zu KiB)\n", path, b->cap >> 10);
            goto out;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "error: cannot read '%s': %s\n", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f && !is_stdin)
        fclose(f);
    return rc;
}

/* Loads exactly one X.509 certificate from a PEM or DER file and returns it
 * re-encoded as PEM, so nothing else in the file (a private key, say) is ever
 * sent to the server. */
static int load_cert_pem(const char *path, char **pem)
{
    int rc = EXIT_API;
    struct buf b;
    X509 *cert = NULL, *extra = NULL;
    BIO *in = NULL, *mem = NULL;
    char *data = NULL;
    long dlen;

    *pem = NULL;
    buf_init(&b, MAX_CERT_FILE);
    rc = read_file(path, &b);
    if (rc)
        goto out;
    rc = EXIT_API;
    if (b.len == 0 || b.len > INT_MAX) {
        fprintf(stderr, "error: '%s' is empty\n", path);
        goto out;
    }
    if (strstr((const char *)b.data, "-----BEGIN ")) {
        in = BIO_new_mem_buf(b.data, (int)b.len);
        if (!in)
            goto oom;
        /* PEM_read_bio_X509 skips blocks that are not certificates. */
        cert = PEM_read_bio_X509(in, NULL, NULL, NULL);
        if (!cert) {
            fprintf(stderr, "error: '%s' contains no PEM certificate\n", path);
            goto out;
        }
        extra = PEM_read_bio_X509(in, NULL, NULL, NULL);
        if (extra) {
            fprintf(stderr, "error: '%s' contains more than one certificate; give only the CA certificate\n", path);
            goto out;
        }
    } else {
        const unsigned char *p = b.data;
        cert = d2i_X509(NULL, &p, (long)b.len);
        if (!cert || p != b.data + b.len) {
            fprintf(stderr, "error: '%s' is neither a PEM file nor a DER X.509 certificate\n", path);
            goto out;
        }
    }
    ERR_clear_error();
    mem = BIO_new(BIO_s_mem());
    if (!mem || PEM_write_bio_X509(mem, cert) != 1 || (dlen = BIO_get_mem_data(mem, &data)) <= 0) {
        fprintf(stderr, "error: cannot convert '%s' to PEM\n", path);
        goto out;
    }
    *pem = strndup(data, (size_t)dlen);
    if (!*pem)
        goto oom;
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "error: out of memory\n");
out:
    ERR_clear_error();
    BIO_free(mem);
    BIO_free(in);
    X509_free(extra);
    X509_free(cert);
    buf_free(&b);
    return rc;
}

/* ---- commands ------------------------------------------------------------- */

static int cmd_ca_list(struct ctx *x, const struct args *a, const char *const *argv)
{
    static const struct column cols[] = {
        {"ID", "id"},           {"TYPE", "type"},       {"STATUS", "status"},
        {"PARENT", "parentId"}, {"SUBJECT", "subject"}, {"EXPIRY", "expiryDate"},
    };
    int rc = EXIT_API;
    json_t *res = NULL;
    json_t *cas;
    char *path = make_path(x, NULL, a->seen[O_INCLUDE_DELETED] ? "/cas?includeDeleted=true" : "/cas");

    (void)argv;
    if (!path)
        goto out;
    rc = api_json(x, "GET", path, NULL, &res);
    if (rc)
        goto out;
    if (x->json) {
        rc = print_json(res);
        goto out;
    }
    rc = EXIT_API;
    cas = json_object_get(res, "cas");
    if (!json_is_array(cas)) {
        fprintf(stderr, "error: unexpected response: no \"cas\" array\n");
        goto out;
    }
    if (json_array_size(cas) == 0) {
        puts("No certificate authorities.");
        rc = 0;
        goto out;
    }
    rc = print_table(cas, cols, sizeof(cols) / sizeof(cols[0]));
out:
    json_decref(res);
    free(path);
    return rc;
}

static int cmd_ca_show(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *res = NULL;
    char *path = make_path(x, argv[0], NULL);

    (void)a;
    if (!path)
        goto out;
    rc = api_json(x, "GET", path, NULL, &res);
    if (rc)
        goto out;
    rc = x->json ? print_json(res) : print_ca(res);
out:
    json_decref(res);
    free(path);
    return rc;
}

static const char create_usage[] =
    "ca create --id ID --type root|intermediate|subord|externalKey [--name FRIENDLY]\n"
    "            [--parent ID] [--key LABEL] [--subject DN] [--expiry RFC3339]\n"
    "            [--path-length N] [--crl] [--ocsp] [--cert FILE] [--profiles P1,P2]";

static int set_str(json_t *o, const char *key, const char *val)
{
    json_t *s = json_string(val);
    if (!s) {
        fprintf(stderr, "error: value of '%s' is not valid UTF-8\n", key);
        return -1;
    }
    return json_object_set_new(o, key, s);
}

/* "a, b,c" -> ["a","b","c"] (blanks trimmed, empty items dropped; "" gives
 * an empty array). NULL on out-of-memory or bad UTF-8 (reported). */
static json_t *split_list(const char *s, const char *opt)
{
    json_t *arr = json_array();
    char *copy = strdup(s);
    char *save = NULL;

    if (!arr || !copy) {
        fprintf(stderr, "error: out of memory\n");
        goto fail;
    }
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t n;
        json_t *e;
        while (*t == ' ' || *t == '\t')
            t++;
        n = strlen(t);
        while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
            t[--n] = 0;
        if (!n)
            continue;
        e = json_string(t);
        if (!e) {
            fprintf(stderr, "error: value of --%s is not valid UTF-8\n", opt);
            goto fail;
        }
        if (json_array_append_new(arr, e) != 0) {
            fprintf(stderr, "error: out of memory\n");
            goto fail;
        }
    }
    free(copy);
    return arr;
fail:
    free(copy);
    json_decref(arr);
    return NULL;
}

static int cmd_ca_create(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *body = NULL, *res = NULL;
    char *path = NULL, *pem = NULL;
    const char *type = a->val[O_TYPE];
    int is_ext, is_root, is_sub;
    static const enum opt_id not_for_ext[] = {O_PARENT, O_KEY,  O_SUBJECT, O_EXPIRY,
                                              O_PATH_LENGTH, O_CRL, O_OCSP};

    (void)argv;
    if (!a->val[O_ID] || !*a->val[O_ID])
        return usage_error(create_usage, "%s", "ca create: --id is required");
    if (!type)
        return usage_error(create_usage, "%s", "ca create: --type is required");
    if (strcmp(type, "root") && strcmp(type, "intermediate") && strcmp(type, "subord") && strcmp(type, "externalKey"))
        return usage_error(create_usage, "ca create: unknown --type '%s'", type);
    is_ext = strcmp(type, "externalKey") == 0;
    is_root = strcmp(type, "root") == 0;
    is_sub = strcmp(type, "subord") == 0;
    if (is_ext && a->seen[O_PROFILES])
        return usage_error(create_usage, "%s", "ca create: --profiles does not apply to externalKey");
    if (is_ext) {
        if (!a->val[O_CERT])
            return usage_error(create_usage, "%s", "ca create: --type externalKey needs --cert FILE");
        for (size_t i = 0; i < sizeof(not_for_ext) / sizeof(not_for_ext[0]); i++)
            if (a->seen[not_for_ext[i]])
                return usage_error(create_usage, "%s",
                                   "ca create: externalKey takes only --id, --name and --cert");
    } else if (a->seen[O_CERT]) {
        return usage_error(create_usage, "%s", "ca create: --cert is only for --type externalKey");
    }
    if (is_root && (a->seen[O_PARENT] || a->seen[O_CRL] || a->seen[O_OCSP]))
        return usage_error(create_usage, "%s", "ca create: a root takes no --parent, --crl or --ocsp");

    body = json_object();
    if (!body)
        goto oom;
    if (set_str(body, "id", a->val[O_ID]) != 0)
        goto out;
    if (a->val[O_NAME] && set_str(body, "friendlyName", a->val[O_NAME]) != 0)
        goto out;
    if (set_str(body, "type", type) != 0)
        goto out;
    if (a->val[O_PARENT] && set_str(body, "parentId", a->val[O_PARENT]) != 0)
        goto out;
    if (a->val[O_KEY] && set_str(body, "signingKeyDetails", a->val[O_KEY]) != 0)
        goto out;
    if (a->val[O_SUBJECT] && set_str(body, "subject", a->val[O_SUBJECT]) != 0)
        goto out;
    if (a->val[O_EXPIRY] && set_str(body, "expiryDate", a->val[O_EXPIRY]) != 0)
        goto out;
    if (a->val[O_PATH_LENGTH]) {
        const char *s = a->val[O_PATH_LENGTH];
        char *end = NULL;
        long n;
        errno = 0;
        n = strtol(s, &end, 10);
        if (!*s || *end || errno || n < 0 || n > INT_MAX) {
            rc = usage_error(create_usage, "ca create: --path-length must be a non-negative integer, not '%s'", s);
            goto out;
        }
        if (json_object_set_new(body, "pathLength", json_integer(n)) != 0)
            goto oom;
    }
    if (!is_root && !is_ext && json_object_set_new(body, "enableCrl", json_boolean(a->seen[O_CRL])) != 0)
        goto oom;
    if ((is_sub || a->seen[O_OCSP]) && json_object_set_new(body, "enableOcsp", json_boolean(a->seen[O_OCSP])) != 0)
        goto oom;
    if (a->val[O_PROFILES]) {
        json_t *list = split_list(a->val[O_PROFILES], "profiles");
        if (!list || json_object_set_new(body, "profiles", list) != 0)
            goto out;
    }
    if (is_ext) {
        rc = load_cert_pem(a->val[O_CERT], &pem);
        if (rc)
            goto out;
        rc = EXIT_API;
        if (set_str(body, "certificate", pem) != 0)
            goto out;
    }

    path = make_path(x, NULL, "/cas");
    if (!path)
        goto out;
    rc = api_json(x, "POST", path, body, &res);
    if (rc)
        goto out;
    if (x->json) {
        rc = print_json(res);
        goto out;
    }
    rc = print_ca(res);
    if (rc == 0 && strcmp(get_str(res, "status") ? get_str(res, "status") : "", "pending") == 0) {
        fputs("\nThe CA is pending: fetch its CSR with 'pkiaas ca csr ", stderr);
        put_clean(stderr, a->val[O_ID]);
        fputs("', have it signed, then run 'pkiaas ca import-cert ", stderr);
        put_clean(stderr, a->val[O_ID]);
        fputs(" FILE'.\n", stderr);
    }
    goto out;
oom:
    fprintf(stderr, "error: out of memory\n");
    rc = EXIT_API;
out:
    json_decref(body);
    json_decref(res);
    free(path);
    free(pem);
    return rc;
}

static int cmd_ca_import_cert(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc;
    json_t *body = NULL, *res = NULL;
    char *path = NULL, *pem = NULL;

    (void)a;
    rc = load_cert_pem(argv[1], &pem);
    if (rc)
        goto out;
    rc = EXIT_API;
    body = json_object();
    if (!body) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    if (set_str(body, "certificate", pem) != 0)
        goto out;
    path = make_path(x, argv[0], "/certificate");
    if (!path)
        goto out;
    rc = api_json(x, "POST", path, body, &res);
    if (rc)
        goto out;
    rc = x->json ? print_json(res) : print_ca(res);
out:
    json_decref(body);
    json_decref(res);
    free(path);
    free(pem);
    return rc;
}

/* GET a non-JSON resource and write it out verbatim. */
static int download(struct ctx *x, const char *ca_id, const char *suffix, const char *output)
{
    int rc = EXIT_API;
    struct http_response r = {0};
    char *path = make_path(x, ca_id, suffix);

    if (!path)
        goto out;
    rc = api(x, "GET", path, NULL, &r);
    if (rc)
        goto out;
    rc = write_output(output, r.body, r.len);
out:
    http_response_free(&r);
    free(path);
    return rc;
}

static int cmd_ca_csr(struct ctx *x, const struct args *a, const char *const *argv)
{
    return download(x, argv[0], "/csr", a->val[O_OUTPUT]);
}

static int cmd_ca_download(struct ctx *x, const struct args *a, const char *const *argv)
{
    static const char u[] = "ca download CA_ID [--format pem|der] [--chain] [-o FILE]";
    const char *fmt = a->val[O_FORMAT] ? a->val[O_FORMAT] : "pem";
    const char *out = a->val[O_OUTPUT];
    int to_stdout = !out || strcmp(out, "-") == 0;

    if (strcmp(fmt, "pem") != 0 && strcmp(fmt, "der") != 0)
        return usage_error(u, "ca download: --format must be pem or der, not '%s'", fmt);
    if (a->seen[O_CHAIN]) {
        if (strcmp(fmt, "der") == 0)
            return usage_error(u, "%s", "ca download: --chain is only available as PEM");
        return download(x, argv[0], "/chain", out);
    }
    if (strcmp(fmt, "der") == 0 && to_stdout && isatty(STDOUT_FILENO))
        return usage_error(u, "%s", "ca download: refusing to write DER to a terminal; use -o FILE");
    return download(x, argv[0], strcmp(fmt, "der") == 0 ? "/certificate?format=der" : "/certificate?format=pem",
                    out);
}

/* Asks on the terminal; 1 = confirmed, 0 = declined, -1 = no terminal. */
static int confirm_delete(const char *ca_id)
{
    int rc = -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (!isatty(STDIN_FILENO))
        goto out;
    rc = 0;
    fputs("Delete CA '", stderr);
    put_clean(stderr, ca_id);
    fputs("' and all of its descendants? The identifier stays reserved for 24 h. [y/N] ", stderr);
    fflush(stderr);
    n = getline(&line, &cap, stdin);
    if (n <= 0)
        goto out;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    rc = strcasecmp(line, "y") == 0 || strcasecmp(line, "yes") == 0;
out:
    free(line);
    return rc;
}

static int cmd_ca_delete(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *res = NULL;
    char *path = NULL;

    if (!a->seen[O_YES]) {
        int ok = confirm_delete(argv[0]);
        if (ok < 0)
            return usage_error("ca delete CA_ID [--yes]", "%s",
                               "ca delete: stdin is not a terminal; pass --yes to confirm");
        if (ok == 0) {
            fputs("Aborted.\n", stderr);
            return EXIT_API;
        }
    }
    path = make_path(x, argv[0], NULL);
    if (!path)
        goto out;
    rc = api_json(x, "DELETE", path, NULL, &res);
    if (rc)
        goto out;
    if (x->json) {
        rc = print_json(res);
        goto out;
    }
    {
        const char *id = get_str(res, "id");
        json_t *aff = json_object_get(res, "affected");
        json_t *e;
        size_t i, shown = 0;
        fputs("Deleted CA ", stdout);
        put_clean(stdout, id ? id : argv[0]);
        fputc('\n', stdout);
        json_array_foreach(aff, i, e) {
            const char *s = json_string_value(e);
            if (!s || (id && strcmp(s, id) == 0))
                continue;
            fputs(shown++ ? ", " : "Also deleted: ", stdout);
            put_clean(stdout, s);
        }
        if (shown)
            fputc('\n', stdout);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(res);
    free(path);
    return rc;
}

static int cmd_key_details(struct ctx *x, const struct args *a, const char *const *argv)
{
    static const struct column cols[] = {
        {"LABEL", "label"},
        {"KEY", "keyAlgorithm"},
        {"SIGNATURE", "signatureAlgorithm"},
        {"SUPPORTED", "supported"},
    };
    int rc = EXIT_API;
    json_t *res = NULL;
    json_t *list;
    char *path = make_path(x, NULL, "/signing-key-details");

    (void)a;
    (void)argv;
    if (!path)
        goto out;
    rc = api_json(x, "GET", path, NULL, &res);
    if (rc)
        goto out;
    if (x->json) {
        rc = print_json(res);
        goto out;
    }
    rc = EXIT_API;
    list = json_object_get(res, "signingKeyDetails");
    if (!json_is_array(list)) {
        fprintf(stderr, "error: unexpected response: no \"signingKeyDetails\" array\n");
        goto out;
    }
    rc = print_table(list, cols, sizeof(cols) / sizeof(cols[0]));
out:
    json_decref(res);
    free(path);
    return rc;
}

/* ---- certificate profiles ------------------------------------------------ */

/* Loads a JSON object from FILE ("-" = stdin). */
static int load_json_object(const char *path, json_t **out)
{
    int rc;
    struct buf b;
    json_error_t err;

    *out = NULL;
    buf_init(&b, MAX_JSON_FILE);
    rc = read_file(path, &b);
    if (rc)
        goto out;
    rc = EXIT_API;
    if (b.len == 0) {
        fprintf(stderr, "error: '%s' is empty\n", path);
        goto out;
    }
    *out = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, &err);
    if (!*out) {
        fprintf(stderr, "error: '%s' is not valid JSON (line %d): %s\n", path, err.line, err.text);
        goto out;
    }
    if (!json_is_object(*out)) {
        fprintf(stderr, "error: '%s' must hold a JSON object\n", path);
        json_decref(*out);
        *out = NULL;
        goto out;
    }
    rc = 0;
out:
    buf_free(&b);
    return rc;
}

/* The profile fields given on the command line, over the --json-file ones. */
static int profile_body(const struct args *a, const char *usage, const char *cmd, json_t **out)
{
    int rc = EXIT_API;
    json_t *body = NULL;

    *out = NULL;
    if (a->val[O_IGNORE_UNKNOWN] && strcmp(a->val[O_IGNORE_UNKNOWN], "true") != 0 &&
        strcmp(a->val[O_IGNORE_UNKNOWN], "false") != 0)
        return usage_error(usage, "%s: --ignore-unknown must be true or false, not '%s'", cmd,
                           a->val[O_IGNORE_UNKNOWN]);
    if (a->val[O_JSON_FILE]) {
        rc = load_json_object(a->val[O_JSON_FILE], &body);
        if (rc)
            goto out;
        rc = EXIT_API;
    } else if (!(body = json_object())) {
        goto oom;
    }
    if (a->val[O_GROUP] && set_str(body, "group", a->val[O_GROUP]) != 0)
        goto out;
    if (a->val[O_VALIDITY] && set_str(body, "validity_period", a->val[O_VALIDITY]) != 0)
        goto out;
    if (a->val[O_USAGES]) {
        json_t *l = split_list(a->val[O_USAGES], "usages");
        if (!l || json_object_set_new(body, "usages", l) != 0)
            goto out;
    }
    if (a->val[O_ALLOWED_EXT]) {
        json_t *l = split_list(a->val[O_ALLOWED_EXT], "allowed-extensions");
        if (!l || json_object_set_new(body, "allowed_extensions", l) != 0)
            goto out;
    }
    if (a->val[O_IGNORE_UNKNOWN] &&
        json_object_set_new(body, "ignore_unknown_extensions",
                            json_boolean(strcmp(a->val[O_IGNORE_UNKNOWN], "true") == 0)) != 0)
        goto oom;
    *out = body;
    body = NULL;
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "error: out of memory\n");
out:
    json_decref(body);
    return rc;
}

#define PROFILE_FIELD_OPTS                                                                                             \
    (BIT(O_GROUP) | BIT(O_VALIDITY) | BIT(O_USAGES) | BIT(O_ALLOWED_EXT) | BIT(O_IGNORE_UNKNOWN) | BIT(O_JSON_FILE))

static const char clone_usage[] =
    "profile clone --from SRC --id NEW [--group G] [--validity DURATION] [--usages A,B,OID]\n"
    "            [--allowed-extensions OID,...] [--ignore-unknown true|false] [--json-file FILE]";
static const char update_usage[] =
    "profile update PROFILE_ID [--group G] [--validity DURATION] [--usages A,B,OID]\n"
    "            [--allowed-extensions OID,...] [--ignore-unknown true|false] [--json-file FILE]";

static int cmd_profile_list(struct ctx *x, const struct args *a, const char *const *argv)
{
    static const struct column cols[] = {
        {"ID", "id"},     {"GROUP", "group"},          {"KIND", "kind"},
        {"SYSTEM", "system"}, {"VALIDITY", "validity_period"}, {"DESCRIPTION", "description"},
    };
    int rc = EXIT_API;
    json_t *res = NULL;
    json_t *list;
    char *path = api_path(x, "/profiles", END);

    (void)argv;
    if (!path || (a->val[O_GROUP] && add_query(&path, "group", a->val[O_GROUP]) != 0))
        goto out;
    rc = api_json(x, "GET", path, NULL, &res);
    if (rc)
        goto out;
    if (x->json) {
        rc = print_json(res);
        goto out;
    }
    rc = EXIT_API;
    list = json_object_get(res, "profiles");
    if (!json_is_array(list)) {
        fprintf(stderr, "error: unexpected response: no \"profiles\" array\n");
        goto out;
    }
    if (json_array_size(list) == 0) {
        puts("No profiles.");
        rc = 0;
        goto out;
    }
    rc = print_table(list, cols, sizeof(cols) / sizeof(cols[0]));
out:
    json_decref(res);
    free(path);
    return rc;
}

/* Sends `body` (may be NULL) and prints the JSON object answer. */
static int request_and_show(struct ctx *x, const char *method, const char *path, const json_t *body,
                            const char *what)
{
    json_t *res = NULL;
    int rc = path ? api_json(x, method, path, body, &res) : EXIT_API;
    if (rc == 0)
        rc = x->json ? print_json(res) : print_fields(res, what);
    json_decref(res);
    return rc;
}

static int cmd_profile_show(struct ctx *x, const struct args *a, const char *const *argv)
{
    char *path = api_path(x, "/profiles/", argv[0], END);
    int rc = request_and_show(x, "GET", path, NULL, "profile");
    (void)a;
    free(path);
    return rc;
}

static int cmd_profile_clone(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc;
    json_t *body = NULL;
    char *path = NULL;

    (void)argv;
    if (!a->val[O_FROM] || !*a->val[O_FROM])
        return usage_error(clone_usage, "%s", "profile clone: --from is required");
    if (!a->val[O_ID] || !*a->val[O_ID])
        return usage_error(clone_usage, "%s", "profile clone: --id is required");
    rc = profile_body(a, clone_usage, "profile clone", &body);
    if (rc)
        goto out;
    rc = EXIT_API;
    if (set_str(body, "id", a->val[O_ID]) != 0 || set_str(body, "sourceProfileId", a->val[O_FROM]) != 0)
        goto out;
    path = api_path(x, "/profiles", END);
    rc = request_and_show(x, "POST", path, body, "profile");
out:
    json_decref(body);
    free(path);
    return rc;
}

static int cmd_profile_update(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc;
    json_t *body = NULL;
    char *path = NULL;

    rc = profile_body(a, update_usage, "profile update", &body);
    if (rc)
        goto out;
    if (json_object_size(body) == 0) {
        rc = usage_error(update_usage, "%s", "profile update: nothing to change; give a field option or --json-file");
        goto out;
    }
    path = api_path(x, "/profiles/", argv[0], END);
    rc = request_and_show(x, "PUT", path, body, "profile");
out:
    json_decref(body);
    free(path);
    return rc;
}

/* Prints `msg ID` (both to stdout) or the JSON answer. */
static int print_done(const struct ctx *x, const json_t *res, const char *msg, const char *id)
{
    if (x->json)
        return print_json(res);
    fputs(msg, stdout);
    put_clean(stdout, id);
    fputc('\n', stdout);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        return EXIT_API;
    }
    return 0;
}

static int cmd_profile_delete(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *res = NULL;
    char *path = api_path(x, "/profiles/", argv[0], END);

    (void)a;
    if (!path)
        goto out;
    rc = api_json(x, "DELETE", path, NULL, &res);
    if (rc == 0)
        rc = print_done(x, res, "Deleted profile ", argv[0]);
out:
    json_decref(res);
    free(path);
    return rc;
}

/* {"caId":..,"profiles":[ids]} -> one id per line. */
static int print_ca_profiles(const struct ctx *x, const json_t *res, const char *ca_id)
{
    json_t *list = json_object_get(res, "profiles");
    json_t *e;
    size_t i;

    if (x->json)
        return print_json(res);
    if (!json_is_array(list)) {
        fprintf(stderr, "error: unexpected response: no \"profiles\" array\n");
        return EXIT_API;
    }
    if (json_array_size(list) == 0) {
        fputs("No profiles are assigned to CA ", stdout);
        put_clean(stdout, ca_id);
        fputs(".\n", stdout);
    }
    json_array_foreach(list, i, e) {
        put_value(e);
        fputc('\n', stdout);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        return EXIT_API;
    }
    return 0;
}

static int cmd_ca_profiles(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *res = NULL;
    char *path = api_path(x, "/cas/", argv[0], "/profiles", END);

    (void)a;
    if (!path)
        goto out;
    rc = api_json(x, "GET", path, NULL, &res);
    if (rc == 0)
        rc = print_ca_profiles(x, res, argv[0]);
out:
    json_decref(res);
    free(path);
    return rc;
}

static int cmd_ca_profiles_add(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *body = json_object(), *res = NULL;
    char *path = api_path(x, "/cas/", argv[0], "/profiles", END);

    (void)a;
    if (!body || !path || set_str(body, "profileId", argv[1]) != 0)
        goto out;
    rc = api_json(x, "POST", path, body, &res);
    if (rc)
        goto out;
    if (!x->json) {
        fputs("Assigned profile ", stdout);
        put_clean(stdout, argv[1]);
        fputs(" to CA ", stdout);
        put_clean(stdout, argv[0]);
        fputs(".\nAssigned profiles:\n", stdout);
    }
    rc = print_ca_profiles(x, res, argv[0]);
out:
    json_decref(body);
    json_decref(res);
    free(path);
    return rc;
}

static int cmd_ca_profiles_remove(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *res = NULL;
    char *path = api_path(x, "/cas/", argv[0], "/profiles/", argv[1], END);

    (void)a;
    if (!path)
        goto out;
    rc = api_json(x, "DELETE", path, NULL, &res);
    if (rc)
        goto out;
    if (!x->json) {
        fputs("Removed profile ", stdout);
        put_clean(stdout, argv[1]);
        fputs(" from CA ", stdout);
        put_clean(stdout, argv[0]);
        fputs(".\n", stdout);
        if (json_array_size(json_object_get(res, "profiles")) > 0)
            fputs("Assigned profiles:\n", stdout);
    }
    rc = print_ca_profiles(x, res, argv[0]);
out:
    json_decref(res);
    free(path);
    return rc;
}

/* ---- certificates ---------------------------------------------------------- */

/* Loads one PKCS#10 request (PEM or DER) and returns it as PEM, so nothing
 * else in the file (a private key, say) is sent. */
static int load_csr_pem(const char *path, char **pem)
{
    int rc = EXIT_API;
    struct buf b;
    X509_REQ *req = NULL;
    BIO *in = NULL, *mem = NULL;
    char *data = NULL;
    long dlen;

    *pem = NULL;
    buf_init(&b, MAX_CERT_FILE);
    rc = read_file(path, &b);
    if (rc)
        goto out;
    rc = EXIT_API;
    if (b.len == 0 || b.len > INT_MAX) {
        fprintf(stderr, "error: '%s' is empty\n", path);
        goto out;
    }
    if (strstr((const char *)b.data, "-----BEGIN ")) {
        in = BIO_new_mem_buf(b.data, (int)b.len);
        if (!in)
            goto oom;
        req = PEM_read_bio_X509_REQ(in, NULL, NULL, NULL);
        if (!req) {
            fprintf(stderr, "error: '%s' contains no PEM certificate request\n", path);
            goto out;
        }
    } else {
        const unsigned char *p = b.data;
        req = d2i_X509_REQ(NULL, &p, (long)b.len);
        if (!req || p != b.data + b.len) {
            fprintf(stderr, "error: '%s' is neither a PEM file nor a DER certificate request\n", path);
            goto out;
        }
    }
    ERR_clear_error();
    mem = BIO_new(BIO_s_mem());
    if (!mem || PEM_write_bio_X509_REQ(mem, req) != 1 || (dlen = BIO_get_mem_data(mem, &data)) <= 0) {
        fprintf(stderr, "error: cannot convert '%s' to PEM\n", path);
        goto out;
    }
    *pem = strndup(data, (size_t)dlen);
    if (!*pem)
        goto oom;
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "error: out of memory\n");
out:
    ERR_clear_error();
    BIO_free(mem);
    BIO_free(in);
    X509_REQ_free(req);
    buf_free(&b);
    return rc;
}

static void free_secret(char *s)
{
    if (s)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* First line of FILE ("-" = stdin), without the line ending. */
static int read_password_file(const char *path, char **pw)
{
    int rc;
    struct buf b;
    size_t n;

    *pw = NULL;
    buf_init(&b, 64 * 1024);
    rc = read_file(path, &b);
    if (rc)
        goto out;
    rc = EXIT_API;
    n = b.len ? strcspn((const char *)b.data, "\r\n") : 0;
    if (n == 0) {
        fprintf(stderr, "error: '%s' holds an empty password\n", path);
        goto out;
    }
    if (n > MAX_PASSWORD) {
        fprintf(stderr, "error: the password in '%s' is longer than %d characters\n", path, MAX_PASSWORD);
        goto out;
    }
    *pw = strndup((const char *)b.data, n);
    if (!*pw) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    rc = 0;
out:
    if (b.data)
        OPENSSL_cleanse(b.data, b.alloc);
    buf_free(&b);
    return rc;
}

/* Reads one line from the terminal on stdin with echo off. */
static char *read_hidden(const char *prompt)
{
    struct termios old, quiet;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    char *res = NULL;
    int restore = 0;

    /* Echo goes off before the prompt appears, so nothing typed after the
     * prompt can be shown (or flushed away by TCSAFLUSH). */
    if (tcgetattr(STDIN_FILENO, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    }
    fputs(prompt, stderr);
    fflush(stderr);
    n = getline(&line, &cap, stdin);
    if (restore)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    else
        fputc('\n', stderr);
    if (n < 0)
        goto out;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    res = strdup(line);
out:
    if (line)
        OPENSSL_cleanse(line, cap);
    free(line);
    return res;
}

static int prompt_password(char **pw)
{
    char *again = NULL;
    int rc = EXIT_API;

    *pw = read_hidden("PKCS#12 password: ");
    if (!*pw) {
        fprintf(stderr, "error: no password read\n");
        goto out;
    }
    if (!**pw || strlen(*pw) > MAX_PASSWORD) {
        fprintf(stderr, "error: the password must be 1-%d characters\n", MAX_PASSWORD);
        goto out;
    }
    again = read_hidden("Repeat the password: ");
    if (!again || strcmp(*pw, again) != 0) {
        fprintf(stderr, "error: the passwords do not match\n");
        goto out;
    }
    rc = 0;
out:
    free_secret(again);
    if (rc) {
        free_secret(*pw);
        *pw = NULL;
    }
    return rc;
}

static const char issue_usage[] =
    "cert issue CA_ID --profile P --csr FILE [--subject DN | --use-csr-subject]\n"
    "            [--san TYPE:VALUE]... [--validity DURATION | --not-after RFC3339] [-o FILE] [--chain-out FILE]\n"
    "   or: pkiaas cert issue CA_ID --profile P --p12 --key-type TYPE --subject DN\n"
    "            [--p12-password PW | --p12-password-file FILE] [--san TYPE:VALUE]...\n"
    "            [--validity DURATION | --not-after RFC3339] [-o FILE] [--chain-out FILE]";

/* "dns:www.example.com" -> {"type":"dNSName","value":"www.example.com"} */
static int add_san(json_t *arr, const char *spec)
{
    static const struct {
        const char *short_name, *name;
    } types[] = {
        {"dns", "dNSName"},
        {"ip", "iPAddress"},
        {"email", "rfc822Name"},
        {"uri", "uniformResourceIdentifier"},
        {"upn", "userPrincipalName"},
    };
    const char *colon = strchr(spec, ':');
    size_t tlen = colon ? (size_t)(colon - spec) : 0;
    const char *type = NULL;

    for (size_t i = 0; colon && i < sizeof(types) / sizeof(types[0]); i++)
        if ((strlen(types[i].short_name) == tlen && strncasecmp(spec, types[i].short_name, tlen) == 0) ||
            (strlen(types[i].name) == tlen && strncmp(spec, types[i].name, tlen) == 0))
            type = types[i].name;
    if (!type || !colon[1])
        return usage_error(issue_usage,
                           "cert issue: --san must be dns:, ip:, email:, uri: or upn: followed by a value, not '%s'",
                           spec);
    {
        json_t *v = json_string(colon + 1);
        json_t *o = v ? json_pack("{s:s,s:o}", "type", type, "value", v) : NULL;
        if (!o || json_array_append_new(arr, o) != 0) {
            fprintf(stderr, "error: --san value '%s' is not valid UTF-8\n", spec);
            return EXIT_API;
        }
    }
    return 0;
}

/* Writes every PEM string of the "chain" array to `path`. */
/* An output file staged before the request whose answer fills it: a new
 * file beside the destination (mkstemp), renamed over it once written. A
 * directory that cannot be written is found before the server issues
 * anything (a server-generated key exists only in its answer), and a
 * symlink at the destination is replaced, not followed. */
struct staged {
    const char *path; /* NULL: nothing staged (stdout) */
    char *tmp;
    int fd;
};

static int stage_open(struct staged *s, const char *path, bool secret)
{
    mode_t um;
    s->path = NULL;
    s->tmp = NULL;
    s->fd = -1;
    if (is_stdout(path))
        return 0;
    if (asprintf(&s->tmp, "%s.tmp-XXXXXX", path) < 0) {
        s->tmp = NULL;
        fprintf(stderr, "error: out of memory\n");
        return EXIT_API;
    }
    um = umask(0);
    umask(um);
    if ((s->fd = mkstemp(s->tmp)) < 0 || fchmod(s->fd, secret ? 0600 : (0666 & ~um)) != 0) {
        fprintf(stderr, "error: cannot create a file beside '%s': %s\n", path, strerror(errno));
        if (s->fd >= 0) {
            close(s->fd);
            unlink(s->tmp);
        }
        free(s->tmp);
        s->tmp = NULL;
        s->fd = -1;
        return EXIT_API;
    }
    s->path = path;
    return 0;
}

static void stage_abort(struct staged *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->tmp)
        unlink(s->tmp);
    free(s->tmp);
    s->tmp = NULL;
    s->fd = -1;
    s->path = NULL;
}

/* Writes the bytes into a staged file and puts it in place (or stdout when
 * nothing was staged). */
static int stage_commit(struct staged *s, const char *path, const unsigned char *p, size_t n)
{
    size_t off = 0;
    if (!s->path)
        return write_output(path, p, n);
    while (off < n) {
        ssize_t w = write(s->fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        off += (size_t)w;
    }
    if (fsync(s->fd) != 0 || close(s->fd) != 0) {
        s->fd = -1;
        goto fail;
    }
    s->fd = -1;
    if (rename(s->tmp, s->path) != 0)
        goto fail;
    free(s->tmp);
    s->tmp = NULL;
    s->path = NULL;
    return 0;
fail:
    fprintf(stderr, "error: cannot write '%s': %s\n", s->path, strerror(errno));
    stage_abort(s);
    return EXIT_API;
}

/* The response's chain as one PEM bundle in b. */
static int chain_pem(const json_t *res, struct buf *b)
{
    const json_t *chain = json_object_get(res, "chain");
    json_t *e;
    size_t i;
    if (!json_is_array(chain)) {
        fprintf(stderr, "error: unexpected response: no \"chain\" array\n");
        return EXIT_API;
    }
    json_array_foreach(chain, i, e) {
        const char *pem = json_string_value(e);
        if (!pem)
            continue;
        if (buf_append_str(b, pem) != 0 ||
            (b->len && b->data[b->len - 1] != '\n' && buf_append_str(b, "\n") != 0)) {
            fprintf(stderr, "error: out of memory\n");
            return EXIT_API;
        }
    }
    return 0;
}

static int cmd_cert_issue(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    int p12 = a->seen[O_P12];
    const char *out = a->val[O_OUTPUT];
    json_t *body = NULL, *res = NULL, *sans = NULL;
    char *path = NULL, *csr = NULL, *pw = NULL;
    unsigned char *der = NULL;
    size_t der_len = 0;
    struct staged so = {NULL, NULL, -1}, sc = {NULL, NULL, -1};
    struct buf chain;
    struct stat st1, st2;
    const char *chain_out = a->val[O_CHAIN_OUT];

    buf_init(&chain, 0);

    if (!a->val[O_PROFILE] || !*a->val[O_PROFILE])
        return usage_error(issue_usage, "%s", "cert issue: --profile is required");
    if (a->seen[O_VALIDITY] && a->seen[O_NOT_AFTER])
        return usage_error(issue_usage, "%s", "cert issue: give either --validity or --not-after");
    if (a->seen[O_SUBJECT] && a->seen[O_USE_CSR_SUBJECT])
        return usage_error(issue_usage, "%s", "cert issue: give either --subject or --use-csr-subject");
    if (p12) {
        if (a->seen[O_CSR] || a->seen[O_USE_CSR_SUBJECT])
            return usage_error(issue_usage, "%s", "cert issue: --p12 generates the key; it takes no --csr");
        if (!a->val[O_KEY_TYPE] || !*a->val[O_KEY_TYPE])
            return usage_error(issue_usage, "%s",
                               "cert issue: --p12 needs --key-type (RSA-2048, RSA-3072, RSA-4096, EC-P256, "
                               "EC-P384 or EC-P521)");
        if (!a->val[O_SUBJECT] || !*a->val[O_SUBJECT])
            return usage_error(issue_usage, "%s", "cert issue: --p12 needs --subject DN");
        if (a->seen[O_P12_PASSWORD] && a->seen[O_P12_PASSWORD_FILE])
            return usage_error(issue_usage, "%s", "cert issue: give either --p12-password or --p12-password-file");
        if (!x->json && is_stdout(out) && isatty(STDOUT_FILENO))
            return usage_error(issue_usage, "%s", "cert issue: refusing to write PKCS#12 to a terminal; use -o FILE");
        if (!a->seen[O_P12_PASSWORD] && !a->seen[O_P12_PASSWORD_FILE] && !isatty(STDIN_FILENO))
            return usage_error(issue_usage, "%s",
                               "cert issue: stdin is not a terminal; pass --p12-password-file FILE");
    } else {
        if (!a->val[O_CSR])
            return usage_error(issue_usage, "%s", "cert issue: --csr FILE is required (or --p12 for a server-side key)");
        if (a->seen[O_KEY_TYPE] || a->seen[O_P12_PASSWORD] || a->seen[O_P12_PASSWORD_FILE])
            return usage_error(issue_usage, "%s",
                               "cert issue: --key-type and --p12-password(-file) need --p12");
    }

    if (!is_stdout(out) && chain_out && !is_stdout(chain_out) &&
        (strcmp(out, chain_out) == 0 ||
         (stat(out, &st1) == 0 && stat(chain_out, &st2) == 0 && st1.st_dev == st2.st_dev && st1.st_ino == st2.st_ino)))
        return usage_error(issue_usage, "%s", "cert issue: -o and --chain-out name the same file");

    if (!(body = json_object()) || !(sans = json_array())) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    for (int i = 0; i < a->nsans; i++) {
        rc = add_san(sans, a->sans[i]);
        if (rc)
            goto out;
    }
    rc = EXIT_API;
    if (set_str(body, "profileId", a->val[O_PROFILE]) != 0)
        goto out;
    if (p12) {
        if (a->val[O_P12_PASSWORD]) {
            pw = strdup(a->val[O_P12_PASSWORD]);
            if (!pw) {
                fprintf(stderr, "error: out of memory\n");
                goto out;
            }
        } else {
            rc = a->val[O_P12_PASSWORD_FILE] ? read_password_file(a->val[O_P12_PASSWORD_FILE], &pw)
                                             : prompt_password(&pw);
            if (rc)
                goto out;
            rc = EXIT_API;
        }
        if (set_str(body, "keyType", a->val[O_KEY_TYPE]) != 0 || set_str(body, "p12Password", pw) != 0)
            goto out;
    } else {
        rc = load_csr_pem(a->val[O_CSR], &csr);
        if (rc)
            goto out;
        rc = EXIT_API;
        if (set_str(body, "csr", csr) != 0)
            goto out;
    }
    if (a->val[O_SUBJECT] && set_str(body, "subject", a->val[O_SUBJECT]) != 0)
        goto out;
    if (a->seen[O_USE_CSR_SUBJECT] && json_object_set_new(body, "useSubjectFromCsr", json_true()) != 0)
        goto out;
    if (a->nsans && json_object_set(body, "subjectAltNames", sans) != 0)
        goto out;
    if (a->val[O_VALIDITY] && set_str(body, "validityPeriod", a->val[O_VALIDITY]) != 0)
        goto out;
    if (a->val[O_NOT_AFTER] && set_str(body, "notAfter", a->val[O_NOT_AFTER]) != 0)
        goto out;

    path = api_path(x, "/cas/", argv[0], "/certificates", END);
    if (!path)
        goto out;
    /* the output files exist before anything is issued */
    if ((rc = stage_open(&so, out, p12)) != 0 || (chain_out && (rc = stage_open(&sc, chain_out, false)) != 0))
        goto out;
    rc = api_json(x, "POST", path, body, &res);
    if (rc)
        goto out;
    rc = EXIT_API;

    /* Files first, so a failure to write one is the last thing reported. */
    if (p12) {
        const char *b64 = get_str(res, "pkcs12");
        if (!b64 || b64_decode(b64, strlen(b64), &der, &der_len) != 0) {
            fprintf(stderr, "error: unexpected response: no valid \"pkcs12\" value\n");
            goto out;
        }
        if ((!x->json || !is_stdout(out)) && (rc = stage_commit(&so, out, der, der_len)) != 0)
            goto out;
    } else {
        const char *pem = get_str(res, "certificate");
        if (!pem) {
            fprintf(stderr, "error: unexpected response: no \"certificate\"\n");
            goto out;
        }
        if ((!x->json || !is_stdout(out)) &&
            (rc = stage_commit(&so, out, (const unsigned char *)pem, strlen(pem))) != 0)
            goto out;
    }
    if (chain_out && ((rc = chain_pem(res, &chain)) != 0 ||
                      (rc = stage_commit(&sc, chain_out, chain.data, chain.len)) != 0))
        goto out;

    if (x->json) {
        rc = print_json(res);
    } else if (is_stdout(out)) {
        /* stdout carries the certificate / PKCS#12: a one-line note on stderr */
        fputs("Issued certificate ", stderr);
        put_clean(stderr, get_str(res, "serialNumber") ? get_str(res, "serialNumber") : "?");
        fputs(", valid until ", stderr);
        put_clean(stderr, get_str(res, "notAfter") ? get_str(res, "notAfter") : "?");
        fputc('\n', stderr);
        rc = 0;
    } else {
        json_t *summary = json_copy(res);
        rc = EXIT_API;
        if (summary) {
            json_object_del(summary, "certificate");
            json_object_del(summary, "chain");
            json_object_del(summary, "pkcs12");
            rc = print_fields(summary, "certificate");
        }
        json_decref(summary);
        if (rc == 0) {
            fputs(p12 ? "PKCS#12 written to " : "Certificate written to ", stdout);
            put_clean(stdout, out);
            fputc('\n', stdout);
            if (a->val[O_CHAIN_OUT]) {
                fputs("Chain written to ", stdout);
                put_clean(stdout, a->val[O_CHAIN_OUT]);
                fputc('\n', stdout);
            }
            if (fflush(stdout) != 0) {
                fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
                rc = EXIT_API;
            }
        }
    }
    if (rc == 0 && json_is_true(json_object_get(res, "validityCapped")))
        fputs("warning: the validity was capped at the issuing CA's expiry\n", stderr);
out:
    if (body) {
        /* wipe our copy of the password inside the request object */
        const char *p = get_str(body, "p12Password");
        if (p)
            OPENSSL_cleanse((char *)p, strlen(p));
    }
    free_secret(pw);
    if (der)
        OPENSSL_cleanse(der, der_len);
    free(der);
    stage_abort(&so);
    stage_abort(&sc);
    buf_free(&chain);
    json_decref(sans);
    json_decref(body);
    json_decref(res);
    free(csr);
    free(path);
    return rc;
}

static const char list_usage[] =
    "cert list CA_ID [--status issued|revoked|suspended] [--profile P] [--search TEXT]\n"
    "            [--serial HEX] [--expires-within 7|30] [--expired] [--limit N] [--all]";

/* Keyset paging: 1 and *cursor replaced when res names a next page, 0 on
 * the last page, -1 (reported) when the server names a page already read
 * (`seen`, a JSON object used as a set of cursors: following it would page
 * forever) or memory runs out. */
static int next_page(const json_t *res, char **cursor, json_t *seen)
{
    const json_t *next = json_object_get(res, "nextCursor");
    if (!json_is_string(next))
        return 0;
    if ((*cursor && strcmp(*cursor, json_string_value(next)) == 0) || json_object_get(seen, json_string_value(next))) {
        fprintf(stderr, "error: the server returned a nextCursor it had returned before\n");
        return -1;
    }
    if (json_object_set_new(seen, json_string_value(next), json_true()) != 0) {
        fprintf(stderr, "error: out of memory\n");
        return -1;
    }
    char *c = strdup(json_string_value(next));
    if (!c) {
        fprintf(stderr, "error: out of memory\n");
        return -1;
    }
    free(*cursor);
    *cursor = c;
    return 1;
}
static int cmd_cert_list(struct ctx *x, const struct args *a, const char *const *argv)
{
    static const struct column cols[] = {
        {"SERIAL", "serialNumber"}, {"STATUS", "status"},      {"SUBJECT", "subject"},
        {"PROFILE", "profileId"},   {"NOT AFTER", "notAfter"},
    };
    int rc = EXIT_API;
    const char *st = a->val[O_STATUS], *within = a->val[O_EXPIRES_WITHIN], *lim = a->val[O_LIMIT];
    char *base = NULL, *path = NULL, *cursor = NULL;
    json_t *res = NULL, *all = NULL, *list, *next = NULL, *seen = NULL;
    int pages = 0;

    if (st && strcmp(st, "issued") && strcmp(st, "revoked") && strcmp(st, "suspended"))
        return usage_error(list_usage, "cert list: --status must be issued, revoked or suspended, not '%s'", st);
    if (within && strcmp(within, "7") && strcmp(within, "30"))
        return usage_error(list_usage, "cert list: --expires-within must be 7 or 30 (days), not '%s'", within);
    if (within && a->seen[O_EXPIRED])
        return usage_error(list_usage, "%s", "cert list: give either --expires-within or --expired");
    if (lim) {
        char *end = NULL;
        long n;
        errno = 0;
        n = strtol(lim, &end, 10);
        if (!*lim || *end || errno || n < 1 || n > 500)
            return usage_error(list_usage, "cert list: --limit must be 1-500, not '%s'", lim);
    }
    base = api_path(x, "/cas/", argv[0], "/certificates", END);
    if (!base || (st && add_query(&base, "status", st) != 0) ||
        (a->val[O_PROFILE] && add_query(&base, "profile", a->val[O_PROFILE]) != 0) ||
        (a->val[O_SEARCH] && add_query(&base, "q", a->val[O_SEARCH]) != 0) ||
        (a->val[O_SERIAL] && add_query(&base, "serial", a->val[O_SERIAL]) != 0) ||
        (within && add_query(&base, "expiresWithin", within) != 0) ||
        (a->seen[O_EXPIRED] && add_query(&base, "expired", "true") != 0) || (lim && add_query(&base, "limit", lim) != 0))
        goto out;
    if (!(all = json_array()) || !(seen = json_object())) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    for (;;) {
        free(path);
        path = strdup(base);
        if (!path || (cursor && add_query(&path, "cursor", cursor) != 0)) {
            fprintf(stderr, "error: out of memory\n");
            rc = EXIT_API;
            goto out;
        }
        json_decref(res);
        res = NULL;
        rc = api_json(x, "GET", path, NULL, &res);
        if (rc)
            goto out;
        rc = EXIT_API;
        list = json_object_get(res, "certificates");
        if (!json_is_array(list)) {
            fprintf(stderr, "error: unexpected response: no \"certificates\" array\n");
            goto out;
        }
        if (json_array_extend(all, list) != 0) {
            fprintf(stderr, "error: out of memory\n");
            goto out;
        }
        next = json_object_get(res, "nextCursor");
        pages++;
        if (!a->seen[O_ALL])
            break;
        int more = next_page(res, &cursor, seen);
        if (more < 0)
            goto out;
        if (more == 0)
            break;
    }
    if (x->json) {
        if (a->seen[O_ALL] && pages > 1) {
            json_t *merged = json_pack("{s:O,s:n}", "certificates", all, "nextCursor");
            rc = merged ? print_json(merged) : EXIT_API;
            json_decref(merged);
        } else {
            rc = print_json(res);
        }
        goto out;
    }
    if (json_array_size(all) == 0) {
        puts("No certificates.");
        rc = 0;
        goto out;
    }
    rc = print_table(all, cols, sizeof(cols) / sizeof(cols[0]));
    if (rc == 0 && json_is_string(next))
        fputs("(more certificates: pass --all to list every page)\n", stderr);
out:
    json_decref(res);
    json_decref(all);
    json_decref(seen);
    free(cursor);
    free(path);
    free(base);
    return rc;
}

static int cmd_cert_show(struct ctx *x, const struct args *a, const char *const *argv)
{
    char *path = api_path(x, "/cas/", argv[0], "/certificates/", argv[1], END);
    int rc = request_and_show(x, "GET", path, NULL, "certificate");
    (void)a;
    free(path);
    return rc;
}

static int cmd_cert_download(struct ctx *x, const struct args *a, const char *const *argv)
{
    static const char u[] = "cert download CA_ID SERIAL [--format pem|der|chain|pkcs7] [-o FILE]";
    const char *fmt = a->val[O_FORMAT] ? a->val[O_FORMAT] : "pem";
    const char *out = a->val[O_OUTPUT];
    int rc = EXIT_API;
    int binary = strcmp(fmt, "der") == 0 || strcmp(fmt, "pkcs7") == 0;
    struct http_response r = {0};
    char *path = NULL;

    if (!binary && strcmp(fmt, "pem") != 0 && strcmp(fmt, "chain") != 0)
        return usage_error(u, "cert download: --format must be pem, der, chain or pkcs7, not '%s'", fmt);
    if (binary && is_stdout(out) && isatty(STDOUT_FILENO))
        return usage_error(u, "cert download: refusing to write %s to a terminal; use -o FILE",
                           strcmp(fmt, "der") == 0 ? "DER" : "PKCS#7");
    path = api_path(x, "/cas/", argv[0], "/certificates/", argv[1], "/download?format=", fmt, END);
    if (!path)
        goto out;
    rc = api(x, "GET", path, NULL, &r);
    if (rc)
        goto out;
    rc = write_output(out, r.body, r.len);
out:
    http_response_free(&r);
    free(path);
    return rc;
}

/* POST .../certificates/SERIAL/<action> and print `msg SERIAL (status ...)`. */
static int cert_status_change(struct ctx *x, const char *const *argv, const char *action, const json_t *body,
                              const char *msg)
{
    int rc = EXIT_API;
    json_t *res = NULL;
    char *path = api_path(x, "/cas/", argv[0], "/certificates/", argv[1], "/", action, END);
    const char *serial, *reason;

    if (!path)
        goto out;
    rc = api_json(x, "POST", path, body, &res);
    if (rc)
        goto out;
    if (x->json) {
        rc = print_json(res);
        goto out;
    }
    serial = get_str(res, "serialNumber");
    reason = get_str(res, "revocationReason");
    fputs(msg, stdout);
    put_clean(stdout, serial ? serial : argv[1]);
    fputs(" (status: ", stdout);
    put_clean(stdout, get_str(res, "status") ? get_str(res, "status") : "?");
    if (reason) {
        fputs(", reason: ", stdout);
        put_clean(stdout, reason);
    }
    fputs(")\n", stdout);
    rc = 0;
    if (fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        rc = EXIT_API;
    }
out:
    json_decref(res);
    free(path);
    return rc;
}

static int cmd_cert_revoke(struct ctx *x, const struct args *a, const char *const *argv)
{
    static const char u[] = "cert revoke CA_ID SERIAL [--reason REASON] [--invalidity-date RFC3339]";
    static const char *const reasons[] = {"unspecified",          "keyCompromise",     "cACompromise",
                                          "affiliationChanged",   "superseded",        "cessationOfOperation",
                                          "privilegeWithdrawn",   "aACompromise"};
    const char *reason = a->val[O_REASON];
    int rc = EXIT_API;
    json_t *body = NULL;

    if (reason) {
        size_t i;
        for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
            if (strcmp(reasons[i], reason) == 0)
                break;
        if (i == sizeof(reasons) / sizeof(reasons[0]))
            return usage_error(u,
                               "cert revoke: unknown --reason '%s' (unspecified, keyCompromise, cACompromise, "
                               "affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, "
                               "aACompromise)",
                               reason);
    }
    if (!(body = json_object())) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    if ((reason && set_str(body, "reason", reason) != 0) ||
        (a->val[O_INVALIDITY_DATE] && set_str(body, "invalidityDate", a->val[O_INVALIDITY_DATE]) != 0))
        goto out;
    rc = cert_status_change(x, argv, "revoke", body, "Revoked certificate ");
out:
    json_decref(body);
    return rc;
}

/* ---- cert revoke-bulk ----------------------------------------------------- */

static const char revoke_bulk_usage[] =
    "cert revoke-bulk --ca CA_ID (--serials FILE | --subject DN | --profile P | --issued-before DATE)...\n"
    "            --reason REASON [--invalidity-date RFC3339] [--publish-now] [--batch N]\n"
    "            [--report FILE.csv] [--state FILE] [--yes]";

#define BULK_BATCH_DEFAULT 500
#define BULK_BATCH_MAX 1000
#define BULK_LIST_PAGE "500"
#define BULK_MAX_SERIAL_FILE ((size_t)512 * 1024 * 1024)
#define BULK_SERIAL_MAX 42 /* hex digits the server accepts (21 octets) */
#define BULK_RETRIES 3
#define EXIT_INTERRUPTED 130

static const char *const revocation_reasons[] = {"unspecified",        "keyCompromise", "cACompromise",
                                                 "affiliationChanged", "superseded",    "cessationOfOperation",
                                                 "privilegeWithdrawn", "aACompromise"};

struct bulk_item {
    char *orig;                       /* as written in the input (or as listed) */
    char norm[BULK_SERIAL_MAX + 4];   /* minimal lowercase hex, the server's form */
};

struct bulk_list {
    struct bulk_item *v;
    size_t n, cap;
};

struct bulk_counts {
    long long revoked, already, not_found, failed;
};

static volatile sig_atomic_t bulk_stop;

static void bulk_on_signal(int sig)
{
    static const char msg[] = "\npkiaas: interrupted; stopping after the current batch (again to abort now)\n";
    if (bulk_stop) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    bulk_stop = 1;
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)ignored;
}

static void bulk_list_free(struct bulk_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].orig);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Canonical form of a hex serial: optional 0x prefix and ':' separators
 * dropped, lowercase, leading zeros removed, then the DER-minimal octets
 * (even length, "00" in front when the top bit is set) - what the server
 * stores. -1 when `s` is not a hex serial the server could hold. */
static int serial_canon(const char *s, size_t len, char out[BULK_SERIAL_MAX + 4])
{
    char digits[128];
    size_t n = 0, i = 0, start;

    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        i = 2;
    for (; i < len; i++) {
        char c = s[i];
        if (c == ':')
            continue;
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || n >= sizeof(digits) - 1)
            return -1;
        digits[n++] = c;
    }
    for (start = 0; start < n && digits[start] == '0'; start++)
        ;
    if (start == n)
        return -1; /* zero (or nothing) is never a certificate serial */
    n -= start;
    size_t pad = n % 2 ? 1 : digits[start] >= '8' ? 2 : 0; /* even length; "00" keeps it positive */
    if (n + pad > BULK_SERIAL_MAX)
        return -1;
    memset(out, '0', pad);
    memcpy(out + pad, digits + start, n);
    out[pad + n] = 0;
    return 0;
}

static int bulk_push(struct bulk_list *l, const char *orig, size_t len, const char *norm)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct bulk_item *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n].orig = strndup(orig, len)))
        return -1;
    snprintf(l->v[l->n].norm, sizeof(l->v[l->n].norm), "%s", norm);
    l->n++;
    return 0;
}

static int cmp_norm_ptr(const void *a, const void *b)
{
    const struct bulk_item *const *x = a, *const *y = b;
    int c = strcmp((*x)->norm, (*y)->norm);
    return c ? c : (*x < *y ? -1 : *x > *y);
}

/* Drops later duplicates (same canonical serial), keeping input order.
 * Returns the number dropped, -1 on allocation failure. */
static long bulk_dedupe(struct bulk_list *l)
{
    struct bulk_item **idx;
    size_t i, w = 0;
    long dropped = 0;

    if (l->n < 2)
        return 0;
    if (!(idx = malloc(l->n * sizeof(*idx))))
        return -1;
    for (i = 0; i < l->n; i++)
        idx[i] = &l->v[i];
    qsort(idx, l->n, sizeof(*idx), cmp_norm_ptr);
    for (i = 1; i < l->n; i++)
        if (strcmp(idx[i]->norm, idx[i - 1]->norm) == 0) {
            free(idx[i]->orig); /* sorted by address within equal keys: the first occurrence stays */
            idx[i]->orig = NULL;
            dropped++;
        }
    free(idx);
    for (i = 0; i < l->n; i++)
        if (l->v[i].orig)
            l->v[w++] = l->v[i];
    l->n = w;
    return dropped;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reads one hex serial per line; blank lines and '#' comments are skipped. */
static int bulk_read_serials(const char *path, struct bulk_list *l)
{
    struct buf b;
    int rc = EXIT_API;
    char norm[BULK_SERIAL_MAX + 4];
    const char *p, *end;
    long lineno = 0;

    buf_init(&b, BULK_MAX_SERIAL_FILE);
    if (read_file(path, &b) != 0)
        goto out;
    p = (const char *)b.data;
    end = p + b.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *s = p, *e;
        const char *hash = memchr(p, '#', (size_t)(le - p));
        lineno++;
        e = hash ? hash : le;
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (e > s) {
            if (serial_canon(s, (size_t)(e - s), norm) != 0) {
                int shown = e - s > 60 ? 60 : (int)(e - s);
                fprintf(stderr, "error: %s:%ld: not a certificate serial number (hex): '",
                        strcmp(path, "-") ? path : "stdin", lineno);
                for (int k = 0; k < shown; k++)
                    fputc((unsigned char)s[k] < 0x20 || s[k] == 0x7f ? '?' : s[k], stderr);
                fputs("'\n", stderr);
                goto out;
            }
            if (bulk_push(l, s, (size_t)(e - s), norm) != 0) {
                fprintf(stderr, "error: out of memory\n");
                goto out;
            }
        }
        p = nl ? nl + 1 : end;
    }
    rc = 0;
out:
    buf_free(&b);
    return rc;
}

/* "YYYY-MM-DD" (midnight UTC) or RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)". */
static int parse_date(const char *s, time_t *out)
{
    int64_t t;
    if (time_parse_rfc3339(s, &t) != 0)
        return -1;
    *out = (time_t)t;
    return 0;
}

/* A DN with spaces after separators and around '=' dropped and attribute
 * types upper-cased, so "cn=a, O=b" and "CN=a,O=b" compare equal. */
static char *dn_canon(const char *s)
{
    size_t n = strlen(s), w = 0;
    char *o = malloc(n + 1);
    int in_type = 1;

    if (!o)
        return NULL;
    while (*s == ' ')
        s++;
    for (; *s; s++) {
        char c = *s;
        if (in_type) {
            if (c == ' ')
                continue;
            if (c == '=') {
                in_type = 0;
                o[w++] = '=';
                while (s[1] == ' ')
                    s++;
                continue;
            }
            o[w++] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
            continue;
        }
        if (c == '\\' && s[1]) {
            o[w++] = c;
            o[w++] = *++s;
            continue;
        }
        if (c == ',' || c == '+') {
            while (w > 0 && o[w - 1] == ' ' && !(w > 1 && o[w - 2] == '\\'))
                w--;
            o[w++] = c;
            in_type = 1;
            continue;
        }
        o[w++] = c;
    }
    while (w > 0 && o[w - 1] == ' ' && !(w > 1 && o[w - 2] == '\\'))
        w--;
    o[w] = 0;
    return o;
}

/* Search text for ?q=: the CN value (or the first value) up to any escape. */
static char *dn_search_text(const char *dn)
{
    const char *v = NULL, *p;
    for (p = dn; *p; p++) {
        if ((p == dn || p[-1] == ',' || p[-1] == ' ' || p[-1] == '+') && strncasecmp(p, "CN", 2) == 0) {
            const char *q = p + 2;
            while (*q == ' ')
                q++;
            if (*q == '=') {
                v = q + 1;
                break;
            }
        }
    }
    if (!v)
        v = strchr(dn, '=') ? strchr(dn, '=') + 1 : dn;
    while (*v == ' ')
        v++;
    size_t n = strcspn(v, ",+\\");
    while (n > 0 && v[n - 1] == ' ')
        n--;
    if (n > 256)
        n = 256;
    return strndup(v, n);
}

struct bulk_opts {
    const char *ca, *serials, *subject, *profile, *before_text, *reason, *inval, *report, *state;
    char *subject_canon;
    time_t before;
    int publish, yes, batch;
};

/* Appends the CA's issued and suspended end-entity certificates that pass
 * every list selector to *l (GET .../certificates, all pages). */
static int bulk_list_certs(struct ctx *x, const struct bulk_opts *o, struct bulk_list *l)
{
    static const char *const statuses[] = {"issued", "suspended"};
    int rc = EXIT_API;
    char *base = NULL, *path = NULL, *cursor = NULL, *q = NULL;
    json_t *res = NULL, *seen = NULL;
    char norm[BULK_SERIAL_MAX + 4];

    if (o->subject && !(q = dn_search_text(o->subject))) {
        fprintf(stderr, "error: out of memory\n");
        return EXIT_API;
    }
    for (size_t si = 0; si < sizeof(statuses) / sizeof(statuses[0]); si++) {
        free(base);
        base = api_path(x, "/cas/", o->ca, "/certificates", END);
        if (!base || add_query(&base, "status", statuses[si]) != 0 || add_query(&base, "limit", BULK_LIST_PAGE) != 0 ||
            add_query(&base, "includeCa", "false") != 0 ||
            (o->profile && add_query(&base, "profile", o->profile) != 0) ||
            (q && *q && add_query(&base, "q", q) != 0))
            goto out;
        free(cursor);
        cursor = NULL;
        json_decref(seen);
        if (!(seen = json_object())) {
            fprintf(stderr, "error: out of memory\n");
            goto out;
        }
        for (;;) {
            json_t *list, *c;
            size_t i;
            free(path);
            path = strdup(base);
            if (!path || (cursor && add_query(&path, "cursor", cursor) != 0)) {
                fprintf(stderr, "error: out of memory\n");
                goto out;
            }
            json_decref(res);
            res = NULL;
            if ((rc = api_json(x, "GET", path, NULL, &res)) != 0)
                goto out;
            rc = EXIT_API;
            list = json_object_get(res, "certificates");
            if (!json_is_array(list)) {
                fprintf(stderr, "error: unexpected response: no \"certificates\" array\n");
                goto out;
            }
            json_array_foreach(list, i, c) {
                const char *sn = get_str(c, "serialNumber"), *prof = get_str(c, "profileId");
                if (!sn || json_is_true(json_object_get(c, "isCa")))
                    continue;
                if (o->profile ? !prof || strcmp(prof, o->profile) != 0 : prof && strcmp(prof, "ocsp-responder") == 0)
                    continue; /* OCSP responder certificates only when asked for by profile */
                if (o->subject_canon) {
                    const char *subj = get_str(c, "subject");
                    char *cs = subj ? dn_canon(subj) : NULL;
                    int same = cs && strcmp(cs, o->subject_canon) == 0;
                    free(cs);
                    if (!same)
                        continue;
                }
                if (o->before_text) {
                    time_t nb;
                    const char *nbs = get_str(c, "notBefore");
                    if (!nbs || parse_date(nbs, &nb) != 0 || nb >= o->before)
                        continue;
                }
                if (serial_canon(sn, strlen(sn), norm) != 0)
                    continue;
                if (bulk_push(l, sn, strlen(sn), norm) != 0) {
                    fprintf(stderr, "error: out of memory\n");
                    goto out;
                }
            }
            int more = next_page(res, &cursor, seen);
            if (more < 0)
                goto out;
            if (more == 0)
                break;
        }
    }
    rc = 0;
out:
    json_decref(res);
    json_decref(seen);
    free(q);
    free(cursor);
    free(path);
    free(base);
    return rc;
}

/* SHA-256 (hex) over the lines given; the caller frees. */
static char *bulk_digest(const char *const *parts, size_t nparts, const struct bulk_list *l)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[32];
    unsigned int dl = 0;
    char *hex = NULL;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;

    for (size_t i = 0; ok && i < nparts; i++)
        ok = EVP_DigestUpdate(md, parts[i] ? parts[i] : "\x01", strlen(parts[i] ? parts[i] : "\x01") + 1) == 1;
    for (size_t i = 0; ok && l && i < l->n; i++)
        ok = EVP_DigestUpdate(md, l->v[i].norm, strlen(l->v[i].norm) + 1) == 1;
    if (ok && EVP_DigestFinal_ex(md, d, &dl) == 1)
        hex = hex_encode(d, dl);
    EVP_MD_CTX_free(md);
    if (!hex)
        fprintf(stderr, "error: cannot compute a checksum\n");
    return hex;
}

/* Writes `j` to `path` atomically (temporary file, fsync, rename). */
static int write_json_atomic(const char *path, const json_t *j)
{
    struct buf b;
    char *tmp = NULL;
    int fd = -1, rc = -1;
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    buf_init(&b, 0);
    if (!text || buf_printf(&b, "%s.tmp", path) != 0 || !(tmp = (char *)buf_take(&b, NULL)))
        goto out;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto out;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto out;
        off += (size_t)w;
    }
    if (write(fd, "\n", 1) != 1 || fsync(fd) != 0)
        goto out;
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "error: cannot write '%s': %s\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (rc != 0 && tmp)
        unlink(tmp);
    free(tmp);
    free(text);
    buf_free(&b);
    return rc;
}

static int write_snapshot(const char *path, const struct bulk_list *l)
{
    int rc = -1;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l->n; i++)
        if (json_array_append_new(arr, json_string(l->v[i].norm)) != 0)
            goto out;
    if (arr) {
        json_t *o = json_pack("{s:i,s:O}", "version", 1, "serials", arr);
        rc = o ? write_json_atomic(path, o) : -1;
        json_decref(o);
    }
out:
    json_decref(arr);
    return rc;
}

static int read_snapshot(const char *path, struct bulk_list *l)
{
    json_error_t err;
    json_t *o = json_load_file(path, 0, &err), *arr = json_object_get(o, "serials"), *v;
    size_t i;
    int rc = -1;
    char norm[BULK_SERIAL_MAX + 4];

    if (!json_is_array(arr)) {
        fprintf(stderr, "error: cannot read the selection snapshot '%s'\n", path);
        goto out;
    }
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        if (!s || serial_canon(s, strlen(s), norm) != 0 || bulk_push(l, s, strlen(s), norm) != 0) {
            fprintf(stderr, "error: the selection snapshot '%s' is damaged\n", path);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static void bulk_progress(size_t done, size_t total, const struct bulk_counts *c)
{
    char bar[31];
    size_t fill = total ? done * 30 / total : 30;
    memset(bar, '#', fill);
    memset(bar + fill, ' ', 30 - fill);
    bar[30] = 0;
    fprintf(stderr, "\r[%s] %zu/%zu revoked %lld already %lld not found %lld failed %lld", bar, done, total,
            c->revoked, c->already, c->not_found, c->failed);
    fflush(stderr);
}

/* Asks on the terminal; 1 yes, 0 no, -1 no terminal to ask on. */
static int bulk_confirm(size_t n, const char *ca, const char *reason, size_t skipped, int stdin_used)
{
    FILE *in = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;

    if (!stdin_used && isatty(STDIN_FILENO))
        in = stdin;
    else if (isatty(STDERR_FILENO))
        in = fopen("/dev/tty", "r");
    if (!in)
        return -1;
    fprintf(stderr, "Revoke %zu certificate%s of CA '", n, n == 1 ? "" : "s");
    put_clean(stderr, ca);
    fprintf(stderr, "' (reason %s)", reason);
    if (skipped)
        fprintf(stderr, ", %zu already processed earlier", skipped);
    fputs("? Revocation is final. [y/N] ", stderr);
    fflush(stderr);
    got = getline(&line, &cap, in);
    if (got > 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        rc = strcasecmp(line, "y") == 0 || strcasecmp(line, "yes") == 0;
    }
    free(line);
    if (in != stdin)
        fclose(in);
    return rc;
}

/* One batch through POST .../revoke-batch, retried on transport errors, 429,
 * 5xx and a batch whose transaction failed as a whole. results[i] receives
 * 0 revoked, 1 already revoked, 2 not found, 3 failed. */
static int bulk_send(struct ctx *x, const struct bulk_opts *o, const char *path, const struct bulk_item *items,
                     size_t n, int *results)
{
    static const char *const names[] = {"revoked", "already_revoked", "not_found", "failed"};
    json_t *body = json_object(), *arr = json_array();
    char *req = NULL;
    int rc = EXIT_API;

    if (!body || !arr || json_object_set(body, "serials", arr) != 0 ||
        json_object_set_new(body, "reason", json_string(o->reason)) != 0 ||
        (o->inval && json_object_set_new(body, "invalidityDate", json_string(o->inval)) != 0) ||
        json_object_set_new(body, "publishNow", json_false()) != 0)
        goto oom;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(arr, json_string(items[i].norm)) != 0)
            goto oom;
    if (!(req = json_dumps(body, JSON_COMPACT)))
        goto oom;
    for (int attempt = 0;; attempt++) {
        struct http_response r = {0};
        int hr = http_request(&x->conn, "POST", path, req, &r);
        int retry = 0;
        if (hr == HTTP_ERR_TRANSPORT) {
            rc = EXIT_CONN;
            retry = 1;
        } else if (hr != HTTP_OK) {
            rc = EXIT_API;
        } else if (r.status == 429 || r.status >= 500) {
            report_http_error(&r);
            rc = EXIT_API;
            retry = 1;
        } else if (r.status != 200) {
            report_http_error(&r);
            rc = EXIT_API;
        } else {
            json_t *res = json_loadb((const char *)r.body, r.len, 0, NULL);
            json_t *ra = json_object_get(res, "results"), *v;
            size_t i, nfailed = 0;
            rc = EXIT_API;
            if (!json_is_array(ra) || json_array_size(ra) != n) {
                fprintf(stderr, "error: unexpected revoke-batch response (no result per serial)\n");
            } else {
                rc = 0;
                json_array_foreach(ra, i, v) {
                    const char *s = get_str(v, "result");
                    int k = 3;
                    for (int m = 0; s && m < 4; m++)
                        if (strcmp(s, names[m]) == 0)
                            k = m;
                    results[i] = k;
                    nfailed += k == 3;
                }
                /* the whole transaction failed: nothing changed, try again */
                retry = nfailed == n && attempt < BULK_RETRIES;
            }
            json_decref(res);
        }
        http_response_free(&r);
        if (!retry || attempt >= BULK_RETRIES || bulk_stop)
            break;
        fprintf(stderr, "warning: batch failed; retrying in %d s\n", 1 << attempt);
        sleep(1u << attempt);
    }
    goto out;
oom:
    fprintf(stderr, "error: out of memory\n");
out:
    free(req);
    json_decref(arr);
    json_decref(body);
    return rc;
}

static int bulk_print_summary(const struct ctx *x, const struct bulk_counts *c, size_t selected, size_t processed,
                              int published, int interrupted)
{
    if (x->json) {
        json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:b}", "selected", (json_int_t)selected, "processed",
                              (json_int_t)processed, "revoked", (json_int_t)c->revoked, "alreadyRevoked",
                              (json_int_t)c->already, "notFound", (json_int_t)c->not_found, "failed",
                              (json_int_t)c->failed, "crlPublished", published, "interrupted", interrupted);
        int rc = j ? print_json(j) : EXIT_API;
        json_decref(j);
        return rc;
    }
    printf("revoked %lld, already revoked %lld, not found %lld, failed %lld\n", c->revoked, c->already, c->not_found,
           c->failed);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        return EXIT_API;
    }
    return 0;
}

static json_int_t jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static int cmd_cert_revoke_bulk(struct ctx *x, const struct args *a, const char *const *argv)
{
    const char *u = revoke_bulk_usage;
    struct bulk_opts o;
    struct bulk_list l = {0};
    struct bulk_counts c = {0, 0, 0, 0};
    char *state_owned = NULL, *snap_path = NULL, *selection = NULL, *source = NULL, *batch_path = NULL;
    char *crl_path = NULL;
    json_t *st = NULL;
    FILE *rep = NULL;
    int *results = NULL;
    int rc = EXIT_API, interrupted = 0, published = 0, tty = isatty(STDERR_FILENO), list_mode;
    size_t done = 0, i;
    long long batches_done = 0;
    long report_bytes = 0;
    struct sigaction sa, old_int, old_term;
    int handlers = 0;

    (void)argv;
    memset(&o, 0, sizeof(o));
    o.ca = a->val[O_CA];
    o.serials = a->val[O_SERIALS];
    o.subject = a->val[O_SUBJECT];
    o.profile = a->val[O_PROFILE];
    o.before_text = a->val[O_ISSUED_BEFORE];
    o.reason = a->val[O_REASON];
    o.inval = a->val[O_INVALIDITY_DATE];
    o.report = a->val[O_REPORT];
    o.state = a->val[O_STATE];
    o.publish = a->seen[O_PUBLISH_NOW];
    o.yes = a->seen[O_YES];
    o.batch = BULK_BATCH_DEFAULT;

    if (!o.ca || !*o.ca)
        return usage_error(u, "%s", "cert revoke-bulk: --ca is required");
    if (!o.serials && !o.subject && !o.profile && !o.before_text)
        return usage_error(u, "%s",
                           "cert revoke-bulk: select certificates with --serials, --subject, --profile or "
                           "--issued-before");
    if (!o.reason)
        return usage_error(u, "%s", "cert revoke-bulk: --reason is required");
    for (i = 0; i < sizeof(revocation_reasons) / sizeof(revocation_reasons[0]); i++)
        if (strcmp(revocation_reasons[i], o.reason) == 0)
            break;
    if (i == sizeof(revocation_reasons) / sizeof(revocation_reasons[0]))
        return usage_error(u,
                           "cert revoke-bulk: unknown --reason '%s' (unspecified, keyCompromise, cACompromise, "
                           "affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, aACompromise)",
                           o.reason);
    if (a->val[O_BATCH]) {
        char *end = NULL;
        long n;
        errno = 0;
        n = strtol(a->val[O_BATCH], &end, 10);
        if (!*a->val[O_BATCH] || *end || errno || n < 1 || n > BULK_BATCH_MAX)
            return usage_error(u, "cert revoke-bulk: --batch must be 1-%d, not '%s'", BULK_BATCH_MAX, a->val[O_BATCH]);
        o.batch = (int)n;
    }
    if (o.before_text && parse_date(o.before_text, &o.before) != 0)
        return usage_error(u, "cert revoke-bulk: --issued-before must be YYYY-MM-DD or RFC 3339, not '%s'",
                           o.before_text);
    if (o.inval) {
        time_t t;
        if (strlen(o.inval) <= 10 || parse_date(o.inval, &t) != 0)
            return usage_error(u, "cert revoke-bulk: --invalidity-date must be RFC 3339, not '%s'", o.inval);
    }
    if (o.subject && !*o.subject)
        return usage_error(u, "%s", "cert revoke-bulk: --subject must not be empty");
    if (o.report && (!*o.report || strcmp(o.report, "-") == 0))
        return usage_error(u, "%s", "cert revoke-bulk: --report needs a file name");
    if (!o.state && o.report) {
        struct buf b;
        buf_init(&b, 0);
        if (buf_printf(&b, "%s.state", o.report) != 0 || !(state_owned = (char *)buf_take(&b, NULL))) {
            buf_free(&b);
            fprintf(stderr, "error: out of memory\n");
            return EXIT_API;
        }
        buf_free(&b);
        o.state = state_owned;
    }
    if (o.state && !*o.state)
        return usage_error(u, "%s", "cert revoke-bulk: --state needs a file name");
    if (!o.yes && !(o.serials && strcmp(o.serials, "-") == 0 ? isatty(STDERR_FILENO) : isatty(STDIN_FILENO) ||
                                                                                      isatty(STDERR_FILENO))) {
        rc = usage_error(u, "%s", "cert revoke-bulk: not on a terminal: pass --yes to revoke without confirmation");
        goto out;
    }
    if (o.subject && !(o.subject_canon = dn_canon(o.subject))) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    list_mode = o.subject || o.profile || o.before_text;
    { /* the CA must exist (and be visible to this token) before anything else */
        json_t *ca = NULL;
        char *ca_path = api_path(x, "/cas/", o.ca, END);
        rc = ca_path ? api_json(x, "GET", ca_path, NULL, &ca) : EXIT_API;
        json_decref(ca);
        free(ca_path);
        if (rc)
            goto out;
        rc = EXIT_API;
    }

    /* What is being selected: the CA, the selectors and (for a file) its serials. */
    if (o.serials && (rc = bulk_read_serials(o.serials, &l)) != 0)
        goto out;
    rc = EXIT_API;
    {
        char btxt[32];
        snprintf(btxt, sizeof(btxt), "%lld", (long long)o.before);
        const char *parts[] = {"pkiaas revoke-bulk v1", o.ca,  o.serials ? "serials" : NULL, o.subject_canon,
                               o.profile,                o.before_text ? btxt : NULL};
        if (!(selection = bulk_digest(parts, sizeof(parts) / sizeof(parts[0]), &l)))
            goto out;
    }
    if (o.state) {
        struct buf b;
        buf_init(&b, 0);
        if (buf_printf(&b, "%s.serials", o.state) != 0 || !(snap_path = (char *)buf_take(&b, NULL))) {
            buf_free(&b);
            fprintf(stderr, "error: out of memory\n");
            goto out;
        }
        buf_free(&b);
        if (access(o.state, F_OK) == 0) {
            json_error_t err;
            if (!(st = json_load_file(o.state, 0, &err)) || !json_is_object(st) || jint(st, "version") != 1) {
                fprintf(stderr, "error: cannot read the state file '%s'; remove it to start over\n", o.state);
                goto out;
            }
            if (!get_str(st, "selection") || strcmp(get_str(st, "selection"), selection) != 0) {
                fprintf(stderr,
                        "error: the state file '%s' belongs to another selection (CA, selectors or serial list); "
                        "remove it or pass another --state\n",
                        o.state);
                rc = EXIT_USAGE;
                goto out;
            }
        }
    }
    if (st && list_mode) {
        /* the list as selected the first time (listing again would miss what was revoked since) */
        struct bulk_list snap = {0};
        if (read_snapshot(snap_path, &snap) != 0) {
            bulk_list_free(&snap);
            goto out;
        }
        bulk_list_free(&l);
        l = snap;
    } else if (list_mode) {
        struct bulk_list listed = {0};
        if ((rc = bulk_list_certs(x, &o, &listed)) != 0) {
            bulk_list_free(&listed);
            goto out;
        }
        rc = EXIT_API;
        if (o.serials) { /* intersection with the file, in the file's order */
            const char **keys = malloc((listed.n ? listed.n : 1) * sizeof(*keys));
            size_t w = 0;
            if (!keys) {
                bulk_list_free(&listed);
                fprintf(stderr, "error: out of memory\n");
                goto out;
            }
            for (i = 0; i < listed.n; i++)
                keys[i] = listed.v[i].norm;
            qsort(keys, listed.n, sizeof(*keys), cmp_str_ptr);
            for (i = 0; i < l.n; i++) {
                const char *k = l.v[i].norm;
                if (listed.n && bsearch(&k, keys, listed.n, sizeof(*keys), cmp_str_ptr))
                    l.v[w++] = l.v[i];
                else
                    free(l.v[i].orig);
            }
            l.n = w;
            free(keys);
            bulk_list_free(&listed);
        } else {
            bulk_list_free(&l);
            l = listed;
        }
    }
    {
        long dropped = bulk_dedupe(&l);
        if (dropped < 0) {
            fprintf(stderr, "error: out of memory\n");
            goto out;
        }
        if (dropped > 0 && !st)
            fprintf(stderr, "note: %ld duplicate serial%s ignored\n", dropped, dropped == 1 ? "" : "s");
    }
    if (!(source = bulk_digest(NULL, 0, &l)))
        goto out;
    if (st) {
        const char *ss = get_str(st, "source");
        json_int_t p = jint(st, "processed");
        if (!ss || strcmp(ss, source) != 0 || p < 0 || (size_t)p > l.n || jint(st, "total") != (json_int_t)l.n) {
            fprintf(stderr, "error: the state file '%s' does not match the selected serials; remove it to start over\n",
                    o.state);
            goto out;
        }
        done = (size_t)p;
        batches_done = jint(st, "batchesCompleted");
        report_bytes = (long)jint(st, "reportBytes");
        json_t *sm = json_object_get(st, "summary");
        c.revoked = jint(sm, "revoked");
        c.already = jint(sm, "alreadyRevoked");
        c.not_found = jint(sm, "notFound");
        c.failed = jint(sm, "failed");
        published = json_is_true(json_object_get(st, "crlPublished"));
        fprintf(stderr, "resuming after %zu serials (%lld batches)\n", done, batches_done);
    }

    if (done < l.n && !o.yes) {
        int ok = bulk_confirm(l.n - done, o.ca, o.reason, done, o.serials && strcmp(o.serials, "-") == 0);
        if (ok < 0) {
            rc = usage_error(u, "%s", "cert revoke-bulk: not on a terminal: pass --yes to revoke without confirmation");
            goto out;
        }
        if (!ok) {
            fputs("Cancelled.\n", stderr);
            rc = EXIT_API;
            goto out;
        }
    }

    /* Report: a fresh file, or the resumed one cut back to the last recorded batch. */
    if (o.report) {
        if (st) {
            if (truncate(o.report, report_bytes) != 0 || !(rep = fopen(o.report, "a"))) {
                fprintf(stderr, "error: cannot reopen the report '%s': %s\n", o.report, strerror(errno));
                goto out;
            }
        } else {
            if (!(rep = fopen(o.report, "w")) || fputs("serial,result\n", rep) == EOF || fflush(rep) != 0) {
                fprintf(stderr, "error: cannot write the report '%s': %s\n", o.report, strerror(errno));
                goto out;
            }
            report_bytes = ftell(rep);
        }
    }
    if (o.state && !st) {
        if (list_mode && write_snapshot(snap_path, &l) != 0)
            goto out;
        if (!(st = json_object()))
            goto out;
    }

    /* Ctrl-C / SIGTERM stop between batches, so the state stays consistent. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = bulk_on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    handlers = 1;
    bulk_stop = 0;

    batch_path = api_path(x, "/cas/", o.ca, "/certificates/revoke-batch", END);
    results = calloc((size_t)o.batch, sizeof(*results));
    if (!batch_path || !results) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    if (tty && l.n)
        bulk_progress(done, l.n, &c);
    rc = 0;
    while (done < l.n) {
        size_t n = l.n - done < (size_t)o.batch ? l.n - done : (size_t)o.batch;
        if (bulk_stop) {
            interrupted = 1;
            break;
        }
        rc = bulk_send(x, &o, batch_path, l.v + done, n, results);
        if (rc) {
            if (tty)
                fputc('\n', stderr);
            fprintf(stderr, "error: stopped after %zu of %zu serials; run the same command again to resume\n", done,
                    l.n);
            break;
        }
        for (i = 0; i < n; i++) {
            static const char *const names[] = {"revoked", "already_revoked", "not_found", "failed"};
            c.revoked += results[i] == 0;
            c.already += results[i] == 1;
            c.not_found += results[i] == 2;
            c.failed += results[i] == 3;
            if (rep)
                fprintf(rep, "%s,%s\n", l.v[done + i].orig, names[results[i]]);
        }
        if (rep) {
            if (fflush(rep) != 0 || fsync(fileno(rep)) != 0) {
                fprintf(stderr, "error: cannot write the report '%s': %s\n", o.report, strerror(errno));
                rc = EXIT_API;
                break;
            }
            report_bytes = ftell(rep);
        }
        done += n;
        batches_done++;
        if (st) {
            json_t *sm = json_pack("{s:I,s:I,s:I,s:I}", "revoked", (json_int_t)c.revoked, "alreadyRevoked",
                                   (json_int_t)c.already, "notFound", (json_int_t)c.not_found, "failed",
                                   (json_int_t)c.failed);
            if (!sm || json_object_set_new(st, "version", json_integer(1)) != 0 ||
                json_object_set_new(st, "ca", json_string(o.ca)) != 0 ||
                json_object_set_new(st, "selection", json_string(selection)) != 0 ||
                json_object_set_new(st, "source", json_string(source)) != 0 ||
                json_object_set_new(st, "total", json_integer((json_int_t)l.n)) != 0 ||
                json_object_set_new(st, "batchSize", json_integer(o.batch)) != 0 ||
                json_object_set_new(st, "batchesCompleted", json_integer(batches_done)) != 0 ||
                json_object_set_new(st, "processed", json_integer((json_int_t)done)) != 0 ||
                json_object_set_new(st, "reportBytes", json_integer(report_bytes)) != 0 ||
                json_object_set_new(st, "summary", sm) != 0 ||
                json_object_set_new(st, "complete", json_boolean(done == l.n)) != 0 ||
                json_object_set_new(st, "crlPublished", json_false()) != 0 || write_json_atomic(o.state, st) != 0) {
                rc = EXIT_API;
                break;
            }
        }
        if (tty)
            bulk_progress(done, l.n, &c);
    }
    if (tty && l.n && !rc)
        fputc('\n', stderr);
    if (rc == 0 && !interrupted && bulk_stop && done < l.n)
        interrupted = 1;

    /* One CRL publication for the whole job. */
    if (rc == 0 && !interrupted && o.publish && !published && l.n > 0) {
        json_t *res = NULL;
        crl_path = api_path(x, "/cas/", o.ca, "/crl", END);
        if (!crl_path || (rc = api_json(x, "POST", crl_path, NULL, &res)) != 0) {
            fprintf(stderr, "error: the CRL was not published; run the same command again to retry\n");
            if (!rc)
                rc = EXIT_API;
        } else {
            published = 1;
            if (st &&
                (json_object_set_new(st, "crlPublished", json_true()) != 0 || write_json_atomic(o.state, st) != 0))
                rc = EXIT_API;
        }
        json_decref(res);
    }
    if (interrupted)
        fprintf(stderr, "interrupted after %zu of %zu serials%s\n", done, l.n,
                o.state ? "; run the same command again to resume" : " (no --state: a re-run starts over)");
    {
        int prc = bulk_print_summary(x, &c, l.n, done, published, interrupted);
        if (rc == 0)
            rc = prc;
    }
    if (rc == 0)
        rc = interrupted ? EXIT_INTERRUPTED : c.failed ? EXIT_API : 0;
out:
    if (handlers) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    if (rep && fclose(rep) != 0 && rc == 0) {
        fprintf(stderr, "error: cannot write the report '%s': %s\n", o.report, strerror(errno));
        rc = EXIT_API;
    }
    free(results);
    free(crl_path);
    free(batch_path);
    json_decref(st);
    free(source);
    free(selection);
    free(snap_path);
    free(state_owned);
    free(o.subject_canon);
    bulk_list_free(&l);
    return rc;
}

static int cmd_cert_suspend(struct ctx *x, const struct args *a, const char *const *argv)
{
    (void)a;
    return cert_status_change(x, argv, "suspend", NULL, "Suspended certificate ");
}

static int cmd_cert_unsuspend(struct ctx *x, const struct args *a, const char *const *argv)
{
    (void)a;
    return cert_status_change(x, argv, "unsuspend", NULL, "Reinstated certificate ");
}

/* ---- enrollment protocol configurations ---------------------------------- */

static int cmd_protocol_list(struct ctx *x, const struct args *a, const char *const *argv)
{
    char *path = api_path(x, "/protocols", END);
    int rc = request_and_show(x, "GET", path, NULL, "protocols");
    (void)a;
    (void)argv;
    free(path);
    return rc;
}

static int cmd_protocol_show(struct ctx *x, const struct args *a, const char *const *argv)
{
    char *path = api_path(x, "/protocols/", argv[0], END);
    int rc = request_and_show(x, "GET", path, NULL, "protocol");
    (void)a;
    free(path);
    return rc;
}

static const char protocol_create_usage[] = "protocol create --json-file FILE   (the configuration: id, type, caId, "
                                            "profileId and the type's settings; see docs/api.md)";

static int cmd_protocol_create(struct ctx *x, const struct args *a, const char *const *argv)
{
    json_t *body = NULL;
    int rc;
    (void)argv;
    if (!a->val[O_JSON_FILE])
        return usage_error(protocol_create_usage, "%s", "protocol create: --json-file is required");
    if ((rc = load_json_object(a->val[O_JSON_FILE], &body)) != 0)
        return rc;
    char *path = api_path(x, "/protocols", END);
    rc = request_and_show(x, "POST", path, body, "protocol");
    free(path);
    json_decref(body);
    return rc;
}

static int cmd_protocol_delete(struct ctx *x, const struct args *a, const char *const *argv)
{
    char *path = api_path(x, "/protocols/", argv[0], END);
    int rc = request_and_show(x, "DELETE", path, NULL, "protocol");
    (void)a;
    free(path);
    return rc;
}

/* EAB keys (ACME) and credentials (SCEP challenges, EST/MDM users, CMP
 * references): the secret in the answer is shown once. */
static int protocol_secret(struct ctx *x, const struct args *a, const char *cfg, const char *what, int with_id)
{
    json_t *body = json_object();
    int rc = EXIT_API;
    if (!body || set_str(body, "name", a->val[O_NAME] ? a->val[O_NAME] : "cli") != 0 ||
        (with_id && a->val[O_ID] && set_str(body, "id", a->val[O_ID]) != 0))
        goto out;
    char *path = api_path(x, "/protocols/", cfg, what, END);
    rc = request_and_show(x, "POST", path, body, "secret (shown once)");
    free(path);
out:
    json_decref(body);
    return rc;
}

static int cmd_protocol_eab_key(struct ctx *x, const struct args *a, const char *const *argv)
{
    return protocol_secret(x, a, argv[0], "/eab-keys", 0);
}

static int cmd_protocol_credential(struct ctx *x, const struct args *a, const char *const *argv)
{
    return protocol_secret(x, a, argv[0], "/credentials", 1);
}

static int cmd_inventory(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *res = NULL;
    char *path = api_path(x, "/inventory", END);
    json_t *certs, *cas;

    (void)a;
    (void)argv;
    if (!path)
        goto out;
    rc = api_json(x, "GET", path, NULL, &res);
    if (rc)
        goto out;
    if (x->json) {
        rc = print_json(res);
        goto out;
    }
    certs = json_object_get(res, "certificates");
    cas = json_object_get(res, "cas");
    fputs("Certificates issued:    ", stdout);
    put_value(json_object_get(certs, "issued"));
    fputs("\nCertificates purchased: ", stdout);
    put_value(json_object_get(certs, "purchased"));
    fputs("\nActive CAs:             ", stdout);
    put_value(json_object_get(cas, "active"));
    fputs("\nCAs purchased:          ", stdout);
    put_value(json_object_get(cas, "purchased"));
    fputc('\n', stdout);
    rc = 0;
    if (fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        rc = EXIT_API;
    }
out:
    json_decref(res);
    free(path);
    return rc;
}

/* ---- audit log and API tokens -------------------------------------------- */

static const char audit_list_usage[] =
    "audit list [--from RFC3339] [--to RFC3339] [--actor A] [--action A] [--result R]\n"
    "            [--limit N] [--all] [--csv]";

#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_ALL 1000

/* One page of the server's CSV: its records (lines after the header; the
 * server turns control characters inside fields into blanks, so every record
 * is one CRLF-terminated line) and the seq of the last one (0 if none). */
static int csv_page_scan(const unsigned char *p, size_t n, size_t *body_off, long *rows, long long *last_seq)
{
    const char *s = (const char *)p, *end = s + n, *nl, *line;
    *rows = 0;
    *last_seq = 0;
    nl = memchr(s, '\n', n);
    if (!nl || strncmp(s, "seq,", 4) != 0)
        return -1;
    *body_off = (size_t)(nl + 1 - s);
    for (line = nl + 1; line < end; line = nl + 1) {
        char *e = NULL;
        long long v;
        nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            return -1;
        if (*line != '"')
            return -1;
        errno = 0;
        v = strtoll(line + 1, &e, 10);
        if (errno || e == line + 1 || *e != '"' || v <= 0)
            return -1;
        (*rows)++;
        *last_seq = v;
    }
    return 0;
}

static int cmd_audit_list(struct ctx *x, const struct args *a, const char *const *argv)
{
    static const struct column cols[] = {
        {"SEQ", "seqText"}, {"TIME", "time"},     {"ACTOR", "actor"},
        {"ACTION", "action"}, {"TARGET", "target"}, {"RESULT", "result"},
    };
    int rc = EXIT_API;
    const char *lim = a->val[O_LIMIT];
    long limit = a->seen[O_ALL] ? AUDIT_PAGE_ALL : AUDIT_PAGE_DEFAULT;
    char limtext[24], aftertext[24];
    char *base = NULL, *path = NULL;
    json_t *res = NULL, *all = NULL, *list, *next = NULL;
    long long after = 0;
    int pages = 0, csv = a->seen[O_CSV], more = 0;
    struct http_response r = {0};

    (void)argv;
    if (csv && x->json)
        return usage_error(audit_list_usage, "%s", "audit list: give either --csv or --json");
    if (lim) {
        char *end = NULL;
        errno = 0;
        limit = strtol(lim, &end, 10);
        if (!*lim || *end || errno || limit < 1 || limit > 1000)
            return usage_error(audit_list_usage, "audit list: --limit must be 1-1000, not '%s'", lim);
    }
    snprintf(limtext, sizeof limtext, "%ld", limit);
    base = api_path(x, "/audit", END);
    if (!base || (a->val[O_FROM] && add_query(&base, "from", a->val[O_FROM]) != 0) ||
        (a->val[O_TO] && add_query(&base, "to", a->val[O_TO]) != 0) ||
        (a->val[O_ACTOR] && add_query(&base, "actor", a->val[O_ACTOR]) != 0) ||
        (a->val[O_ACTION] && add_query(&base, "action", a->val[O_ACTION]) != 0) ||
        (a->val[O_RESULT] && add_query(&base, "result", a->val[O_RESULT]) != 0) ||
        add_query(&base, "limit", limtext) != 0 || (csv && add_query(&base, "format", "csv") != 0))
        goto out;
    if (!(all = json_array())) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    for (;;) {
        free(path);
        path = strdup(base);
        snprintf(aftertext, sizeof aftertext, "%lld", after);
        if (!path || (after && add_query(&path, "after", aftertext) != 0)) {
            fprintf(stderr, "error: out of memory\n");
            rc = EXIT_API;
            goto out;
        }
        pages++;
        if (csv) {
            size_t off = 0;
            long rows;
            long long last;
            http_response_free(&r);
            rc = api(x, "GET", path, NULL, &r);
            if (rc)
                goto out;
            rc = EXIT_API;
            if (csv_page_scan(r.body, r.len, &off, &rows, &last) != 0) {
                fprintf(stderr, "error: unexpected response: not the audit CSV\n");
                goto out;
            }
            /* the header once, then the records of every page */
            rc = pages == 1 ? write_output(NULL, r.body, r.len) : write_output(NULL, r.body + off, r.len - off);
            if (rc)
                goto out;
            rc = EXIT_API;
            more = rows == limit;
            if (!a->seen[O_ALL] || !more)
                break;
            if (last <= after) {
                fprintf(stderr, "error: the server returned records out of order\n");
                goto out;
            }
            after = last;
            continue;
        }
        json_decref(res);
        res = NULL;
        rc = api_json(x, "GET", path, NULL, &res);
        if (rc)
            goto out;
        rc = EXIT_API;
        list = json_object_get(res, "records");
        if (!json_is_array(list)) {
            fprintf(stderr, "error: unexpected response: no \"records\" array\n");
            goto out;
        }
        if (json_array_extend(all, list) != 0) {
            fprintf(stderr, "error: out of memory\n");
            goto out;
        }
        next = json_object_get(res, "next");
        more = json_is_integer(next);
        if (!a->seen[O_ALL] || !more)
            break;
        if (json_integer_value(next) <= after) {
            fprintf(stderr, "error: the server returned the same \"next\" twice\n");
            goto out;
        }
        after = (long long)json_integer_value(next);
    }
    if (csv) {
        rc = 0;
        if (more && !a->seen[O_ALL])
            fputs("(more records: pass --all to export every page)\n", stderr);
        goto out;
    }
    if (x->json) {
        if (a->seen[O_ALL] && pages > 1) {
            json_t *merged = json_pack("{s:O,s:n}", "records", all, "next");
            rc = merged ? print_json(merged) : EXIT_API;
            json_decref(merged);
        } else {
            rc = print_json(res);
        }
        goto out;
    }
    if (json_array_size(all) == 0) {
        puts("No audit records.");
        rc = 0;
        goto out;
    }
    {
        size_t i;
        json_t *rec;
        json_array_foreach(all, i, rec) {
            json_t *seq = json_object_get(rec, "seq");
            char t[24];
            if (json_is_integer(seq))
                snprintf(t, sizeof t, "%" JSON_INTEGER_FORMAT, json_integer_value(seq));
            else
                snprintf(t, sizeof t, "?");
            if (!json_is_object(rec) || json_object_set_new(rec, "seqText", json_string(t)) != 0) {
                fprintf(stderr, "error: unexpected response: a record is not a JSON object\n");
                goto out;
            }
        }
    }
    rc = print_table(all, cols, sizeof(cols) / sizeof(cols[0]));
    if (rc == 0 && more && !a->seen[O_ALL])
        fputs("(more records: pass --all to list every page)\n", stderr);
out:
    http_response_free(&r);
    json_decref(res);
    json_decref(all);
    free(path);
    free(base);
    return rc;
}

static char *dir_file(const char *dir, const char *name);

/* One checkpoint kept by `audit checkpoints -o DIR`: its signed text must
 * verify with DIR's key; *seq and hash[] are read from the text. 0, or
 * EXIT_API (reported). */
static int kept_checkpoint(const char *dir, const char *txt_name, EVP_PKEY *key, long long *seq, char hash[65])
{
    int rc = EXIT_API;
    struct buf t, sg;
    char *tf = NULL, *sf = NULL, *text = NULL;
    EVP_MD_CTX *c = NULL;
    const char *p;
    int used = 0;

    buf_init(&t, 64 * 1024);
    buf_init(&sg, 64 * 1024);
    if (!(tf = dir_file(dir, txt_name)) || !(sf = strdup(tf))) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    memcpy(sf + strlen(sf) - 3, "sig", 3); /* the name ends in ".txt" */
    if (read_file(tf, &t) != 0 || read_file(sf, &sg) != 0)
        goto out;
    if (!(text = strndup((const char *)t.data, t.len))) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    if (strlen(text) != t.len || !(c = EVP_MD_CTX_new()) ||
        EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestVerify(c, sg.data, sg.len, t.data, t.len) != 1) {
        fprintf(stderr, "error: '%s' does not verify with %s/audit-key.pem\n", tf, dir);
        goto out;
    }
    if (strncmp(text, "pkiaas-audit-checkpoint\n", 24) != 0 || !(p = strstr(text, "\nseq=")) ||
        sscanf(p, "\nseq=%lld%n", seq, &used) != 1 || !(p = strstr(text, "\nhash=")) ||
        sscanf(p, "\nhash=%64[0-9a-f]\n", hash) != 1 || strlen(hash) != 64) {
        fprintf(stderr, "error: '%s' is not a pkiaas audit checkpoint\n", tf);
        goto out;
    }
    rc = 0;
out:
    EVP_MD_CTX_free(c);
    free(text);
    free(tf);
    free(sf);
    buf_free(&t);
    buf_free(&sg);
    return rc;
}

/* Compares the checkpoints kept in DIR (by an earlier `audit checkpoints -o
 * DIR`) with the server's: the key must be the same and every kept
 * checkpoint must still be there with the same hash, or the log was cut back
 * or rewritten, and checkpoints with it, which the server alone cannot see.
 * Marks `res` (the server's verdict) broken if not; *kept counts them.
 * 0, or an exit code (reported). */
static int verify_against(struct ctx *x, const char *dir, json_t *res, size_t *kept)
{
    int rc = EXIT_API;
    json_t *cpres = NULL;
    char *path = api_path(x, "/audit/checkpoints", END), *kf = NULL;
    FILE *f = NULL;
    EVP_PKEY *saved = NULL, *server = NULL;
    BIO *b = NULL;
    DIR *d = NULL;
    struct dirent *e;
    const char *pem;
    long long bad = -1, first = -1;
    const char *problem = NULL;

    *kept = 0;
    if (!path || !(kf = dir_file(dir, "audit-key.pem")))
        goto out;
    if (!(f = fopen(kf, "r")) || !(saved = PEM_read_PUBKEY(f, NULL, NULL, NULL))) {
        fprintf(stderr, "error: cannot read a public key from '%s'%s%s\n", kf, f ? "" : ": ",
                f ? "" : strerror(errno));
        goto out;
    }
    if (!(d = opendir(dir))) {
        fprintf(stderr, "error: cannot open directory '%s': %s\n", dir, strerror(errno));
        goto out;
    }
    if ((rc = api_json(x, "GET", path, NULL, &cpres)) != 0)
        goto out;
    rc = EXIT_API;
    const json_t *cps = json_object_get(cpres, "checkpoints");
    if (!json_is_array(cps) || !(pem = get_str(cpres, "publicKey")) || !(b = BIO_new_mem_buf(pem, -1)) ||
        !(server = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL))) {
        fprintf(stderr, "error: unexpected response: no checkpoints or public key\n");
        goto out;
    }
    while ((e = readdir(d))) {
        long long seq = -1;
        char hash[65] = "";
        int used = 0;
        size_t i;
        json_t *cp;
        bool held = false;
        if (sscanf(e->d_name, "checkpoint-%lld.txt%n", &seq, &used) != 1 || used <= 0 ||
            (size_t)used != strlen(e->d_name) || seq < 0)
            continue;
        if (kept_checkpoint(dir, e->d_name, saved, &seq, hash) != 0)
            goto out;
        (*kept)++;
        if (first < 0 || seq < first)
            first = seq;
        json_array_foreach(cps, i, cp) {
            json_t *s = json_object_get(cp, "seq");
            const char *h = get_str(cp, "hash");
            if (json_is_integer(s) && json_integer_value(s) == seq && h && strcmp(h, hash) == 0)
                held = true;
        }
        if (!held && (bad < 0 || seq < bad))
            bad = seq;
    }
    if (*kept == 0) {
        fprintf(stderr, "error: '%s' holds no checkpoint-SEQ.txt (write some with: audit checkpoints -o DIR)\n",
                dir);
        goto out;
    }
    if (EVP_PKEY_eq(saved, server) != 1) {
        bad = first;
        problem = "the server's audit key is not the one kept with the checkpoints (key replaced)";
    } else if (bad >= 0) {
        problem = "a checkpoint kept outside the server is no longer in its log (records and checkpoints "
                  "removed or rewritten)";
    }
    if (problem && (json_object_set_new(res, "ok", json_false()) != 0 ||
                    json_object_set_new(res, "firstBadSeq", json_integer(bad)) != 0 ||
                    json_object_set_new(res, "problem", json_string(problem)) != 0)) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    rc = 0;
out:
    if (d)
        closedir(d);
    if (f)
        fclose(f);
    BIO_free(b);
    EVP_PKEY_free(saved);
    EVP_PKEY_free(server);
    json_decref(cpres);
    free(kf);
    free(path);
    return rc;
}

static int cmd_audit_verify(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *res = NULL, *ok;
    char *path = api_path(x, "/audit/verify", END);
    const char *dir = a->val[O_AGAINST];
    size_t kept = 0;

    (void)argv;
    if (dir && !*dir)
        return usage_error("audit verify [--against DIR]", "%s", "audit verify: --against takes a directory");
    if (!path)
        goto out;
    rc = api_json(x, "GET", path, NULL, &res);
    if (rc)
        goto out;
    rc = EXIT_API;
    ok = json_object_get(res, "ok");
    /* the server's own verdict first: a broken chain is reported as such */
    if (dir && json_is_true(ok)) {
        if ((rc = verify_against(x, dir, res, &kept)) != 0)
            goto out;
        rc = EXIT_API;
        if (x->json && json_is_true(ok) && json_object_set_new(res, "keptCheckpoints", json_integer((json_int_t)kept)) != 0)
            goto out;
        ok = json_object_get(res, "ok");
    }
    if (!json_is_boolean(ok)) {
        fprintf(stderr, "error: unexpected response: no \"ok\" field\n");
        goto out;
    }
    if (x->json) {
        rc = print_json(res);
    } else if (json_is_true(ok)) {
        fputs("audit chain OK: ", stdout);
        put_value(json_object_get(res, "records"));
        fputs(" records, ", stdout);
        put_value(json_object_get(res, "checkpoints"));
        fputs(" signed checkpoints\n", stdout);
        if (dir)
            printf("all %zu checkpoint%s kept in the directory are still in the log\n", kept, kept == 1 ? "" : "s");
        const json_t *gaps = json_object_get(res, "gaps");
        if (json_is_integer(gaps) && json_integer_value(gaps) > 0) {
            /* stderr: the chain verifies, but part of it was signed only
             * after it had gone unprotected for over an hour */
            fputs("warning: ", stderr);
            fprintf(stderr, "%" JSON_INTEGER_FORMAT, json_integer_value(gaps));
            fputs(" gap(s) in the log's protection, the first recorded at record ", stderr);
            const json_t *g = json_object_get(res, "firstGapSeq");
            fprintf(stderr, "%" JSON_INTEGER_FORMAT, json_is_integer(g) ? json_integer_value(g) : -1);
            fputs(": records signed only after they were over an hour old (the service stopped without its "
                  "final checkpoint, or checkpoints were deleted); compare with checkpoints kept elsewhere "
                  "(--against DIR)\n",
                  stderr);
        }
        rc = 0;
    } else {
        fputs("audit chain BROKEN at record ", stdout);
        put_value(json_object_get(res, "firstBadSeq"));
        fputs(": ", stdout);
        put_value(json_object_get(res, "problem"));
        fputc('\n', stdout);
        rc = 0;
    }
    if (rc == 0 && fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        rc = EXIT_API;
    }
    if (rc == 0 && !json_is_true(ok))
        rc = EXIT_AUDIT_BROKEN;
out:
    json_decref(res);
    free(path);
    return rc;
}

/* "DIR/name" (malloc'd), or NULL (reported). */
static char *dir_file(const char *dir, const char *name)
{
    char *p = NULL;
    size_t n = strlen(dir);
    if (asprintf(&p, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name) < 0) {
        fprintf(stderr, "error: out of memory\n");
        return NULL;
    }
    return p;
}

/* A file kept in an export directory against the bytes the server gives
 * now: 0 absent, 1 the same bytes, 2 different (reported), -1 unreadable
 * (reported). */
static int kept_compare(const char *path, const unsigned char *p, size_t n)
{
    struct stat st;
    struct buf b;
    int rc = -1;
    buf_init(&b, 1 << 20);
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, "error: cannot read '%s': %s\n", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "error: '%s' is not a regular file\n", path);
        goto out;
    }
    if (read_file(path, &b) != 0)
        goto out;
    rc = b.len == n && (n == 0 || memcmp(b.data, p, n) == 0) ? 1 : 2;
    if (rc == 2)
        fprintf(stderr, "error: '%s' differs from what the server gives now; kept as it is\n", path);
out:
    buf_free(&b);
    return rc;
}

/* Checkpoints are evidence: what an earlier export kept is never
 * overwritten. One pass compares every file the server's answer names with
 * the kept one (write = false), the next writes those not kept yet. A kept
 * file that differs means the log (or its key) was replaced since: exit
 * EXIT_AUDIT_BROKEN, nothing written. */
static int keep_file(const char *dir, const char *name, const unsigned char *p, size_t n, bool write, int *rc)
{
    char *file = dir_file(dir, name);
    int k;
    if (!file) {
        *rc = EXIT_API;
        return -1;
    }
    k = kept_compare(file, p, n);
    if (k < 0)
        *rc = EXIT_API;
    else if (k == 2)
        *rc = EXIT_AUDIT_BROKEN;
    else if (k == 0 && write && write_output(file, p, n) != 0)
        *rc = EXIT_API;
    free(file);
    return *rc ? -1 : 0;
}

/* Writes the public key and every checkpoint's signed text and DER signature
 * under `dir` (created if missing), keeping what is already there. */
static int write_checkpoints(const char *dir, const json_t *res, size_t *written)
{
    int rc = EXIT_API;
    const char *pem = get_str(res, "publicKey");
    const json_t *cps = json_object_get(res, "checkpoints");
    unsigned char *sig = NULL;
    struct stat st;
    size_t i;
    json_t *cp;

    *written = 0;
    if (!pem) {
        fprintf(stderr, "error: the server returned no audit public key (no checkpoint was ever signed)\n");
        goto out;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "error: cannot create directory '%s': %s\n", dir, strerror(errno));
        goto out;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "error: '%s' is not a directory\n", dir);
        goto out;
    }
    for (int pass = 0; pass < 2; pass++) {
        bool write = pass == 1;
        rc = 0;
        if (keep_file(dir, "audit-key.pem", (const unsigned char *)pem, strlen(pem), write, &rc) != 0) {
            if (rc == EXIT_AUDIT_BROKEN)
                fprintf(stderr, "error: the server's audit key is not the one kept in '%s'\n", dir);
            goto out;
        }
        json_array_foreach(cps, i, cp) {
            json_t *seq = json_object_get(cp, "seq");
            const char *text = get_str(cp, "signedText"), *sig64 = get_str(cp, "signature");
            char name[64];
            size_t sl = 0;
            if (!json_is_integer(seq) || json_integer_value(seq) < 0 || !text || !sig64) {
                fprintf(stderr, "error: unexpected response: checkpoint %zu lacks seq, signedText or signature\n", i);
                rc = EXIT_API;
                goto out;
            }
            if (b64_decode(sig64, strlen(sig64), &sig, &sl) != 0) {
                fprintf(stderr, "error: unexpected response: checkpoint %zu has an invalid base64 signature\n", i);
                rc = EXIT_API;
                goto out;
            }
            snprintf(name, sizeof name, "checkpoint-%" JSON_INTEGER_FORMAT ".txt", json_integer_value(seq));
            if (keep_file(dir, name, (const unsigned char *)text, strlen(text), write, &rc) != 0)
                goto broken;
            snprintf(name, sizeof name, "checkpoint-%" JSON_INTEGER_FORMAT ".sig", json_integer_value(seq));
            if (keep_file(dir, name, sig, sl, write, &rc) != 0)
                goto broken;
            free(sig);
            sig = NULL;
            if (write)
                (*written)++;
            continue;
        broken:
            if (rc == EXIT_AUDIT_BROKEN)
                fprintf(stderr,
                        "error: checkpoint %" JSON_INTEGER_FORMAT " kept in '%s' is not the server's: the audit log "
                        "was rewritten since it was exported (run 'audit verify --against %s')\n",
                        json_integer_value(seq), dir, dir);
            goto out;
        }
    }
    rc = 0;
out:
    free(sig);
    return rc;
}

static int cmd_audit_checkpoints(struct ctx *x, const struct args *a, const char *const *argv)
{
    static const struct column cols[] = {{"SEQ", "seqText"}, {"SIGNED AT", "atText"}, {"HASH", "hash"}};
    int rc = EXIT_API;
    json_t *res = NULL, *cps;
    char *path = api_path(x, "/audit/checkpoints", END);
    const char *dir = a->val[O_OUTPUT];
    size_t written = 0;

    (void)argv;
    if (dir && (!*dir || strcmp(dir, "-") == 0))
        return usage_error("audit checkpoints [-o DIR]", "%s", "audit checkpoints: -o takes a directory");
    if (!path)
        goto out;
    rc = api_json(x, "GET", path, NULL, &res);
    if (rc)
        goto out;
    rc = EXIT_API;
    cps = json_object_get(res, "checkpoints");
    if (!json_is_array(cps)) {
        fprintf(stderr, "error: unexpected response: no \"checkpoints\" array\n");
        goto out;
    }
    if (dir && (rc = write_checkpoints(dir, res, &written)) != 0)
        goto out;
    rc = EXIT_API;
    if (x->json) {
        rc = print_json(res);
    } else if (json_array_size(cps) == 0) {
        puts("No signed checkpoints.");
        rc = 0;
    } else {
        size_t i;
        json_t *cp;
        json_array_foreach(cps, i, cp) {
            json_t *seq = json_object_get(cp, "seq"), *at = json_object_get(cp, "atMs");
            char t[24], when[48] = "?";
            snprintf(t, sizeof t, "%" JSON_INTEGER_FORMAT, json_is_integer(seq) ? json_integer_value(seq) : -1);
            if (json_is_integer(at) && json_integer_value(at) >= 0) {
                json_int_t ms = json_integer_value(at);
                time_t secs = (time_t)(ms / 1000);
                struct tm tm;
                char d[32];
                if (gmtime_r(&secs, &tm) && strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm))
                    snprintf(when, sizeof when, "%s.%03dZ", d, (int)(ms % 1000));
            }
            if (!json_is_object(cp) || json_object_set_new(cp, "seqText", json_string(t)) != 0 ||
                json_object_set_new(cp, "atText", json_string(when)) != 0) {
                fprintf(stderr, "error: unexpected response: a checkpoint is not a JSON object\n");
                goto out;
            }
        }
        rc = print_table(cps, cols, sizeof(cols) / sizeof(cols[0]));
    }
    if (rc == 0 && dir) {
        fprintf(stderr, "The audit public key and %zu checkpoint%s are kept in ", written, written == 1 ? "" : "s");
        put_clean(stderr, dir);
        fputs(" (check one with: openssl dgst -sha256 -verify audit-key.pem -signature checkpoint-SEQ.sig "
              "checkpoint-SEQ.txt)\n",
              stderr);
    }
out:
    json_decref(res);
    free(path);
    return rc;
}

static const char token_create_usage[] = "token create --name NAME --role ROLE [--role ROLE]...";

static int cmd_token_create(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *body = NULL, *roles = NULL, *res = NULL;
    char *path = NULL;
    const char *tok;

    (void)argv;
    if (!a->val[O_NAME] || !*a->val[O_NAME])
        return usage_error(token_create_usage, "%s", "token create: --name is required");
    if (a->nroles == 0)
        return usage_error(token_create_usage, "%s",
                           "token create: at least one --role is required (Owners, CA Administrators, "
                           "Certificate Administrators, CA Auditors, Protocol Operators, Protocol Auditors)");
    if (!(body = json_object()) || !(roles = json_array())) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    if (set_str(body, "name", a->val[O_NAME]) != 0)
        goto out;
    for (int i = 0; i < a->nroles; i++) {
        json_t *s = json_string(a->roles[i]);
        if (!s) {
            fprintf(stderr, "error: value of --role is not valid UTF-8\n");
            goto out;
        }
        if (json_array_append_new(roles, s) != 0) {
            fprintf(stderr, "error: out of memory\n");
            goto out;
        }
    }
    if (json_object_set(body, "roles", roles) != 0) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    if (!(path = api_path(x, "/tokens", END)))
        goto out;
    rc = api_json(x, "POST", path, body, &res);
    if (rc)
        goto out;
    rc = EXIT_API;
    tok = get_str(res, "token");
    if (!tok) {
        fprintf(stderr, "error: unexpected response: no \"token\"\n");
        goto out;
    }
    fputs("warning: this is the only time the token is shown; store it now (it cannot be retrieved later)\n",
          stderr);
    if (x->json) {
        rc = print_json(res);
    } else {
        put_clean(stdout, tok);
        fputc('\n', stdout);
        rc = 0;
        if (fflush(stdout) != 0) {
            fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
            rc = EXIT_API;
        }
    }
out:
    if (res) {
        /* wipe our copy of the new secret */
        json_t *t = json_object_get(res, "token");
        if (json_is_string(t))
            OPENSSL_cleanse((void *)json_string_value(t), json_string_length(t));
    }
    json_decref(res);
    json_decref(roles);
    json_decref(body);
    free(path);
    return rc;
}

static int cmd_token_list(struct ctx *x, const struct args *a, const char *const *argv)
{
    static const struct column cols[] = {
        {"NAME", "name"}, {"ROLES", "rolesText"}, {"CREATED", "createdAt"}, {"REVOKED", "revokedAt"}};
    int rc = EXIT_API;
    json_t *res = NULL, *list, *t;
    char *path = api_path(x, "/tokens", END);
    size_t i;

    (void)a;
    (void)argv;
    if (!path)
        goto out;
    rc = api_json(x, "GET", path, NULL, &res);
    if (rc)
        goto out;
    if (x->json) {
        rc = print_json(res);
        goto out;
    }
    rc = EXIT_API;
    list = json_object_get(res, "tokens");
    if (!json_is_array(list)) {
        fprintf(stderr, "error: unexpected response: no \"tokens\" array\n");
        goto out;
    }
    if (json_array_size(list) == 0) {
        puts("No API tokens.");
        rc = 0;
        goto out;
    }
    json_array_foreach(list, i, t) {
        struct buf b;
        size_t j;
        json_t *r;
        char *joined;
        int ok = 1;
        if (!json_is_object(t)) {
            fprintf(stderr, "error: unexpected response: a token is not a JSON object\n");
            goto out;
        }
        buf_init(&b, 0);
        json_array_foreach(json_object_get(t, "roles"), j, r) {
            const char *s = json_string_value(r);
            ok = ok && (!j || buf_append_str(&b, ", ") == 0) && buf_append_str(&b, s ? s : "?") == 0;
        }
        joined = ok ? (char *)buf_take(&b, NULL) : NULL;
        buf_free(&b);
        if (!joined || json_object_set_new(t, "rolesText", json_string(*joined ? joined : "-")) != 0) {
            free(joined);
            fprintf(stderr, "error: out of memory\n");
            goto out;
        }
        free(joined);
    }
    rc = print_table(list, cols, sizeof(cols) / sizeof(cols[0]));
out:
    json_decref(res);
    free(path);
    return rc;
}

static int cmd_token_revoke(struct ctx *x, const struct args *a, const char *const *argv)
{
    int rc = EXIT_API;
    json_t *res = NULL;
    char *path = api_path(x, "/tokens/", argv[0], END);

    (void)a;
    if (!path)
        goto out;
    rc = api_json(x, "DELETE", path, NULL, &res);
    if (rc)
        goto out;
    if (x->json) {
        rc = print_json(res);
        goto out;
    }
    fputs("Revoked API token ", stdout);
    put_clean(stdout, get_str(res, "name") ? get_str(res, "name") : argv[0]);
    fputc('\n', stdout);
    rc = 0;
    if (fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        rc = EXIT_API;
    }
out:
    json_decref(res);
    free(path);
    return rc;
}

/* ---- local: SQLite backup / restore --------------------------------------- */

static int cmd_backup(struct ctx *x, const struct args *a, const char *const *argv)
{
    char err[512];
    if (cli_backup(argv[0], argv[1], a->seen[O_YES], err, sizeof err) != 0) {
        fprintf(stderr, "error: backup: %s\n", err);
        return EXIT_API;
    }
    if (!x->json)
        printf("backed up %s to %s (integrity check ok)\n", argv[0], argv[1]);
    return 0;
}

static int cmd_restore(struct ctx *x, const struct args *a, const char *const *argv)
{
    char err[512];
    if (cli_restore(argv[0], argv[1], a->seen[O_YES], err, sizeof err) != 0) {
        fprintf(stderr, "error: restore: %s\n", err);
        return EXIT_API;
    }
    if (!x->json)
        printf("restored %s from %s (integrity check ok)\n", argv[1], argv[0]);
    return 0;
}

static const struct cmd cmds[] = {
    {"ca", "list", NULL, 0, 0, BIT(O_INCLUDE_DELETED), cmd_ca_list, "ca list [--include-deleted]"},
    {"ca", "show", NULL, 1, 1, 0, cmd_ca_show, "ca show CA_ID"},
    {"ca", "create", NULL, 0, 0,
     BIT(O_ID) | BIT(O_TYPE) | BIT(O_NAME) | BIT(O_PARENT) | BIT(O_KEY) | BIT(O_SUBJECT) | BIT(O_EXPIRY) |
         BIT(O_PATH_LENGTH) | BIT(O_CRL) | BIT(O_OCSP) | BIT(O_CERT) | BIT(O_PROFILES),
     cmd_ca_create, create_usage},
    {"ca", "import-cert", NULL, 2, 2, 0, cmd_ca_import_cert, "ca import-cert CA_ID FILE"},
    {"ca", "csr", NULL, 1, 1, BIT(O_OUTPUT), cmd_ca_csr, "ca csr CA_ID [-o FILE]"},
    {"ca", "delete", NULL, 1, 1, BIT(O_YES), cmd_ca_delete, "ca delete CA_ID [--yes]"},
    {"ca", "download", NULL, 1, 1, BIT(O_FORMAT) | BIT(O_CHAIN) | BIT(O_OUTPUT), cmd_ca_download,
     "ca download CA_ID [--format pem|der] [--chain] [-o FILE]"},
    /* three-word forms first: "ca profiles add X Y" must not match "ca profiles CA_ID" */
    {"ca", "profiles", "add", 2, 2, 0, cmd_ca_profiles_add, "ca profiles add CA_ID PROFILE_ID"},
    {"ca", "profiles", "remove", 2, 2, 0, cmd_ca_profiles_remove, "ca profiles remove CA_ID PROFILE_ID"},
    {"ca", "profiles", NULL, 1, 1, 0, cmd_ca_profiles, "ca profiles CA_ID"},
    {"profile", "list", NULL, 0, 0, BIT(O_GROUP), cmd_profile_list, "profile list [--group G]"},
    {"profile", "show", NULL, 1, 1, 0, cmd_profile_show, "profile show PROFILE_ID"},
    {"profile", "clone", NULL, 0, 0, BIT(O_FROM) | BIT(O_ID) | PROFILE_FIELD_OPTS, cmd_profile_clone, clone_usage},
    {"profile", "update", NULL, 1, 1, PROFILE_FIELD_OPTS, cmd_profile_update, update_usage},
    {"profile", "delete", NULL, 1, 1, 0, cmd_profile_delete, "profile delete PROFILE_ID"},
    {"cert", "issue", NULL, 1, 1,
     BIT(O_PROFILE) | BIT(O_CSR) | BIT(O_SUBJECT) | BIT(O_USE_CSR_SUBJECT) | BIT(O_SAN) | BIT(O_VALIDITY) |
         BIT(O_NOT_AFTER) | BIT(O_OUTPUT) | BIT(O_CHAIN_OUT) | BIT(O_P12) | BIT(O_KEY_TYPE) | BIT(O_P12_PASSWORD) |
         BIT(O_P12_PASSWORD_FILE),
     cmd_cert_issue, issue_usage},
    {"cert", "list", NULL, 1, 1,
     BIT(O_STATUS) | BIT(O_PROFILE) | BIT(O_SEARCH) | BIT(O_SERIAL) | BIT(O_EXPIRES_WITHIN) | BIT(O_EXPIRED) |
         BIT(O_LIMIT) | BIT(O_ALL),
     cmd_cert_list, list_usage},
    {"cert", "show", NULL, 2, 2, 0, cmd_cert_show, "cert show CA_ID SERIAL"},
    {"cert", "download", NULL, 2, 2, BIT(O_FORMAT) | BIT(O_OUTPUT), cmd_cert_download,
     "cert download CA_ID SERIAL [--format pem|der|chain|pkcs7] [-o FILE]"},
    {"cert", "revoke", NULL, 2, 2, BIT(O_REASON) | BIT(O_INVALIDITY_DATE), cmd_cert_revoke,
     "cert revoke CA_ID SERIAL [--reason REASON] [--invalidity-date RFC3339]"},
    {"cert", "revoke-bulk", NULL, 0, 0,
     BIT(O_CA) | BIT(O_SERIALS) | BIT(O_SUBJECT) | BIT(O_PROFILE) | BIT(O_ISSUED_BEFORE) | BIT(O_REASON) |
         BIT(O_INVALIDITY_DATE) | BIT(O_PUBLISH_NOW) | BIT(O_BATCH) | BIT(O_REPORT) | BIT(O_STATE) | BIT(O_YES),
     cmd_cert_revoke_bulk, revoke_bulk_usage},
    {"cert", "suspend", NULL, 2, 2, 0, cmd_cert_suspend, "cert suspend CA_ID SERIAL"},
    {"cert", "unsuspend", NULL, 2, 2, 0, cmd_cert_unsuspend, "cert unsuspend CA_ID SERIAL"},
    {"protocol", "list", NULL, 0, 0, 0, cmd_protocol_list, "protocol list"},
    {"protocol", "show", NULL, 1, 1, 0, cmd_protocol_show, "protocol show CONFIG_ID"},
    {"protocol", "create", NULL, 0, 0, BIT(O_JSON_FILE), cmd_protocol_create, protocol_create_usage},
    {"protocol", "delete", NULL, 1, 1, 0, cmd_protocol_delete, "protocol delete CONFIG_ID"},
    {"protocol", "eab-key", NULL, 1, 1, BIT(O_NAME), cmd_protocol_eab_key, "protocol eab-key CONFIG_ID --name NAME"},
    {"protocol", "credential", NULL, 1, 1, BIT(O_NAME) | BIT(O_ID), cmd_protocol_credential,
     "protocol credential CONFIG_ID --name NAME [--id USER]"},
    {"inventory", NULL, NULL, 0, 0, 0, cmd_inventory, "inventory"},
    {"key-details", NULL, NULL, 0, 0, 0, cmd_key_details, "key-details"},
    {"audit", "list", NULL, 0, 0,
     BIT(O_FROM) | BIT(O_TO) | BIT(O_ACTOR) | BIT(O_ACTION) | BIT(O_RESULT) | BIT(O_LIMIT) | BIT(O_ALL) | BIT(O_CSV),
     cmd_audit_list, audit_list_usage},
    {"audit", "verify", NULL, 0, 0, BIT(O_AGAINST), cmd_audit_verify, "audit verify [--against DIR]"},
    {"audit", "checkpoints", NULL, 0, 0, BIT(O_OUTPUT), cmd_audit_checkpoints, "audit checkpoints [-o DIR]"},
    {"token", "create", NULL, 0, 0, BIT(O_NAME) | BIT(O_ROLE), cmd_token_create, token_create_usage},
    {"token", "list", NULL, 0, 0, 0, cmd_token_list, "token list"},
    {"token", "revoke", NULL, 1, 1, 0, cmd_token_revoke, "token revoke NAME"},
    {"backup", NULL, NULL, 2, 2, BIT(O_YES), cmd_backup, "backup DB_FILE OUT_FILE [--yes]", true},
    {"restore", NULL, NULL, 2, 2, BIT(O_YES), cmd_restore, "restore BACKUP_FILE DB_FILE [--yes]", true},
};

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

int main(int argc, char **argv)
{
    int rc;
    int curl_ready = 0;
    struct args a;
    struct ctx x;
    const struct cmd *cmd = NULL;
    const char *partition;
    int nwords;

    memset(&x, 0, sizeof(x));
    rc = parse_args(argc, argv, &a);
    if (rc)
        goto out;
    if (a.seen[O_HELP]) {
        fputs(usage_text, stdout);
        rc = 0;
        goto out;
    }
    if (a.npos == 0) {
        rc = usage_error(NULL, "%s", "no command given");
        goto out;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(cmds[i].w1, a.pos[0]) != 0)
            continue;
        if (cmds[i].w2 && (a.npos < 2 || strcmp(cmds[i].w2, a.pos[1]) != 0))
            continue;
        if (cmds[i].w3 && (a.npos < 3 || strcmp(cmds[i].w3, a.pos[2]) != 0))
            continue;
        cmd = &cmds[i];
        break;
    }
    if (!cmd) {
        int group = 0; /* a word that starts commands of two or more words */
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]) && !group; i++)
            group = cmds[i].w2 && strcmp(cmds[i].w1, a.pos[0]) == 0;
        if (group && a.npos >= 2)
            rc = usage_error(NULL, "unknown command '%s %s'", a.pos[0], a.pos[1]);
        else if (group)
            rc = usage_error(NULL, "'%s' needs a subcommand", a.pos[0]);
        else
            rc = usage_error(NULL, "unknown command '%s'", a.pos[0]);
        goto out;
    }
    nwords = cmd->w3 ? 3 : cmd->w2 ? 2 : 1;
    if (a.npos - nwords < cmd->min_args) {
        rc = usage_error(cmd->usage, "%s", "missing argument");
        goto out;
    }
    if (a.npos - nwords > cmd->max_args) {
        rc = usage_error(cmd->usage, "unexpected argument '%s'", a.pos[nwords + cmd->max_args]);
        goto out;
    }
    for (int i = nwords; i < a.npos; i++) {
        if (!*a.pos[i]) {
            rc = usage_error(cmd->usage, "%s", "empty argument");
            goto out;
        }
    }
    for (int o = 0; o < O_COUNT; o++) {
        if (a.seen[o] && !((GLOBAL_OPTS | cmd->opts) & BIT(o))) {
            for (size_t i = 0; i < sizeof(optdefs) / sizeof(optdefs[0]); i++)
                if ((int)optdefs[i].id == o)
                    rc = usage_error(cmd->usage, "option --%s does not apply to this command", optdefs[i].name);
            goto out;
        }
    }
    if (a.seen[O_CACERT] && a.seen[O_INSECURE]) {
        rc = usage_error(NULL, "%s", "--cacert and --insecure are mutually exclusive");
        goto out;
    }

    x.json = a.seen[O_JSON];
    if (cmd->local) {
        rc = cmd->fn(&x, &a, a.pos + nwords);
        goto out;
    }
    x.conn.base_url = a.val[O_URL] ? a.val[O_URL] : env_or("PKIAAS_URL", DEFAULT_URL);
    x.conn.token = a.val[O_TOKEN] ? a.val[O_TOKEN] : env_or("PKIAAS_TOKEN", NULL);
    x.conn.cacert = a.val[O_CACERT];
    x.conn.insecure = a.seen[O_INSECURE];
    if (strncmp(x.conn.base_url, "http://", 7) != 0 && strncmp(x.conn.base_url, "https://", 8) != 0) {
        rc = usage_error(NULL, "%s", "the server URL must start with http:// or https://");
        goto out;
    }
    partition = a.val[O_PARTITION] ? a.val[O_PARTITION] : env_or("PKIAAS_PARTITION", NULL);
    if (!partition || !*partition) {
        rc = usage_error(NULL, "%s", "no partition: pass --partition ACCOUNT or set PKIAAS_PARTITION");
        goto out;
    }
    if (x.conn.insecure)
        fputs("warning: TLS certificate verification is disabled (--insecure)\n", stderr);

    if (http_init() != 0) {
        fprintf(stderr, "error: cannot initialise libcurl\n");
        rc = EXIT_API;
        goto out;
    }
    curl_ready = 1;
    x.partition = http_escape(partition);
    if (!x.partition) {
        fprintf(stderr, "error: out of memory\n");
        rc = EXIT_API;
        goto out;
    }
    rc = cmd->fn(&x, &a, a.pos + nwords);
out:
    free(x.partition);
    if (curl_ready)
        http_cleanup();
    free(a.pos);
    free(a.sans);
    free(a.roles);
    return rc;
}
