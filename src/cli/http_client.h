/* http_client: the small libcurl wrapper behind the pkiaas CLI.
 *
 * Promises: one blocking request per call; the response body is read into
 * memory but never beyond HTTP_MAX_BODY bytes; redirects are not followed
 * (so the bearer token never travels to another host); only http and https
 * URLs are used; the token is only ever placed in the Authorization header
 * (never printed, never in the URL), and our copy of that header is wiped
 * after use. */
#ifndef PKIAAS_CLI_HTTP_CLIENT_H
#define PKIAAS_CLI_HTTP_CLIENT_H

#include <stddef.h>

#define HTTP_MAX_BODY ((size_t)64 * 1024 * 1024)

/* Return values of http_request(). */
#define HTTP_OK 0
#define HTTP_ERR_TRANSPORT (-1) /* connection / TLS / protocol failure */
#define HTTP_ERR_LOCAL (-2)     /* bad arguments, out of memory, body over cap */

struct cli_conn {
    const char *base_url; /* e.g. "http://127.0.0.1:8080"; trailing '/' ignored */
    const char *token;    /* bearer token or NULL */
    const char *cacert;   /* CA bundle file for https, or NULL for the system store */
    int insecure;         /* non-zero: skip TLS peer and host verification */
};

struct http_response {
    long status;
    unsigned char *body; /* NUL-terminated (body[len] == 0); may contain NULs */
    size_t len;
    char *content_type; /* NULL if the server sent none */
};

/* Global libcurl set-up / tear-down; call once at start / end of main. */
int http_init(void);
void http_cleanup(void);

/* Performs `method` on base_url + `path` (path must start with '/' and be
 * already percent-encoded, see http_escape). `json_body`, if not NULL, is sent
 * with Content-Type: application/json. On HTTP_OK, *out holds the response
 * (any HTTP status, including 4xx/5xx) and must be released with
 * http_response_free(). On failure a one-line message has been printed to
 * stderr and *out is empty. */
int http_request(const struct cli_conn *c, const char *method, const char *path, const char *json_body,
                 struct http_response *out);
void http_response_free(struct http_response *r);

/* Percent-encodes one path segment (malloc'd, caller frees); NULL on failure. */
char *http_escape(const char *segment);

#endif
