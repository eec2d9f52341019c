#include "util/duration.h"

#include <string.h>
#include <time.h>

int duration_parse(const char *s, struct duration *d)
{
    memset(d, 0, sizeof(*d));
    if (!s || s[0] != 'P' || !s[1] || strlen(s) > 64)
        return -1;
    const char *p = s + 1;
    int in_time = 0, any = 0;
    char last = 0;
    static const char date_order[] = "YMWD", time_order[] = "HMS";
    while (*p) {
        if (*p == 'T') {
            if (in_time || !p[1])
                return -1;
            in_time = 1;
            last = 0;
            p++;
            continue;
        }
        long long v = 0;
        const char *start = p;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p - '0');
            if (v > 1000000)
                return -1;
            p++;
        }
        if (p == start || !*p)
            return -1;
        char unit = *p++;
        const char *order = in_time ? time_order : date_order;
        const char *pos = strchr(order, unit);
        if (!pos || (last && pos <= strchr(order, last)))
            return -1; /* unknown unit or out of order / repeated */
        last = unit;
        any = 1;
        if (!in_time) {
            if (unit == 'Y')
                d->years = (int)v;
            else if (unit == 'M')
                d->months = (int)v;
            else if (unit == 'W')
                d->days += (int)v * 7;
            else
                d->days += (int)v;
        } else {
            d->seconds += v * (unit == 'H' ? 3600 : unit == 'M' ? 60 : 1);
        }
    }
    if (!any)
        return -1;
    double approx = d->years * 365.25 + d->months * 30.5 + d->days + (double)d->seconds / 86400.0;
    if (approx <= 0 || approx > 100 * 366)
        return -1;
    return 0;
}

int64_t duration_add(int64_t t, const struct duration *d)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    int mday = tm.tm_mday;
    tm.tm_year += d->years;
    tm.tm_mon += d->months;
    tm.tm_mday = 1;
    time_t base = timegm(&tm);
    gmtime_r(&base, &tm);
    /* clamp to the last day of the target month (Jan 31 + P1M = Feb 28/29) */
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = tm.tm_year + 1900;
    int maxd = mdays[tm.tm_mon] + (tm.tm_mon == 1 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    tm.tm_mday = mday > maxd ? maxd : mday;
    return (int64_t)timegm(&tm) + (int64_t)d->days * 86400 + d->seconds;
}
