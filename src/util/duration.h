/* duration: ISO 8601 durations ("P1Y", "P90D", "P1Y6M", "PT12H", "P2W")
 * applied as calendar arithmetic in UTC. */
#ifndef PKIAAS_UTIL_DURATION_H
#define PKIAAS_UTIL_DURATION_H

#include <stdint.h>

struct duration {
    int years, months, days;
    int64_t seconds;
};

/* 0 on success; rejects empty ("P"), negative, fractional and absurd
 * (> 100 years) durations. */
int duration_parse(const char *s, struct duration *d);
int64_t duration_add(int64_t t, const struct duration *d);

#endif
