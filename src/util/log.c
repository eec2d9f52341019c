#include "util/log.h"

#include <jansson.h>
#include <openssl/err.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
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

/* Whole-buffer write to stderr; a short write or EINTR continues. */
static void write_all(const char *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(STDERR_FILENO, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

/* Access lines under load: request threads append to a buffer that one
 * writer thread flushes every FLUSH_MS (or at HIGH bytes), so a request
 * costs no write(2) and no wait on the log file's inode lock, which 64
 * threads appending to one file queue on. Messages (log_msg) flush the
 * buffer and are written at once, so lines keep their order and a warning
 * or error is on stderr before the call returns. Without the writer
 * (CLI, bootstrap, tests) every line is written at once. */
enum { FLUSH_MS = 20, HIGH = 64 * 1024, CAP = 1024 * 1024 };
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t done; /* the writer finished a write(2) */
    pthread_t thread;
    bool running, stop, writing;
    char *buf, *spare;
    size_t len;
} sink = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&sink.mu);
    for (;;) {
        while (!sink.stop && sink.len == 0)
            pthread_cond_wait(&sink.cv, &sink.mu);
        if (!sink.stop && sink.len < HIGH) {
            /* gather more lines; appenders wake us early at HIGH bytes */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += FLUSH_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&sink.cv, &sink.mu, &until);
        }
        if (sink.len > 0) {
            char *out = sink.buf;
            size_t n = sink.len;
            sink.buf = sink.spare;
            sink.spare = NULL;
            sink.len = 0;
            sink.writing = true;
            pthread_mutex_unlock(&sink.mu);
            write_all(out, n);
            pthread_mutex_lock(&sink.mu);
            sink.spare = out;
            sink.writing = false;
            pthread_cond_broadcast(&sink.done);
        }
        if (sink.stop && sink.len == 0)
            break;
    }
    pthread_mutex_unlock(&sink.mu);
    return NULL;
}

int log_writer_start(void)
{
    int rc = -1;
    pthread_mutex_lock(&sink.mu);
    if (sink.running) {
        rc = 0;
        goto out;
    }
    if (!sink.buf && !(sink.buf = malloc(CAP)))
        goto out;
    if (!sink.spare && !(sink.spare = malloc(CAP)))
        goto out;
    sink.len = 0;
    sink.stop = false;
    if (pthread_create(&sink.thread, NULL, writer_main, NULL) != 0)
        goto out;
    sink.running = true;
    rc = 0;
out:
    pthread_mutex_unlock(&sink.mu);
    return rc;
}

void log_writer_stop(void)
{
    pthread_mutex_lock(&sink.mu);
    bool was = sink.running;
    sink.stop = true;
    pthread_cond_signal(&sink.cv);
    pthread_mutex_unlock(&sink.mu);
    if (was)
        pthread_join(sink.thread, NULL);
    pthread_mutex_lock(&sink.mu);
    sink.running = false;
    if (sink.buf && sink.len > 0) /* appended after the writer's last round */
        write_all(sink.buf, sink.len);
    free(sink.buf);
    free(sink.spare);
    sink.buf = sink.spare = NULL;
    sink.len = 0;
    pthread_mutex_unlock(&sink.mu);
}

/* Called with sink.mu held: pending access lines out first, after the
 * older ones the writer may be writing right now. */
static void flush_locked(void)
{
    while (sink.writing)
        pthread_cond_wait(&sink.done, &sink.mu);
    if (sink.len > 0) {
        write_all(sink.buf, sink.len);
        sink.len = 0;
    }
}

/* An access line (with its newline), appended for the writer, or written
 * at once without one. */
static void put_line(const char *line, size_t n)
{
    pthread_mutex_lock(&sink.mu);
    if (!sink.running || !sink.buf) {
        write_all(line, n);
    } else if (n > CAP) {
        flush_locked();
        write_all(line, n);
    } else {
        if (sink.len + n > CAP)
            flush_locked(); /* the disk is slower than the requests: wait for it here */
        size_t before = sink.len;
        memcpy(sink.buf + sink.len, line, n);
        sink.len += n;
        if (before == 0 || (before < HIGH && sink.len >= HIGH))
            pthread_cond_signal(&sink.cv);
    }
    pthread_mutex_unlock(&sink.mu);
}

/* A message and its newline, written now, after every access line logged
 * before it, without copying it to add the newline. */
static void put_msg(const char *s, size_t n)
{
    pthread_mutex_lock(&sink.mu);
    if (sink.running && sink.buf)
        flush_locked();
    write_all(s, n);
    write_all("\n", 1);
    pthread_mutex_unlock(&sink.mu);
}

static void emit(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s) {
        put_msg(s, strlen(s));
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
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    put_line(line, len);
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
