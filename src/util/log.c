#include "util/log.h"

#include <jansson.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

void log_request(const char *method, const char *path, int status, double ms, const char *partition)
{
    char ts[40];
    now_iso(ts, sizeof ts);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:f,s:s?}", "ts", ts, "level", "info", "method", method ? method : "",
                          "path", path ? path : "", "status", status, "ms", ms, "partition", partition);
    if (o)
        emit(o);
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
