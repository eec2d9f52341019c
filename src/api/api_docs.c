/* The API description and its Swagger UI: GET /cagw/openapi.yaml (the
 * docs/openapi.yaml this binary was built with) and /cagw/swagger-ui/
 * (static files of swagger-ui-dist from npm, installed under
 * ui/swagger/node_modules by `make`; directory set by `swagger_ui_dir`). */
#include "api/api.h"

#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char openapi_yaml[];

#define STATIC_MAX (8 * 1024 * 1024)

void api_openapi(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    resp_bytes(resp, 200, "application/yaml", openapi_yaml, strlen(openapi_yaml));
    resp_header(resp, "Cache-Control", "public, max-age=300");
}

static const char initializer[] =
    "window.onload = function () {\n"
    "  window.ui = SwaggerUIBundle({url: '/cagw/openapi.yaml', dom_id: '#swagger-ui', deepLinking: true,\n"
    "    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout'});\n"
    "};\n";

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (strcmp(dot, ".png") == 0)
        return "image/png";
    if (strcmp(dot, ".map") == 0 || strcmp(dot, ".json") == 0)
        return "application/json";
    return "application/octet-stream";
}

/* Only plain file names of the dist directory: no path separators, no
 * leading dot, a short safe alphabet. */
static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 80 || n[0] == '.')
        return false;
    return strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == len;
}

static void serve_file(struct http_req *req, struct http_resp *resp, const char *name)
{
    struct api_ctx *ctx = req->app;
    if (strcmp(name, "swagger-initializer.js") == 0) {
        resp_bytes(resp, 200, "text/javascript; charset=utf-8", initializer, strlen(initializer));
        return;
    }
    if (!name_ok(name)) {
        resp_error(resp, 404, "not_found", NULL, "no such file");
        return;
    }
    char *path = NULL;
    if (asprintf(&path, "%s/%s", ctx->swagger_dir ? ctx->swagger_dir : PKIAAS_SWAGGER_UI_DIR, name) < 0) {
        resp_error(resp, 500, "internal", NULL, "out of memory");
        return;
    }
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f) {
        resp_error(resp, 404, "not_found", NULL,
                   "no such file (is swagger-ui-dist installed? `make` runs npm in ui/swagger)");
        return;
    }
    struct buf b;
    unsigned char tmp[8192];
    size_t n;
    int bad = 0;
    buf_init(&b, STATIC_MAX);
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (buf_append(&b, tmp, n) != 0) {
            bad = 1;
            break;
        }
    fclose(f);
    if (bad) {
        buf_free(&b);
        resp_error(resp, 500, "internal", NULL, "file too large");
        return;
    }
    size_t len;
    unsigned char *d = buf_take(&b, &len);
    resp_take(resp, 200, content_type(name), d, len);
    resp_header(resp, "Cache-Control", "public, max-age=3600");
    /* the same origin as the portal's session: the portal's page rules
     * (no framing, no referrer, scripts and connections to ourselves) */
    resp_header(resp, "Referrer-Policy", "no-referrer");
    resp_header(resp, "X-Frame-Options", "DENY");
    resp_header(resp, "Content-Security-Policy",
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
}

void api_swagger_index(struct http_req *req, struct http_resp *resp)
{
    serve_file(req, resp, "index.html");
}

void api_swagger_file(struct http_req *req, struct http_resp *resp)
{
    serve_file(req, resp, req->params[0]);
}
