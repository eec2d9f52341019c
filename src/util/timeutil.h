/* timeutil: UTC time helpers (seconds since the epoch as int64). */
#ifndef PKIAAS_UTIL_TIMEUTIL_H
#define PKIAAS_UTIL_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t time_now(void);
/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME: the one time base
 * nodes sharing a store have in common, e.g. for rate buckets). */
int64_t time_now_ms(void);
double time_mono_ms(void);
/* The range of instants time_parse_rfc3339 gives: 1950-01-01T00:00:00Z to
 * 9999-12-31T23:59:59Z (what an X.509 time can hold). */
#define TIME_MIN_S (-631152000LL)
#define TIME_MAX_S 253402300799LL
/* RFC 3339 "YYYY-MM-DDTHH:MM:SSZ" (also accepts fractional seconds and
 * +hh:mm offsets, and a bare "YYYY-MM-DD" meaning midnight UTC), the
 * instant within TIME_MIN_S..TIME_MAX_S. 0 on success. */
int time_parse_rfc3339(const char *s, int64_t *out);
/* Writes "YYYY-MM-DDTHH:MM:SSZ" into out (at least 21 bytes). */
void time_format_rfc3339(int64_t t, char *out, size_t n);
/* Adds whole calendar years / days, clamping Feb 29 to Feb 28. */
int64_t time_add_years(int64_t t, int years);

#endif
