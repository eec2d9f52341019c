#include "cli/http_client.h"

#include "util/buf.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_S 15L
#define TOTAL_TIMEOUT_S 300L

struct sink {
    struct buf b;
    int overflow;
};

int http_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void http_cleanup(void)
{
    curl_global_cleanup();
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    size_t n = size * nmemb;
    if (buf_append(&s->b, ptr, n) != 0) {
        s->overflow = 1;
        return 0; /* makes curl abort with CURLE_WRITE_ERROR */
    }
    return n;
}

/* A header value must not be able to smuggle in another header line. */
static int header_safe(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

void http_response_free(struct http_response *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->content_type);
    memset(r, 0, sizeof(*r));
}

char *http_escape(const char *segment)
{
    CURL *h = NULL;
    char *e = NULL;
    char *copy = NULL;
    size_t n = strlen(segment);
    if (n > (size_t)1 << 20)
        goto out;
    h = curl_easy_init();
    if (!h)
        goto out;
    e = curl_easy_escape(h, segment, (int)n);
    if (!e)
        goto out;
    copy = strdup(e);
out:
    curl_free(e);
    if (h)
        curl_easy_cleanup(h);
    return copy;
}

int http_request(const struct cli_conn *c, const char *method, const char *path, const char *json_body,
                 struct http_response *out)
{
    int rc = HTTP_ERR_LOCAL;
    CURL *h = NULL;
    struct curl_slist *hdrs = NULL, *tmp;
    struct buf url, auth;
    struct sink sink;
    char errbuf[CURL_ERROR_SIZE];
    const char *ct = NULL;
    CURLcode cc;
    size_t blen;

    memset(out, 0, sizeof(*out));
    buf_init(&url, 0);
    buf_init(&auth, 0);
    buf_init(&sink.b, HTTP_MAX_BODY);
    sink.overflow = 0;
    errbuf[0] = 0;

    if (!c->base_url || !*c->base_url || !path || path[0] != '/') {
        fprintf(stderr, "error: invalid server URL or request path\n");
        goto out;
    }
    blen = strlen(c->base_url);
    while (blen > 0 && c->base_url[blen - 1] == '/')
        blen--;
    if (buf_append(&url, c->base_url, blen) != 0 || buf_append_str(&url, path) != 0)
        goto oom;

    h = curl_easy_init();
    if (!h)
        goto oom;

    if (c->token && *c->token) {
        if (!header_safe(c->token)) {
            fprintf(stderr, "error: the API token contains control characters\n");
            goto out;
        }
        if (buf_printf(&auth, "Authorization: Bearer %s", c->token) != 0)
            goto oom;
        tmp = curl_slist_append(hdrs, (const char *)auth.data);
        if (!tmp)
            goto oom;
        hdrs = tmp;
    }
    if (json_body) {
        tmp = curl_slist_append(hdrs, "Content-Type: application/json");
        if (!tmp)
            goto oom;
        hdrs = tmp;
    }
    /* Suppress "Expect: 100-continue" round trips on larger bodies. */
    tmp = curl_slist_append(hdrs, "Expect:");
    if (!tmp)
        goto oom;
    hdrs = tmp;

    if (curl_easy_setopt(h, CURLOPT_URL, (const char *)url.data) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
#endif
        curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_TIMEOUT, TOTAL_TIMEOUT_S) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_USERAGENT, "pkiaas-cli/0.1.0") != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink) != CURLE_OK) {
        fprintf(stderr, "error: cannot configure HTTP client\n");
        goto out;
    }
    if (c->cacert && curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert) != CURLE_OK) {
        fprintf(stderr, "error: cannot set CA bundle\n");
        goto out;
    }
    if (c->insecure && (curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK ||
                        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK)) {
        fprintf(stderr, "error: cannot disable TLS verification\n");
        goto out;
    }

    if (strcmp(method, "GET") == 0) {
        cc = curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "POST") == 0) {
        cc = curl_easy_setopt(h, CURLOPT_POSTFIELDS, json_body ? json_body : "");
    } else {
        cc = curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (cc == CURLE_OK && json_body)
            cc = curl_easy_setopt(h, CURLOPT_POSTFIELDS, json_body);
    }
    if (cc != CURLE_OK) {
        fprintf(stderr, "error: cannot configure HTTP method\n");
        goto out;
    }

    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (sink.overflow) {
            fprintf(stderr, "error: response body exceeds the %zu MiB limit\n", HTTP_MAX_BODY >> 20);
            goto out;
        }
        fprintf(stderr, "error: %s\n", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        rc = HTTP_ERR_TRANSPORT;
        goto out;
    }
    if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status) != CURLE_OK ||
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK) {
        fprintf(stderr, "error: cannot read HTTP response status\n");
        goto out;
    }
    if (ct) {
        out->content_type = strdup(ct);
        if (!out->content_type)
            goto oom;
    }
    out->body = buf_take(&sink.b, &out->len);
    if (!out->body)
        goto oom;
    rc = HTTP_OK;
    goto out;

oom:
    fprintf(stderr, "error: out of memory\n");
out:
    if (rc != HTTP_OK)
        http_response_free(out);
    if (auth.data)
        OPENSSL_cleanse(auth.data, auth.alloc);
    buf_free(&auth);
    buf_free(&url);
    buf_free(&sink.b);
    for (tmp = hdrs; tmp; tmp = tmp->next)
        OPENSSL_cleanse(tmp->data, strlen(tmp->data));
    curl_slist_free_all(hdrs);
    if (h)
        curl_easy_cleanup(h);
    return rc;
}
