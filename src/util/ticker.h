/* ticker: a thread that calls one function every period until stopped.
 *
 * Promises: fn runs first at start, then `period_s` seconds after each run
 * ends (never two at once); ticker_stop wakes the wait, waits for a run in
 * progress to end and joins the thread. */
#ifndef PKIAAS_UTIL_TICKER_H
#define PKIAAS_UTIL_TICKER_H

struct ticker;

/* NULL when the thread cannot be started. */
struct ticker *ticker_start(void (*fn)(void *arg), void *arg, int period_s);
/* NULL is accepted. */
void ticker_stop(struct ticker *t);

#endif
