#include "util/mail.h"

#include "util/buf.h"
#include "util/log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct job {
    char *url, *from, *user, *pass, *to;
    struct buf msg;
    size_t off;
};

static void job_free(struct job *j)
{
    free(j->url);
    free(j->from);
    free(j->user);
    free(j->pass);
    free(j->to);
    buf_free(&j->msg);
    free(j);
}

static size_t reader(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct job *j = ud;
    size_t room = size * nmemb, left = j->msg.len - j->off;
    size_t n = left < room ? left : room;
    memcpy(ptr, j->msg.data + j->off, n);
    j->off += n;
    return n;
}

static void *sender(void *arg)
{
    struct job *j = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *rcpt = NULL;
    if (!c || !(rcpt = curl_slist_append(NULL, j->to)))
        goto out;
    curl_easy_setopt(c, CURLOPT_URL, j->url);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, j->from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, reader);
    curl_easy_setopt(c, CURLOPT_READDATA, j);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (j->user)
        curl_easy_setopt(c, CURLOPT_USERNAME, j->user);
    if (j->pass)
        curl_easy_setopt(c, CURLOPT_PASSWORD, j->pass);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        log_error("mail to %s through %s failed: %s", j->to, j->url, curl_easy_strerror(rc));
    else
        log_info("mail sent to %s", j->to);
out:
    curl_slist_free_all(rcpt);
    if (c)
        curl_easy_cleanup(c);
    job_free(j);
    return NULL;
}

static bool header_safe(const char *s)
{
    return s && !strpbrk(s, "\r\n");
}

int mail_send_async(const struct mail_relay *relay, const char *to, const char *subject, const char *body)
{
    struct job *j = calloc(1, sizeof(*j));
    pthread_t th;
    pthread_attr_t at;
    if (!j || !relay->url || !relay->from || !header_safe(to) || !header_safe(subject) ||
        !header_safe(relay->from))
        goto fail;
    buf_init(&j->msg, 1 << 20);
    if (!(j->url = strdup(relay->url)) || !(j->from = strdup(relay->from)) || !(j->to = strdup(to)) ||
        (relay->username && !(j->user = strdup(relay->username))) ||
        (relay->password && !(j->pass = strdup(relay->password))))
        goto fail;
    if (buf_printf(&j->msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
                            "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
                   relay->from, to, subject, body) != 0)
        goto fail;
    if (pthread_attr_init(&at) != 0)
        goto fail;
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &at, sender, j);
    pthread_attr_destroy(&at);
    if (rc != 0)
        goto fail;
    return 0;
fail:
    if (j)
        job_free(j);
    return -1;
}
