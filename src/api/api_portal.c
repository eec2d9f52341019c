/* The web portal's server side: the built single-page app (ui/portal/dist,
 * made by `make ui` with Vite; directory set by `portal_dir`) at / and
 * /portal/..., and GET /api/v1/partitions/{id}/me, which tells the portal
 * who the caller is and which operations its roles allow (so it offers
 * only those). No Node.js at run time: these are plain files. */
#include "api/api.h"

#include "authz/authz.h"
#include "util/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PORTAL_FILE_MAX (8 * 1024 * 1024)
#define PORTAL_PATH_MAX 200

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json"}, {".map", "application/json"},
        {".svg", "image/svg+xml"}, {".png", "image/png"},
        {".ico", "image/x-icon"}, {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

/* A relative path of the dist directory: segments of a short safe alphabet,
 * none empty or starting with '.' (so no "..", no hidden files). */
static bool path_ok(const char *p)
{
    size_t len = strlen(p);
    if (len == 0 || len > PORTAL_PATH_MAX ||
        strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./") != len)
        return false;
    const char *s = p;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || s[0] == '.')
            return false;
        if (!e)
            return true;
        s = e + 1;
    }
}

/* 0 and the file's bytes; -1 when it is not a regular file (or unreadable);
 * -2 when too large or out of memory. */
static int read_file(const char *path, unsigned char **out, size_t *len)
{
    struct stat st;
    struct buf b;
    unsigned char tmp[8192];
    size_t n;
    int rc = -1;
    FILE *f = NULL;
    buf_init(&b, PORTAL_FILE_MAX);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        goto out;
    if (!(f = fopen(path, "rb")))
        goto out;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (buf_append(&b, tmp, n) != 0) {
            rc = -2;
            goto out;
        }
    if (ferror(f))
        goto out;
    *out = buf_take(&b, len);
    rc = *out ? 0 : -2;
out:
    if (f)
        fclose(f);
    buf_free(&b);
    return rc;
}

static void security_headers(struct http_resp *resp)
{
    resp_header(resp, "Referrer-Policy", "no-referrer");
    resp_header(resp, "X-Frame-Options", "DENY");
    resp_header(resp, "Content-Security-Policy",
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
}

/* Serves `rel` from the portal directory. Client-side routes (paths that
 * are not files and have no file extension) get index.html. */
static void serve(struct http_req *req, struct http_resp *resp, const char *rel)
{
    struct api_ctx *ctx = req->app;
    const char *dir = ctx->portal_dir ? ctx->portal_dir : PKIAAS_PORTAL_DIR;
    char *path = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = -1;
    const char *type = NULL;
    bool index = false;
    char *trimmed = NULL;
    size_t rl = strlen(rel);
    if (rl > 1 && rel[rl - 1] == '/') {
        /* "/portal/cas/" is the client route "/portal/cas" */
        if (!(trimmed = strndup(rel, rl - 1))) {
            resp_error(resp, 500, "internal", NULL, "out of memory");
            goto out;
        }
        rel = trimmed;
    }
    if (!path_ok(rel)) {
        resp_error(resp, 404, "not_found", NULL, "no such file");
        goto out;
    }
    type = content_type(rel);
    if (asprintf(&path, "%s/%s", dir, rel) < 0) {
        path = NULL;
        resp_error(resp, 500, "internal", NULL, "out of memory");
        goto out;
    }
    rc = type ? read_file(path, &data, &len) : -1;
    if (rc == -1 && (!type || strcmp(rel, "index.html") == 0) && strncmp(rel, "assets/", 7) != 0) {
        /* a client-side route: the app's entry page */
        free(path);
        if (asprintf(&path, "%s/index.html", dir) < 0) {
            path = NULL;
            resp_error(resp, 500, "internal", NULL, "out of memory");
            goto out;
        }
        index = true;
        type = "text/html; charset=utf-8";
        rc = read_file(path, &data, &len);
        if (rc == -1) {
            resp_error(resp, 404, "not_found", NULL, "the portal is not built (`make ui` runs Vite in ui/portal)");
            goto out;
        }
    }
    if (rc == -1) {
        resp_error(resp, 404, "not_found", NULL, "no such file");
        goto out;
    }
    if (rc != 0) {
        resp_error(resp, 500, "internal", NULL, "file too large");
        goto out;
    }
    index = index || strcmp(rel, "index.html") == 0;
    resp_take(resp, 200, type, data, len);
    data = NULL;
    /* Vite names built assets by content hash: they never change. The entry
     * page always revalidates so a new build is picked up at once. */
    resp_header(resp, "Cache-Control",
                !index && strncmp(rel, "assets/", 7) == 0 ? "public, max-age=31536000, immutable" : "no-cache");
    security_headers(resp);
out:
    free(trimmed);
    free(path);
    free(data);
}

void api_portal_index(struct http_req *req, struct http_resp *resp)
{
    serve(req, resp, "index.html");
}

void api_portal_file(struct http_req *req, struct http_resp *resp)
{
    serve(req, resp, req->params[0]);
}

/* GET /api/v1/partitions/{id}/me → {"partition","actor","kind","email"?,
 * "roles":[...],"operations":["ca.browse",...]}: every role may ask. */
void api_me(struct http_req *req, struct http_resp *resp)
{
    struct principal p;
    json_t *roles = NULL, *ops = NULL, *out = NULL;
    char *csv = NULL;
    if (api_auth(req, resp, req->params[0], OP_CA_BROWSE, &p) != 0)
        return;
    if (!(roles = json_array()) || !(ops = json_array()) || !(csv = strdup(p.roles)))
        goto oom;
    char *save = NULL;
    for (char *r = strtok_r(csv, ",", &save); r; r = strtok_r(NULL, ",", &save))
        if (*r && json_array_append_new(roles, json_string(r)) != 0)
            goto oom;
    for (size_t i = 0; i < authz_op_count(); i++) {
        const struct authz_op_info *info = authz_op_at(i);
        if (info && authz_allow(&p, info->op) && json_array_append_new(ops, json_string(info->name)) != 0)
            goto oom;
    }
    bool user = strncmp(p.actor, "user:", 5) == 0;
    out = json_pack("{s:s,s:s,s:s,s:O,s:O}", "partition", p.partition, "actor", p.actor, "kind",
                    user ? "user" : "token", "roles", roles, "operations", ops);
    if (!out || (user && json_object_set_new(out, "email", json_string(p.actor + 5)) != 0))
        goto oom;
    resp_json(resp, 200, out);
    out = NULL;
    goto done;
oom:
    resp_error(resp, 500, "internal", NULL, "out of memory");
done:
    json_decref(out);
    json_decref(roles);
    json_decref(ops);
    free(csv);
}
