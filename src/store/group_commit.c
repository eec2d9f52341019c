#include "store/group_commit.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

int group_commit_init(struct group_commit *gc, group_commit_run_fn run, void *ctx)
{
    if (pthread_mutex_init(&gc->mu, NULL) != 0)
        return -1;
    gc->head = NULL;
    gc->tail = &gc->head;
    gc->leader = false;
    gc->run = run;
    gc->ctx = ctx;
    return 0;
}

void group_commit_destroy(struct group_commit *gc)
{
    if (gc->run) /* initialised */
        pthread_mutex_destroy(&gc->mu);
}

enum { GC_WAIT, GC_DONE, GC_LEAD };

/* Sets a waiting job's state (GC_DONE: the job is final; GC_LEAD) and wakes
 * its owner. The owner may return as soon as it sees GC_DONE, so the
 * caller must not touch the job after this when `done`; the wake-up itself
 * may then reach a word that is no longer the job's, which every futex user
 * treats as a spurious wake-up. */
static void wake(struct gc_job *j, bool done)
{
    atomic_store_explicit(&j->state, done ? GC_DONE : GC_LEAD, memory_order_release);
    syscall(SYS_futex, &j->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Sleeps until the job's state leaves GC_WAIT and returns it; a GC_LEAD is
 * taken (back to GC_WAIT, so a later GC_DONE is not lost). */
static int await(struct gc_job *j)
{
    for (;;) {
        int s = atomic_load_explicit(&j->state, memory_order_acquire);
        if (s == GC_DONE)
            return GC_DONE;
        if (s == GC_LEAD) {
            if (atomic_compare_exchange_strong_explicit(&j->state, &s, GC_WAIT, memory_order_acq_rel,
                                                        memory_order_acquire))
                return GC_LEAD;
            continue; /* became GC_DONE meanwhile */
        }
        syscall(SYS_futex, &j->state, FUTEX_WAIT_PRIVATE, GC_WAIT, NULL, NULL, 0); /* EAGAIN / EINTR: look again */
    }
}

int group_commit_submit(struct group_commit *gc, struct cert_rec *c, bool count_quota, const struct audit_rec *a)
{
    struct gc_job job = {.c = c, .count_quota = count_quota, .a = a, .rc = STORE_EIO};
    atomic_init(&job.state, GC_WAIT);
    pthread_mutex_lock(&gc->mu);
    *gc->tail = &job;
    gc->tail = &job.next;
    for (;;) {
        /* Asked to lead, another caller may have taken this job into its
         * batch before this thread got the queue lock: then it is done. */
        if (atomic_load_explicit(&job.state, memory_order_acquire) == GC_DONE) {
            pthread_mutex_unlock(&gc->mu);
            return job.rc;
        }
        if (!gc->leader)
            break;
        /* Wait for the leader: it wakes this job when the job is committed,
         * or, as the first job queued behind its batch, to lead the next. */
        pthread_mutex_unlock(&gc->mu);
        if (await(&job) == GC_DONE)
            return job.rc;
        pthread_mutex_lock(&gc->mu);
    }
    /* Lead: commit everything queued so far (this job included). */
    gc->leader = true;
    struct gc_job *batch = gc->head;
    gc->head = NULL;
    gc->tail = &gc->head;
    pthread_mutex_unlock(&gc->mu);
    gc->run(gc->ctx, batch);
    int rc = job.rc;
    for (struct gc_job *j = batch, *n; j; j = n) {
        n = j->next; /* read first: the owner may return once woken */
        if (j != &job)
            wake(j, true);
    }
    pthread_mutex_lock(&gc->mu);
    gc->leader = false;
    /* The first job queued meanwhile leads next. Under the queue lock:
     * nobody else can take it into a batch (and finish it) while it is
     * being woken. */
    if (gc->head)
        wake(gc->head, false);
    pthread_mutex_unlock(&gc->mu);
    return rc;
}
