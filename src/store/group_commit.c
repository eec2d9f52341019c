#include "store/group_commit.h"

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

/* Wakes a waiting job's owner: done (the job is final) or lead. The owner
 * may return as soon as m is released with done set, so the caller must not
 * touch the job after this when `done`. */
static void wake(struct gc_job *j, bool done)
{
    pthread_mutex_lock(&j->m);
    if (done)
        j->done = true;
    else
        j->lead = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->m);
}

int group_commit_submit(struct group_commit *gc, struct cert_rec *c, bool count_quota, const struct audit_rec *a)
{
    struct gc_job job = {.c = c, .count_quota = count_quota, .a = a, .rc = STORE_EIO};
    if (pthread_mutex_init(&job.m, NULL) != 0)
        return STORE_EIO;
    if (pthread_cond_init(&job.cv, NULL) != 0) {
        pthread_mutex_destroy(&job.m);
        return STORE_EIO;
    }
    pthread_mutex_lock(&gc->mu);
    *gc->tail = &job;
    gc->tail = &job.next;
    while (gc->leader) {
        /* Wait for the leader: it wakes this job when the job is committed,
         * or, as the first job queued behind its batch, to lead the next. */
        pthread_mutex_unlock(&gc->mu);
        pthread_mutex_lock(&job.m);
        while (!job.done && !job.lead)
            pthread_cond_wait(&job.cv, &job.m);
        bool done = job.done;
        job.lead = false;
        pthread_mutex_unlock(&job.m);
        if (done)
            goto out;
        pthread_mutex_lock(&gc->mu); /* asked to lead: unless someone already does */
    }
    /* Lead: commit everything queued so far (this job included). */
    gc->leader = true;
    struct gc_job *batch = gc->head;
    gc->head = NULL;
    gc->tail = &gc->head;
    pthread_mutex_unlock(&gc->mu);
    gc->run(gc->ctx, batch);
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
out:
    pthread_cond_destroy(&job.cv);
    pthread_mutex_destroy(&job.m);
    return job.rc;
}
