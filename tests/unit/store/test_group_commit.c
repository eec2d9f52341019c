/* store/group_commit: with many threads submitting at once, every job is in
 * exactly one batch, batches never overlap, jobs keep submission order
 * (a thread's jobs never reorder; a batch is one run of the queue), every
 * caller gets the rc its own job was given, and a job the backend left
 * alone comes back as STORE_EIO. The backend here is a stub that checks
 * these while it "commits" (sometimes slowly, so queues build up). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/group_commit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { THREADS = 8, JOBS = 1000 };

/* What a stub job stands for: submitted by `thread` as its `seq`-th job. */
struct tag {
    int thread, seq;
    atomic_int seen; /* batches that held it */
};

struct stub {
    atomic_int running;   /* batches running now: never more than 1 */
    atomic_int overlaps;  /* times a batch started while another ran */
    atomic_long batches, jobs;
    atomic_long largest; /* jobs in the largest batch */
    int last_seq[THREADS]; /* only touched by the (single) running batch */
    atomic_int order_errors;
    bool leave_rc; /* do not set rc of jobs with an odd seq */
};

static void stub_run(void *ctx, struct gc_job *batch)
{
    struct stub *s = ctx;
    if (atomic_fetch_add(&s->running, 1) != 0)
        atomic_fetch_add(&s->overlaps, 1);
    long n = 0;
    for (struct gc_job *j = batch; j; j = j->next, n++) {
        struct tag *t = (struct tag *)j->c;
        atomic_fetch_add(&t->seen, 1);
        if (t->seq != s->last_seq[t->thread] + 1)
            atomic_fetch_add(&s->order_errors, 1);
        s->last_seq[t->thread] = t->seq;
        if (!(s->leave_rc && t->seq % 2))
            j->rc = t->thread * 100000 + t->seq;
    }
    /* a commit takes a while (now and then longer, as a disk flush does):
     * meanwhile the other threads queue their next jobs */
    struct timespec ts = {0, (n % 3 == 0 ? 200 : 20) * 1000};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&s->batches, 1);
    if (n > atomic_load(&s->largest))
        atomic_store(&s->largest, n); /* only the running batch writes it */
    atomic_fetch_add(&s->jobs, n);
    atomic_fetch_sub(&s->running, 1);
}

struct worker {
    struct group_commit *gc;
    struct stub *s;
    int id;
    struct tag *tags; /* JOBS of them */
    int wrong_rc;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < JOBS; i++) {
        struct tag *t = &w->tags[i];
        t->thread = w->id;
        t->seq = i + 1;
        int want = w->s->leave_rc && t->seq % 2 ? STORE_EIO : w->id * 100000 + t->seq;
        if (group_commit_submit(w->gc, (struct cert_rec *)t, false, NULL) != want)
            w->wrong_rc++;
    }
    return NULL;
}

static void run_threads(bool leave_rc)
{
    struct group_commit gc;
    struct stub *s = calloc(1, sizeof *s);
    struct worker w[THREADS];
    pthread_t t[THREADS];
    assert_non_null(s);
    s->leave_rc = leave_rc;
    assert_int_equal(group_commit_init(&gc, stub_run, s), 0);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){&gc, s, i, calloc(JOBS, sizeof(struct tag)), 0};
        assert_non_null(w[i].tags);
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(w[i].wrong_rc, 0);
        for (int k = 0; k < JOBS; k++)
            assert_int_equal(atomic_load(&w[i].tags[k].seen), 1);
        free(w[i].tags);
    }
    assert_int_equal(atomic_load(&s->overlaps), 0);
    assert_int_equal(atomic_load(&s->order_errors), 0);
    assert_int_equal(atomic_load(&s->jobs), THREADS * JOBS);
    /* the point of it: with 8 threads, batches hold more than one job */
    assert_true(atomic_load(&s->largest) > 1);
    group_commit_destroy(&gc);
    free(s);
}

static void test_many_threads(void **state)
{
    (void)state;
    run_threads(false);
}

static void test_rc_left_unset_is_eio(void **state)
{
    (void)state;
    run_threads(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_threads),
        cmocka_unit_test(test_rc_left_unset_is_eio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
